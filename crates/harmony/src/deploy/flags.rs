//! The command-line flags that choose an existing cluster and how the stack is published there,
//! defined once for both binaries (`harmony deploy` and `cargo run -p example-harmony-sso`), which
//! flatten them into their own arguments.

use crate::deploy::{DeployTarget, Profile};
use crate::ingress::{Domain, IngressTls, PublicIngress};

/// `--kube-context`, `--domain`, `--ingress-class`, `--tls-secret`, `--cluster-issuer`,
/// `--profile`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterFlags {
    /// Deploy onto this context of your kubeconfig (KUBECONFIG, else ~/.kube/config) instead of
    /// a local k3d cluster. Needs --domain.
    #[arg(long, value_name = "NAME", requires = "domain")]
    pub kube_context: Option<String>,

    /// With --kube-context: publish OpenBao at https://bao.DOMAIN and Zitadel at
    /// https://sso.DOMAIN (both names must resolve to the cluster's ingress controller).
    #[arg(long, value_name = "DOMAIN", requires = "kube_context")]
    pub domain: Option<Domain>,

    /// With --kube-context: the IngressClass to use (default: the cluster's default class).
    #[arg(long, value_name = "NAME", requires = "kube_context")]
    pub ingress_class: Option<String>,

    /// With --kube-context: the TLS Secret for both hosts (it must exist in the namespaces
    /// openbao and zitadel). Without it or --cluster-issuer the Ingresses carry no TLS.
    #[arg(
        long,
        value_name = "NAME",
        requires = "kube_context",
        conflicts_with = "cluster_issuer"
    )]
    pub tls_secret: Option<String>,

    /// With --kube-context: let cert-manager issue the certificates from this ClusterIssuer.
    #[arg(long, value_name = "NAME", requires = "kube_context")]
    pub cluster_issuer: Option<String>,

    /// The stack's size: local (one of everything; the k3d default) or ha (OpenBao 3 raft
    /// peers, PostgreSQL 3 instances, Zitadel 2 replicas, disruption budgets; the default with
    /// --kube-context, which ha needs).
    #[arg(long, value_name = "PROFILE", value_parser = Profile::parse, requires_if("ha", "kube_context"))]
    pub profile: Option<Profile>,
}

impl ClusterFlags {
    /// With `--kube-context`: the context and how the stack is published there; `None` for the
    /// local k3d cluster. The error is a usage error's text.
    pub fn existing_cluster(&self) -> Result<Option<(String, PublicIngress)>, String> {
        let (Some(context), Some(domain)) = (&self.kube_context, &self.domain) else {
            return Ok(None);
        };
        let tls = IngressTls::from_flags(self.tls_secret.clone(), self.cluster_issuer.clone())?;
        Ok(Some((
            context.clone(),
            PublicIngress {
                domain: domain.clone(),
                class: self.ingress_class.clone(),
                tls,
            },
        )))
    }

    /// Where to deploy: the existing cluster the flags name, else the k3d cluster `k3d_cluster`.
    pub fn target(&self, k3d_cluster: &str) -> Result<DeployTarget, String> {
        Ok(match self.existing_cluster()? {
            Some((context, ingress)) => DeployTarget::Existing { context, ingress },
            None => DeployTarget::K3d {
                cluster: k3d_cluster.to_owned(),
            },
        })
    }
}
