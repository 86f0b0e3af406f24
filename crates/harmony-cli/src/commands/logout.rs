//! `harmony logout`: revoke the OpenBao token (`auth/token/revoke-self`), revoke the SSO refresh
//! token at the issuer (RFC 7009) when discovery advertises a revocation endpoint, and delete
//! the cached session (and any other session cached for the server), the login record and the
//! offline copies of the server's documents. A
//! token given with `--token-stdin` is forgotten but not revoked (it was yours before `harmony`
//! saw it).

use std::process::ExitCode;

use harmony_secret::SecretError;
use harmony_secret::offline::OfflineCache;
use harmony_secret::oidc::OidcClient;
use serde_json::json;

use crate::context::Context;
use crate::profile::{LoginProfile, Method, SsoProfile};

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let base = ctx.base();
    // The offline copies of this server's documents go whatever else happens.
    let copies = OfflineCache::from_env()?.remove_all_for(&base).await?;
    if copies > 0 {
        eprintln!(
            "deleted {copies} offline cop{} of {base}'s documents",
            if copies == 1 { "y" } else { "ies" }
        );
    }
    let Some(profile) = LoginProfile::load(&base)? else {
        eprintln!("not signed in to {base}; nothing else to do");
        return Ok(ExitCode::SUCCESS);
    };
    let cache = ctx.sessions()?;
    let session = cache.load(&base, &profile.identity).await?;
    let mut failed = false;
    if let Some(session) = &session {
        if profile.method == Method::Token {
            eprintln!("forgetting the token given with --token-stdin (it is not revoked)");
        } else {
            let client = ctx.client()?.with_token(session.token.clone());
            match client.post("auth/token/revoke-self", &json!({})).await {
                Ok(_) => eprintln!("revoked the OpenBao token"),
                Err(SecretError::PermissionDenied { .. }) => {
                    eprintln!("the OpenBao token was no longer valid")
                }
                Err(e) => {
                    failed = true;
                    eprintln!(
                        "warning: could not revoke the OpenBao token ({e}); it stays valid until it expires"
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
            let revoked = match OidcClient::discover(&ctx.sso_settings(&sso)?).await {
                Ok(provider) => provider.revoke_refresh_token(refresh).await,
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
                        "warning: could not revoke the refresh token at {}: {e}",
                        oidc.issuer
                    );
                }
            }
        }
    }
    cache.remove(&base, &profile.identity).await?;
    // Anything else cached for this server (sessions of other sign-in methods) goes too.
    let others = harmony::cleanup::remove_sessions_for(&base).await?;
    if others > 0 {
        eprintln!("removed {others} other cached session(s) for {base}");
    }
    LoginProfile::remove(&base)?;
    eprintln!("signed out of {base}; the cached session is deleted");
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
