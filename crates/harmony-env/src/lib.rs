//! The environment Harmony reads, in one place.
//!
//! Every environment variable any Harmony crate or binary reads is a documented constant in
//! [`vars`], so a reader can see the whole surface at a glance and nothing is spelled twice.
//! Local state (sessions, init keys, downloaded tools) lives under [`harmony_data_dir`], and
//! nowhere else.
//!
//! ```
//! let dir = harmony_env::harmony_data_dir().expect("a home directory or HARMONY_DATA_DIR");
//! assert!(dir.is_absolute());
//! ```

use std::path::PathBuf;

pub mod vars;

/// Why the data directory could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Neither `HARMONY_DATA_DIR` nor a home directory is available.
    #[error(
        "cannot find a place for Harmony's local state: no home directory was found; \
         set {var} to a writable directory",
        var = vars::HARMONY_DATA_DIR
    )]
    NoHome(#[source] etcetera::HomeDirError),
    /// `HARMONY_DATA_DIR` is set but is not an absolute path.
    #[error("{var}={value:?} is not an absolute path; set it to an absolute directory", var = vars::HARMONY_DATA_DIR)]
    NotAbsolute {
        /// The value that was set.
        value: String,
    },
}

/// The directory holding all of Harmony's local state.
///
/// `HARMONY_DATA_DIR` when set (must be absolute), else `$XDG_DATA_HOME/harmony` (on Linux and
/// macOS alike, `~/.local/share/harmony` by default). The directory is not created here:
/// whoever writes a file creates its parent with the permissions that file needs.
pub fn harmony_data_dir() -> Result<PathBuf, DataDirError> {
    if let Some(value) = std::env::var_os(vars::HARMONY_DATA_DIR).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(&value);
        if !path.is_absolute() {
            return Err(DataDirError::NotAbsolute {
                value: value.to_string_lossy().into_owned(),
            });
        }
        return Ok(path);
    }
    use etcetera::BaseStrategy;
    let strategy = etcetera::choose_base_strategy().map_err(DataDirError::NoHome)?;
    Ok(strategy.data_dir().join("harmony"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Environment mutation is process-global; this is the only test in this crate touching it.
    #[test]
    fn override_and_validation() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SAFETY-free: edition 2024 marks set_var unsafe, so test via a child process instead.
        let exe = std::env::current_exe().expect("current exe");
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "tests::child_prints_dir",
                "--nocapture",
                "--ignored",
            ])
            .env(vars::HARMONY_DATA_DIR, dir.path())
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("DATA_DIR={}", dir.path().display())),
            "{stdout}"
        );

        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "tests::child_prints_dir",
                "--nocapture",
                "--ignored",
            ])
            .env(vars::HARMONY_DATA_DIR, "relative/dir")
            .output()
            .expect("run child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("is not an absolute path"), "{stdout}");
    }

    #[test]
    #[ignore = "helper run as a child process by override_and_validation"]
    fn child_prints_dir() {
        match harmony_data_dir() {
            Ok(p) => println!("DATA_DIR={}", p.display()),
            Err(e) => println!("ERROR={e}"),
        }
    }
}
