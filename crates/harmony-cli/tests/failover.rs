//! A leader failover under load on a REAL 3-node OpenBao raft cluster (harmony-testkit, with
//! `disable_standby_reads = true` as the README recommends): four clients — two through the
//! library (`OpenbaoSecretStore`), two through `harmony config set` — write check-and-set
//! updates and read through a standby while the active node is SIGKILLed and later restarted.
//!
//! Required: 0 acknowledged writes lost, 0 duplicated versions, 0 false conflicts (each client
//! owns its document, so any conflict is false), every client back to success within 15 s of the
//! kill. The figures are printed (`--no-capture` shows them).

mod harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use harmony_env::vars;
use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretError, SecretStore, WriteMode};
use harmony_testkit::{InitKeys, OpenbaoCluster, OpenbaoServer};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;

const PREFIX: &str = "harmony";
const CLIENTS: usize = 4;
/// Every client must succeed again this soon after the kill.
const RECOVERY_BOUND: Duration = Duration::from_secs(15);

async fn unseal_node(node: &OpenbaoServer, keys: &InitKeys) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.root_call(Method::GET, "sys/seal-status", None).await?["initialized"] != true {
        ensure!(Instant::now() < deadline, "{} never joined", node.url());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for key in &keys.keys_b64 {
        node.root_call(Method::POST, "sys/unseal", Some(json!({"key": key})))
            .await?;
    }
    Ok(())
}

async fn voters(node: &OpenbaoServer) -> usize {
    node.root_call(Method::GET, "sys/storage/raft/configuration", None)
        .await
        .ok()
        .and_then(|b| {
            b["data"]["config"]["servers"]
                .as_array()
                .map(|s| s.iter().filter(|x| x["voter"] == true).count())
        })
        .unwrap_or(0)
}

async fn status(url: &str) -> u16 {
    let http = reqwest::Client::new();
    match http
        .get(format!("{url}/v1/sys/health"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// One operation of one client.
#[derive(Debug, Clone)]
struct Op {
    client: usize,
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    /// A write acknowledged at `version` with counter `n`.
    Written {
        version: u64,
        n: u64,
    },
    /// A read that succeeded.
    Read,
    Conflict(String),
    Failed(String),
}

type Log = Arc<Mutex<Vec<Op>>>;

fn record(log: &Log, client: usize, started: Instant, outcome: Outcome) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(Op {
        client,
        started,
        ended: Instant::now(),
        outcome,
    });
}

async fn library_client(
    client: usize,
    url: String,
    token: String,
    log: Log,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(&url)
            .with_token(SecretString::from(token))
            .with_kv_prefix(PREFIX)
            .with_session_dir(dir.path().join("sessions")),
    )
    .await?;
    let key = format!("load-{client}");
    let mut version = None;
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        match store.get(&key).await {
            Ok(read) => {
                if let Some(read) = &read {
                    // Read-after-write through the standby: never older than our last write.
                    ensure!(
                        Some(read.version) >= version,
                        "client {client} read version {} after writing {version:?}",
                        read.version
                    );
                }
                record(&log, client, started, Outcome::Read);
            }
            Err(e) => record(&log, client, started, Outcome::Failed(e.to_string())),
        }
        let started = Instant::now();
        match store
            .put(
                &key,
                &json!({"n": n + 1, "client": client}),
                WriteMode::Cas(version),
            )
            .await
        {
            Ok(v) => {
                n += 1;
                version = Some(v);
                record(&log, client, started, Outcome::Written { version: v, n });
            }
            Err(e @ SecretError::Conflict { .. }) => {
                record(&log, client, started, Outcome::Conflict(e.to_string()));
                // Carry on from what is stored, so one false conflict is not counted forever.
                if let Ok(Some(read)) = store.get(&key).await {
                    version = Some(read.version);
                    n = read.value["n"].as_u64().unwrap_or(n);
                }
            }
            Err(e) => record(&log, client, started, Outcome::Failed(e.to_string())),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn cli_client(
    client: usize,
    url: String,
    token: String,
    log: Log,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let data = tempfile::tempdir()?;
    let key = format!("load-{client}");
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let started = Instant::now();
        let out = harness::harmony_std(data.path())
            .env(vars::OPENBAO_TOKEN, &token)
            .args(["config", "set", &key, &format!("n={}", n + 1)])
            .args(["--openbao-url", &url])
            .stdin(std::process::Stdio::null())
            .output()?;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        let saved = err
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: saved version ")))
            .and_then(|v| v.trim().parse::<u64>().ok());
        match (out.status.success(), saved) {
            (true, Some(version)) => {
                n += 1;
                record(&log, client, started, Outcome::Written { version, n });
            }
            _ if err.contains("changed concurrently") => {
                record(&log, client, started, Outcome::Conflict(err))
            }
            _ => record(&log, client, started, Outcome::Failed(err)),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_under_load_loses_no_acknowledged_write() -> Result<()> {
    let mut cluster = OpenbaoCluster::start(3).await?;
    let keys = cluster.node_mut(0).init().await?;
    cluster.node(0).unseal(&keys).await?;
    for i in 1..3 {
        unseal_node(cluster.node(i), &keys).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while voters(cluster.node(0)).await < 3 {
        ensure!(Instant::now() < deadline, "never 3 voters");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let root = keys.root_token.clone();
    cluster.node(0).enable_kv_v2("secret").await?;
    // Keep every version, so every acknowledged write can be found afterwards.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster
        .node(0)
        .root_call(
            Method::POST,
            "secret/config",
            Some(json!({"max_versions": 100000, "cas_required": false})),
        )
        .await
        .is_err()
        || cluster
            .node(0)
            .root_call(
                Method::POST,
                "secret/data/harmony/ready",
                Some(json!({"data": {}})),
            )
            .await
            .is_err()
    {
        ensure!(Instant::now() < deadline, "KV never became writable");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let urls = cluster.urls();
    let mut active = None;
    for (i, url) in urls.iter().enumerate() {
        if status(url).await == 200 {
            active = Some(i);
        }
    }
    let active = active.context("an active node")?;
    let standby = (0..3).find(|&i| i != active).context("a standby")?;
    let standby_url = urls[standby].clone();

    let log: Log = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let (url, token, log, stop) =
            (standby_url.clone(), root.clone(), log.clone(), stop.clone());
        tasks.push(if client < 2 {
            tokio::spawn(library_client(client, url, token, log, stop))
        } else {
            tokio::task::spawn_blocking(move || cli_client(client, url, token, log, stop))
        });
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let killed = Instant::now();
    cluster.node_mut(active).stop();
    tokio::time::sleep(Duration::from_secs(20)).await;
    cluster.node_mut(active).restart().await?;
    unseal_node(cluster.node(active), &keys).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }

    let ops = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let reader = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(&standby_url)
            .with_token(SecretString::from(root.clone()))
            .with_kv_prefix(PREFIX)
            .with_session_dir(tempfile::tempdir()?.path().join("s")),
    )
    .await?;
    let client = reader.client();
    let mut problems = Vec::new();
    println!("failover under load: active node {active} SIGKILLed, clients on standby {standby}");
    for c in 0..CLIENTS {
        let mine: Vec<&Op> = ops.iter().filter(|o| o.client == c).collect();
        let written: Vec<(u64, u64)> = mine
            .iter()
            .filter_map(|o| match o.outcome {
                Outcome::Written { version, n } => Some((version, n)),
                _ => None,
            })
            .collect();
        let attempted = mine
            .iter()
            .filter(|o| !matches!(o.outcome, Outcome::Read))
            .count();
        let conflicts: Vec<&String> = mine
            .iter()
            .filter_map(|o| match &o.outcome {
                Outcome::Conflict(m) => Some(m),
                _ => None,
            })
            .collect();
        let failures: Vec<&String> = mine
            .iter()
            .filter_map(|o| match &o.outcome {
                Outcome::Failed(m) => Some(m),
                _ => None,
            })
            .collect();
        // Everything stored under the client's document, version by version.
        let key = format!("load-{c}");
        let meta = client
            .get(&format!("secret/metadata/{PREFIX}/{key}"))
            .await?
            .context("metadata")?;
        let current = meta["data"]["current_version"].as_u64().unwrap_or(0);
        let mut stored: Vec<(u64, u64)> = Vec::new();
        for v in 1..=current {
            let body = client
                .get(&format!("secret/data/{PREFIX}/{key}?version={v}"))
                .await?
                .context("version")?;
            let n = &body["data"]["data"]["n"];
            let n = n
                .as_u64()
                .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            stored.push((v, n));
        }
        let found = written.iter().filter(|w| stored.contains(w)).count();
        let mut ns: Vec<u64> = stored.iter().map(|s| s.1).collect();
        ns.sort_unstable();
        let before = ns.len();
        ns.dedup();
        let duplicated = before - ns.len();
        let recovery = mine
            .iter()
            .filter(|o| {
                o.started >= killed
                    && !matches!(o.outcome, Outcome::Conflict(_) | Outcome::Failed(_))
            })
            .map(|o| o.ended.duration_since(killed))
            .min();
        println!(
            "client {c} ({}): writes attempted {attempted}, acknowledged {}, found {found}, \
             versions stored {current}, duplicated {duplicated}, conflicts {}, failures {}, \
             back to success {:.1} s after the kill",
            if c < 2 { "library" } else { "CLI" },
            written.len(),
            conflicts.len(),
            failures.len(),
            recovery.map(|r| r.as_secs_f64()).unwrap_or(f64::NAN),
        );
        if found != written.len() {
            problems.push(format!(
                "client {c}: {} acknowledged writes lost",
                written.len() - found
            ));
        }
        if duplicated > 0 {
            problems.push(format!("client {c}: {duplicated} duplicated versions"));
        }
        if !conflicts.is_empty() {
            problems.push(format!(
                "client {c}: false conflicts: {:?}",
                &conflicts[..conflicts.len().min(3)]
            ));
        }
        if !failures.is_empty() {
            problems.push(format!(
                "client {c}: failures: {:?}",
                &failures[..failures.len().min(3)]
            ));
        }
        match recovery {
            Some(r) if r <= RECOVERY_BOUND => {}
            other => problems.push(format!(
                "client {c}: not back within {RECOVERY_BOUND:?} ({other:?})"
            )),
        }
        if written.is_empty() {
            problems.push(format!("client {c}: no write acknowledged at all"));
        }
    }
    ensure!(problems.is_empty(), "{problems:#?}");
    Ok(())
}
