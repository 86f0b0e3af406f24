//! The offline cache: the last copy of each document read, so `harmony run`/`get`/`export` (and,
//! when asked, a [`ConfigManager`](../../harmony_config/struct.ConfigManager.html)) keep working
//! while OpenBao is unreachable or sealed.
//!
//! - **One file per document** under `harmony_data_dir()/cache/`, named by the sha256 of the
//!   server, the namespace and the document's location (`secret/data/harmony/app`), so nothing of
//!   a URL reaches a file name. Each file holds the value, its KV version and when it was saved.
//! - **Encrypted where there is a keychain** (see [`crate::keychain`]): ChaCha20-Poly1305 with one
//!   random 256-bit key kept in the keychain (entry [`KEY_ACCOUNT`]). The server, namespace,
//!   location, version and time are bound to the ciphertext as associated data, so a file cannot
//!   be moved to stand for another document or made to look newer. Where no keychain answers (or
//!   `HARMONY_SESSION_STORE=file`), the value is kept as it is in the 0600 file, like a session
//!   file; [`Saved::Plain`] tells the caller when that happened the first time, so it can say so
//!   once.
//!   Where the cache encrypts, a file holding a plain value is refused when read: Harmony did not
//!   write it, so something that can write the directory but not read the keychain did.
//! - Files are 0600 in a 0700 directory and replaced atomically; the lock that makes two processes
//!   agree on the key is in that directory too, opened without following symlinks. A cache write is not flushed to
//!   disk before returning (losing one costs one more online read); a torn or undecryptable file
//!   is an error that says what to do, never a wrong value.
//! - A key that disappears (the Linux user keyring is emptied at reboot) makes the old files
//!   unreadable; the next online read replaces them.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::SecretError;
use crate::keychain::{self, SessionStore};
use crate::private_file::{
    Durability, acquire_lock, ensure_private_dir, run_blocking, write_private,
};

/// The keychain entry (service `harmony`) holding the cache key.
pub const KEY_ACCOUNT: &str = "offline-cache-key";
/// Version of the file layout.
const FORMAT: u32 = 1;
/// Created beside the files the first time a value is kept unencrypted.
const PLAIN_MARKER: &str = ".unencrypted";
const KEY_LEN: usize = 32;
const KEY_LOCK_WAIT: Duration = Duration::from_secs(10);
/// The lock that makes two processes agree on one cache key, in the cache directory.
const KEY_LOCK_FILE: &str = "key.lock";

/// How cached values are protected at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheProtection {
    /// Encrypted with a key kept in the OS keychain.
    Encrypted,
    /// As they are, in 0600 files (no keychain here).
    PrivateFile,
}

impl CacheProtection {
    /// What [`SessionStore`] chooses: the keychain when one answers and is not refused.
    pub fn from_env() -> Result<Self, SecretError> {
        Ok(match SessionStore::from_env()? {
            SessionStore::Keychain => Self::Encrypted,
            SessionStore::File => Self::PrivateFile,
        })
    }
}

/// What [`CacheScope::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// Encrypted with the keychain's key.
    Encrypted,
    /// Kept unencrypted in a 0600 file; `first_time` when this cache had never done so before.
    Plain {
        /// The first unencrypted save in this cache directory.
        first_time: bool,
    },
}

/// A document as it was last read.
#[derive(Clone)]
pub struct CachedDocument {
    /// The document.
    pub value: Value,
    /// Its KV v2 version.
    pub version: u64,
    /// When it was last read from OpenBao: saved, or found unchanged and confirmed.
    pub saved_at: SystemTime,
}

impl CachedDocument {
    /// How long ago it was read (zero if the clock went back).
    pub fn age(&self) -> Duration {
        SystemTime::now()
            .duration_since(self.saved_at)
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for CachedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value may hold secrets.
        f.debug_struct("CachedDocument")
            .field("version", &self.version)
            .field("saved_at", &self.saved_at)
            .finish_non_exhaustive()
    }
}

/// The cache directory and how it protects values.
#[derive(Debug, Clone)]
pub struct OfflineCache {
    dir: PathBuf,
    /// `None`: as [`CacheProtection::from_env`] chooses, asked at the first save, and when a
    /// file holding a plain value is read (refused where the cache encrypts).
    protection: Option<CacheProtection>,
    key_account: String,
}

impl OfflineCache {
    /// A cache in `dir`, encrypted when a keychain answers (and `HARMONY_SESSION_STORE` does not
    /// say `file`).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            protection: None,
            key_account: KEY_ACCOUNT.to_owned(),
        }
    }

    /// Another keychain entry for the key (tests keep theirs apart from a person's).
    pub fn with_key_account(mut self, account: impl Into<String>) -> Self {
        self.key_account = account.into();
        self
    }

    /// The default directory, with the protection the environment chooses.
    pub fn from_env() -> Result<Self, SecretError> {
        Ok(Self::new(Self::default_dir()?))
    }

    /// This protection, whatever the environment says.
    pub fn with_protection(mut self, protection: CacheProtection) -> Self {
        self.protection = Some(protection);
        self
    }

    /// `harmony_data_dir()/cache`.
    pub fn default_dir() -> Result<PathBuf, SecretError> {
        Ok(harmony_env::harmony_data_dir()?.join("cache"))
    }

    /// Where the files are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How values are protected (asks the keychain once per process when not set).
    pub fn protection(&self) -> Result<CacheProtection, SecretError> {
        match self.protection {
            Some(protection) => Ok(protection),
            None => CacheProtection::from_env(),
        }
    }

    /// The documents of one server (URL, trailing `/` ignored) and namespace.
    pub fn scope(&self, server: &str, namespace: Option<&str>) -> CacheScope {
        CacheScope {
            cache: self.clone(),
            server: server.trim_end_matches('/').to_owned(),
            namespace: namespace.unwrap_or_default().trim_matches('/').to_owned(),
        }
    }

    /// How many copies of `server`'s documents (all namespaces) are kept, and how.
    pub async fn copies_of(&self, server: &str) -> Result<Copies, SecretError> {
        let dir = self.dir.clone();
        let server = server.trim_end_matches('/').to_owned();
        run_blocking(move || {
            let mut copies = Copies::default();
            for (_, encrypted) in files_of(&dir, &server)? {
                if encrypted {
                    copies.encrypted += 1;
                } else {
                    copies.plain += 1;
                }
            }
            Ok(copies)
        })
        .await
    }

    /// Delete every cached document of `server` (all namespaces); returns how many.
    pub async fn remove_all_for(&self, server: &str) -> Result<usize, SecretError> {
        let dir = self.dir.clone();
        let server = server.trim_end_matches('/').to_owned();
        run_blocking(move || {
            let files = files_of(&dir, &server)?;
            for (path, _) in &files {
                std::fs::remove_file(path).map_err(|source| SecretError::Io {
                    context: format!("delete the cached document {}", path.display()),
                    source,
                })?;
            }
            Ok(files.len())
        })
        .await
    }
}

/// How many copies of one server's documents are kept, by protection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copies {
    /// Encrypted with the keychain's key.
    pub encrypted: usize,
    /// Unencrypted 0600 files.
    pub plain: usize,
}

impl Copies {
    /// All of them.
    pub fn total(&self) -> usize {
        self.encrypted + self.plain
    }
}

/// The files in `dir` holding `server`'s documents, each with whether it is encrypted.
fn files_of(dir: &Path, server: &str) -> Result<Vec<(PathBuf, bool)>, SecretError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SecretError::Io {
                context: format!("list the offline cache {}", dir.display()),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let entry = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Entry>(&bytes).ok());
        if let Some(entry) = entry.filter(|e| e.header.server == server) {
            files.push((path, entry.sealed.is_some()));
        }
    }
    Ok(files)
}

/// The cached documents of one server and namespace.
#[derive(Debug, Clone)]
pub struct CacheScope {
    cache: OfflineCache,
    server: String,
    namespace: String,
}

/// The part of a file read without the key.
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    server: String,
    namespace: String,
    location: String,
    version: u64,
    /// Seconds since the Unix epoch.
    saved_at: u64,
}

/// A whole file. Not `Debug`: `value` may hold secrets.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(flatten)]
    header: Header,
    /// Base64 nonce and ciphertext (with tag), when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<Sealed>,
    /// The value, when kept unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    nonce: String,
    ciphertext: String,
}

impl Header {
    /// What the ciphertext is bound to.
    fn associated_data(&self) -> Vec<u8> {
        format!(
            "harmony-offline-cache\0{}\0{}\0{}\0{}\0{}\0{}",
            self.format, self.server, self.namespace, self.location, self.version, self.saved_at
        )
        .into_bytes()
    }
}

impl CacheScope {
    /// The server these documents came from.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The file of `location`.
    pub fn file_path(&self, location: &str) -> PathBuf {
        let digest =
            Sha256::digest(format!("{}\0{}\0{}", self.server, self.namespace, location).as_bytes());
        self.cache
            .dir
            .join(format!("{}.json", hex::encode(&digest[..16])))
    }

    /// Keep `value` (version `version`) as the copy of `location`, read just now.
    pub async fn save(
        &self,
        location: &str,
        version: u64,
        value: &Value,
    ) -> Result<Saved, SecretError> {
        let scope = self.clone();
        let location = location.to_owned();
        let value = value.clone();
        run_blocking(move || scope.save_blocking(&location, version, value)).await
    }

    fn save_blocking(
        &self,
        location: &str,
        version: u64,
        value: Value,
    ) -> Result<Saved, SecretError> {
        let dir = &self.cache.dir;
        ensure_private_dir(dir)?;
        let header = Header {
            format: FORMAT,
            server: self.server.clone(),
            namespace: self.namespace.clone(),
            location: location.to_owned(),
            version,
            saved_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
        };
        let protection = self.cache.protection()?;
        if self.confirm_unchanged(location, version, &value) {
            return Ok(match protection {
                CacheProtection::Encrypted => Saved::Encrypted,
                CacheProtection::PrivateFile => Saved::Plain { first_time: false },
            });
        }
        let (entry, saved) = match protection {
            CacheProtection::Encrypted => {
                let key = cache_key(dir, &self.cache.key_account, true)?.ok_or_else(|| {
                    SecretError::Io {
                        context: "create the offline cache key".to_owned(),
                        source: std::io::Error::other("the keychain did not keep it"),
                    }
                })?;
                let plain = zeroize::Zeroizing::new(serde_json::to_vec(&value).map_err(|e| {
                    SecretError::Io {
                        context: format!("encode the cached copy of {location}"),
                        source: std::io::Error::other(e),
                    }
                })?);
                let sealed = seal(&key, &header, &plain)?;
                (
                    Entry {
                        header,
                        sealed: Some(sealed),
                        value: None,
                    },
                    Saved::Encrypted,
                )
            }
            CacheProtection::PrivateFile => {
                let marker = dir.join(PLAIN_MARKER);
                let first_time = !marker.exists();
                if first_time {
                    write_private(&marker, b"values in this directory are not encrypted: no OS keychain was available\n", Durability::Lazy)?;
                }
                (
                    Entry {
                        header,
                        sealed: None,
                        value: Some(value),
                    },
                    Saved::Plain { first_time },
                )
            }
        };
        let bytes =
            zeroize::Zeroizing::new(serde_json::to_vec(&entry).map_err(|e| SecretError::Io {
                context: format!("encode the cached copy of {location}"),
                source: std::io::Error::other(e),
            })?);
        write_private(&self.file_path(location), &bytes, Durability::Lazy)?;
        Ok(saved)
    }

    /// When the copy on disk already holds `version` with exactly `value`, mark it as
    /// confirmed now (its modification time) instead of writing it again, and say so. Any
    /// doubt (no copy, another version or value, a file that does not open) is `false`: the
    /// caller writes the copy.
    fn confirm_unchanged(&self, location: &str, version: u64, value: &Value) -> bool {
        let same = match self.load_blocking(location) {
            Ok(Some(copy)) => copy.version == version && copy.value == *value,
            _ => false,
        };
        // `load_blocking` refuses a plain file where the cache encrypts, so a planted copy is
        // never confirmed: it is replaced.
        same && touch(&self.file_path(location)).is_ok()
    }

    /// The copy of `location`, `None` when there is none. A file that cannot be read or
    /// decrypted is an error saying why and that the next online read replaces it.
    pub async fn load(&self, location: &str) -> Result<Option<CachedDocument>, SecretError> {
        let scope = self.clone();
        let location = location.to_owned();
        run_blocking(move || scope.load_blocking(&location)).await
    }

    fn load_blocking(&self, location: &str) -> Result<Option<CachedDocument>, SecretError> {
        let path = self.file_path(location);
        let unusable = |why: &str| SecretError::Io {
            context: format!(
                "the cached copy of {location} ({}) cannot be used",
                path.display()
            ),
            source: std::io::Error::other(format!(
                "{why}; the next read while OpenBao answers replaces it"
            )),
        };
        // Confirmed unchanged by a later read (see `confirm_unchanged`): the newer of the two.
        let confirmed_at = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .ok();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => zeroize::Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SecretError::Io {
                    context: format!("read the cached copy of {location} ({})", path.display()),
                    source,
                });
            }
        };
        // serde_json's message would quote the input: say only that it is damaged.
        let entry: Entry =
            serde_json::from_slice(&bytes).map_err(|_| unusable("the file is damaged"))?;
        let header = &entry.header;
        if header.format != FORMAT
            || header.server != self.server
            || header.namespace != self.namespace
            || header.location != location
        {
            return Err(unusable("the file belongs to another document or layout"));
        }
        let value = match (entry.sealed, entry.value) {
            (Some(sealed), None) => {
                let Some(key) = cache_key(&self.cache.dir, &self.cache.key_account, false)? else {
                    return Err(unusable(
                        "its key is no longer in the keychain (the Linux user keyring is emptied at reboot)",
                    ));
                };
                let plain = open(&key, header, &sealed)
                    .ok_or_else(|| unusable("it does not decrypt with the keychain's key"))?;
                serde_json::from_slice(&plain).map_err(|_| unusable("the file is damaged"))?
            }
            // Harmony writes plain files only where the cache is not encrypted: here one was put
            // by something that can write the directory but not read the keychain.
            (None, Some(_)) if self.cache.protection()? == CacheProtection::Encrypted => {
                return Err(unusable(
                    "it is not encrypted, but this cache encrypts its copies (the OS keychain \
                     answers), so Harmony did not write it; delete it if you did not expect it",
                ));
            }
            (None, Some(value)) => value,
            _ => return Err(unusable("the file is damaged")),
        };
        Ok(Some(CachedDocument {
            value,
            version: header.version,
            saved_at: (UNIX_EPOCH + Duration::from_secs(header.saved_at))
                .max(confirmed_at.unwrap_or(UNIX_EPOCH)),
        }))
    }
}

/// The keychain's cache key; with `create`, made (under a lock, so two processes agree on one)
/// when there is none.
fn cache_key(
    dir: &Path,
    account: &str,
    create: bool,
) -> Result<Option<ChaCha20Poly1305>, SecretError> {
    if let Some(key) = read_key(account)? {
        return Ok(Some(key));
    }
    if !create {
        return Ok(None);
    }
    // In the 0700 cache directory (never a shared /tmp another user could pre-create), opened
    // without following symlinks. Processes sharing a data directory agree on one key; two data
    // directories of one user making the first key at the same instant may each write one, and
    // the loser's copies are then replaced at its next online read.
    ensure_private_dir(dir)?;
    let _lock = acquire_lock(
        &dir.join(KEY_LOCK_FILE),
        "offline cache key lock",
        KEY_LOCK_WAIT,
    )?;
    if let Some(key) = read_key(account)? {
        return Ok(Some(key));
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(bytes.as_mut()).map_err(|_| SecretError::Io {
        context: "create the offline cache key".to_owned(),
        source: std::io::Error::other("the system's random source failed"),
    })?;
    keychain::put_text(account, &B64.encode(bytes.as_ref()))?;
    read_key(account)
}

fn read_key(account: &str) -> Result<Option<ChaCha20Poly1305>, SecretError> {
    let Some(text) = keychain::get_text(account)? else {
        return Ok(None);
    };
    let bytes = match B64.decode(text.trim()) {
        Ok(bytes) if bytes.len() == KEY_LEN => zeroize::Zeroizing::new(bytes),
        _ => {
            tracing::warn!(
                account,
                "the keychain entry is not an offline cache key; ignoring it"
            );
            return Ok(None);
        }
    };
    Ok(Some(ChaCha20Poly1305::new(Key::from_slice(&bytes))))
}

const NONCE_LEN: usize = 12;

fn seal(key: &ChaCha20Poly1305, header: &Header, plain: &[u8]) -> Result<Sealed, SecretError> {
    let failed = |what: &str| SecretError::Io {
        context: format!("encrypt the cached copy of {}", header.location),
        source: std::io::Error::other(what.to_owned()),
    };
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|_| failed("the system's random source failed"))?;
    let aad = header.associated_data();
    let sealed = key
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .map_err(|_| failed("encryption failed"))?;
    Ok(Sealed {
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(&sealed),
    })
}

/// Set the modification time of the copy at `path` to now, without following a symlink.
fn touch(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options.open(path)?.set_modified(SystemTime::now())
}

fn open(
    key: &ChaCha20Poly1305,
    header: &Header,
    sealed: &Sealed,
) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = B64.decode(&sealed.nonce).ok()?.try_into().ok()?;
    let ciphertext = B64.decode(&sealed.ciphertext).ok()?;
    let aad = header.associated_data();
    key.decrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: &ciphertext,
            aad: &aad,
        },
    )
    .ok()
    .map(zeroize::Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(dir: &Path, protection: CacheProtection) -> CacheScope {
        OfflineCache::new(dir)
            .with_protection(protection)
            .scope("http://127.0.0.1:8200/", Some("team-a"))
    }

    #[tokio::test]
    async fn a_plain_copy_round_trips_and_says_its_first_time_once() {
        let dir = tempfile::tempdir().expect("test step");
        let scope = scope(dir.path(), CacheProtection::PrivateFile);
        let value = serde_json::json!({"password": "hunter2-plain", "port": 5432});
        let first = scope
            .save("secret/data/harmony/app", 3, &value)
            .await
            .expect("test step");
        assert_eq!(first, Saved::Plain { first_time: true });
        let again = scope
            .save("secret/data/harmony/app", 4, &value)
            .await
            .expect("test step");
        assert_eq!(again, Saved::Plain { first_time: false });
        let read = scope
            .load("secret/data/harmony/app")
            .await
            .expect("test step")
            .expect("test step");
        assert_eq!(read.value, value);
        assert_eq!(read.version, 4);
        assert!(read.age() < Duration::from_secs(60));
        assert!(!format!("{read:?}").contains("hunter2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = scope.file_path("secret/data/harmony/app");
            let mode = std::fs::metadata(path)
                .expect("test step")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(dir.path())
                .expect("test step")
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o077, 0, "{dir_mode:o}");
        }
    }

    #[tokio::test]
    async fn copies_are_kept_apart_by_server_namespace_and_location() {
        let dir = tempfile::tempdir().expect("test step");
        let cache = OfflineCache::new(dir.path()).with_protection(CacheProtection::PrivateFile);
        let a = cache.scope("http://a:8200", Some("team-a"));
        let b = cache.scope("http://a:8200", None);
        a.save("secret/data/harmony/app", 1, &serde_json::json!({"x": 1}))
            .await
            .expect("test step");
        assert!(
            b.load("secret/data/harmony/app")
                .await
                .expect("test step")
                .is_none()
        );
        assert!(
            a.load("secret/data/harmony/other")
                .await
                .expect("test step")
                .is_none()
        );
        // A file copied over another document's name is refused, not served.
        std::fs::copy(
            a.file_path("secret/data/harmony/app"),
            a.file_path("secret/data/harmony/other"),
        )
        .expect("test step");
        let err = a
            .load("secret/data/harmony/other")
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("cannot be used"), "{err}");
        assert_eq!(
            cache.copies_of("http://a:8200").await.expect("test step"),
            Copies {
                encrypted: 0,
                plain: 2
            }
        );
        assert_eq!(
            cache
                .remove_all_for("http://a:8200/")
                .await
                .expect("test step"),
            2
        );
        assert!(
            a.load("secret/data/harmony/app")
                .await
                .expect("test step")
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_damaged_file_is_an_error_that_quotes_nothing() {
        let dir = tempfile::tempdir().expect("test step");
        let scope = scope(dir.path(), CacheProtection::PrivateFile);
        std::fs::write(
            scope.file_path("secret/data/harmony/app"),
            br#"{"format":1,"value":{"password":"hunter2-damaged""#,
        )
        .expect("test step");
        let err = scope
            .load("secret/data/harmony/app")
            .await
            .expect_err("must fail");
        let text = format!("{err} {err:?}");
        assert!(text.contains("damaged"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    /// Real keychain (Linux keyutils here); each test its own key entry.
    fn encrypted(dir: &Path, account: &str) -> CacheScope {
        assert!(
            keychain::keychain_available(),
            "these tests need the OS keychain (Linux keyutils: `keyctl add user x y @u` must work)"
        );
        OfflineCache::new(dir)
            .with_protection(CacheProtection::Encrypted)
            .with_key_account(account)
            .scope("http://127.0.0.1:8200", None)
    }

    #[tokio::test]
    async fn an_encrypted_copy_round_trips_and_the_file_holds_no_value() {
        let dir = tempfile::tempdir().expect("test step");
        let account = format!("test-cache-key-{:08x}", rand::random::<u32>());
        let scope = encrypted(dir.path(), &account);
        let value = serde_json::json!({"password": "hunter2-sealed"});
        let saved = scope
            .save("secret/data/harmony/app", 7, &value)
            .await
            .expect("test step");
        assert_eq!(saved, Saved::Encrypted);
        let on_disk =
            std::fs::read_to_string(scope.file_path("secret/data/harmony/app")).expect("test step");
        assert!(!on_disk.contains("hunter2"), "{on_disk}");
        assert!(!dir.path().join(PLAIN_MARKER).exists());
        let read = scope
            .load("secret/data/harmony/app")
            .await
            .expect("test step")
            .expect("test step");
        assert_eq!((read.value, read.version), (value, 7));

        // Made to look like another version: the associated data no longer matches.
        let tampered = on_disk.replace("\"version\":7", "\"version\":8");
        assert_ne!(tampered, on_disk);
        std::fs::write(scope.file_path("secret/data/harmony/app"), tampered).expect("test step");
        let err = scope
            .load("secret/data/harmony/app")
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("cannot be used"), "{err}");
        keychain::delete(&account).expect("test step");
    }

    /// A copy read again at the same version with the same value is not written again: the
    /// file keeps its bytes (a rewrite seals with a new nonce) and only its confirmation time
    /// moves; another value or version is written.
    #[tokio::test]
    async fn an_unchanged_copy_is_confirmed_not_rewritten() {
        let dir = tempfile::tempdir().expect("test step");
        let account = format!("test-cache-key-{:08x}", rand::random::<u32>());
        let scope = encrypted(dir.path(), &account);
        let location = "secret/data/harmony/app";
        let value = serde_json::json!({"password": "hunter2-confirmed", "port": 1});
        scope.save(location, 5, &value).await.expect("test step");
        let path = scope.file_path(location);
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(old))
            .expect("test step");
        let before = std::fs::read(&path).expect("test step");
        assert!(
            scope
                .load(location)
                .await
                .expect("test step")
                .expect("test step")
                .age()
                < Duration::from_secs(60)
        );

        let saved = scope.save(location, 5, &value).await.expect("test step");
        assert_eq!(saved, Saved::Encrypted);
        assert_eq!(
            std::fs::read(&path).expect("test step"),
            before,
            "rewritten"
        );
        let modified = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("test step");
        assert!(modified > old + Duration::from_secs(3000), "not confirmed");

        let changed = serde_json::json!({"password": "hunter2-confirmed", "port": 2});
        scope.save(location, 5, &changed).await.expect("test step");
        assert_ne!(
            std::fs::read(&path).expect("test step"),
            before,
            "another value kept the old copy"
        );
        let read = scope
            .load(location)
            .await
            .expect("test step")
            .expect("test step");
        assert_eq!(read.value, changed);
        scope.save(location, 6, &changed).await.expect("test step");
        let read = scope
            .load(location)
            .await
            .expect("test step")
            .expect("test step");
        assert_eq!(read.version, 6);
        keychain::delete(&account).expect("test step");
    }

    /// The cache key's lock is in the 0700 cache directory, not in a shared /tmp, and a
    /// symlink planted there is not followed.
    #[cfg(unix)]
    #[tokio::test]
    async fn the_key_lock_is_private_and_not_followed_through_a_symlink() {
        let dir = tempfile::tempdir().expect("test step");
        let account = format!("test-cache-key-{:08x}", rand::random::<u32>());
        let scope = encrypted(dir.path(), &account);
        let target = dir.path().join("planted-target");
        std::os::unix::fs::symlink(&target, dir.path().join(KEY_LOCK_FILE)).expect("test step");
        let err = scope
            .save("secret/data/harmony/app", 1, &serde_json::json!({"a": 1}))
            .await
            .expect_err("a symlinked lock is refused");
        assert!(err.to_string().contains("lock"), "{err}");
        assert!(!target.exists(), "the symlink was followed");
        assert!(keychain::get_text(&account).expect("test step").is_none());

        // Without the symlink the key is made under a lock file in the cache directory itself.
        std::fs::remove_file(dir.path().join(KEY_LOCK_FILE)).expect("test step");
        scope
            .save("secret/data/harmony/app", 1, &serde_json::json!({"a": 1}))
            .await
            .expect("test step");
        let lock = std::fs::symlink_metadata(dir.path().join(KEY_LOCK_FILE)).expect("test step");
        assert!(lock.is_file());
        keychain::delete(&account).expect("test step");
    }

    /// In encrypted mode an unencrypted entry (planted by something that can write the cache
    /// directory but not read the keyring) is refused, quoting nothing of it.
    #[tokio::test]
    async fn a_plain_entry_is_refused_in_encrypted_mode() {
        let dir = tempfile::tempdir().expect("test step");
        let account = format!("test-cache-key-{:08x}", rand::random::<u32>());
        let plain = OfflineCache::new(dir.path())
            .with_protection(CacheProtection::PrivateFile)
            .scope("http://127.0.0.1:8200", None);
        plain
            .save(
                "secret/data/harmony/app",
                9,
                &serde_json::json!({"password": "hunter2-planted"}),
            )
            .await
            .expect("test step");
        let scope = encrypted(dir.path(), &account);
        let err = scope
            .load("secret/data/harmony/app")
            .await
            .expect_err("a plain entry must be refused");
        let text = format!("{err} {err:?}");
        assert!(text.contains("not encrypted"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn a_lost_key_makes_the_copy_unusable_and_says_why() {
        let dir = tempfile::tempdir().expect("test step");
        let account = format!("test-cache-key-{:08x}", rand::random::<u32>());
        let scope = encrypted(dir.path(), &account);
        scope
            .save("secret/data/harmony/app", 1, &serde_json::json!({"a": 1}))
            .await
            .expect("test step");
        keychain::delete(&account).expect("test step");
        let err = scope
            .load("secret/data/harmony/app")
            .await
            .expect_err("must fail");
        let text = format!("{err:#}");
        let source = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            source.contains("no longer in the keychain"),
            "{text} / {source}"
        );
        // The next online read makes a new key and replaces the copy.
        scope
            .save("secret/data/harmony/app", 2, &serde_json::json!({"a": 2}))
            .await
            .expect("test step");
        assert_eq!(
            scope
                .load("secret/data/harmony/app")
                .await
                .expect("test step")
                .expect("test step")
                .version,
            2
        );
        keychain::delete(&account).expect("test step");
    }
}
