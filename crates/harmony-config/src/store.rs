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

/// One stored document with its version, if any.
type Stored = Option<Versioned<Partial>>;

/// A config source and sink backed by a [`SecretStore`].
///
/// **Environments**: with one ([`StoreSource::with_environment`], by default the
/// `HARMONY_ENV` variable), a config is read as its environment's overlay merged over the base
/// (both read concurrently, [`crate::layers`]) and saved to the overlay, never to the base.
pub struct StoreSource<S> {
    store: S,
    /// The environment whose overlay is read over the base and written (`None`: the base).
    environment: Option<String>,
    /// Keys whose stored schema this process has already checked or written.
    schemas_known: Mutex<HashSet<String>>,
    /// Where reads keep a copy and an unavailable store is stood in for (opt-in).
    offline: Option<CacheScope>,
}

impl<S: SecretStore> fmt::Debug for StoreSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSource")
            .field("at", &self.store.describe(""))
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl<S: SecretStore> StoreSource<S> {
    /// Wrap a store, in the environment `HARMONY_ENV` names (unset or empty: the base alone).
    pub fn new(store: S) -> Self {
        let environment = std::env::var(harmony_env::vars::HARMONY_ENV)
            .ok()
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty());
        Self {
            store,
            environment,
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

    /// Work in `environment` (its overlay over the base), or on the base alone with `None`,
    /// whatever `HARMONY_ENV` says. The name is checked at the first read or write.
    pub fn with_environment(mut self, environment: Option<&str>) -> Self {
        self.environment = environment.map(str::to_owned);
        self
    }

    /// The environment this source reads and writes (`None`: the base).
    pub fn environment(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The path of `key`'s write target: the environment's overlay, or the base.
    fn target(&self, key: &str) -> Result<String, ConfigError> {
        if let Some(env) = &self.environment {
            crate::layers::validate_environment(env)?;
        }
        Ok(crate::layers::layer_path(key, self.environment.as_deref()))
    }

    /// The base and (in an environment) the overlay of `key`, read concurrently.
    async fn layers(&self, key: &str) -> Result<(Stored, Stored), ConfigError> {
        let target = self.target(key)?;
        if self.environment.is_none() {
            return Ok((self.read_or_copy(key).await?, None));
        }
        let (base, overlay) = tokio::join!(self.read_or_copy(key), self.read_or_copy(&target));
        Ok((base?, overlay?))
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
        Box::pin(async move {
            let (base, overlay) = self.layers(schema.key()).await?;
            Ok(match (base, overlay) {
                (None, None) => None,
                (base, overlay) => Some(crate::layers::resolve(
                    &base.map(|d| d.value).unwrap_or_default(),
                    &overlay.map(|d| d.value).unwrap_or_default(),
                )),
            })
        })
    }

    fn hint(&self, schema: &ConfigSchema, _field: &Field) -> Option<String> {
        Some(format!(
            "store it at {}",
            self.store.describe(
                &self
                    .target(schema.key())
                    .unwrap_or_else(|_| schema.key().to_owned())
            )
        ))
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
        Box::pin(async move { self.read_or_copy(&self.target(key)?).await })
    }

    fn read_layered<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<crate::source::Layered, ConfigError>> {
        Box::pin(async move {
            let (base, overlay) = self.layers(key).await?;
            if self.environment.is_none() {
                return Ok((
                    base.as_ref().map(|d| d.value.clone()).unwrap_or_default(),
                    base,
                ));
            }
            let layer = crate::layers::resolve(
                &base.map(|d| d.value).unwrap_or_default(),
                &overlay
                    .as_ref()
                    .map(|d| d.value.clone())
                    .unwrap_or_default(),
            );
            Ok((layer, overlay))
        })
    }

    fn base<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Partial>, ConfigError>> {
        Box::pin(async move {
            if self.environment.is_none() {
                return Ok(None);
            }
            Ok(Some(
                self.read_or_copy(key)
                    .await?
                    .map(|d| d.value)
                    .unwrap_or_default(),
            ))
        })
    }

    fn write<'a>(
        &'a self,
        key: &'a str,
        value: &'a Partial,
        mode: WriteMode,
    ) -> BoxFuture<'a, Result<u64, ConfigError>> {
        Box::pin(async move { self.write_doc(&self.target(key)?, value, mode).await })
    }

    fn save_schema<'a>(
        &'a self,
        key: &'a str,
        schema: &'a Value,
    ) -> BoxFuture<'a, Result<bool, ConfigError>> {
        Box::pin(self.store_schema(key, schema))
    }

    fn record_author<'a>(
        &'a self,
        key: &'a str,
        version: u64,
        message: &'a str,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let layer = match self.target(key) {
                Ok(layer) => layer,
                Err(e) => return Some(format!("no author record for version {version}: {e}")),
            };
            let what = match &self.environment {
                Some(env) => format!("the {env} overlay of {key}"),
                None => key.to_owned(),
            };
            crate::history::record_saved(&self.store, &layer, version, message)
                .await
                .warning(&what, version)
        })
    }

    fn describe(&self, key: &str) -> String {
        self.store
            .describe(&self.target(key).unwrap_or_else(|_| key.to_owned()))
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
