//! Errors of the SSO sign-in. No variant carries a token, device code or response body.

use crate::oidc::HttpError;

/// Everything that can end an SSO sign-in other than success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Invalid settings (e.g. a client id without an SSO URL, a bad mount name).
    #[error("{0}")]
    Config(String),
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("could not build the HTTP client for the OpenID provider")]
    HttpClient {
        /// The builder's error.
        #[source]
        source: reqwest::Error,
    },
    /// A URL from the settings or from discovery does not parse.
    #[error("{what} {url:?} is not a valid URL; check {hint}")]
    InvalidUrl {
        /// Which URL.
        what: &'static str,
        /// The value.
        url: String,
        /// Where it came from (a variable name or "the provider's discovery document").
        hint: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// The provider could not be reached.
    #[error(
        "the OpenID provider is unreachable ({source}); check that {var} points at it and it is up",
        var = harmony_env::vars::HARMONY_SSO_URL
    )]
    Unreachable {
        /// The transport error, with the URL.
        #[source]
        source: HttpError,
    },
    /// Discovery answered with a non-success status.
    #[error(
        "OpenID discovery at {url} answered HTTP {status}; check that {var} is the issuer URL",
        var = harmony_env::vars::HARMONY_SSO_URL
    )]
    DiscoveryStatus {
        /// The discovery URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// An answer could not be decoded (not JSON, or fields missing or of the wrong type).
    #[error("could not decode the answer of {url}: {message}")]
    Decode {
        /// The endpoint.
        url: String,
        /// Where decoding failed (field path and category, never the value).
        message: String,
    },
    /// Discovery describes a different issuer than the configured one.
    #[error(
        "the provider at {configured} says its issuer is {reported}; set {var} to exactly {reported}",
        var = harmony_env::vars::HARMONY_SSO_URL
    )]
    IssuerMismatch {
        /// The issuer from the settings.
        configured: String,
        /// The issuer in the discovery document.
        reported: String,
    },
    /// The provider does not offer the device authorization grant.
    #[error(
        "the OpenID provider {issuer} has no device_authorization_endpoint; enable the device code grant for the application"
    )]
    NoDeviceEndpoint {
        /// The issuer.
        issuer: String,
    },
    /// The provider refused to start a device flow (e.g. unknown client, grant not allowed).
    #[error("the OpenID provider refused the device code request at {url}: {error}{}",
        description_suffix(.description))]
    DeviceAuthorization {
        /// The device authorization endpoint.
        url: String,
        /// The OAuth error code.
        error: String,
        /// The provider's description.
        description: Option<String>,
    },
    /// The user denied the sign-in request (`access_denied`).
    #[error("the sign-in request was denied at {issuer}; run again and approve it")]
    AccessDenied {
        /// The issuer.
        issuer: String,
    },
    /// The device code expired before the user approved it (`expired_token`, or its
    /// `expires_in` passed while polling).
    #[error(
        "the sign-in code expired before it was approved (after {expires_in_secs} s); run again and approve it sooner"
    )]
    DeviceCodeExpired {
        /// The code's lifetime, in seconds.
        expires_in_secs: u64,
    },
    /// The refresh token was refused for good (`invalid_grant`: expired, revoked, or superseded
    /// by a newer one; `invalid_request`, `invalid_client`, `unauthorized_client`). A new device
    /// flow is needed.
    #[error("the OpenID provider refused the refresh token ({error}{}); sign in again",
        description_suffix(.description))]
    RefreshRejected {
        /// The OAuth error code.
        error: String,
        /// The provider's description.
        description: Option<String>,
    },
    /// The provider failed on its side (HTTP 5xx, `server_error`, `temporarily_unavailable`):
    /// the refresh token was not judged, so it is kept for the next attempt.
    #[error("the OpenID provider is unavailable: {url} answered {}{}{}; the sign-in is kept, run again once the provider is back",
        .status.map(|s| format!("HTTP {s}")).unwrap_or_default(),
        .error.as_deref().map(|e| format!(" {e}")).unwrap_or_default(),
        description_suffix(.description))]
    ProviderUnavailable {
        /// The token endpoint.
        url: String,
        /// The HTTP status, when known.
        status: Option<u16>,
        /// The OAuth error code, when the answer held one.
        error: Option<String>,
        /// The provider's description.
        description: Option<String>,
    },
    /// The token endpoint answered with another OAuth error.
    #[error("the OpenID provider's token endpoint {url} answered {error}{}", description_suffix(.description))]
    TokenEndpoint {
        /// The token endpoint.
        url: String,
        /// The OAuth error code.
        error: String,
        /// The provider's description.
        description: Option<String>,
    },
    /// The provider issued tokens but no id_token (the `openid` scope was not granted).
    #[error(
        "the OpenID provider at {url} returned no id_token; make sure the application may use the `openid` scope"
    )]
    NoIdToken {
        /// The token endpoint.
        url: String,
    },
    /// Any other failure inside the OAuth client library.
    #[error("OAuth request to {url} failed: {message}")]
    OAuth {
        /// The endpoint.
        url: String,
        /// The library's message.
        message: String,
    },
    /// OpenBao refused the id_token (wrong role, audience, expired token, ...): OpenBao's own
    /// message.
    #[error(
        "OpenBao at {url} refused the SSO login at auth/{mount} role {role:?} (HTTP {status}): {message}"
    )]
    JwtLogin {
        /// The OpenBao server.
        url: String,
        /// The JWT auth mount.
        mount: String,
        /// The role.
        role: String,
        /// The HTTP status.
        status: u16,
        /// OpenBao's errors, joined.
        message: String,
    },
    /// OpenBao could not be reached for the JWT login.
    #[error(
        "OpenBao is unreachable for the SSO login ({source}); check {var}",
        var = harmony_env::vars::OPENBAO_URL
    )]
    OpenbaoUnreachable {
        /// The transport error, with the URL.
        #[source]
        source: HttpError,
    },
}

impl OidcError {
    /// Whether the provider itself failed or could not be reached (outage, 5xx, transport
    /// error), as opposed to judging what it was sent: a refresh token is kept through these.
    pub fn is_provider_unavailable(&self) -> bool {
        match self {
            OidcError::ProviderUnavailable { .. } | OidcError::Unreachable { .. } => true,
            OidcError::DiscoveryStatus { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

fn description_suffix(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

pub(crate) use crate::redact::json_error_detail;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u64,
        }
        let e = serde_json::from_str::<T>(r#"{"n": "secret-token-value"}"#).expect_err("type");
        let detail = json_error_detail(&e);
        assert!(!detail.contains("secret-token-value"), "{detail}");
        let e = serde_json::from_str::<T>("{}").expect_err("missing");
        assert!(json_error_detail(&e).starts_with("missing field `n`"));
    }
}
