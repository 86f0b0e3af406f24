//! The adapter between the `oauth2` crate's HTTP types and `reqwest`.
//!
//! `oauth2` builds an `http::Request<Vec<u8>>` and wants an `http::Response<Vec<u8>>` back; it
//! is transport-agnostic, so the timeout and the no-redirect rule live in the `reqwest::Client`
//! built by [`http_client`].

use std::time::Duration;

use crate::oidc::OidcError;
use crate::tls::{TlsSettings, Transport};

/// A request to the provider failed before an HTTP answer arrived (or while reading it).
///
/// Carries the URL (never a body: request bodies hold device codes and refresh tokens).
#[derive(Debug, thiserror::Error)]
#[error("request to {url} failed: {reason}")]
pub struct HttpError {
    /// The endpoint.
    pub url: String,
    /// Short description ("timed out", "connection refused", ...).
    pub reason: String,
    /// The transport error.
    #[source]
    pub source: Option<reqwest::Error>,
}

impl HttpError {
    pub(crate) fn from_reqwest(url: &str, e: reqwest::Error) -> Self {
        Self {
            url: url.to_owned(),
            reason: describe(&e),
            source: Some(e.without_url()),
        }
    }
}

/// A short, token-free description of a transport error.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if untrusted_certificate(e) {
        format!(
            "the provider's TLS certificate is signed by a CA this machine does not trust; set {} \
             to that CA's PEM file",
            harmony_env::vars::HARMONY_SSO_CACERT
        )
    } else if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_redirect() {
        "the server redirected, and redirects are not followed for OAuth endpoints".to_owned()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".to_owned()
    } else {
        "transport error".to_owned()
    }
}

/// Whether `e` (or a cause) is a certificate from an unknown CA.
fn untrusted_certificate(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
            return true;
        }
        current = err.source();
    }
    false
}

/// The HTTP client for talking to an OpenID provider: every request has `timeout`, and
/// redirects are never followed (RFC 6749 §3.2 clients must not follow them from the token
/// endpoint, and a discovery redirect would change whom we trust). TLS: the system roots.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, OidcError> {
    http_client_with(
        timeout,
        &TlsSettings::sso_from_lookup(|_| None),
        Transport::Tls,
        &[],
    )
}

/// [`http_client`] with TLS settings (e.g. `HARMONY_SSO_CACERT`) and host names resolved to
/// fixed addresses instead of asking DNS; `transport` [`Transport::Plain`] for an `http://`
/// issuer (no trust store read).
pub(crate) fn http_client_with(
    timeout: Duration,
    tls: &TlsSettings,
    transport: Transport,
    resolve: &[(String, std::net::SocketAddr)],
) -> Result<reqwest::Client, OidcError> {
    let mut builder = tls
        .client_builder(transport)
        .map_err(|e| OidcError::Config(e.to_string()))?
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        // Device-flow polls are ≥ 5 s apart, and many servers (Node's default among them) drop
        // idle keep-alive connections after 5 s: reusing one races with its close and turns a
        // poll into a transport error. Dropping idle connections first avoids the race.
        .pool_idle_timeout(Duration::from_secs(4));
    for (host, addr) in resolve {
        builder = builder.resolve(host, *addr);
    }
    builder
        .build()
        .map_err(|source| OidcError::HttpClient { source })
}

/// Send an `oauth2` request through `client`.
pub(crate) async fn send(
    client: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, HttpError> {
    let url = request.uri().to_string();
    let request = reqwest::Request::try_from(request).map_err(|e| HttpError {
        url: url.clone(),
        reason: "the request could not be built".to_owned(),
        source: Some(e.without_url()),
    })?;
    let response = client
        .execute(request)
        .await
        .map_err(|e| HttpError::from_reqwest(&url, e))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| HttpError::from_reqwest(&url, e))?;
    let mut out = http::Response::new(body.to_vec());
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

/// The future [`transport`] returns: boxed and `'static`, so the futures of the grants that use
/// it stay `Send` without borrowing the caller (the secret store's futures must be `Send`).
pub(crate) type ResponseFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>>;

/// `oauth2`'s async HTTP client over `client` (a cheap clone of its connection pool).
pub(crate) fn transport(
    client: &reqwest::Client,
) -> impl Fn(oauth2::HttpRequest) -> ResponseFuture + Send + Sync + 'static {
    let client = client.clone();
    move |request| {
        let client = client.clone();
        Box::pin(async move { send(&client, request).await })
    }
}
