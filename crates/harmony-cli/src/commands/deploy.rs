//! `harmony deploy`: the stack on k3d, or with `--kube-context` on an existing cluster, through
//! the same library operations as the seed's `cargo run -p example-harmony-sso`
//! ([`harmony::deploy::LocalDeploy`], [`harmony::deploy::ClusterDeploy`]).

use harmony::deploy::StackOptions;
use harmony::helm::PendingRelease;

use crate::UsageError;
use crate::cli::DeployArgs;
use crate::context::Context;

pub async fn run(ctx: &Context, args: &DeployArgs) -> anyhow::Result<()> {
    let (yes, interactive) = (args.yes, ctx.interactive);
    let stack = StackOptions {
        profile: args.cluster.profile,
        key_shares: harmony::openbao::key_shares_from_flags(args.key_shares, args.key_threshold)
            .map_err(UsageError)?,
        skip_zitadel: args.skip_zitadel,
        grant_users: args.grant_user.clone(),
        reset_userpass: args.reset_userpass,
        backup: args.backup.schedule(),
        kv_max_versions: args.history.kv_max_versions,
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
    let target = args.cluster.target(&ctx.cluster_name).map_err(UsageError)?;
    let on_k3d = target.is_k3d();
    let report = target.deploy(stack).await?;
    for line in report.summary() {
        println!("{line}");
    }
    println!();
    println!("Next:");
    let url = if on_k3d {
        String::new()
    } else {
        format!(" --openbao-url {}", report.openbao_url)
    };
    println!("  harmony{url} login --userpass   sign in with the deploy's saved userpass login");
    if report.sso.is_some() {
        println!("  harmony{url} login --sso        or through Zitadel (device flow)");
    }
    if on_k3d {
        println!("  harmony cleanup                 delete the cluster and local state");
    }
    Ok(())
}
