//! `ConfigManager::get` (environment + OpenBao store, cached userpass session) against one bare
//! reqwest GET of the same KV v2 path on a reused connection, in the same process and against
//! the same real OpenBao dev server. Prints both, `OpenbaoSecretStore::get` alone, and the ratio
//! (target: ≤ 1.2×).
//!
//! Run: `cargo bench -p harmony-config --bench config_get` (needs the test servers:
//! `scripts/install-test-servers`). Without `--bench` (e.g. under `cargo test --all-targets`) it
//! does nothing, so test runs never pay for it.
//!
//! Fairness: the bare GET uses a token of the same userpass user (same policy). OpenBao answers
//! a root token about 0.5 ms faster than a policy-checked one on these machines, so comparing
//! against the root token would measure OpenBao's ACL evaluation, not this crate.
//!
//! Own timing instead of criterion: the point is one ratio of interleaved measurements, and
//! rotating which side runs first keeps background noise (shared CPUs) from favouring either.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use anyhow::Context;
use harmony_config::{ConfigManager, EnvSource, StoreSource};
use harmony_secret::{AuthMethodUsed, OpenbaoSecretStore, OpenbaoSettings, SecretStore};
use harmony_testkit::OpenbaoServer;
use secrecy::{ExposeSecret, SecretString};
use support::{DemoApp, demo};

const WARMUP: usize = 200;
const ROUNDS: usize = 15;
const PER_ROUND: usize = 200;
const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

fn main() -> anyhow::Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        println!("config_get: benchmark skipped (run it with `cargo bench`)");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev()
        .await
        .context("start OpenBao dev server")?;
    let data = tempfile::tempdir()?;
    let sessions = data.path().join("sessions");
    bao.root_call(
        reqwest::Method::PUT,
        "sys/policies/acl/bench",
        Some(serde_json::json!({
            "policy": "path \"secret/data/harmony/*\" { capabilities = [\"create\", \"read\", \"update\"] }"
        })),
    )
    .await?;
    bao.add_userpass_user(USER, PASSWORD, &["bench"], "1h")
        .await?;
    let settings = || {
        OpenbaoSettings::new(bao.url())
            .with_userpass(USER, SecretString::from(PASSWORD))
            .with_session_dir(sessions.clone())
    };
    // The first connection logs in and caches the session; the measured ones reuse it.
    drop(OpenbaoSecretStore::connect(settings()).await?);
    let store = OpenbaoSecretStore::connect(settings()).await?;
    let plain_store = OpenbaoSecretStore::connect(settings()).await?;
    for s in [&store, &plain_store] {
        anyhow::ensure!(
            s.auth_method() == AuthMethodUsed::CachedSession,
            "expected the cached session, got {:?}",
            s.auth_method()
        );
    }

    let manager = ConfigManager::builder()
        .source(EnvSource::from_map([(
            "HARMONY_DEMO_APP_DATABASE_PORT",
            "6543",
        )]))
        .source(StoreSource::new(store))
        .interactive(false)
        .build();
    manager.set(&harmony_config::Snapshot::new(demo())).await?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let login: serde_json::Value = http
        .post(format!("{}/v1/auth/userpass/login/{USER}", bao.url()))
        .json(&serde_json::json!({ "password": PASSWORD }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = SecretString::from(
        login["auth"]["client_token"]
            .as_str()
            .context("userpass login returned no client_token")?
            .to_owned(),
    );
    let url = format!("{}/v1/secret/data/harmony/demo-app", bao.url());

    let bare = async || -> anyhow::Result<()> {
        let resp = http
            .get(&url)
            .header("X-Vault-Token", token.expose_secret())
            .send()
            .await?
            .error_for_status()?;
        resp.bytes().await?;
        Ok(())
    };
    let store_get = async || -> anyhow::Result<()> {
        plain_store.get("demo-app").await?.context("stored")?;
        Ok(())
    };
    let get = async || -> anyhow::Result<()> {
        let config: DemoApp = manager.get().await?;
        anyhow::ensure!(config.database.port == 6543, "env override applied");
        Ok(())
    };

    for _ in 0..WARMUP {
        get().await?;
        store_get().await?;
        bare().await?;
    }
    let mut times: [Vec<Duration>; 3] = Default::default();
    for round in 0..ROUNDS {
        // Rotate the order so no side always runs first (or last) in a round.
        for step in 0..3 {
            let which = (round + step) % 3;
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                match which {
                    0 => get().await?,
                    1 => store_get().await?,
                    _ => bare().await?,
                }
            }
            times[which].push(start.elapsed() / PER_ROUND as u32);
        }
    }
    let [get_median, store_median, bare_median] = times.map(|mut t| {
        t.sort();
        t[ROUNDS / 2]
    });
    let ratio = get_median.as_secs_f64() / bare_median.as_secs_f64();
    println!(
        "config_get: ConfigManager::get (env + OpenBao, cached session) {get_median:?}/op; \
         OpenbaoSecretStore::get {store_median:?}/op; bare reqwest GET (same user's token, \
         reused connection) {bare_median:?}/op; ratio get/bare = {ratio:.3}x (target <= 1.2x; \
         medians of {ROUNDS} rounds x {PER_ROUND} ops)"
    );
    Ok(())
}
