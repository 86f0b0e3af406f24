//! `--sso-demo`: the demo round trip, signed in through SSO.
//!
//! The auth chain is restricted to the SSO steps: a cached SSO session, then a silent refresh
//! with the cached refresh token, then the OIDC device flow (only when a person can answer it).
//! The device flow's URL and code go to stderr; the session is cached for the next run.

use std::sync::Arc;

use anyhow::Context as _;
use harmony::zitadel::setup::load_state;
use harmony_env::vars;
use harmony_secret::oidc::{DeviceFlowOptions, DevicePrompt, SsoLogin, SsoSettings};
use harmony_secret::{AttemptFailure, AuthError, AuthStep, OpenbaoSettings, SecretError};

use crate::cli::{Args, UsageError};
use crate::modes::target::{self, Target};
use crate::modes::{Ui, demo};
use crate::state;

/// Issuer, client id and project id from the flags/environment, else from the deploy's saved
/// device-app state for the cluster.
struct SsoClient {
    issuer: String,
    client_id: String,
    project_id: Option<String>,
}

async fn sso_client(args: &Args, target: &Target) -> anyhow::Result<SsoClient> {
    let saved = if target.cluster {
        load_state(&state::zitadel_dir(&args.cluster_name)?)
            .await
            .context("reading the saved Zitadel device-app state")?
    } else {
        None
    };
    let issuer = args
        .sso_url
        .as_ref()
        .map(|u| u.as_str().trim_end_matches('/').to_owned())
        .or_else(|| saved.as_ref().map(|s| s.issuer.clone()))
        .ok_or(UsageError::SsoDemoNeedsIssuer)?;
    let client_id = args
        .client_id
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.client_id.clone()))
        .ok_or(UsageError::SsoDemoNeedsClientId)?;
    let project_id = std::env::var(vars::HARMONY_SSO_PROJECT_ID)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .or_else(|| saved.map(|s| s.project_id));
    Ok(SsoClient {
        issuer,
        client_id,
        project_id,
    })
}

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let target = target::from_args(args)?;
    let client = sso_client(args, &target).await?;

    let mut sso = SsoSettings::new(&client.issuer, &client.client_id);
    if let Some(project) = &client.project_id {
        sso = sso.with_project_id(project);
    }
    if target.cluster {
        for (host, addr) in harmony::ingress::LocalIngress::k3d().resolutions() {
            sso = sso.with_resolved_host(host, addr);
        }
    }
    let env = |name: &str| std::env::var(name).ok();
    let multi = ui.multi.clone();
    let notifier = move |prompt: &DevicePrompt| {
        multi.suspend(|| {
            eprintln!();
            eprintln!("To sign in to OpenBao, open this page and confirm the code:");
            eprintln!("    {}", prompt.url_to_open());
            eprintln!("    code: {}", prompt.user_code);
            eprintln!(
                "(waiting up to {} s for the approval)",
                prompt.expires_in.as_secs()
            );
            eprintln!();
        });
    };
    let mut device_flow = DeviceFlowOptions::from_lookup(env);
    // A browser only makes sense for a person at this machine's desktop.
    device_flow.open_browser &= ui.interactive;
    let mut login = SsoLogin::new(sso)
        .with_interactive(ui.interactive || args.allow_device_flow)
        .with_notifier(Arc::new(notifier))
        .with_device_flow_options(device_flow);
    if let Some(mount) = env(vars::OPENBAO_JWT_AUTH_MOUNT).filter(|v| !v.trim().is_empty()) {
        login = login.with_jwt_mount(mount);
    }
    if let Some(role) = env(vars::OPENBAO_JWT_ROLE).filter(|v| !v.trim().is_empty()) {
        login = login.with_jwt_role(role);
    }

    let settings = target
        .connection(OpenbaoSettings::new(target.base()))?
        .with_sso(login)
        .with_auth_steps([
            AuthStep::CachedSession,
            AuthStep::SilentRefresh,
            AuthStep::DeviceFlow,
        ]);
    // A bad JWT mount or role name is a settings error, reported before anyone signs in.
    settings
        .validate()
        .map_err(|e| UsageError::BadSetting(e.to_string()))?;
    let result = demo::run(settings, ui, "sso-demo").await;
    match result {
        Err(e) if needed_a_person(&e) => Err(e.context(
            "--sso-demo has no session yet and nobody to approve a sign-in: run it once from a \
             terminal, or pass --allow-device-flow if someone watches this command's stderr",
        )),
        other => other,
    }
}

/// Whether the chain stopped only because the device flow needs a person.
fn needed_a_person(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<SecretError>(),
            Some(SecretError::Auth(AuthError::Exhausted { attempts, .. }))
                if attempts.iter().any(|a| a.failure == AttemptFailure::NonInteractive)
        )
    })
}
