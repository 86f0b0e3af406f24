//! How to reach OpenBao and how to sign in: [`OpenbaoSettings`].
//!
//! Settings come from code (builder methods) or from the environment through
//! [`OpenbaoSettings::from_lookup`], a pure function of a variable lookup, so tests never touch
//! the process environment. Every variable name is a constant in [`harmony_env::vars`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::SecretError;
use crate::client::{ClientOptions, DEFAULT_TIMEOUT};
use crate::steps::AuthStep;
use crate::tls::TlsSettings;

/// Default KV v2 mount.
pub const DEFAULT_KV_MOUNT: &str = "secret";
/// Default path prefix inside the KV mount.
pub const DEFAULT_KV_PREFIX: &str = "harmony";
/// Default mount of the userpass auth method.
pub const DEFAULT_USERPASS_MOUNT: &str = "userpass";

/// Username and password for OpenBao's userpass auth method.
#[derive(Debug, Clone)]
pub struct UserpassLogin {
    /// Mount of the auth method (default `userpass`).
    pub mount: String,
    /// The user.
    pub username: String,
    /// The password (redacted in `Debug`).
    pub password: SecretString,
}

impl UserpassLogin {
    /// The identity the session cache files this login's token under.
    pub fn identity(&self) -> String {
        format!("userpass:{}:{}", self.mount, self.username)
    }
}

/// Everything [`crate::OpenbaoSecretStore::connect`] needs. Tokens and passwords are redacted in
/// `Debug`.
#[derive(Debug, Clone)]
pub struct OpenbaoSettings {
    pub(crate) url: String,
    pub(crate) kv_mount: String,
    pub(crate) kv_prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) token: Option<SecretString>,
    pub(crate) userpass: Option<UserpassLogin>,
    pub(crate) session_dir: Option<PathBuf>,
    pub(crate) auth_steps: Vec<AuthStep>,
    pub(crate) http: Option<reqwest::Client>,
    pub(crate) sso: Option<crate::oidc::SsoLogin>,
    pub(crate) ci: Option<crate::ci::CiLogin>,
    pub(crate) tls: TlsSettings,
    pub(crate) namespace: Option<String>,
    pub(crate) resolve: Vec<(String, std::net::SocketAddr)>,
}

impl OpenbaoSettings {
    /// Settings for the server at `url`: KV mount `secret`, prefix `harmony`, 10 s timeout, no
    /// credentials yet, sessions under `harmony_data_dir()/sessions`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            kv_mount: DEFAULT_KV_MOUNT.to_owned(),
            kv_prefix: DEFAULT_KV_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            token: None,
            userpass: None,
            session_dir: None,
            auth_steps: AuthStep::DEFAULT_CHAIN.to_vec(),
            http: None,
            sso: None,
            ci: None,
            tls: TlsSettings::default(),
            namespace: None,
            resolve: Vec::new(),
        }
    }

    /// Settings from the process environment (see [`OpenbaoSettings::from_lookup`]).
    pub fn from_env() -> Result<Self, SecretError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings from a variable lookup: the URL from `OPENBAO_URL` (or `BAO_ADDR`,
    /// `VAULT_ADDR`), the token from `OPENBAO_TOKEN` (or `BAO_TOKEN`, `VAULT_TOKEN`), userpass from
    /// `OPENBAO_USERNAME` + `OPENBAO_PASSWORD` (mount `OPENBAO_USERPASS_MOUNT`), and the KV
    /// location from `OPENBAO_KV_MOUNT` / `OPENBAO_KV_PREFIX`, the namespace from `BAO_NAMESPACE`
    /// (or `VAULT_NAMESPACE`), TLS from `BAO_CACERT`, `BAO_CAPATH`, `BAO_CLIENT_CERT` +
    /// `BAO_CLIENT_KEY`, `BAO_TLS_SERVER_NAME`, `BAO_SKIP_VERIFY` (or their `VAULT_` names).
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        use harmony_env::vars;
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let first = |names: &[&str]| names.iter().find_map(|n| get(n));

        let url = first(&vars::OPENBAO_URL_ALIASES).ok_or_else(|| {
            SecretError::Config(format!(
                "no OpenBao address is set; set {} (or {}) to the server's URL, e.g. http://127.0.0.1:8200",
                vars::OPENBAO_URL,
                vars::OPENBAO_URL_ALIASES[1..].join(" / ")
            ))
        })?;
        let mut settings = Self::new(url);
        if let Some(token) = first(&vars::OPENBAO_TOKEN_ALIASES) {
            settings = settings.with_token(SecretString::from(token));
        }
        match (get(vars::OPENBAO_USERNAME), get(vars::OPENBAO_PASSWORD)) {
            (Some(user), Some(password)) => {
                settings = settings.with_userpass(user, SecretString::from(password));
            }
            (Some(_), None) => {
                return Err(SecretError::Config(format!(
                    "{} is set but {} is not; set both for userpass login, or neither",
                    vars::OPENBAO_USERNAME,
                    vars::OPENBAO_PASSWORD
                )));
            }
            (None, Some(_)) => {
                return Err(SecretError::Config(format!(
                    "{} is set but {} is not; set both for userpass login, or neither",
                    vars::OPENBAO_PASSWORD,
                    vars::OPENBAO_USERNAME
                )));
            }
            (None, None) => {}
        }
        if let Some(mount) = get(vars::OPENBAO_USERPASS_MOUNT) {
            settings = settings.with_userpass_mount(mount);
        }
        if let Some(mount) = get(vars::OPENBAO_KV_MOUNT) {
            settings = settings.with_kv_mount(mount);
        }
        if let Some(prefix) = lookup(vars::OPENBAO_KV_PREFIX) {
            // An explicitly empty prefix is meaningful: documents at the mount's root.
            settings = settings.with_kv_prefix(prefix.trim());
        }
        let options = ClientOptions::from_lookup(&lookup)?;
        settings.tls = options.tls;
        settings.namespace = options.namespace;
        settings.sso = crate::oidc::SsoLogin::from_lookup(&lookup)
            .map_err(|e| SecretError::Config(e.to_string()))?;
        let url = settings.url.clone();
        if let Some(ci) = crate::ci::CiLogin::from_lookup(&lookup, &url)? {
            settings = settings.with_ci(ci);
        }
        Ok(settings)
    }

    /// Sign in as a CI job with its own OIDC id_token (see [`crate::ci`]). The chain becomes
    /// explicit token → CI identity → userpass: no cached session (a runner may serve several
    /// jobs), no SSO refresh, never a device flow.
    pub fn with_ci(mut self, login: crate::ci::CiLogin) -> Self {
        self.ci = Some(login);
        self.auth_steps = AuthStep::CI_CHAIN.to_vec();
        self
    }

    /// The CI sign-in, when this runs in CI.
    pub fn ci(&self) -> Option<&crate::ci::CiLogin> {
        self.ci.as_ref()
    }

    /// Sign in with SSO (silent refresh, then device flow) when the earlier steps yield nothing.
    pub fn with_sso(mut self, login: crate::oidc::SsoLogin) -> Self {
        self.sso = Some(login);
        self
    }

    /// The SSO login, when configured.
    pub fn sso(&self) -> Option<&crate::oidc::SsoLogin> {
        self.sso.as_ref()
    }

    /// Use this token first (the chain falls through if OpenBao rejects it).
    pub fn with_token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// Log in with userpass (mount `userpass` unless [`OpenbaoSettings::with_userpass_mount`]).
    pub fn with_userpass(mut self, username: impl Into<String>, password: SecretString) -> Self {
        let mount = self
            .userpass
            .take()
            .map_or_else(|| DEFAULT_USERPASS_MOUNT.to_owned(), |u| u.mount);
        self.userpass = Some(UserpassLogin {
            mount,
            username: username.into(),
            password,
        });
        self
    }

    /// The mount of the userpass auth method (only matters with [`OpenbaoSettings::with_userpass`]).
    pub fn with_userpass_mount(mut self, mount: impl Into<String>) -> Self {
        if let Some(u) = self.userpass.as_mut() {
            u.mount = mount.into();
        }
        self
    }

    /// The KV v2 mount (default `secret`).
    pub fn with_kv_mount(mut self, mount: impl Into<String>) -> Self {
        self.kv_mount = mount.into();
        self
    }

    /// The path prefix inside the mount (default `harmony`; empty: the mount's root).
    pub fn with_kv_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.kv_prefix = prefix.into();
        self
    }

    /// The per-request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where session files live (default `harmony_data_dir()/sessions`).
    pub fn with_session_dir(mut self, dir: PathBuf) -> Self {
        self.session_dir = Some(dir);
        self
    }

    /// Replace the auth chain's steps and their order (default
    /// [`AuthStep::DEFAULT_CHAIN`]).
    pub fn with_auth_steps(mut self, steps: impl Into<Vec<AuthStep>>) -> Self {
        self.auth_steps = steps.into();
        self
    }

    /// Use this HTTP client (it should not follow redirects) instead of the one built from the
    /// TLS settings and resolved hosts ([`crate::OpenbaoClient::build`]).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// TLS settings for OpenBao (default: system roots, no client certificate).
    pub fn with_tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// The namespace every request goes to (`X-Vault-Namespace`); `None`: the root namespace.
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// Resolve `host` to `addr` without DNS, for OpenBao and the SSO JWT login (e.g. a local
    /// cluster's ingress names → its load balancer).
    pub fn with_resolved_host(
        mut self,
        host: impl Into<String>,
        addr: std::net::SocketAddr,
    ) -> Self {
        self.resolve.push((host.into(), addr));
        self
    }

    /// The TLS settings.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// The namespace, when one is set.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// How the OpenBao client is built: TLS, namespace, timeout, resolved hosts.
    pub fn client_options(&self) -> ClientOptions {
        let mut options = ClientOptions::default()
            .with_tls(self.tls.clone())
            .with_namespace(self.namespace.clone())
            .with_timeout(self.timeout);
        for (host, addr) in &self.resolve {
            options = options.with_resolved_host(host.clone(), *addr);
        }
        options
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The KV v2 mount.
    pub fn kv_mount(&self) -> &str {
        &self.kv_mount
    }

    /// The path prefix inside the mount.
    pub fn kv_prefix(&self) -> &str {
        &self.kv_prefix
    }

    /// This server's and namespace's documents in the offline cache.
    pub fn offline_scope(
        &self,
        cache: &crate::offline::OfflineCache,
    ) -> crate::offline::CacheScope {
        cache.scope(self.url(), self.namespace())
    }

    /// Where the document `path` lives on OpenBao (`<mount>/data/<prefix>/<path>`): what
    /// messages show and what keys the offline cache.
    pub fn data_path(&self, path: &str) -> String {
        crate::path::join(&[self.kv_mount(), "data", self.kv_prefix(), path])
    }

    /// The per-request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The userpass login, when configured.
    pub fn userpass(&self) -> Option<&UserpassLogin> {
        self.userpass.as_ref()
    }

    /// The auth chain's steps, in order.
    pub fn auth_steps(&self) -> &[AuthStep] {
        &self.auth_steps
    }

    /// The session directory: the one set, else `harmony_data_dir()/sessions`.
    pub fn session_dir(&self) -> Result<PathBuf, SecretError> {
        match &self.session_dir {
            Some(dir) => Ok(dir.clone()),
            None => crate::session::SessionCache::default_dir(),
        }
    }

    /// Check names and the URL before any request is made ([`crate::OpenbaoSecretStore::connect`]
    /// does; callers may do it earlier, to report a bad setting before signing in).
    pub fn validate(&self) -> Result<(), SecretError> {
        let url = url::Url::parse(&self.url).map_err(|e| {
            SecretError::Config(format!(
                "OpenBao URL {:?} is not a valid URL ({e}); set {} to e.g. http://127.0.0.1:8200",
                self.url,
                harmony_env::vars::OPENBAO_URL
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SecretError::Config(format!(
                "OpenBao URL {:?} must start with http:// or https://",
                self.url
            )));
        }
        use harmony_env::vars;
        crate::path::validate(
            &format!("KV mount ({})", vars::OPENBAO_KV_MOUNT),
            &self.kv_mount,
            false,
        )?;
        crate::path::validate(
            &format!("KV prefix ({})", vars::OPENBAO_KV_PREFIX),
            &self.kv_prefix,
            true,
        )?;
        if let Some(u) = &self.userpass {
            crate::path::validate("userpass mount", &u.mount, false)?;
            crate::path::validate_segment("userpass username", &u.username)?;
        }
        if let Some(sso) = &self.sso {
            crate::path::validate("JWT auth mount", &sso.jwt_mount, false)?;
            crate::path::validate_segment("JWT role", &sso.jwt_role)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use harmony_env::vars;
    use secrecy::ExposeSecret;

    use super::*;

    use crate::lookup::fixed_lookup as lookup;

    #[test]
    fn missing_url_names_the_variables() {
        let err = OpenbaoSettings::from_lookup(lookup(&[])).expect_err("no URL");
        let text = err.to_string();
        assert!(text.contains(vars::OPENBAO_URL), "{text}");
        assert!(
            text.contains("BAO_ADDR") && text.contains("VAULT_ADDR"),
            "{text}"
        );
    }

    #[test]
    fn aliases_are_consulted_in_order() {
        let s = OpenbaoSettings::from_lookup(lookup(&[
            (vars::OPENBAO_URL_ALIASES[2], "http://vault:8200"),
            (vars::OPENBAO_URL_ALIASES[1], "http://bao:8200"),
            (vars::OPENBAO_TOKEN_ALIASES[2], "vault-token"),
        ]))
        .expect("settings");
        assert_eq!(s.url(), "http://bao:8200");
        assert_eq!(
            s.token.as_ref().map(|t| t.expose_secret().to_owned()),
            Some("vault-token".to_owned())
        );
        let s = OpenbaoSettings::from_lookup(lookup(&[
            (vars::OPENBAO_URL, "http://primary:8200"),
            (vars::OPENBAO_URL_ALIASES[1], ""),
            (vars::OPENBAO_URL_ALIASES[2], "http://vault:8200"),
        ]))
        .expect("settings");
        assert_eq!(s.url(), "http://primary:8200");
    }

    #[test]
    fn userpass_and_kv_location_from_env() {
        let s = OpenbaoSettings::from_lookup(lookup(&[
            (vars::OPENBAO_URL, "http://bao:8200"),
            (vars::OPENBAO_USERNAME, "alice"),
            (vars::OPENBAO_PASSWORD, "pw-123"),
            (vars::OPENBAO_USERPASS_MOUNT, "people"),
            (vars::OPENBAO_KV_MOUNT, "kv"),
            (vars::OPENBAO_KV_PREFIX, "team/app"),
        ]))
        .expect("settings");
        let up = s.userpass().expect("userpass");
        assert_eq!(
            (up.mount.as_str(), up.username.as_str()),
            ("people", "alice")
        );
        assert_eq!((s.kv_mount(), s.kv_prefix()), ("kv", "team/app"));
        s.validate().expect("valid");
        let debug = format!("{s:?}");
        assert!(!debug.contains("pw-123"), "{debug}");
    }

    #[test]
    fn defaults() {
        let s = OpenbaoSettings::from_lookup(lookup(&[(vars::OPENBAO_URL, "http://bao:8200")]))
            .expect("settings");
        assert_eq!((s.kv_mount(), s.kv_prefix()), ("secret", "harmony"));
        assert_eq!(s.timeout(), Duration::from_secs(10));
        assert!(s.userpass().is_none() && s.token.is_none());
        assert_eq!(s.auth_steps(), AuthStep::DEFAULT_CHAIN);
    }

    #[test]
    fn half_a_userpass_is_an_error_naming_the_other_half() {
        let err = OpenbaoSettings::from_lookup(lookup(&[
            (vars::OPENBAO_URL, "http://bao:8200"),
            (vars::OPENBAO_USERNAME, "alice"),
        ]))
        .expect_err("no password");
        assert!(err.to_string().contains(vars::OPENBAO_PASSWORD), "{err}");
    }

    #[test]
    fn bad_names_are_config_errors() {
        for s in [
            OpenbaoSettings::new("not a url"),
            OpenbaoSettings::new("ftp://bao"),
            OpenbaoSettings::new("http://bao").with_kv_mount("a//b"),
            OpenbaoSettings::new("http://bao").with_kv_prefix("../x"),
            OpenbaoSettings::new("http://bao").with_userpass("a/b", SecretString::from("p")),
        ] {
            assert!(
                matches!(s.validate(), Err(SecretError::Config(_))),
                "{s:?} should be rejected"
            );
        }
    }
}
