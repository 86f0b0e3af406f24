//! Where the CLI keeps local state: all of it under `harmony_data_dir()`.
//!
//! ```text
//! <data>/openbao/cluster-<name>/   init keys + root token, userpass password of a deployed cluster (0600)
//! <data>/openbao/url-<hash>/       the same for an existing OpenBao (--openbao-url)
//! <data>/zitadel/<cluster>/        client id, project id and issuer of the device-code app
//! <data>/sessions/                 cached OpenBao sessions (harmony-secret)
//! <data>/bin/                      pinned, checksum-verified k3d and helm
//! <data>/helm/                     helm's repository config and cache (the user's are left alone)
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

/// The data directory, with a message saying how to fix it when it cannot be found.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    harmony_env::harmony_data_dir().context("cannot locate Harmony's local state directory")
}

/// Device-code app state of a deployed cluster's Zitadel.
pub fn zitadel_dir(cluster: &str) -> anyhow::Result<PathBuf> {
    Ok(data_dir()?.join("zitadel").join(cluster))
}
