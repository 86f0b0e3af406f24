//! Reading documents the way `run`, `export` and `config get` do: online (then the copy is kept in
//! the offline cache, [`harmony_secret::offline`]), or from that cache when OpenBao is
//! unreachable or sealed (one warning with the copy's age and version), or only from the cache
//! with `--offline` (one line naming the copy's version and age).
//!
//! The schema's copy is saved before the document's, and a document without a schema keeps a
//! `null` copy saying so. A schema copy that is missing or unusable fails closed: every value is
//! masked (as if every field were `x-secret`) unless `--reveal`, and stderr says why.

use std::time::Duration;

use anyhow::Context as _;
use harmony_secret::offline::{CacheScope, CachedDocument, OfflineCache, Saved};
use harmony_secret::{OpenbaoSettings, SecretError, SecretStore as _, Versioned};
use serde_json::Value;

use crate::cli::CacheArgs;
use crate::commands::config::{Team, check_key};
use crate::context::Context;
use harmony_config::document::Typing;

/// A document with the schema stored beside it. With `--env`, `doc` is the environment's
/// config (overlay over base) and its version the sum of both layers' versions (it grows
/// whenever either changes).
pub struct Read {
    pub key: String,
    pub doc: Versioned<Value>,
    pub typing: Typing,
    /// With `--env`: the layers it was resolved from.
    pub layers: Option<Layers>,
}

/// The two layers of one environment's config.
pub struct Layers {
    pub env: String,
    pub base: Versioned<Value>,
    /// Version 0: no overlay stored.
    pub overlay: Versioned<Value>,
}

impl Layers {
    /// The environment's config: the overlay over the base, field by field.
    pub fn resolved(&self) -> Versioned<Value> {
        let empty = serde_json::Map::new();
        let base = self.base.value.as_object().unwrap_or(&empty);
        let overlay = self.overlay.value.as_object().unwrap_or(&empty);
        Versioned {
            value: Value::Object(harmony_config::layers::resolve(base, overlay)),
            version: self.base.version + self.overlay.version,
        }
    }

    /// Per field, the layer it came from.
    pub fn explain(&self) -> Vec<harmony_config::layers::FieldOrigin> {
        let empty = serde_json::Map::new();
        harmony_config::layers::explain(
            self.base.value.as_object().unwrap_or(&empty),
            self.overlay.value.as_object().unwrap_or(&empty),
            &self.env,
        )
    }

    /// `base version 3, prod overlay version 2` for stderr.
    pub fn versions_text(&self) -> String {
        let overlay = match self.overlay.version {
            0 => format!("no {} overlay", self.env),
            v => format!("{} overlay version {v}", self.env),
        };
        let base = match self.base.version {
            0 => "no base".to_owned(),
            v => format!("base version {v}"),
        };
        format!("{base}, {overlay}")
    }
}

/// Where a key's document and schema live, and the cache to keep them in.
struct Places {
    settings: OpenbaoSettings,
    scope: Option<CacheScope>,
    env: Option<String>,
}

impl Places {
    fn document(&self, key: &str) -> String {
        self.settings.data_path(key)
    }

    fn overlay(&self, key: &str, env: &str) -> String {
        self.settings
            .data_path(&harmony_config::layers::layer_path(key, Some(env)))
    }

    fn schema(&self, key: &str) -> String {
        self.settings
            .data_path(&harmony_config::layers::schema_path(key))
    }
}

/// Read `keys` (each with its schema) as `cache` says.
pub async fn read_documents(
    ctx: &Context,
    keys: &[String],
    cache: &CacheArgs,
) -> anyhow::Result<Vec<Read>> {
    for key in keys {
        check_key(key)?;
    }
    let settings = ctx.target.settings().await?;
    let scope = if cache.no_cache {
        None
    } else {
        let cache_dir = OfflineCache::from_env()?;
        Some(cache_dir.scope(&ctx.base(), settings.namespace()))
    };
    let places = Places {
        settings,
        scope,
        env: ctx.env.clone(),
    };
    if cache.offline {
        let scope = places
            .scope
            .as_ref()
            .expect("--offline conflicts with --no-cache");
        let copies = cached(&places, scope, keys).await?;
        for (key, doc, _, _) in &copies {
            check_age(key, doc, cache.max_age, None)?;
        }
        eprintln!(
            "harmony: --offline: using the offline copy of {}",
            listed(&copies)
        );
        return copies
            .into_iter()
            .map(|(key, doc, schema, overlay)| into_read(&places, key, doc, schema, overlay))
            .collect();
    }
    let online = read_online(ctx, keys).await;
    let error = match online {
        Ok(reads) => {
            if let Some(scope) = &places.scope {
                keep_copies(&places, scope, &reads).await;
            }
            return reads
                .into_iter()
                .map(|(key, doc, schema, overlay)| {
                    let typing = typing(&key, schema.as_ref().map(|s| &s.value), &places)?;
                    Ok(with_layers(&places, key, doc, typing, overlay))
                })
                .collect();
        }
        Err(e) => e,
    };
    let Some(scope) = places.scope.as_ref().filter(|_| unavailable(&error)) else {
        return Err(error);
    };
    let copies = match cached(&places, scope, keys).await {
        Ok(copies) => copies,
        Err(cache_error) => {
            return Err(error.context(format!("OpenBao did not answer and {cache_error}")));
        }
    };
    for (key, doc, _, _) in &copies {
        if let Err(too_old) = check_age(key, doc, cache.max_age, Some(&error)) {
            return Err(error.context(format!("OpenBao did not answer and {too_old}")));
        }
    }
    eprintln!(
        "warning: {}; using the offline copy of {} (--max-age bounds its age, --no-cache refuses it)",
        short_reason(&error),
        listed(&copies)
    );
    copies
        .into_iter()
        .map(|(key, doc, schema, overlay)| into_read(&places, key, doc, schema, overlay))
        .collect()
}

/// `KEY (version N, read AGE ago), …`.
fn listed(copies: &[Copy]) -> String {
    copies
        .iter()
        .map(|(key, doc, _, _)| {
            format!(
                "{key} (version {}, read {} ago)",
                doc.version,
                human_age(doc.age())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key, base document, schema, and with `--env` the overlay (version 0: none stored).
type Online = (
    String,
    Versioned<Value>,
    Option<Versioned<Value>>,
    Option<Versioned<Value>>,
);

fn with_layers(
    places: &Places,
    key: String,
    base: Versioned<Value>,
    typing: Typing,
    overlay: Option<Versioned<Value>>,
) -> Read {
    match (&places.env, overlay) {
        (Some(env), Some(overlay)) => {
            let layers = Layers {
                env: env.clone(),
                base,
                overlay,
            };
            Read {
                key,
                doc: layers.resolved(),
                typing,
                layers: Some(layers),
            }
        }
        _ => Read {
            key,
            doc: base,
            typing,
            layers: None,
        },
    }
}

fn empty() -> Versioned<Value> {
    Versioned {
        value: Value::Object(serde_json::Map::new()),
        version: 0,
    }
}

/// How many configs are read at once (each is two or three requests).
const CONCURRENT_CONFIGS: usize = 16;

/// Every key's layers and schema, the keys at once (up to [`CONCURRENT_CONFIGS`]): the wait is
/// one round trip's for any usual number of configs. Errors stay deterministic: the first
/// failing key in the order given wins, whichever answer came first.
async fn read_online(ctx: &Context, keys: &[String]) -> anyhow::Result<Vec<Online>> {
    use futures::StreamExt as _;
    let team = Team::new(ctx.connect().await?, ctx.env.clone());
    let reads: Vec<anyhow::Result<Online>> = futures::stream::iter(keys)
        .map(|key| read_one(&team, key))
        .buffered(CONCURRENT_CONFIGS)
        .collect()
        .await;
    reads.into_iter().collect()
}

/// One key: the document and its schema (with an environment: base, overlay and schema),
/// concurrently.
async fn read_one(team: &Team, key: &str) -> anyhow::Result<Online> {
    match &team.env {
        None => {
            let (doc, schema) = tokio::join!(team.existing(key), team.schema(key));
            Ok((key.to_owned(), doc?, schema?, None))
        }
        Some(env) => {
            let (base, overlay, schema) = tokio::join!(
                team.base_document(key),
                team.document(key),
                team.schema(key)
            );
            let (base, overlay) = match (base?, overlay?) {
                (None, None) => anyhow::bail!(
                    "no config {key:?}: neither a base at {} nor a {env} overlay at {}; \
                     `harmony config list` shows the keys that exist",
                    team.store.describe(key),
                    team.store.describe(&team.layer(key))
                ),
                (base, overlay) => (base.unwrap_or_else(empty), overlay.unwrap_or_else(empty)),
            };
            Ok((key.to_owned(), base, schema?, Some(overlay)))
        }
    }
}

/// Keep what was read; a cache that cannot be written is a warning, never a failed read.
async fn keep_copies(places: &Places, scope: &CacheScope, reads: &[Online]) {
    let mut said_plain = false;
    for (key, doc, schema, overlay) in reads {
        // The schema first: a document copy never stands without the schema read with it. No
        // schema is kept as `null`, so a missing copy means lost, not untyped.
        let no_schema = Value::Null;
        let schema = match schema {
            Some(schema) => (schema.version, &schema.value),
            None => (0, &no_schema),
        };
        let mut saves = vec![
            (places.schema(key), schema),
            (places.document(key), (doc.version, &doc.value)),
        ];
        if let (Some(env), Some(overlay)) = (&places.env, overlay) {
            saves.push((places.overlay(key, env), (overlay.version, &overlay.value)));
        }
        for (location, (version, value)) in saves {
            match scope.save(&location, version, value).await {
                Ok(Saved::Plain { first_time: true }) if !said_plain => {
                    said_plain = true;
                    eprintln!(
                        "note: no OS keychain here, so the offline cache keeps copies unencrypted \
                         in 0600 files under {} (--no-cache keeps none)",
                        OfflineCache::default_dir()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default()
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("warning: could not keep an offline copy of {key}: {e}");
                    return;
                }
            }
        }
    }
}

/// The cached schema of a document.
enum SchemaCopy {
    /// The schema read with the document (`None`: it had none).
    Kept(Option<Value>),
    /// Missing or unusable, and why: every value is then masked.
    Unusable(String),
}

type Copy = (String, CachedDocument, SchemaCopy, Option<CachedDocument>);

/// Every key's cached copy (and schema, when one was cached), or an error naming the first key
/// without one.
async fn cached(places: &Places, scope: &CacheScope, keys: &[String]) -> anyhow::Result<Vec<Copy>> {
    let mut copies = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(doc) = scope.load(&places.document(key)).await? else {
            anyhow::bail!(
                "there is no offline copy of {key} from {} (namespace {}); read it once while \
                 OpenBao answers (e.g. `harmony config get {key}`)",
                scope.server(),
                places.settings.namespace().unwrap_or("root"),
            );
        };
        // A schema copy that cannot be used does not stop the read; it masks every value.
        let schema = match scope.load(&places.schema(key)).await {
            Ok(Some(copy)) if copy.value.is_null() => SchemaCopy::Kept(None),
            Ok(Some(copy)) => SchemaCopy::Kept(Some(copy.value)),
            Ok(None) => SchemaCopy::Unusable("there is no copy of its schema".to_owned()),
            Err(e) => SchemaCopy::Unusable(crate::render_chain(&anyhow::Error::new(e))),
        };
        let overlay = match &places.env {
            None => None,
            Some(env) => Some(scope.load(&places.overlay(key, env)).await?.with_context(|| {
                format!(
                    "there is no offline copy of the {env} overlay of {key}; read it once while \
                     OpenBao answers (`harmony config get {key} --env {env}`)"
                )
            })?),
        };
        copies.push((key.clone(), doc, schema, overlay));
    }
    Ok(copies)
}

fn into_read(
    places: &Places,
    key: String,
    doc: CachedDocument,
    schema: SchemaCopy,
    overlay: Option<CachedDocument>,
) -> anyhow::Result<Read> {
    let typing = match schema {
        SchemaCopy::Kept(schema) => typing(&key, schema.as_ref(), places)?,
        SchemaCopy::Unusable(why) => {
            eprintln!(
                "warning: the offline copy of {key}'s schema cannot be used ({why}); every value \
                 is masked, since which fields are secret is unknown (--reveal shows them; the \
                 next read while OpenBao answers keeps the schema again)"
            );
            // Every field either layer holds, so an overlay's own fields are masked too.
            let mut every = doc.value.clone();
            if let (Some(all), Some(extra)) = (
                every.as_object_mut(),
                overlay.as_ref().and_then(|o| o.value.as_object()),
            ) {
                harmony_config::merge_under(all, extra);
            }
            Typing::new(&key, Some(&all_secret(&every)))
                .with_context(|| format!("mask the offline copy of {key}"))?
        }
    };
    let versioned = |d: CachedDocument| Versioned {
        value: d.value,
        version: d.version,
    };
    Ok(with_layers(
        places,
        key,
        versioned(doc),
        typing,
        overlay.map(versioned),
    ))
}

/// A schema that types `value` as it is, every leaf `x-secret`.
fn all_secret(value: &Value) -> Value {
    let secret = |kind: &str| serde_json::json!({ "type": kind, "x-secret": true });
    match value {
        Value::Object(map) => serde_json::json!({
            "type": "object",
            "properties": map
                .iter()
                .map(|(name, v)| (name.clone(), all_secret(v)))
                .collect::<serde_json::Map<_, _>>(),
        }),
        Value::String(_) => secret("string"),
        Value::Number(n) if n.is_f64() => secret("number"),
        Value::Number(_) => secret("integer"),
        Value::Bool(_) => secret("boolean"),
        Value::Array(_) => secret("array"),
        Value::Null => serde_json::json!({ "x-secret": true }),
    }
}

fn typing(key: &str, schema: Option<&Value>, places: &Places) -> anyhow::Result<Typing> {
    crate::commands::config::typing_from_stored(key, schema, &places.schema(key))
}

/// An error when `doc` is older than `max_age`.
fn check_age(
    key: &str,
    doc: &CachedDocument,
    max_age: Option<Duration>,
    online_error: Option<&anyhow::Error>,
) -> anyhow::Result<()> {
    let Some(max_age) = max_age else {
        return Ok(());
    };
    if doc.age() <= max_age {
        return Ok(());
    }
    let what = if online_error.is_some() {
        ""
    } else {
        "; read it again while OpenBao answers, or raise --max-age"
    };
    anyhow::bail!(
        "the offline copy of {key} (version {}) is {} old, more than --max-age {}{what}",
        doc.version,
        human_age(doc.age()),
        human_age(max_age)
    )
}

/// OpenBao did not serve the request (unreachable, sealed, a gateway's 502–504).
fn unavailable(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|c| c.downcast_ref::<SecretError>())
        .any(SecretError::is_unavailable)
}

/// The first unavailable error's own message, for the one-line warning.
fn short_reason(error: &anyhow::Error) -> String {
    error
        .chain()
        .filter_map(|c| c.downcast_ref::<SecretError>())
        .find(|e| e.is_unavailable())
        .map(|e| match e {
            SecretError::Sealed { url } => format!("OpenBao at {url} is sealed"),
            SecretError::Unreachable { url, reason, .. } => {
                format!("OpenBao at {url} is unreachable ({reason})")
            }
            other => other.to_string(),
        })
        .unwrap_or_else(|| error.to_string())
}

/// `40 s`, `5 min`, `2 h 5 min`, `3 d 2 h`.
pub fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{} d", s / 86_400),
            h => format!("{} d {h} h", s / 86_400),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_people_say_them() {
        let cases = [
            (0, "0 s"),
            (59, "59 s"),
            (60, "1 min"),
            (3599, "59 min"),
            (3600, "1 h"),
            (7500, "2 h 5 min"),
            (86_400, "1 d"),
            (266_400, "3 d 2 h"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_age(Duration::from_secs(secs)), text, "{secs}");
        }
    }
}
