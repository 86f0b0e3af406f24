//! What the device and refresh grants share: the `oauth2` client, the token response with its
//! `id_token`, and the mapping of `oauth2`'s errors to [`OidcError`]. Also the refresh grant.

use std::time::Duration;

use oauth2::basic::{BasicErrorResponse, BasicTokenType};
use oauth2::{
    AuthType, ClientId, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ErrorResponse,
    RequestTokenError, Scope, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::oidc::error::json_error_detail;
use crate::oidc::http::{HttpError, transport};
use crate::oidc::{OidcClient, OidcError, OidcTokens};

/// The OpenID addition to the OAuth token response.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct IdTokenFields {
    #[serde(default)]
    id_token: Option<String>,
}

impl std::fmt::Debug for IdTokenFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenFields")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl oauth2::ExtraTokenFields for IdTokenFields {}

pub(crate) type IdTokenResponse = StandardTokenResponse<IdTokenFields, BasicTokenType>;

/// The `oauth2` client for our public client (no secret, so the client id goes in the body),
/// with the token endpoint set; `DeviceUrl` says whether the device authorization endpoint is.
pub(crate) type OAuthClient<DeviceUrl> = oauth2::Client<
    BasicErrorResponse,
    IdTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    EndpointNotSet,
    DeviceUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// For the refresh grant.
pub(crate) type Client = OAuthClient<EndpointNotSet>;

/// For the device grant.
pub(crate) type DeviceClient = OAuthClient<EndpointSet>;

impl OidcClient {
    pub(crate) fn oauth_client(&self) -> Result<Client, OidcError> {
        let token_url = TokenUrl::new(self.metadata.token_endpoint.clone()).map_err(|source| {
            OidcError::InvalidUrl {
                what: "token_endpoint",
                url: self.metadata.token_endpoint.clone(),
                hint: "the provider's discovery document".to_owned(),
                source,
            }
        })?;
        Ok(
            oauth2::Client::new(ClientId::new(self.settings.client_id.clone()))
                .set_auth_type(AuthType::RequestBody)
                .set_token_uri(token_url),
        )
    }

    pub(crate) fn device_client(&self) -> Result<DeviceClient, OidcError> {
        let Some(endpoint) = self.metadata.device_authorization_endpoint.clone() else {
            return Err(OidcError::NoDeviceEndpoint {
                issuer: self.metadata.issuer.clone(),
            });
        };
        let url = DeviceAuthorizationUrl::new(endpoint.clone()).map_err(|source| {
            OidcError::InvalidUrl {
                what: "device_authorization_endpoint",
                url: endpoint,
                hint: "the provider's discovery document".to_owned(),
                source,
            }
        })?;
        Ok(self.oauth_client()?.set_device_authorization_url(url))
    }

    pub(crate) fn scopes(&self) -> Vec<Scope> {
        self.settings.scopes().into_iter().map(Scope::new).collect()
    }

    /// Trade `refresh_token` for new tokens (refresh-token grant; no user interaction).
    ///
    /// The provider rotates refresh tokens: the returned [`OidcTokens::refresh_token`] replaces
    /// the one given, which must not be presented again (that revokes the whole grant). When
    /// the provider returns none, keep using the old one.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<OidcTokens, OidcError> {
        let client = self.oauth_client()?;
        let url = self.metadata.token_endpoint.clone();
        let token = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        tracing::debug!(%url, "refreshing the SSO tokens");
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&transport(&self.http))
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => refresh_error(&r),
                other => request_error(&url, other),
            })?;
        tokens_from(&url, response)
    }
}

fn refresh_error(r: &BasicErrorResponse) -> OidcError {
    OidcError::RefreshRejected {
        error: r.error().to_string(),
        description: r.error_description().cloned(),
    }
}

/// Map the non-server-response errors of a token request.
pub(crate) fn request_error<TE: ErrorResponse + 'static>(
    url: &str,
    e: RequestTokenError<HttpError, TE>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(r) => OidcError::TokenEndpoint {
            url: url.to_owned(),
            error: r.to_string(),
            description: None,
        },
        RequestTokenError::Request(source) => OidcError::Unreachable { source },
        RequestTokenError::Parse(e, _body) => OidcError::Decode {
            url: url.to_owned(),
            message: format!("{} at `{}`", json_error_detail(e.inner()), e.path()),
        },
        RequestTokenError::Other(message) => OidcError::OAuth {
            url: url.to_owned(),
            message,
        },
    }
}

/// Our tokens from a token response; the id_token is required.
pub(crate) fn tokens_from(url: &str, response: IdTokenResponse) -> Result<OidcTokens, OidcError> {
    let Some(id_token) = response.extra_fields().id_token.clone() else {
        return Err(OidcError::NoIdToken {
            url: url.to_owned(),
        });
    };
    Ok(OidcTokens {
        id_token: SecretString::from(id_token),
        refresh_token: response
            .refresh_token()
            .map(|t| SecretString::from(t.secret().to_owned())),
        expires_in: response
            .expires_in()
            .map(|d| Duration::from_secs(d.as_secs())),
    })
}
