//! Asking a person for missing fields.
//!
//! The question is built from the schema (type, secret flag, description as help, default); how
//! it is asked is a [`Prompter`]: [`InquirePrompter`] on a real terminal, [`ScriptedPrompter`] in
//! tests, which have no terminal. Prompters are synchronous (terminal I/O blocks), so
//! [`PromptSource`] runs them on tokio's blocking pool, never on the async runtime.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::env::{expected, insert_at, parse_value};
use crate::error::PromptError;
use crate::{ConfigError, Field, FieldKind};

/// One question: a missing field of a config.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The config key.
    pub key: String,
    /// The field, with its type, secret flag, description and default.
    pub field: Field,
}

impl Question {
    /// The prompt line, e.g. `demo-app: database.port`.
    pub fn message(&self) -> String {
        format!("{}: {}", self.key, self.field.dotted())
    }
}

/// Asks questions. Implementations block; they are called off the async runtime.
pub trait Prompter: Send + Sync + 'static {
    /// The answer to `question`, as a value of the field's type.
    fn ask(&self, question: &Question) -> Result<Value, PromptError>;
}

/// Prompts on the terminal with `inquire`: text, numbers, confirm for booleans, select for
/// enums, a masked password prompt for secret fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct InquirePrompter;

fn inquire_error(e: inquire::InquireError) -> PromptError {
    use inquire::InquireError as E;
    match e {
        E::NotTTY => PromptError::NoTerminal,
        E::OperationCanceled | E::OperationInterrupted => PromptError::Cancelled,
        E::IO(e) => PromptError::Terminal(e),
        other => PromptError::Other(other.to_string()),
    }
}

impl Prompter for InquirePrompter {
    fn ask(&self, question: &Question) -> Result<Value, PromptError> {
        let field = &question.field;
        let message = question.message();
        let help = field.description.clone().unwrap_or_default();
        let parse_field = field.clone();
        let validator = move |input: &str| {
            Ok(match parse_value(&parse_field, input) {
                Ok(_) => inquire::validator::Validation::Valid,
                Err(reason) => inquire::validator::Validation::Invalid(
                    format!("expected {} ({reason})", expected(&parse_field)).into(),
                ),
            })
        };

        if field.secret {
            let mut prompt = inquire::Password::new(&message)
                .with_display_mode(inquire::PasswordDisplayMode::Masked)
                .with_display_toggle_enabled()
                .without_confirmation()
                .with_validator(validator);
            if !help.is_empty() {
                prompt = prompt.with_help_message(&help);
            }
            let text = prompt.prompt().map_err(inquire_error)?;
            return parse_value(field, &text).map_err(|_| PromptError::BadAnswer {
                expected: expected(field),
            });
        }

        match &field.kind {
            FieldKind::Boolean => {
                let mut prompt = inquire::Confirm::new(&message);
                if let Some(Value::Bool(b)) = field.default {
                    prompt = prompt.with_default(b);
                }
                if !help.is_empty() {
                    prompt = prompt.with_help_message(&help);
                }
                prompt.prompt().map(Value::Bool).map_err(inquire_error)
            }
            FieldKind::Enum(values) => {
                let labels: Vec<String> = values
                    .iter()
                    .map(|v| crate::schema::enum_list(std::slice::from_ref(v)))
                    .collect();
                let start = field
                    .default
                    .as_ref()
                    .and_then(|d| values.iter().position(|v| v == d))
                    .unwrap_or(0);
                let mut prompt =
                    inquire::Select::new(&message, labels.clone()).with_starting_cursor(start);
                if !help.is_empty() {
                    prompt = prompt.with_help_message(&help);
                }
                let chosen = prompt.prompt().map_err(inquire_error)?;
                let index = labels.iter().position(|l| *l == chosen).unwrap_or(0);
                Ok(values.get(index).cloned().unwrap_or(Value::Null))
            }
            _ => {
                let default_text = field.default.as_ref().map(|d| match d {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
                let mut prompt = inquire::Text::new(&message).with_validator(validator);
                if let Some(d) = &default_text {
                    prompt = prompt.with_default(d);
                }
                if !help.is_empty() {
                    prompt = prompt.with_help_message(&help);
                }
                let text = prompt.prompt().map_err(inquire_error)?;
                parse_value(field, &text).map_err(|_| PromptError::BadAnswer {
                    expected: expected(field),
                })
            }
        }
    }
}

/// Answers from a script, keyed by dotted field path; records every question asked.
///
/// `Debug` shows which fields are scripted, never the answers (they may be secrets).
#[derive(Default)]
pub struct ScriptedPrompter {
    answers: HashMap<String, Value>,
    asked: Mutex<Vec<Question>>,
}

impl fmt::Debug for ScriptedPrompter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut fields: Vec<&String> = self.answers.keys().collect();
        fields.sort();
        f.debug_struct("ScriptedPrompter")
            .field("fields", &fields)
            .finish_non_exhaustive()
    }
}

impl ScriptedPrompter {
    /// A prompter answering `path` with `value` for each pair.
    pub fn new<K: Into<String>>(answers: impl IntoIterator<Item = (K, Value)>) -> Self {
        Self {
            answers: answers.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            asked: Mutex::new(Vec::new()),
        }
    }

    /// Every question asked so far, in order.
    pub fn asked(&self) -> Vec<Question> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Prompter for ScriptedPrompter {
    fn ask(&self, question: &Question) -> Result<Value, PromptError> {
        self.asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(question.clone());
        self.answers
            .get(&question.field.dotted())
            .cloned()
            .ok_or(PromptError::Unscripted)
    }
}

impl<P: Prompter> Prompter for Arc<P> {
    fn ask(&self, question: &Question) -> Result<Value, PromptError> {
        (**self).ask(question)
    }
}

/// Asks a [`Prompter`] for every missing field, off the async runtime.
#[derive(Clone)]
pub struct PromptSource {
    prompter: Arc<dyn Prompter>,
}

impl fmt::Debug for PromptSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptSource").finish_non_exhaustive()
    }
}

impl Default for PromptSource {
    fn default() -> Self {
        Self::new(InquirePrompter)
    }
}

impl PromptSource {
    /// Prompt with `prompter`.
    pub fn new(prompter: impl Prompter) -> Self {
        Self {
            prompter: Arc::new(prompter),
        }
    }

    /// Ask for each field in order; the answers as a partial object. Stops at the first
    /// failure (e.g. the person cancelled).
    pub async fn prompt(
        &self,
        key: &str,
        fields: &[Field],
    ) -> Result<Map<String, Value>, ConfigError> {
        let prompter = Arc::clone(&self.prompter);
        let questions: Vec<Question> = fields
            .iter()
            .map(|field| Question {
                key: key.to_owned(),
                field: field.clone(),
            })
            .collect();
        let owned_key = key.to_owned();
        let answers = tokio::task::spawn_blocking(move || {
            let mut out = Map::new();
            for q in &questions {
                tracing::debug!(config = %q.key, field = %q.field.dotted(), "prompting");
                let answer = prompter.ask(q).map_err(|source| ConfigError::Prompt {
                    key: q.key.clone(),
                    field: q.field.dotted(),
                    source,
                })?;
                insert_at(&mut out, &q.field.path, answer);
            }
            Ok::<_, ConfigError>(out)
        })
        .await
        .map_err(|source| ConfigError::PromptTask {
            key: owned_key,
            source,
        })??;
        Ok(answers)
    }
}
