//! Watch-based waits with an outer timeout and a useful timeout message.
//!
//! kube's watchers never end by themselves (`await_condition` neither), so each wait here runs a
//! watch inside [`tokio::time::timeout`] and keeps a one-line description of the last state it saw.
//! That description — a pod's phase, its most recent condition and any container waiting reason —
//! is what the timeout error shows, because "timed out" alone sends people to `kubectl describe`.
//!
//! Watch errors are retried with kube's default backoff (they are usually a dropped connection)
//! and remembered for the timeout message, except 401/403, which waiting cannot fix.

use std::{fmt::Debug, pin::pin, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::Pod,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Resource,
    runtime::{
        WatchStreamExt,
        watcher::{self, Event, watch_object, watcher},
    },
};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::{K8sClient, K8sError};

impl K8sClient {
    /// Waits until pod `namespace/name` has condition `Ready=True` and returns it.
    ///
    /// A pod that does not exist yet is waited for too. On timeout the error says the pod's
    /// phase, its latest condition and any container's waiting reason.
    pub async fn wait_for_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Pod, K8sError> {
        let span =
            tracing::info_span!("k8s.wait_for_pod_ready", pod = %format!("{namespace}/{name}"));
        wait_for_named(
            Api::namespaced(self.client.clone(), namespace),
            name,
            format!("pod {namespace}/{name} to be Ready"),
            timeout,
            pod_is_ready,
            describe_pod,
        )
        .instrument(span)
        .await
    }

    /// Waits until pod `namespace/name` is in phase `Running` (not necessarily Ready: a sealed
    /// OpenBao is Running but never Ready) and returns it.
    pub async fn wait_for_pod_running(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Pod, K8sError> {
        let span =
            tracing::info_span!("k8s.wait_for_pod_running", pod = %format!("{namespace}/{name}"));
        wait_for_named(
            Api::namespaced(self.client.clone(), namespace),
            name,
            format!("pod {namespace}/{name} to be Running"),
            timeout,
            pod_is_running,
            describe_pod,
        )
        .instrument(span)
        .await
    }

    /// Waits until some pod in `namespace` matches the label `selector` (e.g.
    /// `app.kubernetes.io/name=zitadel`) and returns the first one seen. Pods already being
    /// deleted are skipped. Combine with [`K8sClient::wait_for_pod_ready`] on its name.
    pub async fn wait_for_pod_by_label(
        &self,
        namespace: &str,
        selector: &str,
        timeout: Duration,
    ) -> Result<Pod, K8sError> {
        let waiting_for = format!("a pod matching {selector} in namespace {namespace}");
        let span = tracing::info_span!("k8s.wait_for_pod_by_label", namespace, selector);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let wf = waiting_for.as_str();
        let watch = async move |last_seen: &mut String| {
            let mut stream =
                pin!(watcher(api, watcher::Config::default().labels(selector)).default_backoff());
            while let Some(item) = stream.next().await {
                match item {
                    Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                        if pod.metadata.deletion_timestamp.is_none() {
                            return Ok(pod);
                        }
                        *last_seen = format!(
                            "pod {} matched but is being deleted",
                            pod.metadata.name.as_deref().unwrap_or("?")
                        );
                    }
                    Ok(_) => {}
                    Err(err) => note_watch_error(err, wf, last_seen)?,
                }
            }
            Err(stream_ended(wf, timeout))
        };
        bounded(watch, "no pod matched yet", &waiting_for, timeout)
            .instrument(span)
            .await
    }

    /// Waits until CustomResourceDefinition `name` is `Established` and returns it.
    pub async fn wait_for_crd_established(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<CustomResourceDefinition, K8sError> {
        let span = tracing::info_span!("k8s.wait_for_crd_established", crd = name);
        wait_for_named(
            Api::all(self.client.clone()),
            name,
            format!("CRD {name} to be Established"),
            timeout,
            crd_is_established,
            |crd: Option<&CustomResourceDefinition>| match crd {
                None => "CRD does not exist".to_owned(),
                Some(_) => "CRD exists, not Established".to_owned(),
            },
        )
        .instrument(span)
        .await
    }
}

/// Watches one named object until `done` holds, under `timeout`.
async fn wait_for_named<K>(
    api: Api<K>,
    name: &str,
    waiting_for: String,
    timeout: Duration,
    done: fn(&K) -> bool,
    describe: fn(Option<&K>) -> String,
) -> Result<K, K8sError>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let wf = waiting_for.as_str();
    let watch = async move |last_seen: &mut String| {
        let mut stream = pin!(watch_object(api, name).default_backoff());
        while let Some(item) = stream.next().await {
            match item {
                Ok(Some(obj)) if done(&obj) => return Ok(obj),
                Ok(obj) => {
                    let state = describe(obj.as_ref());
                    if state != *last_seen {
                        tracing::info!(state = %state, "waiting for {wf}");
                    }
                    *last_seen = state;
                }
                Err(err) => note_watch_error(err, wf, last_seen)?,
            }
        }
        Err(stream_ended(wf, timeout))
    };
    bounded(
        watch,
        "no answer from the API server yet",
        &waiting_for,
        timeout,
    )
    .await
}

/// Runs `watch` under `timeout`; on timeout, builds the error from what the watch last saw.
///
/// The watch writes its latest observation into the string it is lent; that string outlives the
/// watch future, which the timeout drops, so it can still be read for the error.
async fn bounded<T>(
    watch: impl AsyncFnOnce(&mut String) -> Result<T, K8sError>,
    initially: &str,
    waiting_for: &str,
    timeout: Duration,
) -> Result<T, K8sError> {
    let mut last_seen = initially.to_owned();
    match tokio::time::timeout(timeout, watch(&mut last_seen)).await {
        Ok(result) => result,
        Err(_) => Err(K8sError::WaitTimeout {
            waiting_for: waiting_for.to_owned(),
            timeout,
            last_seen,
        }),
    }
}

/// Records a watch error for the timeout message; fails at once when retrying cannot help.
fn note_watch_error(
    err: watcher::Error,
    waiting_for: &str,
    last_seen: &mut String,
) -> Result<(), K8sError> {
    let permanent = match &err {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => {
            status.code == 401 || status.code == 403
        }
        _ => false,
    };
    if permanent {
        return Err(K8sError::Watch {
            resource: waiting_for.to_owned(),
            source: err,
        });
    }
    tracing::warn!(error = %err, "watch failed while waiting for {waiting_for}; retrying");
    // Keep the last observed object state and only the latest error, so repeated failures do
    // not grow the message.
    const MARK: &str = " (then a watch error: ";
    if let Some(at) = last_seen.find(MARK) {
        last_seen.truncate(at);
    }
    *last_seen = format!("{last_seen}{MARK}{err})");
    Ok(())
}

fn stream_ended(waiting_for: &str, timeout: Duration) -> K8sError {
    // kube's watcher streams are infinite; this is a defensive answer, not an expected path.
    K8sError::WaitTimeout {
        waiting_for: waiting_for.to_owned(),
        timeout,
        last_seen: "the watch stream ended unexpectedly".to_owned(),
    }
}

/// `Ready=True` among the pod's conditions (kube has no built-in pod-Ready condition).
pub(crate) fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

pub(crate) fn pod_is_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|phase| phase == "Running")
}

pub(crate) fn crd_is_established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

/// One line: phase, the most recently changed condition, and container waiting reasons.
pub(crate) fn describe_pod(pod: Option<&Pod>) -> String {
    let Some(pod) = pod else {
        return "pod does not exist".to_owned();
    };
    if pod.metadata.deletion_timestamp.is_some() {
        return "pod is being deleted".to_owned();
    }
    let Some(status) = pod.status.as_ref() else {
        return "pod has no status yet".to_owned();
    };
    let mut out = format!("phase {}", status.phase.as_deref().unwrap_or("Unknown"));
    // The most recent transition is the freshest news; among equals (or without timestamps),
    // the last listed one.
    let last = status.conditions.as_ref().and_then(|conds| {
        conds
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (c.last_transition_time.as_ref().map(|t| t.0), *i))
            .map(|(_, c)| c)
    });
    if let Some(c) = last {
        out.push_str(&format!("; last condition {}={}", c.type_, c.status));
        match (c.reason.as_deref(), c.message.as_deref()) {
            (Some(r), Some(m)) => out.push_str(&format!(" ({r}: {m})")),
            (Some(r), None) => out.push_str(&format!(" ({r})")),
            (None, Some(m)) => out.push_str(&format!(" ({m})")),
            (None, None) => {}
        }
    } else {
        out.push_str("; no conditions");
    }
    let waiting: Vec<String> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter_map(|cs| {
            let w = cs.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "{}: {}",
                cs.name,
                w.reason.as_deref().unwrap_or("waiting")
            ))
        })
        .collect();
    if !waiting.is_empty() {
        out.push_str(&format!("; containers waiting: {}", waiting.join(", ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "status": status,
        }))
        .expect("valid pod")
    }

    #[test]
    fn ready_needs_the_ready_condition_true() {
        let running_not_ready = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
        }));
        assert!(pod_is_running(&running_not_ready));
        assert!(!pod_is_ready(&running_not_ready));
        let ready = pod(json!({
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        }));
        assert!(pod_is_ready(&ready));
    }

    #[test]
    fn description_names_phase_latest_condition_and_waiting_containers() {
        let p = pod(json!({
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady",
                 "message": "containers with unready status: [app]",
                 "lastTransitionTime": "2024-01-01T00:00:05Z"},
                {"type": "Initialized", "status": "True",
                 "lastTransitionTime": "2024-01-01T00:00:01Z"},
            ],
            "containerStatuses": [{
                "name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}},
            }],
        }));
        assert_eq!(
            describe_pod(Some(&p)),
            "phase Pending; last condition ContainersReady=False (ContainersNotReady: \
             containers with unready status: [app]); containers waiting: app: ImagePullBackOff"
        );
        assert_eq!(describe_pod(None), "pod does not exist");
    }
}
