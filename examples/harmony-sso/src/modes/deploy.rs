//! The default mode: create or reuse the k3d cluster and converge OpenBao, CloudNativePG,
//! Zitadel, the device-code app and OpenBao's JWT auth.

use std::time::Duration;

use anyhow::Context as _;
use harmony::cnpg::{CnpgScore, RetryPolicy};
use harmony::helm::{Helm, PendingRelease, ReleaseOutcome};
use harmony::ingress::{BAO_HOST, LocalIngress, SSO_HOST};
use harmony::k3d::{EnsureOutcome, K3d};
use harmony::openbao::{
    BootstrapOptions, BootstrapReport, JwtAuthOptions, OpenbaoError, OpenbaoScore, StateDir,
};
use harmony::tools::Tools;
use harmony::zitadel::setup::DEVELOPER_ROLE;
use harmony::zitadel::{DeviceAppSpec, SsoClientState, ZitadelScore, ensure_device_app};
use secrecy::ExposeSecret as _;
use tracing::Instrument as _;

use crate::cli::Args;
use crate::modes::Ui;
use crate::state;

/// After CoreDNS restarts with the rewrite, `sso.harmony.local` takes a few seconds to resolve
/// inside the cluster; OpenBao fetches discovery when its JWT config is written.
const JWT_CONFIG_RETRY: RetryPolicy = RetryPolicy {
    attempts: 6,
    delay: Duration::from_secs(10),
};

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let cluster = args.cluster_name.as_str();
    // Before anything is downloaded or created: Docker answers, port 8080 is ours to use.
    let docker = harmony::preflight::DockerEndpoint::from_env()?;
    harmony::preflight::check_local_deploy(&docker, cluster, harmony::k3d::LOADBALANCER_HOST_PORT)
        .await?;
    let tools = Tools::from_env().context("preparing the tool directory")?;
    let k3d = K3d::install(cluster, &tools)
        .await
        .context("getting the pinned k3d")?;
    let outcome = k3d.ensure_cluster().await.with_context(|| {
        format!("creating or starting the k3d cluster {cluster:?} (is Docker running?)")
    })?;
    let k8s = k3d.client().await.context("connecting to the cluster")?;
    let kubeconfig = k3d
        .kubeconfig_file()
        .await
        .context("writing the cluster's kubeconfig for helm")?;
    let helm = Helm::install(&tools, kubeconfig)
        .await
        .context("getting the pinned helm")?
        .with_state_dir(state::helm_dir()?)
        .with_pending_recovery(pending_recovery(args, ui));

    let openbao_state = StateDir::for_cluster(cluster)?;
    let openbao = OpenbaoScore::default();
    let mut options = BootstrapOptions::local(openbao_state.clone());
    options.reset_userpass = args.reset_userpass;
    let report = openbao
        .deploy(&helm, &k8s, options)
        .await
        .context("deploying OpenBao")?;

    let mut sso: Option<SsoClientState> = None;
    let mut jwt_report: Option<BootstrapReport> = None;
    if !args.skip_zitadel {
        // A fresh client per attempt (the CNPG CRD race needs fresh API discovery), built from
        // the kubeconfig k3d handed out once.
        let kubeconfig_yaml = k3d
            .kubeconfig()
            .await
            .context("reading the cluster's kubeconfig")?;
        let connect = || {
            let yaml = kubeconfig_yaml.clone();
            async move { harmony_k8s::K8sClient::from_kubeconfig_yaml(yaml.expose_secret(), None).await }
        };
        CnpgScore::default()
            .deploy(&helm, connect)
            .await
            .context("deploying CloudNativePG and Zitadel's PostgreSQL")?;
        let zitadel = ZitadelScore::default();
        let deployed = zitadel
            .deploy(&helm, connect, RetryPolicy::default())
            .await
            .context("deploying Zitadel")?;
        // `http://sso.harmony.local:8080` with the name resolved to the load balancer: Zitadel
        // builds its issuer from the Host, which must carry the port.
        let api = zitadel.api_via(&LocalIngress::k3d(), deployed.pat.clone())?;
        api.wait_ready(&deployed.issuer, 30, Duration::from_secs(5))
            .instrument(tracing::info_span!(
                "zitadel_ready",
                message = "Waiting for Zitadel to answer"
            ))
            .await
            .context("waiting for Zitadel's OIDC discovery through the k3d load balancer")?;
        let spec = DeviceAppSpec {
            grant_users: args.grant_user.clone(),
            grant_if_present: vec![zitadel.first_admin_login()],
            ..DeviceAppSpec::default()
        };
        let client =
            ensure_device_app(&api, &spec, &deployed.issuer, &state::zitadel_dir(cluster)?)
                .instrument(tracing::info_span!(
                    "zitadel_app",
                    message = "Ensuring the device-code application"
                ))
                .await
                .context("creating the Zitadel project and device-code application")?;

        let issuer = url::Url::parse(&deployed.issuer).context("Zitadel's issuer URL")?;
        let mut options = BootstrapOptions::local(openbao_state.clone());
        options.jwt = Some(JwtAuthOptions::oidc(issuer, vec![client.client_id.clone()]));
        jwt_report = Some(
            wire_jwt(&openbao, &k8s, options)
                .instrument(tracing::info_span!(
                    "openbao_jwt",
                    message = "Wiring OpenBao's JWT auth to Zitadel"
                ))
                .await?,
        );
        sso = Some(client);
    }

    print_summary(
        cluster,
        &outcome,
        &helm.outcomes(),
        &report,
        jwt_report.as_ref(),
        sso.as_ref(),
        &openbao_state,
    )?;
    for note in report
        .notes
        .iter()
        .chain(jwt_report.iter().flat_map(|r| &r.notes))
    {
        println!("Note: {note}");
    }
    Ok(())
}

/// Whether a helm release a killed helm left `pending-*` may be recovered: yes with `--yes`,
/// else ask a person at a terminal, else no (the error then says how).
fn pending_recovery(args: &Args, ui: &Ui) -> harmony::helm::PendingRecovery {
    let (yes, interactive, multi) = (args.yes, ui.interactive, ui.multi.clone());
    std::sync::Arc::new(move |pending: &PendingRelease| {
        if yes {
            return true;
        }
        if !interactive {
            return false;
        }
        let question = format!(
            "helm release {}/{} is stuck in {} (a helm that was killed leaves it so). {}?",
            pending.namespace,
            pending.release,
            pending.status,
            pending.recovery()
        );
        multi.suspend(|| {
            inquire::Confirm::new(&question)
                .with_default(false)
                .prompt()
                .unwrap_or(false)
        })
    })
}

/// The JWT config is written when OpenBao can fetch Zitadel's discovery through the CoreDNS
/// rewrite; retry (bootstrap only, no helm) a bounded number of times while it cannot. Any other
/// error is reported at once.
async fn wire_jwt(
    openbao: &OpenbaoScore,
    k8s: &harmony_k8s::K8sClient,
    options: BootstrapOptions,
) -> anyhow::Result<BootstrapReport> {
    let mut attempt = 1;
    loop {
        match openbao.bootstrap(k8s, options.clone()).await {
            Ok(report) => return Ok(report),
            Err(e) if is_jwt_discovery_failure(&e) && attempt < JWT_CONFIG_RETRY.attempts => {
                tracing::warn!(
                    attempt,
                    attempts = JWT_CONFIG_RETRY.attempts,
                    error = %e,
                    "OpenBao cannot fetch Zitadel's discovery yet (waiting for sso.harmony.local to resolve in the cluster)"
                );
                tokio::time::sleep(JWT_CONFIG_RETRY.delay).await;
                attempt += 1;
            }
            Err(e) if is_jwt_discovery_failure(&e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "configuring OpenBao's JWT auth against Zitadel failed {attempt} times; \
                     check that CoreDNS serves the sso.harmony.local rewrite (kube-system/coredns-custom)"
                )));
            }
            Err(e) => return Err(anyhow::Error::new(e).context("configuring OpenBao's JWT auth")),
        }
    }
}

/// OpenBao refusing to write `auth/<mount>/config` because it could not fetch the issuer's
/// discovery document (the only failure that waiting can fix).
fn is_jwt_discovery_failure(e: &OpenbaoError) -> bool {
    matches!(
        e,
        OpenbaoError::Server { path, status: 400, message, .. }
            if path.ends_with("/config") && path.contains("auth/") && message.contains("discovery")
    )
}

/// What each chart did, e.g. `openbao unchanged, cnpg unchanged, zitadel upgraded`.
fn charts_line(charts: &[(String, ReleaseOutcome)]) -> Option<String> {
    (!charts.is_empty()).then(|| {
        charts
            .iter()
            .map(|(release, o)| format!("{release} {}", o.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// "already converged: nothing changed" when no chart, no bootstrap step and no JWT step
/// changed anything; else what did.
fn converged_text(
    charts: &[(String, ReleaseOutcome)],
    openbao: &BootstrapReport,
    jwt: Option<&BootstrapReport>,
) -> String {
    let changes: usize = openbao.changes.len() + jwt.map(|r| r.changes.len()).unwrap_or_default();
    let charts_changed = charts
        .iter()
        .filter(|(_, o)| *o != ReleaseOutcome::Unchanged)
        .count();
    if openbao.nothing_changed()
        && jwt.is_none_or(BootstrapReport::nothing_changed)
        && charts_changed == 0
    {
        return "already converged: nothing changed".to_owned();
    }
    format!(
        "{}{}{changes} configuration change(s), {charts_changed} chart(s) installed or upgraded",
        if openbao.initialised {
            "initialised, "
        } else {
            ""
        },
        if openbao.unsealed { "unsealed, " } else { "" },
    )
}

fn print_summary(
    cluster: &str,
    outcome: &EnsureOutcome,
    charts: &[(String, ReleaseOutcome)],
    openbao: &BootstrapReport,
    jwt: Option<&BootstrapReport>,
    sso: Option<&SsoClientState>,
    openbao_state: &StateDir,
) -> anyhow::Result<()> {
    let cluster_line = match outcome {
        EnsureOutcome::Created => "created",
        EnsureOutcome::Reused => "reused",
        EnsureOutcome::Started => "started (was stopped)",
    };
    println!("Harmony SSO is up on k3d cluster {cluster:?} ({cluster_line}).");
    println!();
    if let Some(line) = charts_line(charts) {
        println!("  Charts    {line}");
    }
    let converged = converged_text(charts, openbao, jwt);
    let ingress = LocalIngress::k3d();
    let url = |host: &str| ingress.url(host).as_str().trim_end_matches('/').to_owned();
    println!("  OpenBao   {}   {converged}", url(BAO_HOST));
    if let Some(sso) = sso {
        println!("  Zitadel   {}   issuer {}", url(SSO_HOST), sso.issuer);
        println!(
            "  SSO app   client id {}   project {}",
            sso.client_id, sso.project_id
        );
        println!(
            "  Sign-in   only users granted the project role {DEVELOPER_ROLE} (grant more with --grant-user LOGIN)"
        );
    } else {
        println!("  Zitadel   skipped (--skip-zitadel)");
    }
    println!();
    println!("Local credentials (mode 0600, never printed):");
    println!("  {}", openbao_state.path().display());
    if sso.is_some() {
        println!("  {}", state::zitadel_dir(cluster)?.display());
    }
    println!();
    println!("Next:");
    println!(
        "  cargo run -p example-harmony-sso -- --demo        typed config through OpenBao (userpass)"
    );
    if sso.is_some() {
        println!(
            "  cargo run -p example-harmony-sso -- --sso-demo    the same, signed in through Zitadel"
        );
        println!(
            "  (add '127.0.0.1 sso.harmony.local bao.harmony.local' to /etc/hosts for the browser)"
        );
    }
    println!(
        "  cargo run -p example-harmony-sso -- --cleanup     delete the cluster and local state"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(path: &str, status: u16, message: &str) -> OpenbaoError {
        OpenbaoError::Server {
            url: "http://127.0.0.1:8200".into(),
            method: "POST".into(),
            path: path.into(),
            status,
            message: message.into(),
        }
    }

    fn report(changes: &[&str]) -> BootstrapReport {
        BootstrapReport {
            initialised: false,
            unsealed: false,
            configured: true,
            changes: changes.iter().map(|c| (*c).to_owned()).collect(),
            skipped: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn a_rerun_with_every_chart_unchanged_says_so_per_chart() {
        let charts = vec![
            ("openbao".to_owned(), ReleaseOutcome::Unchanged),
            ("zitadel".to_owned(), ReleaseOutcome::Unchanged),
        ];
        assert_eq!(
            charts_line(&charts).as_deref(),
            Some("openbao unchanged, zitadel unchanged")
        );
        assert_eq!(
            converged_text(&charts, &report(&[]), Some(&report(&[]))),
            "already converged: nothing changed"
        );
        let upgraded = vec![
            ("openbao".to_owned(), ReleaseOutcome::Unchanged),
            ("zitadel".to_owned(), ReleaseOutcome::Upgraded),
        ];
        assert_eq!(
            converged_text(&upgraded, &report(&[]), None),
            "0 configuration change(s), 1 chart(s) installed or upgraded"
        );
        assert_eq!(charts_line(&[]), None);
    }

    #[test]
    fn only_the_discovery_failure_is_retried() {
        // What OpenBao 2.7 answers while the issuer does not resolve yet (measured).
        assert!(is_jwt_discovery_failure(&server_error(
            "/v1/auth/jwt/config",
            400,
            "error checking oidc discovery URL: Get \"http://sso.harmony.local:8080/.well-known/openid-configuration\": dial tcp: lookup sso.harmony.local: no such host",
        )));
        assert!(!is_jwt_discovery_failure(&server_error(
            "/v1/auth/jwt/config",
            403,
            "permission denied"
        )));
        assert!(!is_jwt_discovery_failure(&server_error(
            "/v1/auth/jwt/role/harmony-developer",
            400,
            "bound_audiences required"
        )));
    }
}
