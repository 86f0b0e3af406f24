//! How this machine last signed in to a given OpenBao: the [`LoginProfile`].
//!
//! `harmony login` records the method and its public parameters (issuer, client id, JWT role;
//! userpass mount and user) per server, so every later command rebuilds the same auth chain
//! without flags or variables. It holds no secret (the token and refresh token stay in the
//! session cache of `harmony-secret`), but is still written 0600, atomically, under
//! `harmony_data_dir()/cli/`, named by a hash of the URL.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The identity under which `--token-stdin` sessions are cached.
pub const TOKEN_IDENTITY: &str = "token:stdin";

/// How `harmony login` signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// OIDC device flow, id_token exchanged at OpenBao's JWT auth.
    Sso,
    /// OpenBao's userpass auth.
    Userpass,
    /// A token read from stdin.
    Token,
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Method::Sso => "sso",
            Method::Userpass => "userpass",
            Method::Token => "token",
        })
    }
}

/// The SSO parameters of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoProfile {
    pub issuer: String,
    pub client_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    pub jwt_mount: String,
    pub jwt_role: String,
}

/// The userpass parameters of a login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserpassProfile {
    pub mount: String,
    pub username: String,
}

/// One server's login record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginProfile {
    /// The OpenBao URL (no trailing slash).
    pub url: String,
    pub method: Method,
    /// The session cache identity holding the token.
    pub identity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<SsoProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userpass: Option<UserpassProfile>,
}

fn path_for(url: &str) -> anyhow::Result<PathBuf> {
    let digest = sha2::Sha256::digest(url.trim_end_matches('/').as_bytes());
    Ok(harmony_env::harmony_data_dir()
        .context("cannot locate Harmony's local state directory")?
        .join("cli")
        .join(format!("login-{}.json", hex::encode(&digest[..8]))))
}

impl LoginProfile {
    /// The profile recorded for `url`, if any. An unreadable file is reported, not ignored.
    pub fn load(url: &str) -> anyhow::Result<Option<Self>> {
        let path = path_for(url)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let profile: Self = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a login record; delete it and run `harmony login` again",
                path.display()
            )
        })?;
        Ok((profile.url == url.trim_end_matches('/')).then_some(profile))
    }

    /// Record this profile (0600, atomic).
    pub fn save(&self) -> anyhow::Result<()> {
        let path = path_for(&self.url)?;
        let dir = path.parent().context("the login record has a directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        // NamedTempFile is created 0600.
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.as_file().sync_all()?;
        file.persist(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// Forget the profile of `url` (no error when there is none).
    pub fn remove(url: &str) -> anyhow::Result<()> {
        let path = path_for(url)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("deleting {}", path.display()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_round_trips_as_json_without_secrets() {
        let p = LoginProfile {
            url: "http://bao:8200".into(),
            method: Method::Sso,
            identity: "jwt:jwt:harmony-developer".into(),
            sso: Some(SsoProfile {
                issuer: "https://sso".into(),
                client_id: "cli".into(),
                project_id: None,
                jwt_mount: "jwt".into(),
                jwt_role: "harmony-developer".into(),
            }),
            userpass: None,
        };
        let text = serde_json::to_string(&p).expect("json");
        assert!(text.contains(r#""method":"sso""#), "{text}");
        let back: LoginProfile = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, p);
    }
}
