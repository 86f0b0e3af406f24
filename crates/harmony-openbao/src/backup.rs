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

/// Mount path of OpenBao's Kubernetes auth method.
pub const KUBERNETES_AUTH_MOUNT: &str = "kubernetes";
/// The Kubernetes auth role the backup CronJob signs in with.
pub const BACKUP_ROLE: &str = "harmony-backup";
/// Name of the ServiceAccount, the PVC and the CronJob.
pub const BACKUP_NAME: &str = "openbao-backup";
/// Audience of the projected service-account token (the role requires it).
pub const BACKUP_TOKEN_AUDIENCE: &str = "openbao";
/// Lifetime of the token the role issues: one snapshot, with room for a slow disk.
pub const BACKUP_TOKEN_TTL: &str = "10m";
/// [`BACKUP_TOKEN_TTL`] in seconds (as OpenBao reads it back).
pub const BACKUP_TOKEN_TTL_SECONDS: u64 = 600;

/// The body of `auth/kubernetes/config`: the API at `kubernetes_host` reviews the tokens. With
/// `ca_cert` `None` (OpenBao in a pod), OpenBao reads the pod's service-account CA and token
/// from its mount (`disable_local_ca_jwt` false) and calls the TokenReview API with that token
/// (the chart binds its ServiceAccount to `system:auth-delegator`, `server.authDelegator`).
pub fn kubernetes_auth_config(kubernetes_host: &str, ca_cert: Option<&str>) -> serde_json::Value {
    let mut body = serde_json::json!({
        "kubernetes_host": kubernetes_host,
        "disable_local_ca_jwt": false,
    });
    if let Some(ca) = ca_cert {
        body["kubernetes_ca_cert"] = serde_json::Value::String(ca.to_owned());
    }
    body
}

/// The body of `auth/kubernetes/role/harmony-backup`: only the backup ServiceAccount in
/// `namespace`, with the projected token's audience, gets the backup policy for a short TTL.
pub fn backup_role(namespace: &str) -> serde_json::Value {
    serde_json::json!({
        "bound_service_account_names": BACKUP_NAME,
        "bound_service_account_namespaces": namespace,
        "audience": BACKUP_TOKEN_AUDIENCE,
        "token_policies": HARMONY_BACKUP_POLICY,
        "token_ttl": BACKUP_TOKEN_TTL,
        "token_max_ttl": BACKUP_TOKEN_TTL,
        "token_no_default_policy": true,
        "token_type": "service",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harmony_backup_policy_snapshot() {
        insta::assert_snapshot!(harmony_backup_policy_hcl());
    }
}
