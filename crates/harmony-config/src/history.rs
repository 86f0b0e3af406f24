//! Who wrote each version of a config, and why: the **author records**.
//!
//! KV v2 keeps no author per version, so each write by harmony also creates a record at
//! `_history/<ENTITY_ID>/<LAYER_PATH>/<VERSION>` (relative to the KV prefix; the layer path is
//! [`crate::layers::layer_path`]: `KEY` or `_env/<ENV>/KEY`). The entity id comes first so one
//! templated policy path, `_history/{{identity.entity.id}}/*` with `create` only, lets a token
//! create records under its own entity and no other (the bootstrap writes those policies; proven
//! on a real OpenBao). The entity of a record is therefore the one in its **path**, never a field
//! a writer chose; the readable name in it is what the writer's token said about itself.
//!
//! A version with no record (written with the bare `bao` CLI, or by a token without an entity)
//! is [`Author::Unknown`]. No I/O beyond the [`SecretStore`] calls here; the CLI renders.

use std::collections::BTreeMap;

use harmony_secret::client::TokenIdentity;
use harmony_secret::{SecretError, SecretStore, WriteMode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::leaves;

/// The folder (under the KV prefix) holding the author records.
pub const HISTORY_FOLDER: &str = "_history";

/// Longest message kept (bytes; longer ones are cut at a character boundary).
pub const MAX_MESSAGE_LEN: usize = 1000;

/// Most records read per entity and layer (bounds the work a teammate's records can cause).
const MAX_RECORDS_PER_ENTITY: usize = 10_000;

/// What the writer stores beside a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBody {
    /// The writer's readable name (SSO e-mail or login, userpass user, CI repository).
    pub name: String,
    /// When the writer wrote it (RFC 3339, UTC; the version's own time is the server's).
    pub time: String,
    /// The tool and its version, e.g. `harmony 0.1.0`.
    pub tool: String,
    /// Why.
    pub message: String,
}

/// One author record as read back: the entity from its path, the rest from its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// The OpenBao entity that created the record (enforced by the ACL).
    pub entity_id: String,
    /// The body.
    #[serde(flatten)]
    pub body: RecordBody,
}

/// Who wrote a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "author", rename_all = "lowercase")]
pub enum Author {
    /// One record names the version.
    Known(Record),
    /// Several entities claim it (each could only claim it for itself): all are shown.
    Disputed {
        /// The records, by entity id.
        records: Vec<Record>,
    },
    /// No record: written without harmony (or by a token without an entity).
    Unknown,
}

impl Author {
    /// `alice@example.com`, `unknown (written without harmony)`, or both claimants.
    pub fn display(&self) -> String {
        match self {
            Self::Known(r) => r.body.name.clone(),
            Self::Disputed { records } => records
                .iter()
                .map(|r| r.body.name.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
            Self::Unknown => "unknown (written without harmony)".to_owned(),
        }
    }

    /// The message, if one record names the version.
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Known(r) => Some(&r.body.message),
            _ => None,
        }
    }
}

/// The path (relative to the KV prefix) of the record of `version` of `layer` by `entity_id`.
pub fn record_path(entity_id: &str, layer: &str, version: u64) -> String {
    format!("{HISTORY_FOLDER}/{entity_id}/{layer}/{version}")
}

/// `message` with control characters replaced and cut to [`MAX_MESSAGE_LEN`].
pub fn clean_message(message: &str) -> String {
    let mut out: String = message
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .collect();
    if out.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// What came of recording the author of a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The record was created.
    Yes,
    /// The token has no entity (a root or dev token): no record; the version shows as unknown.
    NoEntity,
    /// The store has no notion of identity.
    NoIdentity,
}

/// Record that the store's token wrote `version` of `layer`, with `message`.
pub async fn record<S: SecretStore>(
    store: &S,
    layer: &str,
    version: u64,
    message: &str,
) -> Result<Recorded, SecretError> {
    let Some(identity) = store.identity().await? else {
        return Ok(Recorded::NoIdentity);
    };
    record_as(store, &identity, layer, version, message).await
}

/// [`record`] with a known identity.
pub async fn record_as<S: SecretStore>(
    store: &S,
    identity: &TokenIdentity,
    layer: &str,
    version: u64,
    message: &str,
) -> Result<Recorded, SecretError> {
    if identity.entity_id.is_empty() {
        return Ok(Recorded::NoEntity);
    }
    let body = RecordBody {
        name: identity.readable_name(),
        time: harmony_secret::backup::rfc3339_utc(std::time::SystemTime::now()),
        tool: format!("harmony {}", env!("CARGO_PKG_VERSION")),
        message: clean_message(message),
    };
    let value = serde_json::to_value(&body).map_err(|e| SecretError::BadResponse {
        path: record_path(&identity.entity_id, layer, version),
        status: 0,
        message: format!("could not encode the record ({e})"),
    })?;
    store
        .put(
            &record_path(&identity.entity_id, layer, version),
            &value,
            WriteMode::Cas(None),
        )
        .await?;
    Ok(Recorded::Yes)
}

/// The authors of the versions of `layer` that have records, by version.
pub async fn authors<S: SecretStore>(
    store: &S,
    layer: &str,
) -> Result<BTreeMap<u64, Author>, SecretError> {
    let mut by_version: BTreeMap<u64, Vec<Record>> = BTreeMap::new();
    for entity in store.list(HISTORY_FOLDER).await? {
        let Some(entity) = entity.strip_suffix('/') else {
            continue;
        };
        let folder = format!("{HISTORY_FOLDER}/{entity}/{layer}");
        let names = match store.list(&folder).await {
            Ok(names) => names,
            Err(SecretError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        // Sub-folders are the records of longer keys (`app/db` under `app`): skipped.
        for version in names
            .iter()
            .filter_map(|n| n.parse::<u64>().ok())
            .take(MAX_RECORDS_PER_ENTITY)
        {
            let Some(doc) = store.get(&format!("{folder}/{version}")).await? else {
                continue;
            };
            // A record that is not ours in shape is shown as what it is: not a record.
            let Ok(body) = serde_json::from_value::<RecordBody>(doc.value) else {
                continue;
            };
            let body = RecordBody {
                message: clean_message(&body.message),
                name: clean_message(&body.name),
                ..body
            };
            by_version.entry(version).or_default().push(Record {
                entity_id: entity.to_owned(),
                body,
            });
        }
    }
    Ok(by_version
        .into_iter()
        .map(|(v, mut records)| {
            let author = if records.len() == 1 {
                Author::Known(records.remove(0))
            } else {
                Author::Disputed { records }
            };
            (v, author)
        })
        .collect())
}

/// For each field of the newest readable version, the version of its last change. `versions`
/// are `(version, content)` oldest first; `None` content (deleted or destroyed) breaks the
/// chain: a field is blamed on the version after it, as its earlier value cannot be compared.
pub fn blame(versions: &[(u64, Option<Value>)]) -> Vec<(String, u64)> {
    let Some((_, Some(newest))) = versions.iter().rev().find(|(_, c)| c.is_some()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (path, value) in leaves(newest) {
        if path.is_empty() {
            continue;
        }
        let mut since = None;
        for (version, content) in versions.iter().rev() {
            match content {
                Some(c) if crate::document::value_at(c, &path) == Some(value) => {
                    since = Some(*version)
                }
                _ => break,
            }
        }
        if let Some(since) = since {
            out.push((path.join("."), since));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blame_names_the_version_of_each_fields_last_change() {
        let versions = vec![
            (1, Some(json!({"db": {"host": "a", "port": 1}, "x": true}))),
            (2, Some(json!({"db": {"host": "a", "port": 2}, "x": true}))),
            (3, None),
            (4, Some(json!({"db": {"host": "a", "port": 2}, "x": false}))),
            (5, Some(json!({"db": {"host": "a", "port": 2}, "x": false}))),
        ];
        assert_eq!(
            blame(&versions),
            vec![
                ("db.host".to_owned(), 4),
                ("db.port".to_owned(), 4),
                ("x".to_owned(), 4)
            ]
        );
        let versions = vec![
            (1, Some(json!({"a": 1, "b": 1}))),
            (2, Some(json!({"a": 1, "b": 2}))),
        ];
        assert_eq!(
            blame(&versions),
            vec![("a".to_owned(), 1), ("b".to_owned(), 2)]
        );
    }

    #[test]
    fn messages_lose_control_characters_and_stay_bounded() {
        assert_eq!(clean_message("a\u{1b}[31mb\nc"), "a [31mb\nc");
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let cut = clean_message(&long);
        assert!(cut.len() <= MAX_MESSAGE_LEN && cut.starts_with('é'));
    }
}
