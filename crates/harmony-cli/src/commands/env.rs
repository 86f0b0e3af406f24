//! `harmony env list`: the environments the bootstrap recorded (`<prefix>/_access`), and for
//! each what the signed-in token may do there — asked of OpenBao (`sys/capabilities-self`), so
//! it is the server's answer, not a guess from the table.

use std::process::ExitCode;

use harmony_secret::SecretStore as _;
use serde::Serialize;
use serde_json::{Value, json};

use crate::cli::EnvCommand;
use crate::commands::config::Team;
use crate::context::Context;

/// Where the bootstrap records the table.
const ACCESS_DOCUMENT: &str = harmony_openbao::ACCESS_DOCUMENT;

#[derive(Debug, Serialize)]
struct Row {
    environment: String,
    /// `write`, `read` or `none`, as OpenBao answers for this token.
    you: &'static str,
    /// The roles whose members may write it (from the recorded table).
    writers: Vec<String>,
}

pub async fn run(ctx: &Context, command: &EnvCommand) -> anyhow::Result<ExitCode> {
    match command {
        EnvCommand::List => list(ctx).await,
    }
}

/// `write` / `read` / `none` from a capabilities list.
fn level(caps: &Value) -> &'static str {
    let has = |c: &str| {
        caps.as_array()
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(c)))
    };
    if has("root") || has("update") || has("create") {
        "write"
    } else if has("read") {
        "read"
    } else {
        "none"
    }
}

async fn list(ctx: &Context) -> anyhow::Result<ExitCode> {
    let team = Team::new(ctx.connect().await?, None);
    let Some(table) = team.store.get(ACCESS_DOCUMENT).await? else {
        anyhow::bail!(
            "no environments are recorded at {}: this OpenBao was bootstrapped without \
             --environments, so everyone signed in shares the one base",
            team.store.describe(ACCESS_DOCUMENT)
        );
    };
    let table = table.value;
    let mut names: Vec<Option<String>> = vec![None];
    names.extend(
        table["environments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_owned))
            .map(Some),
    );
    // One probe path per layer, all asked in one request.
    let probe = |env: &Option<String>| {
        team.kv_path(
            "data",
            &harmony_config::layers::layer_path("harmony-probe", env.as_deref()),
        )
    };
    let paths: Vec<String> = names.iter().map(probe).collect();
    let answer = team
        .store
        .client()
        .post("sys/capabilities-self", &json!({ "paths": paths }))
        .await?
        .unwrap_or(Value::Null);
    let roles = table["roles"].as_object().cloned().unwrap_or_default();
    let rows: Vec<Row> = names
        .iter()
        .zip(&paths)
        .map(|(env, path)| Row {
            environment: env.clone().unwrap_or_else(|| "(base)".to_owned()),
            you: level(&answer[path.as_str()]),
            writers: roles
                .iter()
                .filter(|(_, r)| match env {
                    None => r["base"] == "write",
                    Some(env) => r["environments"][env.as_str()] == "write",
                })
                .map(|(name, _)| name.clone())
                .collect(),
        })
        .collect();
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows
        .iter()
        .map(|r| r.environment.len())
        .max()
        .unwrap_or(0)
        .max("ENVIRONMENT".len());
    println!("{:<width$}  {:<5}  WRITTEN BY", "ENVIRONMENT", "YOU");
    for r in &rows {
        println!(
            "{:<width$}  {:<5}  {}",
            r.environment,
            r.you,
            r.writers.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
