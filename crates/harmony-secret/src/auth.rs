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
pub use crate::client::{TokenInfo, lookup_self};
use crate::error::{AttemptFailure, AuthAttempt, AuthError, StepResult, rejected};
use crate::session::{Session, SessionCache};
use crate::settings::OpenbaoSettings;
pub use crate::steps::{AuthMethodUsed, AuthStep, Authenticated};

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
        let identity = client.session_identity(&identity);
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
                s.expires_at = (lease > 0).then(|| crate::session::expiry_after(lease));
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
        let identity = client.session_identity(&login.identity());
        let mut session = Session::new(
            client.url(),
            identity.clone(),
            token.clone(),
            (lease > 0).then(|| Duration::from_secs(lease)),
            auth["renewable"].as_bool().unwrap_or(false),
        );
        session.accessor = auth["accessor"].as_str().map(str::to_owned);
        let result = cache
            .update(client.url(), &identity, move |previous| {
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
