//! The local k3d cluster: create or reuse it, delete it, and hand out a [`K8sClient`] for it.
//!
//! [`K3d`] is created once and passed down; everything that needs the cluster gets either the
//! [`K8sClient`] from [`K3d::client`] or the kubeconfig file from [`K3d::kubeconfig_file`] (for
//! helm). Both come from `k3d kubeconfig get <name>`, so nothing rebuilds a context name or
//! reads the user's `~/.kube/config`, and nothing runs `kubectl`.
//!
//! The k3d binary is a constructor argument (normally from [`Tools::ensure`] with
//! [`ToolSpec::k3d`]), so tests drive a fake executable. Every call is bounded by a deadline
//! ([`K3dTimeouts`]) and k3d's stderr ends up in the error.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use harmony::k3d::K3d;
//! use harmony::tools::Tools;
//! let k3d = K3d::install("harmony", &Tools::from_env()?).await?;
//! k3d.ensure_cluster().await?;
//! let client = k3d.client().await?;
//! # let _ = client; Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony_k8s::{K8sClient, K8sError};
use secrecy::{ExposeSecret as _, SecretString};
use tracing::Instrument as _;

use crate::helm::{KubeconfigFile, PrivateFileError};
use crate::tools::{CommandError, ToolCommand, ToolError, ToolSpec, Tools};

/// Host port 8080 to the cluster's load balancer port 80 (traefik), where both Zitadel and
/// OpenBao are reachable by Host header.
pub const LOADBALANCER_PORT_MAPPING: &str = "8080:80@loadbalancer";
/// The host port of [`LOADBALANCER_PORT_MAPPING`].
pub const LOADBALANCER_HOST_PORT: u16 = 8080;
/// The load balancer's container port of [`LOADBALANCER_PORT_MAPPING`], as Docker names it.
const LOADBALANCER_INGRESS_PORT: &str = "80/tcp";

/// How much sooner than our own deadline k3d's `--timeout` ends, so k3d rolls back (create) or
/// reports (start) by itself before we would have to kill it.
const K3D_TIMEOUT_MARGIN: Duration = Duration::from_secs(60);

/// Longest cluster name k3d accepts (node names add prefixes and suffixes to it).
const MAX_NAME_LEN: usize = 32;

/// Deadlines for k3d calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct K3dTimeouts {
    /// Quick queries: `cluster list`, `kubeconfig get`.
    pub query: Duration,
    /// `cluster create --wait` (pulls k3s images on a fresh machine).
    pub create: Duration,
    /// `cluster start --wait`.
    pub start: Duration,
    /// `cluster delete`.
    pub delete: Duration,
}

impl Default for K3dTimeouts {
    fn default() -> Self {
        Self {
            query: Duration::from_secs(60),
            create: Duration::from_secs(600),
            start: Duration::from_secs(300),
            delete: Duration::from_secs(300),
        }
    }
}

/// What `k3d cluster list` says about our cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// No cluster of that name.
    Absent,
    /// Every server node and the load balancer run, and the load balancer maps host port 8080.
    Running,
    /// Some or all server nodes, or the load balancer, are stopped.
    Stopped {
        /// Server nodes running.
        servers_running: u32,
        /// Server nodes in total.
        servers_count: u32,
    },
    /// A cluster of that name exists but cannot serve the deploy as it is.
    Unusable(Unusable),
}

/// Why an existing cluster cannot be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// It has no load balancer node: a create or start was killed after the servers came up
    /// (k3d starts the servers first), or it was created with `--no-lb`.
    NoLoadBalancer,
    /// Its load balancer runs but does not map host port 8080 to port 80: a cluster made by
    /// someone else under this name. `found` lists the host ports mapped to port 80, if any.
    NoIngressPort {
        /// Host ports mapped to the load balancer's port 80.
        found: Vec<String>,
    },
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::NoLoadBalancer => f.write_str(
                "it has no load balancer node (a create or start that was interrupted after the \
                 servers came up leaves it so)",
            ),
            Unusable::NoIngressPort { found } if found.is_empty() => write!(
                f,
                "its load balancer does not publish port 80 on the host (it was not created by \
                 Harmony, which maps {LOADBALANCER_PORT_MAPPING})"
            ),
            Unusable::NoIngressPort { found } => write!(
                f,
                "its load balancer maps port 80 to host port(s) {} instead of \
                 {LOADBALANCER_HOST_PORT} (it was not created by Harmony, which maps \
                 {LOADBALANCER_PORT_MAPPING})",
                found.join(", ")
            ),
        }
    }
}

/// What [`K3d::ensure_cluster`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnsureOutcome {
    /// The cluster did not exist and was created.
    Created,
    /// The cluster was already running.
    Reused,
    /// The cluster existed but was stopped, and was started.
    Started,
}

/// Why a k3d operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum K3dError {
    /// The cluster name would be refused by k3d (or read as a flag).
    #[error(
        "{name:?} is not a valid k3d cluster name: use 1 to {MAX_NAME_LEN} lowercase letters, \
         digits or '-', starting with a letter and not ending with '-'"
    )]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// The k3d binary could not be obtained.
    #[error("could not obtain k3d: {0}")]
    Tool(#[source] Box<ToolError>),
    /// `k3d cluster list` failed.
    #[error("could not list k3d clusters: {source}; check that Docker is running (`docker info`)")]
    List {
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// `k3d cluster list -o json` printed something unexpected.
    #[error("could not read the output of `k3d cluster list -o json`: {source}; is {} the k3d v5 binary?", .binary.display())]
    ListDecode {
        /// The k3d binary.
        binary: PathBuf,
        /// The decode error.
        #[source]
        source: serde_json::Error,
    },
    /// `k3d cluster create` failed.
    #[error(
        "could not create k3d cluster {cluster}: {source}; check that Docker is running and host \
         port 8080 is free, or delete a half-created cluster with `k3d cluster delete {cluster}`"
    )]
    Create {
        /// The cluster name.
        cluster: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// `k3d cluster start` failed.
    #[error(
        "could not start the stopped k3d cluster {cluster}: {source}; check that Docker is running"
    )]
    Start {
        /// The cluster name.
        cluster: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// A cluster of that name exists but cannot be reused.
    #[error(
        "k3d cluster {cluster} exists but cannot be used: {reason}. Delete it with \
         `k3d cluster delete {cluster}` (or `--cleanup`) and re-run, or pick another cluster name"
    )]
    Unusable {
        /// The cluster name.
        cluster: String,
        /// What is wrong with it.
        reason: Unusable,
    },
    /// The cluster was started but still does not run whole.
    #[error(
        "k3d cluster {cluster} was started but {servers_running} of {servers_count} server(s) run \
         and/or its load balancer is down; check `docker ps -a --filter name=k3d-{cluster}` and \
         the Docker logs, or delete it with `k3d cluster delete {cluster}` and re-run"
    )]
    NotRunningAfterStart {
        /// The cluster name.
        cluster: String,
        /// Server nodes running.
        servers_running: u32,
        /// Server nodes in total.
        servers_count: u32,
    },
    /// `k3d cluster delete` failed.
    #[error("could not delete k3d cluster {cluster}: {source}")]
    Delete {
        /// The cluster name.
        cluster: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// `k3d kubeconfig get` failed.
    #[error(
        "could not get the kubeconfig of k3d cluster {cluster}: {source}; does the cluster exist (`k3d cluster list`)?"
    )]
    Kubeconfig {
        /// The cluster name.
        cluster: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// The kubeconfig could not be written to a file for helm.
    #[error("could not store the kubeconfig of k3d cluster {cluster}: {source}")]
    KubeconfigFile {
        /// The cluster name.
        cluster: String,
        /// The write error.
        #[source]
        source: PrivateFileError,
    },
    /// A Kubernetes client could not be built from k3d's kubeconfig.
    #[error("could not build a Kubernetes client for k3d cluster {cluster}: {source}")]
    Client {
        /// The cluster name.
        cluster: String,
        /// The client error.
        #[source]
        source: Box<K8sError>,
    },
}

/// One entry of `k3d cluster list -o json` (only what we read; k3d prints much more).
/// Field names as k3d v5.8.3 `pkg/types/types.go` (`Cluster`, `Node`, `NodeState`) and the
/// list command's wrapper (`serversRunning`, `serversCount`) encode them.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedCluster {
    name: String,
    #[serde(default)]
    servers_running: u32,
    #[serde(default)]
    servers_count: u32,
    #[serde(default)]
    nodes: Vec<ListedNode>,
}

/// A node of a listed cluster: `role` is `server`, `agent` or `loadbalancer`; `portMappings`
/// is Docker's port map (`"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ListedNode {
    role: String,
    #[serde(rename = "portMappings")]
    port_mappings: std::collections::BTreeMap<String, Option<Vec<PortBinding>>>,
    #[serde(rename = "State")]
    state: ListedNodeState,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ListedNodeState {
    #[serde(rename = "Running")]
    running: bool,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PortBinding {
    #[serde(rename = "HostPort")]
    host_port: String,
}

impl ListedCluster {
    /// What this entry means for the deploy (see [`ClusterState`]).
    fn state(&self) -> ClusterState {
        let servers_up = self.servers_count > 0 && self.servers_running == self.servers_count;
        let Some(lb) = self.nodes.iter().find(|n| n.role == "loadbalancer") else {
            return ClusterState::Unusable(Unusable::NoLoadBalancer);
        };
        if !servers_up || !lb.state.running {
            return ClusterState::Stopped {
                servers_running: self.servers_running,
                servers_count: self.servers_count,
            };
        }
        let found: Vec<String> = lb
            .port_mappings
            .get(LOADBALANCER_INGRESS_PORT)
            .and_then(Option::as_ref)
            .map(|bindings| bindings.iter().map(|b| b.host_port.clone()).collect())
            .unwrap_or_default();
        if found
            .iter()
            .any(|p| p == &LOADBALANCER_HOST_PORT.to_string())
        {
            ClusterState::Running
        } else {
            ClusterState::Unusable(Unusable::NoIngressPort { found })
        }
    }
}

/// k3d's JSON or YAML output without log lines before it: k3d v5 writes INFO/DEBUG lines to
/// stdout (`cmd/root.go`), so with `LOG_LEVEL=debug` inherited they would precede the data. We
/// run k3d with `LOG_LEVEL=warn`; this is the second line of defence.
fn after_log_lines<'a>(stdout: &'a str, starts: &[&str]) -> &'a str {
    let mut offset = 0;
    for line in stdout.split_inclusive('\n') {
        if starts.iter().any(|s| line.starts_with(s)) {
            return &stdout[offset..];
        }
        offset += line.len();
    }
    stdout
}

/// A named k3d cluster driven through one k3d binary.
#[derive(Debug, Clone)]
pub struct K3d {
    binary: PathBuf,
    name: String,
    timeouts: K3dTimeouts,
}

impl K3d {
    /// The cluster `name`, managed with the k3d at `binary`.
    pub fn new(name: impl Into<String>, binary: impl Into<PathBuf>) -> Result<Self, K3dError> {
        let name = name.into();
        if !valid_cluster_name(&name) {
            return Err(K3dError::InvalidName { name });
        }
        Ok(Self {
            binary: binary.into(),
            name,
            timeouts: K3dTimeouts::default(),
        })
    }

    /// The cluster `name` with the pinned k3d from `tools` (downloaded and verified if needed).
    pub async fn install(name: impl Into<String>, tools: &Tools) -> Result<Self, K3dError> {
        let name = name.into();
        if !valid_cluster_name(&name) {
            return Err(K3dError::InvalidName { name });
        }
        let binary = tools
            .ensure(&ToolSpec::k3d())
            .await
            .map_err(|e| K3dError::Tool(Box::new(e)))?;
        Self::new(name, binary)
    }

    /// Other deadlines for k3d calls.
    pub fn with_timeouts(mut self, timeouts: K3dTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The k3d executable in use.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A k3d command: its log lines kept off stdout (`LOG_LEVEL=warn`, whatever the user's
    /// environment says) and without ANSI colours in what we copy into errors.
    fn command(&self, timeout: Duration) -> ToolCommand {
        ToolCommand::new(&self.binary, timeout)
            .env("LOG_LEVEL", "warn")
            .env("LOG_COLORS", "false")
    }

    /// k3d's own `--timeout` for a call we bound by `ours`: a minute shorter (at least 10 s).
    fn k3d_timeout(ours: Duration) -> String {
        let theirs = ours
            .saturating_sub(K3D_TIMEOUT_MARGIN)
            .max(Duration::from_secs(10));
        format!("{}s", theirs.as_secs())
    }

    /// Whether the cluster exists and runs.
    pub async fn state(&self) -> Result<ClusterState, K3dError> {
        // Listing all clusters, not `cluster list NAME`: k3d treats an unknown name as fatal,
        // which would be indistinguishable from Docker being down.
        let out = self
            .command(self.timeouts.query)
            .args(["cluster", "list", "-o", "json"])
            .run()
            .await
            .map_err(|source| K3dError::List {
                source: Box::new(source),
            })?;
        let json = after_log_lines(&out.stdout, &["[", "{"]);
        let clusters: Vec<ListedCluster> =
            serde_json::from_str(json.trim()).map_err(|source| K3dError::ListDecode {
                binary: self.binary.clone(),
                source,
            })?;
        Ok(match clusters.into_iter().find(|c| c.name == self.name) {
            None => ClusterState::Absent,
            Some(c) => c.state(),
        })
    }

    /// Makes the cluster exist and run: creates it (with [`LOADBALANCER_PORT_MAPPING`]) when
    /// absent, starts it when stopped, leaves it alone when running. A cluster of that name
    /// without a load balancer, or whose load balancer does not map host port 8080, is an error
    /// ([`K3dError::Unusable`]) rather than reused.
    ///
    /// k3d gets its own `--timeout` (a minute shorter than ours) so an interrupted create rolls
    /// back by itself, and never touches the user's `~/.kube/config` or kubectl context.
    pub async fn ensure_cluster(&self) -> Result<EnsureOutcome, K3dError> {
        match self.state().await? {
            ClusterState::Unusable(reason) => Err(K3dError::Unusable {
                cluster: self.name.clone(),
                reason,
            }),
            ClusterState::Running => {
                tracing::info!(cluster = %self.name, "k3d cluster already running; reusing it");
                Ok(EnsureOutcome::Reused)
            }
            ClusterState::Stopped { .. } => {
                let span = tracing::info_span!(
                    "k3d_cluster_start",
                    message = %format!("Starting k3d cluster {}", self.name),
                );
                self.command(self.timeouts.start)
                    .args(["cluster", "start", self.name.as_str(), "--wait"])
                    .args([
                        "--timeout".to_owned(),
                        Self::k3d_timeout(self.timeouts.start),
                    ])
                    .run()
                    .instrument(span)
                    .await
                    .map_err(|source| K3dError::Start {
                        cluster: self.name.clone(),
                        source: Box::new(source),
                    })?;
                match self.state().await? {
                    ClusterState::Running => Ok(EnsureOutcome::Started),
                    ClusterState::Unusable(reason) => Err(K3dError::Unusable {
                        cluster: self.name.clone(),
                        reason,
                    }),
                    ClusterState::Absent => Err(K3dError::NotRunningAfterStart {
                        cluster: self.name.clone(),
                        servers_running: 0,
                        servers_count: 0,
                    }),
                    ClusterState::Stopped {
                        servers_running,
                        servers_count,
                    } => Err(K3dError::NotRunningAfterStart {
                        cluster: self.name.clone(),
                        servers_running,
                        servers_count,
                    }),
                }
            }
            ClusterState::Absent => {
                let span = tracing::info_span!(
                    "k3d_cluster_create",
                    message = %format!("Creating k3d cluster {}", self.name),
                );
                self.command(self.timeouts.create)
                    .args([
                        "cluster",
                        "create",
                        self.name.as_str(),
                        "-p",
                        LOADBALANCER_PORT_MAPPING,
                        "--wait",
                        "--kubeconfig-update-default=false",
                        "--kubeconfig-switch-context=false",
                    ])
                    .args([
                        "--timeout".to_owned(),
                        Self::k3d_timeout(self.timeouts.create),
                    ])
                    .run()
                    .instrument(span)
                    .await
                    .map_err(|source| K3dError::Create {
                        cluster: self.name.clone(),
                        source: Box::new(source),
                    })?;
                tracing::info!(cluster = %self.name, "k3d cluster created");
                Ok(EnsureOutcome::Created)
            }
        }
    }

    /// Deletes the cluster; an absent cluster is success. Returns whether one was deleted.
    pub async fn delete_cluster(&self) -> Result<bool, K3dError> {
        if self.state().await? == ClusterState::Absent {
            tracing::info!(cluster = %self.name, "no k3d cluster to delete");
            return Ok(false);
        }
        let span = tracing::info_span!(
            "k3d_cluster_delete",
            message = %format!("Deleting k3d cluster {}", self.name),
        );
        self.command(self.timeouts.delete)
            .args(["cluster", "delete", self.name.as_str()])
            .run()
            .instrument(span)
            .await
            .map_err(|source| K3dError::Delete {
                cluster: self.name.clone(),
                source: Box::new(source),
            })?;
        Ok(true)
    }

    /// The cluster's kubeconfig YAML as k3d prints it (`---` first; holds a client key: kept
    /// secret).
    pub async fn kubeconfig(&self) -> Result<SecretString, K3dError> {
        let out = self
            .command(self.timeouts.query)
            .args(["kubeconfig", "get", self.name.as_str()])
            .run()
            .await
            .map_err(|source| K3dError::Kubeconfig {
                cluster: self.name.clone(),
                source: Box::new(source),
            })?;
        let yaml = after_log_lines(&out.stdout, &["---", "apiVersion"]).to_owned();
        Ok(SecretString::from(yaml))
    }

    /// The kubeconfig in a private temporary file (0600), for helm; deleted when dropped.
    pub async fn kubeconfig_file(&self) -> Result<KubeconfigFile, K3dError> {
        let yaml = self.kubeconfig().await?;
        KubeconfigFile::temporary(&yaml).map_err(|source| K3dError::KubeconfigFile {
            cluster: self.name.clone(),
            source,
        })
    }

    /// A Kubernetes client for the cluster, from k3d's kubeconfig (its current context).
    pub async fn client(&self) -> Result<K8sClient, K3dError> {
        let yaml = self.kubeconfig().await?;
        K8sClient::from_kubeconfig_yaml(yaml.expose_secret(), None)
            .await
            .map_err(|source| K3dError::Client {
                cluster: self.name.clone(),
                source: Box::new(source),
            })
    }
}

fn valid_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_lowercase()
        && bytes[bytes.len() - 1] != b'-'
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_that_k3d_or_a_flag_parser_would_misread_are_refused() {
        for ok in ["harmony", "h", "dev-2", &"a".repeat(MAX_NAME_LEN)] {
            assert!(valid_cluster_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-p",
            "Harmony",
            "dev-",
            "2dev",
            "a b",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(!valid_cluster_name(bad), "{bad}");
        }
        let err = K3d::new("--all", "/bin/true").expect_err("flag-like name");
        assert!(err.to_string().contains("\"--all\""), "{err}");
    }

    #[test]
    fn list_output_decodes_the_fields_we_need() {
        let json = r#"[{"name":"harmony","network":{"name":"k3d-harmony"},"nodes":[],
            "serversRunning":0,"serversCount":1,"agentsRunning":0,"agentsCount":0,
            "hasLoadbalancer":true}]"#;
        let list: Vec<ListedCluster> = serde_json::from_str(json).expect("decodes");
        assert_eq!(list[0].name, "harmony");
        assert_eq!((list[0].servers_running, list[0].servers_count), (0, 1));
    }
}
