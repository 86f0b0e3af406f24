//! TLS settings for OpenBao and the OpenID provider, and the one place HTTP clients are built.
//!
//! OpenBao's own CLI conventions apply (`BAO_CACERT`, `BAO_CAPATH`, `BAO_CLIENT_CERT`,
//! `BAO_CLIENT_KEY`, `BAO_TLS_SERVER_NAME`, `BAO_SKIP_VERIFY`, each also under its `VAULT_`
//! name), so a machine already set up for `bao` works unchanged. As with `bao`, a CA given for
//! OpenBao *replaces* the system roots (it names who signed the server's certificate); the
//! OpenID provider instead trusts the system roots *plus* `HARMONY_SSO_CACERT`, since it is
//! usually a public site.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony_env::vars;

use crate::SecretError;

/// How long establishing a connection (TCP + TLS) may take, at most.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How to verify a server's certificate and present our own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsSettings {
    /// A PEM file of CA certificates (`BAO_CACERT` / `VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// A directory of PEM files of CA certificates (`BAO_CAPATH` / `VAULT_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// Our client certificate, PEM (`BAO_CLIENT_CERT` / `VAULT_CLIENT_CERT`); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Its private key, PEM (`BAO_CLIENT_KEY` / `VAULT_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// The name to verify the server's certificate against, when it is not the URL's host
    /// (`BAO_TLS_SERVER_NAME` / `VAULT_TLS_SERVER_NAME`).
    pub server_name: Option<String>,
    /// Accept any certificate (`BAO_SKIP_VERIFY` / `VAULT_SKIP_VERIFY`). Warned about on every
    /// client built with it.
    pub skip_verify: bool,
    /// Whether the CAs are added to the system roots (OpenID provider) instead of replacing
    /// them (OpenBao).
    pub merge_with_system_roots: bool,
}

/// `names`' first non-blank value.
fn first(lookup: &impl Fn(&str) -> Option<String>, names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        lookup(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| ((*n).to_owned(), v))
    })
}

impl TlsSettings {
    /// OpenBao's TLS settings from a variable lookup (see the module docs); empty values count
    /// as unset. A client certificate without its key (or the reverse) is an error naming the
    /// missing variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        let path = |names: &[&str]| first(&lookup, names).map(|(_, v)| PathBuf::from(v));
        let mut tls = Self {
            ca_cert: path(&vars::OPENBAO_CACERT_ALIASES),
            ca_path: path(&vars::OPENBAO_CAPATH_ALIASES),
            client_cert: path(&vars::OPENBAO_CLIENT_CERT_ALIASES),
            client_key: path(&vars::OPENBAO_CLIENT_KEY_ALIASES),
            server_name: first(&lookup, &vars::OPENBAO_TLS_SERVER_NAME_ALIASES).map(|(_, v)| v),
            skip_verify: false,
            merge_with_system_roots: false,
        };
        if let Some((name, value)) = first(&lookup, &vars::OPENBAO_SKIP_VERIFY_ALIASES) {
            tls.skip_verify = match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(SecretError::Config(format!(
                        "{name} must be true or false, not {value:?}"
                    )));
                }
            };
        }
        match (&tls.client_cert, &tls.client_key) {
            (Some(_), None) => Err(SecretError::Config(format!(
                "{} is set but {} is not; set both (certificate and its private key) or neither",
                vars::OPENBAO_CLIENT_CERT_ALIASES[0],
                vars::OPENBAO_CLIENT_KEY_ALIASES[0]
            ))),
            (None, Some(_)) => Err(SecretError::Config(format!(
                "{} is set but {} is not; set both (certificate and its private key) or neither",
                vars::OPENBAO_CLIENT_KEY_ALIASES[0],
                vars::OPENBAO_CLIENT_CERT_ALIASES[0]
            ))),
            _ => Ok(tls),
        }
    }

    /// The OpenID provider's TLS settings: the system roots plus `HARMONY_SSO_CACERT` when set.
    pub fn sso_from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            ca_cert: first(&lookup, &[vars::HARMONY_SSO_CACERT]).map(|(_, v)| PathBuf::from(v)),
            merge_with_system_roots: true,
            ..Self::default()
        }
    }

    /// Trust the CA certificates in this PEM file.
    pub fn with_ca_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(path.into());
        self
    }

    /// Verify the server's certificate against `name` instead of the URL's host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Present this client certificate and key (PEM files).
    pub fn with_client_identity(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some(cert.into());
        self.client_key = Some(key.into());
        self
    }

    /// Accept any server certificate (warned about on every use).
    pub fn with_skip_verify(mut self, skip: bool) -> Self {
        self.skip_verify = skip;
        self
    }

    fn ca_var(&self) -> &'static str {
        if self.merge_with_system_roots {
            vars::HARMONY_SSO_CACERT
        } else {
            vars::OPENBAO_CACERT_ALIASES[0]
        }
    }

    /// The CA certificates of `ca_cert` and every `*.pem` / `*.crt` file in `ca_path`.
    fn root_certificates(&self) -> Result<Vec<reqwest::Certificate>, SecretError> {
        let mut certs = Vec::new();
        if let Some(file) = &self.ca_cert {
            certs.extend(read_pem_certs(file, self.ca_var())?);
        }
        if let Some(dir) = &self.ca_path {
            let var = vars::OPENBAO_CAPATH_ALIASES[0];
            let entries = std::fs::read_dir(dir).map_err(|e| {
                SecretError::Config(format!(
                    "{var}={}: cannot list the directory ({e}); set it to a directory of PEM CA certificates",
                    dir.display()
                ))
            })?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .is_some_and(|x| matches!(x.to_str(), Some("pem" | "crt")))
                })
                .collect();
            files.sort();
            let before = certs.len();
            for file in files {
                // A directory may hold keys or notes beside the certificates: skip those.
                if let Ok(found) = read_pem_certs(&file, var) {
                    certs.extend(found);
                }
            }
            if certs.len() == before {
                return Err(SecretError::Config(format!(
                    "{var}={}: no .pem or .crt file in the directory holds a PEM certificate",
                    dir.display()
                )));
            }
        }
        Ok(certs)
    }

    fn identity(&self) -> Result<Option<reqwest::Identity>, SecretError> {
        let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) else {
            return Ok(None);
        };
        let cert_var = vars::OPENBAO_CLIENT_CERT_ALIASES[0];
        let key_var = vars::OPENBAO_CLIENT_KEY_ALIASES[0];
        let mut pem = read_file(cert, cert_var)?;
        pem.push(b'\n');
        let key_bytes = secrecy::zeroize::Zeroizing::new(read_file(key, key_var)?);
        pem.extend_from_slice(&key_bytes);
        let pem = secrecy::zeroize::Zeroizing::new(pem);
        reqwest::Identity::from_pem(&pem).map(Some).map_err(|_| {
            SecretError::Config(format!(
                "{cert_var}={} and {key_var}={} are not a PEM certificate and its PEM private key",
                cert.display(),
                key.display()
            ))
        })
    }

    /// A `reqwest` client builder with these settings, redirects off and a connect timeout.
    /// Every HTTP client of this crate starts here.
    pub(crate) fn client_builder(&self) -> Result<reqwest::ClientBuilder, SecretError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT);
        let roots = self.root_certificates()?;
        if !roots.is_empty() {
            builder = if self.merge_with_system_roots {
                builder.tls_certs_merge(roots)
            } else {
                builder.tls_certs_only(roots)
            };
        }
        if let Some(identity) = self.identity()? {
            builder = builder.identity(identity);
        }
        if self.skip_verify {
            tracing::warn!(
                "TLS certificate verification is OFF ({} is set): anyone on the network path can \
                 read and change what is sent, tokens included; set {} instead",
                vars::OPENBAO_SKIP_VERIFY_ALIASES[0],
                vars::OPENBAO_CACERT_ALIASES[0]
            );
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        Ok(builder)
    }
}

fn read_file(path: &Path, var: &str) -> Result<Vec<u8>, SecretError> {
    std::fs::read(path).map_err(|e| {
        SecretError::Config(format!(
            "{var}={}: cannot read the file ({e})",
            path.display()
        ))
    })
}

fn read_pem_certs(path: &Path, var: &str) -> Result<Vec<reqwest::Certificate>, SecretError> {
    let bytes = read_file(path, var)?;
    match reqwest::Certificate::from_pem_bundle(&bytes) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(SecretError::Config(format!(
            "{var}={}: no PEM certificate in the file; it must hold the CA certificate(s) in PEM form \
             (-----BEGIN CERTIFICATE-----)",
            path.display()
        ))),
    }
}

/// A hint for a TLS failure found in `e`'s chain, naming the variable that fixes it.
pub(crate) fn tls_hint(e: &(dyn std::error::Error + 'static), server_name: &str) -> Option<String> {
    let mut text = String::new();
    let mut current = Some(e);
    while let Some(err) = current {
        text.push_str(&err.to_string());
        text.push('\n');
        current = err.source();
    }
    if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        Some(format!(
            "the server's TLS certificate is signed by a CA this machine does not trust; set {} \
             (or {}) to the CA's PEM file, or {} to a directory of them",
            vars::OPENBAO_CACERT_ALIASES[0],
            vars::OPENBAO_CACERT_ALIASES[1],
            vars::OPENBAO_CAPATH_ALIASES[0]
        ))
    } else if text.contains("NotValidForName") || text.contains("not valid for name") {
        Some(format!(
            "the server's TLS certificate is not valid for the name {server_name:?}; use a host \
             name the certificate lists in the URL, or set {} to one",
            vars::OPENBAO_TLS_SERVER_NAME_ALIASES[0]
        ))
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        Some(format!(
            "the server asks for a client certificate; set {} and {}",
            vars::OPENBAO_CLIENT_CERT_ALIASES[0],
            vars::OPENBAO_CLIENT_KEY_ALIASES[0]
        ))
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        Some("the server does not speak TLS here; use http:// in the URL".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::fixed_lookup as lookup;

    #[test]
    fn bao_names_win_over_vault_names() {
        let tls = TlsSettings::from_lookup(lookup(&[
            (vars::OPENBAO_CACERT_ALIASES[1], "/vault/ca.pem"),
            (vars::OPENBAO_CACERT_ALIASES[0], "/bao/ca.pem"),
            (vars::OPENBAO_CAPATH_ALIASES[1], "/vault/cas"),
            (vars::OPENBAO_TLS_SERVER_NAME_ALIASES[0], " bao.internal "),
            (vars::OPENBAO_SKIP_VERIFY_ALIASES[1], "true"),
        ]))
        .expect("settings");
        assert_eq!(tls.ca_cert.as_deref(), Some(Path::new("/bao/ca.pem")));
        assert_eq!(tls.ca_path.as_deref(), Some(Path::new("/vault/cas")));
        assert_eq!(tls.server_name.as_deref(), Some("bao.internal"));
        assert!(tls.skip_verify && !tls.merge_with_system_roots);
    }

    #[test]
    fn half_a_client_identity_names_the_other_half() {
        let err =
            TlsSettings::from_lookup(lookup(&[(vars::OPENBAO_CLIENT_CERT_ALIASES[0], "/c.pem")]))
                .expect_err("no key");
        assert!(
            err.to_string()
                .contains(vars::OPENBAO_CLIENT_KEY_ALIASES[0]),
            "{err}"
        );
        let err =
            TlsSettings::from_lookup(lookup(&[(vars::OPENBAO_SKIP_VERIFY_ALIASES[0], "maybe")]))
                .expect_err("not a bool");
        assert!(err.to_string().contains("BAO_SKIP_VERIFY"), "{err}");
    }

    #[test]
    fn unreadable_or_non_pem_ca_files_name_the_variable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = TlsSettings::default().with_ca_cert(dir.path().join("nope.pem"));
        let err = missing.client_builder().expect_err("missing file");
        assert!(err.to_string().contains("BAO_CACERT"), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let err = TlsSettings::default()
            .with_ca_cert(&junk)
            .client_builder()
            .expect_err("junk");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let sso = TlsSettings::sso_from_lookup(lookup(&[(
            vars::HARMONY_SSO_CACERT,
            junk.to_str().expect("utf-8"),
        )]));
        let err = sso.client_builder().expect_err("junk");
        assert!(err.to_string().contains(vars::HARMONY_SSO_CACERT), "{err}");
        let empty = TlsSettings {
            ca_path: Some(dir.path().join("empty")),
            ..TlsSettings::default()
        };
        std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
        let err = empty.client_builder().expect_err("empty dir");
        assert!(err.to_string().contains("BAO_CAPATH"), "{err}");
    }
}
