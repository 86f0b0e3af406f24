//! `--openbao-url`: bootstrap an existing OpenBao with the same code the deploy uses
//! ([`harmony::openbao::bootstrap_existing`], shared with `harmony bootstrap`).

use anyhow::Context as _;

use crate::cli::Args;
use crate::modes::Ui;
use crate::modes::target::admin_token_from_env;

pub async fn run(args: &Args, _ui: &Ui) -> anyhow::Result<()> {
    let url = args
        .openbao_url
        .clone()
        .context("--openbao-url is required for this mode")?;
    if args.regenerate_root {
        let summary = harmony::openbao::regenerate_root(&url)
            .await
            .context("regenerating the root token from the saved key shares")?;
        for line in summary {
            println!("{line}");
        }
        return Ok(());
    }
    let request = harmony::openbao::ExistingRequest {
        admin_token: admin_token_from_env(),
        sso: match (&args.sso_url, &args.client_id) {
            (Some(issuer), Some(client_id)) => Some((issuer.clone(), client_id.clone())),
            _ => None,
        },
        bound_claims: args.bound_claim.iter().cloned().collect(),
        namespace: args.namespace.clone(),
        reset_userpass: args.reset_userpass,
        ci: args.ci_options()?,
        other_nodes: args.openbao_node.clone(),
        key_shares: args.key_shares()?,
        revoke_root: args.revoke_root,
        environments: args
            .environments
            .table()
            .map_err(crate::cli::UsageError::Environments)?,
        kv_max_versions: args.history.kv_max_versions,
    };
    let done = harmony::openbao::bootstrap_existing(&url, request)
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
    println!(
        "Next: cargo run -p example-harmony-sso -- --demo --openbao-url {}",
        done.url
    );
    Ok(())
}
