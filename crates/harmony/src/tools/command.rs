//! Running an external tool (k3d, helm) as a bounded subprocess.
//!
//! Every run has a deadline: the child is killed when it passes (`kill_on_drop`), so a hung
//! `helm --wait` or a k3d waiting on a dead Docker daemon cannot hang the deploy. stdout and
//! stderr are captured whole; stderr goes into the error because it is where both tools say
//! what went wrong. stdout is never logged: `k3d kubeconfig get` prints client keys.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Longest stderr excerpt kept in an error; helm can print pages of manifest errors.
const STDERR_LIMIT: usize = 4000;

/// Why a tool run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The executable could not be started at all.
    #[error("could not run `{command}`: {source}; check that {program} exists and is executable")]
    Spawn {
        /// The command line, for the reader.
        command: String,
        /// The executable.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the child's output or waiting for it failed.
    #[error("lost track of `{command}`: {source}")]
    Wait {
        /// The command line.
        command: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The tool did not finish within its deadline and was killed.
    #[error("`{command}` did not finish within {} s and was stopped", .after.as_secs())]
    TimedOut {
        /// The command line.
        command: String,
        /// The deadline.
        after: Duration,
    },
    /// The tool ran and reported failure.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Exit code or signal, as text.
        status: String,
        /// What the tool printed on stderr (trimmed; the tail when very long).
        stderr: String,
    },
}

impl CommandError {
    /// The tool's stderr when it ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            CommandError::Failed { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// What a successful run printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Standard output, lossily decoded. May hold secrets (kubeconfigs): never log it.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl std::fmt::Debug for CommandOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // stdout can be a kubeconfig with client keys.
        f.debug_struct("CommandOutput")
            .field("stdout", &format_args!("<{} bytes>", self.stdout.len()))
            .field("stderr", &self.stderr)
            .finish()
    }
}

/// One invocation of a tool: program, arguments and a deadline.
#[derive(Debug, Clone)]
pub struct ToolCommand {
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    timeout: Duration,
}

impl ToolCommand {
    /// A command for `program` that must finish within `timeout`.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            timeout,
        }
    }

    /// Sets an environment variable for the tool (overriding the caller's environment).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The program this runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The command line as a reader would type it: the program's file name and the arguments.
    /// Arguments never carry secrets here (values and kubeconfigs are passed as files).
    pub fn display(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string());
        let mut out = name;
        for arg in &self.args {
            out.push(' ');
            out.push_str(&arg.to_string_lossy());
        }
        out
    }

    /// Runs the command to completion; a non-zero exit is [`CommandError::Failed`] with stderr.
    pub async fn run(&self) -> Result<CommandOutput, CommandError> {
        let command = self.display();
        tracing::debug!(%command, timeout_s = self.timeout.as_secs(), "running");
        let child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the wait future on timeout must not leave the tool running.
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CommandError::Spawn {
                command: command.clone(),
                program: self.program.clone(),
                source,
            })?;
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Err(_) => {
                return Err(CommandError::TimedOut {
                    command,
                    after: self.timeout,
                });
            }
            Ok(Err(source)) => return Err(CommandError::Wait { command, source }),
            Ok(Ok(output)) => output,
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            return Ok(CommandOutput { stdout, stderr });
        }
        let status = match output.status.code() {
            Some(code) => format!("exit code {code}"),
            None => exit_signal_text(&output.status),
        };
        Err(CommandError::Failed {
            command,
            status,
            stderr: stderr_excerpt(&stderr),
        })
    }
}

fn exit_signal_text(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => "no exit code".to_owned(),
    }
}

/// Trims and, when very long, keeps the tail: tools print the decisive line last.
fn stderr_excerpt(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        return "(nothing on stderr)".to_owned();
    }
    if trimmed.len() <= STDERR_LIMIT {
        return trimmed.to_owned();
    }
    let mut start = trimmed.len() - STDERR_LIMIT;
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &trimmed[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_stderr_keeps_the_tail() {
        let long = format!("{}the decisive line", "x".repeat(10_000));
        let excerpt = stderr_excerpt(&long);
        assert!(excerpt.ends_with("the decisive line"));
        assert!(excerpt.len() <= STDERR_LIMIT + 4);
        assert_eq!(stderr_excerpt("  \n"), "(nothing on stderr)");
    }

    #[tokio::test]
    async fn failure_carries_stderr_and_exit_code() {
        let err = ToolCommand::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .await
            .expect_err("exit 3 is a failure");
        assert_eq!(err.stderr(), Some("boom"));
        assert!(err.to_string().contains("exit code 3"), "{err}");
    }

    #[tokio::test]
    async fn deadline_kills_the_child() {
        let started = std::time::Instant::now();
        let err = ToolCommand::new("/bin/sh", Duration::from_millis(300))
            .args(["-c", "sleep 30"])
            .run()
            .await
            .expect_err("must time out");
        assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = ToolCommand::new("/nonexistent/k3d", Duration::from_secs(1))
            .run()
            .await
            .expect_err("no such file");
        assert!(matches!(err, CommandError::Spawn { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/k3d"), "{err}");
    }
}
