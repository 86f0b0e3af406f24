//! CloudNativePG: rendered operator values and `Cluster` (snapshots) and the fresh-client retry
//! for the CRD-registration race (fake factories: the Kubernetes API cannot run here).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use harmony::cnpg::{
    CLUSTER_CRD, CnpgOperatorValues, PostgresCluster, RetryPolicy, retry_with_fresh_client,
};
use tracing_test::traced_test;

#[test]
fn operator_values_snapshot() {
    insta::assert_yaml_snapshot!(CnpgOperatorValues::default());
}

#[test]
fn cluster_manifest_snapshot() {
    let manifest = PostgresCluster::default().manifest();
    insta::assert_yaml_snapshot!(manifest);
}

/// The `ha` profile's database: three instances and the operator's disruption budgets.
#[test]
fn ha_cluster_manifest_snapshot() {
    let stack = harmony::deploy::Stack::new(harmony::deploy::Profile::Ha, None);
    let m = serde_json::to_value(stack.postgres.manifest()).expect("json");
    assert_eq!(m["spec"]["instances"], 3);
    assert_eq!(m["spec"]["enablePDB"], true);
    // Zitadel's database is this cluster's.
    assert_eq!(stack.zitadel.database, stack.postgres);
    insta::assert_yaml_snapshot!(stack.postgres.manifest());
}

#[test]
fn cluster_is_small_and_lets_cnpg_own_credentials() {
    let m = serde_json::to_value(PostgresCluster::default().manifest()).expect("json");
    assert_eq!(m["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(m["kind"], "Cluster");
    assert_eq!(m["spec"]["instances"], 1);
    assert!(
        m["spec"].get("enablePDB").is_none(),
        "local: the operator's default"
    );
    // Zitadel never connects as the superuser (see tests/zitadel.rs): CNPG keeps it without a
    // password (cloudnative-pg v1.30.0 `api/v1/cluster_types.go`, `enableSuperuserAccess`
    // default false).
    assert_eq!(m["spec"]["enableSuperuserAccess"], false);
    assert_eq!(m["spec"]["bootstrap"]["initdb"]["owner"], "zitadel");
    // No password anywhere: CNPG generates them into <cluster>-app / <cluster>-superuser.
    assert!(!m.to_string().to_lowercase().contains("password"), "{m}");
}

/// What the fake API server knows: after how many client constructions the CRD is discoverable.
#[derive(Debug, thiserror::Error)]
enum FakeError {
    #[error("the server could not find the requested resource (CRD {0} not in discovery)")]
    CrdMissing(&'static str),
}

/// A client that, like kube's, snapshots discovery when it is built.
struct FakeClient {
    crd_in_discovery: bool,
}

impl FakeClient {
    async fn create_cluster(&self) -> Result<&'static str, FakeError> {
        if self.crd_in_discovery {
            Ok("created")
        } else {
            Err(FakeError::CrdMissing(CLUSTER_CRD))
        }
    }
}

/// A factory whose `n`-th client (1-based) sees the CRD when `n > missing_for`.
fn factory(
    built: Arc<AtomicU32>,
    missing_for: u32,
) -> impl Fn() -> std::future::Ready<Result<FakeClient, FakeError>> {
    move || {
        let n = built.fetch_add(1, Ordering::SeqCst) + 1;
        std::future::ready(Ok(FakeClient {
            crd_in_discovery: n > missing_for,
        }))
    }
}

#[tokio::test]
#[traced_test]
async fn crd_missing_twice_then_present_succeeds_on_third_attempt_with_fresh_clients() {
    let built = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let calls_in_op = calls.clone();
    let out = retry_with_fresh_client(
        RetryPolicy::immediate(5),
        "CRD clusters.postgresql.cnpg.io",
        factory(built.clone(), 2),
        move |client: FakeClient| {
            calls_in_op.fetch_add(1, Ordering::SeqCst);
            async move { client.create_cluster().await }
        },
    )
    .await
    .expect("third attempt succeeds");
    assert_eq!(out, "created");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "exactly three attempts");
    assert_eq!(
        built.load(Ordering::SeqCst),
        3,
        "a new client for every attempt"
    );
    // Each failed attempt is logged with the error it saw.
    assert!(logs_contain("attempt=1"));
    assert!(logs_contain("attempt=2"));
    assert!(logs_contain("not in discovery"));
    assert!(logs_contain("retrying with a fresh client"));
}

#[tokio::test]
#[traced_test]
async fn crd_always_missing_fails_after_the_bound_naming_the_crd() {
    let built = Arc::new(AtomicU32::new(0));
    let started = std::time::Instant::now();
    let err = retry_with_fresh_client(
        RetryPolicy {
            attempts: 4,
            delay: Duration::from_millis(10),
        },
        "CRD clusters.postgresql.cnpg.io to be established",
        factory(built.clone(), u32::MAX),
        |client: FakeClient| async move { client.create_cluster().await },
    )
    .await
    .expect_err("never succeeds");
    assert_eq!(built.load(Ordering::SeqCst), 4, "bounded: four attempts");
    assert_eq!(err.attempts, 4);
    assert!(
        started.elapsed() >= Duration::from_millis(30),
        "waited between attempts"
    );
    let msg = err.to_string();
    assert!(msg.contains(CLUSTER_CRD), "{msg}");
    assert!(msg.contains("after 4 attempts"), "{msg}");
    assert!(matches!(err.last, FakeError::CrdMissing(crd) if crd == CLUSTER_CRD));
    assert!(logs_contain("giving up"));
}

#[tokio::test]
async fn a_failing_factory_counts_as_a_failed_attempt() {
    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    let err = retry_with_fresh_client(
        RetryPolicy::immediate(3),
        "a Kubernetes client",
        move || {
            t.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err::<FakeClient, _>(FakeError::CrdMissing("none")))
        },
        |_client: FakeClient| async { Ok::<(), FakeError>(()) },
    )
    .await
    .expect_err("factory never works");
    assert_eq!(tries.load(Ordering::SeqCst), 3);
    assert!(err.to_string().contains("a Kubernetes client"));
}

// ---------------------------------------------------------------------------------------------
// The real `CnpgScore::apply_cluster` against a scripted Kubernetes API, one mock per client.

mod zitadel_support;

use std::sync::Mutex;

use anyhow::{Result, ensure};
use harmony::cnpg::{CnpgError, CnpgScore};
use http::{Method, StatusCode};
use serde_json::json;
use zitadel_support::{body_json, mock_client, next_request, not_found, query, respond};

const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusters.postgresql.cnpg.io";

fn established_crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": CLUSTER_CRD},
        "spec": {"group": "postgresql.cnpg.io", "scope": "Namespaced",
                 "names": {"plural": "clusters", "kind": "Cluster"}, "versions": []},
        "status": {"conditions": [{"type": "Established", "status": "True"}]},
    })
}

/// The API server as client number `n` sees it: the CRD is missing for the first `missing_for`.
async fn api_for_client(
    n: u32,
    missing_for: u32,
    mut server: zitadel_support::ApiServer,
) -> Result<()> {
    let (request, send) = next_request(&mut server).await?;
    ensure!(request.uri().path() == CRD_PATH, "{}", request.uri());
    if n <= missing_for {
        not_found(
            send,
            "customresourcedefinitions \"clusters.postgresql.cnpg.io\"",
        );
        return Ok(());
    }
    respond(send, StatusCode::OK, &established_crd());

    let (request, send) = next_request(&mut server).await?;
    ensure!(request.method() == Method::POST && request.uri().path() == "/api/v1/namespaces");
    respond(
        send,
        StatusCode::CREATED,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zitadel"}}),
    );

    let (request, send) = next_request(&mut server).await?;
    ensure!(
        request.method() == Method::PATCH,
        "server-side apply is a PATCH"
    );
    ensure!(
        request.uri().path()
            == "/apis/postgresql.cnpg.io/v1/namespaces/zitadel/clusters/zitadel-pg",
        "{}",
        request.uri()
    );
    let q = query(&request);
    ensure!(
        q.contains("fieldManager=harmony") && q.contains("force=true"),
        "{q}"
    );
    let mut body = body_json(request).await?;
    ensure!(
        body["apiVersion"] == "postgresql.cnpg.io/v1" && body["kind"] == "Cluster",
        "{body}"
    );
    ensure!(
        body["spec"]["bootstrap"]["initdb"]["database"] == "zitadel",
        "{body}"
    );
    body["status"] = json!({"phase": "Setting up primary"});
    respond(send, StatusCode::OK, &body);
    Ok(())
}

/// The scripted API servers started so far, to be joined (and their checks surfaced) at the end.
type Servers = Arc<Mutex<Vec<tokio::task::JoinHandle<Result<()>>>>>;

/// A factory of mock clients; each one gets its own scripted API server task.
fn mock_factory(
    missing_for: u32,
) -> (
    impl Fn() -> std::future::Ready<Result<harmony_k8s::K8sClient, harmony_k8s::K8sError>>,
    Arc<AtomicU32>,
    Servers,
) {
    let built = Arc::new(AtomicU32::new(0));
    let servers = Arc::new(Mutex::new(Vec::new()));
    let (b, s) = (built.clone(), servers.clone());
    let factory = move || {
        let n = b.fetch_add(1, Ordering::SeqCst) + 1;
        let (client, server) = mock_client();
        s.lock()
            .expect("lock")
            .push(tokio::spawn(api_for_client(n, missing_for, server)));
        std::future::ready(Ok(client))
    };
    (factory, built, servers)
}

#[tokio::test]
#[traced_test]
async fn cluster_is_applied_on_the_third_fresh_client_after_the_crd_appears() -> Result<()> {
    let (factory, built, servers) = mock_factory(2);
    let score = CnpgScore {
        retry: RetryPolicy::immediate(5),
        ..CnpgScore::default()
    };
    score.apply_cluster(&factory).await?;
    assert_eq!(built.load(Ordering::SeqCst), 3);
    let handles = std::mem::take(&mut *servers.lock().expect("lock"));
    for h in handles {
        h.await??;
    }
    assert!(logs_contain("is not established yet"));
    Ok(())
}

#[tokio::test]
async fn cluster_apply_gives_up_after_the_bound_naming_the_crd() -> Result<()> {
    let (factory, built, servers) = mock_factory(u32::MAX);
    let score = CnpgScore {
        retry: RetryPolicy::immediate(3),
        ..CnpgScore::default()
    };
    let err = score
        .apply_cluster(&factory)
        .await
        .expect_err("never there");
    assert_eq!(built.load(Ordering::SeqCst), 3);
    let msg = err.to_string();
    assert!(
        msg.contains(CLUSTER_CRD) && msg.contains("after 3 attempts"),
        "{msg}"
    );
    let CnpgError::Exhausted(e) = &err else {
        panic!("expected Exhausted, got {err:?}");
    };
    assert!(matches!(e.last, CnpgError::CrdNotEstablished { crd } if crd == CLUSTER_CRD));
    let handles = std::mem::take(&mut *servers.lock().expect("lock"));
    for h in handles {
        h.await??;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Readiness: the `Cluster`'s status, never the pod `<cluster>-1`

const HA_CLUSTER_PATH: &str = "/apis/postgresql.cnpg.io/v1/namespaces/zitadel/clusters/zitadel-pg";

/// A `Cluster` as the operator reports it (cloudnative-pg v1.30.0 `api/v1/cluster_types.go`,
/// `ClusterStatus`: `instances`, `readyInstances`, `currentPrimary`, `phase`).
fn cluster_with_status(ready: u32, primary: &str, phase: &str) -> serde_json::Value {
    let mut m = serde_json::to_value(PostgresCluster::ha().manifest()).expect("json");
    m["status"] = json!({
        "instances": 3, "readyInstances": ready, "currentPrimary": primary, "phase": phase,
        "instanceNames": ["zitadel-pg-2", "zitadel-pg-3", "zitadel-pg-4"],
    });
    m
}

fn app_secret() -> serde_json::Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "zitadel-pg-app", "namespace": "zitadel"},
        "data": {"password": base64::engine::general_purpose::STANDARD.encode("pg-secret")},
    })
}

/// Instance 1 was replaced long ago: the pods are `-2`, `-3`, `-4` and `-3` is the primary. The
/// wait reads the `Cluster` (twice: first 2 of 3 Ready) and the owner's Secret, and never asks
/// for a pod.
#[tokio::test]
async fn readiness_follows_the_cluster_status_when_the_primary_is_instance_3() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(
            request.method() == Method::GET && request.uri().path() == HA_CLUSTER_PATH,
            "{} {}",
            request.method(),
            request.uri()
        );
        respond(
            send,
            StatusCode::OK,
            &cluster_with_status(2, "zitadel-pg-3", "Creating a new replica"),
        );
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.uri().path() == HA_CLUSTER_PATH, "{}", request.uri());
        respond(
            send,
            StatusCode::OK,
            &cluster_with_status(3, "zitadel-pg-3", "Cluster in healthy state"),
        );
        let (request, send) = next_request(&mut server).await?;
        ensure!(
            request.uri().path() == "/api/v1/namespaces/zitadel/secrets/zitadel-pg-app",
            "{}",
            request.uri()
        );
        respond(send, StatusCode::OK, &app_secret());
        zitadel_support::no_more_requests(&mut server).await
    });
    let client = Mutex::new(Some(client));
    // One attempt: one client.
    let connect = || {
        let c = client.lock().expect("lock").take().expect("one client");
        std::future::ready(Ok::<_, harmony_k8s::K8sError>(c))
    };
    let score = CnpgScore {
        cluster: PostgresCluster::ha(),
        retry: RetryPolicy::immediate(1),
        ready_attempt_timeout: Duration::from_secs(30),
        ready_poll_interval: Duration::ZERO,
        ..CnpgScore::default()
    };
    score.wait_ready(&connect).await?;
    api.await??;
    Ok(())
}

/// A `Cluster` that never gets its instances Ready is a bounded error naming the count, the
/// primary and the phase.
#[tokio::test]
async fn a_cluster_that_stays_unready_names_its_status() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::OK,
            &cluster_with_status(1, "", "Setting up primary"),
        );
        zitadel_support::no_more_requests(&mut server).await
    });
    let client = Mutex::new(Some(client));
    // One attempt: one client.
    let connect = || {
        let c = client.lock().expect("lock").take().expect("one client");
        std::future::ready(Ok::<_, harmony_k8s::K8sError>(c))
    };
    let score = CnpgScore {
        cluster: PostgresCluster::ha(),
        retry: RetryPolicy::immediate(1),
        ready_attempt_timeout: Duration::ZERO,
        ready_poll_interval: Duration::ZERO,
        ..CnpgScore::default()
    };
    let err = score.wait_ready(&connect).await.expect_err("never ready");
    let CnpgError::Exhausted(e) = &err else {
        panic!("expected Exhausted, got {err:?}");
    };
    let msg = e.last.to_string();
    assert!(
        msg.contains("1 of 3 instances") && msg.contains("primary none"),
        "{msg}"
    );
    assert!(msg.contains("Setting up primary"), "{msg}");
    api.await??;
    Ok(())
}
