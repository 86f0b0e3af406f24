//! Checks before a local deploy downloads or creates anything: Docker answers, and host port
//! 8080 is free or already published by this cluster's own load balancer.
//!
//! Both are asked of Docker's HTTP API directly (`GET /_ping`, `GET /containers/json`) over
//! `DOCKER_HOST` or the default socket `/var/run/docker.sock` — the same endpoint k3d will use —
//! so nothing needs to be installed first. Each failure is one [`PreflightError`] whose message
//! says what is wrong, why the deploy needs it and what to do.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The default Docker socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Deadline for one request to Docker.
pub const DOCKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest Docker answer read (the container list of a busy machine is small JSON).
const MAX_RESPONSE: u64 = 4 * 1024 * 1024;

/// Where Docker's API answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerEndpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// Plain TCP `host:port` (`tcp://`, no TLS).
    Tcp(String),
}

impl std::fmt::Display for DockerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DockerEndpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerEndpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl DockerEndpoint {
    /// From the value of `DOCKER_HOST` (`None` or empty: the default socket).
    pub fn from_docker_host(value: Option<&str>) -> Result<Self, PreflightError> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        match value {
            None => Ok(Self::Unix(PathBuf::from(DEFAULT_DOCKER_SOCKET))),
            Some(v) => {
                if let Some(path) = v.strip_prefix("unix://") {
                    Ok(Self::Unix(PathBuf::from(path)))
                } else if let Some(addr) = v.strip_prefix("tcp://") {
                    Ok(Self::Tcp(addr.trim_end_matches('/').to_owned()))
                } else {
                    Err(PreflightError::UnsupportedDockerHost {
                        value: v.to_owned(),
                    })
                }
            }
        }
    }

    /// From the environment's `DOCKER_HOST`.
    pub fn from_env() -> Result<Self, PreflightError> {
        Self::from_docker_host(
            std::env::var(harmony_env::vars::DOCKER_HOST)
                .ok()
                .as_deref(),
        )
    }
}

/// Why the deploy cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreflightError {
    /// `DOCKER_HOST` names a scheme this check does not speak.
    #[error(
        "DOCKER_HOST is {value:?}, which this check cannot reach (it speaks unix:// and plain \
         tcp://). The deploy runs its cluster in Docker through k3d. Set DOCKER_HOST to a \
         unix:// socket or tcp:// address (or unset it for {DEFAULT_DOCKER_SOCKET}) and re-run"
    )]
    UnsupportedDockerHost {
        /// The value.
        value: String,
    },
    /// Docker did not answer.
    #[error(
        "Docker is not reachable at {endpoint} ({source}). The deploy runs its k3d cluster in \
         Docker, so it needs a running Docker daemon it may talk to. Start Docker (or Docker \
         Desktop), check that your user may use the socket (`docker info` must work), or point \
         DOCKER_HOST at the daemon; then re-run. Nothing was downloaded or created"
    )]
    DockerUnreachable {
        /// Where it was asked.
        endpoint: DockerEndpoint,
        /// The transport error.
        #[source]
        source: std::io::Error,
    },
    /// Something answered, but not as Docker does.
    #[error(
        "the Docker API at {endpoint} answered `GET /_ping` with {answer:?} instead of 200 OK. \
         The deploy runs its k3d cluster in Docker. Check that {endpoint} is the Docker daemon \
         (`docker info`) and that it is healthy, then re-run. Nothing was downloaded or created"
    )]
    DockerNotOk {
        /// Where it was asked.
        endpoint: DockerEndpoint,
        /// The status line (or what came instead).
        answer: String,
    },
    /// Host port 8080 is held by something else.
    #[error(
        "host port {port} is in use, and not by the load balancer of k3d cluster {cluster} \
         (container {container}). The cluster publishes its ingress there, and Zitadel's issuer \
         (http://sso.harmony.local:{port}) depends on it. Find the program holding it \
         (`ss -ltnp 'sport = :{port}'` or `lsof -i :{port}`) and stop it, then re-run. Nothing \
         was downloaded or created"
    )]
    PortTaken {
        /// The port.
        port: u16,
        /// Our cluster's name.
        cluster: String,
        /// The load balancer container that would be allowed to hold it.
        container: String,
    },
}

/// One HTTP/1.0 request to Docker; returns the status code and body.
async fn docker_get(endpoint: &DockerEndpoint, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        mut stream: S,
        path: &str,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\nUser-Agent: harmony\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE).read_to_end(&mut raw).await?;
        parse_response(&raw)
    }
    let run = async {
        match endpoint {
            DockerEndpoint::Unix(p) => {
                exchange(tokio::net::UnixStream::connect(p).await?, path).await
            }
            DockerEndpoint::Tcp(a) => {
                exchange(tokio::net::TcpStream::connect(a).await?, path).await
            }
        }
    };
    tokio::time::timeout(DOCKER_TIMEOUT, run)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", DOCKER_TIMEOUT.as_secs()),
            )
        })?
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(bad)?;
    let mut body = raw[split + 4..].to_vec();
    // Docker answers HTTP/1.0 requests without chunking; tolerate a chunked body anyway.
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&body[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(body.len());
        out.extend_from_slice(&body[start..end]);
        body = body.get(end + 2..).unwrap_or_default();
    }
    out
}

/// `GET /_ping` must answer 200 `OK`.
pub async fn ping_docker(endpoint: &DockerEndpoint) -> Result<(), PreflightError> {
    let (status, body) = docker_get(endpoint, "/_ping").await.map_err(|source| {
        PreflightError::DockerUnreachable {
            endpoint: endpoint.clone(),
            source,
        }
    })?;
    if status == 200 && body.trim_ascii() == b"OK" {
        Ok(())
    } else {
        Err(PreflightError::DockerNotOk {
            endpoint: endpoint.clone(),
            answer: format!(
                "HTTP {status} {}",
                String::from_utf8_lossy(&body[..body.len().min(200)]).trim()
            ),
        })
    }
}

/// The load balancer container of k3d cluster `cluster` (k3d names it `k3d-<cluster>-serverlb`).
pub fn loadbalancer_container(cluster: &str) -> String {
    format!("k3d-{cluster}-serverlb")
}

/// Whether `container` publishes `port` on the host (Docker's `GET /containers/json`: each
/// container's `Names` and `Ports[].PublicPort`).
async fn container_publishes(
    endpoint: &DockerEndpoint,
    container: &str,
    port: u16,
) -> Result<bool, PreflightError> {
    #[derive(serde::Deserialize)]
    struct Container {
        #[serde(rename = "Names", default)]
        names: Vec<String>,
        #[serde(rename = "Ports", default)]
        ports: Vec<Port>,
    }
    #[derive(serde::Deserialize)]
    struct Port {
        #[serde(rename = "PublicPort", default)]
        public: Option<u16>,
    }
    let (status, body) = docker_get(endpoint, "/containers/json")
        .await
        .map_err(|source| PreflightError::DockerUnreachable {
            endpoint: endpoint.clone(),
            source,
        })?;
    if status != 200 {
        return Ok(false);
    }
    let list: Vec<Container> = serde_json::from_slice(&body).unwrap_or_default();
    let wanted = format!("/{container}");
    Ok(list.iter().any(|c| {
        c.names.iter().any(|n| n == &wanted) && c.ports.iter().any(|p| p.public == Some(port))
    }))
}

/// Whether something listens on host port `port` (on any address, as k3d binds `0.0.0.0`).
fn port_in_use(port: u16) -> bool {
    matches!(
        std::net::TcpListener::bind(("0.0.0.0", port)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Docker answers, and host `port` is free or published by `cluster`'s load balancer.
pub async fn check_local_deploy(
    endpoint: &DockerEndpoint,
    cluster: &str,
    port: u16,
) -> Result<(), PreflightError> {
    ping_docker(endpoint).await?;
    if !port_in_use(port) {
        return Ok(());
    }
    let container = loadbalancer_container(cluster);
    if container_publishes(endpoint, &container, port).await? {
        return Ok(());
    }
    Err(PreflightError::PortTaken {
        port,
        cluster: cluster.to_owned(),
        container,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_values() {
        assert_eq!(
            DockerEndpoint::from_docker_host(None).expect("default"),
            DockerEndpoint::Unix(DEFAULT_DOCKER_SOCKET.into())
        );
        assert_eq!(
            DockerEndpoint::from_docker_host(Some("unix:///run/user/1000/docker.sock"))
                .expect("unix"),
            DockerEndpoint::Unix("/run/user/1000/docker.sock".into())
        );
        assert_eq!(
            DockerEndpoint::from_docker_host(Some("tcp://127.0.0.1:2375")).expect("tcp"),
            DockerEndpoint::Tcp("127.0.0.1:2375".into())
        );
        let err = DockerEndpoint::from_docker_host(Some("ssh://me@host")).expect_err("ssh");
        assert!(err.to_string().contains("DOCKER_HOST"), "{err}");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nOK\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).expect("parses"), (200, b"OK".to_vec()));
    }
}
