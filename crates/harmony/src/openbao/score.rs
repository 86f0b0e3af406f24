//! [`OpenbaoScore`]: install the chart, wait for the pod to run, and bootstrap it through a
//! port-forward.
//!
//! `helm --wait` is not used: a sealed OpenBao is never Ready and the chart's StatefulSet uses
//! `OnDelete`, so helm would wait for something only the bootstrap can bring about. The score
//! waits for the pod to be *Running* instead, then the bootstrap polls `sys/health` itself.

use std::{future::Future, time::Duration};

use harmony_k8s::{K8sClient, K8sError, PortForward};
use tracing::Instrument;
use url::Url;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};

use super::values::{
    API_PORT, CHART_VERSION, OpenbaoProfile, OpenbaoValues, POD_MANAGEMENT_POLICY,
};
use super::{
    BootstrapOptions, BootstrapReport, OpenbaoBootstrap, OpenbaoClusterBootstrap, OpenbaoError,
};
use crate::cnpg::RetryPolicy;
use crate::helm::{ChartRelease, Helm};
use crate::ingress::PublicIngress;

/// How long the first call through a fresh port-forward is retried: 30 × 2 s.
pub const FORWARD_READY_RETRY: RetryPolicy = RetryPolicy {
    attempts: 30,
    delay: Duration::from_secs(2),
};
/// Deadline of one probe through the forward.
const FORWARD_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// Published at `bao.<domain>` on an existing cluster (replaces the k3d ingress).
    pub ingress: Option<PublicIngress>,
    /// helm's `--timeout`.
    pub helm_timeout: Duration,
    /// How long each pod may take to reach *Running* (image pull included).
    pub pod_running_timeout: Duration,
    /// How often, and how far apart, the first call through a fresh port-forward is retried
    /// while it fails at the transport level (see [`FORWARD_READY_RETRY`]).
    pub forward_retry: RetryPolicy,
}

impl Default for OpenbaoScore {
    /// Release and namespace `openbao`, k3d profile.
    fn default() -> Self {
        Self {
            release: "openbao".to_owned(),
            namespace: "openbao".to_owned(),
            profile: OpenbaoProfile::K3d,
            ingress: None,
            helm_timeout: Duration::from_secs(300),
            pod_running_timeout: Duration::from_secs(300),
            forward_retry: FORWARD_READY_RETRY,
        }
    }
}

impl OpenbaoScore {
    /// The chart values for this release.
    pub fn values(&self) -> OpenbaoValues {
        let values = OpenbaoValues::new(self.profile, &self.release);
        match &self.ingress {
            Some(ingress) => values.with_public_ingress(ingress),
            None => values,
        }
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

    /// Installs (or upgrades) the chart, waits for every pod to run and opens a port-forward to
    /// each, then bootstraps: one pod directly, several as one raft cluster
    /// ([`OpenbaoClusterBootstrap`]: init once, unseal each sealed pod through its own forward,
    /// wait for every pod to be a voter and one to be active). Idempotent; never re-initialises.
    pub async fn deploy(
        &self,
        helm: &Helm,
        k8s: &K8sClient,
        options: BootstrapOptions,
    ) -> Result<BootstrapReport, OpenbaoError> {
        self.deploy_through(helm, k8s, options, |ns, pod, port| async move {
            k8s.port_forward(&ns, &pod, port).await
        })
        .await
    }

    /// The bootstrap half of [`Self::deploy`], without touching the chart: for a second pass
    /// with other [`BootstrapOptions`] (e.g. JWT auth once Zitadel exists), which needs no new
    /// helm revision.
    pub async fn bootstrap(
        &self,
        k8s: &K8sClient,
        options: BootstrapOptions,
    ) -> Result<BootstrapReport, OpenbaoError> {
        self.bootstrap_through(k8s, options, |ns, pod, port| async move {
            k8s.port_forward(&ns, &pod, port).await
        })
        .await
    }

    /// The chart half of [`Self::deploy`]: repository, then `helm upgrade --install` of the
    /// pinned chart without `--wait`.
    pub async fn install(&self, helm: &Helm) -> Result<(), OpenbaoError> {
        let helm_err = |e| OpenbaoError::Helm(Box::new(e));
        helm.repo_add(OPENBAO_REPO_NAME, OPENBAO_REPO_URL)
            .await
            .map_err(helm_err)?;
        helm.repo_update().await.map_err(helm_err)?;
        helm.upgrade_install(&self.chart_release(), &self.values())
            .await
            .map(drop)
            .map_err(helm_err)
    }

    /// [`Self::deploy`] with `forward(namespace, pod, port)` opening each port-forward. The
    /// seam exists for tests: the websocket upgrade behind `K8sClient::port_forward` cannot run
    /// against a mock API server, so a test forwards to a real local OpenBao instead.
    async fn deploy_through<F, Fut>(
        &self,
        helm: &Helm,
        k8s: &K8sClient,
        options: BootstrapOptions,
        forward: F,
    ) -> Result<BootstrapReport, OpenbaoError>
    where
        F: Fn(String, String, u16) -> Fut,
        Fut: Future<Output = Result<PortForward, K8sError>>,
    {
        let span = tracing::info_span!(
            "openbao_deploy",
            release = %self.release,
            namespace = %self.namespace,
        );
        async {
            self.adopt_pods_for_parallel(k8s).await?;
            self.install(helm).await?;
            let mut report = self.bootstrap_through(k8s, options, forward).await?;
            report.notes.extend(self.roll_notice(k8s).await);
            Ok(report)
        }
        .instrument(span)
        .await
    }

    /// `podManagementPolicy` cannot change on an existing StatefulSet (the API server refuses
    /// the update): one an older deploy created with the chart's `OrderedReady` is deleted
    /// with `propagationPolicy: Orphan` before the upgrade — its pods keep running, sealed or
    /// not, and the StatefulSet helm creates next adopts them (same selector); the volumes stay.
    async fn adopt_pods_for_parallel(&self, k8s: &K8sClient) -> Result<(), OpenbaoError> {
        let (ns, name) = (self.namespace.as_str(), self.release.as_str());
        let kube_err = |what: String| {
            move |e| OpenbaoError::Kubernetes {
                what,
                source: Some(Box::new(e)),
            }
        };
        let sts = match crate::deploy::api::get_namespaced::<StatefulSet>(k8s, ns, name).await {
            Ok(Some(sts)) => sts,
            Ok(None) => return Ok(()),
            // Not knowing is no reason to stop: the install then says what is wrong.
            Err(e) => {
                tracing::warn!(statefulset = %format!("{ns}/{name}"), error = %crate::cnpg::retry::ErrorChain(&e),
                    "could not read OpenBao's StatefulSet before the upgrade");
                return Ok(());
            }
        };
        let policy = sts
            .spec
            .pod_management_policy
            .unwrap_or_else(|| "OrderedReady".to_owned());
        if policy == POD_MANAGEMENT_POLICY {
            return Ok(());
        }
        tracing::info!(statefulset = %format!("{ns}/{name}"), from = %policy, to = POD_MANAGEMENT_POLICY,
            "recreating OpenBao's StatefulSet for its new pod management policy (pods and volumes kept)");
        crate::deploy::api::delete_orphaning::<StatefulSet>(k8s, ns, name)
            .await
            .map_err(kube_err(format!(
                "deleting StatefulSet {ns}/{name} (orphaning its pods)"
            )))
    }

    /// The chart's StatefulSet updates `OnDelete` (chart openbao-0.29.2 `values.yaml` ~407,
    /// `server.updateStrategyType`): a new image or configuration changes the StatefulSet's
    /// `updateRevision` but restarts no pod. When a pod still runs an older revision (its
    /// `controller-revision-hash` label), returns the notice that says so and how to roll them;
    /// the deploy does not roll them itself.
    pub async fn roll_notice(&self, k8s: &K8sClient) -> Option<String> {
        match self.pods_behind(k8s).await {
            Ok(notice) => notice,
            // Informational only: a deploy that worked does not fail for it.
            Err(e) => {
                tracing::warn!(error = %crate::cnpg::retry::ErrorChain(&e),
                    "could not compare OpenBao's pods with the StatefulSet's revision");
                None
            }
        }
    }

    async fn pods_behind(&self, k8s: &K8sClient) -> Result<Option<String>, OpenbaoError> {
        let (ns, name) = (self.namespace.as_str(), self.release.as_str());
        let kube_err = |what: String| {
            move |e| OpenbaoError::Kubernetes {
                what,
                source: Some(Box::new(e)),
            }
        };
        let Some(sts) = crate::deploy::api::get_namespaced::<StatefulSet>(k8s, ns, name)
            .await
            .map_err(kube_err(format!("reading StatefulSet {ns}/{name}")))?
        else {
            return Ok(None);
        };
        let Some(update) = sts.status.and_then(|s| s.update_revision) else {
            return Ok(None);
        };
        let selector = format!("app.kubernetes.io/instance={name},component=server");
        let pods: Vec<Pod> = crate::deploy::api::list_namespaced(k8s, ns, &selector)
            .await
            .map_err(kube_err(format!("listing OpenBao's pods in {ns}")))?;
        let mut stale: Vec<String> = pods
            .iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("controller-revision-hash"))
                    .is_some_and(|rev| *rev != update)
            })
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        if stale.is_empty() {
            return Ok(None);
        }
        stale.sort();
        Ok(Some(format!(
            "OpenBao's image or configuration changed, but its StatefulSet updates OnDelete: \
             {} still run(s) the previous revision. Roll them by hand, one at a time: delete a \
             standby pod (`kubectl -n {ns} delete pod POD`; the active node last, after \
             `bao operator step-down`), re-run this deploy to unseal it, and wait until \
             `bao operator raft list-peers` shows it as a voter before the next",
            stale.join(", ")
        )))
    }

    async fn bootstrap_through<F, Fut>(
        &self,
        k8s: &K8sClient,
        options: BootstrapOptions,
        forward: F,
    ) -> Result<BootstrapReport, OpenbaoError>
    where
        F: Fn(String, String, u16) -> Fut,
        Fut: Future<Output = Result<PortForward, K8sError>>,
    {
        let pods = self.pods();
        // Every pod gets its own forward, kept open for the whole bootstrap.
        let mut forwards = Vec::with_capacity(pods.len());
        let mut urls = Vec::with_capacity(pods.len());
        for pod in &pods {
            let open = self.forward_to(k8s, pod, &forward).await?;
            let url = Url::parse(&open.local_url()).map_err(|e| OpenbaoError::InvalidUrl {
                url: open.local_url(),
                reason: e.to_string(),
            })?;
            self.wait_until_forward_answers(&url, pod).await?;
            forwards.push(open);
            urls.push(url);
        }
        let report = match urls.as_slice() {
            [one] => OpenbaoBootstrap::new(one, options)?.run().await?,
            // Init once (pod 0 when none is initialised), unseal every sealed pod, wait until
            // raft lists every pod as a voter and one is active.
            _ => {
                let cluster = OpenbaoClusterBootstrap::new(&urls, options)?.run().await?;
                for (pod, node) in pods.iter().zip(&cluster.nodes) {
                    if node.unsealed {
                        tracing::info!(pod = %pod, "unsealed OpenBao pod");
                    }
                }
                cluster.bootstrap
            }
        };
        drop(forwards);
        Ok(report)
    }

    /// Retries `sys/seal-status` through the forward while it fails at the transport level.
    ///
    /// *Running* includes containers still starting, and right after `k3d cluster start` the
    /// phase can be stale: the kubelet then refuses the forward and the client sees a bare EOF.
    /// Any HTTP answer (sealed or not) means the forward works.
    async fn wait_until_forward_answers(&self, url: &Url, pod: &str) -> Result<(), OpenbaoError> {
        let target = format!("{}/{pod}:{API_PORT}", self.namespace);
        let base = url.as_str().trim_end_matches('/').to_owned();
        let options = harmony_secret::ClientOptions::default();
        let attempts = self.forward_retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            // A fresh client per attempt: a connection the refused forward broke is not reused.
            let answer = match harmony_secret::OpenbaoClient::build(&base, &options) {
                Ok(client) => client
                    .with_timeout(FORWARD_PROBE_TIMEOUT)
                    .health()
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            match answer {
                // Any HTTP answer (sealed, uninitialised, standby) means the forward works.
                Ok(()) | Err(harmony_secret::SecretError::BadResponse { .. }) => return Ok(()),
                Err(e) if attempt >= attempts => {
                    return Err(OpenbaoError::Kubernetes {
                        what: format!(
                            "reaching OpenBao through the port-forward to {target} ({attempts} \
                             attempts, {} s apart; last: {}); the kubelet refuses forwards while \
                             the pod's containers are still starting: check the pod's events and \
                             re-run",
                            self.forward_retry.delay.as_secs(),
                            crate::cnpg::retry::ErrorChain(&e)
                        ),
                        source: None,
                    });
                }
                Err(e) => {
                    tracing::info!(
                        attempt,
                        attempts,
                        target = %target,
                        error = %crate::cnpg::retry::ErrorChain(&e),
                        "waiting for the port-forward to OpenBao to answer (containers still starting)"
                    );
                    tokio::time::sleep(self.forward_retry.delay).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn forward_to<F, Fut>(
        &self,
        k8s: &K8sClient,
        pod: &str,
        forward: &F,
    ) -> Result<PortForward, OpenbaoError>
    where
        F: Fn(String, String, u16) -> Fut,
        Fut: Future<Output = Result<PortForward, K8sError>>,
    {
        let ns = &self.namespace;
        k8s.wait_for_pod_running(ns, pod, self.pod_running_timeout)
            .await
            .map_err(|e| OpenbaoError::Kubernetes {
                what: format!("waiting for pod {ns}/{pod} to run"),
                source: Some(Box::new(e)),
            })?;
        forward(ns.clone(), pod.to_owned(), API_PORT)
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

    /// `deploy`'s glue end to end, with only the cluster replaced: a fake `helm` that records
    /// its argv and values file, a mock Kubernetes API answering the pod-Running wait, and a
    /// port-forward to a REAL sealed OpenBao (harmony-testkit) standing in for `openbao-0`.
    mod deploy_glue {
        use std::os::unix::fs::PermissionsExt as _;
        use std::path::Path;
        use std::sync::{Arc, Mutex};

        use anyhow::{Context as _, Result, ensure};
        use harmony_testkit::OpenbaoServer;
        use http::{Request, Response, StatusCode};
        use kube::client::Body;
        use serde_json::json;
        use tokio::net::TcpStream;
        use tracing_test::traced_test;

        use super::*;
        use crate::helm::KubeconfigFile;
        use crate::openbao::IMAGE_TAG;
        use crate::openbao::StateDir;

        const FAKE_HELM: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
for a in "$@"; do printf '%s\t' "$a" >> "$dir/calls"; done
printf '\n' >> "$dir/calls"
prev=""
for a in "$@"; do
  [ "$prev" = "--values" ] && cp "$a" "$dir/values.seen"
  prev="$a"
done
# helm v3.21.4 answers `status` of an absent release like this.
case " $* " in *" status "*) echo 'Error: release: not found' >&2; exit 1 ;; esac
exit 0
"#;

        fn fake_helm(dir: &Path) -> Helm {
            let bin = dir.join("helm");
            std::fs::write(&bin, FAKE_HELM).expect("write fake helm");
            std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755))
                .expect("chmod fake helm");
            std::fs::write(dir.join("kubeconfig"), "apiVersion: v1\nkind: Config\n")
                .expect("write kubeconfig");
            Helm::new(bin, KubeconfigFile::existing(dir.join("kubeconfig")))
        }

        fn helm_calls(dir: &Path) -> Vec<Vec<String>> {
            std::fs::read_to_string(dir.join("calls"))
                .unwrap_or_default()
                .lines()
                .map(|l| {
                    l.split('\t')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .collect()
        }

        /// Answers `runs` pod-Running waits for `openbao/openbao-0` with a Running, not Ready
        /// pod (a sealed OpenBao), checking each request is that pod's list.
        fn mock_api(runs: usize) -> (K8sClient, tokio::task::JoinHandle<Result<()>>) {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let server = tokio::spawn(async move {
                let mut answered = 0;
                while answered < runs {
                    let (request, send) =
                        tokio::time::timeout(Duration::from_secs(30), handle.next_request())
                            .await
                            .context("no pod wait within 30 s")?
                            .context("client dropped")?;
                    // A deploy reads the StatefulSet before the install and after the
                    // bootstrap; this cluster has none (a fresh install).
                    if request.uri().path()
                        == "/apis/apps/v1/namespaces/openbao/statefulsets/openbao"
                    {
                        ensure!(request.method() == http::Method::GET);
                        let status = json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "reason": "NotFound", "code": 404,
                            "message": "statefulsets.apps \"openbao\" not found",
                        });
                        let mut response =
                            Response::new(Body::from(serde_json::to_vec(&status).expect("JSON")));
                        *response.status_mut() = StatusCode::NOT_FOUND;
                        send.send_response(response);
                        continue;
                    }
                    answered += 1;
                    ensure!(request.uri().path() == "/api/v1/namespaces/openbao/pods");
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    ensure!(query.contains("metadata.name%3Dopenbao-0"), "{query}");
                    let list = json!({
                        "apiVersion": "v1", "kind": "PodList",
                        "metadata": {"resourceVersion": "7"},
                        "items": [{
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "openbao-0", "namespace": "openbao",
                                         "resourceVersion": "7"},
                            "spec": {"containers": [{"name": "openbao", "image": "openbao"}]},
                            "status": {"phase": "Running", "conditions":
                                [{"type": "Ready", "status": "False"}]},
                        }],
                    });
                    let mut response =
                        Response::new(Body::from(serde_json::to_vec(&list).expect("JSON")));
                    *response.status_mut() = StatusCode::OK;
                    send.send_response(response);
                }
                Ok(())
            });
            (
                K8sClient::new(kube::Client::new(service, "default")),
                server,
            )
        }

        type ForwardFuture =
            std::pin::Pin<Box<dyn Future<Output = Result<PortForward, K8sError>> + Send>>;

        /// A forward whose first `refusals` connections fail the way a kubelet refusing the
        /// forward does through kube-client 5.0.0 (`src/api/portforward.rs`: the websocket
        /// closes and the stream ends; the local client sees a bare EOF), then reach `bao`.
        fn refusing_forward(
            bao_addr: std::net::SocketAddr,
            refusals: usize,
            connects: Arc<Mutex<usize>>,
        ) -> impl Fn(String, String, u16) -> ForwardFuture {
            move |ns: String, pod: String, port: u16| {
                let connects = Arc::clone(&connects);
                Box::pin(async move {
                    let target = format!("{ns}/{pod}:{port}");
                    PortForward::with_connector(target.clone(), move || {
                        let target = target.clone();
                        let connects = Arc::clone(&connects);
                        async move {
                            let n = {
                                let mut c = connects.lock().expect("lock");
                                *c += 1;
                                *c
                            };
                            if n <= refusals {
                                return Err(K8sError::PortForwardNoStream { target });
                            }
                            TcpStream::connect(bao_addr)
                                .await
                                .map_err(|_| K8sError::PortForwardNoStream { target })
                        }
                    })
                    .await
                })
            }
        }

        /// A real sealed OpenBao and the socket address a forward should reach it at.
        async fn sealed_with_addr() -> Result<(OpenbaoServer, std::net::SocketAddr)> {
            let bao = OpenbaoServer::sealed().await?;
            let addr = Url::parse(bao.url())?
                .socket_addrs(|| None)?
                .into_iter()
                .next()
                .context("testkit URL has an address")?;
            Ok((bao, addr))
        }

        /// A mock API server for pod-Running waits of several pods: a pod in `running` is
        /// listed Running (not Ready: sealed); any other pod is listed absent and its watch is
        /// held unanswered, so the wait runs into its own timeout. Ends when the client is
        /// dropped and returns the pods asked for, in order.
        fn mock_api_for_pods(
            running: &'static [&'static str],
        ) -> (K8sClient, tokio::task::JoinHandle<Result<Vec<String>>>) {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let server = tokio::spawn(async move {
                let mut asked = Vec::new();
                let mut held = Vec::new();
                loop {
                    let next = tokio::time::timeout(Duration::from_secs(60), handle.next_request())
                        .await
                        .context("no request within 60 s")?;
                    let Some((request, send)) = next else {
                        return Ok(asked);
                    };
                    ensure!(request.uri().path() == "/api/v1/namespaces/openbao/pods");
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    if query.contains("watch=true") {
                        held.push(send);
                        continue;
                    }
                    let pod = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("fieldSelector=metadata.name%3D"))
                        .context("the wait lists one pod by name")?
                        .to_owned();
                    let items = if running.contains(&pod.as_str()) {
                        vec![json!({
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": pod, "namespace": "openbao",
                                         "resourceVersion": "7"},
                            "spec": {"containers": [{"name": "openbao", "image": "openbao"}]},
                            "status": {"phase": "Running", "conditions":
                                [{"type": "Ready", "status": "False"}]},
                        })]
                    } else {
                        Vec::new()
                    };
                    asked.push(pod);
                    let list = json!({
                        "apiVersion": "v1", "kind": "PodList",
                        "metadata": {"resourceVersion": "7"}, "items": items,
                    });
                    send.send_response(Response::new(Body::from(
                        serde_json::to_vec(&list).expect("JSON"),
                    )));
                }
            });
            (
                K8sClient::new(kube::Client::new(service, "default")),
                server,
            )
        }

        /// Forwards pod `openbao-<n>` to `nodes[n]`, recording each forward opened.
        fn forward_to_nodes(
            nodes: Vec<std::net::SocketAddr>,
            opened: Arc<Mutex<Vec<String>>>,
        ) -> impl Fn(String, String, u16) -> ForwardFuture {
            move |ns: String, pod: String, port: u16| {
                let opened = Arc::clone(&opened);
                let node = pod
                    .strip_prefix("openbao-")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| nodes.get(n).copied());
                Box::pin(async move {
                    let target = format!("{ns}/{pod}:{port}");
                    opened.lock().expect("lock").push(target.clone());
                    let Some(addr) = node else {
                        return Err(K8sError::PortForwardNoStream { target });
                    };
                    PortForward::with_connector(target.clone(), move || {
                        let target = target.clone();
                        async move {
                            TcpStream::connect(addr)
                                .await
                                .map_err(|_| K8sError::PortForwardNoStream { target })
                        }
                    })
                    .await
                })
            }
        }

        fn socket_addr(url: &str) -> Result<std::net::SocketAddr> {
            Url::parse(url)?
                .socket_addrs(|| None)?
                .into_iter()
                .next()
                .context("URL has an address")
        }

        async fn seal_status(url: &str) -> Result<serde_json::Value> {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?;
            Ok(http
                .get(format!("{url}/v1/sys/seal-status"))
                .send()
                .await?
                .json()
                .await?)
        }

        fn ha_score() -> OpenbaoScore {
            OpenbaoScore {
                profile: OpenbaoProfile::HighAvailability { replicas: 3 },
                pod_running_timeout: Duration::from_millis(400),
                forward_retry: RetryPolicy {
                    attempts: 10,
                    delay: Duration::from_millis(100),
                },
                ..OpenbaoScore::default()
            }
        }

        /// The `ha` bootstrap over the Kubernetes API: every pod is waited for by name and
        /// gets its own port-forward, here to one node of a REAL 3-node raft cluster; the
        /// first run inits once and unseals all three, a re-run changes nothing, and a pod
        /// that restarted sealed is unsealed by the next run.
        #[tokio::test]
        async fn ha_pods_are_bootstrapped_as_one_raft_cluster_through_one_forward_each()
        -> Result<()> {
            let mut cluster = harmony_testkit::OpenbaoCluster::start(3).await?;
            let nodes = cluster
                .urls()
                .iter()
                .map(|u| socket_addr(u))
                .collect::<Result<Vec<_>>>()?;
            let state = tempfile::tempdir()?;
            let mut options = BootstrapOptions::local(StateDir::new(state.path()));
            (options.shares, options.threshold) = (5, 3);
            options.revoke_root = true;
            let opened = Arc::new(Mutex::new(Vec::new()));
            let forward = forward_to_nodes(nodes, Arc::clone(&opened));
            let score = ha_score();
            let every_pod = ["openbao-0", "openbao-1", "openbao-2"];

            let (k8s, api) = mock_api_for_pods(&["openbao-0", "openbao-1", "openbao-2"]);
            let first = score
                .bootstrap_through(&k8s, options.clone(), &forward)
                .await?;
            assert!(first.initialised && first.unsealed, "{first:?}");
            drop(k8s);
            assert_eq!(api.await??, every_pod, "each pod is waited for by name");
            assert_eq!(
                *opened.lock().expect("lock"),
                every_pod.map(|p| format!("openbao/{p}:8200")),
                "one forward per pod"
            );
            for url in cluster.urls() {
                assert_eq!(seal_status(&url).await?["sealed"], false, "{url}");
            }
            let keys_file = StateDir::new(state.path()).keys_file();
            let keys = std::fs::read(&keys_file)?;

            let (k8s, api) = mock_api_for_pods(&["openbao-0", "openbao-1", "openbao-2"]);
            let again = score
                .bootstrap_through(&k8s, options.clone(), &forward)
                .await?;
            assert!(again.nothing_changed(), "a re-run converges: {again:?}");
            drop(k8s);
            assert_eq!(api.await??, every_pod);

            // openbao-2 restarts (sealed): the next run unseals it and never re-initialises.
            cluster.node_mut(2).stop();
            cluster.node_mut(2).restart().await?;
            assert_eq!(seal_status(&cluster.urls()[2]).await?["sealed"], true);
            let (k8s, api) = mock_api_for_pods(&["openbao-0", "openbao-1", "openbao-2"]);
            let after_restart = score.bootstrap_through(&k8s, options, &forward).await?;
            assert!(
                after_restart.unsealed && !after_restart.initialised,
                "{after_restart:?}"
            );
            drop(k8s);
            api.await??;
            assert_eq!(seal_status(&cluster.urls()[2]).await?["sealed"], false);
            assert_eq!(std::fs::read(&keys_file)?, keys, "keys file unchanged");
            Ok(())
        }

        #[tokio::test]
        async fn a_pod_that_does_not_run_is_named_and_nothing_is_initialised() -> Result<()> {
            let (bao, bao_addr) = sealed_with_addr().await?;
            let state = tempfile::tempdir()?;
            let options = BootstrapOptions::local(StateDir::new(state.path()));
            let opened = Arc::new(Mutex::new(Vec::new()));
            let forward = forward_to_nodes(vec![bao_addr], Arc::clone(&opened));
            let (k8s, api) = mock_api_for_pods(&["openbao-0"]);
            let err = ha_score()
                .bootstrap_through(&k8s, options, &forward)
                .await
                .expect_err("openbao-1 never runs");
            let text = crate::cnpg::retry::ErrorChain(&err).to_string();
            assert!(text.contains("openbao/openbao-1"), "{text}");
            assert!(text.contains("pod does not exist"), "{text}");
            drop(k8s);
            assert_eq!(api.await??, ["openbao-0", "openbao-1"]);
            assert_eq!(*opened.lock().expect("lock"), ["openbao/openbao-0:8200"]);
            // Every pod is reached before anything is initialised.
            assert_eq!(seal_status(bao.url()).await?["initialized"], false);
            Ok(())
        }

        #[tokio::test]
        async fn the_first_call_through_a_fresh_forward_is_retried_while_refused() -> Result<()> {
            let (_bao, bao_addr) = sealed_with_addr().await?;
            let state = tempfile::tempdir()?;
            let options = BootstrapOptions::local(StateDir::new(state.path()));
            let (k8s, api) = mock_api(1);
            let connects = Arc::new(Mutex::new(0));
            let score = OpenbaoScore {
                forward_retry: RetryPolicy {
                    attempts: 5,
                    delay: Duration::from_millis(20),
                },
                ..OpenbaoScore::default()
            };
            let forward = refusing_forward(bao_addr, 2, Arc::clone(&connects));
            let report = score.bootstrap_through(&k8s, options, &forward).await?;
            assert!(report.initialised && report.unsealed, "{report:?}");
            assert!(*connects.lock().expect("lock") > 2);
            api.await??;
            Ok(())
        }

        #[tokio::test]
        async fn a_forward_that_never_answers_is_a_bounded_clear_error() -> Result<()> {
            let (_bao, bao_addr) = sealed_with_addr().await?;
            let state = tempfile::tempdir()?;
            let options = BootstrapOptions::local(StateDir::new(state.path()));
            let (k8s, api) = mock_api(1);
            let connects = Arc::new(Mutex::new(0));
            let score = OpenbaoScore {
                forward_retry: RetryPolicy {
                    attempts: 3,
                    delay: Duration::from_millis(10),
                },
                ..OpenbaoScore::default()
            };
            let forward = refusing_forward(bao_addr, usize::MAX, Arc::clone(&connects));
            let err = score
                .bootstrap_through(&k8s, options, &forward)
                .await
                .expect_err("never answers");
            let text = err.to_string();
            assert!(text.contains("openbao/openbao-0:8200"), "{text}");
            assert!(text.contains("3 attempts"), "{text}");
            assert_eq!(*connects.lock().expect("lock"), 3, "bounded");
            api.await??;
            Ok(())
        }

        #[tokio::test]
        #[traced_test]
        async fn installs_the_pinned_chart_then_bootstraps_the_pod_through_the_forward()
        -> Result<()> {
            let (bao, bao_addr) = sealed_with_addr().await?;
            let helm_dir = tempfile::tempdir()?;
            let helm = fake_helm(helm_dir.path());
            let state = tempfile::tempdir()?;
            let options = BootstrapOptions::local(StateDir::new(state.path()));
            let (k8s, api) = mock_api(3);
            let forwarded = Arc::new(Mutex::new(Vec::new()));
            let forward = |ns: String, pod: String, port: u16| {
                let forwarded = Arc::clone(&forwarded);
                async move {
                    let target = format!("{ns}/{pod}:{port}");
                    forwarded.lock().expect("lock").push(target.clone());
                    PortForward::with_connector(target.clone(), move || {
                        let target = target.clone();
                        async move {
                            TcpStream::connect(bao_addr)
                                .await
                                .map_err(|_| K8sError::PortForwardNoStream { target })
                        }
                    })
                    .await
                }
            };
            let score = OpenbaoScore::default();

            let first = score
                .deploy_through(&helm, &k8s, options.clone(), &forward)
                .await?;
            assert!(
                first.initialised && first.unsealed && first.configured,
                "{first:?}"
            );
            assert!(!first.changes.is_empty(), "{first:?}");
            let second = score
                .deploy_through(&helm, &k8s, options.clone(), &forward)
                .await?;
            assert!(second.nothing_changed(), "re-run must converge: {second:?}");
            // The bootstrap alone (a second pass, e.g. for JWT auth) runs no helm.
            let third = score.bootstrap_through(&k8s, options, &forward).await?;
            assert!(third.nothing_changed(), "{third:?}");
            api.await??;

            // The real server ends initialised, unsealed and active.
            let health = reqwest::get(format!("{}/v1/sys/health", bao.url())).await?;
            assert_eq!(health.status().as_u16(), 200);
            let keys_file = StateDir::new(state.path()).keys_file();
            let mode = std::fs::metadata(&keys_file)?.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", keys_file.display());
            let keys: serde_json::Value = serde_json::from_slice(&std::fs::read(&keys_file)?)?;
            let root = keys["root_token"]
                .as_str()
                .context("root_token in keys file")?;
            assert!(!logs_contain(root), "the root token reached the logs");

            assert_eq!(
                *forwarded.lock().expect("lock"),
                ["openbao/openbao-0:8200"; 3]
            );
            let calls = helm_calls(helm_dir.path());
            // Per deploy: repo add, repo update, status (absent in this fake), upgrade --install.
            assert_eq!(calls.len(), 8, "{calls:?}");
            let kubeconfig = helm_dir.path().join("kubeconfig").display().to_string();
            let expect = |rest: &[&str]| {
                let mut v = vec!["--kubeconfig".to_owned(), kubeconfig.clone()];
                v.extend(rest.iter().map(|s| (*s).to_owned()));
                v
            };
            assert_eq!(
                calls[0],
                expect(&[
                    "repo",
                    "add",
                    OPENBAO_REPO_NAME,
                    OPENBAO_REPO_URL,
                    "--force-update"
                ])
            );
            assert_eq!(calls[1], expect(&["repo", "update"]));
            assert_eq!(calls[2][2..4], ["status", "openbao"]);
            let install = &calls[3];
            assert_eq!(
                install[2..9],
                [
                    "upgrade",
                    "--install",
                    "openbao",
                    OPENBAO_CHART,
                    "--namespace",
                    "openbao",
                    "--create-namespace",
                ]
            );
            let version = install
                .iter()
                .position(|a| a == "--version")
                .context("--version")?;
            assert_eq!(install[version + 1], CHART_VERSION);
            assert!(!install.contains(&"--wait".to_owned()), "{install:?}");

            let values: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(
                helm_dir.path().join("values.seen"),
            )?)?;
            assert_eq!(values["injector"]["enabled"], false);
            assert_eq!(values["server"]["image"]["tag"], IMAGE_TAG);
            assert_eq!(values["server"]["ha"]["raft"]["enabled"], true);
            Ok(())
        }

        /// A scripted API server: each `(method, path prefix, status, body)` answers the next
        /// request, which must match; returns each request's query and body.
        fn scripted_api(
            script: Vec<(&'static str, &'static str, u16, serde_json::Value)>,
        ) -> (K8sClient, tokio::task::JoinHandle<Result<Vec<String>>>) {
            let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let server = tokio::spawn(async move {
                let mut queries = Vec::new();
                for (method, path, status, body) in script {
                    let (request, send) =
                        tokio::time::timeout(Duration::from_secs(10), handle.next_request())
                            .await
                            .context("no request within 10 s")?
                            .context("client dropped")?;
                    ensure!(
                        request.method().as_str() == method
                            && request.uri().path().starts_with(path),
                        "expected {method} {path}, got {} {}",
                        request.method(),
                        request.uri()
                    );
                    let query = request.uri().query().unwrap_or_default().to_owned();
                    let body_sent = request
                        .into_body()
                        .collect_bytes()
                        .await
                        .context("request body")?;
                    queries.push(format!("{query} {}", String::from_utf8_lossy(&body_sent)));
                    let mut response =
                        Response::new(Body::from(serde_json::to_vec(&body).expect("JSON")));
                    *response.status_mut() = StatusCode::from_u16(status).expect("status");
                    send.send_response(response);
                }
                Ok(queries)
            });
            (
                K8sClient::new(kube::Client::new(service, "default")),
                server,
            )
        }

        const STS: &str = "/apis/apps/v1/namespaces/openbao/statefulsets/openbao";
        const PODS: &str = "/api/v1/namespaces/openbao/pods";

        fn statefulset(policy: &str, current: &str, update: &str) -> serde_json::Value {
            json!({
                "apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "openbao", "namespace": "openbao"},
                "spec": {"podManagementPolicy": policy, "serviceName": "openbao-internal",
                         "selector": {"matchLabels": {"app.kubernetes.io/instance": "openbao"}},
                         "updateStrategy": {"type": "OnDelete"},
                         "template": {"spec": {"containers": []}}},
                "status": {"replicas": 3, "currentRevision": current, "updateRevision": update},
            })
        }

        fn pods(revisions: &[(&str, &str)]) -> serde_json::Value {
            let items: Vec<serde_json::Value> = revisions
                .iter()
                .map(|(name, rev)| {
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "openbao",
                                     "labels": {"controller-revision-hash": rev,
                                                "component": "server"}},
                    })
                })
                .collect();
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
        }

        /// Chart openbao-0.29.2 `values.yaml` ~407: `updateStrategyType: OnDelete`. After an
        /// upgrade that changed the pod template, the StatefulSet's `updateRevision` is new
        /// and the pods keep their old `controller-revision-hash` until deleted.
        #[tokio::test]
        async fn pods_left_on_the_previous_revision_are_named_with_how_to_roll_them() -> Result<()>
        {
            let (k8s, api) = scripted_api(vec![
                (
                    "GET",
                    STS,
                    200,
                    statefulset("Parallel", "openbao-old", "openbao-new"),
                ),
                (
                    "GET",
                    PODS,
                    200,
                    pods(&[
                        ("openbao-0", "openbao-new"),
                        ("openbao-2", "openbao-old"),
                        ("openbao-1", "openbao-old"),
                    ]),
                ),
            ]);
            let notice = ha_score().roll_notice(&k8s).await.expect("a notice");
            let queries = api.await??;
            assert!(
                queries[1].contains("labelSelector=app.kubernetes.io%2Finstance%3Dopenbao"),
                "{queries:?}"
            );
            assert!(
                notice.contains("openbao-1, openbao-2 still run"),
                "{notice}"
            );
            assert!(!notice.contains("openbao-0"), "{notice}");
            for part in ["OnDelete", "step-down", "one at a time", "voter"] {
                assert!(notice.contains(part), "{part:?} missing: {notice}");
            }
            Ok(())
        }

        #[tokio::test]
        async fn no_notice_when_every_pod_runs_the_release() -> Result<()> {
            let (k8s, api) = scripted_api(vec![
                (
                    "GET",
                    STS,
                    200,
                    statefulset("Parallel", "openbao-new", "openbao-new"),
                ),
                (
                    "GET",
                    PODS,
                    200,
                    pods(&[("openbao-0", "openbao-new"), ("openbao-1", "openbao-new")]),
                ),
            ]);
            assert_eq!(ha_score().roll_notice(&k8s).await, None);
            api.await??;
            Ok(())
        }

        /// `podManagementPolicy` is immutable on a StatefulSet: one an older deploy made with
        /// `OrderedReady` is deleted orphaning its pods, so helm can create the new one.
        #[tokio::test]
        async fn an_ordered_ready_statefulset_is_deleted_orphaning_its_pods() -> Result<()> {
            let (k8s, api) = scripted_api(vec![
                ("GET", STS, 200, statefulset("OrderedReady", "r1", "r1")),
                ("DELETE", STS, 200, statefulset("OrderedReady", "r1", "r1")),
            ]);
            ha_score().adopt_pods_for_parallel(&k8s).await?;
            drop(k8s);
            let sent = api.await??;
            assert!(
                sent[1].contains(r#""propagationPolicy":"Orphan""#),
                "{sent:?}"
            );
            Ok(())
        }

        #[tokio::test]
        async fn a_parallel_statefulset_is_left_alone() -> Result<()> {
            let (k8s, api) =
                scripted_api(vec![("GET", STS, 200, statefulset("Parallel", "r1", "r1"))]);
            ha_score().adopt_pods_for_parallel(&k8s).await?;
            api.await??;
            // Nothing else was asked: the script is over and the client made no further call.
            Ok(())
        }
    }
}
