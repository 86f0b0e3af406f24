//! Backups of a whole OpenBao: raft snapshots taken, checked and restored through the API.
//!
//! A backup is two files side by side:
//! - **the archive** (`FILE`), exactly what `GET sys/storage/raft/snapshot` answered: a gzip tar
//!   of `meta.json`, `state.bin`, `SHA256SUMS` and `SHA256SUMS.sealed`. Kept byte for byte, so
//!   `bao operator raft snapshot restore FILE` takes it too;
//! - **the manifest** (`FILE.json`, see [`manifest_path`]): the server, when, the OpenBao
//!   version, the raft index and term, the archive's size and SHA-256, and how many unseal key
//!   shares the restored data needs ([`UnsealNeeds`]) — never a key.
//!
//! Both are written 0600 and atomically (a temporary file beside them, then a rename); [`save`]
//! never overwrites a file. [`verify`] checks an archive offline: every entry of `SHA256SUMS`
//! against the entry itself, `state.bin`'s size against `meta.json`, and the whole file against
//! its manifest when there is one. (`SHA256SUMS.sealed` is encrypted with the cluster's keys:
//! only the server can check it, and does on restore.) [`restore`] checks the same before it
//! sends anything.
//!
//! The data in a snapshot is encrypted by the cluster's keys: a restored snapshot unseals only
//! with the unseal keys of the cluster it was taken on, which is why the manifest records how
//! many of them are needed and why they must be kept apart from the snapshots.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{OpenbaoClient, SecretError};

/// The raft snapshot endpoint (`GET` takes one, `POST` restores one of this cluster).
pub const SNAPSHOT_PATH: &str = "sys/storage/raft/snapshot";
/// Restores a snapshot taken on another cluster (other unseal keys).
pub const SNAPSHOT_FORCE_PATH: &str = "sys/storage/raft/snapshot-force";
/// How long taking or restoring one snapshot may take (a large store on a slow link).
pub const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// The largest archive saved or restored. A restore holds the archive in memory while sending.
pub const MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;
/// The most an archive may hold once decompressed (a gzip bomb is refused, not unpacked).
pub const MAX_UNPACKED_BYTES: u64 = 8 * MAX_ARCHIVE_BYTES;
/// The largest `meta.json` / `SHA256SUMS` read.
const MAX_SMALL_ENTRY: u64 = 1024 * 1024;
/// How long a forced restore may take to seal the server.
const SEAL_WAIT: Duration = Duration::from_secs(15);
/// The manifest's format.
pub const MANIFEST_FORMAT: u32 = 1;

const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";
const SUMS_SEALED: &str = "SHA256SUMS.sealed";
const ENTRIES: [&str; 4] = [META, STATE, SUMS, SUMS_SEALED];

/// What went wrong taking, checking or restoring a backup. Never carries a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// OpenBao refused or failed (permission denied, sealed, unreachable, ...).
    #[error(transparent)]
    Openbao(#[from] SecretError),
    /// A local file could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `save` never overwrites a file.
    #[error("{} already exists; choose another file name (a backup is never overwritten)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a raft snapshot archive (not gzip, not tar, entries missing or unknown).
    #[error("{} is not an OpenBao raft snapshot: {reason}", path.display())]
    NotAnArchive {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An entry's SHA-256 differs from the one `SHA256SUMS` lists: the archive was damaged or
    /// changed.
    #[error(
        "{} is damaged or was changed: {entry} has SHA-256 {actual}, but the archive's SHA256SUMS says {expected}; use another backup",
        path.display()
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The archive entry.
        entry: String,
        /// What `SHA256SUMS` says.
        expected: String,
        /// What the entry hashes to.
        actual: String,
    },
    /// The archive does not match its manifest (`FILE.json`).
    #[error("{} does not match its manifest {}: {what}; use another backup, or remove the manifest if the archive is known good", path.display(), manifest.display())]
    ManifestMismatch {
        /// The archive.
        path: PathBuf,
        /// The manifest.
        manifest: PathBuf,
        /// What differs.
        what: String,
    },
    /// The manifest could not be read as one.
    #[error("the manifest {} is not valid: {reason}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is larger than a snapshot this tool handles.
    #[error("{} is larger than {limit} bytes; restore it with `bao operator raft snapshot restore`", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// OpenBao refused the snapshot as one of another cluster (other unseal keys).
    #[error(
        "OpenBao at {url} refused {}: it was taken on another cluster (other unseal keys). If that is \
         what you mean to do, restore with --force: the server then holds the snapshot's data and \
         unseals only with the snapshot's unseal keys. (OpenBao said: {message})",
        path.display()
    )]
    NeedsForce {
        /// The server.
        url: String,
        /// The archive.
        path: PathBuf,
        /// OpenBao's message.
        message: String,
    },
}

/// How many unseal key shares there are and how many open the seal (`sys/seal-status` `n`/`t`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsealNeeds {
    /// The seal type (`shamir`, or an auto-unseal type).
    pub seal_type: String,
    /// Key shares handed out at init.
    pub shares: u64,
    /// Shares needed to unseal.
    pub threshold: u64,
}

/// The sidecar `FILE.json` of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// The server the snapshot was taken from.
    pub server: String,
    /// When (UTC, RFC 3339).
    pub created_at: String,
    /// The OpenBao version (`sys/seal-status`).
    pub openbao_version: Option<String>,
    /// The cluster's name (`sys/seal-status`).
    pub cluster_name: Option<String>,
    /// The cluster's id (`sys/seal-status`).
    pub cluster_id: Option<String>,
    /// The raft index of the snapshot (`meta.json` `Index`).
    pub raft_index: u64,
    /// The raft term of the snapshot (`meta.json` `Term`).
    pub raft_term: u64,
    /// The archive's file name (beside the manifest).
    pub archive: String,
    /// The archive's size in bytes.
    pub size: u64,
    /// The archive's SHA-256 (hex).
    pub sha256: String,
    /// The unseal key shares the restored data needs (the cluster's at the time of the snapshot).
    pub unseal: UnsealNeeds,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The archive.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256 (hex).
    pub sha256: String,
    /// `meta.json`'s raft index.
    pub raft_index: u64,
    /// `meta.json`'s raft term.
    pub raft_term: u64,
    /// The entries `SHA256SUMS` listed, all checked.
    pub checked: Vec<String>,
    /// The manifest, when `FILE.json` exists (and matched).
    pub manifest: Option<Manifest>,
}

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The archive as checked before sending.
    pub verified: Verified,
    /// Sent to `snapshot-force`.
    pub forced: bool,
    /// The server is sealed now (after a forced restore it always is).
    pub sealed: bool,
    /// What unseals the restored data: the manifest's record, else the server's current seal.
    pub unseal: Option<UnsealNeeds>,
}

/// The manifest beside `archive`: `archive` with `.json` appended (`b.snap` → `b.snap.json`).
pub fn manifest_path(archive: &Path) -> PathBuf {
    let mut name = archive.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// Take a raft snapshot of the server `client` points at and write it to `file` with its
/// manifest. `progress` is called with the bytes received so far. The token needs `read` on
/// [`SNAPSHOT_PATH`] (the `harmony-backup` policy).
pub async fn save(
    client: &OpenbaoClient,
    file: &Path,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Manifest, BackupError> {
    let manifest_file = manifest_path(file);
    for path in [file, manifest_file.as_path()] {
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return Err(BackupError::Exists {
                path: path.to_owned(),
            });
        }
    }
    let seal = seal_status(client).await?;
    let created_at = rfc3339_utc(SystemTime::now());
    let mut resp = client
        .clone()
        .without_namespace()
        .send_raw(Method::GET, SNAPSHOT_PATH, None, SNAPSHOT_TIMEOUT)
        .await?;
    let tmp = temp_beside(file);
    let result = async {
        let mut out = create_private(&tmp).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| client.unreachable_within(e, SNAPSHOT_TIMEOUT))?
        {
            size += chunk.len() as u64;
            if size > MAX_ARCHIVE_BYTES {
                return Err(BackupError::TooLarge {
                    path: file.to_owned(),
                    limit: MAX_ARCHIVE_BYTES,
                });
            }
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(io("write", &tmp))?;
            progress(size);
        }
        out.sync_all().await.map_err(io("flush", &tmp))?;
        drop(out);
        let sha256 = hex::encode(hasher.finalize());
        let checked = blocking({
            let tmp = tmp.clone();
            move || check_archive(&tmp)
        })
        .await?;
        if checked.sha256 != sha256 {
            return Err(BackupError::NotAnArchive {
                path: file.to_owned(),
                reason: "the file changed while it was being written".to_owned(),
            });
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            server: client.url().to_owned(),
            created_at,
            openbao_version: str_field(&seal, "version"),
            cluster_name: str_field(&seal, "cluster_name"),
            cluster_id: str_field(&seal, "cluster_id"),
            raft_index: checked.raft_index,
            raft_term: checked.raft_term,
            archive: file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            size,
            sha256,
            unseal: unseal_needs(&seal),
        };
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::BadManifest {
            path: manifest_file.clone(),
            reason: e.to_string(),
        })?;
        let manifest_file = manifest_file.clone();
        blocking(move || {
            crate::private_file::write_private(
                &manifest_file,
                &text,
                crate::private_file::Durability::Flushed,
            )
            .map_err(BackupError::from)
        })
        .await?;
        tokio::fs::rename(&tmp, file)
            .await
            .map_err(io("rename into place", file))?;
        Ok(manifest)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

/// Check the archive `file` offline (see the module docs); with a manifest beside it, check it
/// against that too.
pub async fn verify(file: &Path) -> Result<Verified, BackupError> {
    let file = file.to_owned();
    blocking(move || verify_blocking(&file)).await
}

fn verify_blocking(file: &Path) -> Result<Verified, BackupError> {
    let checked = check_archive(file)?;
    let manifest_file = manifest_path(file);
    let manifest = match std::fs::read(&manifest_file) {
        Ok(bytes) if bytes.len() as u64 > MAX_SMALL_ENTRY => {
            return Err(BackupError::BadManifest {
                path: manifest_file,
                reason: format!("larger than {MAX_SMALL_ENTRY} bytes"),
            });
        }
        Ok(bytes) => Some(serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
            BackupError::BadManifest {
                path: manifest_file.clone(),
                reason: crate::redact::json_error_detail(&e),
            }
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("read", &manifest_file)(e)),
    };
    if let Some(m) = &manifest {
        let mismatch = |what: String| BackupError::ManifestMismatch {
            path: file.to_owned(),
            manifest: manifest_file.clone(),
            what,
        };
        if m.sha256 != checked.sha256 {
            return Err(mismatch(format!(
                "the archive's SHA-256 is {}, the manifest says {}",
                checked.sha256, m.sha256
            )));
        }
        if m.size != checked.size {
            return Err(mismatch(format!(
                "the archive has {} bytes, the manifest says {}",
                checked.size, m.size
            )));
        }
        if m.raft_index != checked.raft_index {
            return Err(mismatch(format!(
                "the archive's raft index is {}, the manifest says {}",
                checked.raft_index, m.raft_index
            )));
        }
    }
    Ok(Verified {
        manifest,
        ..checked
    })
}

/// Restore the archive `file` into the server `client` points at, after checking it offline.
/// `force` sends it to `snapshot-force` (a snapshot of another cluster); without it, OpenBao's
/// refusal of another cluster's snapshot is [`BackupError::NeedsForce`].
pub async fn restore(
    client: &OpenbaoClient,
    file: &Path,
    force: bool,
) -> Result<Restored, BackupError> {
    let verified = verify(file).await?;
    let bytes = tokio::fs::read(file).await.map_err(io("read", file))?;
    let path = if force {
        SNAPSHOT_FORCE_PATH
    } else {
        SNAPSHOT_PATH
    };
    let client = client.clone().without_namespace();
    match client
        .send_raw(Method::POST, path, Some(bytes), SNAPSHOT_TIMEOUT)
        .await
    {
        Ok(_) => {}
        Err(SecretError::BadResponse { message, .. })
            if !force && message.contains("snapshot-force") =>
        {
            return Err(BackupError::NeedsForce {
                url: client.url().to_owned(),
                path: file.to_owned(),
                message,
            });
        }
        Err(e) => return Err(e.into()),
    }
    // A forced restore seals the server, shortly after answering: wait (bounded) to see it.
    let mut seal = seal_status(&client).await.ok();
    if force {
        let deadline = tokio::time::Instant::now() + SEAL_WAIT;
        let mut logged = false;
        while seal.as_ref().is_some_and(|s| s["sealed"] == false)
            && tokio::time::Instant::now() < deadline
        {
            if !logged {
                tracing::info!(
                    url = client.url(),
                    max_wait_secs = SEAL_WAIT.as_secs(),
                    "waiting for OpenBao to seal itself after the forced restore"
                );
                logged = true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            seal = seal_status(&client).await.ok();
        }
    }
    let sealed = seal
        .as_ref()
        .and_then(|s| s["sealed"].as_bool())
        .unwrap_or(force);
    let unseal = verified
        .manifest
        .as_ref()
        .map(|m| m.unseal.clone())
        .or_else(|| seal.as_ref().map(unseal_needs));
    Ok(Restored {
        verified,
        forced: force,
        sealed,
        unseal,
    })
}

async fn seal_status(client: &OpenbaoClient) -> Result<Value, SecretError> {
    let client = client.clone().without_token().without_namespace();
    Ok(client.get("sys/seal-status").await?.unwrap_or(Value::Null))
}

fn unseal_needs(seal: &Value) -> UnsealNeeds {
    UnsealNeeds {
        seal_type: str_field(seal, "type").unwrap_or_else(|| "shamir".to_owned()),
        shares: seal["n"].as_u64().unwrap_or(0),
        threshold: seal["t"].as_u64().unwrap_or(0),
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Read the whole archive once: hash the file, unpack it as a stream (bounded), hash each entry
/// and compare with `SHA256SUMS`.
fn check_archive(file: &Path) -> Result<Verified, BackupError> {
    let not_archive = |reason: String| BackupError::NotAnArchive {
        path: file.to_owned(),
        reason,
    };
    let handle = std::fs::File::open(file).map_err(io("open", file))?;
    let size = handle.metadata().map_err(io("inspect", file))?.len();
    if size > MAX_ARCHIVE_BYTES {
        return Err(BackupError::TooLarge {
            path: file.to_owned(),
            limit: MAX_ARCHIVE_BYTES,
        });
    }
    let mut whole = HashingReader {
        inner: handle,
        hasher: Sha256::new(),
    };
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(&mut whole).take(MAX_UNPACKED_BYTES));
    let mut hashes: Vec<(String, String, u64)> = Vec::new();
    let mut meta: Option<Vec<u8>> = None;
    let mut sums: Option<Vec<u8>> = None;
    let entries = archive
        .entries()
        .map_err(|e| not_archive(format!("not a gzip tar archive ({e})")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_archive(format!("unreadable entry ({e})")))?;
        let name = entry
            .path()
            .map_err(|e| not_archive(format!("an entry has an unreadable name ({e})")))?
            .to_string_lossy()
            .into_owned();
        if !ENTRIES.contains(&name.as_str()) {
            return Err(not_archive(format!(
                "unexpected entry {name:?} (a snapshot holds only {})",
                ENTRIES.join(", ")
            )));
        }
        if hashes.iter().any(|(n, _, _)| *n == name) {
            return Err(not_archive(format!("the entry {name:?} appears twice")));
        }
        let mut hasher = Sha256::new();
        let mut kept = Vec::new();
        let small = matches!(name.as_str(), META | SUMS);
        let mut buf = vec![0u8; 64 * 1024];
        let mut len: u64 = 0;
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| not_archive(format!("{name} is truncated or corrupt ({e})")))?;
            if n == 0 {
                break;
            }
            len += n as u64;
            hasher.update(&buf[..n]);
            if small {
                if len > MAX_SMALL_ENTRY {
                    return Err(not_archive(format!(
                        "{name} is larger than {MAX_SMALL_ENTRY} bytes"
                    )));
                }
                kept.extend_from_slice(&buf[..n]);
            }
        }
        match name.as_str() {
            META => meta = Some(kept),
            SUMS => sums = Some(kept),
            _ => {}
        }
        hashes.push((name, hex::encode(hasher.finalize()), len));
    }
    // Read what is left (gzip trailer, padding), so the whole-file hash covers every byte.
    drop(archive);
    std::io::copy(&mut whole, &mut std::io::sink()).map_err(io("read", file))?;
    for wanted in ENTRIES {
        if !hashes.iter().any(|(n, _, _)| n == wanted) {
            return Err(not_archive(format!("the entry {wanted} is missing")));
        }
    }
    let sums = String::from_utf8(sums.unwrap_or_default())
        .map_err(|_| not_archive(format!("{SUMS} is not text")))?;
    let mut checked = Vec::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let mut parts = line.split_whitespace();
        let (Some(expected), Some(entry), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(not_archive(format!(
                "{SUMS} has a line that is not `<sha256>  <name>`"
            )));
        };
        let entry = entry.trim_start_matches('*');
        let Some((_, actual, _)) = hashes.iter().find(|(n, _, _)| n == entry) else {
            return Err(not_archive(format!(
                "{SUMS} lists {entry:?}, which the archive does not hold"
            )));
        };
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(BackupError::ChecksumMismatch {
                path: file.to_owned(),
                entry: entry.to_owned(),
                expected: expected.to_owned(),
                actual: actual.clone(),
            });
        }
        checked.push(entry.to_owned());
    }
    for wanted in [META, STATE] {
        if !checked.iter().any(|c| c == wanted) {
            return Err(not_archive(format!("{SUMS} does not list {wanted}")));
        }
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Meta {
        index: u64,
        term: u64,
        size: Option<u64>,
    }
    let meta: Meta = serde_json::from_slice(&meta.unwrap_or_default()).map_err(|e| {
        not_archive(format!(
            "{META} is not raft snapshot metadata ({})",
            crate::redact::json_error_detail(&e)
        ))
    })?;
    let state_len = hashes
        .iter()
        .find(|(n, _, _)| n == STATE)
        .map(|(_, _, l)| *l)
        .unwrap_or(0);
    if let Some(expected) = meta.size
        && expected != state_len
    {
        return Err(not_archive(format!(
            "{STATE} has {state_len} bytes, {META} says {expected}"
        )));
    }
    Ok(Verified {
        path: file.to_owned(),
        size,
        sha256: hex::encode(whole.hasher.finalize()),
        raft_index: meta.index,
        raft_term: meta.term,
        checked,
        manifest: None,
    })
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn io(context: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io {
        context,
        path,
        source,
    }
}

fn temp_beside(file: &Path) -> PathBuf {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    let name = format!(
        ".{}.tmp-{}-{:08x}",
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        rand::random::<u32>()
    );
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

async fn create_private(path: &Path) -> Result<tokio::fs::File, BackupError> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await.map_err(io("create", path))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::Io {
            context: "file worker",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })?
}

/// `2026-12-04T03:44:06Z` for `time` (UTC).
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's
/// well-known algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_are_rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_796_355_846)),
            "2026-12-04T03:44:06Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn the_manifest_sits_beside_the_archive() {
        assert_eq!(
            manifest_path(Path::new("/b/x.snap")),
            PathBuf::from("/b/x.snap.json")
        );
    }
}
