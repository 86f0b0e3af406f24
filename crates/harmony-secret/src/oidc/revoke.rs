//! Token revocation (RFC 7009): ending a refresh token's grant at the provider on sign-out.

use secrecy::{ExposeSecret, SecretString};

use crate::oidc::http::HttpError;
use crate::oidc::{OidcClient, OidcError};

impl OidcClient {
    /// Revoke `refresh_token` at the provider's `revocation_endpoint`. `Ok(false)` when
    /// discovery advertises no such endpoint (nothing was sent); `Ok(true)` when the provider
    /// accepted the request (RFC 7009 answers 200 for unknown or already revoked tokens too).
    pub async fn revoke_refresh_token(
        &self,
        refresh_token: &SecretString,
    ) -> Result<bool, OidcError> {
        let Some(url) = self.metadata.revocation_endpoint.clone() else {
            return Ok(false);
        };
        tracing::debug!(%url, "revoking the SSO refresh token");
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("token", refresh_token.expose_secret()),
                ("token_type_hint", "refresh_token"),
                ("client_id", self.settings.client_id.as_str()),
            ])
            .send()
            .await
            .map_err(|e| OidcError::Unreachable {
                source: HttpError::from_reqwest(&url, e),
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(true);
        }
        // The error body is OAuth JSON (`error`, `error_description`); it never echoes the token.
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Err(OidcError::TokenEndpoint {
            url,
            error: body["error"]
                .as_str()
                .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned),
            description: body["error_description"].as_str().map(str::to_owned),
        })
    }
}
