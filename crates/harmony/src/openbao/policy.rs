//! The `harmony-dev` ACL policy: what a teammate signed in through SSO or userpass may do.
//!
//! Least privilege: Harmony's documents live under `secret/harmony/…` in the KV v2 engine, so the
//! policy grants document operations on `secret/data/harmony/*` and reading/listing versions on
//! `secret/metadata/harmony/*` (including deleting a document with its versions, which
//! `SecretStore::delete` needs) — nothing on other KV paths, no `sudo`, no `sys/`, no `destroy`.

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

# Versions, listing, and deleting a document with all its versions (SecretStore::delete).
path "{KV_MOUNT}/metadata/{KV_PREFIX}/*" {{
  capabilities = ["read", "list", "delete"]
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmony_dev_policy_snapshot() {
        insta::assert_snapshot!(harmony_dev_policy_hcl());
    }
}
