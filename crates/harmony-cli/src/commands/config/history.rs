//! `harmony config history KEY` and `harmony config blame KEY`: who wrote each version and
//! why, and the version of each field's last change. The author records, the retention
//! settings and blame are the library's ([`harmony_config::history`]); this reads and renders.
//! No value is ever shown here, secret or not.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use harmony_config::document::split_path;
use harmony_config::history::{self, Author, HistoryEntry, LayerMetadata, Pruned};
use serde::Serialize;
use serde_json::Value;

use super::Team;
use crate::context::Context;

/// The layer's metadata, its authors and what was pruned: what both commands start from.
async fn read(
    team: &Team,
    key: &str,
) -> anyhow::Result<(LayerMetadata, BTreeMap<u64, Author>, Option<Pruned>, String)> {
    let (meta, mount_max) = tokio::join!(team.metadata(key), team.mount_max_versions());
    let meta = meta?;
    let authors = history::authors(&*team.store, &team.layer(key))
        .await
        .map_err(|e| team.denied(e, key, "reading the author records of"))
        .with_context(|| format!("reading who wrote the versions of {}", team.what(key)))?;
    let mount = team
        .store
        .settings()
        .kv_mount()
        .trim_matches('/')
        .to_owned();
    let pruned = history::pruned(&meta, mount_max, &mount);
    let (_, setting) = history::retention(&meta, mount_max, &mount);
    Ok((meta, authors, pruned, setting))
}

#[derive(Serialize)]
struct HistoryReport<'a> {
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'a str>,
    versions: Vec<HistoryEntry>,
    /// Versions OpenBao no longer keeps (`null`: none).
    pruned: Option<Pruned>,
    /// Which setting decides how many versions are kept.
    retention: String,
}

/// The first line of a message, for a table.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

pub async fn history(ctx: &Context, team: &Team, key: &str) -> anyhow::Result<ExitCode> {
    let (meta, authors, pruned, retention) = read(team, key).await?;
    let entries = history::entries(&meta, &authors);
    if ctx.json() {
        let report = HistoryReport {
            key,
            environment: team.env.as_deref(),
            versions: entries,
            pruned,
            retention,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let state = match (e.meta.destroyed, e.meta.deleted, e.meta.current) {
                (true, _, _) => "destroyed",
                (_, true, _) => "deleted",
                (_, _, true) => "current",
                _ => "",
            };
            [
                e.meta.version.to_string(),
                e.meta.created_time.clone(),
                e.author.display(),
                state.to_owned(),
                e.author.message().map(first_line).unwrap_or("").to_owned(),
            ]
        })
        .collect();
    let header = ["VERSION", "CREATED", "AUTHOR", "STATE", "MESSAGE"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
        .trim_end()
        .to_owned()
    };
    println!("{}", line(header));
    for r in &rows {
        println!(
            "{}",
            line([
                r[0].as_str(),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
                r[4].as_str()
            ])
        );
    }
    match &pruned {
        Some(p) => println!(
            "versions 1 to {} were pruned: OpenBao keeps the newest {} ({})",
            p.through, p.max_versions, p.setting
        ),
        None => eprintln!(
            "{}: every version is kept so far; retention: {retention}",
            team.what(key)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct BlameLine {
    field: String,
    /// The version of its last change.
    version: u64,
    /// That version may not be the first with this value: older versions were pruned (or a
    /// deleted version breaks the chain).
    or_earlier: bool,
    time: String,
    author: Author,
    secret: bool,
}

pub async fn blame(ctx: &Context, team: &Team, key: &str) -> anyhow::Result<ExitCode> {
    let (meta, authors, pruned, _) = read(team, key).await?;
    let typing = team.typing(key).await?;
    let mut contents: Vec<(u64, Option<Value>)> = Vec::with_capacity(meta.versions.len());
    for v in meta.versions.iter().rev() {
        let content = if v.deleted || v.destroyed {
            None
        } else {
            Some(team.version(key, v.version).await?)
        };
        contents.push((v.version, content));
    }
    let oldest = contents.first().map_or(0, |(v, _)| *v);
    let lines: Vec<BlameLine> = history::blame(&contents)
        .into_iter()
        .map(|(field, version)| {
            let time = meta
                .versions
                .iter()
                .find(|v| v.version == version)
                .map(|v| v.created_time.clone())
                .unwrap_or_default();
            // The chain starts at the oldest version kept, or right after a deleted one.
            let previous_gone = contents
                .iter()
                .take_while(|(v, _)| *v < version)
                .last()
                .is_some_and(|(_, c)| c.is_none());
            BlameLine {
                secret: typing.is_secret(&split_path(&field)),
                or_earlier: (version == oldest && pruned.is_some()) || previous_gone,
                author: authors.get(&version).cloned().unwrap_or(Author::Unknown),
                field,
                version,
                time,
            }
        })
        .collect();
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    let fw = lines
        .iter()
        .map(|l| l.field.len() + if l.secret { 9 } else { 0 })
        .chain(["FIELD".len()])
        .max()
        .unwrap_or(5);
    println!("{:<fw$}  {:<8}  {:<30}  AUTHOR", "FIELD", "VERSION", "TIME");
    for l in &lines {
        let field = if l.secret {
            format!("{} (secret)", l.field)
        } else {
            l.field.clone()
        };
        let version = if l.or_earlier {
            format!("{}-", l.version)
        } else {
            l.version.to_string()
        };
        println!(
            "{field:<fw$}  {version:<8}  {:<30}  {}",
            l.time,
            l.author.display()
        );
    }
    if lines.iter().any(|l| l.or_earlier) {
        eprintln!(
            "N-: the value is at least as old as version N (older versions were pruned or deleted)"
        );
    }
    if lines.is_empty() {
        eprintln!("{}: no readable version to blame", team.what(key));
    }
    Ok(ExitCode::SUCCESS)
}
