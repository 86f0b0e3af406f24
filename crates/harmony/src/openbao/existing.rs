//! Bootstrapping an OpenBao the user points at (`harmony bootstrap --openbao-url URL`,
//! `harmony-sso --openbao-url URL`): the deploy's own [`OpenbaoBootstrap`] with the state kept
//! per URL, and the summary both binaries print.

use secrecy::SecretString;
use url::Url;

use crate::openbao::{
    BootstrapOptions, BootstrapReport, JwtAuthOptions, OpenbaoBootstrap, OpenbaoError, StateDir,
};

/// What [`bootstrap_existing`] did, and where it keeps the server's keys.
#[derive(Debug)]
pub struct ExistingBootstrap {
    /// The server (no trailing slash).
    pub url: String,
    /// Its local state (keys, userpass password).
    pub state: StateDir,
    /// What changed.
    pub report: BootstrapReport,
}

/// Init (keys saved 0600 under the URL's [`StateDir`]) if uninitialised, unseal if sealed, then
/// configure; with `sso` (issuer, client id) also wire JWT auth to that provider. `admin_token`
/// configures a server initialised elsewhere.
pub async fn bootstrap_existing(
    url: &Url,
    admin_token: Option<SecretString>,
    sso: Option<(&Url, &str)>,
) -> Result<ExistingBootstrap, OpenbaoError> {
    let state = StateDir::for_url(url)?;
    let mut options = BootstrapOptions::local(state.clone());
    options.admin_token = admin_token;
    if let Some((issuer, client_id)) = sso {
        let issuer = Url::parse(issuer.as_str().trim_end_matches('/')).unwrap_or(issuer.clone());
        options.jwt = Some(JwtAuthOptions::oidc(issuer, vec![client_id.to_owned()]));
    }
    let report = OpenbaoBootstrap::new(url, options)?.run().await?;
    Ok(ExistingBootstrap {
        url: url.as_str().trim_end_matches('/').to_owned(),
        state,
        report,
    })
}

impl ExistingBootstrap {
    /// The summary people read (stdout of both binaries).
    pub fn summary(&self) -> Vec<String> {
        let mut out = vec![format!("OpenBao at {}", self.url)];
        if self.report.initialised {
            out.push(format!(
                "  initialised (1 key share); keys and root token saved to {} (0600)",
                self.state.keys_file().display()
            ));
        }
        if self.report.unsealed {
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
        out.push(String::new());
        out.push(format!("Local state: {}", self.state.path().display()));
        out
    }
}
