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
use harmony_secret::{ClientOptions, OpenbaoSettings};
use secrecy::SecretString;

use crate::cli::{Args, UsageError};

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
    /// `--namespace`, which wins over `BAO_NAMESPACE` / `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
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
                namespace: args.namespace.clone(),
            },
            None => Self {
                url: url::Url::parse(&cluster_openbao_url())?,
                state: StateDir::for_cluster(&args.cluster_name)?,
                cluster: true,
                namespace: args.namespace.clone(),
            },
        })
    }

    /// The URL as OpenBao clients want it (no trailing slash).
    pub fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// `settings` reaching this target through the one OpenBao client: TLS and namespace from
    /// the environment (`BAO_CACERT`, `BAO_NAMESPACE`, ...; `--namespace` wins), and for the
    /// local cluster its names resolved to the load balancer.
    pub fn connection(&self, settings: OpenbaoSettings) -> anyhow::Result<OpenbaoSettings> {
        let options = ClientOptions::from_lookup(env)?;
        let namespace = self.namespace.clone().or(options.namespace);
        let mut settings = settings.with_tls(options.tls).with_namespace(namespace);
        if self.cluster {
            for (host, addr) in LocalIngress::k3d().resolutions() {
                settings = settings.with_resolved_host(host, addr);
            }
        }
        Ok(settings)
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
        let mut settings = self.connection(OpenbaoSettings::from_lookup(lookup)?)?;
        // A bad mount or prefix is a settings error: say so before anyone is asked to sign in.
        settings
            .validate()
            .map_err(|e| UsageError::BadSetting(e.to_string()))?;
        if settings.userpass().is_none()
            && vars::OPENBAO_TOKEN_ALIASES.iter().all(|n| env(n).is_none())
        {
            let saved: Option<SecretString> = self
                .state
                .userpass_password(DEFAULT_USERPASS_USER)
                .await
                .context("reading the saved userpass password")?;
            if saved.is_none() {
                // Without credentials the demo cannot start; but if the server does not answer,
                // that is the first thing to fix, and credentials would not help.
                self.check_reachable(&settings).await?;
            }
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

impl Target {
    /// One unauthenticated `GET sys/health` (5 s bound): an error saying the server cannot be
    /// reached, and what to do, when it does not answer at all. Any HTTP answer (sealed,
    /// uninitialised, standby) counts as reachable.
    async fn check_reachable(&self, settings: &OpenbaoSettings) -> anyhow::Result<()> {
        let client =
            harmony_secret::OpenbaoClient::build(settings.url(), &settings.client_options())?
                .with_timeout(std::time::Duration::from_secs(5));
        let reason = match client.health().await {
            Err(harmony_secret::SecretError::Unreachable { reason, .. }) => reason,
            _ => return Ok(()),
        };
        if self.cluster {
            anyhow::bail!(
                "cannot reach OpenBao at {} ({reason}): the local cluster is not running; deploy it \
                 with `cargo run -p example-harmony-sso`, or name another server with --openbao-url \
                 or {}",
                self.base(),
                vars::OPENBAO_URL
            )
        }
        anyhow::bail!(
            "cannot reach OpenBao at {} ({reason}): check that it is running and that --openbao-url \
             (or {}) points at it",
            self.base(),
            vars::OPENBAO_URL
        )
    }
}

/// The admin token for configuring an existing OpenBao: `OPENBAO_TOKEN` (or its aliases).
pub fn admin_token_from_env() -> Option<SecretString> {
    vars::OPENBAO_TOKEN_ALIASES
        .iter()
        .find_map(|n| env(n))
        .map(SecretString::from)
}
