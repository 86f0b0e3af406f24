//! Configuration from environment variables, one variable per leaf field.
//!
//! The name is `HARMONY_<KEY>_<FIELD>`: key and field names upper-cased, anything that is not a
//! letter or digit turned into `_`, nested fields joined with `_` (`database.port` of `demo-app`
//! is `HARMONY_DEMO_APP_DATABASE_PORT`). Values are parsed by the field's schema type. An empty
//! variable counts as unset, so `FOO= cmd` can be used to blank out an override.
//!
//! The environment is injectable ([`EnvSource::from_map`], [`EnvSource::with_lookup`]) so tests
//! never touch the process environment, which is global and racy under a parallel test runner.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use harmony_env::vars::HARMONY_CONFIG_PREFIX;
use serde_json::{Map, Number, Value};

use crate::source::{BoxFuture, ConfigSource, Partial};
use crate::{ConfigError, ConfigSchema, Field, FieldKind};

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads `HARMONY_<KEY>_<FIELD>` variables.
#[derive(Clone)]
pub struct EnvSource {
    lookup: Arc<Lookup>,
}

impl fmt::Debug for EnvSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSource").finish_non_exhaustive()
    }
}

impl Default for EnvSource {
    fn default() -> Self {
        Self::new()
    }
}

impl EnvSource {
    /// Read the process environment.
    pub fn new() -> Self {
        Self::with_lookup(|name| std::env::var(name).ok())
    }

    /// Read from a fixed map (for tests and embedding).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::with_lookup(move |name| map.get(name).cloned())
    }

    /// Read through any lookup function.
    pub fn with_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// The variable that supplies `field` of config `key`.
    pub fn var_name(key: &str, field: &Field) -> String {
        let mut name = String::from(HARMONY_CONFIG_PREFIX);
        for part in std::iter::once(key).chain(field.path.iter().map(String::as_str)) {
            name.push('_');
            name.extend(part.chars().map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            }));
        }
        name
    }

    /// Read every field's variable and build the partial object (synchronous core of `load`).
    pub fn read(&self, schema: &ConfigSchema) -> Result<Option<Partial>, ConfigError> {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut out = Map::new();
        for field in schema.fields() {
            let var = Self::var_name(schema.key(), field);
            if let Some(first) = seen.insert(var.clone(), field.dotted()) {
                return Err(ConfigError::AmbiguousEnvVar {
                    key: schema.key().to_owned(),
                    var,
                    first,
                    second: field.dotted(),
                });
            }
            let Some(raw) = (self.lookup)(&var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let value = parse_value(field, &raw).map_err(|reason| ConfigError::EnvValue {
                var: var.clone(),
                expected: expected(field),
                value: (!field.secret).then(|| raw.clone()),
                reason,
            })?;
            tracing::debug!(config = schema.key(), var = %var, "field supplied by the environment");
            insert_at(&mut out, &field.path, value);
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

impl ConfigSource for EnvSource {
    fn name(&self) -> String {
        "environment".into()
    }

    fn load<'a>(
        &'a self,
        schema: &'a ConfigSchema,
    ) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>> {
        Box::pin(async move { self.read(schema) })
    }

    fn hint(&self, schema: &ConfigSchema, field: &Field) -> Option<String> {
        Some(format!("set {}", Self::var_name(schema.key(), field)))
    }
}

/// Put `value` at `path`, creating intermediate objects.
pub fn insert_at(map: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = map;
    for part in parents {
        let entry = cur
            .entry(part.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(next) = entry else {
            // Invariant: the entry was made an object just above.
            return;
        };
        cur = next;
    }
    cur.insert(last.clone(), value);
}

/// Parse text (an environment value or a typed answer) as `field`'s type.
///
/// The error is a reason that never repeats the input, so it is safe for secret fields.
pub fn parse_value(field: &Field, raw: &str) -> Result<Value, String> {
    let text = raw.trim();
    match &field.kind {
        FieldKind::String => Ok(Value::String(raw.to_owned())),
        FieldKind::Integer => {
            let value = if let Ok(i) = text.parse::<i64>() {
                Value::from(i)
            } else if let Ok(u) = text.parse::<u64>() {
                Value::from(u)
            } else if text.parse::<f64>().is_ok_and(f64::is_finite) {
                // Digits that overflow 64 bits are out of any integer field's range.
                return Err(if text.contains(['.', 'e', 'E']) {
                    "it has a fraction or an exponent".into()
                } else {
                    "it is out of range".into()
                });
            } else {
                return Err("it is not a number".into());
            };
            in_range(field, &value)?;
            Ok(value)
        }
        FieldKind::Number => {
            let value = text
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| "it is not a finite number".to_owned())?;
            in_range(field, &value)?;
            Ok(value)
        }
        FieldKind::Boolean => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Value::Bool(true)),
            "false" | "0" | "no" => Ok(Value::Bool(false)),
            _ => Err("not true/false/1/0/yes/no".into()),
        },
        FieldKind::Enum(values) => {
            let as_string = Value::String(text.to_owned());
            if values.contains(&as_string) {
                return Ok(as_string);
            }
            match serde_json::from_str::<Value>(text) {
                Ok(v) if values.contains(&v) => Ok(v),
                _ => Err("not one of the allowed values".into()),
            }
        }
        FieldKind::Array => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Array(_)) => Ok(v),
            Ok(_) => Err("valid JSON but not an array".into()),
            Err(e) => Err(json_reason(&e)),
        },
        FieldKind::Object => match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => Ok(v),
            Ok(_) => Err("valid JSON but not an object".into()),
            Err(e) => Err(json_reason(&e)),
        },
        // Untyped: JSON when it parses, else the text itself.
        FieldKind::Any => Ok(serde_json::from_str(text).unwrap_or(Value::String(raw.to_owned()))),
    }
}

/// What `field` accepts, in words for people: "a whole number from 0 to 65535" (the range
/// when the schema has one), else the kind's own description.
pub fn expected(field: &Field) -> String {
    let what = match field.kind {
        FieldKind::Integer => "a whole number".to_owned(),
        FieldKind::Number => "a number".to_owned(),
        ref other => return other.expected(),
    };
    match (field.minimum, field.maximum) {
        (Some(min), Some(max)) => format!("{what} from {} to {}", bound(min), bound(max)),
        (Some(min), None) => format!("{what} of at least {}", bound(min)),
        (None, Some(max)) => format!("{what} of at most {}", bound(max)),
        (None, None) => what,
    }
}

/// A schema bound as people write it (`65535`, not `65535.0`).
fn bound(b: f64) -> String {
    if b.fract() == 0.0 && b.abs() < 1e16 {
        format!("{}", b as i64)
    } else {
        b.to_string()
    }
}

/// The schema's `minimum`/`maximum` (the error never repeats the value).
fn in_range(field: &Field, value: &Value) -> Result<(), String> {
    let Some(n) = value.as_f64() else {
        return Ok(());
    };
    if field.minimum.is_some_and(|min| n < min) || field.maximum.is_some_and(|max| n > max) {
        return Err("it is out of range".into());
    }
    Ok(())
}

/// serde_json's syntax error position, without its message (which can quote the input).
fn json_reason(e: &serde_json::Error) -> String {
    format!(
        "not valid JSON (syntax error at line {}, column {})",
        e.line(),
        e.column()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    enum Level {
        Low,
        High,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct Db {
        port: u16,
        #[schemars(extend("x-secret" = true))]
        password: String,
        #[schemars(extend("x-secret" = true))]
        pin: u32,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "kebab-case")]
    struct Demo {
        database: Db,
        user_name: String,
        ratio: f64,
        enabled: bool,
        level: Level,
        tags: Vec<String>,
        labels: std::collections::BTreeMap<String, String>,
        max_retries: Option<u8>,
    }

    fn schema() -> ConfigSchema {
        ConfigSchema::of::<Demo>("demo-app").expect("schema")
    }

    fn read(vars: &[(&str, &str)]) -> Result<Option<Partial>, ConfigError> {
        EnvSource::from_map(vars.iter().copied()).read(&schema())
    }

    #[test]
    fn names_follow_key_and_nested_field_path() {
        let s = schema();
        let names: Vec<String> = s
            .fields()
            .iter()
            .map(|f| EnvSource::var_name(s.key(), f))
            .collect();
        assert!(
            names.contains(&"HARMONY_DEMO_APP_DATABASE_PORT".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"HARMONY_DEMO_APP_MAX_RETRIES".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"HARMONY_DEMO_APP_USER_NAME".to_owned()),
            "{names:?}"
        );
    }

    #[test]
    fn every_type_is_parsed_by_its_schema() {
        let got = read(&[
            ("HARMONY_DEMO_APP_DATABASE_PORT", "6543"),
            ("HARMONY_DEMO_APP_DATABASE_PASSWORD", " spaced secret "),
            ("HARMONY_DEMO_APP_USER_NAME", "alice"),
            ("HARMONY_DEMO_APP_RATIO", "0.25"),
            ("HARMONY_DEMO_APP_ENABLED", "yes"),
            ("HARMONY_DEMO_APP_LEVEL", "high"),
            ("HARMONY_DEMO_APP_TAGS", r#"["a","b"]"#),
            ("HARMONY_DEMO_APP_LABELS", r#"{"team":"core"}"#),
            ("HARMONY_DEMO_APP_MAX_RETRIES", "3"),
            ("HARMONY_DEMO_APP_UNRELATED", "ignored"),
        ])
        .expect("parses")
        .expect("some values");
        assert_eq!(
            Value::Object(got),
            json!({
                "database": {"port": 6543, "password": " spaced secret "},
                "user-name": "alice",
                "ratio": 0.25,
                "enabled": true,
                "level": "high",
                "tags": ["a", "b"],
                "labels": {"team": "core"},
                "max-retries": 3,
            })
        );
        for (raw, want) in [
            ("0", false),
            ("FALSE", false),
            ("no", false),
            ("1", true),
            ("True", true),
        ] {
            let got = read(&[("HARMONY_DEMO_APP_ENABLED", raw)])
                .expect("bool")
                .expect("set");
            assert_eq!(got["enabled"], json!(want), "{raw}");
        }
    }

    #[test]
    fn nothing_set_or_empty_means_nothing() {
        assert_eq!(read(&[]).expect("ok"), None);
        assert_eq!(
            read(&[("HARMONY_DEMO_APP_DATABASE_PORT", "")]).expect("ok"),
            None
        );
    }

    #[test]
    fn bad_value_names_variable_and_expected_type() {
        let err = read(&[("HARMONY_DEMO_APP_DATABASE_PORT", "eighty")]).expect_err("bad int");
        let msg = err.to_string();
        assert!(msg.contains("HARMONY_DEMO_APP_DATABASE_PORT"), "{msg}");
        assert!(
            msg.contains("expected a whole number from 0 to 65535"),
            "the type in plain words, with the schema's range: {msg}"
        );
        assert!(!msg.contains("integer"), "{msg}");
        assert!(msg.contains("eighty"), "a non-secret value is shown: {msg}");
        for (value, why) in [
            ("1.5", "fraction"),
            ("70000", "out of range"),
            ("-1", "out of range"),
            ("99999999999999999999999", "out of range"),
        ] {
            let err = read(&[("HARMONY_DEMO_APP_DATABASE_PORT", value)]).expect_err(value);
            let msg = err.to_string();
            assert!(
                msg.contains("from 0 to 65535") && msg.contains(why),
                "{value}: {msg}"
            );
        }

        let err = read(&[("HARMONY_DEMO_APP_LEVEL", "medium")]).expect_err("bad enum");
        assert!(err.to_string().contains("one of: low, high"), "{err}");

        let err = read(&[("HARMONY_DEMO_APP_TAGS", "a,b")]).expect_err("bad array");
        assert!(err.to_string().contains("a JSON array"), "{err}");

        let err = read(&[("HARMONY_DEMO_APP_ENABLED", "maybe")]).expect_err("bad bool");
        assert!(err.to_string().contains("a boolean"), "{err}");
    }

    #[test]
    fn bad_secret_value_is_never_echoed() {
        let secret = "7x-s3cr3t-pin";
        let err = read(&[("HARMONY_DEMO_APP_DATABASE_PIN", secret)]).expect_err("bad int");
        let msg = err.to_string();
        let dbg = format!("{err:?}");
        assert!(msg.contains("HARMONY_DEMO_APP_DATABASE_PIN"), "{msg}");
        assert!(
            msg.contains("a whole number") && msg.contains("value hidden"),
            "{msg}"
        );
        assert!(
            !msg.contains(secret) && !dbg.contains(secret),
            "{msg} / {dbg}"
        );
    }

    #[test]
    fn colliding_names_are_an_error() {
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Inner {
            port: u16,
        }
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Clash {
            db: Inner,
            db_port: u16,
        }
        let s = ConfigSchema::of::<Clash>("clash").expect("schema");
        let err = EnvSource::from_map([("X", "1")])
            .read(&s)
            .expect_err("ambiguous");
        assert!(err.to_string().contains("HARMONY_CLASH_DB_PORT"), "{err}");
    }
}
