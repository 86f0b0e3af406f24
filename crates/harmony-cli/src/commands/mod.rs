//! One module per subcommand; each parses nothing and prints data to stdout only.

use std::process::ExitCode;

use clap::CommandFactory as _;

use crate::cli::{Cli, Command};
use crate::context::Context;

mod backup;
mod bootstrap;
#[cfg(feature = "deploy")]
mod cleanup;
pub(crate) mod config;
#[cfg(feature = "deploy")]
mod deploy;
mod env;
mod login;
mod logout;
mod run;
mod status;
mod watch;

/// Run the parsed command line; `Ok` carries the exit code (a `check` that finds problems
/// exits 1 without an error of its own).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "harmony", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Login(args) => {
            login::run(&Context::new(&cli.global)?, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config { command } => config::run(&Context::new(&cli.global)?, &command).await,
        Command::Env { command } => env::run(&Context::new(&cli.global)?, &command).await,
        #[cfg(feature = "deploy")]
        Command::Deploy(args) => {
            deploy::run(&Context::new(&cli.global)?, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bootstrap(args) => {
            bootstrap::run(&cli.global, &args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { command } => backup::run(&cli.global, &command).await,
        #[cfg(feature = "deploy")]
        Command::Cleanup { yes } => {
            cleanup::run(&Context::new(&cli.global)?, yes).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status => status::run(&Context::new(&cli.global)?).await,
        Command::Run(args) => run::run(&Context::new(&cli.global)?, &args).await,
        Command::Export(args) => run::export(&Context::new(&cli.global)?, &args).await,
        Command::Logout => logout::run(&Context::new(&cli.global)?).await,
    }
}
