//! Several layers and configs read at once, and `config list` by one recursive scan, as
//! processes side by side with a bare `curl` of one KV read on the same server with the same
//! token:
//!
//! - `harmony config get KEY --env prod` (base, overlay and schema) vs one `curl` (target ≤ 1.3×);
//! - `harmony run --env prod -c a -c b -c c -- true` (nine reads) vs one `curl` (target ≤ 1.5×);
//! - `harmony config list` over 1,000 documents in 100 folders: one scan (a token whose policy is
//!   the bootstrap's `harmony-dev`, which grants `scan`) vs a LIST per folder (a token whose
//!   policy has `list` but not `scan`, so harmony falls back), target ≥ 10×.
//!
//! `cargo bench -p harmony-cli --bench layers_wall` starts a real OpenBao (test kit dev server);
//! the token is in `OPENBAO_TOKEN` (as in CI), so no session cache is involved. RUNS runs each,
//! interleaved, medians. Not run by the test suite.

use std::process::Command;
use std::time::{Duration, Instant};

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use serde_json::json;

const RUNS: usize = 15;

fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let output = cmd.output().expect("run");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "{:?} failed: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn harmony(data: &std::path::Path, url: &str, token: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harmony"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data)
        .env(vars::OPENBAO_URL, url)
        .env(vars::OPENBAO_TOKEN, token)
        .env(vars::HARMONY_PROJECT_FILE, "/dev/null")
        .env_remove(vars::HARMONY_ENV)
        .env_remove(vars::HARMONY_SSO_URL)
        .env_remove(vars::OPENBAO_USERNAME)
        .env_remove(vars::OPENBAO_PASSWORD);
    cmd
}

/// Interleave the commands RUNS times (after one warm-up each); the medians.
fn medians(cmds: &mut [&mut Command]) -> Vec<Duration> {
    for cmd in cmds.iter_mut() {
        timed(cmd);
    }
    let mut samples = vec![Vec::new(); cmds.len()];
    for _ in 0..RUNS {
        for (i, cmd) in cmds.iter_mut().enumerate() {
            samples[i].push(timed(cmd));
        }
    }
    samples.into_iter().map(median).collect()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bao = runtime
        .block_on(OpenbaoServer::dev())
        .expect("start OpenBao (run scripts/install-test-servers first)");
    let url = bao.url().trim_end_matches('/').to_owned();
    let (dev_token, list_token) = runtime.block_on(async {
        let put = |path: String, data: serde_json::Value| {
            let bao = &bao;
            async move {
                // A fresh dev server refuses writes while it upgrades its KV mount: retried.
                for attempt in 0.. {
                    match bao
                        .root_call(
                            reqwest::Method::POST,
                            &format!("secret/data/harmony/{path}"),
                            Some(json!({ "data": data.clone() })),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(e) if attempt < 50 && e.to_string().contains("Upgrading") => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("write {path}: {e}"),
                    }
                }
            }
        };
        let schema = json!({ "type": "object", "properties": {
            "name": { "type": "string" }, "workers": { "type": "integer" },
            "password": { "type": "string", "x-secret": true } } });
        for key in ["a", "b", "c"] {
            put(
                key.to_owned(),
                json!({ "name": key, "workers": 4, "password": "pw" }),
            )
            .await;
            put(format!("_env/prod/{key}"), json!({ "workers": 16 })).await;
            put(format!("_schema/{key}"), schema.clone()).await;
        }
        for folder in 0..100 {
            for doc in 0..10 {
                put(format!("team-{folder:02}/app-{doc}"), json!({ "n": doc })).await;
            }
        }
        let dev = bao
            .token_with_policy(
                "harmony-dev",
                &harmony_openbao::harmony_dev_policy_hcl(),
                "2h",
            )
            .await
            .expect("token");
        let list = bao
            .token_with_policy(
                "list-only",
                r#"path "secret/data/harmony/*" { capabilities = ["read"] }
path "secret/metadata/harmony/*" { capabilities = ["read", "list"] }
path "secret/metadata/harmony" { capabilities = ["read", "list"] }"#,
                "2h",
            )
            .await
            .expect("token");
        (dev, list)
    });
    let data = tempfile::tempdir().expect("tempdir");
    let mut curl = Command::new("curl");
    curl.args(["-sf", "-o", "/dev/null", "-H"])
        .arg(format!("X-Vault-Token: {dev_token}"))
        .arg(format!("{url}/v1/secret/data/harmony/a"));

    let mut get = harmony(data.path(), &url, &dev_token);
    get.args(["--env", "prod", "config", "get", "a", "--no-cache"]);
    let mut run = harmony(data.path(), &url, &dev_token);
    run.args([
        "--env",
        "prod",
        "run",
        "--no-cache",
        "-c",
        "a",
        "-c",
        "b",
        "-c",
        "c",
    ])
    .args(["--", "true"]);
    let found = medians(&mut [&mut get, &mut run, &mut curl]);
    let (g, r, c) = (found[0], found[1], found[2]);
    println!("median of {RUNS} runs each, same server, same token:");
    println!(
        "  harmony config get a --env prod (3 reads)        {:>8.1} ms",
        ms(g)
    );
    println!(
        "  harmony run --env prod -c a -c b -c c -- true    {:>8.1} ms",
        ms(r)
    );
    println!(
        "  curl (one KV read)                               {:>8.1} ms",
        ms(c)
    );
    println!(
        "  get / curl = {:.2}× (target ≤ 1.3×), run / curl = {:.2}× (target ≤ 1.5×)",
        g.as_secs_f64() / c.as_secs_f64(),
        r.as_secs_f64() / c.as_secs_f64()
    );

    let mut scan = harmony(data.path(), &url, &dev_token);
    scan.args(["config", "list"]);
    let mut walk = harmony(data.path(), &url, &list_token);
    walk.args(["config", "list"]);
    let listed = |cmd: &mut Command| {
        let out = cmd.output().expect("list");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(listed(&mut scan), 1003, "1,000 documents and a, b, c");
    assert_eq!(listed(&mut walk), 1003);
    let found = medians(&mut [&mut scan, &mut walk]);
    let (s, w) = (found[0], found[1]);
    println!("median of {RUNS} runs each, 1,000 documents in 100 folders (+ 3):");
    println!("  harmony config list, one scan          {:>8.1} ms", ms(s));
    println!("  harmony config list, LIST per folder   {:>8.1} ms", ms(w));
    println!(
        "  walk / scan = {:.1}× (target ≥ 10×)",
        w.as_secs_f64() / s.as_secs_f64()
    );
}
