//! Validation of the relative paths and names that end up in OpenBao URLs.
//!
//! A path is joined into `/v1/<mount>/data/<prefix>/<path>`; an empty segment, `.` or `..` would
//! address something other than what the caller named, so such paths are refused up front.

use crate::SecretError;

/// Check a `/`-separated path. `allow_empty`: the empty string is accepted (e.g. "no prefix",
/// "list the root"). A single trailing `/` is tolerated (folder names from `list` end in one).
pub(crate) fn validate(what: &str, path: &str, allow_empty: bool) -> Result<(), SecretError> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        if allow_empty {
            return Ok(());
        }
        return Err(SecretError::Config(format!(
            "{what} is empty; give a name such as \"my-app\""
        )));
    }
    for segment in trimmed.split('/') {
        check_segment(what, path, segment)?;
    }
    Ok(())
}

/// Check a single name that must not contain `/`.
pub(crate) fn validate_segment(what: &str, name: &str) -> Result<(), SecretError> {
    check_segment(what, name, name)
}

fn check_segment(what: &str, whole: &str, segment: &str) -> Result<(), SecretError> {
    let problem = if segment.is_empty() {
        Some("has an empty segment (a leading or doubled '/')")
    } else if segment == "." || segment == ".." {
        Some("contains '.' or '..'")
    } else if segment.contains('/') {
        Some("contains '/'")
    } else if segment
        .chars()
        .any(|c| c.is_control() || c == '?' || c == '#' || c == '%')
    {
        Some("contains a control character, '?', '#' or '%'")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SecretError::Config(format!(
            "{what} {whole:?} {problem}; use names like \"team/my-app\""
        ))),
        None => Ok(()),
    }
}

/// `a`, `b` joined by `/`, skipping empty parts and stray slashes at the joins.
pub(crate) fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        for p in ["my-app", "team/db", "team/", "a.b/c_d"] {
            validate("path", p, false).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        validate("prefix", "", true).expect("empty allowed");
    }

    #[test]
    fn refuses_traversal_and_empty_segments() {
        for p in [
            "", "/abs", "a//b", "..", "a/../b", "./a", "a?x", "a%2f", "a\nb",
        ] {
            let err = validate("secret path", p, false).expect_err(p);
            let text = err.to_string();
            assert!(text.contains("secret path"), "{text}");
        }
    }

    #[test]
    fn join_skips_empty_parts() {
        assert_eq!(join(&["secret", "data", "", "app"]), "secret/data/app");
        assert_eq!(
            join(&["secret", "metadata", "harmony", "team/"]),
            "secret/metadata/harmony/team"
        );
    }
}
