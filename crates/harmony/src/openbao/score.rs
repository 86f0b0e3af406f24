//! [`OpenbaoScore`]: install the chart, wait for the pod to run, and bootstrap it through a
//! port-forward.
//!
//! `helm --wait` is not used: a sealed OpenBao is never Ready and the chart's StatefulSet uses
//! `OnDelete`, so helm would wait for something only the bootstrap can bring about. The score
//! waits for the pod to be *Running* instead, then the bootstrap polls `sys/health` itself.

use std::time::Duration;

use harmony_k8s::K8sClient;
use tracing::Instrument;
use url::Url;

use super::values::{API_PORT, CHART_VERSION, OpenbaoProfile, OpenbaoValues};
use super::{BootstrapOptions, BootstrapReport, OpenbaoBootstrap, OpenbaoError};
use crate::helm::{ChartRelease, Helm};

/// Helm repository name for the OpenBao chart.
pub const OPENBAO_REPO_NAME: &str = "openbao";
/// The OpenBao chart repository.
pub const OPENBAO_REPO_URL: &str = "https://openbao.github.io/openbao-helm";
/// Chart reference (`<repo>/<chart>`).
pub const OPENBAO_CHART: &str = "openbao/openbao";

/// OpenBao in a cluster: where, in which shape, and how long to wait.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenbaoScore {
    /// Helm release name (also the pods' prefix: `<release>-0`, …).
    pub release: String,
    /// Namespace (created by helm when missing).
    pub namespace: String,
    /// k3d (one replica, ingress) or HA.
    pub profile: OpenbaoProfile,
    /// helm's `--timeout`.
    pub helm_timeout: Duration,
    /// How long each pod may take to reach *Running* (image pull included).
    pub pod_running_timeout: Duration,
}

impl Default for OpenbaoScore {
    /// Release and namespace `openbao`, k3d profile.
    fn default() -> Self {
        Self {
            release: "openbao".to_owned(),
            namespace: "openbao".to_owned(),
            profile: OpenbaoProfile::K3d,
            helm_timeout: Duration::from_secs(300),
            pod_running_timeout: Duration::from_secs(300),
        }
    }
}

impl OpenbaoScore {
    /// The chart values for this release.
    pub fn values(&self) -> OpenbaoValues {
        OpenbaoValues::new(self.profile, &self.release)
    }

    /// The pinned chart release, without `--wait` (see the module docs).
    pub fn chart_release(&self) -> ChartRelease {
        ChartRelease::new(&self.release, OPENBAO_CHART, &self.namespace)
            .version(CHART_VERSION)
            .wait(false)
            .timeout(self.helm_timeout)
    }

    /// The pods of the StatefulSet, `<release>-0` first.
    pub fn pods(&self) -> Vec<String> {
        let replicas = match self.profile {
            OpenbaoProfile::K3d => 1,
            OpenbaoProfile::HighAvailability { replicas } => replicas.max(1),
        };
        (0..replicas)
            .map(|n| format!("{}-{n}", self.release))
            .collect()
    }

    /// Installs (or upgrades) the chart, waits for `<release>-0` to run, bootstraps it through
    /// a port-forward, then unseals every other replica the same way. Idempotent.
    pub async fn deploy(
        &self,
        helm: &Helm,
        k8s: &K8sClient,
        options: BootstrapOptions,
    ) -> Result<BootstrapReport, OpenbaoError> {
        let span = tracing::info_span!(
            "openbao_deploy",
            release = %self.release,
            namespace = %self.namespace,
        );
        async {
            let helm_err = |e| OpenbaoError::Helm(Box::new(e));
            helm.repo_add(OPENBAO_REPO_NAME, OPENBAO_REPO_URL)
                .await
                .map_err(helm_err)?;
            helm.repo_update().await.map_err(helm_err)?;
            helm.upgrade_install(&self.chart_release(), &self.values())
                .await
                .map_err(helm_err)?;

            let pods = self.pods();
            let mut report = None;
            for (n, pod) in pods.iter().enumerate() {
                let forward = self.forward_to(k8s, pod).await?;
                let url =
                    Url::parse(&forward.local_url()).map_err(|e| OpenbaoError::InvalidUrl {
                        url: forward.local_url(),
                        reason: e.to_string(),
                    })?;
                let bootstrap = OpenbaoBootstrap::new(&url, options.clone())?;
                if n == 0 {
                    report = Some(bootstrap.run().await?);
                } else if bootstrap.unseal().await? {
                    tracing::info!(pod = %pod, "unsealed replica");
                }
                drop(forward);
            }
            // `pods()` is never empty, so the first iteration set the report.
            report.ok_or_else(|| OpenbaoError::Kubernetes {
                what: format!("finding the pods of release {}", self.release),
                source: None,
            })
        }
        .instrument(span)
        .await
    }

    async fn forward_to(
        &self,
        k8s: &K8sClient,
        pod: &str,
    ) -> Result<harmony_k8s::PortForward, OpenbaoError> {
        let ns = &self.namespace;
        k8s.wait_for_pod_running(ns, pod, self.pod_running_timeout)
            .await
            .map_err(|e| OpenbaoError::Kubernetes {
                what: format!("waiting for pod {ns}/{pod} to run"),
                source: Some(Box::new(e)),
            })?;
        k8s.port_forward(ns, pod, API_PORT)
            .await
            .map_err(|e| OpenbaoError::Kubernetes {
                what: format!("port-forwarding to {ns}/{pod}:{API_PORT}"),
                source: Some(Box::new(e)),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_is_pinned_and_does_not_wait_for_readiness() {
        let score = OpenbaoScore::default();
        let release = score.chart_release();
        assert_eq!(release.chart, OPENBAO_CHART);
        assert_eq!(release.version.as_deref(), Some(CHART_VERSION));
        assert!(!release.wait, "a sealed OpenBao is never Ready");
        assert_eq!(score.pods(), ["openbao-0"]);
    }

    #[test]
    fn ha_bootstraps_the_first_pod_and_unseals_the_others() {
        let score = OpenbaoScore {
            release: "bao".into(),
            profile: OpenbaoProfile::HighAvailability { replicas: 3 },
            ..OpenbaoScore::default()
        };
        assert_eq!(score.pods(), ["bao-0", "bao-1", "bao-2"]);
        assert_eq!(score.values().server.ha.replicas, 3);
    }
}
