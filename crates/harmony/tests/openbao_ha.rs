//! `OpenbaoClusterBootstrap` against a REAL 3-node OpenBao raft cluster on loopback
//! (harmony-testkit `OpenbaoCluster`: three `bao` processes, followers `retry_join` node 0):
//! init once, unseal all, three voters; a no-op re-run; a restarted follower and a restarted
//! former leader are unsealed by the next run; the keys file never changes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use harmony::openbao::{BootstrapOptions, ClusterReport, OpenbaoClusterBootstrap, StateDir};
use harmony_testkit::OpenbaoCluster;

fn options(dir: &std::path::Path) -> BootstrapOptions {
    let mut options = BootstrapOptions::local(StateDir::new(dir));
    // Production-like: five shares, any three unseal.
    options.shares = 5;
    options.threshold = 3;
    // ... and the root token retired once configured: re-runs use the harmony-admin token.
    options.revoke_root = true;
    options
}

async fn run(cluster: &OpenbaoCluster, dir: &std::path::Path) -> Result<ClusterReport> {
    let urls = cluster
        .urls()
        .iter()
        .map(|u| url::Url::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OpenbaoClusterBootstrap::new(&urls, options(dir))?
        .run()
        .await?)
}

fn unsealed(report: &ClusterReport) -> Vec<usize> {
    (0..report.nodes.len())
        .filter(|&i| report.nodes[i].unsealed)
        .collect()
}

async fn health(url: &str) -> u16 {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match http.get(format!("{url}/v1/sys/health")).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn three_node_raft_cluster_converges_and_recovers_restarted_nodes() -> Result<()> {
    let mut cluster = OpenbaoCluster::start(3).await?;
    let state = tempfile::tempdir()?;
    let keys_file = StateDir::new(state.path()).keys_file();

    // First run: init once, unseal all three, configure, three voters.
    let first = run(&cluster, state.path()).await.context("first run")?;
    ensure!(first.bootstrap.initialised, "{first:?}");
    assert_eq!(unsealed(&first), [0, 1, 2]);
    assert_eq!(first.voters, 3);
    assert!(
        first
            .bootstrap
            .changes
            .iter()
            .any(|c| c.contains("revoked the root token")),
        "configured, root retired: {first:?}"
    );
    let keys = std::fs::read(&keys_file)?;
    let saved: serde_json::Value = serde_json::from_slice(&keys)?;
    assert_eq!(saved["keys_base64"].as_array().map(Vec::len), Some(5));
    let mut codes = Vec::new();
    for url in cluster.urls() {
        codes.push(health(&url).await);
    }
    codes.sort_unstable();
    assert_eq!(codes, [200, 429, 429], "one active node, two standbys");

    // Re-run: nothing to do.
    let again = run(&cluster, state.path()).await.context("re-run")?;
    ensure!(again.nothing_changed(), "{again:?}");
    assert_eq!(again.voters, 3);

    // A follower restarts (sealed): the next run unseals it, and only it.
    let follower = (0..3)
        .find(|&i| cluster.urls()[i] != first.active)
        .context("a follower")?;
    cluster.node_mut(follower).restart().await?;
    let healed = run(&cluster, state.path())
        .await
        .context("after follower restart")?;
    assert_eq!(unsealed(&healed), [follower]);
    assert!(healed.bootstrap.changes.is_empty() && !healed.bootstrap.initialised);

    // The active node dies: the two others elect a leader; a run meanwhile reports it
    // unreachable and changes nothing; once it is back (sealed) a run unseals it.
    let leader = (0..3)
        .find(|&i| cluster.urls()[i] == healed.active)
        .context("the active node")?;
    cluster.node_mut(leader).stop();
    let without = run(&cluster, state.path())
        .await
        .context("with the old leader down")?;
    assert!(without.nodes[leader].unreachable, "{without:?}");
    assert_ne!(without.active, cluster.urls()[leader]);
    assert!(without.nothing_changed(), "{without:?}");
    cluster.node_mut(leader).restart().await?;
    let back = run(&cluster, state.path())
        .await
        .context("old leader back")?;
    assert_eq!(unsealed(&back), [leader]);
    assert_eq!(back.voters, 3);

    assert_eq!(
        std::fs::read(&keys_file)?,
        keys,
        "the keys file never changes"
    );
    Ok(())
}
