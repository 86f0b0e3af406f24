//! A small typed client for the dozen OpenBao endpoints the bootstrap needs.
//!
//! Private on purpose: the bootstrap is its only user, and keeping it here lets every call carry
//! the same discipline — a timeout on each request, the method and path in every error, OpenBao's
//! own `errors` text kept, tokens sent only as a header and never logged.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use super::OpenbaoError;

/// How long one ordinary request may take.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// An OpenBao base URL plus the HTTP client used to talk to it.
#[derive(Debug, Clone)]
pub(crate) struct BaoClient {
    /// Always ends with `/`, so `join("v1/...")` keeps any path prefix.
    base: Url,
    http: reqwest::Client,
}

impl BaoClient {
    pub(crate) fn new(base: &Url, http: reqwest::Client) -> Result<Self, OpenbaoError> {
        if !matches!(base.scheme(), "http" | "https") {
            return Err(OpenbaoError::InvalidUrl {
                url: base.to_string(),
                reason: "the scheme must be http or https".into(),
            });
        }
        if base.cannot_be_a_base() || base.host().is_none() {
            return Err(OpenbaoError::InvalidUrl {
                url: base.to_string(),
                reason: "it has no host".into(),
            });
        }
        let mut base = base.clone();
        base.set_query(None);
        base.set_fragment(None);
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self { base, http })
    }

    /// The base URL as the user gave it, without the trailing slash (for messages).
    pub(crate) fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    fn endpoint(&self, path: &str) -> Result<Url, OpenbaoError> {
        self.base
            .join(&format!("v1/{}", path.trim_start_matches('/')))
            .map_err(|e| OpenbaoError::InvalidUrl {
                url: self.url(),
                reason: format!("cannot append /v1/{path}: {e}"),
            })
    }

    /// One request; returns the status and the JSON body (`None` when empty). Transport errors
    /// are errors; HTTP error statuses are returned to the caller to interpret.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(StatusCode, Option<Value>), OpenbaoError> {
        let url = self.endpoint(path)?;
        tracing::debug!(%method, path, "OpenBao request");
        let mut req = self.http.request(method.clone(), url).timeout(timeout);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token.expose_secret());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let unreachable = |source| OpenbaoError::Unreachable {
            url: self.url(),
            method: method.to_string(),
            path: format!("/v1/{path}"),
            source,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((status, None));
        }
        match serde_json::from_slice(&bytes) {
            Ok(v) => Ok((status, Some(v))),
            // Error pages from proxies are not JSON; keep the status meaningful.
            Err(_) if !status.is_success() => Ok((
                status,
                Some(serde_json::json!({
                    "errors": [String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()]
                })),
            )),
            Err(e) => Err(self.decode_error(&method, path, format!("invalid JSON: {e}"))),
        }
    }

    /// A read: `Ok(None)` when OpenBao says 404.
    pub(crate) async fn read(
        &self,
        path: &str,
        token: Option<&SecretString>,
    ) -> Result<Option<Value>, OpenbaoError> {
        let (status, body) = self
            .raw(Method::GET, path, token, None, REQUEST_TIMEOUT)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.check(&Method::GET, path, status, body).map(Some)
    }

    /// A write (`POST`/`PUT`/`DELETE`); the body of the answer (`Value::Null` when empty).
    pub(crate) async fn write(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, OpenbaoError> {
        let (status, answer) = self
            .raw(method.clone(), path, token, Some(body), timeout)
            .await?;
        self.check(&method, path, status, answer)
    }

    fn check(
        &self,
        method: &Method,
        path: &str,
        status: StatusCode,
        body: Option<Value>,
    ) -> Result<Value, OpenbaoError> {
        if status.is_success() {
            return Ok(body.unwrap_or(Value::Null));
        }
        let message = body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|errs| {
                errs.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no error text")
                    .to_owned()
            });
        if status == StatusCode::FORBIDDEN {
            return Err(OpenbaoError::PermissionDenied {
                url: self.url(),
                method: method.to_string(),
                path: format!("/v1/{path}"),
                message,
            });
        }
        Err(OpenbaoError::Server {
            url: self.url(),
            method: method.to_string(),
            path: format!("/v1/{path}"),
            status: status.as_u16(),
            message,
        })
    }

    pub(crate) fn decode_error(
        &self,
        method: &Method,
        path: &str,
        message: impl Into<String>,
    ) -> OpenbaoError {
        OpenbaoError::Decode {
            url: self.url(),
            method: method.to_string(),
            path: format!("/v1/{path}"),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_keeps_path_prefix_and_drops_query() {
        let base = Url::parse("http://bao.example:8200/prefix?x=1").expect("test value");
        let c = BaoClient::new(&base, reqwest::Client::new()).expect("test value");
        assert_eq!(
            c.endpoint("sys/health").expect("test value").as_str(),
            "http://bao.example:8200/prefix/v1/sys/health"
        );
        assert_eq!(c.url(), "http://bao.example:8200/prefix");
    }

    #[test]
    fn rejects_non_http_urls() {
        let base = Url::parse("file:///tmp/x").expect("test value");
        let err = BaoClient::new(&base, reqwest::Client::new()).expect_err("test expects an error");
        assert!(matches!(err, OpenbaoError::InvalidUrl { .. }), "{err}");
    }
}
