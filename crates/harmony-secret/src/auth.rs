//! The auth chain: how an [`crate::OpenbaoSecretStore`] gets its OpenBao token.
//!
//! The chain is an ordered list of [`AuthStep`]s ([`AuthStep::DEFAULT_CHAIN`]: explicit token →
//! cached session → userpass → SSO silent refresh → SSO device flow; the SSO steps live in
//! [`crate::oidc`]). Each step either yields a token OpenBao accepts, or records why it did not
//! ([`AuthAttempt`]) and hands over to the next; only "OpenBao is sealed / unreachable /
//! answering nonsense" (and an SSO sign-in that ended badly, see [`crate::oidc::SsoLogin`])
//! stops the chain early, since no later step could do better. When every step has failed,
//! [`AuthError::Exhausted`] lists what each found.
//!
//! A new way to sign in is a new [`AuthStep`] variant with an arm in [`authenticate`], plus an
//! identity in [`session_identities`] when it caches a session.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::SecretError;
use crate::client::OpenbaoClient;
use crate::error::{AttemptFailure, AuthAttempt, AuthError};
use crate::session::{Session, SessionCache};
use crate::settings::OpenbaoSettings;

/// One way of obtaining a token, in the order the chain tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthStep {
    /// The token given in the settings (`OPENBAO_TOKEN`), checked with `lookup-self`.
    ExplicitToken,
    /// A token cached by an earlier login, checked with `lookup-self` and renewed when it is
    /// renewable and has less than a third of its TTL left.
    CachedSession,
    /// `POST auth/<mount>/login/<username>` with the configured password.
    Userpass,
    /// The cached SSO refresh token → new id_token → JWT login; no user interaction.
    SilentRefresh,
    /// The OIDC device flow (a person approves in the browser) → JWT login. Only when
    /// interactive or explicitly allowed.
    DeviceFlow,
    /// A CI job's own OIDC id_token → JWT login at the CI mount (see [`crate::ci`]).
    CiIdentity,
}

impl AuthStep {
    /// The chain used unless the settings say otherwise.
    pub const DEFAULT_CHAIN: &'static [AuthStep] = &[
        AuthStep::ExplicitToken,
        AuthStep::CachedSession,
        AuthStep::Userpass,
        AuthStep::SilentRefresh,
        AuthStep::DeviceFlow,
    ];

    /// The chain in CI ([`crate::OpenbaoSettings::with_ci`]): nothing cached, nothing that
    /// needs a person.
    pub const CI_CHAIN: &'static [AuthStep] = &[
        AuthStep::ExplicitToken,
        AuthStep::CiIdentity,
        AuthStep::Userpass,
    ];
}

impl std::fmt::Display for AuthStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthStep::ExplicitToken => "explicit token",
            AuthStep::CachedSession => "cached session",
            AuthStep::Userpass => "userpass login",
            AuthStep::SilentRefresh => "SSO silent refresh",
            AuthStep::DeviceFlow => "SSO device flow",
            AuthStep::CiIdentity => "CI identity (OIDC id_token)",
        })
    }
}

/// How the store's current token was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethodUsed {
    /// The explicit token from the settings.
    Token,
    /// A cached session from an earlier login (possibly renewed).
    CachedSession,
    /// A fresh userpass login.
    Userpass,
    /// A JWT login with an id_token from the SSO refresh-token grant.
    SilentRefresh,
    /// A JWT login with an id_token from an SSO device flow.
    DeviceFlow,
    /// A JWT login with the CI job's own id_token.
    CiIdentity,
}

/// A token the chain settled on.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The OpenBao token.
    pub token: SecretString,
    /// Which step produced it.
    pub method: AuthMethodUsed,
}

/// What `auth/token/lookup-self` says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Seconds left (0: never expires).
    pub ttl: u64,
    /// The TTL it was created with (0: never expires).
    pub creation_ttl: u64,
    /// Whether it can be renewed.
    pub renewable: bool,
}

impl TokenInfo {
    /// Renewable and less than a third of its life left.
    pub fn wants_renewal(&self) -> bool {
        self.renewable && self.creation_ttl > 0 && self.ttl.saturating_mul(3) < self.creation_ttl
    }
}

/// Ask OpenBao about `client`'s token. A rejected token is [`SecretError::PermissionDenied`].
pub async fn lookup_self(client: &OpenbaoClient) -> Result<TokenInfo, SecretError> {
    let path = "auth/token/lookup-self";
    let body = client.get(path).await?.unwrap_or(Value::Null);
    let data = &body["data"];
    if !data.is_object() {
        return Err(SecretError::BadResponse {
            path: path.to_owned(),
            status: 0,
            message: "the answer has no `data` object".to_owned(),
        });
    }
    Ok(TokenInfo {
        ttl: data["ttl"].as_u64().unwrap_or(0),
        creation_ttl: data["creation_ttl"].as_u64().unwrap_or(0),
        renewable: data["renewable"].as_bool().unwrap_or(false),
    })
}

/// The identities whose cached sessions the [`AuthStep::CachedSession`] step looks for: one per
/// configured login step, in chain order.
pub fn session_identities(settings: &OpenbaoSettings) -> Vec<String> {
    let mut identities = Vec::new();
    for step in settings.auth_steps() {
        match step {
            AuthStep::Userpass => {
                if let Some(u) = settings.userpass() {
                    identities.push(u.identity());
                }
            }
            AuthStep::SilentRefresh | AuthStep::DeviceFlow => {
                if let Some(sso) = settings.sso() {
                    let identity = sso.identity();
                    if !identities.contains(&identity) {
                        identities.push(identity);
                    }
                }
            }
            AuthStep::ExplicitToken | AuthStep::CachedSession | AuthStep::CiIdentity => {}
        }
    }
    identities
}

/// Run the chain. `client` carries no token; `cache` is `None` when nothing is cached.
pub async fn authenticate(
    client: &OpenbaoClient,
    settings: &OpenbaoSettings,
    cache: Option<&SessionCache>,
) -> Result<Authenticated, SecretError> {
    let mut attempts = Vec::new();
    for &step in settings.auth_steps() {
        let outcome = match step {
            AuthStep::ExplicitToken => explicit_token(client, settings).await?,
            AuthStep::CachedSession => cached_session(client, settings, cache).await?,
            AuthStep::Userpass => userpass(client, settings, cache).await?,
            AuthStep::SilentRefresh => {
                crate::oidc::chain::silent_refresh(client, settings.sso(), cache).await?
            }
            AuthStep::DeviceFlow => {
                crate::oidc::chain::device_flow(client, settings.sso(), cache).await?
            }
            AuthStep::CiIdentity => ci_identity(client, settings).await?,
        };
        match outcome {
            Ok(authenticated) => {
                tracing::info!(url = client.url(), %step, "signed in to OpenBao");
                return Ok(authenticated);
            }
            Err(failure) => {
                tracing::debug!(url = client.url(), %step, ?failure, "auth step did not yield a token");
                attempts.push(AuthAttempt { step, failure });
            }
        }
    }
    Err(AuthError::Exhausted {
        url: client.url().to_owned(),
        attempts,
    }
    .into())
}

/// The outer `Result` stops the chain (server trouble); the inner one moves on to the next step.
pub(crate) type StepResult = Result<Result<Authenticated, AttemptFailure>, SecretError>;

/// A token rejection becomes a step failure; anything else is server trouble.
pub(crate) fn rejected(e: SecretError) -> Result<AttemptFailure, SecretError> {
    match e {
        SecretError::PermissionDenied { message, .. } => Ok(AttemptFailure::Rejected { message }),
        other => Err(other),
    }
}

/// A refusal stops the chain: the job was set up for CI sign-in, and falling through to other
/// steps would hide which claim did not match.
async fn ci_identity(client: &OpenbaoClient, settings: &OpenbaoSettings) -> StepResult {
    let Some(ci) = settings.ci() else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    let http = crate::oidc::http_client(settings.timeout())
        .map_err(|e| SecretError::Config(e.to_string()))?;
    let token = crate::ci::login(client, &http, ci).await?;
    Ok(Ok(Authenticated {
        token,
        method: AuthMethodUsed::CiIdentity,
    }))
}

async fn explicit_token(client: &OpenbaoClient, settings: &OpenbaoSettings) -> StepResult {
    let Some(token) = settings.token.clone() else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    match lookup_self(&client.clone().with_token(token.clone())).await {
        Ok(_) => Ok(Ok(Authenticated {
            token,
            method: AuthMethodUsed::Token,
        })),
        Err(e) => {
            let failure = rejected(e)?;
            tracing::warn!(
                url = client.url(),
                "OpenBao rejected the explicit token; trying the next auth step"
            );
            Ok(Err(failure))
        }
    }
}

async fn cached_session(
    client: &OpenbaoClient,
    settings: &OpenbaoSettings,
    cache: Option<&SessionCache>,
) -> StepResult {
    let identities = session_identities(settings);
    let Some(cache) = cache.filter(|_| !identities.is_empty()) else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    let mut failure = AttemptFailure::NoSession;
    for identity in identities {
        let Some(session) = cache.load(client.url(), &identity).await? else {
            continue;
        };
        if session.is_expired() {
            failure = AttemptFailure::SessionExpired;
            continue;
        }
        let authed = client.clone().with_token(session.token.clone());
        let info = match lookup_self(&authed).await {
            Ok(info) => info,
            Err(e) => {
                failure = rejected(e)?;
                tracing::info!(
                    url = client.url(),
                    identity,
                    "cached session was rejected (revoked or expired)"
                );
                continue;
            }
        };
        if info.wants_renewal() {
            renew(&authed, cache, &identity, info).await;
        }
        return Ok(Ok(Authenticated {
            token: session.token,
            method: AuthMethodUsed::CachedSession,
        }));
    }
    Ok(Err(failure))
}

/// Renew a cached token and record its new expiry. A failed renewal is not fatal: the token is
/// still valid for `info.ttl`, and the next run logs in again if it has expired by then.
async fn renew(authed: &OpenbaoClient, cache: &SessionCache, identity: &str, info: TokenInfo) {
    let renewed = match authed.post("auth/token/renew-self", &json!({})).await {
        Ok(body) => body.unwrap_or(Value::Null),
        Err(e) => {
            tracing::warn!(url = authed.url(), error = %e, ttl_left = info.ttl, "could not renew the cached OpenBao token");
            return;
        }
    };
    let lease = renewed["auth"]["lease_duration"].as_u64().unwrap_or(0);
    let renewable = renewed["auth"]["renewable"].as_bool().unwrap_or(false);
    tracing::info!(
        url = authed.url(),
        identity,
        lease_seconds = lease,
        "renewed the cached OpenBao token"
    );
    let result = cache
        .update(authed.url(), identity, move |current| {
            current.map(|mut s| {
                s.expires_at = (lease > 0).then(|| crate::session::unix_now() + lease);
                s.renewable = renewable;
                s
            })
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the renewed token's expiry in the session cache");
    }
}

async fn userpass(
    client: &OpenbaoClient,
    settings: &OpenbaoSettings,
    cache: Option<&SessionCache>,
) -> StepResult {
    let Some(login) = settings.userpass() else {
        return Ok(Err(AttemptFailure::NotConfigured));
    };
    let path = format!("auth/{}/login/{}", login.mount, login.username);
    let body = json!({ "password": login.password.expose_secret() });
    let answer = match client.clone().without_token().post(&path, &body).await {
        Ok(answer) => answer.unwrap_or(Value::Null),
        // OpenBao answers a wrong password with 400 and an unknown mount with 403 or 404.
        Err(SecretError::BadResponse {
            status: 400,
            message,
            ..
        }) => return Ok(Err(AttemptFailure::Rejected { message })),
        Err(SecretError::NotFound { path }) => {
            return Ok(Err(AttemptFailure::Rejected {
                message: format!(
                    "no userpass auth method at {path}; check {}",
                    harmony_env::vars::OPENBAO_USERPASS_MOUNT
                ),
            }));
        }
        Err(e) => return rejected(e).map(Err),
    };
    let auth = &answer["auth"];
    let Some(token) = auth["client_token"].as_str() else {
        return Err(SecretError::BadResponse {
            path,
            status: 0,
            message: "the login answer has no auth.client_token".to_owned(),
        });
    };
    let token = SecretString::from(token);
    let lease = auth["lease_duration"].as_u64().unwrap_or(0);
    if let Some(cache) = cache {
        let mut session = Session::new(
            client.url(),
            login.identity(),
            token.clone(),
            (lease > 0).then(|| Duration::from_secs(lease)),
            auth["renewable"].as_bool().unwrap_or(false),
        );
        session.accessor = auth["accessor"].as_str().map(str::to_owned);
        let result = cache
            .update(client.url(), &login.identity(), move |previous| {
                // Keep what other steps stored alongside (e.g. SSO refresh state).
                session.oidc = previous.and_then(|p| p.oidc);
                Some(session)
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not cache the OpenBao session; the next run will log in again");
        }
    }
    Ok(Ok(Authenticated {
        token,
        method: AuthMethodUsed::Userpass,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_threshold_is_a_third_of_the_ttl() {
        let info = |ttl, creation_ttl, renewable| TokenInfo {
            ttl,
            creation_ttl,
            renewable,
        };
        assert!(info(99, 300, true).wants_renewal());
        assert!(!info(100, 300, true).wants_renewal());
        assert!(!info(10, 300, false).wants_renewal(), "not renewable");
        assert!(!info(0, 0, true).wants_renewal(), "never expires");
    }

    #[test]
    fn identities_follow_the_configured_logins() {
        let s = OpenbaoSettings::new("http://bao:8200");
        assert!(session_identities(&s).is_empty());
        let s = s.with_userpass("alice", SecretString::from("pw"));
        assert_eq!(session_identities(&s), ["userpass:userpass:alice"]);
        let s = s.with_auth_steps([AuthStep::ExplicitToken]);
        assert!(session_identities(&s).is_empty());
    }
}
