//! `harmony bootstrap --openbao-url URL`: init, unseal and configure an existing OpenBao with
//! the deploy's own code ([`harmony_openbao::bootstrap_existing`], also behind
//! `harmony-sso --openbao-url`).

use anyhow::Context as _;
use harmony_openbao::target::admin_token_from_env;

use crate::UsageError;
use crate::cli::{BootstrapArgs, Global};

pub async fn run(global: &Global, args: &BootstrapArgs) -> anyhow::Result<()> {
    let url = global.openbao_url.clone().ok_or_else(|| {
        UsageError(
            "bootstrap works on an existing OpenBao: pass --openbao-url URL (the local cluster's \
             is bootstrapped by the deploy)"
                .to_owned(),
        )
    })?;
    if args.regenerate_root {
        let summary = harmony_openbao::regenerate_root(&url)
            .await
            .context("regenerating the root token from the saved key shares")?;
        for line in summary {
            println!("{line}");
        }
        return Ok(());
    }
    let key_shares = harmony_openbao::key_shares_from_flags(args.key_shares, args.key_threshold)
        .map_err(UsageError)?;
    let sso = match (&args.sso_url, &args.client_id) {
        (Some(issuer), Some(client)) => Some((issuer.clone(), client.clone())),
        (None, None) => None,
        _ => {
            return Err(UsageError(
                "--sso-url and --client-id go together: OpenBao's JWT role is bound to the client id as audience"
                    .to_owned(),
            )
            .into());
        }
    };
    let ci = if args.ci.is_empty() {
        None
    } else {
        Some(
            harmony_openbao::CiOptions::new(args.ci.clone(), url.as_str())
                .and_then(|ci| ci.with_api_from_lookup(|k| std::env::var(k).ok()))
                .map_err(|e| UsageError(e.to_string()))?,
        )
    };
    let request = harmony_openbao::ExistingRequest {
        admin_token: admin_token_from_env(),
        sso,
        bound_claims: args.bound_claim.iter().cloned().collect(),
        namespace: args.namespace.clone(),
        reset_userpass: args.reset_userpass,
        ci,
        other_nodes: args.node.clone(),
        key_shares,
        revoke_root: args.revoke_root,
        environments: args.environments.table().map_err(UsageError)?,
        kv_max_versions: args.history.kv_max_versions,
    };
    let done = harmony_openbao::bootstrap_existing(&url, request)
        .await
        .with_context(|| {
            format!(
                "bootstrapping the OpenBao at {}",
                url.as_str().trim_end_matches('/')
            )
        })?;
    for line in done.summary() {
        println!("{line}");
    }
    println!("Next: harmony login --openbao-url {}", done.url);
    Ok(())
}
