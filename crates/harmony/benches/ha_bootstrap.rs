//! HA bootstrap wall time on a real 3-node OpenBao raft cluster, against a baseline doing the
//! bare minimum over HTTP on an identical cluster: init, unseal all three, poll until raft lists
//! three voters. Autopilot promotes followers only after its server stabilization time (10 s by
//! default), so both are bounded by that rather than by code.
//!
//! `cargo bench -p harmony --bench ha_bootstrap` prints: the baseline, our first run (which also
//! configures and retires the root token), their ratio, and the median no-op re-run. Not run by
//! the test suite.

use std::time::{Duration, Instant};

use harmony::openbao::{BootstrapOptions, OpenbaoClusterBootstrap, StateDir};
use harmony_testkit::OpenbaoCluster;
use serde_json::{Value, json};

const RERUNS: usize = 5;

async fn baseline(cluster: &OpenbaoCluster) -> Duration {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let urls = cluster.urls();
    let started = Instant::now();
    let init: Value = http
        .put(format!("{}/v1/sys/init", urls[0]))
        .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
        .send()
        .await
        .expect("init")
        .json()
        .await
        .expect("init json");
    let key = init["keys_base64"][0].as_str().expect("key").to_owned();
    let root = init["root_token"].as_str().expect("root").to_owned();
    for url in &urls {
        // A follower takes the key only once its retry_join reached the leader.
        loop {
            let answer = http
                .put(format!("{url}/v1/sys/unseal"))
                .json(&json!({"key": key}))
                .send()
                .await
                .expect("unseal");
            if answer.status().is_success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    loop {
        let config: Value = http
            .get(format!("{}/v1/sys/storage/raft/configuration", urls[0]))
            .header("X-Vault-Token", &root)
            .send()
            .await
            .expect("raft configuration")
            .json()
            .await
            .unwrap_or(Value::Null);
        let voters = config["data"]["config"]["servers"]
            .as_array()
            .map(|s| s.iter().filter(|s| s["voter"] == true).count())
            .unwrap_or(0);
        if voters == urls.len() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ours(cluster: &OpenbaoCluster, dir: &std::path::Path) -> OpenbaoClusterBootstrap {
    let urls: Vec<url::Url> = cluster
        .urls()
        .iter()
        .map(|u| url::Url::parse(u).expect("url"))
        .collect();
    let mut options = BootstrapOptions::local(StateDir::new(dir));
    options.revoke_root = true;
    OpenbaoClusterBootstrap::new(&urls, options).expect("bootstrap")
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let base_cluster = OpenbaoCluster::start(3).await.expect("baseline cluster");
        let base = baseline(&base_cluster).await;
        drop(base_cluster);

        let cluster = OpenbaoCluster::start(3).await.expect("cluster");
        let dir = tempfile::tempdir().expect("tempdir");
        let bootstrap = ours(&cluster, dir.path());
        let started = Instant::now();
        let report = bootstrap.run().await.expect("first run");
        let first = started.elapsed();
        assert_eq!(report.voters, 3);
        let mut reruns = Vec::new();
        for _ in 0..RERUNS {
            let started = Instant::now();
            let report = bootstrap.run().await.expect("re-run");
            reruns.push(started.elapsed());
            assert!(report.nothing_changed());
        }
        reruns.sort();
        let rerun = reruns[RERUNS / 2];

        let s = |d: Duration| d.as_secs_f64();
        println!(
            "baseline (raw HTTP: init, unseal 3, wait for 3 voters): {:7.2} s",
            s(base)
        );
        println!(
            "OpenbaoClusterBootstrap first run (+ configure, retire root): {:7.2} s",
            s(first)
        );
        println!(
            "  ratio first run / baseline:                             {:7.2}",
            s(first) / s(base)
        );
        println!(
            "no-op re-run (median of {RERUNS}):                             {:7.3} s",
            s(rerun)
        );
    });
}
