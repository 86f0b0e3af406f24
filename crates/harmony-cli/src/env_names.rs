//! Which environment variable names a stored config may set (`harmony run`, `harmony export`).
//!
//! Field names are written by any teammate, so the names they become are untrusted input. A name
//! must be a plain shell variable name (`^[A-Z_][A-Z0-9_]*$`, checked after `--plain`'s
//! upper-casing and `--prefix`), and two groups are refused:
//!
//! - **Harmony's own variables** (every constant of `harmony_env::vars` that steers harmony,
//!   OpenBao or the CI sign-in, and every `OPENBAO_*`, `BAO_*`, `VAULT_*`): a config that sets
//!   `HARMONY_SSO_CACERT` or `BAO_ADDR` would point a `harmony` or `bao` started by the program at
//!   another server or trust another CA. `--allow-name` cannot let them through: nothing a config
//!   stores has a reason to steer the tool that reads it; set them outside harmony.
//! - **Names that change how programs start** (`BASH_ENV`, `LD_PRELOAD`, `PATH`, `NODE_OPTIONS`,
//!   `GIT_*`, …; [`STARTUP`] and [`STARTUP_PREFIXES`]): they make a shell, the dynamic loader or
//!   an interpreter run code the value names. Refused unless `--allow-name NAME` names each.
//!   `HOME` is among them: it picks the startup files shells, git, ssh and npm read.

use std::collections::BTreeSet;

use harmony_env::vars;

use crate::UsageError;

/// Variables that steer harmony itself, OpenBao's CLI or harmony's CI sign-in.
const OWN: &[&str] = &[
    vars::HARMONY_DATA_DIR,
    vars::HARMONY_SSO_URL,
    vars::HARMONY_SSO_CLIENT_ID,
    vars::HARMONY_SSO_PROJECT_ID,
    vars::HARMONY_SSO_CACERT,
    vars::HARMONY_SSO_OPEN_BROWSER,
    vars::HARMONY_NON_INTERACTIVE,
    vars::HARMONY_CONFIG_PREFIX,
    vars::HARMONY_TEST_BAO,
    vars::HARMONY_TEST_NODE,
    vars::HARMONY_LIVE_CLUSTER,
    vars::HARMONY_LIVE_CONTEXT,
    vars::HARMONY_LIVE_DOMAIN,
    vars::HARMONY_LIVE_CLUSTER_ISSUER,
    vars::HARMONY_OIDC_TOKEN,
    vars::HARMONY_OIDC_TOKEN_FILE,
    vars::HARMONY_CI_ROLE,
    vars::HARMONY_CI_AUDIENCE,
    vars::HARMONY_CI_AUTH_MOUNT,
    vars::HARMONY_SESSION_STORE,
    vars::HARMONY_ENV,
    vars::HARMONY_PROJECT_FILE,
    vars::HARMONY_GITHUB_API_URL,
    vars::HARMONY_GITLAB_API_URL,
    vars::HARMONY_KUBECTL_IMAGE,
    vars::ACTIONS_ID_TOKEN_REQUEST_URL,
    vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN,
    vars::GITHUB_REPOSITORY,
    vars::CI_PROJECT_PATH,
];

/// Prefixes of OpenBao's (and Vault's) own variables.
const OWN_PREFIXES: &[&str] = &["OPENBAO_", "BAO_", "VAULT_"];

/// Names that change how a shell, the loader or an interpreter starts, or where a program
/// sends its traffic or finds its trust roots.
pub const STARTUP: &[&str] = &[
    // Shells.
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PROMPT_COMMAND",
    "PS1",
    "PS4",
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "ZDOTDIR",
    "HOME",
    vars::PATH,
    // Interpreters and runtimes.
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "CLASSPATH",
    // The C library.
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "HOSTALIASES",
    // Programs other programs start.
    "LESSOPEN",
    "LESSCLOSE",
    vars::EDITOR,
    vars::VISUAL,
    "PAGER",
    "MANPAGER",
    "BROWSER",
    "SSH_ASKPASS",
    "SUDO_ASKPASS",
    // Trust roots, proxies and the daemons tools talk to.
    "OPENSSL_CONF",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    vars::HTTPS_PROXY_ALIASES[0],
    "ALL_PROXY",
    vars::NO_PROXY_ALIASES[0],
    vars::KUBECONFIG,
    vars::DOCKER_HOST,
];

/// Prefixes of such names (the dynamic loaders, Python, git, npm, bash's exported functions).
pub const STARTUP_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "GIT_",
    "NPM_CONFIG_",
    "BASH_FUNC_",
];

/// The rules for one `run`/`export`: [`check`](Self::check) each name.
#[derive(Debug, Clone, Default)]
pub struct NameRules {
    allowed: BTreeSet<String>,
}

/// `^[A-Z_][A-Z0-9_]*$`.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `name` is one of harmony's, OpenBao's or Vault's own variables.
fn is_own(name: &str) -> bool {
    OWN.contains(&name) || OWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `name` changes how programs start.
fn changes_startup(name: &str) -> bool {
    STARTUP.contains(&name) || STARTUP_PREFIXES.iter().any(|p| name.starts_with(p))
}

impl NameRules {
    /// Rules letting through the startup-changing names in `allow` (`--allow-name`). Allowing
    /// one of harmony's own variables is a usage error.
    pub fn new(allow: &[String]) -> Result<Self, UsageError> {
        for name in allow {
            if is_own(name) {
                return Err(UsageError(format!(
                    "--allow-name {name}: {name} steers harmony or OpenBao itself, so no stored \
                     config may set it; set it in the environment outside harmony instead"
                )));
            }
        }
        Ok(Self {
            allowed: allow.iter().cloned().collect(),
        })
    }

    /// Whether the field at `from` (`KEY.field.path`) may become the variable `name`.
    pub fn check(&self, name: &str, from: &str) -> Result<(), UsageError> {
        let from = from.escape_debug();
        if !is_plain_name(name) {
            return Err(UsageError(format!(
                "{from} would become the variable {:?}, which is not a plain variable name \
                 (A-Z, 0-9 and _, not starting with a digit); rename the field (or fix \
                 --prefix), or drop --plain to get HARMONY_<KEY>_<FIELD> names",
                name
            )));
        }
        if is_own(name) {
            return Err(UsageError(format!(
                "{from} would set {name}, one of harmony's or OpenBao's own variables, which no \
                 stored config may set; rename the field or use --prefix"
            )));
        }
        if changes_startup(name) && !self.allowed.contains(name) {
            return Err(UsageError(format!(
                "{from} would set {name}, which changes how programs start; rename the field, \
                 use --prefix, or pass --allow-name {name} if the config is meant to set it"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_shell_variable_names() {
        let rules = NameRules::default();
        for good in [
            "DATABASE_HOST",
            "_X",
            "APP_PATH",
            "A1",
            "HARMONY_SHOP_WORKERS",
        ] {
            rules
                .check(good, "k.f")
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "", "1X", "a", "X\nY", "X;Y", "X=Y", "X${Y}", "X Y", "X-Y", "Ä", "X$(Y)", "X`Y`",
        ] {
            let err = rules.check(bad, "k.f\n").expect_err(bad).0;
            assert!(err.contains("not a plain variable name"), "{bad}: {err}");
            assert!(err.starts_with("k.f\\n "), "the field, escaped: {err}");
        }
    }

    #[test]
    fn startup_names_need_allow_name_and_harmonys_own_are_never_set() {
        let rules = NameRules::default();
        for name in [
            "BASH_ENV",
            "ENV",
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "PATH",
            "IFS",
            "PS4",
            "NODE_OPTIONS",
            "PYTHONSTARTUP",
            "PYTHONPATH",
            "PERL5OPT",
            "RUBYOPT",
            "JAVA_TOOL_OPTIONS",
            "GIT_SSH_COMMAND",
            "HOME",
            "EDITOR",
        ] {
            let err = rules.check(name, "k.f").expect_err(name).0;
            assert!(err.contains(&format!("--allow-name {name}")), "{err}");
        }
        let allowing = NameRules::new(&["BASH_ENV".to_owned()]).expect("allowed");
        allowing.check("BASH_ENV", "k.f").expect("named");
        assert!(
            allowing.check("LD_PRELOAD", "k.f").is_err(),
            "only the named one"
        );

        for name in [
            vars::HARMONY_SSO_CACERT,
            vars::HARMONY_DATA_DIR,
            "BAO_ADDR",
            "VAULT_TOKEN",
            "OPENBAO_ANYTHING",
            vars::ACTIONS_ID_TOKEN_REQUEST_URL,
        ] {
            let err = rules.check(name, "k.f").expect_err(name).0;
            assert!(err.contains("own variables"), "{err}");
            let refused = NameRules::new(&[name.to_owned()]).expect_err(name).0;
            assert!(refused.contains("outside harmony"), "{refused}");
        }
    }

    /// Every variable harmony reads is either refused as its own, refused as startup-changing,
    /// or named here as harmless: a constant added to `harmony_env::vars` fails this test until
    /// it is placed.
    #[test]
    fn every_variable_in_harmony_env_is_placed() {
        const HARMLESS: &[&str] = &[vars::RUST_LOG];
        let source = include_str!("../../harmony-env/src/vars.rs");
        let mut names = Vec::new();
        for item in source.split("pub const").skip(1) {
            let mut rest = item.split(';').next().unwrap_or_default();
            while let Some(start) = rest.find('"') {
                let tail = &rest[start + 1..];
                let Some(end) = tail.find('"') else { break };
                names.push(&tail[..end]);
                rest = &tail[end + 1..];
            }
        }
        assert!(names.len() > 40, "{names:?}");
        let rules = NameRules::default();
        for name in names {
            let placed = HARMLESS.contains(&name)
                || !is_plain_name(name)
                || is_own(name)
                || (changes_startup(name) && rules.check(name, "k.f").is_err());
            assert!(
                placed,
                "{name} from harmony_env::vars is not placed in env_names.rs"
            );
        }
    }
}
