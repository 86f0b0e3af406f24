//! TLS settings for OpenBao and the OpenID provider, and the one place HTTP clients are built.
//!
//! OpenBao's own CLI conventions apply (`BAO_CACERT`, `BAO_CAPATH`, `BAO_CLIENT_CERT`,
//! `BAO_CLIENT_KEY`, `BAO_TLS_SERVER_NAME`, `BAO_SKIP_VERIFY`, each also under its `VAULT_`
//! name), so a machine already set up for `bao` works unchanged. As with `bao`, a CA given for
//! OpenBao *replaces* the system roots (it names who signed the server's certificate); the
//! OpenID provider instead trusts the system roots *plus* `HARMONY_SSO_CACERT`, since it is
//! usually a public site.
//!
//! The system roots are read only for a client that speaks TLS ([`Transport::of`] an `https://`
//! URL) and trusts them, and at most once per process ([`SystemRoots`]): a `harmony` call to a
//! plain `http://` dev server reads no trust store, and where the system has a bundle file
//! (`/etc/ssl/certs/ca-certificates.crt` on Debian) that one file is read, not the ~150 files of
//! the certificate directory beside it. `SSL_CERT_FILE` / `SSL_CERT_DIR` keep their meaning.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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
    /// Every HTTP client of this crate starts here. A [`Transport::Plain`] client trusts only
    /// the CA files named (it never does a TLS handshake), so no system trust store is read.
    pub(crate) fn client_builder(
        &self,
        transport: Transport,
    ) -> Result<reqwest::ClientBuilder, SecretError> {
        self.client_builder_with(transport, &SYSTEM_ROOTS)
    }

    fn client_builder_with(
        &self,
        transport: Transport,
        system: &SystemRoots,
    ) -> Result<reqwest::ClientBuilder, SecretError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT);
        // Read even for http://, so a wrong BAO_CACERT is reported whatever the URL.
        let mut roots = self.root_certificates()?;
        let wants_system = transport == Transport::Tls
            && !self.skip_verify
            && (self.merge_with_system_roots || roots.is_empty());
        if transport == Transport::Plain {
            builder = builder.tls_certs_only(roots);
        } else if wants_system && let Some(loaded) = system.certificates() {
            if loaded.is_empty() && roots.is_empty() {
                return Err(SecretError::Config(format!(
                    "no CA certificates found on this machine ({}); install the system's CA \
                     bundle (e.g. the ca-certificates package), point {} at one, or set {} to \
                     the server's CA",
                    system.searched(),
                    vars::SSL_CERT_FILE,
                    self.ca_var()
                )));
            }
            roots.extend(loaded.iter().cloned());
            builder = builder.tls_certs_only(roots);
        } else if !roots.is_empty() {
            // No own loader on this platform: reqwest's platform verifier holds the system roots.
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

/// Whether a client will speak TLS, told by the URL it is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// `http://`: no TLS handshake ever, so no trust roots are needed. Redirects are off, so
    /// such a client is never sent to an `https://` URL by a server.
    Plain,
    /// `https://`, or a client whose URLs are not known when it is built.
    Tls,
}

impl Transport {
    /// The transport `url` needs.
    pub(crate) fn of(url: &str) -> Self {
        match url.split_once("://") {
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") => Self::Plain,
            _ => Self::Tls,
        }
    }
}

/// The system's CA certificates, read from disk at most once per process.
static SYSTEM_ROOTS: SystemRoots = SystemRoots::new();

/// The system's CA certificates, read on first use.
///
/// Where [`OWN_SYSTEM_ROOTS`] (Linux and the BSDs), they are read here: the paths in
/// `SSL_CERT_FILE` / `SSL_CERT_DIR` when either is set (as `rustls-native-certs` reads them),
/// else the distribution's bundle file alone when it exists and holds certificates, else the
/// certificate directories. Elsewhere (macOS, Windows) the OS verifier reqwest uses keeps them,
/// and [`SystemRoots::certificates`] is `None`.
struct SystemRoots {
    loaded: OnceLock<Loaded>,
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` as a test sets them; `None`: the process's.
    env: Option<SslCertEnv>,
    #[cfg(test)]
    loads: std::sync::atomic::AtomicUsize,
}

/// OpenSSL's variables naming the system roots.
#[derive(Debug, Clone, Default)]
struct SslCertEnv {
    file: Option<std::ffi::OsString>,
    dir: Option<std::ffi::OsString>,
}

#[derive(Debug, Default)]
struct Loaded {
    certs: Vec<reqwest::Certificate>,
    /// What was read, for messages.
    from: String,
}

/// Whether this platform's system roots are read by [`SystemRoots`] (rather than by the OS
/// verifier).
const OWN_SYSTEM_ROOTS: bool = cfg!(all(
    unix,
    not(target_vendor = "apple"),
    not(target_os = "android")
));

impl SystemRoots {
    const fn new() -> Self {
        Self {
            loaded: OnceLock::new(),
            env: None,
            #[cfg(test)]
            loads: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The certificates (empty when none could be read), read now if not yet.
    fn certificates(&self) -> Option<&[reqwest::Certificate]> {
        if !OWN_SYSTEM_ROOTS {
            return None;
        }
        Some(&self.loaded().certs)
    }

    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            #[cfg(test)]
            self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let env = self.env.clone().unwrap_or_else(|| SslCertEnv {
                file: std::env::var_os(vars::SSL_CERT_FILE),
                dir: std::env::var_os(vars::SSL_CERT_DIR),
            });
            let loaded = load_system_roots(&env);
            tracing::debug!(
                "{} system CA certificates read from {}",
                loaded.certs.len(),
                loaded.from
            );
            loaded
        })
    }

    /// What was searched, for the error when nothing was found.
    fn searched(&self) -> &str {
        &self.loaded().from
    }
}

#[cfg(all(unix, not(target_vendor = "apple"), not(target_os = "android")))]
fn load_system_roots(env: &SslCertEnv) -> Loaded {
    use rustls_native_certs::{CertificateResult, load_certs_from_paths};
    // Only certificates webpki accepts as trust anchors: one odd system certificate must not
    // make every client fail to build (the platform verifier skips such certificates too).
    let keep = |found: CertificateResult, into: &mut Vec<reqwest::Certificate>| {
        into.extend(
            found
                .certs
                .into_iter()
                .filter(|der| rustls::RootCertStore::empty().add(der.clone()).is_ok())
                .filter_map(|der| reqwest::Certificate::from_der(&der).ok()),
        );
    };
    let mut certs = Vec::new();
    if env.file.is_some() || env.dir.is_some() {
        // What the user named, as OpenSSL and rustls-native-certs read it: the file and every
        // directory of the `:`-separated list.
        if let Some(file) = &env.file {
            keep(
                load_certs_from_paths(Some(Path::new(file)), None),
                &mut certs,
            );
        }
        for dir in env.dir.iter().flat_map(std::env::split_paths) {
            if !dir.as_os_str().is_empty() {
                keep(load_certs_from_paths(None, Some(&dir)), &mut certs);
            }
        }
        return Loaded {
            certs,
            from: format!("{} / {}", vars::SSL_CERT_FILE, vars::SSL_CERT_DIR),
        };
    }
    let probed = openssl_probe::probe();
    if let Some(bundle) = &probed.cert_file {
        keep(load_certs_from_paths(Some(bundle), None), &mut certs);
        if !certs.is_empty() {
            return Loaded {
                certs,
                from: bundle.display().to_string(),
            };
        }
    }
    // No bundle file (or an empty one): the certificate directories.
    for dir in &probed.cert_dir {
        keep(load_certs_from_paths(None, Some(dir)), &mut certs);
    }
    Loaded {
        certs,
        from: "the system's certificate directories".to_owned(),
    }
}

#[cfg(not(all(unix, not(target_vendor = "apple"), not(target_os = "android"))))]
fn load_system_roots(_env: &SslCertEnv) -> Loaded {
    Loaded::default()
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

    /// A self-signed CA certificate made for these tests (`openssl req -x509`, P-256).
    const TEST_CA: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBizCCATGgAwIBAgIUTx/Kz69D3t9xT1Ta+jw9qHQFySEwCgYIKoZIzj0EAwIw\n\
GjEYMBYGA1UEAwwPaGFybW9ueS10ZXN0LWNhMCAXDTI2MTIwNDA0MjM1MVoYDzIx\n\
MjYxMTEwMDQyMzUxWjAaMRgwFgYDVQQDDA9oYXJtb255LXRlc3QtY2EwWTATBgcq\n\
hkjOPQIBBggqhkjOPQMBBwNCAAQXC59yCAKxPHp2QfzJ8K7RPRKV+4QuGvqnJt+a\n\
MGDjxHNaCzD04IdZ0ZnIHkrJrYa+zW9+v8z+qq+b6dMrtZm2o1MwUTAdBgNVHQ4E\n\
FgQUha3cPuZxOqjxP+kG8fJj+dtbZqswHwYDVR0jBBgwFoAUha3cPuZxOqjxP+kG\n\
8fJj+dtbZqswDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiBgeSh6\n\
MQePaHGp0Ohvwi+gpZ3LNlXCBxnvqPjqsBb0HQIhAMocL2qzMrQrXfi8fzh+8crk\n\
GadCHTZz0NSeToBN1bQo\n\
-----END CERTIFICATE-----\n\
";

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
        let err = missing
            .client_builder(Transport::Tls)
            .expect_err("missing file");
        assert!(err.to_string().contains("BAO_CACERT"), "{err}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        let err = TlsSettings::default()
            .with_ca_cert(&junk)
            .client_builder(Transport::Tls)
            .expect_err("junk");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let sso = TlsSettings::sso_from_lookup(lookup(&[(
            vars::HARMONY_SSO_CACERT,
            junk.to_str().expect("utf-8"),
        )]));
        let err = sso.client_builder(Transport::Tls).expect_err("junk");
        assert!(err.to_string().contains(vars::HARMONY_SSO_CACERT), "{err}");
        let empty = TlsSettings {
            ca_path: Some(dir.path().join("empty")),
            ..TlsSettings::default()
        };
        std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
        let err = empty.client_builder(Transport::Tls).expect_err("empty dir");
        assert!(err.to_string().contains("BAO_CAPATH"), "{err}");
    }
    /// Issue 25: a client for `http://` reads no trust store; clients for `https://` read it
    /// once between them, and only the bundle file where one exists (unless `SSL_CERT_FILE` /
    /// `SSL_CERT_DIR` say otherwise); a CA for OpenBao or skipped verification reads none.
    #[test]
    fn system_roots_are_read_once_and_only_for_tls_clients_that_trust_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, TEST_CA).expect("write");
        // As on a machine without SSL_CERT_FILE / SSL_CERT_DIR (CI sets them on some).
        let system = SystemRoots {
            env: Some(SslCertEnv::default()),
            ..SystemRoots::new()
        };
        let loads = || system.loads.load(std::sync::atomic::Ordering::SeqCst);
        let bao = TlsSettings::default();
        let sso = TlsSettings::sso_from_lookup(|_| None);
        for tls in [&bao, &sso, &bao.clone().with_ca_cert(&ca)] {
            tls.client_builder_with(Transport::Plain, &system)
                .expect("builder")
                .build()
                .expect("client");
        }
        bao.clone()
            .with_ca_cert(&ca)
            .client_builder_with(Transport::Tls, &system)
            .expect("builder")
            .build()
            .expect("client");
        bao.clone()
            .with_skip_verify(true)
            .client_builder_with(Transport::Tls, &system)
            .expect("builder")
            .build()
            .expect("client");
        assert_eq!(
            loads(),
            0,
            "no client above trusts the system roots over TLS"
        );
        for tls in [&bao, &sso, &sso.clone().with_ca_cert(&ca), &bao] {
            tls.client_builder_with(Transport::Tls, &system)
                .expect("builder")
                .build()
                .expect("client");
        }
        if OWN_SYSTEM_ROOTS {
            assert_eq!(loads(), 1, "four TLS clients, one read of the trust store");
            // The distribution's bundle, one file, not the directory of ~150 beside it.
            assert!(
                Path::new(system.searched()).is_file(),
                "read from {}",
                system.searched()
            );
        }
    }

    #[test]
    fn transport_follows_the_scheme() {
        assert_eq!(Transport::of("http://127.0.0.1:8200"), Transport::Plain);
        assert_eq!(Transport::of("HTTP://bao:8200/"), Transport::Plain);
        assert_eq!(Transport::of("https://bao:8200"), Transport::Tls);
        assert_eq!(Transport::of("bao:8200"), Transport::Tls);
    }
}
