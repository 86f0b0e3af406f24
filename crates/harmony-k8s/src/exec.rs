//! Running a command in a pod and capturing its output and exit status.
//!
//! kube hands back stdout and stderr as small in-memory pipes that the websocket task writes
//! into: reading them one after the other deadlocks once the unread one fills up, so both are
//! drained concurrently together with the status future. The status object the API server sends
//! on channel 3 is turned into an [`ExecStatus`] by [`parse_exec_status`], a pure function tested
//! without a cluster.
//!
//! Command arguments travel in the request URL (kube logs URLs at debug level) and are therefore
//! never logged or put into errors here, but callers must still not pass secrets as arguments.

use std::{fmt, time::Duration};

use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::Status};
use kube::{Api, api::AttachParams};
use tokio::io::{AsyncRead, AsyncReadExt};
use tracing::Instrument;

use crate::{K8sClient, K8sError};

/// Bound on one exec, from the upgrade to the exit status.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// How a command run in a pod ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// Exit code 0.
    Success,
    /// The command failed. `code` is its exit code when the API server reported one
    /// (`details.causes[reason=ExitCode]`); it is `None` when the command could not run at all
    /// (e.g. executable not found) or no status arrived.
    Failed {
        /// The exit code, if known.
        code: Option<i32>,
        /// The API server's message, e.g. `command terminated with non-zero exit code: ...`.
        message: String,
    },
}

impl ExecStatus {
    /// Whether the command exited with code 0.
    pub fn is_success(&self) -> bool {
        matches!(self, ExecStatus::Success)
    }
}

/// Output of [`K8sClient::exec_pod_capture_output`].
///
/// `Debug` shows sizes, not contents: output of commands like `bao operator init` holds secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Everything the command wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// Everything the command wrote to stderr (invalid UTF-8 replaced).
    pub stderr: String,
    /// How it ended.
    pub status: ExecStatus,
    pod: String,
    program: String,
}

impl fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecOutput")
            .field("pod", &self.pod)
            .field("program", &self.program)
            .field("stdout", &format_args!("<{} bytes>", self.stdout.len()))
            .field("stderr", &format_args!("<{} bytes>", self.stderr.len()))
            .field("status", &self.status)
            .finish()
    }
}

impl ExecOutput {
    /// `Ok(self)` when the command succeeded, else [`K8sError::ExecFailed`] with its exit code.
    /// The error does not include the output (it may hold secrets); read `stderr` first if it
    /// should be shown.
    pub fn into_success(self) -> Result<Self, K8sError> {
        match &self.status {
            ExecStatus::Success => Ok(self),
            ExecStatus::Failed { code, message } => Err(K8sError::ExecFailed {
                pod: self.pod.clone(),
                program: self.program.clone(),
                code: *code,
                message: message.clone(),
            }),
        }
    }
}

/// Turns the status object of an exec into an [`ExecStatus`].
///
/// `None` (the API server closed without a status) is a failure without a code.
pub fn parse_exec_status(status: Option<&Status>) -> ExecStatus {
    let Some(status) = status else {
        return ExecStatus::Failed {
            code: None,
            message: "the API server sent no exit status".to_owned(),
        };
    };
    if status.status.as_deref() == Some("Success") {
        return ExecStatus::Success;
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.trim().parse::<i32>().ok());
    let message = status
        .message
        .clone()
        .or_else(|| status.reason.clone())
        .unwrap_or_else(|| "command failed without a message".to_owned());
    ExecStatus::Failed { code, message }
}

impl K8sClient {
    /// Runs `command` in `namespace/pod` (in `container`, or the pod's only/default container)
    /// without a TTY or stdin, and returns its stdout, stderr and exit status.
    ///
    /// A non-zero exit is `Ok` with [`ExecStatus::Failed`]; use [`ExecOutput::into_success`] to
    /// turn it into an error. `Err` means the command could not be run or read at all. Bounded by
    /// [`EXEC_TIMEOUT`]. Do not pass secrets as arguments: they travel in the request URL.
    pub async fn exec_pod_capture_output(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
    ) -> Result<ExecOutput, K8sError> {
        let pod_ref = format!("{namespace}/{pod}");
        let Some(program) = command.first().map(|p| (*p).to_owned()) else {
            return Err(K8sError::EmptyCommand { pod: pod_ref });
        };
        let span = tracing::info_span!("k8s.exec", pod = %pod_ref, program = %program);
        let run = self.exec_inner(namespace, pod, container, command, &pod_ref, &program);
        match tokio::time::timeout(EXEC_TIMEOUT, run)
            .instrument(span)
            .await
        {
            Ok(result) => result,
            Err(_) => Err(K8sError::ExecTimeout {
                pod: pod_ref,
                program,
                timeout: EXEC_TIMEOUT,
            }),
        }
    }

    async fn exec_inner(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
        pod_ref: &str,
        program: &str,
    ) -> Result<ExecOutput, K8sError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let mut params = AttachParams::default()
            .stdin(false)
            .stdout(true)
            .stderr(true)
            .tty(false);
        if let Some(container) = container {
            params = params.container(container);
        }
        let mut process = api
            .exec(pod, command.to_vec(), &params)
            .await
            .map_err(|source| K8sError::ExecStart {
                pod: pod_ref.to_owned(),
                program: program.to_owned(),
                source,
            })?;
        let stream_err = |source| K8sError::ExecStream {
            pod: pod_ref.to_owned(),
            program: program.to_owned(),
            source,
        };
        let stdout = process.stdout();
        let stderr = process.stderr();
        let status = process.take_status();
        let (stdout, stderr, status) = tokio::join!(read_all(stdout), read_all(stderr), async {
            match status {
                Some(status) => status.await,
                None => None,
            }
        });
        let stdout = stdout.map_err(stream_err)?;
        let stderr = stderr.map_err(stream_err)?;
        if let Err(err) = process.join().await {
            // The outcome is already known from the status; a closing hiccup of the websocket
            // task does not change it.
            tracing::debug!(error = %err, "exec stream closed with an error");
        }
        let status = parse_exec_status(status.as_ref());
        tracing::debug!(?status, "exec finished");
        Ok(ExecOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            status,
            pod: pod_ref.to_owned(),
            program: program.to_owned(),
        })
    }
}

async fn read_all(reader: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut reader) = reader {
        reader.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(value: serde_json::Value) -> Status {
        serde_json::from_value(value).expect("valid Status")
    }

    #[test]
    fn success_status_is_success() {
        let s = status(json!({"metadata": {}, "status": "Success"}));
        assert_eq!(parse_exec_status(Some(&s)), ExecStatus::Success);
        assert!(parse_exec_status(Some(&s)).is_success());
    }

    #[test]
    fn non_zero_exit_code_is_read_from_the_exit_code_cause() {
        // What the kubelet sends for `sh -c 'exit 3'`.
        let s = status(json!({
            "metadata": {},
            "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        }));
        assert_eq!(
            parse_exec_status(Some(&s)),
            ExecStatus::Failed {
                code: Some(3),
                message: "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3".to_owned(),
            }
        );
    }

    #[test]
    fn failure_without_an_exit_code_has_no_code() {
        // What is sent when the executable does not exist in the container.
        let s = status(json!({
            "metadata": {},
            "status": "Failure",
            "message": "Internal error occurred: error executing command in container: executable file not found in $PATH",
            "reason": "InternalError",
            "details": {"causes": [{"message": "executable file not found in $PATH"}]},
        }));
        match parse_exec_status(Some(&s)) {
            ExecStatus::Failed {
                code: None,
                message,
            } => {
                assert!(message.contains("executable file not found"), "{message}")
            }
            other => panic!("expected a failure without code, got {other:?}"),
        }
        assert_eq!(
            parse_exec_status(None),
            ExecStatus::Failed {
                code: None,
                message: "the API server sent no exit status".to_owned()
            }
        );
    }

    #[test]
    fn an_unparsable_exit_code_is_no_code() {
        let s = status(json!({
            "metadata": {},
            "status": "Failure",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "lots"}]},
        }));
        assert_eq!(
            parse_exec_status(Some(&s)),
            ExecStatus::Failed {
                code: None,
                message: "NonZeroExitCode".to_owned()
            }
        );
    }

    #[test]
    fn debug_and_errors_never_show_output() {
        let out = ExecOutput {
            stdout: "unseal-key-s3cr3t".to_owned(),
            stderr: "root-token-s3cr3t".to_owned(),
            status: ExecStatus::Failed {
                code: Some(2),
                message: "command terminated with non-zero exit code".to_owned(),
            },
            pod: "openbao/openbao-0".to_owned(),
            program: "bao".to_owned(),
        };
        let debug = format!("{out:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
        assert!(debug.contains("<17 bytes>"), "{debug}");
        let err = out.into_success().expect_err("exit code 2 is a failure");
        let shown = err.to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert_eq!(
            shown,
            "`bao` in pod openbao/openbao-0 failed with exit code 2: command terminated with non-zero exit code"
        );
    }
}
