//! Zitadel SSO on CloudNativePG: the Helm install ([`ZitadelScore`]), the in-cluster issuer
//! ([`issuer`]) and the device-code application ([`setup`]).
//!
//! Design choices:
//! - **Values are typed and rendered in one place** ([`ZitadelScore::values`], [`values`]) and
//!   snapshot-tested, with the k3d fixes (numeric `runAsUser`, no nginx ingress class) asserted.
//! - **The masterkey is created once.** It encrypts Zitadel's data: regenerating it would make an
//!   existing database unreadable. It lives in a Secret that is created only when absent and
//!   never rewritten, generated from the OS RNG, and never logged.
//! - **The database comes first.** Zitadel's init and setup jobs are pre-install hooks that need
//!   PostgreSQL accepting connections, so the score waits for the CNPG primary (with the bounded
//!   fresh-client retry) before `helm upgrade --install`.
//! - **The PAT comes from the chart.** The setup job stores the first instance's machine-user PAT
//!   in Secret `<username>-pat`, key `pat` (only on a fresh database); Harmony reads it as a
//!   [`secrecy::SecretString`].

pub mod issuer;
pub mod setup;
pub mod values;

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

use harmony_k8s::{K8sClient, K8sError};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::ObjectMeta;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};

use crate::{
    cnpg::{
        CnpgError, CnpgScore, POSTGRES_PORT, PostgresCluster, RetryExhausted, RetryPolicy,
        retry_with_fresh_client,
    },
    helm::{ChartRelease, Helm, HelmError},
    ingress::PublicIngress,
};
use values::{
    DatabaseConfig, DbRole, EnvVar, FirstInstance, FirstOrg, FirstOrgHuman, FirstOrgMachine,
    IngressValues, JobValues, KubectlTool, LoginValues, MachineUser, PatConfig, PdbValues,
    PodSecurityContext, PostgresConfig, SecurityContext, SslConfig, TlsConfig, ToolsValues,
    ZitadelConfig, ZitadelSection, ZitadelValues,
};

pub use issuer::{CorednsRewrite, IssuerError, apply_in_cluster_issuer};
pub use setup::{DeviceAppSpec, SsoClientState, ZitadelApi, ZitadelSetupError, ensure_device_app};
pub use values::{
    KubectlImage, ZITADEL_CHART, ZITADEL_CHART_VERSION, ZITADEL_REPO_NAME, ZITADEL_REPO_URL,
};

/// Length of Zitadel's masterkey: exactly 32 bytes.
pub const MASTERKEY_LEN: usize = 32;
/// Key of the masterkey in its Secret (what the chart reads).
pub const MASTERKEY_KEY: &str = "masterkey";
/// Key of the PAT in the `<username>-pat` Secret.
pub const PAT_KEY: &str = "pat";
/// Key of the first admin's initial password in its Secret ([`ZitadelScore::admin_password_secret`]).
pub const ADMIN_PASSWORD_KEY: &str = "password";
/// Key that records, next to the password, whether Zitadel's first instance was created with it
/// ([`ADMIN_ORIGIN_DEPLOY`]) or existed before the Secret ([`ADMIN_ORIGIN_INSTANCE_EXISTED`]).
pub const ADMIN_ORIGIN_KEY: &str = "origin";
/// [`ADMIN_ORIGIN_KEY`]: the Secret was made before Zitadel created its first instance, so the
/// human admin was created with this password.
pub const ADMIN_ORIGIN_DEPLOY: &str = "deploy";
/// [`ADMIN_ORIGIN_KEY`]: the instance (and its human admin) existed before the Secret; the
/// password in it was never Zitadel's.
pub const ADMIN_ORIGIN_INSTANCE_EXISTED: &str = "instance-existed";
/// The local copy of the first admin's initial password, in the deploy's Zitadel state
/// directory (0600).
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";
/// Length of a generated admin password.
pub const ADMIN_PASSWORD_LEN: usize = 24;
/// Zitadel's environment variable for the first instance's human admin password (zitadel
/// `cmd/setup/steps.yaml`: `FirstInstance.Org.Human.Password`, default `Password1!`).
pub const ADMIN_PASSWORD_ENV: &str = "ZITADEL_FIRSTINSTANCE_ORG_HUMAN_PASSWORD";

/// What to install and how Zitadel is reached.
#[derive(Debug, Clone, PartialEq)]
pub struct ZitadelScore {
    /// Namespace of Zitadel (and of its PostgreSQL cluster).
    pub namespace: String,
    /// Helm release name; the chart names the Service after it.
    pub release: String,
    /// Host Zitadel answers for.
    pub external_domain: String,
    /// Port clients use (the Service port).
    pub external_port: u16,
    /// HTTPS in the issuer URL.
    pub external_secure: bool,
    /// The CNPG cluster holding Zitadel's database.
    pub database: PostgresCluster,
    /// The first instance's machine user (its PAT lands in `<machine_username>-pat`).
    pub machine_username: String,
    /// Expiry of that PAT (RFC 3339).
    pub pat_expiration: String,
    /// Secret holding the masterkey.
    pub masterkey_secret: String,
    /// Secret holding the first human admin's initial password (generated once).
    pub admin_password_secret: String,
    /// Timeout handed to `helm upgrade --install --wait` (init + setup jobs + rollout).
    pub helm_timeout: Duration,
    /// Pods of the Zitadel API and of the login UI; more than one adds PodDisruptionBudgets.
    pub replicas: u32,
    /// Published at `sso.<domain>` on an existing cluster: real DNS serves the issuer inside
    /// and outside the cluster, so no CoreDNS rewrite. `None`: the k3d setup.
    pub public: Option<PublicIngress>,
    /// The kubectl image of the chart's setup and cleanup Jobs.
    pub kubectl_image: KubectlImage,
}

impl Default for ZitadelScore {
    /// The local k3d setup: `http://sso.harmony.local:8080`.
    fn default() -> Self {
        Self {
            namespace: "zitadel".into(),
            release: "zitadel".into(),
            external_domain: "sso.harmony.local".into(),
            external_port: 8080,
            external_secure: false,
            database: PostgresCluster::default(),
            machine_username: "harmony-admin".into(),
            pat_expiration: "2035-01-01T00:00:00Z".into(),
            masterkey_secret: "zitadel-masterkey".into(),
            admin_password_secret: "zitadel-admin-password".into(),
            helm_timeout: Duration::from_secs(600),
            replicas: 1,
            public: None,
            kubectl_image: KubectlImage::default(),
        }
    }
}

impl ZitadelScore {
    /// Zitadel at `https://sso.<domain>` (`ExternalDomain` the host, `ExternalPort` 443,
    /// `ExternalSecure` true) with `replicas` pods.
    pub fn public(ingress: &PublicIngress, replicas: u32) -> Self {
        Self {
            external_domain: ingress.sso_host(),
            external_port: 443,
            external_secure: true,
            replicas,
            public: Some(ingress.clone()),
            ..Self::default()
        }
    }

    /// The issuer URL (`http://sso.harmony.local:8080` by default); no trailing slash, the form
    /// Zitadel announces in discovery and OpenBao's `oidc_discovery_url` must match exactly.
    pub fn issuer(&self) -> String {
        let (scheme, default_port) = if self.external_secure {
            ("https", 443)
        } else {
            ("http", 80)
        };
        if self.external_port == default_port {
            format!("{scheme}://{}", self.external_domain)
        } else {
            format!("{scheme}://{}:{}", self.external_domain, self.external_port)
        }
    }

    /// Login name of the first instance's human admin, which Zitadel creates from its defaults
    /// (`FirstInstance.Org.Human.UserName` `zitadel-admin`, suffixed with the first org's domain
    /// `<org name>.<ExternalDomain>` as its `cmd/setup/steps.yaml` describes, org `ZITADEL`).
    pub fn first_admin_login(&self) -> String {
        format!("zitadel-admin@zitadel.{}", self.external_domain)
    }

    /// The Management API client the deploy uses: `http://<external_domain>:<port>` with the
    /// name resolved to `ingress`'s load balancer, so the Host carries the port and Zitadel
    /// announces [`Self::issuer`] (it builds the issuer from the Host it receives).
    pub fn api_via(
        &self,
        ingress: &crate::ingress::LocalIngress,
        pat: SecretString,
    ) -> Result<ZitadelApi, ZitadelSetupError> {
        ZitadelApi::via_ingress(ingress, &self.external_domain, pat)
    }

    /// The Management API client: at the issuer through real DNS when published
    /// ([`Self::public`]), else through the k3d load balancer ([`Self::api_via`]).
    pub fn api(&self, pat: SecretString) -> Result<ZitadelApi, ZitadelSetupError> {
        match &self.public {
            Some(_) => {
                let issuer = self.issuer();
                let base = url::Url::parse(&issuer)
                    .map_err(|source| ZitadelSetupError::BadIssuer { issuer, source })?;
                ZitadelApi::new(base, pat)
            }
            None => self.api_via(&crate::ingress::LocalIngress::k3d(), pat),
        }
    }

    /// Secret the chart writes the machine user's PAT to.
    pub fn pat_secret(&self) -> String {
        format!("{}-pat", self.machine_username)
    }

    /// In-cluster DNS name of Zitadel's Service (named after the release: the values set
    /// `fullnameOverride`).
    pub fn service_fqdn(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.release, self.namespace)
    }

    /// The CoreDNS rewrite for the in-cluster issuer.
    pub fn coredns_rewrite(&self) -> CorednsRewrite {
        CorednsRewrite {
            external_domain: self.external_domain.clone(),
            service_fqdn: self.service_fqdn(),
        }
    }

    /// The chart's Helm values for k3s-family and default clusters (see [`values`]).
    pub fn values(&self) -> ZitadelValues {
        let db = &self.database;
        let ha = self.replicas > 1;
        let host = self.external_domain.as_str();
        let (ingress, login_ingress) = match &self.public {
            // cert-manager issues for the API's Ingress; the login's lists the same Secret.
            Some(public) => {
                let issued = format!("{}-tls", self.release);
                (
                    IngressValues::public(public, host, "/", &issued, true),
                    IngressValues::public(public, host, "/ui/v2/login", &issued, false),
                )
            }
            None => (
                IngressValues::plain(host, "/"),
                IngressValues::plain(host, "/ui/v2/login"),
            ),
        };
        // The jobs run with the chart-wide security contexts (chart 9.34.0 reads no per-job
        // ones).
        let job = |command: Option<&str>| JobValues {
            command: command.map(str::to_owned),
            active_deadline_seconds: 600,
        };
        ZitadelValues {
            fullname_override: self.release.clone(),
            replica_count: self.replicas,
            zitadel: ZitadelSection {
                masterkey_secret_name: self.masterkey_secret.clone(),
                configmap_config: ZitadelConfig {
                    external_domain: self.external_domain.clone(),
                    external_port: self.external_port,
                    external_secure: self.external_secure,
                    tls: TlsConfig { enabled: false },
                    database: DatabaseConfig {
                        postgres: PostgresConfig {
                            host: db.rw_host(),
                            port: POSTGRES_PORT,
                            database: db.database.clone(),
                            user: DbRole {
                                username: db.owner.clone(),
                                // CNPG serves TLS by default (cloudnative-pg v1.30.0
                                // `pkg/postgres/configuration.go`: `ssl` fixed to `on`), with
                                // a certificate from its own CA: encrypted, not verified.
                                ssl: SslConfig {
                                    mode: "require".into(),
                                },
                            },
                        },
                    },
                    first_instance: FirstInstance {
                        org: FirstOrg {
                            machine: FirstOrgMachine {
                                machine: MachineUser {
                                    username: self.machine_username.clone(),
                                    name: "Harmony automation".into(),
                                },
                                pat: PatConfig {
                                    expiration_date: self.pat_expiration.clone(),
                                },
                            },
                            // Its password comes from the environment (below); it must be
                            // changed at the first sign-in.
                            human: FirstOrgHuman {
                                password_change_required: true,
                            },
                        },
                    },
                },
            },
            pod_security_context: PodSecurityContext::zitadel(),
            security_context: SecurityContext::zitadel(),
            env: vec![
                EnvVar::from_secret(
                    "ZITADEL_DATABASE_POSTGRES_USER_PASSWORD",
                    &db.app_secret(),
                    "password",
                ),
                // The chart adds `.Values.env` to the setup Job too (zitadel-9.34.0
                // `templates/_helpers.tpl`, `zitadel.dbEnv`, included by `job_setup.yaml`):
                // the human admin is created with this password, not `Password1!`.
                EnvVar::from_secret(
                    ADMIN_PASSWORD_ENV,
                    &self.admin_password_secret,
                    ADMIN_PASSWORD_KEY,
                ),
            ],
            init_job: job(Some("zitadel")),
            setup_job: job(None),
            login: LoginValues {
                enabled: true,
                pod_security_context: PodSecurityContext::zitadel(),
                security_context: SecurityContext::zitadel(),
                ingress: login_ingress,
                replica_count: ha.then_some(self.replicas),
                pdb: ha.then(PdbValues::one_at_a_time),
            },
            ingress,
            pdb: ha.then(PdbValues::one_at_a_time),
            tools: ToolsValues {
                kubectl: KubectlTool {
                    image: self.kubectl_image.clone(),
                },
            },
        }
    }

    /// [`Self::values`] as YAML for `helm --values`.
    pub fn values_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(&self.values())
    }
}

/// A fresh masterkey: [`MASTERKEY_LEN`] alphanumeric characters from the OS-seeded thread RNG.
pub fn generate_masterkey() -> SecretString {
    let key: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(MASTERKEY_LEN)
        .map(char::from)
        .collect();
    SecretString::from(key)
}

/// A fresh admin password: [`ADMIN_PASSWORD_LEN`] characters from the OS-seeded thread RNG,
/// with at least one lower-case letter, upper-case letter, digit and symbol each (Zitadel's
/// default password complexity policy asks for all four, minimum length 8).
pub fn generate_admin_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-=_";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    let mut chars: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL]
        .iter()
        .map(|class| class[rng.random_range(0..class.len())])
        .collect();
    while chars.len() < ADMIN_PASSWORD_LEN {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    rand::seq::SliceRandom::shuffle(chars.as_mut_slice(), &mut rng);
    // Every byte comes from the ASCII classes above.
    SecretString::from(chars.into_iter().map(char::from).collect::<String>())
}

/// The first human admin's initial password and whether Zitadel created the admin with it.
#[derive(Debug, Clone)]
pub struct AdminPassword {
    /// The password in the Secret (redacted in `Debug`).
    pub password: SecretString,
    /// `true`: the Secret was made before Zitadel's first instance, so the admin's password is
    /// this one (until its first sign-in changes it). `false`: the instance existed before
    /// (an older deploy let Zitadel use its public default), so the deploy grants the admin
    /// nothing.
    pub set_by_deploy: bool,
}

/// Saves the admin's initial password to `<dir>/`[`ADMIN_PASSWORD_FILE`], mode 0600, through a
/// temp file in `dir` and a rename. Returns the file.
pub fn save_admin_password(
    dir: &Path,
    password: &SecretString,
) -> Result<PathBuf, AdminPasswordFileError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(ADMIN_PASSWORD_FILE);
    let err = |at: &Path| {
        let path = at.to_owned();
        move |source| AdminPasswordFileError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".admin-password-")
        .tempfile_in(dir)
        .map_err(err(dir))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err(tmp.path()))?;
    tmp.write_all(password.expose_secret().as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(err(&path))?;
    tmp.persist(&path).map_err(|e| AdminPasswordFileError {
        path: path.clone(),
        source: e.error,
    })?;
    Ok(path)
}

/// The local copy of the admin's password could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing {} (0600) failed; check the directory's permissions", path.display())]
pub struct AdminPasswordFileError {
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Why deploying Zitadel failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZitadelError {
    /// helm could not add the repository or install the chart.
    #[error("installing Zitadel with helm failed")]
    Helm(#[source] HelmError),

    /// Zitadel's PostgreSQL is not ready.
    #[error("Zitadel's PostgreSQL database is not ready")]
    Database(#[source] CnpgError),

    /// A Kubernetes call failed.
    #[error("{what} failed")]
    Kube {
        /// What was being done, naming the resource.
        what: String,
        /// The client's error.
        #[source]
        source: K8sError,
    },

    /// The existing masterkey Secret holds something that is not a 32-character key.
    #[error(
        "Secret {namespace}/{name} key {MASTERKEY_KEY} is not a {MASTERKEY_LEN}-character \\
         masterkey; Harmony never replaces a masterkey (it would make Zitadel's data unreadable): \\
         fix the Secret by hand, or delete Zitadel's database and the Secret and re-run"
    )]
    MasterkeyInvalid {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },

    /// The chart did not leave the machine user's PAT.
    #[error(
        "Secret {namespace}/{name} key {PAT_KEY} is missing: Zitadel's setup job writes the \\
         machine user's PAT only when it initialises a fresh database. If the database existed \\
         before this install, delete it (or tear down with --cleanup) and re-run, or create the \\
         Secret with a valid PAT"
    )]
    PatMissing {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
    },

    /// The in-cluster issuer could not be set up.
    #[error("making the issuer resolvable inside the cluster failed")]
    Issuer(#[source] IssuerError),

    /// The local copy of the admin's password could not be written.
    #[error("saving Zitadel's first admin's password on this machine")]
    LocalFile(#[source] AdminPasswordFileError),

    /// A bounded retry gave up.
    #[error(transparent)]
    Exhausted(Box<RetryExhausted<ZitadelError>>),
}

impl ZitadelError {
    fn kube(what: impl Into<String>) -> impl FnOnce(K8sError) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, source }
    }
}

impl From<RetryExhausted<ZitadelError>> for ZitadelError {
    fn from(e: RetryExhausted<ZitadelError>) -> Self {
        Self::Exhausted(Box::new(e))
    }
}

/// What a deployed Zitadel hands on: the issuer, the machine user's PAT and the first human
/// admin's initial password.
#[derive(Debug, Clone)]
pub struct ZitadelDeployment {
    /// The issuer URL (the same inside and outside the cluster).
    pub issuer: String,
    /// The first instance's machine-user PAT (redacted in `Debug`).
    pub pat: SecretString,
    /// The first human admin's initial password, from its Secret.
    pub admin: AdminPassword,
}

impl ZitadelScore {
    /// The chart release (pinned, `--wait`, [`Self::helm_timeout`]). The chart's init and setup
    /// Jobs are pre-install/pre-upgrade hooks, each given the whole timeout by helm, so helm
    /// may run up to 3 × the timeout before we stop it.
    pub fn release(&self) -> ChartRelease {
        ChartRelease::new(&self.release, values::ZITADEL_CHART, &self.namespace)
            .version(ZITADEL_CHART_VERSION)
            .wait(true)
            .timeout(self.helm_timeout)
            .hooks(2)
    }

    /// Installs Zitadel on its (already created) CNPG cluster, reads the PAT and makes the issuer
    /// resolve inside the cluster.
    ///
    /// Order: namespace, masterkey Secret (created once), database readiness (bounded retry,
    /// fresh client per attempt), `helm upgrade --install --wait`, the PAT Secret (bounded
    /// retry), the CoreDNS rewrite. Idempotent.
    pub async fn deploy<F, Fut>(
        &self,
        helm: &Helm,
        connect: F,
        retry: RetryPolicy,
    ) -> Result<ZitadelDeployment, ZitadelError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<K8sClient, K8sError>>,
    {
        let k8s = connect()
            .await
            .map_err(ZitadelError::kube("connecting to the cluster"))?;
        k8s.ensure_namespace(&self.namespace)
            .await
            .map_err(ZitadelError::kube(format!(
                "creating namespace {}",
                self.namespace
            )))?;
        self.ensure_masterkey(&k8s).await?;
        // Before the install: the setup Job reads it when it creates the first instance.
        let admin = self.ensure_admin_password(&k8s).await?;

        let database = CnpgScore {
            cluster: self.database.clone(),
            retry,
            ..CnpgScore::default()
        };
        database
            .wait_ready(&connect)
            .await
            .map_err(ZitadelError::Database)?;

        helm.repo_add(values::ZITADEL_REPO_NAME, values::ZITADEL_REPO_URL)
            .await
            .map_err(ZitadelError::Helm)?;
        helm.repo_update().await.map_err(ZitadelError::Helm)?;
        helm.upgrade_install(&self.release(), &self.values())
            .await
            .map_err(ZitadelError::Helm)?;

        let pat = self.read_pat(&connect, retry).await?;
        // On k3d the issuer's name exists only on this machine: CoreDNS rewrites it to the
        // Service. A published Zitadel is found through real DNS.
        if self.public.is_none() {
            let k8s = connect()
                .await
                .map_err(ZitadelError::kube("connecting to the cluster"))?;
            apply_in_cluster_issuer(&k8s, &self.coredns_rewrite())
                .await
                .map_err(ZitadelError::Issuer)?;
        }
        Ok(ZitadelDeployment {
            issuer: self.issuer(),
            pat,
            admin,
        })
    }

    /// Creates the admin password Secret when it does not exist; an existing one is kept as is
    /// (never regenerated: Zitadel reads it only when it creates its first instance).
    ///
    /// A new Secret records whether Zitadel's first instance already existed (its PAT Secret
    /// `<username>-pat` is there): then the human admin was created earlier with another
    /// password, and [`AdminPassword::set_by_deploy`] is `false` on this and every later run.
    /// The Secret is `immutable`.
    pub async fn ensure_admin_password(
        &self,
        k8s: &K8sClient,
    ) -> Result<AdminPassword, ZitadelError> {
        let (ns, name) = (self.namespace.as_str(), self.admin_password_secret.as_str());
        let read = |key: &'static str| {
            let what = format!("reading Secret {ns}/{name}");
            async move {
                k8s.secret_key(ns, name, key)
                    .await
                    .map_err(ZitadelError::kube(what))
            }
        };
        if let Some(password) = read(ADMIN_PASSWORD_KEY).await? {
            let origin = read(ADMIN_ORIGIN_KEY).await?;
            let set_by_deploy = origin
                .as_ref()
                .is_some_and(|o| o.expose_secret() == ADMIN_ORIGIN_DEPLOY);
            tracing::info!(secret = %format!("{ns}/{name}"), "reusing the existing Zitadel admin password");
            return Ok(AdminPassword {
                password,
                set_by_deploy,
            });
        }
        let pat_secret = self.pat_secret();
        let instance_existed = k8s
            .secret_key(ns, &pat_secret, PAT_KEY)
            .await
            .map_err(ZitadelError::kube(format!(
                "reading Secret {ns}/{pat_secret}"
            )))?
            .is_some();
        let origin = if instance_existed {
            ADMIN_ORIGIN_INSTANCE_EXISTED
        } else {
            ADMIN_ORIGIN_DEPLOY
        };
        let password = generate_admin_password();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "harmony".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            immutable: Some(true),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([
                (
                    ADMIN_PASSWORD_KEY.to_owned(),
                    ByteString(password.expose_secret().as_bytes().to_vec()),
                ),
                (
                    ADMIN_ORIGIN_KEY.to_owned(),
                    ByteString(origin.as_bytes().to_vec()),
                ),
            ])),
            ..Secret::default()
        };
        k8s.apply(&secret, Some(ns))
            .await
            .map_err(ZitadelError::kube(format!("creating Secret {ns}/{name}")))?;
        tracing::info!(secret = %format!("{ns}/{name}"), instance_existed, "created the Zitadel admin password");
        Ok(AdminPassword {
            password,
            set_by_deploy: !instance_existed,
        })
    }

    /// Creates the masterkey Secret when it does not exist; an existing one is kept as is.
    ///
    /// The Secret is `immutable`, so not even a mistaken later apply can replace the key.
    pub async fn ensure_masterkey(&self, k8s: &K8sClient) -> Result<(), ZitadelError> {
        let (ns, name) = (self.namespace.as_str(), self.masterkey_secret.as_str());
        let existing = k8s
            .secret_key(ns, name, MASTERKEY_KEY)
            .await
            .map_err(ZitadelError::kube(format!("reading Secret {ns}/{name}")))?;
        if let Some(key) = existing {
            if key.expose_secret().len() != MASTERKEY_LEN {
                return Err(ZitadelError::MasterkeyInvalid {
                    namespace: ns.to_owned(),
                    name: name.to_owned(),
                });
            }
            tracing::info!(secret = %format!("{ns}/{name}"), "reusing the existing Zitadel masterkey");
            return Ok(());
        }
        let key = generate_masterkey();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(ns.to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "harmony".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            immutable: Some(true),
            type_: Some("Opaque".into()),
            data: Some(BTreeMap::from([(
                MASTERKEY_KEY.to_owned(),
                ByteString(key.expose_secret().as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        k8s.apply(&secret, Some(ns))
            .await
            .map_err(ZitadelError::kube(format!("creating Secret {ns}/{name}")))?;
        tracing::info!(secret = %format!("{ns}/{name}"), "created the Zitadel masterkey");
        Ok(())
    }

    /// Reads the machine user's PAT from `<username>-pat` (bounded retry, fresh client each
    /// attempt: the setup job's sidecar writes it after setup finishes).
    pub async fn read_pat<F, Fut>(
        &self,
        connect: &F,
        retry: RetryPolicy,
    ) -> Result<SecretString, ZitadelError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<K8sClient, K8sError>>,
    {
        let (ns, name) = (self.namespace.as_str(), self.pat_secret());
        let name = name.as_str();
        let waiting_for = format!("Secret {ns}/{name} (the Zitadel machine user's PAT)");
        let pat = retry_with_fresh_client(
            retry,
            &waiting_for,
            || async {
                connect()
                    .await
                    .map_err(ZitadelError::kube("connecting to the cluster"))
            },
            |k8s: K8sClient| async move {
                k8s.secret_key(ns, name, PAT_KEY)
                    .await
                    .map_err(ZitadelError::kube(format!("reading Secret {ns}/{name}")))?
                    .ok_or_else(|| ZitadelError::PatMissing {
                        namespace: ns.to_owned(),
                        name: name.to_owned(),
                    })
            },
        )
        .await?;
        Ok(pat)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn masterkey_is_32_alphanumerics_and_random() {
        let a = generate_masterkey();
        let b = generate_masterkey();
        assert_eq!(a.expose_secret().len(), MASTERKEY_LEN);
        assert!(a.expose_secret().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn issuer_omits_default_ports() {
        let mut s = ZitadelScore::default();
        assert_eq!(s.issuer(), "http://sso.harmony.local:8080");
        s.external_port = 80;
        assert_eq!(s.issuer(), "http://sso.harmony.local");
        s.external_secure = true;
        s.external_port = 443;
        assert_eq!(s.issuer(), "https://sso.harmony.local");
    }
}
