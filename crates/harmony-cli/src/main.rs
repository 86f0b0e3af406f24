//! `harmony`: the command a team uses every day on OpenBao + SSO — sign in once, then read,
//! change, check and roll back typed config.
//!
//! Run it with `cargo run -p harmony-cli -- --help`, install it with
//! `cargo install --path crates/harmony-cli`. The binary is thin: it parses the command line
//! ([`cli`]), runs one module of [`commands`] (which call the library crates: the auth chain and
//! session cache of `harmony-secret`, the schema helpers of `harmony-config`, the target
//! resolution of `harmony`), and turns the error into a message and an exit code (0 success,
//! 1 failure, 2 wrong usage). Data goes to stdout, everything else to stderr.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod context;
mod env_names;
mod offline;
mod profile;
mod project;

/// A command line that parses but cannot work (a missing setting, flags that contradict):
/// exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", render_chain(&e));
            if e.chain().any(|c| c.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Warnings by default, `-v` debug, `-vv` trace; `RUST_LOG` overrides. Always stderr.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = std::env::var(harmony_env::vars::RUST_LOG)
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .try_init();
}

/// The whole error chain as one paragraph: the outermost message first, each cause after it.
pub(crate) fn render_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
