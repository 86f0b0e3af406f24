//! The id_token → OpenBao token exchange at OpenBao's JWT auth method.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use crate::oidc::OidcError;
use crate::oidc::discovery::decode;
use crate::oidc::http::HttpError;

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

/// Exchange `id_token` for an OpenBao token: `POST {openbao_url}/v1/auth/{mount}/login` with
/// `{"role": role, "jwt": id_token}`. A refusal is [`OidcError::JwtLogin`] carrying OpenBao's
/// own message (wrong audience, unknown role, expired token, ...).
///
/// `http` should not follow redirects and should have a timeout ([`crate::oidc::http_client`]).
pub async fn exchange_id_token(
    http: &reqwest::Client,
    openbao_url: &str,
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
    let url = format!(
        "{}/v1/auth/{mount}/login",
        openbao_url.trim_end_matches('/')
    );
    let body = json!({ "role": role, "jwt": id_token.expose_secret() });
    let response =
        http.post(&url)
            .json(&body)
            .send()
            .await
            .map_err(|e| OidcError::OpenbaoUnreachable {
                source: HttpError::from_reqwest(&url, e),
            })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| OidcError::OpenbaoUnreachable {
            source: HttpError::from_reqwest(&url, e),
        })?;
    if !status.is_success() {
        return Err(OidcError::JwtLogin {
            url: openbao_url.to_owned(),
            mount: mount.to_owned(),
            role: role.to_owned(),
            status: status.as_u16(),
            message: openbao_message(&bytes, id_token),
        });
    }
    let answer: LoginAnswer = decode(&url, &bytes)?;
    tracing::debug!(
        url = openbao_url,
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

/// OpenBao's `errors`, joined; the id_token is cut out should OpenBao ever echo it.
fn openbao_message(body: &[u8], id_token: &SecretString) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let text = match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
        _ => String::from_utf8_lossy(body).chars().take(500).collect(),
    };
    let token = id_token.expose_secret();
    if token.is_empty() {
        text
    } else {
        text.replace(token, "[redacted id_token]")
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
    fn openbao_message_is_joined_and_never_echoes_the_token() {
        let token = SecretString::from("eyJhbGciOi.secret.sig");
        let body = br#"{"errors":["bad jwt eyJhbGciOi.secret.sig", "second"]}"#;
        let msg = openbao_message(body, &token);
        assert_eq!(msg, "bad jwt [redacted id_token]; second");
    }
}
