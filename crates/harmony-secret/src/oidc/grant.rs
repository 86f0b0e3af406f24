//! What the device and refresh grants share: the `oauth2` client, the token response with its
//! `id_token`, and the mapping of `oauth2`'s errors to [`OidcError`]. Also the refresh grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use oauth2::basic::{BasicErrorResponse, BasicTokenType};
use oauth2::{
    AuthType, ClientId, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ErrorResponse,
    RequestTokenError, Scope, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::oidc::error::json_error_detail;
use crate::oidc::http::{HttpError, ResponseFuture, transport};
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
    /// the one given, which must not be presented again: Zitadel rejects it, providers with
    /// reuse detection revoke the whole grant. When the provider returns none, keep using the
    /// old one.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<OidcTokens, OidcError> {
        let client = self.oauth_client()?;
        let url = self.metadata.token_endpoint.clone();
        let token = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        tracing::debug!(%url, "refreshing the SSO tokens");
        // `oauth2` drops the HTTP status of an error answer; a 5xx must not count as a verdict
        // on the refresh token, so the status is noted on the way through.
        let status = Arc::new(AtomicU16::new(0));
        let response = client
            .exchange_refresh_token(&token)
            .request_async(&transport_noting_status(&self.http, status.clone()))
            .await
            .map_err(|e| {
                let status = Some(status.load(Ordering::Relaxed)).filter(|s| *s != 0);
                refresh_error(&url, status, e)
            })?;
        tokens_from(&url, response)
    }
}

/// [`transport`] that also stores the HTTP status of the last answer in `status`.
fn transport_noting_status(
    client: &reqwest::Client,
    status: Arc<AtomicU16>,
) -> impl Fn(oauth2::HttpRequest) -> ResponseFuture + Send + Sync + 'static {
    let send = transport(client);
    move |request| {
        let answer = send(request);
        let status = status.clone();
        Box::pin(async move {
            let answer = answer.await;
            if let Ok(response) = &answer {
                status.store(response.status().as_u16(), Ordering::Relaxed);
            }
            answer
        })
    }
}

/// The OAuth error codes that mean the provider has judged the refresh token (or the client)
/// and will not accept it again: only these make us forget the token.
const DEFINITIVE_REFRESH_ERRORS: &[&str] = &[
    "invalid_grant",
    "invalid_request",
    "unauthorized_client",
    "invalid_client",
];

/// The OAuth error codes of a provider failing on its own side (RFC 6749 §5.2 has none for the
/// token endpoint, but providers send the §4.1.2.1 ones; Zitadel answers an internal failure
/// with HTTP 500 `server_error`).
const UNAVAILABLE_REFRESH_ERRORS: &[&str] = &["server_error", "temporarily_unavailable"];

/// Sort a failed refresh grant: the provider's outage (5xx, `server_error`,
/// `temporarily_unavailable`) leaves the refresh token untouched; a definitive rejection means
/// it is dead; anything else is reported as it is.
fn refresh_error(
    url: &str,
    status: Option<u16>,
    e: RequestTokenError<HttpError, BasicErrorResponse>,
) -> OidcError {
    let server_failed = status.is_some_and(|s| s >= 500);
    match e {
        RequestTokenError::ServerResponse(r) => {
            let error = r.error().to_string();
            let description = r.error_description().cloned();
            if server_failed || UNAVAILABLE_REFRESH_ERRORS.contains(&error.as_str()) {
                OidcError::ProviderUnavailable {
                    url: url.to_owned(),
                    status,
                    error: Some(error),
                    description,
                }
            } else if DEFINITIVE_REFRESH_ERRORS.contains(&error.as_str()) {
                OidcError::RefreshRejected { error, description }
            } else {
                OidcError::TokenEndpoint {
                    url: url.to_owned(),
                    error,
                    description,
                }
            }
        }
        // A 5xx whose body is not an OAuth error (a proxy's HTML page, an empty body).
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) if server_failed => {
            OidcError::ProviderUnavailable {
                url: url.to_owned(),
                status,
                error: None,
                description: None,
            }
        }
        other => request_error(url, other),
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

#[cfg(test)]
mod tests {
    use oauth2::basic::BasicErrorResponseType;

    use super::*;

    const URL: &str = "https://sso.example/oauth/v2/token";

    fn answered(code: &str) -> RequestTokenError<HttpError, BasicErrorResponse> {
        let kind = match code {
            "invalid_grant" => BasicErrorResponseType::InvalidGrant,
            "invalid_request" => BasicErrorResponseType::InvalidRequest,
            "invalid_client" => BasicErrorResponseType::InvalidClient,
            "unauthorized_client" => BasicErrorResponseType::UnauthorizedClient,
            "invalid_scope" => BasicErrorResponseType::InvalidScope,
            other => BasicErrorResponseType::Extension(other.to_owned()),
        };
        RequestTokenError::ServerResponse(BasicErrorResponse::new(kind, None, None))
    }

    #[test]
    fn only_a_definitive_answer_rejects_the_refresh_token() {
        for code in DEFINITIVE_REFRESH_ERRORS {
            let e = refresh_error(URL, Some(400), answered(code));
            assert!(
                matches!(e, OidcError::RefreshRejected { ref error, .. } if error == code),
                "{code}: {e:?}"
            );
            assert!(!e.is_provider_unavailable());
        }
        // Zitadel: 500 `server_error` on an internal failure; 503 from a proxy in front.
        for (status, code) in [
            (500, "server_error"),
            (503, "temporarily_unavailable"),
            (400, "temporarily_unavailable"),
            (504, "invalid_grant"),
        ] {
            let e = refresh_error(URL, Some(status), answered(code));
            assert!(
                matches!(e, OidcError::ProviderUnavailable { error: Some(ref c), .. } if c == code),
                "{status} {code}: {e:?}"
            );
            assert!(e.is_provider_unavailable());
            let text = e.to_string();
            assert!(
                text.contains("unavailable") && text.contains(&format!("HTTP {status}")),
                "{text}"
            );
        }
        // A 502 page from a proxy, not an OAuth error body.
        let e = refresh_error(
            URL,
            Some(502),
            RequestTokenError::Other("server returned empty error response".to_owned()),
        );
        assert!(e.is_provider_unavailable(), "{e:?}");
        // Neither a verdict on the token nor an outage: reported as it is, token kept.
        let e = refresh_error(URL, Some(400), answered("invalid_scope"));
        assert!(matches!(e, OidcError::TokenEndpoint { .. }), "{e:?}");
        assert!(!e.is_provider_unavailable());
    }

    #[test]
    fn a_transport_failure_is_an_outage() {
        let e = refresh_error(
            URL,
            None,
            RequestTokenError::Request(HttpError {
                url: URL.to_owned(),
                reason: "could not connect".to_owned(),
                source: None,
            }),
        );
        assert!(
            matches!(e, OidcError::Unreachable { .. }) && e.is_provider_unavailable(),
            "{e:?}"
        );
    }
}
