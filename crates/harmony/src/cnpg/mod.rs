//! CloudNativePG: the operator (Helm chart) and one PostgreSQL `Cluster` for Zitadel.
//!
//! Design choices:
//! - **Typed, pinned, snapshot-tested.** The operator's Helm values and the `Cluster` resource are
//!   serde structs rendered here and nowhere else ([`CnpgOperatorValues`], [`PostgresCluster`]);
//!   the chart version is a constant ([`CNPG_CHART_VERSION`]).
//! - **CNPG owns the database credentials.** `bootstrap.initdb` creates the database and its owner
//!   and CNPG writes their password to Secret `<cluster>-app`; `enableSuperuserAccess` makes it
//!   write `<cluster>-superuser`. Zitadel's chart reads both through `secretKeyRef`, so no
//!   database password ever passes through Harmony or Helm values.
//! - **The operator-install races are expected.** Creating the `Cluster` right after the operator
//!   install fails until the CRD is in discovery and the `mcluster.cnpg.io` webhook answers; the
//!   database then takes a while to accept connections. Both steps go through
//!   [`retry::retry_with_fresh_client`] (bounded, logged, a new client per attempt).

pub mod retry;

use serde::Serialize;

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
        }
    }
}

impl PostgresCluster {
    /// The read-write service (`<name>-rw`), pointing at the primary.
    pub fn rw_service(&self) -> String {
        format!("{}-rw", self.name)
    }

    /// In-cluster DNS name of the read-write service.
    pub fn rw_host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.rw_service(), self.namespace)
    }

    /// Secret CNPG writes for the database owner (keys `username`, `password`).
    pub fn app_secret(&self) -> String {
        format!("{}-app", self.name)
    }

    /// Secret CNPG writes for the `postgres` superuser (keys `username`, `password`).
    pub fn superuser_secret(&self) -> String {
        format!("{}-superuser", self.name)
    }

    /// Name of the superuser role CNPG creates.
    pub fn superuser(&self) -> &'static str {
        "postgres"
    }

    /// The first instance's pod: CNPG names pods `<cluster>-<serial>`, starting at 1.
    pub fn first_pod(&self) -> String {
        format!("{}-1", self.name)
    }

    /// The `Cluster` resource as Harmony applies it.
    pub fn manifest(&self) -> ClusterManifest {
        ClusterManifest {
            api_version: CLUSTER_API_VERSION,
            kind: "Cluster",
            metadata: Metadata {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
            },
            spec: ClusterSpec {
                instances: self.instances,
                storage: Storage {
                    size: self.storage_size.clone(),
                },
                enable_superuser_access: true,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterManifest {
    /// Always [`CLUSTER_API_VERSION`].
    pub api_version: &'static str,
    /// Always `Cluster`.
    pub kind: &'static str,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The spec.
    pub spec: ClusterSpec,
}

/// Name and namespace of a namespaced resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
}

/// `spec` of a CNPG `Cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Number of PostgreSQL instances.
    pub instances: u32,
    /// Volume per instance.
    pub storage: Storage,
    /// Makes CNPG keep the `postgres` password in Secret `<cluster>-superuser` (Zitadel's init
    /// job connects as admin).
    pub enable_superuser_access: bool,
    /// How the database is created.
    pub bootstrap: Bootstrap,
}

/// `spec.storage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Storage {
    /// Volume size, e.g. `1Gi`.
    pub size: String,
}

/// `spec.bootstrap`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bootstrap {
    /// A fresh database via `initdb`.
    pub initdb: InitDb,
}

/// `spec.bootstrap.initdb`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InitDb {
    /// Database to create.
    pub database: String,
    /// Its owner (password generated by CNPG into `<cluster>-app`).
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_cnpg_conventions() {
        let pg = PostgresCluster::default();
        assert_eq!(pg.rw_service(), "zitadel-pg-rw");
        assert_eq!(pg.rw_host(), "zitadel-pg-rw.zitadel.svc.cluster.local");
        assert_eq!(pg.app_secret(), "zitadel-pg-app");
        assert_eq!(pg.superuser_secret(), "zitadel-pg-superuser");
        assert_eq!(pg.first_pod(), "zitadel-pg-1");
    }
}
