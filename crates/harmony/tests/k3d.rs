//! The k3d topology against a fake `k3d` executable that records its argv and answers like
//! k3d v5 (`cluster list -o json`, `kubeconfig get`, create/start/delete), plus an
//! `#[ignore]` live test for a machine with Docker.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use harmony::k3d::{ClusterState, EnsureOutcome, K3d, K3dError};
use secrecy::ExposeSecret as _;

/// A directory holding the fake k3d, its state (`clusters.json`) and its call log (`calls`:
/// one line per call, arguments tab-separated).
struct FakeK3d {
    dir: tempfile::TempDir,
}

const FAKE_K3D: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
for a in "$@"; do printf '%s\t' "$a" >> "$dir/calls"; done
printf '\n' >> "$dir/calls"
if [ -f "$dir/fail" ]; then
  echo 'FATA[0000] runtime failed to list nodes: Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2
  exit 1
fi
case "$1" in
  version) echo 'k3d version v5.8.3'; echo 'k3s version v1.31.5-k3s1 (default)' ;;
  cluster)
    case "$2" in
      list) cat "$dir/clusters.json" ;;
      create)
        printf '[{"name":"%s","network":{"name":"k3d-%s"},"serversRunning":1,"serversCount":1,"agentsRunning":0,"agentsCount":0,"hasLoadbalancer":true}]' "$3" "$3" > "$dir/clusters.json"
        echo "INFO[0010] Cluster '$3' created successfully!" >&2 ;;
      start)
        sed 's/"serversRunning":0/"serversRunning":1/' "$dir/clusters.json" > "$dir/clusters.tmp"
        mv "$dir/clusters.tmp" "$dir/clusters.json" ;;
      delete) echo '[]' > "$dir/clusters.json" ;;
      *) echo "unknown cluster command $2" >&2; exit 2 ;;
    esac ;;
  kubeconfig) cat "$dir/kubeconfig.yaml" ;;
  *) echo "unknown command $1" >&2; exit 2 ;;
esac
"#;

impl FakeK3d {
    fn new(clusters_json: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("k3d");
        std::fs::write(&bin, FAKE_K3D).expect("write fake");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.path().join("clusters.json"), clusters_json).expect("state");
        Self { dir }
    }

    fn binary(&self) -> PathBuf {
        self.dir.path().join("k3d")
    }

    fn k3d(&self) -> K3d {
        K3d::new("harmony", self.binary()).expect("valid name")
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.lines()
            .map(|l| {
                l.split('\t')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn cluster_json(name: &str, running: u32) -> String {
    format!(
        r#"[{{"name":"{name}","network":{{"name":"k3d-{name}"}},"nodes":[],"serversRunning":{running},"serversCount":1,"agentsRunning":0,"agentsCount":0,"hasLoadbalancer":true}}]"#
    )
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const LIST: &[&str] = &["cluster", "list", "-o", "json"];

#[tokio::test]
async fn absent_cluster_is_created_with_the_loadbalancer_port_and_wait() {
    // Another cluster exists: it must not be mistaken for ours.
    let fake = FakeK3d::new(&cluster_json("other", 1));
    let outcome = fake.k3d().ensure_cluster().await.expect("creates");
    assert_eq!(outcome, EnsureOutcome::Created);
    assert_eq!(
        fake.calls(),
        vec![
            args(LIST),
            args(&[
                "cluster",
                "create",
                "harmony",
                "-p",
                "8080:80@loadbalancer",
                "--wait"
            ]),
        ]
    );
    assert_eq!(
        fake.k3d().state().await.expect("state"),
        ClusterState::Running
    );
}

#[tokio::test]
async fn running_cluster_is_reused_without_create() {
    let fake = FakeK3d::new(&cluster_json("harmony", 1));
    let outcome = fake.k3d().ensure_cluster().await.expect("reuses");
    assert_eq!(outcome, EnsureOutcome::Reused);
    assert_eq!(fake.calls(), vec![args(LIST)]);
}

#[tokio::test]
async fn stopped_cluster_is_started_not_recreated() {
    let fake = FakeK3d::new(&cluster_json("harmony", 0));
    assert_eq!(
        fake.k3d().state().await.expect("state"),
        ClusterState::Stopped {
            servers_running: 0,
            servers_count: 1
        }
    );
    let outcome = fake.k3d().ensure_cluster().await.expect("starts");
    assert_eq!(outcome, EnsureOutcome::Started);
    assert_eq!(
        fake.calls(),
        vec![
            args(LIST),
            args(LIST),
            args(&["cluster", "start", "harmony", "--wait"])
        ]
    );
}

#[tokio::test]
async fn delete_runs_cluster_delete_and_absent_is_success() {
    let fake = FakeK3d::new(&cluster_json("harmony", 1));
    assert!(fake.k3d().delete_cluster().await.expect("deletes"));
    assert_eq!(
        fake.calls(),
        vec![args(LIST), args(&["cluster", "delete", "harmony"])]
    );
    // Now absent: a second delete succeeds without calling `cluster delete`.
    assert!(!fake.k3d().delete_cluster().await.expect("absent is ok"));
    assert_eq!(fake.calls().len(), 3);
    assert_eq!(fake.calls()[2], args(LIST));
}

#[tokio::test]
async fn k3d_failure_surfaces_its_stderr() {
    let fake = FakeK3d::new("[]");
    std::fs::write(fake.path().join("fail"), "").expect("fail mode");
    let err = fake.k3d().ensure_cluster().await.expect_err("docker down");
    assert!(matches!(err, K3dError::List { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("Cannot connect to the Docker daemon"),
        "{text}"
    );
    assert!(text.contains("exit code 1"), "{text}");
    assert!(text.contains("check that Docker is running"), "{text}");
}

#[tokio::test]
async fn unexpected_list_output_is_a_decode_error() {
    let fake = FakeK3d::new("NAME SERVERS AGENTS\nharmony 1/1 0/0\n");
    let err = fake.k3d().state().await.expect_err("not json");
    assert!(matches!(err, K3dError::ListDecode { .. }), "{err:?}");
}

/// A kubeconfig as k3d prints it, pointing at `server` with a bearer token.
fn kubeconfig_yaml(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- cluster:
    server: {server}
  name: k3d-harmony
contexts:
- context:
    cluster: k3d-harmony
    user: admin@k3d-harmony
  name: k3d-harmony
current-context: k3d-harmony
preferences: {{}}
users:
- name: admin@k3d-harmony
  user:
    token: {token}
"
    )
}

#[tokio::test]
async fn kubeconfig_comes_from_kubeconfig_get_and_its_file_is_private() {
    let fake = FakeK3d::new(&cluster_json("harmony", 1));
    let yaml = kubeconfig_yaml("https://127.0.0.1:6443", "client-secret-token");
    std::fs::write(fake.path().join("kubeconfig.yaml"), &yaml).expect("kubeconfig");
    let k3d = fake.k3d();

    let got = k3d.kubeconfig().await.expect("kubeconfig");
    assert_eq!(got.expose_secret(), yaml);
    assert!(!format!("{got:?}").contains("client-secret-token"));
    assert_eq!(fake.calls(), vec![args(&["kubeconfig", "get", "harmony"])]);

    let file = k3d.kubeconfig_file().await.expect("file");
    let meta = std::fs::metadata(file.path()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(file.path()).expect("read"), yaml);
    let path = file.path().to_owned();
    drop(file);
    assert!(!path.exists(), "temporary kubeconfig must be removed");
}

#[tokio::test]
async fn client_talks_to_the_server_and_user_in_k3d_kubeconfig() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let api = MockServer::start().await;
    let namespaces = serde_json::json!({
        "apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}]
    });
    Mock::given(method("GET"))
        .and(path("/api/v1/namespaces"))
        .and(header("authorization", "Bearer from-k3d-kubeconfig"))
        .respond_with(ResponseTemplate::new(200).set_body_json(namespaces))
        .expect(1)
        .mount(&api)
        .await;
    let fake = FakeK3d::new(&cluster_json("harmony", 1));
    std::fs::write(
        fake.path().join("kubeconfig.yaml"),
        kubeconfig_yaml(&api.uri(), "from-k3d-kubeconfig"),
    )
    .expect("kubeconfig");

    let client = fake.k3d().client().await.expect("client");
    let list = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.kube().clone())
        .list(&Default::default())
        .await
        .expect("list namespaces");
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("kube-system"));
    api.verify().await;
}

#[tokio::test]
#[ignore = "needs Docker + k3d"]
async fn live_cluster_create_client_delete() {
    let data = tempfile::tempdir().expect("tempdir");
    let tools = harmony::tools::Tools::new(data.path()).expect("tools");
    let k3d = K3d::install("harmony-live-test", &tools)
        .await
        .expect("k3d");
    k3d.ensure_cluster().await.expect("cluster");
    assert_eq!(
        k3d.ensure_cluster().await.expect("again"),
        EnsureOutcome::Reused
    );
    let client = k3d.client().await.expect("client");
    let list = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.kube().clone())
        .list(&Default::default())
        .await
        .expect("list namespaces");
    assert!(
        list.items
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some("kube-system")),
        "kube-system missing"
    );
    assert!(k3d.delete_cluster().await.expect("delete"));
    assert_eq!(k3d.state().await.expect("state"), ClusterState::Absent);
}
