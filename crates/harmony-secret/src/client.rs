//! The one client for OpenBao's HTTP API.
//!
//! It does one thing: send a request under `/v1/` with an optional token and turn the answer into
//! `Ok(Some(json))`, `Ok(None)` (204 / empty body) or a [`SecretError`] that says what happened
//! (sealed, unreachable, permission denied, not found, check-and-set conflict, bad response).
//! The store, the auth chain, the SSO id_token exchange and the deploy's bootstrap all go
//! through it, so TLS, the namespace and a given failure read the same wherever they happen.
//!
//! - **Every request has a timeout** (per request, [`DEFAULT_TIMEOUT`] unless set), and the
//!   connection a connect timeout.
//! - **TLS** from [`TlsSettings`] (`BAO_CACERT`, `BAO_CAPATH`, client certificate, server name,
//!   skip-verify); a certificate failure says which variable fixes it.
//! - **Namespaces**: `X-Vault-Namespace` on every request but the root-only `sys/health`,
//!   `sys/seal-status`, `sys/init` and `sys/unseal` (see [`OpenbaoClient::without_namespace`]).
//! - **Redirects are never followed**: OpenBao's token travels in a custom header that HTTP
//!   clients do not strip on a cross-host redirect. The token header is marked sensitive.
//! - **Bodies are capped** (answers at [`MAX_BODY_BYTES`], error bodies at
//!   [`MAX_ERROR_BODY_BYTES`]) and error messages scrubbed of token- and key-shaped values
//!   ([`crate::redact`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::SecretError;
use crate::error::AuthError;
use crate::redact;
use crate::tls::{TlsSettings, Transport, tls_hint};

/// The per-request timeout used unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read from OpenBao (KV documents included).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// The most of an error answer read (its message is cut further, see [`crate::redact`]).
pub const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The header carrying the OpenBao token.
pub const TOKEN_HEADER: &str = "X-Vault-Token";
/// The header carrying the OpenBao namespace.
pub const NAMESPACE_HEADER: &str = "X-Vault-Namespace";

/// How to reach one OpenBao: TLS, namespace, timeout, and host names resolved without DNS.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// TLS settings (CA, client certificate, server name, skip-verify).
    pub tls: TlsSettings,
    /// The namespace (`X-Vault-Namespace`); `None`: the root namespace.
    pub namespace: Option<String>,
    /// The per-request timeout.
    pub timeout: Duration,
    /// Host names resolved to fixed addresses instead of asking DNS (e.g. a local cluster's
    /// ingress names → its load balancer).
    pub resolve: Vec<(String, SocketAddr)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            tls: TlsSettings::default(),
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
            resolve: Vec::new(),
        }
    }
}

impl ClientOptions {
    /// Options from a variable lookup: TLS ([`TlsSettings::from_lookup`]) and the namespace
    /// (`BAO_NAMESPACE` / `VAULT_NAMESPACE`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let namespace = harmony_env::vars::OPENBAO_NAMESPACE_ALIASES
            .iter()
            .find_map(|n| crate::lookup::trimmed_var(&lookup, n));
        Ok(Self {
            tls: TlsSettings::from_lookup(&lookup)?,
            namespace: namespace.and_then(|n| normalize_namespace(&n)),
            ..Self::default()
        })
    }

    /// Another TLS setup.
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Another namespace (`None` or empty: the root namespace).
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace.as_deref().and_then(normalize_namespace);
        self
    }

    /// Another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Resolve `host` to `addr` without DNS.
    pub fn with_resolved_host(mut self, host: impl Into<String>, addr: SocketAddr) -> Self {
        self.resolve.push((host.into(), addr));
        self
    }
}

/// `team-a/` and `/team-a` are `team-a`; blank is the root namespace.
fn normalize_namespace(ns: &str) -> Option<String> {
    let ns = ns.trim().trim_matches('/');
    (!ns.is_empty()).then(|| ns.to_owned())
}

/// The text OpenBao's KV v2 engine answers (HTTP 400) when a check-and-set write loses.
const CAS_MISMATCH: &str = "check-and-set parameter did not match";

/// A handle on one OpenBao server, optionally carrying a token and a namespace. Cheap to clone.
#[derive(Clone)]
pub struct OpenbaoClient {
    /// The URL as given (messages, session keys).
    base_url: String,
    /// The URL requests go to: `base_url` with the TLS server name as host when one is set.
    request_base: String,
    /// The host name the server's certificate is checked against (for messages).
    tls_name: String,
    http: reqwest::Client,
    token: Option<SecretString>,
    namespace: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenbaoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenbaoClient")
            .field("base_url", &self.base_url)
            .field("namespace", &self.namespace)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What `sys/health` says about a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// `sys/init` has been done.
    pub initialized: bool,
    /// The server is sealed.
    pub sealed: bool,
    /// The server is a standby node.
    pub standby: bool,
    /// The HTTP status `sys/health` answered with (200 active, 429 standby, 501
    /// uninitialised, 503 sealed).
    pub status: u16,
}

impl OpenbaoClient {
    /// A client for the server at `url` (e.g. `http://127.0.0.1:8200`, trailing `/` ignored).
    ///
    /// `http` should not follow redirects (see [`OpenbaoClient::http_client`]); the
    /// per-request timeout is [`DEFAULT_TIMEOUT`] until [`OpenbaoClient::with_timeout`].
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base_url = url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        let tls_name = url::Url::parse(&base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            request_base: base_url.clone(),
            base_url,
            tls_name,
            http,
            token: None,
            namespace: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client for the server at `url` with `options`: its own HTTP client (TLS, redirects
    /// off, connect timeout), namespace and per-request timeout. The one way this crate and
    /// the bootstrap reach OpenBao.
    ///
    /// A TLS server name ([`TlsSettings::server_name`]) is applied by connecting to the URL's
    /// address while naming the server as `server_name` (reqwest takes the TLS name from the
    /// URL): requests go to `https://<server_name>:<port>/`, and `server_name` resolves to the
    /// URL's host (an IP literal directly, a DNS name through the system resolver at connect
    /// time).
    pub fn build(url: &str, options: &ClientOptions) -> Result<Self, SecretError> {
        let parsed = url::Url::parse(url.trim_end_matches('/')).map_err(|e| {
            SecretError::Config(format!(
                "OpenBao URL {url:?} is not a valid URL ({e}); set {} to e.g. https://bao.example:8200",
                harmony_env::vars::OPENBAO_URL
            ))
        })?;
        let mut builder = options.tls.client_builder(Transport::of(url))?;
        // A proxy from the environment (helm needs one for chart repositories) must never carry
        // calls to a server on this machine: a port-forward or a local OpenBao.
        if is_loopback(&parsed) {
            builder = builder.no_proxy();
        }
        for (host, addr) in &options.resolve {
            builder = builder.resolve(host, *addr);
        }
        let mut request_base = None;
        if let Some(name) = &options.tls.server_name {
            let host = parsed.host_str().unwrap_or_default().to_owned();
            let port = parsed.port_or_known_default().unwrap_or(8200);
            let fixed = options
                .resolve
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(&host))
                .map(|(_, a)| *a);
            let literal = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, port));
            builder = match fixed.or(literal) {
                Some(addr) => builder.resolve(name, addr),
                None => builder.dns_resolver(Arc::new(ServerNameResolver {
                    server_name: name.to_ascii_lowercase(),
                    host,
                })),
            };
            let mut rewritten = parsed.clone();
            rewritten.set_host(Some(name)).map_err(|e| {
                SecretError::Config(format!(
                    "{} {name:?} is not a valid host name ({e})",
                    harmony_env::vars::BAO_TLS_SERVER_NAME
                ))
            })?;
            request_base = Some(rewritten.as_str().trim_end_matches('/').to_owned());
        }
        let http = builder.build().map_err(|e| {
            SecretError::Config(format!(
                "could not build the HTTP client for OpenBao ({}); check the TLS settings ({}, {}, {})",
                root_cause(&e),
                harmony_env::vars::BAO_CACERT,
                harmony_env::vars::BAO_CLIENT_CERT,
                harmony_env::vars::BAO_CLIENT_KEY,
            ))
        })?;
        let mut client = Self::new(url, http)
            .with_timeout(options.timeout)
            .with_namespace(options.namespace.clone());
        if let Some(base) = request_base {
            client.request_base = base;
            client.tls_name = options.tls.server_name.clone().unwrap_or_default();
        }
        Ok(client)
    }

    /// A `reqwest::Client` suited to OpenBao without TLS settings: no redirects, a connect
    /// timeout. (Use [`OpenbaoClient::build`] to apply TLS settings.)
    pub fn http_client() -> Result<reqwest::Client, SecretError> {
        TlsSettings::default()
            .client_builder(Transport::Tls)?
            .build()
            .map_err(|e| {
                SecretError::Config(format!(
                    "could not build the HTTP client for OpenBao ({}); check the TLS setup",
                    root_cause(&e)
                ))
            })
    }

    /// The same client, sending requests to `namespace` (`X-Vault-Namespace`); `None` or empty:
    /// the root namespace.
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace.as_deref().and_then(normalize_namespace);
        self
    }

    /// The same client in the root namespace (for the root-only `sys/` endpoints).
    pub fn without_namespace(mut self) -> Self {
        self.namespace = None;
        self
    }

    /// The namespace requests go to (`None`: root).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The key sessions of this server and namespace are cached under: the URL, plus the
    /// namespace when there is one (a token is only valid in the namespace it was issued in).
    pub fn session_identity(&self, identity: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("ns={ns}:{identity}"),
            None => identity.to_owned(),
        }
    }

    /// The same client, sending `token` as `X-Vault-Token`.
    pub fn with_token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// The same client without a token (for logins and health checks).
    pub fn without_token(mut self) -> Self {
        self.token = None;
        self
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The server's base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// `GET /v1/{path}`.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, SecretError> {
        self.request(Method::GET, path, None).await
    }

    /// `POST /v1/{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Option<Value>, SecretError> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// `PUT /v1/{path}` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Option<Value>, SecretError> {
        self.request(Method::PUT, path, Some(body)).await
    }

    /// `DELETE /v1/{path}`.
    pub async fn delete(&self, path: &str) -> Result<Option<Value>, SecretError> {
        self.request(Method::DELETE, path, None).await
    }

    /// OpenBao's `LIST` on `path` (sent as `GET ?list=true`, which OpenBao treats the same).
    pub async fn list(&self, path: &str) -> Result<Option<Value>, SecretError> {
        self.send(Method::GET, path, None, true).await
    }

    /// Any method on `/v1/{path}`; `Ok(None)` for 204 or an empty body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, SecretError> {
        self.send(method, path, body, false).await
    }

    /// `sys/health`, which answers with a status code per state and the same JSON body.
    pub async fn health(&self) -> Result<Health, SecretError> {
        let path = "sys/health";
        let resp = self
            .http
            .get(self.endpoint(path))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status().as_u16();
        let bytes = read_capped(resp, MAX_ERROR_BODY_BYTES)
            .await
            .map_err(|e| self.unreachable(e))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| SecretError::BadResponse {
            path: path.to_owned(),
            status,
            message: format!(
                "sys/health did not answer JSON ({})",
                redact::json_error_detail(&e)
            ),
        })?;
        Ok(Health {
            initialized: body["initialized"].as_bool().unwrap_or(false),
            sealed: body["sealed"].as_bool().unwrap_or(false),
            standby: body["standby"].as_bool().unwrap_or(false),
            status,
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/v1/{}", self.request_base, path.trim_start_matches('/'))
    }

    /// The request for `method` on `/v1/{path}` (the one place requests are built): timeout,
    /// token header (sensitive), namespace header, JSON body.
    pub(crate) fn build_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        list: bool,
    ) -> Result<reqwest::Request, SecretError> {
        let path = path.trim_start_matches('/');
        let mut req = self
            .http
            .request(method, self.endpoint(path))
            .timeout(self.timeout);
        if list {
            req = req.query(&[("list", "true")]);
        }
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token.expose_secret())
                .map_err(|e| SecretError::Auth(AuthError::MalformedToken(e)))?;
            value.set_sensitive(true);
            req = req.header(TOKEN_HEADER, value);
        }
        if let Some(ns) = &self.namespace
            && !is_root_only(path)
        {
            let value = HeaderValue::from_str(ns).map_err(|_| {
                SecretError::Config(format!(
                    "the OpenBao namespace {ns:?} is not a valid HTTP header value; check {}",
                    harmony_env::vars::BAO_NAMESPACE
                ))
            })?;
            req = req.header(NAMESPACE_HEADER, value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.build().map_err(|e| {
            SecretError::Config(format!(
                "could not build the request for {path} ({})",
                root_cause(&e)
            ))
        })
    }

    /// Any method on `/v1/{path}`, as `LIST` when `list`; what is safe to retry while a cluster
    /// elects a new active node is retried (see [`retry_reason`]), for at most
    /// [`ELECTION_WAIT`] ([`CONNECT_WAIT`] for connection errors), with backoff and a log line
    /// saying what it waits for.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        list: bool,
    ) -> Result<Option<Value>, SecretError> {
        let started = std::time::Instant::now();
        let mut pause = RETRY_FIRST_PAUSE;
        let mut logged = false;
        loop {
            let result = self.send_once(method.clone(), path, body, list).await;
            let Err(err) = &result else {
                if logged {
                    tracing::info!(url = %self.base_url, path, waited_ms = started.elapsed().as_millis() as u64, "OpenBao answers again");
                }
                return result;
            };
            let Some((reason, window)) = retry_reason(&method, err) else {
                return result;
            };
            if started.elapsed() + pause > window {
                return result;
            }
            if !logged {
                tracing::info!(url = %self.base_url, path, max_wait_secs = window.as_secs_f64(), error = %err, "waiting for {reason}");
                logged = true;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX_PAUSE);
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        list: bool,
    ) -> Result<Option<Value>, SecretError> {
        let path = path.trim_start_matches('/');
        let request = self.build_request(method.clone(), path, body, list)?;
        tracing::trace!(%method, path, namespace = self.namespace.as_deref(), "OpenBao request");
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let cap = if status.is_success() {
            MAX_BODY_BYTES
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let bytes = match read_capped(resp, cap).await {
            Ok(bytes) => bytes,
            Err(e) => return Err(self.unreachable(e)),
        };
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            if bytes.len() > MAX_BODY_BYTES {
                return Err(SecretError::BadResponse {
                    path: path.to_owned(),
                    status: status.as_u16(),
                    message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            return serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                SecretError::BadResponse {
                    path: path.to_owned(),
                    status: 0,
                    message: format!(
                        "the answer is not the JSON expected ({})",
                        redact::json_error_detail(&e)
                    ),
                }
            });
        }
        Err(self.status_error(path, status, &bytes).await)
    }

    /// `method` on `/v1/{path}` with a raw (non-JSON) body and its own `timeout`, for transfers
    /// larger than a JSON answer (raft snapshots). A success is returned unread, so the caller can
    /// stream it; any other answer is the error [`OpenbaoClient::request`] would give.
    pub(crate) async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<reqwest::Response, SecretError> {
        let path = path.trim_start_matches('/');
        let mut request = self.build_request(method.clone(), path, None, false)?;
        *request.timeout_mut() = Some(timeout);
        if let Some(body) = body {
            *request.body_mut() = Some(body.into());
        }
        tracing::trace!(%method, path, "OpenBao request (raw body)");
        let resp = self
            .http
            .execute(request)
            .await
            .map_err(|e| self.unreachable_within(e, timeout))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status.is_redirection() {
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| url::Url::parse(l.to_str().ok()?).ok())
                .map(|l| l.origin().ascii_serialization())
                .unwrap_or_else(|| "the active node".to_owned());
            return Err(SecretError::BadResponse {
                path: path.to_owned(),
                status: status.as_u16(),
                message: format!(
                    "{} is a standby and redirects this request to {to}; redirects are never \
                     followed (the token would go along): use --openbao-url {to}",
                    self.base_url
                ),
            });
        }
        let bytes = read_capped(resp, MAX_ERROR_BODY_BYTES)
            .await
            .map_err(|e| self.unreachable_within(e, timeout))?;
        Err(self.status_error(path, status, &bytes).await)
    }

    /// A transport error of a request that had `timeout` (not the client's own).
    pub(crate) fn unreachable_within(&self, e: reqwest::Error, timeout: Duration) -> SecretError {
        self.clone().with_timeout(timeout).unreachable(e)
    }

    async fn status_error(&self, path: &str, status: StatusCode, body: &[u8]) -> SecretError {
        let message = redact::openbao_message(&body[..body.len().min(MAX_ERROR_BODY_BYTES)]);
        match status {
            StatusCode::NOT_FOUND => SecretError::NotFound {
                path: path.to_owned(),
            },
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => SecretError::PermissionDenied {
                path: path.to_owned(),
                message,
            },
            StatusCode::BAD_REQUEST if message.contains(CAS_MISMATCH) => SecretError::Conflict {
                path: path.to_owned(),
                // Filled in by the caller, which knows what it expected and where the metadata is.
                expected: None,
                actual: None,
            },
            StatusCode::SERVICE_UNAVAILABLE => {
                let sealed = message.to_ascii_lowercase().contains("sealed")
                    || matches!(self.health().await, Ok(Health { sealed: true, .. }));
                if sealed {
                    SecretError::Sealed {
                        url: self.base_url.clone(),
                    }
                } else {
                    SecretError::BadResponse {
                        path: path.to_owned(),
                        status: status.as_u16(),
                        message,
                    }
                }
            }
            _ if status.is_redirection() => SecretError::BadResponse {
                path: path.to_owned(),
                status: status.as_u16(),
                message: format!(
                    "OpenBao redirected the request (standby node?); point the URL at the active node. {message}"
                ),
            },
            _ => SecretError::BadResponse {
                path: path.to_owned(),
                status: status.as_u16(),
                message,
            },
        }
    }

    fn unreachable(&self, e: reqwest::Error) -> SecretError {
        let reason = if e.is_timeout() {
            format!("no answer within {:.1} s", self.timeout.as_secs_f64())
        } else if let Some(hint) = tls_hint(&e, &self.tls_name) {
            format!("{} ({hint})", root_cause(&e))
        } else {
            root_cause(&e)
        };
        SecretError::Unreachable {
            url: self.base_url.clone(),
            reason,
            source: Some(e),
        }
    }
}

/// How long a request is retried while a cluster has no active node (an election after the
/// leader is lost takes seconds; a standby answers 5xx or redirects meanwhile).
pub const ELECTION_WAIT: Duration = Duration::from_secs(30);
/// How long a connection error (refused, reset) is retried: long enough for a connection cut by
/// a leader change, short enough that a server that is down is reported at once.
pub const CONNECT_WAIT: Duration = Duration::from_secs(1);
const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);
const RETRY_MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether `err` is worth retrying for `method`, what the retry waits for and for how long.
///
/// Safe to retry: anything for a read (`GET`, `LIST`); for a write only a connection that was
/// never made. A write answered 5xx or redirected (seen on the real 3-node cluster: a standby
/// whose forwarded write had landed on the dying leader answered 307), or whose connection
/// broke, may have landed: the store decides (a check-and-set write reads back, see
/// `OpenbaoSecretStore`).
/// A timeout is never retried here: the caller already waited its whole timeout.
pub(crate) fn retry_reason(method: &Method, err: &SecretError) -> Option<(&'static str, Duration)> {
    let read = *method == Method::GET;
    match err {
        SecretError::BadResponse { status: 307, .. } if read => Some((
            "the cluster to elect an active node (a standby redirected the request)",
            ELECTION_WAIT,
        )),
        SecretError::BadResponse {
            status: 500 | 502 | 503 | 504,
            ..
        } if read => Some(("the cluster to have an active node again", ELECTION_WAIT)),
        SecretError::Unreachable {
            source: Some(e), ..
        } if !e.is_timeout() && (read || e.is_connect()) => {
            Some(("OpenBao to accept connections again", CONNECT_WAIT))
        }
        _ => None,
    }
}

/// The innermost error message (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// The root-only endpoints, which OpenBao refuses inside a namespace.
fn is_root_only(path: &str) -> bool {
    matches!(
        path,
        "sys/health" | "sys/seal-status" | "sys/init" | "sys/unseal" | "sys/leader"
    ) || path.starts_with("sys/namespaces")
}

/// The body, at most `cap` bytes of it (plus one, so the caller can tell it was cut).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = (cap + 1).saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() > cap {
            break;
        }
    }
    Ok(bytes)
}

/// Resolves the TLS server name to the URL's real host (a DNS name), everything else as asked.
struct ServerNameResolver {
    server_name: String,
    host: String,
}

impl reqwest::dns::Resolve for ServerNameResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            self.host.clone()
        } else {
            name.as_str().to_owned()
        };
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// What `auth/token/lookup-self` says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Seconds left (0: never expires).
    pub ttl: u64,
    /// The TTL it was created with (0: never expires).
    pub creation_ttl: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

impl TokenInfo {
    /// Renewable and less than a third of its life left.
    pub fn wants_renewal(&self) -> bool {
        self.renewable && self.creation_ttl > 0 && self.ttl.saturating_mul(3) < self.creation_ttl
    }
}

/// Ask OpenBao about `client`'s token. A rejected token is [`SecretError::PermissionDenied`].
pub async fn lookup_self(client: &OpenbaoClient) -> Result<TokenInfo, SecretError> {
    let path = "auth/token/lookup-self";
    let body = client.get(path).await?.unwrap_or(Value::Null);
    let data = &body["data"];
    if !data.is_object() {
        return Err(SecretError::BadResponse {
            path: path.to_owned(),
            status: 0,
            message: "the answer has no `data` object".to_owned(),
        });
    }
    Ok(TokenInfo {
        ttl: data["ttl"].as_u64().unwrap_or(0),
        creation_ttl: data["creation_ttl"].as_u64().unwrap_or(0),
        renewable: data["renewable"].as_bool().unwrap_or(false),
    })
}

/// Whose a token is, from `auth/token/lookup-self`: what an author record of a config version
/// names. No secret in it (the token's accessor and id are not kept).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenIdentity {
    /// The OpenBao entity (empty for a token without one, such as a root or dev token).
    pub entity_id: String,
    /// The token's display name (e.g. `userpass-alice`, `jwt-<user claim>`).
    pub display_name: String,
    /// The token's metadata (`username` for userpass, `role` for JWT logins, ...).
    pub meta: std::collections::BTreeMap<String, String>,
    /// The login path that made the token (e.g. `auth/userpass/login/alice`).
    pub path: String,
}

impl TokenIdentity {
    /// A readable name for people: the userpass user, an e-mail or login from the metadata, or
    /// the display name without the auth mount's `<mount>-` prefix.
    pub fn readable_name(&self) -> String {
        for field in ["email", "username", "preferred_username", "repository"] {
            if let Some(v) = self.meta.get(field).filter(|v| !v.is_empty()) {
                return v.clone();
            }
        }
        let mount = self
            .path
            .strip_prefix("auth/")
            .and_then(|p| p.split('/').next())
            .unwrap_or("");
        let prefix = format!("{mount}-");
        match self.display_name.strip_prefix(&prefix) {
            Some(rest) if !mount.is_empty() && !rest.is_empty() => rest.to_owned(),
            _ => self.display_name.clone(),
        }
    }
}

/// Ask OpenBao whose `client`'s token is.
pub async fn lookup_identity(client: &OpenbaoClient) -> Result<TokenIdentity, SecretError> {
    let path = "auth/token/lookup-self";
    let body = client.get(path).await?.unwrap_or(Value::Null);
    let data = &body["data"];
    if !data.is_object() {
        return Err(SecretError::BadResponse {
            path: path.to_owned(),
            status: 0,
            message: "the answer has no `data` object".to_owned(),
        });
    }
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    Ok(TokenIdentity {
        entity_id: text(&data["entity_id"]),
        display_name: text(&data["display_name"]),
        meta: data["meta"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        path: text(&data["path"]),
    })
}

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (review finding 3): the bootstrap's own client sent the token as a plain
    /// header. Every request now comes from here, with the header marked sensitive (hidden
    /// from `Debug` and from HTTP/2 header compression tables).
    #[test]
    fn token_header_is_sensitive_and_namespace_is_sent_except_to_root_only_paths() {
        let client = OpenbaoClient::new("http://127.0.0.1:1/", reqwest::Client::new())
            .with_token(SecretString::from("s.super-secret-token"))
            .with_namespace(Some("/team-a/".to_owned()));
        let req = client
            .build_request(Method::GET, "secret/data/x", None, false)
            .expect("request");
        let token = req.headers().get(TOKEN_HEADER).expect("token header");
        assert!(token.is_sensitive());
        assert_eq!(
            req.headers().get(NAMESPACE_HEADER).map(|v| v.as_bytes()),
            Some(&b"team-a"[..])
        );
        assert_eq!(req.timeout(), Some(&DEFAULT_TIMEOUT));
        assert!(!format!("{req:?}").contains("super-secret"));
        let health = client
            .build_request(Method::GET, "sys/health", None, false)
            .expect("request");
        assert!(health.headers().get(NAMESPACE_HEADER).is_none());
        let root = client
            .clone()
            .without_namespace()
            .build_request(Method::GET, "secret/data/x", None, false)
            .expect("request");
        assert!(root.headers().get(NAMESPACE_HEADER).is_none());
    }

    /// Regression (review finding 2): the raw body of an error answer went into
    /// `PermissionDenied` / `BadResponse` uncapped and unscrubbed.
    #[tokio::test]
    async fn error_answers_are_scrubbed_and_capped() {
        let client = OpenbaoClient::new("http://127.0.0.1:1", reqwest::Client::new());
        let body = format!(
            r#"{{"auth":{{"client_token":"hvs.AAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"keys":["unseal-1"],"pad":"{}"}}"#,
            "x".repeat(10_000)
        );
        for status in [StatusCode::FORBIDDEN, StatusCode::INTERNAL_SERVER_ERROR] {
            let err = client.status_error("sys/x", status, body.as_bytes()).await;
            let message = match &err {
                SecretError::PermissionDenied { message, .. }
                | SecretError::BadResponse { message, .. } => message.clone(),
                other => panic!("unexpected {other:?}"),
            };
            assert!(!message.contains("hvs.AAAA"), "{message}");
            assert!(!message.contains("unseal-1"), "{message}");
            assert!(
                message.chars().count() <= redact::MAX_MESSAGE_CHARS + 40,
                "{}",
                message.len()
            );
        }
    }

    #[test]
    fn server_name_rewrites_the_request_host_but_not_the_url() {
        let options = ClientOptions::default()
            .with_tls(TlsSettings::default().with_server_name("bao.internal"));
        let client = OpenbaoClient::build("https://127.0.0.1:8200/", &options).expect("client");
        assert_eq!(client.url(), "https://127.0.0.1:8200");
        let req = client
            .build_request(Method::GET, "sys/health", None, false)
            .expect("request");
        assert_eq!(
            req.url().as_str(),
            "https://bao.internal:8200/v1/sys/health"
        );
    }

    #[test]
    fn namespaces_come_from_the_environment() {
        let lookup =
            crate::lookup::fixed_lookup(&[("VAULT_NAMESPACE", "ops/"), ("BAO_NAMESPACE", " ")]);
        let options = ClientOptions::from_lookup(lookup).expect("options");
        assert_eq!(options.namespace.as_deref(), Some("ops"));
    }

    /// Only what cannot double a write is retried by the client: a read, whatever its error
    /// during an election; a write never (the store decides for check-and-set writes).
    #[test]
    fn election_errors_are_retried_for_reads_only() {
        let answer = |status| SecretError::BadResponse {
            path: "secret/data/x".to_owned(),
            status,
            message: String::new(),
        };
        for status in [307, 500, 502, 503, 504] {
            assert!(
                retry_reason(&Method::GET, &answer(status)).is_some(),
                "{status}"
            );
            assert!(
                retry_reason(&Method::POST, &answer(status)).is_none(),
                "{status}"
            );
        }
        for status in [400, 404, 429] {
            assert!(
                retry_reason(&Method::GET, &answer(status)).is_none(),
                "{status}"
            );
        }
        let sealed = SecretError::Sealed {
            url: "http://x".to_owned(),
        };
        assert!(retry_reason(&Method::GET, &sealed).is_none());
        let denied = SecretError::PermissionDenied {
            path: "x".to_owned(),
            message: String::new(),
        };
        assert!(retry_reason(&Method::GET, &denied).is_none());
    }

    #[test]
    fn debug_redacts_the_token() {
        let client = OpenbaoClient::new("http://127.0.0.1:1/", reqwest::Client::new())
            .with_token(SecretString::from("s.super-secret-token"));
        let text = format!("{client:?}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("http://127.0.0.1:1\""), "{text}");
    }

    #[test]
    fn readable_names_come_from_the_metadata_else_the_display_name_without_its_mount() {
        let id = |path: &str, display: &str, meta: &[(&str, &str)]| TokenIdentity {
            entity_id: "e".into(),
            display_name: display.into(),
            meta: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            path: path.into(),
        };
        // userpass: the user in the metadata.
        let up = id(
            "auth/userpass/login/alice",
            "userpass-alice",
            &[("username", "alice")],
        );
        assert_eq!(up.readable_name(), "alice");
        // Classic JWT role with the e-mail mapped into the metadata.
        let jwt = id(
            "auth/jwt/login",
            "jwt-3141592",
            &[("email", "a@example.com"), ("role", "harmony-developer")],
        );
        assert_eq!(jwt.readable_name(), "a@example.com");
        // CEL role: the display name (the e-mail) without the mount's prefix.
        let cel = id("auth/jwt/cel/login", "jwt-a@example.com", &[]);
        assert_eq!(cel.readable_name(), "a@example.com");
        // A CI job: its workflow (GitHub's job_workflow_ref, repository included).
        let ci = id(
            "auth/jwt-ci/login",
            "jwt-ci-acme/app/.github/workflows/deploy.yml@refs/heads/main",
            &[("role", "github-acme-app")],
        );
        assert_eq!(
            ci.readable_name(),
            "acme/app/.github/workflows/deploy.yml@refs/heads/main"
        );
    }
}
