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
//! use harmony::ingress::LocalIngress;
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
}
