//! Trust for CI jobs: a JWT auth mount (`jwt-ci`, apart from the people's `jwt`) whose issuer is
//! the CI platform's, one role per repository binding its repository (and ref) claims, and the
//! read-only policy `harmony-ci`. A job then signs in with its own short-lived id_token
//! (`harmony_secret::ci`); no OpenBao token is ever stored in CI settings.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use harmony_secret::ci::{CiPlatform, DEFAULT_CI_AUTH_MOUNT, ci_audience, ci_role_name};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;

use super::{OpenbaoBootstrap, issuer_string, same_strings};
use crate::openbao::OpenbaoError;
use crate::openbao::policy::{KV_MOUNT, KV_PREFIX};

/// The read-only policy CI jobs get.
pub const HARMONY_CI_POLICY: &str = "harmony-ci";
/// GitHub Actions' OIDC issuer.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// GitLab.com's OIDC issuer (a self-managed GitLab is its own issuer: `gitlab=ISSUER:...`).
pub const GITLAB_COM_ISSUER: &str = "https://gitlab.com";
/// TTL of tokens issued to CI jobs: a job's run, not a day.
pub const CI_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// One `--ci` entry: `github[=ISSUER]:OWNER/REPO[@REF]` or `gitlab[=ISSUER]:GROUP/PROJECT[@REF]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiTrust {
    /// The platform.
    pub platform: CiPlatform,
    /// The platform's OIDC issuer.
    pub issuer: Url,
    /// `OWNER/REPO` (GitHub) or `GROUP/PROJECT` (GitLab).
    pub repository: String,
    /// The only ref allowed (GitHub `refs/heads/main`; GitLab `main`); `None`: any ref.
    pub git_ref: Option<String>,
}

/// A `--ci` entry that cannot be understood; the message says what the form is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--ci {spec:?}: {reason}; the form is github[=ISSUER]:OWNER/REPO[@REF] or \
     gitlab[=ISSUER]:GROUP/PROJECT[@REF], e.g. github:acme/app@main"
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
        let (repository, git_ref) = match target.split_once('@') {
            Some((repo, r)) if !r.trim().is_empty() => (repo, Some(r.trim())),
            Some(_) => return Err(fail("the ref after '@' is empty")),
            None => (target, None),
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
        // GitHub's `ref` claim is the full ref; a bare branch name means that branch. GitLab's
        // `ref` claim is the bare name.
        let git_ref = git_ref.map(|r| match platform {
            CiPlatform::Github if !r.starts_with("refs/") => format!("refs/heads/{r}"),
            _ => r.to_owned(),
        });
        Ok(Self {
            platform,
            issuer,
            repository: repository.to_owned(),
            git_ref,
        })
    }
}

impl fmt::Display for CiTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform.name(), self.repository)?;
        if let Some(r) = &self.git_ref {
            write!(f, "@{r}")?;
        }
        Ok(())
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
}

impl CiOptions {
    /// Options for `trusts`, audience = `openbao_url` (without a trailing slash). Every entry
    /// must name the same issuer: one JWT mount trusts one issuer.
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
        Ok(Self {
            trusts,
            audience: ci_audience(openbao_url),
            mount: DEFAULT_CI_AUTH_MOUNT.to_owned(),
        })
    }

    /// Role name → (platform, repository, refs allowed; empty: any).
    fn roles(&self) -> BTreeMap<String, (CiPlatform, String, Vec<String>)> {
        let mut roles: BTreeMap<String, (CiPlatform, String, Vec<String>)> = BTreeMap::new();
        let mut any_ref = Vec::new();
        for t in &self.trusts {
            let name = ci_role_name(t.platform, &t.repository);
            let entry = roles
                .entry(name.clone())
                .or_insert_with(|| (t.platform, t.repository.clone(), Vec::new()));
            match &t.git_ref {
                Some(r) if !entry.2.contains(r) => entry.2.push(r.clone()),
                Some(_) => {}
                None => any_ref.push(name),
            }
        }
        // An entry without a ref allows every ref of that repository.
        for name in any_ref {
            if let Some(entry) = roles.get_mut(&name) {
                entry.2.clear();
            }
        }
        roles
    }

    /// The role body OpenBao stores for `name`.
    fn role_body(&self, platform: CiPlatform, repository: &str, refs: &[String]) -> Value {
        let mut claims = serde_json::Map::new();
        claims.insert(platform.repository_claim().to_owned(), json!([repository]));
        if !refs.is_empty() {
            claims.insert("ref".to_owned(), json!(refs));
        }
        json!({
            "role_type": "jwt",
            "bound_audiences": [self.audience],
            "bound_claims_type": "string",
            "bound_claims": claims,
            "user_claim": platform.user_claim(),
            // A string, as harmony-admin may send it (one harmony-* policy).
            "token_policies": HARMONY_CI_POLICY,
            "token_ttl": CI_TOKEN_TTL.as_secs(),
            "token_max_ttl": CI_TOKEN_TTL.as_secs(),
        })
    }
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
    pub(super) async fn ensure_ci(
        &self,
        token: &SecretString,
        ci: &CiOptions,
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

        let policy_path = format!("sys/policies/acl/{HARMONY_CI_POLICY}");
        let wanted = harmony_ci_policy_hcl();
        let current = self.read_data(token, &policy_path).await?;
        if current.as_ref().and_then(|d| d["policy"].as_str()) != Some(wanted.as_str()) {
            self.write_ci(token, &policy_path, &json!({"policy": wanted}))
                .await?;
            changes.push(format!("wrote policy {HARMONY_CI_POLICY} (read-only)"));
        }

        for (name, (platform, repository, refs)) in ci.roles() {
            let path = format!("auth/{}/role/{name}", ci.mount);
            let wanted = ci.role_body(platform, &repository, &refs);
            let current = self.read_data(token, &path).await?;
            let same = current.as_ref().is_some_and(|c| {
                c["role_type"].as_str() == Some("jwt")
                    && same_strings(&c["bound_audiences"], &[ci.audience.as_str()])
                    && claims_as_lists(&c["bound_claims"])
                        == claims_as_lists(&wanted["bound_claims"])
                    && c["user_claim"] == wanted["user_claim"]
                    && same_strings(&c["token_policies"], &[HARMONY_CI_POLICY])
                    && c["token_ttl"].as_u64() == Some(CI_TOKEN_TTL.as_secs())
            });
            if !same {
                self.write_ci(token, &path, &wanted).await?;
                let refs = if refs.is_empty() {
                    "any ref".to_owned()
                } else {
                    refs.join(", ")
                };
                changes.push(format!(
                    "{} CI role {name} ({} {repository}, {refs})",
                    if current.is_some() {
                        "updated"
                    } else {
                        "created"
                    },
                    platform.name()
                ));
            }
        }
        Ok(changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_default_and_given_issuers() {
        let t: CiTrust = "github:acme/app".parse().expect("valid");
        assert_eq!(
            (
                t.platform,
                t.issuer.as_str(),
                t.repository.as_str(),
                t.git_ref
            ),
            (
                CiPlatform::Github,
                "https://token.actions.githubusercontent.com/",
                "acme/app",
                None
            )
        );
        let t: CiTrust = "github:acme/app@main".parse().expect("valid");
        assert_eq!(t.git_ref.as_deref(), Some("refs/heads/main"));
        let t: CiTrust = "github=http://127.0.0.1:8123:acme/app@refs/tags/v1"
            .parse()
            .expect("issuer with a port");
        assert_eq!(t.issuer.as_str(), "http://127.0.0.1:8123/");
        assert_eq!(t.git_ref.as_deref(), Some("refs/tags/v1"));
        let t: CiTrust = "gitlab=https://git.example.com:group/sub/project@main"
            .parse()
            .expect("self-managed GitLab");
        assert_eq!(
            (t.platform, t.repository.as_str(), t.git_ref.as_deref()),
            (CiPlatform::Gitlab, "group/sub/project", Some("main"))
        );
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
        ] {
            let err = spec.parse::<CiTrust>().expect_err(spec).to_string();
            assert!(
                err.contains(why) && err.contains("github[=ISSUER]"),
                "{spec}: {err}"
            );
        }
    }

    #[test]
    fn one_role_per_repository_and_a_refless_entry_allows_every_ref() {
        let trusts = [
            "github:acme/app@main",
            "github:acme/app@release",
            "github:acme/lib@main",
            "github:acme/lib",
        ]
        .iter()
        .map(|s| s.parse().expect("valid"))
        .collect();
        let ci = CiOptions::new(trusts, "http://bao:8200/").expect("one issuer");
        assert_eq!(ci.audience, "http://bao:8200");
        let roles = ci.roles();
        assert_eq!(roles.len(), 2);
        assert_eq!(
            roles["github-acme-app"].2,
            ["refs/heads/main", "refs/heads/release"]
        );
        assert!(roles["github-acme-lib"].2.is_empty());
        let body = ci.role_body(CiPlatform::Github, "acme/app", &roles["github-acme-app"].2);
        assert_eq!(
            body["bound_claims"],
            json!({"repository": ["acme/app"], "ref": ["refs/heads/main", "refs/heads/release"]})
        );
        assert_eq!(body["token_policies"], json!(["harmony-ci"]));
    }

    #[test]
    fn two_issuers_are_refused_with_the_reason() {
        let trusts = vec![
            "github:acme/app".parse().expect("valid"),
            "gitlab:group/project".parse().expect("valid"),
        ];
        let err = CiOptions::new(trusts, "http://bao")
            .expect_err("two issuers")
            .to_string();
        assert!(
            err.contains("one issuer") && err.contains("gitlab.com"),
            "{err}"
        );
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
