//! [`OpenbaoSecretStore`]: the [`SecretStore`] on OpenBao's KV v2 engine.
//!
//! Documents live at `<mount>/data/<prefix>/<path>`; writes send KV v2's `options.cas` so a
//! concurrent change surfaces as [`SecretError::Conflict`] with both versions. The token comes
//! from the auth chain ([`crate::auth`]) at [`OpenbaoSecretStore::connect`]; if OpenBao later
//! rejects it (revoked, expired), the store signs in again once and retries the request once.

use std::sync::RwLock;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::auth::{self, AuthMethodUsed};
use crate::client::OpenbaoClient;
use crate::path;
use crate::session::SessionCache;
use crate::settings::OpenbaoSettings;
use crate::{SecretError, SecretStore, Versioned, WriteMode};

/// A [`SecretStore`] on OpenBao KV v2. Create it with [`OpenbaoSecretStore::connect`].
pub struct OpenbaoSecretStore {
    /// Carries no token: each request takes the current one from `state`.
    client: OpenbaoClient,
    settings: OpenbaoSettings,
    cache: Option<SessionCache>,
    state: RwLock<AuthState>,
    /// Serialises re-authentication so concurrent rejected requests sign in once.
    reauth: tokio::sync::Mutex<()>,
}

struct AuthState {
    token: SecretString,
    method: AuthMethodUsed,
    /// Bumped on each re-authentication, so a request knows whether someone already replaced the
    /// token it was rejected with.
    generation: u64,
}

impl std::fmt::Debug for OpenbaoSecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenbaoSecretStore")
            .field("url", &self.client.url())
            .field("namespace", &self.client.namespace())
            .field("kv_mount", &self.settings.kv_mount())
            .field("kv_prefix", &self.settings.kv_prefix())
            .field("auth_method", &self.auth_method())
            .finish_non_exhaustive()
    }
}

impl OpenbaoSecretStore {
    /// Validate `settings`, run the auth chain and return a store holding the token it found.
    pub async fn connect(settings: OpenbaoSettings) -> Result<Self, SecretError> {
        settings.validate()?;
        let client = match settings.http.clone() {
            Some(http) => OpenbaoClient::new(settings.url(), http)
                .with_timeout(settings.timeout())
                .with_namespace(settings.namespace.clone()),
            None => OpenbaoClient::build(settings.url(), &settings.client_options())?,
        };
        let cache = if auth::session_identities(&settings).is_empty() {
            None
        } else {
            Some(SessionCache::new(settings.session_dir()?))
        };
        let authenticated = auth::authenticate(&client, &settings, cache.as_ref()).await?;
        Ok(Self {
            client,
            settings,
            cache,
            state: RwLock::new(AuthState {
                token: authenticated.token,
                method: authenticated.method,
                generation: 0,
            }),
            reauth: tokio::sync::Mutex::new(()),
        })
    }

    /// How the current token was obtained.
    pub fn auth_method(&self) -> AuthMethodUsed {
        self.read_state(|s| s.method)
    }

    /// A client carrying the current token, for calls outside KV (e.g. the CLI's status).
    pub fn client(&self) -> OpenbaoClient {
        self.current().0
    }

    /// The settings the store was connected with.
    pub fn settings(&self) -> &OpenbaoSettings {
        &self.settings
    }

    /// This store's documents in the offline cache (see
    /// [`OfflineCache`](crate::offline::OfflineCache)).
    pub fn offline_scope(
        &self,
        cache: &crate::offline::OfflineCache,
    ) -> crate::offline::CacheScope {
        self.settings.offline_scope(cache)
    }

    /// The session cache, when a login method is configured.
    pub fn session_cache(&self) -> Option<&SessionCache> {
        self.cache.as_ref()
    }

    fn read_state<T>(&self, f: impl FnOnce(&AuthState) -> T) -> T {
        // A poisoned lock only means another thread panicked while swapping in a token; the
        // state is a plain value and still consistent.
        let guard = self.state.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    fn current(&self) -> (OpenbaoClient, u64) {
        self.read_state(|s| {
            (
                self.client.clone().with_token(s.token.clone()),
                s.generation,
            )
        })
    }

    /// Send a request with the current token; if OpenBao rejects the token itself (not just this
    /// path), sign in again once and retry once.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        list: bool,
    ) -> Result<Option<Value>, SecretError> {
        let (client, generation) = self.current();
        match client.send(method.clone(), path, body, list).await {
            Err(SecretError::PermissionDenied { .. }) if token_is_dead(&client).await => {
                self.reauthenticate(generation).await?;
                let (client, _) = self.current();
                client.send(method, path, body, list).await
            }
            other => other,
        }
    }

    async fn reauthenticate(&self, rejected_generation: u64) -> Result<(), SecretError> {
        let _guard = self.reauth.lock().await;
        if self.read_state(|s| s.generation) != rejected_generation {
            return Ok(()); // Another request already signed in again.
        }
        tracing::info!(
            url = self.client.url(),
            "OpenBao no longer accepts the token; signing in again"
        );
        let authenticated =
            auth::authenticate(&self.client, &self.settings, self.cache.as_ref()).await?;
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        *state = AuthState {
            token: authenticated.token,
            method: authenticated.method,
            generation: rejected_generation + 1,
        };
        Ok(())
    }

    fn data_path(&self, path: &str) -> String {
        self.settings.data_path(path)
    }

    fn metadata_path(&self, path: &str) -> String {
        path::join(&[
            self.settings.kv_mount(),
            "metadata",
            self.settings.kv_prefix(),
            path,
        ])
    }

    /// Every document under `prefix` (relative to the KV prefix), however deep, in one request:
    /// KV v2's recursive scan (OpenBao 2.7: `bao kv scan`, sent as `GET
    /// <mount>/metadata/<path>?scan=true`; the token needs the `scan` capability there). Paths
    /// come back relative to `prefix`, documents only (no folder entries). `Ok(None)` when the
    /// server will not scan — the policy lacks `scan` (403), or the server predates it (it then
    /// ignores the parameter and answers 404, 405 or a document's metadata) — so the caller lists
    /// folder by folder instead; the reason is logged at debug level. Unlike `LIST`, a scan is
    /// authorised on `prefix` alone: a deny on a folder below it does not hide that folder's
    /// names.
    pub async fn scan(&self, prefix: &str) -> Result<Option<Vec<String>>, SecretError> {
        path::validate("scan prefix", prefix, true)?;
        let full = self.metadata_path(prefix);
        let unavailable = |why: &str| {
            tracing::debug!(path = %full, "KV scan unavailable ({why}); listing folder by folder");
            Ok(None)
        };
        let body = match self
            .send(Method::GET, &format!("{full}?scan=true"), None, false)
            .await
        {
            Ok(Some(body)) => body,
            Ok(None) => return unavailable("an empty answer"),
            Err(SecretError::PermissionDenied { .. }) => {
                return unavailable("refused: the token's policy has no `scan` capability here");
            }
            Err(SecretError::NotFound { .. }) => {
                return unavailable("404: the server does not scan, or nothing is there");
            }
            Err(SecretError::BadResponse {
                status: 400 | 405, ..
            }) => return unavailable("the server does not know the scan operation"),
            Err(e) => return Err(e),
        };
        let data = &body["data"];
        if data.as_object().is_some_and(serde_json::Map::is_empty) {
            // What 2.7 answers for a path with nothing under it.
            return Ok(Some(Vec::new()));
        }
        match serde_json::from_value::<Vec<String>>(data["keys"].clone()) {
            Ok(keys) => Ok(Some(keys)),
            Err(_) => unavailable("the answer holds no key list (a server without scan)"),
        }
    }

    /// The document's latest version from its metadata (`None` when there is none), and
    /// whether that version still holds data (it was not deleted or destroyed).
    async fn latest_version(&self, path: &str) -> Result<Option<LatestVersion>, SecretError> {
        match self
            .send(Method::GET, &self.metadata_path(path), None, false)
            .await
        {
            Ok(body) => Ok(body.and_then(|b| {
                let data = &b["data"];
                let version = data["current_version"].as_u64().filter(|v| *v > 0)?;
                let meta = &data["versions"][version.to_string()];
                let deleted = meta["deletion_time"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty());
                let destroyed = meta["destroyed"].as_bool().unwrap_or(false);
                Some(LatestVersion {
                    version,
                    live: !deleted && !destroyed,
                })
            })),
            Err(SecretError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One KV v2 write; `cas: None` writes unconditionally.
    ///
    /// A check-and-set write whose answer was lost (5xx, a broken connection: it may have landed)
    /// is sent again while the cluster elects an active node (bounded by
    /// [`ELECTION_WAIT`](crate::client::ELECTION_WAIT)); if the repeat then conflicts, the version
    /// it would have created is read back, and when it holds exactly this document the first
    /// attempt landed: that is the write's version, not a conflict. (Check-and-set makes the
    /// repeat harmless: it can never create a second version.)
    async fn write(&self, full: &str, value: &Value, cas: Option<u64>) -> Result<u64, SecretError> {
        let started = std::time::Instant::now();
        let mut uncertain = false;
        let mut pause = std::time::Duration::from_millis(100);
        let answer = loop {
            match self.write_once(full, value, cas).await {
                Err(e) if cas.is_some() && may_have_landed(&e) => {
                    if started.elapsed() + pause > crate::client::ELECTION_WAIT {
                        return Err(e);
                    }
                    if !uncertain {
                        tracing::info!(path = full, error = %e, max_wait_secs = crate::client::ELECTION_WAIT.as_secs(), "the write's answer was lost; waiting for the cluster to have an active node to send it again (check-and-set: it cannot land twice)");
                    }
                    uncertain = true;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(2));
                }
                Err(SecretError::Conflict { .. }) if uncertain => {
                    // `uncertain` is only set for check-and-set writes, so `cas` is `Some`.
                    let landed = cas.unwrap_or_default() + 1;
                    let read = self
                        .send(
                            Method::GET,
                            &format!("{full}?version={landed}"),
                            None,
                            false,
                        )
                        .await;
                    if let Ok(Some(body)) = read
                        && body["data"]["data"] == *value
                    {
                        tracing::info!(
                            path = full,
                            version = landed,
                            "the earlier attempt had landed"
                        );
                        return Ok(landed);
                    }
                    return Err(SecretError::Conflict {
                        path: full.to_owned(),
                        expected: None,
                        actual: None,
                    });
                }
                other => break other?,
            }
        };
        Ok(answer)
    }

    async fn write_once(
        &self,
        full: &str,
        value: &Value,
        cas: Option<u64>,
    ) -> Result<u64, SecretError> {
        let body = match cas {
            Some(cas) => json!({ "data": value, "options": { "cas": cas } }),
            None => json!({ "data": value }),
        };
        let answer = match self.send(Method::POST, full, Some(&body), false).await {
            // A KV v2 engine answers every write under its mount; a 404 means none is there.
            Err(SecretError::NotFound { .. }) => {
                return Err(SecretError::Config(format!(
                    "no KV v2 secrets engine is mounted at {mount}/ on {url} (writing {full}); \
                     set {var} to the mount of your KV v2 engine (default `secret`), or enable one \
                     there (`bao secrets enable -path={mount} kv-v2`)",
                    mount = self.settings.kv_mount().trim_end_matches('/'),
                    url = self.client.url(),
                    var = harmony_env::vars::OPENBAO_KV_MOUNT,
                )));
            }
            other => other?,
        };
        answer
            .and_then(|a| a["data"]["version"].as_u64())
            .ok_or_else(|| SecretError::BadResponse {
                path: full.to_owned(),
                status: 0,
                message: "the write answer has no data.version".to_owned(),
            })
    }
}

/// What a document's metadata says about its latest version.
#[derive(Debug, Clone, Copy)]
struct LatestVersion {
    version: u64,
    /// Not deleted or destroyed: [`SecretStore::get`] returns it.
    live: bool,
}

/// A write that failed this way may still have been applied: 5xx or a redirect from a standby
/// (whose forwarded request reached the leader before it died), or a connection that broke
/// after the request went out.
fn may_have_landed(e: &SecretError) -> bool {
    match e {
        SecretError::BadResponse { status, .. } => matches!(status, 307 | 500 | 502 | 503 | 504),
        SecretError::Unreachable {
            source: Some(e), ..
        } => !e.is_timeout() && !e.is_connect(),
        _ => false,
    }
}

/// Whether a 403 was about the token rather than the path: the token cannot even look itself up
/// (every token may, through the `default` policy).
async fn token_is_dead(client: &OpenbaoClient) -> bool {
    matches!(
        auth::lookup_self(client).await,
        Err(SecretError::PermissionDenied { .. })
    )
}

impl SecretStore for OpenbaoSecretStore {
    async fn get(&self, path: &str) -> Result<Option<Versioned<Value>>, SecretError> {
        Ok(self.get_timed(path).await?.map(|(doc, _)| doc))
    }

    async fn get_timed(&self, path: &str) -> Result<Option<crate::store::Timed>, SecretError> {
        path::validate("secret path", path, false)?;
        let full = self.data_path(path);
        let body = match self.send(Method::GET, &full, None, false).await {
            Ok(Some(body)) => body,
            Ok(None) | Err(SecretError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = &body["data"];
        if data["data"].is_null() {
            return Ok(None); // A deleted (or destroyed) latest version.
        }
        let version =
            data["metadata"]["version"]
                .as_u64()
                .ok_or_else(|| SecretError::BadResponse {
                    path: full.clone(),
                    status: 0,
                    message: format!(
                        "no data.metadata.version in the answer; is {} a KV version 2 mount?",
                        self.settings.kv_mount()
                    ),
                })?;
        let created = data["metadata"]["created_time"].as_str().map(str::to_owned);
        Ok(Some((
            Versioned {
                value: data["data"].clone(),
                version,
            },
            created,
        )))
    }

    async fn put(&self, path: &str, value: &Value, mode: WriteMode) -> Result<u64, SecretError> {
        path::validate("secret path", path, false)?;
        let full = self.data_path(path);
        if !value.is_object() {
            return Err(SecretError::Config(format!(
                "the document for {full} must be a JSON object (KV v2 stores maps)"
            )));
        }
        let (expected, cas) = match mode {
            WriteMode::Cas(expected) => (expected, Some(expected.unwrap_or(0))),
            WriteMode::Overwrite => (None, None),
        };
        match self.write(&full, value, cas).await {
            Err(SecretError::Conflict { .. }) => {}
            other => return other,
        }
        // Best effort: the conflict is the news, the exact version is a detail.
        let mut latest = self.latest_version(path).await.unwrap_or(None);
        // "Must not exist yet" also holds when the latest version was deleted (e.g. `bao kv
        // delete`): `get` reports such a document absent, but KV v2 then wants that version as
        // `cas`, and `cas: 0` would conflict forever. The retry is still a check-and-set, so a
        // write that lands in between is not overwritten.
        if let (
            WriteMode::Cas(None),
            Some(LatestVersion {
                version,
                live: false,
            }),
        ) = (mode, latest)
        {
            match self.write(&full, value, Some(version)).await {
                Err(SecretError::Conflict { .. }) => {
                    latest = self.latest_version(path).await.unwrap_or(None);
                }
                other => return other,
            }
        }
        Err(SecretError::Conflict {
            path: full,
            expected,
            actual: latest.map(|l| l.version),
        })
    }

    async fn delete(&self, path: &str) -> Result<(), SecretError> {
        path::validate("secret path", path, false)?;
        match self
            .send(Method::DELETE, &self.metadata_path(path), None, false)
            .await
        {
            Ok(_) | Err(SecretError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SecretError> {
        path::validate("list prefix", prefix, true)?;
        let full = self.metadata_path(prefix);
        let body = match self.send(Method::GET, &full, None, true).await {
            Ok(Some(body)) => body,
            Ok(None) | Err(SecretError::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        serde_json::from_value(body["data"]["keys"].clone()).map_err(|e| SecretError::BadResponse {
            path: full,
            status: 0,
            message: format!("data.keys is not a list of names ({e})"),
        })
    }

    fn describe(&self, path: &str) -> String {
        self.data_path(path)
    }

    async fn identity(&self) -> Result<Option<crate::client::TokenIdentity>, SecretError> {
        crate::client::lookup_identity(&self.client())
            .await
            .map(Some)
    }
}
