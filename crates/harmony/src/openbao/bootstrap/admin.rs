//! Treating the root token as production OpenBao should: once the server is configured, a
//! `harmony-admin` policy and an orphan, periodic admin token take over (saved 0600 beside the
//! keys), and the root token is revoked. Re-runs configure with the admin token and renew it.
//!
//! Recovery: OpenBao (since 2.5.3) disables the unauthenticated `sys/generate-root` endpoints by
//! default; its replacement, `sys/generate-root-token`, needs a token *and* a quorum of key
//! shares. So the hand-over also creates a `harmony-recovery` token that can do nothing but that
//! (useless without the shares), saved 0600 in its own file. [`OpenbaoBootstrap::regenerate_root`]
//! uses it with the saved shares, then hands over to a new admin token again. Without it (or
//! once it expired) the unauthenticated flow is tried, which works only where the listener sets
//! `disable_unauthed_generate_root_endpoints = false`; the error says so.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::OpenbaoBootstrap;
use super::REQUEST_TIMEOUT;
use crate::openbao::OpenbaoError;
use crate::openbao::state::{self, ADMIN_TOKEN_ENTRY, RECOVERY_TOKEN_ENTRY};

/// The policy of the admin token: what the bootstrap configures, nothing in the KV data.
pub const HARMONY_ADMIN_POLICY: &str = "harmony-admin";

/// The policy of the recovery token: start and feed a root token generation, nothing else.
pub const HARMONY_RECOVERY_POLICY: &str = "harmony-recovery";

/// The admin and recovery tokens' period: every run renews them; unused for this long, they
/// expire. 32 days, OpenBao's default max TTL, which caps a period.
pub const ADMIN_TOKEN_PERIOD: Duration = Duration::from_secs(768 * 3600);

fn harmony_recovery_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_RECOVERY_POLICY}: generate a new root token, which also needs a quorum of unseal key shares.
path "sys/generate-root-token/*" {{
  capabilities = ["create", "read", "update", "delete", "sudo"]
}}
path "auth/token/renew-self" {{
  capabilities = ["update"]
}}
"#
    )
}

/// The HCL of [`HARMONY_ADMIN_POLICY`].
pub fn harmony_admin_policy_hcl() -> String {
    format!(
        r#"# {HARMONY_ADMIN_POLICY}: configure Harmony's OpenBao (engines, auth methods, policies, roles)
# in place of the revoked root token. No access to the documents themselves.

path "sys/mounts" {{
  capabilities = ["read"]
}}
path "sys/mounts/*" {{
  capabilities = ["create", "read", "update", "sudo"]
}}
path "sys/auth" {{
  capabilities = ["read"]
}}
path "sys/auth/*" {{
  capabilities = ["create", "read", "update", "sudo"]
}}
path "sys/policies/acl/*" {{
  capabilities = ["create", "read", "update", "list"]
}}
path "auth/*" {{
  capabilities = ["create", "read", "update", "delete", "list"]
}}
path "sys/storage/raft/configuration" {{
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
                    "period": format!("{}s", ADMIN_TOKEN_PERIOD.as_secs()),
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

    /// Hand over from `root`: policies `harmony-admin` and `harmony-recovery`, an orphan periodic
    /// token for each (saved 0600 before the root token goes), then revoke `root`. Returns the
    /// changes made.
    pub(super) async fn retire_root(
        &self,
        root: &SecretString,
    ) -> Result<Vec<String>, OpenbaoError> {
        let mut changes = Vec::new();
        changes.extend(
            self.ensure_named_policy(root, HARMONY_ADMIN_POLICY, harmony_admin_policy_hcl())
                .await?,
        );
        changes.extend(
            self.ensure_named_policy(root, HARMONY_RECOVERY_POLICY, harmony_recovery_policy_hcl())
                .await?,
        );
        let state_dir = &self.options.state_dir;
        let admin = self.periodic_token(root, HARMONY_ADMIN_POLICY).await?;
        state::save_password(state_dir.admin_token_file(), ADMIN_TOKEN_ENTRY, &admin).await?;
        let recovery = self.periodic_token(root, HARMONY_RECOVERY_POLICY).await?;
        state::save_password(
            state_dir.recovery_token_file(),
            RECOVERY_TOKEN_ENTRY,
            &recovery,
        )
        .await?;
        changes.push(format!(
            "created periodic {HARMONY_ADMIN_POLICY} and {HARMONY_RECOVERY_POLICY} tokens (saved to {} and {}, 0600)",
            state_dir.admin_token_file().display(),
            state_dir.recovery_token_file().display()
        ));
        self.write(
            Method::PUT,
            "auth/token/revoke-self",
            Some(root),
            &json!({}),
            REQUEST_TIMEOUT,
        )
        .await?;
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
        changes.extend(self.retire_root(&root).await?);
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
        assert!(!hcl.contains("secret/"), "{hcl}");
        assert!(hcl.contains(r#"path "sys/auth/*""#), "{hcl}");
    }
}
