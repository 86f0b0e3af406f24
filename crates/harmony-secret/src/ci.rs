//! CI identity: a CI job signs in to OpenBao with its own short-lived OIDC id_token, so no
//! long-lived OpenBao token is ever stored in CI settings.
//!
//! GitHub Actions hands a job a request URL and bearer token (`ACTIONS_ID_TOKEN_REQUEST_URL`,
//! `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, present when the workflow has `permissions: id-token:
//! write`); the job asks it for an id_token with our audience. GitLab (`id_tokens:`) and any other
//! CI put the token itself in a variable ([`HARMONY_OIDC_TOKEN`]) or a file
//! ([`HARMONY_OIDC_TOKEN_FILE`]). Either way the token is exchanged at OpenBao's JWT auth method
//! mounted for CI issuers (`jwt-ci`, apart from the people's `jwt`), whose per-repository roles
//! bind the repository (and ref) claims; the bootstrap's `--ci` creates them, naming each role
//! with [`ci_role_name`].
//!
//! Design choices: in CI the chain never runs a device flow or a refresh and never reads or
//! writes the session cache (a runner may be shared between jobs); a refused token stops the
//! chain with one error that shows what the job's token claims, so the mismatch with the role's
//! bound claims is visible.
//!
//! [`HARMONY_OIDC_TOKEN`]: harmony_env::vars::HARMONY_OIDC_TOKEN
//! [`HARMONY_OIDC_TOKEN_FILE`]: harmony_env::vars::HARMONY_OIDC_TOKEN_FILE

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use harmony_env::vars;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::SecretError;
use crate::client::OpenbaoClient;

/// The JWT auth mount trusting CI issuers, unless [`vars::HARMONY_CI_AUTH_MOUNT`] says otherwise.
pub const DEFAULT_CI_AUTH_MOUNT: &str = "jwt-ci";

/// How long fetching a CI id_token may take.
const ID_TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The claims shown when OpenBao refuses a CI token: the ones roles bind, and the audience.
const SHOWN_CLAIMS: [&str; 12] = [
    "iss",
    "aud",
    "repository",
    "repository_id",
    "repository_owner_id",
    "project_path",
    "project_id",
    "ref",
    "ref_type",
    "ref_protected",
    "job_workflow_ref",
    "sub",
];

/// Which CI platform a role is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiPlatform {
    /// GitHub Actions: the repository is the `repository` claim (`OWNER/REPO`).
    Github,
    /// GitLab CI: the repository is the `project_path` claim (`GROUP/PROJECT`).
    Gitlab,
}

impl CiPlatform {
    /// The platform's name in role names and flags: `github`, `gitlab`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        }
    }

    /// The id_token claim holding the repository path.
    pub fn repository_claim(self) -> &'static str {
        match self {
            Self::Github => "repository",
            Self::Gitlab => "project_path",
        }
    }

    /// The claim that names the job's workflow (OpenBao's `user_claim`: it becomes the entity
    /// alias, so audit logs say which workflow read what).
    pub fn user_claim(self) -> &'static str {
        match self {
            Self::Github => "job_workflow_ref",
            // GitLab has no workflow file claim on every version; `sub` names the project and
            // ref (`project_path:GROUP/PROJECT:ref_type:branch:ref:main`).
            Self::Gitlab => "sub",
        }
    }
}

/// The OpenBao JWT role of one repository: `<platform>-<path>` with every character other than
/// `a-z0-9` turned into `-` (e.g. `github-acme-app`). The bootstrap and the CI login both name
/// roles with this function, so a job finds its role without configuration. Distinct paths can
/// share a name (`acme/my.app` and `acme/my-app`): the bootstrap refuses to trust both (a usage
/// error naming the two); the name only finds the role, which binds the repository's ids.
pub fn ci_role_name(platform: CiPlatform, repository: &str) -> String {
    let mut name = format!("{}-", platform.name());
    let mut last_dash = true;
    for c in repository.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
            last_dash = false;
        } else if !last_dash {
            name.push('-');
            last_dash = true;
        }
    }
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// Where this job's id_token comes from.
#[derive(Clone)]
pub enum CiTokenSource {
    /// GitHub Actions' id_token endpoint.
    GithubActions {
        /// `ACTIONS_ID_TOKEN_REQUEST_URL`.
        request_url: String,
        /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
        request_token: SecretString,
    },
    /// The id_token itself.
    Token(SecretString),
    /// A file holding the id_token.
    TokenFile(PathBuf),
}

impl std::fmt::Debug for CiTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::GithubActions { request_url, .. } => f
                .debug_struct("GithubActions")
                .field("request_url", request_url)
                .field("request_token", &"[redacted]")
                .finish(),
            Self::Token(_) => f.write_str("Token([redacted])"),
            Self::TokenFile(path) => f.debug_tuple("TokenFile").field(path).finish(),
        }
    }
}

/// A CI job's sign-in: where its id_token comes from and which role it presents it to.
#[derive(Debug, Clone)]
pub struct CiLogin {
    /// Where the id_token comes from.
    pub source: CiTokenSource,
    /// The JWT auth mount (default [`DEFAULT_CI_AUTH_MOUNT`]).
    pub mount: String,
    /// The role (default from the repository, see [`ci_role_name`]).
    pub role: String,
    /// The audience requested from GitHub and bound by the role (default: the OpenBao URL).
    pub audience: String,
}

impl CiLogin {
    /// The CI sign-in this environment offers, if any: GitHub Actions' request variables, else
    /// [`vars::HARMONY_OIDC_TOKEN`], else [`vars::HARMONY_OIDC_TOKEN_FILE`]. `None` outside CI.
    /// The role comes from [`vars::HARMONY_CI_ROLE`] or the repository the CI names
    /// (`GITHUB_REPOSITORY`, `CI_PROJECT_PATH`); with neither it is an error naming both.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        openbao_url: &str,
    ) -> Result<Option<Self>, SecretError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let source = match (
            get(vars::ACTIONS_ID_TOKEN_REQUEST_URL),
            get(vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN),
        ) {
            (Some(request_url), Some(request_token)) => CiTokenSource::GithubActions {
                request_url,
                request_token: SecretString::from(request_token),
            },
            _ => match (
                get(vars::HARMONY_OIDC_TOKEN),
                get(vars::HARMONY_OIDC_TOKEN_FILE),
            ) {
                (Some(token), _) => CiTokenSource::Token(SecretString::from(token)),
                (None, Some(file)) => CiTokenSource::TokenFile(PathBuf::from(file)),
                (None, None) => return Ok(None),
            },
        };
        let role = match get(vars::HARMONY_CI_ROLE) {
            Some(role) => role,
            None => {
                let from_repo = match &source {
                    CiTokenSource::GithubActions { .. } => {
                        get(vars::GITHUB_REPOSITORY).map(|r| ci_role_name(CiPlatform::Github, &r))
                    }
                    _ => get(vars::CI_PROJECT_PATH)
                        .map(|p| ci_role_name(CiPlatform::Gitlab, &p))
                        .or_else(|| {
                            get(vars::GITHUB_REPOSITORY)
                                .map(|r| ci_role_name(CiPlatform::Github, &r))
                        }),
                };
                from_repo.ok_or_else(|| {
                    SecretError::Config(format!(
                        "a CI id_token is available but no OpenBao role is known for this job; set {} \
                         (the role the bootstrap's --ci created, e.g. github-acme-app), or run where {} \
                         or {} names the repository",
                        vars::HARMONY_CI_ROLE,
                        vars::GITHUB_REPOSITORY,
                        vars::CI_PROJECT_PATH
                    ))
                })?
            }
        };
        Ok(Some(Self {
            source,
            mount: get(vars::HARMONY_CI_AUTH_MOUNT)
                .unwrap_or_else(|| DEFAULT_CI_AUTH_MOUNT.to_owned()),
            role,
            audience: get(vars::HARMONY_CI_AUDIENCE).unwrap_or_else(|| ci_audience(openbao_url)),
        }))
    }
}

/// The audience CI tokens are requested for and bound to by default: the OpenBao URL without a
/// trailing slash. The bootstrap binds the same value.
pub fn ci_audience(openbao_url: &str) -> String {
    openbao_url.trim().trim_end_matches('/').to_owned()
}

/// Why a CI job could not sign in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CiError {
    /// GitHub's id_token endpoint failed or answered without a token.
    #[error(
        "could not get this job's OIDC id_token from {url}: {message}; the workflow (or job) needs \
         `permissions: id-token: write`"
    )]
    IdTokenRequest {
        /// The endpoint, without its query.
        url: String,
        /// What happened (no token in it).
        message: String,
    },
    /// The id_token file could not be read.
    #[error("could not read the CI id_token from {path} ({var}): {source}", var = vars::HARMONY_OIDC_TOKEN_FILE)]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// OpenBao refused the token.
    #[error(
        "OpenBao refused this CI job's id_token at auth/{mount}/login (role {role}): {message}. \
         This job's token carries {claims}; the role accepts only the repository ids, refs and \
         audience it was bootstrapped with (see `bao read auth/{mount}/role/{role}`): re-run the bootstrap \
         with --ci for this repository and ref if it should be trusted, or set {role_var} / {aud_var}",
        role_var = vars::HARMONY_CI_ROLE,
        aud_var = vars::HARMONY_CI_AUDIENCE,
    )]
    Refused {
        /// The JWT auth mount.
        mount: String,
        /// The role.
        role: String,
        /// OpenBao's message (which claim failed).
        message: String,
        /// The token's identifying claims, `name=value` (no signature, nothing secret).
        claims: String,
    },
}

/// Sign a CI job in: get its id_token, then `POST auth/<mount>/login`. Returns the OpenBao token.
pub(crate) async fn login(
    client: &OpenbaoClient,
    http: &reqwest::Client,
    ci: &CiLogin,
) -> Result<SecretString, SecretError> {
    let id_token = id_token(http, ci).await?;
    let path = format!("auth/{}/login", ci.mount);
    let body = json!({ "role": ci.role, "jwt": id_token.expose_secret() });
    let answer = match client.clone().without_token().post(&path, &body).await {
        Ok(answer) => answer,
        Err(
            SecretError::BadResponse { message, .. }
            | SecretError::PermissionDenied { message, .. },
        ) => {
            return Err(SecretError::Auth(
                CiError::Refused {
                    mount: ci.mount.clone(),
                    role: ci.role.clone(),
                    message,
                    claims: shown_claims(&id_token),
                }
                .into(),
            ));
        }
        Err(other) => return Err(other),
    };
    answer
        .as_ref()
        .and_then(|a| a["auth"]["client_token"].as_str())
        .map(|t| SecretString::from(t.to_owned()))
        .ok_or_else(|| SecretError::BadResponse {
            path,
            status: 200,
            message: "the login answer has no auth.client_token".to_owned(),
        })
}

async fn id_token(http: &reqwest::Client, ci: &CiLogin) -> Result<SecretString, SecretError> {
    match &ci.source {
        CiTokenSource::Token(token) => Ok(token.clone()),
        CiTokenSource::TokenFile(path) => {
            let path = path.clone();
            let read = tokio::fs::read_to_string(&path).await;
            match read {
                Ok(text) => Ok(SecretString::from(text.trim().to_owned())),
                Err(source) => Err(SecretError::Auth(
                    CiError::TokenFile { path, source }.into(),
                )),
            }
        }
        CiTokenSource::GithubActions {
            request_url,
            request_token,
        } => {
            let shown_url = request_url
                .split_once('?')
                .map_or(request_url.as_str(), |(u, _)| u)
                .to_owned();
            let fail = |message: String| {
                SecretError::Auth(
                    CiError::IdTokenRequest {
                        url: shown_url.clone(),
                        message,
                    }
                    .into(),
                )
            };
            let mut url = url::Url::parse(request_url).map_err(|e| {
                fail(format!(
                    "{} is not a URL ({e})",
                    vars::ACTIONS_ID_TOKEN_REQUEST_URL
                ))
            })?;
            url.query_pairs_mut().append_pair("audience", &ci.audience);
            let mut auth =
                http::HeaderValue::from_str(&format!("bearer {}", request_token.expose_secret()))
                    .map_err(|_| {
                    fail(format!(
                        "{} holds characters an HTTP header cannot carry",
                        vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN
                    ))
                })?;
            auth.set_sensitive(true);
            let response = http
                .get(url)
                .header(http::header::AUTHORIZATION, auth)
                .timeout(ID_TOKEN_TIMEOUT)
                .send()
                .await
                .map_err(|e| {
                    fail(format!(
                        "no answer within {} s ({e})",
                        ID_TOKEN_TIMEOUT.as_secs()
                    ))
                })?;
            let status = response.status();
            if !status.is_success() {
                return Err(fail(format!("HTTP {status}")));
            }
            let body: Value = response
                .json()
                .await
                .map_err(|_| fail("the answer is not JSON".to_owned()))?;
            body["value"]
                .as_str()
                .map(|t| SecretString::from(t.to_owned()))
                .ok_or_else(|| fail("the answer has no `value`".to_owned()))
        }
    }
}

/// The identifying claims of a JWT, read without verifying it (only for the error message:
/// OpenBao has already said no). The signature and the token itself are never shown.
fn shown_claims(jwt: &SecretString) -> String {
    let payload = jwt
        .expose_secret()
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    let Some(payload) = payload else {
        return "nothing readable (the id_token is not a JWT)".to_owned();
    };
    let shown: Vec<String> = SHOWN_CLAIMS
        .iter()
        .filter_map(|name| {
            payload.get(*name).map(|v| match v {
                Value::String(s) => format!("{name}={s}"),
                other => format!("{name}={other}"),
            })
        })
        .collect();
    if shown.is_empty() {
        "none of iss, aud, repository, project_path, ref".to_owned()
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::fixed_lookup;

    #[test]
    fn role_names_are_path_safe_and_stable() {
        assert_eq!(
            ci_role_name(CiPlatform::Github, "acme/app"),
            "github-acme-app"
        );
        assert_eq!(
            ci_role_name(CiPlatform::Gitlab, "Group/Sub.Group/My_Project"),
            "gitlab-group-sub-group-my-project"
        );
        assert_eq!(ci_role_name(CiPlatform::Github, " a//b- "), "github-a-b");
    }

    #[test]
    fn github_variables_win_and_name_the_role_and_audience() {
        let lookup = fixed_lookup(&[
            (
                vars::ACTIONS_ID_TOKEN_REQUEST_URL,
                "http://t/token?api-version=2.0",
            ),
            (vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN, "request-S3cret"),
            (vars::GITHUB_REPOSITORY, "acme/app"),
            (vars::HARMONY_OIDC_TOKEN, "ignored"),
        ]);
        let ci = CiLogin::from_lookup(lookup, "https://bao.example.com/")
            .expect("valid")
            .expect("in CI");
        assert!(matches!(ci.source, CiTokenSource::GithubActions { .. }));
        assert_eq!(
            (ci.mount.as_str(), ci.role.as_str(), ci.audience.as_str()),
            ("jwt-ci", "github-acme-app", "https://bao.example.com")
        );
        let shown = format!("{ci:?}");
        assert!(!shown.contains("request-S3cret"), "{shown}");
    }

    #[test]
    fn gitlab_token_variable_and_explicit_role() {
        let ci = CiLogin::from_lookup(
            fixed_lookup(&[
                (vars::HARMONY_OIDC_TOKEN, "tok-S3cret"),
                (vars::CI_PROJECT_PATH, "group/project"),
            ]),
            "http://b",
        )
        .expect("valid")
        .expect("in CI");
        assert_eq!(ci.role, "gitlab-group-project");
        assert!(!format!("{ci:?}").contains("tok-S3cret"));

        let ci = CiLogin::from_lookup(
            fixed_lookup(&[
                (vars::HARMONY_OIDC_TOKEN_FILE, "/run/token"),
                (vars::HARMONY_CI_ROLE, "custom"),
                (vars::HARMONY_CI_AUDIENCE, "aud-1"),
                (vars::HARMONY_CI_AUTH_MOUNT, "ci"),
            ]),
            "http://b",
        )
        .expect("valid")
        .expect("in CI");
        assert_eq!(
            (ci.mount.as_str(), ci.role.as_str(), ci.audience.as_str()),
            ("ci", "custom", "aud-1")
        );
    }

    #[test]
    fn outside_ci_is_none_and_a_token_without_role_says_what_to_set() {
        assert!(
            CiLogin::from_lookup(fixed_lookup(&[]), "http://b")
                .expect("valid")
                .is_none()
        );
        let err =
            CiLogin::from_lookup(fixed_lookup(&[(vars::HARMONY_OIDC_TOKEN, "t")]), "http://b")
                .expect_err("no role");
        let text = err.to_string();
        assert!(
            text.contains("HARMONY_CI_ROLE") && text.contains("GITHUB_REPOSITORY"),
            "{text}"
        );
    }

    #[test]
    fn refused_tokens_show_claims_but_never_the_token() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            r#"{"repository":"acme/other","ref":"refs/heads/main","aud":"x","secret":"no"}"#,
        );
        let jwt = SecretString::from(format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"));
        let shown = shown_claims(&jwt);
        assert_eq!(shown, "aud=x, repository=acme/other, ref=refs/heads/main");
        assert_eq!(
            shown_claims(&SecretString::from("opaque".to_owned())),
            "nothing readable (the id_token is not a JWT)"
        );
    }
}
