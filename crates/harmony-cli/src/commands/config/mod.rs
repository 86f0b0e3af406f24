//! `harmony config ...`: the team's documents under the KV prefix, typed by the schema stored
//! beside each one at `<prefix>/_schema/<KEY>` (see [`harmony_config::document`]).

use std::process::ExitCode;

use anyhow::Context as _;
use harmony_secret::{OpenbaoSecretStore, SecretError, SecretStore, Versioned, WriteMode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::UsageError;
use crate::cli::{ConfigCommand, Format};
use crate::context::Context;
use harmony_config::document::{ChangeKind, Typing, leaves, split_path, value_at};

mod edit;
mod environments;
mod history;

use harmony_config::history::{LayerMetadata, VersionMeta};
use harmony_config::layers::{is_reserved_folder, layer_path, schema_path};

/// How deep `config list` descends into folders.
const LIST_DEPTH: usize = 8;

pub async fn run(ctx: &Context, command: &ConfigCommand) -> anyhow::Result<ExitCode> {
    if let Some(key) = command.key() {
        check_key(key)?;
    }
    if let ConfigCommand::Get {
        key,
        field,
        format,
        reveal,
        explain,
        cache,
    } = command
    {
        if *explain && ctx.env.is_none() {
            return Err(UsageError(
                "--explain says which layer each field comes from: give an environment (--env \
                 NAME)"
                    .to_owned(),
            )
            .into());
        }
        // Reads may be served by the offline cache, so they sign in only when going online.
        let read = crate::offline::read_documents(ctx, std::slice::from_ref(key), cache)
            .await?
            .pop()
            .context("one document was read")?;
        return get(ctx, read, field.as_deref(), *format, *reveal, *explain);
    }
    let env = match command {
        ConfigCommand::List { .. } => None,
        _ => ctx.env.clone(),
    };
    let team = Team::new(ctx.connect().await?, env);
    match command {
        ConfigCommand::List { prefix } => list(ctx, &team, prefix.as_deref()).await,
        ConfigCommand::Get { .. } => unreachable!("answered above"),
        ConfigCommand::Set {
            key,
            assignments,
            from_file,
            message,
        } => {
            let assignments = values_from_stdin_or_prompt(&team, key, assignments, ctx).await?;
            set(
                &team,
                key,
                &assignments,
                from_file.as_deref(),
                message.as_deref(),
            )
            .await
        }
        ConfigCommand::Edit { key, message } => {
            edit::run(ctx, &team, key, message.as_deref()).await
        }
        ConfigCommand::History { key } => history::history(ctx, &team, key).await,
        ConfigCommand::Blame { key } => history::blame(ctx, &team, key).await,
        ConfigCommand::Diff { key, v1, v2 } => diff(ctx, &team, key, *v1, *v2).await,
        ConfigCommand::Rollback {
            key,
            version,
            message,
        } => rollback(&team, key, *version, message.as_deref()).await,
        ConfigCommand::Compare { key, a, b } => environments::compare(ctx, &team, key, a, b).await,
        ConfigCommand::Promote {
            key,
            from,
            to,
            fields,
            message,
        } => environments::promote(&team, key, from, to, fields, message.as_deref()).await,
        ConfigCommand::Check { keys } => {
            for key in keys {
                check_key(key)?;
            }
            check(ctx, &team, keys).await
        }
    }
}

/// Config keys: `/`-separated segments, each a valid `harmony_config` key (they become
/// variable names).
pub(crate) fn check_key(key: &str) -> anyhow::Result<()> {
    for segment in key.split('/') {
        harmony_config::validate_key(segment)
            .map_err(|e| UsageError(format!("config key {key:?}: {e}")))?;
    }
    if key.split('/').next().is_some_and(is_reserved_folder) {
        return Err(UsageError(format!(
            "{key}: folders starting with '_' hold schemas and environment overlays, not configs"
        ))
        .into());
    }
    Ok(())
}

/// Typing from the schema stored at `location`; says on stderr when there is none.
pub(crate) fn typing_from_stored(
    key: &str,
    schema: Option<&Value>,
    location: &str,
) -> anyhow::Result<Typing> {
    if schema.is_none() {
        eprintln!(
            "note: {key} is untyped (no schema at {location}): values are plain JSON, nothing is masked or checked"
        );
    }
    Typing::new(key, schema).with_context(|| format!("the schema stored for {key} cannot be used"))
}

/// The store plus what the CLI needs beyond `SecretStore`: schemas and KV v2 versions. With an
/// environment, documents, versions and writes are that environment's overlays
/// (`_env/<ENV>/<KEY>`, [`harmony_config::layers`]); the schema is always the config's one.
pub struct Team {
    pub(crate) store: std::sync::Arc<OpenbaoSecretStore>,
    pub(crate) env: Option<String>,
}

impl Team {
    pub fn new(store: OpenbaoSecretStore, env: Option<String>) -> Self {
        Self {
            store: std::sync::Arc::new(store),
            env,
        }
    }

    /// The same connection, working on `env`'s overlay (`None`: the base).
    pub fn in_env(&self, env: Option<&str>) -> Self {
        Self {
            store: std::sync::Arc::clone(&self.store),
            env: env.map(str::to_owned),
        }
    }

    /// The path (under the prefix) of `key`'s layer: the base, or the environment's overlay.
    pub fn layer(&self, key: &str) -> String {
        layer_path(key, self.env.as_deref())
    }

    /// `my-app`, or `the prod overlay of my-app`, for messages.
    pub fn what(&self, key: &str) -> String {
        match &self.env {
            None => key.to_owned(),
            Some(env) => format!("the {env} overlay of {key}"),
        }
    }

    /// OpenBao's refusal (403) as what it means here: which layer, and who may.
    pub fn denied(&self, e: SecretError, key: &str, action: &str) -> anyhow::Error {
        match e {
            SecretError::PermissionDenied { ref path, .. } => {
                let path = path.clone();
                let advice = match &self.env {
                    Some(env) => format!(
                        "your roles do not allow {action} the {env} environment; a role with \
                         {} access to {env} is needed (by default harmony-ops has it for every \
                         environment, harmony-developer for all but prod) — ask an \
                         administrator, or work in another environment (--env)",
                        if action == "writing" { "write" } else { "read" }
                    ),
                    None => format!(
                        "your roles do not allow {action} the base, which feeds every \
                         environment (by default only harmony-ops writes it); set the value in \
                         your environment's overlay instead (--env ENV)"
                    ),
                };
                anyhow::Error::new(e).context(format!(
                    "OpenBao refused {action} {} ({path}): {advice}",
                    self.what(key)
                ))
            }
            other => other.into(),
        }
    }

    pub(crate) fn kv_path(&self, kind: &str, key: &str) -> String {
        let s = self.store.settings();
        [s.kv_mount(), kind, s.kv_prefix(), key]
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_matches('/'))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The latest version of this layer, `None` when there is none (or it was deleted).
    pub async fn document(&self, key: &str) -> anyhow::Result<Option<Versioned<Value>>> {
        self.store
            .get(&self.layer(key))
            .await
            .map_err(|e| self.denied(e, key, "reading"))
    }

    /// The latest version of the base document.
    pub async fn base_document(&self, key: &str) -> anyhow::Result<Option<Versioned<Value>>> {
        Ok(self.store.get(key).await?)
    }

    /// The latest version, or an error saying how to find the keys that exist.
    pub async fn existing(&self, key: &str) -> anyhow::Result<Versioned<Value>> {
        self.document(key).await?.with_context(|| {
            format!(
                "no config {key:?} at {}; `harmony config list` shows the keys that exist",
                self.store.describe(&self.layer(key))
            )
        })
    }

    /// The schema document stored for `key`, if any.
    pub async fn schema(&self, key: &str) -> anyhow::Result<Option<Versioned<Value>>> {
        Ok(self.store.get(&schema_path(key)).await?)
    }

    /// The schema stored for `key`; says "untyped" on stderr when there is none.
    pub async fn typing(&self, key: &str) -> anyhow::Result<Typing> {
        let stored = self.schema(key).await?;
        typing_from_stored(
            key,
            stored.as_ref().map(|v| &v.value),
            &self.store.describe(&schema_path(key)),
        )
    }

    /// Write `value` as the next version, check-and-set against `expected` (`None`: must not
    /// exist). A conflict says who won and that nothing was written.
    pub async fn write(
        &self,
        key: &str,
        value: &Value,
        expected: Option<u64>,
    ) -> Result<u64, SecretError> {
        self.store
            .put(&self.layer(key), value, WriteMode::Cas(expected))
            .await
    }

    /// Every version in the metadata, newest first.
    pub async fn versions(&self, key: &str) -> anyhow::Result<Vec<VersionMeta>> {
        Ok(self.metadata(key).await?.versions)
    }

    /// The layer's KV v2 metadata: versions (newest first), the oldest kept, its max_versions.
    pub async fn metadata(&self, key: &str) -> anyhow::Result<LayerMetadata> {
        let path = self.kv_path("metadata", &self.layer(key));
        let body = match self.store.client().get(&path).await {
            Ok(Some(body)) => body,
            Ok(None) | Err(SecretError::NotFound { .. }) => anyhow::bail!(
                "no config {key:?} at {}; `harmony config list` shows the keys that exist",
                self.store.describe(&self.layer(key))
            ),
            Err(e) => return Err(self.denied(e, key, "reading")),
        };
        Ok(LayerMetadata::from_kv(&body["data"]))
    }

    /// The KV mount's own `max_versions` (`<mount>/config`); `None` when this token may not
    /// read it.
    pub async fn mount_max_versions(&self) -> Option<u64> {
        let path = format!(
            "{}/config",
            self.store.settings().kv_mount().trim_matches('/')
        );
        match self.store.client().get(&path).await {
            Ok(Some(body)) => body["data"]["max_versions"].as_u64(),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the KV mount's config");
                None
            }
        }
    }

    /// After saving `version`: the author record (who, when, the tool, `message`). Never an
    /// error: the value is saved; a record that could not be written is a warning naming the
    /// version.
    pub async fn record(&self, key: &str, version: u64, message: &str) {
        let outcome =
            harmony_config::history::record_saved(&*self.store, &self.layer(key), version, message)
                .await;
        if let Some(warning) = outcome.warning(&self.what(key), version) {
            eprintln!("{warning}");
        }
    }

    /// The content of one version; an error when it was deleted or destroyed.
    pub async fn version(&self, key: &str, version: u64) -> anyhow::Result<Value> {
        let path = format!(
            "{}?version={version}",
            self.kv_path("data", &self.layer(key))
        );
        let body = match self.store.client().get(&path).await {
            Ok(Some(body)) => body,
            Ok(None) | Err(SecretError::NotFound { .. }) => {
                anyhow::bail!(
                    "{} has no version {version}; `harmony config history {key}` lists them",
                    self.what(key)
                )
            }
            Err(e) => return Err(self.denied(e, key, "reading")),
        };
        let data = &body["data"]["data"];
        if data.is_null() {
            anyhow::bail!(
                "version {version} of {key} was deleted or destroyed; its content is gone"
            );
        }
        Ok(data.clone())
    }

    /// Document keys under `prefix` (relative to the team's prefix), schemas left out.
    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(prefix.trim_end_matches('/').to_owned(), 0usize)];
        while let Some((folder, depth)) = stack.pop() {
            for name in self.store.list(&folder).await? {
                let full = if folder.is_empty() {
                    name.clone()
                } else {
                    format!("{folder}/{name}")
                };
                // Schemas and overlays live in `_` folders (no config key segment starts so).
                if is_reserved_folder(name.trim_end_matches('/')) {
                    continue;
                }
                match name.strip_suffix('/') {
                    Some(_) if depth < LIST_DEPTH => {
                        stack.push((full.trim_end_matches('/').to_owned(), depth + 1))
                    }
                    Some(_) => out.push(full),
                    None => out.push(full),
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

async fn list(ctx: &Context, team: &Team, prefix: Option<&str>) -> anyhow::Result<ExitCode> {
    let keys = team.list(prefix.unwrap_or("")).await?;
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&keys)?);
    } else {
        for key in &keys {
            println!("{key}");
        }
        if keys.is_empty() {
            eprintln!(
                "no configs under {}",
                team.store.describe(prefix.unwrap_or(""))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn get(
    ctx: &Context,
    read: crate::offline::Read,
    field: Option<&str>,
    format: Option<Format>,
    reveal: bool,
    explain: bool,
) -> anyhow::Result<ExitCode> {
    let crate::offline::Read {
        key,
        doc,
        typing,
        layers,
    } = read;
    let key = key.as_str();
    if let (true, Some(layers)) = (explain, &layers) {
        let origins = layers.explain();
        if ctx.json() {
            println!("{}", serde_json::to_string_pretty(&origins)?);
        } else {
            println!("{:<32} FROM", "FIELD");
            for o in &origins {
                let from = match &o.origin {
                    harmony_config::layers::Origin::Base => "base".to_owned(),
                    harmony_config::layers::Origin::Overlay(env) if o.overrides => {
                        format!("{env} overlay (overrides the base)")
                    }
                    harmony_config::layers::Origin::Overlay(env) => format!("{env} overlay"),
                };
                println!("{:<32} {from}", o.field);
            }
        }
        eprintln!("{key}: {}", layers.versions_text());
        return Ok(ExitCode::SUCCESS);
    }
    let format = format.unwrap_or(if ctx.json() {
        Format::Json
    } else {
        Format::Yaml
    });
    let mut value = doc.value;
    if let Some(dotted) = field {
        let path = split_path(dotted);
        let Some(found) = value_at(&value, &path).cloned() else {
            let known: Vec<String> = leaves(&value)
                .into_iter()
                .map(|(p, _)| p.join("."))
                .collect();
            return Err(UsageError(format!(
                "{key} has no field {dotted}; it has: {}",
                known.join(", ")
            ))
            .into());
        };
        let shown = if !reveal && typing.is_secret(&path) && !found.is_null() {
            Value::String(harmony_config::document::MASK.to_owned())
        } else if reveal {
            found
        } else {
            // Mask secret leaves inside a returned subtree.
            let mut wrapper = Value::Object(Map::new());
            harmony_config::insert_at(wrapper.as_object_mut().context("an object")?, &path, found);
            value_at(&typing.masked(&wrapper), &path)
                .cloned()
                .unwrap_or(Value::Null)
        };
        match (format, &shown) {
            (Format::Json, v) => println!("{}", serde_json::to_string_pretty(v)?),
            (Format::Dotenv, v) => {
                let mut wrapper = Value::Object(Map::new());
                harmony_config::insert_at(
                    wrapper.as_object_mut().context("an object")?,
                    &path,
                    v.clone(),
                );
                check_dotenv_names(&typing, key, &wrapper)?;
                print!(
                    "{}",
                    typing
                        .to_dotenv(&wrapper, false)
                        .map_err(anyhow::Error::msg)?
                )
            }
            (Format::Yaml, Value::String(s)) => println!("{s}"),
            (Format::Yaml, v) => print!("{}", serde_yaml::to_string(v)?),
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !reveal {
        value = typing.masked(&value);
    }
    if format == Format::Dotenv {
        check_dotenv_names(&typing, key, &value)?;
    }
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Format::Yaml => print!("{}", typing.to_yaml(&value, false)),
        Format::Dotenv => print!(
            "{}",
            typing
                .to_dotenv(&value, false)
                .map_err(anyhow::Error::msg)?
        ),
    }
    match &layers {
        Some(layers) => eprintln!("{key}: {}", layers.versions_text()),
        None => eprintln!("{key}: version {}", doc.version),
    }
    Ok(ExitCode::SUCCESS)
}

/// The names a dotenv rendering of `value` sets pass the same rules as `export`'s
/// ([`crate::env_names`]): none of harmony's own variables.
fn check_dotenv_names(typing: &Typing, key: &str, value: &Value) -> anyhow::Result<()> {
    let rules = crate::env_names::NameRules::default();
    for (path, _) in leaves(value).into_iter().filter(|(p, _)| !p.is_empty()) {
        rules.check(&typing.env_var(&path), &format!("{key}.{}", path.join(".")))?;
    }
    Ok(())
}

/// Parse a whole document from a file: JSON or YAML (by extension, else whichever parses).
/// Errors give the position, never the content.
fn read_document_file(path: &std::path::Path) -> anyhow::Result<Map<String, Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let parsed: Result<Value, String> = match ext.as_str() {
        "json" => serde_json::from_str(&text)
            .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column())),
        _ => serde_json::from_str(&text).or_else(|_| {
            serde_yaml::from_str(&text).map_err(|e| match e.location() {
                Some(l) => format!(
                    "not valid JSON or YAML (line {}, column {})",
                    l.line(),
                    l.column()
                ),
                None => "not valid JSON or YAML".to_owned(),
            })
        }),
    };
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(UsageError(format!(
            "{} must hold one object (field: value, ...)",
            path.display()
        ))
        .into()),
        Err(reason) => Err(UsageError(format!("{}: {reason}", path.display())).into()),
    }
}

/// The most bytes `FIELD=-` reads from stdin.
const MAX_STDIN_VALUE: u64 = 1 << 20;

/// `assignments` with each value that is not on the command line filled in: `FIELD=-` reads
/// that one value from stdin (one trailing newline dropped), a bare `FIELD` asks for it on a
/// terminal (masked for a secret field). Values then never reach `/proc/PID/cmdline`.
async fn values_from_stdin_or_prompt(
    team: &Team,
    key: &str,
    assignments: &[String],
    ctx: &Context,
) -> anyhow::Result<Vec<String>> {
    let from_stdin = assignments
        .iter()
        .filter(|a| a.split_once('=').is_some_and(|(_, v)| v == "-"))
        .count();
    if from_stdin > 1 {
        return Err(UsageError(
            "only one FIELD=- per call: stdin holds one value (run `harmony config set` once \
             per field read from stdin)"
                .to_owned(),
        )
        .into());
    }
    let bare: Vec<&String> = assignments.iter().filter(|a| !a.contains('=')).collect();
    if !bare.is_empty() && !ctx.interactive {
        return Err(UsageError(format!(
            "{} has no value, and stdin is not a terminal to ask for it on; give {0}=VALUE, or \
             {0}=- to read the value from stdin",
            bare[0]
        ))
        .into());
    }
    // The schema says which prompts are secret (`set` says "untyped" itself when there is none).
    let typing = if bare.is_empty() {
        None
    } else {
        let stored = team.schema(key).await?;
        Some(
            Typing::new(key, stored.as_ref().map(|v| &v.value))
                .with_context(|| format!("the schema stored for {key} cannot be used"))?,
        )
    };
    let mut out = Vec::with_capacity(assignments.len());
    for a in assignments {
        match a.split_once('=') {
            Some((field, "-")) => {
                let value = tokio::task::spawn_blocking(read_stdin_value)
                    .await
                    .context("the stdin reader did not finish")?
                    .map_err(|e| UsageError(format!("{field}=-: {e}")))?;
                out.push(format!("{field}={value}"));
            }
            Some(_) => out.push(a.clone()),
            None => {
                let path = split_path(a);
                let Some(typing) = typing
                    .as_ref()
                    .filter(|t| !t.is_typed() || t.field(&path).is_some())
                else {
                    // Unknown field: `assign` says which fields there are, before any typing.
                    out.push(format!("{a}="));
                    continue;
                };
                let prompt = format!("{key}.{a}:");
                let secret = typing.is_secret(&path);
                let value = tokio::task::spawn_blocking(move || {
                    if secret {
                        inquire::Password::new(&prompt)
                            .without_confirmation()
                            .with_display_mode(inquire::PasswordDisplayMode::Masked)
                            .prompt()
                    } else {
                        inquire::Text::new(&prompt).prompt()
                    }
                })
                .await
                .context("the prompt did not finish")?
                .with_context(|| format!("reading the value of {key}.{a}"))?;
                out.push(format!("{a}={value}"));
            }
        }
    }
    Ok(out)
}

/// One value from stdin: UTF-8, at most [`MAX_STDIN_VALUE`] bytes, one trailing newline (`\n`
/// or `\r\n`) dropped. Errors never quote the input.
fn read_stdin_value() -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(MAX_STDIN_VALUE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    if bytes.len() as u64 > MAX_STDIN_VALUE {
        return Err(format!(
            "the value on stdin is longer than {MAX_STDIN_VALUE} bytes"
        ));
    }
    let mut text =
        String::from_utf8(bytes).map_err(|_| "the value on stdin is not UTF-8 text".to_owned())?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(text)
}

async fn set(
    team: &Team,
    key: &str,
    assignments: &[String],
    from_file: Option<&std::path::Path>,
    message: Option<&str>,
) -> anyhow::Result<ExitCode> {
    // Read (and parse the input) before anything is written; with an environment, the base
    // too (concurrently), to check the environment's whole config.
    let (current, typing, base) = tokio::join!(team.document(key), team.typing(key), async {
        match &team.env {
            Some(_) => team.base_document(key).await,
            None => Ok(None),
        }
    });
    let (current, typing, base) = (current?, typing?, base?);
    let (doc, whole) = match from_file {
        Some(path) => (read_document_file(path)?, true),
        None => {
            let mut doc = match &current {
                Some(v) => v.value.as_object().cloned().unwrap_or_default(),
                None => Map::new(),
            };
            for a in assignments {
                typing.assign(&mut doc, a).map_err(UsageError)?;
            }
            (doc, false)
        }
    };
    // A whole document must be complete; single assignments only must not break a field. An
    // overlay is checked as the environment's config it makes (over the base).
    let checked = match (&team.env, &base) {
        (Some(_), base) => {
            let base = base
                .as_ref()
                .and_then(|b| b.value.as_object().cloned())
                .unwrap_or_default();
            harmony_config::layers::resolve(&base, &doc)
        }
        (None, _) => doc.clone(),
    };
    let findings: Vec<_> = typing
        .check(&checked)
        .into_iter()
        .filter(|f| whole || !f.missing)
        .collect();
    if !findings.is_empty() {
        let lines: Vec<String> = findings
            .iter()
            .map(|f| format!("  {}: {}", f.field, f.problem))
            .collect();
        return Err(UsageError(format!(
            "{key} not saved, the schema refuses it:\n{}",
            lines.join("\n")
        ))
        .into());
    }
    let value = Value::Object(doc);
    if current.as_ref().is_some_and(|c| c.value == value) {
        eprintln!(
            "{key}: nothing changed (version {})",
            current.map_or(0, |c| c.version)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let expected = current.as_ref().map(|c| c.version);
    let version = team
        .write(key, &value, expected)
        .await
        .map_err(|e| match e {
            e @ SecretError::PermissionDenied { .. } => team.denied(e, key, "writing"),
            e => conflict_context(e, key),
        })?;
    eprintln!("{}: saved version {version}", team.what(key));
    let message = match (message, from_file) {
        (Some(m), _) => m.to_owned(),
        (None, Some(path)) => format!("set from {}", path.display()),
        (None, None) => format!("set {}", assigned_fields(assignments).join(", ")),
    };
    team.record(key, version, &message).await;
    Ok(ExitCode::SUCCESS)
}

/// The fields `FIELD=VALUE` assignments name (never their values), for the default message.
fn assigned_fields(assignments: &[String]) -> Vec<&str> {
    assignments
        .iter()
        .map(|a| a.split_once('=').map_or(a.as_str(), |(f, _)| f).trim())
        .collect()
}

/// A lost check-and-set says what happened and that nothing was written.
fn conflict_context(e: SecretError, key: &str) -> anyhow::Error {
    match e {
        SecretError::Conflict {
            expected, actual, ..
        } => anyhow::anyhow!(
            "{key} was changed by someone else meanwhile (you read version {}, version {} is stored); \
             nothing was written — run the command again to apply it on top of theirs",
            expected.map_or("none".to_owned(), |v| v.to_string()),
            actual.map_or("?".to_owned(), |v| v.to_string()),
        ),
        other => other.into(),
    }
}

async fn diff(
    ctx: &Context,
    team: &Team,
    key: &str,
    v1: Option<u64>,
    v2: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let newest = team
        .versions(key)
        .await?
        .first()
        .map(|v| v.version)
        .unwrap_or(0);
    let to = v2.unwrap_or(newest);
    let from = match v1 {
        Some(v) => v,
        None if to > 1 => to - 1,
        None => {
            return Err(UsageError(format!(
                "{key} has only version {to}; name two versions to compare"
            ))
            .into());
        }
    };
    let typing = team.typing(key).await?;
    let (old, new) = (team.version(key, from).await?, team.version(key, to).await?);
    let changes = typing.diff(&old, &new);
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("--- {key} version {from}");
    println!("+++ {key} version {to}");
    let show = |v: &Option<Value>| v.as_ref().map_or_else(String::new, Value::to_string);
    for c in &changes {
        let line = match (c.change, c.secret) {
            (ChangeKind::Unchanged, _) => format!("  {}: (secret) unchanged", c.field),
            (ChangeKind::Changed, true) => format!("~ {}: (secret) changed", c.field),
            (ChangeKind::Added, true) => format!("+ {}: (secret) added", c.field),
            (ChangeKind::Removed, true) => format!("- {}: (secret) removed", c.field),
            (ChangeKind::Changed, false) => {
                format!("~ {}: {} -> {}", c.field, show(&c.old), show(&c.new))
            }
            (ChangeKind::Added, false) => format!("+ {}: {}", c.field, show(&c.new)),
            (ChangeKind::Removed, false) => format!("- {}: {}", c.field, show(&c.old)),
        };
        println!("{line}");
    }
    if changes.iter().all(|c| c.change == ChangeKind::Unchanged) {
        eprintln!("no differences");
    }
    Ok(ExitCode::SUCCESS)
}

async fn rollback(
    team: &Team,
    key: &str,
    version: u64,
    message: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let current = team
        .versions(key)
        .await?
        .first()
        .map(|v| v.version)
        .unwrap_or(0);
    let content = team.version(key, version).await?;
    let written = team
        .write(key, &content, Some(current))
        .await
        .map_err(|e| match e {
            e @ SecretError::PermissionDenied { .. } => team.denied(e, key, "writing"),
            e => conflict_context(e, key),
        })?;
    eprintln!(
        "{}: saved version {written} with the content of version {version}",
        team.what(key)
    );
    let message = message.map_or_else(|| format!("rollback to {version}"), str::to_owned);
    team.record(key, written, &message).await;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Serialize)]
struct CheckReport {
    key: String,
    ok: bool,
    untyped: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    findings: Vec<harmony_config::document::Finding>,
}

async fn check(ctx: &Context, team: &Team, keys: &[String]) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for key in keys {
        let typing = team.typing(key).await?;
        let doc = match &team.env {
            None => team.document(key).await?,
            Some(_) => {
                let (base, overlay) = tokio::join!(team.base_document(key), team.document(key));
                let (base, overlay) = (base?, overlay?);
                let version = base.as_ref().map_or(0, |b| b.version)
                    + overlay.as_ref().map_or(0, |o| o.version);
                match (base, overlay) {
                    (None, None) => None,
                    (base, overlay) => {
                        let obj = |d: Option<Versioned<Value>>| {
                            d.and_then(|d| d.value.as_object().cloned())
                                .unwrap_or_default()
                        };
                        Some(Versioned {
                            value: Value::Object(harmony_config::layers::resolve(
                                &obj(base),
                                &obj(overlay),
                            )),
                            version,
                        })
                    }
                }
            }
        };
        let report = match doc {
            None => CheckReport {
                key: key.clone(),
                ok: false,
                untyped: !typing.is_typed(),
                error: Some(format!(
                    "no document stored at {}",
                    team.store.describe(key)
                )),
                findings: Vec::new(),
            },
            Some(doc) => {
                let findings = typing.check(doc.value.as_object().unwrap_or(&Map::new()));
                CheckReport {
                    key: key.clone(),
                    ok: findings.is_empty(),
                    untyped: !typing.is_typed(),
                    error: None,
                    findings,
                }
            }
        };
        reports.push(report);
    }
    if ctx.json() {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            match (&r.error, r.ok, r.untyped) {
                (Some(e), _, _) => println!("{}: {e}", r.key),
                (None, true, true) => println!("{}: untyped, nothing to check", r.key),
                (None, true, false) => println!("{}: ok", r.key),
                (None, false, _) => {
                    println!("{}: {} problem(s)", r.key, r.findings.len());
                    for f in &r.findings {
                        println!("  {}: {} (set {})", f.field, f.problem, f.env_var);
                    }
                }
            }
        }
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
