//! Where the CLI keeps local state: all of it under `harmony_data_dir()`.
//!
//! ```text
//! <data>/clusters/<cluster>/openbao/   init keys + root token, userpass password (0600)
//! <data>/clusters/<cluster>/zitadel/   client id, project id, issuer of the device-code app
//! <data>/openbao/<host>-<port>/        the same for an existing OpenBao (--openbao-url)
//! <data>/sessions/                     cached OpenBao sessions (harmony-secret)
//! <data>/bin/                          pinned, checksum-verified k3d and helm
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

/// The data directory, with a message saying how to fix it when it cannot be found.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    harmony_env::harmony_data_dir().context("cannot locate Harmony's local state directory")
}

/// State of a k3d cluster deployed by this CLI.
pub fn cluster_dir(cluster: &str) -> anyhow::Result<PathBuf> {
    Ok(data_dir()?.join("clusters").join(cluster))
}

/// State of an existing OpenBao bootstrapped through `--openbao-url`.
pub fn existing_openbao_dir(url: &url::Url) -> anyhow::Result<PathBuf> {
    let host = url.host_str().unwrap_or("unknown");
    let port = url.port_or_known_default().unwrap_or(0);
    let name: String = format!("{host}-{port}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(data_dir()?.join("openbao").join(name))
}
