//! Which OpenBao a demo talks to, and with which credentials: [`harmony::target`] (shared with
//! the `harmony` binary), fed from this binary's flags.

pub use harmony::target::{Target, TargetError, admin_token_from_env};
use harmony_secret::OpenbaoSettings;

use crate::cli::{Args, UsageError};

/// Pick the target from the flags and environment.
pub fn from_args(args: &Args) -> anyhow::Result<Target> {
    Ok(
        Target::resolve(args.openbao_url.as_ref(), &args.cluster_name)?
            .with_namespace(args.namespace.clone()),
    )
}

/// Store settings for `target`, failing with what to do when there is nothing to sign in with.
/// A bad KV mount or prefix is a usage error (exit 2), found before signing in.
pub async fn settings(target: &Target) -> anyhow::Result<OpenbaoSettings> {
    let settings = target.settings().await.map_err(usage)?;
    target.require_credentials(&settings).await?;
    Ok(settings)
}

fn usage(e: TargetError) -> anyhow::Error {
    match e {
        TargetError::BadSetting(message) => UsageError::BadSetting(message).into(),
        other => other.into(),
    }
}
