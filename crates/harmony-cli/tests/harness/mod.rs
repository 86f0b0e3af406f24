//! What the integration tests share: the binary with a clean environment, output as text.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use harmony_env::vars;

/// Every variable that would point the binary at a developer's own server or identity.
const CLEARED: &[&str] = &[
    vars::OPENBAO_USERNAME,
    vars::OPENBAO_PASSWORD,
    vars::OPENBAO_USERPASS_MOUNT,
    vars::OPENBAO_KV_MOUNT,
    vars::OPENBAO_KV_PREFIX,
    vars::OPENBAO_JWT_AUTH_MOUNT,
    vars::OPENBAO_JWT_ROLE,
    vars::HARMONY_SSO_URL,
    vars::HARMONY_SSO_CLIENT_ID,
    vars::HARMONY_SSO_PROJECT_ID,
    vars::HARMONY_SSO_OPEN_BROWSER,
    vars::HARMONY_NON_INTERACTIVE,
    vars::RUST_LOG,
    "VISUAL",
    "EDITOR",
];

/// The binary as a plain process with a clean environment and its own data dir.
pub fn harmony_std(data_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("harmony"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
        .chain(CLEARED.iter())
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data_dir);
    cmd.env(vars::HARMONY_SSO_OPEN_BROWSER, "0");
    cmd
}

/// [`harmony_std`] with a 60 s bound.
pub fn harmony(data_dir: &Path) -> Command {
    let mut cmd = Command::from_std(harmony_std(data_dir));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
