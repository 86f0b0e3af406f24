//! Environments and access by role: one policy per environment and access level, the base's
//! policies, and one CEL role on the people's JWT mount that turns the ID token's claims into
//! policies in a single sign-in.
//!
//! Who belongs to a role comes from the identity provider: a `groups` list (most providers) or
//! Zitadel's project-roles claim, which is a *map* (`urn:zitadel:iam:org:project:roles: {ROLE:
//! {ORG_ID: DOMAIN}}`) that OpenBao cannot use as a classic role's `groups_claim`. OpenBao
//! 2.7's CEL roles (`auth/<mount>/cel/role/<name>`, login at `auth/<mount>/cel/login`) read
//! either shape. The CEL role takes the classic role's name (`harmony-developer` by default),
//! and the classic role is removed: it gave every signed-in person every environment. The
//! sign-in side (`harmony_secret::oidc::exchange_id_token`) tries the classic login and, when
//! OpenBao says the role does not exist there, the CEL login with the same role name, so
//! clients need no new setting.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{JWT_MOUNT, JwtAuthOptions, OpenbaoBootstrap, REQUEST_TIMEOUT};
use crate::OpenbaoError;
use crate::policy::{
    AccessLevel, HARMONY_BASE_READ_POLICY, HARMONY_BASE_WRITE_POLICY, base_policy_hcl,
    environment_policy_hcl, environment_policy_name,
};

/// Default name of the developers' role (Zitadel project role, `groups` entry).
pub const DEFAULT_DEVELOPER_ROLE: &str = "harmony-developer";
/// Default name of the operators' role.
pub const DEFAULT_OPS_ROLE: &str = "harmony-ops";
/// The Zitadel claim holding the project roles, a map of role → organisations.
pub const ZITADEL_ROLES_CLAIM: &str = "urn:zitadel:iam:org:project:roles";
/// Where (under the KV prefix) the bootstrap records the table for clients: readable by
/// everyone signed in (it lies under the base), written only with the base's write rights. It
/// is information for people; the policies are what OpenBao enforces.
pub const ACCESS_DOCUMENT: &str = "_access";
/// Environments the developers' role gets no access to by default.
const PRODUCTION_NAMES: [&str; 2] = ["prod", "production"];

/// What one role may do: the base (always at least read) and each environment (absent: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAccess {
    /// The base documents and the schemas.
    pub base: AccessLevel,
    /// Environment → level.
    pub environments: BTreeMap<String, AccessLevel>,
}

impl RoleAccess {
    /// The policies a member of this role gets.
    pub fn policies(&self) -> Vec<String> {
        let mut out = vec![HARMONY_BASE_READ_POLICY.to_owned()];
        if self.base == AccessLevel::Write {
            out.push(HARMONY_BASE_WRITE_POLICY.to_owned());
        }
        out.extend(
            self.environments
                .iter()
                .map(|(env, level)| environment_policy_name(env, *level)),
        );
        out
    }
}

/// The environments and who may do what in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTable {
    /// The environments, in the order they were declared.
    pub environments: Vec<String>,
    /// Role name → access, in the order the CEL program checks them.
    pub roles: BTreeMap<String, RoleAccess>,
    /// Which role is the developers' (`--developer-role`): the userpass demo user gets its
    /// access ([`HARMONY_USERPASS_POLICY`]).
    pub developer_role: String,
}

/// The one policy of the userpass demo user when environments are declared: the developers'
/// role's policies in one (the admin token may give a user one `harmony-*` policy only), so
/// that user reads and writes what a developer signed in through SSO does, no more.
pub const HARMONY_USERPASS_POLICY: &str = "harmony-userpass";

/// A `--environments` or `--access` value that cannot be used; the message says the form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AccessSpecError(String);

pub(super) fn check_name(what: &str, name: &str) -> Result<(), AccessSpecError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(AccessSpecError(format!(
            "{what} {name:?} is not a valid name: use up to 32 lowercase letters, digits, '-' and \
             '_', starting with a letter (e.g. prod)"
        )))
    }
}

fn check_role_name(name: &str) -> Result<(), AccessSpecError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AccessSpecError(format!(
            "role name {name:?} is not valid: use letters, digits, '-', '_' and '.' (e.g. \
             harmony-ops)"
        )))
    }
}

impl AccessTable {
    /// The default table for `environments`: the developers' role reads the base and writes
    /// every environment except `prod`/`production` (which it cannot read); the operators'
    /// role writes the base and every environment. `overrides` (`--access`) replace a role's
    /// row: `ROLE=ENV:LEVEL,...` where ROLE is `developer`, `ops` or any role name, ENV an
    /// environment or `base`, LEVEL `read`, `write` or `none`.
    pub fn new(
        environments: &[String],
        developer_role: &str,
        ops_role: &str,
        overrides: &[String],
    ) -> Result<Self, AccessSpecError> {
        let mut declared: Vec<String> = Vec::new();
        for env in environments {
            check_name("environment", env)?;
            if env == "base" {
                return Err(AccessSpecError(
                    "\"base\" names the shared base document, not an environment; pick another \
                     name"
                        .to_owned(),
                ));
            }
            if !declared.contains(env) {
                declared.push(env.clone());
            }
        }
        if declared.is_empty() {
            return Err(AccessSpecError(
                "--environments names no environment (e.g. --environments dev,staging,prod)"
                    .to_owned(),
            ));
        }
        check_role_name(developer_role)?;
        check_role_name(ops_role)?;
        if developer_role == ops_role {
            return Err(AccessSpecError(format!(
                "the developers' and operators' roles are both {developer_role:?}; give them \
                 different names"
            )));
        }
        let mut roles = BTreeMap::new();
        roles.insert(
            developer_role.to_owned(),
            RoleAccess {
                base: AccessLevel::Read,
                environments: declared
                    .iter()
                    .filter(|e| !PRODUCTION_NAMES.contains(&e.as_str()))
                    .map(|e| (e.clone(), AccessLevel::Write))
                    .collect(),
            },
        );
        roles.insert(
            ops_role.to_owned(),
            RoleAccess {
                base: AccessLevel::Write,
                environments: declared
                    .iter()
                    .map(|e| (e.clone(), AccessLevel::Write))
                    .collect(),
            },
        );
        let mut overridden = BTreeSet::new();
        for spec in overrides {
            let (role, entries) = spec.split_once('=').ok_or_else(|| {
                AccessSpecError(format!(
                    "--access {spec:?} is not ROLE=ENV:LEVEL,... (e.g. \
                     developer=dev:write,staging:read)"
                ))
            })?;
            let role = match role.trim() {
                "developer" => developer_role.to_owned(),
                "ops" => ops_role.to_owned(),
                other => {
                    check_role_name(other)?;
                    other.to_owned()
                }
            };
            if !overridden.insert(role.clone()) {
                return Err(AccessSpecError(format!(
                    "--access names the role {role} twice; give all of its environments in one \
                     entry"
                )));
            }
            let mut access = RoleAccess {
                base: AccessLevel::Read,
                environments: BTreeMap::new(),
            };
            for entry in entries.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let (env, level) = entry.split_once(':').ok_or_else(|| {
                    AccessSpecError(format!(
                        "--access {spec:?}: {entry:?} is not ENV:LEVEL (e.g. staging:read)"
                    ))
                })?;
                let level = match level.trim() {
                    "read" => Some(AccessLevel::Read),
                    "write" => Some(AccessLevel::Write),
                    "none" => None,
                    other => {
                        return Err(AccessSpecError(format!(
                            "--access {spec:?}: level {other:?} is not read, write or none"
                        )));
                    }
                };
                match (env.trim(), level) {
                    ("base", Some(level)) => access.base = level,
                    ("base", None) => {
                        return Err(AccessSpecError(format!(
                            "--access {spec:?}: everyone signed in reads the base; use base:read \
                             or base:write"
                        )));
                    }
                    (env, level) if declared.iter().any(|d| d == env) => {
                        if let Some(level) = level {
                            access.environments.insert(env.to_owned(), level);
                        }
                    }
                    (env, _) => {
                        return Err(AccessSpecError(format!(
                            "--access {spec:?}: {env:?} is not one of --environments {}",
                            declared.join(",")
                        )));
                    }
                }
            }
            roles.insert(role, access);
        }
        Ok(Self {
            environments: declared,
            roles,
            developer_role: developer_role.to_owned(),
        })
    }

    /// The HCL of [`HARMONY_USERPASS_POLICY`]: every policy of the developers' role, one after
    /// the other (OpenBao merges the stanzas of one path).
    pub fn userpass_policy_hcl(&self) -> String {
        let all = self.policies();
        let wanted = self
            .roles
            .get(&self.developer_role)
            .map(RoleAccess::policies)
            .unwrap_or_else(|| vec![HARMONY_BASE_READ_POLICY.to_owned()]);
        let mut out = format!(
            "# {HARMONY_USERPASS_POLICY}: the userpass demo user gets the access of the role {}: {}.\n",
            self.developer_role,
            wanted.join(", ")
        );
        for name in &wanted {
            if let Some((_, hcl)) = all.iter().find(|(n, _)| n == name) {
                out.push('\n');
                out.push_str(hcl);
            }
        }
        out
    }

    /// Every policy name the table uses, with its HCL text.
    pub fn policies(&self) -> Vec<(String, String)> {
        let mut out = vec![
            (
                HARMONY_BASE_READ_POLICY.to_owned(),
                base_policy_hcl(AccessLevel::Read),
            ),
            (
                HARMONY_BASE_WRITE_POLICY.to_owned(),
                base_policy_hcl(AccessLevel::Write),
            ),
        ];
        for env in &self.environments {
            for level in [AccessLevel::Read, AccessLevel::Write] {
                out.push((
                    environment_policy_name(env, level),
                    environment_policy_hcl(env, level),
                ));
            }
        }
        out
    }

    /// The roles (and their policies) a set of role memberships gives.
    pub fn policies_for(&self, memberships: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (role, access) in &self.roles {
            if memberships.contains(&role.as_str()) {
                for p in access.policies() {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// The CEL program of the sign-in role: the memberships from a `groups` list and from
    /// Zitadel's roles map (its keys), every matching role's policies, and a refusal naming
    /// the roles when none matches. `bound_claims` must all match (a string claim equal to the
    /// value, or a list claim containing it).
    pub fn cel_program(&self, bound_claims: &BTreeMap<String, String>) -> Value {
        let roles_claim = cel_string(ZITADEL_ROLES_CLAIM);
        let memberships = format!(
            "(('groups' in claims) ? claims.groups : []) + \
             ((({roles_claim}) in claims) ? claims[{roles_claim}].map(r, r) : [])"
        );
        let member = |role: &str| format!("({} in ({memberships}))", cel_string(role));
        let mut policies = vec![format!("[{}]", cel_string(HARMONY_BASE_READ_POLICY))];
        for (role, access) in &self.roles {
            let list: Vec<String> = access
                .policies()
                .iter()
                .filter(|p| p.as_str() != HARMONY_BASE_READ_POLICY)
                .map(|p| cel_string(p))
                .collect();
            policies.push(format!("({} ? [{}] : [])", member(role), list.join(", ")));
        }
        let any_role: Vec<String> = self.roles.keys().map(|r| member(r)).collect();
        let mut conditions = vec![format!("({})", any_role.join(" || "))];
        for (claim, value) in bound_claims {
            let (c, v) = (cel_string(claim), cel_string(value));
            conditions.push(format!(
                "(({c} in claims) && (type(claims[{c}]) == list ? {v} in claims[{c}] : claims[{c}] == {v}))"
            ));
        }
        let refusal = cel_string(&format!(
            "this account is in none of the roles {} (the ID token's groups claim or Zitadel \
             project roles), or lacks a required claim; ask an administrator for a role",
            self.roles.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        let expression = format!(
            "({}) ? pb.Auth{{display_name: ('email' in claims) ? claims.email : claims.sub, \
             alias: logical.Alias{{name: claims.sub}}, policies: {}}} : {refusal}",
            conditions.join(" && "),
            policies.join(" + ")
        );
        json!({ "expression": expression })
    }

    /// The table as the bootstrap records it for clients (`harmony env list`) at
    /// [`ACCESS_DOCUMENT`]: environments in order, each role's base and environment levels.
    pub fn to_json(&self) -> Value {
        let roles: serde_json::Map<String, Value> = self
            .roles
            .iter()
            .map(|(role, a)| {
                let envs: serde_json::Map<String, Value> = a
                    .environments
                    .iter()
                    .map(|(e, l)| (e.clone(), Value::String(l.as_str().to_owned())))
                    .collect();
                (
                    role.clone(),
                    json!({"base": a.base.as_str(), "environments": envs}),
                )
            })
            .collect();
        json!({
            "environments": self.environments,
            "roles": roles,
            "developer_role": self.developer_role,
        })
    }

    /// The table back from its record at [`ACCESS_DOCUMENT`] (what [`Self::to_json`] wrote);
    /// `None` when the record names no environment. Levels other than `read`/`write` are
    /// none; names that are not valid are left out (the record is information, not policy).
    pub fn from_record(record: &Value) -> Option<Self> {
        let level = |v: &Value| match v.as_str() {
            Some("read") => Some(AccessLevel::Read),
            Some("write") => Some(AccessLevel::Write),
            _ => None,
        };
        let environments: Vec<String> = record["environments"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .filter(|e| check_name("environment", e).is_ok())
            .map(str::to_owned)
            .collect();
        if environments.is_empty() {
            return None;
        }
        let roles = record["roles"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(name, _)| check_role_name(name).is_ok())
            .map(|(name, row)| {
                let access = RoleAccess {
                    base: level(&row["base"]).unwrap_or(AccessLevel::Read),
                    environments: environments
                        .iter()
                        .filter_map(|e| {
                            level(&row["environments"][e.as_str()]).map(|l| (e.clone(), l))
                        })
                        .collect(),
                };
                (name.clone(), access)
            })
            .collect();
        let developer_role = record["developer_role"]
            .as_str()
            .filter(|r| check_role_name(r).is_ok())
            .unwrap_or(DEFAULT_DEVELOPER_ROLE)
            .to_owned();
        Some(Self {
            environments,
            roles,
            developer_role,
        })
    }

    /// The table people read in the bootstrap summary and `harmony status`: one row per role,
    /// one column per environment (and the base), each cell `read`, `write` or `none`.
    pub fn render(&self) -> String {
        let mut header = vec!["ROLE".to_owned(), "base".to_owned()];
        header.extend(self.environments.iter().cloned());
        let mut rows = vec![header];
        for (role, access) in &self.roles {
            let mut row = vec![role.clone(), access.base.as_str().to_owned()];
            for env in &self.environments {
                row.push(
                    access
                        .environments
                        .get(env)
                        .map_or("none", |l| l.as_str())
                        .to_owned(),
                );
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// Which roles allow `level` on `env` (`None`: the base), for refusal messages.
    pub fn roles_allowing(&self, env: Option<&str>, level: AccessLevel) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, a)| match env {
                None => a.base >= level,
                Some(env) => a.environments.get(env).is_some_and(|l| *l >= level),
            })
            .map(|(r, _)| r.clone())
            .collect()
    }
}

impl fmt::Display for AccessTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// A CEL string literal (JSON's escapes are a subset of CEL's).
fn cel_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The CEL role's path for `role`.
pub(super) fn cel_role_path(role: &str) -> String {
    format!("auth/{JWT_MOUNT}/cel/role/{role}")
}

impl OpenbaoBootstrap {
    /// The policies of `table`, and (with JWT auth) the CEL sign-in role in place of the
    /// classic one. Each write only when it differs.
    pub(super) async fn ensure_environments(
        &self,
        token: &SecretString,
        table: &AccessTable,
        jwt: Option<&JwtAuthOptions>,
    ) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = Vec::new();
        for (name, wanted) in table.policies() {
            changes.extend(self.ensure_policy(token, &name, wanted).await?);
        }
        let path = format!(
            "{}/data/{}/{ACCESS_DOCUMENT}",
            crate::policy::KV_MOUNT,
            crate::policy::KV_PREFIX
        );
        let wanted = table.to_json();
        let current = self.read_data(token, &path).await?;
        if current.as_ref().map(|c| &c["data"]) != Some(&wanted) {
            self.write(
                Method::POST,
                &path,
                Some(token),
                &json!({"data": wanted}),
                REQUEST_TIMEOUT,
            )
            .await?;
            changes.push(format!(
                "recorded the environments and roles at {}/{}/{ACCESS_DOCUMENT}",
                crate::policy::KV_MOUNT,
                crate::policy::KV_PREFIX
            ));
        }
        let Some(jwt) = jwt else {
            return Ok(changes);
        };
        let path = cel_role_path(&jwt.role);
        let wanted = json!({
            "bound_audiences": jwt.bound_audiences,
            "cel_program": table.cel_program(&jwt.bound_claims),
        });
        let current = self.read_data(token, &path).await?;
        let same = current.as_ref().is_some_and(|c| {
            c["cel_program"]["expression"] == wanted["cel_program"]["expression"]
                && super::same_strings(
                    &c["bound_audiences"],
                    &jwt.bound_audiences
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
        });
        if !same {
            self.write(Method::POST, &path, Some(token), &wanted, REQUEST_TIMEOUT)
                .await?;
            changes.push(format!(
                "wrote the CEL sign-in role {} (policies from the groups claim or Zitadel's \
                 project roles)",
                jwt.role
            ));
        }
        // A CEL role sets no token TTL: its tokens get the mount's default, which is the
        // server's (32 days) unless tuned. Give them the classic role's TTL.
        let tune = format!("sys/auth/{JWT_MOUNT}/tune");
        let ttl = jwt.token_ttl.as_secs();
        let current = self.read_data(token, &tune).await?;
        if current
            .as_ref()
            .and_then(|c| c["default_lease_ttl"].as_u64())
            != Some(ttl)
        {
            self.write(
                Method::POST,
                &tune,
                Some(token),
                &json!({"default_lease_ttl": ttl}),
                REQUEST_TIMEOUT,
            )
            .await?;
            changes.push(format!(
                "set the default token TTL of auth/{JWT_MOUNT}/ to {ttl} s (CEL sign-ins)"
            ));
        }
        // The classic role of the same name gave every signed-in person every environment.
        let classic = format!("auth/{JWT_MOUNT}/role/{}", jwt.role);
        if self.read_data(token, &classic).await?.is_some() {
            self.write(
                Method::DELETE,
                &classic,
                Some(token),
                &json!({}),
                REQUEST_TIMEOUT,
            )
            .await?;
            changes.push(format!(
                "removed the classic JWT role {} (the CEL role of that name replaces it)",
                jwt.role
            ));
        }
        Ok(changes)
    }

    /// The environments an earlier bootstrap recorded at [`ACCESS_DOCUMENT`] (`None`: none).
    pub(super) async fn declared_environments(
        &self,
        token: &SecretString,
    ) -> Result<Option<Vec<String>>, OpenbaoError> {
        let path = format!(
            "{}/data/{}/{ACCESS_DOCUMENT}",
            crate::policy::KV_MOUNT,
            crate::policy::KV_PREFIX
        );
        let Some(current) = self.read_data(token, &path).await? else {
            return Ok(None);
        };
        let envs: Vec<String> = current["data"]["environments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .filter(|e| check_name("environment", e).is_ok())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Ok((!envs.is_empty()).then_some(envs))
    }

    /// The table recorded at [`ACCESS_DOCUMENT`] (by this run or an earlier one); `None`
    /// without environments.
    pub(super) async fn recorded_access(
        &self,
        token: &SecretString,
    ) -> Result<Option<AccessTable>, OpenbaoError> {
        let path = format!(
            "{}/data/{}/{ACCESS_DOCUMENT}",
            crate::policy::KV_MOUNT,
            crate::policy::KV_PREFIX
        );
        Ok(self
            .read_data(token, &path)
            .await?
            .and_then(|current| AccessTable::from_record(&current["data"])))
    }

    /// Whether the sign-in role is a CEL role on this server (environments were bootstrapped).
    pub(super) async fn cel_role_exists(
        &self,
        token: &SecretString,
        role: &str,
    ) -> Result<bool, OpenbaoError> {
        Ok(self.read_data(token, &cel_role_path(role)).await?.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back_as_the_table_it_was_written_from() {
        let t = AccessTable::new(
            &envs(),
            DEFAULT_DEVELOPER_ROLE,
            DEFAULT_OPS_ROLE,
            &["qa=staging:read".to_owned()],
        )
        .expect("table");
        assert_eq!(AccessTable::from_record(&t.to_json()), Some(t));
        assert_eq!(AccessTable::from_record(&json!({})), None);
        assert_eq!(AccessTable::from_record(&json!({"environments": []})), None);
    }

    fn envs() -> Vec<String> {
        ["dev", "staging", "prod"].map(String::from).to_vec()
    }

    #[test]
    fn defaults_keep_developers_out_of_prod_and_ops_everywhere() {
        let t = AccessTable::new(&envs(), DEFAULT_DEVELOPER_ROLE, DEFAULT_OPS_ROLE, &[])
            .expect("valid");
        insta::assert_snapshot!(t.render());
        assert_eq!(
            t.policies_for(&[DEFAULT_DEVELOPER_ROLE]),
            [
                "harmony-base-read",
                "harmony-env-dev-write",
                "harmony-env-staging-write"
            ]
        );
        assert_eq!(
            t.roles_allowing(Some("prod"), AccessLevel::Write),
            [DEFAULT_OPS_ROLE]
        );
        assert_eq!(
            t.roles_allowing(None, AccessLevel::Write),
            [DEFAULT_OPS_ROLE]
        );
    }

    #[test]
    fn access_overrides_replace_a_row_and_bad_specs_say_the_form() {
        let t = AccessTable::new(
            &envs(),
            "devs",
            "ops-team",
            &["developer=dev:write,staging:read".to_owned()],
        )
        .expect("valid");
        let dev = &t.roles["devs"];
        assert_eq!(dev.environments.get("staging"), Some(&AccessLevel::Read));
        assert_eq!(dev.environments.get("prod"), None);
        assert!(t.roles.contains_key("ops-team"));
        for (bad, why) in [
            ("developer=qa:write", "not one of --environments"),
            ("developer=dev:admin", "not read, write or none"),
            ("developer", "ROLE=ENV:LEVEL"),
            ("developer=base:none", "everyone signed in reads the base"),
        ] {
            let err = AccessTable::new(&envs(), "d", "o", &[bad.to_owned()])
                .expect_err(bad)
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(AccessTable::new(&["Prod".to_owned()], "d", "o", &[]).is_err());
        assert!(AccessTable::new(&["../x".to_owned()], "d", "o", &[]).is_err());
        assert!(AccessTable::new(&[], "d", "o", &[]).is_err());
        assert!(AccessTable::new(&envs(), "same", "same", &[]).is_err());
    }

    #[test]
    fn cel_program_snapshot() {
        let t = AccessTable::new(&envs(), DEFAULT_DEVELOPER_ROLE, DEFAULT_OPS_ROLE, &[])
            .expect("valid");
        let mut bound = BTreeMap::new();
        bound.insert("org".to_owned(), "acme \"x\"".to_owned());
        insta::assert_snapshot!(
            t.cel_program(&bound)["expression"]
                .as_str()
                .expect("a string")
        );
    }
}
