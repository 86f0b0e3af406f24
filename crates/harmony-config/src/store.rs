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

use harmony_secret::offline::{CacheScope, OfflineCache};
use harmony_secret::{OpenbaoSettings, SecretError, SecretStore, Versioned, WriteMode};
use serde_json::Value;

use crate::source::{BoxFuture, ConfigSource, Partial, WritableSource};
use crate::{ConfigError, ConfigSchema, Field};

/// A config source and sink backed by a [`SecretStore`].
pub struct StoreSource<S> {
    store: S,
    /// Keys whose stored schema this process has already checked or written.
    schemas_known: Mutex<HashSet<String>>,
    /// Where reads keep a copy and an unavailable store is stood in for (opt-in).
    offline: Option<CacheScope>,
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
            offline: None,
        }
    }

    /// Opt in to the offline fallback: every document read keeps a copy in `cache` (the one
    /// `harmony run`/`get`/`export` keep, keyed by the store's location of the document), and
    /// while the store is unreachable or sealed, [`ConfigSource::load`] serves that copy with a
    /// warning in the log. Writes never fall back: a save needs the store.
    ///
    /// For OpenBao: `StoreSource::new(store).with_offline_cache(store.offline_scope(&cache))`.
    pub fn with_offline_cache(mut self, cache: CacheScope) -> Self {
        self.offline = Some(cache);
        self
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

    /// [`Self::read_versioned`], keeping a copy when [`Self::with_offline_cache`] asked for
    /// it, and serving that copy (its version too: a later check-and-set against it fails
    /// cleanly if the store moved on) when the store is unavailable.
    async fn read_or_copy(&self, key: &str) -> Result<Option<Versioned<Partial>>, ConfigError> {
        let Some(offline) = &self.offline else {
            return self.read_versioned(key).await;
        };
        let location = self.store.describe(key);
        match self.read_versioned(key).await {
            Ok(doc) => {
                if let Some(doc) = &doc {
                    let value = Value::Object(doc.value.clone());
                    if let Err(e) = offline.save(&location, doc.version, &value).await {
                        tracing::warn!(key, error = %e, "could not keep an offline copy");
                    }
                }
                Ok(doc)
            }
            Err(ConfigError::Store { source, .. }) if source.is_unavailable() => {
                serve_copy(offline, key, &location, *source).await
            }
            Err(other) => Err(other),
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
        Box::pin(async move { Ok(self.read_or_copy(schema.key()).await?.map(|doc| doc.value)) })
    }

    fn hint(&self, schema: &ConfigSchema, _field: &Field) -> Option<String> {
        Some(format!("store it at {}", self.store.describe(schema.key())))
    }

    fn writable(&self) -> Option<&dyn WritableSource> {
        Some(self)
    }
}

/// The copy of `key`, standing in for a store that did not answer (`error`), or that error.
pub(crate) async fn serve_copy(
    offline: &CacheScope,
    key: &str,
    location: &str,
    error: SecretError,
) -> Result<Option<Versioned<Partial>>, ConfigError> {
    let unavailable = |source: SecretError| ConfigError::Store {
        key: key.to_owned(),
        action: "reading",
        location: location.to_owned(),
        source: Box::new(source),
    };
    let copy = match offline.load(location).await {
        Ok(Some(copy)) => copy,
        Ok(None) => return Err(unavailable(error)),
        Err(cache_error) => {
            tracing::warn!(key, error = %cache_error, "the offline copy cannot stand in");
            return Err(unavailable(error));
        }
    };
    let (version, age) = (copy.version, copy.age());
    let Value::Object(map) = copy.value else {
        return Err(ConfigError::StoredNotObject {
            key: key.to_owned(),
            location: location.to_owned(),
        });
    };
    tracing::warn!(
        key,
        version,
        age_secs = age.as_secs(),
        reason = %error,
        "the store did not answer; using the offline copy"
    );
    Ok(Some(Versioned {
        value: map,
        version,
    }))
}

impl<S: SecretStore> WritableSource for StoreSource<S> {
    fn read<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Versioned<Partial>>, ConfigError>> {
        Box::pin(self.read_or_copy(key))
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

/// A read-only source of offline copies alone: for an application that could not even sign in
/// (OpenBao unreachable at start) but should still start from the last copies
/// [`StoreSource::with_offline_cache`] or `harmony run`/`get` kept. Off by default: add it
/// yourself, after any online source.
pub struct OfflineSource {
    scope: CacheScope,
    locate: Box<dyn Fn(&str) -> String + Send + Sync>,
    reason: String,
}

impl fmt::Debug for OfflineSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineSource")
            .field("server", &self.scope.server())
            .finish_non_exhaustive()
    }
}

impl OfflineSource {
    /// The copies of the documents `settings` points at (server, namespace, mount and prefix).
    /// `reason` says why the store itself is not used (it goes into the log's warning).
    pub fn for_openbao(
        settings: &OpenbaoSettings,
        cache: &OfflineCache,
        reason: impl Into<String>,
    ) -> Self {
        let located = settings.clone();
        Self {
            scope: settings.offline_scope(cache),
            locate: Box::new(move |key| located.data_path(key)),
            reason: reason.into(),
        }
    }
}

impl ConfigSource for OfflineSource {
    fn name(&self) -> String {
        format!("offline copies of {}", self.scope.server())
    }

    fn load<'a>(
        &'a self,
        schema: &'a ConfigSchema,
    ) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>> {
        Box::pin(async move {
            let key = schema.key();
            let location = (self.locate)(key);
            let unavailable = SecretError::Unreachable {
                url: self.scope.server().to_owned(),
                reason: self.reason.clone(),
                source: None,
            };
            match serve_copy(&self.scope, key, &location, unavailable).await {
                Ok(copy) => Ok(copy.map(|c| c.value)),
                // No copy is "nothing here", as for any source: the manager then asks the next
                // source or names the missing fields.
                Err(ConfigError::Store { .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })
    }
}
