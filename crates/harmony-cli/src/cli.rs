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
  harmony login --sso --sso-url ISSUER --client-id ID   sign in through the browser (device flow)
  harmony status                           which server, who I am, how long the session lasts
  harmony config get my-app                show a config (secrets masked; --reveal shows them)
  harmony config set my-app database.port=5433
  harmony config edit my-app               edit in $EDITOR, validated, never overwrites a teammate
  harmony config history my-app; harmony config rollback my-app 3
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

    /// The environment (e.g. prod): config get/set/edit/history/diff/rollback/check, run and
    /// export work on that environment (its overlay over the base). Without it: the project
    /// file's `environment`, else the base (`--env ''`: the base, whatever the project file says).
    #[arg(long = "env", global = true, value_name = "NAME", env = vars::HARMONY_ENV, hide_env_values = true)]
    pub env: Option<String>,

    /// The project file to read (default: harmony.toml in this directory or a parent, up to
    /// the repository's root; /dev/null reads none). Flags and variables win over it.
    #[arg(long, global = true, value_name = "PATH", env = vars::HARMONY_PROJECT_FILE, hide_env_values = true)]
    pub project_file: Option<std::path::PathBuf>,

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
    /// Sign in to OpenBao and cache the session (SSO device flow, userpass, or a token).
    Login(LoginArgs),
    /// Show the server, whether it is sealed, and who you are signed in as (never signs in).
    Status,
    /// Revoke the session's OpenBao token and SSO refresh token, and delete the cached session.
    Logout,
    /// Read and change the team's config documents (typed by the schema stored with each).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The environments the bootstrap declared, and what you may do in each.
    Env {
        #[command(subcommand)]
        command: EnvCommand,
    },
    /// Run a program with the team's config in its environment (the process is replaced: its
    /// signals and exit code are the program's own). Values never appear on a command line.
    Run(RunArgs),
    /// Print the values `harmony run` would put in the environment.
    Export(ExportArgs),
    /// Deploy or converge the stack: on a local k3d cluster (needs Docker), or with
    /// --kube-context on a cluster you have. OpenBao, CloudNativePG, Zitadel, the device-code app
    /// and OpenBao's JWT auth. A re-run changes nothing.
    #[cfg(feature = "deploy")]
    Deploy(DeployArgs),
    /// Init (if needed), unseal and configure an existing OpenBao (--openbao-url), optionally
    /// wiring its JWT auth to an OpenID provider.
    Bootstrap(BootstrapArgs),
    /// Take, check and restore raft snapshots of the whole OpenBao (the unseal keys are never in
    /// a backup: keep them apart).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Delete the local k3d cluster and its local state (asks first on a terminal).
    #[cfg(feature = "deploy")]
    Cleanup {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print a completion script for your shell to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How `harmony login` signs in. Without a method flag: the method of the last login to this
/// server, else SSO when an issuer is known, else userpass when a user is named.
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Sign in through the OpenID provider (device flow: a URL and a code to confirm).
    #[arg(long, conflicts_with_all = ["userpass", "token_stdin"])]
    pub sso: bool,

    /// Sign in with OpenBao's userpass method (password from OPENBAO_PASSWORD, else asked).
    #[arg(long, conflicts_with_all = ["sso", "token_stdin"])]
    pub userpass: bool,

    /// Read an OpenBao token from stdin, check it and keep it as the session.
    #[arg(long, conflicts_with_all = ["sso", "userpass"])]
    pub token_stdin: bool,

    /// The OpenID issuer URL.
    #[arg(long, value_name = "ISSUER", env = vars::HARMONY_SSO_URL, hide_env_values = true)]
    pub sso_url: Option<url::Url>,

    /// The device-code application's public client id at the issuer.
    #[arg(long, value_name = "ID", env = vars::HARMONY_SSO_CLIENT_ID, hide_env_values = true)]
    pub client_id: Option<String>,

    /// The OpenBao JWT role to sign in to (default harmony-developer; OPENBAO_JWT_ROLE).
    #[arg(long, value_name = "ROLE")]
    pub jwt_role: Option<String>,

    /// The userpass user (default: OPENBAO_USERNAME, else the last login's, else `harmony`).
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
}

/// `harmony env ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum EnvCommand {
    /// Each environment with your access (asked of OpenBao for your token) and the roles that
    /// may write it.
    List,
}

/// `harmony config ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ConfigCommand {
    /// The config keys under the team's prefix (or under PREFIX).
    List {
        /// A folder under the team's prefix.
        prefix: Option<String>,
    },
    /// Print a document (secret fields masked unless --reveal).
    Get {
        /// The config key, e.g. my-app.
        key: String,
        /// Only this field (dotted path, e.g. database.port).
        #[arg(long, value_name = "PATH")]
        field: Option<String>,
        /// Output format (default: yaml, or json with --output json). dotenv names the
        /// variables as `harmony run`/EnvSource read them: HARMONY_<KEY>_<FIELD>.
        #[arg(long, value_enum)]
        format: Option<Format>,
        /// Show secret values.
        #[arg(long)]
        reveal: bool,
        /// With --env: say, per field, whether it comes from the base or the overlay.
        #[arg(long)]
        explain: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Change fields (typed by the schema), check-and-set against the version just read.
    Set {
        /// The config key.
        key: String,
        /// FIELD=VALUE pairs, e.g. database.port=5432 debug=true. Keep secrets off the command
        /// line: FIELD=- reads that value from stdin (one per call, a trailing newline dropped);
        /// a bare FIELD asks for it on a terminal (masked for secret fields).
        #[arg(value_name = "FIELD=VALUE", required_unless_present = "from_file")]
        assignments: Vec<String>,
        /// Replace the whole document with this JSON or YAML file.
        #[arg(long, value_name = "FILE", conflicts_with = "assignments")]
        from_file: Option<std::path::PathBuf>,
        /// Why: kept with the version in its author record (default: what changed, e.g. "set
        /// database.port").
        #[arg(short = 'm', long, value_name = "TEXT")]
        message: Option<String>,
    },
    /// Edit a document in $VISUAL / $EDITOR as YAML, validated and check-and-set on save.
    Edit {
        /// The config key.
        key: String,
        /// Why: kept with the version in its author record (default: what changed, e.g. "set
        /// database.port").
        #[arg(short = 'm', long, value_name = "TEXT")]
        message: Option<String>,
    },
    /// The document's versions: number, time, author and message, deleted or destroyed; and
    /// whether older versions were pruned (by which max_versions setting).
    History {
        /// The config key.
        key: String,
    },
    /// For each field, the version, author and time of its last change (no values shown).
    Blame {
        /// The config key.
        key: String,
    },
    /// What changed between two versions (default: the last two); secrets only as changed or
    /// unchanged.
    Diff {
        /// The config key.
        key: String,
        /// The older version.
        v1: Option<u64>,
        /// The newer version (default: the current one).
        v2: Option<u64>,
    },
    /// Store an old version's content as a new version (check-and-set).
    Rollback {
        /// The config key.
        key: String,
        /// The version whose content to restore.
        version: u64,
        /// Why: kept with the version in its author record (default: "rollback to VERSION").
        #[arg(short = 'm', long, value_name = "TEXT")]
        message: Option<String>,
    },
    /// Which fields differ between two environments' configs (each its overlay over the base);
    /// secret values are never shown, only "(secret) differs".
    Compare {
        /// The config key.
        key: String,
        /// One environment.
        a: String,
        /// The other.
        b: String,
    },
    /// Copy overlay values from one environment's overlay to another's (check-and-set against
    /// the target overlay as just read). Secret values are copied, never shown.
    Promote {
        /// The config key.
        key: String,
        /// The environment to copy from.
        #[arg(long, value_name = "ENV")]
        from: String,
        /// The environment to copy to.
        #[arg(long, value_name = "ENV")]
        to: String,
        /// Only these fields (dotted paths); default: every field of the source overlay.
        #[arg(value_name = "FIELD")]
        fields: Vec<String>,
        /// Why: kept with the version in its author record (default: "promote from ENV").
        #[arg(short = 'm', long, value_name = "TEXT")]
        message: Option<String>,
    },
    /// Validate documents against their stored schemas; exit 1 listing each missing or invalid
    /// field with the variable that would supply it.
    Check {
        /// The config keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

impl ConfigCommand {
    /// The single key the command works on, if it has one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::List { .. } | Self::Check { .. } => None,
            Self::Get { key, .. }
            | Self::Set { key, .. }
            | Self::Edit { key, .. }
            | Self::History { key }
            | Self::Blame { key }
            | Self::Diff { key, .. }
            | Self::Compare { key, .. }
            | Self::Promote { key, .. }
            | Self::Rollback { key, .. } => Some(key),
        }
    }
}

/// `harmony backup ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Save a raft snapshot of the OpenBao to FILE (0600), with its manifest FILE.json (server,
    /// time, version, raft index, SHA-256, the unseal key shares it needs; never a key).
    Save {
        /// Where to write it (default: harmony-backup-<UTC time>.snap here). Never overwritten.
        file: Option<std::path::PathBuf>,
    },
    /// Check a backup offline: every SHA256SUMS entry of the archive, and its manifest.
    Verify {
        /// The archive.
        file: std::path::PathBuf,
    },
    /// Replace ALL the OpenBao's data with a backup (asks first; --yes off a terminal).
    Restore {
        /// The archive (checked before anything is sent).
        file: std::path::PathBuf,
        /// Restore a snapshot taken on another cluster (snapshot-force): the server then
        /// unseals only with the snapshot's unseal keys.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// List the scheduled snapshots the backup CronJob keeps on its PVC in the cluster (deploy
    /// --backup-schedule), newest first.
    #[cfg(feature = "deploy")]
    List {
        #[command(flatten)]
        cluster: BackupClusterArgs,
    },
    /// Copy one scheduled snapshot off the cluster to FILE (0600, never overwritten), checked
    /// against the pod's SHA-256 and like `backup verify`.
    #[cfg(feature = "deploy")]
    Fetch {
        /// The snapshot, as `backup list` shows it (harmony-YYYYMMDDTHHMMSSZ.snap).
        name: String,
        /// Where to write it (default: NAME here).
        file: Option<std::path::PathBuf>,
        #[command(flatten)]
        cluster: BackupClusterArgs,
    },
}

/// Where the scheduled backups are: the cluster and OpenBao's namespace.
#[cfg(feature = "deploy")]
#[derive(Debug, Clone, Args)]
pub struct BackupClusterArgs {
    /// The kubeconfig context of the cluster (KUBECONFIG, else ~/.kube/config); default: the
    /// local k3d cluster (--cluster-name).
    #[arg(long, value_name = "NAME")]
    pub kube_context: Option<String>,

    /// OpenBao's namespace, where the CronJob and its PVC are.
    #[arg(
        long = "k8s-namespace",
        value_name = "NAMESPACE",
        default_value = "openbao"
    )]
    pub k8s_namespace: String,
}

/// Which documents become which variables (`harmony run`, `harmony export`).
#[derive(Debug, Clone, Args)]
pub struct EnvArgs {
    /// A config document to read (repeatable; default: the project file's `configs`).
    #[arg(short = 'c', long = "config", value_name = "KEY")]
    pub configs: Vec<String>,

    /// Name variables `FIELD` (`DATABASE_HOST`) instead of `HARMONY_<KEY>_<FIELD>`, for programs
    /// in any language. (`HARMONY_<KEY>_<FIELD>` is what a Rust program's `ConfigManager` reads.)
    #[arg(long)]
    pub plain: bool,

    /// Put this before every variable name (e.g. `APP_`).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Let the config set this variable although it changes how programs start (BASH_ENV,
    /// LD_PRELOAD, PATH, NODE_OPTIONS, GIT_*, ...; refused by default). Repeatable. Harmony's
    /// and OpenBao's own variables can never be set.
    #[arg(long, value_name = "NAME")]
    pub allow_name: Vec<String>,

    #[command(flatten)]
    pub cache: CacheArgs,
}

/// The offline cache: every successful read keeps a copy (per server, namespace and document;
/// encrypted with a key in the OS keychain, else in 0600 files), served with a warning while
/// OpenBao is unreachable or sealed. `harmony logout` deletes it.
#[derive(Debug, Clone, Default, Args)]
pub struct CacheArgs {
    /// Never touch the network: read the offline cache only.
    #[arg(long, conflicts_with = "no_cache")]
    pub offline: bool,

    /// Neither read nor write the offline cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Serve a cached copy only when it is younger than this (e.g. 30m, 24h, 7d); an older one
    /// gives the original error. Default: any age (the warning says how old).
    #[arg(long, value_name = "AGE", value_parser = parse_duration)]
    pub max_age: Option<std::time::Duration>,
}

/// `90`, `500ms`, `10s`, `30m`, `24h`, `7d`: a number and a unit (seconds when none).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    use std::time::Duration;
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!(
            "{text:?} is not a duration: give a whole number and a unit, e.g. 10s, 30m, 24h, 7d"
        )
    })?;
    let seconds = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long"))
    };
    match unit.trim() {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => seconds(1),
        "m" | "min" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        other => Err(format!(
            "{other:?} is not a unit of time: use ms, s, m, h or d (e.g. 10s, 24h)"
        )),
    }
}

/// `harmony run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// Let the config win over variables already set in the environment (default: those win).
    #[arg(long = "override")]
    pub override_env: bool,

    /// Keep the program running and restart it when a document changes (its version is polled
    /// every --interval): SIGTERM, then SIGKILL after --grace. harmony stays as the parent and
    /// passes SIGINT/SIGTERM/SIGHUP on.
    #[arg(long, conflicts_with = "offline")]
    pub watch: bool,

    /// How often --watch asks for the documents' versions.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub interval: std::time::Duration,

    /// How long --watch lets the program stop after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub grace: std::time::Duration,

    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `harmony export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub env: EnvArgs,

    /// Output format.
    #[arg(long, value_enum, default_value = "dotenv")]
    pub format: ExportFormat,

    /// Show secret values masked (`********`).
    #[arg(long)]
    pub mask: bool,
}

/// Formats of `harmony export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// `NAME='value'` lines, for `set -a; . FILE` or a dotenv loader.
    Dotenv,
    /// `export NAME='value'` lines, for `eval "$(harmony export ...)"` in a direnv `.envrc`.
    Direnv,
    /// One JSON object of names and values.
    Json,
    /// One YAML mapping of names and values.
    Yaml,
}

/// Document formats of `config get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Dotenv,
}

/// `harmony deploy`.
#[cfg(feature = "deploy")]
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// OpenBao only: no CloudNativePG, no Zitadel, no JWT auth.
    #[arg(long)]
    pub skip_zitadel: bool,

    /// Also grant the Zitadel project role harmony-developer (needed to sign in) to this user, by
    /// login name (repeatable). The instance's first admin gets it without asking.
    #[arg(long, value_name = "LOGIN", conflicts_with = "skip_zitadel")]
    pub grant_user: Vec<String>,

    /// Give the userpass user a new password even though this machine has no password file for it.
    #[arg(long)]
    pub reset_userpass: bool,

    /// Recover a helm release a killed helm left stuck without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,

    #[command(flatten)]
    pub cluster: harmony::deploy::flags::ClusterFlags,

    #[command(flatten)]
    pub backup: harmony::deploy::flags::BackupFlags,

    /// Unseal key shares created at init (with --key-threshold; default 1, or 5 for ha).
    #[arg(long, value_name = "N")]
    pub key_shares: Option<u8>,

    /// How many shares unseal (with --key-shares; default 1, or 3 for ha).
    #[arg(long, value_name = "T")]
    pub key_threshold: Option<u8>,

    #[command(flatten)]
    pub history: harmony_openbao::flags::HistoryFlags,

    #[command(flatten)]
    pub environments: harmony_openbao::flags::EnvironmentFlags,
}

/// `harmony bootstrap`.
#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    /// OpenID issuer to wire OpenBao's JWT auth to.
    #[arg(long, value_name = "ISSUER", env = vars::HARMONY_SSO_URL, hide_env_values = true)]
    pub sso_url: Option<url::Url>,

    /// Public client id of the device-code application at the issuer (the JWT role's audience).
    #[arg(long, value_name = "ID", env = vars::HARMONY_SSO_CLIENT_ID, hide_env_values = true)]
    pub client_id: Option<String>,

    /// With --sso-url: OpenBao lets in only id_tokens whose claim KEY has the value VALUE
    /// (repeatable, all must match).
    #[arg(long, value_name = "KEY=VALUE", value_parser = harmony_openbao::parse_bound_claim, requires = "sso_url")]
    pub bound_claim: Vec<(String, String)>,

    /// Let this CI repository's jobs read the team's config with their own OIDC id_token
    /// (repeatable): github[=ISSUER]:OWNER/REPO[@REF] or gitlab[=ISSUER]:GROUP/PROJECT[@REF].
    #[arg(long = "ci", value_name = "SPEC")]
    pub ci: Vec<harmony_openbao::CiTrust>,

    /// OpenBao namespace to configure (created when missing); default BAO_NAMESPACE, else the root.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Give the existing userpass user a new password even though this machine has no password
    /// file for it (every other machine's saved login stops working).
    #[arg(long)]
    pub reset_userpass: bool,

    /// Another node of the same raft cluster (repeatable): every node is unsealed and raft must
    /// list all as voters; defaults become 5 key shares / threshold 3 and the root token retired.
    #[arg(long, value_name = "URL")]
    pub node: Vec<url::Url>,

    /// Unseal key shares created at init (with --key-threshold).
    #[arg(long, value_name = "N")]
    pub key_shares: Option<u8>,

    /// How many shares unseal (with --key-shares).
    #[arg(long, value_name = "T")]
    pub key_threshold: Option<u8>,

    /// Once configured, hand over to a periodic harmony-admin token and revoke the root token
    /// (default: yes with --node, no for one server).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub revoke_root: Option<bool>,

    /// Recover a lost or expired harmony-admin token from the saved key shares, then retire that
    /// root token again.
    #[arg(long)]
    pub regenerate_root: bool,

    #[command(flatten)]
    pub environments: harmony_openbao::flags::EnvironmentFlags,

    #[command(flatten)]
    pub history: harmony_openbao::flags::HistoryFlags,
}
