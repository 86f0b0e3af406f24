//! The command-line flags that choose an existing cluster and how the stack is published there,
//! defined once for both binaries (`harmony deploy` and `cargo run -p example-harmony-sso`), which
//! flatten them into their own arguments. The environments' and history flags ([`EnvironmentFlags`],
//! [`HistoryFlags`]) live in `harmony-openbao`, which the lean CLI uses without Kubernetes;
//! re-exported here.

use crate::deploy::{DeployTarget, Profile};
use crate::ingress::{Domain, IngressTls, PublicIngress};
use crate::openbao::{BackupSchedule, DEFAULT_BACKUP_KEEP};
use crate::zitadel::KubectlImage;

pub use harmony_openbao::flags::{EnvironmentFlags, HistoryFlags};

/// `--kube-context`, `--domain`, `--ingress-class`, `--tls-secret`, `--cluster-issuer`,
/// `--profile`, `--kubectl-image`.
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

    /// The kubectl image (Docker Hub REPOSITORY:TAG, with a shell) of Zitadel's setup and
    /// cleanup Jobs; it must be within one minor of the cluster's Kubernetes (default
    /// alpine/k8s:1.32.3, for the k3s that k3d starts). The chart's own default, the cluster's
    /// exact version, is a tag that often does not exist.
    #[arg(long, value_name = "IMAGE", value_parser = KubectlImage::parse, env = harmony_env::vars::HARMONY_KUBECTL_IMAGE)]
    pub kubectl_image: Option<KubectlImage>,
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
        let kubectl_image = self.kubectl_image.clone().unwrap_or_default();
        Ok(match self.existing_cluster()? {
            Some((context, ingress)) => DeployTarget::Existing {
                context,
                ingress,
                kubectl_image,
            },
            None => DeployTarget::K3d {
                cluster: k3d_cluster.to_owned(),
                kubectl_image,
            },
        })
    }
}

/// `--backup-schedule`, `--backup-keep`: scheduled raft snapshots in the cluster (a CronJob in
/// OpenBao's namespace signing in through OpenBao's Kubernetes auth, keeping the newest N on a
/// PVC).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BackupFlags {
    /// Take a raft snapshot on this schedule (five cron fields, UTC, e.g. "0 * * * *" for
    /// hourly, or @hourly/@daily/...), by a CronJob in OpenBao's namespace that keeps them on
    /// a PVC (`harmony backup list` / `fetch` copy them off). A deploy without it leaves
    /// scheduled backups as they are.
    #[arg(long, value_name = "CRON", value_parser = BackupSchedule::parse_schedule)]
    pub backup_schedule: Option<String>,

    /// With --backup-schedule: how many snapshots to keep, newest first (default 48).
    #[arg(long, value_name = "N", value_parser = BackupSchedule::parse_keep, requires = "backup_schedule")]
    pub backup_keep: Option<u16>,
}

impl BackupFlags {
    /// The schedule the flags ask for; `None` without `--backup-schedule`.
    pub fn schedule(&self) -> Option<BackupSchedule> {
        self.backup_schedule
            .as_ref()
            .map(|schedule| BackupSchedule {
                schedule: schedule.clone(),
                keep: self.backup_keep.unwrap_or(DEFAULT_BACKUP_KEEP),
            })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Args {
        #[command(flatten)]
        cluster: ClusterFlags,
        #[command(flatten)]
        backup: BackupFlags,
    }

    #[test]
    fn backup_flags_give_a_schedule_with_the_default_or_given_keep() {
        let args = Args::try_parse_from(["deploy"]).expect("no flags");
        assert_eq!(args.backup.schedule(), None);
        let args =
            Args::try_parse_from(["deploy", "--backup-schedule", "0 * * * *"]).expect("schedule");
        assert_eq!(
            args.backup.schedule(),
            Some(BackupSchedule {
                schedule: "0 * * * *".to_owned(),
                keep: 48
            })
        );
        let args = Args::try_parse_from([
            "deploy",
            "--backup-schedule",
            "*/15 * * * *",
            "--backup-keep",
            "4",
        ])
        .expect("schedule and keep");
        assert_eq!(args.backup.schedule().map(|s| s.keep), Some(4));
    }

    #[test]
    fn a_bad_backup_flag_is_a_usage_error_naming_it() {
        for (flag, bad) in [
            ("--backup-schedule", "0 * * *"),
            ("--backup-schedule", "every hour"),
            ("--backup-keep", "0"),
        ] {
            let mut argv = vec!["deploy", "--backup-schedule", "@hourly"];
            if flag == "--backup-schedule" {
                argv.truncate(1);
            }
            argv.extend([flag, bad]);
            let err = Args::try_parse_from(&argv).expect_err(bad).to_string();
            assert!(err.contains(flag), "{bad}: {err}");
        }
        let err = Args::try_parse_from(["deploy", "--backup-keep", "3"])
            .expect_err("keep alone")
            .to_string();
        assert!(err.contains("--backup-schedule"), "{err}");
    }

    fn kubectl_image(target: DeployTarget) -> KubectlImage {
        match target {
            DeployTarget::K3d { kubectl_image, .. }
            | DeployTarget::Existing { kubectl_image, .. } => kubectl_image,
        }
    }

    #[test]
    fn the_kubectl_image_is_pinned_unless_overridden_for_both_targets() {
        let args = Args::try_parse_from(["deploy"]).expect("no flags");
        let image = kubectl_image(args.cluster.target("harmony").expect("k3d"));
        assert_eq!(image.to_string(), "alpine/k8s:1.32.3");

        let args = Args::try_parse_from([
            "deploy",
            "--kube-context",
            "prod",
            "--domain",
            "example.com",
            "--kubectl-image",
            "bitnami/kubectl:1.33.4",
        ])
        .expect("flags");
        let image = kubectl_image(args.cluster.target("harmony").expect("existing"));
        assert_eq!(
            (image.repository.as_str(), image.tag.as_str()),
            ("bitnami/kubectl", "1.33.4")
        );
    }

    #[test]
    fn a_kubectl_image_the_chart_cannot_pull_is_a_usage_error() {
        for bad in [
            "alpine/k8s",
            "registry.k8s.io/kubectl:v1.33.0",
            "Alpine/K8s:1.33",
            "alpine/k8s:",
            "alpine/k8s:1.33 --set x",
        ] {
            let err = Args::try_parse_from(["deploy", "--kubectl-image", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("Docker Hub REPOSITORY:TAG"), "{bad}: {err}");
        }
        let err = Args::try_parse_from(["deploy", "--kubectl-image", "quay.io/x/kubectl:1"])
            .expect_err("registry")
            .to_string();
        assert!(err.contains("always pulls from docker.io"), "{err}");
    }
}
