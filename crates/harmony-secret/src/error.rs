//! Errors of the secret store and its authentication.

/// Everything that can go wrong talking to the secret store.
///
/// No variant ever carries a token, password or secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// OpenBao answered that it is sealed.
    #[error(
        "OpenBao at {url} is sealed; unseal it (e.g. re-run the deploy, which unseals) and retry"
    )]
    Sealed {
        /// The server.
        url: String,
    },
    /// OpenBao could not be reached (refused, DNS, TLS, or no answer within the timeout).
    #[error(
        "OpenBao at {url} is unreachable: {reason}; check that it is running and that OPENBAO_URL points at it"
    )]
    Unreachable {
        /// The server.
        url: String,
        /// Short description (e.g. "timed out after 10 s", "connection refused").
        reason: String,
        /// The transport error.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The token is not allowed to act on this path.
    #[error("permission denied on {path}: {message}")]
    PermissionDenied {
        /// The full OpenBao path.
        path: String,
        /// OpenBao's message.
        message: String,
    },
    /// Nothing at this path.
    #[error("nothing found at {path}")]
    NotFound {
        /// The full OpenBao path.
        path: String,
    },
    /// A check-and-set write lost a race.
    #[error(
        "{path} changed concurrently: the write expected {expected} but the store holds {actual}; \
         re-read, merge and retry",
        expected = version_text(*.expected),
        actual = version_text(*.actual),
    )]
    Conflict {
        /// The full OpenBao path.
        path: String,
        /// The version the writer based its change on (`None`: it expected nothing stored).
        expected: Option<u64>,
        /// The version found (`None` when it could not be read back).
        actual: Option<u64>,
    },
    /// OpenBao answered, but not as expected (unexpected status or undecodable body).
    #[error("unexpected answer from OpenBao for {path} (HTTP {status}): {message}")]
    BadResponse {
        /// The full OpenBao path.
        path: String,
        /// HTTP status (0 when the body of a success could not be decoded).
        status: u16,
        /// OpenBao's errors, or the decode error.
        message: String,
    },
    /// Authentication failed or is impossible without a person.
    #[error("{0}")]
    Auth(String),
    /// A local file (session cache) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Invalid settings (missing URL, bad mount name, ...).
    #[error("{0}")]
    Config(String),
}

fn version_text(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no document".to_owned(),
    }
}
