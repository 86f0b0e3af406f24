//! The one way to reach a local cluster's ingress host names from the host.
//!
//! k3d maps host port 8080 to its load balancer (`-p 8080:80@loadbalancer`), where traefik
//! routes by Host to Zitadel (`sso.harmony.local`) and OpenBao (`bao.harmony.local`). Zitadel
//! builds its issuer from the Host it receives (scheme + host *with* its port), so a client must
//! send exactly the Host a browser would: `sso.harmony.local:8080`. Hand-setting a port-less
//! `Host` header breaks the issuer; so instead every client — the deploy, the demos and the live
//! tests — calls `http://<name>:<port>` and lets the HTTP client resolve `<name>` to the load
//! balancer ([`LocalIngress::client_builder`]). The URL keeps its port, so the Host does too, and
//! no `/etc/hosts` entry is needed.
//!
//! These clients also ignore the environment's proxies (`HTTP_PROXY`, `HTTPS_PROXY`): a proxy
//! cannot resolve names that exist only on this machine.
//!
//! ```
//! use harmony_openbao::ingress::LocalIngress;
//! let ingress = LocalIngress::k3d();
//! assert_eq!(ingress.url("sso.harmony.local").as_str(), "http://sso.harmony.local:8080/");
//! let client = ingress.client_builder().build().expect("client");
//! # let _ = client;
//! ```

use std::net::{Ipv4Addr, SocketAddr};

/// Host port the k3d load balancer listens on (`-p 8080:80@loadbalancer`).
pub const K3D_INGRESS_PORT: u16 = 8080;
/// Zitadel's ingress host name.
pub const SSO_HOST: &str = "sso.harmony.local";
/// OpenBao's ingress host name.
pub const BAO_HOST: &str = "bao.harmony.local";

/// Where a local cluster's load balancer answers and which names it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIngress {
    addr: SocketAddr,
    hosts: Vec<String>,
}

impl LocalIngress {
    /// The k3d cluster's ingress: `127.0.0.1:8080`, serving [`SSO_HOST`] and [`BAO_HOST`].
    pub fn k3d() -> Self {
        Self::new(
            SocketAddr::from((Ipv4Addr::LOCALHOST, K3D_INGRESS_PORT)),
            [SSO_HOST, BAO_HOST],
        )
    }

    /// A load balancer at `addr` serving `hosts` (tests point this at a stand-in server).
    pub fn new<I, S>(addr: SocketAddr, hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            addr,
            hosts: hosts.into_iter().map(Into::into).collect(),
        }
    }

    /// The load balancer's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host names it serves.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// `http://<host>:<port>/`: the URL a browser uses, port included (so the Host header
    /// carries it too).
    pub fn url(&self, host: &str) -> url::Url {
        let mut url = url::Url::parse("http://localhost/").expect("static URL parses");
        // A name that is not a valid host stays "localhost", which the resolver then does not
        // map: the request fails loudly instead of reaching another server.
        let _ = url.set_host(Some(host));
        let _ = url.set_port(Some(self.addr.port()));
        url
    }

    /// `(name, address)` pairs for clients that take resolver overrides themselves.
    pub fn resolutions(&self) -> impl Iterator<Item = (&str, SocketAddr)> + '_ {
        self.hosts.iter().map(|h| (h.as_str(), self.addr))
    }

    /// A reqwest builder that resolves every served name to the load balancer, uses no proxy and
    /// follows no redirect. Callers add their own timeouts.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none());
        for (host, addr) in self.resolutions() {
            builder = builder.resolve(host, addr);
        }
        builder
    }
}

/// The annotation cert-manager's ingress-shim reads to issue a certificate for an Ingress's
/// `tls` entries from a `ClusterIssuer`.
pub const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";

/// Where the TLS certificate of a [`PublicIngress`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressTls {
    /// No `tls` section: something in front of the ingress controller (its default certificate,
    /// a cloud load balancer) must terminate TLS, since the URLs are `https://`.
    None,
    /// An existing `kubernetes.io/tls` Secret of this name, present in each release's namespace
    /// (`openbao` and `zitadel`) and valid for both host names.
    Secret(String),
    /// cert-manager issues one certificate per host from this `ClusterIssuer` (annotation
    /// [`CERT_MANAGER_CLUSTER_ISSUER`]) into a Secret named after the release.
    ClusterIssuer(String),
}

impl IngressTls {
    /// `--tls-secret NAME` / `--cluster-issuer NAME` of both binaries: one, the other, or
    /// neither, never both.
    pub fn from_flags(
        tls_secret: Option<String>,
        cluster_issuer: Option<String>,
    ) -> Result<Self, String> {
        match (tls_secret, cluster_issuer) {
            (None, None) => Ok(Self::None),
            (Some(secret), None) => Ok(Self::Secret(secret)),
            (None, Some(issuer)) => Ok(Self::ClusterIssuer(issuer)),
            (Some(_), Some(_)) => Err(
                "--tls-secret and --cluster-issuer both say where the certificate comes from: \
                 give one of them"
                    .to_owned(),
            ),
        }
    }
}

/// One entry of an Ingress's `spec.tls`, as both charts take it (`secretName`, `hosts`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressTlsEntry {
    /// The Secret holding the certificate.
    pub secret_name: String,
    /// The host names it covers.
    pub hosts: Vec<String>,
}

/// A DNS domain the stack is published under (`bao.<domain>`, `sso.<domain>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(String);

impl std::str::FromStr for Domain {
    type Err = String;

    /// A lowercase DNS name with at least two labels, without scheme, port or path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if name.len() <= 253 && name.contains('.') && name.split('.').all(label_ok) {
            Ok(Self(name))
        } else {
            Err(format!(
                "{s:?} is not a DNS domain: give the bare name the hosts bao.DOMAIN and sso.DOMAIN \
                 are made from, e.g. example.com (no scheme, port or path)"
            ))
        }
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the stack is published on an existing cluster: real DNS names under one domain, through
/// the cluster's ingress controller, always as `https://` URLs (Zitadel's `ExternalSecure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicIngress {
    /// The domain: hosts `bao.<domain>` and `sso.<domain>`.
    pub domain: Domain,
    /// `ingressClassName`; `None`: the cluster's default class.
    pub class: Option<String>,
    /// Where the certificate comes from.
    pub tls: IngressTls,
}

impl PublicIngress {
    /// OpenBao's host name.
    pub fn bao_host(&self) -> String {
        format!("bao.{}", self.domain)
    }

    /// Zitadel's host name.
    pub fn sso_host(&self) -> String {
        format!("sso.{}", self.domain)
    }

    /// `https://<host>` (no trailing slash, the form issuers and sessions are keyed by).
    pub fn url(host: &str) -> String {
        format!("https://{host}")
    }

    /// The annotations of an Ingress that carries the certificate (the cert-manager one with
    /// [`IngressTls::ClusterIssuer`], else none).
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        match &self.tls {
            IngressTls::ClusterIssuer(issuer) => {
                [(CERT_MANAGER_CLUSTER_ISSUER.to_owned(), issuer.clone())].into()
            }
            IngressTls::None | IngressTls::Secret(_) => Default::default(),
        }
    }

    /// The `tls` section for `host`; with cert-manager the certificate goes to Secret
    /// `issued_secret` (a name per release, so two Ingresses never claim one Certificate).
    pub fn tls_entries(&self, host: &str, issued_secret: &str) -> Vec<IngressTlsEntry> {
        let secret_name = match &self.tls {
            IngressTls::None => return Vec::new(),
            IngressTls::Secret(name) => name.clone(),
            IngressTls::ClusterIssuer(_) => issued_secret.to_owned(),
        };
        vec![IngressTlsEntry {
            secret_name,
            hosts: vec![host.to_owned()],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_the_load_balancer_port() {
        let ingress = LocalIngress::k3d();
        assert_eq!(
            ingress.url(SSO_HOST).as_str(),
            "http://sso.harmony.local:8080/"
        );
        assert_eq!(
            ingress.url(BAO_HOST).as_str(),
            "http://bao.harmony.local:8080/"
        );
        let other = LocalIngress::new("127.0.0.1:41234".parse().expect("addr"), [SSO_HOST]);
        assert_eq!(
            other.url(SSO_HOST).as_str(),
            "http://sso.harmony.local:41234/"
        );
        assert_eq!(
            other.resolutions().collect::<Vec<_>>(),
            vec![(SSO_HOST, other.addr())]
        );
    }

    #[test]
    fn domains_are_bare_dns_names() {
        let d: Domain = "Example.COM.".parse().expect("valid");
        assert_eq!(d.to_string(), "example.com");
        for bad in [
            "",
            "localhost",
            "https://example.com",
            "example.com:443",
            "a..b",
            "-a.b",
            "a_b.c",
        ] {
            let err = bad.parse::<Domain>().expect_err(bad);
            assert!(err.contains("bao.DOMAIN"), "{err}");
        }
    }

    #[test]
    fn tls_comes_from_a_secret_or_cert_manager_or_nowhere() {
        let mut ingress = PublicIngress {
            domain: "example.com".parse().expect("valid"),
            class: None,
            tls: IngressTls::None,
        };
        assert_eq!(ingress.bao_host(), "bao.example.com");
        assert_eq!(
            PublicIngress::url(&ingress.sso_host()),
            "https://sso.example.com"
        );
        assert!(
            ingress
                .tls_entries("bao.example.com", "openbao-tls")
                .is_empty()
        );
        assert!(ingress.annotations().is_empty());
        ingress.tls = IngressTls::Secret("wildcard".into());
        assert_eq!(
            ingress.tls_entries("bao.example.com", "openbao-tls")[0].secret_name,
            "wildcard"
        );
        assert!(ingress.annotations().is_empty());
        ingress.tls = IngressTls::ClusterIssuer("letsencrypt".into());
        assert_eq!(
            ingress.tls_entries("bao.example.com", "openbao-tls"),
            [IngressTlsEntry {
                secret_name: "openbao-tls".into(),
                hosts: vec!["bao.example.com".into()]
            }]
        );
        assert_eq!(
            ingress
                .annotations()
                .get(CERT_MANAGER_CLUSTER_ISSUER)
                .map(String::as_str),
            Some("letsencrypt")
        );
        let both = IngressTls::from_flags(Some("a".into()), Some("b".into()));
        assert!(both.expect_err("both").contains("--cluster-issuer"));
        assert_eq!(IngressTls::from_flags(None, None), Ok(IngressTls::None));
    }
}
