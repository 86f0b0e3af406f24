//! Which OpenBao a demo talks to, and with which credentials: [`harmony::target`] (shared with
//! the `harmony` binary), fed from this binary's flags.

pub use harmony::target::{LOADBALANCER, Target, admin_token_from_env};
use harmony_secret::OpenbaoSettings;

use crate::cli::Args;

/// Pick the target from the flags and environment.
pub fn from_args(args: &Args) -> anyhow::Result<Target> {
    Ok(Target::resolve(
        args.openbao_url.as_ref(),
        &args.cluster_name,
    )?)
}

/// Store settings for `target`, failing with what to do when there is nothing to sign in with.
pub async fn settings(target: &Target) -> anyhow::Result<OpenbaoSettings> {
    let settings = target.settings().await?;
    target.require_credentials(&settings)?;
    Ok(settings)
}
