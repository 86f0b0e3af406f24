//! Wall time of the CLI against an existing OpenBao, with in-process baselines.
//!
//! `cargo bench -p example-harmony-sso --bench cli_wall` starts a real sealed OpenBao (test kit)
//! and measures, in one run:
//! - the first `--openbao-url` bootstrap (init, unseal, configure) vs its no-op re-run;
//! - `--demo` (sign in, CAS write, three config reads) vs a bare `harmony-sso --version` process
//!   (the cost of starting the binary at all).
//!
//! Prints medians and ratios. Not run by the test suite.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;

const RUNS: usize = 7;

fn cli(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_harmony-sso"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data)
        .env_remove(vars::HARMONY_SSO_URL)
        .env_remove(vars::HARMONY_SSO_CLIENT_ID);
    cmd
}

fn timed(mut cmd: Command) -> Duration {
    let started = Instant::now();
    let output = cmd.output().expect("run harmony-sso");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "harmony-sso failed: {}",
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

fn main() {
    // `cargo test` runs bench targets only with --bench; a plain test run passes no such flag.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bao = runtime
        .block_on(OpenbaoServer::sealed())
        .expect("start a sealed OpenBao (run scripts/install-test-servers first)");
    let data = tempfile::tempdir().expect("tempdir");
    let url = bao.url().to_owned();

    let bootstrap = |data: &Path| {
        let mut cmd = cli(data);
        cmd.args(["--openbao-url", &url]);
        cmd
    };
    let first = timed(bootstrap(data.path()));
    let noop = median((0..RUNS).map(|_| timed(bootstrap(data.path()))).collect());

    let demo = median(
        (0..RUNS)
            .map(|_| {
                let mut cmd = cli(data.path());
                cmd.args(["--demo", "--openbao-url", &url]);
                timed(cmd)
            })
            .collect(),
    );
    let start_only = median(
        (0..RUNS)
            .map(|_| {
                let mut cmd = cli(data.path());
                cmd.arg("--version");
                timed(cmd)
            })
            .collect(),
    );

    println!(
        "--openbao-url first run (init + unseal + configure): {:8.1} ms",
        ms(first)
    );
    println!(
        "--openbao-url no-op re-run (median of {RUNS}):         {:8.1} ms",
        ms(noop)
    );
    println!(
        "  ratio no-op / first run:                          {:8.3}",
        noop.as_secs_f64() / first.as_secs_f64()
    );
    println!(
        "--demo (median of {RUNS}):                            {:8.1} ms",
        ms(demo)
    );
    println!(
        "process start only, --version (median of {RUNS}):     {:8.1} ms",
        ms(start_only)
    );
    println!(
        "  ratio --demo / process start:                     {:8.2}",
        demo.as_secs_f64() / start_only.as_secs_f64()
    );
}
