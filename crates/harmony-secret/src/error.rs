//! Errors of the secret store and its authentication.
//!
//! [`SecretError`] is what every store operation returns; [`AuthError`] is its authentication
//! part, kept apart so the CLI can tell "sign in differently" from "OpenBao is down".

use crate::steps::{AuthStep, Authenticated};

/// Everything that can go wrong talking to the secret store.
///
/// No variant ever carries a token, password or secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// OpenBao answered that it is sealed.
    #[error(
        "OpenBao at {url} is sealed; unseal it and retry: re-running the deploy unseals the local cluster, `harmony-sso --openbao-url {url}` an existing server"
    )]
    Sealed {
        /// The server.
        url: String,
    },
    /// OpenBao could not be reached (refused, DNS, TLS, or no answer within the timeout).
    #[error(
        "OpenBao at {url} is unreachable: {reason}; check that it is running and that {var} points at it",
        var = harmony_env::vars::OPENBAO_URL
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
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A local file (session cache) could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Invalid settings (missing URL, bad mount name, bad path, ...).
    #[error("{0}")]
    Config(String),
    /// The local data directory (home of the session cache) could not be determined.
    #[error(transparent)]
    DataDir(#[from] harmony_env::DataDirError),
}

impl SecretError {
    /// The servers needed did not answer: OpenBao unreachable or sealed (or a gateway in front
    /// of it answered 502/503/504), or a sign-in that could not reach the OpenID provider or
    /// OpenBao. What an offline copy may stand in for; a refusal may not.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sealed { .. } | Self::Unreachable { .. } => true,
            Self::BadResponse { status, .. } => matches!(status, 502..=504),
            Self::Auth(AuthError::Sso(e)) => {
                e.is_provider_unavailable()
                    || matches!(e, crate::oidc::OidcError::OpenbaoUnreachable { .. })
            }
            _ => false,
        }
    }
}

fn version_text(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "no document".to_owned(),
    }
}

/// Why no OpenBao token could be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Every configured step of the auth chain was tried and none yielded a usable token.
    #[error(
        "could not authenticate to OpenBao at {url} ({attempts}); set {token_var} (or {token_aliases}), \
         or {user_var} and {password_var} for userpass, or {sso_var} and {client_var} for SSO \
         (sign in once from a terminal)",
        attempts = attempts_text(.attempts),
        token_var = harmony_env::vars::OPENBAO_TOKEN,
        token_aliases = harmony_env::vars::OPENBAO_TOKEN_ALIASES[1..].join(" / "),
        user_var = harmony_env::vars::OPENBAO_USERNAME,
        password_var = harmony_env::vars::OPENBAO_PASSWORD,
        sso_var = harmony_env::vars::HARMONY_SSO_URL,
        client_var = harmony_env::vars::HARMONY_SSO_CLIENT_ID,
    )]
    Exhausted {
        /// The server.
        url: String,
        /// What each step of the chain found, in order.
        attempts: Vec<AuthAttempt>,
    },
    /// A token header could not be built (the token holds characters HTTP headers forbid).
    #[error("the OpenBao token is not a valid HTTP header value; check {var} for stray characters",
        var = harmony_env::vars::OPENBAO_TOKEN)]
    MalformedToken(#[source] http::header::InvalidHeaderValue),
    /// The SSO sign-in ended without a token: denied, expired, the provider failed, or OpenBao
    /// refused the id_token (with OpenBao's message).
    #[error(transparent)]
    Sso(#[from] crate::oidc::OidcError),
    /// A CI job could not get its id_token, or OpenBao refused it (with the token's claims).
    #[error(transparent)]
    Ci(#[from] crate::ci::CiError),
}

/// One step of the auth chain that did not yield a token, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAttempt {
    /// The step.
    pub step: AuthStep,
    /// Why it did not yield a token.
    pub failure: AttemptFailure,
}

/// Why one auth step did not yield a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptFailure {
    /// The settings hold nothing for this step (no token, no username, ...).
    NotConfigured,
    /// No cached session exists for this server and identity.
    NoSession,
    /// The cached session's token has expired.
    SessionExpired,
    /// OpenBao rejected the credentials or token; carries OpenBao's message.
    Rejected {
        /// OpenBao's errors, joined.
        message: String,
    },
    /// The SSO step failed before reaching OpenBao (provider unreachable, refresh token
    /// refused, ...).
    SsoFailed {
        /// What went wrong (token-free).
        message: String,
    },
    /// The step needs a person, and this process may not ask one.
    NonInteractive,
}

impl std::fmt::Display for AuthAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.step)?;
        match &self.failure {
            AttemptFailure::NotConfigured => f.write_str("not configured"),
            AttemptFailure::NoSession => f.write_str("no cached session"),
            AttemptFailure::SessionExpired => f.write_str("cached session expired"),
            AttemptFailure::Rejected { message } => write!(f, "rejected by OpenBao: {message}"),
            AttemptFailure::SsoFailed { message } => write!(f, "{message}"),
            AttemptFailure::NonInteractive => write!(
                f,
                "needs a person to approve a sign-in, but this process is non-interactive ({} is set \
                 or stdin is not a terminal); sign in once from a terminal, the session is then reused",
                harmony_env::vars::HARMONY_NON_INTERACTIVE
            ),
        }
    }
}

fn attempts_text(attempts: &[AuthAttempt]) -> String {
    if attempts.is_empty() {
        return "no auth step is configured".to_owned();
    }
    attempts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// The outer `Result` stops the chain (server trouble); the inner one moves on to the next step.
pub(crate) type StepResult = Result<Result<Authenticated, AttemptFailure>, SecretError>;

/// A token rejection becomes a step failure; anything else is server trouble.
pub(crate) fn rejected(e: SecretError) -> Result<AttemptFailure, SecretError> {
    match e {
        SecretError::PermissionDenied { message, .. } => Ok(AttemptFailure::Rejected { message }),
        other => Err(other),
    }
}
