//! CloudNativePG: the operator (Helm chart) and one PostgreSQL `Cluster` for Zitadel.
//!
//! Design choices:
//! - **Typed, pinned, snapshot-tested.** The operator's Helm values and the `Cluster` resource are
//!   serde structs rendered here and nowhere else ([`CnpgOperatorValues`], [`PostgresCluster`]);
//!   the chart version is a constant ([`CNPG_CHART_VERSION`]).
//! - **CNPG owns the database credentials.** `bootstrap.initdb` creates the database and its owner
//!   and CNPG writes their password to Secret `<cluster>-app`, which Zitadel's chart reads
//!   through `secretKeyRef`, so no database password ever passes through Harmony or Helm values.
//!   The `postgres` superuser keeps no password (`enableSuperuserAccess: false`): no Zitadel
//!   step needs it (see [`crate::zitadel::values`]).
//! - **The operator-install races are expected.** Creating the `Cluster` right after the operator
//!   install fails until the CRD is in discovery and the `mcluster.cnpg.io` webhook answers; the
//!   database then takes a while to accept connections. Both steps go through
//!   [`retry::retry_with_fresh_client`] (bounded, logged, a new client per attempt).

pub mod retry;

use std::{borrow::Cow, future::Future, time::Duration};

use harmony_k8s::{K8sClient, K8sError};
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::helm::{ChartRelease, Helm, HelmError};

pub use retry::{RetryExhausted, RetryPolicy, retry_with_fresh_client};

/// Helm repository name used for the CloudNativePG charts.
pub const CNPG_REPO_NAME: &str = "cnpg";
/// The CloudNativePG charts repository.
pub const CNPG_REPO_URL: &str = "https://cloudnative-pg.github.io/charts";
/// Chart reference (`<repo>/<chart>`).
pub const CNPG_CHART: &str = "cnpg/cloudnative-pg";
/// Pinned chart version (operator 1.30.0).
pub const CNPG_CHART_VERSION: &str = "0.29.0";
/// Helm release name of the operator.
pub const CNPG_RELEASE: &str = "cnpg";
/// Namespace of the operator.
pub const CNPG_NAMESPACE: &str = "cnpg-system";
/// The CRD the `Cluster` resource needs; waited for after the operator install.
pub const CLUSTER_CRD: &str = "clusters.postgresql.cnpg.io";
/// API group/version of CNPG's `Cluster`.
pub const CLUSTER_API_VERSION: &str = "postgresql.cnpg.io/v1";
/// Port of the PostgreSQL services CNPG creates.
pub const POSTGRES_PORT: u16 = 5432;

/// Helm values for the `cloudnative-pg` operator chart.
///
/// Only what Harmony relies on is set; everything else keeps the chart's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CnpgOperatorValues {
    /// Operator replicas: one is enough for a local cluster.
    pub replica_count: u32,
    /// The chart installs the CRDs (Harmony waits for them to be established).
    pub crds: CrdsValues,
}

/// `crds:` section of the operator chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrdsValues {
    /// Whether the chart installs the CRDs.
    pub create: bool,
}

impl Default for CnpgOperatorValues {
    fn default() -> Self {
        Self {
            replica_count: 1,
            crds: CrdsValues { create: true },
        }
    }
}

/// The PostgreSQL cluster Zitadel uses, and the names CNPG derives from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresCluster {
    /// `metadata.name` of the `Cluster`; services and secrets are named after it.
    pub name: String,
    /// Namespace of the `Cluster` (Zitadel's namespace, so its pods can read the secrets).
    pub namespace: String,
    /// PostgreSQL instances (1 for a local cluster).
    pub instances: u32,
    /// Size of each instance's volume, e.g. `1Gi`.
    pub storage_size: String,
    /// Database created at bootstrap.
    pub database: String,
    /// Owner of that database; its password is in Secret `<name>-app`.
    pub owner: String,
    /// `spec.enablePDB`; `None` leaves the operator's default (true).
    pub enable_pdb: Option<bool>,
}

impl Default for PostgresCluster {
    fn default() -> Self {
        Self {
            name: "zitadel-pg".into(),
            namespace: "zitadel".into(),
            instances: 1,
            storage_size: "1Gi".into(),
            database: "zitadel".into(),
            owner: "zitadel".into(),
            enable_pdb: None,
        }
    }
}

impl PostgresCluster {
    /// Three instances (a primary and two streaming replicas) with the operator's
    /// PodDisruptionBudgets, 10 GiB each: the `ha` profile.
    pub fn ha() -> Self {
        Self {
            instances: 3,
            storage_size: "10Gi".into(),
            enable_pdb: Some(true),
            ..Self::default()
        }
    }

    /// The read-write service (`<name>-rw`), pointing at the primary.
    pub fn rw_service(&self) -> String {
        format!("{}-rw", self.name)
    }

    /// In-cluster DNS name of the read-write service, `<service>.<namespace>.svc`: every pod's
    /// DNS search path completes it, whatever the cluster's domain (not always
    /// `cluster.local`).
    pub fn rw_host(&self) -> String {
        format!("{}.{}.svc", self.rw_service(), self.namespace)
    }

    /// Secret CNPG writes for the database owner (keys `username`, `password`).
    pub fn app_secret(&self) -> String {
        format!("{}-app", self.name)
    }

    /// The `Cluster` resource as Harmony applies it.
    pub fn manifest(&self) -> ClusterManifest {
        ClusterManifest {
            api_version: CLUSTER_API_VERSION.into(),
            kind: "Cluster".into(),
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            status: None,
            spec: ClusterSpec {
                instances: self.instances,
                storage: Storage {
                    size: self.storage_size.clone(),
                },
                enable_superuser_access: false,
                enable_pdb: self.enable_pdb,
                bootstrap: Bootstrap {
                    initdb: InitDb {
                        database: self.database.clone(),
                        owner: self.owner.clone(),
                    },
                },
            },
        }
    }
}

/// A CNPG `Cluster` (`postgresql.cnpg.io/v1`), only the fields Harmony sets.
///
/// A [`kube::Resource`] so [`K8sClient::apply`] can server-side apply it; reading the API
/// server's answer back ignores every field not named here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManifest {
    /// Always [`CLUSTER_API_VERSION`].
    pub api_version: String,
    /// Always `Cluster`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: ObjectMeta,
    /// The spec.
    #[serde(default)]
    pub spec: ClusterSpec,
    /// What the operator reports (read back only; never applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ClusterStatus>,
}

/// `status` of a CNPG `Cluster`, the fields the readiness wait reads (cloudnative-pg v1.30.0
/// `api/v1/cluster_types.go`, `ClusterStatus`: `readyInstances` "the number of ready instance
/// pods", `currentPrimary`, `phase`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterStatus {
    /// Instances that are Ready.
    pub ready_instances: u32,
    /// The pod that is the primary now, e.g. `zitadel-pg-3` after a failover or a replaced
    /// instance (CNPG never reuses an instance's serial).
    pub current_primary: String,
    /// e.g. `Cluster in healthy state`.
    pub phase: String,
}

impl ClusterStatus {
    /// Every one of `instances` is Ready and a primary is elected.
    pub fn is_ready(&self, instances: u32) -> bool {
        self.ready_instances >= instances && !self.current_primary.is_empty()
    }
}

impl kube::Resource for ClusterManifest {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Cluster".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "postgresql.cnpg.io".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "clusters".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// `spec` of a CNPG `Cluster`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterSpec {
    /// Number of PostgreSQL instances.
    pub instances: u32,
    /// Volume per instance.
    pub storage: Storage,
    /// `false`: CNPG keeps no `postgres` password (and deletes a `<cluster>-superuser` Secret
    /// it made earlier): Zitadel connects only as the owner. Always rendered, so a cluster an
    /// older Harmony created with `true` is switched off (cloudnative-pg v1.30.0
    /// `api/v1/cluster_types.go`, default false).
    pub enable_superuser_access: bool,
    /// Whether the operator keeps PodDisruptionBudgets for the instances (one for the primary,
    /// one for the replicas). Field `enablePDB` of `Cluster` (cloudnative-pg v1.30.0,
    /// `api/v1/cluster_types.go`, default true).
    #[serde(rename = "enablePDB", skip_serializing_if = "Option::is_none")]
    pub enable_pdb: Option<bool>,
    /// How the database is created.
    pub bootstrap: Bootstrap,
}

/// `spec.storage`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Storage {
    /// Volume size, e.g. `1Gi`.
    pub size: String,
}

/// `spec.bootstrap`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bootstrap {
    /// A fresh database via `initdb`.
    pub initdb: InitDb,
}

/// `spec.bootstrap.initdb`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InitDb {
    /// Database to create.
    pub database: String,
    /// Its owner (password generated by CNPG into `<cluster>-app`).
    pub owner: String,
}

/// Why installing CloudNativePG or its PostgreSQL cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CnpgError {
    /// helm could not add the repository or install the operator.
    #[error("installing the CloudNativePG operator failed")]
    Helm(#[source] HelmError),

    /// The `Cluster` CRD is not (yet) established.
    #[error(
        "CRD {crd} is not established yet (the operator registers it shortly after its install)"
    )]
    CrdNotEstablished {
        /// The CRD's name.
        crd: &'static str,
    },

    /// A Kubernetes call failed.
    #[error("{what} failed")]
    Kube {
        /// What was being done, naming the resource.
        what: String,
        /// The client's error.
        #[source]
        source: K8sError,
    },

    /// A Secret CNPG writes for the cluster is not there yet.
    #[error("Secret {namespace}/{name} (written by CloudNativePG) does not exist yet")]
    SecretMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },

    /// The `Cluster` does not report every instance Ready with a primary yet.
    #[error(
        "Cluster {namespace}/{name} is not ready: {ready_instances} of {instances} instances \
         Ready, primary {primary} (phase {phase:?}); `kubectl -n {namespace} describe \
         cluster {name}` says why"
    )]
    NotReady {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Instances asked for.
        instances: u32,
        /// Instances Ready.
        ready_instances: u32,
        /// The primary's pod, or `none`.
        primary: String,
        /// The operator's phase.
        phase: String,
    },

    /// A bounded retry gave up.
    #[error(transparent)]
    Exhausted(Box<RetryExhausted<CnpgError>>),
}

impl CnpgError {
    fn kube(what: impl Into<String>) -> impl FnOnce(K8sError) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, source }
    }
}

impl From<RetryExhausted<CnpgError>> for CnpgError {
    fn from(e: RetryExhausted<CnpgError>) -> Self {
        Self::Exhausted(Box::new(e))
    }
}

/// The CloudNativePG operator and one PostgreSQL cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct CnpgScore {
    /// Operator chart values.
    pub operator: CnpgOperatorValues,
    /// The PostgreSQL cluster to create.
    pub cluster: PostgresCluster,
    /// Retry for the CRD/webhook race and the database readiness gap.
    pub retry: RetryPolicy,
    /// helm's `--timeout` for the operator install.
    pub helm_timeout: Duration,
    /// How long one readiness attempt polls the `Cluster`'s status.
    pub ready_attempt_timeout: Duration,
    /// Pause between two reads of the `Cluster`'s status within an attempt.
    pub ready_poll_interval: Duration,
}

impl Default for CnpgScore {
    fn default() -> Self {
        Self {
            operator: CnpgOperatorValues::default(),
            cluster: PostgresCluster::default(),
            retry: RetryPolicy::default(),
            helm_timeout: Duration::from_secs(300),
            ready_attempt_timeout: Duration::from_secs(60),
            ready_poll_interval: Duration::from_secs(2),
        }
    }
}

impl CnpgScore {
    /// The operator's Helm release (pinned, `--wait`).
    pub fn operator_release(&self) -> ChartRelease {
        ChartRelease::new(CNPG_RELEASE, CNPG_CHART, CNPG_NAMESPACE)
            .version(CNPG_CHART_VERSION)
            .wait(true)
            .timeout(self.helm_timeout)
    }

    /// Installs the operator, creates the `Cluster` and waits until PostgreSQL is ready.
    ///
    /// `connect` builds a new Kubernetes client; it is called once per attempt of each retried
    /// step (see [`retry`]). Idempotent: re-running upgrades the release in place and re-applies
    /// the same `Cluster`.
    pub async fn deploy<F, Fut>(&self, helm: &Helm, connect: F) -> Result<(), CnpgError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<K8sClient, K8sError>>,
    {
        helm.repo_add(CNPG_REPO_NAME, CNPG_REPO_URL)
            .await
            .map_err(CnpgError::Helm)?;
        helm.repo_update().await.map_err(CnpgError::Helm)?;
        helm.upgrade_install(&self.operator_release(), &self.operator)
            .await
            .map_err(CnpgError::Helm)?;
        self.apply_cluster(&connect).await?;
        self.wait_ready(&connect).await
    }

    /// Applies the `Cluster`, retrying (fresh client each time) while its CRD is not established
    /// or the operator's webhook refuses it.
    pub async fn apply_cluster<F, Fut>(&self, connect: &F) -> Result<(), CnpgError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<K8sClient, K8sError>>,
    {
        let manifest = self.cluster.manifest();
        let ns = self.cluster.namespace.as_str();
        let waiting_for = format!(
            "CRD {CLUSTER_CRD} to be established and Cluster {ns}/{} to be accepted",
            self.cluster.name
        );
        retry_with_fresh_client(
            self.retry,
            &waiting_for,
            || async {
                connect()
                    .await
                    .map_err(CnpgError::kube("connecting to the cluster"))
            },
            |k8s: K8sClient| {
                let manifest = &manifest;
                async move {
                    if !k8s
                        .crd_established(CLUSTER_CRD)
                        .await
                        .map_err(CnpgError::kube(format!("reading CRD {CLUSTER_CRD}")))?
                    {
                        return Err(CnpgError::CrdNotEstablished { crd: CLUSTER_CRD });
                    }
                    k8s.ensure_namespace(ns)
                        .await
                        .map_err(CnpgError::kube(format!("creating namespace {ns}")))?;
                    k8s.apply(manifest, Some(ns))
                        .await
                        .map_err(CnpgError::kube(format!(
                            "applying Cluster {ns}/{}",
                            manifest.metadata.name.as_deref().unwrap_or_default()
                        )))?;
                    Ok(())
                }
            },
        )
        .await?;
        tracing::info!(cluster = %self.cluster.name, namespace = ns, "PostgreSQL Cluster applied");
        Ok(())
    }

    /// Waits (bounded, fresh client per attempt) until the `Cluster` reports every instance
    /// Ready with a primary, and CNPG has written the owner's Secret Zitadel reads.
    ///
    /// The status, not a pod: CNPG names pods `<cluster>-<serial>` and never reuses a serial,
    /// so once instance 1 is replaced (or a failover made `-3` the primary) there is no pod
    /// `<cluster>-1` to wait for, while the status still says which pod is the primary.
    pub async fn wait_ready<F, Fut>(&self, connect: &F) -> Result<(), CnpgError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<K8sClient, K8sError>>,
    {
        let pg = &self.cluster;
        let ns = pg.namespace.as_str();
        let waiting_for = format!(
            "PostgreSQL Cluster {ns}/{} to have {} Ready instance(s) and a primary, and Secret {} \
             to exist",
            pg.name,
            pg.instances,
            pg.app_secret(),
        );
        let primary = retry_with_fresh_client(
            self.retry,
            &waiting_for,
            || async {
                connect()
                    .await
                    .map_err(CnpgError::kube("connecting to the cluster"))
            },
            |k8s: K8sClient| async move {
                let primary = self.poll_cluster_ready(&k8s).await?;
                let secret = pg.app_secret();
                let present = k8s
                    .secret_key(ns, &secret, "password")
                    .await
                    .map_err(CnpgError::kube(format!("reading Secret {ns}/{secret}")))?
                    .is_some();
                if !present {
                    return Err(CnpgError::SecretMissing {
                        namespace: ns.to_owned(),
                        name: secret,
                    });
                }
                Ok(primary)
            },
        )
        .await?;
        tracing::info!(cluster = %pg.name, namespace = ns, primary = %primary, "PostgreSQL is ready");
        Ok(())
    }

    /// Reads the `Cluster`'s status until it is ready (returns the primary's pod) or
    /// [`Self::ready_attempt_timeout`] has passed (the last status, as [`CnpgError::NotReady`]).
    async fn poll_cluster_ready(&self, k8s: &K8sClient) -> Result<String, CnpgError> {
        let pg = &self.cluster;
        let ns = pg.namespace.as_str();
        let deadline = tokio::time::Instant::now() + self.ready_attempt_timeout;
        loop {
            let cluster: Option<ClusterManifest> =
                crate::deploy::api::get_namespaced(k8s, ns, &pg.name)
                    .await
                    .map_err(CnpgError::kube(format!("reading Cluster {ns}/{}", pg.name)))?;
            let status = cluster.and_then(|c| c.status).unwrap_or_default();
            if status.is_ready(pg.instances) {
                return Ok(status.current_primary);
            }
            if tokio::time::Instant::now() + self.ready_poll_interval >= deadline {
                return Err(CnpgError::NotReady {
                    namespace: ns.to_owned(),
                    name: pg.name.clone(),
                    instances: pg.instances,
                    ready_instances: status.ready_instances,
                    primary: if status.current_primary.is_empty() {
                        "none".to_owned()
                    } else {
                        status.current_primary
                    },
                    phase: status.phase,
                });
            }
            tokio::time::sleep(self.ready_poll_interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_cnpg_conventions() {
        let pg = PostgresCluster::default();
        assert_eq!(pg.rw_service(), "zitadel-pg-rw");
        assert_eq!(pg.rw_host(), "zitadel-pg-rw.zitadel.svc");
        assert_eq!(pg.app_secret(), "zitadel-pg-app");
    }
}
