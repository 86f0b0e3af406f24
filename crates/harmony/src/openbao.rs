//! OpenBao: Helm values for installing it, and (re-exported from the `harmony-openbao` crate,
//! which needs no Kubernetes) the bootstrap that initialises, unseals and configures it over
//! its HTTP API.
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

mod backup_cluster;
mod backup_schedule;
mod score;
mod values;

pub use backup_cluster::{
    AppliedBackups, FetchedSnapshot, MAX_FETCH_BYTES, PodExecFuture, PodOutput,
    READER_DEADLINE_SECONDS, READER_RUNNING_TIMEOUT, SnapshotEntry, apply_backup_schedule,
    backups_left_in_place, fetch_snapshot, fetch_snapshot_through, in_cluster_addr,
    is_snapshot_name, list_snapshots, list_snapshots_through, parse_listing, reader_pod,
};
pub use backup_schedule::{
    BACKUP_DIR, BACKUP_VOLUME_SIZE, BackupObjects, BackupSchedule, DEFAULT_BACKUP_KEEP,
    DEFAULT_BACKUP_SCHEDULE, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX, backup_objects, backup_script,
};
pub use harmony_openbao::*;
pub use score::{OPENBAO_CHART, OPENBAO_REPO_NAME, OPENBAO_REPO_URL, OpenbaoScore};
pub use values::{
    API_PORT, AUDIT_DEVICE_PATH, AUDIT_FILE_PATH, CHART_VERSION, DataStorageValues,
    DisruptionBudgetValues, EnabledValues, GlobalValues, HaValues, IMAGE_TAG, ImageValues,
    IngressHost, IngressValues, InjectorValues, K3D_INGRESS_HOST, OpenbaoProfile, OpenbaoValues,
    ProbeValues, READINESS_PATH, RaftValues, ServerValues, UiValues, audit_device_hcl,
};
