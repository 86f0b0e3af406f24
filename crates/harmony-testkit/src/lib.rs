//! Real servers for Harmony's tests, on free loopback ports.
//!
//! Nothing here is a mock: [`OpenbaoServer`] runs the real `bao` binary (the version pinned by
//! `scripts/test`) either in dev mode, with a root token the test knows, or as a real
//! uninitialised and sealed server on raft storage, so that init, unseal and the `Sealed` error
//! are exercised for real. Every server is killed when its handle is dropped, and its state lives
//! in a temporary directory owned by the handle.
//!
//! A server that cannot be found is an error whose message says how to get it; tests never skip.
//!
//! ```no_run
//! # async fn demo() -> Result<(), harmony_testkit::TestkitError> {
//! let bao = harmony_testkit::OpenbaoServer::dev().await?;
//! println!("OpenBao at {}", bao.url());
//! # Ok(()) }
//! ```

pub mod cli_cases;
pub mod kubeconfig;
mod locate;
pub mod oidc;
mod openbao;
pub mod proxy;
mod raft;

pub use locate::{bao_binary, workspace_root};
pub use openbao::{InitKeys, OpenbaoServer};
pub use raft::OpenbaoCluster;

use std::path::PathBuf;

/// What went wrong starting or driving a test server.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A required executable is absent.
    #[error("{what} was not found ({searched}). {hint}")]
    Missing {
        /// What is missing, e.g. "the OpenBao `bao` binary".
        what: &'static str,
        /// Where it was looked for.
        searched: String,
        /// How to get it.
        hint: &'static str,
    },
    /// The process could not be spawned.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer in time; the tail of its log is attached.
    #[error("{what} did not become ready within {seconds} s; last log lines:\n{log_tail}")]
    NotReady {
        /// The server.
        what: &'static str,
        /// How long we waited.
        seconds: u64,
        /// The end of the server's log.
        log_tail: String,
    },
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP exchange with a test server failed or answered unexpectedly.
    #[error("{context}: {message}")]
    Http {
        /// What was being done.
        context: String,
        /// What happened.
        message: String,
    },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestkitError {
    let context = context.into();
    move |source| TestkitError::Io { context, source }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> Result<u16, TestkitError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("bind 127.0.0.1:0"))?;
    Ok(listener
        .local_addr()
        .map_err(io_err("read local address"))?
        .port())
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub(crate) fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
