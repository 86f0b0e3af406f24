//! SSO latency, against the real test OpenID provider and a real OpenBao (harmony-testkit).
//!
//! Run: `cargo bench -p harmony-secret --bench sso` (needs `scripts/install-test-servers`).
//!
//! 1. **Approval → first secret**: a person approves the user code while the device is waiting
//!    between polls (provider `interval` = 1 s); measured from the end of the approval to the
//!    first secret read through `OpenbaoSecretStore`. Target: ≤ one poll interval + 0.3 s.
//! 2. **Silent refresh → first secret** (refresh grant + JWT login + first read, in a new store)
//!    against **explicit token → first read** (lookup-self + read), same servers, same run.
//!
//! Plain timing with medians rather than criterion: each sample is dominated by network round
//! trips and a 1 s poll interval, so statistical machinery adds run time, not insight.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harmony_secret::oidc::{DevicePrompt, SsoLogin, SsoSettings};
use harmony_secret::session::SessionCache;
use harmony_secret::{
    AuthMethodUsed, AuthStep, OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{JwtRole, OidcProvider, OidcProviderOptions};
use secrecy::SecretString;
use serde_json::json;

const POLICY: &str = r#"
path "secret/data/harmony/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/harmony/*" { capabilities = ["read", "delete", "list"] }
"#;
const INTERVAL: Duration = Duration::from_secs(1);
const APPROVAL_ROUNDS: usize = 5;
const REFRESH_ROUNDS: usize = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let op = Arc::new(
        OidcProvider::start(OidcProviderOptions {
            interval: Some(INTERVAL),
            device_code_ttl: Duration::from_secs(60),
            ..Default::default()
        })
        .await?,
    );
    let bao = OpenbaoServer::dev().await?;
    bao.root_call(
        reqwest::Method::PUT,
        "sys/policies/acl/harmony-dev",
        Some(json!({ "policy": POLICY })),
    )
    .await?;
    op.configure_openbao_jwt(
        &bao,
        "jwt",
        &JwtRole {
            policies: vec!["harmony-dev".to_owned()],
            ..Default::default()
        },
    )
    .await?;
    let token = bao.token_with_policy("bench", POLICY, "1h").await?;
    let seed = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url()).with_token(SecretString::from(token.clone())),
    )
    .await?;
    seed.put("bench/app", &json!({"k": "v"}), WriteMode::Overwrite)
        .await?;

    // 1. Approval → first secret.
    let mut latencies = Vec::new();
    for _ in 0..APPROVAL_ROUNDS {
        let dir = tempfile::tempdir()?;
        let approved_at: Arc<Mutex<Option<Instant>>> = Arc::default();
        let polls_before = op.polls().await?.len();
        let notifier = {
            let (op, approved_at) = (op.clone(), approved_at.clone());
            move |prompt: &DevicePrompt| {
                let (op, approved_at, code) =
                    (op.clone(), approved_at.clone(), prompt.user_code.clone());
                tokio::spawn(async move {
                    // Approve while the device is between polls, as a person would.
                    while op.polls().await.map(|p| p.len()).unwrap_or(0) <= polls_before {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Err(e) = op.approve_user_code(&code, "bench").await {
                        eprintln!("approval failed: {e}");
                        return;
                    }
                    *approved_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                });
            }
        };
        let sso = SsoLogin::new(SsoSettings::new(op.issuer(), op.client_id()))
            .with_interactive(true)
            .with_notifier(Arc::new(notifier));
        let store = OpenbaoSecretStore::connect(
            OpenbaoSettings::new(bao.url())
                .with_session_dir(dir.path().to_path_buf())
                .with_sso(sso),
        )
        .await?;
        store.get("bench/app").await?;
        let done = Instant::now();
        let approved = approved_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| anyhow::anyhow!("the approval time was not recorded"))?;
        latencies.push(done - approved);
    }
    let approval = median(latencies.clone());
    let target = INTERVAL + Duration::from_millis(300);
    println!(
        "approval → first secret: median {} (samples {:?}), target ≤ {} → {}",
        ms(approval),
        latencies.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        ms(target),
        if approval <= target { "MET" } else { "MISSED" }
    );

    // 2. Silent refresh vs explicit token, each: new store + first read.
    let dir = tempfile::tempdir()?;
    let sso = || {
        SsoLogin::new(SsoSettings::new(op.issuer(), op.client_id()))
            .with_interactive(true)
            .with_notifier(Arc::new({
                let op = op.clone();
                move |prompt: &DevicePrompt| {
                    let (op, code) = (op.clone(), prompt.user_code.clone());
                    tokio::spawn(async move { op.approve_user_code(&code, "bench").await });
                }
            }))
    };
    let settings = |steps: &[AuthStep]| {
        OpenbaoSettings::new(bao.url())
            .with_session_dir(dir.path().to_path_buf())
            .with_sso(sso())
            .with_auth_steps(steps.to_vec())
    };
    // One device flow to get a refresh token into the cache.
    OpenbaoSecretStore::connect(settings(&[AuthStep::DeviceFlow])).await?;

    let mut refresh = Vec::new();
    let mut plain = Vec::new();
    let mut read_only = Vec::new();
    let cache = SessionCache::new(dir.path());
    let identity = sso().identity();
    for _ in 0..REFRESH_ROUNDS {
        // A silent refresh uses a still-valid cached token instead of refreshing: expire it.
        cache
            .update(bao.url(), &identity, |s| {
                s.map(|mut s| {
                    s.expires_at = Some(0);
                    s
                })
            })
            .await?;
        let started = Instant::now();
        let store = OpenbaoSecretStore::connect(settings(&[AuthStep::SilentRefresh])).await?;
        anyhow::ensure!(
            store.auth_method() == AuthMethodUsed::SilentRefresh,
            "the bench meant to measure a silent refresh, got {:?}",
            store.auth_method()
        );
        store.get("bench/app").await?;
        refresh.push(started.elapsed());

        let started = Instant::now();
        let store = OpenbaoSecretStore::connect(
            OpenbaoSettings::new(bao.url()).with_token(SecretString::from(token.clone())),
        )
        .await?;
        store.get("bench/app").await?;
        plain.push(started.elapsed());

        let started = Instant::now();
        store.get("bench/app").await?;
        read_only.push(started.elapsed());
    }
    let (refresh, plain, read_only) = (median(refresh), median(plain), median(read_only));
    println!(
        "silent refresh + JWT login + first read: median {}",
        ms(refresh)
    );
    println!(
        "explicit token + first read:            median {}",
        ms(plain)
    );
    println!(
        "one read on a connected store:          median {}",
        ms(read_only)
    );
    println!(
        "ratios: silent refresh / explicit token = {:.1}x, silent refresh / one read = {:.1}x",
        refresh.as_secs_f64() / plain.as_secs_f64(),
        refresh.as_secs_f64() / read_only.as_secs_f64()
    );
    Ok(())
}
