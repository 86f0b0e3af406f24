//! The default mode: create or reuse the k3d cluster — or, with `--kube-context`, use an
//! existing cluster — and converge OpenBao, CloudNativePG, Zitadel, the device-code app and
//! OpenBao's JWT auth ([`harmony::deploy::LocalDeploy`], [`harmony::deploy::ClusterDeploy`],
//! shared with `harmony deploy`).

use harmony::deploy::StackOptions;
use harmony::helm::PendingRelease;

use crate::cli::Args;
use crate::modes::Ui;

pub async fn run(args: &Args, ui: &Ui) -> anyhow::Result<()> {
    let stack = StackOptions {
        profile: args.cluster.profile,
        key_shares: args.key_shares()?,
        skip_zitadel: args.skip_zitadel,
        grant_users: args.grant_user.clone(),
        reset_userpass: args.reset_userpass,
        backup: args.backup.schedule(),
        kv_max_versions: args.history.kv_max_versions,
        pending_recovery: pending_recovery(args, ui),
    };
    let target = args
        .cluster
        .target(&args.cluster_name)
        .map_err(crate::cli::UsageError::Tls)?;
    let on_k3d = target.is_k3d();
    let report = target.deploy(stack).await?;
    for line in report.summary() {
        println!("{line}");
    }
    println!();
    println!("Next:");
    if !on_k3d {
        println!(
            "  cargo run -p example-harmony-sso -- --demo --openbao-url {}",
            report.openbao_url
        );
        return Ok(());
    }
    println!(
        "  cargo run -p example-harmony-sso -- --demo        typed config through OpenBao (userpass)"
    );
    if report.sso.is_some() {
        println!(
            "  cargo run -p example-harmony-sso -- --sso-demo    the same, signed in through Zitadel"
        );
        println!(
            "  (add '127.0.0.1 sso.harmony.local bao.harmony.local' to /etc/hosts for the browser)"
        );
    }
    println!(
        "  cargo run -p example-harmony-sso -- --cleanup     delete the cluster and local state"
    );
    Ok(())
}

/// Whether a helm release a killed helm left `pending-*` may be recovered: yes with `--yes`,
/// else ask a person at a terminal, else no (the error then says how).
fn pending_recovery(args: &Args, ui: &Ui) -> harmony::helm::PendingRecovery {
    let (yes, interactive, multi) = (args.yes, ui.interactive, ui.multi.clone());
    std::sync::Arc::new(move |pending: &PendingRelease| {
        if yes {
            return true;
        }
        if !interactive {
            return false;
        }
        let question = pending.question();
        multi.suspend(|| {
            inquire::Confirm::new(&question)
                .with_default(false)
                .prompt()
                .unwrap_or(false)
        })
    })
}
