//! The command-line flags that choose an existing cluster and how the stack is published there,
//! and the environments the bootstrap declares, defined once for both binaries (`harmony deploy` and `cargo run -p example-harmony-sso`), which
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

/// `--environments`, `--access`, `--developer-role`, `--ops-role`: environments and who may
/// read or write each, turned into OpenBao policies and the CEL sign-in role by the bootstrap.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EnvironmentFlags {
    /// Declare these environments (e.g. dev,staging,prod): one overlay per config each, one
    /// policy per environment and access level, and roles from the ID token's claims at
    /// sign-in. Idempotent; name them all again to add one. Without it, everyone signed in
    /// reads and writes the one base, as before.
    #[arg(long, value_name = "ENV,...", value_delimiter = ',')]
    pub environments: Vec<String>,

    /// Override a role's access (repeatable): ROLE=ENV:LEVEL,... with ROLE developer, ops or a
    /// role name, ENV an environment or base, LEVEL read, write or none. Default: developers
    /// read the base and write every environment but prod/production; ops write everything.
    #[arg(long, value_name = "ROLE=ENV:LEVEL,...", requires = "environments")]
    pub access: Vec<String>,

    /// The developers' role: the Zitadel project role and `groups` entry looked for.
    #[arg(long, value_name = "NAME", default_value = crate::openbao::DEFAULT_DEVELOPER_ROLE, requires = "environments")]
    pub developer_role: String,

    /// The operators' role (writes the base and every environment by default).
    #[arg(long, value_name = "NAME", default_value = crate::openbao::DEFAULT_OPS_ROLE, requires = "environments")]
    pub ops_role: String,
}

impl EnvironmentFlags {
    /// The access table the flags ask for; `None` without `--environments`. The error is a
    /// usage error's text.
    pub fn table(&self) -> Result<Option<crate::openbao::AccessTable>, String> {
        if self.environments.is_empty() {
            return Ok(None);
        }
        let developer = if self.developer_role.is_empty() {
            crate::openbao::DEFAULT_DEVELOPER_ROLE
        } else {
            &self.developer_role
        };
        let ops = if self.ops_role.is_empty() {
            crate::openbao::DEFAULT_OPS_ROLE
        } else {
            &self.ops_role
        };
        crate::openbao::AccessTable::new(&self.environments, developer, ops, &self.access)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}
