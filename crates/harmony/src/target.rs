//! Which OpenBao a command talks to, and with which credentials: [`Target`], shared by both
//! binaries (`harmony` and the seed's `harmony-sso`).
//!
//! Precedence: an explicit URL (`--openbao-url`), then `OPENBAO_URL` (or `BAO_ADDR`/`VAULT_ADDR`),
//! then the local k3d cluster's OpenBao through the load balancer (`http://bao.harmony.local:8080`,
//! resolved to 127.0.0.1 by the HTTP client itself, so no `/etc/hosts` entry is needed and the
//! cached session is keyed by a stable URL).

use std::net::SocketAddr;

use harmony_env::vars;
use harmony_secret::{OpenbaoSettings, SecretError};
use secrecy::SecretString;

use crate::openbao::{DEFAULT_USERPASS_USER, OpenbaoError, StateDir};

/// OpenBao of the local cluster, as seen from the host.
pub const CLUSTER_OPENBAO_URL: &str = "http://bao.harmony.local:8080";
/// The k3d load balancer on the host.
pub const LOADBALANCER: &str = "127.0.0.1:8080";
/// [`LOADBALANCER`] as an address.
const LOADBALANCER_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

/// Why a target or its settings could not be worked out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// `OPENBAO_URL` (or an alias) is set to something that is not a URL.
    #[error("{var} is not a URL: {value:?}; set it to e.g. http://127.0.0.1:8200")]
    BadUrl {
        /// The variable that held it.
        var: String,
        /// Its value (a URL, not a secret).
        value: String,
        /// The parse error.
        #[source]
        source: url::ParseError,
    },
    /// The local state directory or a saved file could not be used.
    #[error(transparent)]
    State(#[from] OpenbaoError),
    /// The environment's OpenBao settings are inconsistent.
    #[error(transparent)]
    Settings(#[from] SecretError),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client for OpenBao ({0}); check the TLS setup")]
    Http(#[source] reqwest::Error),
    /// Nothing to sign in with.
    #[error("{0}")]
    NoCredentials(String),
}

/// The OpenBao a command works with.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its base URL.
    pub url: url::Url,
    /// Where its bootstrap state (keys, userpass password) lives.
    pub state: StateDir,
    /// Whether it is the local cluster's (reached through the load balancer).
    pub cluster: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Target {
    /// Pick the target: `explicit` (a flag), else the environment, else the cluster `cluster_name`.
    pub fn resolve(explicit: Option<&url::Url>, cluster_name: &str) -> Result<Self, TargetError> {
        let explicit = match explicit {
            Some(url) => Some(url.clone()),
            None => match vars::OPENBAO_URL_ALIASES
                .iter()
                .find_map(|n| env(n).map(|v| (*n, v)))
            {
                Some((var, raw)) => {
                    Some(
                        url::Url::parse(raw.trim()).map_err(|source| TargetError::BadUrl {
                            var: var.to_owned(),
                            value: raw.clone(),
                            source,
                        })?,
                    )
                }
                None => None,
            },
        };
        Ok(match explicit {
            Some(url) => Self {
                state: StateDir::for_url(&url)?,
                url,
                cluster: false,
            },
            None => Self {
                // A constant that parses.
                url: url::Url::parse(CLUSTER_OPENBAO_URL).map_err(|source| {
                    TargetError::BadUrl {
                        var: "the cluster's OpenBao URL".to_owned(),
                        value: CLUSTER_OPENBAO_URL.to_owned(),
                        source,
                    }
                })?,
                state: StateDir::for_cluster(cluster_name)?,
                cluster: true,
            },
        })
    }

    /// The URL as OpenBao clients want it (no trailing slash).
    pub fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// An HTTP client for this target: the cluster's names resolve to the load balancer.
    pub fn http_client(&self) -> Result<reqwest::Client, TargetError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(5));
        if self.cluster {
            let lb = SocketAddr::from(LOADBALANCER_ADDR);
            builder = builder
                .resolve("bao.harmony.local", lb)
                .resolve("sso.harmony.local", lb);
        }
        builder.build().map_err(TargetError::Http)
    }

    /// Store settings: the environment's credentials (`OPENBAO_TOKEN`, `OPENBAO_USERNAME`/
    /// `OPENBAO_PASSWORD`, SSO variables) for this target's URL; when the environment names no
    /// token and no userpass login, the userpass password the bootstrap saved for this target
    /// (if any). See [`Target::require_credentials`] for callers that need one.
    pub async fn settings(&self) -> Result<OpenbaoSettings, TargetError> {
        let base = self.base();
        let lookup = |name: &str| {
            if vars::OPENBAO_URL_ALIASES.contains(&name) {
                Some(base.clone())
            } else {
                env(name)
            }
        };
        let mut settings =
            OpenbaoSettings::from_lookup(lookup)?.with_http_client(self.http_client()?);
        if settings.userpass().is_none() && admin_token_from_env().is_none() {
            let saved: Option<SecretString> =
                self.state.userpass_password(DEFAULT_USERPASS_USER).await?;
            if let Some(password) = saved {
                tracing::debug!(state = %self.state.path().display(), "using the saved userpass login");
                settings = settings.with_userpass(DEFAULT_USERPASS_USER, password);
            }
        }
        Ok(settings)
    }

    /// An error saying how to get credentials when `settings` has no token and no userpass login.
    pub fn require_credentials(&self, settings: &OpenbaoSettings) -> Result<(), TargetError> {
        if settings.userpass().is_some() || admin_token_from_env().is_some() {
            return Ok(());
        }
        Err(TargetError::NoCredentials(if self.cluster {
            format!(
                "no credentials for the cluster's OpenBao: the deploy saves a userpass login under {}; \
                 run `cargo run -p example-harmony-sso` first, or set {} (or {} and {})",
                self.state.path().display(),
                vars::OPENBAO_TOKEN,
                vars::OPENBAO_USERNAME,
                vars::OPENBAO_PASSWORD
            )
        } else {
            format!(
                "no credentials for the OpenBao at {}: set {} (or {} and {}), or bootstrap it \
                 with `--openbao-url {}`, which saves a userpass login under {}",
                self.base(),
                vars::OPENBAO_TOKEN,
                vars::OPENBAO_USERNAME,
                vars::OPENBAO_PASSWORD,
                self.base(),
                self.state.path().display()
            )
        }))
    }
}

/// The admin token for configuring an existing OpenBao: `OPENBAO_TOKEN` (or its aliases).
pub fn admin_token_from_env() -> Option<SecretString> {
    vars::OPENBAO_TOKEN_ALIASES
        .iter()
        .find_map(|n| env(n))
        .map(SecretString::from)
}
