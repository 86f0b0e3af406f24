//! `harmony config compare KEY A B` and `harmony config promote KEY --from A --to B [FIELD...]`:
//! two environments of one config side by side, and copying overlay values between them. The
//! merge, typing and masking are the library's ([`harmony_config::layers`],
//! [`harmony_config::document`]); this only reads, writes and renders.

use std::process::ExitCode;

use harmony_config::document::{ChangeKind, split_path, value_at};
use harmony_config::layers::{resolve, validate_environment};
use harmony_secret::{SecretError, Versioned};
use serde_json::{Map, Value};

use super::{Team, conflict_context};
use crate::UsageError;
use crate::context::Context;

fn check_env(env: &str) -> anyhow::Result<()> {
    validate_environment(env).map_err(|e| UsageError(e.to_string()).into())
}

fn object(doc: Option<Versioned<Value>>) -> Map<String, Value> {
    doc.and_then(|d| d.value.as_object().cloned())
        .unwrap_or_default()
}

pub async fn compare(
    ctx: &Context,
    team: &Team,
    key: &str,
    a: &str,
    b: &str,
) -> anyhow::Result<ExitCode> {
    check_env(a)?;
    check_env(b)?;
    let (ta, tb) = (team.in_env(Some(a)), team.in_env(Some(b)));
    // Base, both overlays and the schema: one round trip's wait.
    let (base, oa, ob, typing) = tokio::join!(
        team.base_document(key),
        ta.document(key),
        tb.document(key),
        team.typing(key)
    );
    let (base, oa, ob, typing) = (object(base?), object(oa?), object(ob?), typing?);
    let (ra, rb) = (
        Value::Object(resolve(&base, &oa)),
        Value::Object(resolve(&base, &ob)),
    );
    let changes: Vec<_> = typing
        .diff(&ra, &rb)
        .into_iter()
        .filter(|c| c.change != ChangeKind::Unchanged)
        .collect();
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("--- {key} in {a}");
    println!("+++ {key} in {b}");
    let show = |v: &Option<Value>| v.as_ref().map_or_else(String::new, Value::to_string);
    for c in &changes {
        let line = match (c.change, c.secret) {
            (ChangeKind::Unchanged, _) => continue,
            (ChangeKind::Changed, true) => format!("~ {}: (secret) differs", c.field),
            (ChangeKind::Added, true) => format!("+ {}: (secret) only in {b}", c.field),
            (ChangeKind::Removed, true) => format!("- {}: (secret) only in {a}", c.field),
            (ChangeKind::Changed, false) => {
                format!("~ {}: {} -> {}", c.field, show(&c.old), show(&c.new))
            }
            (ChangeKind::Added, false) => format!("+ {}: {}", c.field, show(&c.new)),
            (ChangeKind::Removed, false) => format!("- {}: {}", c.field, show(&c.old)),
        };
        println!("{line}");
    }
    if changes.is_empty() {
        eprintln!("{key}: {a} and {b} are the same");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn promote(
    team: &Team,
    key: &str,
    from: &str,
    to: &str,
    fields: &[String],
    message: Option<&str>,
) -> anyhow::Result<ExitCode> {
    check_env(from)?;
    check_env(to)?;
    if from == to {
        return Err(UsageError(format!("--from and --to are both {from}")).into());
    }
    let (source, target) = (team.in_env(Some(from)), team.in_env(Some(to)));
    let (src, dst, base, typing) = tokio::join!(
        source.document(key),
        target.document(key),
        team.base_document(key),
        team.typing(key)
    );
    let (src, dst, base, typing) = (object(src?), dst?, object(base?), typing?);
    let expected = dst.as_ref().map(|d| d.version);
    let mut doc = object(dst);
    let src_value = Value::Object(src.clone());
    let paths: Vec<Vec<String>> = if fields.is_empty() {
        harmony_config::document::leaves(&src_value)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| !p.is_empty())
            .collect()
    } else {
        fields.iter().map(|f| split_path(f)).collect()
    };
    if paths.is_empty() {
        return Err(UsageError(format!(
            "the {from} overlay of {key} is empty: nothing to promote"
        ))
        .into());
    }
    for path in &paths {
        let Some(value) = value_at(&src_value, path).cloned() else {
            return Err(UsageError(format!(
                "{} is not set in the {from} overlay of {key} (there it comes from the base); \
                 name fields of the overlay",
                path.join(".")
            ))
            .into());
        };
        harmony_config::insert_at(&mut doc, path, value);
    }
    let findings: Vec<_> = typing
        .check(&resolve(&base, &doc))
        .into_iter()
        .filter(|f| !f.missing)
        .collect();
    if !findings.is_empty() {
        let lines: Vec<String> = findings
            .iter()
            .map(|f| format!("  {}: {}", f.field, f.problem))
            .collect();
        return Err(UsageError(format!(
            "{} not saved, the schema refuses it:\n{}",
            target.what(key),
            lines.join("\n")
        ))
        .into());
    }
    let names: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
    let version = target
        .write(key, &Value::Object(doc), expected)
        .await
        .map_err(|e| match e {
            e @ SecretError::PermissionDenied { .. } => target.denied(e, key, "writing"),
            e => conflict_context(e, key),
        })?;
    eprintln!(
        "{}: saved version {version} with {} from {from}",
        target.what(key),
        names.join(", ")
    );
    let message = match message {
        Some(m) => m.to_owned(),
        None if fields.is_empty() => format!("promote from {from}"),
        None => format!("promote {} from {from}", names.join(", ")),
    };
    target.record(key, version, &message).await;
    Ok(ExitCode::SUCCESS)
}
