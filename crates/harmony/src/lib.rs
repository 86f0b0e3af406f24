//! Harmony: scores (what to deploy) and topologies (where), for a local k3d cluster or an
//! existing one, with OpenBao and Zitadel SSO.
//!
//! Modules: [`k3d`] (the cluster), [`helm`] (chart installs), [`ingress`] (reaching the
//! cluster's ingress host names from the host), [`tools`] (pinned, checksum-verified
//! downloads of k3d and helm), [`openbao`] (install + bootstrap over OpenBao's HTTP API),
//! [`cnpg`] and [`zitadel`] (SSO on CloudNativePG).

pub mod cleanup;
pub mod cnpg;
pub mod deploy;
pub mod helm;
pub mod k3d;
pub mod openbao;
pub mod preflight;
pub mod tools;
pub mod zitadel;

pub use harmony_env::{DataDirError, harmony_data_dir};
/// Re-exported from `harmony-openbao` (no Kubernetes in them), under their old paths.
pub use harmony_openbao::{ingress, target};
