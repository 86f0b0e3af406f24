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

/// The message of a version saved by `ConfigManager::set` (a write-back of prompted fields
/// says which fields were entered).
pub const SET_MESSAGE: &str = "saved by the application";

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
    /// The readable name is also in records of another entity: the name is the writer's own
    /// word (only the entity is enforced), so such a name proves nothing.
    pub name_disputed: bool,
}

impl Record {
    /// The readable name, and when another entity uses it too, which entity this one is.
    pub fn display(&self) -> String {
        if self.name_disputed {
            format!(
                "{} (entity {}; other entities also use this name)",
                self.body.name, self.entity_id
            )
        } else {
            self.body.name.clone()
        }
    }
}

/// Who wrote a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
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
            Self::Known(r) => r.display(),
            Self::Disputed { records } => records
                .iter()
                .map(Record::display)
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

/// What came of trying to record the author of a version that was saved.
#[derive(Debug)]
pub enum RecordOutcome {
    /// Recorded, or nothing to record (see [`Recorded`]).
    Done(Recorded),
    /// The version is saved but its record could not be written.
    Failed(SecretError),
}

impl RecordOutcome {
    /// What to tell the person after saving `version` of `what` (`my-app`, `the prod overlay
    /// of my-app`), when there is something to say: the value is saved either way.
    pub fn warning(&self, what: &str, version: u64) -> Option<String> {
        match self {
            Self::Done(Recorded::Yes | Recorded::NoIdentity) => None,
            Self::Done(Recorded::NoEntity) => Some(format!(
                "note: version {version} of {what} is saved without an author record: this \
                 token has no identity entity (a root or dev token), so history shows the \
                 version as unknown"
            )),
            Self::Failed(e) => Some(format!(
                "warning: version {version} of {what} is saved, but its author record could not \
                 be written ({e}); history shows that version as unknown"
            )),
        }
    }
}

/// [`record`] after a save: never an error (the value is saved; a failed record is a warning,
/// see [`RecordOutcome::warning`]).
pub async fn record_saved<S: SecretStore>(
    store: &S,
    layer: &str,
    version: u64,
    message: &str,
) -> RecordOutcome {
    match record(store, layer, version, message).await {
        Ok(done) => RecordOutcome::Done(done),
        Err(e) => RecordOutcome::Failed(e),
    }
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
                name_disputed: false,
            });
        }
    }
    // A name is the writer's own word; one used by several entities is flagged on each.
    let mut entities_of: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in by_version.values().flatten() {
        entities_of
            .entry(r.body.name.clone())
            .or_default()
            .insert(r.entity_id.clone());
    }
    for r in by_version.values_mut().flatten() {
        r.name_disputed = entities_of.get(&r.body.name).is_some_and(|e| e.len() > 1);
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

/// OpenBao's number of versions KV v2 keeps when neither the key nor the mount sets one.
pub const OPENBAO_DEFAULT_MAX_VERSIONS: u64 = 10;

/// One KV v2 version of a layer, from the key's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionMeta {
    /// The version number.
    pub version: u64,
    /// When the server stored it (RFC 3339).
    pub created_time: String,
    /// Soft-deleted (its content can be undeleted).
    pub deleted: bool,
    /// Destroyed (its content is gone for good).
    pub destroyed: bool,
    /// The key's current version.
    pub current: bool,
}

/// A layer's KV v2 metadata (`<mount>/metadata/<prefix>/<layer>`), as history needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerMetadata {
    /// The versions OpenBao still keeps, newest first.
    pub versions: Vec<VersionMeta>,
    /// The oldest version kept (`oldest_version`; older ones were pruned).
    pub oldest_version: u64,
    /// The key's own `max_versions` (0: the mount's setting applies).
    pub max_versions: u64,
}

impl LayerMetadata {
    /// From the `data` of a KV v2 metadata answer.
    pub fn from_kv(data: &Value) -> Self {
        let current = data["current_version"].as_u64().unwrap_or(0);
        let mut versions: Vec<VersionMeta> = data["versions"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(n, v)| {
                        let version = n.parse::<u64>().ok()?;
                        Some(VersionMeta {
                            version,
                            created_time: v["created_time"].as_str().unwrap_or("").to_owned(),
                            deleted: v["deletion_time"].as_str().is_some_and(|t| !t.is_empty()),
                            destroyed: v["destroyed"].as_bool().unwrap_or(false),
                            current: version == current,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        versions.sort_by_key(|v| std::cmp::Reverse(v.version));
        let oldest_kept = versions.last().map_or(0, |v| v.version);
        Self {
            oldest_version: data["oldest_version"]
                .as_u64()
                .filter(|v| *v > 0)
                .unwrap_or(oldest_kept),
            max_versions: data["max_versions"].as_u64().unwrap_or(0),
            versions,
        }
    }
}

/// Versions OpenBao no longer keeps, and the setting that made it drop them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// Versions 1 to this one are gone.
    pub through: u64,
    /// How many versions are kept.
    pub max_versions: u64,
    /// Which setting says so, for people.
    pub setting: String,
}

/// How many versions of a layer OpenBao keeps, and which setting decides: the key's own
/// `max_versions`, else the mount's (`mount_max_versions`, `None` when it could not be read),
/// else OpenBao's default.
pub fn retention(
    meta: &LayerMetadata,
    mount_max_versions: Option<u64>,
    mount: &str,
) -> (u64, String) {
    match (meta.max_versions, mount_max_versions) {
        (n, _) if n > 0 => (n, format!("max_versions = {n} on this key's metadata")),
        (_, Some(n)) if n > 0 => (
            n,
            format!("max_versions = {n} on the KV mount {mount}/config"),
        ),
        (_, Some(_)) => (
            OPENBAO_DEFAULT_MAX_VERSIONS,
            format!(
                "OpenBao's default of {OPENBAO_DEFAULT_MAX_VERSIONS} (max_versions = 0 on the KV \
                 mount {mount}/config; `harmony bootstrap --kv-max-versions N` raises it)"
            ),
        ),
        (_, None) => (
            OPENBAO_DEFAULT_MAX_VERSIONS,
            format!(
                "the KV mount's max_versions ({mount}/config, which this token may not read; \
                 OpenBao's default is {OPENBAO_DEFAULT_MAX_VERSIONS})"
            ),
        ),
    }
}

/// The versions pruned before the oldest one kept, if any.
pub fn pruned(
    meta: &LayerMetadata,
    mount_max_versions: Option<u64>,
    mount: &str,
) -> Option<Pruned> {
    if meta.oldest_version <= 1 {
        return None;
    }
    let (max_versions, setting) = retention(meta, mount_max_versions, mount);
    Some(Pruned {
        through: meta.oldest_version - 1,
        max_versions,
        setting,
    })
}

/// One line of a layer's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The version and its state.
    #[serde(flatten)]
    pub meta: VersionMeta,
    /// Who wrote it, and why (the record's message).
    pub author: Author,
}

/// The versions of a layer newest first, each with its author ([`Author::Unknown`] when no
/// record names it).
pub fn entries(meta: &LayerMetadata, authors: &BTreeMap<u64, Author>) -> Vec<HistoryEntry> {
    meta.versions
        .iter()
        .map(|v| HistoryEntry {
            meta: v.clone(),
            author: authors.get(&v.version).cloned().unwrap_or(Author::Unknown),
        })
        .collect()
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
