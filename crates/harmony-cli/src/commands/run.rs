//! `harmony run -c KEY -- CMD ...` and `harmony export -c KEY`: the team's config as environment
//! variables. By default named exactly as `harmony_config::EnvSource` reads them
//! (`HARMONY_<KEY>_<FIELD>`), so a Rust program using `ConfigManager` gets its whole config from
//! the environment with no network call; `--plain` gives `FIELD` names for any other program.
//! Every name passes [`crate::env_names`] (no startup-changing or harmony-own variable), and
//! dotenv values are single-quoted ([`harmony_config::document::shell_quote`]); `--format direnv` puts
//! `export ` before each line, so `eval "$(harmony export -c KEY --format direnv)"` in a
//! direnv `.envrc` sets them and runs nothing else.

use std::collections::BTreeMap;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::UsageError;
use crate::cli::{EnvArgs, ExportArgs, ExportFormat, RunArgs};
use crate::context::Context;
use crate::env_names::NameRules;
use crate::offline::{Read, read_documents};
use harmony_config::document::{MASK, leaves, shell_quote};

/// One variable and whether its value is a secret.
struct Var {
    value: String,
    secret: bool,
    /// `KEY.field.path`, for messages.
    from: String,
}

/// The variables, and the version of each document they came from.
struct Variables {
    vars: BTreeMap<String, Var>,
    versions: Vec<(String, u64)>,
}

/// Read every document and turn its leaves into variables.
async fn variables(ctx: &Context, args: &EnvArgs) -> anyhow::Result<Variables> {
    let rules = NameRules::new(&args.allow_name)?;
    let mut vars: BTreeMap<String, Var> = BTreeMap::new();
    let configs = ctx.configs_or_project(&args.configs)?;
    let mut versions = Vec::with_capacity(configs.len());
    for read in read_documents(ctx, &configs, &args.cache).await? {
        let Read {
            key, doc, typing, ..
        } = read;
        versions.push((key.clone(), doc.version));
        for (path, value) in leaves(&doc.value) {
            if path.is_empty() || value.is_null() {
                continue;
            }
            let base = if args.plain {
                path.iter()
                    .map(|s| s.replace('-', "_").to_ascii_uppercase())
                    .collect::<Vec<_>>()
                    .join("_")
            } else {
                typing.env_var(&path)
            };
            let name = format!("{}{base}", args.prefix.as_deref().unwrap_or_default());
            let from = format!("{key}.{}", path.join("."));
            rules.check(&name, &from)?;
            if let Some(earlier) = vars.get(&name) {
                return Err(UsageError(format!(
                    "{from} and {} would both be {name}; drop --plain or give one of them a --prefix \
                     in a separate run",
                    earlier.from
                ))
                .into());
            }
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(
                name,
                Var {
                    value: text,
                    secret: typing.is_secret(&path),
                    from,
                },
            );
        }
    }
    Ok(Variables { vars, versions })
}

/// A value with a NUL byte, which no environment variable or shell word can carry (an error
/// naming the field, never the value).
fn nul_error(var: &Var) -> anyhow::Error {
    anyhow::anyhow!(
        "{} holds a NUL byte, which no environment variable can carry; fix that value \
         (`harmony export --format json` shows it escaped)",
        var.from
    )
}

/// [`nul_error`] for the first such value.
fn refuse_nul(vars: &BTreeMap<String, Var>) -> anyhow::Result<()> {
    match vars.values().find(|v| v.value.contains('\0')) {
        Some(var) => Err(nul_error(var)),
        None => Ok(()),
    }
}

/// `harmony run`.
pub async fn run(ctx: &Context, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let Some((program, rest)) = args.command.split_first() else {
        return Err(UsageError("name the program to run after `--`".to_owned()).into());
    };
    let read = variables(ctx, &args.env).await?;
    refuse_nul(&read.vars)?;
    let command = program_command(&read.vars, program, rest, args.override_env, true);
    tracing::debug!(
        variables = read.vars.len(),
        "starting the program with the config"
    );
    if args.watch {
        return super::watch::run(ctx, args, read.versions, command, program).await;
    }
    exec(command, program)
}

/// `program rest...` with the variables in its environment (existing ones win unless
/// `override_env`; `say_kept` notes on stderr which were kept).
fn program_command(
    vars: &BTreeMap<String, Var>,
    program: &std::ffi::OsStr,
    rest: &[std::ffi::OsString],
    override_env: bool,
    say_kept: bool,
) -> std::process::Command {
    let mut command = std::process::Command::new(program);
    command.args(rest);
    let mut kept = Vec::new();
    for (name, var) in vars {
        if !override_env && std::env::var_os(name).is_some() {
            kept.push(name.as_str());
            continue;
        }
        command.env(name, &var.value);
    }
    if say_kept && !kept.is_empty() {
        eprintln!(
            "note: kept {} from the environment (pass --override to use the stored values)",
            kept.join(", ")
        );
    }
    command
}

/// The program's command again, from the documents as they are now (for `--watch`), with the
/// versions read.
pub(super) async fn reread(
    ctx: &Context,
    args: &RunArgs,
) -> anyhow::Result<(std::process::Command, Vec<(String, u64)>)> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| UsageError("name the program to run after `--`".to_owned()))?;
    let read = variables(ctx, &args.env).await?;
    refuse_nul(&read.vars)?;
    Ok((
        program_command(&read.vars, program, rest, args.override_env, false),
        read.versions,
    ))
}

/// Replace this process with `command` (Unix): the program's signals and exit code are its own.
#[cfg(unix)]
fn exec(mut command: std::process::Command, program: &std::ffi::OsStr) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt as _;
    let error = command.exec();
    Err(anyhow::Error::new(error).context(format!(
        "could not start {}; check the name and that it is on PATH",
        program.to_string_lossy()
    )))
}

/// Elsewhere: run it and pass its exit code on.
#[cfg(not(unix))]
fn exec(mut command: std::process::Command, program: &std::ffi::OsStr) -> anyhow::Result<ExitCode> {
    let status = command.status().map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "could not start {}; check the name and that it is on PATH",
            program.to_string_lossy()
        ))
    })?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}

/// `harmony export`.
pub async fn export(ctx: &Context, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let vars = variables(ctx, &args.env).await?.vars;
    let shown = |var: &Var| {
        if args.mask && var.secret {
            MASK.to_owned()
        } else {
            var.value.clone()
        }
    };
    match args.format {
        ExportFormat::Dotenv | ExportFormat::Direnv => {
            // Names passed `crate::env_names` (plain shell names), values are single-quoted:
            // the lines are assignments and nothing else, also under `eval`.
            let export = if args.format == ExportFormat::Direnv {
                "export "
            } else {
                ""
            };
            // All lines first: a refused value leaves no half-written file.
            let mut out = String::new();
            for (name, var) in &vars {
                let quoted = shell_quote(&shown(var)).ok_or_else(|| nul_error(var))?;
                out.push_str(&format!("{export}{name}={quoted}\n"));
            }
            print!("{out}");
        }
        ExportFormat::Json | ExportFormat::Yaml => {
            let map: Map<String, Value> = vars
                .iter()
                .map(|(name, var)| (name.clone(), Value::String(shown(var))))
                .collect();
            let value = Value::Object(map);
            if args.format == ExportFormat::Json {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", serde_yaml::to_string(&value)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
