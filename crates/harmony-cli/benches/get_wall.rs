//! `harmony config get KEY` as a process, side by side with `bao kv get` and a bare `curl` of
//! the same KV path on the same server, with the same token; then `harmony run -c KEY -- true`
//! (online, and `--offline` from the offline cache) side by side with `true` alone.
//!
//! `cargo bench -p harmony-cli --bench get_wall` starts a real OpenBao (test kit dev server),
//! stores a typed document and its schema, signs in once with `harmony login --userpass` (the
//! session is cached), then runs each command RUNS times, interleaved, and prints median wall
//! times, their ratios, and peak memory (max RSS from `/usr/bin/time -f %M`). Not run by the
//! test suite; the targets: `config get` ≤ 0.15× `bao kv get`, ≤ 1.3× `curl`, ≤ 15 MiB;
//! `run` overhead over `true` ≤ 20 ms (≤ 5 ms with `--offline`) and ≤ 0.15× `bao kv get`.
//! Sessions are kept in the file store here, so the bench can hand the same token to `bao` and
//! `curl`; the offline cache is encrypted with the keychain's key when one answers.

use std::path::Path;
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

/// Peak RSS in KiB of one run of `cmd`, through `/usr/bin/time -f %M`.
fn peak_kib(cmd: &Command) -> u64 {
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .arg("-f")
        .arg("%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    let out = wrapped.output().expect("/usr/bin/time");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("a max RSS figure")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn harmony(data: &Path, url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harmony"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data)
        .env(vars::HARMONY_SESSION_STORE, "file")
        .env(vars::OPENBAO_URL, url)
        .env_remove(vars::HARMONY_SSO_URL)
        .env_remove(vars::OPENBAO_USERNAME)
        .env_remove(vars::OPENBAO_PASSWORD);
    cmd
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
    runtime.block_on(async {
        let policy = r#"path "secret/data/harmony/*" { capabilities = ["create", "read", "update", "list"] }
path "secret/metadata/harmony/*" { capabilities = ["read", "list"] }"#;
        bao.root_call(
            reqwest::Method::PUT,
            "sys/policies/acl/team",
            Some(json!({ "policy": policy })),
        )
        .await
        .expect("policy");
        bao.add_userpass_user("bench", "bench-password", &["team"], "1h")
            .await
            .expect("user");
        let schema = json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "description": "Shown in the UI." },
                "workers": { "type": "integer" },
                "database": { "type": "object", "properties": {
                    "host": { "type": "string" }, "port": { "type": "integer" },
                    "password": { "type": "string", "x-secret": true } } }
            }
        });
        bao.root_call(reqwest::Method::POST, "secret/data/harmony/_schema/my-app", Some(json!({ "data": schema })))
            .await
            .expect("schema");
        let doc = json!({ "name": "shop", "workers": 4,
            "database": { "host": "db", "port": 5432, "password": "pw" } });
        bao.root_call(reqwest::Method::POST, "secret/data/harmony/my-app", Some(json!({ "data": doc })))
            .await
            .expect("document");
    });
    let data = tempfile::tempdir().expect("tempdir");
    let login = harmony(data.path(), &url)
        .args(["login", "--userpass", "--username", "bench"])
        .env(vars::OPENBAO_PASSWORD, "bench-password")
        .output()
        .expect("login");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    // The cached session's token, for bao and curl alike.
    let session = std::fs::read_dir(data.path().join("sessions"))
        .expect("sessions")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a cached session");
    let token = serde_json::from_slice::<serde_json::Value>(&std::fs::read(session).expect("read"))
        .expect("json")["token"]
        .as_str()
        .expect("token")
        .to_owned();

    let mut get = harmony(data.path(), &url);
    get.args(["config", "get", "my-app"]);
    let mut bao_get = Command::new(harmony_testkit::bao_binary().expect("bao"));
    bao_get
        .args(["kv", "get", "-mount=secret", "harmony/my-app"])
        .env("BAO_ADDR", &url)
        .env("BAO_TOKEN", &token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN");
    let mut curl = Command::new("curl");
    curl.args(["-sf", "-o", "/dev/null", "-H"])
        .arg(format!("X-Vault-Token: {token}"))
        .arg(format!("{url}/v1/secret/data/harmony/my-app"));

    // Warm up each once (page cache), then interleave.
    for cmd in [&mut get, &mut bao_get, &mut curl] {
        timed(cmd);
    }
    let (mut h, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        h.push(timed(&mut get));
        b.push(timed(&mut bao_get));
        c.push(timed(&mut curl));
    }
    let (h, b, c) = (median(h), median(b), median(c));
    let (hm, bm, cm) = (peak_kib(&get), peak_kib(&bao_get), peak_kib(&curl));
    println!("median of {RUNS} runs each, same server, same token, same KV path:");
    println!(
        "  harmony config get   {:>8.1} ms  {:>6.1} MiB",
        ms(h),
        hm as f64 / 1024.0
    );
    println!(
        "  bao kv get           {:>8.1} ms  {:>6.1} MiB",
        ms(b),
        bm as f64 / 1024.0
    );
    println!(
        "  curl                 {:>8.1} ms  {:>6.1} MiB",
        ms(c),
        cm as f64 / 1024.0
    );
    println!(
        "  harmony / bao = {:.3}× (target ≤ 0.15×), harmony / curl = {:.2}× (target ≤ 1.3×)",
        h.as_secs_f64() / b.as_secs_f64(),
        h.as_secs_f64() / c.as_secs_f64()
    );

    let mut run = harmony(data.path(), &url);
    run.args(["run", "-c", "my-app", "--", "true"]);
    let mut offline = harmony(data.path(), &url);
    offline.args(["run", "-c", "my-app", "--offline", "--", "true"]);
    let mut bare = Command::new("true");
    for cmd in [&mut run, &mut offline, &mut bare] {
        timed(cmd);
    }
    let (mut r, mut o, mut t, mut b2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        r.push(timed(&mut run));
        o.push(timed(&mut offline));
        t.push(timed(&mut bare));
        b2.push(timed(&mut bao_get));
    }
    let (r, o, t, b2) = (median(r), median(o), median(t), median(b2));
    println!("median of {RUNS} runs each:");
    println!(
        "  harmony run -c my-app -- true            {:>8.1} ms",
        ms(r)
    );
    println!(
        "  harmony run -c my-app --offline -- true  {:>8.1} ms",
        ms(o)
    );
    println!(
        "  true                                     {:>8.1} ms",
        ms(t)
    );
    println!(
        "  bao kv get                               {:>8.1} ms",
        ms(b2)
    );
    println!(
        "  run overhead {:.1} ms (target ≤ 20 ms), --offline overhead {:.1} ms (target ≤ 5 ms), \
         run / bao = {:.3}× (target ≤ 0.15×)",
        ms(r.saturating_sub(t)),
        ms(o.saturating_sub(t)),
        r.as_secs_f64() / b2.as_secs_f64()
    );
}
