//! `--cleanup`: delete the k3d cluster and the local state that belongs to it.

use anyhow::Context as _;
use harmony::k3d::K3d;
use harmony::openbao::StateDir;
use harmony::tools::Tools;

use crate::cli::{Args, UsageError};
use crate::modes::Ui;
use crate::modes::target::cluster_openbao_url;
use crate::state;

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let cluster = args.cluster_name.clone();
    let openbao_state = StateDir::for_cluster(&cluster)?;
    let zitadel_state = state::zitadel_dir(&cluster)?;
    let doomed = [openbao_state.path().to_path_buf(), zitadel_state];

    if !args.yes {
        if !ui.interactive {
            return Err(UsageError::CleanupNeedsYes(cluster).into());
        }
        let question = format!(
            "Delete the k3d cluster {cluster:?} and its local state ({})? The OpenBao data and unseal keys are gone for good.",
            doomed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let confirmed = tokio::task::spawn_blocking(move || {
            inquire::Confirm::new(&question)
                .with_default(false)
                .prompt()
        })
        .await
        .context("the confirmation prompt stopped")?
        .context("no confirmation")?;
        if !confirmed {
            ui.note("nothing deleted".to_owned());
            return Ok(());
        }
    }

    let tools = Tools::from_env().context("preparing the tool directory")?;
    let k3d = K3d::install(&cluster, &tools)
        .await
        .context("getting the pinned k3d")?;
    let existed = k3d
        .delete_cluster()
        .await
        .with_context(|| format!("deleting the k3d cluster {cluster:?} (is Docker running?)"))?;
    for dir in &doomed {
        match remove_keeping_locks(dir) {
            Ok(()) => println!("removed {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", dir.display()));
            }
        }
    }
    let openbao_url = cluster_openbao_url();
    let sessions = remove_sessions_for(&openbao_url)?;
    if sessions > 0 {
        println!("removed {sessions} cached session(s) for {openbao_url}");
    }
    if existed {
        println!("deleted k3d cluster {cluster:?}");
    } else {
        println!("k3d cluster {cluster:?} did not exist");
    }
    Ok(())
}

/// Deletes the cached sessions (and their lock files) whose server is `url`: they belong to the
/// cluster being deleted. Other servers' sessions are left alone. Returns how many were removed.
fn remove_sessions_for(url: &str) -> anyhow::Result<usize> {
    let dir = state::data_dir()?.join("sessions");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut removed = 0;
    for path in entries.flatten().map(|e| e.path()) {
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        // A file that cannot be read or parsed is not ours to judge: leave it.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let Ok(session) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        if session.get("url").and_then(|u| u.as_str()) != Some(url) {
            continue;
        }
        // The `.lock` beside it stays: removing a lock file another process holds would let a
        // third process lock a new file of that name, and two would hold "the" lock at once.
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        removed += 1;
    }
    Ok(removed)
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
