//! Typed, layered configuration for Harmony applications.
//!
//! An application declares a `serde` + `schemars` struct, gives it a stable [`Config::KEY`], and
//! asks a [`ConfigManager`] for it. The manager asks its sources in priority order — typically
//! [`EnvSource`] (`HARMONY_<KEY>_<FIELD>` variables) then [`StoreSource`] (the team's shared copy
//! in OpenBao) — and merges their partial objects **field by field** (nested objects deeply;
//! arrays and scalars whole). Schema defaults fill the rest; the result is checked against the
//! schema and deserialised.
//!
//! Main design choice: **the JSON schema drives everything.** Environment values are parsed by
//! their field's schema type, missing fields are found by walking the schema, prompts are built
//! from it (description as help, default as default, `x-secret`/`writeOnly` fields masked), so
//! adding a field to the struct is all an application does.
//!
//! When fields are missing: on a terminal, [`PromptSource`] asks for them and the whole value is
//! saved back to the store with check-and-set (a concurrent save is re-read and merged once, so a
//! teammate's data is never overwritten); off a terminal, one [`ConfigError::Missing`] lists each
//! missing field with the variable and store path that would supply it.
//!
//! ```no_run
//! use harmony_config::{Config, ConfigManager, EnvSource, StoreSource};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct Database {
//!     /// Host name of the PostgreSQL server.
//!     #[serde(default = "default_host")]
//!     host: String,
//!     port: u16,
//!     /// Password of the application's database user.
//!     #[schemars(extend("x-secret" = true))]
//!     password: String,
//! }
//! fn default_host() -> String { "localhost".into() }
//!
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! struct DemoApp { database: Database }
//!
//! impl Config for DemoApp { const KEY: &'static str = "demo-app"; }
//!
//! # async fn demo(store: impl harmony_secret::SecretStore + 'static) -> Result<(), harmony_config::ConfigError> {
//! let manager = ConfigManager::builder()
//!     .source(EnvSource::new())
//!     .source(StoreSource::new(store))
//!     .build();
//! let config: DemoApp = manager.get().await?;
//! # Ok(()) }
//! ```

pub mod document;
mod env;
mod error;
pub mod history;
pub mod layers;
mod manager;
mod merge;
pub mod patch;
pub mod project;
mod prompt;
mod schema;
mod source;
mod store;

pub use env::{EnvSource, insert_at, parse_value};
pub use error::{ConfigError, MissingField, MissingFields, Problem, PromptError};
pub use manager::{ConfigManager, ConfigManagerBuilder, Snapshot};
pub use merge::{merge_layers, merge_under};
pub use prompt::{InquirePrompter, PromptSource, Prompter, Question, ScriptedPrompter};
pub use schema::{
    ConfigSchema, Field, FieldKind, MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, MAX_SCHEMA_FIELDS,
};
pub use source::{BoxFuture, ConfigSource, Layered, Partial, WritableSource};
pub use store::{OfflineSource, StoreSource};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A configuration type.
///
/// Mark secret fields in the schema with `#[schemars(extend("x-secret" = true))]` (or
/// `writeOnly: true`): they are prompted for masked and never appear in errors or logs.
pub trait Config: Serialize + DeserializeOwned + JsonSchema + Send + 'static {
    /// Stable name: the store path and the `<KEY>` of the environment variables. Lowercase
    /// letters, digits, `-` and `_`, starting with a letter or digit. Changing it orphans the
    /// stored copy.
    const KEY: &'static str;
}

/// The folder of the store, beside the documents, where [`ConfigManager`] keeps each config's JSON
/// schema: config `KEY`'s schema is the document `_schema/KEY` (e.g.
/// `secret/data/harmony/_schema/my-app`). Tools that lack the Rust type (the `harmony` CLI) read
/// it to type values, validate edits and mask `x-secret` fields. No [`Config::KEY`] can collide
/// with it: keys start with a letter or digit.
pub const SCHEMA_FOLDER: &str = "_schema";

/// Longest accepted key (it becomes a path segment and part of variable names).
const MAX_KEY_LEN: usize = 64;

/// Check that `key` is a valid [`Config::KEY`].
pub fn validate_key(key: &str) -> Result<(), ConfigError> {
    let reason = if key.is_empty() {
        Some("it is empty")
    } else if key.len() > MAX_KEY_LEN {
        Some("it is longer than 64 characters")
    } else if !key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("it contains a character other than a-z, 0-9, '-' and '_'")
    } else if !key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Some("it does not start with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidKey {
            key: key.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        for ok in ["demo-app", "a", "app_2", "9lives"] {
            assert!(validate_key(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Demo", "other than"),
            ("demo app", "other than"),
            ("demo/app", "other than"),
            ("-demo", "start"),
            ("_demo", "start"),
        ] {
            let err = validate_key(bad).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("lowercase letters"), "{err}");
        }
        assert!(validate_key(&"a".repeat(65)).is_err());
    }
}
