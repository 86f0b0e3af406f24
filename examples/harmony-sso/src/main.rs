//! `harmony-sso`: deploy OpenBao + Zitadel SSO on k3d, and share typed config through it.
//!
//! Run it with `cargo run -p example-harmony-sso -- --help`. The binary is thin: it parses the
//! flags, picks a mode, runs it, and turns an error into a message and an exit code (0 success,
//! 1 failure, 2 wrong usage). Data goes to stdout, progress and logs to stderr.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod modes;
mod progress;
mod state;

use cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let mode = match args.mode() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let tty = std::io::stderr().is_terminal();
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    let multi = progress::init(args.verbose, tty);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ui = modes::Ui { interactive, multi };
    match runtime.block_on(modes::run(&args, mode, &ui)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ui.multi
                .suspend(|| eprintln!("error: {}", render_chain(&e)));
            // A setting found missing once the mode knew what it needs is still wrong usage.
            if e.chain().any(|c| c.is::<cli::UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The whole error chain as one paragraph: the outermost message first, each cause after it.
fn render_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        // Many errors repeat their source's text; do not print it twice.
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
