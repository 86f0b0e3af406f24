//! SSO sign-in for OpenBao: the OIDC device authorization grant (RFC 8628), the refresh-token
//! grant, and the exchange of the resulting `id_token` for an OpenBao token at OpenBao's JWT auth
//! (`POST /v1/auth/<mount>/login`).
//!
//! Design choices:
//! - **Any OpenID provider**: endpoints come from discovery
//!   (`<issuer>/.well-known/openid-configuration`), and the issuer it reports must equal the
//!   configured one. The grant itself is the `oauth2` crate's (interval, `slow_down` +5 s,
//!   `authorization_pending`), driven through a small adapter to `reqwest` that has a timeout
//!   and never follows redirects (a token endpoint that redirects is misconfigured or hostile).
//! - **The id_token is what OpenBao sees.** OpenBao verifies its signature, audience and
//!   expiry itself; this module never decodes it, so a provider-specific access-token format
//!   never matters.
//! - **The library does not print.** What the user must do (open a URL, enter a code) goes to a
//!   [`DeviceCodeNotifier`] the caller provides: the CLI writes it to stderr, tests capture the
//!   user code from it.
//! - **Each ending is typed**: approved (tokens), [`OidcError::AccessDenied`],
//!   [`OidcError::DeviceCodeExpired`] (the provider said `expired_token`, or the code's
//!   `expires_in` passed while polling), [`OidcError::RefreshRejected`] (the refresh token is
//!   revoked, expired or was superseded: sign in again), [`OidcError::JwtLogin`] (carrying
//!   OpenBao's own message). Tokens are [`SecretString`]s and appear in no error, log or `Debug`.
//!
//! ```no_run
//! use harmony_secret::oidc::{DeviceFlowOptions, DevicePrompt, OidcClient, SsoSettings};
//! # async fn demo() -> Result<(), harmony_secret::oidc::OidcError> {
//! let settings = SsoSettings::new("https://sso.example.com", "my-client-id");
//! let client = OidcClient::discover(&settings).await?;
//! let notify = |p: &DevicePrompt| eprintln!("open {} and enter {}", p.verification_uri, p.user_code);
//! let tokens = client.device_flow(&notify, &DeviceFlowOptions::default()).await?;
//! let openbao = harmony_secret::OpenbaoClient::build(
//!     "http://127.0.0.1:8200", &harmony_secret::ClientOptions::default(),
//! ).map_err(|e| harmony_secret::oidc::OidcError::Config(e.to_string()))?;
//! let login = harmony_secret::oidc::exchange_id_token(
//!     &openbao, "jwt", "harmony-developer", &tokens.id_token,
//! ).await?;
//! # drop(login); Ok(()) }
//! ```

pub(crate) mod chain;
mod device;
mod discovery;
mod error;
mod exchange;
mod grant;
mod http;
mod revoke;

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::tls::TlsSettings;

pub use chain::SsoLogin;
pub use device::{DeviceCodeNotifier, DeviceFlowOptions, DevicePrompt};
pub use discovery::ProviderMetadata;
pub use error::OidcError;
pub use exchange::{JwtLogin, exchange_id_token};
pub use http::{HttpError, http_client};

/// Default mount of OpenBao's JWT auth method.
pub const DEFAULT_JWT_AUTH_MOUNT: &str = "jwt";
/// Default OpenBao JWT role.
pub const DEFAULT_JWT_ROLE: &str = "harmony-developer";
/// Default timeout of each request to the provider.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which provider and client to sign in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoSettings {
    /// The provider's issuer URL (`HARMONY_SSO_URL`).
    pub issuer: String,
    /// The public client id of the device-code application (`HARMONY_SSO_CLIENT_ID`).
    pub client_id: String,
    /// Zitadel project id (`HARMONY_SSO_PROJECT_ID`): adds the project-audience scope. Optional:
    /// Zitadel puts the project id in `aud` for the project's apps anyway, and OpenBao's role
    /// binds the client id; kept because it is harmless and names the project explicitly.
    pub project_id: Option<String>,
    /// Timeout of each request to the provider.
    pub request_timeout: Duration,
    /// Host names the HTTP client resolves to fixed addresses instead of asking DNS (e.g.
    /// `sso.harmony.local` → the local k3d load balancer).
    pub resolve: Vec<(String, SocketAddr)>,
    /// TLS for the provider's HTTPS: the system roots plus `HARMONY_SSO_CACERT` when set.
    pub tls: TlsSettings,
}

impl SsoSettings {
    /// Settings for `issuer` and `client_id`, no project id, 10 s request timeout.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            project_id: None,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            resolve: Vec::new(),
            tls: TlsSettings::sso_from_lookup(|_| None),
        }
    }

    /// Settings from a variable lookup (`HARMONY_SSO_URL`, `HARMONY_SSO_CLIENT_ID`,
    /// `HARMONY_SSO_PROJECT_ID`, `HARMONY_SSO_CACERT`). `Ok(None)` when no SSO URL is set (SSO not configured); an
    /// error when the URL is set without a client id. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OidcError> {
        use harmony_env::vars;
        let get = |name: &str| crate::lookup::trimmed_var(&lookup, name);
        let Some(issuer) = get(vars::HARMONY_SSO_URL) else {
            return Ok(None);
        };
        let client_id = get(vars::HARMONY_SSO_CLIENT_ID).ok_or_else(|| {
            OidcError::Config(format!(
                "{} is set but {} is not; set it to the client id of the device-code application",
                vars::HARMONY_SSO_URL,
                vars::HARMONY_SSO_CLIENT_ID
            ))
        })?;
        let mut settings = Self::new(issuer, client_id);
        settings.project_id = get(vars::HARMONY_SSO_PROJECT_ID);
        settings.tls = TlsSettings::sso_from_lookup(&lookup);
        Ok(Some(settings))
    }

    /// Resolve `host` to `addr` without DNS (see [`SsoSettings::resolve`]).
    pub fn with_resolved_host(mut self, host: impl Into<String>, addr: SocketAddr) -> Self {
        self.resolve.push((host.into(), addr));
        self
    }

    /// The HTTP client for this provider: [`http_client`] with the [`SsoSettings::tls`]
    /// settings and the [`SsoSettings::resolve`] overrides.
    pub fn http_client(&self) -> Result<reqwest::Client, OidcError> {
        let transport = crate::tls::Transport::of(&self.issuer);
        http::http_client_with(self.request_timeout, &self.tls, transport, &self.resolve)
    }

    /// Trust the CA certificates in this PEM file for the provider's HTTPS, besides the
    /// system roots.
    pub fn with_ca_cert(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls = self.tls.with_ca_cert(path);
        self
    }

    /// Add Zitadel's project-audience scope for `project_id`.
    pub fn with_project_id(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = Some(project_id.into());
        self
    }

    /// The scopes requested: `openid offline_access email profile` (+ the Zitadel project
    /// audience `urn:zitadel:iam:org:project:id:<id>:aud` when a project id is set).
    /// `offline_access` is what makes the provider issue a refresh token.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = ["openid", "offline_access", "email", "profile"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        if let Some(id) = &self.project_id {
            scopes.push(format!("urn:zitadel:iam:org:project:id:{id}:aud"));
        }
        scopes
    }
}

/// What a successful grant (device or refresh) yields. All tokens are redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct OidcTokens {
    /// The id_token (a JWT), exchanged at OpenBao's JWT auth.
    pub id_token: SecretString,
    /// The refresh token, when the provider issued one (scope `offline_access`). Providers
    /// rotate it: after a refresh, only the new one is valid.
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token, as the provider reported it.
    pub expires_in: Option<Duration>,
}

/// A provider found by discovery, ready to run grants for one client.
#[derive(Debug, Clone)]
pub struct OidcClient {
    settings: SsoSettings,
    metadata: ProviderMetadata,
    http: reqwest::Client,
}

impl OidcClient {
    /// Fetch `<issuer>/.well-known/openid-configuration` and check it describes `issuer`.
    pub async fn discover(settings: &SsoSettings) -> Result<Self, OidcError> {
        let http = settings.http_client()?;
        let metadata = discovery::discover(&http, &settings.issuer).await?;
        Ok(Self {
            settings: settings.clone(),
            metadata,
            http,
        })
    }

    /// The settings this client was made with.
    pub fn settings(&self) -> &SsoSettings {
        &self.settings
    }

    /// The discovered endpoints.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }
}

#[cfg(test)]
mod tests {
    use harmony_env::vars;

    use super::*;

    use crate::lookup::fixed_lookup as lookup;

    #[test]
    fn scopes_include_offline_access_and_the_zitadel_project_audience() {
        let s = SsoSettings::new("https://sso", "cli");
        assert_eq!(s.scopes(), ["openid", "offline_access", "email", "profile"]);
        let s = s.with_project_id("123");
        assert_eq!(
            s.scopes().last().map(String::as_str),
            Some("urn:zitadel:iam:org:project:id:123:aud")
        );
    }

    #[test]
    fn settings_from_env() {
        assert_eq!(SsoSettings::from_lookup(lookup(&[])).expect("ok"), None);
        let err = SsoSettings::from_lookup(lookup(&[(vars::HARMONY_SSO_URL, "https://sso")]))
            .expect_err("no client id");
        assert!(
            err.to_string().contains(vars::HARMONY_SSO_CLIENT_ID),
            "{err}"
        );
        let s = SsoSettings::from_lookup(lookup(&[
            (vars::HARMONY_SSO_URL, "https://sso"),
            (vars::HARMONY_SSO_CLIENT_ID, "cli"),
            (vars::HARMONY_SSO_PROJECT_ID, " 42 "),
        ]))
        .expect("ok")
        .expect("configured");
        assert_eq!(s.project_id.as_deref(), Some("42"));
        assert_eq!(
            (s.issuer.as_str(), s.client_id.as_str()),
            ("https://sso", "cli")
        );
    }

    #[test]
    fn tokens_are_redacted_in_debug() {
        let t = OidcTokens {
            id_token: SecretString::from("eyJ-id-token-value"),
            refresh_token: Some(SecretString::from("refresh-token-value")),
            expires_in: None,
        };
        let debug = format!("{t:?}");
        assert!(!debug.contains("id-token-value"), "{debug}");
        assert!(!debug.contains("refresh-token-value"), "{debug}");
    }
}
