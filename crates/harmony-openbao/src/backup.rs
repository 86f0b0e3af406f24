//! The `harmony-backup` ACL policy: what a token that takes backups may do, and nothing more.
//!
//! A raft snapshot is one `GET sys/storage/raft/snapshot`; `sys/seal-status` (read for the
//! backup's manifest) needs no token. So the policy grants `read` on that one path: the token
//! cannot read or write a document, a policy, an auth method, or restore a snapshot (a restore
//! is `update` on the same path and on `snapshot-force`, left to an administrator). Raft
//! snapshots are a root-namespace endpoint: the policy only works in the root namespace.

/// Name of the policy.
pub const HARMONY_BACKUP_POLICY: &str = "harmony-backup";

/// The HCL text of [`HARMONY_BACKUP_POLICY`].
pub fn harmony_backup_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_BACKUP_POLICY}: take raft snapshots (backups), nothing else.
path "sys/storage/raft/snapshot" {{
  capabilities = ["read"]
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmony_backup_policy_snapshot() {
        insta::assert_snapshot!(harmony_backup_policy_hcl());
    }
}
