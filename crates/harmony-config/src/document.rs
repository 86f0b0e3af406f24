//! Pure logic over one config document and its schema, when one is stored: typed assignment,
//! masking of secret fields, validation with the variable that would supply each field, diffs,
//! and the renderings people read (YAML with descriptions as comments, dotenv). No I/O here.
//!
//! The schema is the one `ConfigManager` stores beside each document (`<prefix>/_schema/<KEY>`,
//! a schemars JSON schema); it is normalised by [`crate::ConfigSchema`], and variable
//! names follow [`crate::EnvSource`] (`HARMONY_<KEY>_<FIELD>`). A document without a
//! schema is "untyped": values are parsed as JSON when they parse, nothing is masked or checked.

use crate::{ConfigSchema, EnvSource, Field, FieldKind};
use serde::Serialize;
use serde_json::{Map, Value};

/// What a secret value is shown as.
pub const MASK: &str = "********";

/// A document's key and its schema (`None`: untyped).
#[derive(Debug, Clone)]
pub struct Typing {
    key: String,
    schema: Option<ConfigSchema>,
}

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Dotted field path.
    pub field: String,
    /// What is wrong (never the value).
    pub problem: String,
    /// The variable that would supply the field (`HARMONY_<KEY>_<FIELD>`).
    pub env_var: String,
    /// The field is absent (as opposed to present and wrong).
    #[serde(skip)]
    pub missing: bool,
}

/// How a field differs between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
    Unchanged,
}

/// One line of a diff. Secret values are never carried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub change: ChangeKind,
    pub secret: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

fn untyped_field(path: Vec<String>) -> Field {
    Field {
        path,
        kind: FieldKind::Any,
        secret: false,
        description: None,
        default: None,
        nullable: true,
        minimum: None,
        maximum: None,
    }
}

/// `a.b.c` as a path.
pub fn split_path(dotted: &str) -> Vec<String> {
    dotted.split('.').map(str::to_owned).collect()
}

/// Every leaf (non-object value, or empty object) with its path, depth first.
pub fn leaves(value: &Value) -> Vec<(Vec<String>, &Value)> {
    fn walk<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Value)>) {
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, child) in map {
                    path.push(k.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            other => out.push((path.clone(), other)),
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// The value at `path`, if any.
pub fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, seg| v.get(seg))
}

impl Typing {
    /// Typing for `key` from the stored schema document (`None`: untyped).
    pub fn new(key: &str, schema: Option<&Value>) -> Result<Self, crate::ConfigError> {
        Ok(Self {
            key: key.to_owned(),
            schema: schema
                .map(|s| ConfigSchema::from_json(key, s))
                .transpose()?,
        })
    }

    /// Whether a schema is stored.
    pub fn is_typed(&self) -> bool {
        self.schema.is_some()
    }

    /// The schema's leaf field at `path`.
    pub fn field(&self, path: &[String]) -> Option<&Field> {
        self.schema.as_ref().and_then(|s| s.field(path))
    }

    /// The field at `path` or the free-form (object/JSON) field it lies inside.
    fn covering_field(&self, path: &[String]) -> Option<&Field> {
        self.schema.as_ref().and_then(|s| {
            s.fields().iter().find(|f| {
                path.starts_with(&f.path)
                    && (f.path.len() == path.len()
                        || !matches!(
                            f.kind,
                            FieldKind::String
                                | FieldKind::Integer
                                | FieldKind::Number
                                | FieldKind::Boolean
                                | FieldKind::Enum(_)
                        ))
            })
        })
    }

    /// Whether the value at `path` is secret (the field, or a secret field it lies inside).
    pub fn is_secret(&self, path: &[String]) -> bool {
        self.schema.as_ref().is_some_and(|s| {
            s.fields()
                .iter()
                .any(|f| f.secret && path.starts_with(&f.path))
        })
    }

    /// The variable that supplies `path` (`HARMONY_<KEY>_<FIELD>`).
    pub fn env_var(&self, path: &[String]) -> String {
        match self.field(path) {
            Some(f) => EnvSource::var_name(&self.key, f),
            None => EnvSource::var_name(&self.key, &untyped_field(path.to_vec())),
        }
    }

    /// The dotted paths of all fields, for messages.
    pub fn field_list(&self) -> String {
        self.schema
            .as_ref()
            .map(|s| {
                s.fields()
                    .iter()
                    .map(Field::dotted)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    }

    /// `value` with every secret leaf replaced by [`MASK`].
    pub fn masked(&self, value: &Value) -> Value {
        let mut out = value.clone();
        for (path, v) in leaves(value) {
            if self.is_secret(&path)
                && !v.is_null()
                && let Some(slot) = value_at_mut(&mut out, &path)
            {
                *slot = Value::String(MASK.to_owned());
            }
        }
        out
    }

    /// Apply `a.b=VALUE` to `doc`, typed by the schema. The error names the field and what it
    /// expects, never the value.
    pub fn assign(&self, doc: &mut Map<String, Value>, assignment: &str) -> Result<(), String> {
        let set = self.parse_assignment(assignment)?;
        crate::insert_at(doc, &set.path, set.value);
        Ok(())
    }

    /// `a.b=VALUE` as the field it sets and the typed value, without applying it (see
    /// [`Patch`]). The error names the field and what it expects, never the value.
    pub fn parse_assignment(&self, assignment: &str) -> Result<FieldSet, String> {
        let Some((dotted, raw)) = assignment.split_once('=') else {
            return Err(format!(
                "{assignment:?} is not FIELD=VALUE (e.g. database.port=5432)"
            ));
        };
        let path = split_path(dotted.trim());
        if path.iter().any(String::is_empty) {
            return Err(format!(
                "{dotted:?} is not a field path (e.g. database.port)"
            ));
        }
        let value = match (&self.schema, self.field(&path)) {
            (None, _) => crate::parse_value(&untyped_field(path.clone()), raw),
            (Some(_), Some(field)) => {
                if raw.is_empty() && field.nullable {
                    Ok(Value::Null)
                } else {
                    crate::parse_value(field, raw).map_err(|reason| {
                        format!(
                            "{}.{} expects {} ({reason})",
                            self.key,
                            field.dotted(),
                            field.kind.expected()
                        )
                    })
                }
            }
            (Some(_), None) => {
                return Err(format!(
                    "{} has no field {}; its fields are: {}",
                    self.key,
                    path.join("."),
                    self.field_list()
                ));
            }
        }?;
        Ok(FieldSet { path, value })
    }

    /// Missing required fields, type and range violations, and fields the schema does not
    /// know. Empty for an untyped document.
    pub fn check(&self, doc: &Map<String, Value>) -> Vec<Finding> {
        let Some(schema) = &self.schema else {
            return Vec::new();
        };
        let mut filled = doc.clone();
        schema.fill_defaults(&mut filled);
        let mut out: Vec<Finding> = schema
            .missing(&filled)
            .into_iter()
            .map(|f| Finding {
                field: f.dotted(),
                problem: format!("missing (expects {})", f.kind.expected()),
                env_var: EnvSource::var_name(&self.key, f),
                missing: true,
            })
            .collect();
        for p in schema.problems(&filled) {
            let path = split_path(&p.path);
            out.push(Finding {
                problem: format!("expects {}, found {}", p.expected, p.found),
                env_var: self.env_var(&path),
                field: p.path,
                missing: false,
            });
        }
        let root = Value::Object(doc.clone());
        for (path, _) in leaves(&root) {
            if !path.is_empty() && self.covering_field(&path).is_none() {
                out.push(Finding {
                    field: path.join("."),
                    problem: "not a field of this config".to_owned(),
                    env_var: self.env_var(&path),
                    missing: false,
                });
            }
        }
        out
    }

    /// Field by field, from `old` to `new`; secret values are reported as changed or
    /// unchanged, never shown.
    pub fn diff(&self, old: &Value, new: &Value) -> Vec<Change> {
        let mut paths: Vec<Vec<String>> = leaves(old).into_iter().map(|(p, _)| p).collect();
        for (p, _) in leaves(new) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        paths
            .into_iter()
            .filter(|p| !p.is_empty())
            .filter_map(|path| {
                let secret = self.is_secret(&path);
                let (a, b) = (value_at(old, &path), value_at(new, &path));
                let change = match (a, b) {
                    (None, Some(_)) => ChangeKind::Added,
                    (Some(_), None) => ChangeKind::Removed,
                    (Some(a), Some(b)) if a != b => ChangeKind::Changed,
                    _ if secret => ChangeKind::Unchanged,
                    _ => return None,
                };
                let show = |v: Option<&Value>| if secret { None } else { v.cloned() };
                Some(Change {
                    field: path.join("."),
                    change,
                    secret,
                    old: show(a),
                    new: show(b),
                })
            })
            .collect()
    }

    /// YAML for people: each field's description as a comment above it; secret values masked
    /// when `mask`.
    pub fn to_yaml(&self, value: &Value, mask: bool) -> String {
        let mut out = String::new();
        if let Value::Object(map) = value {
            self.yaml_object(&mut out, map, &mut Vec::new(), 0, mask);
        }
        out
    }

    fn yaml_object(
        &self,
        out: &mut String,
        map: &Map<String, Value>,
        path: &mut Vec<String>,
        indent: usize,
        mask: bool,
    ) {
        let pad = " ".repeat(indent);
        for (key, value) in map {
            path.push(key.clone());
            let field = self.field(path);
            if let Some(desc) = field.and_then(|f| f.description.as_deref()) {
                for line in desc.lines() {
                    out.push_str(&format!("{pad}# {line}\n").replace(" \n", "\n"));
                }
            }
            if mask && self.is_secret(path) {
                out.push_str(&format!(
                    "{pad}# (secret: leave {MASK} to keep the stored value)\n"
                ));
            }
            let name = yaml_scalar(&Value::String(key.clone()));
            match value {
                Value::Object(inner)
                    if !inner.is_empty() && field.is_none() && !(mask && self.is_secret(path)) =>
                {
                    out.push_str(&format!("{pad}{name}:\n"));
                    self.yaml_object(out, inner, path, indent + 2, mask);
                }
                other => {
                    let shown = if mask && self.is_secret(path) && !other.is_null() {
                        Value::String(MASK.to_owned())
                    } else {
                        other.clone()
                    };
                    let text = yaml_scalar(&shown);
                    let mut lines = text.lines();
                    let first = lines.next().unwrap_or_default();
                    let rest: Vec<&str> = lines.collect();
                    if rest.is_empty() {
                        out.push_str(&format!("{pad}{name}: {first}\n"));
                    } else if first.starts_with('|') || first.starts_with('>') {
                        out.push_str(&format!("{pad}{name}: {first}\n"));
                        for line in rest {
                            out.push_str(&format!("{pad}{line}\n"));
                        }
                    } else {
                        out.push_str(&format!("{pad}{name}:\n"));
                        for line in std::iter::once(first).chain(rest) {
                            out.push_str(&format!("{pad}  {line}\n"));
                        }
                    }
                }
            }
            path.pop();
        }
    }

    /// `HARMONY_<KEY>_<FIELD>='value'` lines (secret values masked when `mask`), each value
    /// quoted by [`shell_quote`]. The error names the field whose value holds a NUL.
    pub fn to_dotenv(&self, value: &Value, mask: bool) -> Result<String, String> {
        let mut out = String::new();
        for (path, v) in leaves(value) {
            if path.is_empty() || v.is_null() {
                continue;
            }
            let text = if mask && self.is_secret(&path) {
                MASK.to_owned()
            } else {
                match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            };
            let quoted = shell_quote(&text).ok_or_else(|| {
                format!(
                    "{}.{} holds a NUL byte, which no shell variable can carry; fix that value \
                     (harmony config edit {}) or read it as JSON",
                    self.key,
                    path.join("."),
                    self.key
                )
            })?;
            out.push_str(&format!("{}={quoted}\n", self.env_var(&path)));
        }
        Ok(out)
    }
}

/// `value` as one shell word that bash, dash/sh and zsh read back byte for byte and expand
/// nothing in (no `$`, backtick, `\`, `!` or newline is special there): inside single quotes,
/// each `'` written as `'\''`. `None` when it holds a NUL, which no shell word or environment
/// variable can carry.
pub fn shell_quote(value: &str) -> Option<String> {
    if value.contains('\0') {
        return None;
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Some(out)
}

/// One field a `config set` assigns: its path and its typed value.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSet {
    /// The field's path.
    pub path: Vec<String>,
    /// The value it gets.
    pub value: Value,
}

/// The fields one `config set` assigns, applied on whatever version is current: the change a
/// person asked for, not the whole document they happened to read. Another write that landed
/// meanwhile and touched *other* fields is kept; one that changed a field of the patch (to
/// another value) is a clash ([`Patch::clashes`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    /// The assignments, in order (a later one wins over an earlier one of the same field).
    pub sets: Vec<FieldSet>,
}

impl Patch {
    /// `doc` with every assignment applied.
    pub fn apply(&self, doc: &Map<String, Value>) -> Map<String, Value> {
        let mut out = doc.clone();
        for set in &self.sets {
            crate::insert_at(&mut out, &set.path, set.value.clone());
        }
        out
    }

    /// The patch's fields (dotted) that changed between `read` (the version the patch was
    /// made on) and `now` (the version stored since) to something other than what the patch
    /// sets: there, applying the patch would silently undo someone's change. A field counts
    /// when it is the patch's field, inside it, or contains it.
    pub fn clashes(&self, read: &Value, now: &Value) -> Vec<String> {
        let theirs = changed_paths(read, now);
        let mut out: Vec<String> = Vec::new();
        for set in &self.sets {
            let overlaps = theirs
                .iter()
                .any(|p| p.starts_with(&set.path) || set.path.starts_with(p));
            let same_as_ours = value_at(now, &set.path) == Some(&set.value);
            let dotted = set.path.join(".");
            if overlaps && !same_as_ours && !out.contains(&dotted) {
                out.push(dotted);
            }
        }
        out
    }
}

/// The leaf paths whose values differ between `old` and `new` (added, removed or changed).
pub fn changed_paths(old: &Value, new: &Value) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    for (path, v) in leaves(old) {
        if value_at(new, &path) != Some(v) && !out.contains(&path) {
            out.push(path);
        }
    }
    for (path, v) in leaves(new) {
        if value_at(old, &path) != Some(v) && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// Remove the value at `path` (no-op when absent).
pub fn remove_at(value: &mut Value, path: &[String]) {
    if let Some((last, parents)) = path.split_last()
        && let Some(Value::Object(map)) = value_at_mut(value, parents)
    {
        map.remove(last);
    }
}

fn value_at_mut<'a>(value: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, seg| v.get_mut(seg))
}

/// One YAML value, without the trailing newline.
fn yaml_scalar(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_else(|_| v.to_string())
        .trim_end_matches('\n')
        .to_owned()
}

/// Replace every [`MASK`] left at a secret path of `edited` with the value in `stored` (the
/// editor shows secrets masked; keeping the mask means "keep the stored value").
pub fn unmask(typing: &Typing, edited: &mut Value, stored: &Value) {
    let masked: Vec<Vec<String>> = leaves(edited)
        .into_iter()
        .filter(|(p, v)| typing.is_secret(p) && v.as_str() == Some(MASK))
        .map(|(p, _)| p)
        .collect();
    for path in masked {
        let original = value_at(stored, &path).cloned();
        if let Some(slot) = value_at_mut(edited, &path) {
            match original {
                Some(v) => *slot = v,
                None => *slot = Value::Null,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(sets: &[(&str, Value)]) -> Patch {
        Patch {
            sets: sets
                .iter()
                .map(|(p, v)| FieldSet {
                    path: split_path(p),
                    value: v.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_patch_clashes_only_on_its_own_fields() {
        let read = json!({"db": {"host": "a", "port": 1}, "name": "x"});
        let p = patch(&[("db.port", json!(2))]);
        // Someone changed another field: no clash, and applying keeps their change.
        let other = json!({"db": {"host": "b", "port": 1}, "name": "x"});
        assert!(p.clashes(&read, &other).is_empty());
        assert_eq!(
            Value::Object(p.apply(other.as_object().expect("object"))),
            json!({"db": {"host": "b", "port": 2}, "name": "x"})
        );
        // Someone changed the same field: a clash, named.
        let same = json!({"db": {"host": "a", "port": 3}, "name": "x"});
        assert_eq!(p.clashes(&read, &same), ["db.port"]);
        // ... to the same value as ours: nothing would be lost.
        let agreed = json!({"db": {"host": "a", "port": 2}, "name": "x"});
        assert!(p.clashes(&read, &agreed).is_empty());
        // Replacing or removing the object that holds it clashes too.
        let removed = json!({"name": "x"});
        assert_eq!(p.clashes(&read, &removed), ["db.port"]);
        let whole = patch(&[("db", json!({"host": "c"}))]);
        assert_eq!(whole.clashes(&read, &other), ["db"]);
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "Shown in the UI." },
                "port": { "type": "integer", "minimum": 1, "maximum": 65535, "default": 8080 },
                "debug": { "type": "boolean", "default": false },
                "db": {
                    "type": "object",
                    "properties": {
                        "host": { "type": "string" },
                        "password": { "type": "string", "x-secret": true, "description": "DB password." }
                    },
                    "required": ["host", "password"]
                }
            },
            "required": ["name", "db"]
        })
    }

    fn typing() -> Typing {
        Typing::new("my-app", Some(&schema())).expect("schema")
    }

    fn doc() -> Value {
        json!({"name": "x", "port": 80, "db": {"host": "h", "password": "s3cret-value"}})
    }

    #[test]
    fn assignments_are_typed_by_the_schema_and_errors_hide_the_value() {
        let t = typing();
        let mut d = doc().as_object().cloned().expect("object");
        t.assign(&mut d, "port=5432").expect("integer");
        t.assign(&mut d, "debug=yes").expect("boolean");
        assert_eq!(d["port"], 5432);
        assert_eq!(d["debug"], true);
        let err = t
            .assign(&mut d, "port=secretish")
            .expect_err("not a number");
        assert!(err.contains("my-app.port expects an integer"), "{err}");
        assert!(!err.contains("secretish"), "{err}");
        let err = t.assign(&mut d, "nope=1").expect_err("unknown");
        assert!(
            err.contains("no field nope") && err.contains("db.password"),
            "{err}"
        );
        assert!(t.assign(&mut d, "port").is_err());
        let untyped = Typing::new("raw", None).expect("untyped");
        let mut d = Map::new();
        untyped.assign(&mut d, "a.b=7").expect("json");
        untyped.assign(&mut d, "a.c=hello").expect("text");
        assert_eq!(Value::Object(d), json!({"a": {"b": 7, "c": "hello"}}));
    }

    #[test]
    fn secrets_are_masked_in_values_yaml_dotenv_and_diffs() {
        let t = typing();
        let masked = t.masked(&doc());
        assert_eq!(masked["db"]["password"], MASK);
        assert_eq!(masked["db"]["host"], "h");
        let yaml = t.to_yaml(&doc(), true);
        assert!(!yaml.contains("s3cret-value"), "{yaml}");
        assert!(yaml.contains("# Shown in the UI.\nname: x\n"), "{yaml}");
        assert!(yaml.contains("  # DB password.\n"), "{yaml}");
        let env = t.to_dotenv(&doc(), true).expect("no NUL");
        assert!(env.contains("HARMONY_MY_APP_DB_HOST='h'\n"), "{env}");
        assert!(
            env.contains(&format!("HARMONY_MY_APP_DB_PASSWORD='{MASK}'")),
            "{env}"
        );
        let mut newer = doc();
        newer["db"]["password"] = json!("other-secret");
        newer["port"] = json!(81);
        let changes = t.diff(&doc(), &newer);
        let text = serde_json::to_string(&changes).expect("json");
        assert!(
            !text.contains("s3cret-value") && !text.contains("other-secret"),
            "{text}"
        );
        assert!(
            changes
                .iter()
                .any(|c| c.field == "db.password" && c.change == ChangeKind::Changed && c.secret)
        );
        assert!(
            changes
                .iter()
                .any(|c| c.field == "port" && c.old == Some(json!(80)))
        );
        let same = t.diff(&doc(), &doc());
        assert_eq!(
            same.len(),
            1,
            "only the secret is listed, as unchanged: {same:?}"
        );
        assert_eq!(same[0].change, ChangeKind::Unchanged);
    }

    #[test]
    fn shell_quoting_is_single_quotes_with_quotes_spliced_in() {
        assert_eq!(shell_quote("").as_deref(), Some("''"));
        assert_eq!(shell_quote("a b$`\\\n!").as_deref(), Some("'a b$`\\\n!'"));
        assert_eq!(shell_quote("it's").as_deref(), Some("'it'\\''s'"));
        assert_eq!(shell_quote("a\0b"), None);
        let err = Typing::new("raw", None)
            .expect("untyped")
            .to_dotenv(&json!({"x": {"y": "a\u{0}secret"}}), false)
            .expect_err("NUL");
        assert!(err.contains("raw.x.y") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn yaml_round_trips_and_the_mask_keeps_the_stored_secret() {
        let t = typing();
        let yaml = t.to_yaml(&doc(), true);
        let mut back: Value = serde_yaml::from_str(&yaml).expect("valid YAML");
        unmask(&t, &mut back, &doc());
        assert_eq!(back, doc());
    }

    #[test]
    fn check_lists_missing_invalid_and_unknown_fields_with_their_variables() {
        let t = typing();
        let d = json!({"port": 70000, "extra": 1, "db": {"host": "h"}});
        let findings = t.check(d.as_object().expect("object"));
        let find = |f: &str| {
            findings
                .iter()
                .find(|x| x.field == f)
                .unwrap_or_else(|| panic!("{f}: {findings:?}"))
        };
        assert_eq!(find("name").env_var, "HARMONY_MY_APP_NAME");
        assert!(find("name").problem.contains("missing"));
        assert_eq!(find("db.password").env_var, "HARMONY_MY_APP_DB_PASSWORD");
        assert!(find("port").problem.contains("expects"), "{findings:?}");
        assert!(find("extra").problem.contains("not a field"));
        assert!(t.check(doc().as_object().expect("object")).is_empty());
    }
}
