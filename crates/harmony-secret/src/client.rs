//! A thin typed client for OpenBao's HTTP API.
//!
//! It does one thing: send a request under `/v1/` with an optional token and turn the answer into
//! `Ok(Some(json))`, `Ok(None)` (204 / empty body) or a [`SecretError`] that says what happened
//! (sealed, unreachable, permission denied, not found, check-and-set conflict, bad response).
//! The store, the auth chain and the deploy's bootstrap all share this mapping, so a given
//! failure reads the same wherever it happens.
//!
//! Redirects are never followed: OpenBao's token travels in a custom header that HTTP clients do
//! not strip on a cross-host redirect.

use std::time::Duration;

use reqwest::{Method, StatusCode, header::HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::SecretError;
use crate::error::AuthError;

/// The per-request timeout used unless the caller sets another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The text OpenBao's KV v2 engine answers (HTTP 400) when a check-and-set write loses.
const CAS_MISMATCH: &str = "check-and-set parameter did not match";

/// A handle on one OpenBao server, optionally carrying a token. Cheap to clone.
#[derive(Clone)]
pub struct OpenbaoClient {
    base_url: String,
    http: reqwest::Client,
    token: Option<SecretString>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenbaoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenbaoClient")
            .field("base_url", &self.base_url)
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
        Self {
            base_url,
            http,
            token: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A `reqwest::Client` suited to OpenBao: no redirects, pooled connections.
    pub fn http_client() -> Result<reqwest::Client, SecretError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                SecretError::Config(format!(
                    "could not build the HTTP client for OpenBao ({e}); check the TLS setup"
                ))
            })
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
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        let body: Value = serde_json::from_str(&text).map_err(|e| SecretError::BadResponse {
            path: path.to_owned(),
            status,
            message: format!("sys/health did not answer JSON ({e})"),
        })?;
        Ok(Health {
            initialized: body["initialized"].as_bool().unwrap_or(false),
            sealed: body["sealed"].as_bool().unwrap_or(false),
            standby: body["standby"].as_bool().unwrap_or(false),
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/v1/{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Any method on `/v1/{path}`, as `LIST` when `list` (the one place requests are built).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        list: bool,
    ) -> Result<Option<Value>, SecretError> {
        let path = path.trim_start_matches('/');
        let mut req = self
            .http
            .request(method.clone(), self.endpoint(path))
            .timeout(self.timeout);
        if list {
            req = req.query(&[("list", "true")]);
        }
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token.expose_secret())
                .map_err(|e| SecretError::Auth(AuthError::MalformedToken(e)))?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        tracing::trace!(%method, path, "OpenBao request");
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            if text.trim().is_empty() {
                return Ok(None);
            }
            return serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| SecretError::BadResponse {
                    path: path.to_owned(),
                    status: 0,
                    message: format!("the answer is not JSON ({e})"),
                });
        }
        Err(self.status_error(path, status, &text).await)
    }

    async fn status_error(&self, path: &str, status: StatusCode, text: &str) -> SecretError {
        let message = errors_text(text);
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

/// The innermost error message (e.g. "Connection refused (os error 111)").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// OpenBao's `errors` array joined into one line; the raw body when it has none.
fn errors_text(body: &str) -> String {
    let parsed: Option<Vec<String>> = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors").cloned())
        .and_then(|e| serde_json::from_value(e).ok());
    let text = match parsed {
        Some(errors) if !errors.is_empty() => errors.join("; "),
        _ => body.to_owned(),
    };
    // OpenBao wraps multi-errors as "1 error occurred:\n\t* permission denied\n\n".
    let cleaned: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("* ").trim())
        .filter(|l| {
            !l.is_empty() && !l.ends_with("error occurred:") && !l.ends_with("errors occurred:")
        })
        .collect();
    if cleaned.is_empty() {
        "(no message)".to_owned()
    } else {
        cleaned.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_joined_and_unwrapped() {
        assert_eq!(
            errors_text(r#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "permission denied"
        );
        assert_eq!(errors_text(r#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(errors_text(""), "(no message)");
        assert_eq!(errors_text("plain text"), "plain text");
    }

    #[test]
    fn debug_redacts_the_token() {
        let client = OpenbaoClient::new("http://127.0.0.1:1/", reqwest::Client::new())
            .with_token(SecretString::from("s.super-secret-token"));
        let text = format!("{client:?}");
        assert!(!text.contains("super-secret"), "{text}");
        assert!(text.contains("http://127.0.0.1:1\""), "{text}");
    }
}
