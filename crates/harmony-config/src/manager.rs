//! [`ConfigManager`]: merges the sources, prompts for what is missing, saves it back.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use harmony_env::vars::HARMONY_NON_INTERACTIVE;
use harmony_secret::{SecretError, WriteMode};
use serde_json::{Map, Value};

use crate::error::{MissingField, MissingFields};
use crate::merge::{merge_layers, merge_under};
use crate::prompt::{PromptSource, Prompter};
use crate::schema::enum_list;
use crate::source::{ConfigSource, Partial, WritableSource};
use crate::{Config, ConfigError, ConfigSchema, Field, FieldKind, validate_key};

/// Builds a [`ConfigManager`]; sources are added highest priority first.
#[must_use]
#[derive(Default)]
pub struct ConfigManagerBuilder {
    sources: Vec<Box<dyn ConfigSource>>,
    prompt: Option<PromptSource>,
    interactive: Option<bool>,
}

impl fmt::Debug for ConfigManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigManagerBuilder")
            .field("sources", &source_names(&self.sources))
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

/// Sources by name only: a source may hold values (secrets among them).
fn source_names(sources: &[Box<dyn ConfigSource>]) -> Vec<String> {
    sources.iter().map(|s| s.name()).collect()
}

impl ConfigManagerBuilder {
    /// Add a source below every source added before it.
    pub fn source(mut self, source: impl ConfigSource + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// How missing fields are asked for (default: [`crate::InquirePrompter`] on the terminal).
    pub fn prompter(mut self, prompter: impl Prompter) -> Self {
        self.prompt = Some(PromptSource::new(prompter));
        self
    }

    /// Whether [`ConfigManager::get`] may prompt. Default: stdin is a terminal and
    /// `HARMONY_NON_INTERACTIVE` is not set to a true value.
    pub fn interactive(mut self, interactive: bool) -> Self {
        self.interactive = Some(interactive);
        self
    }

    /// The manager.
    pub fn build(self) -> ConfigManager {
        let interactive = self.interactive.unwrap_or_else(detect_interactive);
        ConfigManager {
            sources: self.sources,
            prompt: self.prompt.unwrap_or_default(),
            interactive,
            schemas: Mutex::new(HashMap::new()),
        }
    }
}

fn detect_interactive() -> bool {
    let forbidden = std::env::var(HARMONY_NON_INTERACTIVE)
        // The same values harmony-secret's SSO login accepts, so one setting governs both.
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false);
    !forbidden && std::io::stdin().is_terminal()
}

/// Typed configuration from ordered sources, with prompting and write-back.
///
/// Precedence, highest first, is the order the sources were added (typically environment, then
/// the store), then values prompted for, then schema defaults. Prompted values are saved to the
/// first writable source **together with what that source already held, but without
/// higher-priority (environment) values**: a temporary override never leaks into the shared
/// store. Schema defaults are not saved either, so a later change of a default reaches everyone.
pub struct ConfigManager {
    sources: Vec<Box<dyn ConfigSource>>,
    prompt: PromptSource,
    interactive: bool,
    schemas: Mutex<HashMap<TypeId, Arc<ConfigSchema>>>,
}

impl fmt::Debug for ConfigManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigManager")
            .field("sources", &source_names(&self.sources))
            .field("interactive", &self.interactive)
            .finish_non_exhaustive()
    }
}

/// A config value together with the version of the stored document it was based on.
#[derive(Clone, PartialEq)]
pub struct Snapshot<T> {
    /// The config (sources merged, defaults filled).
    pub value: T,
    /// The stored document's version (`None`: nothing was stored).
    pub version: Option<u64>,
}

impl<T> Snapshot<T> {
    /// A value to create: saving it with [`ConfigManager::set`] requires that nothing is stored.
    pub fn new(value: T) -> Self {
        Self {
            value,
            version: None,
        }
    }
}

/// Only the version: the value may hold secrets.
impl<T> fmt::Debug for Snapshot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// What the sources returned for one config.
struct Loaded {
    /// One partial per source, in priority order (empty when a source had nothing).
    layers: Vec<Partial>,
    /// The writable source's own document (what a write-back starts from).
    stored: Partial,
    /// The version it was read at (`None`: absent).
    stored_version: Option<u64>,
}

impl ConfigManager {
    /// Start building.
    pub fn builder() -> ConfigManagerBuilder {
        ConfigManagerBuilder::default()
    }

    /// Whether [`ConfigManager::get`] prompts for missing fields.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// The config: merged sources, then (when interactive) prompts for missing fields, which are
    /// saved back with check-and-set. Off a terminal, missing fields are one
    /// [`ConfigError::Missing`] listing each with the variable and store path that would supply it.
    pub async fn get<T: Config>(&self) -> Result<T, ConfigError> {
        self.resolve::<T>(self.interactive).await
    }

    /// Like [`ConfigManager::get`], but prompts for missing fields even when no terminal was
    /// detected: for callers that know they have one.
    pub async fn get_or_prompt<T: Config>(&self) -> Result<T, ConfigError> {
        self.resolve::<T>(true).await
    }

    /// Like [`ConfigManager::get`], together with the version of the stored document the value
    /// is based on: hand it back to [`ConfigManager::set`] to save a change with check-and-set
    /// against exactly what *this caller* read.
    pub async fn get_versioned<T: Config>(&self) -> Result<Snapshot<T>, ConfigError> {
        self.resolve_versioned::<T>(self.interactive).await
    }

    /// Save `snapshot.value` with check-and-set against `snapshot.version` (the version the caller
    /// read; `None`: nothing may be stored yet). A concurrent save by anyone, in this process or
    /// another, is a [`SecretError::Conflict`] inside [`ConfigError::Store`]: re-read and retry.
    ///
    /// Fields of the stored document that `T` does not declare (written by a newer version of the
    /// application) are kept. The value is saved as given: values that came from the environment
    /// are saved too. Returns the new version.
    pub async fn set<T: Config>(&self, snapshot: &Snapshot<T>) -> Result<u64, ConfigError> {
        self.set_with_mode(&snapshot.value, WriteMode::Cas(snapshot.version))
            .await
    }

    /// Save with an explicit write mode ([`WriteMode::Overwrite`] to discard concurrent edits).
    /// Undeclared fields of the stored document are kept, as with [`ConfigManager::set`].
    pub async fn set_with_mode<T: Config>(
        &self,
        value: &T,
        mode: WriteMode,
    ) -> Result<u64, ConfigError> {
        let schema = self.schema::<T>()?;
        let writable = self.writable_for(T::KEY)?;
        let mut doc = match serde_json::to_value(value) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ConfigError::UnsupportedSchema {
                    key: T::KEY.to_owned(),
                    reason: "the value does not serialise to a JSON object".into(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Serialize {
                    key: T::KEY.to_owned(),
                    source,
                });
            }
        };
        // Start from the stored document so a newer app's fields survive. Under check-and-set
        // a stored version other than the expected one is already the conflict the write would
        // meet; say so without writing.
        let stored = writable.read(T::KEY).await?;
        if let WriteMode::Cas(expected) = mode {
            let actual = stored.as_ref().map(|d| d.version);
            if actual != expected {
                return Err(ConfigError::Store {
                    key: T::KEY.to_owned(),
                    action: "writing",
                    location: writable.describe(T::KEY),
                    source: Box::new(SecretError::Conflict {
                        path: writable.describe(T::KEY),
                        expected,
                        actual,
                    }),
                });
            }
        }
        // In an environment only what differs from the base goes into the overlay.
        if let Some(base) = writable.base(T::KEY).await? {
            doc = crate::layers::overlay_for(&base, &doc);
        }
        if let Some(stored) = &stored {
            schema.keep_undeclared(&stored.value, &mut doc);
        }
        let version = writable.write(T::KEY, &doc, mode).await?;
        tracing::info!(config = T::KEY, at = %writable.describe(T::KEY), version, "config saved");
        record_author(writable, T::KEY, version, crate::history::SET_MESSAGE).await;
        self.save_schema(writable, &schema).await;
        Ok(version)
    }

    /// Keep the schema beside the document for tools without the Rust type (the `harmony` CLI).
    /// The document is what matters: failing to store its schema is a warning, not an error.
    async fn save_schema(&self, writable: &dyn WritableSource, schema: &ConfigSchema) {
        match writable.save_schema(schema.key(), schema.json()).await {
            Ok(true) => tracing::debug!(config = schema.key(), "stored the config's schema"),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                config = schema.key(),
                error = %e,
                "the config was saved but its schema was not; the harmony CLI will treat it as untyped"
            ),
        }
    }

    fn writable(&self) -> Option<&dyn WritableSource> {
        self.sources.iter().find_map(|s| s.writable())
    }

    fn writable_for(&self, key: &str) -> Result<&dyn WritableSource, ConfigError> {
        self.writable()
            .ok_or_else(|| ConfigError::NoWritableSource {
                key: key.to_owned(),
            })
    }

    fn schema<T: Config>(&self) -> Result<Arc<ConfigSchema>, ConfigError> {
        validate_key(T::KEY)?;
        let id = TypeId::of::<T>();
        let mut cache = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(schema) = cache.get(&id) {
            return Ok(Arc::clone(schema));
        }
        let schema = Arc::new(ConfigSchema::of::<T>(T::KEY)?);
        cache.insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    async fn load_all(&self, schema: &ConfigSchema) -> Result<Loaded, ConfigError> {
        let key = schema.key();
        // The first writable source is read with its version: it is the write-back target.
        let target = self.sources.iter().position(|s| s.writable().is_some());
        let mut loaded = Loaded {
            layers: Vec::with_capacity(self.sources.len()),
            stored: Map::new(),
            stored_version: None,
        };
        for (index, source) in self.sources.iter().enumerate() {
            let writable = source.writable().filter(|_| Some(index) == target);
            let layer = if let Some(w) = writable {
                let (layer, doc) = w.read_layered(key).await?;
                loaded.stored_version = doc.as_ref().map(|d| d.version);
                loaded.stored = doc.map(|d| d.value).unwrap_or_default();
                layer
            } else {
                source.load(schema).await?.unwrap_or_default()
            };
            if !layer.is_empty() {
                tracing::debug!(
                    config = key,
                    source = %source.name(),
                    fields = ?layer.keys().collect::<Vec<_>>(),
                    "source supplied fields"
                );
            }
            loaded.layers.push(layer);
        }
        Ok(loaded)
    }

    async fn resolve<T: Config>(&self, prompt: bool) -> Result<T, ConfigError> {
        Ok(self.resolve_versioned::<T>(prompt).await?.value)
    }

    async fn resolve_versioned<T: Config>(&self, prompt: bool) -> Result<Snapshot<T>, ConfigError> {
        let schema = self.schema::<T>()?;
        let key = schema.key();
        let mut loaded = self.load_all(&schema).await?;
        let mut merged = merge_layers(loaded.layers.iter());
        schema.fill_defaults(&mut merged);
        let missing: Vec<Field> = schema.missing(&merged).into_iter().cloned().collect();
        if missing.is_empty() {
            return Ok(Snapshot {
                value: finish::<T>(&schema, merged)?,
                version: loaded.stored_version,
            });
        }
        if !prompt {
            return Err(self.missing_error(&schema, &missing));
        }

        let answers = self.prompt.prompt(key, &missing).await?;
        let Some(writable) = self.writable() else {
            tracing::warn!(
                config = key,
                "no writable source: the values just entered are not saved and will be asked again"
            );
            let mut full = merge_layers(loaded.layers.iter().chain([&answers]));
            schema.fill_defaults(&mut full);
            return Ok(Snapshot {
                value: self.complete::<T>(&schema, full)?,
                version: None,
            });
        };

        // One retry on conflict: a teammate saving at the same moment is expected; twice in a
        // row means something is looping, and the error says so.
        let mut retried = false;
        loop {
            // Prompted values rank lowest: if a teammate saved a field meanwhile, theirs stays.
            let mut full = merge_layers(loaded.layers.iter().chain([&answers]));
            schema.fill_defaults(&mut full);
            let value = self.complete::<T>(&schema, full)?;

            let mut doc = loaded.stored.clone();
            merge_under(&mut doc, &answers);
            let mode = WriteMode::Cas(loaded.stored_version);
            match writable.write(key, &doc, mode).await {
                Ok(version) => {
                    tracing::info!(
                        config = key,
                        at = %writable.describe(key),
                        version,
                        fields = ?missing.iter().map(Field::dotted).collect::<Vec<_>>(),
                        "saved the prompted fields"
                    );
                    let message = format!(
                        "entered {} when asked",
                        missing
                            .iter()
                            .map(Field::dotted)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    record_author(writable, key, version, &message).await;
                    self.save_schema(writable, &schema).await;
                    return Ok(Snapshot {
                        value,
                        version: Some(version),
                    });
                }
                Err(ConfigError::Store { source, .. })
                    if !retried && matches!(*source, SecretError::Conflict { .. }) =>
                {
                    tracing::warn!(
                        config = key,
                        at = %writable.describe(key),
                        "the stored config changed while prompting; re-reading and merging once"
                    );
                    retried = true;
                    loaded = self.load_all(&schema).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Missing check, schema check, deserialise.
    fn complete<T: Config>(&self, schema: &ConfigSchema, full: Partial) -> Result<T, ConfigError> {
        let missing: Vec<Field> = schema.missing(&full).into_iter().cloned().collect();
        if !missing.is_empty() {
            return Err(self.missing_error(schema, &missing));
        }
        finish::<T>(schema, full)
    }

    fn missing_error(&self, schema: &ConfigSchema, missing: &[Field]) -> ConfigError {
        let fields = missing
            .iter()
            .map(|field| MissingField {
                path: field.dotted(),
                type_name: match &field.kind {
                    FieldKind::Enum(values) => format!("one of: {}", enum_list(values)),
                    kind => kind.name().to_owned(),
                },
                secret: field.secret,
                hints: self
                    .sources
                    .iter()
                    .filter_map(|s| s.hint(schema, field))
                    .collect(),
            })
            .collect();
        ConfigError::Missing(MissingFields {
            key: schema.key().to_owned(),
            fields,
            saved_to: self.writable().map(|w| w.describe(schema.key())),
        })
    }
}

/// Record the author of a version just saved; a failure is a warning naming the version (the
/// value is saved).
async fn record_author(writable: &dyn WritableSource, key: &str, version: u64, message: &str) {
    if let Some(warning) = writable.record_author(key, version, message).await {
        tracing::warn!(config = key, version, "{warning}");
    }
}

fn finish<T: Config>(schema: &ConfigSchema, merged: Partial) -> Result<T, ConfigError> {
    let problems = schema.problems(&merged);
    if !problems.is_empty() {
        return Err(ConfigError::Invalid {
            key: schema.key().to_owned(),
            problems,
        });
    }
    let secrets = schema.secret_strings(&merged);
    serde_path_to_error::deserialize(Value::Object(merged)).map_err(|e| {
        let path = e.path().to_string();
        let mut message = e.into_inner().to_string();
        for secret in &secrets {
            message = message.replace(secret.as_str(), "[redacted]");
        }
        ConfigError::Deserialize {
            key: schema.key().to_owned(),
            path,
            message,
        }
    })
}
