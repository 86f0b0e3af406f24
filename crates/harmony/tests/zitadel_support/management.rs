//! A stand-in for the part of Zitadel's Management API v1 the deploy uses, with state: what one
//! request creates, the next one finds. It answers as Zitadel does, in the proto3 JSON mapping
//! of its gateway (false booleans and empty lists left out), so a client that re-creates what
//! exists, forgets a field on an update, or grants a role before creating it fails here as it
//! would there.
//!
//! Encoded from zitadel/zitadel (tags could not be read here: the repository is larger than the
//! snapshot limit, so the commits of the stored versions are named):
//! - `proto/zitadel/management.proto` @ 003b87275c3a: the routes (`google.api.http`, base path
//!   `/management/v1`) and `UpdateOIDCAppConfigRequest` (fields 3–18; an update sets them all,
//!   an absent one to its default);
//! - `proto/zitadel/app.proto`, `project.proto`: `OIDCConfig` (`idTokenRoleAssertion`,
//!   `idTokenUserinfoAssertion`, ...), `Project` (`projectRoleAssertion`, `projectRoleCheck`,
//!   `hasProjectCheck`);
//! - `internal/command/project_application_oidc.go` @ 02c386bf0ee8 (`UpdateOIDCApplication`:
//!   no change → `Errors.NoChangesFound`, `COMMAND-1m88i`, a precondition failure) and
//!   `internal/command/project.go` (`ChangeProject`: the same, `COMMAND-2M0fs`); gRPC's
//!   FailedPrecondition is HTTP 400 and AlreadyExists 409 at the gateway.
//! - A user grant's roles must exist on the project (`Errors.Project.Role.NotFound`), and a user
//!   has one grant per project (`Errors.UserGrant.AlreadyExists`).

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

/// One user of the instance.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub login: String,
}

/// One user grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub user_id: String,
    pub project_id: String,
    pub role_keys: Vec<String>,
}

/// What the instance holds.
#[derive(Debug, Default)]
pub struct State {
    /// Projects as `zitadel.project.v1.Project` JSON (with `id` and `name`).
    pub projects: Vec<Value>,
    /// (project id, role key).
    pub roles: Vec<(String, String)>,
    pub users: Vec<User>,
    pub grants: Vec<Grant>,
    /// (project id, app JSON `{id, name, oidcConfig}`).
    pub apps: Vec<(String, Value)>,
    /// Every request that changed something: (method, path).
    pub writes: Vec<(String, String)>,
    next_id: u64,
}

impl State {
    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("27{:016}", self.next_id)
    }

    /// The project named `name`.
    pub fn project(&self, name: &str) -> Option<&Value> {
        self.projects.iter().find(|p| p["name"] == name)
    }

    /// The OIDC config of the app named `name`.
    pub fn app_config(&self, name: &str) -> Option<&Value> {
        self.apps
            .iter()
            .find(|(_, a)| a["name"] == name)
            .map(|(_, a)| &a["oidcConfig"])
    }

    /// The role keys granted to the user with login `login`, on any project.
    pub fn roles_of(&self, login: &str) -> Vec<String> {
        let Some(user) = self.users.iter().find(|u| u.login == login) else {
            return Vec::new();
        };
        self.grants
            .iter()
            .filter(|g| g.user_id == user.id)
            .flat_map(|g| g.role_keys.clone())
            .collect()
    }
}

/// The stand-in: mount with `Mock::given(any()).respond_with(standin.clone())`.
#[derive(Clone, Default)]
pub struct ZitadelStandIn {
    pub state: Arc<Mutex<State>>,
    pat: String,
}

/// Status and JSON body of an answer.
type Reply = (u16, Value);

fn ok(body: Value) -> Reply {
    (200, body)
}

fn error(status: u16, code: u8, message: &str) -> Reply {
    (status, json!({"code": code, "message": message}))
}

fn no_changes(id: &str) -> Reply {
    error(400, 9, &format!("Errors.NoChangesFound ({id})"))
}

fn details() -> Value {
    json!({"details": {"sequence": "1"}})
}

/// proto3 JSON: defaults (false, empty list, empty string) left out.
fn compact(mut v: Value) -> Value {
    if let Value::Object(map) = &mut v {
        map.retain(|_, x| {
            !matches!(x, Value::Bool(false))
                && !matches!(x, Value::Array(a) if a.is_empty())
                && !matches!(x, Value::String(s) if s.is_empty())
        });
    }
    v
}

fn list(result: Vec<Value>) -> Reply {
    if result.is_empty() {
        return ok(json!({"details": {"totalResult": "0"}}));
    }
    ok(json!({"details": {"totalResult": result.len().to_string()}, "result": result}))
}

/// The value of the first query's `key` in a `_search` body (`queries[0].<query>.<key>`).
fn query(body: &Value, query: &str, key: &str) -> Option<String> {
    body["queries"]
        .as_array()?
        .iter()
        .find_map(|q| q[query][key].as_str().map(str::to_owned))
}

/// `OIDCConfig` fields an `UpdateOIDCAppConfigRequest` sets (management.proto fields 3–18).
const OIDC_UPDATE_FIELDS: [&str; 16] = [
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

impl ZitadelStandIn {
    /// An instance whose API accepts `pat`, with these users (login names).
    pub fn new(pat: &str, users: &[&str]) -> Self {
        let standin = Self {
            state: Arc::default(),
            pat: pat.to_owned(),
        };
        {
            let mut s = standin.state.lock().expect("lock");
            for login in users {
                let id = s.id();
                s.users.push(User {
                    id,
                    login: (*login).to_owned(),
                });
            }
        }
        standin
    }

    fn handle(&self, method: &str, path: &str, body: &Value) -> Reply {
        let mut s = self.state.lock().expect("lock");
        let parts: Vec<&str> = path
            .trim_start_matches("/management/v1/")
            .split('/')
            .collect();
        let write = !path.ends_with("/_search");
        let response = match (method, parts.as_slice()) {
            ("POST", ["projects", "_search"]) => {
                let name = query(body, "nameQuery", "name").unwrap_or_default();
                let found = s
                    .projects
                    .iter()
                    .filter(|p| p["name"] == name.as_str())
                    .map(|p| compact(p.clone()))
                    .collect();
                list(found)
            }
            ("POST", ["projects"]) => {
                let id = s.id();
                let mut p = project_fields(body);
                p["id"] = json!(id);
                p["state"] = json!("PROJECT_STATE_ACTIVE");
                s.projects.push(p);
                ok(json!({"id": id, "details": {"sequence": "1"}}))
            }
            ("PUT", ["projects", id]) => {
                let Some(p) = s.projects.iter_mut().find(|p| p["id"] == *id) else {
                    return error(404, 5, "Errors.Project.NotFound");
                };
                let mut new = project_fields(body);
                new["id"] = p["id"].clone();
                new["state"] = p["state"].clone();
                if compact(new.clone()) == compact(p.clone()) {
                    no_changes("COMMAND-2M0fs")
                } else {
                    *p = new;
                    ok(details())
                }
            }
            ("POST", ["projects", pid, "roles", "_search"]) => {
                let key = query(body, "keyQuery", "key").unwrap_or_default();
                let found = s
                    .roles
                    .iter()
                    .filter(|(p, k)| p == pid && *k == key)
                    .map(|(_, k)| json!({"key": k, "displayName": k}))
                    .collect();
                list(found)
            }
            ("POST", ["projects", pid, "roles"]) => {
                let key = body["roleKey"].as_str().unwrap_or_default().to_owned();
                if s.roles.iter().any(|(p, k)| p == pid && *k == key) {
                    error(409, 6, "Errors.Project.Role.AlreadyExists")
                } else {
                    s.roles.push(((*pid).to_owned(), key));
                    ok(details())
                }
            }
            ("POST", ["users", "_search"]) => {
                let login = query(body, "loginNameQuery", "loginName").unwrap_or_default();
                let found = s
                    .users
                    .iter()
                    .filter(|u| u.login == login)
                    .map(|u| {
                        json!({"id": u.id, "state": "USER_STATE_ACTIVE",
                               "loginNames": [u.login], "preferredLoginName": u.login})
                    })
                    .collect();
                list(found)
            }
            ("POST", ["users", "grants", "_search"]) => {
                let user = query(body, "userIdQuery", "userId");
                let project = query(body, "projectIdQuery", "projectId");
                let found = s
                    .grants
                    .iter()
                    .filter(|g| user.as_deref().is_none_or(|u| g.user_id == u))
                    .filter(|g| project.as_deref().is_none_or(|p| g.project_id == p))
                    .map(|g| {
                        compact(json!({"id": g.id, "userId": g.user_id,
                                       "projectId": g.project_id, "roleKeys": g.role_keys}))
                    })
                    .collect();
                list(found)
            }
            ("POST", ["users", uid, "grants"]) => {
                let project = body["projectId"].as_str().unwrap_or_default().to_owned();
                let keys = strings(&body["roleKeys"]);
                if s.grants
                    .iter()
                    .any(|g| g.user_id == *uid && g.project_id == project)
                {
                    error(409, 6, "Errors.UserGrant.AlreadyExists")
                } else if let Some(missing) = keys
                    .iter()
                    .find(|k| !s.roles.iter().any(|(p, r)| *p == project && r == *k))
                {
                    error(400, 9, &format!("Errors.Project.Role.NotFound ({missing})"))
                } else {
                    let id = s.id();
                    s.grants.push(Grant {
                        id: id.clone(),
                        user_id: (*uid).to_owned(),
                        project_id: project,
                        role_keys: keys,
                    });
                    ok(json!({"userGrantId": id, "details": {"sequence": "1"}}))
                }
            }
            ("PUT", ["users", uid, "grants", gid]) => {
                let keys = strings(&body["roleKeys"]);
                let roles = s.roles.clone();
                let Some(g) = s
                    .grants
                    .iter_mut()
                    .find(|g| g.id == *gid && g.user_id == *uid)
                else {
                    return error(404, 5, "Errors.UserGrant.NotFound");
                };
                if let Some(missing) = keys
                    .iter()
                    .find(|k| !roles.iter().any(|(p, r)| *p == g.project_id && r == *k))
                {
                    error(400, 9, &format!("Errors.Project.Role.NotFound ({missing})"))
                } else if g.role_keys == keys {
                    no_changes("COMMAND-Lp0s2")
                } else {
                    g.role_keys = keys;
                    ok(details())
                }
            }
            ("POST", ["projects", pid, "apps", "_search"]) => {
                let name = query(body, "nameQuery", "name").unwrap_or_default();
                let found = s
                    .apps
                    .iter()
                    .filter(|(p, a)| p == pid && a["name"] == name.as_str())
                    .map(|(_, a)| {
                        let mut a = a.clone();
                        a["oidcConfig"] = compact(a["oidcConfig"].clone());
                        a
                    })
                    .collect();
                list(found)
            }
            ("POST", ["projects", pid, "apps", "oidc"]) => {
                let id = s.id();
                let client_id = format!("{id}@harmony");
                let mut config = oidc_fields(body);
                config["clientId"] = json!(client_id);
                config["version"] = body
                    .get("version")
                    .cloned()
                    .unwrap_or(json!("OIDC_VERSION_1_0"));
                let name = body["name"].clone();
                s.apps.push((
                    (*pid).to_owned(),
                    json!({"id": id, "name": name, "state": "APP_STATE_ACTIVE",
                           "oidcConfig": config}),
                ));
                ok(json!({"appId": id, "clientId": client_id, "details": {"sequence": "1"}}))
            }
            ("PUT", ["projects", pid, "apps", aid, "oidc_config"]) => {
                let Some((_, app)) = s.apps.iter_mut().find(|(p, a)| p == pid && a["id"] == *aid)
                else {
                    return error(404, 5, "Errors.Project.App.NotExisting");
                };
                let mut new = oidc_fields(body);
                for keep in ["clientId", "version"] {
                    new[keep] = app["oidcConfig"][keep].clone();
                }
                if compact(new.clone()) == compact(app["oidcConfig"].clone()) {
                    no_changes("COMMAND-1m88i")
                } else {
                    app["oidcConfig"] = new;
                    ok(details())
                }
            }
            _ => error(404, 5, &format!("no route {method} {path}")),
        };
        if write && response.0 == 200 {
            s.writes.push((method.to_owned(), path.to_owned()));
        }
        response
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields AddProject / UpdateProject set; an absent one is its default.
fn project_fields(body: &Value) -> Value {
    let mut p = Map::new();
    p.insert("name".into(), body["name"].clone());
    for flag in [
        "projectRoleAssertion",
        "projectRoleCheck",
        "hasProjectCheck",
    ] {
        p.insert(flag.into(), json!(body[flag] == true));
    }
    p.insert(
        "privateLabelingSetting".into(),
        body.get("privateLabelingSetting")
            .cloned()
            .unwrap_or(json!("PRIVATE_LABELING_SETTING_UNSPECIFIED")),
    );
    Value::Object(p)
}

/// The OIDC config an add or an update sets: every field of [`OIDC_UPDATE_FIELDS`], an absent
/// one its default.
fn oidc_fields(body: &Value) -> Value {
    let mut c = Map::new();
    for field in OIDC_UPDATE_FIELDS {
        let default = match field {
            "redirectUris"
            | "responseTypes"
            | "grantTypes"
            | "postLogoutRedirectUris"
            | "additionalOrigins" => json!([]),
            "devMode"
            | "accessTokenRoleAssertion"
            | "idTokenRoleAssertion"
            | "idTokenUserinfoAssertion"
            | "skipNativeAppSuccessPage" => json!(false),
            "appType" => json!("OIDC_APP_TYPE_WEB"),
            "authMethodType" => json!("OIDC_AUTH_METHOD_TYPE_BASIC"),
            "accessTokenType" => json!("OIDC_TOKEN_TYPE_BEARER"),
            "clockSkew" => json!("0s"),
            _ => json!(""),
        };
        c.insert(field.into(), body.get(field).cloned().unwrap_or(default));
    }
    Value::Object(c)
}

impl Respond for ZitadelStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorised = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(format!("Bearer {}", self.pat).as_str());
        if !authorised {
            let (status, body) = error(401, 16, "Errors.Token.Invalid (AUTH-7fs1e)");
            return ResponseTemplate::new(status).set_body_json(body);
        }
        let body: Value = if request.body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&request.body) {
                Ok(v) => v,
                Err(_) => return ResponseTemplate::new(400).set_body_string("invalid JSON"),
            }
        };
        let (status, body) = self.handle(request.method.as_str(), request.url.path(), &body);
        ResponseTemplate::new(status).set_body_json(body)
    }
}
