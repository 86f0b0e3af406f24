//! The stack in one operation, on a local k3d cluster ([`LocalDeploy`]) or on a cluster that
//! already exists ([`ClusterDeploy`]): OpenBao, CloudNativePG, Zitadel, the device-code app and
//! OpenBao's JWT auth. Behind `harmony deploy` and the seed's `cargo run -p example-harmony-sso`;
//! each binary only parses flags, decides how to ask a person (the stuck-release question) and
//! prints [`DeployReport::summary`].
//!
//! The two differ only in how the cluster is reached (k3d creates it and hands out its
//! kubeconfig; an existing one is a context of the user's kubeconfig) and how the stack is
//! published (`*.harmony.local:8080` through k3d's load balancer and a CoreDNS rewrite, or real
//! DNS names under a domain through the cluster's ingress controller). Everything after that is
//! one code path ([`Converge`]).

pub(crate) mod api;
pub mod flags;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use harmony_k8s::{K8sClient, K8sError, ProxyPolicy};
use secrecy::{ExposeSecret as _, SecretString};
use tracing::Instrument as _;

use crate::cnpg::{CnpgError, CnpgScore, PostgresCluster, RetryPolicy};
use crate::helm::{
    Helm, HelmError, KubeconfigFile, PendingRecovery, PrivateFileError, ReleaseOutcome,
};
use crate::ingress::{BAO_HOST, LocalIngress, PublicIngress, SSO_HOST};
use crate::k3d::{EnsureOutcome, K3d, K3dError, LOADBALANCER_HOST_PORT};
use crate::openbao::{
    AppliedBackups, BackupSchedule, BootstrapOptions, BootstrapReport, HA_KEY_SHARES,
    JwtAuthOptions, KubernetesBackupAuth, OpenbaoError, OpenbaoProfile, OpenbaoScore, StateDir,
};
use crate::preflight::{DockerEndpoint, PreflightError, check_local_deploy};
use crate::tools::{ToolError, Tools};
use crate::zitadel::setup::ZitadelSetupError;
use crate::zitadel::{
    AdminPassword, DeviceAppSpec, KubectlImage, SsoClientState, ZitadelError, ZitadelScore,
    ensure_device_app,
};

/// After CoreDNS restarts with the rewrite (k3d), or while DNS and the certificate for
/// `sso.<domain>` settle (an existing cluster), the issuer takes a while to answer from inside
/// the cluster; OpenBao fetches discovery when its JWT config is written.
const JWT_CONFIG_RETRY: RetryPolicy = RetryPolicy {
    attempts: 6,
    delay: Duration::from_secs(10),
};

/// OpenBao raft peers of the `ha` profile.
pub const HA_OPENBAO_REPLICAS: u8 = 3;
/// Zitadel pods (API and login UI) of the `ha` profile.
pub const HA_ZITADEL_REPLICAS: u32 = 2;

/// Why the deploy stopped; each variant says at which step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The `ha` profile asked of a k3d cluster (one machine: nothing to be available across).
    #[error(
        "the ha profile needs an existing cluster (--kube-context NAME --domain DOMAIN); a k3d \
         cluster is one machine: use the local profile there"
    )]
    HaNeedsExistingCluster,
    /// The `ha` profile on a cluster with fewer schedulable nodes than OpenBao's raft peers.
    #[error(
        "the ha profile needs {needed} schedulable nodes: OpenBao's chart puts each of its \
         {needed} raft peers on its own node (a required pod anti-affinity per hostname), so \
         with {schedulable} the rest stays Pending. Nodes: {nodes}. Add nodes (Ready, not \
         cordoned, without a NoSchedule/NoExecute taint), or deploy --profile local"
    )]
    NotEnoughNodes {
        /// Nodes needed.
        needed: usize,
        /// Nodes that can take a pod.
        schedulable: usize,
        /// Each node and why it cannot take a pod, if so.
        nodes: String,
    },
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
    /// The existing cluster could not be reached through the kubeconfig.
    #[error("{what}")]
    Cluster {
        /// The step, naming the context.
        what: String,
        /// The cause.
        #[source]
        source: K8sError,
    },
    /// The kubeconfig could not be handed to helm.
    #[error("writing the cluster's kubeconfig for helm")]
    Kubeconfig(#[source] PrivateFileError),
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

/// How big the stack is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// One of everything (the k3d default): one OpenBao, one PostgreSQL instance, one Zitadel;
    /// key shares 1/1.
    Local,
    /// Highly available (the default on an existing cluster): OpenBao
    /// [`HA_OPENBAO_REPLICAS`] raft peers, CloudNativePG 3 instances, Zitadel
    /// [`HA_ZITADEL_REPLICAS`] replicas, PodDisruptionBudgets for each; key shares 5/3 and the
    /// root token retired once configured.
    Ha,
}

impl Profile {
    /// `local` or `ha`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Ha => "ha",
        }
    }

    /// Unseal key shares and threshold unless asked otherwise.
    pub fn default_key_shares(self) -> (u8, u8) {
        match self {
            Self::Local => (1, 1),
            Self::Ha => HA_KEY_SHARES,
        }
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(Self::Local),
            "ha" => Ok(Self::Ha),
            _ => Err(format!("{s:?} is not a profile: use local or ha")),
        }
    }
}

impl Profile {
    /// `--profile` of both binaries (see [`FromStr`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

/// The scores of the stack for a profile and a way of publishing it: what both deploys
/// install, and what the fake-helm tests render.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    /// OpenBao.
    pub openbao: OpenbaoScore,
    /// Zitadel's PostgreSQL.
    pub postgres: PostgresCluster,
    /// Zitadel (with the PostgreSQL above as its database).
    pub zitadel: ZitadelScore,
}

impl Stack {
    /// `profile` published through `ingress` (`None`: k3d's `*.harmony.local`).
    pub fn new(profile: Profile, ingress: Option<&PublicIngress>) -> Self {
        let (openbao_profile, postgres, zitadel_replicas) = match profile {
            Profile::Local => (OpenbaoProfile::K3d, PostgresCluster::default(), 1),
            Profile::Ha => (
                OpenbaoProfile::HighAvailability {
                    replicas: HA_OPENBAO_REPLICAS,
                },
                PostgresCluster::ha(),
                HA_ZITADEL_REPLICAS,
            ),
        };
        let mut zitadel = match ingress {
            Some(ingress) => ZitadelScore::public(ingress, zitadel_replicas),
            None => ZitadelScore {
                replicas: zitadel_replicas,
                ..ZitadelScore::default()
            },
        };
        zitadel.database = postgres.clone();
        Self {
            openbao: OpenbaoScore {
                profile: openbao_profile,
                ingress: ingress.cloned(),
                ..OpenbaoScore::default()
            },
            postgres,
            zitadel,
        }
    }

    /// The same stack with Zitadel's Jobs pulling `image` for kubectl.
    pub fn with_kubectl_image(mut self, image: &KubectlImage) -> Self {
        self.zitadel.kubectl_image = image.clone();
        self
    }
}

/// What both deploys take: the stack's size and how to treat what people already have.
#[derive(Clone)]
pub struct StackOptions {
    /// `None`: [`Profile::Local`] on k3d, [`Profile::Ha`] on an existing cluster.
    pub profile: Option<Profile>,
    /// Unseal key shares and threshold at init; `None`: the profile's.
    pub key_shares: Option<(u8, u8)>,
    /// OpenBao only (no CloudNativePG, no Zitadel, no JWT auth).
    pub skip_zitadel: bool,
    /// More Zitadel users (login names) to grant the project role people need to sign in.
    pub grant_users: Vec<String>,
    /// Give the userpass user a new password even when this machine has no password file.
    pub reset_userpass: bool,
    /// The team KV mount's `max_versions` (`--kv-max-versions`).
    pub kv_max_versions: u32,
    /// Environments and access by role (`--environments`), declared by the bootstrap; `None`:
    /// one base for everyone.
    pub environments: Option<crate::openbao::AccessTable>,
    /// The Zitadel project roles of developers and operators (`--developer-role`,
    /// `--ops-role`; default `harmony-developer`, `harmony-ops`).
    pub roles: RoleNames,
    /// Whether a helm release a killed helm left `pending-*` may be recovered (the caller asks a
    /// person, or answers from `--yes`).
    pub pending_recovery: PendingRecovery,
    /// Scheduled backups (`--backup-schedule`, `--backup-keep`): the CronJob, its PVC and
    /// ServiceAccount in OpenBao's namespace and the Kubernetes auth role it signs in with.
    /// `None` leaves whatever an earlier deploy set up as it is.
    pub backup: Option<BackupSchedule>,
}

impl std::fmt::Debug for StackOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackOptions")
            .field("profile", &self.profile)
            .field("key_shares", &self.key_shares)
            .field("skip_zitadel", &self.skip_zitadel)
            .field("grant_users", &self.grant_users)
            .field("reset_userpass", &self.reset_userpass)
            .field("backup", &self.backup)
            .field("kv_max_versions", &self.kv_max_versions)
            .field("environments", &self.environments)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

pub use harmony_openbao::flags::RoleNames;

/// The local stack on a k3d cluster (created or reused).
#[derive(Debug, Clone)]
pub struct LocalDeploy {
    /// The k3d cluster's name.
    pub cluster: String,
    /// What to deploy.
    pub stack: StackOptions,
    /// The kubectl image of Zitadel's setup and cleanup Jobs.
    pub kubectl_image: KubectlImage,
}

/// The stack on a cluster that exists: a context of the kubeconfig (`KUBECONFIG`, else
/// `~/.kube/config`), published under a domain through the cluster's ingress controller.
/// Nothing k3d-specific runs: no Docker check, no k3d, no CoreDNS rewrite.
#[derive(Debug, Clone)]
pub struct ClusterDeploy {
    /// The kubeconfig context.
    pub context: String,
    /// Host names, ingress class and TLS.
    pub ingress: PublicIngress,
    /// What to deploy.
    pub stack: StackOptions,
    /// The kubectl image of Zitadel's setup and cleanup Jobs.
    pub kubectl_image: KubectlImage,
}

/// Where the stack was deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployedOn {
    /// A local k3d cluster.
    K3d {
        /// Its name.
        cluster: String,
        /// Created, reused or started.
        outcome: EnsureOutcome,
    },
    /// An existing cluster.
    Context {
        /// The kubeconfig context.
        context: String,
    },
}

/// What a deploy did.
#[derive(Debug)]
pub struct DeployReport {
    /// Where.
    pub on: DeployedOn,
    /// The profile deployed.
    pub profile: Profile,
    /// Unseal key shares and threshold asked for at init.
    pub key_shares: (u8, u8),
    /// OpenBao's URL as people reach it (no trailing slash).
    pub openbao_url: String,
    /// Zitadel's URL as people reach it (no trailing slash).
    pub sso_url: String,
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
    /// The local copy (0600) of Zitadel's first admin's initial password.
    pub admin_password_file: Option<PathBuf>,
    /// Scheduled backups applied by this deploy (`--backup-schedule`).
    pub backups: Option<AppliedBackups>,
    /// What a person should know or do after this deploy.
    pub notes: Vec<String>,
    /// The Zitadel project roles the deploy ensured.
    pub roles: RoleNames,
}

/// The directory of a cluster's device-code app state.
pub fn zitadel_state_dir(cluster: &str) -> Result<PathBuf, harmony_env::DataDirError> {
    Ok(harmony_env::harmony_data_dir()?
        .join("zitadel")
        .join(cluster))
}

/// A client for the cluster a deploy went to: the kubeconfig context `kube_context`
/// (`--kube-context`), else the local k3d cluster `k3d_cluster` (its kubeconfig from k3d).
/// For `harmony backup list`/`fetch`.
pub async fn connect_cluster(
    kube_context: Option<&str>,
    k3d_cluster: &str,
) -> Result<K8sClient, DeployError> {
    if let Some(context) = kube_context {
        let cluster_err = |what: String| move |source| DeployError::Cluster { what, source };
        let kubeconfig = harmony_k8s::default_kubeconfig_for_context(context).map_err(
            cluster_err(format!("reading kubeconfig context {context:?}")),
        )?;
        return K8sClient::from_kubeconfig_yaml_with(
            kubeconfig.expose_secret(),
            Some(context),
            ProxyPolicy::KubeconfigThenEnvironment,
        )
        .await
        .map_err(cluster_err(format!(
            "connecting to the cluster of context {context:?}"
        )));
    }
    let tools = Tools::from_env()?;
    let k3d_err = |what: String| move |source| DeployError::K3d { what, source };
    let k3d = K3d::install(k3d_cluster, &tools)
        .await
        .map_err(k3d_err("getting the pinned k3d".to_owned()))?;
    k3d.client().await.map_err(k3d_err(format!(
        "connecting to the k3d cluster {k3d_cluster:?}"
    )))
}

/// A fresh Kubernetes client per call, from one kubeconfig (the CNPG CRD race needs fresh API
/// discovery).
struct ClusterAccess {
    kubeconfig: SecretString,
    context: Option<String>,
    proxy: ProxyPolicy,
}

impl ClusterAccess {
    async fn connect(&self) -> Result<K8sClient, K8sError> {
        K8sClient::from_kubeconfig_yaml_with(
            self.kubeconfig.expose_secret(),
            self.context.as_deref(),
            self.proxy,
        )
        .await
    }
}

impl LocalDeploy {
    /// Deploy or converge. A re-run with nothing to do changes nothing (no new helm revision).
    pub async fn run(&self) -> Result<DeployReport, DeployError> {
        let profile = self.stack.profile.unwrap_or(Profile::Local);
        if profile == Profile::Ha {
            return Err(DeployError::HaNeedsExistingCluster);
        }
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
        let access = ClusterAccess {
            kubeconfig: k3d
                .kubeconfig()
                .await
                .map_err(k3d_err("reading the cluster's kubeconfig"))?,
            context: None,
            proxy: ProxyPolicy::KubeconfigOnly,
        };
        let ingress = LocalIngress::k3d();
        let url = |host: &str| ingress.url(host).as_str().trim_end_matches('/').to_owned();
        Converge {
            stack: Stack::new(profile, None).with_kubectl_image(&self.kubectl_image),
            profile,
            options: &self.stack,
            openbao_state: StateDir::for_cluster(cluster)
                .map_err(openbao_err("naming OpenBao's state directory"))?,
            zitadel_state: zitadel_state_dir(cluster)?,
            on: DeployedOn::K3d {
                cluster: cluster.to_owned(),
                outcome,
            },
            openbao_url: url(BAO_HOST),
            sso_url: url(SSO_HOST),
            reached: "through the k3d load balancer",
            dns_hint: "check that CoreDNS serves the sso.harmony.local rewrite \
                       (kube-system/coredns-custom)"
                .to_owned(),
            notes: Vec::new(),
        }
        .run(&tools, kubeconfig, &k8s, &access)
        .await
    }
}

impl ClusterDeploy {
    /// Deploy or converge on the existing cluster. A re-run with nothing to do changes nothing.
    pub async fn run(&self) -> Result<DeployReport, DeployError> {
        let context = self.context.as_str();
        let cluster_err = |what: String| move |source| DeployError::Cluster { what, source };
        let access = ClusterAccess {
            kubeconfig: harmony_k8s::default_kubeconfig_for_context(context).map_err(
                cluster_err(format!("reading kubeconfig context {context:?}")),
            )?,
            context: Some(context.to_owned()),
            // A real cluster may sit behind the environment's proxy.
            proxy: ProxyPolicy::KubeconfigThenEnvironment,
        };
        let k8s = access.connect().await.map_err(cluster_err(format!(
            "connecting to the cluster of context {context:?}"
        )))?;
        // helm gets the same kubeconfig, pinned to the same context.
        let kubeconfig =
            KubeconfigFile::temporary(&access.kubeconfig).map_err(DeployError::Kubeconfig)?;
        let profile = self.stack.profile.unwrap_or(Profile::Ha);
        // In seconds, before anything is installed.
        let mut notes = Vec::new();
        if profile == Profile::Ha {
            match check_schedulable_nodes(&k8s, usize::from(HA_OPENBAO_REPLICAS)).await {
                Ok(_) => {}
                // Listing nodes is cluster-wide: a namespaced user may not. The deploy goes
                // on (a peer on a missing node stays Pending and is named after its wait).
                Err(DeployError::Cluster { source, .. }) => {
                    tracing::warn!(error = %crate::cnpg::retry::ErrorChain(&source),
                        "could not count the cluster's schedulable nodes");
                    notes.push(format!(
                        "the ha profile needs {HA_OPENBAO_REPLICAS} schedulable nodes; they could \
                         not be counted (listing nodes: {source})"
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        let tools = Tools::from_env()?;
        let ingress = &self.ingress;
        let sso_url = PublicIngress::url(&ingress.sso_host());
        let openbao_url = PublicIngress::url(&ingress.bao_host());
        let openbao_state = url::Url::parse(&openbao_url)
            .map_err(|e| OpenbaoError::InvalidUrl {
                url: openbao_url.clone(),
                reason: e.to_string(),
            })
            .and_then(|url| StateDir::for_url(&url))
            .map_err(openbao_err("naming OpenBao's state directory"))?;
        Converge {
            stack: Stack::new(profile, Some(ingress)).with_kubectl_image(&self.kubectl_image),
            profile,
            options: &self.stack,
            // Keyed by OpenBao's URL: `harmony --openbao-url https://bao.<domain>` finds the
            // saved login.
            openbao_state,
            // Keyed by Zitadel's host (a checked DNS name), not by the context, whose name may
            // hold `/` or `:` (cloud contexts often do).
            zitadel_state: zitadel_state_dir(&ingress.sso_host())?,
            on: DeployedOn::Context {
                context: context.to_owned(),
            },
            reached: "at its ingress host name",
            dns_hint: format!(
                "check that {} resolves inside the cluster and serves a certificate OpenBao trusts",
                ingress.sso_host()
            ),
            openbao_url,
            sso_url,
            notes,
        }
        .run(&tools, kubeconfig, &k8s, &access)
        .await
    }
}

/// Where a deploy goes.
#[derive(Debug, Clone)]
pub enum DeployTarget {
    /// The local k3d cluster of this name (created when missing).
    K3d {
        /// The cluster's name.
        cluster: String,
        /// The kubectl image of Zitadel's Jobs (within one minor of the cluster's k3s).
        kubectl_image: KubectlImage,
    },
    /// A cluster that exists, by kubeconfig context, published under a domain.
    Existing {
        /// The kubeconfig context.
        context: String,
        /// Host names, ingress class and TLS.
        ingress: PublicIngress,
        /// The kubectl image of Zitadel's Jobs (within one minor of the cluster's Kubernetes).
        kubectl_image: KubectlImage,
    },
}

impl DeployTarget {
    /// Deploy or converge `stack` there ([`LocalDeploy`] or [`ClusterDeploy`]).
    pub async fn deploy(self, stack: StackOptions) -> Result<DeployReport, DeployError> {
        match self {
            Self::K3d {
                cluster,
                kubectl_image,
            } => {
                LocalDeploy {
                    cluster,
                    stack,
                    kubectl_image,
                }
                .run()
                .await
            }
            Self::Existing {
                context,
                ingress,
                kubectl_image,
            } => {
                ClusterDeploy {
                    context,
                    ingress,
                    stack,
                    kubectl_image,
                }
                .run()
                .await
            }
        }
    }

    /// Whether it is the local k3d cluster.
    pub fn is_k3d(&self) -> bool {
        matches!(self, Self::K3d { .. })
    }
}

/// Everything after the cluster is reachable: the same for both deploys.
struct Converge<'a> {
    stack: Stack,
    profile: Profile,
    options: &'a StackOptions,
    openbao_state: StateDir,
    zitadel_state: PathBuf,
    on: DeployedOn,
    openbao_url: String,
    sso_url: String,
    /// How the deploy reaches Zitadel's API, for the readiness error.
    reached: &'static str,
    /// What to check when OpenBao cannot fetch the issuer's discovery.
    dns_hint: String,
    /// Notes of the steps before this one.
    notes: Vec<String>,
}

impl Converge<'_> {
    /// Bootstrap options shared by both OpenBao passes.
    fn bootstrap_options(&self) -> BootstrapOptions {
        let mut options = BootstrapOptions::local(self.openbao_state.clone());
        (options.shares, options.threshold) = self
            .options
            .key_shares
            .unwrap_or(self.profile.default_key_shares());
        options.revoke_root = self.profile == Profile::Ha;
        options.reset_userpass = self.options.reset_userpass;
        if self.options.backup.is_some() {
            options.kubernetes_backup = Some(KubernetesBackupAuth::in_cluster(
                &self.stack.openbao.namespace,
            ));
        }
        options.kv_max_versions = self.options.kv_max_versions;
        options.environments = self.options.environments.clone();
        options
    }

    async fn run(
        self,
        tools: &Tools,
        kubeconfig: KubeconfigFile,
        k8s: &K8sClient,
        access: &ClusterAccess,
    ) -> Result<DeployReport, DeployError> {
        let helm = Helm::install(tools, kubeconfig)
            .await
            .map_err(|e| DeployError::Helm(Box::new(e)))?
            .with_state_dir(harmony_env::harmony_data_dir()?.join("helm"))
            .with_pending_recovery(self.options.pending_recovery.clone());

        let openbao = &self.stack.openbao;
        let report = openbao
            .deploy(&helm, k8s, self.bootstrap_options())
            .await
            .map_err(openbao_err("deploying OpenBao"))?;
        let mut notes = self.notes.clone();
        // The Kubernetes auth role exists now (the bootstrap above): the CronJob can sign in.
        let backups = match &self.options.backup {
            Some(schedule) => Some(
                apply_backups(openbao, k8s, schedule)
                    .await
                    .map_err(openbao_err("setting up scheduled backups"))?,
            ),
            None => {
                notes.extend(crate::openbao::backups_left_in_place(k8s, &openbao.namespace).await);
                None
            }
        };

        let mut sso: Option<SsoClientState> = None;
        let mut jwt_report: Option<BootstrapReport> = None;
        let mut admin_password_file: Option<PathBuf> = None;
        if !self.options.skip_zitadel {
            let connect = || access.connect();
            CnpgScore {
                cluster: self.stack.postgres.clone(),
                ..CnpgScore::default()
            }
            .deploy(&helm, connect)
            .await
            .map_err(|e| DeployError::Cnpg(Box::new(e)))?;
            let zitadel = &self.stack.zitadel;
            let deployed = zitadel
                .deploy(&helm, connect, RetryPolicy::default())
                .await
                .map_err(|e| DeployError::Zitadel(Box::new(e)))?;
            // Zitadel builds its issuer from the Host it receives: the API is called at the
            // issuer's own host and port.
            let api = zitadel
                .api(deployed.pat.clone())
                .map_err(setup_err("reaching Zitadel's API"))?;
            api.wait_ready(&deployed.issuer, 30, Duration::from_secs(5))
                .instrument(tracing::info_span!(
                    "zitadel_ready",
                    message = "Waiting for Zitadel to answer"
                ))
                .await
                .map_err(setup_err(&format!(
                    "waiting for Zitadel's OIDC discovery {}",
                    self.reached
                )))?;
            // The first admin's initial password, beside the app's state (0600). Its sign-in
            // role only when Zitadel created it with that password: an admin an older deploy
            // left with Zitadel's public default is not let in.
            let admin_login = zitadel.first_admin_login();
            admin_password_file = Some(
                crate::zitadel::save_admin_password(&self.zitadel_state, &deployed.admin.password)
                    .map_err(|e| DeployError::Zitadel(Box::new(ZitadelError::LocalFile(e))))?,
            );
            let (grant_if_present, note) = first_admin_grant(
                &deployed.admin,
                admin_login,
                &self.sso_url,
                &self.options.roles,
            );
            notes.extend(note);
            let spec = DeviceAppSpec {
                role_key: self.options.roles.developer.clone(),
                ops_role_key: self.options.roles.ops.clone(),
                grant_users: self.options.grant_users.clone(),
                grant_if_present,
                ..DeviceAppSpec::default()
            };
            let client = ensure_device_app(&api, &spec, &deployed.issuer, &self.zitadel_state)
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
            let mut options = self.bootstrap_options();
            options.jwt = Some(JwtAuthOptions::oidc(issuer, vec![client.client_id.clone()]));
            jwt_report = Some(
                wire_jwt(openbao, k8s, options, &self.dns_hint)
                    .instrument(tracing::info_span!(
                        "openbao_jwt",
                        message = "Wiring OpenBao's JWT auth to Zitadel"
                    ))
                    .await?,
            );
            sso = Some(client);
        }
        let options = self.bootstrap_options();
        Ok(DeployReport {
            key_shares: (options.shares, options.threshold),
            on: self.on,
            profile: self.profile,
            openbao_url: self.openbao_url,
            sso_url: self.sso_url,
            charts: helm.outcomes(),
            openbao: report,
            jwt: jwt_report,
            sso,
            openbao_state: self.openbao_state,
            zitadel_state: self.zitadel_state,
            admin_password_file,
            backups,
            notes,
            roles: self.options.roles.clone(),
        })
    }
}

/// Applies the backup CronJob, its PVC and ServiceAccount next to `openbao`.
async fn apply_backups(
    openbao: &OpenbaoScore,
    k8s: &K8sClient,
    schedule: &BackupSchedule,
) -> Result<AppliedBackups, OpenbaoError> {
    let several = openbao.pods().len() > 1;
    let addr = crate::openbao::in_cluster_addr(&openbao.namespace, &openbao.release, several);
    crate::openbao::apply_backup_schedule(
        k8s,
        &openbao.namespace,
        &openbao.release,
        &addr,
        schedule,
    )
    .instrument(tracing::info_span!(
        "openbao_backups",
        message = "Applying the scheduled backup CronJob"
    ))
    .await
}

/// Why a node cannot take a new pod (`None`: it can): not Ready, cordoned, or tainted
/// `NoSchedule`/`NoExecute` (a pod without a matching toleration — OpenBao's chart sets none
/// by default — is not scheduled there).
fn unschedulable_reason(node: &k8s_openapi::api::core::v1::Node) -> Option<String> {
    let spec = node.spec.clone().unwrap_or_default();
    if spec.unschedulable == Some(true) {
        return Some("cordoned".to_owned());
    }
    if let Some(taint) = spec
        .taints
        .unwrap_or_default()
        .into_iter()
        .find(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        return Some(format!("taint {} {}", taint.key, taint.effect));
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    (!ready).then(|| "not Ready".to_owned())
}

/// Counts the nodes that can take a pod; fewer than `needed` is [`DeployError::NotEnoughNodes`]
/// naming each node and why. Returns how many can.
pub async fn check_schedulable_nodes(k8s: &K8sClient, needed: usize) -> Result<usize, DeployError> {
    let nodes: Vec<k8s_openapi::api::core::v1::Node> = api::list_cluster(k8s, "nodes")
        .await
        .map_err(|source| DeployError::Cluster {
            what: "listing the cluster's nodes (the ha profile needs enough schedulable ones)"
                .to_owned(),
            source,
        })?;
    let described: Vec<(String, Option<String>)> = nodes
        .iter()
        .map(|n| {
            (
                n.metadata.name.clone().unwrap_or_default(),
                unschedulable_reason(n),
            )
        })
        .collect();
    let schedulable = described.iter().filter(|(_, why)| why.is_none()).count();
    if schedulable >= needed {
        return Ok(schedulable);
    }
    let nodes = if described.is_empty() {
        "none".to_owned()
    } else {
        described
            .iter()
            .map(|(name, why)| match why {
                Some(why) => format!("{name} ({why})"),
                None => format!("{name} (schedulable)"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DeployError::NotEnoughNodes {
        needed,
        schedulable,
        nodes,
    })
}

/// Whom of the first admin the deploy grants the sign-in role: the admin when Zitadel created it
/// with the password the deploy generated, else nobody, with a note saying why and what to do.
fn first_admin_grant(
    admin: &AdminPassword,
    login: String,
    sso_url: &str,
    roles: &RoleNames,
) -> (Vec<String>, Option<String>) {
    if admin.set_by_deploy {
        return (vec![login], None);
    }
    let note = format!(
        "Zitadel's first admin {login} was created before this deploy set its password \
         (Zitadel's default is public), so it was not granted {} or {}; sign in to \
         {sso_url} as that admin and change its password now (a grant an older deploy made \
         stays until you remove it)",
        roles.developer, roles.ops
    );
    (Vec::new(), Some(note))
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

/// The JWT config is written when OpenBao can fetch Zitadel's discovery (through the CoreDNS
/// rewrite on k3d, through real DNS elsewhere); retry (bootstrap only, no helm) a bounded number of times while it cannot. Any other
/// error is reported at once.
async fn wire_jwt(
    openbao: &OpenbaoScore,
    k8s: &K8sClient,
    options: BootstrapOptions,
    dns_hint: &str,
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
                    "OpenBao cannot fetch Zitadel's discovery yet (waiting for the issuer to answer inside the cluster)"
                );
                tokio::time::sleep(JWT_CONFIG_RETRY.delay).await;
                attempt += 1;
            }
            Err(e) if is_jwt_discovery_failure(&e) => {
                return Err(openbao_err(&format!(
                    "configuring OpenBao's JWT auth against Zitadel failed {attempt} times; {dns_hint}"
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
        let headline = match &self.on {
            DeployedOn::K3d { cluster, outcome } => {
                let outcome = match outcome {
                    EnsureOutcome::Created => "created",
                    EnsureOutcome::Reused => "reused",
                    EnsureOutcome::Started => "started (was stopped)",
                };
                format!("Harmony SSO is up on k3d cluster {cluster:?} ({outcome}).")
            }
            DeployedOn::Context { context } => format!(
                "Harmony SSO is up on the cluster of context {context:?} (profile {}).",
                self.profile.as_str()
            ),
        };
        let mut out = vec![headline, String::new()];
        if let Some(line) = charts_line(&self.charts) {
            out.push(format!("  Charts    {line}"));
        }
        let converged = converged_text(&self.charts, &self.openbao, self.jwt.as_ref());
        out.push(format!("  OpenBao   {}   {converged}", self.openbao_url));
        if let Some(sso) = &self.sso {
            out.push(format!(
                "  Zitadel   {}   issuer {}",
                self.sso_url, sso.issuer
            ));
            out.push(format!(
                "  SSO app   client id {}   project {}",
                sso.client_id, sso.project_id
            ));
            out.push(format!(
                "  Sign-in   only users granted the project role {} or {} (grant more with --grant-user LOGIN); the roles are asserted in the id_token",
                self.roles.developer, self.roles.ops
            ));
        } else {
            out.push("  Zitadel   skipped (--skip-zitadel)".to_owned());
        }
        let access = self
            .jwt
            .as_ref()
            .and_then(|j| j.access.as_ref())
            .or(self.openbao.access.as_ref());
        match access {
            Some(table) => {
                out.push(format!(
                    "  Access    environments {} (from {}; roles from the id_token at sign-in):",
                    table.environments.join(", "),
                    crate::openbao::ACCESS_DOCUMENT
                ));
                out.extend(table.render().lines().map(|l| format!("            {l}")));
            }
            None => out.push(
                "  Access    environments not declared: everyone signed in reads and writes the one base (--environments dev,staging,prod)".to_owned(),
            ),
        }
        if self.openbao.initialised {
            let (shares, threshold) = self.key_shares;
            out.push(format!(
                "  Unseal    {}",
                crate::openbao::initialised_text(&self.openbao_state, shares, threshold)
            ));
        }
        if let Some(backups) = &self.backups {
            out.push(format!("  Backups   {}", backups.summary()));
        }
        out.push(String::new());
        out.push("Local credentials (mode 0600, never printed):".to_owned());
        out.push(format!("  {}", self.openbao_state.path().display()));
        if self.sso.is_some() {
            out.push(format!("  {}", self.zitadel_state.display()));
        }
        if let Some(file) = &self.admin_password_file {
            out.push(format!(
                "  {}   Zitadel's first admin's initial password (changed at its first sign-in)",
                file.display()
            ));
        }
        for note in self
            .openbao
            .notes
            .iter()
            .chain(self.jwt.iter().flat_map(|r| &r.notes))
            .chain(&self.notes)
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
            access: None,
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

    #[tokio::test]
    async fn ha_on_k3d_is_refused_before_anything_runs() {
        let deploy = LocalDeploy {
            cluster: "harmony".into(),
            kubectl_image: KubectlImage::default(),
            stack: StackOptions {
                profile: Some(Profile::Ha),
                key_shares: None,
                skip_zitadel: false,
                grant_users: Vec::new(),
                reset_userpass: false,
                kv_max_versions: crate::openbao::DEFAULT_KV_MAX_VERSIONS,
                environments: None,
                roles: RoleNames::default(),
                pending_recovery: std::sync::Arc::new(|_: &crate::helm::PendingRelease| false),
                backup: None,
            },
        };
        let err = deploy.run().await.expect_err("ha needs a real cluster");
        assert!(matches!(err, DeployError::HaNeedsExistingCluster), "{err}");
        assert!(err.to_string().contains("--kube-context"), "{err}");
        assert_eq!("ha".parse::<Profile>(), Ok(Profile::Ha));
        assert!(
            Profile::parse("HA")
                .expect_err("case matters")
                .contains("local or ha")
        );
    }

    /// The API server answering one `GET /api/v1/nodes` with `nodes`.
    fn nodes_api(nodes: serde_json::Value) -> (K8sClient, tokio::task::JoinHandle<()>) {
        use http::{Request, Response};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let (request, send) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), http::Method::GET);
            assert_eq!(request.uri().path(), "/api/v1/nodes");
            let body = serde_json::json!({
                "apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": nodes,
            });
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&body).expect("json"),
            )));
        });
        (
            K8sClient::new(kube::Client::new(service, "default")),
            server,
        )
    }

    fn node(name: &str, ready: bool, extra_spec: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name},
            "spec": extra_spec,
            "status": {"conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }},
            ]},
        })
    }

    /// OpenBao chart openbao-0.29.2 (`charts/openbao/values.yaml`, `server.affinity`): a
    /// required pod anti-affinity on `kubernetes.io/hostname`, one raft peer per node.
    #[tokio::test]
    async fn ha_on_two_schedulable_nodes_fails_naming_the_requirement() {
        let (k8s, server) = nodes_api(serde_json::json!([
            node("a", true, serde_json::json!({})),
            node("b", true, serde_json::json!({})),
            node(
                "cp",
                true,
                serde_json::json!({"taints": [
                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                ]})
            ),
            node("d", true, serde_json::json!({"unschedulable": true})),
            node("e", false, serde_json::json!({})),
        ]));
        let err = check_schedulable_nodes(&k8s, 3)
            .await
            .expect_err("two are not enough");
        server.await.expect("server");
        assert!(
            matches!(
                err,
                DeployError::NotEnoughNodes {
                    needed: 3,
                    schedulable: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        for part in [
            "needs 3 schedulable nodes",
            "anti-affinity",
            "--profile local",
            "a (schedulable)",
            "cp (taint node-role.kubernetes.io/control-plane NoSchedule)",
            "d (cordoned)",
            "e (not Ready)",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
    }

    #[tokio::test]
    async fn ha_on_three_schedulable_nodes_passes() {
        let (k8s, server) = nodes_api(serde_json::json!([
            node("a", true, serde_json::json!({})),
            node("b", true, serde_json::json!({})),
            // A PreferNoSchedule taint does not keep a pod off.
            node(
                "c",
                true,
                serde_json::json!({"taints": [
                    {"key": "spot", "effect": "PreferNoSchedule"},
                ]})
            ),
        ]));
        assert_eq!(check_schedulable_nodes(&k8s, 3).await.expect("enough"), 3);
        server.await.expect("server");
    }

    #[test]
    fn the_first_admin_is_granted_only_when_the_deploy_set_its_password() {
        let login = "zitadel-admin@zitadel.sso.harmony.local";
        let set = AdminPassword {
            password: SecretString::from("Gen-3rated!pw"),
            set_by_deploy: true,
        };
        assert_eq!(
            first_admin_grant(
                &set,
                login.into(),
                "http://sso.harmony.local:8080",
                &RoleNames::default()
            ),
            (vec![login.to_owned()], None)
        );
        let older = AdminPassword {
            set_by_deploy: false,
            ..set
        };
        let (grant, note) = first_admin_grant(
            &older,
            login.into(),
            "https://sso.example.com",
            &RoleNames::default(),
        );
        assert!(grant.is_empty(), "{grant:?}");
        let note = note.expect("a note");
        assert!(
            note.contains(login) && note.contains("change its password"),
            "{note}"
        );
        assert!(!note.contains("Gen-3rated"), "{note}");
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
