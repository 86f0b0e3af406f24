//! `--openbao-url`: bootstrap an existing OpenBao with the same code the deploy uses.

use anyhow::Context as _;
use harmony::openbao::{BootstrapOptions, JwtAuthOptions, OpenbaoBootstrap, StateDir};

use crate::cli::Args;
use crate::modes::Ui;
use crate::modes::target::admin_token_from_env;

pub async fn run(args: &Args, _ui: &Ui) -> anyhow::Result<()> {
    let url = args
        .openbao_url
        .clone()
        .context("--openbao-url is required for this mode")?;
    let state = StateDir::for_url(&url)?;
    let mut options = BootstrapOptions::local(state.clone())
        .with_connection_from_lookup(|name| std::env::var(name).ok())?;
    if let Some(namespace) = &args.namespace {
        options.namespace = Some(namespace.clone());
    }
    options.reset_userpass = args.reset_userpass;
    options.admin_token = admin_token_from_env();
    options.ci = args.ci_options()?;
    if let (Some(issuer), Some(client_id)) = (&args.sso_url, &args.client_id) {
        let issuer = url::Url::parse(issuer.as_str().trim_end_matches('/'))?;
        let mut jwt = JwtAuthOptions::oidc(issuer, vec![client_id.clone()]);
        jwt.bound_claims = args.bound_claim.iter().cloned().collect();
        options.jwt = Some(jwt);
    }
    let options_ci = options.ci.clone();
    let namespace = options.namespace.clone();
    let report = OpenbaoBootstrap::new(&url, options)?
        .run()
        .await
        .with_context(|| {
            format!(
                "bootstrapping the OpenBao at {}",
                url.as_str().trim_end_matches('/')
            )
        })?;

    match &namespace {
        Some(ns) => println!(
            "OpenBao at {} (namespace {ns})",
            url.as_str().trim_end_matches('/')
        ),
        None => println!("OpenBao at {}", url.as_str().trim_end_matches('/')),
    }
    if report.initialised {
        println!(
            "  initialised (1 key share); keys and root token saved to {} (0600)",
            state.keys_file().display()
        );
    }
    if report.unsealed {
        println!("  unsealed");
    }
    match &report.skipped {
        Some(why) => println!("  configuration skipped: {why}"),
        None if report.changes.is_empty() => {
            println!("  configuration: already as wanted, nothing changed")
        }
        None => {
            println!("  configuration changes:");
            for change in &report.changes {
                println!("    - {change}");
            }
        }
    }
    if let Some(ci) = &options_ci {
        println!();
        println!(
            "CI jobs of {} sign in with their own OIDC id_token (auth/{}/, read-only policy {}),",
            ci.trusts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            ci.mount,
            harmony::openbao::HARMONY_CI_POLICY
        );
        println!(
            "  audience {} — set OPENBAO_URL={} in the job; see the README's CI section.",
            ci.audience, ci.audience
        );
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    if let (Some(issuer), Some(client_id)) = (&args.sso_url, &args.client_id) {
        println!();
        println!(
            "Who can sign in: anyone {} issues an id_token to for client {client_id}; OpenBao checks \
             the audience and the issuer{}.",
            issuer.as_str().trim_end_matches('/'),
            if args.bound_claim.is_empty() {
                String::new()
            } else {
                format!(
                    ", and the claims {}",
                    args.bound_claim
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        if args.bound_claim.is_empty() {
            println!(
                "  Access is limited only by the provider's own rules for that client. To limit it \
                 here too, re-run with --bound-claim KEY=VALUE (e.g. --bound-claim email=alice@example.com)."
            );
        }
    }
    println!();
    println!("Local state: {}", state.path().display());
    println!(
        "Next: cargo run -p example-harmony-sso -- --demo --openbao-url {}",
        url.as_str().trim_end_matches('/')
    );
    Ok(())
}
