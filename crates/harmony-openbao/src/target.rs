//! Which OpenBao a command talks to, and with which credentials: [`Target`], shared by both
//! binaries (`harmony` and the seed's `harmony-sso`).
//!
//! Precedence: an explicit URL (`--openbao-url`), then `OPENBAO_URL` (or `BAO_ADDR`/`VAULT_ADDR`),
//! then a project file's `openbao_url` ([`Target::resolve_with_default`]), then the local k3d
//! cluster's OpenBao through the load balancer (`http://bao.harmony.local:8080`, resolved to
//! 127.0.0.1 by the HTTP client itself, so no `/etc/hosts` entry is needed and the cached
//! session is keyed by a stable URL).

use harmony_env::vars;
use harmony_secret::{ClientOptions, OpenbaoClient, OpenbaoSettings, SecretError};
use secrecy::SecretString;

use crate::ingress::{BAO_HOST, LocalIngress};
use crate::{DEFAULT_USERPASS_USER, OpenbaoError, StateDir};

/// OpenBao of the local cluster, as seen from the host: `http://bao.harmony.local:8080` (no
/// trailing slash, the form sessions are keyed by).
pub fn cluster_openbao_url() -> String {
    LocalIngress::k3d()
        .url(BAO_HOST)
        .as_str()
        .trim_end_matches('/')
        .to_owned()
}

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
    /// A KV mount or prefix from the environment that cannot work (found before signing in).
    #[error("{0}")]
    BadSetting(String),
    /// The server does not answer at all (said before "no credentials", which would not help).
    #[error("{0}")]
    Unreachable(String),
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
    /// A namespace given on the command line, which wins over `BAO_NAMESPACE` / `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Target {
    /// Pick the target: `explicit` (a flag), else the environment, else the cluster `cluster_name`.
    pub fn resolve(explicit: Option<&url::Url>, cluster_name: &str) -> Result<Self, TargetError> {
        Self::resolve_with_default(explicit, None, cluster_name)
    }

    /// [`Target::resolve`] with `project` (a project file's URL) between the environment and
    /// the cluster: a flag, then `OPENBAO_URL` (or an alias), then `project`, then the cluster.
    pub fn resolve_with_default(
        explicit: Option<&url::Url>,
        project: Option<&url::Url>,
        cluster_name: &str,
    ) -> Result<Self, TargetError> {
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
                None => project.cloned(),
            },
        };
        Ok(match explicit {
            Some(url) => Self {
                state: StateDir::for_url(&url)?,
                url,
                cluster: false,
                namespace: None,
            },
            None => {
                let url = cluster_openbao_url();
                Self {
                    url: url::Url::parse(&url).map_err(|source| TargetError::BadUrl {
                        var: "the cluster's OpenBao URL".to_owned(),
                        value: url.clone(),
                        source,
                    })?,
                    state: StateDir::for_cluster(cluster_name)?,
                    cluster: true,
                    namespace: None,
                }
            }
        })
    }

    /// The same target in `namespace` (a command-line choice; `None` keeps the environment's).
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// The URL as OpenBao clients want it (no trailing slash).
    pub fn base(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// An HTTP client for this target's OpenID provider calls: the cluster's names resolve to the
    /// load balancer, nothing else is special.
    pub fn http_client(&self) -> Result<reqwest::Client, TargetError> {
        let builder = if self.cluster {
            LocalIngress::k3d().client_builder()
        } else {
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
        };
        builder
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(TargetError::Http)
    }

    /// How the one OpenBao client reaches this target: TLS and namespace from the environment
    /// (`BAO_CACERT`, `BAO_NAMESPACE`, ...; [`Target::namespace`] wins), and for the local cluster
    /// its names resolved to the load balancer.
    pub fn client_options(&self) -> Result<ClientOptions, TargetError> {
        let mut options = ClientOptions::from_lookup(env)?;
        if self.namespace.is_some() {
            options = options.with_namespace(self.namespace.clone());
        }
        if self.cluster {
            for (host, addr) in LocalIngress::k3d().resolutions() {
                options = options.with_resolved_host(host, addr);
            }
        }
        Ok(options)
    }

    /// An OpenBao client without a token for this target.
    pub fn client(&self) -> Result<OpenbaoClient, TargetError> {
        Ok(OpenbaoClient::build(&self.base(), &self.client_options()?)?)
    }

    /// `settings` reaching this target through the one OpenBao client (see
    /// [`Target::client_options`]).
    pub fn connection(&self, settings: OpenbaoSettings) -> Result<OpenbaoSettings, TargetError> {
        let options = self.client_options()?;
        let mut settings = settings
            .with_tls(options.tls)
            .with_namespace(options.namespace);
        for (host, addr) in options.resolve {
            settings = settings.with_resolved_host(host, addr);
        }
        Ok(settings)
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
        let mut settings = self.connection(OpenbaoSettings::from_lookup(lookup)?)?;
        // A bad mount or prefix is a settings error: say so before anyone is asked to sign in.
        settings
            .validate()
            .map_err(|e| TargetError::BadSetting(e.to_string()))?;
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

    /// An error saying how to get credentials when `settings` has no token and no userpass login
    /// — or, when the server does not answer at all, that first (credentials would not help).
    pub async fn require_credentials(&self, settings: &OpenbaoSettings) -> Result<(), TargetError> {
        if settings.userpass().is_some() || admin_token_from_env().is_some() {
            return Ok(());
        }
        self.check_reachable().await?;
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

impl Target {
    /// One unauthenticated `GET sys/health` (5 s bound): an error saying the server cannot be
    /// reached, and what to do, when it does not answer at all. Any HTTP answer (sealed,
    /// uninitialised, standby) counts as reachable.
    pub async fn check_reachable(&self) -> Result<(), TargetError> {
        let client = self
            .client()?
            .with_timeout(std::time::Duration::from_secs(5));
        let reason = match client.health().await {
            Err(SecretError::Unreachable { reason, .. }) => reason,
            _ => return Ok(()),
        };
        Err(TargetError::Unreachable(if self.cluster {
            format!(
                "cannot reach OpenBao at {} ({reason}): the local cluster is not running; deploy it \
                 with `cargo run -p example-harmony-sso`, or name another server with --openbao-url \
                 or {}",
                self.base(),
                vars::OPENBAO_URL
            )
        } else {
            format!(
                "cannot reach OpenBao at {} ({reason}): check that it is running and that --openbao-url \
                 (or {}) points at it",
                self.base(),
                vars::OPENBAO_URL
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
