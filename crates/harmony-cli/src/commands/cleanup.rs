//! `harmony cleanup`: delete the local k3d cluster and its local state
//! ([`harmony::cleanup::CleanupPlan`], also behind `harmony-sso --cleanup`).

use anyhow::Context as _;
use harmony::cleanup::CleanupPlan;

use crate::UsageError;
use crate::context::Context;

pub async fn run(ctx: &Context, yes: bool) -> anyhow::Result<()> {
    let cluster = ctx.cluster_name.clone();
    let plan = CleanupPlan::for_cluster(&cluster)?;
    if !yes {
        if !ctx.interactive {
            return Err(UsageError(format!(
                "cleanup deletes the k3d cluster {cluster:?} and its unseal keys; pass --yes to \
                 confirm when not running on a terminal"
            ))
            .into());
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
            eprintln!("nothing deleted");
            return Ok(());
        }
    }
    for line in plan.run().await?.summary(&cluster) {
        println!("{line}");
    }
    Ok(())
}
