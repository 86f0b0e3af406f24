//! The ACL policies: `harmony-dev` (what a teammate signed in through SSO or userpass may do
//! without environments) and, with environments, one policy per environment and access level
//! plus the base's.
//!
//! Least privilege: Harmony's documents live under `secret/harmony/…` in the KV v2 engine, so the
//! policy grants document operations on `secret/data/harmony/*` and reading/listing versions on
//! `secret/metadata/harmony/*` (including deleting a document with its versions, which
//! `SecretStore::delete` needs) — nothing on other KV paths, no `sudo`, no `sys/`, no `destroy`.
//!
//! `scan` (KV v2's recursive listing, OpenBao 2.7) is granted by `harmony-dev` only, where a
//! teammate lists every folder anyway. The environment policies leave it out: OpenBao authorises
//! a scan on the folder scanned alone, so a developer allowed to scan `<prefix>/` would see the
//! names under `_env/prod/` that the base policies' deny hides from `LIST` (verified on 2.7.2);
//! `config list` then lists folder by folder.

/// Name of the policy.
pub const HARMONY_DEV_POLICY: &str = "harmony-dev";

/// The KV v2 mount Harmony's documents live in (without the trailing slash).
pub const KV_MOUNT: &str = "secret";

/// The path prefix inside the KV mount.
pub const KV_PREFIX: &str = "harmony";

/// The HCL text of [`HARMONY_DEV_POLICY`].
pub fn harmony_dev_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_DEV_POLICY}: read and write Harmony's shared configuration, nothing else.

# Documents: read, check-and-set writes, patches, soft delete of the latest version.
path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = ["create", "read", "update", "patch", "delete"]
}}

# Versions, listing (`scan`: the whole tree in one request, `config list`), and deleting a
# document with all its versions (SecretStore::delete).
path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{
  capabilities = ["read", "list", "scan", "delete"]
}}
{history}"#,
        history = history_hcl(true),
    )
}

/// The folder (under [`KV_PREFIX`]) holding the author records of versions:
/// `_history/<ENTITY_ID>/<LAYER_PATH>/<VERSION>` (`harmony_config::history::HISTORY_FOLDER`).
/// The entity id is the first segment so that one templated policy path,
/// `_history/{{identity.entity.id}}/*`, lets a token create records under its own entity only.
pub const HISTORY_FOLDER: &str = "_history";

/// The policy stanzas for the author records: everyone the policy is for reads and lists them;
/// a token creates records (never updates or deletes them) only under its own entity id. These
/// paths are more specific than `<prefix>/*`, so they win over it in every policy of the token.
fn history_hcl(create: bool) -> String {
    let own = if create {
        format!(
            r#"
# Author records of the versions this token writes: create only, and only under its own entity.
path "{KV_MOUNT}/data/{KV_PREFIX}/{HISTORY_FOLDER}/{{{{identity.entity.id}}}}/*" {{
  capabilities = ["create", "read"]
}}
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
# How many versions the KV mount keeps, so history can say when older ones were pruned.
path "{KV_MOUNT}/config" {{
  capabilities = ["read"]
}}

# Author records: read and list; nobody updates or deletes one (no record names another entity).
path "{KV_MOUNT}/data/{KV_PREFIX}/{HISTORY_FOLDER}/*" {{
  capabilities = ["read"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/{HISTORY_FOLDER}/*" {{
  capabilities = ["read", "list"]
}}
{own}"#
    )
}

/// The folder (under [`KV_PREFIX`]) holding the environment overlays: `_env/<ENV>/<KEY>`
/// (`harmony_config::layers::ENV_FOLDER`).
pub const ENV_FOLDER: &str = "_env";

/// Policy: read the base documents and the schemas (everyone signed in, with environments).
pub const HARMONY_BASE_READ_POLICY: &str = "harmony-base-read";
/// Policy: write the base documents and the schemas (the base feeds every environment).
pub const HARMONY_BASE_WRITE_POLICY: &str = "harmony-base-write";

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessLevel {
    /// Read documents and their versions.
    Read,
    /// Read, write with check-and-set, roll back, delete.
    Write,
}

impl AccessLevel {
    /// `read` or `write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// The name of the policy granting `level` on environment `env`: `harmony-env-<ENV>-<LEVEL>`.
pub fn environment_policy_name(env: &str, level: AccessLevel) -> String {
    format!("harmony-env-{env}-{}", level.as_str())
}

fn capabilities(level: AccessLevel) -> (&'static str, &'static str) {
    match level {
        AccessLevel::Read => (r#"["read"]"#, r#"["read", "list"]"#),
        AccessLevel::Write => (
            r#"["create", "read", "update", "patch", "delete"]"#,
            r#"["read", "list", "delete"]"#,
        ),
    }
}

/// The HCL text of an environment's policy: `level` on its overlays, `_env/<ENV>/*`, nothing
/// else.
pub fn environment_policy_hcl(env: &str, level: AccessLevel) -> String {
    let name = environment_policy_name(env, level);
    let (data, metadata) = capabilities(level);
    format!(
        r#"# {name}: {level} the {env} overlays of Harmony's configs, nothing else.

path "{KV_MOUNT}/data/{KV_PREFIX}/{ENV_FOLDER}/{env}/*" {{
  capabilities = {data}
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/{ENV_FOLDER}/{env}/*" {{
  capabilities = {metadata}
}}
{history}"#,
        level = level.as_str(),
        history = match level {
            AccessLevel::Read => String::new(),
            AccessLevel::Write => format!(
                r#"
# Author records of the {env} versions this token writes: create only, under its own entity.
path "{KV_MOUNT}/data/{KV_PREFIX}/{HISTORY_FOLDER}/{{{{identity.entity.id}}}}/{ENV_FOLDER}/{env}/*" {{
  capabilities = ["create", "read"]
}}
"#
            ),
        },
    )
}

/// The HCL text of the base policy of `level`. Both deny the overlay folder as a whole: OpenBao
/// applies the most specific matching path of all a token's policies, so an environment's own
/// policy (`_env/<ENV>/*`) opens that environment and every other one stays closed, although
/// `<prefix>/*` would match it. Schemas are read with the base and written with it.
pub fn base_policy_hcl(level: AccessLevel) -> String {
    let name = match level {
        AccessLevel::Read => HARMONY_BASE_READ_POLICY,
        AccessLevel::Write => HARMONY_BASE_WRITE_POLICY,
    };
    let (data, metadata) = capabilities(level);
    format!(
        r#"# {name}: {level} the base documents and schemas of Harmony's configs; no environment.

path "{KV_MOUNT}/data/{KV_PREFIX}/*" {{
  capabilities = {data}
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{
  capabilities = {metadata}
}}

# Environments are opened one by one by their own policies (more specific paths win).
path "{KV_MOUNT}/data/{KV_PREFIX}/{ENV_FOLDER}/*" {{
  capabilities = ["deny"]
}}

path "{KV_MOUNT}/metadata/{KV_PREFIX}/{ENV_FOLDER}/*" {{
  capabilities = ["deny"]
}}
{history}"#,
        level = level.as_str(),
        history = history_hcl(level == AccessLevel::Write),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmony_dev_policy_snapshot() {
        insta::assert_snapshot!(harmony_dev_policy_hcl());
    }

    #[test]
    fn environment_policy_snapshots() {
        insta::assert_snapshot!(
            "env_prod_read",
            environment_policy_hcl("prod", AccessLevel::Read)
        );
        insta::assert_snapshot!(
            "env_dev_write",
            environment_policy_hcl("dev", AccessLevel::Write)
        );
        insta::assert_snapshot!("base_read", base_policy_hcl(AccessLevel::Read));
        insta::assert_snapshot!("base_write", base_policy_hcl(AccessLevel::Write));
    }
}
