//! Bootstrapping an OpenBao the user points at (`harmony bootstrap --openbao-url URL`,
//! `harmony-sso --openbao-url URL`): the deploy's own [`OpenbaoBootstrap`] with the state kept
//! per URL, and the summary both binaries print.

use std::collections::BTreeMap;

use secrecy::SecretString;
use url::Url;

use crate::{
    BootstrapOptions, BootstrapReport, CiOptions, HARMONY_CI_POLICY, JwtAuthOptions, NodeReport,
    OpenbaoBootstrap, OpenbaoClusterBootstrap, OpenbaoError, StateDir,
};

/// What to do to an existing OpenBao: everything the two binaries' flags can ask for.
#[derive(Debug, Clone, Default)]
pub struct ExistingRequest {
    /// A token allowed to configure a server initialised elsewhere (`OPENBAO_TOKEN`).
    pub admin_token: Option<SecretString>,
    /// The OpenID provider to wire JWT auth to: issuer and the device-code client id.
    pub sso: Option<(Url, String)>,
    /// Claims an id_token must carry (`--bound-claim KEY=VALUE`), with `sso`.
    pub bound_claims: BTreeMap<String, String>,
    /// The namespace to configure (`--namespace`); `None`: `BAO_NAMESPACE` or the root.
    pub namespace: Option<String>,
    /// Give the existing userpass user a new password (`--reset-userpass`).
    pub reset_userpass: bool,
    /// CI repositories whose jobs may read the team's config (`--ci`).
    pub ci: Option<CiOptions>,
    /// The other nodes of the same raft cluster (HA): every node is unsealed and raft must list
    /// them all as voters.
    pub other_nodes: Vec<Url>,
    /// Unseal key shares and threshold at init; default 1/1 for one node, 5/3 for a cluster.
    pub key_shares: Option<(u8, u8)>,
    /// Retire the root token once configured (a `harmony-admin` token takes over); default on
    /// for a cluster.
    pub revoke_root: Option<bool>,
    /// Environments and access by role (`--environments`, `--access`).
    pub environments: Option<crate::AccessTable>,
    /// The team KV mount's `max_versions` (`--kv-max-versions`).
    pub kv_max_versions: u32,
}

/// `--key-shares N --key-threshold T` checked together: both or neither, `1 <= T <= N`, and a
/// threshold of 1 only with 1 share (one share of many unsealing alone defeats the split).
pub fn key_shares_from_flags(
    shares: Option<u8>,
    threshold: Option<u8>,
) -> Result<Option<(u8, u8)>, String> {
    match (shares, threshold) {
        (None, None) => Ok(None),
        (Some(n), Some(t)) if t >= 1 && t <= n && (t > 1 || n == 1) => Ok(Some((n, t))),
        (Some(n), Some(t)) => Err(format!(
            "--key-shares {n} --key-threshold {t}: the threshold must be between 2 and the number of \
             shares (or both 1), e.g. --key-shares 5 --key-threshold 3"
        )),
        _ => Err(
            "--key-shares and --key-threshold go together, e.g. --key-shares 5 --key-threshold 3"
                .to_owned(),
        ),
    }
}

/// Shares and threshold for a cluster unless asked otherwise: any three of five people unseal.
pub const HA_KEY_SHARES: (u8, u8) = (5, 3);

/// `KEY=VALUE` of `--bound-claim` (both binaries' flag parser).
pub fn parse_bound_claim(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() && !value.is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected KEY=VALUE (a claim name and the value it must have), got {s:?}"
        )),
    }
}

/// What [`bootstrap_existing`] did, and where it keeps the server's keys.
#[derive(Debug)]
pub struct ExistingBootstrap {
    /// The server (no trailing slash).
    pub url: String,
    /// Its local state (keys, userpass password).
    pub state: StateDir,
    /// What changed.
    pub report: BootstrapReport,
    /// The namespace configured (`None`: the root).
    pub namespace: Option<String>,
    /// For a cluster: each node, and how many raft voters the active node lists.
    pub nodes: Vec<NodeReport>,
    /// See `nodes`.
    pub voters: usize,
    /// Shares and threshold asked for at init.
    pub key_shares: (u8, u8),
    /// The request, for the summary.
    request: ExistingRequest,
}

/// Init (keys saved 0600 under the URL's [`StateDir`]) if uninitialised, unseal if sealed, then
/// configure as `request` says. TLS and namespace come from the environment (`BAO_CACERT`,
/// `BAO_NAMESPACE`, ...), the request's namespace winning.
pub async fn bootstrap_existing(
    url: &Url,
    request: ExistingRequest,
) -> Result<ExistingBootstrap, OpenbaoError> {
    let state = StateDir::for_url(url)?;
    let mut options = BootstrapOptions::local(state.clone())
        .with_connection_from_lookup(|name| std::env::var(name).ok())?;
    if request.namespace.is_some() {
        options.namespace = request.namespace.clone();
    }
    options.reset_userpass = request.reset_userpass;
    options.admin_token = request.admin_token.clone();
    options.ci = request.ci.clone();
    options.environments = request.environments.clone();
    options.kv_max_versions = request.kv_max_versions;
    let cluster = !request.other_nodes.is_empty();
    let (shares, threshold) =
        request
            .key_shares
            .unwrap_or(if cluster { HA_KEY_SHARES } else { (1, 1) });
    options.shares = shares;
    options.threshold = threshold;
    options.revoke_root = request.revoke_root.unwrap_or(cluster);
    if let Some((issuer, client_id)) = &request.sso {
        let issuer = Url::parse(issuer.as_str().trim_end_matches('/')).unwrap_or(issuer.clone());
        let mut jwt = JwtAuthOptions::oidc(issuer, vec![client_id.clone()]);
        jwt.bound_claims = request.bound_claims.clone();
        options.jwt = Some(jwt);
    }
    let namespace = options.namespace.clone();
    let (report, nodes, voters) = if cluster {
        let urls: Vec<Url> = std::iter::once(url.clone())
            .chain(request.other_nodes.iter().cloned())
            .collect();
        let done = OpenbaoClusterBootstrap::new(&urls, options)?.run().await?;
        (done.bootstrap, done.nodes, done.voters)
    } else {
        (
            OpenbaoBootstrap::new(url, options)?.run().await?,
            Vec::new(),
            0,
        )
    };
    Ok(ExistingBootstrap {
        url: url.as_str().trim_end_matches('/').to_owned(),
        state,
        report,
        namespace,
        nodes,
        voters,
        key_shares: (shares, threshold),
        request,
    })
}

/// Recover a lost or expired `harmony-admin` token of the OpenBao at `url` from the saved key
/// shares (see [`OpenbaoBootstrap::regenerate_root`]); returns the summary people read (stdout of
/// both binaries).
pub async fn regenerate_root(url: &Url) -> Result<Vec<String>, OpenbaoError> {
    let options = BootstrapOptions::local(StateDir::for_url(url)?)
        .with_connection_from_lookup(|name| std::env::var(name).ok())?;
    let changes = OpenbaoBootstrap::new(url, options)?
        .regenerate_root()
        .await?;
    Ok(
        std::iter::once(format!("OpenBao at {}", url.as_str().trim_end_matches('/')))
            .chain(changes.into_iter().map(|c| format!("  - {c}")))
            .collect(),
    )
}

/// What a person must know after an init with `shares`/`threshold`: where the keys are, and —
/// with several shares — that all of them sit on this machine and how to hand them out.
pub fn initialised_text(state: &StateDir, shares: u8, threshold: u8) -> String {
    if shares == 1 {
        format!(
            "initialised (1 key share); keys and root token saved to {} (0600)",
            state.keys_file().display()
        )
    } else {
        format!(
            "initialised with {shares} unseal key shares, any {threshold} of which unseal it. \
             ALL {shares} are saved on this machine in {} (0600) so this tool can unseal \
             every node: hand one share to each of {shares} people (the `keys_base64` list), \
             then delete the file if no machine should hold them all; a sealed node is \
             unsealed with `bao operator unseal` by any {threshold} of them.",
            state.keys_file().display()
        )
    }
}

impl ExistingBootstrap {
    /// The summary people read (stdout of both binaries).
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![match &self.namespace {
            Some(ns) => format!("OpenBao at {} (namespace {ns})", self.url),
            None => format!("OpenBao at {}", self.url),
        }];
        let (shares, threshold) = self.key_shares;
        if self.report.initialised {
            out.push(format!(
                "  {}",
                initialised_text(&self.state, shares, threshold)
            ));
        }
        for node in &self.nodes {
            if node.unreachable {
                out.push(format!(
                    "  node {}: unreachable (left alone; the next run unseals it)",
                    node.url
                ));
            } else if node.unsealed {
                out.push(format!("  node {}: unsealed", node.url));
            }
        }
        if !self.nodes.is_empty() && self.voters > 0 {
            out.push(format!("  raft: {} voters", self.voters));
        }
        if self.nodes.is_empty() && self.report.unsealed {
            out.push("  unsealed".to_owned());
        }
        match &self.report.skipped {
            Some(why) => out.push(format!("  configuration skipped: {why}")),
            None if self.report.changes.is_empty() => {
                out.push("  configuration: already as wanted, nothing changed".to_owned())
            }
            None => {
                out.push("  configuration changes:".to_owned());
                out.extend(self.report.changes.iter().map(|c| format!("    - {c}")));
            }
        }
        out.extend(self.report.notes.iter().map(|n| format!("  note: {n}")));
        if let Some(ci) = &self.request.ci {
            out.push(String::new());
            out.push(format!(
                "CI jobs of {} sign in with their own OIDC id_token (auth/{}/, read-only policy {}),",
                ci.trusts
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                ci.mount,
                HARMONY_CI_POLICY
            ));
            out.push(format!(
                "  audience {0} — set OPENBAO_URL={0} in the job; see the README's CI section.",
                ci.audience
            ));
        }
        // The table as the server records it (declared now or by an earlier run).
        let recorded = self
            .report
            .access
            .as_ref()
            .or(self.request.environments.as_ref());
        if let Some(table) = recorded {
            out.push(String::new());
            out.push(format!(
                "Environments {} — who may do what (recorded at {}; roles from the ID token's \
                 groups claim or Zitadel project roles, at sign-in):",
                table.environments.join(", "),
                crate::ACCESS_DOCUMENT
            ));
            out.extend(table.render().lines().map(|l| format!("  {l}")));
        } else if self.report.configured {
            out.push(String::new());
            out.push(
                "Environments not declared: everyone signed in reads and writes the one base \
                 (--environments dev,staging,prod declares them)"
                    .to_owned(),
            );
        }
        if let Some((issuer, client_id)) = &self.request.sso {
            let claims = &self.request.bound_claims;
            out.push(String::new());
            out.push(format!(
                "Who can sign in: anyone {} issues an id_token to for client {client_id}; OpenBao checks \
                 the audience and the issuer{}.",
                issuer.as_str().trim_end_matches('/'),
                if claims.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and the claims {}",
                        claims
                            .iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            if let Some(table) = &self.request.environments {
                out.push(format!(
                    "  With environments, only members of {} (the groups claim or Zitadel project \
                     roles) sign in; everyone else is refused at sign-in.",
                    table.roles.keys().cloned().collect::<Vec<_>>().join(" or ")
                ));
            } else if claims.is_empty() {
                out.push(
                    "  Access is limited only by the provider's own rules for that client. To limit it \
                     here too, re-run with --bound-claim KEY=VALUE (e.g. --bound-claim email=alice@example.com)."
                        .to_owned(),
                );
            }
        }
        out.push(String::new());
        out.push(format!("Local state: {}", self.state.path().display()));
        out
    }
}
