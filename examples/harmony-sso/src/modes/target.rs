//! Which OpenBao a demo talks to, and with which credentials.
//!
//! Precedence: `--openbao-url`, then `OPENBAO_URL` (or `BAO_ADDR`/`VAULT_ADDR`), then the local
//! k3d cluster's OpenBao through the load balancer (`http://bao.harmony.local:8080`, resolved to
//! 127.0.0.1 by the HTTP client itself, so no `/etc/hosts` entry is needed and the cached session
//! is keyed by a stable URL).

use anyhow::Context as _;
use harmony::ingress::{BAO_HOST, LocalIngress};
use harmony::openbao::{DEFAULT_USERPASS_USER, StateDir};
use harmony_env::vars;
use harmony_secret::OpenbaoSettings;
use secrecy::SecretString;

use crate::cli::Args;

/// OpenBao of the local cluster, as seen from the host: `http://bao.harmony.local:8080` (no
/// trailing slash, the form sessions are keyed by).
pub fn cluster_openbao_url() -> String {
    LocalIngress::k3d()
        .url(BAO_HOST)
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

/// The OpenBao a command works with.
#[derive(Debug)]
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
    /// Pick the target from the flags and environment.
    pub fn from_args(args: &Args) -> anyhow::Result<Self> {
        let explicit = match &args.openbao_url {
            Some(url) => Some(url.clone()),
            None => match vars::OPENBAO_URL_ALIASES.iter().find_map(|n| env(n)) {
                Some(raw) => Some(
                    url::Url::parse(&raw)
                        .with_context(|| format!("{} is not a URL: {raw:?}", vars::OPENBAO_URL))?,
                ),
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
                url: url::Url::parse(&cluster_openbao_url())?,
                state: StateDir::for_cluster(&args.cluster_name)?,
                cluster: true,
            },
        })
    }

    /// The URL as OpenBao clients want it (no trailing slash).
    pub fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// An HTTP client for this target: the cluster's names resolve to the load balancer.
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        let builder = if self.cluster {
            LocalIngress::k3d().client_builder()
        } else {
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
        };
        Ok(builder
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()?)
    }

    /// Store settings: the environment's credentials (`OPENBAO_TOKEN`, `OPENBAO_USERNAME`/
    /// `OPENBAO_PASSWORD`, SSO variables) for this target's URL; when the environment names no
    /// credential, the userpass password the bootstrap saved for this target.
    pub async fn settings(&self) -> anyhow::Result<OpenbaoSettings> {
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
        if settings.userpass().is_none()
            && vars::OPENBAO_TOKEN_ALIASES.iter().all(|n| env(n).is_none())
        {
            let saved: Option<SecretString> = self
                .state
                .userpass_password(DEFAULT_USERPASS_USER)
                .await
                .context("reading the saved userpass password")?;
            match saved {
                Some(password) => {
                    tracing::debug!(state = %self.state.path().display(), "using the saved userpass login");
                    settings = settings.with_userpass(DEFAULT_USERPASS_USER, password);
                }
                None if self.cluster => anyhow::bail!(
                    "no credentials for the cluster's OpenBao: the deploy saves a userpass login under {}; \
                     run `cargo run -p example-harmony-sso` first, or set {} (or {} and {})",
                    self.state.path().display(),
                    vars::OPENBAO_TOKEN,
                    vars::OPENBAO_USERNAME,
                    vars::OPENBAO_PASSWORD
                ),
                None => anyhow::bail!(
                    "no credentials for the OpenBao at {}: set {} (or {} and {}), or bootstrap it \
                     with `--openbao-url {}`, which saves a userpass login under {}",
                    self.base(),
                    vars::OPENBAO_TOKEN,
                    vars::OPENBAO_USERNAME,
                    vars::OPENBAO_PASSWORD,
                    self.base(),
                    self.state.path().display()
                ),
            }
        }
        Ok(settings)
    }
}

/// The admin token for configuring an existing OpenBao: `OPENBAO_TOKEN` (or its aliases).
pub fn admin_token_from_env() -> Option<SecretString> {
    vars::OPENBAO_TOKEN_ALIASES
        .iter()
        .find_map(|n| env(n))
        .map(SecretString::from)
}
