//! K8sClient against a real cluster: the paths the mocks cannot reach (the websocket upgrade
//! behind exec and port-forward, real watch streams).
//!
//! Needs Docker and a k3d (or any) cluster in the current kubeconfig context:
//!
//! ```text
//! k3d cluster create harmony-k8s-test
//! cargo test -p harmony-k8s --test live -- --ignored --test-threads=1
//! k3d cluster delete harmony-k8s-test
//! ```
//!
//! The client is built from `KUBECONFIG` / `~/.kube/config` and its current context. The tests
//! create and delete their own namespaces; they expect a k3s-style CoreDNS in `kube-system`.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use harmony_k8s::{ExecStatus, K8sClient};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const WAIT: Duration = Duration::from_secs(180);

async fn client() -> Result<K8sClient> {
    K8sClient::try_default()
        .await
        .context("no cluster: create one with `k3d cluster create harmony-k8s-test`")
}

/// A namespace with one busybox pod that sleeps, Ready; deleted by the caller.
async fn sleeper(k8s: &K8sClient, namespace: &str) -> Result<Pod> {
    k8s.ensure_namespace(namespace).await?;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper", "labels": {"app": "sleeper"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c", "sleep 3600"],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
            }],
        },
    }))?;
    k8s.apply(&pod, Some(namespace)).await?;
    k8s.wait_for_pod_by_label(namespace, "app=sleeper", WAIT)
        .await?;
    Ok(k8s.wait_for_pod_ready(namespace, "sleeper", WAIT).await?)
}

#[tokio::test]
#[ignore = "needs Docker + k3d"]
async fn coredns_becomes_ready() -> Result<()> {
    let k8s = client().await?;
    let found = k8s
        .wait_for_pod_by_label("kube-system", "k8s-app=kube-dns", WAIT)
        .await?;
    let name = found.metadata.name.context("pods have names")?;
    let ready = k8s.wait_for_pod_ready("kube-system", &name, WAIT).await?;
    let phase = ready.status.and_then(|s| s.phase);
    ensure!(phase.as_deref() == Some("Running"), "phase {phase:?}");
    Ok(())
}

#[tokio::test]
#[ignore = "needs Docker + k3d"]
async fn exec_captures_output_and_exit_codes() -> Result<()> {
    let k8s = client().await?;
    let ns = "harmony-k8s-live-exec";
    sleeper(&k8s, ns).await?;

    let out = k8s
        .exec_pod_capture_output(ns, "sleeper", Some("main"), &["echo", "hello from the pod"])
        .await?;
    ensure!(out.status == ExecStatus::Success, "{out:?}");
    ensure!(
        out.stdout == "hello from the pod\n",
        "stdout {:?}",
        out.stdout
    );

    let out = k8s
        .exec_pod_capture_output(ns, "sleeper", None, &["sh", "-c", "echo oops >&2; exit 3"])
        .await?;
    ensure!(
        matches!(out.status, ExecStatus::Failed { code: Some(3), .. }),
        "{out:?}"
    );
    ensure!(out.stderr == "oops\n", "stderr {:?}", out.stderr);

    // More output than kube's pipe buffers hold, on both streams at once.
    let out = k8s
        .exec_pod_capture_output(
            ns,
            "sleeper",
            None,
            &["sh", "-c", "seq 1 200000; seq 1 200000 >&2"],
        )
        .await?;
    ensure!(out.status.is_success(), "{out:?}");
    ensure!(out.stdout.lines().count() == 200_000 && out.stderr.lines().count() == 200_000);

    let out = k8s
        .exec_pod_capture_output(ns, "sleeper", None, &["no-such-program"])
        .await?;
    ensure!(matches!(out.status, ExecStatus::Failed { .. }), "{out:?}");

    k8s.delete_resource::<Namespace>(ns, None).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs Docker + k3d"]
async fn port_forward_reaches_coredns_health() -> Result<()> {
    let k8s = client().await?;
    let pod = k8s
        .wait_for_pod_by_label("kube-system", "k8s-app=kube-dns", WAIT)
        .await?;
    let name = pod.metadata.name.context("pods have names")?;
    k8s.wait_for_pod_ready("kube-system", &name, WAIT).await?;

    // CoreDNS serves its health endpoint on 8080.
    let forward = k8s.port_forward("kube-system", &name, 8080).await?;
    for _ in 0..2 {
        let mut conn = TcpStream::connect(forward.local_addr()).await?;
        conn.write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(30), conn.read_to_string(&mut response))
            .await
            .context("no answer through the port-forward within 30 s")??;
        ensure!(
            response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
            "{response}"
        );
        ensure!(response.ends_with("OK"), "{response}");
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs Docker + k3d"]
async fn namespace_delete_is_idempotent() -> Result<()> {
    let k8s = client().await?;
    let ns = "harmony-k8s-live-delete";
    k8s.ensure_namespace(ns).await?;
    k8s.ensure_namespace(ns).await?;
    k8s.delete_resource::<Namespace>(ns, None).await?;
    // Deleting again (Terminating or gone) is still fine.
    k8s.delete_resource::<Namespace>(ns, None).await?;
    // And a pod that never existed.
    k8s.delete_resource::<Pod>("never-existed", Some("default"))
        .await?;

    // The namespace goes away (bounded wait, namespace deletion is asynchronous).
    let namespaces: Api<Namespace> = Api::all(k8s.kube().clone());
    for _ in 0..120 {
        if namespaces.get_opt(ns).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("namespace {ns} still exists after 120 s")
}
