//! OpenBao without Kubernetes: the bootstrap that initialises, unseals and configures a server
//! over its HTTP API, its policies and roles, the local state directory, and [`target`] (which
//! OpenBao a command talks to). The deploy crate `harmony` installs OpenBao with Helm and calls
//! this bootstrap through a port-forward; the lean `harmony` CLI calls it directly.
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
//!
//! ```no_run
//! use harmony_openbao::{BootstrapOptions, OpenbaoBootstrap, StateDir};
//! # async fn demo() -> Result<(), harmony_openbao::OpenbaoError> {
//! let url = url::Url::parse("http://127.0.0.1:8200").expect("static URL");
//! let options = BootstrapOptions::local(StateDir::for_url(&url)?);
//! let report = OpenbaoBootstrap::new(&url, options)?.run().await?;
//! if report.nothing_changed() {
//!     tracing::info!("OpenBao already bootstrapped");
//! }
//! # Ok(()) }
//! ```

mod backup;
mod bootstrap;
mod error;
mod existing;
pub mod flags;
pub mod ingress;
mod policy;
mod state;
pub mod target;

pub use backup::{
    BACKUP_NAME, BACKUP_ROLE, BACKUP_TOKEN_AUDIENCE, BACKUP_TOKEN_TTL, BACKUP_TOKEN_TTL_SECONDS,
    HARMONY_BACKUP_POLICY, KUBERNETES_AUTH_MOUNT, backup_role, harmony_backup_policy_hcl,
    kubernetes_auth_config,
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
pub use state::{InitKeys, StateDir};
