//! OpenID Provider discovery: just the fields this crate uses.

use serde::Deserialize;

use crate::oidc::OidcError;
use crate::oidc::error::json_error_detail;
use crate::oidc::http::HttpError;

/// The parts of `/.well-known/openid-configuration` the sign-in needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier (must equal the configured issuer).
    pub issuer: String,
    /// The token endpoint (device-code polling, refresh).
    pub token_endpoint: String,
    /// The device authorization endpoint, when the provider supports RFC 8628.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// The token revocation endpoint (RFC 7009), when the provider advertises one.
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
}

/// The discovery URL for `issuer`.
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Fetch and check the discovery document of `issuer`.
pub(crate) async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, OidcError> {
    let url = discovery_url(issuer);
    url::Url::parse(&url).map_err(|source| OidcError::InvalidUrl {
        what: "SSO issuer URL",
        url: issuer.to_owned(),
        hint: harmony_env::vars::HARMONY_SSO_URL.to_owned(),
        source,
    })?;
    tracing::debug!(%url, "fetching OpenID discovery");
    let response = http
        .get(&url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OidcError::Unreachable {
            source: HttpError::from_reqwest(&url, e),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(OidcError::DiscoveryStatus {
            url,
            status: status.as_u16(),
        });
    }
    let body = response.bytes().await.map_err(|e| OidcError::Unreachable {
        source: HttpError::from_reqwest(&url, e),
    })?;
    let metadata = decode::<ProviderMetadata>(&url, &body)?;
    if metadata.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(OidcError::IssuerMismatch {
            configured: issuer.to_owned(),
            reported: metadata.issuer,
        });
    }
    Ok(metadata)
}

/// Decode JSON; the error names the failing position and category, never a value (bodies
/// can hold tokens).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    url: &str,
    body: &[u8],
) -> Result<T, OidcError> {
    serde_json::from_slice(body).map_err(|e| OidcError::Decode {
        url: url.to_owned(),
        message: json_error_detail(&e),
    })
}
