//! `harmony login`: sign in once, cache the session, record how (see [`crate::profile`]).

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use harmony_openbao::DEFAULT_USERPASS_USER;
use harmony_secret::auth::lookup_self;
use harmony_secret::oidc::{DEFAULT_JWT_AUTH_MOUNT, DEFAULT_JWT_ROLE};
use harmony_secret::session::Session;
use harmony_secret::{AuthStep, OpenbaoSecretStore, OpenbaoSettings};
use secrecy::SecretString;

use crate::UsageError;
use crate::cli::LoginArgs;
use crate::context::Context;
use crate::profile::{LoginProfile, Method, SsoProfile, TOKEN_IDENTITY, UserpassProfile};

pub async fn run(ctx: &Context, args: &LoginArgs) -> anyhow::Result<()> {
    let previous = LoginProfile::load(&ctx.base())?;
    let sso = sso_profile(ctx, args, previous.as_ref()).await?;
    let method = if args.sso {
        Method::Sso
    } else if args.userpass {
        Method::Userpass
    } else if args.token_stdin {
        Method::Token
    } else if let Some(p) = &previous {
        p.method
    } else if sso.is_some() {
        Method::Sso
    } else if args.username.is_some()
        || std::env::var(harmony_env::vars::OPENBAO_USERNAME).is_ok_and(|v| !v.trim().is_empty())
    {
        Method::Userpass
    } else {
        return Err(UsageError(format!(
            "choose how to sign in to {}: --sso (with --sso-url and --client-id, or {} and {}), \
             --userpass (with --username, or {}), or --token-stdin",
            ctx.base(),
            harmony_env::vars::HARMONY_SSO_URL,
            harmony_env::vars::HARMONY_SSO_CLIENT_ID,
            harmony_env::vars::OPENBAO_USERNAME,
        ))
        .into());
    };
    let profile = match method {
        Method::Sso => {
            let sso = sso.ok_or_else(|| {
                UsageError(format!(
                    "--sso needs the OpenID issuer and client id: pass --sso-url and --client-id, \
                     or set {} and {}",
                    harmony_env::vars::HARMONY_SSO_URL,
                    harmony_env::vars::HARMONY_SSO_CLIENT_ID
                ))
            })?;
            login_sso(ctx, sso).await?
        }
        Method::Userpass => login_userpass(ctx, args, previous.as_ref()).await?,
        Method::Token => login_token(ctx).await?,
    };
    profile.save()?;
    Ok(())
}

/// Issuer and client from the flags (or their variables), else the project file's `[sso]`, else
/// the previous login, else the local cluster's saved device-code application.
async fn sso_profile(
    ctx: &Context,
    args: &LoginArgs,
    previous: Option<&LoginProfile>,
) -> anyhow::Result<Option<SsoProfile>> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    let jwt_mount = env(harmony_env::vars::OPENBAO_JWT_AUTH_MOUNT);
    let jwt_role = args
        .jwt_role
        .clone()
        .or_else(|| env(harmony_env::vars::OPENBAO_JWT_ROLE));
    let mut found = match (&args.sso_url, &args.client_id) {
        (Some(url), Some(id)) => Some(SsoProfile {
            issuer: url.as_str().trim_end_matches('/').to_owned(),
            client_id: id.clone(),
            project_id: env(harmony_env::vars::HARMONY_SSO_PROJECT_ID),
            jwt_mount: DEFAULT_JWT_AUTH_MOUNT.to_owned(),
            jwt_role: DEFAULT_JWT_ROLE.to_owned(),
        }),
        (Some(_), None) | (None, Some(_)) => {
            return Err(UsageError(
                "--sso-url and --client-id go together (or set HARMONY_SSO_URL and HARMONY_SSO_CLIENT_ID)"
                    .to_owned(),
            )
            .into());
        }
        (None, None) => match ctx.project.as_ref().and_then(|p| p.sso.as_ref()) {
            Some(sso) => Some(SsoProfile {
                issuer: sso.issuer.as_str().trim_end_matches('/').to_owned(),
                client_id: sso.client_id.clone(),
                project_id: env(harmony_env::vars::HARMONY_SSO_PROJECT_ID)
                    .or_else(|| sso.project_id.clone()),
                jwt_mount: DEFAULT_JWT_AUTH_MOUNT.to_owned(),
                jwt_role: DEFAULT_JWT_ROLE.to_owned(),
            }),
            None => previous.and_then(|p| p.sso.clone()),
        },
    };
    if found.is_none() && ctx.target.cluster {
        found = cluster_sso_profile(ctx).await?;
    }
    Ok(found.map(|mut p| {
        if let Some(m) = jwt_mount {
            p.jwt_mount = m;
        }
        if let Some(r) = jwt_role {
            p.jwt_role = r;
        }
        p
    }))
}

/// The local cluster's device-code application, as `harmony deploy` saved it.
#[cfg(feature = "deploy")]
async fn cluster_sso_profile(ctx: &Context) -> anyhow::Result<Option<SsoProfile>> {
    let dir = harmony_env::harmony_data_dir()?
        .join("zitadel")
        .join(&ctx.cluster_name);
    Ok(harmony::zitadel::setup::load_state(&dir)
        .await
        .context("reading the cluster's saved device-code application")?
        .map(|s| SsoProfile {
            issuer: s.issuer,
            client_id: s.client_id,
            project_id: Some(s.project_id),
            jwt_mount: DEFAULT_JWT_AUTH_MOUNT.to_owned(),
            jwt_role: DEFAULT_JWT_ROLE.to_owned(),
        }))
}

/// Without the `deploy` feature there is no Zitadel code to read the deploy's saved application
/// with: the issuer and client come from the flags, their variables or the previous login.
#[cfg(not(feature = "deploy"))]
async fn cluster_sso_profile(_ctx: &Context) -> anyhow::Result<Option<SsoProfile>> {
    Ok(None)
}

async fn login_sso(ctx: &Context, sso: SsoProfile) -> anyhow::Result<LoginProfile> {
    // You asked to sign in: the device flow may run even off a terminal (the URL and code go
    // to stderr), unless --non-interactive forbids waiting for a person.
    let allowed = !ctx.non_interactive;
    let login = ctx.sso_login(&sso, allowed)?;
    let identity = login.identity();
    let settings = OpenbaoSettings::new(ctx.base())
        .with_http_client(ctx.target.http_client()?)
        .with_sso(login)
        .with_auth_steps([AuthStep::DeviceFlow]);
    let store = OpenbaoSecretStore::connect(settings).await.with_context(|| {
        if allowed {
            format!("signing in to {} through {}", ctx.base(), sso.issuer)
        } else {
            format!(
                "signing in to {} needs a person to approve the device flow; drop --non-interactive",
                ctx.base()
            )
        }
    })?;
    report_signed_in(&store, "SSO").await;
    Ok(LoginProfile {
        url: ctx.base(),
        method: Method::Sso,
        identity,
        sso: Some(sso),
        userpass: None,
    })
}

async fn login_userpass(
    ctx: &Context,
    args: &LoginArgs,
    previous: Option<&LoginProfile>,
) -> anyhow::Result<LoginProfile> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    let previous = previous.and_then(|p| p.userpass.as_ref());
    let username = args
        .username
        .clone()
        .or_else(|| env(harmony_env::vars::OPENBAO_USERNAME))
        .or_else(|| previous.map(|u| u.username.clone()))
        .unwrap_or_else(|| DEFAULT_USERPASS_USER.to_owned());
    let mount = env(harmony_env::vars::OPENBAO_USERPASS_MOUNT)
        .or_else(|| previous.map(|u| u.mount.clone()));
    // The password: OPENBAO_PASSWORD, else the one the bootstrap saved for this server, else
    // asked on the terminal. (Not `std::env::var(..).trim()`: spaces in a password may be meant.)
    let password = match std::env::var(harmony_env::vars::OPENBAO_PASSWORD)
        .ok()
        .filter(|p| !p.is_empty())
    {
        Some(p) => SecretString::from(p),
        None => match ctx.target.state.userpass_password(&username).await? {
            Some(saved) => saved,
            None if ctx.interactive => {
                let prompt = format!("OpenBao password for {username}:");
                tokio::task::spawn_blocking(move || {
                    inquire::Password::new(&prompt)
                        .without_confirmation()
                        .prompt()
                })
                .await?
                .map(SecretString::from)
                .context("reading the password")?
            }
            None => {
                return Err(UsageError(format!(
                    "no password for {username}: set {} (stdin is not a terminal, so it cannot be asked)",
                    harmony_env::vars::OPENBAO_PASSWORD
                ))
                .into());
            }
        },
    };
    let mut settings = OpenbaoSettings::new(ctx.base())
        .with_http_client(ctx.target.http_client()?)
        .with_userpass(username, password);
    if let Some(mount) = mount {
        settings = settings.with_userpass_mount(mount);
    }
    let settings = settings.with_auth_steps([AuthStep::Userpass]);
    let login = settings
        .userpass()
        .cloned()
        .context("userpass was just set")?;
    let store = OpenbaoSecretStore::connect(settings)
        .await
        .with_context(|| format!("signing in to {} as {}", ctx.base(), login.username))?;
    report_signed_in(&store, "userpass").await;
    Ok(LoginProfile {
        url: ctx.base(),
        method: Method::Userpass,
        identity: login.identity(),
        sso: None,
        userpass: Some(UserpassProfile {
            mount: login.mount.clone(),
            username: login.username.clone(),
        }),
    })
}

async fn login_token(ctx: &Context) -> anyhow::Result<LoginProfile> {
    let text = tokio::task::spawn_blocking(|| {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    })
    .await?
    .context("reading the token from stdin")?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(UsageError(
            "--token-stdin read no token: pipe exactly one OpenBao token".to_owned(),
        )
        .into());
    }
    let token = SecretString::from(token.to_owned());
    let client = ctx.client()?.with_token(token.clone());
    let info = lookup_self(&client)
        .await
        .with_context(|| format!("checking the token with {}", ctx.base()))?;
    let session = Session::new(
        ctx.base(),
        TOKEN_IDENTITY,
        token,
        (info.ttl > 0).then(|| Duration::from_secs(info.ttl)),
        info.renewable,
    );
    ctx.sessions()?.store(session).await?;
    eprintln!("signed in to {} with the given token", ctx.base());
    Ok(LoginProfile {
        url: ctx.base(),
        method: Method::Token,
        identity: TOKEN_IDENTITY.to_owned(),
        sso: None,
        userpass: None,
    })
}

async fn report_signed_in(store: &OpenbaoSecretStore, how: &str) {
    let client = store.client();
    let who = match client.get("auth/token/lookup-self").await {
        Ok(Some(body)) => body["data"]["display_name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default(),
        _ => String::new(),
    };
    if who.is_empty() {
        eprintln!("signed in to {} ({how})", client.url());
    } else {
        eprintln!("signed in to {} as {who} ({how})", client.url());
    }
}
