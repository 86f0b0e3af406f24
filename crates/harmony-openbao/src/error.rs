//! Errors of the OpenBao install and bootstrap.

use std::path::PathBuf;

use harmony_env::vars;

/// Everything that can go wrong installing or bootstrapping OpenBao.
///
/// No variant carries an unseal key, token or password: OpenBao's error text is kept, but the
/// requests that carry secrets never echo them back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenbaoError {
    /// OpenBao could not be reached (refused, DNS, TLS, or no answer within the timeout).
    #[error(
        "OpenBao at {url} is unreachable ({method} {path}); check that it is running and that the URL is right"
    )]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// HTTP method.
        method: String,
        /// The API path, e.g. `/v1/sys/init`.
        path: String,
        /// The client's error: the reason (a TLS failure names the variable that fixes it)
        /// and the transport error.
        #[source]
        source: Box<harmony_secret::SecretError>,
    },
    /// The token may not do this.
    #[error(
        "OpenBao at {url} denied {method} {path}: {message}; give an admin token ({token_var}) \
         or the keys file of the deploy that initialised it",
        token_var = vars::OPENBAO_TOKEN
    )]
    PermissionDenied {
        /// The server's base URL.
        url: String,
        /// HTTP method.
        method: String,
        /// The API path.
        path: String,
        /// OpenBao's `errors`.
        message: String,
    },
    /// OpenBao answered with an error status.
    #[error("OpenBao at {url} refused {method} {path} (HTTP {status}): {message}")]
    Server {
        /// The server's base URL.
        url: String,
        /// HTTP method.
        method: String,
        /// The API path.
        path: String,
        /// HTTP status.
        status: u16,
        /// OpenBao's `errors`, joined.
        message: String,
    },
    /// OpenBao answered with success, but the body is not what its API documents.
    #[error("unexpected answer from OpenBao at {url} for {method} {path}: {message}")]
    Decode {
        /// The server's base URL.
        url: String,
        /// HTTP method.
        method: String,
        /// The API path.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The server is initialised, sealed, and we hold no keys for it. Re-initialising would
    /// destroy its data, so the bootstrap stops.
    #[error(
        "OpenBao at {url} was initialised elsewhere and is sealed, and there is no keys file at {}: \
         put the unseal keys file of the deploy that initialised it there (or unseal it yourself \
         and pass an admin token in {token_var}); it is never re-initialised",
        keys_file.display(),
        token_var = vars::OPENBAO_TOKEN
    )]
    InitialisedElsewhere {
        /// The server's base URL.
        url: String,
        /// Where the keys file was expected.
        keys_file: PathBuf,
    },
    /// Every saved key was submitted and the server is still sealed.
    #[error(
        "OpenBao at {url} is still sealed after submitting the {submitted} key(s) from {}: \
         the keys file does not belong to this server (threshold {threshold}); restore the right file",
        keys_file.display()
    )]
    StillSealed {
        /// The server's base URL.
        url: String,
        /// The keys file used.
        keys_file: PathBuf,
        /// How many keys were submitted.
        submitted: usize,
        /// How many the server needs.
        threshold: u64,
    },
    /// The server was unsealed but did not become active in time.
    #[error(
        "OpenBao at {url} did not become active within {seconds} s after unsealing (last sys/health status {last_status}); \
         check the server's log (raft leader election, storage)"
    )]
    NotActive {
        /// The server's base URL.
        url: String,
        /// How long we waited.
        seconds: u64,
        /// The last `sys/health` HTTP status seen (0: no answer).
        last_status: u16,
    },
    /// The saved admin token no longer works (expired, revoked, or from another server).
    #[error(
        "OpenBao at {url} refused the saved {what} ({}): {reason}; recover with \
         --regenerate-root (it uses the saved key shares), or pass an admin token in OPENBAO_TOKEN",
         file.display()
    )]
    AdminTokenRejected {
        /// The server's base URL.
        url: String,
        /// Which token: "harmony-admin token" or "root token".
        what: &'static str,
        /// The admin token file.
        file: PathBuf,
        /// OpenBao's answer.
        reason: String,
    },
    /// Neither root token generation flow is open to us.
    #[error(
        "OpenBao at {url} refused to start a root token generation ({reason}): there is no usable \
         harmony-recovery token at {} (it expires when no run renewed it for 32 days) and this \
         server disables the unauthenticated sys/generate-root endpoints (the default since OpenBao \
         2.5.3); set disable_unauthed_generate_root_endpoints = false in the listener for a moment, \
         or use an admin token in OPENBAO_TOKEN", recovery_file.display()
    )]
    RootGenerationUnavailable {
        /// The server's base URL.
        url: String,
        /// OpenBao's answer.
        reason: String,
        /// Where the recovery token was looked for.
        recovery_file: PathBuf,
    },
    /// A node of a cluster still says it is uninitialised long after the cluster was.
    #[error(
        "the OpenBao node {url} still reports itself uninitialised {seconds} s after its cluster was \
         initialised: it has not joined the raft cluster; check its retry_join (leader_api_addr) \
         and its log, or leave it out of the node list"
    )]
    NotJoined {
        /// The node's base URL.
        url: String,
        /// How long we waited.
        seconds: u64,
    },
    /// Raft did not list every reachable node as a voter in time.
    #[error(
        "the OpenBao raft cluster at {url} lists {voters} voters of {servers} servers after {seconds} s, \
         {wanted} wanted; autopilot promotes a follower once it has been healthy for its server \
         stabilization time: check the followers' logs (sys/storage/raft/autopilot/state) and re-run"
    )]
    VotersMissing {
        /// The active node's base URL.
        url: String,
        /// Voters listed.
        voters: usize,
        /// Servers listed.
        servers: usize,
        /// Voters wanted (the reachable nodes).
        wanted: usize,
        /// How long we waited.
        seconds: u64,
    },
    /// Something is mounted at a path we need, but it is of another kind.
    #[error(
        "OpenBao at {url} has a {found} mount at {path} where Harmony needs {wanted}; \
         move or disable it, or point Harmony at another server"
    )]
    MountConflict {
        /// The server's base URL.
        url: String,
        /// The mount path, e.g. `secret/`.
        path: String,
        /// What is there (type and version).
        found: String,
        /// What Harmony needs.
        wanted: String,
    },
    /// A local state file (keys, password) could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    StateIo {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A local state file exists but is not what Harmony writes.
    #[error(
        "{} is not a valid Harmony OpenBao state file ({source}); restore it from a backup or, \
         if the server it belongs to is gone, delete it",
        path.display()
    )]
    StateCorrupt {
        /// The file.
        path: PathBuf,
        /// Where parsing failed: field path, line and column, never a value of the file.
        #[source]
        source: harmony_secret::redact::JsonError,
    },
    /// The base URL is not usable.
    #[error("invalid OpenBao URL {url:?}: {reason}")]
    InvalidUrl {
        /// What was given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// Harmony's data directory could not be determined.
    #[error(transparent)]
    DataDir(#[from] harmony_env::DataDirError),
    /// The OpenBao client could not be built (TLS settings: unreadable CA or client
    /// certificate files, ...) or failed in a way no other variant describes.
    #[error(transparent)]
    Client(harmony_secret::SecretError),
    /// A blocking file task panicked or was cancelled.
    #[error("the background task {what} did not finish: {source}")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
    /// helm could not add the repository or install the chart (the deploy crate's `HelmError`).
    #[error("installing OpenBao with helm failed")]
    Helm(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Scheduled backups in the cluster cannot be used as asked (none set up, no such
    /// snapshot, a copy that does not match); the text says what to do.
    #[error("{0}")]
    ScheduledBackups(String),
    /// A Kubernetes step (waiting for the pod, port-forwarding) failed.
    #[error("{what} failed")]
    Kubernetes {
        /// What was being done, with the pod.
        what: String,
        /// The Kubernetes error (harmony-k8s's `K8sError`).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The CI trust cannot be set up as given (e.g. two repositories on one role name).
    #[error(transparent)]
    CiSpec(#[from] super::bootstrap::CiSpecError),
    /// The CI platform's API could not tell a repository's immutable ids (and default branch).
    #[error(
        "could not look up {repository} at {url} for its immutable ids: {reason}; give them in the \
         spec instead ({hint}), or point {var} at the right API"
    )]
    CiLookup {
        /// `OWNER/REPO` or `GROUP/PROJECT`.
        repository: String,
        /// The API URL asked.
        url: String,
        /// What went wrong.
        reason: String,
        /// The spec form with ids.
        hint: String,
        /// The variable overriding the API base URL.
        var: &'static str,
    },
    /// The Helm values could not be rendered.
    #[error("could not render the OpenBao Helm values: {0}")]
    Values(#[source] serde_yaml::Error),
}
