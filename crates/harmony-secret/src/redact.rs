//! What of a server's answer or a local file may be shown to a person.
//!
//! Two leaks this module closes:
//! - **Server bodies in errors.** An OpenBao error body is usually `{"errors": [...]}`, but a
//!   proxy, a misrouted request or a future server version may answer with anything, including
//!   a login answer holding a token. [`openbao_message`] keeps OpenBao's `errors` text, strips
//!   the values of token- and key-shaped fields ([`SECRET_FIELDS`]) and caps the length.
//! - **Parse errors quoting input.** serde_json's messages quote the offending value
//!   (`invalid type: string "<unseal key>"`). [`from_json_slice`] parses with a
//!   [`JsonError`] that carries the field path, line and column, and never a value.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Field names whose values never leave this process in a message.
pub const SECRET_FIELDS: &[&str] = &[
    "client_token",
    "token",
    "id_token",
    "refresh_token",
    "access_token",
    "keys",
    "keys_base64",
    "root_token",
    "password",
    "secret_id",
];

/// The longest server message kept in an error, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

const REDACTED: &str = "[redacted]";

/// OpenBao's `errors` joined into one line (its "1 error occurred:" wrapping removed), or the
/// whole body when it has none; secret-shaped values redacted, capped at
/// [`MAX_MESSAGE_CHARS`].
pub fn openbao_message(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            let errors: Option<Vec<String>> = value
                .get("errors")
                .and_then(|e| serde_json::from_value(e.clone()).ok());
            match errors {
                Some(errors) => errors.join("; "),
                None => {
                    scrub_json(&mut value);
                    value.to_string()
                }
            }
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    // OpenBao wraps multi-errors as "1 error occurred:\n\t* permission denied\n\n".
    let cleaned: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_start_matches("* ").trim())
        .filter(|l| {
            !l.is_empty() && !l.ends_with("error occurred:") && !l.ends_with("errors occurred:")
        })
        .collect();
    if cleaned.is_empty() {
        return "(no message)".to_owned();
    }
    cap(&scrub_text(&cleaned.join("; ")), MAX_MESSAGE_CHARS)
}

/// Replace, anywhere in `value`, the value of every field named in [`SECRET_FIELDS`].
pub fn scrub_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret_field(key) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    scrub_json(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_json),
        _ => {}
    }
}

fn is_secret_field(name: &str) -> bool {
    SECRET_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

/// Redact secret values in free text: after a [`SECRET_FIELDS`] name followed by `:` or `=`
/// (quoted or not, as in JSON fragments, form bodies or log lines), the value up to its end;
/// and words shaped like OpenBao tokens (`hvs.`, `hvb.`, `hvr.`, `s.`, `b.` followed by at
/// least 20 token characters).
pub fn scrub_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = secret_assignment_value(&chars, i) {
            // Copy the key and separator, redact the value.
            let (value_start, value_end) = end;
            out.extend(&chars[i..value_start]);
            out.push_str(REDACTED);
            i = value_end;
            continue;
        }
        if is_word_start(&chars, i)
            && let Some(len) = token_word_len(&chars[i..])
        {
            out.push_str(REDACTED);
            i += len;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn is_word_start(chars: &[char], i: usize) -> bool {
    i == 0 || !is_token_char(chars[i - 1])
}

/// The length of an OpenBao-token-shaped word at the start of `chars`.
fn token_word_len(chars: &[char]) -> Option<usize> {
    let len = chars.iter().take_while(|c| is_token_char(**c)).count();
    let word: String = chars[..len].iter().collect();
    let body = ["hvs.", "hvb.", "hvr.", "s.", "b."]
        .iter()
        .find_map(|p| word.strip_prefix(p))?;
    (body.len() >= 20 && body.chars().all(|c| c.is_ascii_alphanumeric())).then_some(len)
}

/// When a secret field name starts at `i` (as a whole word, optionally quoted) and is followed
/// by `:` or `=`, the range of its value.
fn secret_assignment_value(chars: &[char], i: usize) -> Option<(usize, usize)> {
    if i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let name_start = if chars[i] == '"' { i + 1 } else { i };
    let name_len = chars[name_start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
        .count();
    if name_len == 0 {
        return None;
    }
    let name: String = chars[name_start..name_start + name_len].iter().collect();
    if !is_secret_field(&name) {
        return None;
    }
    let mut j = name_start + name_len;
    if chars[i] == '"' {
        if chars.get(j) != Some(&'"') {
            return None;
        }
        j += 1;
    }
    while chars.get(j).is_some_and(|c| *c == ' ') {
        j += 1;
    }
    if !matches!(chars.get(j), Some(':' | '=')) {
        return None;
    }
    j += 1;
    while chars.get(j).is_some_and(|c| *c == ' ') {
        j += 1;
    }
    let start = j;
    let end = match chars.get(j) {
        None => return None,
        Some('"') => {
            let mut k = j + 1;
            while k < chars.len() && chars[k] != '"' {
                k += if chars[k] == '\\' { 2 } else { 1 };
            }
            (k + 1).min(chars.len())
        }
        Some('[') => {
            let mut depth = 0usize;
            let mut k = j;
            while k < chars.len() {
                match chars[k] {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            (k + 1).min(chars.len())
        }
        Some(_) => {
            let mut k = j;
            while k < chars.len() && !matches!(chars[k], ',' | '}' | '&' | ';' | ' ' | '\n') {
                k += 1;
            }
            k
        }
    };
    (end > start).then_some((start, end))
}

/// `text` cut to at most `max` characters, saying how much was left out.
pub fn cap(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max).collect();
    format!("{kept}… ({} more characters)", count - max)
}

/// A JSON document could not be decoded. Carries where, never what: no value of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at {path} (line {line}, column {column})")]
pub struct JsonError {
    /// The category: "not valid JSON", "missing field `x`", "a field has an unexpected type
    /// or value", ...
    pub what: String,
    /// The field path, e.g. `keys_base64[0]` (`the top level` for the document itself).
    pub path: String,
    /// 1-based line of the failure.
    pub line: usize,
    /// 1-based column of the failure.
    pub column: usize,
}

/// Decode `bytes` as `T`; the error names the field path, line and column, never a value.
pub fn from_json_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        JsonError {
            what: json_error_category(inner),
            path: if path == "." {
                "the top level".to_owned()
            } else {
                path
            },
            line: inner.line(),
            column: inner.column(),
        }
    })?;
    de.end().map_err(|e| JsonError {
        what: json_error_category(&e),
        path: "the end of the document".to_owned(),
        line: e.line(),
        column: e.column(),
    })?;
    Ok(value)
}

/// A value-free description of a JSON decode error: its category and position. serde's
/// messages for wrong types or unknown variants quote the offending value, which may be a
/// token, so only the category and a missing field's name are kept.
pub fn json_error_detail(e: &serde_json::Error) -> String {
    format!(
        "{} (line {}, column {})",
        json_error_category(e),
        e.line(),
        e.column()
    )
}

fn json_error_category(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Syntax => "not valid JSON".to_owned(),
        serde_json::error::Category::Eof => "the JSON ends early".to_owned(),
        serde_json::error::Category::Io => "the input could not be read".to_owned(),
        serde_json::error::Category::Data => {
            let text = e.to_string();
            match text.strip_prefix("missing field ") {
                Some(rest) => format!(
                    "missing field {}",
                    rest.split_whitespace().next().unwrap_or_default()
                ),
                None => "a field has an unexpected type or value".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "hvs.CAESIJ0secretsecretsecret0123456789";

    #[test]
    fn openbao_errors_are_joined_and_unwrapped() {
        assert_eq!(
            openbao_message(br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#),
            "permission denied"
        );
        assert_eq!(openbao_message(br#"{"errors":["a","b"]}"#), "a; b");
        assert_eq!(openbao_message(b""), "(no message)");
        assert_eq!(openbao_message(b"plain text"), "plain text");
    }

    /// Regression (review finding 2): a body that is not OpenBao's `errors` went into the
    /// error whole, tokens and unseal keys included.
    #[test]
    fn bodies_are_scrubbed_of_token_and_key_fields() {
        let body = format!(
            r#"{{"auth":{{"client_token":"{TOKEN}","accessor":"acc-1"}},"keys":["k1-secret"],"keys_base64":["a2V5LXNlY3JldA=="],"root_token":"root-secret","data":{{"id_token":"eyJ.id.sig","refresh_token":"rt-secret","token":"tok-secret"}}}}"#
        );
        let message = openbao_message(body.as_bytes());
        for secret in [
            TOKEN,
            "k1-secret",
            "a2V5LXNlY3JldA==",
            "root-secret",
            "eyJ.id.sig",
            "rt-secret",
            "tok-secret",
        ] {
            assert!(!message.contains(secret), "{secret} leaked: {message}");
        }
        assert!(
            message.contains("acc-1"),
            "non-secret fields stay: {message}"
        );

        // Not JSON (a proxy's page, a truncated body): the same fields, as text.
        let text = format!(
            r#"upstream said: {{"client_token": "{TOKEN}", "keys_base64": ["abc", "def"]}} and token=tok-2&x=1 root_token: rt-3"#
        );
        let message = openbao_message(text.as_bytes());
        for secret in [TOKEN, "abc", "def", "tok-2", "rt-3"] {
            assert!(!message.contains(secret), "{secret} leaked: {message}");
        }
        assert!(message.contains("upstream said"), "{message}");
        // A bare token-shaped word in an error message.
        let message = openbao_message(format!(r#"{{"errors":["bad token {TOKEN}"]}}"#).as_bytes());
        assert_eq!(message, "bad token [redacted]");
    }

    #[test]
    fn long_bodies_are_capped() {
        let body = "x".repeat(100_000);
        let message = openbao_message(body.as_bytes());
        assert!(
            message.chars().count() < MAX_MESSAGE_CHARS + 40,
            "{}",
            message.len()
        );
        assert!(message.ends_with("(99500 more characters)"), "{message}");
    }

    #[test]
    fn words_that_only_look_like_prefixes_stay() {
        assert_eq!(scrub_text("s.t. b.c. tokens=1"), "s.t. b.c. tokens=1");
        assert_eq!(scrub_text("the token is invalid"), "the token is invalid");
    }

    /// Regression (review finding 1): a wrong-typed field made serde_json quote the value.
    #[test]
    fn parse_errors_name_the_field_and_never_the_value() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Keys {
            keys_base64: Vec<String>,
            root_token: String,
            n: u64,
        }
        let e = from_json_slice::<Keys>(
            br#"{"keys_base64": ["a"], "root_token": "s.root-secret", "n": "unseal-key-secret"}"#,
        )
        .expect_err("wrong type");
        let text = e.to_string();
        assert!(!text.contains("unseal-key-secret"), "{text}");
        assert!(!text.contains("root-secret"), "{text}");
        assert_eq!(e.path, "n", "{text}");
        assert_eq!(e.line, 1);
        let e = from_json_slice::<Keys>(br#"{"keys_base64": [7]}"#).expect_err("wrong type");
        assert_eq!(e.path, "keys_base64[0]");
        let e = from_json_slice::<Keys>(br#"{"keys_base64": []}"#).expect_err("missing");
        assert!(e.what.starts_with("missing field `root_token`"), "{e}");
        let e = from_json_slice::<Keys>(b"{ nope").expect_err("syntax");
        assert!(e.what.contains("not valid JSON"), "{e}");
    }
}
