//! Which proxy, if any, the client uses to reach the API server.
//!
//! kube-client 5.0.0 (`config/file_loader.rs`, `ConfigLoader::proxy_url`) takes the selected
//! cluster's `proxy-url`, else `HTTPS_PROXY`/`https_proxy` from the environment; it consults
//! `NO_PROXY` only when its `http-proxy`/`socks5` feature is on (and then matches it against the
//! *proxy's* address, not the API server's). Harmony builds kube without those features, so an
//! `http://` proxy in the environment made every client fail with `ProxyProtocolDisabled` — and
//! the environment needs that proxy for helm's chart downloads. So the choice is made here:
//!
//! - a local cluster (the kubeconfig k3d hands out): only the kubeconfig's own `proxy-url`;
//!   the environment's proxy never applies to a loopback API server;
//! - an existing cluster (the user's kubeconfig): the kubeconfig's `proxy-url`, else the
//!   environment's `HTTPS_PROXY` unless `NO_PROXY` matches the API server's host.

use std::net::IpAddr;

use harmony_env::vars;
use kube::config::Kubeconfig;

/// Which proxy rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyPolicy {
    /// Only a `proxy-url` in the kubeconfig itself (local clusters).
    KubeconfigOnly,
    /// The kubeconfig's `proxy-url`, else the environment's, honouring `NO_PROXY` for the API
    /// server's host (existing clusters).
    KubeconfigThenEnvironment,
}

/// The `proxy-url` of the cluster that `context` (or the current context) selects.
pub(crate) fn kubeconfig_proxy(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let context_name = context
        .map(str::to_owned)
        .or_else(|| kubeconfig.current_context.clone())?;
    let cluster_name = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context_name)?
        .context
        .as_ref()?
        .cluster
        .clone();
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_ref()?
        .proxy_url
        .clone()
        .filter(|p| !p.trim().is_empty())
}

/// The proxy to use for `server_host` under `policy`; `env` looks up environment variables.
pub(crate) fn choose_proxy(
    policy: ProxyPolicy,
    from_kubeconfig: Option<String>,
    server_host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if from_kubeconfig.is_some() {
        return from_kubeconfig;
    }
    if policy == ProxyPolicy::KubeconfigOnly {
        return None;
    }
    let first = |names: [&str; 2]| {
        names
            .into_iter()
            .find_map(|name| env(name).filter(|v| !v.trim().is_empty()))
    };
    let proxy = first(vars::HTTPS_PROXY_ALIASES)?;
    let no_proxy = first(vars::NO_PROXY_ALIASES);
    if no_proxy.is_some_and(|list| no_proxy_matches(&list, server_host)) {
        return None;
    }
    Some(proxy)
}

/// Whether a `NO_PROXY` list covers `host`: `*`, an exact name or address, a domain suffix
/// (`example.com` and `.example.com` both cover `api.example.com`), or an IPv4/IPv6 CIDR block.
pub(crate) fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let host_ip: Option<IpAddr> = host.parse().ok();
    list.split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" || entry == host {
                return true;
            }
            if let (Some(ip), Some((net, bits))) = (host_ip, entry.split_once('/')) {
                return cidr_contains(net, bits, ip);
            }
            let suffix = entry.trim_start_matches('.');
            host_ip.is_none() && (host == suffix || host.ends_with(&format!(".{suffix}")))
        })
}

fn cidr_contains(net: &str, bits: &str, ip: IpAddr) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_local_cluster_never_takes_the_environments_proxy() {
        let e = env(&[("HTTPS_PROXY", "http://proxy.corp:3128")]);
        assert_eq!(
            choose_proxy(ProxyPolicy::KubeconfigOnly, None, "0.0.0.0", &e),
            None
        );
        assert_eq!(
            choose_proxy(
                ProxyPolicy::KubeconfigOnly,
                Some("http://jump:8888".into()),
                "0.0.0.0",
                &e
            ),
            Some("http://jump:8888".into())
        );
    }

    #[test]
    fn an_existing_cluster_honours_no_proxy_for_the_api_server() {
        let e = env(&[
            ("https_proxy", "http://proxy.corp:3128"),
            ("NO_PROXY", "localhost, .internal.example,10.0.0.0/8"),
        ]);
        let policy = ProxyPolicy::KubeconfigThenEnvironment;
        assert_eq!(choose_proxy(policy, None, "api.internal.example", &e), None);
        assert_eq!(choose_proxy(policy, None, "10.1.2.3", &e), None);
        assert_eq!(
            choose_proxy(policy, None, "api.cloud.example", &e),
            Some("http://proxy.corp:3128".into())
        );
        assert_eq!(
            choose_proxy(policy, Some("socks5://k:1080".into()), "10.1.2.3", &e),
            Some("socks5://k:1080".into()),
            "the kubeconfig's own proxy-url wins"
        );
    }

    #[test]
    fn no_proxy_entries() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "api.example.com"));
        assert!(no_proxy_matches(".example.com", "example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("127.0.0.1", "127.0.0.1"));
        assert!(no_proxy_matches("fd00::/8", "[fd00::1]"));
        assert!(!no_proxy_matches("10.0.0.0/8", "11.0.0.1"));
    }

    #[test]
    fn the_selected_clusters_proxy_url_is_found() {
        let yaml = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: https://a:6443\n    proxy-url: http://jump:8888\n- name: b\n  cluster:\n    server: https://b:6443\ncontexts:\n- name: ca\n  context: {cluster: a, user: u}\n- name: cb\n  context: {cluster: b, user: u}\ncurrent-context: cb\nusers:\n- name: u\n  user: {token: t}\n";
        let k = Kubeconfig::from_yaml(yaml).expect("parses");
        assert_eq!(kubeconfig_proxy(&k, None), None);
        assert_eq!(
            kubeconfig_proxy(&k, Some("ca")),
            Some("http://jump:8888".into())
        );
    }
}
