//! What every subcommand starts from: the target OpenBao, whether a person is there, and the
//! settings that sign in the way `harmony login` last did (see [`crate::profile`]).

use std::io::IsTerminal as _;
use std::sync::Arc;

use harmony_openbao::target::{Target, admin_token_from_env};
use harmony_secret::oidc::{DeviceFlowOptions, DevicePrompt, SsoLogin, SsoSettings};
use harmony_secret::session::SessionCache;
use harmony_secret::{OpenbaoClient, OpenbaoSecretStore, OpenbaoSettings, SecretError};

use crate::cli::{Global, Output};
use crate::profile::{LoginProfile, Method, SsoProfile};

/// The parsed global options, resolved once.
#[derive(Debug)]
pub struct Context {
    pub target: Target,
    /// May we prompt and wait for a person?
    pub interactive: bool,
    /// `--non-interactive` (or its variable) was given.
    pub non_interactive: bool,
    /// The cluster whose OpenBao is used when no URL is given (deploy, cleanup and the deploy's
    /// saved SSO application read it; the lean build resolves [`Context::target`] with it only).
    #[cfg(feature = "deploy")]
    pub cluster_name: String,
    pub output: Output,
    /// `--env` / `HARMONY_ENV`, else the project file's (checked): the environment whose
    /// overlay is read over the base. `--env ''` is the base.
    pub env: Option<String>,
    /// The project file in effect (see [`crate::project`]).
    pub project: Option<harmony_config::project::ProjectFile>,
}

impl Context {
    pub fn new(global: &Global) -> anyhow::Result<Self> {
        let project = crate::project::load(global)?;
        let project_url = project.as_ref().and_then(|p| p.openbao_url.as_ref());
        // A flag or HARMONY_ENV wins (an empty one means the base); else the project's.
        let env = match global.env.as_deref().map(str::trim) {
            Some("") => None,
            Some(env) => {
                harmony_config::layers::validate_environment(env)
                    .map_err(|e| crate::UsageError(e.to_string()))?;
                Some(env.to_owned())
            }
            None => project.as_ref().and_then(|p| p.environment.clone()),
        };
        Ok(Self {
            target: Target::resolve_with_default(
                global.openbao_url.as_ref(),
                project_url,
                &global.cluster_name,
            )?,
            interactive: !global.non_interactive && std::io::stdin().is_terminal(),
            non_interactive: global.non_interactive,
            #[cfg(feature = "deploy")]
            cluster_name: global.cluster_name.clone(),
            output: global.output,
            env,
            project,
        })
    }

    /// The configs a command names, else the project file's.
    pub fn configs_or_project(&self, named: &[String]) -> Result<Vec<String>, crate::UsageError> {
        if !named.is_empty() {
            return Ok(named.to_vec());
        }
        match &self.project {
            Some(p) if !p.configs.is_empty() => Ok(p.configs.clone()),
            Some(p) => Err(crate::UsageError(format!(
                "name the configs to read with -c KEY (the project file {} lists none under \
                 `configs`)",
                p.path.display()
            ))),
            None => Err(crate::UsageError(
                "name the configs to read with -c KEY (or list them as `configs` in a \
                 harmony.toml project file)"
                    .to_owned(),
            )),
        }
    }

    /// The OpenBao URL without a trailing slash (the session cache's key).
    pub fn base(&self) -> String {
        self.target.base()
    }

    /// A client for the target, without a token.
    pub fn client(&self) -> anyhow::Result<OpenbaoClient> {
        Ok(self.target.client()?)
    }

    /// The session cache (`harmony_data_dir()/sessions`).
    pub fn sessions(&self) -> anyhow::Result<SessionCache> {
        Ok(SessionCache::new(SessionCache::default_dir()?))
    }

    /// SSO settings for `issuer`/`client_id`: on the local cluster its host names resolve to the
    /// load balancer.
    pub fn sso_settings(&self, profile: &SsoProfile) -> anyhow::Result<SsoSettings> {
        let mut sso = SsoSettings::new(&profile.issuer, &profile.client_id);
        if let Some(project) = &profile.project_id {
            sso = sso.with_project_id(project);
        }
        if self.target.cluster {
            for (host, addr) in harmony_openbao::ingress::LocalIngress::k3d().resolutions() {
                sso = sso.with_resolved_host(host, addr);
            }
        }
        Ok(sso)
    }

    /// The SSO login of `profile`; the device flow's URL and code go to stderr, and it may start
    /// only when `device_flow_allowed`.
    pub fn sso_login(
        &self,
        profile: &SsoProfile,
        device_flow_allowed: bool,
    ) -> anyhow::Result<SsoLogin> {
        let mut options = DeviceFlowOptions::from_lookup(|n| std::env::var(n).ok());
        // A browser only makes sense for a person at this machine's desktop.
        options.open_browser &= self.interactive;
        Ok(SsoLogin::new(self.sso_settings(profile)?)
            .with_jwt_mount(&profile.jwt_mount)
            .with_jwt_role(&profile.jwt_role)
            .with_interactive(device_flow_allowed)
            .with_notifier(Arc::new(show_device_prompt))
            .with_device_flow_options(options))
    }

    /// Settings for an ordinary command: the environment's credentials, then the session of the
    /// last `harmony login` to this server (an SSO session refreshes itself; a device flow starts
    /// only on a terminal).
    pub async fn settings(&self) -> anyhow::Result<OpenbaoSettings> {
        let base = self.base();
        let mut settings = self.target.settings().await?;
        if let Some(sso) = settings.sso().cloned() {
            let profile = SsoProfile {
                issuer: sso.sso.issuer.clone(),
                client_id: sso.sso.client_id.clone(),
                project_id: sso.sso.project_id.clone(),
                jwt_mount: sso.jwt_mount.clone(),
                jwt_role: sso.jwt_role.clone(),
            };
            settings = settings.with_sso(self.sso_login(&profile, self.interactive)?);
        }
        let Some(profile) = LoginProfile::load(&base)? else {
            return Ok(settings);
        };
        match (profile.method, &profile.sso) {
            (Method::Sso, Some(sso)) if settings.sso().is_none() => {
                settings = settings.with_sso(self.sso_login(sso, self.interactive)?);
            }
            (Method::Userpass | Method::Token, _) if admin_token_from_env().is_none() => {
                if let Some(session) = self.sessions()?.load(&base, &profile.identity).await?
                    && !session.is_expired()
                {
                    settings = settings.with_token(session.token);
                }
            }
            _ => {}
        }
        Ok(settings)
    }

    /// Sign in (environment, cached session, silent refresh, …) and return the store.
    pub async fn connect(&self) -> anyhow::Result<OpenbaoSecretStore> {
        let settings = self.settings().await?;
        let has_token = admin_token_from_env().is_some()
            || LoginProfile::load(&self.base())?.is_some_and(|p| p.method != Method::Sso);
        if settings.sso().is_none()
            && settings.userpass().is_none()
            && settings.ci().is_none()
            && !has_token
        {
            anyhow::bail!(
                "not signed in to the OpenBao at {}: run `harmony login` (or set {})",
                self.base(),
                harmony_env::vars::OPENBAO_TOKEN
            );
        }
        OpenbaoSecretStore::connect(settings)
            .await
            .map_err(|e| match e {
                SecretError::Auth(_) => anyhow::Error::new(e).context(format!(
                    "could not sign in to the OpenBao at {}; run `harmony login`",
                    self.base()
                )),
                other => anyhow::Error::new(other),
            })
    }

    /// Whether data is wanted as JSON.
    pub fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// The device flow's prompt, on stderr: the code first, then where to enter it.
fn show_device_prompt(prompt: &DevicePrompt) {
    eprintln!();
    eprintln!("To sign in, open this page and confirm the code:");
    eprintln!("    {}", prompt.url_to_open());
    eprintln!("    code: {}", prompt.user_code);
    eprintln!(
        "(waiting up to {} s for the approval)",
        prompt.expires_in.as_secs()
    );
    eprintln!();
}
