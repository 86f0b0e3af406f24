//! The id_token → OpenBao token exchange at OpenBao's JWT auth method.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::SecretError;
use crate::client::OpenbaoClient;
use crate::oidc::OidcError;
use crate::oidc::http::HttpError;
use crate::redact::json_error_detail;

/// The OpenBao token a JWT login produced. The token is redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct JwtLogin {
    /// The OpenBao token.
    pub token: SecretString,
    /// Its accessor (lets an operator revoke it without knowing it).
    pub accessor: Option<String>,
    /// Its lifetime (zero: no expiry).
    pub lease_duration: Duration,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// The policies it carries.
    pub policies: Vec<String>,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: AuthBlock,
}

#[derive(Deserialize)]
struct AuthBlock {
    client_token: String,
    #[serde(default)]
    accessor: Option<String>,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    policies: Vec<String>,
}

/// Exchange `id_token` for an OpenBao token: `POST /v1/auth/{mount}/login` with
/// `{"role": role, "jwt": id_token}`, through `client` (the one OpenBao client: its TLS
/// settings, namespace and timeout apply; any token it carries is not sent). A refusal is
/// [`OidcError::JwtLogin`] carrying OpenBao's own message (wrong audience, unknown role,
/// expired token, ...).
///
/// A server bootstrapped with environments has no classic role of that name but a **CEL role**
/// (`auth/{mount}/cel/role/{role}`, which gives policies from the token's group or Zitadel
/// role claims): when the classic login says the role cannot be found, the same id_token is
/// presented once at `auth/{mount}/cel/login`. A server without environments answers the
/// first request, exactly as before; one with them costs one refused request more.
pub async fn exchange_id_token(
    client: &OpenbaoClient,
    mount: &str,
    role: &str,
    id_token: &SecretString,
) -> Result<JwtLogin, OidcError> {
    check_name(
        "JWT auth mount",
        mount,
        true,
        harmony_env::vars::OPENBAO_JWT_AUTH_MOUNT,
    )?;
    check_name("JWT role", role, false, harmony_env::vars::OPENBAO_JWT_ROLE)?;
    match login_at(client, mount, role, id_token, false).await {
        Err(OidcError::JwtLogin {
            status: 400,
            message,
            ..
        }) if message.contains("could not be found") => {
            tracing::debug!(mount, role, "no classic JWT role; trying the CEL role");
            login_at(client, mount, role, id_token, true).await
        }
        other => other,
    }
}

async fn login_at(
    client: &OpenbaoClient,
    mount: &str,
    role: &str,
    id_token: &SecretString,
    cel: bool,
) -> Result<JwtLogin, OidcError> {
    let path = if cel {
        format!("auth/{mount}/cel/login")
    } else {
        format!("auth/{mount}/login")
    };
    let body = json!({ "role": role, "jwt": id_token.expose_secret() });
    let refused = |status: u16, message: String| OidcError::JwtLogin {
        url: client.url().to_owned(),
        mount: mount.to_owned(),
        role: role.to_owned(),
        status,
        message: without_token(message, id_token),
    };
    let answer = match client.clone().without_token().post(&path, &body).await {
        Ok(Some(answer)) => answer,
        Ok(None) => {
            return Err(OidcError::Decode {
                url: format!("{}/v1/{path}", client.url()),
                message: "the login answer is empty".to_owned(),
            });
        }
        Err(SecretError::PermissionDenied { message, .. }) => return Err(refused(403, message)),
        Err(SecretError::BadResponse {
            status, message, ..
        }) => return Err(refused(status, message)),
        Err(SecretError::NotFound { .. }) => {
            return Err(refused(
                404,
                format!(
                    "no JWT auth method is mounted at auth/{mount}; check {}",
                    harmony_env::vars::OPENBAO_JWT_AUTH_MOUNT
                ),
            ));
        }
        Err(SecretError::Unreachable {
            url,
            reason,
            source,
        }) => {
            return Err(OidcError::OpenbaoUnreachable {
                source: HttpError {
                    url,
                    reason,
                    source: source.map(reqwest::Error::without_url),
                },
            });
        }
        Err(other) => return Err(refused(0, other.to_string())),
    };
    let answer: LoginAnswer = serde_json::from_value(answer).map_err(|e| OidcError::Decode {
        url: format!("{}/v1/{path}", client.url()),
        message: json_error_detail(&e),
    })?;
    tracing::debug!(
        url = client.url(),
        namespace = client.namespace(),
        mount,
        role,
        lease_secs = answer.auth.lease_duration,
        "exchanged the id_token for an OpenBao token"
    );
    Ok(JwtLogin {
        token: SecretString::from(answer.auth.client_token),
        accessor: answer.auth.accessor,
        lease_duration: Duration::from_secs(answer.auth.lease_duration),
        renewable: answer.auth.renewable,
        policies: answer.auth.policies,
    })
}

/// `message` with the id_token cut out, should OpenBao ever echo it.
fn without_token(message: String, id_token: &SecretString) -> String {
    let token = id_token.expose_secret();
    if token.is_empty() {
        message
    } else {
        message.replace(token, "[redacted id_token]")
    }
}

/// Mounts may be nested (`a/b`); roles are one segment. Neither may climb out with `..`.
fn check_name(what: &str, name: &str, nested: bool, var: &str) -> Result<(), OidcError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(ok_char))
        && (nested || !name.contains('/'));
    if ok {
        Ok(())
    } else {
        Err(OidcError::Config(format!(
            "{what} {name:?} is not a valid name (letters, digits, '-', '_', '.'{}); check {var}",
            if nested { ", '/' between parts" } else { "" }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("m", "jwt", true, "V").is_ok());
        assert!(check_name("m", "team/jwt", true, "V").is_ok());
        for bad in ["", "../x", "a//b", "a b", "/jwt"] {
            assert!(check_name("m", bad, true, "V").is_err(), "{bad}");
        }
        assert!(check_name("r", "a/b", false, "V").is_err());
    }

    #[test]
    fn messages_never_echo_the_token() {
        let token = SecretString::from("eyJhbGciOi.secret.sig");
        let msg = without_token("bad jwt eyJhbGciOi.secret.sig; second".to_owned(), &token);
        assert_eq!(msg, "bad jwt [redacted id_token]; second");
    }
}
