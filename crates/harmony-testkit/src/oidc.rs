//! The test OpenID provider: the real `oidc-provider` package (pinned in
//! `tests/oidc-provider/package-lock.json`) run by Node on a free loopback port.
//!
//! It speaks the device authorization grant with rotating refresh tokens for one public client,
//! and [`OidcProvider::approve_user_code`] plays the person at the browser over plain HTTP (user
//! code form, login, consent), so the whole SSO path runs without a human and without a mock.
//! [`OidcProvider::configure_openbao_jwt`] points a test OpenBao's JWT auth at this provider.
//!
//! ```no_run
//! # async fn demo() -> Result<(), harmony_testkit::TestkitError> {
//! use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
//! let op = OidcProvider::start(OidcProviderOptions::default()).await?;
//! println!("issuer {} client {}", op.issuer(), op.client_id());
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{OpenbaoServer, TestkitError, free_port, io_err, locate, log_tail};

/// How long Node may take to load the provider and listen.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any single request to the provider may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How to run the provider. `Default` gives long lifetimes, no `interval` and no `slow_down`.
#[derive(Debug, Clone)]
pub struct OidcProviderOptions {
    /// The public client's id.
    pub client_id: String,
    /// Lifetime of id tokens.
    pub id_token_ttl: Duration,
    /// Lifetime of access tokens.
    pub access_token_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl: Duration,
    /// Lifetime of device codes (the `expires_in` of the device authorization response).
    pub device_code_ttl: Duration,
    /// Send this `interval` in the device authorization response (whole seconds). `None`: send
    /// none, as the provider itself does (clients then default to 5 s).
    pub interval: Option<Duration>,
    /// Answer this many device polls that would be `authorization_pending` with `slow_down`.
    pub slow_down: u32,
    /// Answer this many refresh-token grants with HTTP 500 `server_error` (as Zitadel answers an
    /// internal failure) before the provider sees them: the refresh token stays valid.
    pub fail_refresh: u32,
    /// Close the connection of this many refresh-token grants without an answer (a transport
    /// error for the client), before the provider sees them.
    pub drop_refresh: u32,
}

impl Default for OidcProviderOptions {
    fn default() -> Self {
        Self {
            client_id: "harmony-cli".to_owned(),
            id_token_ttl: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(3600),
            device_code_ttl: Duration::from_secs(600),
            interval: None,
            slow_down: 0,
            fail_refresh: 0,
            drop_refresh: 0,
        }
    }
}

/// One token request the provider saw (from its test-only logs): a device-code poll
/// ([`OidcProvider::polls`]) or a refresh-token grant ([`OidcProvider::refreshes`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DevicePoll {
    /// When it arrived, milliseconds since the Unix epoch (the provider's clock).
    pub at_ms: u64,
    /// `tokens` on success, else the OAuth error sent (`authorization_pending`, `slow_down`,
    /// `invalid_grant`, `server_error` for a failure made by `fail_refresh`, `dropped` for a
    /// connection closed by `drop_refresh`, ...).
    pub outcome: String,
}

/// A JWT role on OpenBao's JWT auth, for [`OidcProvider::configure_openbao_jwt`].
#[derive(Debug, Clone)]
pub struct JwtRole {
    /// Role name (the project's default is `harmony-developer`).
    pub name: String,
    /// `bound_audiences`; `None` means the provider's client id.
    pub bound_audiences: Option<Vec<String>>,
    /// `token_policies`.
    pub policies: Vec<String>,
    /// `token_ttl`, e.g. `"1h"` or `"3s"`.
    pub token_ttl: String,
    /// Set `expiration_leeway` and `clock_skew_leeway` to -1, so an expired id_token is refused
    /// at once (OpenBao otherwise accepts it for 210 s).
    pub strict_expiry: bool,
}

impl Default for JwtRole {
    fn default() -> Self {
        Self {
            name: "harmony-developer".to_owned(),
            bound_audiences: None,
            policies: vec!["default".to_owned()],
            token_ttl: "1h".to_owned(),
            strict_expiry: false,
        }
    }
}

/// A running test OpenID provider, killed on drop.
pub struct OidcProvider {
    child: Option<Child>,
    issuer: String,
    client_id: String,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn http_err(context: impl Into<String>) -> impl FnOnce(reqwest::Error) -> TestkitError {
    let context = context.into();
    move |e| TestkitError::Http {
        context,
        message: e.to_string(),
    }
}

/// The directory holding the provider's `package.json` and start script.
fn provider_dir() -> PathBuf {
    locate::workspace_root().join("tests/oidc-provider")
}

impl OidcProvider {
    /// Start a provider on a free loopback port; returns once it listens.
    pub async fn start(options: OidcProviderOptions) -> Result<Self, TestkitError> {
        let node = locate::node_binary()?;
        let script_dir = provider_dir();
        if !script_dir
            .join("node_modules/oidc-provider/package.json")
            .is_file()
        {
            return Err(TestkitError::Missing {
                what: "the test OpenID provider (node package `oidc-provider`)",
                searched: script_dir.join("node_modules").display().to_string(),
                hint: "Run scripts/install-test-servers (it runs `npm ci` in tests/oidc-provider).",
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("harmony-oidc-")
            .tempdir()
            .map_err(io_err("create a temp dir for the OpenID provider"))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(http_err("build HTTP client"))?;
        let mut provider = Self {
            child: None,
            issuer: String::new(),
            client_id: options.client_id.clone(),
            dir,
            http,
        };
        // A port from free_port can be taken before Node binds it: retry with fresh ports.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            match provider.spawn(&node, &script_dir, port, &options).await {
                Ok(()) => return Ok(provider),
                Err(e) => {
                    provider.kill().await;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| TestkitError::Http {
            context: "start the OpenID provider".into(),
            message: "no attempt was made".into(),
        }))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("oidc-provider.log")
    }

    async fn spawn(
        &mut self,
        node: &Path,
        script_dir: &Path,
        port: u16,
        options: &OidcProviderOptions,
    ) -> Result<(), TestkitError> {
        let issuer = format!("http://127.0.0.1:{port}");
        let mut args = vec![
            "server.mjs".to_owned(),
            format!("--port={port}"),
            format!("--issuer={issuer}"),
            format!("--client-id={}", options.client_id),
            format!("--id-token-ttl={}", options.id_token_ttl.as_secs()),
            format!("--access-token-ttl={}", options.access_token_ttl.as_secs()),
            format!(
                "--refresh-token-ttl={}",
                options.refresh_token_ttl.as_secs()
            ),
            format!("--device-code-ttl={}", options.device_code_ttl.as_secs()),
            format!("--slow-down={}", options.slow_down),
            format!("--fail-refresh={}", options.fail_refresh),
            format!("--drop-refresh={}", options.drop_refresh),
        ];
        if let Some(interval) = options.interval {
            args.push(format!("--interval={}", interval.as_secs()));
        }
        let log = std::fs::File::create(self.log_path()).map_err(io_err("create provider log"))?;
        let mut child = Command::new(node)
            .args(&args)
            .current_dir(script_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                program: node.to_path_buf(),
                source,
            })?;
        let stdout = child.stdout.take();
        self.child = Some(child);
        let Some(stdout) = stdout else {
            return Err(TestkitError::Http {
                context: "start the OpenID provider".into(),
                message: "no stdout pipe".into(),
            });
        };
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("ready ") {
                    return true;
                }
            }
            false
        })
        .await;
        match ready {
            Ok(true) => {
                // Keep draining stdout, so nothing the provider prints later can fail on a
                // closed pipe; the task ends when the process does.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                self.issuer = issuer;
                Ok(())
            }
            Ok(false) => Err(TestkitError::NotReady {
                what: "the OpenID provider",
                seconds: 0,
                log_tail: format!("(exited before ready)\n{}", log_tail(&self.log_path(), 20)),
            }),
            Err(_) => Err(TestkitError::NotReady {
                what: "the OpenID provider",
                seconds: READY_TIMEOUT.as_secs(),
                log_tail: log_tail(&self.log_path(), 20),
            }),
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The issuer, `http://127.0.0.1:<port>` (discovery at `<issuer>/.well-known/openid-configuration`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The provider's log (stderr) so far, for a test's own assertions.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The device-code polls the provider has seen, oldest first.
    pub async fn polls(&self) -> Result<Vec<DevicePoll>, TestkitError> {
        self.test_log("polls").await
    }

    /// The refresh-token grants the provider has seen, oldest first (`invalid_grant` marks a
    /// refresh token presented after it was revoked or already used, which revokes its grant).
    pub async fn refreshes(&self) -> Result<Vec<DevicePoll>, TestkitError> {
        self.test_log("refreshes").await
    }

    /// Register a CI job whose id_tokens carry `claims` (e.g. `repository`, `ref`,
    /// `job_workflow_ref`); returns the job's request token, what GitHub Actions puts in
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.
    pub async fn ci_job(&self, claims: &serde_json::Value) -> Result<String, TestkitError> {
        let url = format!("{}/harmony-test/ci-jobs", self.issuer);
        let resp = self
            .http
            .get(&url)
            .query(&[("claims", claims.to_string())])
            .send()
            .await
            .map_err(http_err(format!("GET {url}")))?;
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(http_err(format!("decode {url}")))?;
        body["request_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TestkitError::Http {
                context: format!("GET {url}"),
                message: format!("no request_token in {body}"),
            })
    }

    /// The provider's GitHub-Actions-style id_token endpoint (what GitHub puts in
    /// `ACTIONS_ID_TOKEN_REQUEST_URL`, with its `api-version` query as GitHub does).
    pub fn github_token_url(&self) -> String {
        format!("{}/harmony-test/github/token?api-version=2.0", self.issuer)
    }

    /// A CI job's id_token for `audience`, fetched as a job would (a GitLab job gets the same
    /// kind of token in a variable).
    pub async fn ci_id_token(
        &self,
        request_token: &str,
        audience: &str,
    ) -> Result<String, TestkitError> {
        let url = self.github_token_url();
        let resp = self
            .http
            .get(&url)
            .query(&[("audience", audience)])
            .bearer_auth(request_token)
            .send()
            .await
            .map_err(http_err(format!("GET {url}")))?;
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(http_err(format!("decode {url}")))?;
        body["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TestkitError::Http {
                context: format!("GET {url}"),
                message: "no `value` (id_token) in the answer".to_owned(),
            })
    }

    async fn test_log(&self, name: &str) -> Result<Vec<DevicePoll>, TestkitError> {
        let url = format!("{}/harmony-test/{name}", self.issuer);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(http_err(format!("GET {url}")))?;
        resp.json().await.map_err(http_err(format!("decode {url}")))
    }

    /// Approve a device flow's user code as a person would in the browser: open the user-code
    /// page, confirm, sign in as `login` (any password is accepted; `login` becomes `sub`) and
    /// consent. Afterwards the device's next poll gets tokens.
    pub async fn approve_user_code(
        &self,
        user_code: &str,
        login: &str,
    ) -> Result<(), TestkitError> {
        let browser = self.browser()?;
        let xsrf = self.open_user_code_page(&browser, user_code).await?;
        let login_page = self
            .post_form(
                &browser,
                "/device",
                &[
                    ("xsrf", &xsrf),
                    ("user_code", user_code),
                    ("confirm", "yes"),
                ],
            )
            .await?;
        let login_uid = interaction_uid(&login_page, "confirm the user code")?;
        let consent_page = self
            .post_form(
                &browser,
                &format!("/interaction/{login_uid}"),
                &[("prompt", "login"), ("login", login), ("password", "any")],
            )
            .await?;
        let consent_uid = interaction_uid(&consent_page, "sign in")?;
        let done = self
            .post_form(
                &browser,
                &format!("/interaction/{consent_uid}"),
                &[("prompt", "consent")],
            )
            .await?;
        if !done.body.contains("Sign-in Success") {
            return Err(TestkitError::Http {
                context: format!("consent for user code {user_code}"),
                message: format!("no success page at {}: {}", done.url, excerpt(&done.body)),
            });
        }
        Ok(())
    }

    /// Deny a device flow's user code: open the user-code page and press "Abort". The device's
    /// next poll gets `access_denied`.
    pub async fn deny_user_code(&self, user_code: &str) -> Result<(), TestkitError> {
        let browser = self.browser()?;
        let xsrf = self.open_user_code_page(&browser, user_code).await?;
        let page = self
            .post_form(
                &browser,
                "/device",
                &[("xsrf", &xsrf), ("user_code", user_code), ("abort", "yes")],
            )
            .await?;
        if !page.body.contains("interrupted") {
            return Err(TestkitError::Http {
                context: format!("abort user code {user_code}"),
                message: format!("no abort page at {}: {}", page.url, excerpt(&page.body)),
            });
        }
        Ok(())
    }

    /// Revoke a refresh token at the provider's revocation endpoint (this revokes its whole
    /// grant, like an administrator ending the user's sessions).
    pub async fn revoke_refresh_token(&self, refresh_token: &str) -> Result<(), TestkitError> {
        let url = format!("{}/token/revocation", self.issuer);
        let resp = self
            .http
            .post(&url)
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .send()
            .await
            .map_err(http_err(format!("POST {url}")))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(TestkitError::Http {
                context: format!("POST {url}"),
                message: format!("{status}: {text}"),
            });
        }
        Ok(())
    }

    /// Point `bao`'s JWT auth at this provider: enable the `jwt` auth method at `mount` (if not
    /// yet), write `auth/<mount>/config` with `oidc_discovery_url` = the issuer (exactly — OpenBao
    /// fetches discovery now and compares issuers), and write `role`.
    pub async fn configure_openbao_jwt(
        &self,
        bao: &OpenbaoServer,
        mount: &str,
        role: &JwtRole,
    ) -> Result<(), TestkitError> {
        let auths = bao
            .root_call(reqwest::Method::GET, "sys/auth", None)
            .await?;
        let key = format!("{mount}/");
        if auths.get(&key).is_none() && auths["data"].get(&key).is_none() {
            bao.root_call(
                reqwest::Method::POST,
                &format!("sys/auth/{mount}"),
                Some(json!({ "type": "jwt" })),
            )
            .await?;
        }
        bao.root_call(
            reqwest::Method::POST,
            &format!("auth/{mount}/config"),
            Some(json!({ "oidc_discovery_url": self.issuer })),
        )
        .await?;
        self.write_openbao_jwt_role(bao, mount, role).await
    }

    /// Write (or overwrite) a JWT role on an already configured JWT auth mount.
    pub async fn write_openbao_jwt_role(
        &self,
        bao: &OpenbaoServer,
        mount: &str,
        role: &JwtRole,
    ) -> Result<(), TestkitError> {
        let audiences = role
            .bound_audiences
            .clone()
            .unwrap_or_else(|| vec![self.client_id.clone()]);
        let mut body = json!({
            "role_type": "jwt",
            "bound_audiences": audiences,
            "user_claim": "sub",
            "token_policies": role.policies,
            "token_ttl": role.token_ttl,
        });
        if role.strict_expiry {
            body["expiration_leeway"] = json!(-1);
            body["clock_skew_leeway"] = json!(-1);
        }
        bao.root_call(
            reqwest::Method::POST,
            &format!("auth/{mount}/role/{}", role.name),
            Some(body),
        )
        .await?;
        Ok(())
    }

    /// A fresh "browser": its own cookie jar, following redirects like a browser does.
    fn browser(&self) -> Result<reqwest::Client, TestkitError> {
        reqwest::Client::builder()
            .cookie_store(true)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(http_err("build the browser HTTP client"))
    }

    /// GET `/device?user_code=…` and return the form's `xsrf` value.
    async fn open_user_code_page(
        &self,
        browser: &reqwest::Client,
        user_code: &str,
    ) -> Result<String, TestkitError> {
        let url = format!("{}/device", self.issuer);
        let resp = browser
            .get(&url)
            .query(&[("user_code", user_code)])
            .send()
            .await
            .map_err(http_err(format!("GET {url}")))?;
        let body = resp.text().await.map_err(http_err(format!("read {url}")))?;
        hidden_input(&body, "xsrf").ok_or_else(|| TestkitError::Http {
            context: format!("GET {url}?user_code={user_code}"),
            message: format!("no xsrf field in the page: {}", excerpt(&body)),
        })
    }

    async fn post_form(
        &self,
        browser: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Page, TestkitError> {
        let url = format!("{}{path}", self.issuer);
        let resp = browser
            .post(&url)
            .form(form)
            .send()
            .await
            .map_err(http_err(format!("POST {url}")))?;
        let final_url = resp.url().clone();
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(http_err(format!("read the answer to POST {url}")))?;
        Ok(Page {
            url: final_url,
            status,
            body,
        })
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // kill_on_drop would do this too; start_kill makes it explicit and immediate.
            let _ = child.start_kill();
        }
    }
}

/// A page the "browser" ended on after following redirects.
struct Page {
    url: url::Url,
    status: reqwest::StatusCode,
    body: String,
}

/// The uid of the interaction page the browser was redirected to.
fn interaction_uid(page: &Page, step: &str) -> Result<String, TestkitError> {
    let path = page.url.path();
    match path.strip_prefix("/interaction/") {
        Some(uid) if !uid.is_empty() && !uid.contains('/') => Ok(uid.to_owned()),
        _ => Err(TestkitError::Http {
            context: format!("{step} (device flow approval)"),
            message: format!(
                "expected a redirect to /interaction/<uid>, ended at {} (HTTP {}): {}",
                page.url,
                page.status,
                excerpt(&page.body)
            ),
        }),
    }
}

/// The value of `<input type="hidden" name="{name}" value="…">` in an HTML page.
fn hidden_input(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let len = html[start..].find('"')?;
    Some(html[start..start + len].to_owned())
}

/// The visible text of an HTML page, shortened for an error message.
fn excerpt(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_input_finds_value() {
        let html = r#"<form><input type="hidden" name="xsrf" value="abc123"/></form>"#;
        assert_eq!(hidden_input(html, "xsrf").as_deref(), Some("abc123"));
        assert_eq!(hidden_input(html, "other"), None);
    }

    #[test]
    fn excerpt_strips_tags() {
        assert_eq!(excerpt("<p>Hello <b>you</b></p>"), "Hello you");
    }
}
