//! Trust for CI jobs: a JWT auth mount (`jwt-ci`, apart from the people's `jwt`) whose issuer is
//! the CI platform's, one role per repository, and the read-only policy `harmony-ci`. A job then
//! signs in with its own short-lived id_token (`harmony_secret::ci`); no OpenBao token is ever
//! stored in CI settings.
//!
//! A role binds what cannot be renamed or re-registered, as GitHub and GitLab recommend:
//! GitHub's `repository_id` and `repository_owner_id`, GitLab's `project_id`. Names are mutable
//! (a deleted or renamed repository's name can be taken by someone else), so they only name the
//! role. The ids come from the spec (`github:acme/app#REPO_ID/OWNER_ID`,
//! `gitlab:group/project#PROJECT_ID`) or, without them, from the platform's API at bootstrap
//! (GitHub `GET /repos/OWNER/REPO`, GitLab `GET /projects/GROUP%2FPROJECT`; base URLs
//! [`vars::HARMONY_GITHUB_API_URL`], [`vars::HARMONY_GITLAB_API_URL`]).
//!
//! Refs: with no `@REF`, a GitHub role allows only the repository's default branch (from the
//! same API call; with ids in the spec, name the ref) and a GitLab role only protected refs
//! (`ref_protected=true`); `@*` allows every ref; `@REF` allows that ref, binding `ref_type` too
//! (`branch`, or `tag` for `refs/tags/...`). Several refs of one repository share its role, so
//! their `ref` and `ref_type` values are allowed in any combination.
//!
//! `pull_request_target` (GitHub) runs the base branch's workflow with the base repository's
//! identity: its token's `ref` is the base ref (e.g. `refs/heads/main`) while the job may check
//! out and run the pull request's code. A role allowing the default branch therefore trusts
//! every such workflow: never check out a pull request's code in a `pull_request_target` job
//! that reads Harmony's config. (`pull_request` jobs carry `refs/pull/N/merge` and are refused
//! unless that ref is allowed.)

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use harmony_env::vars;
use harmony_secret::ci::{CiPlatform, DEFAULT_CI_AUTH_MOUNT, ci_audience, ci_role_name};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::{OpenbaoBootstrap, issuer_string, same_strings};
use crate::OpenbaoError;
use crate::policy::{ENV_FOLDER, KV_MOUNT, KV_PREFIX};

/// The read-only policy CI jobs get.
pub const HARMONY_CI_POLICY: &str = "harmony-ci";
/// GitHub Actions' OIDC issuer.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// GitLab.com's OIDC issuer (a self-managed GitLab is its own issuer: `gitlab=ISSUER:...`).
pub const GITLAB_COM_ISSUER: &str = "https://gitlab.com";
/// GitHub's REST API, unless [`vars::HARMONY_GITHUB_API_URL`] says otherwise.
pub const GITHUB_API_URL: &str = "https://api.github.com";
/// TTL of tokens issued to CI jobs: a job's run, not a day.
pub const CI_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long one platform API request may take.
const API_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of a platform API answer read (a repository is a few KiB).
const API_MAX_BYTES: usize = 1 << 20;

/// The immutable ids a role binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiIds {
    /// GitHub: `repository_id` and `repository_owner_id`.
    Github {
        /// The repository's id.
        repository_id: u64,
        /// Its owner's (user or organisation) id.
        owner_id: u64,
    },
    /// GitLab: `project_id`.
    Gitlab {
        /// The project's id.
        project_id: u64,
    },
}

/// Which refs of a repository a role allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CiRefs {
    /// No `@REF`: GitHub's default branch, GitLab's protected refs.
    Default,
    /// `@*`: every ref.
    Any,
    /// `@REF`: this ref (GitHub: the full ref, `refs/heads/main`; GitLab: the bare name).
    Only {
        /// The `ref` claim's value.
        git_ref: String,
        /// The `ref_type` claim's value (`branch` or `tag`), when known.
        ref_type: Option<&'static str>,
    },
}

/// One `--ci` entry:
/// `github[=ISSUER]:OWNER/REPO[#REPO_ID/OWNER_ID][@REF|@*]` or
/// `gitlab[=ISSUER]:GROUP/PROJECT[#PROJECT_ID][@REF|@*]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiTrust {
    /// The platform.
    pub platform: CiPlatform,
    /// The platform's OIDC issuer.
    pub issuer: Url,
    /// `OWNER/REPO` (GitHub) or `GROUP/PROJECT` (GitLab).
    pub repository: String,
    /// The immutable ids, when the spec gives them (else they are looked up at bootstrap).
    pub ids: Option<CiIds>,
    /// The refs allowed.
    pub refs: CiRefs,
    /// `=ENV,...`: the environments whose overlays a job may read (sorted, no repeats);
    /// `None`: the base only when environments are declared, everything as before otherwise.
    pub environments: Option<Vec<String>>,
}

/// A `--ci` entry that cannot be understood or set up; the message says what the form is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--ci {spec:?}: {reason}; the form is \
     github[=ISSUER]:OWNER/REPO[#REPO_ID/OWNER_ID][@REF][=ENV,...] or \
     gitlab[=ISSUER]:GROUP/PROJECT[#PROJECT_ID][@REF][=ENV,...] (@* for every ref), e.g. \
     github:acme/app@main=prod"
)]
pub struct CiSpecError {
    spec: String,
    reason: String,
}

impl FromStr for CiTrust {
    type Err = CiSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: &str| CiSpecError {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        // Repository paths and git refs never contain ':', issuers may (scheme, port): split at
        // the last one.
        let (head, target) = spec
            .trim()
            .rsplit_once(':')
            .ok_or_else(|| fail("it names no platform"))?;
        let (platform, issuer) = match head.split_once('=') {
            Some((p, issuer)) => (p, Some(issuer)),
            None => (head, None),
        };
        let platform = match platform {
            "github" => CiPlatform::Github,
            "gitlab" => CiPlatform::Gitlab,
            other => {
                return Err(fail(&format!(
                    "unknown platform {other:?} (github or gitlab)"
                )));
            }
        };
        let issuer = issuer.unwrap_or(match platform {
            CiPlatform::Github => GITHUB_ACTIONS_ISSUER,
            CiPlatform::Gitlab => GITLAB_COM_ISSUER,
        });
        let issuer = Url::parse(issuer)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| fail(&format!("the issuer {issuer:?} is not an http(s) URL")))?;
        // `=ENV,...` ends the spec; neither repository paths nor refs contain '='.
        let (target, environments) = match target.split_once('=') {
            Some((t, envs)) => {
                let mut list = Vec::new();
                for env in envs.split(',').map(str::trim) {
                    if env.is_empty() {
                        return Err(fail(
                            "an environment after '=' is empty (e.g. =prod or =dev,staging)",
                        ));
                    }
                    super::environments::check_name("environment", env)
                        .map_err(|e| fail(&e.to_string()))?;
                    if env == "base" {
                        return Err(fail(
                            "every CI job reads the base; name environments after '=' (or leave \
                             '=' out for the base only)",
                        ));
                    }
                    list.push(env.to_owned());
                }
                list.sort();
                list.dedup();
                (t, Some(list))
            }
            None => (target, None),
        };
        let (path, git_ref) = match target.split_once('@') {
            Some((repo, r)) if !r.trim().is_empty() => (repo, Some(r.trim())),
            Some(_) => return Err(fail("the ref after '@' is empty")),
            None => (target, None),
        };
        let (repository, ids) = match path.split_once('#') {
            Some((repo, ids)) => (repo, Some(parse_ids(platform, ids).map_err(|r| fail(&r))?)),
            None => (path, None),
        };
        let segments: Vec<&str> = repository.split('/').collect();
        let well_formed = segments.iter().all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
        let count_ok = match platform {
            CiPlatform::Github => segments.len() == 2,
            CiPlatform::Gitlab => segments.len() >= 2,
        };
        if !well_formed || !count_ok {
            return Err(fail(match platform {
                CiPlatform::Github => "the repository must be OWNER/REPO",
                CiPlatform::Gitlab => "the project must be GROUP/PROJECT (subgroups allowed)",
            }));
        }
        let refs = match git_ref {
            None if ids.is_some() && platform == CiPlatform::Github => {
                return Err(fail(
                    "with the ids given, name the ref too (@main, or @* for every ref): only the \
                     API lookup knows the default branch",
                ));
            }
            None => CiRefs::Default,
            Some("*") => CiRefs::Any,
            Some(r) if r.contains('*') => {
                return Err(fail("a ref is a name or * alone, not a pattern"));
            }
            Some(r) => only_ref(platform, r),
        };
        Ok(Self {
            platform,
            issuer,
            repository: repository.to_owned(),
            ids,
            refs,
            environments,
        })
    }
}

fn parse_ids(platform: CiPlatform, ids: &str) -> Result<CiIds, String> {
    let number = |s: &str, what: &str| {
        s.parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("the {what} after '#' must be a positive number"))
    };
    match platform {
        CiPlatform::Github => {
            let (repo, owner) = ids
                .split_once('/')
                .ok_or_else(|| "GitHub ids are #REPO_ID/OWNER_ID".to_owned())?;
            Ok(CiIds::Github {
                repository_id: number(repo, "repository id")?,
                owner_id: number(owner, "owner id")?,
            })
        }
        CiPlatform::Gitlab => Ok(CiIds::Gitlab {
            project_id: number(ids, "project id")?,
        }),
    }
}

/// `@REF` as the platform's claims carry it. GitHub's `ref` is the full ref (a bare name means
/// a branch); GitLab's is the bare name (`refs/heads/X` and `refs/tags/X` say which type).
fn only_ref(platform: CiPlatform, r: &str) -> CiRefs {
    let typed = |r: &str| {
        if let Some(name) = r.strip_prefix("refs/heads/") {
            (name.to_owned(), Some("branch"))
        } else if let Some(name) = r.strip_prefix("refs/tags/") {
            (name.to_owned(), Some("tag"))
        } else {
            (r.to_owned(), None)
        }
    };
    match platform {
        CiPlatform::Github => {
            let full = if r.starts_with("refs/") {
                r.to_owned()
            } else {
                format!("refs/heads/{r}")
            };
            let (_, ref_type) = typed(&full);
            CiRefs::Only {
                git_ref: full,
                ref_type,
            }
        }
        CiPlatform::Gitlab => {
            let (name, ref_type) = if r.starts_with("refs/") {
                typed(r)
            } else {
                (r.to_owned(), Some("branch"))
            };
            CiRefs::Only {
                git_ref: name,
                ref_type,
            }
        }
    }
}

impl fmt::Display for CiTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.name(), self.repository)?;
        match &self.ids {
            Some(CiIds::Github {
                repository_id,
                owner_id,
            }) => write!(f, "#{repository_id}/{owner_id}")?,
            Some(CiIds::Gitlab { project_id }) => write!(f, "#{project_id}")?,
            None => {}
        }
        match &self.refs {
            CiRefs::Default => {}
            CiRefs::Any => write!(f, "@*")?,
            CiRefs::Only { git_ref, .. } => write!(f, "@{git_ref}")?,
        }
        match &self.environments {
            Some(envs) => write!(f, "={}", envs.join(",")),
            None => Ok(()),
        }
    }
}

/// CI trust for the bootstrap: the repositories whose jobs may read the team's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiOptions {
    /// The entries (one role per repository; several refs of one repository share it).
    pub trusts: Vec<CiTrust>,
    /// The audience tokens must carry (default: the OpenBao URL, as `harmony_secret::ci`
    /// requests it).
    pub audience: String,
    /// The JWT auth mount (default `jwt-ci`).
    pub mount: String,
    /// The GitHub REST API asked for ids and the default branch (default [`GITHUB_API_URL`]).
    pub github_api: Url,
    /// The GitLab REST API v4 asked for project ids (default: the issuer's `/api/v4`).
    pub gitlab_api: Option<Url>,
}

/// One role: what it binds, and the specs it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RolePlan {
    platform: CiPlatform,
    repository: String,
    ids: Option<CiIds>,
    /// `None`: every ref; `Some(empty)`: the default refs; else these (ref, ref_type).
    refs: Option<Vec<(String, Option<&'static str>)>>,
    default_refs: bool,
    /// The environments its jobs read (`=ENV,...`), as in [`CiTrust::environments`].
    environments: Option<Vec<String>>,
}

impl CiOptions {
    /// Options for `trusts`, audience = `openbao_url` (without a trailing slash). Every entry
    /// must name the same issuer (one JWT mount trusts one issuer), and two repositories must
    /// not map to one role name (`acme/my.app` and `acme/my-app` both name `github-acme-my-app`).
    pub fn new(trusts: Vec<CiTrust>, openbao_url: &str) -> Result<Self, CiSpecError> {
        if let Some(first) = trusts.first()
            && let Some(other) = trusts.iter().find(|t| t.issuer != first.issuer)
        {
            return Err(CiSpecError {
                spec: other.to_string(),
                reason: format!(
                    "its issuer {} differs from {} of {first}; the {DEFAULT_CI_AUTH_MOUNT} mount trusts \
                     one issuer, so bootstrap one platform at a time",
                    issuer_string(&other.issuer),
                    issuer_string(&first.issuer)
                ),
            });
        }
        let options = Self {
            trusts,
            audience: ci_audience(openbao_url),
            mount: DEFAULT_CI_AUTH_MOUNT.to_owned(),
            github_api: Url::parse(GITHUB_API_URL).expect("a constant URL"),
            gitlab_api: None,
        };
        options.plans()?;
        Ok(options)
    }

    /// The API base URLs from a variable lookup ([`vars::HARMONY_GITHUB_API_URL`],
    /// [`vars::HARMONY_GITLAB_API_URL`]).
    pub fn with_api_from_lookup(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CiSpecError> {
        let parse = |var: &str| -> Result<Option<Url>, CiSpecError> {
            let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) else {
                return Ok(None);
            };
            Url::parse(value.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .map(Some)
                .ok_or_else(|| CiSpecError {
                    spec: format!("{var}={value}"),
                    reason: format!("{var} must be an http(s) URL"),
                })
        };
        if let Some(url) = parse(vars::HARMONY_GITHUB_API_URL)? {
            self.github_api = url;
        }
        if let Some(url) = parse(vars::HARMONY_GITLAB_API_URL)? {
            self.gitlab_api = Some(url);
        }
        Ok(self)
    }

    /// Role name → plan, refusing two repositories on one name and entries that disagree.
    fn plans(&self) -> Result<BTreeMap<String, RolePlan>, CiSpecError> {
        let mut plans: BTreeMap<String, (RolePlan, String)> = BTreeMap::new();
        for t in &self.trusts {
            let name = ci_role_name(t.platform, &t.repository);
            let Some((plan, first)) = plans.get_mut(&name) else {
                let plan = RolePlan {
                    platform: t.platform,
                    repository: t.repository.clone(),
                    ids: t.ids.clone(),
                    refs: match &t.refs {
                        CiRefs::Any => None,
                        CiRefs::Default => Some(Vec::new()),
                        CiRefs::Only { git_ref, ref_type } => {
                            Some(vec![(git_ref.clone(), *ref_type)])
                        }
                    },
                    default_refs: t.refs == CiRefs::Default,
                    environments: t.environments.clone(),
                };
                plans.insert(name, (plan, t.to_string()));
                continue;
            };
            let fail = |reason: String| CiSpecError {
                spec: t.to_string(),
                reason,
            };
            if plan.repository != t.repository || plan.platform != t.platform {
                return Err(fail(format!(
                    "it and {first} map to one role name ({name}); a job finds its role by that \
                     name, so two repositories cannot share it: trust one of them here and set \
                     {} in the other's jobs to a role bootstrapped another way",
                    vars::HARMONY_CI_ROLE
                )));
            }
            if plan.environments != t.environments {
                // One role, one policy: a ref of the repository would otherwise read what
                // another ref's entry names.
                return Err(fail(format!(
                    "it and {first} name different environments for one repository; its jobs \
                     share one role, so give every entry of it the same =ENV list"
                )));
            }
            match (&plan.ids, &t.ids) {
                (Some(a), Some(b)) if a != b => {
                    return Err(fail(format!("its ids differ from those of {first}")));
                }
                (None, Some(ids)) => plan.ids = Some(ids.clone()),
                _ => {}
            }
            match (&mut plan.refs, &t.refs) {
                (None, _) => {}
                (refs, CiRefs::Any) => *refs = None,
                (Some(_), CiRefs::Default) => plan.default_refs = true,
                (Some(refs), CiRefs::Only { git_ref, ref_type }) => {
                    let entry = (git_ref.clone(), *ref_type);
                    if !refs.contains(&entry) {
                        refs.push(entry);
                    }
                }
            }
            if t.platform == CiPlatform::Gitlab
                && plan.default_refs
                && plan.refs.as_ref().is_some_and(|r| !r.is_empty())
            {
                return Err(fail(format!(
                    "{first} and it mix protected refs (no @REF) with named refs for one project; \
                     a role cannot allow either, so name every ref (or use @*)"
                )));
            }
        }
        Ok(plans.into_iter().map(|(k, (plan, _))| (k, plan)).collect())
    }

    /// The role body OpenBao stores, for resolved ids and (GitHub, default refs) the default
    /// branch.
    fn role_body(
        &self,
        plan: &RolePlan,
        ids: &CiIds,
        default_branch: Option<&str>,
        policy: &str,
    ) -> Value {
        let mut claims = serde_json::Map::new();
        match ids {
            CiIds::Github {
                repository_id,
                owner_id,
            } => {
                claims.insert("repository_id".into(), json!([repository_id.to_string()]));
                claims.insert("repository_owner_id".into(), json!([owner_id.to_string()]));
            }
            CiIds::Gitlab { project_id } => {
                claims.insert("project_id".into(), json!([project_id.to_string()]));
            }
        }
        if let Some(named) = &plan.refs {
            let mut refs: Vec<String> = named.iter().map(|(r, _)| r.clone()).collect();
            let mut types: Vec<&str> = named.iter().filter_map(|(_, t)| *t).collect();
            let mut typed_all = named.iter().all(|(_, t)| t.is_some());
            if plan.default_refs {
                match (plan.platform, default_branch) {
                    (CiPlatform::Github, Some(branch)) => {
                        refs.push(format!("refs/heads/{branch}"));
                        types.push("branch");
                    }
                    (CiPlatform::Github, None) => typed_all = false,
                    (CiPlatform::Gitlab, _) => {
                        claims.insert("ref_protected".into(), json!(["true"]));
                    }
                }
            }
            refs.sort();
            refs.dedup();
            types.sort_unstable();
            types.dedup();
            if !refs.is_empty() {
                claims.insert("ref".into(), json!(refs));
                if typed_all {
                    claims.insert("ref_type".into(), json!(types));
                }
            }
        }
        json!({
            "role_type": "jwt",
            "bound_audiences": [self.audience],
            "bound_claims_type": "string",
            "bound_claims": claims,
            "user_claim": plan.platform.user_claim(),
            // A string, as harmony-admin may send it (one harmony-* policy).
            "token_policies": policy,
            "token_ttl": CI_TOKEN_TTL.as_secs(),
            "token_max_ttl": CI_TOKEN_TTL.as_secs(),
        })
    }

    /// What a role allows, for the summary.
    fn refs_text(plan: &RolePlan, default_branch: Option<&str>) -> String {
        let Some(named) = &plan.refs else {
            return "every ref (@*)".to_owned();
        };
        let mut parts: Vec<String> = named.iter().map(|(r, _)| r.clone()).collect();
        if plan.default_refs {
            parts.push(match (plan.platform, default_branch) {
                (CiPlatform::Github, Some(b)) => format!("the default branch {b} only"),
                (CiPlatform::Github, None) => "the default branch".to_owned(),
                (CiPlatform::Gitlab, _) => "protected refs only (ref_protected)".to_owned(),
            });
        }
        parts.join(", ")
    }
}

/// What the platform's API says about a repository.
struct Looked {
    ids: CiIds,
    default_branch: Option<String>,
}

impl CiOptions {
    /// Ask the platform's API for `plan`'s ids (and GitHub's default branch).
    async fn look_up(&self, plan: &RolePlan, issuer: &Url) -> Result<Looked, OpenbaoError> {
        let (url, var, hint) = match plan.platform {
            CiPlatform::Github => {
                let mut url = self.github_api.clone();
                url.path_segments_mut()
                    .map_err(|()| self.lookup_error(plan, &self.github_api, "not a base URL"))?
                    .pop_if_empty()
                    .push("repos")
                    .extend(plan.repository.split('/'));
                (
                    url,
                    vars::HARMONY_GITHUB_API_URL,
                    format!(
                        "github:{}#REPO_ID/OWNER_ID@main, from `gh api repos/{} --jq '.id, .owner.id'`",
                        plan.repository, plan.repository
                    ),
                )
            }
            CiPlatform::Gitlab => {
                let base = match &self.gitlab_api {
                    Some(u) => u.clone(),
                    None => {
                        let mut u = issuer.clone();
                        u.set_path(&format!("{}/api/v4", issuer.path().trim_end_matches('/')));
                        u
                    }
                };
                let mut url = base.clone();
                url.path_segments_mut()
                    .map_err(|()| self.lookup_error(plan, &base, "not a base URL"))?
                    .pop_if_empty()
                    .push("projects")
                    // One segment: `push` percent-encodes the '/' of the path.
                    .push(&plan.repository);
                (
                    url,
                    vars::HARMONY_GITLAB_API_URL,
                    format!(
                        "gitlab:{}#PROJECT_ID, the id on the project's overview page",
                        plan.repository
                    ),
                )
            }
        };
        let fail = |reason: String| OpenbaoError::CiLookup {
            repository: plan.repository.clone(),
            url: url.to_string(),
            reason,
            hint: hint.clone(),
            var,
        };
        let http = reqwest::Client::builder()
            .timeout(API_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("harmony-bootstrap")
            .build()
            .map_err(|e| fail(format!("no HTTP client ({e})")))?;
        let mut response = http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                fail(format!(
                    "no answer within {} s ({e})",
                    API_TIMEOUT.as_secs()
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!(
                "HTTP {status} (a private repository answers 404 without credentials)"
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(format!("the answer broke off ({e})")))?
        {
            if body.len() + chunk.len() > API_MAX_BYTES {
                return Err(fail(format!(
                    "the answer is larger than {API_MAX_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let body: Value =
            serde_json::from_slice(&body).map_err(|_| fail("the answer is not JSON".to_owned()))?;
        let id = |v: &Value| v.as_u64().filter(|n| *n > 0);
        match plan.platform {
            CiPlatform::Github => {
                let (Some(repository_id), Some(owner_id)) =
                    (id(&body["id"]), id(&body["owner"]["id"]))
                else {
                    return Err(fail("the answer has no id or owner.id".to_owned()));
                };
                Ok(Looked {
                    ids: CiIds::Github {
                        repository_id,
                        owner_id,
                    },
                    default_branch: body["default_branch"]
                        .as_str()
                        .filter(|b| !b.is_empty() && !b.contains('*'))
                        .map(str::to_owned),
                })
            }
            CiPlatform::Gitlab => {
                let project_id =
                    id(&body["id"]).ok_or_else(|| fail("the answer has no id".to_owned()))?;
                Ok(Looked {
                    ids: CiIds::Gitlab { project_id },
                    default_branch: None,
                })
            }
        }
    }

    fn lookup_error(&self, plan: &RolePlan, url: &Url, reason: &str) -> OpenbaoError {
        OpenbaoError::CiLookup {
            repository: plan.repository.clone(),
            url: url.to_string(),
            reason: reason.to_owned(),
            hint: "the ids in the spec".to_owned(),
            var: match plan.platform {
                CiPlatform::Github => vars::HARMONY_GITHUB_API_URL,
                CiPlatform::Gitlab => vars::HARMONY_GITLAB_API_URL,
            },
        }
    }
}

/// The policy of a CI role: [`HARMONY_CI_POLICY`] without environments declared (`declared`
/// false); with them, one policy per distinct set of environments (a role gets one `harmony-*`
/// policy, as harmony-admin may give), `harmony-ci-base` for the base only and
/// `harmony-ci-<ENV>[.<ENV>...]` otherwise (environment names hold no '.', and `base` is not
/// one, so no two sets share a name).
pub fn ci_policy_name(environments: Option<&[String]>, declared: bool) -> String {
    match (declared, environments) {
        (false, _) => HARMONY_CI_POLICY.to_owned(),
        (true, None) => format!("{HARMONY_CI_POLICY}-base"),
        (true, Some([])) => format!("{HARMONY_CI_POLICY}-base"),
        (true, Some(envs)) => format!("{HARMONY_CI_POLICY}-{}", envs.join(".")),
    }
}

/// The HCL of a CI policy with environments declared: read the base documents and schemas, and
/// the overlays of `environments` only. The overlay folder is denied as a whole and each
/// environment reopened by its more specific path, as the people's base policies do.
pub fn harmony_ci_environments_policy_hcl(environments: &[String]) -> String {
    let name = ci_policy_name(Some(environments), true);
    let what = if environments.is_empty() {
        "the base only".to_owned()
    } else {
        format!("the base and the overlays of {}", environments.join(", "))
    };
    let mut out = format!(
        r#"# {name}: CI jobs read {what} of Harmony's shared configuration; they never change it.

path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = ["read"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{
  capabilities = ["read", "list"]
}}

# Environments are closed unless named below (more specific paths win).
path "{KV_MOUNT}/data/{KV_PREFIX}/{ENV_FOLDER}/*" {{
  capabilities = ["deny"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/{ENV_FOLDER}/*" {{
  capabilities = ["deny"]
}}
"#
    );
    for env in environments {
        out.push_str(&format!(
            r#"
path "{KV_MOUNT}/data/{KV_PREFIX}/{ENV_FOLDER}/{env}/*" {{
  capabilities = ["read"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/{ENV_FOLDER}/{env}/*" {{
  capabilities = ["read", "list"]
}}
"#
        ));
    }
    out
}

/// The HCL of [`HARMONY_CI_POLICY`]: read the team's documents and their versions, nothing else.
pub fn harmony_ci_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_CI_POLICY}: CI jobs read Harmony's shared configuration; they never change it.

path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = ["read"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{
  capabilities = ["read", "list"]
}}
"#
    )
}

/// `bound_claims` as OpenBao reads them back, with single strings as one-element lists.
fn claims_as_lists(v: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            let mut values: Vec<String> = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect(),
                other => vec![other.to_string()],
            };
            values.sort();
            out.insert(k.clone(), values);
        }
    }
    out
}

impl OpenbaoBootstrap {
    /// Converge the CI trust: mount, issuer config, policy, one role per repository.
    /// `declared`: the environments declared on the server (`None`: none, CI reads as before).
    pub(super) async fn ensure_ci(
        &self,
        token: &SecretString,
        ci: &CiOptions,
        declared: Option<&[String]>,
    ) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = Vec::new();
        let Some(first) = ci.trusts.first() else {
            return Ok(changes);
        };
        changes.extend(self.ensure_auth_mount(token, &ci.mount, "jwt").await?);

        let issuer = issuer_string(&first.issuer);
        let config_path = format!("auth/{}/config", ci.mount);
        let current = self.read_data(token, &config_path).await?;
        let config_ok = current.as_ref().is_some_and(|c| {
            c["oidc_discovery_url"].as_str() == Some(issuer.as_str())
                && c["bound_issuer"].as_str() == Some(issuer.as_str())
        });
        if !config_ok {
            self.write_ci(
                token,
                &config_path,
                &json!({"oidc_discovery_url": issuer, "bound_issuer": issuer}),
            )
            .await?;
            changes.push(format!(
                "trusted the CI issuer {issuer} at auth/{}/",
                ci.mount
            ));
        }

        // Checked by `CiOptions::new` already; the fields are public, so checked again.
        let plans = ci.plans()?;
        // Every environment named must be declared, and naming one needs environments.
        for trust in &ci.trusts {
            let Some(envs) = &trust.environments else {
                continue;
            };
            let unknown: Vec<&str> = envs
                .iter()
                .filter(|e| !declared.is_some_and(|d| d.contains(e)))
                .map(String::as_str)
                .collect();
            if !unknown.is_empty() {
                return Err(CiSpecError {
                    spec: trust.to_string(),
                    reason: match declared {
                        None => "it names environments but none are declared on this server; \
                                 bootstrap with --environments first (or together)"
                            .to_owned(),
                        Some(d) => format!(
                            "{} {} not declared (the environments are {}); add {} to \
                             --environments or fix the name",
                            unknown.join(", "),
                            if unknown.len() == 1 { "is" } else { "are" },
                            d.join(", "),
                            if unknown.len() == 1 { "it" } else { "them" },
                        ),
                    },
                }
                .into());
            }
        }
        let mut written: Vec<String> = Vec::new();
        for plan in plans.values() {
            let name = ci_policy_name(plan.environments.as_deref(), declared.is_some());
            if written.contains(&name) {
                continue;
            }
            let wanted = match declared {
                None => harmony_ci_policy_hcl(),
                Some(_) => {
                    harmony_ci_environments_policy_hcl(plan.environments.as_deref().unwrap_or(&[]))
                }
            };
            let policy_path = format!("sys/policies/acl/{name}");
            let current = self.read_data(token, &policy_path).await?;
            if current.as_ref().and_then(|d| d["policy"].as_str()) != Some(wanted.as_str()) {
                self.write_ci(token, &policy_path, &json!({"policy": wanted}))
                    .await?;
                changes.push(format!("wrote policy {name} (read-only)"));
            }
            written.push(name);
        }

        for (name, plan) in plans {
            let policy = ci_policy_name(plan.environments.as_deref(), declared.is_some());
            let needs_api = plan.ids.is_none()
                || (plan.platform == CiPlatform::Github
                    && plan.default_refs
                    && plan.refs.is_some());
            let looked = if needs_api {
                Some(ci.look_up(&plan, &first.issuer).await?)
            } else {
                None
            };
            // Ids from the spec win over the API's (the spec is what the operator checked).
            let Some(ids) = plan
                .ids
                .clone()
                .or_else(|| looked.as_ref().map(|l| l.ids.clone()))
            else {
                continue;
            };
            let default_branch = looked.as_ref().and_then(|l| l.default_branch.as_deref());
            if plan.platform == CiPlatform::Github
                && plan.default_refs
                && plan.refs.is_some()
                && default_branch.is_none()
            {
                return Err(ci.lookup_error(
                    &plan,
                    &ci.github_api,
                    "the answer names no default branch",
                ));
            }
            let path = format!("auth/{}/role/{name}", ci.mount);
            let wanted = ci.role_body(&plan, &ids, default_branch, &policy);
            let current = self.read_data(token, &path).await?;
            let same = current.as_ref().is_some_and(|c| {
                c["role_type"].as_str() == Some("jwt")
                    && same_strings(&c["bound_audiences"], &[ci.audience.as_str()])
                    && claims_as_lists(&c["bound_claims"])
                        == claims_as_lists(&wanted["bound_claims"])
                    && c["user_claim"] == wanted["user_claim"]
                    && same_strings(&c["token_policies"], &[policy.as_str()])
                    && c["token_ttl"].as_u64() == Some(CI_TOKEN_TTL.as_secs())
            });
            if !same {
                self.write_ci(token, &path, &wanted).await?;
                let ids_text = match &ids {
                    CiIds::Github {
                        repository_id,
                        owner_id,
                    } => format!("repository_id {repository_id}, repository_owner_id {owner_id}"),
                    CiIds::Gitlab { project_id } => format!("project_id {project_id}"),
                };
                changes.push(format!(
                    "{} CI role {name} ({} {}: {ids_text}; {}; policy {policy})",
                    if current.is_some() {
                        "updated"
                    } else {
                        "created"
                    },
                    plan.platform.name(),
                    plan.repository,
                    CiOptions::refs_text(&plan, default_branch),
                ));
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(git_ref: &str, ref_type: Option<&'static str>) -> CiRefs {
        CiRefs::Only {
            git_ref: git_ref.to_owned(),
            ref_type,
        }
    }

    #[test]
    fn specs_parse_with_default_and_given_issuers() {
        let t: CiTrust = "github:acme/app".parse().expect("valid");
        assert_eq!(
            (
                t.platform,
                t.issuer.as_str(),
                t.repository.as_str(),
                &t.ids,
                &t.refs
            ),
            (
                CiPlatform::Github,
                "https://token.actions.githubusercontent.com/",
                "acme/app",
                &None,
                &CiRefs::Default
            )
        );
        let t: CiTrust = "github:acme/app@main".parse().expect("valid");
        assert_eq!(t.refs, only("refs/heads/main", Some("branch")));
        let t: CiTrust = "github:acme/app#123/456@*".parse().expect("ids, any ref");
        assert_eq!(
            (t.ids, t.refs),
            (
                Some(CiIds::Github {
                    repository_id: 123,
                    owner_id: 456
                }),
                CiRefs::Any
            )
        );
        let t: CiTrust = "github=http://127.0.0.1:8123:acme/app@refs/tags/v1"
            .parse()
            .expect("issuer with a port");
        assert_eq!(t.issuer.as_str(), "http://127.0.0.1:8123/");
        assert_eq!(t.refs, only("refs/tags/v1", Some("tag")));
        let t: CiTrust = "gitlab=https://git.example.com:group/sub/project#77@main"
            .parse()
            .expect("self-managed GitLab");
        assert_eq!(
            (t.platform, t.repository.as_str(), t.ids, t.refs),
            (
                CiPlatform::Gitlab,
                "group/sub/project",
                Some(CiIds::Gitlab { project_id: 77 }),
                only("main", Some("branch"))
            )
        );
        let t: CiTrust = "gitlab:group/project#77".parse().expect("protected refs");
        assert_eq!(t.refs, CiRefs::Default);
        let t: CiTrust = "gitlab:group/project@refs/tags/v2".parse().expect("a tag");
        assert_eq!(t.refs, only("v2", Some("tag")));
        assert_eq!(t.to_string(), "gitlab:group/project@v2");
    }

    #[test]
    fn bad_specs_say_what_the_form_is() {
        for (spec, why) in [
            ("acme/app", "names no platform"),
            ("bitbucket:acme/app", "unknown platform"),
            ("github:acme", "OWNER/REPO"),
            ("github:acme/app/extra", "OWNER/REPO"),
            ("gitlab:project", "GROUP/PROJECT"),
            ("github:acme/app@", "empty"),
            ("github=ftp://x:acme/app", "http(s)"),
            ("github:acme/a pp", "OWNER/REPO"),
            ("github:acme/app#12", "#REPO_ID/OWNER_ID"),
            ("github:acme/app#x/1@main", "positive number"),
            ("github:acme/app#1/2", "name the ref too"),
            ("gitlab:group/project#0", "positive number"),
            ("github:acme/app@release-*", "not a pattern"),
        ] {
            let err = spec.parse::<CiTrust>().expect_err(spec).to_string();
            assert!(
                err.contains(why) && err.contains("github[=ISSUER]"),
                "{spec}: {err}"
            );
        }
    }

    fn options(specs: &[&str]) -> Result<CiOptions, CiSpecError> {
        let trusts = specs.iter().map(|s| s.parse().expect(s)).collect();
        CiOptions::new(trusts, "http://bao:8200/")
    }

    #[test]
    fn one_role_per_repository_merging_its_refs() {
        let ci = options(&[
            "github:acme/app@main",
            "github:acme/app@refs/tags/v1",
            "github:acme/lib@main",
            "github:acme/lib#5/6@*",
            "github:acme/svc",
        ])
        .expect("one issuer");
        assert_eq!(ci.audience, "http://bao:8200");
        let plans = ci.plans().expect("valid");
        assert_eq!(plans.len(), 3);
        assert_eq!(
            plans["github-acme-app"].refs,
            Some(vec![
                ("refs/heads/main".to_owned(), Some("branch")),
                ("refs/tags/v1".to_owned(), Some("tag"))
            ])
        );
        assert_eq!(plans["github-acme-lib"].refs, None, "@* wins");
        assert_eq!(
            plans["github-acme-lib"].ids,
            Some(CiIds::Github {
                repository_id: 5,
                owner_id: 6
            })
        );
        assert!(plans["github-acme-svc"].default_refs);
    }

    #[test]
    fn role_bodies_bind_immutable_ids_and_refs() {
        let github = CiIds::Github {
            repository_id: 123,
            owner_id: 456,
        };
        let ci = options(&[
            "github:acme/app@main",
            "github:acme/app@refs/tags/v1",
            "github:acme/any@*",
            "github:acme/svc",
        ])
        .expect("valid");
        let plans = ci.plans().expect("valid");
        insta::assert_json_snapshot!(
            "github_named_refs",
            ci.role_body(&plans["github-acme-app"], &github, None, HARMONY_CI_POLICY)
        );
        insta::assert_json_snapshot!(
            "github_every_ref",
            ci.role_body(&plans["github-acme-any"], &github, None, HARMONY_CI_POLICY)
        );
        insta::assert_json_snapshot!(
            "github_default_branch",
            ci.role_body(
                &plans["github-acme-svc"],
                &github,
                Some("trunk"),
                HARMONY_CI_POLICY
            )
        );
        assert_eq!(
            CiOptions::refs_text(&plans["github-acme-svc"], Some("trunk")),
            "the default branch trunk only"
        );

        let gitlab = CiIds::Gitlab { project_id: 77 };
        let ci =
            options(&["gitlab:group/project", "gitlab:group/tagged@refs/tags/v1"]).expect("valid");
        let plans = ci.plans().expect("valid");
        insta::assert_json_snapshot!(
            "gitlab_protected_refs",
            ci.role_body(
                &plans["gitlab-group-project"],
                &gitlab,
                None,
                HARMONY_CI_POLICY
            )
        );
        insta::assert_json_snapshot!(
            "gitlab_tag",
            ci.role_body(
                &plans["gitlab-group-tagged"],
                &gitlab,
                None,
                HARMONY_CI_POLICY
            )
        );
        assert_eq!(
            CiOptions::refs_text(&plans["gitlab-group-project"], None),
            "protected refs only (ref_protected)"
        );
    }

    #[test]
    fn two_repositories_on_one_role_name_are_refused_naming_both() {
        let err = options(&["github:acme/my.app@main", "github:acme/my-app@main"])
            .expect_err("one role name")
            .to_string();
        assert!(
            err.contains("acme/my.app")
                && err.contains("acme/my-app")
                && err.contains("github-acme-my-app"),
            "{err}"
        );
        let err = options(&["github:acme/app#1/2@main", "github:acme/app#1/3@v2"])
            .expect_err("ids differ")
            .to_string();
        assert!(err.contains("ids differ"), "{err}");
        let err = options(&["gitlab:group/project", "gitlab:group/project@main"])
            .expect_err("protected and named")
            .to_string();
        assert!(err.contains("protected refs"), "{err}");
    }

    #[test]
    fn two_issuers_are_refused_with_the_reason() {
        let err = options(&["github:acme/app", "gitlab:group/project"])
            .expect_err("two issuers")
            .to_string();
        assert!(
            err.contains("one issuer") && err.contains("gitlab.com"),
            "{err}"
        );
    }

    #[test]
    fn api_urls_come_from_the_lookup() {
        let ci = options(&["github:acme/app"])
            .expect("valid")
            .with_api_from_lookup(|k| {
                (k == vars::HARMONY_GITHUB_API_URL).then(|| "http://127.0.0.1:9/api".to_owned())
            })
            .expect("valid");
        assert_eq!(ci.github_api.as_str(), "http://127.0.0.1:9/api");
        let err = options(&["github:acme/app"])
            .expect("valid")
            .with_api_from_lookup(|k| {
                (k == vars::HARMONY_GITLAB_API_URL).then(|| "not a url".to_owned())
            })
            .expect_err("bad URL");
        assert!(err.to_string().contains("HARMONY_GITLAB_API_URL"), "{err}");
    }

    #[test]
    fn environments_after_the_ref_name_the_overlays_a_job_reads() {
        let t: CiTrust = "github:acme/app@main=prod"
            .parse()
            .expect("one environment");
        assert_eq!(t.refs, only("refs/heads/main", Some("branch")));
        assert_eq!(t.environments, Some(vec!["prod".to_owned()]));
        assert_eq!(t.to_string(), "github:acme/app@refs/heads/main=prod");
        let t: CiTrust = "github=http://127.0.0.1:8123:acme/app#1/2@*=staging,dev,dev"
            .parse()
            .expect("issuer, ids, every ref, two environments");
        assert_eq!(
            (t.issuer.as_str(), t.refs, t.environments),
            (
                "http://127.0.0.1:8123/",
                CiRefs::Any,
                Some(vec!["dev".to_owned(), "staging".to_owned()])
            )
        );
        let t: CiTrust = "gitlab:group/project=prod".parse().expect("no ref");
        assert_eq!(
            (t.refs, t.environments.as_deref()),
            (CiRefs::Default, Some(&["prod".to_owned()][..]))
        );
        assert_eq!(
            "github:acme/app@main"
                .parse::<CiTrust>()
                .expect("valid")
                .environments,
            None
        );
        for (spec, why) in [
            ("github:acme/app@main=", "empty"),
            ("github:acme/app@main=dev,,prod", "empty"),
            ("github:acme/app@main=Prod", "not a valid name"),
            ("github:acme/app@main=../x", "not a valid name"),
            ("github:acme/app@main=base", "every CI job reads the base"),
        ] {
            let err = spec.parse::<CiTrust>().expect_err(spec).to_string();
            assert!(
                err.contains(why) && err.contains("[=ENV,...]"),
                "{spec}: {err}"
            );
        }
        let err = options(&["github:acme/app@main=prod", "github:acme/app@v1=dev"])
            .expect_err("one role, two sets")
            .to_string();
        assert!(err.contains("different environments"), "{err}");
        let ci =
            options(&["github:acme/app@main=prod", "github:acme/app@v1=prod"]).expect("same set");
        assert_eq!(
            ci.plans().expect("valid")["github-acme-app"].environments,
            Some(vec!["prod".to_owned()])
        );
    }

    #[test]
    fn ci_policies_per_environment_set() {
        let envs = |e: &[&str]| e.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(ci_policy_name(None, false), "harmony-ci");
        assert_eq!(ci_policy_name(Some(&envs(&["prod"])), false), "harmony-ci");
        assert_eq!(ci_policy_name(None, true), "harmony-ci-base");
        assert_eq!(
            ci_policy_name(Some(&envs(&["prod"])), true),
            "harmony-ci-prod"
        );
        assert_eq!(
            ci_policy_name(Some(&envs(&["dev", "staging"])), true),
            "harmony-ci-dev.staging"
        );
        insta::assert_snapshot!("ci_base_only", harmony_ci_environments_policy_hcl(&[]));
        let hcl = harmony_ci_environments_policy_hcl(&envs(&["dev", "staging"]));
        for verb in ["create", "update", "delete", "patch", "sudo"] {
            assert!(!hcl.contains(verb), "{verb} in {hcl}");
        }
        insta::assert_snapshot!("ci_dev_staging", hcl);
    }

    #[test]
    fn ci_policy_is_read_only() {
        let hcl = harmony_ci_policy_hcl();
        assert!(hcl.contains(r#"capabilities = ["read"]"#), "{hcl}");
        for verb in ["create", "update", "delete", "patch", "sudo"] {
            assert!(!hcl.contains(verb), "{verb} in {hcl}");
        }
    }
}
