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

use std::time::Duration;

use rand::Rng;
use secrecy::SecretString;

use crate::cnpg::{POSTGRES_PORT, PostgresCluster};
use values::{
    DatabaseConfig, DbRole, EnvVar, FirstInstance, FirstOrg, FirstOrgMachine, IngressValues,
    JobValues, LoginValues, MachineUser, PatConfig, PodSecurityContext, PostgresConfig,
    SecurityContext, SslConfig, TlsConfig, ZitadelConfig, ZitadelSection, ZitadelValues,
};

pub use issuer::CorednsRewrite;
pub use setup::{DeviceAppSpec, SsoClientState, ZitadelApi, ZitadelSetupError, ensure_device_app};
pub use values::ZITADEL_CHART_VERSION;

/// Length of Zitadel's masterkey: exactly 32 bytes.
pub const MASTERKEY_LEN: usize = 32;
/// Key of the masterkey in its Secret (what the chart reads).
pub const MASTERKEY_KEY: &str = "masterkey";
/// Key of the PAT in the `<username>-pat` Secret.
pub const PAT_KEY: &str = "pat";

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
    /// Timeout handed to `helm upgrade --install --wait` (init + setup jobs + rollout).
    pub helm_timeout: Duration,
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
            helm_timeout: Duration::from_secs(600),
        }
    }
}

impl ZitadelScore {
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

    /// Secret the chart writes the machine user's PAT to.
    pub fn pat_secret(&self) -> String {
        format!("{}-pat", self.machine_username)
    }

    /// In-cluster DNS name of Zitadel's Service (the chart names it after a release whose name
    /// contains `zitadel`).
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
        let ssl_disabled = || SslConfig {
            mode: "disable".into(),
        };
        let job = |command: Option<&str>| JobValues {
            command: command.map(str::to_owned),
            active_deadline_seconds: 600,
            pod_security_context: PodSecurityContext::zitadel(),
            security_context: SecurityContext::zitadel(),
        };
        ZitadelValues {
            replica_count: 1,
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
                                ssl: ssl_disabled(),
                            },
                            admin: DbRole {
                                username: db.superuser().into(),
                                ssl: ssl_disabled(),
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
                EnvVar::from_secret(
                    "ZITADEL_DATABASE_POSTGRES_ADMIN_PASSWORD",
                    &db.superuser_secret(),
                    "password",
                ),
            ],
            init_job: job(Some("zitadel")),
            setup_job: job(None),
            login: LoginValues {
                enabled: true,
                pod_security_context: PodSecurityContext::zitadel(),
                security_context: SecurityContext::zitadel(),
                ingress: IngressValues::plain(&self.external_domain, "/ui/v2/login"),
            },
            ingress: IngressValues::plain(&self.external_domain, "/"),
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
