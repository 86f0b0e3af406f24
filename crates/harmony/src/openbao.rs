//! OpenBao: Helm values for installing it, and the bootstrap that initialises, unseals and
//! configures it over its HTTP API.
//!
//! Design choices:
//! - **The bootstrap only needs a URL** ([`OpenbaoBootstrap`]): the deploy reaches the in-cluster
//!   server through a port-forward, and the CLI's `--openbao-url` points the very same code at an
//!   existing server. Nothing execs `bao` in a pod, so all of it is tested against a real OpenBao.
//!   Every request goes through harmony-secret's one [`harmony_secret::OpenbaoClient`] (TLS,
//!   namespace, timeouts, sensitive token header, one error mapping).
//! - **Idempotent, with a report**: every run reads what is there, writes only what differs and
//!   says what it changed ([`BootstrapReport`]), so a re-run is cheap and visibly a no-op, and a
//!   restarted (sealed) server is simply unsealed again.
//! - **Keys never leave the state directory**: unseal keys, root token and the generated userpass
//!   password are [`secrecy::SecretString`]s, written only to 0600 files (atomically) under
//!   [`StateDir`], redacted in `Debug`, absent from errors and logs.
//! - **Typed Helm values** ([`OpenbaoValues`]) rendered to YAML and snapshot-tested;
//!   [`OpenbaoScore`] installs them without `helm --wait` (a sealed OpenBao is never Ready),
//!   waits for the pod to be *Running* and bootstraps it through `K8sClient::port_forward`.
//!
//! ```no_run
//! use harmony::openbao::{BootstrapOptions, OpenbaoBootstrap, StateDir};
//! # async fn demo() -> Result<(), harmony::openbao::OpenbaoError> {
//! let url = url::Url::parse("http://127.0.0.1:8200").expect("static URL");
//! let options = BootstrapOptions::local(StateDir::for_url(&url)?);
//! let report = OpenbaoBootstrap::new(&url, options)?.run().await?;
//! if report.nothing_changed() {
//!     tracing::info!("OpenBao already bootstrapped");
//! }
//! # Ok(()) }
//! ```

mod backup;
mod backup_cluster;
mod backup_schedule;
mod bootstrap;
mod error;
mod existing;
mod policy;
mod score;
mod state;
mod values;

pub use backup::{HARMONY_BACKUP_POLICY, harmony_backup_policy_hcl};
pub use backup_cluster::{
    AppliedBackups, FetchedSnapshot, MAX_FETCH_BYTES, PodExecFuture, PodOutput,
    READER_DEADLINE_SECONDS, READER_RUNNING_TIMEOUT, SnapshotEntry, apply_backup_schedule,
    backups_left_in_place, fetch_snapshot, fetch_snapshot_through, in_cluster_addr,
    is_snapshot_name, list_snapshots, list_snapshots_through, parse_listing, reader_pod,
};
pub use backup_schedule::{
    BACKUP_DIR, BACKUP_NAME, BACKUP_ROLE, BACKUP_TOKEN_AUDIENCE, BACKUP_TOKEN_TTL,
    BACKUP_VOLUME_SIZE, BackupObjects, BackupSchedule, DEFAULT_BACKUP_KEEP,
    DEFAULT_BACKUP_SCHEDULE, KUBERNETES_AUTH_MOUNT, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX,
    backup_objects, backup_role, backup_script, kubernetes_auth_config,
};
pub use bootstrap::{
    ACCESS_DOCUMENT, ADMIN_TOKEN_PERIOD, AccessSpecError, AccessTable, BootstrapOptions,
    BootstrapReport, CI_TOKEN_TTL, CiIds, CiOptions, CiRefs, CiSpecError, CiTrust, ClusterReport,
    DEFAULT_DEVELOPER_ROLE, DEFAULT_JWT_ROLE, DEFAULT_KV_MAX_VERSIONS, DEFAULT_OPS_ROLE,
    DEFAULT_USERPASS_USER, GITHUB_ACTIONS_ISSUER, GITHUB_API_URL, GITLAB_COM_ISSUER,
    HARMONY_ADMIN_POLICY, HARMONY_CI_POLICY, HARMONY_USERPASS_POLICY, JWT_MOUNT, JwtAuthOptions,
    KubernetesBackupAuth, NodeReport, OpenbaoBootstrap, OpenbaoClusterBootstrap,
    RECOVERY_TOKEN_PERIOD, RoleAccess, USERPASS_MOUNT, ZITADEL_ROLES_CLAIM, ci_policy_name,
    harmony_admin_policy_hcl, harmony_ci_environments_policy_hcl, harmony_ci_policy_hcl,
};
pub use error::OpenbaoError;
pub use existing::{
    ExistingBootstrap, ExistingRequest, HA_KEY_SHARES, bootstrap_existing, initialised_text,
    key_shares_from_flags, parse_bound_claim, regenerate_root,
};
pub use policy::{
    AccessLevel, HARMONY_BASE_READ_POLICY, HARMONY_BASE_WRITE_POLICY, HARMONY_DEV_POLICY, KV_MOUNT,
    KV_PREFIX, base_policy_hcl, environment_policy_hcl, environment_policy_name,
    harmony_dev_policy_hcl,
};
pub use score::{OPENBAO_CHART, OPENBAO_REPO_NAME, OPENBAO_REPO_URL, OpenbaoScore};
pub use state::{InitKeys, StateDir};
pub use values::{
    API_PORT, AUDIT_DEVICE_PATH, AUDIT_FILE_PATH, CHART_VERSION, DataStorageValues,
    DisruptionBudgetValues, EnabledValues, GlobalValues, HaValues, IMAGE_TAG, ImageValues,
    IngressHost, IngressValues, InjectorValues, K3D_INGRESS_HOST, OpenbaoProfile, OpenbaoValues,
    ProbeValues, READINESS_PATH, RaftValues, ServerValues, UiValues, audit_device_hcl,
};
