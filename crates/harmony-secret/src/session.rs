//! The session cache: an OpenBao token obtained by a login, kept on disk so the next run (or a
//! second process) does not log in again.
//!
//! One JSON file per (OpenBao URL, identity) under `harmony_data_dir()/sessions/`, named by the
//! sha256 of both, so URL characters never reach a file name. Files are 0600 in a 0700
//! directory and replaced atomically (temp file in the same directory, fsync, rename), so a reader
//! sees the old or the new session, never half of one. Read-modify-write goes through
//! [`SessionCache::update`], which holds an exclusive lock on a sidecar `.lock` file, so two
//! processes writing at once cannot lose each other's fields (e.g. the newest refresh token).
//! A longer critical section that includes network calls (the SSO silent refresh: read the
//! refresh token, spend it, store its successor) holds a [`SessionLock`] from
//! [`SessionCache::lock`] across them instead. The lock is an OS file lock (`flock`), so the OS
//! releases it when its holder exits, however it exits; locking and file I/O run on the
//! blocking pool.
//!
//! A file that cannot be parsed is not an error: it is logged as a warning and treated as absent,
//! and the next successful login overwrites it.
//!
//! Where an OS keychain answers (and unless `HARMONY_SESSION_STORE=file`), the tokens themselves
//! go to the keychain and the file keeps only the rest ([`crate::keychain`]); locking, listing and
//! forgetting work the same either way.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::SecretError;
use crate::keychain::{self, SessionStore};
use crate::private_file::{
    Durability, acquire_lock, ensure_private_dir, run_blocking, write_private,
};

/// Version of the file layout, written into every file.
const FORMAT_VERSION: u32 = 1;
/// How long [`SessionCache::update`] waits for another process to release the lock. Longer than
/// a silent refresh holds it with the default 10 s request timeouts (four requests).
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// A cached OpenBao session: the token a login produced, and what is needed to judge and renew it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Layout version ([`FORMAT_VERSION`]).
    #[serde(default)]
    pub format: u32,
    /// The OpenBao server the token belongs to.
    pub url: String,
    /// Who the token is for, e.g. `userpass:userpass:alice` (method, mount, user or role).
    pub identity: String,
    /// The OpenBao token.
    #[serde(serialize_with = "expose")]
    pub token: SecretString,
    /// The token's accessor (lets an operator revoke it without knowing it).
    #[serde(default)]
    pub accessor: Option<String>,
    /// When the token expires, in unix seconds; `None` when it never does.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Whether OpenBao allows renewing the token.
    #[serde(default)]
    pub renewable: bool,
    /// State of the SSO login that produced the token, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSession>,
}

/// The SSO half of a session: what a silent refresh needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcSession {
    /// The newest refresh token (an older one is refused; some providers then revoke the grant).
    #[serde(
        default,
        serialize_with = "expose_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token: Option<SecretString>,
    /// The OpenID provider's issuer URL.
    pub issuer: String,
    /// The public client id the tokens were issued to.
    pub client_id: String,
    /// The OpenBao JWT role the id_token is exchanged at.
    pub role: String,
}

fn expose<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

fn expose_opt<S: Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_some(secret.expose_secret()),
        None => s.serialize_none(),
    }
}

impl Session {
    /// A session for `token`, valid for `ttl` from now (`None`: no expiry).
    pub fn new(
        url: impl Into<String>,
        identity: impl Into<String>,
        token: SecretString,
        ttl: Option<Duration>,
        renewable: bool,
    ) -> Self {
        Self {
            format: FORMAT_VERSION,
            url: url.into(),
            identity: identity.into(),
            token,
            accessor: None,
            expires_at: ttl.map(|ttl| expiry_after(ttl.as_secs())),
            renewable,
            oidc: None,
        }
    }

    /// Whether the token's expiry has passed (a session without expiry never expires).
    pub fn is_expired(&self) -> bool {
        self.expires_at.is_some_and(|at| at <= unix_now())
    }
}

/// The unix time `seconds` from now, saturating (a server-supplied lease can be anything).
pub(crate) fn expiry_after(seconds: u64) -> u64 {
    unix_now().saturating_add(seconds)
}

/// Seconds since the unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The directory of session files.
#[derive(Debug, Clone)]
pub struct SessionCache {
    dir: PathBuf,
    store: SessionStore,
}

impl SessionCache {
    /// A cache in `dir` (created with mode 0700 on first write), keeping tokens where
    /// `HARMONY_SESSION_STORE` says, by default in the OS keychain when one answers.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let store = SessionStore::from_env().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "keeping sessions in 0600 files");
            SessionStore::File
        });
        Self {
            dir: dir.into(),
            store,
        }
    }

    /// The same cache, keeping new tokens in `store`.
    pub fn with_store(mut self, store: SessionStore) -> Self {
        self.store = store;
        self
    }

    /// Where tokens are kept.
    pub fn store_kind(&self) -> SessionStore {
        self.store
    }

    /// The default location, `harmony_data_dir()/sessions`.
    pub fn default_dir() -> Result<PathBuf, SecretError> {
        Ok(harmony_env::harmony_data_dir()?.join("sessions"))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding the session for (`url`, `identity`).
    pub fn file_path(&self, url: &str, identity: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_stem(url, identity)))
    }

    /// The cached session, or `None` when there is none (or it is unreadable: logged as a warning).
    pub async fn load(&self, url: &str, identity: &str) -> Result<Option<Session>, SecretError> {
        let path = self.file_path(url, identity);
        let (url, identity) = (url.to_owned(), identity.to_owned());
        run_blocking(move || read_session(&path, &url, &identity)).await
    }

    /// Store `session`, replacing what was cached for its URL and identity.
    pub async fn store(&self, session: Session) -> Result<(), SecretError> {
        self.update(&session.url.clone(), &session.identity.clone(), move |_| {
            Some(session)
        })
        .await
        .map(drop)
    }

    /// Read-modify-write under an exclusive lock: `change` gets the current session (`None` when
    /// absent or unreadable) and returns the one to store (`None` deletes the file). Returns what
    /// was stored. Waits at most [`LOCK_WAIT`] for another holder.
    pub async fn update<F>(
        &self,
        url: &str,
        identity: &str,
        change: F,
    ) -> Result<Option<Session>, SecretError>
    where
        F: FnOnce(Option<Session>) -> Option<Session> + Send + 'static,
    {
        self.lock(url, identity, LOCK_WAIT)
            .await?
            .update(change)
            .await
    }

    /// Take the exclusive lock on the session for (`url`, `identity`), waiting at most `wait`
    /// for another holder (process or task). Until the returned guard is dropped, every other
    /// [`SessionCache::update`] or [`SessionCache::lock`] on that session waits; [`SessionCache::load`]
    /// does not (it sees the old or the new file, never half of one).
    pub async fn lock(
        &self,
        url: &str,
        identity: &str,
        wait: Duration,
    ) -> Result<SessionLock, SecretError> {
        let dir = self.dir.clone();
        let lock_path = self.dir.join(format!("{}.lock", file_stem(url, identity)));
        let file = run_blocking(move || {
            ensure_private_dir(&dir)?;
            acquire_lock(&lock_path, "session lock", wait)
        })
        .await?;
        Ok(SessionLock {
            _file: file,
            path: self.file_path(url, identity),
            url: url.to_owned(),
            identity: identity.to_owned(),
            store: self.store,
        })
    }

    /// Forget the session for (`url`, `identity`).
    pub async fn remove(&self, url: &str, identity: &str) -> Result<(), SecretError> {
        self.update(url, identity, |_| None).await.map(drop)
    }

    /// Every session cached for the server at `url` (any identity) that can be read, tokens
    /// included (from the keychain where they are kept there): what [`Self::remove_all_for`]
    /// would forget, so a caller can revoke them first.
    pub async fn sessions_for(&self, url: &str) -> Result<Vec<Session>, SecretError> {
        let mut sessions = Vec::new();
        for (_, u, identity) in self.files_for(url).await? {
            if let Some(identity) = identity
                && let Some(session) = self.load(&u, &identity).await?
            {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    /// Forget every session cached for the server at `url` (any identity), keychain entries
    /// included; lock files stay (another process may hold one). Returns how many.
    pub async fn remove_all_for(&self, url: &str) -> Result<usize, SecretError> {
        let mut removed = 0;
        for (path, u, identity) in self.files_for(url).await? {
            // Under its lock, keychain entry included; a file not named as the cache names it
            // (copied in by hand) is simply removed.
            if let Some(identity) = identity {
                self.remove(&u, &identity).await?;
            }
            remove_session_file(&path)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The session files whose server is `url`: (path, url as written, identity).
    async fn files_for(
        &self,
        url: &str,
    ) -> Result<Vec<(PathBuf, String, Option<String>)>, SecretError> {
        let dir = self.dir.clone();
        let found = run_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(source) => {
                    return Err(SecretError::Io {
                        context: format!("list session directory {}", dir.display()),
                        source,
                    });
                }
            };
            let mut found = Vec::new();
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_none_or(|ext| ext != "json") {
                    continue;
                }
                // A file that cannot be read or parsed is not ours to judge: leave it.
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                    continue;
                };
                if let Some(u) = value.get("url").and_then(|u| u.as_str()) {
                    let identity = value.get("identity").and_then(|i| i.as_str());
                    found.push((path, u.to_owned(), identity.map(str::to_owned)));
                }
            }
            Ok(found)
        })
        .await?;
        Ok(found
            .into_iter()
            .filter(|(_, u, _)| u.trim_end_matches('/') == url.trim_end_matches('/'))
            .collect())
    }
}

/// An exclusive hold on one session file, from [`SessionCache::lock`]; released when dropped
/// (on every path, including a cancelled future). Reads and writes through it do not take the
/// lock again.
#[derive(Debug)]
pub struct SessionLock {
    /// Holds the OS lock; closing it releases the lock.
    _file: File,
    path: PathBuf,
    url: String,
    identity: String,
    store: SessionStore,
}

impl SessionLock {
    /// The session as it is now (`None` when absent or unreadable).
    pub async fn load(&self) -> Result<Option<Session>, SecretError> {
        let (path, url, identity) = (self.path.clone(), self.url.clone(), self.identity.clone());
        run_blocking(move || read_session(&path, &url, &identity)).await
    }

    /// Read-modify-write, as [`SessionCache::update`], under this lock.
    pub async fn update<F>(&self, change: F) -> Result<Option<Session>, SecretError>
    where
        F: FnOnce(Option<Session>) -> Option<Session> + Send + 'static,
    {
        let (path, url, identity) = (self.path.clone(), self.url.clone(), self.identity.clone());
        let store = self.store;
        run_blocking(move || {
            let next = change(read_session(&path, &url, &identity)?);
            match &next {
                Some(session) => write_session(&path, session, store)?,
                None => {
                    // Whatever the store is now: an entry written while it was `keychain` must
                    // not outlive its file. The entry first, so a failure leaves the file that
                    // names it (and a retry finds both).
                    if store == SessionStore::Keychain || keychain::keychain_available() {
                        keychain::delete(&keychain_account(&path))?;
                    }
                    remove_session_file(&path)?;
                }
            }
            Ok(next)
        })
        .await
    }

    /// Replace the session with `session`.
    pub async fn store(&self, session: Session) -> Result<(), SecretError> {
        self.update(move |_| Some(session)).await.map(drop)
    }
}

fn remove_session_file(path: &Path) -> Result<(), SecretError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SecretError::Io {
            context: format!("remove session file {}", path.display()),
            source,
        }),
    }
}

fn file_stem(url: &str, identity: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(url.trim_end_matches('/').as_bytes());
    // A separator no URL contains, so ("a", "bc") and ("ab", "c") differ.
    hasher.update(b"\n");
    hasher.update(identity.as_bytes());
    hex::encode(hasher.finalize())
}

/// Runs blocking file work on the blocking pool, keeping the caller's tracing subscriber.
fn read_session(path: &Path, url: &str, identity: &str) -> Result<Option<Session>, SecretError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SecretError::Io {
                context: format!("read session file {}", path.display()),
                source,
            });
        }
    };
    let mut value: serde_json::Value = match crate::redact::from_json_slice(text.as_bytes()) {
        Ok(value) => value,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "session file is corrupt; ignoring it (the next login overwrites it)");
            return Ok(None);
        }
    };
    if value.get(SECRETS_FIELD).and_then(serde_json::Value::as_str) == Some(KEYCHAIN) {
        let Some((token, refresh)) = keychain::get(&keychain_account(path))? else {
            tracing::info!(path = %path.display(), "the session's keychain entry is gone; signing in again");
            return Ok(None);
        };
        value["token"] = serde_json::Value::String(token.expose_secret().to_owned());
        if let (Some(refresh), Some(oidc)) = (refresh, value.get_mut("oidc")) {
            oidc["refresh_token"] = serde_json::Value::String(refresh.expose_secret().to_owned());
        }
    }
    // Through bytes again so a wrong-typed field is reported by path, never by value.
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&value).unwrap_or_default());
    match crate::redact::from_json_slice::<Session>(&bytes) {
        Ok(session)
            if session.url.trim_end_matches('/') == url.trim_end_matches('/')
                && session.identity == identity =>
        {
            Ok(Some(session))
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "session file belongs to another server or identity; ignoring it");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "session file is corrupt; ignoring it (the next login overwrites it)");
            Ok(None)
        }
    }
}

/// The file field that says where the tokens are.
const SECRETS_FIELD: &str = "secrets";
const KEYCHAIN: &str = "keychain";

/// The keychain account of the session in `path`: a hash of the file's full path, so two data
/// directories (two Harmony setups of one user) never share an entry, and no URL shows.
fn keychain_account(path: &Path) -> String {
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let digest = Sha256::digest(full.to_string_lossy().as_bytes());
    format!("session-{}", hex::encode(&digest[..16]))
}

/// Write `session` to `path`, its tokens to the keychain when `store` says so (first, so a reader
/// of the new file finds them).
fn write_session(path: &Path, session: &Session, store: SessionStore) -> Result<(), SecretError> {
    if store == SessionStore::File {
        return write_atomically(path, session);
    }
    if let Err(e) = keychain::put(
        &keychain_account(path),
        &session.token,
        session.oidc.as_ref().and_then(|o| o.refresh_token.as_ref()),
    ) {
        // A full keyring (Linux keeps a small per-user quota) must not lose the sign-in.
        tracing::warn!(error = %e, path = %path.display(), "could not keep the session in the keychain; keeping it in the 0600 file instead");
        return write_atomically(path, session);
    }
    let mut without = session.clone();
    without.token = SecretString::from(String::new());
    if let Some(oidc) = without.oidc.as_mut() {
        oidc.refresh_token = None;
    }
    write_atomically_with(path, &without, true)
}

fn write_atomically(path: &Path, session: &Session) -> Result<(), SecretError> {
    write_atomically_with(path, session, false)
}

fn write_atomically_with(
    path: &Path,
    session: &Session,
    in_keychain: bool,
) -> Result<(), SecretError> {
    let encode_error = |e: serde_json::Error| SecretError::Io {
        context: format!("encode session for {}", path.display()),
        source: std::io::Error::other(e),
    };
    let mut value = serde_json::to_value(session).map_err(encode_error)?;
    if in_keychain {
        value[SECRETS_FIELD] = serde_json::Value::String(KEYCHAIN.to_owned());
    }
    let bytes = zeroize::Zeroizing::new(serde_json::to_vec_pretty(&value).map_err(encode_error)?);
    write_private(path, &bytes, Durability::Flushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions in the OS keychain (real Linux keyutils here): the file keeps no token, another
    /// cache (another process, as far as storage goes) reads the session back whole, and
    /// forgetting it deletes the keychain entry too.
    #[tokio::test]
    async fn keychain_store_keeps_tokens_out_of_the_file() {
        assert!(
            keychain::keychain_available(),
            "no OS keychain answers on this machine (Linux: the kernel keyutils)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("http://127.0.0.1:{}", rand::random::<u16>());
        let identity = "jwt:jwt:harmony-developer";
        let cache = SessionCache::new(dir.path()).with_store(SessionStore::Keychain);
        let mut s = session(&url, identity, "tok-S3cret-keychain");
        s.oidc = Some(OidcSession {
            refresh_token: Some(SecretString::from("refresh-S3cret-keychain")),
            issuer: "http://issuer".into(),
            client_id: "cli".into(),
            role: "harmony-developer".into(),
        });
        cache.store(s).await.expect("store");

        let path = cache.file_path(&url, identity);
        let text = std::fs::read_to_string(&path).expect("file");
        assert!(!text.contains("S3cret"), "{text}");
        assert!(text.contains("keychain"), "{text}");

        let other = SessionCache::new(dir.path()).with_store(SessionStore::File);
        let back = other
            .load(&url, identity)
            .await
            .expect("load")
            .expect("present");
        assert_eq!(back.token.expose_secret(), "tok-S3cret-keychain");
        let refresh = back
            .oidc
            .and_then(|o| o.refresh_token)
            .expect("refresh token");
        assert_eq!(refresh.expose_secret(), "refresh-S3cret-keychain");

        cache.remove(&url, identity).await.expect("remove");
        assert!(!path.exists());
        assert!(
            keychain::get(&keychain_account(&path))
                .expect("read")
                .is_none()
        );
    }

    #[test]
    fn session_store_setting_is_checked() {
        let lookup = |v: &'static str| move |_: &str| Some(v.to_owned());
        assert_eq!(
            SessionStore::from_lookup(lookup("file")).expect("file"),
            SessionStore::File
        );
        let err = SessionStore::from_lookup(lookup("vault")).expect_err("bad value");
        assert!(err.to_string().contains("HARMONY_SESSION_STORE"), "{err}");
    }

    fn session(url: &str, identity: &str, token: &str) -> Session {
        Session::new(
            url,
            identity,
            SecretString::from(token),
            Some(Duration::from_secs(3600)),
            true,
        )
    }

    #[tokio::test]
    async fn round_trip_is_private_and_named_by_hash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path().join("sessions"));
        let url = "http://127.0.0.1:8200";
        cache
            .store(session(url, "userpass:userpass:alice", "tok-1"))
            .await
            .expect("store");
        let path = cache.file_path(url, "userpass:userpass:alice");
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(!name.contains(':') && !name.contains('/'), "{name}");
        assert_eq!(name.len(), 64 + ".json".len());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(cache.dir()), 0o700);
        }
        let loaded = cache
            .load(url, "userpass:userpass:alice")
            .await
            .expect("load")
            .expect("present");
        assert_eq!(loaded.token.expose_secret(), "tok-1");
        assert!(loaded.renewable);
        assert!(!loaded.is_expired());
        assert!(
            cache
                .load(url, "userpass:userpass:bob")
                .await
                .expect("load")
                .is_none(),
            "another identity has its own file"
        );
        let debug = format!("{loaded:?}");
        assert!(!debug.contains("tok-1"), "{debug}");
    }

    #[tokio::test]
    async fn corrupt_file_is_ignored_and_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path());
        let (url, id) = ("http://bao:8200", "userpass:userpass:carol");
        std::fs::write(cache.file_path(url, id), b"{ not json").expect("write junk");
        assert!(cache.load(url, id).await.expect("load").is_none());
        cache.store(session(url, id, "tok-2")).await.expect("store");
        let loaded = cache.load(url, id).await.expect("load").expect("present");
        assert_eq!(loaded.token.expose_secret(), "tok-2");
    }

    /// Regression (review finding 4): a server-supplied TTL near `u64::MAX` seconds overflowed
    /// `unix_now() + ttl` (a panic in debug builds, a wrapped past expiry in release).
    #[test]
    fn huge_ttls_saturate() {
        let s = Session::new(
            "http://bao:8200",
            "userpass:userpass:x",
            SecretString::from("t"),
            Some(Duration::from_secs(u64::MAX)),
            true,
        );
        assert_eq!(s.expires_at, Some(u64::MAX));
        assert!(!s.is_expired());
    }

    /// Regression (review finding 1): a session file with a wrong-typed field made serde_json
    /// quote the value (the token) in the warning that was logged.
    #[test]
    #[tracing_test::traced_test]
    fn a_wrong_typed_field_is_reported_without_its_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path());
        let (url, id) = ("http://bao:8200", "userpass:userpass:frank");
        std::fs::write(
            cache.file_path(url, id),
            br#"{"url": "http://bao:8200", "identity": "userpass:userpass:frank",
                "token": "s.session-token-secret", "expires_at": "hvs.expiry-secret-value"}"#,
        )
        .expect("write");
        let read = read_session(&cache.file_path(url, id), url, id).expect("read");
        assert!(read.is_none());
        assert!(logs_contain("session file is corrupt"));
        assert!(logs_contain("expires_at"), "the field path is named");
        assert!(!logs_contain("expiry-secret-value"));
        assert!(!logs_contain("session-token-secret"));
    }

    #[tokio::test]
    async fn oidc_block_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path());
        let (url, id) = ("http://bao:8200", "jwt:jwt:harmony-developer");
        let mut s = session(url, id, "tok-3");
        s.oidc = Some(OidcSession {
            refresh_token: Some(SecretString::from("refresh-xyz")),
            issuer: "http://127.0.0.1:9000".into(),
            client_id: "harmony-cli".into(),
            role: "harmony-developer".into(),
        });
        cache.store(s).await.expect("store");
        let loaded = cache.load(url, id).await.expect("load").expect("present");
        let oidc = loaded.oidc.expect("oidc kept");
        assert_eq!(
            oidc.refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("refresh-xyz".to_owned())
        );
        assert!(!format!("{oidc:?}").contains("refresh-xyz"));
    }

    /// A held lock makes other lockers wait (boundedly, with an error that does not advise
    /// deleting the lock file), writes through the guard do not deadlock on it, and dropping
    /// the guard releases it.
    #[tokio::test]
    async fn held_lock_blocks_others_until_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path());
        let (url, id) = ("http://bao:8200", "jwt:jwt:harmony-developer");
        let lock = cache.lock(url, id, LOCK_WAIT).await.expect("lock");
        lock.store(session(url, id, "tok-4"))
            .await
            .expect("store under the lock");
        let err = cache
            .lock(url, id, Duration::from_millis(100))
            .await
            .expect_err("held elsewhere");
        let text = err.to_string();
        assert!(text.contains("held the session lock"), "{text}");
        assert!(!text.contains("delete"), "{text}");
        drop(lock);
        let again = cache
            .lock(url, id, Duration::from_secs(2))
            .await
            .expect("released on drop");
        let loaded = again.load().await.expect("load").expect("present");
        assert_eq!(loaded.token.expose_secret(), "tok-4");
    }

    const CHILD_URL: &str = "http://bao-cross-process:8200";
    const CHILD_ID: &str = "userpass:userpass:erin";
    const CHILD_ROUNDS: usize = 8;

    /// Real processes racing on one session file: each child appends its marks under
    /// `update`; a lost update or a torn file would drop marks or fail to parse.
    #[tokio::test]
    async fn processes_racing_on_one_file_lose_nothing() {
        let data = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(data.path().join("sessions"));
        cache
            .store(session(CHILD_URL, CHILD_ID, ""))
            .await
            .expect("seed");
        let exe = std::env::current_exe().expect("current exe");
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "session::tests::child_appends_marks",
                        "--ignored",
                        "--quiet",
                    ])
                    // The child finds the cache where every Harmony process would.
                    .env(harmony_env::vars::HARMONY_DATA_DIR, data.path())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn child")
            })
            .collect();
        let mut pids = Vec::new();
        for child in children {
            pids.push(child.id());
            let out = child.wait_with_output().expect("child output");
            assert!(
                out.status.success(),
                "child failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let s = cache
            .load(CHILD_URL, CHILD_ID)
            .await
            .expect("load")
            .expect("file still parses");
        let marks: Vec<&str> = s
            .token
            .expose_secret()
            .split(',')
            .filter(|m| !m.is_empty())
            .collect();
        assert_eq!(marks.len(), pids.len() * CHILD_ROUNDS, "{marks:?}");
        for pid in pids {
            for i in 0..CHILD_ROUNDS {
                assert!(
                    marks.contains(&format!("{pid}-{i}").as_str()),
                    "{pid}-{i} lost"
                );
            }
        }
    }

    #[tokio::test]
    #[ignore = "run as a child process by processes_racing_on_one_file_lose_nothing"]
    async fn child_appends_marks() {
        let cache = SessionCache::new(SessionCache::default_dir().expect("HARMONY_DATA_DIR set"));
        let pid = std::process::id();
        for i in 0..CHILD_ROUNDS {
            cache
                .update(CHILD_URL, CHILD_ID, move |current| {
                    let mut s = current.expect("seeded session is readable");
                    let joined = format!("{}{pid}-{i},", s.token.expose_secret());
                    std::thread::sleep(Duration::from_millis(3));
                    s.token = SecretString::from(joined);
                    Some(s)
                })
                .await
                .expect("update");
        }
    }

    /// Many threads (standing in for processes: the lock is an OS file lock) each append their
    /// mark to the session under `update`; with a lost update some marks would be missing, and a
    /// torn write would leave a file that does not parse.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_lose_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = SessionCache::new(dir.path());
        let (url, id) = ("http://bao:8200", "userpass:userpass:dave");
        cache.store(session(url, id, "")).await.expect("seed");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .update(url, id, move |current| {
                        let mut s = current.expect("seeded session is readable");
                        let joined = format!("{}{i},", s.token.expose_secret());
                        // Widen the race window between read and write.
                        std::thread::sleep(Duration::from_millis(5));
                        s.token = SecretString::from(joined);
                        Some(s)
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.expect("join").expect("update");
        }
        let s = cache.load(url, id).await.expect("load").expect("present");
        let mut marks: Vec<u32> = s
            .token
            .expose_secret()
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| m.parse().expect("mark"))
            .collect();
        marks.sort_unstable();
        assert_eq!(marks, (0..16).collect::<Vec<_>>());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}
