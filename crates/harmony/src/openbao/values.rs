//! Typed Helm values for the OpenBao chart.
//!
//! Only the keys Harmony decides are modelled; everything else keeps the pinned chart's default.
//! Two shapes exist:
//! - **k3d** (local): one replica on raft storage — OpenBao 2.7 refuses the chart's default
//!   `file` storage — no PodDisruptionBudget, and an ingress for `bao.harmony.local` that
//!   traefik (k3d's ingress controller) picks up without any class annotation;
//! - **HA** (real clusters): three raft replicas that find each other through `retry_join`.
//!
//! Both turn the agent injector off, keep the chart's own readiness probe (`bao status`: not
//! Ready while sealed) and set `server.podManagementPolicy: Parallel`.
//!
//! **Why Parallel, not a seal-tolerant probe.** With the chart's `OrderedReady` (chart
//! openbao-0.29.2 `charts/openbao/values.yaml` ~411) the StatefulSet creates `openbao-1` only
//! once `openbao-0` is Ready, and a sealed pod is never Ready, so the HA pods would never all
//! exist for the bootstrap to unseal. A probe that passes while sealed would get them created,
//! but it also makes the PodDisruptionBudget count a sealed pod as healthy: a drain could then
//! evict an unsealed peer while another is sealed, and raft loses its quorum. `Parallel` creates
//! every pod at once whatever their readiness; the bootstrap needs no Ready pod (it waits for
//! *Running* and goes through a port-forward, and every Service of the chart has
//! `publishNotReadyAddresses: true`), and the PDB keeps reflecting the seal. The policy only
//! affects creation and deletion order: updates stay `OnDelete` (see [`super::score`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::OpenbaoError;
use crate::ingress::{IngressTlsEntry, PublicIngress};

/// The chart version Harmony installs (the newest release checked against these values).
pub const CHART_VERSION: &str = "0.29.2";
/// The OpenBao image tag: the version the bootstrap is tested against (`scripts/install-test-servers`).
/// A real OpenBao release, newer than chart 0.29.2's own appVersion (v2.6.2): pinned on purpose
/// (OpenBao 2.7 refuses `file` storage, hence the raft values).
pub const IMAGE_TAG: &str = "2.7.2";
/// Ingress host of OpenBao on k3d.
pub const K3D_INGRESS_HOST: &str = "bao.harmony.local";
/// A `sys/health` query that answers 2xx whether the node is sealed, uninitialised, active or a
/// standby — for a check by hand. The values do not use it as the readiness probe (see the
/// module docs): the chart's own probe keeps a sealed pod not Ready.
pub const READINESS_PATH: &str = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204";
/// `server.podManagementPolicy` (chart default `OrderedReady`).
pub const POD_MANAGEMENT_POLICY: &str = "Parallel";
/// OpenBao's API port inside the cluster.
pub const API_PORT: u16 = 8200;
/// Where the chart mounts the data volume.
const DATA_PATH: &str = "/openbao/data";

/// Where the chart is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenbaoProfile {
    /// A local k3d cluster: one raft replica, ingress on `bao.harmony.local`.
    K3d,
    /// A real cluster: `replicas` raft peers (3 recommended), no ingress.
    HighAvailability {
        /// Number of OpenBao pods.
        replicas: u8,
    },
}

/// Root of the chart's values.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OpenbaoValues {
    /// The release name, so resources are named `<release>…` whatever the release is called.
    /// Without it the chart names them `<release>-openbao…` unless the release name contains
    /// `openbao`, and the pod names Harmony waits for and the raft peers' addresses would be
    /// wrong.
    pub fullname_override: String,
    /// `global`.
    pub global: GlobalValues,
    /// `injector`.
    pub injector: InjectorValues,
    /// `server`.
    pub server: ServerValues,
    /// `ui`.
    pub ui: UiValues,
}

/// `global`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GlobalValues {
    /// Plain HTTP inside the cluster (TLS, when wanted, ends at the ingress).
    pub tls_disable: bool,
}

/// `injector`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InjectorValues {
    /// The agent injector's webhook is not used by Harmony.
    pub enabled: bool,
}

/// `ui`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UiValues {
    /// Serve the web UI.
    pub enabled: bool,
}

/// `server`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerValues {
    /// `server.image`.
    pub image: ImageValues,
    /// `server.podManagementPolicy`: [`POD_MANAGEMENT_POLICY`].
    pub pod_management_policy: String,
    /// `server.readinessProbe`.
    pub readiness_probe: ProbeValues,
    /// `server.dataStorage`.
    pub data_storage: DataStorageValues,
    /// `server.standalone`.
    pub standalone: EnabledValues,
    /// `server.ha`.
    pub ha: HaValues,
    /// `server.ingress`.
    pub ingress: IngressValues,
}

/// `server.image`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ImageValues {
    /// Image tag (repository and registry stay the chart's).
    pub tag: String,
}

/// `server.readinessProbe`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeValues {
    /// Probe on.
    pub enabled: bool,
    /// HTTP path probed; `None`: the chart's `bao status` exec (exit 2 while sealed: not Ready;
    /// `templates/server-statefulset.yaml`, openbao-0.29.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `server.dataStorage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DataStorageValues {
    /// A PVC per pod.
    pub enabled: bool,
    /// Its size.
    pub size: String,
}

/// A block that only switches something on or off.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnabledValues {
    /// On or off.
    pub enabled: bool,
}

/// `server.ha`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HaValues {
    /// HA mode (the chart's only mode with raft storage).
    pub enabled: bool,
    /// Number of pods.
    pub replicas: u8,
    /// `server.ha.raft`.
    pub raft: RaftValues,
    /// `server.ha.disruptionBudget`.
    pub disruption_budget: DisruptionBudgetValues,
}

/// `server.ha.disruptionBudget` (chart openbao-0.29.2, `charts/openbao/values.yaml`:
/// `enabled`, `maxUnavailable`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetValues {
    /// Create the PodDisruptionBudget.
    pub enabled: bool,
    /// Pods that may be down at once; `None`: the chart's `(n/2)-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u8>,
}

/// `server.ha.raft`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RaftValues {
    /// Raft storage.
    pub enabled: bool,
    /// Raft node id = pod name.
    pub set_node_id: bool,
    /// The server configuration (HCL).
    pub config: String,
}

/// `server.ingress`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngressValues {
    /// Create an Ingress.
    pub enabled: bool,
    /// Route to `<release>-active` (true) or to `<release>` (false). One pod has nothing to
    /// elect, and the plain service also routes while sealed.
    pub active_service: bool,
    /// Hosts routed to OpenBao.
    pub hosts: Vec<IngressHost>,
    /// `ingressClassName` (absent: the cluster's default class; k3d's traefik serves it). Chart
    /// openbao-0.29.2 `charts/openbao/values.yaml`: `server.ingress.{ingressClassName,
    /// annotations,tls,activeService}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    /// Annotations (the cert-manager issuer, when one is asked for).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// `tls` entries (chart openbao-0.29.2 `server.ingress.tls`: `secretName`, `hosts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<IngressTlsEntry>,
}

/// One host of `server.ingress.hosts`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IngressHost {
    /// The host name.
    pub host: String,
    /// Paths (empty: the chart's `/`).
    pub paths: Vec<String>,
}

impl OpenbaoValues {
    /// The values for `profile`, for a release named `release` (HA peers address each other as
    /// `<release>-<n>.<release>-internal`).
    pub fn new(profile: OpenbaoProfile, release: &str) -> Self {
        let (replicas, storage_size, ingress) = match profile {
            OpenbaoProfile::K3d => (
                1,
                "1Gi",
                IngressValues {
                    enabled: true,
                    active_service: false,
                    hosts: vec![IngressHost {
                        host: K3D_INGRESS_HOST.to_owned(),
                        paths: Vec::new(),
                    }],
                    ingress_class_name: None,
                    annotations: BTreeMap::new(),
                    tls: Vec::new(),
                },
            ),
            OpenbaoProfile::HighAvailability { replicas } => (
                replicas.max(1),
                "10Gi",
                IngressValues {
                    enabled: false,
                    active_service: true,
                    hosts: Vec::new(),
                    ingress_class_name: None,
                    annotations: BTreeMap::new(),
                    tls: Vec::new(),
                },
            ),
        };
        Self {
            fullname_override: release.to_owned(),
            global: GlobalValues { tls_disable: true },
            injector: InjectorValues { enabled: false },
            ui: UiValues { enabled: true },
            server: ServerValues {
                image: ImageValues {
                    tag: IMAGE_TAG.to_owned(),
                },
                pod_management_policy: POD_MANAGEMENT_POLICY.to_owned(),
                readiness_probe: ProbeValues {
                    enabled: true,
                    path: None,
                },
                data_storage: DataStorageValues {
                    enabled: true,
                    size: storage_size.to_owned(),
                },
                standalone: EnabledValues { enabled: false },
                ha: HaValues {
                    enabled: true,
                    replicas,
                    raft: RaftValues {
                        enabled: true,
                        set_node_id: true,
                        config: raft_config(release, replicas),
                    },
                    // With one replica the chart's computed budget would forbid any eviction; with
                    // several, one pod at a time may go (raft keeps its quorum).
                    disruption_budget: DisruptionBudgetValues {
                        enabled: replicas > 1,
                        max_unavailable: (replicas > 1).then_some(1),
                    },
                },
                ingress,
            },
        }
    }

    /// Publish OpenBao at `bao.<domain>` through `ingress` (class, TLS); several replicas are
    /// routed to the `<release>-active` service, one to `<release>`.
    pub fn with_public_ingress(mut self, ingress: &PublicIngress) -> Self {
        let host = ingress.bao_host();
        let release = &self.fullname_override;
        self.server.ingress = IngressValues {
            enabled: true,
            active_service: self.server.ha.replicas > 1,
            tls: ingress.tls_entries(&host, &format!("{release}-tls")),
            hosts: vec![IngressHost {
                host,
                paths: Vec::new(),
            }],
            ingress_class_name: ingress.class.clone(),
            annotations: ingress.annotations(),
        };
        self
    }

    /// The values as YAML, as passed to `helm --values`.
    pub fn to_yaml(&self) -> Result<String, OpenbaoError> {
        serde_yaml::to_string(self).map_err(OpenbaoError::Values)
    }
}

/// Where the deployed OpenBao writes its audit log: the container's standard output, read with
/// the pod's logs (every request and response, one JSON object per line).
pub const AUDIT_FILE_PATH: &str = "stdout";
/// The path (name) of the declarative audit device in OpenBao (`bao audit list` shows `harmony/`).
pub const AUDIT_DEVICE_PATH: &str = "harmony";

/// The declarative file audit device writing to `file_path`. OpenBao 2.7 refuses enabling
/// audit devices through the API ("use declarative, config-based audit device management
/// instead"), so the server's configuration declares it; every node of a cluster must carry
/// the same stanza. `log_raw = false`: values (secrets, tokens) appear only as HMAC-SHA256 of
/// the device's salt, never in plaintext.
pub fn audit_device_hcl(file_path: &str) -> String {
    format!(
        r#"audit "file" "{AUDIT_DEVICE_PATH}" {{
  description = "every request and response; values HMAC'd (harmony)"
  options {{
    file_path = "{file_path}"
    log_raw = "false"
  }}
}}
"#
    )
}

/// Server configuration for raft; with several replicas, each peer retries joining every other.
fn raft_config(release: &str, replicas: u8) -> String {
    let mut retry_join = String::new();
    if replicas > 1 {
        for n in 0..replicas {
            retry_join.push_str(&format!(
                "  retry_join {{\n    leader_api_addr = \"http://{release}-{n}.{release}-internal:{API_PORT}\"\n  }}\n"
            ));
        }
    }
    format!(
        r#"ui = true
disable_standby_reads = true

listener "tcp" {{
  tls_disable = 1
  address = "[::]:{API_PORT}"
  cluster_address = "[::]:8201"
}}

storage "raft" {{
  path = "{DATA_PATH}"
{retry_join}}}

service_registration "kubernetes" {{}}

{audit}"#,
        audit = audit_device_hcl(AUDIT_FILE_PATH),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k3d_values_snapshot() {
        let v = OpenbaoValues::new(OpenbaoProfile::K3d, "openbao");
        insta::assert_snapshot!(v.to_yaml().expect("test value"));
    }

    #[test]
    fn ha_values_snapshot() {
        let v = OpenbaoValues::new(OpenbaoProfile::HighAvailability { replicas: 3 }, "openbao");
        insta::assert_snapshot!(v.to_yaml().expect("test value"));
    }

    #[test]
    fn k3d_fixes_are_explicit() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            &OpenbaoValues::new(OpenbaoProfile::K3d, "openbao")
                .to_yaml()
                .expect("test value"),
        )
        .expect("test value");
        assert_eq!(yaml["injector"]["enabled"], false);
        assert_eq!(yaml["server"]["ha"]["replicas"], 1);
        assert_eq!(yaml["server"]["ha"]["raft"]["enabled"], true);
        assert_eq!(yaml["server"]["standalone"]["enabled"], false);
        let config = yaml["server"]["ha"]["raft"]["config"]
            .as_str()
            .expect("test value");
        assert!(config.contains("storage \"raft\""), "{config}");
        assert!(!config.contains("storage \"file\""), "{config}");
        assert!(
            !config.contains("retry_join"),
            "one node joins nobody: {config}"
        );
        assert_seal_shows_in_readiness(&yaml);
        assert_eq!(yaml["server"]["image"]["tag"], IMAGE_TAG);
        let ingress = &yaml["server"]["ingress"];
        assert_eq!(ingress["hosts"][0]["host"], K3D_INGRESS_HOST);
        // traefik ignores ingresses that name another class: no class, no class annotation.
        assert!(ingress.get("ingressClassName").is_none());
        assert!(ingress.get("annotations").is_none());
    }

    /// The chart's own probe (no `path`: `bao status`, failing while sealed) and every pod
    /// created at once (`Parallel`), so the PodDisruptionBudget counts a sealed pod as down.
    fn assert_seal_shows_in_readiness(yaml: &serde_yaml::Value) {
        let probe = &yaml["server"]["readinessProbe"];
        assert_eq!(probe["enabled"], true);
        assert!(probe.get("path").is_none(), "{probe:?}");
        assert_eq!(yaml["server"]["podManagementPolicy"], "Parallel");
    }

    #[test]
    fn ha_pods_are_created_together_and_sealed_pods_are_not_ready() {
        let yaml: serde_yaml::Value = serde_yaml::from_str(
            &OpenbaoValues::new(OpenbaoProfile::HighAvailability { replicas: 3 }, "openbao")
                .to_yaml()
                .expect("test value"),
        )
        .expect("test value");
        assert_seal_shows_in_readiness(&yaml);
        assert_eq!(
            yaml["server"]["ha"]["disruptionBudget"]["maxUnavailable"],
            1
        );
    }

    #[test]
    fn resources_are_named_after_the_release_whatever_its_name() {
        // The chart would name them `bao-openbao-…` for release `bao` (no `openbao` inside).
        let v = OpenbaoValues::new(OpenbaoProfile::HighAvailability { replicas: 3 }, "bao");
        assert_eq!(v.fullname_override, "bao");
    }

    #[test]
    fn ha_peers_join_each_other() {
        let v = OpenbaoValues::new(OpenbaoProfile::HighAvailability { replicas: 3 }, "bao");
        let config = &v.server.ha.raft.config;
        for n in 0..3 {
            assert!(
                config.contains(&format!("http://bao-{n}.bao-internal:8200")),
                "{config}"
            );
        }
        assert!(v.server.ha.disruption_budget.enabled);
        assert!(!v.server.ingress.enabled);
    }
}
