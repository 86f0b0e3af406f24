//! Reading settings from a variable lookup (`Fn(&str) -> Option<String>`), so settings are a
//! pure function of their input and tests never touch the process environment. A leaf module:
//! the settings, the client options, TLS and SSO settings all read through it.

/// `name`'s value from `lookup`, trimmed; `None` when unset or blank. (Not for passwords, whose
/// spaces may be meant.)
pub(crate) fn trimmed_var(lookup: impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A variable lookup over fixed pairs, for tests.
#[cfg(test)]
pub(crate) fn fixed_lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}
