//! K8sClient against a mocked Kubernetes API (`tower_test`), the way kube-rs tests itself.
//!
//! Each test plays the API server: it takes the requests the client sends, checks method, URL,
//! query and headers, and answers with the JSON a real API server would send (lists, watch event
//! lines, `Status` errors). What this cannot cover — the websocket upgrade behind exec and
//! port-forward — is covered by the exec status unit tests, the port-forward loop tests and the
//! `#[ignore]` live tests.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use harmony_k8s::{K8sClient, K8sError};
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::{
    admissionregistration::v1::MutatingWebhookConfiguration,
    core::v1::{ConfigMap, Namespace, Pod},
};
use kube::client::Body;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (K8sClient, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        K8sClient::new(kube::Client::new(service, "default")),
        handle,
    )
}

async fn next_request(
    server: &mut ApiServer,
) -> Result<(Request<Body>, SendResponse<Response<Body>>)> {
    tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .context("the client sent no request within 5 s")?
        .context("the client dropped the service")
}

fn respond(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("JSON serialises");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    send.send_response(response);
}

fn status_error(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

fn pod(name: &str, resource_version: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "openbao", "resourceVersion": resource_version,
                     "labels": {"app.kubernetes.io/name": "openbao"}},
        "spec": {"containers": [{"name": "openbao", "image": "openbao:2.7.2"}]},
        "status": status,
    })
}

fn pod_list(resource_version: &str, items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PodList",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    })
}

/// Watch responses are newline-separated JSON events.
fn watch_lines(events: &[(&str, Value)]) -> Body {
    let mut out = Vec::new();
    for (kind, object) in events {
        serde_json::to_writer(&mut out, &json!({"type": kind, "object": object}))
            .expect("JSON serialises");
        out.push(b'\n');
    }
    Body::from(out)
}

fn query(request: &Request<Body>) -> String {
    request.uri().query().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn pod_becomes_ready_after_a_few_watch_events() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::GET, "list is a GET");
        ensure!(request.uri().path() == "/api/v1/namespaces/openbao/pods");
        let q = query(&request);
        ensure!(q.contains("fieldSelector=metadata.name%3Dopenbao-0"), "{q}");
        ensure!(!q.contains("watch=true"), "first call lists: {q}");
        let pending = pod("openbao-0", "10", json!({"phase": "Pending"}));
        respond(send, StatusCode::OK, &pod_list("10", vec![pending]));

        let (request, send) = next_request(&mut server).await?;
        let q = query(&request);
        ensure!(q.contains("watch=true"), "second call watches: {q}");
        ensure!(
            q.contains("resourceVersion=10"),
            "watch resumes from the list: {q}"
        );
        let running = pod(
            "openbao-0",
            "11",
            json!({"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}),
        );
        let ready = pod(
            "openbao-0",
            "12",
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}),
        );
        send.send_response(Response::new(watch_lines(&[
            ("MODIFIED", running),
            ("MODIFIED", ready),
        ])));
        Ok::<_, anyhow::Error>(server)
    });

    let pod = client
        .wait_for_pod_ready("openbao", "openbao-0", Duration::from_secs(10))
        .await?;
    assert_eq!(pod.metadata.resource_version.as_deref(), Some("12"));
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn wait_for_running_accepts_a_running_pod_that_is_not_ready() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        let sealed = pod(
            "openbao-0",
            "5",
            json!({"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "False"}]}),
        );
        respond(send, StatusCode::OK, &pod_list("5", vec![sealed]));
        Ok::<_, anyhow::Error>(server)
    });
    let pod = client
        .wait_for_pod_running("openbao", "openbao-0", Duration::from_secs(10))
        .await?;
    assert_eq!(pod.metadata.resource_version.as_deref(), Some("5"));
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn pod_never_ready_times_out_naming_its_phase_and_last_condition() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        let unschedulable = pod(
            "openbao-0",
            "7",
            json!({"phase": "Pending",
                   "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
        );
        respond(send, StatusCode::OK, &pod_list("7", vec![unschedulable]));
        // The watch is accepted but nothing ever changes: keep its responder alive (unanswered)
        // so the client waits until its own timeout.
        let (request, send) = next_request(&mut server).await?;
        ensure!(query(&request).contains("watch=true"));
        Ok::<_, anyhow::Error>((server, send))
    });

    let err = client
        .wait_for_pod_ready("openbao", "openbao-0", Duration::from_millis(500))
        .await
        .expect_err("the pod never becomes Ready");
    let shown = err.to_string();
    assert!(matches!(err, K8sError::WaitTimeout { .. }), "{err:?}");
    assert_eq!(
        shown,
        "timed out after 500ms waiting for pod openbao/openbao-0 to be Ready; last seen: phase \
         Pending; last condition PodScheduled=False (Unschedulable: 0/1 nodes are available: 1 \
         Insufficient memory.)"
    );
    let _keep_alive = api_server.await??;
    Ok(())
}

#[tokio::test]
async fn a_missing_pod_times_out_saying_it_does_not_exist() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        respond(send, StatusCode::OK, &pod_list("3", vec![]));
        let (_, send) = next_request(&mut server).await?;
        Ok::<_, anyhow::Error>((server, send))
    });
    let err = client
        .wait_for_pod_ready("openbao", "openbao-0", Duration::from_millis(300))
        .await
        .expect_err("no pod, no Ready");
    assert!(
        err.to_string().ends_with("last seen: pod does not exist"),
        "{err}"
    );
    let _keep_alive = api_server.await??;
    Ok(())
}

#[tokio::test]
async fn forbidden_watch_fails_at_once_instead_of_waiting() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::FORBIDDEN,
            &status_error(
                403,
                "Forbidden",
                "pods is forbidden: User \"dev\" cannot list resource",
            ),
        );
        Ok::<_, anyhow::Error>(server)
    });
    let started = std::time::Instant::now();
    let err = client
        .wait_for_pod_ready("openbao", "openbao-0", Duration::from_secs(30))
        .await
        .expect_err("403 cannot be waited out");
    assert!(matches!(err, K8sError::Watch { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn wait_by_label_returns_the_first_pod_that_appears() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        let q = query(&request);
        ensure!(
            q.contains("labelSelector=app.kubernetes.io%2Fname%3Dopenbao"),
            "selector is sent: {q}"
        );
        respond(send, StatusCode::OK, &pod_list("20", vec![]));
        let (_, send) = next_request(&mut server).await?;
        let created = pod("openbao-0", "21", json!({"phase": "Pending"}));
        send.send_response(Response::new(watch_lines(&[("ADDED", created)])));
        Ok::<_, anyhow::Error>(server)
    });
    let pod = client
        .wait_for_pod_by_label(
            "openbao",
            "app.kubernetes.io/name=openbao",
            Duration::from_secs(10),
        )
        .await?;
    assert_eq!(pod.metadata.name.as_deref(), Some("openbao-0"));
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn deleting_a_missing_resource_succeeds() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::DELETE);
        ensure!(request.uri().path() == "/api/v1/namespaces/openbao/pods/openbao-0");
        respond(
            send,
            StatusCode::NOT_FOUND,
            &status_error(404, "NotFound", "pods \"openbao-0\" not found"),
        );
        Ok::<_, anyhow::Error>(server)
    });
    client
        .delete_resource::<Pod>("openbao-0", Some("openbao"))
        .await?;
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn cluster_scoped_delete_hits_the_cluster_url() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::DELETE);
        ensure!(
            request.uri().path()
                == "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/cnpg-mutating-webhook-configuration",
            "got {}",
            request.uri()
        );
        respond(
            send,
            StatusCode::OK,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        );
        Ok::<_, anyhow::Error>(server)
    });
    client
        .delete_resource::<MutatingWebhookConfiguration>(
            "cnpg-mutating-webhook-configuration",
            None,
        )
        .await?;
    api_server.await??;

    // A namespace for a cluster-scoped kind is refused before any request is sent.
    let (client, _server) = mock_client();
    let err = client
        .delete_resource::<MutatingWebhookConfiguration>("x", Some("default"))
        .await
        .expect_err("cluster-scoped kinds take no namespace");
    assert!(
        matches!(err, K8sError::ClusterScopedWithNamespace { .. }),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn delete_reports_errors_other_than_not_found() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::FORBIDDEN,
            &status_error(403, "Forbidden", "namespaces \"zitadel\" is forbidden"),
        );
        Ok::<_, anyhow::Error>(server)
    });
    let err = client
        .delete_resource::<Namespace>("zitadel", None)
        .await
        .expect_err("403 is an error");
    assert_eq!(
        err.to_string(),
        "Kubernetes API call failed: delete Namespace zitadel; is the cluster reachable and the \
         resource valid?"
    );
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn server_side_apply_sends_the_field_manager_and_force() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH);
        ensure!(request.uri().path() == "/api/v1/namespaces/zitadel/configmaps/coredns-custom");
        let q = query(&request);
        ensure!(q.contains("fieldManager=harmony"), "{q}");
        ensure!(q.contains("force=true"), "{q}");
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        ensure!(
            content_type == "application/apply-patch+yaml",
            "{content_type}"
        );
        let body: Value = serde_json::from_slice(&request.into_body().collect_bytes().await?)?;
        ensure!(
            body["apiVersion"] == "v1" && body["kind"] == "ConfigMap",
            "{body}"
        );
        ensure!(body["metadata"]["name"] == "coredns-custom", "{body}");
        ensure!(body["data"]["sso.override"] == "rewrite name a b", "{body}");
        let mut stored = body.clone();
        stored["metadata"]["namespace"] = json!("zitadel");
        stored["metadata"]["resourceVersion"] = json!("42");
        respond(send, StatusCode::OK, &stored);
        Ok::<_, anyhow::Error>(server)
    });
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "coredns-custom"},
        "data": {"sso.override": "rewrite name a b"},
    }))?;
    let applied = client.apply(&cm, Some("zitadel")).await?;
    assert_eq!(applied.metadata.resource_version.as_deref(), Some("42"));
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn apply_uses_the_objects_own_namespace_when_none_is_given() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(
            request.uri().path() == "/api/v1/namespaces/kube-system/configmaps/c",
            "{}",
            request.uri()
        );
        let body: Value = serde_json::from_slice(&request.into_body().collect_bytes().await?)?;
        respond(send, StatusCode::OK, &body);
        Ok::<_, anyhow::Error>(server)
    });
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c", "namespace": "kube-system"}}))?;
    client.apply(&cm, None).await?;
    api_server.await??;
    Ok(())
}

#[tracing_test::traced_test]
#[tokio::test]
async fn secret_key_is_decoded_from_base64_and_never_logged() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        for _ in 0..2 {
            let (request, send) = next_request(&mut server).await?;
            ensure!(request.method() == Method::GET);
            ensure!(request.uri().path() == "/api/v1/namespaces/zitadel/secrets/iam-admin-pat");
            respond(
                send,
                StatusCode::OK,
                &json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "iam-admin-pat", "namespace": "zitadel"},
                    // base64 of "pat-VALUE-123" and "other-VALUE"
                    "data": {"pat": "cGF0LVZBTFVFLTEyMw==", "other": "b3RoZXItVkFMVUU="},
                }),
            );
        }
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::NOT_FOUND,
            &status_error(404, "NotFound", "secrets \"iam-admin-pat\" not found"),
        );
        Ok::<_, anyhow::Error>(server)
    });

    let pat = client
        .secret_key("zitadel", "iam-admin-pat", "pat")
        .await?
        .context("key pat exists")?;
    assert_eq!(pat.expose_secret(), "pat-VALUE-123");
    assert!(!format!("{pat:?}").contains("VALUE"));
    let missing_key = client
        .secret_key("zitadel", "iam-admin-pat", "nope")
        .await?;
    assert!(missing_key.is_none());
    let missing_secret = client.secret_key("zitadel", "iam-admin-pat", "pat").await?;
    assert!(missing_secret.is_none());
    api_server.await??;

    // The capture works (our own debug line is there) and holds no secret value.
    assert!(logs_contain("read Secret key"));
    assert!(!logs_contain("pat-VALUE"));
    assert!(!logs_contain("cGF0LVZBTFVFLTEyMw"));
    Ok(())
}

#[tokio::test]
async fn ensure_namespace_creates_and_accepts_an_existing_one() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::POST);
        ensure!(request.uri().path() == "/api/v1/namespaces");
        let body: Value = serde_json::from_slice(&request.into_body().collect_bytes().await?)?;
        ensure!(body["metadata"]["name"] == "openbao", "{body}");
        respond(send, StatusCode::CREATED, &body);
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::CONFLICT,
            &status_error(
                409,
                "AlreadyExists",
                "namespaces \"openbao\" already exists",
            ),
        );
        Ok::<_, anyhow::Error>(server)
    });
    client.ensure_namespace("openbao").await?;
    client.ensure_namespace("openbao").await?;
    api_server.await??;
    Ok(())
}

#[tokio::test]
async fn crd_established_reads_the_condition_and_treats_missing_as_false() -> Result<()> {
    let (client, mut server) = mock_client();
    let api_server = tokio::spawn(async move {
        let path =
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/clusters.postgresql.cnpg.io";
        let crd = |established: &str| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "clusters.postgresql.cnpg.io"},
                "spec": {"group": "postgresql.cnpg.io", "scope": "Namespaced",
                         "names": {"plural": "clusters", "kind": "Cluster"}, "versions": []},
                "status": {"conditions": [
                    {"type": "NamesAccepted", "status": "True"},
                    {"type": "Established", "status": established},
                ]},
            })
        };
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.uri().path() == path, "{}", request.uri());
        respond(send, StatusCode::OK, &crd("False"));
        let (_, send) = next_request(&mut server).await?;
        respond(send, StatusCode::OK, &crd("True"));
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::NOT_FOUND,
            &status_error(404, "NotFound", "not found"),
        );
        Ok::<_, anyhow::Error>(server)
    });
    let name = "clusters.postgresql.cnpg.io";
    assert!(!client.crd_established(name).await?);
    assert!(client.crd_established(name).await?);
    assert!(!client.crd_established(name).await?);
    api_server.await??;
    Ok(())
}
