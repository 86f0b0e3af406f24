//! `--cleanup`: delete the k3d cluster and the local state that belongs to it
//! ([`harmony::cleanup::CleanupPlan`], shared with `harmony cleanup`).

use anyhow::Context as _;
use harmony::cleanup::CleanupPlan;

use crate::cli::{Args, UsageError};
use crate::modes::Ui;

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let cluster = args.cluster_name.clone();
    let plan = CleanupPlan::for_cluster(&cluster)?;

    if !args.yes {
        if !ui.interactive {
            return Err(UsageError::CleanupNeedsYes(cluster).into());
        }
        let question = format!(
            "Delete the k3d cluster {cluster:?} and its local state ({})? The OpenBao data and unseal keys are gone for good.",
            plan.dirs
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

    let report = plan.run().await?;
    for line in report.summary(&cluster) {
        println!("{line}");
    }
    Ok(())
}
