//! The k3d topology against a fake `k3d` executable that records its argv and answers like
//! k3d v5 (`cluster list -o json`, `kubeconfig get`, create/start/delete), plus an
//! `#[ignore]` live test for a machine with Docker.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use harmony::k3d::{ClusterState, EnsureOutcome, K3d, K3dError, Unusable};
use secrecy::ExposeSecret as _;

/// A directory holding the fake k3d, its state (`clusters.json`) and its call log (`calls`:
/// one line per call, arguments tab-separated).
struct FakeK3d {
    dir: tempfile::TempDir,
}

/// Replies as k3d v5.8.3 does: `cmd/root.go` sends INFO/DEBUG log lines to stdout and
/// WARN/ERROR/FATAL to stderr, takes the level from `LOG_LEVEL` (default info) and forces ANSI
/// colours unless `LOG_COLORS` says otherwise; `kubeconfig get` prints the YAML document with a
/// leading `---`; `cluster list -o json` prints the clusters with their nodes (`role`,
/// `portMappings`, `State.Running`, as `pkg/types/types.go` encodes them). The user's own
/// `LOG_LEVEL` is simulated by the file `user-log-level`, used only when the caller does not set
/// `LOG_LEVEL` itself.
const FAKE_K3D: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
for a in "$@"; do printf '%s\t' "$a" >> "$dir/calls"; done
printf '\n' >> "$dir/calls"
level="${LOG_LEVEL-$(cat "$dir/user-log-level" 2>/dev/null)}"
info() { case "$level" in warn|error) ;; *) echo "INFO[0000] $1" ;; esac; }
debug() { case "$level" in debug|trace) echo "DEBU[0000] $1" ;; esac; }
fatal() {
  if [ "$LOG_COLORS" = "false" ]; then echo "FATA[0000] $1" >&2
  else printf '\033[31mFATA\033[0m[0000] %s\n' "$1" >&2; fi
  exit 1
}
debug "Runtime Info: &{Name:docker Endpoint:/var/run/docker.sock}"
if [ -f "$dir/fail" ]; then
  fatal 'runtime failed to list nodes: Cannot connect to the Docker daemon at unix:///var/run/docker.sock'
fi
case "$1" in
  version) echo 'k3d version v5.8.3'; echo 'k3s version v1.31.5-k3s1 (default)' ;;
  cluster)
    case "$2" in
      list) cat "$dir/clusters.json" ;;
      create)
        info "Prep: Network"
        lbport=""
        prev=""
        for a in "$@"; do
          if [ "$prev" = "-p" ]; then lbport="${a%%:*}"; fi
          prev="$a"
        done
        printf '[{"name":"%s","serversRunning":1,"serversCount":1,"agentsRunning":0,"agentsCount":0,"hasLoadbalancer":true,"nodes":[{"name":"k3d-%s-server-0","role":"server","portMappings":{},"State":{"Running":true,"Status":"running"}},{"name":"k3d-%s-serverlb","role":"loadbalancer","portMappings":{"6443/tcp":[{"HostIp":"0.0.0.0","HostPort":"40123"}],"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"%s"}]},"State":{"Running":true,"Status":"running"}}]}]' "$3" "$3" "$3" "$lbport" > "$dir/clusters.json"
        info "Cluster '$3' created successfully!" ;;
      start)
        info "Starting cluster '$3'"
        sed -e 's/"serversRunning":0/"serversRunning":1/' -e 's/"Running":false/"Running":true/g' "$dir/clusters.json" > "$dir/clusters.tmp"
        mv "$dir/clusters.tmp" "$dir/clusters.json"
        info "Started cluster '$3'" ;;
      delete)
        info "Deleting cluster '$3'"
        echo '[]' > "$dir/clusters.json" ;;
      *) fatal "unknown cluster command $2" ;;
    esac ;;
  kubeconfig) echo '---'; cat "$dir/kubeconfig.yaml" ;;
  *) fatal "unknown command $1" ;;
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

/// The load balancer node of a listed cluster.
#[derive(Clone, Copy)]
enum Lb {
    /// None at all (a create killed after the servers came up).
    Missing,
    /// Maps `80/tcp` to this host port (`None`: port 80 not published).
    Ports { ingress: Option<u16>, running: bool },
}

const HARMONY_LB: Lb = Lb::Ports {
    ingress: Some(8080),
    running: true,
};

/// `k3d cluster list -o json` for one cluster, shaped as k3d v5.8.3 prints it.
fn listed(name: &str, running: u32, lb: Lb) -> String {
    let server_running = running > 0;
    let mut nodes = vec![serde_json::json!({
        "name": format!("k3d-{name}-server-0"), "role": "server", "portMappings": {},
        "State": {"Running": server_running, "Status": if server_running { "running" } else { "exited" }}
    })];
    if let Lb::Ports { ingress, running } = lb {
        let mut ports =
            serde_json::json!({"6443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "40123"}]});
        if let Some(port) = ingress {
            ports["80/tcp"] =
                serde_json::json!([{"HostIp": "0.0.0.0", "HostPort": port.to_string()}]);
        }
        nodes.push(serde_json::json!({
            "name": format!("k3d-{name}-serverlb"), "role": "loadbalancer", "portMappings": ports,
            "State": {"Running": running, "Status": if running { "running" } else { "exited" }}
        }));
    }
    serde_json::json!([{
        "name": name, "network": {"name": format!("k3d-{name}")}, "nodes": nodes,
        "serversRunning": running, "serversCount": 1, "agentsRunning": 0, "agentsCount": 0,
        "hasLoadbalancer": !matches!(lb, Lb::Missing)
    }])
    .to_string()
}

fn cluster_json(name: &str, running: u32) -> String {
    let lb = match running {
        0 => Lb::Ports {
            ingress: Some(8080),
            running: false,
        },
        _ => HARMONY_LB,
    };
    listed(name, running, lb)
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
                "--wait",
                // k3d v5.8.3 `cmd/cluster/clusterCreate.go`: both default to true.
                "--kubeconfig-update-default=false",
                "--kubeconfig-switch-context=false",
                // Ours is 600 s: k3d gives up (and rolls back) a minute sooner.
                "--timeout",
                "540s",
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
            args(&["cluster", "start", "harmony", "--wait", "--timeout", "240s"]),
            // Checked again: started means servers and load balancer run.
            args(LIST),
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
    // k3d forces ANSI colours unless LOG_COLORS=false: none may reach our message.
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

#[tokio::test]
async fn unexpected_list_output_is_a_decode_error() {
    let fake = FakeK3d::new("NAME SERVERS AGENTS\nharmony 1/1 0/0\n");
    let err = fake.k3d().state().await.expect_err("not json");
    assert!(matches!(err, K3dError::ListDecode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_debug_log_level_in_the_users_environment_corrupts_nothing() {
    let fake = FakeK3d::new("[]");
    std::fs::write(fake.path().join("user-log-level"), "debug").expect("user env");
    let yaml = kubeconfig_yaml("https://0.0.0.0:40123", "t");
    std::fs::write(fake.path().join("kubeconfig.yaml"), &yaml).expect("kubeconfig");
    let k3d = fake.k3d();
    assert_eq!(
        k3d.ensure_cluster().await.expect("creates"),
        EnsureOutcome::Created
    );
    assert_eq!(
        k3d.state().await.expect("list parses"),
        ClusterState::Running
    );
    let got = k3d.kubeconfig().await.expect("kubeconfig");
    assert_eq!(got.expose_secret(), format!("---\n{yaml}"));
    assert!(!got.expose_secret().contains("DEBU"));
}

#[tokio::test]
async fn a_half_made_cluster_without_load_balancer_is_not_reused() {
    let fake = FakeK3d::new(&listed("harmony", 1, Lb::Missing));
    let err = fake.k3d().ensure_cluster().await.expect_err("unusable");
    assert!(
        matches!(
            err,
            K3dError::Unusable {
                reason: Unusable::NoLoadBalancer,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("no load balancer"), "{text}");
    assert!(text.contains("k3d cluster delete harmony"), "{text}");
    assert_eq!(fake.calls(), vec![args(LIST)], "nothing created or started");
}

#[tokio::test]
async fn a_foreign_cluster_without_port_8080_is_not_reused() {
    for (ingress, found) in [(Some(9090), vec!["9090".to_owned()]), (None, vec![])] {
        let fake = FakeK3d::new(&listed(
            "harmony",
            1,
            Lb::Ports {
                ingress,
                running: true,
            },
        ));
        let err = fake.k3d().ensure_cluster().await.expect_err("foreign");
        match &err {
            K3dError::Unusable {
                reason: Unusable::NoIngressPort { found: got },
                ..
            } => assert_eq!(got, &found),
            other => panic!("expected NoIngressPort, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("8080:80@loadbalancer"), "{text}");
        assert!(text.contains("k3d cluster delete harmony"), "{text}");
    }
}

#[tokio::test]
async fn a_stopped_load_balancer_is_started() {
    let fake = FakeK3d::new(&listed(
        "harmony",
        1,
        Lb::Ports {
            ingress: Some(8080),
            running: false,
        },
    ));
    assert_eq!(
        fake.k3d().ensure_cluster().await.expect("starts"),
        EnsureOutcome::Started
    );
    assert_eq!(fake.calls()[1][..3], args(&["cluster", "start", "harmony"]));
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
    // k3d prints the document with a leading `---`: kept, it is valid YAML.
    let printed = format!("---\n{yaml}");
    assert_eq!(got.expose_secret(), printed);
    assert!(!format!("{got:?}").contains("client-secret-token"));
    assert_eq!(fake.calls(), vec![args(&["kubeconfig", "get", "harmony"])]);

    let file = k3d.kubeconfig_file().await.expect("file");
    let meta = std::fs::metadata(file.path()).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(file.path()).expect("read"), printed);
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

/// kube-client 5.0.0 `config/file_loader.rs` (`ConfigLoader::proxy_url`) copies `HTTPS_PROXY`
/// into `Config::proxy_url` when the kubeconfig has no `proxy-url`, and its client builder then
/// refuses an `http://` proxy (`ProxyProtocolDisabled`) without the `http-proxy` feature. The
/// environment is process-wide (and `set_var` is unsafe), so the client is built in a child
/// process of this test binary with `HTTPS_PROXY` set; the proxy address answers nothing, so
/// only a direct connection can list the namespaces.
#[test]
fn the_environments_https_proxy_does_not_apply_to_the_local_cluster() {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_lists_namespaces_through_k3d_client",
            "--nocapture",
            "--ignored",
        ])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NAMESPACES=kube-system"),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
#[ignore = "helper run as a child process by the_environments_https_proxy_does_not_apply_to_the_local_cluster"]
async fn child_lists_namespaces_through_k3d_client() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v1/namespaces"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
            "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}]
        })))
        .mount(&api)
        .await;
    let fake = FakeK3d::new(&cluster_json("harmony", 1));
    std::fs::write(
        fake.path().join("kubeconfig.yaml"),
        kubeconfig_yaml(&api.uri(), "t"),
    )
    .expect("kubeconfig");
    match fake.k3d().client().await {
        Err(e) => println!("ERROR={e:?}"),
        Ok(client) => {
            match kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.kube().clone())
                .list(&Default::default())
                .await
            {
                Ok(list) => println!(
                    "NAMESPACES={}",
                    list.items[0].metadata.name.as_deref().unwrap_or("")
                ),
                Err(e) => println!("ERROR={e:?}"),
            }
        }
    }
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
