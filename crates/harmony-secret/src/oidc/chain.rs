//! The SSO steps of the auth chain ([`crate::auth`]): **silent refresh** (refresh-token grant →
//! new id_token → JWT login, no user interaction) and **device flow** (a person approves in the
//! browser), and [`SsoLogin`], their settings.
//!
//! Both cache their result as one session per (OpenBao URL, `jwt:<mount>:<role>`), holding the
//! OpenBao token and the OIDC refresh token. Only the newest refresh token is ever kept, and it is
//! written the moment the provider issues it (before the JWT login): providers rotate refresh
//! tokens, so the one just spent is dead. What presenting it again costs depends on the
//! provider: Zitadel only rejects the old token (the newest stays valid), while providers with
//! reuse detection (the test provider, `oidc-provider`, among them) revoke the whole grant and
//! the person must sign in again.
//!
//! So the whole silent refresh (read the newest refresh token, spend it, store its successor and
//! the OpenBao token) runs under the session file's lock, and re-reads the session once it holds
//! it: when two processes refresh at once, the second finds the token the first one stored and
//! uses it, instead of presenting a refresh token that has just been spent. That is right for
//! both kinds: with Zitadel it saves the second process a refused refresh and a device flow,
//! with the others it also keeps the grant alive.
//!
//! A refresh the provider refuses for good (`invalid_grant`, `invalid_request`,
//! `unauthorized_client`, `invalid_client`) forgets the refresh token and moves on to the device
//! flow. A provider that fails on its side (HTTP 5xx, `server_error`, `temporarily_unavailable`,
//! unreachable) has not judged the token, so it is kept: an interactive run moves on to the
//! device flow, a non-interactive one stops with "the provider is unavailable", and the next
//! run presents the same refresh token again. An id_token OpenBao refuses stops the chain with
//! OpenBao's message (a new device flow would produce an id_token with the same claims, so
//! asking the person would not help).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::SecretError;
use crate::client::{OpenbaoClient, lookup_self};
use crate::error::{AttemptFailure, AuthError, StepResult, rejected};
use crate::oidc::{
    DEFAULT_JWT_AUTH_MOUNT, DEFAULT_JWT_ROLE, DeviceCodeNotifier, DeviceFlowOptions, DevicePrompt,
    JwtLogin, OidcClient, OidcError, SsoSettings, exchange_id_token,
};
use crate::session::{LOCK_WAIT, OidcSession, Session, SessionCache, SessionLock};
use crate::steps::{AuthMethodUsed, Authenticated};

/// How the auth chain signs in with SSO: the provider and client, OpenBao's JWT auth mount and
/// role, and whether (and how) a person may be asked to approve a device flow.
#[derive(Clone)]
pub struct SsoLogin {
    /// Provider, client id, project id.
    pub sso: SsoSettings,
    /// Mount of OpenBao's JWT auth method (`OPENBAO_JWT_AUTH_MOUNT`, default `jwt`).
    pub jwt_mount: String,
    /// Role at that mount (`OPENBAO_JWT_ROLE`, default `harmony-developer`).
    pub jwt_role: String,
    /// Whether a device flow may be started: `Some(true)` allows it, `Some(false)` forbids it
    /// (`HARMONY_NON_INTERACTIVE`), `None` allows it when stdin is a terminal.
    pub interactive: Option<bool>,
    /// Browser and wait bound of the device flow.
    pub device_flow: DeviceFlowOptions,
    /// Shows the user the URL and code. Default: a `tracing` warning (the library never prints;
    /// the CLI installs one that writes to stderr).
    pub notifier: Arc<dyn DeviceCodeNotifier>,
}

impl std::fmt::Debug for SsoLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SsoLogin")
            .field("sso", &self.sso)
            .field("jwt_mount", &self.jwt_mount)
            .field("jwt_role", &self.jwt_role)
            .field("interactive", &self.interactive)
            .field("device_flow", &self.device_flow)
            .finish_non_exhaustive()
    }
}

/// The default notifier: the prompt as a `tracing` warning, for callers that set none.
fn log_prompt(prompt: &DevicePrompt) {
    tracing::warn!(
        url = prompt.url_to_open(),
        user_code = %prompt.user_code,
        expires_in_secs = prompt.expires_in.as_secs(),
        "to sign in to OpenBao, open the URL and confirm the code"
    );
}

impl SsoLogin {
    /// SSO with `sso` at JWT mount `jwt`, role `harmony-developer`; the device flow is allowed
    /// when stdin is a terminal and shown through `tracing`; no browser is opened.
    pub fn new(sso: SsoSettings) -> Self {
        Self {
            sso,
            jwt_mount: DEFAULT_JWT_AUTH_MOUNT.to_owned(),
            jwt_role: DEFAULT_JWT_ROLE.to_owned(),
            interactive: None,
            device_flow: DeviceFlowOptions::default(),
            notifier: Arc::new(log_prompt),
        }
    }

    /// From a variable lookup: `None` unless `HARMONY_SSO_URL` is set; then
    /// `HARMONY_SSO_CLIENT_ID` (required), `HARMONY_SSO_PROJECT_ID`, `OPENBAO_JWT_AUTH_MOUNT`,
    /// `OPENBAO_JWT_ROLE`, `HARMONY_NON_INTERACTIVE` (`1`/`true`/`yes`/`on`: never start a
    /// device flow) and `HARMONY_SSO_OPEN_BROWSER`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, OidcError> {
        use harmony_env::vars;
        let Some(sso) = SsoSettings::from_lookup(&lookup)? else {
            return Ok(None);
        };
        let get = |name: &str| crate::lookup::trimmed_var(&lookup, name);
        let mut login = Self::new(sso);
        if let Some(mount) = get(vars::OPENBAO_JWT_AUTH_MOUNT) {
            login.jwt_mount = mount;
        }
        if let Some(role) = get(vars::OPENBAO_JWT_ROLE) {
            login.jwt_role = role;
        }
        if get(vars::HARMONY_NON_INTERACTIVE)
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
        {
            login.interactive = Some(false);
        }
        login.device_flow = DeviceFlowOptions::from_lookup(&lookup);
        Ok(Some(login))
    }

    /// Another JWT auth mount.
    pub fn with_jwt_mount(mut self, mount: impl Into<String>) -> Self {
        self.jwt_mount = mount.into();
        self
    }

    /// Another JWT role.
    pub fn with_jwt_role(mut self, role: impl Into<String>) -> Self {
        self.jwt_role = role.into();
        self
    }

    /// Allow (`true`) or forbid (`false`) the device flow regardless of the terminal.
    pub fn with_interactive(mut self, interactive: bool) -> Self {
        self.interactive = Some(interactive);
        self
    }

    /// Show device-flow prompts through `notifier`.
    pub fn with_notifier(mut self, notifier: Arc<dyn DeviceCodeNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Device-flow options (browser, wait bound).
    pub fn with_device_flow_options(mut self, options: DeviceFlowOptions) -> Self {
        self.device_flow = options;
        self
    }

    /// The identity its sessions are cached under: `jwt:<mount>:<role>`.
    pub fn identity(&self) -> String {
        format!("jwt:{}:{}", self.jwt_mount, self.jwt_role)
    }

    /// Whether a device flow may be started now.
    pub fn allows_device_flow(&self) -> bool {
        self.interactive
            .unwrap_or_else(|| std::io::stdin().is_terminal())
    }
}

fn sso_stop(e: OidcError) -> SecretError {
    SecretError::Auth(AuthError::Sso(e))
}

/// Silent refresh: the cached refresh token → new tokens → JWT login, under the session lock.
pub(crate) async fn silent_refresh(
    client: &OpenbaoClient,
    login: Option<&SsoLogin>,
    cache: Option<&SessionCache>,
) -> StepResult {
    let (Some(login), Some(cache)) = (login, cache) else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    let identity = client.session_identity(&login.identity());
    // Without a refresh token there is nothing to wait for the lock for.
    let cached = cache.load(client.url(), &identity).await?;
    if cached
        .and_then(|s| s.oidc)
        .and_then(|o| o.refresh_token)
        .is_none()
    {
        return Ok(Err(AttemptFailure::NoSession));
    }
    // Released when `lock` drops: on every return below, and if this future is cancelled.
    let lock = cache
        .lock(client.url(), &identity, refresh_lock_wait(client, login))
        .await?;
    refresh_locked(client, login, &lock).await
}

/// The longest another process may hold the lock for a refresh: its `lookup-self`, discovery,
/// refresh grant and JWT login, each bounded by its request timeout, plus file work.
fn refresh_lock_wait(client: &OpenbaoClient, login: &SsoLogin) -> Duration {
    let holder = 2 * client.timeout() + 2 * login.sso.request_timeout + Duration::from_secs(5);
    holder.max(LOCK_WAIT)
}

async fn refresh_locked(
    client: &OpenbaoClient,
    login: &SsoLogin,
    lock: &SessionLock,
) -> StepResult {
    let Some(session) = lock.load().await? else {
        return Ok(Err(AttemptFailure::NoSession));
    };
    // Whoever held the lock before us may have refreshed already: a token OpenBao accepts is
    // as good as the one a refresh would bring, and refreshing again would spend for nothing
    // the refresh token that process just stored.
    if !session.is_expired() {
        match lookup_self(&client.clone().with_token(session.token.clone())).await {
            Ok(_) => {
                tracing::info!(
                    url = client.url(),
                    "the cached SSO session holds a valid token (another process refreshed it); using it"
                );
                return Ok(Ok(Authenticated {
                    token: session.token,
                    method: AuthMethodUsed::CachedSession,
                }));
            }
            Err(e) => {
                rejected(e)?;
            }
        }
    }
    let Some((oidc, refresh_token)) = session
        .oidc
        .and_then(|o| o.refresh_token.clone().map(|t| (o, t)))
    else {
        return Ok(Err(AttemptFailure::NoSession));
    };
    if oidc.issuer.trim_end_matches('/') != login.sso.issuer.trim_end_matches('/')
        || oidc.client_id != login.sso.client_id
    {
        return Ok(Err(AttemptFailure::SsoFailed {
            message: format!(
                "the cached refresh token is for {} (client {}), not the configured provider {} \
                 (client {}); sign in again with the device flow",
                oidc.issuer, oidc.client_id, login.sso.issuer, login.sso.client_id
            ),
        }));
    }
    let tokens = match OidcClient::discover(&login.sso).await {
        Ok(provider) => provider.refresh(&refresh_token).await,
        Err(e) => Err(e),
    };
    let tokens = match tokens {
        Ok(tokens) => tokens,
        Err(e) => {
            if matches!(e, OidcError::RefreshRejected { .. }) {
                // Dead for good: forget it, so no later run presents it again.
                set_refresh_token(lock, None).await;
            } else if e.is_provider_unavailable() && !login.allows_device_flow() {
                // The refresh token stays for the next run; nobody could do better now.
                tracing::warn!(error = %e, "the OpenID provider is unavailable; the refresh token is kept");
                return Err(sso_stop(e));
            }
            tracing::info!(error = %e, "silent refresh failed");
            return Ok(Err(AttemptFailure::SsoFailed {
                message: e.to_string(),
            }));
        }
    };
    // The old refresh token is void from now on: record the new one before anything else can
    // fail.
    let newest = tokens.refresh_token.clone().unwrap_or(refresh_token);
    set_refresh_token(lock, Some(newest.clone())).await;
    let jwt = exchange(client, login, &tokens.id_token).await?;
    store_session(lock, client, login, &jwt, Some(newest)).await;
    Ok(Ok(Authenticated {
        token: jwt.token,
        method: AuthMethodUsed::SilentRefresh,
    }))
}

/// Device flow: ask a person (only when allowed), then JWT login.
pub(crate) async fn device_flow(
    client: &OpenbaoClient,
    login: Option<&SsoLogin>,
    cache: Option<&SessionCache>,
) -> StepResult {
    let Some(login) = login else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    if !login.allows_device_flow() {
        return Ok(Err(AttemptFailure::NonInteractive));
    }
    let provider = OidcClient::discover(&login.sso).await.map_err(sso_stop)?;
    let tokens = provider
        .device_flow(login.notifier.as_ref(), &login.device_flow)
        .await
        .map_err(sso_stop)?;
    // Not under the session lock while a person approves (that takes minutes); only the
    // writes are.
    let lock = match cache {
        Some(cache) => {
            lock_or_warn(
                cache,
                client.url(),
                &client.session_identity(&login.identity()),
            )
            .await
        }
        None => None,
    };
    if let Some(lock) = &lock
        && let Some(refresh) = tokens.refresh_token.clone()
    {
        set_refresh_token(lock, Some(refresh)).await;
    }
    let jwt = exchange(client, login, &tokens.id_token).await?;
    if let Some(lock) = &lock {
        store_session(lock, client, login, &jwt, tokens.refresh_token).await;
    }
    Ok(Ok(Authenticated {
        token: jwt.token,
        method: AuthMethodUsed::DeviceFlow,
    }))
}

async fn exchange(
    client: &OpenbaoClient,
    login: &SsoLogin,
    id_token: &SecretString,
) -> Result<JwtLogin, SecretError> {
    exchange_id_token(client, &login.jwt_mount, &login.jwt_role, id_token)
        .await
        .map_err(sso_stop)
}

/// The session lock for storing a sign-in's result; `None` (logged) when it cannot be had, as
/// the sign-in itself has succeeded and only the next run's reuse is lost.
async fn lock_or_warn(cache: &SessionCache, url: &str, identity: &str) -> Option<SessionLock> {
    match cache.lock(url, identity, LOCK_WAIT).await {
        Ok(lock) => Some(lock),
        Err(e) => {
            tracing::warn!(error = %e, "could not lock the session cache; the SSO session is not cached and the next run will sign in again");
            None
        }
    }
}

async fn store_session(
    lock: &SessionLock,
    client: &OpenbaoClient,
    login: &SsoLogin,
    jwt: &JwtLogin,
    refresh_token: Option<SecretString>,
) {
    let mut session = Session::new(
        client.url(),
        client.session_identity(&login.identity()),
        jwt.token.clone(),
        (!jwt.lease_duration.is_zero()).then_some(jwt.lease_duration),
        jwt.renewable,
    );
    session.accessor = jwt.accessor.clone();
    session.oidc = Some(OidcSession {
        refresh_token,
        issuer: login.sso.issuer.clone(),
        client_id: login.sso.client_id.clone(),
        role: login.jwt_role.clone(),
    });
    if let Err(e) = lock.store(session).await {
        tracing::warn!(error = %e, "could not cache the SSO session; the next run will sign in again");
    }
}

/// Record `refresh_token` as the newest (`None`: forget a refused one) in the session that
/// exists, keeping the rest of it. Without a session there is nothing to update: the JWT login
/// that follows stores a whole one.
async fn set_refresh_token(lock: &SessionLock, refresh_token: Option<SecretString>) {
    let result = lock
        .update(move |current| {
            let mut session = current?;
            if let Some(oidc) = session.oidc.as_mut() {
                oidc.refresh_token = refresh_token;
            }
            Some(session)
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the refresh token in the session cache; the next run may need a new sign-in");
    }
}

#[cfg(test)]
mod tests {
    use harmony_env::vars;

    use super::*;

    use crate::lookup::fixed_lookup as lookup;

    #[test]
    fn sso_login_from_env() {
        assert!(SsoLogin::from_lookup(lookup(&[])).expect("ok").is_none());
        let login = SsoLogin::from_lookup(lookup(&[
            (vars::HARMONY_SSO_URL, "https://sso"),
            (vars::HARMONY_SSO_CLIENT_ID, "cli"),
            (vars::HARMONY_NON_INTERACTIVE, "1"),
            (vars::HARMONY_SSO_OPEN_BROWSER, "false"),
        ]))
        .expect("ok")
        .expect("configured");
        assert_eq!(login.identity(), "jwt:jwt:harmony-developer");
        assert!(!login.allows_device_flow());
        assert!(!login.device_flow.open_browser);
        let login = SsoLogin::from_lookup(lookup(&[
            (vars::HARMONY_SSO_URL, "https://sso"),
            (vars::HARMONY_SSO_CLIENT_ID, "cli"),
            (vars::OPENBAO_JWT_AUTH_MOUNT, "oidc"),
            (vars::OPENBAO_JWT_ROLE, "ops"),
        ]))
        .expect("ok")
        .expect("configured");
        assert_eq!(login.identity(), "jwt:oidc:ops");
        assert_eq!(login.interactive, None);
    }
}
