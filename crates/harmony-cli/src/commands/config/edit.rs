//! `harmony config edit KEY`: the document as YAML in `$VISUAL`/`$EDITOR`, each field's
//! description as a comment and secrets masked; validated on save (re-opened with the error on
//! top when invalid); stored check-and-set. When someone else saved meanwhile, their changes
//! are shown and the editor re-opens on their version with your changes re-applied: nothing is
//! ever overwritten.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use harmony_secret::SecretError;
use serde_json::{Map, Value};

use super::Team;
use crate::context::Context;
use harmony_config::document::{ChangeKind, remove_at, unmask, value_at};

/// How many times the editor re-opens (invalid input, conflicts) before giving up.
const MAX_ROUNDS: usize = 20;
/// Lines the command writes at the top of the file; dropped when the file is read back.
const HEADER: &str = "#| ";

fn editor(ctx: &Context) -> anyhow::Result<String> {
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
    match env(harmony_env::vars::VISUAL).or_else(|| env(harmony_env::vars::EDITOR)) {
        Some(e) => Ok(e),
        None if ctx.interactive && std::io::stdout().is_terminal() => Ok("vi".to_owned()),
        None => Err(crate::UsageError(
            "no editor: set VISUAL or EDITOR (e.g. EDITOR=nano)".to_owned(),
        )
        .into()),
    }
}

/// Run `editor` on `path` through the shell, so `EDITOR="code --wait"` works.
async fn open_editor(editor: &str, path: &std::path::Path) -> anyhow::Result<()> {
    let editor = editor.to_owned();
    let path = path.to_owned();
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
    })
    .await?
    .context("starting the editor")?;
    anyhow::ensure!(
        status.success(),
        "the editor exited with {status}; nothing was saved"
    );
    Ok(())
}

fn header(key: &str, version: Option<u64>, notes: &[String]) -> String {
    let mut out = String::new();
    for note in notes {
        for line in note.lines() {
            out.push_str(&format!("{HEADER}{line}\n"));
        }
    }
    out.push_str(&format!(
        "{HEADER}harmony config edit {key} ({}). Save and quit to store it; an unchanged or empty\n\
         {HEADER}file stores nothing. Lines starting with # are comments.\n",
        version.map_or("new document".to_owned(), |v| format!("version {v}"))
    ));
    out
}

fn strip_header(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with(HEADER.trim_end()))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

pub async fn run(
    ctx: &Context,
    team: &Team,
    key: &str,
    message: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let editor = editor(ctx)?;
    let typing = team.typing(key).await?;
    let (mut base, mut version) = match team.document(key).await? {
        Some(doc) => (doc.value, Some(doc.version)),
        None => (Value::Object(Map::new()), None),
    };
    let dir = tempfile::Builder::new()
        .prefix("harmony-edit-")
        .tempdir()
        .context("creating a private directory for the file to edit")?;
    let file = dir.path().join(format!("{}.yaml", key.replace('/', "_")));
    let mut body = typing.to_yaml(&base, true);
    let mut notes: Vec<String> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let shown = format!("{}{body}", header(key, version, &notes));
        write_private(&file, &shown)?;
        open_editor(&editor, &file).await?;
        let edited = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let edited = strip_header(&edited);
        if only_comments(&edited) {
            eprintln!("{key}: empty file, nothing saved");
            return Ok(ExitCode::SUCCESS);
        }
        body = edited.clone();
        let mut value: Value = match serde_yaml::from_str(&edited) {
            Ok(Value::Object(map)) => Value::Object(map),
            Ok(_) => {
                notes =
                    vec!["ERROR: the document must be a mapping (field: value, ...)".to_owned()];
                continue;
            }
            Err(e) => {
                // The file is the user's own; its parse error may quote it, which is fine here.
                notes = vec![format!("ERROR: not valid YAML: {e}")];
                continue;
            }
        };
        unmask(&typing, &mut value, &base);
        // An overlay holds only what differs from the base: its fields may be absent.
        let findings: Vec<_> = typing
            .check(value.as_object().unwrap_or(&Map::new()))
            .into_iter()
            .filter(|f| team.env.is_none() || !f.missing)
            .collect();
        if !findings.is_empty() {
            notes = std::iter::once("ERROR: not saved, fix these fields:".to_owned())
                .chain(
                    findings
                        .iter()
                        .map(|f| format!("  {}: {}", f.field, f.problem)),
                )
                .collect();
            eprintln!("{key}: invalid, re-opening the editor");
            continue;
        }
        if value == base {
            eprintln!("{key}: nothing changed");
            return Ok(ExitCode::SUCCESS);
        }
        match team.write(key, &value, version).await {
            Ok(saved) => {
                eprintln!("{key}: saved version {saved}");
                let message = match message {
                    Some(m) => m.to_owned(),
                    None => default_message(&typing.diff(&base, &value)),
                };
                team.record(key, saved, &message).await;
                return Ok(ExitCode::SUCCESS);
            }
            Err(SecretError::Conflict { actual, .. }) => {
                let theirs = team.document(key).await?;
                let (their_value, their_version) = match theirs {
                    Some(doc) => (doc.value, Some(doc.version)),
                    None => (Value::Object(Map::new()), None),
                };
                let theirs_changed = typing.diff(&base, &their_value);
                let mine = typing.diff(&base, &value);
                let mut merged = their_value.clone();
                let mut lost_secrets = Vec::new();
                for c in &mine {
                    let path: Vec<String> = c.field.split('.').map(str::to_owned).collect();
                    match c.change {
                        ChangeKind::Unchanged => {}
                        ChangeKind::Removed => remove_at(&mut merged, &path),
                        _ if c.secret => lost_secrets.push(c.field.clone()),
                        _ => {
                            if let (Some(v), Some(obj)) =
                                (value_at(&value, &path).cloned(), merged.as_object_mut())
                            {
                                harmony_config::insert_at(obj, &path, v);
                            }
                        }
                    }
                }
                let mut lines = vec![format!(
                    "NOTE: someone else saved version {} of {key} while you edited; nothing of yours \
                     was written. Their changes:",
                    actual
                        .or(their_version)
                        .map_or("?".to_owned(), |v| v.to_string())
                )];
                lines.extend(describe(&theirs_changed));
                lines.push("Your changes are re-applied on top of their version below; check and save again.".to_owned());
                if !lost_secrets.is_empty() {
                    lines.push(format!(
                        "Enter your new value for these secret fields again: {}",
                        lost_secrets.join(", ")
                    ));
                }
                for line in &lines {
                    eprintln!("{line}");
                }
                notes = lines;
                base = their_value;
                version = their_version;
                body = typing.to_yaml(&merged, true);
            }
            Err(e) => return Err(e.into()),
        }
    }
    anyhow::bail!("{key}: gave up after {MAX_ROUNDS} rounds in the editor; nothing was saved")
}

/// "edit: database.port, debug": the fields an edit changed (never their values).
fn default_message(changes: &[harmony_config::document::Change]) -> String {
    let fields: Vec<&str> = changes
        .iter()
        .filter(|c| c.change != ChangeKind::Unchanged)
        .map(|c| c.field.as_str())
        .collect();
    format!("edit {}", fields.join(", "))
}

/// The diff lines people read (secret values never shown).
fn describe(changes: &[harmony_config::document::Change]) -> Vec<String> {
    let show = |v: &Option<Value>| v.as_ref().map_or_else(String::new, Value::to_string);
    changes
        .iter()
        .filter(|c| c.change != ChangeKind::Unchanged)
        .map(|c| match (c.change, c.secret) {
            (_, true) => format!(
                "  {} (secret) {}",
                c.field,
                match c.change {
                    ChangeKind::Added => "added",
                    ChangeKind::Removed => "removed",
                    _ => "changed",
                }
            ),
            (ChangeKind::Added, _) => format!("  + {}: {}", c.field, show(&c.new)),
            (ChangeKind::Removed, _) => format!("  - {}: {}", c.field, show(&c.old)),
            _ => format!("  ~ {}: {} -> {}", c.field, show(&c.old), show(&c.new)),
        })
        .collect()
}

/// Write `text` to `path`, mode 0600 (it may hold a revealed value the user typed).
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_dropped_when_reading_back() {
        let text = format!(
            "{}a: 1\n# kept comment\n",
            header("k", Some(3), &["ERROR: x".to_owned()])
        );
        assert_eq!(strip_header(&text), "a: 1\n# kept comment\n");
        assert!(only_comments("# a\n\n  # b\n"));
        assert!(!only_comments("# a\nb: 1\n"));
    }
}
