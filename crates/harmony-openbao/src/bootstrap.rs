//! Initialise, unseal and configure an OpenBao over its HTTP API.
//!
//! The bootstrap is given a base URL, so the same code serves the port-forwarded in-cluster
//! server and an existing server the user points at. Each run converges:
//! - **init** only when the server says it is uninitialised; the keys and root token are saved
//!   (0600, atomic) *before* anything else happens, and the state directory is checked writable
//!   before `sys/init` is called, so keys are never returned by the server and then lost;
//! - **unseal** whenever sealed, with the saved keys; an initialised, sealed server without a
//!   keys file is an error, never a re-init;
//! - **configure** each piece by reading it, comparing it with what Harmony wants, and writing
//!   only when different; every write is reported in [`BootstrapReport::changes`], so a re-run
//!   reports nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harmony_secret::redact::json_error_detail;
use harmony_secret::{ClientOptions, OpenbaoClient, SecretError, TlsSettings};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;
use url::Url;

use super::OpenbaoError;
use super::backup::{
    BACKUP_NAME, BACKUP_ROLE, BACKUP_TOKEN_AUDIENCE, BACKUP_TOKEN_TTL_SECONDS,
    HARMONY_BACKUP_POLICY, KUBERNETES_AUTH_MOUNT, backup_role, harmony_backup_policy_hcl,
    kubernetes_auth_config,
};
use super::policy::{HARMONY_DEV_POLICY, KV_MOUNT, harmony_dev_policy_hcl};
use super::state::{self, InitKeys, StateDir};

mod admin;
mod ci;
mod environments;
mod ha;
pub use admin::{
    ADMIN_TOKEN_PERIOD, HARMONY_ADMIN_POLICY, RECOVERY_TOKEN_PERIOD, harmony_admin_policy_hcl,
};
pub use ci::{
    CI_TOKEN_TTL, CiIds, CiOptions, CiRefs, CiSpecError, CiTrust, GITHUB_ACTIONS_ISSUER,
    GITHUB_API_URL, GITLAB_COM_ISSUER, HARMONY_CI_POLICY, ci_policy_name,
    harmony_ci_environments_policy_hcl, harmony_ci_policy_hcl,
};
pub use environments::{
    ACCESS_DOCUMENT, AccessSpecError, AccessTable, DEFAULT_DEVELOPER_ROLE, DEFAULT_OPS_ROLE,
    HARMONY_USERPASS_POLICY, RoleAccess, ZITADEL_ROLES_CLAIM,
};
pub use ha::{ClusterReport, NodeReport, OpenbaoClusterBootstrap};
/// How long one ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// `sys/init` on raft storage can take several seconds (leader election before the barrier
/// is written), far longer than an ordinary request.
const INIT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long an unsealed server may take to become active (raft leader election).
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between two `sys/health` polls.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Default userpass user.
pub const DEFAULT_USERPASS_USER: &str = "harmony";
/// Default JWT auth role.
pub const DEFAULT_JWT_ROLE: &str = "harmony-developer";
/// Mount of the userpass auth method.
pub const USERPASS_MOUNT: &str = "userpass";
/// Mount of the JWT auth method.
pub const JWT_MOUNT: &str = "jwt";

/// What the bootstrap should do.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// Unseal key shares created at init (1 for a local cluster).
    pub shares: u8,
    /// Shares needed to unseal (1 for a local cluster).
    pub threshold: u8,
    /// Where the keys file and the userpass password file live.
    pub state_dir: StateDir,
    /// The userpass user to create (its password is generated and stored in `state_dir`).
    pub userpass_user: String,
    /// TTL of tokens issued to the userpass user.
    pub userpass_token_ttl: Duration,
    /// JWT auth (SSO); `None` leaves JWT auth alone.
    pub jwt: Option<JwtAuthOptions>,
    /// A token allowed to configure the server. Without it, the root token from the keys file is
    /// used; with neither, configuring is skipped.
    pub admin_token: Option<SecretString>,
    /// CI jobs allowed to read the team's config with their own OIDC identity; `None` leaves
    /// the CI mount alone.
    pub ci: Option<CiOptions>,
    /// Environments and access by role (`--environments`); `None`: one base for everyone, as
    /// without environments (a server where they were set up keeps them).
    pub environments: Option<AccessTable>,
    /// Once configured with the root token, hand over to a `harmony-admin` token and revoke the
    /// root token (production; off for a local cluster).
    pub revoke_root: bool,
    /// The namespace to configure (created when missing); `None`: the root namespace. Init and
    /// unseal always address the root.
    pub namespace: Option<String>,
    /// TLS settings for reaching the server (CA, client certificate, server name).
    pub tls: TlsSettings,
    /// Give the userpass user a new password even when it exists and this machine has no
    /// password file for it. Off by default: the password is shared by every machine that
    /// saved it, and a new one breaks their logins.
    pub reset_userpass: bool,
    /// Scheduled backups on Kubernetes: enable the Kubernetes auth method and the
    /// [`super::BACKUP_ROLE`] role the backup CronJob signs in with; `None` leaves them alone.
    pub kubernetes_backup: Option<KubernetesBackupAuth>,
    /// How many versions of each document the team's KV mount keeps (its `max_versions`;
    /// [`DEFAULT_KV_MAX_VERSIONS`]). Written when it differs.
    pub kv_max_versions: u32,
}

/// Where the backup CronJob runs, for OpenBao's Kubernetes auth method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesBackupAuth {
    /// The Kubernetes API OpenBao checks tokens with (`https://kubernetes.default.svc` in a pod).
    pub kubernetes_host: String,
    /// The namespace of the backup ServiceAccount ([`super::BACKUP_NAME`]).
    pub namespace: String,
    /// The PEM CA of `kubernetes_host`; `None` (in a pod): OpenBao reads its own
    /// service-account CA and token from the pod's mount and reviews tokens with that token.
    pub ca_cert: Option<String>,
}

impl KubernetesBackupAuth {
    /// The in-cluster API, as seen from the OpenBao pod.
    pub const IN_CLUSTER_HOST: &'static str = "https://kubernetes.default.svc";

    /// OpenBao in the cluster, the backup ServiceAccount in `namespace`: the in-cluster API,
    /// reached with the pod's own CA and token.
    pub fn in_cluster(namespace: &str) -> Self {
        Self {
            kubernetes_host: Self::IN_CLUSTER_HOST.to_owned(),
            namespace: namespace.to_owned(),
            ca_cert: None,
        }
    }
}

/// What a KV v2 mount answers while it upgrades its storage right after being enabled.
const KV_UPGRADING: &str = "Upgrading from non-versioned to versioned data";

/// The team KV mount's `max_versions` the bootstrap sets unless told otherwise (OpenBao's own
/// default, 10, silently cuts `history`, `diff` and `rollback` short).
pub const DEFAULT_KV_MAX_VERSIONS: u32 = 100;

impl BootstrapOptions {
    /// Local defaults: 1 share, threshold 1, user `harmony`, no JWT, no admin token, root
    /// namespace, system TLS roots, no password reset.
    pub fn local(state_dir: StateDir) -> Self {
        Self {
            shares: 1,
            threshold: 1,
            state_dir,
            userpass_user: DEFAULT_USERPASS_USER.to_owned(),
            userpass_token_ttl: Duration::from_secs(3600),
            jwt: None,
            admin_token: None,
            ci: None,
            environments: None,
            revoke_root: false,
            namespace: None,
            tls: TlsSettings::default(),
            reset_userpass: false,
            kubernetes_backup: None,
            kv_max_versions: DEFAULT_KV_MAX_VERSIONS,
        }
    }

    /// Namespace and TLS settings from a variable lookup (`BAO_NAMESPACE`, `BAO_CACERT`, ...;
    /// see [`harmony_secret::ClientOptions::from_lookup`]).
    pub fn with_connection_from_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, OpenbaoError> {
        let options = ClientOptions::from_lookup(lookup).map_err(OpenbaoError::Client)?;
        self.tls = options.tls;
        self.namespace = options.namespace;
        Ok(self)
    }
}

/// JWT auth method settings: which issuer OpenBao trusts, and the role people log in with.
///
/// Who may log in is decided by the provider (which users it issues id_tokens to for the
/// client: with Zitadel, the project's role check) and by the role's bounds here: `aud` must
/// hold one of `bound_audiences`, `iss` must equal the issuer (`bound_issuer`), and every entry
/// of `bound_claims` must match. The role sets no `groups_claim`: Zitadel's roles claim
/// (`urn:zitadel:iam:org:project:roles`) is a map of role → organisations, and OpenBao only
/// accepts a list (or a string) there, so pointing `groups_claim` at it makes every login fail.
/// Bind a role with `bound_claims` on a claim that is a string or a list of strings instead.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtAuthOptions {
    /// The OIDC issuer; it must equal the id_tokens' `iss` exactly, and OpenBao fetches its
    /// discovery document when the config is written, so it must be reachable *from OpenBao*.
    /// It is also written as the config's `bound_issuer`, so OpenBao checks `iss` at login.
    pub oidc_discovery_url: Url,
    /// Role name (also the config's `default_role`).
    pub role: String,
    /// Accepted `aud` values (at least one: OpenBao requires a bound on JWT roles).
    pub bound_audiences: Vec<String>,
    /// Claims an id_token must carry with exactly these values (`bound_claims`, string match;
    /// a list claim matches when it contains the value). Empty: no claim is required.
    pub bound_claims: BTreeMap<String, String>,
    /// The claim that names the user, e.g. `sub` or `email`.
    pub user_claim: String,
    /// TTL of tokens issued through the role.
    pub token_ttl: Duration,
}

impl JwtAuthOptions {
    /// Role [`DEFAULT_JWT_ROLE`] for an OIDC issuer, `user_claim` `sub`, 1 h tokens.
    pub fn oidc(discovery_url: Url, bound_audiences: Vec<String>) -> Self {
        Self {
            oidc_discovery_url: discovery_url,
            role: DEFAULT_JWT_ROLE.to_owned(),
            bound_audiences,
            bound_claims: BTreeMap::new(),
            user_claim: "sub".to_owned(),
            token_ttl: Duration::from_secs(3600),
        }
    }
}

/// What a bootstrap run did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootstrapReport {
    /// The server was uninitialised and this run initialised it.
    pub initialised: bool,
    /// The server was sealed and this run unsealed it.
    pub unsealed: bool,
    /// Whether the configuration steps ran (false: no admin token and no keys file).
    pub configured: bool,
    /// One line per configuration write; empty when everything was already as wanted.
    pub changes: Vec<String>,
    /// Why configuring was skipped, when it was.
    pub skipped: Option<String>,
    /// What the person running it should know without anything having changed (e.g. an
    /// existing userpass user whose password this machine does not have).
    pub notes: Vec<String>,
    /// The access table as recorded on the server ([`ACCESS_DOCUMENT`]) after this run: the
    /// one declared now or by an earlier run; `None` without environments (or unconfigured).
    pub access: Option<AccessTable>,
}

impl BootstrapReport {
    /// True when the run changed nothing at all (no init, no unseal, no writes).
    pub fn nothing_changed(&self) -> bool {
        !self.initialised && !self.unsealed && self.changes.is_empty()
    }
}

#[derive(Debug, Deserialize)]
struct SealStatus {
    initialized: bool,
    sealed: bool,
    #[serde(default)]
    t: u64,
}

/// Brings one OpenBao to Harmony's wanted state. See the module docs.
#[derive(Debug)]
pub struct OpenbaoBootstrap {
    /// The one OpenBao client (harmony-secret's), in the options' namespace, without a token.
    client: OpenbaoClient,
    options: BootstrapOptions,
}

impl OpenbaoBootstrap {
    /// A bootstrap for the server at `url`, through [`OpenbaoClient::build`] with the options'
    /// TLS settings and namespace.
    pub fn new(url: &Url, options: BootstrapOptions) -> Result<Self, OpenbaoError> {
        let base = checked_base(url)?;
        let client = OpenbaoClient::build(
            &base,
            &ClientOptions::default()
                .with_tls(options.tls.clone())
                .with_namespace(options.namespace.clone())
                .with_timeout(REQUEST_TIMEOUT),
        )
        .map_err(OpenbaoError::Client)?;
        Ok(Self { client, options })
    }

    /// A bootstrap using the given HTTP client (it should not follow redirects; each request
    /// still gets its own timeout). The options' TLS settings are not applied: the client's own
    /// are.
    pub fn with_http_client(
        url: &Url,
        http: reqwest::Client,
        options: BootstrapOptions,
    ) -> Result<Self, OpenbaoError> {
        let client = OpenbaoClient::new(checked_base(url)?, http)
            .with_namespace(options.namespace.clone())
            .with_timeout(REQUEST_TIMEOUT);
        Ok(Self { client, options })
    }

    fn url(&self) -> String {
        self.client.url().to_owned()
    }

    /// The one mapping of the client's errors to the bootstrap's, adding the method and path.
    fn api_error(&self, method: &Method, path: &str, e: SecretError) -> OpenbaoError {
        let (url, method, path) = (self.url(), method.to_string(), format!("/v1/{path}"));
        match e {
            SecretError::PermissionDenied { message, .. } => OpenbaoError::PermissionDenied {
                url,
                method,
                path,
                message,
            },
            SecretError::BadResponse {
                status: 0, message, ..
            } => OpenbaoError::Decode {
                url,
                method,
                path,
                message,
            },
            SecretError::BadResponse {
                status, message, ..
            } => OpenbaoError::Server {
                url,
                method,
                path,
                status,
                message,
            },
            SecretError::NotFound { .. } => OpenbaoError::Server {
                url,
                method,
                path,
                status: 404,
                message: "nothing found at this path".to_owned(),
            },
            SecretError::Sealed { .. } => OpenbaoError::Server {
                url,
                method,
                path,
                status: 503,
                message: "OpenBao is sealed".to_owned(),
            },
            e @ SecretError::Unreachable { .. } => OpenbaoError::Unreachable {
                url,
                method,
                path,
                source: Box::new(e),
            },
            other => OpenbaoError::Client(other),
        }
    }

    fn decode_error(
        &self,
        method: &Method,
        path: &str,
        message: impl Into<String>,
    ) -> OpenbaoError {
        OpenbaoError::Decode {
            url: self.url(),
            method: method.to_string(),
            path: format!("/v1/{path}"),
            message: message.into(),
        }
    }

    /// A read: `Ok(None)` when OpenBao says 404; `Some(Value::Null)` for an empty answer.
    async fn read(
        &self,
        path: &str,
        token: Option<&SecretString>,
    ) -> Result<Option<Value>, OpenbaoError> {
        let client = match token {
            Some(token) => self.client.clone().with_token(token.clone()),
            None => self.client.clone(),
        };
        match client.get(path).await {
            Ok(body) => Ok(Some(body.unwrap_or(Value::Null))),
            Err(SecretError::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.api_error(&Method::GET, path, e)),
        }
    }

    /// A write (`POST`/`PUT`/`DELETE`); the body of the answer (`Value::Null` when empty).
    async fn write(
        &self,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, OpenbaoError> {
        let mut client = self.client.clone().with_timeout(timeout);
        if let Some(token) = token {
            client = client.with_token(token.clone());
        }
        client
            .request(method.clone(), path, Some(body))
            .await
            .map(|b| b.unwrap_or(Value::Null))
            .map_err(|e| self.api_error(&method, path, e))
    }

    /// Init if needed, unseal if sealed, wait until active, then configure. See the module docs.
    pub async fn run(&self) -> Result<BootstrapReport, OpenbaoError> {
        let span = tracing::info_span!("openbao_bootstrap", url = %self.client.url());
        async {
            let mut report = BootstrapReport::default();
            let status = self.seal_status().await?;
            let keys_file = self.options.state_dir.keys_file();
            let mut keys = state::load_keys(keys_file.clone()).await?;
            if !status.initialized {
                keys = Some(self.init(keys.is_some()).await?);
                report.initialised = true;
            }
            let status = if report.initialised {
                self.seal_status().await?
            } else {
                status
            };
            if status.sealed {
                let Some(keys) = keys.as_ref() else {
                    return Err(OpenbaoError::InitialisedElsewhere {
                        url: self.url(),
                        keys_file,
                    });
                };
                self.submit_keys(keys, status.t).await?;
                report.unsealed = true;
            }
            self.wait_active().await?;

            let root = keys.map(|k| k.root_token);
            let token = self
                .configuring_token(root.clone(), report.initialised)
                .await?;
            match token {
                Some((token, is_root)) => {
                    report.changes = self.configure(&token, &mut report.notes).await?;
                    // Read before the root token may be retired below.
                    report.access = self.recorded_access(&token).await?;
                    report.changes.extend(
                        self.after_configure(is_root, &token, root, &mut report.notes)
                            .await?,
                    );
                    report.configured = true;
                }
                None => {
                    let why = format!(
                        "no admin token given and no keys file at {}: configuration left as it is",
                        keys_file.display()
                    );
                    tracing::info!("{why}");
                    report.skipped = Some(why);
                }
            }
            tracing::info!(
                initialised = report.initialised,
                unsealed = report.unsealed,
                changes = report.changes.len(),
                "OpenBao bootstrap done"
            );
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// The root token's end once configured: hand over when configured with it, else finish a
    /// hand-over a previous run left half done (the saved admin token in use, root still valid).
    async fn after_configure(
        &self,
        is_root: bool,
        token: &SecretString,
        root: Option<SecretString>,
        notes: &mut Vec<String>,
    ) -> Result<Vec<String>, OpenbaoError> {
        if !self.options.revoke_root {
            return Ok(Vec::new());
        }
        if is_root {
            return self.retire_root(token, &[]).await;
        }
        // The admin token cannot rewrite its own policy: one written by an older version stays
        // until a root token writes it again.
        let path = format!("sys/policies/acl/{HARMONY_ADMIN_POLICY}");
        if let Ok(Some(current)) = self.read_data(token, &path).await
            && current["policy"].as_str() != Some(harmony_admin_policy_hcl().as_str())
        {
            notes.push(format!(
                "the {HARMONY_ADMIN_POLICY} policy on the server differs from this version's (it \
                 cannot rewrite itself); run the bootstrap with --regenerate-root to apply it"
            ));
        }
        match root {
            // Only with the saved admin token: a token given by the caller says nothing about
            // this machine's hand-over.
            Some(root) if self.options.admin_token.is_none() => self.finish_hand_over(&root).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Only unseal (e.g. an HA follower pod): returns whether the server was sealed. Never
    /// initialises: a raft follower that joins through `retry_join` reports itself sealed (and
    /// possibly uninitialised) until it is given the leader's keys.
    pub async fn unseal(&self) -> Result<bool, OpenbaoError> {
        let span = tracing::info_span!("openbao_unseal", url = %self.client.url());
        async {
            let status = self.seal_status().await?;
            if !status.sealed {
                return Ok(false);
            }
            let keys_file = self.options.state_dir.keys_file();
            let Some(keys) = state::load_keys(keys_file.clone()).await? else {
                return Err(OpenbaoError::InitialisedElsewhere {
                    url: self.url(),
                    keys_file,
                });
            };
            self.submit_keys(&keys, status.t).await?;
            Ok(true)
        }
        .instrument(span)
        .await
    }

    async fn seal_status(&self) -> Result<SealStatus, OpenbaoError> {
        let path = "sys/seal-status";
        let body = self
            .read(path, None)
            .await?
            .ok_or_else(|| self.decode_error(&Method::GET, path, "404 Not Found"))?;
        let status: SealStatus = serde_json::from_value(body)
            .map_err(|e| self.decode_error(&Method::GET, path, json_error_detail(&e)))?;
        tracing::debug!(
            initialized = status.initialized,
            sealed = status.sealed,
            "seal status"
        );
        Ok(status)
    }

    #[tracing::instrument(name = "openbao_init", skip_all)]
    async fn init(&self, stale_keys_file: bool) -> Result<InitKeys, OpenbaoError> {
        let keys_file = self.options.state_dir.keys_file();
        if stale_keys_file {
            // The server is new (e.g. a recreated cluster with the same name) but keys of an
            // older one are on disk: keep them aside rather than overwrite them.
            let aside = keys_file.with_extension(format!("stale-{}.json", unix_now()));
            tokio::fs::rename(&keys_file, &aside)
                .await
                .map_err(|source| OpenbaoError::StateIo {
                    context: "cannot move the keys file of a previous server aside",
                    path: keys_file.clone(),
                    source,
                })?;
            tracing::warn!(
                kept_at = %aside.display(),
                "the server is uninitialised but a keys file existed; moved it aside"
            );
        }
        state::ensure_writable_dir(self.options.state_dir.path().to_owned()).await?;
        tracing::info!(
            shares = self.options.shares,
            threshold = self.options.threshold,
            "initialising OpenBao"
        );
        let path = "sys/init";
        let body = self
            .write(
                Method::PUT,
                path,
                None,
                &json!({
                    "secret_shares": self.options.shares,
                    "secret_threshold": self.options.threshold,
                }),
                INIT_TIMEOUT,
            )
            .await?;
        let keys = parse_init_answer(body)
            .ok_or_else(|| self.decode_error(&Method::PUT, path, "no keys_base64 or root_token"))?;
        state::save_keys(keys_file.clone(), self.url(), &keys).await?;
        tracing::info!(keys_file = %keys_file.display(), "OpenBao initialised; keys saved");
        Ok(keys)
    }

    #[tracing::instrument(name = "openbao_unseal_keys", skip_all)]
    async fn submit_keys(&self, keys: &InitKeys, threshold: u64) -> Result<(), OpenbaoError> {
        let path = "sys/unseal";
        // Start from zero: a half-finished unseal from elsewhere would mix with our keys.
        self.write(
            Method::PUT,
            path,
            None,
            &json!({"reset": true}),
            REQUEST_TIMEOUT,
        )
        .await?;
        tracing::info!(keys = keys.keys_base64.len(), "unsealing OpenBao");
        for key in &keys.keys_base64 {
            let body = self
                .write(
                    Method::PUT,
                    path,
                    None,
                    &json!({"key": key.expose_secret()}),
                    REQUEST_TIMEOUT,
                )
                .await?;
            let status: SealStatus = serde_json::from_value(body)
                .map_err(|e| self.decode_error(&Method::PUT, path, json_error_detail(&e)))?;
            if !status.sealed {
                tracing::info!("OpenBao unsealed");
                return Ok(());
            }
        }
        Err(OpenbaoError::StillSealed {
            url: self.url(),
            keys_file: self.options.state_dir.keys_file(),
            submitted: keys.keys_base64.len(),
            threshold,
        })
    }

    /// Polls `sys/health` until the server is active (200), or a standby (429) that knows its
    /// leader.
    #[tracing::instrument(name = "openbao_wait_active", skip_all)]
    async fn wait_active(&self) -> Result<(), OpenbaoError> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        let mut last_status = 0;
        let mut logged = false;
        loop {
            match self.client.health().await {
                Ok(health) if health.status == 200 => return Ok(()),
                // A standby is fine once it knows the leader: it forwards our writes there.
                // Right after unsealing, a raft node is briefly a standby with no leader.
                Ok(health) if health.status == 429 && self.leader_known().await => {
                    return Ok(());
                }
                Ok(health) => last_status = health.status,
                Err(e) => tracing::debug!(error = %e, "sys/health not answering yet"),
            }
            if !logged {
                tracing::info!(
                    last_status,
                    timeout_s = ACTIVE_TIMEOUT.as_secs(),
                    "waiting for OpenBao to become active"
                );
                logged = true;
            }
            if Instant::now() >= deadline {
                return Err(OpenbaoError::NotActive {
                    url: self.url(),
                    seconds: ACTIVE_TIMEOUT.as_secs(),
                    last_status,
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn leader_known(&self) -> bool {
        match self.read("sys/leader", None).await {
            Ok(Some(body)) => body["leader_address"]
                .as_str()
                .is_some_and(|a| !a.is_empty()),
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(error = %e, "sys/leader not answering yet");
                false
            }
        }
    }

    #[tracing::instrument(name = "openbao_configure", skip_all)]
    async fn configure(
        &self,
        token: &SecretString,
        notes: &mut Vec<String>,
    ) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = Vec::new();
        let mut note = |change: Option<String>| {
            if let Some(change) = change {
                tracing::info!(change = %change, "OpenBao configuration changed");
                changes.push(change);
            }
        };
        note(self.ensure_namespace(token).await?);
        note(self.ensure_kv_v2(token).await?);
        note(self.ensure_kv_max_versions(token).await?);
        note(
            self.ensure_policy(token, HARMONY_DEV_POLICY, harmony_dev_policy_hcl())
                .await?,
        );
        // Raft snapshots are a root-namespace endpoint: in a namespace the policy would grant
        // nothing.
        if self.client.namespace().is_none() {
            note(
                self.ensure_policy(token, HARMONY_BACKUP_POLICY, harmony_backup_policy_hcl())
                    .await?,
            );
        }
        note(
            self.ensure_auth_mount(token, USERPASS_MOUNT, "userpass")
                .await?,
        );
        // With environments (declared now or by an earlier run), the userpass demo user gets
        // the developers' access, not every environment.
        let declared = match &self.options.environments {
            Some(table) => Some(table.clone()),
            None => self.recorded_access(token).await?,
        };
        let userpass_policy = match &declared {
            Some(table) => {
                note(
                    self.ensure_policy(token, HARMONY_USERPASS_POLICY, table.userpass_policy_hcl())
                        .await?,
                );
                HARMONY_USERPASS_POLICY
            }
            None => HARMONY_DEV_POLICY,
        };
        note(
            self.ensure_userpass_user(token, notes, userpass_policy)
                .await?,
        );
        if let Some(jwt) = &self.options.jwt {
            note(self.ensure_auth_mount(token, JWT_MOUNT, "jwt").await?);
            note(self.ensure_jwt_config(token, jwt).await?);
            if self.options.environments.is_none() {
                // A re-run without --environments must not reopen every environment by
                // recreating the classic role.
                if self.cel_role_exists(token, &jwt.role).await? {
                    notes.push(format!(
                        "sign-in role {} gives policies by role (environments were set up);                          pass --environments to change them",
                        jwt.role
                    ));
                } else {
                    note(self.ensure_jwt_role(token, jwt).await?);
                }
            }
        }
        if let Some(table) = &self.options.environments {
            for change in self
                .ensure_environments(token, table, self.options.jwt.as_ref())
                .await?
            {
                note(Some(change));
            }
        }
        if let Some(ci) = &self.options.ci {
            // The environments declared now, or by an earlier run (its access record).
            let declared = match &self.options.environments {
                Some(table) => Some(table.environments.clone()),
                None => self.declared_environments(token).await?,
            };
            for change in self.ensure_ci(token, ci, declared.as_deref()).await? {
                note(Some(change));
            }
        }
        if let Some(k8s) = &self.options.kubernetes_backup
            && self.client.namespace().is_some()
        {
            notes.push(format!(
                "scheduled backups sign in at the root namespace (raft snapshots are a root \
                 endpoint): the Kubernetes auth role for {}/{BACKUP_NAME} was not written in a \
                 namespace",
                k8s.namespace
            ));
        } else if let Some(k8s) = &self.options.kubernetes_backup {
            note(
                self.ensure_auth_mount(token, KUBERNETES_AUTH_MOUNT, "kubernetes")
                    .await?,
            );
            note(self.ensure_kubernetes_backup(token, k8s).await?);
        }
        Ok(changes)
    }

    /// One configuration write of the CI trust.
    async fn write_ci(
        &self,
        token: &SecretString,
        path: &str,
        body: &Value,
    ) -> Result<(), OpenbaoError> {
        self.write(Method::POST, path, Some(token), body, REQUEST_TIMEOUT)
            .await?;
        Ok(())
    }

    /// Creates the options' namespace when it does not exist yet (at the root namespace).
    #[tracing::instrument(name = "openbao_namespace", skip_all)]
    async fn ensure_namespace(&self, token: &SecretString) -> Result<Option<String>, OpenbaoError> {
        let Some(namespace) = self.client.namespace().map(str::to_owned) else {
            return Ok(None);
        };
        let path = format!("sys/namespaces/{namespace}");
        if self.read(&path, Some(token)).await?.is_some() {
            return Ok(None);
        }
        self.write(
            Method::POST,
            &path,
            Some(token),
            &json!({}),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(Some(format!("created namespace {namespace}")))
    }

    #[tracing::instrument(name = "openbao_kv_v2", skip_all)]
    async fn ensure_kv_v2(&self, token: &SecretString) -> Result<Option<String>, OpenbaoError> {
        let mounts = self.read_data(token, "sys/mounts").await?;
        let key = format!("{KV_MOUNT}/");
        match mounts.as_ref().and_then(|m| m.get(&key)) {
            None => {
                self.write(
                    Method::POST,
                    &format!("sys/mounts/{KV_MOUNT}"),
                    Some(token),
                    &json!({"type": "kv", "options": {"version": "2"}}),
                    REQUEST_TIMEOUT,
                )
                .await?;
                self.wait_kv_upgraded(token).await?;
                Ok(Some(format!("enabled the KV v2 secrets engine at {key}")))
            }
            Some(mount) => {
                let kind = mount["type"].as_str().unwrap_or_default();
                let version = mount["options"]["version"].as_str().unwrap_or("1");
                if kind == "kv" && version == "2" {
                    Ok(None)
                } else {
                    Err(OpenbaoError::MountConflict {
                        url: self.url(),
                        path: key,
                        found: format!("{kind} (version {version})"),
                        wanted: "kv version 2".into(),
                    })
                }
            }
        }
    }

    /// The team KV mount's `max_versions` (`<mount>/config`), written only when it differs.
    #[tracing::instrument(name = "openbao_kv_max_versions", skip_all)]
    async fn ensure_kv_max_versions(
        &self,
        token: &SecretString,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = format!("{KV_MOUNT}/config");
        let wanted = u64::from(self.options.kv_max_versions);
        // A mount enabled just now has finished its upgrade (`ensure_kv_v2` waits for it).
        let current = self
            .read_data(token, &path)
            .await?
            .and_then(|d| d["max_versions"].as_u64())
            .unwrap_or(0);
        if current == wanted {
            return Ok(None);
        }
        self.write(
            Method::POST,
            &path,
            Some(token),
            &json!({ "max_versions": wanted }),
            REQUEST_TIMEOUT,
        )
        .await?;
        let was = if current == 0 {
            "0: OpenBao's default of 10".to_owned()
        } else {
            current.to_string()
        };
        Ok(Some(format!(
            "set max_versions = {wanted} on the KV mount {KV_MOUNT}/ (was {was})"
        )))
    }

    /// A KV v2 mount just enabled answers reads with HTTP 400 "Upgrading from non-versioned
    /// to versioned data" for a moment (seen on bao 2.7.2 under load): wait until a read of the
    /// access record answers, at most 50 times 200 ms apart.
    async fn wait_kv_upgraded(&self, token: &SecretString) -> Result<(), OpenbaoError> {
        let path = format!(
            "{KV_MOUNT}/data/{}/{ACCESS_DOCUMENT}",
            super::policy::KV_PREFIX
        );
        let mut attempt = 1;
        loop {
            match self.read_data(token, &path).await {
                Err(OpenbaoError::Server {
                    status: 400,
                    ref message,
                    ..
                }) if message.contains(KV_UPGRADING) && attempt < 50 => {
                    tracing::info!(
                        attempt,
                        "waiting for the new KV v2 mount to finish its upgrade"
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    #[tracing::instrument(name = "openbao_policy", skip_all)]
    async fn ensure_policy(
        &self,
        token: &SecretString,
        name: &str,
        wanted: String,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = format!("sys/policies/acl/{name}");
        let current = self.read_data(token, &path).await?;
        if current.as_ref().and_then(|d| d["policy"].as_str()) == Some(wanted.as_str()) {
            return Ok(None);
        }
        self.write(
            Method::PUT,
            &path,
            Some(token),
            &json!({"policy": wanted}),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(Some(if current.is_some() {
            format!("updated policy {name}")
        } else {
            format!("created policy {name}")
        }))
    }

    #[tracing::instrument(name = "openbao_auth_mount", skip(self, token))]
    async fn ensure_auth_mount(
        &self,
        token: &SecretString,
        mount: &str,
        kind: &str,
    ) -> Result<Option<String>, OpenbaoError> {
        let auths = self.read_data(token, "sys/auth").await?;
        let key = format!("{mount}/");
        match auths.as_ref().and_then(|a| a.get(&key)) {
            Some(existing) if existing["type"].as_str() == Some(kind) => Ok(None),
            Some(existing) => Err(OpenbaoError::MountConflict {
                url: self.url(),
                path: format!("auth/{key}"),
                found: existing["type"].as_str().unwrap_or("unknown").to_owned(),
                wanted: kind.to_owned(),
            }),
            None => {
                self.write(
                    Method::POST,
                    &format!("sys/auth/{mount}"),
                    Some(token),
                    &json!({"type": kind}),
                    REQUEST_TIMEOUT,
                )
                .await?;
                Ok(Some(format!(
                    "enabled the {kind} auth method at auth/{key}"
                )))
            }
        }
    }

    #[tracing::instrument(name = "openbao_userpass_user", skip_all, fields(user = %self.options.userpass_user))]
    async fn ensure_userpass_user(
        &self,
        token: &SecretString,
        notes: &mut Vec<String>,
        policy: &str,
    ) -> Result<Option<String>, OpenbaoError> {
        let user = &self.options.userpass_user;
        let path = format!("auth/{USERPASS_MOUNT}/users/{user}");
        let ttl = self.options.userpass_token_ttl.as_secs();
        // One policy as a string: harmony-admin may send `token_policies` only so (OpenBao
        // compares a JSON list with its allowed values as a whole, never item by item).
        let settings = json!({"token_policies": policy, "token_ttl": ttl});
        let password_file = self.options.state_dir.userpass_file(user);
        let stored = state::load_password(password_file.clone(), user.clone()).await?;
        let current = self.read_data(token, &path).await?;

        let (password, change) = match (&current, stored) {
            // Exists, and either this machine has its password or it must not be changed: only
            // the settings converge. A password reset here would break the login every other
            // machine saved.
            (Some(current), stored) if stored.is_some() || !self.options.reset_userpass => {
                if stored.is_none() {
                    notes.push(format!(
                        "userpass user {user} already exists and this machine has no password file \
                         for it at {file}; its password was left unchanged, so the machines that \
                         saved it keep working. To sign in from here, copy {file} from the machine \
                         that ran the first bootstrap, or use a token ({token_var}) or SSO; \
                         --reset-userpass sets a new password here instead (every other machine's \
                         saved login then stops working)",
                        file = password_file.display(),
                        token_var = harmony_env::vars::OPENBAO_TOKEN,
                    ));
                }
                if same_strings(&current["token_policies"], &[policy])
                    && current["token_ttl"].as_u64() == Some(ttl)
                {
                    return Ok(None);
                }
                self.write(Method::POST, &path, Some(token), &settings, REQUEST_TIMEOUT)
                    .await?;
                return Ok(Some(format!(
                    "updated the settings of userpass user {user}"
                )));
            }
            (None, Some(password)) => (password, format!("created userpass user {user}")),
            // Absent with no saved password, or a reset asked for.
            (current, _) => {
                let password = state::generate_password();
                // Saved before OpenBao learns it: a failed save must not leave an unknown password.
                state::save_password(password_file.clone(), user, &password).await?;
                let change = if current.is_some() {
                    format!(
                        "reset the password of userpass user {user} (no password file was at {})",
                        password_file.display()
                    )
                } else {
                    format!("created userpass user {user}")
                };
                (password, change)
            }
        };
        let mut body = settings;
        body["password"] = Value::String(password.expose_secret().to_owned());
        let written = self
            .write(Method::POST, &path, Some(token), &body, REQUEST_TIMEOUT)
            .await;
        if let Value::Object(map) = &mut body
            && let Some(Value::String(pw)) = map.get_mut("password")
        {
            secrecy::zeroize::Zeroize::zeroize(pw);
        }
        written?;
        Ok(Some(change))
    }

    #[tracing::instrument(name = "openbao_jwt_config", skip_all)]
    async fn ensure_jwt_config(
        &self,
        token: &SecretString,
        jwt: &JwtAuthOptions,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = format!("auth/{JWT_MOUNT}/config");
        let current = self.read_data(token, &path).await?;
        let issuer = issuer_string(&jwt.oidc_discovery_url);
        if let Some(c) = &current
            && c["oidc_discovery_url"].as_str() == Some(issuer.as_str())
            && c["bound_issuer"].as_str() == Some(issuer.as_str())
            && c["default_role"].as_str() == Some(jwt.role.as_str())
            && is_empty_or_absent(&c["jwt_validation_pubkeys"])
            && is_empty_or_absent(&c["jwks_url"])
        {
            return Ok(None);
        }
        // A config write replaces the whole config, so other key sources are cleared with it.
        let wanted = json!({
            "oidc_discovery_url": issuer,
            "bound_issuer": issuer,
            "default_role": jwt.role,
        });
        self.write(Method::POST, &path, Some(token), &wanted, REQUEST_TIMEOUT)
            .await?;
        Ok(Some(format!(
            "wrote the JWT auth config at auth/{JWT_MOUNT}/config"
        )))
    }

    #[tracing::instrument(name = "openbao_jwt_role", skip_all, fields(role = %jwt.role))]
    async fn ensure_jwt_role(
        &self,
        token: &SecretString,
        jwt: &JwtAuthOptions,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = format!("auth/{JWT_MOUNT}/role/{}", jwt.role);
        let ttl = jwt.token_ttl.as_secs();
        let current = self.read_data(token, &path).await?;
        if let Some(c) = &current {
            let audiences: Vec<&str> = jwt.bound_audiences.iter().map(String::as_str).collect();
            if c["role_type"].as_str() == Some("jwt")
                && same_strings(&c["bound_audiences"], &audiences)
                && c["user_claim"].as_str() == Some(jwt.user_claim.as_str())
                && same_claims(&c["bound_claims"], &jwt.bound_claims)
                && same_strings(&c["token_policies"], &[HARMONY_DEV_POLICY])
                && c["token_ttl"].as_u64() == Some(ttl)
                && c["claim_mappings"] == jwt_claim_mappings()
            {
                return Ok(None);
            }
        }
        self.write(
            Method::POST,
            &path,
            Some(token),
            &json!({
                "role_type": "jwt",
                "bound_audiences": jwt.bound_audiences,
                // Always sent: an update keeps fields it omits, so an empty map is what
                // removes a claim bound earlier.
                "bound_claims": jwt.bound_claims,
                "bound_claims_type": "string",
                "user_claim": jwt.user_claim,
                // A string, as harmony-admin may send it (see ensure_userpass_user).
                "token_policies": HARMONY_DEV_POLICY,
                "token_ttl": ttl,
                // The e-mail into the token's metadata: the readable name of the author
                // records of config versions (the user claim may be an opaque id).
                "claim_mappings": jwt_claim_mappings(),
            }),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(Some(if current.is_some() {
            format!("updated JWT role {}", jwt.role)
        } else {
            format!("created JWT role {}", jwt.role)
        }))
    }

    /// The Kubernetes auth config and the backup role (written only when they differ).
    #[tracing::instrument(name = "openbao_kubernetes_backup", skip_all)]
    async fn ensure_kubernetes_backup(
        &self,
        token: &SecretString,
        k8s: &KubernetesBackupAuth,
    ) -> Result<Option<String>, OpenbaoError> {
        let mut changed = Vec::new();
        let config_path = format!("auth/{KUBERNETES_AUTH_MOUNT}/config");
        let current = self.read_data(token, &config_path).await?;
        let same_config = current.as_ref().is_some_and(|c| {
            c["kubernetes_host"].as_str() == Some(k8s.kubernetes_host.as_str())
                && c["disable_local_ca_jwt"].as_bool() == Some(false)
                && k8s.ca_cert.as_deref().is_none_or(|ca| {
                    c["kubernetes_ca_cert"].as_str().map(str::trim) == Some(ca.trim())
                })
        });
        if !same_config {
            self.write(
                Method::POST,
                &config_path,
                Some(token),
                &kubernetes_auth_config(&k8s.kubernetes_host, k8s.ca_cert.as_deref()),
                REQUEST_TIMEOUT,
            )
            .await?;
            changed.push(format!("wrote the Kubernetes auth config at {config_path}"));
        }
        let role_path = format!("auth/{KUBERNETES_AUTH_MOUNT}/role/{BACKUP_ROLE}");
        let current = self.read_data(token, &role_path).await?;
        let same = current.as_ref().is_some_and(|c| {
            same_strings(&c["bound_service_account_names"], &[BACKUP_NAME])
                && same_strings(
                    &c["bound_service_account_namespaces"],
                    &[k8s.namespace.as_str()],
                )
                && same_strings(&c["token_policies"], &[HARMONY_BACKUP_POLICY])
                && c["audience"].as_str() == Some(BACKUP_TOKEN_AUDIENCE)
                // A widened role (longer tokens, the default policy) is put back.
                && c["token_no_default_policy"].as_bool() == Some(true)
                && c["token_ttl"].as_u64() == Some(BACKUP_TOKEN_TTL_SECONDS)
                && c["token_max_ttl"].as_u64() == Some(BACKUP_TOKEN_TTL_SECONDS)
        });
        if !same {
            self.write(
                Method::POST,
                &role_path,
                Some(token),
                &backup_role(&k8s.namespace),
                REQUEST_TIMEOUT,
            )
            .await?;
            changed.push(format!("wrote the Kubernetes auth role {role_path}"));
        }
        Ok((!changed.is_empty()).then(|| changed.join("; ")))
    }

    /// GET `path` and return its `data` (the whole body when there is no `data` key); `None`
    /// when absent (404 or `data: null`).
    async fn read_data(
        &self,
        token: &SecretString,
        path: &str,
    ) -> Result<Option<Value>, OpenbaoError> {
        Ok(self.read(path, Some(token)).await?.and_then(|mut body| {
            match body.get_mut("data").map(Value::take) {
                Some(Value::Null) => None,
                Some(data) => Some(data),
                None => (!body.is_null()).then_some(body),
            }
        }))
    }
}

/// The URL as the client wants it: http(s), with a host, no query or fragment, no trailing `/`.
fn checked_base(url: &Url) -> Result<String, OpenbaoError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OpenbaoError::InvalidUrl {
            url: url.to_string(),
            reason: "the scheme must be http or https".into(),
        });
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(OpenbaoError::InvalidUrl {
            url: url.to_string(),
            reason: "it has no host".into(),
        });
    }
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    Ok(base.as_str().trim_end_matches('/').to_owned())
}

fn parse_init_answer(body: Value) -> Option<InitKeys> {
    let keys: Vec<SecretString> = body
        .get("keys_base64")?
        .as_array()?
        .iter()
        .filter_map(|k| k.as_str().map(|s| SecretString::from(s.to_owned())))
        .collect();
    let root = body.get("root_token")?.as_str()?;
    (!keys.is_empty() && !root.is_empty()).then(|| InitKeys {
        keys_base64: keys,
        root_token: SecretString::from(root.to_owned()),
    })
}

/// The issuer as OpenBao compares it: `Url` adds a `/` to a bare host, which `iss` lacks.
fn issuer_string(url: &Url) -> String {
    let s = url.as_str();
    if url.path() == "/" && url.query().is_none() {
        s.trim_end_matches('/').to_owned()
    } else {
        s.to_owned()
    }
}

/// Whether the role's `bound_claims` as OpenBao reports it (`null` when none) are `wanted`.
/// The classic JWT role's `claim_mappings`: the ID token's `email` (when it has one; a missing
/// claim is skipped) into the token's metadata.
fn jwt_claim_mappings() -> Value {
    json!({ "email": "email" })
}

fn same_claims(current: &Value, wanted: &BTreeMap<String, String>) -> bool {
    match current {
        Value::Null => wanted.is_empty(),
        Value::Object(map) => {
            map.len() == wanted.len()
                && wanted.iter().all(|(k, v)| match &map.get(k) {
                    Some(Value::String(s)) => s == v,
                    // OpenBao may keep a single value as a one-element list.
                    Some(Value::Array(items)) => items.len() == 1 && items[0] == v.as_str(),
                    _ => false,
                })
        }
        _ => false,
    }
}

fn is_empty_or_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Whether a JSON list of strings holds exactly `wanted` (order ignored).
fn same_strings(v: &Value, wanted: &[&str]) -> bool {
    let mut have: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut wanted = wanted.to_vec();
    have.sort_unstable();
    wanted.sort_unstable();
    have == wanted
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_keeps_path_prefix_and_drops_query() {
        let base = Url::parse("http://bao.example:8200/prefix?x=1").expect("test value");
        assert_eq!(
            checked_base(&base).expect("valid"),
            "http://bao.example:8200/prefix"
        );
        let file = Url::parse("file:///tmp/x").expect("test value");
        let err = checked_base(&file).expect_err("not http");
        assert!(matches!(err, OpenbaoError::InvalidUrl { .. }), "{err}");
    }

    #[test]
    fn issuer_has_no_trailing_slash_for_bare_hosts() {
        let u = Url::parse("http://127.0.0.1:9000").expect("test value");
        assert_eq!(issuer_string(&u), "http://127.0.0.1:9000");
        let u = Url::parse("http://sso.harmony.local:8080/oidc").expect("test value");
        assert_eq!(issuer_string(&u), "http://sso.harmony.local:8080/oidc");
    }

    #[test]
    fn string_lists_compare_without_order() {
        assert!(same_strings(&json!(["b", "a"]), &["a", "b"]));
        assert!(!same_strings(&json!(["a"]), &["a", "b"]));
        assert!(!same_strings(&Value::Null, &["a"]));
    }

    #[test]
    fn init_answer_without_keys_is_rejected() {
        assert!(parse_init_answer(json!({"root_token": "s.x"})).is_none());
        let keys = parse_init_answer(json!({"keys_base64": ["k"], "root_token": "s.x"}))
            .expect("test value");
        assert_eq!(keys.keys_base64.len(), 1);
    }
}
