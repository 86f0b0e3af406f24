//! Deleting a local k3d cluster and everything kept for it (OpenBao keys, the Zitadel app's
//! state, cached sessions of its OpenBao): the operation behind `harmony cleanup` and
//! `harmony-sso --cleanup`. The confirmation is the caller's (a prompt is terminal business).

use std::path::PathBuf;

use crate::k3d::{K3d, K3dError};
use crate::openbao::{OpenbaoError, StateDir};
use crate::target::cluster_openbao_url;
use crate::tools::{ToolError, Tools};

/// Why a cleanup stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The local state directory could not be found.
    #[error(transparent)]
    DataDir(#[from] harmony_env::DataDirError),
    /// The OpenBao state directory could not be named.
    #[error(transparent)]
    State(#[from] OpenbaoError),
    /// The pinned k3d could not be prepared.
    #[error("getting the pinned k3d")]
    Tools(#[from] ToolError),
    /// k3d failed.
    #[error("deleting the k3d cluster {cluster:?} (is Docker running?)")]
    K3d {
        /// The cluster.
        cluster: String,
        /// k3d's error.
        #[source]
        source: K3dError,
    },
    /// Cached sessions could not be forgotten.
    #[error("forgetting the cached sessions of {url}")]
    Sessions {
        /// The server.
        url: String,
        /// What failed.
        #[source]
        source: Box<harmony_secret::SecretError>,
    },
    /// A local file or directory could not be removed.
    #[error("removing {}", path.display())]
    Io {
        /// What was being removed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a cleanup of `cluster` deletes, for the caller to show before asking.
#[derive(Debug, Clone)]
pub struct CleanupPlan {
    /// The k3d cluster.
    pub cluster: String,
    /// Local state directories that belong to it.
    pub dirs: Vec<PathBuf>,
}

/// What was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// The cluster existed (and is gone now).
    pub cluster_existed: bool,
    /// State directories removed.
    pub removed_dirs: Vec<PathBuf>,
    /// Cached sessions of the cluster's OpenBao removed.
    pub removed_sessions: usize,
}

impl CleanupPlan {
    /// The plan for `cluster`.
    pub fn for_cluster(cluster: &str) -> Result<Self, CleanupError> {
        let data = harmony_env::harmony_data_dir()?;
        Ok(Self {
            cluster: cluster.to_owned(),
            dirs: vec![
                StateDir::for_cluster(cluster)?.path().to_path_buf(),
                data.join("zitadel").join(cluster),
            ],
        })
    }

    /// Delete the cluster (pinned k3d), its state directories and its OpenBao's cached sessions.
    pub async fn run(&self) -> Result<CleanupReport, CleanupError> {
        let tools = Tools::from_env()?;
        let k3d_error = |source| CleanupError::K3d {
            cluster: self.cluster.clone(),
            source,
        };
        let k3d = K3d::install(&self.cluster, &tools)
            .await
            .map_err(k3d_error)?;
        let cluster_existed = k3d.delete_cluster().await.map_err(k3d_error)?;
        let mut removed_dirs = Vec::new();
        for dir in &self.dirs {
            match remove_keeping_locks(dir) {
                Ok(()) => removed_dirs.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CleanupError::Io {
                        path: dir.clone(),
                        source,
                    });
                }
            }
        }
        let removed_sessions = remove_sessions_for(&cluster_openbao_url()).await?;
        Ok(CleanupReport {
            cluster_existed,
            removed_dirs,
            removed_sessions,
        })
    }
}

impl CleanupReport {
    /// The summary people read (stdout of both binaries).
    pub fn summary(&self, cluster: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .removed_dirs
            .iter()
            .map(|d| format!("removed {}", d.display()))
            .collect();
        if self.removed_sessions > 0 {
            out.push(format!(
                "removed {} cached session(s) for {}",
                self.removed_sessions,
                cluster_openbao_url()
            ));
        }
        out.push(if self.cluster_existed {
            format!("deleted k3d cluster {cluster:?}")
        } else {
            format!("k3d cluster {cluster:?} did not exist")
        });
        out
    }
}

/// Forgets the cached sessions whose server is `url` (tokens in the keychain included). Other
/// servers' sessions are left alone, and so are lock files: removing a lock file another process
/// holds would let a third process lock a new file of that name, and two would hold "the" lock at
/// once. Returns how many were removed.
pub async fn remove_sessions_for(url: &str) -> Result<usize, CleanupError> {
    let dir = harmony_env::harmony_data_dir()?.join("sessions");
    harmony_secret::session::SessionCache::new(dir)
        .remove_all_for(url)
        .await
        .map_err(|source| CleanupError::Sessions {
            url: url.to_owned(),
            source: Box::new(source),
        })
}

/// Removes `dir` and everything in it except `*.lock` files (and the directories holding
/// them): a lock file is never deleted, since another process may hold it.
fn remove_keeping_locks(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            remove_keeping_locks(&path)?;
        } else if path.extension().is_none_or(|ext| ext != "lock") {
            std::fs::remove_file(&path)?;
        }
    }
    match std::fs::remove_dir(dir) {
        // Not empty: a lock file stayed.
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        other => other,
    }
}
