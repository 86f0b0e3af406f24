//! Environments: where each layer of a config lives and how the layers combine.
//!
//! A config `KEY` has a **base** document at `KEY` (relative to the team's KV prefix: today's
//! document, unchanged) and one **overlay** per environment at `_env/<ENV>/KEY`
//! ([`ENV_FOLDER`]). An environment's config is its overlay merged over the base field by field
//! (deep for nested objects, as [`crate::merge_layers`] merges sources). One schema per config,
//! at `_schema/KEY`, shared by every environment. Folders starting with `_` hold no configs and
//! are left out of listings. No I/O here: the store, the CLI and `ConfigManager` call these.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::document::{leaves, value_at};
use crate::{ConfigError, SCHEMA_FOLDER};

/// The folder (under the KV prefix) holding the overlays: `_env/<ENV>/<KEY>`.
pub const ENV_FOLDER: &str = "_env";

/// Longest accepted environment name (a path segment and part of policy names).
const MAX_ENV_LEN: usize = 32;

/// Check an environment name: lowercase letters, digits, `-` and `_`, starting with a letter.
pub fn validate_environment(name: &str) -> Result<(), ConfigError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_ENV_LEN {
        Some("it is longer than 32 characters")
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("it contains a character other than a-z, 0-9, '-' and '_'")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it does not start with a letter")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidEnvironment {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether a top-level folder name (under the KV prefix) is reserved for harmony's own
/// documents (schemas, overlays) rather than configs: every name starting with `_`.
pub fn is_reserved_folder(segment: &str) -> bool {
    segment.starts_with('_')
}

/// The config keys a recursive scan of `folder` found, as a folder-by-folder listing gives them:
/// `folder/`-prefixed, sorted, without anything in or named like a reserved (`_`) folder below
/// `folder`; a document more than `max_depth` folders down shows as its folder at that depth
/// (`a/…/x/`), once.
pub fn keys_from_scan(folder: &str, scanned: &[String], max_depth: usize) -> Vec<String> {
    let folder = folder.trim_end_matches('/');
    let mut out: Vec<String> = scanned
        .iter()
        .filter_map(|key| {
            let segments: Vec<&str> = key.trim_end_matches('/').split('/').collect();
            if segments
                .iter()
                .any(|s| s.is_empty() || is_reserved_folder(s))
            {
                return None;
            }
            let relative = if segments.len() > max_depth + 1 {
                format!("{}/", segments[..=max_depth].join("/"))
            } else {
                segments.join("/")
            };
            Some(if folder.is_empty() {
                relative
            } else {
                format!("{folder}/{relative}")
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The path (relative to the KV prefix) of the schema of `key`.
pub fn schema_path(key: &str) -> String {
    format!("{SCHEMA_FOLDER}/{key}")
}

/// The path (relative to the KV prefix) of `key` in one layer: the base, or an environment's
/// overlay.
pub fn layer_path(key: &str, environment: Option<&str>) -> String {
    match environment {
        None => key.to_owned(),
        Some(env) => format!("{ENV_FOLDER}/{env}/{key}"),
    }
}

/// Which layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "layer", content = "environment")]
pub enum Origin {
    /// The base document.
    Base,
    /// The overlay of the named environment.
    Overlay(String),
}

/// One field of a resolved config and the layer it came from (no value: it may be secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldOrigin {
    /// Dotted field path.
    pub field: String,
    /// Where the value came from.
    #[serde(flatten)]
    pub origin: Origin,
    /// The overlay hides a different value of the base.
    pub overrides: bool,
}

/// The overlay merged over the base, field by field (the overlay wins; nested objects merge).
pub fn resolve(base: &Map<String, Value>, overlay: &Map<String, Value>) -> Map<String, Value> {
    crate::merge_layers([overlay, base])
}

/// For each leaf of the resolved config, the layer it came from.
pub fn explain(
    base: &Map<String, Value>,
    overlay: &Map<String, Value>,
    environment: &str,
) -> Vec<FieldOrigin> {
    let base_v = Value::Object(base.clone());
    let overlay_v = Value::Object(overlay.clone());
    let resolved = Value::Object(resolve(base, overlay));
    leaves(&resolved)
        .into_iter()
        .filter(|(path, _)| !path.is_empty())
        .map(|(path, value)| {
            let from_overlay = value_at(&overlay_v, &path) == Some(value);
            let in_base = value_at(&base_v, &path);
            FieldOrigin {
                field: path.join("."),
                origin: if from_overlay {
                    Origin::Overlay(environment.to_owned())
                } else {
                    Origin::Base
                },
                overrides: from_overlay && in_base.is_some_and(|b| b != value),
            }
        })
        .collect()
}

/// The smallest overlay that, merged over `base`, gives `full`: the leaves of `full` that the
/// base lacks or holds differently. (A field the base has and `full` lacks cannot be removed
/// by an overlay; it stays the base's.)
pub fn overlay_for(base: &Map<String, Value>, full: &Map<String, Value>) -> Map<String, Value> {
    let base_v = Value::Object(base.clone());
    let full_v = Value::Object(full.clone());
    let mut out = Map::new();
    for (path, value) in leaves(&full_v) {
        if path.is_empty() || value_at(&base_v, &path) == Some(value) {
            continue;
        }
        crate::insert_at(&mut out, &path, value.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn environment_names_are_checked() {
        for ok in ["dev", "prod", "staging-eu", "qa_2"] {
            assert!(validate_environment(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Prod", "other than"),
            ("prod/x", "other than"),
            ("../base", "other than"),
            ("2prod", "start"),
            ("_env", "start"),
        ] {
            let err = validate_environment(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(validate_environment(&"a".repeat(33)).is_err());
    }

    #[test]
    fn layers_have_fixed_places_and_reserved_folders_are_not_configs() {
        assert_eq!(layer_path("my-app", None), "my-app");
        assert_eq!(layer_path("team/app", Some("prod")), "_env/prod/team/app");
        assert_eq!(schema_path("my-app"), "_schema/my-app");
        assert!(is_reserved_folder(ENV_FOLDER) && is_reserved_folder(SCHEMA_FOLDER));
        assert!(!is_reserved_folder("my-app"));
    }

    #[test]
    fn a_scan_lists_like_the_folder_walk() {
        let scanned: Vec<String> = [
            "web",
            "team/api",
            "_env/prod/web",
            "_schema/web",
            "team/_history/x",
            "team/_y",
            "a/b/c/d",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            keys_from_scan("", &scanned, 8),
            ["a/b/c/d", "team/api", "web"]
        );
        assert_eq!(
            keys_from_scan("", &scanned, 1),
            ["a/b/", "team/api", "web"],
            "deeper than the bound: the folder at that depth"
        );
        assert_eq!(
            keys_from_scan("team/", &["api".to_owned(), "_x/y".to_owned()], 8),
            ["team/api"]
        );
    }

    #[test]
    fn the_overlay_wins_field_by_field_and_explain_names_the_layer() {
        let base = obj(json!({"db": {"host": "db", "port": 5432}, "debug": true, "name": "x"}));
        let overlay = obj(json!({"db": {"host": "prod-db"}, "debug": false}));
        let resolved = resolve(&base, &overlay);
        assert_eq!(
            Value::Object(resolved),
            json!({"db": {"host": "prod-db", "port": 5432}, "debug": false, "name": "x"})
        );
        let why = explain(&base, &overlay, "prod");
        let of = |f: &str| why.iter().find(|o| o.field == f).cloned().expect(f);
        assert_eq!(of("db.host").origin, Origin::Overlay("prod".into()));
        assert!(of("db.host").overrides);
        assert_eq!(of("db.port").origin, Origin::Base);
        assert_eq!(of("name").origin, Origin::Base);
        assert_eq!(why.len(), 4);
    }

    #[test]
    fn the_overlay_for_a_full_value_holds_only_what_differs() {
        let base = obj(json!({"db": {"host": "db", "port": 5432}, "name": "x"}));
        let full = obj(json!({"db": {"host": "prod-db", "port": 5432}, "name": "x", "new": 1}));
        let overlay = overlay_for(&base, &full);
        assert_eq!(
            Value::Object(overlay.clone()),
            json!({"db": {"host": "prod-db"}, "new": 1})
        );
        assert_eq!(resolve(&base, &overlay), full);
    }
}
