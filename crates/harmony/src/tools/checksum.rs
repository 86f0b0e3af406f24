//! Reading `sha256sum`-style checksum files.
//!
//! Releases publish either one file for every asset (k3d's `checksums.txt`, whose names carry
//! the build directory, e.g. `_dist/k3d-linux-amd64`) or one file per asset (helm's
//! `<asset>.sha256sum`). Both are `<hex>  <name>` lines, so entries are matched by the *base
//! name* of the listed file: a prefix directory must not hide the entry, and a different file
//! must never match.

/// The expected sha256 (lowercase hex) of `file` in `checksums`, if listed.
///
/// Lines are `<64 hex digits><space><space or *><path>`; anything else is ignored, so a
/// signature block or a blank line does not break the lookup.
pub fn expected_sha256(checksums: &str, file: &str) -> Option<String> {
    checksums.lines().find_map(|line| {
        let line = line.trim();
        let (hash, rest) = line.split_once(char::is_whitespace)?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        // `*` marks binary mode in sha256sum output.
        let path = rest.trim_start().trim_start_matches('*');
        let base = path.rsplit('/').next().unwrap_or(path);
        (base == file).then(|| hash.to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn matches_by_base_name_not_by_suffix() {
        let text =
            format!("{A}  _dist/k3d-linux-amd64.exe\n{B}  _dist/k3d-linux-amd64\n\nnot a line\n");
        assert_eq!(
            expected_sha256(&text, "k3d-linux-amd64").as_deref(),
            Some(B.to_ascii_lowercase().as_str())
        );
        assert_eq!(expected_sha256(&text, "amd64"), None);
        assert_eq!(expected_sha256(&text, "k3d-darwin-arm64"), None);
    }

    #[test]
    fn accepts_binary_marker_and_single_file_form() {
        let text = format!("{A} *helm-v3.21.4-linux-amd64.tar.gz\n");
        assert_eq!(
            expected_sha256(&text, "helm-v3.21.4-linux-amd64.tar.gz").as_deref(),
            Some(A)
        );
    }

    #[test]
    fn rejects_malformed_hashes() {
        assert_eq!(
            expected_sha256("abc  k3d-linux-amd64\n", "k3d-linux-amd64"),
            None
        );
        let bad = format!("{}  k3d", "z".repeat(64));
        assert_eq!(expected_sha256(&bad, "k3d"), None);
    }
}
