//! The local stack in one operation: create or reuse the k3d cluster and converge OpenBao,
//! CloudNativePG, Zitadel, the device-code app and OpenBao's JWT auth. Behind `harmony deploy`
//! and the seed's `cargo run -p example-harmony-sso`; each binary only parses flags, decides
//! how to ask a person (the stuck-release question) and prints [`DeployReport::summary`].

use std::path::PathBuf;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use tracing::Instrument as _;

use crate::cnpg::{CnpgError, CnpgScore, RetryPolicy};
use crate::helm::{Helm, HelmError, PendingRecovery, ReleaseOutcome};
use crate::ingress::{BAO_HOST, LocalIngress, SSO_HOST};
use crate::k3d::{EnsureOutcome, K3d, K3dError, LOADBALANCER_HOST_PORT};
use crate::openbao::{
    BootstrapOptions, BootstrapReport, JwtAuthOptions, OpenbaoError, OpenbaoScore, StateDir,
};
use crate::preflight::{DockerEndpoint, PreflightError, check_local_deploy};
use crate::tools::{ToolError, Tools};
use crate::zitadel::setup::{DEVELOPER_ROLE, ZitadelSetupError};
use crate::zitadel::{
    DeviceAppSpec, SsoClientState, ZitadelError, ZitadelScore, ensure_device_app,
};

/// After CoreDNS restarts with the rewrite, `sso.harmony.local` takes a few seconds to resolve
/// inside the cluster; OpenBao fetches discovery when its JWT config is written.
const JWT_CONFIG_RETRY: RetryPolicy = RetryPolicy {
    attempts: 6,
    delay: Duration::from_secs(10),
};

/// Why the deploy stopped; each variant says at which step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// Docker or port 8080 is not ready (found before anything is downloaded).
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// The local state directory could not be found.
    #[error(transparent)]
    DataDir(#[from] harmony_env::DataDirError),
    /// The pinned tools could not be prepared.
    #[error("preparing the pinned k3d and helm")]
    Tools(#[from] ToolError),
    /// k3d failed.
    #[error("{what} (is Docker running?)")]
    K3d {
        /// The step.
        what: String,
        /// k3d's error.
        #[source]
        source: K3dError,
    },
    /// helm could not be prepared.
    #[error("getting the pinned helm")]
    Helm(#[source] Box<HelmError>),
    /// OpenBao's install or bootstrap failed.
    #[error("{what}")]
    Openbao {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: Box<OpenbaoError>,
    },
    /// CloudNativePG or Zitadel's PostgreSQL failed.
    #[error("deploying CloudNativePG and Zitadel's PostgreSQL")]
    Cnpg(#[source] Box<CnpgError>),
    /// Zitadel's install failed.
    #[error("deploying Zitadel")]
    Zitadel(#[source] Box<ZitadelError>),
    /// Zitadel's API (readiness, project, device-code app) failed.
    #[error("{what}")]
    ZitadelSetup {
        /// The step.
        what: String,
        /// The cause.
        #[source]
        source: Box<ZitadelSetupError>,
    },
}

/// What to deploy.
#[derive(Clone)]
pub struct LocalDeploy {
    /// The k3d cluster's name.
    pub cluster: String,
    /// OpenBao only (no CloudNativePG, no Zitadel, no JWT auth).
    pub skip_zitadel: bool,
    /// More Zitadel users (login names) to grant the project role people need to sign in.
    pub grant_users: Vec<String>,
    /// Give the userpass user a new password even when this machine has no password file.
    pub reset_userpass: bool,
    /// Whether a helm release a killed helm left `pending-*` may be recovered (the caller asks a
    /// person, or answers from `--yes`).
    pub pending_recovery: PendingRecovery,
}

impl std::fmt::Debug for LocalDeploy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDeploy")
            .field("cluster", &self.cluster)
            .field("skip_zitadel", &self.skip_zitadel)
            .field("grant_users", &self.grant_users)
            .field("reset_userpass", &self.reset_userpass)
            .finish_non_exhaustive()
    }
}

/// What a deploy did.
#[derive(Debug)]
pub struct DeployReport {
    /// The cluster's name.
    pub cluster: String,
    /// Created, reused or started.
    pub outcome: EnsureOutcome,
    /// Each chart and what helm did with it.
    pub charts: Vec<(String, ReleaseOutcome)>,
    /// OpenBao's bootstrap.
    pub openbao: BootstrapReport,
    /// The JWT wiring to Zitadel (absent with `skip_zitadel`).
    pub jwt: Option<BootstrapReport>,
    /// The device-code app.
    pub sso: Option<SsoClientState>,
    /// Where OpenBao's keys and the userpass password are kept.
    pub openbao_state: StateDir,
    /// Where the device-code app's state is kept.
    pub zitadel_state: PathBuf,
}

/// The directory of a cluster's device-code app state.
pub fn zitadel_state_dir(cluster: &str) -> Result<PathBuf, harmony_env::DataDirError> {
    Ok(harmony_env::harmony_data_dir()?
        .join("zitadel")
        .join(cluster))
}

impl LocalDeploy {
    /// Deploy or converge. A re-run with nothing to do changes nothing (no new helm revision).
    pub async fn run(&self) -> Result<DeployReport, DeployError> {
        let cluster = self.cluster.as_str();
        // Before anything is downloaded or created: Docker answers, port 8080 is ours to use.
        let docker = DockerEndpoint::from_env()?;
        check_local_deploy(&docker, cluster, LOADBALANCER_HOST_PORT).await?;
        let tools = Tools::from_env()?;
        let k3d_err = |what: &str| {
            let what = what.to_owned();
            move |source| DeployError::K3d { what, source }
        };
        let k3d = K3d::install(cluster, &tools)
            .await
            .map_err(k3d_err("getting the pinned k3d"))?;
        let outcome = k3d.ensure_cluster().await.map_err(k3d_err(&format!(
            "creating or starting the k3d cluster {cluster:?}"
        )))?;
        let k8s = k3d
            .client()
            .await
            .map_err(k3d_err("connecting to the cluster"))?;
        let kubeconfig = k3d
            .kubeconfig_file()
            .await
            .map_err(k3d_err("writing the cluster's kubeconfig for helm"))?;
        let helm = Helm::install(&tools, kubeconfig)
            .await
            .map_err(|e| DeployError::Helm(Box::new(e)))?
            .with_state_dir(harmony_env::harmony_data_dir()?.join("helm"))
            .with_pending_recovery(self.pending_recovery.clone());

        let openbao_state = StateDir::for_cluster(cluster)
            .map_err(openbao_err("naming OpenBao's state directory"))?;
        let openbao = OpenbaoScore::default();
        let mut options = BootstrapOptions::local(openbao_state.clone());
        options.reset_userpass = self.reset_userpass;
        let report = openbao
            .deploy(&helm, &k8s, options)
            .await
            .map_err(openbao_err("deploying OpenBao"))?;

        let zitadel_state = zitadel_state_dir(cluster)?;
        let mut sso: Option<SsoClientState> = None;
        let mut jwt_report: Option<BootstrapReport> = None;
        if !self.skip_zitadel {
            // A fresh client per attempt (the CNPG CRD race needs fresh API discovery), built
            // from the kubeconfig k3d handed out once.
            let kubeconfig_yaml = k3d
                .kubeconfig()
                .await
                .map_err(k3d_err("reading the cluster's kubeconfig"))?;
            let connect = || {
                let yaml = kubeconfig_yaml.clone();
                async move {
                    harmony_k8s::K8sClient::from_kubeconfig_yaml(yaml.expose_secret(), None).await
                }
            };
            CnpgScore::default()
                .deploy(&helm, connect)
                .await
                .map_err(|e| DeployError::Cnpg(Box::new(e)))?;
            let zitadel = ZitadelScore::default();
            let deployed = zitadel
                .deploy(&helm, connect, RetryPolicy::default())
                .await
                .map_err(|e| DeployError::Zitadel(Box::new(e)))?;
            // `http://sso.harmony.local:8080` with the name resolved to the load balancer:
            // Zitadel builds its issuer from the Host, which must carry the port.
            let api = zitadel
                .api_via(&LocalIngress::k3d(), deployed.pat.clone())
                .map_err(setup_err("reaching Zitadel's API"))?;
            api.wait_ready(&deployed.issuer, 30, Duration::from_secs(5))
                .instrument(tracing::info_span!(
                    "zitadel_ready",
                    message = "Waiting for Zitadel to answer"
                ))
                .await
                .map_err(setup_err(
                    "waiting for Zitadel's OIDC discovery through the k3d load balancer",
                ))?;
            let spec = DeviceAppSpec {
                grant_users: self.grant_users.clone(),
                grant_if_present: vec![zitadel.first_admin_login()],
                ..DeviceAppSpec::default()
            };
            let client = ensure_device_app(&api, &spec, &deployed.issuer, &zitadel_state)
                .instrument(tracing::info_span!(
                    "zitadel_app",
                    message = "Ensuring the device-code application"
                ))
                .await
                .map_err(setup_err(
                    "creating the Zitadel project and device-code application",
                ))?;

            let issuer = url::Url::parse(&deployed.issuer).map_err(|e| DeployError::Openbao {
                what: format!("Zitadel's issuer {:?} is not a URL", deployed.issuer),
                source: Box::new(OpenbaoError::InvalidUrl {
                    url: deployed.issuer.clone(),
                    reason: e.to_string(),
                }),
            })?;
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
        Ok(DeployReport {
            cluster: cluster.to_owned(),
            outcome,
            charts: helm.outcomes(),
            openbao: report,
            jwt: jwt_report,
            sso,
            openbao_state,
            zitadel_state,
        })
    }
}

fn openbao_err(what: &str) -> impl FnOnce(OpenbaoError) -> DeployError + use<> {
    let what = what.to_owned();
    move |source| DeployError::Openbao {
        what,
        source: Box::new(source),
    }
}

fn setup_err(what: &str) -> impl FnOnce(ZitadelSetupError) -> DeployError + use<> {
    let what = what.to_owned();
    move |source| DeployError::ZitadelSetup {
        what,
        source: Box::new(source),
    }
}

/// The JWT config is written when OpenBao can fetch Zitadel's discovery through the CoreDNS
/// rewrite; retry (bootstrap only, no helm) a bounded number of times while it cannot. Any other
/// error is reported at once.
async fn wire_jwt(
    openbao: &OpenbaoScore,
    k8s: &harmony_k8s::K8sClient,
    options: BootstrapOptions,
) -> Result<BootstrapReport, DeployError> {
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
                return Err(openbao_err(&format!(
                    "configuring OpenBao's JWT auth against Zitadel failed {attempt} times; \
                     check that CoreDNS serves the sso.harmony.local rewrite (kube-system/coredns-custom)"
                ))(e));
            }
            Err(e) => return Err(openbao_err("configuring OpenBao's JWT auth")(e)),
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

impl DeployReport {
    /// What runs where, what changed and where the local credentials are (stdout of both
    /// binaries; each adds its own "Next:" lines).
    pub fn summary(&self) -> Vec<String> {
        let cluster_line = match self.outcome {
            EnsureOutcome::Created => "created",
            EnsureOutcome::Reused => "reused",
            EnsureOutcome::Started => "started (was stopped)",
        };
        let mut out = vec![
            format!(
                "Harmony SSO is up on k3d cluster {:?} ({cluster_line}).",
                self.cluster
            ),
            String::new(),
        ];
        if let Some(line) = charts_line(&self.charts) {
            out.push(format!("  Charts    {line}"));
        }
        let converged = converged_text(&self.charts, &self.openbao, self.jwt.as_ref());
        let ingress = LocalIngress::k3d();
        let url = |host: &str| ingress.url(host).as_str().trim_end_matches('/').to_owned();
        out.push(format!("  OpenBao   {}   {converged}", url(BAO_HOST)));
        if let Some(sso) = &self.sso {
            out.push(format!(
                "  Zitadel   {}   issuer {}",
                url(SSO_HOST),
                sso.issuer
            ));
            out.push(format!(
                "  SSO app   client id {}   project {}",
                sso.client_id, sso.project_id
            ));
            out.push(format!(
                "  Sign-in   only users granted the project role {DEVELOPER_ROLE} (grant more with --grant-user LOGIN)"
            ));
        } else {
            out.push("  Zitadel   skipped (--skip-zitadel)".to_owned());
        }
        out.push(String::new());
        out.push("Local credentials (mode 0600, never printed):".to_owned());
        out.push(format!("  {}", self.openbao_state.path().display()));
        if self.sso.is_some() {
            out.push(format!("  {}", self.zitadel_state.display()));
        }
        for note in self
            .openbao
            .notes
            .iter()
            .chain(self.jwt.iter().flat_map(|r| &r.notes))
        {
            out.push(format!("Note: {note}"));
        }
        out
    }
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
