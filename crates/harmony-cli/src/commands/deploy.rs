//! `harmony deploy`: the local stack on k3d, through the same library operation as the seed's
//! `cargo run -p example-harmony-sso` ([`harmony::deploy::LocalDeploy`]).

use harmony::helm::PendingRelease;

use crate::cli::DeployArgs;
use crate::context::Context;

pub async fn run(ctx: &Context, args: &DeployArgs) -> anyhow::Result<()> {
    let (yes, interactive) = (args.yes, ctx.interactive);
    let deploy = harmony::deploy::LocalDeploy {
        cluster: ctx.cluster_name.clone(),
        skip_zitadel: args.skip_zitadel,
        grant_users: args.grant_user.clone(),
        reset_userpass: args.reset_userpass,
        // A release a killed helm left `pending-*`: recovered with --yes, else asked on a
        // terminal, else the deploy stops and says how.
        pending_recovery: std::sync::Arc::new(move |pending: &PendingRelease| {
            if yes || !interactive {
                return yes;
            }
            inquire::Confirm::new(&pending.question())
                .with_default(false)
                .prompt()
                .unwrap_or(false)
        }),
    };
    let report = deploy.run().await?;
    for line in report.summary() {
        println!("{line}");
    }
    println!();
    println!("Next:");
    println!("  harmony login --userpass        sign in with the deploy's saved userpass login");
    if report.sso.is_some() {
        println!("  harmony login --sso             or through Zitadel (device flow)");
    }
    println!("  harmony cleanup                 delete the cluster and local state");
    Ok(())
}
