//! `harmony backup save|verify|restore`: raft snapshots of the whole OpenBao
//! ([`harmony_secret::backup`] does the work; this renders it). Progress goes to stderr, the
//! result to stdout.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use harmony_secret::backup::{self, Manifest, Restored, UnsealNeeds, Verified};

use crate::UsageError;
#[cfg(feature = "deploy")]
use crate::cli::BackupClusterArgs;
use crate::cli::{BackupCommand, Global, Output};
use crate::context::Context;

pub async fn run(global: &Global, command: &BackupCommand) -> anyhow::Result<ExitCode> {
    match command {
        BackupCommand::Save { file } => save(&Context::new(global)?, file.as_deref()).await?,
        BackupCommand::Verify { file } => verify(global.output, file).await?,
        BackupCommand::Restore { file, force, yes } => {
            restore(&Context::new(global)?, file, *force, *yes).await?;
        }
        #[cfg(feature = "deploy")]
        BackupCommand::List { cluster } => list(global, cluster).await?,
        #[cfg(feature = "deploy")]
        BackupCommand::Fetch {
            name,
            file,
            cluster,
        } => fetch(global, name, file.as_deref(), cluster).await?,
    }
    Ok(ExitCode::SUCCESS)
}

async fn save(ctx: &Context, file: Option<&Path>) -> anyhow::Result<()> {
    let file = match file {
        Some(f) => f.to_owned(),
        None => PathBuf::from(format!(
            "harmony-backup-{}.snap",
            backup::rfc3339_utc(std::time::SystemTime::now()).replace(':', "")
        )),
    };
    let store = ctx.connect().await?;
    let client = store.client();
    eprintln!("taking a raft snapshot of {} ...", client.url());
    let on_terminal = std::io::stderr().is_terminal();
    let progress = move |bytes: u64| {
        if on_terminal {
            eprint!("\r  received {} KiB", bytes / 1024);
            let _ = std::io::stderr().flush();
        }
    };
    let manifest = backup::save(&client, &file, &progress)
        .await
        .with_context(|| {
            format!(
                "could not save a backup of {} to {}",
                client.url(),
                file.display()
            )
        })?;
    if on_terminal {
        eprintln!();
    }
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    println!(
        "saved {} ({} bytes, raft index {}, sha256 {})",
        file.display(),
        manifest.size,
        manifest.raft_index,
        manifest.sha256
    );
    println!("manifest: {}", backup::manifest_path(&file).display());
    println!(
        "restoring it needs {}; keep those keys apart from this file",
        keys_text(&manifest.unseal, &manifest)
    );
    Ok(())
}

async fn verify(output: Output, file: &Path) -> anyhow::Result<()> {
    let verified = backup::verify(file).await?;
    if output == Output::Json {
        let manifest = verified
            .manifest
            .as_ref()
            .map(serde_json::to_value)
            .transpose()?;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": verified.path,
                "ok": true,
                "size": verified.size,
                "sha256": verified.sha256,
                "raft_index": verified.raft_index,
                "raft_term": verified.raft_term,
                "checked": verified.checked,
                "manifest": manifest,
            }))?
        );
        return Ok(());
    }
    println!(
        "{}: OK ({} checked against the archive's SHA256SUMS; raft index {}, {} bytes)",
        file.display(),
        verified.checked.join(", "),
        verified.raft_index,
        verified.size
    );
    match &verified.manifest {
        Some(m) => println!(
            "manifest {} matches: taken from {} at {} ({}); restoring it needs {}",
            backup::manifest_path(file).display(),
            m.server,
            m.created_at,
            m.openbao_version
                .as_deref()
                .map(|v| format!("OpenBao {v}"))
                .unwrap_or_else(|| "OpenBao version unknown".to_owned()),
            keys_text(&m.unseal, m)
        ),
        None => println!(
            "no manifest beside it ({}): only the archive was checked",
            backup::manifest_path(file).display()
        ),
    }
    Ok(())
}

async fn restore(ctx: &Context, file: &Path, force: bool, yes: bool) -> anyhow::Result<()> {
    // Checked before asking: a damaged file is refused without a question.
    let verified = backup::verify(file).await?;
    let url = ctx.base();
    if !yes {
        if !ctx.interactive {
            return Err(UsageError(format!(
                "restore replaces all the data of the OpenBao at {url} with {}; pass --yes to \
                 confirm when not running on a terminal",
                file.display()
            ))
            .into());
        }
        let question = format!(
            "Replace ALL the data of the OpenBao at {url} with {} ({})? Everything written since that snapshot is lost.",
            file.display(),
            describe(&verified)
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
            eprintln!("nothing restored");
            return Ok(());
        }
    }
    let store = ctx.connect().await?;
    eprintln!(
        "restoring {} into {url}{} ...",
        file.display(),
        if force { " (snapshot-force)" } else { "" }
    );
    let restored = backup::restore(&store.client(), file, force).await?;
    if ctx.json() {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "file": file,
                "server": url,
                "forced": restored.forced,
                "sealed": restored.sealed,
                "raft_index": restored.verified.raft_index,
                "unseal": restored.unseal,
            }))?
        );
        return Ok(());
    }
    println!(
        "restored {} into {url} ({})",
        file.display(),
        describe(&restored.verified)
    );
    println!("{}", unseal_advice(&restored));
    Ok(())
}

/// Needs the `deploy` feature (the Kubernetes client reads the PVC).
#[cfg(feature = "deploy")]
async fn list(global: &Global, cluster: &BackupClusterArgs) -> anyhow::Result<()> {
    let k8s =
        harmony::deploy::connect_cluster(cluster.kube_context.as_deref(), &global.cluster_name)
            .await?;
    let ns = &cluster.k8s_namespace;
    eprintln!(
        "listing the scheduled snapshots on PVC {ns}/{} ...",
        harmony::openbao::BACKUP_NAME
    );
    let entries = harmony::openbao::list_snapshots(&k8s, ns).await?;
    if global.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        println!(
            "no snapshots yet on PVC {ns}/{} (the CronJob writes the first at its next scheduled time)",
            harmony::openbao::BACKUP_NAME
        );
        return Ok(());
    }
    for e in &entries {
        let when =
            backup::rfc3339_utc(std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.modified));
        println!("{}  {:>12} bytes  {when}", e.name, e.size);
    }
    Ok(())
}

#[cfg(feature = "deploy")]
async fn fetch(
    global: &Global,
    name: &str,
    file: Option<&Path>,
    cluster: &BackupClusterArgs,
) -> anyhow::Result<()> {
    if !harmony::openbao::is_snapshot_name(name) {
        return Err(UsageError(format!(
            "{name:?} is not a scheduled snapshot's name (harmony-YYYYMMDDTHHMMSSZ.snap); \
             `harmony backup list` shows them"
        ))
        .into());
    }
    let file = file.map_or_else(|| PathBuf::from(name), Path::to_owned);
    let k8s =
        harmony::deploy::connect_cluster(cluster.kube_context.as_deref(), &global.cluster_name)
            .await?;
    let ns = &cluster.k8s_namespace;
    eprintln!(
        "copying {name} off PVC {ns}/{} ...",
        harmony::openbao::BACKUP_NAME
    );
    let fetched = harmony::openbao::fetch_snapshot(&k8s, ns, name, &file)
        .await
        .with_context(|| format!("could not fetch {name} to {}", file.display()))?;
    let v = &fetched.verified;
    if global.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": fetched.entry.name,
                "file": fetched.path,
                "size": v.size,
                "sha256": v.sha256,
                "raft_index": v.raft_index,
                "raft_term": v.raft_term,
                "checked": v.checked,
            }))?
        );
        return Ok(());
    }
    println!(
        "fetched {name} to {} ({} bytes, sha256 {}, raft index {}; {} checked)",
        file.display(),
        v.size,
        v.sha256,
        v.raft_index,
        v.checked.join(", ")
    );
    println!(
        "restoring it needs a quorum of the unseal keys of the cluster it was taken on; keep \
         them apart from this file"
    );
    Ok(())
}

fn describe(v: &Verified) -> String {
    match &v.manifest {
        Some(m) => format!(
            "raft index {}, taken from {} at {}",
            v.raft_index, m.server, m.created_at
        ),
        None => format!("raft index {}, no manifest", v.raft_index),
    }
}

fn keys_text(needs: &UnsealNeeds, m: &Manifest) -> String {
    let cluster = m
        .cluster_name
        .as_deref()
        .map(|c| format!(" of the cluster {c}"))
        .unwrap_or_default();
    if needs.seal_type != "shamir" {
        return format!(
            "the {} auto-unseal{cluster} as it was at {}",
            needs.seal_type, m.created_at
        );
    }
    format!(
        "{} of the {} unseal key shares{cluster} as they were at {}",
        needs.threshold, needs.shares, m.created_at
    )
}

fn unseal_advice(r: &Restored) -> String {
    let keys = match (&r.unseal, &r.verified.manifest) {
        (Some(n), Some(m)) => keys_text(n, m),
        (Some(n), None) => format!("{} of the {} unseal key shares", n.threshold, n.shares),
        (None, _) => "the unseal keys of the cluster the snapshot was taken on".to_owned(),
    };
    if r.sealed {
        let which = if r.forced {
            " (the snapshot's keys, not those of the cluster it replaced)"
        } else {
            ""
        };
        format!(
            "OpenBao is sealed now: unseal it with {keys}{which}; every node of a cluster unseals on its own"
        )
    } else {
        format!(
            "OpenBao is unsealed; from now on its data unseals with {keys} (the snapshot's keys)"
        )
    }
}
