//! The command line: global options and subcommands. Docs, `--help` and shell completions all
//! come from these definitions.

use clap::{Args, Parser, Subcommand, ValueEnum};
use harmony_env::vars;

/// The team's shared config on OpenBao, signed in once through SSO.
///
/// Data goes to stdout, everything else (progress, warnings, errors) to stderr. Exit codes: 0
/// success, 1 failure, 2 wrong usage.
#[derive(Debug, Clone, Parser)]
#[command(name = "harmony", version, long_about = None, max_term_width = 100)]
#[command(after_help = "Examples:
  harmony completions zsh > ~/.zfunc/_harmony")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The OpenBao to use (else OPENBAO_URL, BAO_ADDR or VAULT_ADDR, else the local cluster's).
    #[arg(long, global = true, value_name = "URL")]
    pub openbao_url: Option<url::Url>,

    /// The local k3d cluster whose OpenBao is used when no URL is given.
    #[arg(long, global = true, value_name = "NAME", default_value = "harmony")]
    pub cluster_name: String,

    /// Never prompt and never wait for a person (implied when stdin is not a terminal, except
    /// for `login`, which you asked for).
    #[arg(long, global = true, env = vars::HARMONY_NON_INTERACTIVE, hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub non_interactive: bool,

    /// More detail on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// How data on stdout is written.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The shape of data on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs (one JSON document).
    Json,
}

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print a completion script for your shell to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}
