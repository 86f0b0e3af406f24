//! The source abstraction: anything that can supply part of a config.
//!
//! Sources are object-safe (boxed futures) so one manager can hold an ordered list of different
//! kinds. A source returns a *partial* object; the manager merges them. A source that can also
//! save (the shared store) exposes itself through [`ConfigSource::writable`].

use std::future::Future;
use std::pin::Pin;

use harmony_secret::{Versioned, WriteMode};
use serde_json::{Map, Value};

use crate::{ConfigError, ConfigSchema, Field};

/// A boxed, sendable future (what the object-safe source traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A partial config object.
pub type Partial = Map<String, Value>;

/// What [`WritableSource::read_layered`] returns: the layer, and the stored document a
/// write-back starts from (with its version).
pub type Layered = (Partial, Option<Versioned<Partial>>);

/// Supplies part of a config.
pub trait ConfigSource: Send + Sync {
    /// A short name for logs, e.g. "environment" or "store secret/data/harmony".
    fn name(&self) -> String;

    /// The fields this source has for `schema` (whose key is `schema.key()`), or `None` when it
    /// has nothing at all.
    fn load<'a>(
        &'a self,
        schema: &'a ConfigSchema,
    ) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>>;

    /// How a person could supply `field` through this source, for the missing-fields error
    /// (e.g. "set HARMONY_DEMO_APP_DATABASE_PORT"). `None` when it cannot.
    fn hint(&self, schema: &ConfigSchema, field: &Field) -> Option<String> {
        let _ = (schema, field);
        None
    }

    /// This source as a writable one, if it can save.
    fn writable(&self) -> Option<&dyn WritableSource> {
        None
    }
}

/// A source that can also save whole configs with check-and-set.
///
/// Versions are never remembered here: each caller passes the version *it* read, so two tasks
/// sharing one source cannot overwrite each other's saves.
pub trait WritableSource: Send + Sync {
    /// Read the stored document of `key` with its version.
    fn read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned<Partial>>, ConfigError>>;

    /// What this source contributes for `key` as a layer, and the document a write-back starts
    /// from (with its version). The same document for a plain store; for a store in an
    /// environment, the layer is the overlay merged over the base and the document the overlay
    /// alone (writes go there).
    fn read_layered<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Layered, ConfigError>> {
        Box::pin(async move {
            let doc = self.read(key).await?;
            Ok((
                doc.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
                doc,
            ))
        })
    }

    /// The layer under what [`WritableSource::write`] writes (an environment's base), if any:
    /// a whole value saved through this source keeps only what differs from it.
    fn base<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>> {
        let _ = key;
        Box::pin(async { Ok(None) })
    }

    /// Save the whole document of `key`; returns the new version.
    fn write<'a>(
        &'a self,
        key: &'a str,
        value: &'a Partial,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<u64, ConfigError>>;

    /// Store the JSON schema of `key` beside its document (see [`crate::SCHEMA_FOLDER`]) when
    /// the stored one differs. Returns whether it wrote. A source that cannot keep schemas
    /// returns `Ok(false)`.
    fn save_schema<'a>(
        &'a self,
        key: &'a str,
        schema: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<bool, ConfigError>> {
        let _ = (key, schema);
        Box::pin(async { Ok(false) })
    }

    /// Record who saved `version` of `key` and why (the author record of
    /// [`crate::history`]), after the save. Never fails the save: returns what to warn about
    /// (naming the version) when the record could not be written. A source without authors
    /// returns `None`.
    fn record_author<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        message: &'a str,
    ) -> BoxFuture<'a, Option<String>> {
        let _ = (key, version, message);
        Box::pin(async { None })
    }

    /// Where `key` is stored, for messages (e.g. `secret/data/harmony/demo-app`).
    fn describe(&self, key: &str) -> String;
}
