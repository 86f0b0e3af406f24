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
    /// The tool did not finish within its deadline, was sent SIGTERM and then exited.
    #[error(
        "`{command}` did not finish within {} s; it was asked to stop (SIGTERM) and {}: {stderr}",
        .after.as_secs(),
        if *.killed { "had to be killed after the grace period" } else { "stopped" }
    )]
    Terminated {
        /// The command line.
        command: String,
        /// The deadline.
        after: Duration,
        /// Whether it ignored SIGTERM and was SIGKILLed after the grace period.
        killed: bool,
        /// What it printed on stderr.
        stderr: String,
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
    terminate_grace: Option<Duration>,
}

impl ToolCommand {
    /// A command for `program` that must finish within `timeout`.
    pub fn new(program: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            timeout,
            terminate_grace: None,
        }
    }

    /// At the deadline, send SIGTERM first and SIGKILL only if the tool is still running
    /// `grace` later (helm cancels its operation on SIGTERM and records the release as failed;
    /// a SIGKILL leaves it `pending-*`). Without this the tool is SIGKILLed at the deadline.
    pub fn terminate_grace(mut self, grace: Duration) -> Self {
        self.terminate_grace = Some(grace);
        self
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
        if let Some(grace) = self.terminate_grace {
            return self.run_with_terminate(child, command, grace).await;
        }
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
        Self::finish(command, output)
    }

    /// Runs to completion; at the deadline SIGTERM, then SIGKILL after `grace`.
    async fn run_with_terminate(
        &self,
        mut child: tokio::process::Child,
        command: String,
        grace: Duration,
    ) -> Result<CommandOutput, CommandError> {
        use tokio::io::AsyncReadExt as _;
        let wait_err = |command: &str| {
            let command = command.to_owned();
            move |source| CommandError::Wait { command, source }
        };
        // Read both pipes while waiting, so a chatty tool never blocks on a full pipe.
        let mut stdout_pipe = child.stdout.take();
        let mut stderr_pipe = child.stderr.take();
        let read_out = async move {
            let mut buf = Vec::new();
            if let Some(p) = stdout_pipe.as_mut() {
                p.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let read_err = async move {
            let mut buf = Vec::new();
            if let Some(p) = stderr_pipe.as_mut() {
                p.read_to_end(&mut buf).await?;
            }
            Ok::<_, std::io::Error>(buf)
        };
        let readers = tokio::spawn(async move { tokio::try_join!(read_out, read_err) });

        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => status.map_err(wait_err(&command))?,
            Err(_) => {
                let killed = self.terminate(&mut child, grace).await;
                // A grandchild may still hold the pipes: wait for the output only briefly.
                let stderr = match tokio::time::timeout(Duration::from_secs(2), readers).await {
                    Ok(Ok(Ok((_, err)))) => stderr_excerpt(&String::from_utf8_lossy(&err)),
                    _ => "(stderr not available)".to_owned(),
                };
                return Err(CommandError::Terminated {
                    command,
                    after: self.timeout,
                    killed,
                    stderr,
                });
            }
        };
        let (stdout, stderr) = readers
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
            .map_err(wait_err(&command))?;
        Self::finish(
            command,
            std::process::Output {
                status,
                stdout,
                stderr,
            },
        )
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns whether SIGKILL was needed.
    async fn terminate(&self, child: &mut tokio::process::Child, grace: Duration) -> bool {
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            tracing::warn!(
                program = %self.program.display(),
                grace_s = grace.as_secs(),
                "deadline passed: asking the tool to stop (SIGTERM)"
            );
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            if tokio::time::timeout(grace, child.wait()).await.is_ok() {
                return false;
            }
        }
        let _ = child.kill().await;
        true
    }

    fn finish(
        command: String,
        output: std::process::Output,
    ) -> Result<CommandOutput, CommandError> {
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
    async fn sigterm_first_then_the_tool_reports_and_exits() {
        // Like helm v3.21.4 (`cmd/helm/upgrade.go`/`install.go`: SIGTERM cancels the operation's
        // context, helm records the release as failed, prints the error and exits 1).
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("got-term");
        let script = format!(
            "trap 'echo term > {m}; echo \"Error: context canceled\" >&2; exit 1' TERM; while :; do sleep 0.05; done",
            m = marker.display()
        );
        let err = ToolCommand::new("/bin/sh", Duration::from_millis(300))
            .args(["-c", script.as_str()])
            .terminate_grace(Duration::from_secs(20))
            .run()
            .await
            .expect_err("must time out");
        match &err {
            CommandError::Terminated { killed, stderr, .. } => {
                assert!(!killed, "it stopped on SIGTERM: {err}");
                assert!(stderr.contains("context canceled"), "{err}");
            }
            other => panic!("expected Terminated, got {other:?}"),
        }
        assert!(marker.exists(), "SIGTERM reached the tool");
    }

    #[tokio::test]
    async fn a_tool_ignoring_sigterm_is_killed_after_the_grace_period() {
        let err = ToolCommand::new("/bin/sh", Duration::from_millis(200))
            .args(["-c", "trap '' TERM; while :; do sleep 0.05; done"])
            .terminate_grace(Duration::from_millis(300))
            .run()
            .await
            .expect_err("must time out");
        assert!(
            matches!(err, CommandError::Terminated { killed: true, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn with_a_grace_period_normal_runs_still_report_output_and_failure() {
        let out = ToolCommand::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "echo out; echo err >&2"])
            .terminate_grace(Duration::from_secs(1))
            .run()
            .await
            .expect("ok");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("out\n", "err\n")
        );
        let err = ToolCommand::new("/bin/sh", Duration::from_secs(10))
            .args(["-c", "echo boom >&2; exit 3"])
            .terminate_grace(Duration::from_secs(1))
            .run()
            .await
            .expect_err("exit 3");
        assert_eq!(err.stderr(), Some("boom"));
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
