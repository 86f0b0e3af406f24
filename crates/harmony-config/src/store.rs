//! Configuration stored in a [`SecretStore`] (OpenBao KV v2 in production): the team's shared
//! copy.
//!
//! The document of config `KEY` lives at path `KEY` of the store. Every read remembers the
//! version it saw, so the next write is a check-and-set against exactly what this process based
//! its change on; a teammate's concurrent edit then surfaces as a conflict instead of being
//! overwritten.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use harmony_secret::{SecretStore, Versioned, WriteMode};
use serde_json::Value;

use crate::source::{BoxFuture, ConfigSource, Partial, WritableSource};
use crate::{ConfigError, ConfigSchema, Field};

/// A config source and sink backed by a [`SecretStore`].
pub struct StoreSource<S> {
    store: S,
    /// Last version seen per key (`None`: read and absent).
    versions: Mutex<HashMap<String, Option<u64>>>,
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
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// The wrapped store.
    pub fn store(&self) -> &S {
        &self.store
    }

    fn remember(&self, key: &str, version: Option<u64>) {
        // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.insert(key.to_owned(), version);
    }

    /// Read the document of `key` and remember its version.
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
            self.remember(key, None);
            return Ok(None);
        };
        self.remember(key, Some(doc.version));
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

    /// Write the whole document of `key`; remembers and returns the new version.
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
        self.remember(key, Some(version));
        Ok(version)
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

    fn last_version(&self, key: &str) -> Option<Option<u64>> {
        let versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(key).copied()
    }

    fn describe(&self, key: &str) -> String {
        self.store.describe(key)
    }
}
