//! `--cleanup`: delete the k3d cluster and the local state that belongs to it.

use anyhow::Context as _;
use harmony::k3d::K3d;
use harmony::openbao::StateDir;
use harmony::tools::Tools;

use crate::cli::Args;
use crate::modes::Ui;
use crate::state;

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let cluster = args.cluster_name.clone();
    let openbao_state = StateDir::for_cluster(&cluster)?;
    let zitadel_state = state::zitadel_dir(&cluster)?;
    let doomed = [openbao_state.path().to_path_buf(), zitadel_state];

    if !args.yes {
        if !ui.interactive {
            anyhow::bail!(
                "--cleanup deletes the k3d cluster {cluster:?} and its unseal keys; \
                 pass --yes to confirm when not running on a terminal"
            );
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
        match std::fs::remove_dir_all(dir) {
            Ok(()) => println!("removed {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("removing {}", dir.display()));
            }
        }
    }
    if existed {
        println!("deleted k3d cluster {cluster:?}");
    } else {
        println!("k3d cluster {cluster:?} did not exist");
    }
    Ok(())
}
