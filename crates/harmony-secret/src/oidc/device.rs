//! The device authorization grant (RFC 8628): ask for a code, tell the user, poll until
//! approved, denied or expired.
//!
//! Polling is `oauth2`'s: it keeps the interval on `authorization_pending`, adds 5 s on
//! `slow_down`, and gives up once the code's `expires_in` has passed. The sleep between polls is
//! ours, so every wait is logged with what it waits for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oauth2::{DeviceAuthorizationResponse, RequestTokenError};
use oauth2::{DeviceCodeErrorResponseType, EmptyExtraDeviceAuthorizationFields};

use crate::oidc::grant::{request_error, tokens_from};
use crate::oidc::http::transport;
use crate::oidc::{OidcClient, OidcError, OidcTokens};

/// What the user must do to approve a sign-in: open a URL and confirm (or enter) the code.
///
/// The user code is not a credential (it only identifies the pending request, is short-lived
/// and useless without the user's own sign-in), so it is shown in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePrompt {
    /// The page where the code is entered.
    pub verification_uri: String,
    /// The page with the code already filled in, when the provider offers one.
    pub verification_uri_complete: Option<String>,
    /// The code to enter (or to compare with the one shown on the page).
    pub user_code: String,
    /// How long the code stays valid.
    pub expires_in: Duration,
}

impl DevicePrompt {
    /// The best page to open: the one with the code filled in, else the plain one.
    pub fn url_to_open(&self) -> &str {
        self.verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_uri)
    }
}

/// Shows the user a [`DevicePrompt`]. The CLI writes it to stderr; tests capture the code.
///
/// Called once per device flow, before polling starts, on the async runtime: it must not block
/// (hand long work to a thread).
pub trait DeviceCodeNotifier: Send + Sync {
    /// Tell the user where to go and which code to confirm.
    fn notify(&self, prompt: &DevicePrompt);
}

impl<F: Fn(&DevicePrompt) + Send + Sync> DeviceCodeNotifier for F {
    fn notify(&self, prompt: &DevicePrompt) {
        self(prompt)
    }
}

/// How to run a device flow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceFlowOptions {
    /// Also open [`DevicePrompt::url_to_open`] in the desktop's browser (`xdg-open` / `open`).
    /// A browser that fails to open is logged, not an error: the prompt already told the user.
    pub open_browser: bool,
    /// Stop polling after this long even if the code is still valid (`None`: the code's
    /// `expires_in`, the natural bound).
    pub max_wait: Option<Duration>,
}

impl DeviceFlowOptions {
    /// Options from a variable lookup: the browser opens unless `HARMONY_SSO_OPEN_BROWSER` is
    /// `0`, `false`, `no` or `off`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let open = lookup(harmony_env::vars::HARMONY_SSO_OPEN_BROWSER).is_none_or(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "false" | "no" | "off"
            )
        });
        Self {
            open_browser: open,
            max_wait: None,
        }
    }
}

impl OidcClient {
    /// Run the device authorization grant: request a code (scopes from
    /// [`crate::oidc::SsoSettings::scopes`]), show it through `notifier`, and poll the token
    /// endpoint until the user approves ([`OidcTokens`]), denies ([`OidcError::AccessDenied`]),
    /// or the code expires ([`OidcError::DeviceCodeExpired`]).
    pub async fn device_flow(
        &self,
        notifier: &dyn DeviceCodeNotifier,
        options: &DeviceFlowOptions,
    ) -> Result<OidcTokens, OidcError> {
        let client = self.device_client()?;
        let device_url = client.device_authorization_url().url().to_string();
        let token_url = self.metadata.token_endpoint.clone();
        let transport = transport(&self.http);

        let details: DeviceAuthorizationResponse<EmptyExtraDeviceAuthorizationFields> = client
            .exchange_device_code()
            .add_scopes(self.scopes())
            .request_async(&transport)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => OidcError::DeviceAuthorization {
                    url: device_url.clone(),
                    error: r.error().to_string(),
                    description: r.error_description().cloned(),
                },
                other => request_error(&device_url, other),
            })?;

        let prompt = DevicePrompt {
            verification_uri: details.verification_uri().to_string(),
            verification_uri_complete: details
                .verification_uri_complete()
                .map(|u| u.secret().to_owned()),
            user_code: details.user_code().secret().to_owned(),
            expires_in: details.expires_in(),
        };
        notifier.notify(&prompt);
        if options.open_browser {
            open_in_browser(prompt.url_to_open());
        }
        let expires_in_secs = details.expires_in().as_secs();
        tracing::info!(
            verification_uri = %prompt.verification_uri,
            expires_in_secs,
            interval_secs = details.interval().as_secs(),
            "waiting for the sign-in to be approved in the browser"
        );

        let last_interval = AtomicU64::new(details.interval().as_millis() as u64);
        let sleep = |interval: Duration| {
            let millis = interval.as_millis() as u64;
            if last_interval.swap(millis, Ordering::Relaxed) != millis {
                tracing::info!(
                    interval_secs = interval.as_secs_f64(),
                    "the provider asked to poll more slowly (or did not answer); polling less often"
                );
            }
            tracing::debug!(
                wait_secs = interval.as_secs_f64(),
                "sign-in not approved yet; waiting before the next poll"
            );
            tokio::time::sleep(interval)
        };
        let response = client
            .exchange_device_access_token(&details)
            .request_async(&transport, sleep, options.max_wait)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => match r.error() {
                    DeviceCodeErrorResponseType::AccessDenied => OidcError::AccessDenied {
                        issuer: self.metadata.issuer.clone(),
                    },
                    DeviceCodeErrorResponseType::ExpiredToken => {
                        OidcError::DeviceCodeExpired { expires_in_secs }
                    }
                    other => OidcError::TokenEndpoint {
                        url: token_url.clone(),
                        error: other.to_string(),
                        description: r.error_description().cloned(),
                    },
                },
                other => request_error(&token_url, other),
            })?;
        tracing::info!(issuer = %self.metadata.issuer, "sign-in approved");
        tokens_from(&token_url, response)
    }
}

/// Open `url` in the desktop's browser, without waiting for it. Failures are logged only.
fn open_in_browser(url: &str) {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => {
            // Reap it off the runtime so no zombie is left; its exit status does not matter.
            std::thread::spawn(move || child.wait());
        }
        Err(e) => {
            tracing::warn!(program, error = %e, "could not open a browser; open the URL shown by hand")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn browser_opens_unless_disabled() {
        let none: HashMap<&str, &str> = HashMap::new();
        assert!(
            DeviceFlowOptions::from_lookup(|k| none.get(k).map(|v| v.to_string())).open_browser
        );
        for off in ["0", "false", "No", " off "] {
            let map = HashMap::from([(harmony_env::vars::HARMONY_SSO_OPEN_BROWSER, off)]);
            assert!(
                !DeviceFlowOptions::from_lookup(|k| map.get(k).map(|v| v.to_string())).open_browser,
                "{off}"
            );
        }
        assert!(!DeviceFlowOptions::default().open_browser);
    }

    #[test]
    fn prompt_prefers_the_complete_uri() {
        let mut p = DevicePrompt {
            verification_uri: "https://sso/device".into(),
            verification_uri_complete: Some("https://sso/device?user_code=AB-CD".into()),
            user_code: "AB-CD".into(),
            expires_in: Duration::from_secs(600),
        };
        assert_eq!(p.url_to_open(), "https://sso/device?user_code=AB-CD");
        p.verification_uri_complete = None;
        assert_eq!(p.url_to_open(), "https://sso/device");
    }
}
