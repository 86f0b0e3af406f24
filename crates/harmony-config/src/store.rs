//! Configuration stored in a [`SecretStore`] (OpenBao KV v2 in production): the team's shared
//! copy.
//!
//! The document of config `KEY` lives at path `KEY` of the store, its JSON schema at
//! `_schema/KEY` ([`crate::SCHEMA_FOLDER`]). Reads hand back the version they saw and writes are
//! check-and-set against the version the caller passes, so a teammate's concurrent edit surfaces
//! as a conflict instead of being overwritten.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;

use harmony_secret::{SecretStore, Versioned, WriteMode};
use serde_json::Value;

use crate::source::{BoxFuture, ConfigSource, Partial, WritableSource};
use crate::{ConfigError, ConfigSchema, Field};

/// A config source and sink backed by a [`SecretStore`].
pub struct StoreSource<S> {
    store: S,
    /// Keys whose stored schema this process has already checked or written.
    schemas_known: Mutex<HashSet<String>>,
}

impl<S: SecretStore> fmt::Debug for StoreSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSource")
            .field("at", &self.store.describe(""))
            .finish_non_exhaustive()
    }
}

impl<S: SecretStore> StoreSource<S> {
    /// Wrap a store.
    pub fn new(store: S) -> Self {
        Self {
            store,
            schemas_known: Mutex::new(HashSet::new()),
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Read the document of `key` with its version.
    pub async fn read_versioned(
        &self,
        key: &str,
    ) -> Result<Option<Versioned<Partial>>, ConfigError> {
        let location = self.store.describe(key);
        let doc = self
            .store
            .get(key)
            .await
            .map_err(|source| ConfigError::Store {
                key: key.to_owned(),
                action: "reading",
                location: location.clone(),
                source: Box::new(source),
            })?;
        let Some(doc) = doc else {
            return Ok(None);
        };
        match doc.value {
            Value::Object(map) => Ok(Some(Versioned {
                value: map,
                version: doc.version,
            })),
            _ => Err(ConfigError::StoredNotObject {
                key: key.to_owned(),
                location,
            }),
        }
    }

    /// Write the whole document of `key`; returns the new version.
    pub async fn write_doc(
        &self,
        key: &str,
        value: &Partial,
        mode: WriteMode,
    ) -> Result<u64, ConfigError> {
        let doc = Value::Object(value.clone());
        let version =
            self.store
                .put(key, &doc, mode)
                .await
                .map_err(|source| ConfigError::Store {
                    key: key.to_owned(),
                    action: "writing",
                    location: self.store.describe(key),
                    source: Box::new(source),
                })?;
        Ok(version)
    }

    /// Store `schema` at `_schema/<key>` unless it is already there (checked once per process).
    pub async fn store_schema(&self, key: &str, schema: &Value) -> Result<bool, ConfigError> {
        if self.schema_known(key) {
            return Ok(false);
        }
        let path = format!("{}/{key}", crate::SCHEMA_FOLDER);
        let store_error = |action: &'static str, source| ConfigError::Store {
            key: key.to_owned(),
            action,
            location: self.store.describe(&path),
            source: Box::new(source),
        };
        let current = self
            .store
            .get(&path)
            .await
            .map_err(|e| store_error("reading the schema of", e))?;
        let wrote = match current {
            Some(doc) if &doc.value == schema => false,
            current => {
                let mode = WriteMode::Cas(current.map(|d| d.version));
                self.store
                    .put(&path, schema, mode)
                    .await
                    .map_err(|e| store_error("writing the schema of", e))?;
                true
            }
        };
        self.schemas_known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned());
        Ok(wrote)
    }

    fn schema_known(&self, key: &str) -> bool {
        // A poisoned lock only means another thread panicked mid-insert; the set is still usable.
        self.schemas_known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }
}

impl<S: SecretStore> ConfigSource for StoreSource<S> {
    fn name(&self) -> String {
        format!("store {}", self.store.describe(""))
    }

    fn load<'a>(
        &'a self,
        schema: &'a ConfigSchema,
    ) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>> {
        Box::pin(async move {
            Ok(self
                .read_versioned(schema.key())
                .await?
                .map(|doc| doc.value))
        })
    }

    fn hint(&self, schema: &ConfigSchema, _field: &Field) -> Option<String> {
        Some(format!("store it at {}", self.store.describe(schema.key())))
    }

    fn writable(&self) -> Option<&dyn WritableSource> {
        Some(self)
    }
}

impl<S: SecretStore> WritableSource for StoreSource<S> {
    fn read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned<Partial>>, ConfigError>> {
        Box::pin(self.read_versioned(key))
    }

    fn write<'a>(
        &'a self,
        key: &'a str,
        value: &'a Partial,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<u64, ConfigError>> {
        Box::pin(self.write_doc(key, value, mode))
    }

    fn save_schema<'a>(
        &'a self,
        key: &'a str,
        schema: &'a Value,
    ) -> BoxFuture<'a, Result<bool, ConfigError>> {
        Box::pin(self.store_schema(key, schema))
    }

    fn describe(&self, key: &str) -> String {
        self.store.describe(key)
    }
}
