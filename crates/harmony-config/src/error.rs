//! Errors of configuration loading.
//!
//! No variant ever carries the value of a secret field: an environment value is kept only when
//! its field is not secret, schema violations name the field and the expected type but never the
//! value, and serde's own messages are scrubbed of every secret value before they are kept.

use std::fmt;

use harmony_secret::SecretError;

/// Everything that can go wrong getting or setting a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `Config::KEY` is not a valid key.
    #[error(
        "config key {key:?} is invalid: {reason}; use lowercase letters, digits, '-' and '_' \
         (e.g. \"demo-app\")"
    )]
    InvalidKey {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An environment name is not valid.
    #[error(
        "environment {name:?} is invalid: {reason}; use lowercase letters, digits, '-' and '_', \
         starting with a letter (e.g. \"prod\")"
    )]
    InvalidEnvironment {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The type's JSON schema is not something a config can be built from.
    #[error("config {key:?}: unsupported schema: {reason}")]
    UnsupportedSchema {
        /// The config key.
        key: String,
        /// What is unsupported (e.g. "the root is not an object").
        reason: String,
    },
    /// Two fields map to the same environment variable.
    #[error(
        "config {key:?}: fields {first} and {second} both map to {var}; rename one of them \
         (e.g. with #[serde(rename)])"
    )]
    AmbiguousEnvVar {
        /// The config key.
        key: String,
        /// The variable.
        var: String,
        /// One field (dotted path).
        first: String,
        /// The other field.
        second: String,
    },
    /// An environment variable holds a value that does not parse as its field's type.
    #[error("{}", env_value_message(.var, .expected, .value.as_deref(), .reason))]
    EnvValue {
        /// The variable, e.g. `HARMONY_DEMO_APP_DATABASE_PORT`.
        var: String,
        /// The expected type, e.g. "an integer" or "one of: fast, slow".
        expected: String,
        /// The value, only when the field is not secret.
        value: Option<String>,
        /// Why it did not parse (never contains a secret value).
        reason: String,
    },
    /// Required fields are missing and prompting is not possible or not allowed.
    #[error("{0}")]
    Missing(MissingFields),
    /// The merged value violates the schema.
    #[error("{}", invalid_message(.key, .problems))]
    Invalid {
        /// The config key.
        key: String,
        /// Every violation found.
        problems: Vec<Problem>,
    },
    /// The merged value passed the schema checks but serde refused it.
    #[error(
        "config {key:?}: field {path} cannot be read: {message}; fix the value in the environment \
         or the store"
    )]
    Deserialize {
        /// The config key.
        key: String,
        /// Dotted path of the field (`.` for the root).
        path: String,
        /// serde's message with every secret value replaced by `[redacted]`.
        message: String,
    },
    /// The value could not be turned into JSON (for `set`).
    #[error("config {key:?}: cannot serialise the value: {source}")]
    Serialize {
        /// The config key.
        key: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// The secret store failed.
    #[error("config {key:?}: {action} {location} failed: {source}")]
    Store {
        /// The config key.
        key: String,
        /// "reading" or "writing".
        action: &'static str,
        /// Where, as the store describes it (e.g. `secret/data/harmony/demo-app`).
        location: String,
        /// The store's error (boxed: it is large and errors travel by value).
        #[source]
        source: Box<SecretError>,
    },
    /// The stored document is not a JSON object.
    #[error(
        "config {key:?}: the document at {location} is not a JSON object; fix or delete it \
         (it must hold the config's fields)"
    )]
    StoredNotObject {
        /// The config key.
        key: String,
        /// Where.
        location: String,
    },
    /// Writing needs a writable source, and the manager has none.
    #[error(
        "config {key:?}: there is no writable source to save to; add a StoreSource to the \
         ConfigManager"
    )]
    NoWritableSource {
        /// The config key.
        key: String,
    },
    /// Prompting for a field failed or was cancelled.
    #[error("config {key:?}: prompting for {field} failed: {source}")]
    Prompt {
        /// The config key.
        key: String,
        /// Dotted path of the field.
        field: String,
        /// What happened.
        #[source]
        source: PromptError,
    },
    /// The blocking prompt task died (it panicked or the runtime is shutting down).
    #[error("config {key:?}: the prompt task did not finish: {source}")]
    PromptTask {
        /// The config key.
        key: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Why a prompt did not produce a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The person cancelled (Esc or Ctrl+C).
    #[error("cancelled by the user")]
    Cancelled,
    /// There is no terminal to prompt on.
    #[error(
        "no terminal to prompt on; supply the value through the environment or the store instead"
    )]
    NoTerminal,
    /// The answer does not fit the field (only scripted prompters can produce this).
    #[error("the answer is not {expected}")]
    BadAnswer {
        /// The expected type.
        expected: String,
    },
    /// A scripted prompter was asked something it has no answer for.
    #[error("no scripted answer for this field")]
    Unscripted,
    /// The terminal failed.
    #[error("terminal error: {0}")]
    Terminal(#[source] std::io::Error),
    /// Anything else the prompt library reported.
    #[error("{0}")]
    Other(String),
}

/// One field missing from every source.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingField {
    /// Dotted path, e.g. `database.password`.
    pub path: String,
    /// Human name of the type, e.g. "integer".
    pub type_name: String,
    /// Whether the field is secret.
    pub secret: bool,
    /// How each source could supply it, e.g. "set HARMONY_DEMO_APP_DATABASE_PASSWORD".
    pub hints: Vec<String>,
}

/// The one error listing every missing field of a config.
#[derive(Debug, Clone, PartialEq)]
pub struct MissingFields {
    /// The config key.
    pub key: String,
    /// Every missing field, in schema order.
    pub fields: Vec<MissingField>,
    /// Where prompted values would be saved, when there is a writable source.
    pub saved_to: Option<String>,
}

impl fmt::Display for MissingFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.fields.len();
        writeln!(
            f,
            "config {:?} is missing {n} field{}:",
            self.key,
            if n == 1 { "" } else { "s" }
        )?;
        for field in &self.fields {
            let what = if field.secret {
                "secret".to_owned()
            } else {
                field.type_name.clone()
            };
            write!(f, "  - {} ({what})", field.path)?;
            if !field.hints.is_empty() {
                write!(f, ": {}", field.hints.join(", or "))?;
            }
            writeln!(f)?;
        }
        match &self.saved_to {
            Some(location) => write!(
                f,
                "run interactively (on a terminal) to be prompted for them; the answers are then \
                 saved at {location} so nobody is asked again"
            ),
            None => write!(
                f,
                "run interactively (on a terminal) to be prompted for them"
            ),
        }
    }
}

/// One schema violation in the merged value.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the field.
    pub path: String,
    /// What the schema expects, e.g. "an integer".
    pub expected: String,
    /// What was found (a JSON type name, or a range remark), never the value itself.
    pub found: String,
}

fn env_value_message(var: &str, expected: &str, value: Option<&str>, reason: &str) -> String {
    match value {
        Some(value) => format!(
            "{var}={value:?} is not valid: expected {expected} ({reason}); fix or unset {var}"
        ),
        None => format!(
            "{var} (secret, value hidden) is not valid: expected {expected} ({reason}); fix or \
             unset {var}"
        ),
    }
}

fn invalid_message(key: &str, problems: &[Problem]) -> String {
    let mut out = format!(
        "config {key:?} does not match its schema; fix these fields in the environment or the store:"
    );
    for p in problems {
        out.push_str(&format!(
            "\n  - {}: expected {}, found {}",
            p.path, p.expected, p.found
        ));
    }
    out
}
