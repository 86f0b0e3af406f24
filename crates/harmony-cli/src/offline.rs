//! Reading documents the way `run`, `export` and `config get` do: online (then the copy is kept in
//! the offline cache, [`harmony_secret::offline`]), or from that cache when OpenBao is
//! unreachable or sealed (one warning with the copy's age and version), or only from the cache
//! with `--offline`.

use std::time::Duration;

use harmony_secret::offline::{CacheScope, CachedDocument, OfflineCache, Saved};
use harmony_secret::{OpenbaoSettings, SecretError, Versioned};
use serde_json::Value;

use crate::cli::CacheArgs;
use crate::commands::config::{Team, check_key};
use crate::context::Context;
use harmony_config::document::Typing;

/// A document with the schema stored beside it.
pub struct Read {
    pub key: String,
    pub doc: Versioned<Value>,
    pub typing: Typing,
}

/// Where a key's document and schema live, and the cache to keep them in.
struct Places {
    settings: OpenbaoSettings,
    scope: Option<CacheScope>,
}

impl Places {
    fn document(&self, key: &str) -> String {
        self.settings.data_path(key)
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
    let places = Places { settings, scope };
    if cache.offline {
        let scope = places
            .scope
            .as_ref()
            .expect("--offline conflicts with --no-cache");
        let copies = cached(&places, scope, keys).await?;
        return copies
            .into_iter()
            .map(|(key, doc, schema)| {
                check_age(&key, &doc, cache.max_age, None)?;
                into_read(&places, key, doc, schema)
            })
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
                .map(|(key, doc, schema)| {
                    let typing = typing(&key, schema.as_ref().map(|s| &s.value), &places)?;
                    Ok(Read { key, doc, typing })
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
    for (key, doc, _) in &copies {
        if let Err(too_old) = check_age(key, doc, cache.max_age, Some(&error)) {
            return Err(error.context(format!("OpenBao did not answer and {too_old}")));
        }
    }
    let listed: Vec<String> = copies
        .iter()
        .map(|(key, doc, _)| {
            format!(
                "{key} (version {}, read {} ago)",
                doc.version,
                human_age(doc.age())
            )
        })
        .collect();
    eprintln!(
        "warning: {}; using the offline copy of {} (--max-age bounds its age, --no-cache refuses it)",
        short_reason(&error),
        listed.join(", ")
    );
    copies
        .into_iter()
        .map(|(key, doc, schema)| into_read(&places, key, doc, schema))
        .collect()
}

type Online = (String, Versioned<Value>, Option<Versioned<Value>>);

async fn read_online(ctx: &Context, keys: &[String]) -> anyhow::Result<Vec<Online>> {
    let team = Team {
        store: ctx.connect().await?,
    };
    let mut reads = Vec::with_capacity(keys.len());
    for key in keys {
        // One round trip's wait for both: the document and its schema.
        let (doc, schema) = tokio::join!(team.existing(key), team.schema(key));
        reads.push((key.clone(), doc?, schema?));
    }
    Ok(reads)
}

/// Keep what was read; a cache that cannot be written is a warning, never a failed read.
async fn keep_copies(places: &Places, scope: &CacheScope, reads: &[Online]) {
    let mut said_plain = false;
    for (key, doc, schema) in reads {
        let mut saves = vec![(places.document(key), doc)];
        if let Some(schema) = schema {
            saves.push((places.schema(key), schema));
        }
        for (location, versioned) in saves {
            match scope
                .save(&location, versioned.version, &versioned.value)
                .await
            {
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

type Copy = (String, CachedDocument, Option<CachedDocument>);

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
        // A schema copy that cannot be used only loses the typing, not the read.
        let schema = scope.load(&places.schema(key)).await.unwrap_or(None);
        copies.push((key.clone(), doc, schema));
    }
    Ok(copies)
}

fn into_read(
    places: &Places,
    key: String,
    doc: CachedDocument,
    schema: Option<CachedDocument>,
) -> anyhow::Result<Read> {
    let typing = typing(&key, schema.as_ref().map(|s| &s.value), places)?;
    Ok(Read {
        doc: Versioned {
            value: doc.value,
            version: doc.version,
        },
        key,
        typing,
    })
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
