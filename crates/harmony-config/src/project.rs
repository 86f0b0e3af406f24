//! The project file: `harmony.toml` in an application's repository, naming the OpenBao server,
//! the SSO issuer and client id, the configs the program uses and its default environment — so
//! a teammate who clones the repository runs `harmony login` and `harmony run -- cargo run` with
//! no flags.
//!
//! ```toml
//! openbao_url = "https://bao.example.com"
//! environment = "dev"
//! configs = ["my-app", "shared/database"]
//!
//! [sso]
//! issuer = "https://sso.example.com"
//! client_id = "312909075212468632@harmony"
//! project_id = "312909075212468632"   # Zitadel only: adds the project-audience scope
//! ```
//!
//! **Where it is found** ([`ProjectFile::discover`]): in the working directory, else in each
//! parent in turn. The walk stops after the first directory that holds `.git` (a directory, or
//! the file a git worktree has: the repository's root — a `harmony.toml` above a repository is
//! not that repository's), at the filesystem root, and before the home directory (`$HOME` itself
//! and everything above it are never read: a file there would apply to every folder of the
//! user's). A path given explicitly (`--project-file`, `HARMONY_PROJECT_FILE`) is read as is and
//! must exist; `/dev/null` is an empty project file.
//!
//! **The file comes from the repository, so it is checked like input from a stranger**: at most
//! [`MAX_PROJECT_FILE_BYTES`], UTF-8, TOML; unknown keys are errors naming the key and the file
//! (`#[serde(deny_unknown_fields)]` backs the explicit check); it holds no secret, so keys that
//! look like one (`token`, `password`, `secret`, …) are refused with that reason; URLs must be
//! `http(s)` without a user name or password. No error quotes a value of the file (only key
//! names, line and column), so a secret pasted into it by mistake never reaches a terminal or a
//! CI log. No I/O besides reading the file; the CLI applies the precedence (flags, then
//! variables, then this file, then the defaults).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file's name.
pub const PROJECT_FILE_NAME: &str = "harmony.toml";

/// Largest accepted project file: it names a few settings, never data.
pub const MAX_PROJECT_FILE_BYTES: u64 = 64 * 1024;

/// Most configs a project file may name.
const MAX_CONFIGS: usize = 64;

/// Longest client id or project id accepted.
const MAX_ID_LEN: usize = 256;

/// Top-level keys, in the order the docs give them.
const TOP_KEYS: &[&str] = &["openbao_url", "environment", "configs", "sso"];
/// Keys of the `[sso]` table.
const SSO_KEYS: &[&str] = &["issuer", "client_id", "project_id"];

/// Parts of key names that say the value is a credential (matched case-insensitively).
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "credential",
    "private",
    "apikey",
    "api_key",
    "api-key",
];

/// A project file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// The OpenBao server.
    pub openbao_url: Option<url::Url>,
    /// The default environment (checked as `--env` is).
    pub environment: Option<String>,
    /// The configs the program uses (`harmony run` / `export` without `-c`), in file order.
    pub configs: Vec<String>,
    /// The OpenID provider `harmony login` signs in through.
    pub sso: Option<ProjectSso>,
}

/// The `[sso]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSso {
    /// The issuer URL.
    pub issuer: url::Url,
    /// The device-code application's public client id.
    pub client_id: String,
    /// Zitadel's project id (adds the project-audience scope), if any.
    pub project_id: Option<String>,
}

/// Why a project file cannot be used. Messages name the file and the key, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectError {
    /// A path given explicitly does not exist.
    #[error("the project file {} does not exist; fix --project-file / HARMONY_PROJECT_FILE", path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// It could not be read.
    #[error("cannot read the project file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is larger than [`MAX_PROJECT_FILE_BYTES`].
    #[error("the project file {} is larger than {limit} bytes; it names a few settings only", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound.
        limit: u64,
    },
    /// It is not UTF-8 text.
    #[error("the project file {} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
    },
    /// It is not TOML.
    #[error("the project file {} is not valid TOML: {message} (line {line}, column {column})", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (no text of the file).
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A key this version does not know.
    #[error("the project file {} has an unknown key `{key}`{where_}; known keys: {known} (check the spelling, or update harmony)", path.display())]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The key (escaped, shortened).
        key: String,
        /// ` in [sso]`, or empty.
        where_: String,
        /// The keys allowed there.
        known: String,
    },
    /// A key that names a credential.
    #[error("the project file {} has the key `{key}`, which looks like a credential: a project file is committed with the repository and holds no secret — remove it (sign in with `harmony login`; keep secrets in OpenBao)", path.display())]
    SecretKey {
        /// The file.
        path: PathBuf,
        /// The key (escaped, shortened).
        key: String,
    },
    /// A known key with a value that cannot be used.
    #[error("the project file {} has an unusable `{key}`: {reason}", path.display())]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The dotted key, e.g. `sso.issuer` or `configs[2]`.
        key: String,
        /// Why (never the value).
        reason: String,
    },
}

/// The file's shape. `deny_unknown_fields` backs [`check_keys`]: nothing unknown gets through
/// even if the two drift apart.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    openbao_url: Option<String>,
    environment: Option<String>,
    configs: Option<Vec<String>>,
    sso: Option<RawSso>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSso {
    issuer: String,
    client_id: String,
    project_id: Option<String>,
}

/// A key name from the file, safe to print: escaped and at most 64 characters.
fn shown_key(key: &str) -> String {
    let escaped: String = key.escape_debug().collect();
    if escaped.chars().count() > 64 {
        format!("{}…", escaped.chars().take(64).collect::<String>())
    } else {
        escaped
    }
}

fn looks_secret(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w))
}

/// Every key of `table` (and of tables within it, arrays included) that looks like a
/// credential, then every key unknown at its place.
fn check_keys(path: &Path, table: &toml::Table) -> Result<(), ProjectError> {
    fn secret_keys(value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    if looks_secret(k) {
                        out.push(k.clone());
                    }
                    secret_keys(v, out);
                }
            }
            toml::Value::Array(items) => items.iter().for_each(|v| secret_keys(v, out)),
            _ => {}
        }
    }
    let mut secrets = Vec::new();
    secret_keys(&toml::Value::Table(table.clone()), &mut secrets);
    if let Some(key) = secrets.first() {
        return Err(ProjectError::SecretKey {
            path: path.to_owned(),
            key: shown_key(key),
        });
    }
    let unknown = |key: &str, where_: &str, known: &[&str]| ProjectError::UnknownKey {
        path: path.to_owned(),
        key: shown_key(key),
        where_: where_.to_owned(),
        known: known.join(", "),
    };
    for (key, value) in table {
        if !TOP_KEYS.contains(&key.as_str()) {
            return Err(unknown(key, "", TOP_KEYS));
        }
        if key == "sso"
            && let toml::Value::Table(sso) = value
            && let Some(k) = sso.keys().find(|k| !SSO_KEYS.contains(&k.as_str()))
        {
            return Err(unknown(k, " in [sso]", SSO_KEYS));
        }
    }
    Ok(())
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

/// An `http(s)` URL without credentials; the reason when not (never the text).
fn parse_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("give an http:// or https:// URL".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "the URL carries a user name or password; a project file holds no credential"
                .to_owned(),
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(url)
}

/// A public id: non-empty, at most [`MAX_ID_LEN`] visible ASCII characters.
fn check_id(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("it is empty".to_owned());
    }
    if text.len() > MAX_ID_LEN {
        return Err(format!("it is longer than {MAX_ID_LEN} characters"));
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err("it holds a character other than visible ASCII".to_owned());
    }
    Ok(text.to_owned())
}

/// A config key as `harmony config` takes it: `/`-separated valid keys, not in a `_` folder.
fn check_config_key(key: &str) -> Result<(), String> {
    for segment in key.split('/') {
        if let Err(e) = crate::validate_key(segment) {
            return Err(match e {
                crate::ConfigError::InvalidKey { reason, .. } => format!(
                    "a config key is `/`-separated names of lowercase letters, digits, '-' and \
                     '_', and one segment is not: {reason}"
                ),
                other => other.to_string(),
            });
        }
    }
    if key
        .split('/')
        .next()
        .is_some_and(crate::layers::is_reserved_folder)
    {
        return Err("folders starting with '_' hold schemas and overlays, not configs".to_owned());
    }
    Ok(())
}

impl ProjectFile {
    /// Parse and check `text` as the project file at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ProjectError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ProjectError::Syntax {
                path: path.to_owned(),
                // The message alone: the error's Display quotes the offending line.
                message: e.message().trim().replace('\n', "; "),
                line,
                column,
            }
        })?;
        check_keys(path, &table)?;
        let bad = |key: &str, reason: String| ProjectError::BadValue {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let raw: Raw =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let inner = e.into_inner().to_string();
                // serde's "invalid type: string \"…\", expected …" quotes the value: keep only
                // what was expected.
                let reason = if let Some((_, expected)) = inner.split_once(", expected ") {
                    format!("expected {}", expected.trim())
                } else if inner.starts_with("missing field") || inner.starts_with("unknown field") {
                    inner.lines().next().unwrap_or_default().to_owned()
                } else {
                    "a value of the wrong kind".to_owned()
                };
                bad(&key, reason)
            })?;
        let openbao_url = raw
            .openbao_url
            .as_deref()
            .map(parse_url)
            .transpose()
            .map_err(|r| bad("openbao_url", r))?;
        let environment = match raw.environment.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(env) => {
                crate::layers::validate_environment(env).map_err(|e| match e {
                    crate::ConfigError::InvalidEnvironment { reason, .. } => bad(
                        "environment",
                        format!(
                            "an environment is lowercase letters, digits, '-' and '_', starting \
                             with a letter: {reason}"
                        ),
                    ),
                    other => bad("environment", other.to_string()),
                })?;
                Some(env.to_owned())
            }
        };
        let configs = raw.configs.unwrap_or_default();
        if configs.len() > MAX_CONFIGS {
            return Err(bad("configs", format!("more than {MAX_CONFIGS} configs")));
        }
        for (i, key) in configs.iter().enumerate() {
            check_config_key(key).map_err(|r| bad(&format!("configs[{i}]"), r))?;
            if configs[..i].contains(key) {
                return Err(bad(&format!("configs[{i}]"), "named twice".to_owned()));
            }
        }
        let sso = raw
            .sso
            .map(|s| {
                Ok::<_, ProjectError>(ProjectSso {
                    issuer: parse_url(&s.issuer).map_err(|r| bad("sso.issuer", r))?,
                    client_id: check_id(&s.client_id).map_err(|r| bad("sso.client_id", r))?,
                    project_id: s
                        .project_id
                        .as_deref()
                        .map(check_id)
                        .transpose()
                        .map_err(|r| bad("sso.project_id", r))?,
                })
            })
            .transpose()?;
        Ok(Self {
            path: path.to_owned(),
            openbao_url,
            environment,
            configs,
            sso,
        })
    }

    /// Read and check the project file at `path` (which must exist).
    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ProjectError::NotFound {
                path: path.to_owned(),
            },
            _ => ProjectError::Read {
                path: path.to_owned(),
                source,
            },
        })?;
        let mut bytes = Vec::new();
        file.take(MAX_PROJECT_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ProjectError::Read {
                path: path.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > MAX_PROJECT_FILE_BYTES {
            return Err(ProjectError::TooLarge {
                path: path.to_owned(),
                limit: MAX_PROJECT_FILE_BYTES,
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| ProjectError::NotUtf8 {
            path: path.to_owned(),
        })?;
        Self::parse(path, &text)
    }

    /// The project file that applies in `start` (see the module docs for where the walk
    /// stops); `home` is the user's home directory, never read nor passed.
    pub fn discover(start: &Path, home: Option<&Path>) -> Result<Option<Self>, ProjectError> {
        match Self::find(start, home) {
            Some(path) => Self::load(&path).map(Some),
            None => Ok(None),
        }
    }

    /// The path [`discover`](Self::discover) would read, if any.
    pub fn find(start: &Path, home: Option<&Path>) -> Option<PathBuf> {
        for dir in start.ancestors() {
            if home.is_some_and(|h| h == dir) {
                return None;
            }
            let candidate = dir.join(PROJECT_FILE_NAME);
            if candidate.is_file() {
                return Some(candidate);
            }
            if dir.join(".git").exists() {
                return None;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectFile, ProjectError> {
        ProjectFile::parse(Path::new("/repo/harmony.toml"), text)
    }

    #[test]
    fn a_full_file_parses() {
        let p = parse(
            r#"
openbao_url = "https://bao.example.com"
environment = "dev"
configs = ["my-app", "shared/database"]

[sso]
issuer = "https://sso.example.com"
client_id = "312@harmony"
project_id = "312"
"#,
        )
        .expect("parses");
        assert_eq!(
            p.openbao_url.as_ref().map(url::Url::as_str),
            Some("https://bao.example.com/")
        );
        assert_eq!(p.environment.as_deref(), Some("dev"));
        assert_eq!(p.configs, ["my-app", "shared/database"]);
        let sso = p.sso.expect("sso");
        assert_eq!(sso.client_id, "312@harmony");
        assert_eq!(sso.project_id.as_deref(), Some("312"));
        assert_eq!(parse("").expect("empty").configs, Vec::<String>::new());
    }

    #[test]
    fn unknown_and_secret_looking_keys_are_refused_by_name() {
        let err = parse("openbao_url = \"http://b\"\nserver = \"x\"\n")
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown key `server`"), "{err}");
        assert!(err.contains("/repo/harmony.toml"), "{err}");
        assert!(
            err.contains("openbao_url, environment, configs, sso"),
            "{err}"
        );

        let err = parse("[sso]\nissuer = \"http://i\"\nclient_id = \"c\"\nscope = \"x\"\n")
            .expect_err("unknown in sso")
            .to_string();
        assert!(err.contains("`scope` in [sso]"), "{err}");

        for key in [
            "token",
            "openbao_token",
            "PASSWORD",
            "client_secret",
            "api_key",
        ] {
            let text = format!(
                "[sso]\nissuer = \"http://i\"\nclient_id = \"c\"\n{key} = \"hvs.s3cr3t\"\n"
            );
            let err = parse(&text).expect_err(key).to_string();
            assert!(err.contains("looks like a credential"), "{key}: {err}");
            assert!(!err.contains("s3cr3t"), "{key}: {err}");
        }
    }

    /// A secret pasted into the file never shows in an error: not in a syntax error (the TOML
    /// error's Display quotes the line), not in a type error (serde quotes the value).
    #[test]
    fn errors_never_quote_a_value() {
        let cases = [
            ("openbao_url = \"hvs.s3cr3t\n", "not valid TOML"),
            ("openbao_url = hvs.s3cr3t\n", "not valid TOML"),
            ("configs = \"hvs.s3cr3t\"\n", "expected a sequence"),
            ("environment = [\"hvs.s3cr3t\"]\n", "`environment`"),
            ("openbao_url = \"hvs.s3cr3t\"\n", "not a URL"),
            (
                "openbao_url = \"https://me:hvs.s3cr3t@bao\"\n",
                "user name or password",
            ),
            ("openbao_url = \"ftp://hvs.s3cr3t\"\n", "http://"),
            ("environment = \"hvs.s3cr3t\"\n", "`environment`"),
            ("configs = [\"hvs.s3cr3t\"]\n", "`configs[0]`"),
            (
                "[sso]\nissuer = \"http://i\"\nclient_id = \"hvs s3cr3t\"\n",
                "`sso.client_id`",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
        }
        let err = parse("environment = \"dev\"\nopenbao_url = \"x\n").expect_err("syntax");
        let ProjectError::Syntax { line, .. } = err else {
            panic!("{err}");
        };
        assert_eq!(line, 2);
    }

    #[test]
    fn values_are_checked() {
        for (text, key) in [
            ("configs = [\"_env/x\"]", "configs[0]"),
            ("configs = [\"a\", \"a\"]", "configs[1]"),
            ("environment = \"Prod\"", "environment"),
            ("[sso]\nclient_id = \"c\"", "sso"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(
                matches!(&err, ProjectError::BadValue { key: k, .. } if k == key),
                "{text}: {err:?}"
            );
        }
    }

    #[test]
    fn the_walk_stops_at_the_repository_root_and_before_home() {
        let root = tempfile::tempdir().expect("tempdir");
        let home = root.path().join("home");
        let repo = home.join("src/app");
        let deep = repo.join("crates/x/src");
        std::fs::create_dir_all(&deep).expect("dirs");
        std::fs::create_dir_all(repo.join(".git")).expect(".git");
        let find = |start: &Path| ProjectFile::find(start, Some(&home));

        assert_eq!(find(&deep), None, "no file anywhere");
        std::fs::write(home.join(PROJECT_FILE_NAME), "").expect("write");
        std::fs::write(home.join("src").join(PROJECT_FILE_NAME), "").expect("write");
        assert_eq!(
            find(&deep),
            None,
            "above the repository root, and $HOME, are not read"
        );
        assert_eq!(
            find(&home.join("src")),
            Some(home.join("src").join(PROJECT_FILE_NAME))
        );
        assert_eq!(find(&home), None, "$HOME itself is not read");

        std::fs::write(repo.join(PROJECT_FILE_NAME), "").expect("write");
        assert_eq!(find(&deep), Some(repo.join(PROJECT_FILE_NAME)));
        std::fs::write(deep.join(PROJECT_FILE_NAME), "").expect("write");
        assert_eq!(
            find(&deep),
            Some(deep.join(PROJECT_FILE_NAME)),
            "the nearest wins"
        );
    }

    #[test]
    fn load_bounds_the_size_and_wants_utf8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(PROJECT_FILE_NAME);
        std::fs::write(&path, format!("# {}\n", "x".repeat(70_000))).expect("write");
        assert!(matches!(
            ProjectFile::load(&path),
            Err(ProjectError::TooLarge { .. })
        ));
        std::fs::write(&path, b"environment = \"\xff\"\n").expect("write");
        assert!(matches!(
            ProjectFile::load(&path),
            Err(ProjectError::NotUtf8 { .. })
        ));
        assert!(matches!(
            ProjectFile::load(&dir.path().join("missing.toml")),
            Err(ProjectError::NotFound { .. })
        ));
        let empty = ProjectFile::load(Path::new("/dev/null")).expect("/dev/null is empty");
        assert!(empty.openbao_url.is_none() && empty.configs.is_empty());
    }
}
