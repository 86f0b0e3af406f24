//! Zitadel's Helm values as typed structs (chart [`ZITADEL_CHART_VERSION`]).
//!
//! Keys were checked against that chart's `values.yaml`, `values.schema.json` and templates. The
//! values are for k3s-family and default clusters (k3d in particular) and carry the two fixes the
//! seed plan paid for:
//! - **`runAsUser: 1000` on every security context.** The image's user is the non-numeric
//!   `zitadel`; with `runAsNonRoot: true` kubelet cannot prove it is not root and refuses to start
//!   the container (`CreateContainerConfigError`). 1000 is its UID. Chart 9.34.0 already
//!   defaults `runAsUser: 1000`; we pin it anyway so a changed chart default cannot bring the
//!   failure back. That chart renders the init and setup jobs with the chart-wide contexts (it
//!   never reads `initJob`/`setupJob` `podSecurityContext`/`securityContext`, so none are set
//!   there) and the login pods with `login.*`.
//! - **No `kubernetes.io/ingress.class: nginx`.** k3d ships traefik, which ignores an ingress
//!   claimed by nginx (404 on every route); without a class traefik serves it. An empty class
//!   is chart 9.34.0's default too; pinned for the same reason.
//! - **The values schema is fetched by helm.** Chart 9.34.0's `values.schema.json` `$ref`s a
//!   JSON schema on the internet, which helm downloads while validating these values: behind a
//!   proxy or firewall the install fails ([`crate::helm::HelmError::SchemaFetch`] says so).
//!
//! No secret is in these values: the masterkey is referenced by Secret name, and the database
//! password comes from CNPG's Secret through `secretKeyRef`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ingress::{IngressTlsEntry, PublicIngress};

/// Helm repository name used for Zitadel's chart.
pub const ZITADEL_REPO_NAME: &str = "zitadel";
/// Zitadel's charts repository.
pub const ZITADEL_REPO_URL: &str = "https://charts.zitadel.com";
/// Chart reference (`<repo>/<chart>`).
pub const ZITADEL_CHART: &str = "zitadel/zitadel";
/// Pinned chart version (Zitadel v4.13.0 with the v2 login).
pub const ZITADEL_CHART_VERSION: &str = "9.34.0";

/// The UID of the `zitadel` user in Zitadel's image (see the module docs).
pub const ZITADEL_UID: i64 = 1000;

/// Top-level Helm values for the Zitadel chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZitadelValues {
    /// The release name, so the Service is `<release>` whatever the release is called (without
    /// it the chart uses `<release>-zitadel` unless the release name contains `zitadel`, and the
    /// CoreDNS rewrite would point at a Service that does not exist).
    pub fullname_override: String,
    /// Zitadel API replicas.
    pub replica_count: u32,
    /// `zitadel:` (runtime configuration and masterkey reference).
    pub zitadel: ZitadelSection,
    /// Pod security context of the Zitadel deployment and the init/setup jobs.
    pub pod_security_context: PodSecurityContext,
    /// Container security context of the Zitadel deployment and the init/setup jobs.
    pub security_context: SecurityContext,
    /// Extra environment of the Zitadel containers (deployment, init and setup jobs).
    pub env: Vec<EnvVar>,
    /// The init job (pre-install hook).
    pub init_job: JobValues,
    /// The setup job (pre-install hook; creates the first instance and the machine user's PAT).
    pub setup_job: JobValues,
    /// The v2 login UI.
    pub login: LoginValues,
    /// Ingress of the Zitadel API.
    pub ingress: IngressValues,
    /// `pdb:` (chart zitadel-9.34.0 `charts/zitadel/values.yaml`: `enabled`, `minAvailable`,
    /// `maxUnavailable`); absent: the chart's default (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbValues>,
    /// `tools:` (the kubectl image of the setup and cleanup Jobs; see [`KubectlImage`]).
    pub tools: ToolsValues,
}

/// `tools:` of chart zitadel-9.34.0 (`charts/zitadel/values.yaml` ~1396).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolsValues {
    /// `tools.kubectl`.
    pub kubectl: KubectlTool,
}

/// `tools.kubectl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubectlTool {
    /// `tools.kubectl.image` (`repository`, `tag`).
    pub image: KubectlImage,
}

/// The kubectl image of Zitadel's setup Job (its `-machinekey`/`-machine-pat` containers, which
/// write the PAT Secret) and of its cleanup Job.
///
/// Chart zitadel-9.34.0 (`charts/zitadel/templates/_helpers.tpl`, `kubectl.image`) renders
/// `<imageRegistry or docker.io>/<tools.kubectl.image.repository or alpine/k8s>:<tag or the
/// cluster's Kubernetes MAJOR.MINOR.PATCH>`. `alpine/k8s` skips patch tags and stopped
/// publishing in 2026-06 (zitadel-charts #614, #490), so the unpinned tag is missing on most
/// current clusters — and on k3d whenever its k3s patch has none — and the pre-install hook
/// never finishes. Hence a pinned tag that exists. The containers run `sh -c '... kubectl
/// ...'` (`job_setup.yaml`, `job_cleanup.yaml`), so the image needs a shell as well as kubectl,
/// and the chart puts `docker.io/` in front: the repository is a Docker Hub one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubectlImage {
    /// Docker Hub repository, e.g. `alpine/k8s`.
    pub repository: String,
    /// Its tag, e.g. `1.32.3`.
    pub tag: String,
}

impl Default for KubectlImage {
    /// `alpine/k8s:1.32.3`: the chart's own repository (shell and kubectl, runs as UID 1000 as
    /// the chart's security context asks) at a tag that was published, kubectl 1.32 — within
    /// kubectl's one-minor skew of the k3s 1.31/1.32 that k3d v5.8.3 starts by default (k3d
    /// bakes the k3s stable channel of its build into `version.K3sVersion`; v5.8.3 was built
    /// on 2025-02-15) and of Kubernetes 1.33.
    fn default() -> Self {
        Self {
            repository: "alpine/k8s".into(),
            tag: "1.32.3".into(),
        }
    }
}

impl std::fmt::Display for KubectlImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

impl std::str::FromStr for KubectlImage {
    type Err = String;

    /// `REPOSITORY:TAG`, a Docker Hub repository (`alpine/k8s:1.33.4`, `bitnami/kubectl:1.33`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hint = "give a Docker Hub REPOSITORY:TAG with a shell and kubectl within one minor \
                    of the cluster's Kubernetes, e.g. alpine/k8s:1.33.4";
        let Some((repository, tag)) = s.rsplit_once(':') else {
            return Err(format!("{s:?} has no tag: {hint}"));
        };
        let component = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
            && !tag.starts_with(['.', '-']);
        if !tag_ok || !repository.split('/').all(component) {
            return Err(format!("{s:?} is not an image reference: {hint}"));
        }
        // The chart prefixes `docker.io/`: a registry host here would become
        // `docker.io/<host>/...`, which does not exist.
        let first = repository.split('/').next().unwrap_or_default();
        if repository.contains('/') && (first.contains('.') || first == "localhost") {
            return Err(format!(
                "{s:?} names a registry ({first}); Zitadel's chart 9.34.0 always pulls from \
                 docker.io: {hint}"
            ));
        }
        Ok(Self {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })
    }
}

impl KubectlImage {
    /// `--kubectl-image` of both binaries (see [`std::str::FromStr`]).
    pub fn parse(s: &str) -> Result<Self, String> {
        s.parse()
    }
}

/// `pdb:` / `login.pdb:`: a PodDisruptionBudget by `maxUnavailable` (the chart takes either
/// that or `minAvailable`, never both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbValues {
    /// Create it.
    pub enabled: bool,
    /// Pods that may be down at once.
    pub max_unavailable: u32,
}

impl PdbValues {
    /// One pod at a time may go.
    pub fn one_at_a_time() -> Self {
        Self {
            enabled: true,
            max_unavailable: 1,
        }
    }
}

/// `zitadel:` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZitadelSection {
    /// Secret (key `masterkey`) holding the 32-character masterkey; created by Harmony once.
    pub masterkey_secret_name: String,
    /// Zitadel's own configuration (written to a ConfigMap by the chart).
    pub configmap_config: ZitadelConfig,
}

/// Zitadel runtime configuration (`zitadel.configmapConfig`), Zitadel's PascalCase keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ZitadelConfig {
    /// The host Zitadel answers for; it picks its instance from the `Host` header.
    pub external_domain: String,
    /// The port clients use (the Service port, so one issuer URL works in and out of cluster).
    pub external_port: u16,
    /// `false`: plain HTTP on k3d.
    pub external_secure: bool,
    /// TLS inside the pod (off: traefik or nothing terminates TLS locally).
    #[serde(rename = "TLS")]
    pub tls: TlsConfig,
    /// Database connection.
    pub database: DatabaseConfig,
    /// First instance: the machine user whose PAT Harmony uses.
    pub first_instance: FirstInstance,
}

/// `TLS:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TlsConfig {
    /// Serve TLS from Zitadel itself.
    pub enabled: bool,
}

/// `Database:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DatabaseConfig {
    /// PostgreSQL (the CNPG cluster).
    pub postgres: PostgresConfig,
}

/// `Database.Postgres:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PostgresConfig {
    /// The CNPG `-rw` service.
    pub host: String,
    /// PostgreSQL port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// The owner role Zitadel runs as (password from env). No `Admin`: with `initJob.command:
    /// zitadel` no step connects as the superuser — `zitadel init zitadel`, `setup` and
    /// `start` all connect as this user (`database.Connect(config, false, ...)` in zitadel's
    /// `cmd/initialise/verify_zitadel.go` and `cmd/setup/setup.go`); only `init user`/`init
    /// database`, which CNPG's `initdb` replaces, need the admin.
    pub user: DbRole,
}

/// A database role without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DbRole {
    /// Role name.
    pub username: String,
    /// SSL settings.
    #[serde(rename = "SSL")]
    pub ssl: SslConfig,
}

/// `SSL:` of a database role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SslConfig {
    /// libpq `sslmode`.
    pub mode: String,
}

/// `FirstInstance:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirstInstance {
    /// The first organisation.
    pub org: FirstOrg,
}

/// `FirstInstance.Org:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirstOrg {
    /// The machine user (its PAT lands in Secret `<username>-pat`, key `pat`).
    pub machine: FirstOrgMachine,
    /// The human admin Zitadel's setup also creates from its defaults (zitadel
    /// `cmd/setup/steps.yaml`: `zitadel-admin`, password `Password1!`); its password comes
    /// from `ZITADEL_FIRSTINSTANCE_ORG_HUMAN_PASSWORD` (a Secret), never from these values.
    pub human: FirstOrgHuman,
}

/// `FirstInstance.Org.Human:`, without the password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirstOrgHuman {
    /// The generated initial password must be changed at the first sign-in (Zitadel's default,
    /// pinned).
    pub password_change_required: bool,
}

/// `FirstInstance.Org.Machine:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FirstOrgMachine {
    /// The user.
    pub machine: MachineUser,
    /// Asking for a PAT makes the setup job write it to Secret `<username>-pat`.
    pub pat: PatConfig,
}

/// `FirstInstance.Org.Machine.Machine:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MachineUser {
    /// Login name; also names the PAT Secret.
    pub username: String,
    /// Display name.
    pub name: String,
}

/// `FirstInstance.Org.Machine.Pat:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PatConfig {
    /// RFC 3339 expiry of the PAT.
    pub expiration_date: String,
}

/// Pod-level security context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// Refuse to run as root.
    pub run_as_non_root: bool,
    /// Numeric UID (see [`ZITADEL_UID`]).
    pub run_as_user: i64,
    /// Group owning mounted volumes.
    pub fs_group: i64,
}

/// Container-level security context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    /// Refuse to run as root.
    pub run_as_non_root: bool,
    /// Numeric UID (see [`ZITADEL_UID`]).
    pub run_as_user: i64,
    /// Read-only root filesystem.
    pub read_only_root_filesystem: bool,
    /// Never privileged.
    pub privileged: bool,
}

/// An environment variable whose value comes from a Secret key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Where the value comes from.
    pub value_from: EnvVarSource,
}

/// `valueFrom:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    /// The Secret and key.
    pub secret_key_ref: SecretKeyRef,
}

/// `secretKeyRef:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// `initJob:` / `setupJob:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobValues {
    /// For the init job: which `zitadel init` step to run (`zitadel`: CNPG already created the
    /// database and its owner). Omitted for the setup job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Seconds before the job is failed.
    pub active_deadline_seconds: u32,
}

/// `login:` (the v2 login UI). The device-code verification page is not served here: the
/// `verification_uri` `<issuer>/device` is answered by Zitadel itself, which redirects to its
/// built-in v1 login's `/ui/login/device`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginValues {
    /// Deploy the login UI.
    pub enabled: bool,
    /// Pod security context of the login pods.
    pub pod_security_context: PodSecurityContext,
    /// Container security context of the login pods.
    pub security_context: SecurityContext,
    /// Ingress of the login UI (path `/ui/v2/login` on the same host).
    pub ingress: IngressValues,
    /// `login.replicaCount`; absent: the chart's default (1). Chart zitadel-9.34.0
    /// `charts/zitadel/values.yaml` (`login.replicaCount`, `login.pdb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_count: Option<u32>,
    /// `login.pdb`; absent: the chart's default (off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbValues>,
}

/// `ingress:` / `login.ingress:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressValues {
    /// Create the Ingress.
    pub enabled: bool,
    /// `generic`: the chart adds no controller-specific annotations (its `nginx` mode would).
    pub controller: String,
    /// Empty: no ingress class, so k3s's traefik (the default class) serves it (chart
    /// 9.34.0's default as well; pinned).
    pub class_name: String,
    /// No annotations at all, in particular no `kubernetes.io/ingress.class`.
    pub annotations: BTreeMap<String, String>,
    /// Hosts and paths.
    pub hosts: Vec<IngressHost>,
    /// `tls` (chart zitadel-9.34.0: a list of IngressTLS, `secretName` and `hosts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<IngressTlsEntry>,
}

/// One host of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressHost {
    /// Host name (the external domain).
    pub host: String,
    /// Paths routed to the service.
    pub paths: Vec<IngressPath>,
}

/// One path of an Ingress host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressPath {
    /// URL path.
    pub path: String,
    /// `Prefix`.
    pub path_type: String,
}

impl PodSecurityContext {
    /// Non-root as [`ZITADEL_UID`].
    pub fn zitadel() -> Self {
        Self {
            run_as_non_root: true,
            run_as_user: ZITADEL_UID,
            fs_group: ZITADEL_UID,
        }
    }
}

impl SecurityContext {
    /// Non-root as [`ZITADEL_UID`], read-only root filesystem, unprivileged.
    pub fn zitadel() -> Self {
        Self {
            run_as_non_root: true,
            run_as_user: ZITADEL_UID,
            read_only_root_filesystem: true,
            privileged: false,
        }
    }
}

impl IngressValues {
    /// A class-less, annotation-free ingress for `host` on `path`.
    pub fn plain(host: &str, path: &str) -> Self {
        Self {
            enabled: true,
            controller: "generic".into(),
            class_name: String::new(),
            annotations: BTreeMap::new(),
            hosts: vec![IngressHost {
                host: host.into(),
                paths: vec![IngressPath {
                    path: path.into(),
                    path_type: "Prefix".into(),
                }],
            }],
            tls: Vec::new(),
        }
    }

    /// The ingress for `host` on `path` through a real cluster's controller: its class, and
    /// the certificate `ingress` names (`issued_secret` when cert-manager issues it). Only an
    /// Ingress with `issue` set carries the cert-manager annotation, so the two Ingresses of
    /// one host never claim the same Certificate.
    pub fn public(
        ingress: &PublicIngress,
        host: &str,
        path: &str,
        issued_secret: &str,
        issue: bool,
    ) -> Self {
        Self {
            class_name: ingress.class.clone().unwrap_or_default(),
            annotations: if issue {
                ingress.annotations()
            } else {
                BTreeMap::new()
            },
            tls: ingress.tls_entries(host, issued_secret),
            ..Self::plain(host, path)
        }
    }
}

impl EnvVar {
    /// `name` from Secret `secret`, key `key`.
    pub fn from_secret(name: &str, secret: &str, key: &str) -> Self {
        Self {
            name: name.into(),
            value_from: EnvVarSource {
                secret_key_ref: SecretKeyRef {
                    name: secret.into(),
                    key: key.into(),
                },
            },
        }
    }
}
