//! The device-code application in Zitadel, through its Management API v1 (phase C.2).
//!
//! With the first instance's machine-user PAT, [`ensure_device_app`] finds or creates the project
//! and, in it, a native OIDC application allowed the device-code and refresh-token grants with no
//! client secret (`OIDC_AUTH_METHOD_TYPE_NONE`): the CLI is a public client. The resulting
//! `{client_id, project_id, issuer}` is written as JSON to a state directory the caller passes
//! (the CLI uses `harmony_data_dir()/zitadel/<cluster>`), atomically.
//!
//! **Only the project's members sign in.** The project has `projectRoleCheck` (Zitadel refuses to
//! sign in a user without a grant on the project) and `hasProjectCheck` (the user's organisation
//! must own or be granted the project) on, and two roles, [`DEVELOPER_ROLE`] and [`OPS_ROLE`]
//! (the names of `--developer-role` / `--ops-role`); the users named in
//! [`DeviceAppSpec::grant_users`] get the developers' role, the first admin (only when the
//! deploy set its password) both. Without these checks every user of the Zitadel instance (on a
//! shared company instance: everyone) could sign in and get the `harmony-dev` policy. A project
//! found without the checks (created by an older Harmony) is updated.
//!
//! **The roles reach the ID token.** OpenBao's CEL sign-in role reads Zitadel's roles claim
//! (`urn:zitadel:iam:org:project:roles`) from the id_token, so the project asserts its roles
//! (`projectRoleAssertion`: roles in tokens without the roles scope) and the application puts
//! them, and the profile claims, into the id_token itself (`idTokenRoleAssertion`,
//! `idTokenUserinfoAssertion`; without them Zitadel keeps both for the userinfo endpoint, which
//! OpenBao never calls). An application found without them is updated with
//! `UpdateOIDCAppConfig`, which sets every field of the config: the ones we do not change are
//! sent as found. Zitadel refuses an update that changes nothing (`Errors.NoChangesFound`), so
//! nothing is sent when everything is already on.
//!
//! **The project-audience scope is optional, and kept.** Zitadel always puts the project id in
//! the id_token's `aud` next to the client id, and OpenBao's role binds the client id (which
//! names this application alone), so `urn:zitadel:iam:org:project:id:<projectId>:aud` changes
//! nothing for the sign-in. The CLI still requests it with the saved project id: it is harmless,
//! and it states in the request which project the token is for.
//!
//! Design choices:
//! - **Zitadel is the source of truth.** Every run searches by name first and creates only what
//!   is missing, so re-running never duplicates; the state file is rewritten from what Zitadel
//!   says, never trusted over it.
//! - **The Host is never hand-set.** Zitadel picks its instance from `Host` and builds its issuer
//!   from it (port included); from the host the CLI calls `http://sso.harmony.local:8080` with the
//!   name resolved to the load balancer ([`ZitadelApi::via_ingress`], [`crate::ingress`]), so the
//!   Host carries the port exactly as a browser's would.
//! - **A rejected PAT is its own error** ([`ZitadelSetupError::PatRejected`]): the usual cause is a
//!   PAT Secret that outlived its database, and the message says so. The PAT is a
//!   [`SecretString`] and appears in no log, `Debug` or error.
//!
//! Request and response field names follow Zitadel's proto definitions
//! (`zitadel.management.v1`, `zitadel.project.v1`, `zitadel.app.v1`, `zitadel.user.v1`) in their
//! JSON mapping (zitadel/zitadel `proto/zitadel/management.proto`, `project.proto`, `user.proto`,
//! as of v4.13.0; the v1 Management API is stable there). `UpdateOIDCAppConfigRequest` (fields
//! 3–18: `redirect_uris` … `login_version`, `PUT /management/v1/projects/{project_id}/apps/
//! {app_id}/oidc_config`) was checked against zitadel/zitadel `proto/zitadel/management.proto`
//! at commit 003b87275c3a, and the no-change refusal against `internal/command/
//! project_application_oidc.go` (`UpdateOIDCApplication`, `COMMAND-1m88i`) at commit
//! 02c386bf0ee8 (their release tags could not be read here: the repository is larger than the
//! snapshot limit).

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::Duration,
};

use reqwest::{Method, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use url::Url;

/// Name of the state file written under the state directory.
pub const STATE_FILE: &str = "sso-client.json";

/// Grant types of the device-code application.
pub const DEVICE_APP_GRANT_TYPES: [&str; 2] = [
    "OIDC_GRANT_TYPE_DEVICE_CODE",
    "OIDC_GRANT_TYPE_REFRESH_TOKEN",
];

/// Zitadel only accepts an OIDC app whose response types imply a grant it has: `CODE` together
/// with the device-code grant is the combination Zitadel's own console sends for device apps.
pub const DEVICE_APP_RESPONSE_TYPES: [&str; 1] = ["OIDC_RESPONSE_TYPE_CODE"];

/// Why setting up the Zitadel application failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZitadelSetupError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for Zitadel's API")]
    ClientBuild(#[source] reqwest::Error),

    /// The issuer Zitadel is published at is not a URL.
    #[error("Zitadel's issuer {issuer:?} is not a URL; check the domain")]
    BadIssuer {
        /// The issuer.
        issuer: String,
        /// Why it failed.
        #[source]
        source: url::ParseError,
    },

    /// A URL could not be formed from the base URL.
    #[error("cannot form the URL {path:?} on Zitadel base URL {base}; check the URL")]
    Url {
        /// The base URL.
        base: Url,
        /// The path that was joined.
        path: String,
        /// Why it failed.
        #[source]
        source: url::ParseError,
    },

    /// Zitadel could not be reached (connection refused, timeout, ...).
    #[error(
        "cannot reach Zitadel at {url}; is it running and reachable (k3d maps host port 8080 \
         to its load balancer), and is the URL's host its ExternalDomain?"
    )]
    Transport {
        /// The URL called.
        url: Url,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// Zitadel refused the personal access token.
    #[error(
        "Zitadel rejected the personal access token (HTTP {status}) at {url}. The PAT is probably \
         stale: the chart writes the `<machine-user>-pat` Secret only when it creates a fresh \
         database, so a PAT Secret that outlived its database (or a recreated database) no longer \
         matches. Delete Zitadel's database and the PAT Secret (or tear down with --cleanup) and \
         re-run so the setup job issues a new PAT, or supply a valid PAT"
    )]
    PatRejected {
        /// The URL called.
        url: Url,
        /// 401 or 403.
        status: StatusCode,
    },

    /// Zitadel answered with an error status.
    #[error("Zitadel answered HTTP {status} at {url}: {message}")]
    Api {
        /// The URL called.
        url: Url,
        /// The status.
        status: StatusCode,
        /// Zitadel's `message` (or the body's start).
        message: String,
    },

    /// The response body was not what the API documents.
    #[error("unexpected response from Zitadel at {url}: {detail}; is this a Zitadel v2+ instance?")]
    Decode {
        /// The URL called.
        url: Url,
        /// What was wrong.
        detail: String,
        /// The parse error, when there was one.
        #[source]
        source: Option<serde_json::Error>,
    },

    /// The discovery document names another issuer than the one Harmony configures.
    #[error(
        "Zitadel's discovery at {url} names issuer {found}, expected {expected}; check \
         ExternalDomain/ExternalPort/ExternalSecure in the Zitadel values"
    )]
    IssuerMismatch {
        /// The discovery URL.
        url: Box<Url>,
        /// The issuer Harmony expects.
        expected: String,
        /// The issuer Zitadel announced.
        found: String,
    },

    /// Zitadel did not become ready in time.
    #[error("Zitadel at {url} was not ready after {attempts} attempts; check its pods and ingress")]
    NotReady {
        /// The URL polled.
        url: Url,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<ZitadelSetupError>,
    },

    /// A user named for a project grant does not exist.
    #[error(
        "no Zitadel user with login name {login:?} in the organisation of the deploy's admin user; \
         create the user in Zitadel's console first, or correct the name given to --grant-user \
         (the login name as typed at Zitadel's login page, e.g. alice@zitadel.sso.harmony.local)"
    )]
    UserNotFound {
        /// The login name searched.
        login: String,
    },

    /// The state directory or file could not be written.
    #[error("cannot write the Zitadel client state to {path}; check the directory's permissions")]
    StateWrite {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The state file could not be read.
    #[error("cannot read the Zitadel client state {path}")]
    StateRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The state file is not valid JSON of the expected shape.
    #[error("the Zitadel client state {path} is corrupt; delete it and re-run the deploy")]
    StateParse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// What the CLI needs to sign in: saved after setup, read by the SSO login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoClientState {
    /// The public client id of the device-code application (also an `aud` of its id_tokens).
    pub client_id: String,
    /// The Zitadel project id (for the project-audience scope).
    pub project_id: String,
    /// The issuer URL, as OpenBao's `oidc_discovery_url` must name it.
    pub issuer: String,
}

/// The project role whose holders may sign in (the name matches OpenBao's JWT role).
pub const DEVELOPER_ROLE: &str = "harmony-developer";
/// The operators' project role (writes the base and every environment when environments are
/// declared).
pub const OPS_ROLE: &str = "harmony-ops";

/// Which project and application to ensure, and who may sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAppSpec {
    /// Project name (searched exactly).
    pub project_name: String,
    /// Application name (searched exactly within the project).
    pub app_name: String,
    /// The developers' project role (default [`DEVELOPER_ROLE`]), granted to `grant_users`.
    pub role_key: String,
    /// The operators' project role (default [`OPS_ROLE`]), created beside it.
    pub ops_role_key: String,
    /// Login names (as typed at Zitadel's login) granted `role_key`; each must exist in the
    /// organisation of the PAT's user.
    pub grant_users: Vec<String>,
    /// Login names granted both roles when they exist, skipped (with a log line) when not: the
    /// first instance's human admin, whom Zitadel creates from its defaults.
    pub grant_if_present: Vec<String>,
}

impl Default for DeviceAppSpec {
    fn default() -> Self {
        Self {
            project_name: "harmony".into(),
            app_name: "harmony-cli".into(),
            role_key: DEVELOPER_ROLE.into(),
            ops_role_key: OPS_ROLE.into(),
            grant_users: Vec::new(),
            grant_if_present: Vec::new(),
        }
    }
}

/// A small client for the parts of Zitadel's Management API v1 Harmony uses.
#[derive(Debug, Clone)]
pub struct ZitadelApi {
    base: Url,
    pat: SecretString,
    http: reqwest::Client,
}

/// Timeout for one request to Zitadel.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout for establishing a connection to Zitadel.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ZitadelApi {
    /// A client for Zitadel at `base` (e.g. `https://sso.example.com`) authenticating with `pat`.
    ///
    /// Requests time out after [`REQUEST_TIMEOUT`] (connect: [`CONNECT_TIMEOUT`]) and never
    /// follow redirects.
    pub fn new(base: Url, pat: SecretString) -> Result<Self, ZitadelSetupError> {
        Self::with_client_builder(base, pat, reqwest::Client::builder())
    }

    /// Zitadel behind a local cluster's load balancer: `http://<host>:<port>` with `host`
    /// resolved to the load balancer, so the Host header (and thus Zitadel's issuer) carries the
    /// port.
    pub fn via_ingress(
        ingress: &crate::ingress::LocalIngress,
        host: &str,
        pat: SecretString,
    ) -> Result<Self, ZitadelSetupError> {
        Self::with_client_builder(ingress.url(host), pat, ingress.client_builder())
    }

    /// Like [`Self::new`] on a caller's reqwest builder (resolver overrides, proxies); the
    /// timeouts and the no-redirect policy are added here.
    pub fn with_client_builder(
        base: Url,
        pat: SecretString,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, ZitadelSetupError> {
        let http = builder
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ZitadelSetupError::ClientBuild)?;
        Ok(Self { base, pat, http })
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url, ZitadelSetupError> {
        self.base
            .join(path)
            .map_err(|source| ZitadelSetupError::Url {
                base: self.base.clone(),
                path: path.to_owned(),
                source,
            })
    }

    /// Sends one request and decodes a JSON answer; maps 401/403 to `PatRejected`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        authenticated: bool,
    ) -> Result<T, ZitadelSetupError> {
        let url = self.url(path)?;
        let mut req = self
            .http
            .request(method, url.clone())
            .header(header::ACCEPT, "application/json");
        if authenticated {
            req = req.bearer_auth(self.pat.expose_secret());
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ZitadelSetupError::Transport {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| ZitadelSetupError::Transport {
                url: url.clone(),
                source,
            })?;
        if authenticated && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(ZitadelSetupError::PatRejected { url, status });
        }
        if !status.is_success() {
            return Err(ZitadelSetupError::Api {
                url,
                status,
                message: error_message(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| ZitadelSetupError::Decode {
            url,
            detail: "the body is not the JSON the API documents".into(),
            source: Some(source),
        })
    }

    /// The issuer from `/.well-known/openid-configuration` (unauthenticated).
    pub async fn discovery_issuer(&self) -> Result<String, ZitadelSetupError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
        }
        let d: Discovery = self
            .call(
                Method::GET,
                "/.well-known/openid-configuration",
                None,
                false,
            )
            .await?;
        Ok(d.issuer)
    }

    /// Polls discovery until Zitadel answers, at most `attempts` times `delay` apart, then checks
    /// it announces `expected_issuer`.
    pub async fn wait_ready(
        &self,
        expected_issuer: &str,
        attempts: u32,
        delay: Duration,
    ) -> Result<(), ZitadelSetupError> {
        let attempts = attempts.max(1);
        let url = self.url("/.well-known/openid-configuration")?;
        let mut attempt = 1;
        let found = loop {
            match self.discovery_issuer().await {
                Ok(issuer) => break issuer,
                Err(e) if attempt >= attempts => {
                    return Err(ZitadelSetupError::NotReady {
                        url,
                        attempts,
                        last: Box::new(e),
                    });
                }
                Err(e) => {
                    tracing::info!(
                        attempt,
                        attempts,
                        %url,
                        error = %crate::cnpg::retry::ErrorChain(&e),
                        "waiting for Zitadel's discovery document"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        };
        if found.trim_end_matches('/') != expected_issuer.trim_end_matches('/') {
            return Err(ZitadelSetupError::IssuerMismatch {
                url: Box::new(url),
                expected: expected_issuer.to_owned(),
                found,
            });
        }
        Ok(())
    }

    /// The project named exactly `name`, if there is one.
    ///
    /// `POST /management/v1/projects/_search` (ListProjects) answers `zitadel.project.v1.Project`s;
    /// proto3 JSON leaves out `false` booleans, so a missing check is off.
    pub async fn find_project(&self, name: &str) -> Result<Option<ProjectInfo>, ZitadelSetupError> {
        let body = json!({
            "queries": [{ "nameQuery": { "name": name, "method": "TEXT_QUERY_METHOD_EQUALS" } }]
        });
        let list: ListResponse<ProjectInfo> = self
            .call(
                Method::POST,
                "/management/v1/projects/_search",
                Some(&body),
                true,
            )
            .await?;
        Ok(list.result.into_iter().find(|p| p.name == name))
    }

    /// Creates a project named `name` with `projectRoleCheck` and `hasProjectCheck` on (only
    /// users granted one of its roles, in an organisation that owns it, may sign in) and returns
    /// its id. `POST /management/v1/projects` (AddProject).
    pub async fn create_project(&self, name: &str) -> Result<String, ZitadelSetupError> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let body = project_request(name);
        let path = "/management/v1/projects";
        let created: Created = self.call(Method::POST, path, Some(&body), true).await?;
        non_empty(created.id, self.url(path)?, "id")
    }

    /// Turns on `projectRoleCheck`, `hasProjectCheck` and `projectRoleAssertion` of an existing
    /// project, keeping its name and branding. `PUT /management/v1/projects/{id}`
    /// (UpdateProject sets every field, so the ones we do not change are sent as found).
    pub async fn converge_project(&self, project: &ProjectInfo) -> Result<(), ZitadelSetupError> {
        let path = format!("/management/v1/projects/{}", project.id);
        let mut body = project_request(&project.name);
        if let Some(setting) = &project.private_labeling_setting {
            body["privateLabelingSetting"] = json!(setting);
        }
        let _: Value = self.call(Method::PUT, &path, Some(&body), true).await?;
        Ok(())
    }

    /// Whether project `project_id` has a role with key `key`.
    /// `POST /management/v1/projects/{project_id}/roles/_search` (ListProjectRoles).
    pub async fn has_project_role(
        &self,
        project_id: &str,
        key: &str,
    ) -> Result<bool, ZitadelSetupError> {
        #[derive(Deserialize)]
        struct Role {
            #[serde(default)]
            key: String,
        }
        let path = format!("/management/v1/projects/{project_id}/roles/_search");
        let body = json!({
            "queries": [{ "keyQuery": { "key": key, "method": "TEXT_QUERY_METHOD_EQUALS" } }]
        });
        let list: ListResponse<Role> = self.call(Method::POST, &path, Some(&body), true).await?;
        Ok(list.result.iter().any(|r| r.key == key))
    }

    /// Adds role `key` to project `project_id`.
    /// `POST /management/v1/projects/{project_id}/roles` (AddProjectRole).
    pub async fn add_project_role(
        &self,
        project_id: &str,
        key: &str,
        display_name: &str,
    ) -> Result<(), ZitadelSetupError> {
        let path = format!("/management/v1/projects/{project_id}/roles");
        let body = json!({ "roleKey": key, "displayName": display_name });
        let _: Value = self.call(Method::POST, &path, Some(&body), true).await?;
        Ok(())
    }

    /// The id of the user whose login name is exactly `login`, in the organisation of the PAT's
    /// user. `POST /management/v1/users/_search` (ListUsers) with a `loginNameQuery`.
    pub async fn find_user_id(&self, login: &str) -> Result<Option<String>, ZitadelSetupError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct User {
            id: String,
            #[serde(default)]
            login_names: Vec<String>,
            #[serde(default)]
            preferred_login_name: String,
        }
        let body = json!({
            "queries": [{ "loginNameQuery": { "loginName": login, "method": "TEXT_QUERY_METHOD_EQUALS" } }]
        });
        let list: ListResponse<User> = self
            .call(
                Method::POST,
                "/management/v1/users/_search",
                Some(&body),
                true,
            )
            .await?;
        // Login names are case-insensitive at Zitadel's login.
        let same = |name: &str| name.eq_ignore_ascii_case(login);
        Ok(list
            .result
            .into_iter()
            .find(|u| same(&u.preferred_login_name) || u.login_names.iter().any(|n| same(n)))
            .map(|u| u.id))
    }

    /// Grants `roles` on `project_id` to user `user_id`, once: an existing grant on the project
    /// that lacks some gets them added (its other roles kept); one that has them all is left
    /// alone. `POST /management/v1/users/grants/_search` (ListUserGrants), then
    /// `POST /management/v1/users/{user_id}/grants` (AddUserGrant) or
    /// `PUT /management/v1/users/{user_id}/grants/{grant_id}` (UpdateUserGrant, which sets the
    /// whole role list). Returns the roles added.
    pub async fn grant_project_roles(
        &self,
        user_id: &str,
        project_id: &str,
        roles: &[&str],
    ) -> Result<Vec<String>, ZitadelSetupError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Grant {
            id: String,
            #[serde(default)]
            project_id: String,
            #[serde(default)]
            role_keys: Vec<String>,
        }
        let body = json!({
            "queries": [
                { "userIdQuery": { "userId": user_id } },
                { "projectIdQuery": { "projectId": project_id } }
            ]
        });
        let grants: ListResponse<Grant> = self
            .call(
                Method::POST,
                "/management/v1/users/grants/_search",
                Some(&body),
                true,
            )
            .await?;
        let existing = grants
            .result
            .into_iter()
            .find(|g| g.project_id == project_id);
        let held: &[String] = existing.as_ref().map_or(&[], |g| &g.role_keys);
        let missing: Vec<String> = roles
            .iter()
            .filter(|r| !held.iter().any(|k| k == *r))
            .map(|r| (*r).to_owned())
            .collect();
        if missing.is_empty() {
            return Ok(missing);
        }
        match existing {
            Some(grant) => {
                let mut role_keys = grant.role_keys;
                role_keys.extend(missing.iter().cloned());
                let path = format!("/management/v1/users/{user_id}/grants/{}", grant.id);
                let body = json!({ "roleKeys": role_keys });
                let _: Value = self.call(Method::PUT, &path, Some(&body), true).await?;
            }
            None => {
                let path = format!("/management/v1/users/{user_id}/grants");
                let body = json!({ "projectId": project_id, "roleKeys": missing });
                let _: Value = self.call(Method::POST, &path, Some(&body), true).await?;
            }
        }
        Ok(missing)
    }

    /// The OIDC app named exactly `name` in project `project_id`, if any.
    /// `POST /management/v1/projects/{project_id}/apps/_search` (ListApps).
    pub async fn find_app(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<OidcAppInfo>, ZitadelSetupError> {
        let path = format!("/management/v1/projects/{project_id}/apps/_search");
        let body = json!({
            "queries": [{ "nameQuery": { "name": name, "method": "TEXT_QUERY_METHOD_EQUALS" } }]
        });
        let list: ListResponse<App> = self.call(Method::POST, &path, Some(&body), true).await?;
        let Some(app) = list.result.into_iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        let Some(config) = app.oidc_config.filter(Value::is_object) else {
            return Err(ZitadelSetupError::Decode {
                url: self.url(&path)?,
                detail: format!(
                    "application {name:?} (id {}) exists but is not an OIDC application; \
                     rename or delete it in Zitadel's console",
                    app.id
                ),
                source: None,
            });
        };
        let client_id = config["clientId"].as_str().unwrap_or_default().to_owned();
        let client_id = non_empty(client_id, self.url(&path)?, "oidcConfig.clientId")?;
        Ok(Some(OidcAppInfo {
            id: app.id,
            client_id,
            config,
        }))
    }

    /// The client id of the OIDC app named exactly `name` in project `project_id`, if any.
    pub async fn find_app_client_id(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<Option<String>, ZitadelSetupError> {
        Ok(self.find_app(project_id, name).await?.map(|a| a.client_id))
    }

    /// Turns on the id_token's role and userinfo assertions of an existing app, every other
    /// field of its OIDC config sent as found.
    /// `PUT /management/v1/projects/{project_id}/apps/{app_id}/oidc_config` (UpdateOIDCAppConfig).
    pub async fn converge_app_assertions(
        &self,
        project_id: &str,
        app: &OidcAppInfo,
    ) -> Result<(), ZitadelSetupError> {
        let path = format!(
            "/management/v1/projects/{project_id}/apps/{}/oidc_config",
            app.id
        );
        let body = oidc_config_update(&app.config);
        let _: Value = self.call(Method::PUT, &path, Some(&body), true).await?;
        Ok(())
    }

    /// Creates the native device-code application `name` in `project_id`; returns its client id.
    pub async fn create_device_app(
        &self,
        project_id: &str,
        name: &str,
    ) -> Result<String, ZitadelSetupError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Created {
            #[serde(default)]
            client_id: String,
        }
        let path = format!("/management/v1/projects/{project_id}/apps/oidc");
        let body = device_app_request(name);
        let created: Created = self.call(Method::POST, &path, Some(&body), true).await?;
        non_empty(created.client_id, self.url(&path)?, "clientId")
    }
}

/// The body of `POST /management/v1/projects/{id}/apps/oidc` for the CLI's device-code app.
///
/// No redirect URIs: the device grant alone needs none (Zitadel's compliance check agrees).
/// `idTokenUserinfoAssertion` puts profile claims (email, name) in the id_token, and
/// `idTokenRoleAssertion` the project roles, which is what OpenBao sees.
pub fn device_app_request(name: &str) -> Value {
    json!({
        "name": name,
        "redirectUris": [],
        "responseTypes": DEVICE_APP_RESPONSE_TYPES,
        "grantTypes": DEVICE_APP_GRANT_TYPES,
        "appType": "OIDC_APP_TYPE_NATIVE",
        "authMethodType": "OIDC_AUTH_METHOD_TYPE_NONE",
        "version": "OIDC_VERSION_1_0",
        "accessTokenType": "OIDC_TOKEN_TYPE_BEARER",
        "idTokenRoleAssertion": true,
        "idTokenUserinfoAssertion": true
    })
}

/// The fields of `UpdateOIDCAppConfigRequest` besides the ids (management.proto, fields 3–18),
/// in their JSON names: everything the update sets.
pub const OIDC_CONFIG_UPDATE_FIELDS: [&str; 16] = [
    "redirectUris",
    "responseTypes",
    "grantTypes",
    "appType",
    "authMethodType",
    "postLogoutRedirectUris",
    "devMode",
    "accessTokenType",
    "accessTokenRoleAssertion",
    "idTokenRoleAssertion",
    "idTokenUserinfoAssertion",
    "clockSkew",
    "additionalOrigins",
    "skipNativeAppSuccessPage",
    "backChannelLogoutUri",
    "loginVersion",
];

/// The body of `UpdateOIDCAppConfig` that keeps `found` (an app's `oidcConfig` as ListApps
/// answers it) and turns on the id_token's role and userinfo assertions. proto3 JSON leaves
/// out defaults on both sides, so a field absent from `found` is left out here too.
pub fn oidc_config_update(found: &Value) -> Value {
    let mut body = serde_json::Map::new();
    for field in OIDC_CONFIG_UPDATE_FIELDS {
        if let Some(v) = found.get(field) {
            body.insert(field.to_owned(), v.clone());
        }
    }
    body.insert("idTokenRoleAssertion".into(), Value::Bool(true));
    body.insert("idTokenUserinfoAssertion".into(), Value::Bool(true));
    Value::Object(body)
}

/// An OIDC application as ListApps describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcAppInfo {
    /// The app id (path parameter of its updates).
    pub id: String,
    /// Its client id.
    pub client_id: String,
    /// Its `oidcConfig` as Zitadel answered it (`zitadel.app.v1.OIDCConfig`).
    pub config: Value,
}

impl OidcAppInfo {
    /// Roles and profile claims are in the id_token.
    pub fn asserts_roles_in_id_token(&self) -> bool {
        self.config["idTokenRoleAssertion"] == true
            && self.config["idTokenUserinfoAssertion"] == true
    }
}

#[derive(Deserialize)]
struct ListResponse<T> {
    #[serde(default = "Vec::new")]
    result: Vec<T>,
}

/// A project as `ListProjects` describes it (`zitadel.project.v1.Project`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectInfo {
    /// Project id (also an `aud` of the id_tokens of its apps).
    pub id: String,
    /// Project name.
    #[serde(default)]
    pub name: String,
    /// Roles asserted in tokens without being asked for.
    #[serde(default)]
    pub project_role_assertion: bool,
    /// Only users with a grant on the project may sign in.
    #[serde(default)]
    pub project_role_check: bool,
    /// Only users of an organisation owning or granted the project may sign in.
    #[serde(default)]
    pub has_project_check: bool,
    /// Branding setting (`PRIVATE_LABELING_SETTING_*`), kept on update.
    #[serde(default)]
    pub private_labeling_setting: Option<String>,
}

impl ProjectInfo {
    /// Both sign-in checks are on.
    pub fn members_only(&self) -> bool {
        self.project_role_check && self.has_project_check
    }

    /// Members only, and its roles asserted in tokens.
    pub fn converged(&self) -> bool {
        self.members_only() && self.project_role_assertion
    }
}

/// The body of `POST /management/v1/projects` (AddProjectRequest) for a members-only project
/// whose roles are asserted in tokens.
pub fn project_request(name: &str) -> Value {
    json!({
        "name": name,
        "projectRoleAssertion": true,
        "projectRoleCheck": true,
        "hasProjectCheck": true
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct App {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    oidc_config: Option<Value>,
}

fn non_empty(value: String, url: Url, field: &str) -> Result<String, ZitadelSetupError> {
    if value.is_empty() {
        Err(ZitadelSetupError::Decode {
            url,
            detail: format!("the response has no {field}"),
            source: None,
        })
    } else {
        Ok(value)
    }
}

/// Zitadel's error bodies are `{"code":…, "message":…}`; fall back to the body's start.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.message,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            match text.char_indices().nth(200) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None if text.is_empty() => "(empty body)".into(),
                None => text.to_owned(),
            }
        }
    }
}

/// Finds or creates the project and the device-code app, then saves [`SsoClientState`] to
/// `<state_dir>/`[`STATE_FILE`] (atomically) and returns it.
pub async fn ensure_device_app(
    api: &ZitadelApi,
    spec: &DeviceAppSpec,
    issuer: &str,
    state_dir: &Path,
) -> Result<SsoClientState, ZitadelSetupError> {
    let project_id = match api.find_project(&spec.project_name).await? {
        Some(project) if project.converged() => {
            tracing::info!(project = %spec.project_name, id = %project.id, "Zitadel project exists");
            project.id
        }
        Some(project) => {
            api.converge_project(&project).await?;
            tracing::info!(
                project = %spec.project_name,
                id = %project.id,
                "Zitadel project existed without the role checks or the role assertion; turned them on (only users granted a project role may sign in, and their roles reach the tokens)"
            );
            project.id
        }
        None => {
            let id = api.create_project(&spec.project_name).await?;
            tracing::info!(project = %spec.project_name, %id, "created Zitadel project (members only, roles asserted)");
            id
        }
    };
    for (key, display) in [
        (&spec.role_key, "Harmony developer"),
        (&spec.ops_role_key, "Harmony operator"),
    ] {
        if !api.has_project_role(&project_id, key).await? {
            api.add_project_role(&project_id, key, display).await?;
            tracing::info!(role = %key, "created the Zitadel project role");
        }
    }
    grant_role(api, spec, &project_id).await?;
    let client_id = match api.find_app(&project_id, &spec.app_name).await? {
        Some(app) if app.asserts_roles_in_id_token() => {
            tracing::info!(app = %spec.app_name, client_id = %app.client_id, "Zitadel device-code app exists");
            app.client_id
        }
        Some(app) => {
            api.converge_app_assertions(&project_id, &app).await?;
            tracing::info!(
                app = %spec.app_name,
                client_id = %app.client_id,
                "Zitadel device-code app existed without the id_token's role assertion; turned it on"
            );
            app.client_id
        }
        None => {
            let client_id = api.create_device_app(&project_id, &spec.app_name).await?;
            tracing::info!(app = %spec.app_name, %client_id, "created Zitadel device-code app");
            client_id
        }
    };
    let state = SsoClientState {
        client_id,
        project_id,
        issuer: issuer.to_owned(),
    };
    save_state(state_dir, &state).await?;
    Ok(state)
}

/// Grants the spec's roles: `grant_users` (must exist) the developers' role, `grant_if_present`
/// (may not exist) both roles.
async fn grant_role(
    api: &ZitadelApi,
    spec: &DeviceAppSpec,
    project_id: &str,
) -> Result<(), ZitadelSetupError> {
    let developer = [spec.role_key.as_str()];
    let both = [spec.role_key.as_str(), spec.ops_role_key.as_str()];
    let required = spec.grant_users.iter().map(|l| (l, true, &developer[..]));
    let optional = spec.grant_if_present.iter().map(|l| (l, false, &both[..]));
    for (login, required, roles) in required.chain(optional) {
        let Some(user_id) = api.find_user_id(login).await? else {
            if required {
                return Err(ZitadelSetupError::UserNotFound {
                    login: login.clone(),
                });
            }
            tracing::info!(%login, "no such Zitadel user; nobody granted the project roles for it");
            continue;
        };
        let added = api.grant_project_roles(&user_id, project_id, roles).await?;
        if !added.is_empty() {
            tracing::info!(%login, roles = %added.join(", "), "granted the Zitadel project roles");
        }
    }
    Ok(())
}

/// Writes `state` to `<dir>/`[`STATE_FILE`] through a temp file in `dir` and a rename.
pub async fn save_state(dir: &Path, state: &SsoClientState) -> Result<(), ZitadelSetupError> {
    let dir = dir.to_owned();
    let json =
        serde_json::to_vec_pretty(state).map_err(|source| ZitadelSetupError::StateParse {
            path: dir.join(STATE_FILE),
            source,
        })?;
    tokio::task::spawn_blocking(move || write_atomic(&dir, &json))
        .await
        .map_err(|join| ZitadelSetupError::StateWrite {
            path: PathBuf::from(STATE_FILE),
            source: std::io::Error::other(join),
        })?
}

fn write_atomic(dir: &Path, bytes: &[u8]) -> Result<(), ZitadelSetupError> {
    let path = dir.join(STATE_FILE);
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| ZitadelSetupError::StateWrite { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err(dir))?;
    tmp.write_all(bytes).map_err(err(&path))?;
    tmp.as_file().sync_all().map_err(err(&path))?;
    tmp.persist(&path)
        .map_err(|e| ZitadelSetupError::StateWrite {
            path: path.clone(),
            source: e.error,
        })?;
    Ok(())
}

/// Reads `<dir>/`[`STATE_FILE`]; `None` when the deploy has not written it yet.
pub async fn load_state(dir: &Path) -> Result<Option<SsoClientState>, ZitadelSetupError> {
    let path = dir.join(STATE_FILE);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ZitadelSetupError::StateRead { path, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ZitadelSetupError::StateParse { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_message_prefers_zitadel_message() {
        assert_eq!(
            error_message(br#"{"code":5,"message":"Project not found"}"#),
            "Project not found"
        );
        assert_eq!(error_message(b""), "(empty body)");
        assert_eq!(error_message(b"oops"), "oops");
    }

    #[test]
    fn api_debug_does_not_show_the_pat() {
        let api = ZitadelApi::new(
            Url::parse("http://127.0.0.1:1").expect("url"),
            SecretString::from("pat-very-secret-value"),
        )
        .expect("client");
        let dbg = format!("{api:?}");
        assert!(!dbg.contains("pat-very-secret-value"), "{dbg}");
    }
}
