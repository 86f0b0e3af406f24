//! `harmony logout`: revoke the OpenBao token (`auth/token/revoke-self`), revoke the SSO refresh
//! token at the issuer (RFC 7009) when discovery advertises a revocation endpoint, and delete
//! the cached session (and any other session cached for the server, each revoked first), the
//! login record and the offline copies of the server's documents (a failure to delete those is
//! a warning and exit 1, never a reason to skip the revocations). A
//! token given with `--token-stdin` is forgotten but not revoked (it was yours before `harmony`
//! saw it).

use std::process::ExitCode;

use harmony_secret::SecretError;
use harmony_secret::offline::OfflineCache;
use harmony_secret::oidc::OidcClient;
use harmony_secret::session::Session;
use serde_json::json;

use crate::context::Context;
use crate::profile::{LoginProfile, Method, SsoProfile, TOKEN_IDENTITY};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let base = ctx.base();
    let mut failed = false;
    // The offline copies of this server's documents go whatever else happens; a failure here
    // is said and must not stop the revocations below.
    match OfflineCache::from_env() {
        Ok(cache) => match cache.remove_all_for(&base).await {
            Ok(0) => {}
            Ok(copies) => eprintln!(
                "deleted {copies} offline cop{} of {base}'s documents",
                if copies == 1 { "y" } else { "ies" }
            ),
            Err(e) => {
                failed = true;
                eprintln!(
                    "warning: could not delete the offline copies of {base}'s documents: {}; \
                     delete them by hand",
                    crate::render_chain(&anyhow::Error::new(e))
                );
            }
        },
        Err(e) => {
            failed = true;
            eprintln!(
                "warning: could not find the offline cache: {}",
                crate::render_chain(&anyhow::Error::new(e))
            );
        }
    }
    let Some(profile) = LoginProfile::load(&base)? else {
        eprintln!("not signed in to {base}; nothing else to do");
        return Ok(exit(failed));
    };
    let cache = ctx.sessions()?;
    let session = cache.load(&base, &profile.identity).await?;
    if let Some(session) = &session {
        if profile.method == Method::Token {
            eprintln!("forgetting the token given with --token-stdin (it is not revoked)");
        } else {
            failed |= revoke(ctx, session, "the OpenBao token").await;
        }
    }
    // Anything else cached for this server (sessions of other sign-in methods) is revoked,
    // then deleted with it; a token given with --token-stdin is not revoked.
    let others = match cache.sessions_for(&base).await {
        Ok(others) => others,
        Err(e) => {
            failed = true;
            eprintln!(
                "warning: could not read the other sessions cached for {base}: {}",
                crate::render_chain(&anyhow::Error::new(e))
            );
            Vec::new()
        }
    };
    for other in others
        .iter()
        .filter(|s| s.identity != profile.identity && s.identity != TOKEN_IDENTITY)
    {
        let what = format!("the OpenBao token of the other session {}", other.identity);
        failed |= revoke(ctx, other, &what).await;
    }
    cache.remove(&base, &profile.identity).await?;
    let others = harmony_secret::session::SessionCache::new(
        harmony_secret::session::SessionCache::default_dir()?,
    )
    .remove_all_for(&base)
    .await
    .map_err(|e| {
        anyhow::Error::new(e).context(format!("forgetting the cached sessions of {base}"))
    })?;
    if others > 0 {
        eprintln!("removed {others} other cached session(s) for {base}");
    }
    LoginProfile::remove(&base)?;
    eprintln!("signed out of {base}; the cached session is deleted");
    Ok(exit(failed))
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Revoke `session`'s OpenBao token (`what` names it) and its SSO refresh token; says what
/// happened. `true` when a revocation failed.
async fn revoke(ctx: &Context, session: &Session, what: &str) -> bool {
    let mut failed = false;
    let client = match ctx.client() {
        Ok(client) => Some(client.with_token(session.token.clone())),
        Err(e) => {
            eprintln!("warning: could not revoke {what} ({e:#}); it stays valid until it expires");
            failed = true;
            None
        }
    };
    if let Some(client) = client {
        match client.post("auth/token/revoke-self", &json!({})).await {
            Ok(_) => eprintln!("revoked {what}"),
            Err(SecretError::PermissionDenied { .. }) => {
                eprintln!("{what} was no longer valid")
            }
            Err(e) => {
                failed = true;
                eprintln!(
                    "warning: could not revoke {what} ({e}); it stays valid until it expires"
                );
            }
        }
    }
    if let Some(oidc) = &session.oidc
        && let Some(refresh) = &oidc.refresh_token
    {
        let sso = SsoProfile {
            issuer: oidc.issuer.clone(),
            client_id: oidc.client_id.clone(),
            project_id: None,
            jwt_mount: String::new(),
            jwt_role: oidc.role.clone(),
        };
        let revoked = match ctx.sso_settings(&sso) {
            Ok(settings) => match OidcClient::discover(&settings).await {
                Ok(provider) => provider
                    .revoke_refresh_token(refresh)
                    .await
                    .map_err(anyhow::Error::new),
                Err(e) => Err(anyhow::Error::new(e)),
            },
            Err(e) => Err(e),
        };
        match revoked {
            Ok(true) => eprintln!("revoked the refresh token at {}", oidc.issuer),
            Ok(false) => eprintln!(
                "{} advertises no revocation endpoint; the refresh token expires on its own",
                oidc.issuer
            ),
            Err(e) => {
                failed = true;
                eprintln!(
                    "warning: could not revoke the refresh token at {}: {e:#}",
                    oidc.issuer
                );
            }
        }
    }
    failed
}
