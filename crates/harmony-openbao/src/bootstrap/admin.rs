//! Treating the root token as production OpenBao should: once the server is configured, a
//! `harmony-admin` policy and an orphan, periodic admin token take over (saved 0600 beside the
//! keys), and the root token is revoked. Re-runs configure with the admin token and renew it.
//!
//! Recovery: OpenBao (since 2.5.3) disables the unauthenticated `sys/generate-root` endpoints by
//! default; its replacement, `sys/generate-root-token`, needs a token *and* a quorum of key
//! shares. So the hand-over also creates a `harmony-recovery` token that can do nothing but that
//! (useless without the shares), saved 0600 in its own file. [`OpenbaoBootstrap::regenerate_root`]
//! uses it with the saved shares, then hands over to new admin and recovery tokens and revokes
//! the old ones. Without it (or once it expired) the unauthenticated flow is tried, which works
//! only where the listener sets `disable_unauthed_generate_root_endpoints = false`; the error
//! says so. The recovery token's period is [`RECOVERY_TOKEN_PERIOD`] (a year), far longer than
//! the admin token's: the hand-over raises the token auth mount's max TTL to it (a period is
//! capped by the mount's max TTL, measured on bao 2.7.2: 768 h without the tune), so a team that
//! let the admin token expire can still recover. The mount's default TTL is left alone, so other
//! tokens keep theirs unless they ask for more.
//!
//! A hand-over that stopped half way (the admin token saved, then creating the recovery token or
//! revoking root failed) is finished by the next run: a root token in the keys file that OpenBao
//! still accepts is revoked once the admin and recovery tokens are in place, and the report
//! says so.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::OpenbaoBootstrap;
use super::REQUEST_TIMEOUT;
use super::environments::ACCESS_DOCUMENT;
use crate::OpenbaoError;
use crate::policy::{KV_MOUNT, KV_PREFIX};
use crate::state::{self, ADMIN_TOKEN_ENTRY, RECOVERY_TOKEN_ENTRY};

/// The policy of the admin token: what the bootstrap configures, nothing in the KV data.
pub const HARMONY_ADMIN_POLICY: &str = "harmony-admin";

/// The policy of the recovery token: start and feed a root token generation, nothing else.
pub const HARMONY_RECOVERY_POLICY: &str = "harmony-recovery";

/// The admin token's period: every run renews it; unused for this long, it expires. 32 days,
/// OpenBao's default max TTL.
pub const ADMIN_TOKEN_PERIOD: Duration = Duration::from_secs(768 * 3600);

/// The recovery token's period: a year, so an admin token left to expire can still be replaced
/// with `--regenerate-root`. Every run renews it too.
pub const RECOVERY_TOKEN_PERIOD: Duration = Duration::from_secs(8760 * 3600);

fn harmony_recovery_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_RECOVERY_POLICY}: generate a new root token, which also needs a quorum of unseal key shares.
path "sys/generate-root-token/*" {{
  capabilities = ["create", "read", "update", "delete", "sudo"]
}}
path "auth/token/renew-self" {{
  capabilities = ["update"]
}}
path "auth/token/lookup-self" {{
  capabilities = ["read"]
}}
"#
    )
}

/// The HCL of [`HARMONY_ADMIN_POLICY`].
///
/// What it cannot do (each proven by a 403 from a real bao 2.7.2): write its own policy,
/// `harmony-recovery`'s, `root`'s, `default`'s or any policy not named `harmony-*`; give a user,
/// role or token any policy but one `harmony-*` policy other than `harmony-admin` and
/// `harmony-recovery` (`allowed_parameters` on every `auth/` path, for `policies` and
/// `token_policies`; a comma list in one string is refused, since OpenBao matches a list only
/// against exact values); write token roles; mount an auth method other than `jwt`,
/// `userpass` or `kubernetes` (the backup CronJob's sign-in), or a secrets engine other than
/// `kv`; touch `identity/` (groups and entities carry policies too) or read the documents (it
/// reads and writes only the environments' access record, `_access`, which holds no secret).
/// It may take a raft snapshot (a backup, encrypted by the barrier and useless without a quorum
/// of the unseal keys) but not restore one.
///
/// What it still can, plainly: it writes the `harmony-*` policies (`harmony-dev`,
/// `harmony-ci`, ...) and OpenBao cannot restrict a policy's content. A holder of this token can
/// write a `harmony-*` policy granting `secret/*` (or `path "*"`), attach it to a userpass user
/// or a JWT role it creates (a CEL role's program chooses its own policies), log in as that
/// user and read or change every document. The policy closes the one-step takeover (rewriting
/// its own policy), not that: treat the admin token as a secret as sensitive as the root token.
pub fn harmony_admin_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_ADMIN_POLICY}: configure Harmony's OpenBao (engines, auth methods, policies, roles)
# in place of the revoked root token. It may write only harmony-* policies and give out only
# one of them, but it writes their content: it can grant itself the documents in a few steps.

path "sys/mounts" {{
  capabilities = ["read"]
}}
path "sys/mounts/*" {{
  capabilities = ["create", "read", "update", "sudo"]
  allowed_parameters = {{
    "type" = ["kv"]
    "*" = []
  }}
}}
path "sys/auth" {{
  capabilities = ["read"]
}}
path "sys/auth/*" {{
  capabilities = ["create", "read", "update", "sudo"]
  allowed_parameters = {{
    "type" = ["jwt", "userpass", "kubernetes"]
    "*" = []
  }}
}}
path "sys/policies/acl" {{
  capabilities = ["list"]
}}
path "sys/policies/acl/*" {{
  capabilities = ["read"]
}}
path "sys/policies/acl/harmony-*" {{
  capabilities = ["create", "read", "update", "list"]
}}
path "sys/policies/acl/{HARMONY_ADMIN_POLICY}" {{
  capabilities = ["read"]
}}
path "sys/policies/acl/{HARMONY_RECOVERY_POLICY}" {{
  capabilities = ["read"]
}}
path "auth/*" {{
  capabilities = ["create", "read", "update", "delete", "list"]
  allowed_parameters = {{
    "policies" = ["harmony-*"]
    "token_policies" = ["harmony-*"]
    "*" = []
  }}
  denied_parameters = {{
    "policies" = ["*{HARMONY_ADMIN_POLICY}*", "*{HARMONY_RECOVERY_POLICY}*", "*,*"]
    "token_policies" = ["*{HARMONY_ADMIN_POLICY}*", "*{HARMONY_RECOVERY_POLICY}*", "*,*"]
  }}
}}
path "auth/token/roles/*" {{
  capabilities = ["deny"]
}}
path "sys/storage/raft/configuration" {{
  capabilities = ["read"]
}}
# The environments' access record (no secret: environments and each role's levels).
path "{KV_MOUNT}/data/{KV_PREFIX}/{ACCESS_DOCUMENT}" {{
  capabilities = ["create", "read", "update"]
}}
# The team KV mount's settings (max_versions: how much history of each document is kept).
path "{KV_MOUNT}/config" {{
  capabilities = ["create", "read", "update"]
}}
# Take a backup (encrypted by the barrier: useless without a quorum of the unseal keys).
# Restoring one needs a root token (--regenerate-root).
path "sys/storage/raft/snapshot" {{
  capabilities = ["read"]
}}
"#
    )
}

impl OpenbaoBootstrap {
    /// The token to configure with, and whether it is the root token: the one given, else the
    /// saved admin token (renewed; ignored right after an init, when it belongs to an older
    /// server), else the root token from the keys file.
    pub(super) async fn configuring_token(
        &self,
        root: Option<SecretString>,
        fresh_init: bool,
    ) -> Result<Option<(SecretString, bool)>, OpenbaoError> {
        if let Some(token) = self.options.admin_token.clone() {
            return Ok(Some((token, false)));
        }
        let saved = if fresh_init {
            None
        } else {
            self.options.state_dir.admin_token().await?
        };
        if let Some(admin) = saved {
            // Periodic tokens live as long as they are renewed; a failed renewal shows up as
            // the configure step's permission error, which names --regenerate-root.
            if let Err(e) = self.renew(&admin).await {
                return Err(OpenbaoError::AdminTokenRejected {
                    url: self.url(),
                    what: "harmony-admin token",
                    file: self.options.state_dir.admin_token_file(),
                    reason: e.to_string(),
                });
            }
            if let Some(recovery) = self.options.state_dir.recovery_token().await?
                && let Err(e) = self.renew(&recovery).await
            {
                tracing::warn!(error = %e, "could not renew the saved harmony-recovery token; --regenerate-root will need the unauthenticated flow");
            }
            return Ok(Some((admin, false)));
        }
        let Some(root) = root else { return Ok(None) };
        // After a hand-over the saved root token is dead; say how to recover, not "permission denied".
        if !fresh_init && let Err(e) = self.read("auth/token/lookup-self", Some(&root)).await {
            return Err(OpenbaoError::AdminTokenRejected {
                url: self.url(),
                what: "root token",
                file: self.options.state_dir.keys_file(),
                reason: format!(
                    "no admin token file at {}, and the root token was revoked: {e}",
                    self.options.state_dir.admin_token_file().display()
                ),
            });
        }
        Ok(Some((root, true)))
    }

    async fn renew(&self, token: &SecretString) -> Result<(), OpenbaoError> {
        self.write(
            Method::PUT,
            "auth/token/renew-self",
            Some(token),
            &json!({}),
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    async fn ensure_named_policy(
        &self,
        root: &SecretString,
        name: &str,
        hcl: String,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = format!("sys/policies/acl/{name}");
        let current = self.read_data(root, &path).await?;
        if current.as_ref().and_then(|d| d["policy"].as_str()) == Some(hcl.as_str()) {
            return Ok(None);
        }
        self.write(
            Method::PUT,
            &path,
            Some(root),
            &json!({"policy": hcl}),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(Some(format!("wrote policy {name}")))
    }

    /// An orphan periodic token with `policy`, created with `root`.
    async fn periodic_token(
        &self,
        root: &SecretString,
        policy: &str,
        period: Duration,
    ) -> Result<SecretString, OpenbaoError> {
        let path = "auth/token/create-orphan";
        let answer = self
            .write(
                Method::POST,
                path,
                Some(root),
                &json!({
                    "policies": [policy],
                    "no_default_policy": policy == HARMONY_RECOVERY_POLICY,
                    "period": format!("{}s", period.as_secs()),
                    "renewable": true,
                    "display_name": policy,
                }),
                REQUEST_TIMEOUT,
            )
            .await?;
        answer["auth"]["client_token"]
            .as_str()
            .map(|t| SecretString::from(t.to_owned()))
            .ok_or_else(|| self.decode_error(&Method::POST, path, "no auth.client_token"))
    }

    /// Raise the token auth mount's max TTL to [`RECOVERY_TOKEN_PERIOD`] when it is lower: a
    /// token's period is capped by it.
    async fn ensure_token_mount_max_ttl(
        &self,
        root: &SecretString,
    ) -> Result<Option<String>, OpenbaoError> {
        let path = "sys/auth/token/tune";
        let wanted = RECOVERY_TOKEN_PERIOD.as_secs();
        let current = self.read_data(root, path).await?;
        if current
            .as_ref()
            .and_then(|c| c["max_lease_ttl"].as_u64())
            .is_some_and(|ttl| ttl >= wanted)
        {
            return Ok(None);
        }
        self.write(
            Method::POST,
            path,
            Some(root),
            &json!({"max_lease_ttl": format!("{wanted}s")}),
            REQUEST_TIMEOUT,
        )
        .await?;
        Ok(Some(format!(
            "raised the token auth mount's max TTL to {} h (the recovery token's period)",
            wanted / 3600
        )))
    }

    /// Whether OpenBao still accepts `token` (`auth/token/lookup` with `root`).
    async fn token_alive(
        &self,
        root: &SecretString,
        token: &SecretString,
    ) -> Result<bool, OpenbaoError> {
        let path = "auth/token/lookup";
        match self
            .write(
                Method::POST,
                path,
                Some(root),
                &json!({"token": token.expose_secret()}),
                REQUEST_TIMEOUT,
            )
            .await
        {
            Ok(_) => Ok(true),
            // An unknown or expired token: "bad token" (403) or a 400, depending on the version.
            Err(OpenbaoError::PermissionDenied { .. })
            | Err(OpenbaoError::Server {
                status: 400 | 404, ..
            }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Revoke `token` with `root` (and its children: these tokens are orphans without any).
    async fn revoke_token(
        &self,
        root: &SecretString,
        token: &SecretString,
    ) -> Result<(), OpenbaoError> {
        self.write(
            Method::POST,
            "auth/token/revoke",
            Some(root),
            &json!({"token": token.expose_secret()}),
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// The policies and the token mount's max TTL, written with `root`.
    async fn hand_over_setup(&self, root: &SecretString) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = Vec::new();
        changes.extend(
            self.ensure_named_policy(root, HARMONY_ADMIN_POLICY, harmony_admin_policy_hcl())
                .await?,
        );
        changes.extend(
            self.ensure_named_policy(root, HARMONY_RECOVERY_POLICY, harmony_recovery_policy_hcl())
                .await?,
        );
        changes.extend(self.ensure_token_mount_max_ttl(root).await?);
        Ok(changes)
    }

    async fn new_recovery_token(&self, root: &SecretString) -> Result<(), OpenbaoError> {
        let recovery = self
            .periodic_token(root, HARMONY_RECOVERY_POLICY, RECOVERY_TOKEN_PERIOD)
            .await?;
        state::save_password(
            self.options.state_dir.recovery_token_file(),
            RECOVERY_TOKEN_ENTRY,
            &recovery,
        )
        .await
    }

    async fn revoke_root(&self, root: &SecretString) -> Result<(), OpenbaoError> {
        self.write(
            Method::PUT,
            "auth/token/revoke-self",
            Some(root),
            &json!({}),
            REQUEST_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Hand over from `root`: policies `harmony-admin` and `harmony-recovery`, an orphan periodic
    /// token for each (saved 0600 before the root token goes), then revoke `replaced` (the
    /// tokens these take over from) and `root`. Returns the changes made.
    pub(super) async fn retire_root(
        &self,
        root: &SecretString,
        replaced: &[SecretString],
    ) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = self.hand_over_setup(root).await?;
        let state_dir = &self.options.state_dir;
        let admin = self
            .periodic_token(root, HARMONY_ADMIN_POLICY, ADMIN_TOKEN_PERIOD)
            .await?;
        state::save_password(state_dir.admin_token_file(), ADMIN_TOKEN_ENTRY, &admin).await?;
        self.new_recovery_token(root).await?;
        changes.push(format!(
            "created periodic {HARMONY_ADMIN_POLICY} ({} h) and {HARMONY_RECOVERY_POLICY} ({} h) tokens (saved to {} and {}, 0600)",
            ADMIN_TOKEN_PERIOD.as_secs() / 3600,
            RECOVERY_TOKEN_PERIOD.as_secs() / 3600,
            state_dir.admin_token_file().display(),
            state_dir.recovery_token_file().display()
        ));
        let mut revoked = 0;
        for old in replaced {
            if self.token_alive(root, old).await? {
                self.revoke_token(root, old).await?;
                revoked += 1;
            }
        }
        if revoked > 0 {
            changes.push(format!(
                "revoked the previous {HARMONY_ADMIN_POLICY}/{HARMONY_RECOVERY_POLICY} tokens still valid ({revoked})"
            ));
        }
        self.revoke_root(root).await?;
        changes.push("revoked the root token (re-runs use the admin token)".to_owned());
        Ok(changes)
    }

    /// Finish a hand-over a previous run left half done: when the keys file's `root` token is
    /// still accepted although an admin token is in use, make sure the policies and a valid
    /// recovery token exist, then revoke `root`. Returns the changes made (none when root is
    /// already revoked).
    pub(super) async fn finish_hand_over(
        &self,
        root: &SecretString,
    ) -> Result<Vec<String>, OpenbaoError> {
        if self
            .read("auth/token/lookup-self", Some(root))
            .await
            .is_err()
        {
            return Ok(Vec::new());
        }
        let mut changes = vec![
            "a previous run left the root token valid (its hand-over to the admin token did not finish): finishing it"
                .to_owned(),
        ];
        changes.extend(self.hand_over_setup(root).await?);
        let recovery = self.options.state_dir.recovery_token().await?;
        let recovery_ok = match &recovery {
            Some(t) => self.token_alive(root, t).await?,
            None => false,
        };
        if !recovery_ok {
            self.new_recovery_token(root).await?;
            changes.push(format!(
                "created a periodic {HARMONY_RECOVERY_POLICY} token ({} h, saved to {}, 0600)",
                RECOVERY_TOKEN_PERIOD.as_secs() / 3600,
                self.options.state_dir.recovery_token_file().display()
            ));
        }
        self.revoke_root(root).await?;
        changes.push("revoked the root token (re-runs use the admin token)".to_owned());
        Ok(changes)
    }

    /// Recover a lost or expired admin token: generate a new root token from the saved key
    /// shares (`sys/generate-root` with a one-time pad), hand over to a new admin token and
    /// revoke that root token again. Returns the changes made.
    pub async fn regenerate_root(&self) -> Result<Vec<String>, OpenbaoError> {
        let keys_file = self.options.state_dir.keys_file();
        let Some(keys) = state::load_keys(keys_file.clone()).await? else {
            return Err(OpenbaoError::InitialisedElsewhere {
                url: self.url(),
                keys_file,
            });
        };
        let recovery = self.options.state_dir.recovery_token().await?;
        // The authenticated flow (OpenBao 2.6+) with the recovery token, else the old
        // unauthenticated one (off by default since 2.5.3).
        let (base, token) = match &recovery {
            Some(t) => ("sys/generate-root-token", Some(t)),
            None => ("sys/generate-root", None),
        };
        let attempt = format!("{base}/attempt");
        // Start clean: an abandoned attempt would otherwise mix with ours.
        let cancelled = self
            .write(Method::DELETE, &attempt, token, &json!({}), REQUEST_TIMEOUT)
            .await;
        if let Err(e) = cancelled {
            return Err(OpenbaoError::RootGenerationUnavailable {
                url: self.url(),
                reason: e.to_string(),
                recovery_file: self.options.state_dir.recovery_token_file(),
            });
        }
        let started = self
            .write(Method::PUT, &attempt, token, &json!({}), REQUEST_TIMEOUT)
            .await?;
        let started = started.get("data").cloned().unwrap_or(started);
        let (Some(nonce), Some(otp)) = (started["nonce"].as_str(), started["otp"].as_str()) else {
            return Err(self.decode_error(&Method::PUT, &attempt, "no nonce or otp"));
        };
        let otp = SecretString::from(otp.to_owned());
        let mut encoded = None;
        for key in &keys.keys_base64 {
            let answer = self
                .write(
                    Method::PUT,
                    &format!("{base}/update"),
                    token,
                    &json!({"key": key.expose_secret(), "nonce": nonce}),
                    REQUEST_TIMEOUT,
                )
                .await?;
            let answer = answer.get("data").cloned().unwrap_or(answer);
            if answer["complete"] == Value::Bool(true) {
                encoded = answer["encoded_token"]
                    .as_str()
                    .or_else(|| answer["encoded_root_token"].as_str())
                    .map(str::to_owned);
                break;
            }
        }
        let Some(encoded) = encoded else {
            return Err(OpenbaoError::StillSealed {
                url: self.url(),
                keys_file,
                submitted: keys.keys_base64.len(),
                threshold: 0,
            });
        };
        let root = decode_root(&encoded, &otp).ok_or_else(|| {
            self.decode_error(
                &Method::PUT,
                &format!("{base}/update"),
                "the encoded token does not decode with the one-time pad",
            )
        })?;
        let mut changes = vec!["generated a new root token from the saved key shares".to_owned()];
        let mut replaced = Vec::new();
        replaced.extend(self.options.state_dir.admin_token().await?);
        replaced.extend(recovery);
        changes.extend(self.retire_root(&root, &replaced).await?);
        Ok(changes)
    }
}

/// `sys/generate-root`'s answer: base64 (with or without padding) of the token XOR the pad.
fn decode_root(encoded: &str, otp: &SecretString) -> Option<SecretString> {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    let bytes = engine.decode(encoded.trim_end_matches('=')).ok()?;
    let pad = otp.expose_secret().as_bytes();
    if bytes.len() != pad.len() {
        return None;
    }
    let token: Vec<u8> = bytes.iter().zip(pad).map(|(a, b)| a ^ b).collect();
    String::from_utf8(token).ok().map(SecretString::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_token_decodes_with_its_pad() {
        let pad = "abcdefghijklmnopqrstuvwxyz012345";
        let token = "s.0123456789ABCDEFGHIJKLMNOPQRST";
        let xored: Vec<u8> = token.bytes().zip(pad.bytes()).map(|(a, b)| a ^ b).collect();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&xored);
        let otp = SecretString::from(pad.to_owned());
        let got = decode_root(&encoded, &otp).expect("decodes");
        assert_eq!(got.expose_secret(), token);
        assert!(decode_root(&encoded, &SecretString::from("short".to_owned())).is_none());
    }

    #[test]
    fn admin_policy_cannot_touch_documents() {
        let hcl = harmony_admin_policy_hcl();
        // The only KV paths it names are the mount's settings (max_versions) and the access
        // record, neither of which holds a secret.
        let kv_paths: Vec<&str> = hcl
            .lines()
            .filter(|l| l.starts_with("path \"secret/"))
            .collect();
        assert_eq!(
            kv_paths,
            [
                r#"path "secret/data/harmony/_access" {"#,
                r#"path "secret/config" {"#
            ],
            "{hcl}"
        );
        assert!(hcl.contains(r#"path "sys/auth/*""#), "{hcl}");
    }
}
