//! `harmony status`: the server, whether it is sealed, and who this machine is signed in as.
//! Never signs in: it only looks at the session `harmony login` left (or `OPENBAO_TOKEN`).

use std::process::ExitCode;

use harmony_openbao::target::admin_token_from_env;
use harmony_secret::SecretError;
use harmony_secret::offline::OfflineCache;
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;

use crate::context::Context;
use crate::profile::{LoginProfile, Method};

#[derive(Debug, Serialize)]
struct Report {
    server: Server,
    signed_in: bool,
    /// Where cached sessions keep their tokens: `keychain` or `file`.
    session_store: &'static str,
    /// Offline copies of this server's documents (`harmony logout` deletes them).
    offline_copies: OfflineCopies,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<SessionReport>,
    /// The environments and who may do what in each, as the bootstrap recorded them
    /// (`<prefix>/_access`), read with the session's token; absent when it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<Access>,
}

/// The recorded access table.
#[derive(Debug, Serialize)]
#[serde(tag = "declared")]
enum Access {
    /// No record: bootstrapped without `--environments`.
    #[serde(rename = "false")]
    NotDeclared,
    /// The table: role → base and environment levels (`read`, `write`, `none`).
    #[serde(rename = "true")]
    Declared {
        environments: Vec<String>,
        roles: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
        #[serde(skip)]
        text: String,
    },
    /// The token may not read it (or the server refused for another reason).
    #[serde(rename = "unknown")]
    Unreadable { problem: String },
}

#[derive(Debug, Serialize)]
struct OfflineCopies {
    encrypted: usize,
    unencrypted: usize,
    dir: String,
}

#[derive(Debug, Serialize)]
struct Server {
    url: String,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    initialized: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sealed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct SessionReport {
    /// `environment` (OPENBAO_TOKEN) or `login` (the cached session of `harmony login`).
    source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<Method>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<String>,
    /// OpenBao accepts the token.
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<String>,
    policies: Vec<String>,
    /// Seconds left; 0 means no expiry.
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl_seconds: Option<u64>,
    /// The auth path that issued the token, e.g. `auth/jwt/login/harmony-developer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_path: Option<String>,
    /// An SSO refresh token is cached (commands renew the session without a browser).
    refresh_token: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

pub async fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    let base = ctx.base();
    let client = ctx.client()?;
    let mut server = Server {
        url: base.clone(),
        reachable: false,
        initialized: None,
        sealed: None,
        error: None,
    };
    match client.health().await {
        Ok(h) => {
            server.reachable = true;
            server.initialized = Some(h.initialized);
            server.sealed = Some(h.sealed);
        }
        Err(e) => server.error = Some(e.to_string()),
    }

    let profile = LoginProfile::load(&base)?;
    let (source, token, refresh) = match admin_token_from_env() {
        Some(token) => ("environment", Some(token), false),
        None => match &profile {
            Some(p) => match ctx.sessions()?.load(&base, &p.identity).await? {
                Some(s) => {
                    let refresh = s.oidc.as_ref().is_some_and(|o| o.refresh_token.is_some());
                    ("login", Some(s.token), refresh)
                }
                None => ("login", None, false),
            },
            None => ("login", None, false),
        },
    };
    let mut access = None;
    let session = match (token, &profile, source) {
        (None, None, _) => None,
        (token, profile, source) => {
            let mut report = SessionReport {
                source,
                method: profile
                    .as_ref()
                    .filter(|_| source == "login")
                    .map(|p| p.method),
                identity: profile
                    .as_ref()
                    .filter(|_| source == "login")
                    .map(|p| p.identity.clone()),
                valid: false,
                display_name: None,
                entity_id: None,
                policies: Vec::new(),
                ttl_seconds: None,
                auth_path: None,
                refresh_token: refresh,
                problem: None,
            };
            match token {
                None => {
                    report.problem = Some(
                        "no cached session (expired or removed); run `harmony login`".to_owned(),
                    )
                }
                Some(_) if !server.reachable || server.sealed == Some(true) => {
                    report.problem = Some("the server cannot check the token right now".to_owned())
                }
                Some(token) => {
                    describe_token(&client, token.clone(), &mut report).await;
                    if report.valid {
                        access = Some(recorded_access(ctx, &client, token).await);
                    }
                }
            }
            Some(report)
        }
    };
    let cache = OfflineCache::from_env()?;
    let copies = cache.copies_of(&base).await?;
    let report = Report {
        session_store: ctx.sessions()?.store_kind().name(),
        offline_copies: OfflineCopies {
            encrypted: copies.encrypted,
            unencrypted: copies.plain,
            dir: cache.dir().display().to_string(),
        },
        signed_in: session.as_ref().is_some_and(|s| s.valid),
        server,
        session,
        access,
    };
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report);
    }
    Ok(if report.server.reachable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn describe_token(
    client: &harmony_secret::OpenbaoClient,
    token: SecretString,
    report: &mut SessionReport,
) {
    match client
        .clone()
        .with_token(token)
        .get("auth/token/lookup-self")
        .await
    {
        Ok(body) => {
            let data = body.unwrap_or(Value::Null)["data"].clone();
            let text = |k: &str| {
                data[k]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
            };
            report.valid = true;
            report.display_name = text("display_name");
            report.entity_id = text("entity_id");
            report.auth_path = text("path");
            report.ttl_seconds = data["ttl"].as_u64();
            report.policies = data["policies"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| p.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
        }
        Err(SecretError::PermissionDenied { .. }) => {
            report.problem = Some(
                "OpenBao no longer accepts the cached token (expired or revoked); the next command \
                 signs in again, or run `harmony login`"
                    .to_owned(),
            );
        }
        Err(e) => report.problem = Some(e.to_string()),
    }
}

/// Reads `<mount>/data/<prefix>/_access` with the session's token (everyone signed in may: it
/// lies under the base).
async fn recorded_access(
    ctx: &Context,
    client: &harmony_secret::OpenbaoClient,
    token: SecretString,
) -> Access {
    let settings = match ctx.target.settings().await {
        Ok(s) => s,
        Err(e) => {
            return Access::Unreadable {
                problem: e.to_string(),
            };
        }
    };
    let path = [
        settings.kv_mount(),
        "data",
        settings.kv_prefix(),
        harmony_openbao::ACCESS_DOCUMENT,
    ]
    .iter()
    .filter(|p| !p.is_empty())
    .map(|p| p.trim_matches('/'))
    .collect::<Vec<_>>()
    .join("/");
    match client.clone().with_token(token).get(&path).await {
        Ok(None) | Err(SecretError::NotFound { .. }) => Access::NotDeclared,
        Ok(Some(body)) => match harmony_openbao::AccessTable::from_record(&body["data"]["data"]) {
            None => Access::NotDeclared,
            Some(table) => {
                let roles = table
                    .roles
                    .iter()
                    .map(|(role, a)| {
                        let mut row = std::collections::BTreeMap::new();
                        row.insert("base".to_owned(), a.base.as_str().to_owned());
                        for env in &table.environments {
                            row.insert(
                                env.clone(),
                                a.environments
                                    .get(env)
                                    .map_or("none", |l| l.as_str())
                                    .to_owned(),
                            );
                        }
                        (role.clone(), row)
                    })
                    .collect();
                Access::Declared {
                    environments: table.environments.clone(),
                    roles,
                    text: table.render(),
                }
            }
        },
        Err(e) => Access::Unreadable {
            problem: e.to_string(),
        },
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

fn duration(seconds: u64) -> String {
    if seconds == 0 {
        return "no expiry".to_owned();
    }
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

fn print_text(r: &Report) {
    let state = match (&r.server.error, r.server.initialized, r.server.sealed) {
        (Some(e), _, _) => format!("unreachable: {e}"),
        (None, Some(false), _) => "not initialised".to_owned(),
        (None, _, Some(true)) => "sealed".to_owned(),
        _ => "unsealed".to_owned(),
    };
    println!("server:        {} ({state})", r.server.url);
    println!("session store: {}", r.session_store);
    let copies = &r.offline_copies;
    match (copies.encrypted, copies.unencrypted) {
        (0, 0) => println!("offline:       no copies kept yet"),
        (e, 0) => println!(
            "offline:       {e} cop{} kept, encrypted ({})",
            plural(e),
            copies.dir
        ),
        (e, u) => println!(
            "offline:       {} cop{} kept, {u} of them unencrypted ({})",
            e + u,
            plural(e + u),
            copies.dir
        ),
    }
    let Some(s) = &r.session else {
        println!("signed in:     no — run `harmony login`");
        return;
    };
    let via = match (&s.method, s.source) {
        (Some(m), _) => format!("{m} login"),
        (None, _) => "OPENBAO_TOKEN".to_owned(),
    };
    if s.valid {
        println!(
            "signed in:     yes, as {} (via {via})",
            s.display_name.as_deref().unwrap_or("?")
        );
    } else {
        println!("signed in:     no (via {via})");
    }
    if let Some(identity) = &s.identity {
        println!("identity:      {identity}");
    }
    if let Some(entity) = &s.entity_id {
        println!("entity:        {entity}");
    }
    if let Some(path) = &s.auth_path {
        println!("auth path:     {path}");
    }
    if !s.policies.is_empty() {
        println!("policies:      {}", s.policies.join(", "));
    }
    if let Some(ttl) = s.ttl_seconds {
        println!("token ttl:     {}", duration(ttl));
    }
    if s.method == Some(Method::Sso) {
        println!(
            "refresh token: {}",
            if s.refresh_token { "held" } else { "none" }
        );
    }
    if let Some(problem) = &s.problem {
        println!("note:          {problem}");
    }
    match &r.access {
        None => {}
        Some(Access::NotDeclared) => println!(
            "environments:  not declared (everyone signed in shares the one base; \
             `harmony bootstrap --environments dev,staging,prod` declares them)"
        ),
        Some(Access::Unreadable { problem }) => {
            println!("environments:  unknown (the access record could not be read: {problem})")
        }
        Some(Access::Declared {
            environments, text, ..
        }) => {
            println!(
                "environments:  {} — access by role:",
                environments.join(", ")
            );
            for line in text.lines() {
                println!("  {line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(0), "no expiry");
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(3599), "59m 59s");
        assert_eq!(duration(7260), "2h 1m");
    }
}
