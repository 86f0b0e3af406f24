//! Command-line interface: flags, their validation, and the mode they select.

use clap::Parser;
use harmony_env::vars;

/// Deploy OpenBao + Zitadel SSO on a local k3d cluster, and share typed config through it.
///
/// With no mode flag this deploys (or converges) the stack: k3d cluster, OpenBao (initialised,
/// unsealed, configured), CloudNativePG + Zitadel, the device-code app, and OpenBao's JWT auth
/// wired to Zitadel. Re-running changes only what drifted.
#[derive(Debug, Clone, Parser)]
#[command(name = "harmony-sso", version, long_about = None, max_term_width = 100)]
#[command(after_help = "Examples:
  harmony-sso                                  deploy or converge the local stack (needs Docker)
  harmony-sso --demo                           typed config round trip through OpenBao
  harmony-sso --sso-demo                       the same, signed in through SSO (device flow)
  harmony-sso --openbao-url http://bao:8200    bootstrap an existing OpenBao instead of deploying
  harmony-sso --kube-context prod --domain example.com --cluster-issuer letsencrypt
                                               deploy onto an existing cluster (profile ha)
  harmony-sso --cleanup                        delete the cluster and its local state")]
pub struct Args {
    /// Name of the k3d cluster to create or reuse.
    #[arg(long, value_name = "NAME", default_value = "harmony")]
    pub cluster_name: String,

    /// Deploy OpenBao only: no CloudNativePG, no Zitadel, no JWT auth.
    #[arg(long)]
    pub skip_zitadel: bool,

    /// Use this existing OpenBao instead of deploying one: init it if uninitialised (keys saved
    /// locally), unseal it if sealed, then configure it (admin token from OPENBAO_TOKEN or the
    /// saved init file).
    #[arg(long, value_name = "URL", value_parser = parse_http_url, conflicts_with_all = ["kube_context", "profile"])]
    pub openbao_url: Option<url::Url>,

    /// OpenBao namespace to configure and use (created by the bootstrap when missing; also
    /// BAO_NAMESPACE / VAULT_NAMESPACE). Default: the root namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Give the userpass user `harmony` a new password even though it exists and this machine
    /// has no password file for it. Every other machine's saved login then stops working.
    #[arg(long, conflicts_with_all = ["demo", "sso_demo", "cleanup"])]
    pub reset_userpass: bool,

    /// OpenID issuer to wire OpenBao's JWT auth to (with --openbao-url), and to sign in with
    /// (--sso-demo).
    #[arg(long, value_name = "ISSUER", env = vars::HARMONY_SSO_URL, hide_env_values = true, value_parser = parse_http_url)]
    pub sso_url: Option<url::Url>,

    /// Public client id of the device-code application at the issuer.
    #[arg(long, value_name = "ID", env = vars::HARMONY_SSO_CLIENT_ID, hide_env_values = true)]
    pub client_id: Option<String>,

    /// With --openbao-url: let this CI repository's jobs read the team's config with their own
    /// OIDC id_token (JWT auth at jwt-ci, role per repository, read-only policy harmony-ci).
    /// Repeatable. SPEC: github[=ISSUER]:OWNER/REPO[@REF] or gitlab[=ISSUER]:GROUP/PROJECT[@REF].
    #[arg(long = "ci", value_name = "SPEC", requires = "openbao_url")]
    pub ci: Vec<harmony::openbao::CiTrust>,
    /// With --openbao-url and --sso-url: OpenBao lets in only id_tokens whose claim KEY has
    /// the value VALUE (the JWT role's bound_claims; repeatable, all must match). Without it,
    /// anyone the provider issues an id_token to for --client-id may sign in.
    #[arg(long, value_name = "KEY=VALUE", value_parser = harmony::openbao::parse_bound_claim)]
    pub bound_claim: Vec<(String, String)>,

    /// Deploy: also grant the Zitadel project role harmony-developer (needed to sign in) to
    /// this user, by login name as typed at Zitadel's login page (repeatable). The instance's
    /// first admin gets it without asking.
    #[arg(long, value_name = "LOGIN", conflicts_with_all = ["skip_zitadel", "openbao_url"])]
    pub grant_user: Vec<String>,

    /// With --openbao-url: another node of the same raft cluster (repeatable). Every node is
    /// unsealed and the bootstrap waits until raft lists all of them as voters; defaults become
    /// 5 key shares / threshold 3 and the root token is retired.
    #[arg(long, value_name = "URL", requires = "openbao_url", value_parser = parse_http_url)]
    pub openbao_node: Vec<url::Url>,

    /// Deploy or --openbao-url: unseal key shares created at init (with --key-threshold;
    /// default 1, or 5 for several nodes and the ha profile).
    #[arg(long, value_name = "N", conflicts_with_all = ["demo", "sso_demo", "cleanup"])]
    pub key_shares: Option<u8>,

    /// Deploy or --openbao-url: how many shares unseal (with --key-shares; default 1, or 3).
    #[arg(long, value_name = "T", conflicts_with_all = ["demo", "sso_demo", "cleanup"])]
    pub key_threshold: Option<u8>,

    #[command(flatten)]
    pub cluster: harmony::deploy::flags::ClusterFlags,

    /// Deploy: scheduled raft snapshots in the cluster.
    #[command(flatten)]
    pub backup: harmony::deploy::flags::BackupFlags,

    /// With --openbao-url: environments and access by role (see `harmony bootstrap --help`).
    #[command(flatten)]
    pub environments: harmony::deploy::flags::EnvironmentFlags,

    /// Deploy or --openbao-url: how many versions of each config OpenBao keeps.
    #[command(flatten)]
    pub history: harmony::deploy::flags::HistoryFlags,

    /// With --openbao-url: once configured, hand over to a periodic harmony-admin token and
    /// revoke the root token (default: yes for several nodes, no for one).
    #[arg(long, value_name = "BOOL", requires = "openbao_url", num_args = 0..=1, default_missing_value = "true")]
    pub revoke_root: Option<bool>,

    /// With --openbao-url: recover a lost or expired harmony-admin token from the saved key
    /// shares (OpenBao's root token generation), then retire that root token again.
    #[arg(long, requires = "openbao_url")]
    pub regenerate_root: bool,

    /// Write a typed demo config to OpenBao and read it back (token or userpass auth).
    #[arg(long, conflicts_with_all = ["sso_demo", "cleanup", "kube_context", "profile"])]
    pub demo: bool,

    /// Like --demo, signed in through SSO: OIDC device flow, id_token exchanged for an OpenBao
    /// token, session cached and silently refreshed.
    #[arg(long, conflicts_with_all = ["demo", "cleanup", "kube_context", "profile"])]
    pub sso_demo: bool,

    /// With --sso-demo: start the device flow even when stdin is not a terminal (the URL and
    /// code still go to stderr), for a person watching a script's output.
    #[arg(long, requires = "sso_demo", conflicts_with = "non_interactive")]
    pub allow_device_flow: bool,

    /// Delete the k3d cluster and its local state (asks first on a terminal).
    #[arg(long, conflicts_with_all = ["demo", "sso_demo", "skip_zitadel", "openbao_url", "kube_context", "profile"])]
    pub cleanup: bool,

    /// Do not ask for confirmation: --cleanup deletes at once; a deploy recovers a helm release
    /// a killed helm left stuck (rollback, or uninstall of a never-deployed install).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Never prompt and never wait for a person (implied when stdin is not a terminal).
    #[arg(long, env = vars::HARMONY_NON_INTERACTIVE, hide_env_values = true, value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub non_interactive: bool,

    /// More detail on stderr (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// What the invocation asks for, once the flags are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Deploy or converge the local k3d stack.
    Deploy,
    /// Bootstrap an existing OpenBao.
    BootstrapExisting,
    /// Typed config round trip with token/userpass auth.
    Demo,
    /// Typed config round trip through SSO.
    SsoDemo,
    /// Delete the cluster and local state.
    Cleanup,
}

/// A flag combination or setting that cannot work, found before any work starts.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `--sso-demo` without an issuer.
    #[error(
        "--sso-demo needs the OpenID issuer: pass --sso-url ISSUER or set {}",
        vars::HARMONY_SSO_URL
    )]
    SsoDemoNeedsIssuer,
    /// `--sso-demo` without a client id.
    #[error(
        "--sso-demo needs the device-code application's client id: pass --client-id ID or set {} \
         (the deploy saves it; run the deploy first, or create the app at your provider)",
        vars::HARMONY_SSO_CLIENT_ID
    )]
    SsoDemoNeedsClientId,
    /// `--sso-url` without `--client-id` (or the reverse) when configuring an existing OpenBao.
    #[error(
        "--sso-url and --client-id go together: OpenBao's JWT role is bound to the client id as audience"
    )]
    SsoUrlWithoutClientId,
    /// `--cleanup` off a terminal without `--yes`.
    #[error(
        "--cleanup deletes the k3d cluster {0:?} and its unseal keys; pass --yes to confirm when not running on a terminal"
    )]
    CleanupNeedsYes(String),
    /// `--yes` with a mode that never asks.
    #[error(
        "--yes only applies to --cleanup and to a deploy (it answers their questions); drop it"
    )]
    YesOutsideCleanupOrDeploy,
    /// `--skip-zitadel` with an existing OpenBao (nothing is deployed then).
    #[error(
        "--skip-zitadel has no effect with --openbao-url (nothing is deployed); drop one of them"
    )]
    SkipZitadelWithExisting,
    /// `--key-shares` / `--key-threshold` that cannot work.
    #[error("{0}")]
    KeyShares(String),
    /// `--environments` / `--access` that cannot be used, or given outside `--openbao-url`.
    #[error("{0}")]
    Environments(String),
    /// `--ci` entries that cannot be set up together.
    #[error(transparent)]
    Ci(#[from] harmony::openbao::CiSpecError),
    /// `--bound-claim` without an SSO provider to wire.
    #[error(
        "--bound-claim applies to OpenBao's JWT role: use it with --openbao-url, --sso-url and --client-id"
    )]
    BoundClaimWithoutSso,
    /// `--grant-user` outside the deploy.
    #[error("--grant-user applies to the deploy (it grants Zitadel's project role); drop it here")]
    GrantUserOutsideDeploy,
    /// `--backup-schedule` outside the deploy.
    #[error(
        "--backup-schedule applies to the deploy (a CronJob in the cluster); with --openbao-url \
         take backups with `harmony backup save`"
    )]
    BackupScheduleOutsideDeploy,
    /// A setting from the environment that cannot work (found before signing in).
    #[error("{0}")]
    BadSetting(String),
    /// `--tls-secret` with `--cluster-issuer`.
    #[error("{0}")]
    Tls(String),
    /// The cluster name is not a valid k3d cluster name.
    #[error(
        "--cluster-name {0:?} is not a valid cluster name: use 1-32 lowercase letters, digits and '-', starting with a letter"
    )]
    BadClusterName(String),
}

impl Args {
    /// Check the flags against each other and pick the mode. No I/O.
    pub fn mode(&self) -> Result<Mode, UsageError> {
        if !valid_cluster_name(&self.cluster_name) {
            return Err(UsageError::BadClusterName(self.cluster_name.clone()));
        }
        if self.yes && (self.demo || self.sso_demo || self.openbao_url.is_some()) {
            return Err(UsageError::YesOutsideCleanupOrDeploy);
        }
        let deploying = !(self.cleanup || self.demo || self.sso_demo || self.openbao_url.is_some());
        if !self.grant_user.is_empty() && !deploying {
            return Err(UsageError::GrantUserOutsideDeploy);
        }
        if self.backup.backup_schedule.is_some() && !deploying {
            return Err(UsageError::BackupScheduleOutsideDeploy);
        }
        let wiring_sso = self.openbao_url.is_some()
            && self.sso_url.is_some()
            && !(self.cleanup || self.demo || self.sso_demo);
        if !self.bound_claim.is_empty() && !wiring_sso {
            return Err(UsageError::BoundClaimWithoutSso);
        }
        if !self.environments.environments.is_empty()
            && (self.openbao_url.is_none() || self.cleanup || self.demo || self.sso_demo)
        {
            return Err(UsageError::Environments(
                "--environments applies to --openbao-url (the local deploy's bootstrap takes \
                 it through `harmony bootstrap --openbao-url`)"
                    .to_owned(),
            ));
        }
        if self.cleanup {
            return Ok(Mode::Cleanup);
        }
        if self.demo {
            return Ok(Mode::Demo);
        }
        if self.sso_demo {
            return Ok(Mode::SsoDemo);
        }
        self.key_shares()?;
        if self.openbao_url.is_some() {
            if self.skip_zitadel {
                return Err(UsageError::SkipZitadelWithExisting);
            }
            if self.sso_url.is_some() != self.client_id.is_some() {
                return Err(UsageError::SsoUrlWithoutClientId);
            }
            self.ci_options()?;
            self.environments
                .table()
                .map_err(UsageError::Environments)?;
            return Ok(Mode::BootstrapExisting);
        }
        self.existing_cluster()?;
        Ok(Mode::Deploy)
    }
}

impl Args {
    /// With `--kube-context`: the existing cluster and how the stack is published there.
    pub fn existing_cluster(
        &self,
    ) -> Result<Option<(String, harmony::ingress::PublicIngress)>, UsageError> {
        self.cluster.existing_cluster().map_err(UsageError::Tls)
    }

    /// `--key-shares` / `--key-threshold`, checked.
    pub fn key_shares(&self) -> Result<Option<(u8, u8)>, UsageError> {
        harmony::openbao::key_shares_from_flags(self.key_shares, self.key_threshold)
            .map_err(UsageError::KeyShares)
    }

    /// The CI trust `--ci` asks for (audience: the OpenBao URL), `None` without `--ci`.
    pub fn ci_options(&self) -> Result<Option<harmony::openbao::CiOptions>, UsageError> {
        match (&self.openbao_url, self.ci.is_empty()) {
            (Some(url), false) => Ok(Some(
                harmony::openbao::CiOptions::new(self.ci.clone(), url.as_str())?
                    .with_api_from_lookup(|k| std::env::var(k).ok())?,
            )),
            _ => Ok(None),
        }
    }
}

/// An `http://` or `https://` URL with a host (OpenBao and OpenID providers speak nothing else).
fn parse_http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "expected an http:// or https:// URL with a host, got {:?} (e.g. https://bao.example.com:8200)",
            s
        ));
    }
    Ok(url)
}

/// k3d cluster names become DNS labels (`k3d-<name>-server-0`): keep them short and plain.
fn valid_cluster_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("harmony-sso").chain(args.iter().copied()))
    }

    #[test]
    fn default_is_deploy() {
        let args = parse(&[]).expect("parses");
        assert_eq!(args.mode().expect("valid"), Mode::Deploy);
        assert_eq!(args.cluster_name, "harmony");
    }

    #[test]
    fn modes() {
        let m = |a: &[&str]| parse(a).expect("parses").mode().expect("valid");
        assert_eq!(m(&["--demo"]), Mode::Demo);
        assert_eq!(m(&["--sso-demo"]), Mode::SsoDemo);
        assert_eq!(m(&["--cleanup", "--yes"]), Mode::Cleanup);
        // --yes on a deploy recovers a stuck helm release without asking (as documented).
        assert_eq!(m(&["--yes"]), Mode::Deploy);
        assert_eq!(
            m(&["--openbao-url", "http://127.0.0.1:8200"]),
            Mode::BootstrapExisting
        );
        assert_eq!(
            m(&["--demo", "--openbao-url", "http://127.0.0.1:8200"]),
            Mode::Demo
        );
    }

    #[test]
    fn conflicting_flags_are_rejected_by_name() {
        let err = parse(&["--demo", "--sso-demo"]).expect_err("conflict");
        assert!(err.to_string().contains("--sso-demo"), "{err}");
        let err = parse(&["--cleanup", "--demo"]).expect_err("conflict");
        assert!(err.to_string().contains("--demo"), "{err}");
        let err = parse(&["--demo", "--yes"])
            .expect("parses")
            .mode()
            .expect_err("yes with a demo");
        assert!(err.to_string().contains("--yes"), "{err}");
        let err = parse(&["--openbao-url", "http://x:8200", "--sso-url", "http://i"])
            .expect("parses")
            .mode()
            .expect_err("issuer without client");
        assert!(err.to_string().contains("--client-id"), "{err}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["--openbao-url", "not a url"]).expect_err("bad url");
        assert!(err.to_string().contains("--openbao-url"), "{err}");
        for url in ["ftp://x", "file:///tmp/bao", "unix:/run/bao.sock"] {
            let err = parse(&["--openbao-url", url]).expect_err("not http");
            assert!(
                err.to_string().contains("--openbao-url") && err.to_string().contains("http"),
                "{err}"
            );
            let err = parse(&["--sso-url", url]).expect_err("not http");
            assert!(err.to_string().contains("--sso-url"), "{err}");
        }
        let err = parse(&["--cluster-name", "Bad_Name"])
            .expect("parses")
            .mode()
            .expect_err("bad name");
        assert!(err.to_string().contains("--cluster-name"), "{err}");
    }

    #[test]
    fn bound_claims_and_grant_users_belong_to_their_modes() {
        let args = parse(&[
            "--openbao-url",
            "http://x:8200",
            "--sso-url",
            "http://i",
            "--client-id",
            "c",
            "--bound-claim",
            "email=alice@example.com",
            "--bound-claim",
            "groups=dev=ops",
        ])
        .expect("parses");
        assert_eq!(args.mode().expect("valid"), Mode::BootstrapExisting);
        assert_eq!(
            args.bound_claim,
            [
                ("email".to_owned(), "alice@example.com".to_owned()),
                ("groups".to_owned(), "dev=ops".to_owned())
            ]
        );
        let err = parse(&["--bound-claim", "email"]).expect_err("no value");
        assert!(err.to_string().contains("--bound-claim"), "{err}");
        let err = parse(&["--openbao-url", "http://x:8200", "--bound-claim", "a=b"])
            .expect("parses")
            .mode()
            .expect_err("no provider to bind");
        assert!(err.to_string().contains("--sso-url"), "{err}");
        let args = parse(&["--grant-user", "alice", "--grant-user", "bob"]).expect("parses");
        assert_eq!(args.mode().expect("valid"), Mode::Deploy);
        assert_eq!(args.grant_user, ["alice", "bob"]);
        let err = parse(&["--demo", "--grant-user", "alice"])
            .expect("parses")
            .mode()
            .expect_err("not a deploy");
        assert!(err.to_string().contains("--grant-user"), "{err}");
    }

    #[test]
    fn an_existing_cluster_deploy_is_a_deploy_with_its_ingress() {
        let args = parse(&[
            "--kube-context",
            "prod",
            "--domain",
            "Example.com",
            "--ingress-class",
            "nginx",
            "--tls-secret",
            "wildcard",
            "--key-shares",
            "7",
            "--key-threshold",
            "4",
        ])
        .expect("parses");
        assert_eq!(args.mode().expect("valid"), Mode::Deploy);
        let (context, ingress) = args.existing_cluster().expect("valid").expect("given");
        assert_eq!(context, "prod");
        assert_eq!(ingress.sso_host(), "sso.example.com");
        assert_eq!(ingress.class.as_deref(), Some("nginx"));
        assert_eq!(
            ingress.tls,
            harmony::ingress::IngressTls::Secret("wildcard".into())
        );
        assert_eq!(args.key_shares().expect("valid"), Some((7, 4)));
        assert_eq!(
            args.cluster.profile, None,
            "the deploy picks ha for an existing cluster"
        );
        let local = parse(&["--profile", "local"]).expect("parses");
        assert_eq!(local.cluster.profile, Some(harmony::deploy::Profile::Local));
        assert_eq!(local.existing_cluster().expect("valid"), None);
    }

    #[test]
    fn cluster_names() {
        assert!(valid_cluster_name("harmony"));
        assert!(valid_cluster_name("dev-2"));
        assert!(!valid_cluster_name(""));
        assert!(!valid_cluster_name("2dev"));
        assert!(!valid_cluster_name("dev-"));
        assert!(!valid_cluster_name(&"a".repeat(33)));
    }
}
