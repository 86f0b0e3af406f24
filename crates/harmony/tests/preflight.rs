//! The deploy's preflight against a stand-in Docker daemon on a unix socket. The stand-in
//! answers as the Docker Engine API does: `GET /_ping` → 200 with body `OK` (moby
//! `api/server/router/system/system_routes.go`, `pingHandler`, as in Docker v27), and
//! `GET /containers/json` → the running containers with `Names` (leading `/`) and
//! `Ports[].PublicPort` (moby `api/types/container` `Summary`/`Port`).

use std::path::{Path, PathBuf};

use harmony::preflight::{DockerEndpoint, PreflightError, check_local_deploy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A stand-in Docker daemon: answers each request line with the scripted (status, body).
fn standin(dir: &Path, ping: (u16, &'static str), containers: String) -> PathBuf {
    let socket = dir.join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind socket");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let containers = containers.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let request = String::from_utf8_lossy(&got).into_owned();
                let (status, body) = if request.starts_with("GET /_ping ") {
                    (ping.0, ping.1.to_owned())
                } else if request.starts_with("GET /containers/json ") {
                    (200, containers)
                } else {
                    (404, "{\"message\":\"page not found\"}".to_owned())
                };
                let response = format!(
                    "HTTP/1.1 {status} X\r\nApi-Version: 1.47\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    socket
}

/// A port nothing listens on (bound once, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("0.0.0.0", 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn one_paragraph(e: &PreflightError) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "one paragraph: {text}");
    assert!(text.contains("re-run"), "says what to do: {text}");
    text
}

#[tokio::test]
async fn a_healthy_docker_and_a_free_port_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = standin(dir.path(), (200, "OK"), "[]".into());
    check_local_deploy(&DockerEndpoint::Unix(socket), "harmony", free_port())
        .await
        .expect("passes");
}

#[tokio::test]
async fn no_docker_on_the_socket_is_one_clear_paragraph() {
    let dir = tempfile::tempdir().expect("tempdir");
    let endpoint = DockerEndpoint::Unix(dir.path().join("docker.sock"));
    let err = check_local_deploy(&endpoint, "harmony", free_port())
        .await
        .expect_err("no daemon");
    assert!(
        matches!(err, PreflightError::DockerUnreachable { .. }),
        "{err:?}"
    );
    let text = one_paragraph(&err);
    assert!(
        text.contains("Docker is not reachable at unix://"),
        "{text}"
    );
    assert!(
        text.contains("docker info") && text.contains("DOCKER_HOST"),
        "{text}"
    );
}

#[tokio::test]
async fn something_else_on_the_socket_is_not_docker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = standin(dir.path(), (404, "page not found"), "[]".into());
    let err = check_local_deploy(&DockerEndpoint::Unix(socket), "harmony", free_port())
        .await
        .expect_err("not docker");
    assert!(matches!(err, PreflightError::DockerNotOk { .. }), "{err:?}");
    assert!(one_paragraph(&err).contains("HTTP 404"));
}

#[tokio::test]
async fn a_port_held_by_another_program_is_refused() {
    let held = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    // Another cluster's load balancer publishes the port: still not ours.
    let containers = serde_json::json!([{
        "Id": "abc", "Names": ["/k3d-other-serverlb"], "State": "running",
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}]
    }]);
    let socket = standin(dir.path(), (200, "OK"), containers.to_string());
    let err = check_local_deploy(&DockerEndpoint::Unix(socket), "harmony", port)
        .await
        .expect_err("taken");
    assert!(matches!(err, PreflightError::PortTaken { .. }), "{err:?}");
    let text = one_paragraph(&err);
    assert!(
        text.contains(&format!("host port {port} is in use")),
        "{text}"
    );
    assert!(text.contains("k3d-harmony-serverlb"), "{text}");
    drop(held);
}

#[tokio::test]
async fn a_port_held_by_this_clusters_load_balancer_passes() {
    let held = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let containers = serde_json::json!([
        {"Id": "def", "Names": ["/k3d-harmony-server-0"], "State": "running", "Ports": []},
        {"Id": "abc", "Names": ["/k3d-harmony-serverlb"], "State": "running",
         "Ports": [
            {"IP": "0.0.0.0", "PrivatePort": 6443, "PublicPort": 40123, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": port, "Type": "tcp"}
         ]}
    ]);
    let socket = standin(dir.path(), (200, "OK"), containers.to_string());
    check_local_deploy(&DockerEndpoint::Unix(socket), "harmony", port)
        .await
        .expect("our own load balancer");
    drop(held);
}
