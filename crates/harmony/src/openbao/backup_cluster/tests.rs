//! `tower_test` scenarios for the Kubernetes calls of scheduled backups: the test plays the API
//! server (checking method, path, field manager and body, answering as a real one does), and a
//! closure plays the reader pod's busybox for the exec calls (whose websocket upgrade cannot run
//! against a mock).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

use super::*;
use crate::openbao::IMAGE_TAG;

type ApiServer = Handle<Request<Body>, Response<Body>>;

fn mock_client() -> (K8sClient, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        K8sClient::new(kube::Client::new(service, "default")),
        handle,
    )
}

async fn next(server: &mut ApiServer) -> Result<(Request<Body>, SendResponse<Response<Body>>)> {
    tokio::time::timeout(Duration::from_secs(10), server.next_request())
        .await
        .context("the client sent no request within 10 s")?
        .context("the client dropped the service")
}

fn respond(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).expect("JSON")));
    *response.status_mut() = status;
    send.send_response(response);
}

fn not_found(send: SendResponse<Response<Body>>, what: &str) {
    respond(
        send,
        StatusCode::NOT_FOUND,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "reason": "NotFound", "code": 404, "message": format!("{what} not found")}),
    );
}

async fn body_of(request: Request<Body>) -> Result<Value> {
    Ok(serde_json::from_slice(
        &request.into_body().collect_bytes().await?,
    )?)
}

/// Expects a server-side apply (PATCH, field manager harmony, forced) of `path`; answers with
/// the body as stored and returns it.
async fn expect_apply(server: &mut ApiServer, path: &str) -> Result<Value> {
    let (request, send) = next(server).await?;
    ensure!(
        request.method() == Method::PATCH,
        "{} {}",
        request.method(),
        request.uri()
    );
    ensure!(
        request.uri().path() == path,
        "{} != {path}",
        request.uri().path()
    );
    let query = request.uri().query().unwrap_or_default().to_owned();
    ensure!(
        query.contains("fieldManager=harmony") && query.contains("force=true"),
        "{query}"
    );
    ensure!(
        request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some("application/apply-patch+yaml")
    );
    let body = body_of(request).await?;
    respond(send, StatusCode::OK, &body);
    Ok(body)
}

const IMAGE: &str = "quay.io/openbao/openbao:2.7.2";
const STS: &str = "/apis/apps/v1/namespaces/openbao/statefulsets/openbao";
const CRON: &str = "/apis/batch/v1/namespaces/openbao/cronjobs/openbao-backup";
const PVC: &str = "/api/v1/namespaces/openbao/persistentvolumeclaims/openbao-backup";
const PODS: &str = "/api/v1/namespaces/openbao/pods";

fn statefulset() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "openbao", "namespace": "openbao"},
        "spec": {"selector": {}, "serviceName": "openbao-internal", "template": {"spec": {
            "containers": [{"name": "openbao", "image": IMAGE}]}}},
    })
}

#[tokio::test]
async fn the_deploy_applies_service_account_pvc_and_cron_job_with_openbao_s_image() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == STS);
        respond(send, StatusCode::OK, &statefulset());
        let sa = expect_apply(
            &mut server,
            "/api/v1/namespaces/openbao/serviceaccounts/openbao-backup",
        )
        .await?;
        ensure!(sa["kind"] == "ServiceAccount" && sa["automountServiceAccountToken"] == false);
        let pvc = expect_apply(&mut server, PVC).await?;
        ensure!(
            pvc["spec"]["resources"]["requests"]["storage"] == "2Gi",
            "{pvc}"
        );
        let cron = expect_apply(&mut server, CRON).await?;
        Ok::<_, anyhow::Error>(cron)
    });
    let schedule = BackupSchedule {
        schedule: "*/30 * * * *".to_owned(),
        keep: 5,
    };
    let addr = in_cluster_addr("openbao", "openbao", false);
    let applied = apply_backup_schedule(&k8s, "openbao", "openbao", &addr, &schedule).await?;
    let cron = api.await??;
    assert_eq!(applied.image, IMAGE);
    assert_eq!(cron["spec"]["schedule"], "*/30 * * * *");
    let container = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], IMAGE);
    let env = container["env"].as_array().context("env")?;
    assert!(
        env.contains(&json!({"name": "KEEP", "value": "5"})),
        "{env:?}"
    );
    assert!(
        env.contains(&json!({"name": "BAO_ADDR", "value": "http://openbao.openbao.svc:8200"})),
        "{env:?}"
    );
    assert!(applied.summary().contains("keeping the newest 5"));
    Ok(())
}

#[tokio::test]
async fn several_replicas_back_up_through_the_active_service() {
    assert_eq!(
        in_cluster_addr("openbao", "openbao", true),
        "http://openbao-active.openbao.svc:8200"
    );
}

#[tokio::test]
async fn without_openbao_s_statefulset_nothing_is_applied() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next(&mut server).await?;
        ensure!(request.uri().path() == STS);
        not_found(send, "statefulsets.apps \"openbao\"");
        // Nothing else may be sent: the next request (if any) fails the test.
        let more = tokio::time::timeout(Duration::from_millis(300), server.next_request()).await;
        ensure!(
            more.is_err() || matches!(more, Ok(None)),
            "an apply was sent"
        );
        Ok::<_, anyhow::Error>(())
    });
    let err = apply_backup_schedule(
        &k8s,
        "openbao",
        "openbao",
        "http://x",
        &BackupSchedule::default(),
    )
    .await
    .expect_err("no StatefulSet");
    assert!(err.to_string().contains("deploy OpenBao first"), "{err}");
    drop(k8s);
    api.await??;
    Ok(())
}

fn cron_job() -> Value {
    let objects = backup_objects(
        "openbao",
        &format!("quay.io/openbao/openbao:{IMAGE_TAG}"),
        "http://openbao.openbao.svc:8200",
        &BackupSchedule::default(),
    );
    serde_json::to_value(&objects.cron_job).expect("JSON")
}

/// Plays the API server of a `list`/`fetch`: the CronJob and PVC exist, the reader pod is
/// applied, runs, and is deleted. Returns the applied pod and the deleted pod's name.
async fn reader_scenario(server: &mut ApiServer) -> Result<(Value, String)> {
    let (request, send) = next(server).await?;
    ensure!(request.method() == Method::GET && request.uri().path() == CRON);
    respond(send, StatusCode::OK, &cron_job());
    let (request, send) = next(server).await?;
    ensure!(request.method() == Method::GET && request.uri().path() == PVC);
    respond(
        send,
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "openbao-backup", "namespace": "openbao"}}),
    );
    let (request, send) = next(server).await?;
    ensure!(request.method() == Method::PATCH, "{}", request.method());
    let path = request.uri().path().to_owned();
    let name = path
        .strip_prefix(&format!("{PODS}/"))
        .context("a pod")?
        .to_owned();
    ensure!(name.starts_with("openbao-backup-reader-"), "{name}");
    let pod = body_of(request).await?;
    respond(send, StatusCode::OK, &pod);
    // wait_for_pod_running: a list by name, answered Running.
    let (request, send) = next(server).await?;
    ensure!(request.uri().path() == PODS);
    let query = request.uri().query().unwrap_or_default().to_owned();
    ensure!(
        query.contains(&format!("metadata.name%3D{name}")),
        "{query}"
    );
    let mut running = pod.clone();
    running["metadata"]["resourceVersion"] = json!("3");
    running["status"] = json!({"phase": "Running"});
    respond(
        send,
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "3"},
                "items": [running]}),
    );
    let (request, send) = next(server).await?;
    ensure!(
        request.method() == Method::DELETE,
        "{} {}",
        request.method(),
        request.uri()
    );
    let deleted = request
        .uri()
        .path()
        .strip_prefix(&format!("{PODS}/"))
        .context("deleted pod")?
        .to_owned();
    respond(send, StatusCode::OK, &pod);
    Ok((pod, deleted))
}

type Calls = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// The reader pod's busybox: `sh -c <list>`, `sha256sum FILE`, `base64 FILE` over `files`.
fn busybox(
    files: Vec<(&'static str, Vec<u8>)>,
    claimed_sha: Option<String>,
    calls: Calls,
) -> impl Fn(String, String, Vec<String>) -> PodExecFuture {
    move |_ns, pod, command| {
        calls.lock().expect("lock").push((pod, command.clone()));
        let ok = |stdout: String| PodOutput {
            stdout,
            stderr: String::new(),
            status: ExecStatus::Success,
        };
        let find = |path: &str| {
            files
                .iter()
                .find(|(n, _)| format!("{BACKUP_DIR}/{n}") == path)
                .map(|(_, b)| b.clone())
        };
        let out = match command.first().map(String::as_str) {
            Some("/bin/sh") => ok(files
                .iter()
                .map(|(n, b)| format!("{} 1764806400 {n}\n", b.len()))
                .chain(["lost+found-is-not-listed\n".to_owned()])
                .collect()),
            Some("sha256sum") => match find(&command[1]) {
                Some(b) => ok(format!(
                    "{}  {}\n",
                    claimed_sha
                        .clone()
                        .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(&b))),
                    command[1]
                )),
                None => PodOutput {
                    stdout: String::new(),
                    stderr: "sha256sum: can't open".to_owned(),
                    status: ExecStatus::Failed {
                        code: Some(1),
                        message: "command terminated with non-zero exit code".to_owned(),
                    },
                },
            },
            Some("base64") => {
                let b = find(&command[1]).unwrap_or_default();
                let text = base64::engine::general_purpose::STANDARD.encode(&b);
                // busybox wraps at 76 columns.
                let wrapped: Vec<String> = text
                    .as_bytes()
                    .chunks(76)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                ok(wrapped.join("\n") + "\n")
            }
            _ => PodOutput {
                stdout: String::new(),
                stderr: String::new(),
                status: ExecStatus::Failed {
                    code: None,
                    message: "unexpected command".to_owned(),
                },
            },
        };
        Box::pin(async move { Ok(out) })
    }
}

/// A gzip tar shaped like a raft snapshot (`meta.json`, `state.bin`, `SHA256SUMS`,
/// `SHA256SUMS.sealed`) that `backup verify` accepts.
fn fake_snapshot() -> Vec<u8> {
    let state = b"raft state of the team's config".to_vec();
    let meta =
        serde_json::to_vec(&json!({"Index": 42, "Term": 3, "Size": state.len()})).expect("JSON");
    let sums = format!(
        "{}  meta.json\n{}  state.bin\n",
        hex::encode(sha2::Sha256::digest(&meta)),
        hex::encode(sha2::Sha256::digest(&state))
    );
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (name, data) in [
        ("meta.json", meta),
        ("state.bin", state),
        ("SHA256SUMS", sums.into_bytes()),
        ("SHA256SUMS.sealed", b"sealed".to_vec()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice())
            .expect("tar entry");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

#[tokio::test]
async fn list_starts_a_read_only_reader_pod_lists_newest_first_and_deletes_it() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move { reader_scenario(&mut server).await });
    let calls: Calls = Arc::default();
    let files = vec![
        ("harmony-20261203T230000Z.snap", vec![1u8; 10]),
        ("harmony-20261204T010000Z.snap", vec![2u8; 20]),
        ("harmony-20261204T000000Z.snap", vec![3u8; 30]),
    ];
    let listed =
        list_snapshots_through(&k8s, "openbao", busybox(files, None, Arc::clone(&calls))).await?;
    let (pod, deleted) = api.await??;
    let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "harmony-20261204T010000Z.snap",
            "harmony-20261204T000000Z.snap",
            "harmony-20261203T230000Z.snap"
        ]
    );
    assert_eq!(listed[0].size, 20);
    // The pod that was created is the one deleted, and the one exec'd into.
    assert_eq!(pod["metadata"]["name"], deleted.as_str());
    let calls = calls.lock().expect("lock").clone();
    assert!(calls.iter().all(|(p, _)| *p == deleted), "{calls:?}");
    let spec = &pod["spec"];
    assert_eq!(
        spec["containers"][0]["image"],
        format!("quay.io/openbao/openbao:{IMAGE_TAG}")
    );
    assert_eq!(
        spec["volumes"][0]["persistentVolumeClaim"]["readOnly"],
        true
    );
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
    assert_eq!(spec["automountServiceAccountToken"], false);
    assert_eq!(
        spec["containers"][0]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(spec["activeDeadlineSeconds"], READER_DEADLINE_SECONDS);
    Ok(())
}

#[tokio::test]
async fn without_scheduled_backups_list_says_how_to_enable_them_and_starts_no_pod() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next(&mut server).await?;
        ensure!(request.uri().path() == CRON);
        not_found(send, "cronjobs.batch \"openbao-backup\"");
        let more = tokio::time::timeout(Duration::from_millis(300), server.next_request()).await;
        ensure!(
            more.is_err() || matches!(more, Ok(None)),
            "a pod was created"
        );
        Ok::<_, anyhow::Error>(())
    });
    let calls: Calls = Arc::default();
    let err = list_snapshots_through(&k8s, "openbao", busybox(vec![], None, Arc::clone(&calls)))
        .await
        .expect_err("no CronJob");
    assert!(err.to_string().contains("--backup-schedule"), "{err}");
    drop(k8s);
    api.await??;
    assert!(calls.lock().expect("lock").is_empty());
    Ok(())
}

#[tokio::test]
async fn fetch_copies_verifies_and_writes_the_snapshot_0600() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move { reader_scenario(&mut server).await });
    let archive = fake_snapshot();
    let name = "harmony-20261204T010000Z.snap";
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("copy.snap");
    let calls: Calls = Arc::default();
    let fetched = fetch_snapshot_through(
        &k8s,
        "openbao",
        name,
        &dest,
        busybox(vec![(name, archive.clone())], None, Arc::clone(&calls)),
    )
    .await?;
    api.await??;
    assert_eq!(std::fs::read(&dest)?, archive);
    assert_eq!(fetched.verified.raft_index, 42);
    assert_eq!(
        fetched.verified.sha256,
        hex::encode(sha2::Sha256::digest(&archive))
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&dest)?.permissions().mode() & 0o777,
        0o600
    );
    // The name travels as an argument, never inside a shell string.
    let calls = calls.lock().expect("lock").clone();
    assert!(
        calls
            .iter()
            .any(|(_, c)| *c == ["base64".to_owned(), format!("/backups/{name}")])
    );
    // Nothing but the copy is left in the directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 1);
    Ok(())
}

#[tokio::test]
async fn a_copy_that_differs_from_the_pod_s_checksum_is_not_kept() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move { reader_scenario(&mut server).await });
    let name = "harmony-20261204T010000Z.snap";
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("copy.snap");
    let err = fetch_snapshot_through(
        &k8s,
        "openbao",
        name,
        &dest,
        busybox(
            vec![(name, fake_snapshot())],
            Some("0".repeat(64)),
            Arc::default(),
        ),
    )
    .await
    .expect_err("checksum differs");
    api.await??;
    assert!(
        err.to_string().contains("differs from the file on the PVC"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
    Ok(())
}

#[tokio::test]
async fn a_damaged_archive_is_refused_and_not_kept() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move { reader_scenario(&mut server).await });
    let name = "harmony-20261204T010000Z.snap";
    let dir = tempfile::tempdir()?;
    let dest = dir.path().join("copy.snap");
    let mut archive = fake_snapshot();
    archive.truncate(archive.len() / 2);
    let err = fetch_snapshot_through(
        &k8s,
        "openbao",
        name,
        &dest,
        busybox(vec![(name, archive)], None, Arc::default()),
    )
    .await
    .expect_err("truncated");
    api.await??;
    assert!(err.to_string().contains("not a sound archive"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);
    Ok(())
}

#[tokio::test]
async fn fetch_refuses_a_name_that_is_not_a_snapshot_before_any_call() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let dir = tempfile::tempdir()?;
    for bad in [
        "../../etc/passwd",
        "harmony-2026.snap",
        "harmony-20261204T010000Z.snap; rm -rf /",
        "harmony-20261204T010000Z.snap.json",
    ] {
        let err = fetch_snapshot(&k8s, "openbao", bad, &dir.path().join("x"))
            .await
            .expect_err(bad);
        assert!(err.to_string().contains("harmony backup list"), "{err}");
    }
    let sent = tokio::time::timeout(Duration::from_millis(100), server.next_request()).await;
    assert!(sent.is_err(), "a request was sent");
    Ok(())
}

#[tokio::test]
async fn a_deploy_without_the_flag_notes_the_backups_it_leaves_in_place() -> Result<()> {
    let (k8s, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == CRON);
        respond(send, StatusCode::OK, &cron_job());
        let (request, send) = next(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == CRON);
        not_found(send, "cronjobs.batch \"openbao-backup\"");
        Ok::<_, anyhow::Error>(())
    });
    let note = backups_left_in_place(&k8s, "openbao")
        .await
        .context("a note")?;
    assert!(note.contains("\"0 * * * *\", keeping 48"), "{note}");
    assert!(note.contains("--backup-schedule"), "{note}");
    assert_eq!(backups_left_in_place(&k8s, "openbao").await, None);
    api.await??;
    Ok(())
}

#[test]
fn snapshot_names_are_the_cron_job_s() {
    assert!(is_snapshot_name("harmony-20261204T010000Z.snap"));
    assert!(!is_snapshot_name(".partial-harmony-20261204T010000Z.snap"));
    assert!(!is_snapshot_name("harmony-20261204T0100Z.snap"));
    assert!(!is_snapshot_name("harmony-2026120xT010000Z.snap"));
}

#[test]
fn the_reader_pod_snapshot() {
    insta::assert_yaml_snapshot!(reader_pod(
        "openbao",
        "openbao-backup-reader-0000abcd",
        "quay.io/openbao/openbao:2.7.2"
    ));
}
