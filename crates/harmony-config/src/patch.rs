//! Writing a [`Patch`] with check-and-set, so that two people setting *different* fields of
//! one document at the same moment both land, and only a change to the *same* field is a
//! conflict — named, with nothing written.
//!
//! KV v2's check-and-set refuses a write based on a version that is no longer the latest. When
//! that happens, [`write_patch`] reads the new latest version, asks [`Patch::clashes`] whether
//! the write that landed meanwhile touched a field of the patch, and if not, applies the patch
//! on top of it and tries again — at most [`PATCH_ATTEMPTS`] times, telling the caller each
//! time (the library prints nothing). Every attempt is a fresh check-and-set, so a write that
//! lands between the re-read and the retry is caught the same way: nothing is ever lost.

use harmony_secret::{SecretError, SecretStore, Versioned, WriteMode};
use serde_json::{Map, Value};

use crate::document::{Patch, changed_paths};

/// How many writes [`write_patch`] tries before giving up (each loss means another write
/// landed, so this many writers racing on one document all get through).
pub const PATCH_ATTEMPTS: u32 = 5;

/// What [`write_patch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOutcome {
    /// Saved as `version`, on the `attempts`-th write.
    Written {
        /// The new version.
        version: u64,
        /// 1 when nobody wrote meanwhile.
        attempts: u32,
    },
    /// The document already had every value of the patch.
    Unchanged {
        /// The version that has them (0: nothing stored and an empty patch).
        version: u64,
    },
}

/// Another write landed between the read and the write; the patch is being re-applied on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchRetry {
    /// The attempt about to be made (2 for the first retry).
    pub attempt: u32,
    /// Of [`PATCH_ATTEMPTS`].
    pub of: u32,
    /// The version that landed meanwhile.
    pub version: u64,
    /// The fields that write changed (dotted), none of them the patch's.
    pub their_fields: Vec<String>,
}

/// Why a patch was not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// Someone changed a field of the patch meanwhile: applying it would undo their change.
    #[error(
        "{} changed by someone else meanwhile (version {version} is stored); nothing was \
         written — look at their value (`harmony config get`) and set yours again if it \
         should still win",
        describe_fields(fields)
    )]
    Clash {
        /// The store path.
        path: String,
        /// The clashing fields (dotted).
        fields: Vec<String>,
        /// The version that holds their change.
        version: u64,
    },
    /// Other writes kept landing: every attempt lost its check-and-set.
    #[error(
        "{path} kept changing: {attempts} writes in a row lost to other writers' newer versions; \
         nothing was written — try again in a moment"
    )]
    Exhausted {
        /// The store path.
        path: String,
        /// Writes tried.
        attempts: u32,
    },
    /// The document the patch makes on the new version is refused by the caller's check.
    #[error("{0}")]
    Refused(String),
    /// The store failed (permission, transport, ...).
    #[error(transparent)]
    Store(#[from] SecretError),
}

fn describe_fields(fields: &[String]) -> String {
    match fields {
        [one] => format!("field {one} was"),
        many => format!("fields {} were", many.join(", ")),
    }
}

/// Apply `patch` to the document at `path`, starting from `current` (what the caller read:
/// `None` when nothing is stored), with check-and-set. `check` sees each document about to be
/// written (e.g. the schema check); `on_retry` hears of every re-application.
pub async fn write_patch<S, C, R>(
    store: &S,
    path: &str,
    patch: &Patch,
    mut current: Option<Versioned<Value>>,
    mut check: C,
    mut on_retry: R,
) -> Result<PatchOutcome, PatchError>
where
    S: SecretStore + ?Sized,
    C: FnMut(&Map<String, Value>) -> Result<(), String>,
    R: FnMut(&PatchRetry),
{
    let mut attempt = 1;
    loop {
        let read = current
            .as_ref()
            .map_or(Value::Object(Map::new()), |c| c.value.clone());
        let doc = patch.apply(read.as_object().unwrap_or(&Map::new()));
        let value = Value::Object(doc);
        if current.as_ref().is_some_and(|c| c.value == value) {
            return Ok(PatchOutcome::Unchanged {
                version: current.map_or(0, |c| c.version),
            });
        }
        check(value.as_object().unwrap_or(&Map::new())).map_err(PatchError::Refused)?;
        let expected = current.as_ref().map(|c| c.version);
        match store.put(path, &value, WriteMode::Cas(expected)).await {
            Ok(version) => {
                return Ok(PatchOutcome::Written {
                    version,
                    attempts: attempt,
                });
            }
            Err(SecretError::Conflict { .. }) if attempt < PATCH_ATTEMPTS => {
                let fresh = store.get(path).await?;
                let now = fresh
                    .as_ref()
                    .map_or(Value::Object(Map::new()), |c| c.value.clone());
                let version = fresh.as_ref().map_or(0, |c| c.version);
                let clashes = patch.clashes(&read, &now);
                if !clashes.is_empty() {
                    return Err(PatchError::Clash {
                        path: store.describe(path),
                        fields: clashes,
                        version,
                    });
                }
                attempt += 1;
                on_retry(&PatchRetry {
                    attempt,
                    of: PATCH_ATTEMPTS,
                    version,
                    their_fields: changed_paths(&read, &now)
                        .iter()
                        .map(|p| p.join("."))
                        .collect(),
                });
                current = fresh;
            }
            Err(SecretError::Conflict { .. }) => {
                return Err(PatchError::Exhausted {
                    path: store.describe(path),
                    attempts: attempt,
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}
