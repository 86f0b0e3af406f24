//! Scheduled backups on Kubernetes: the objects that take a raft snapshot on a schedule, in the
//! OpenBao namespace, and keep the newest N on a PVC.
//!
//! Design choices:
//! - **Pure**: [`backup_objects`] only builds the ServiceAccount, the PVC and the CronJob; the
//!   deploy applies them. Nothing here does I/O, so the manifests are snapshot-tested.
//! - **The image already pulled**: the CronJob runs the `bao` CLI of the image the OpenBao pods
//!   run (the caller passes it, read from the StatefulSet), so a backup needs no extra pull and the
//!   CLI always matches the server.
//! - **No token in the manifest**: the pod signs in through OpenBao's Kubernetes auth method
//!   ([`KUBERNETES_AUTH_MOUNT`], role [`BACKUP_ROLE`]) with a short-lived projected
//!   service-account token (the default automount is off), read by `bao` from its file
//!   (`jwt=@FILE`, never on a command line). The role grants only [`super::HARMONY_BACKUP_POLICY`].
//! - **Least privilege in the pod**: non-root (the image's `openbao` user), read-only root
//!   filesystem (only `/tmp` and the PVC are writable), no privilege escalation, every capability
//!   dropped, the runtime's seccomp profile. The snapshot is written with `umask 077` (0600) under
//!   a temporary name and renamed when complete, so a failed run never leaves a file that looks
//!   like a backup; pruning then keeps the newest [`BackupSchedule::keep`] files.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecurityContext,
    ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

// The OpenBao side (the auth mount, the role and its body) is harmony-openbao's: the bootstrap
// writes it over HTTP.
pub(super) use harmony_openbao::{
    BACKUP_NAME, BACKUP_ROLE, BACKUP_TOKEN_AUDIENCE, KUBERNETES_AUTH_MOUNT,
};

/// Default `--backup-schedule`: every hour, on the hour (UTC).
pub const DEFAULT_BACKUP_SCHEDULE: &str = "0 * * * *";
/// Default `--backup-keep`: two days of hourly snapshots.
pub const DEFAULT_BACKUP_KEEP: u16 = 48;
/// Size of the backups PVC.
pub const BACKUP_VOLUME_SIZE: &str = "2Gi";
/// Where the PVC is mounted in the backup pod.
pub const BACKUP_DIR: &str = "/backups";
/// Prefix of every snapshot file name (`harmony-YYYYMMDDTHHMMSSZ.snap`).
pub const SNAPSHOT_PREFIX: &str = "harmony-";
/// Suffix of every snapshot file name.
pub const SNAPSHOT_SUFFIX: &str = ".snap";
/// The image's `openbao` user and group (chart openbao-0.29.2 `server.statefulSet.securityContext`).
const OPENBAO_UID: i64 = 100;
const OPENBAO_GID: i64 = 1000;
const TOKEN_DIR: &str = "/var/run/secrets/harmony";
const TOKEN_FILE: &str = "token";
/// Lifetime of the projected token (the kubelet's minimum is 600 s).
const TOKEN_EXPIRATION_SECONDS: i64 = 600;
/// A run that takes longer than this is stopped (and the next one starts on schedule).
const JOB_DEADLINE_SECONDS: i64 = 900;

/// When to take snapshots and how many to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSchedule {
    /// A five-field cron expression (UTC) or a `@hourly`-style macro.
    pub schedule: String,
    /// How many snapshots to keep (newest first); at least 1.
    pub keep: u16,
}

impl Default for BackupSchedule {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_BACKUP_SCHEDULE.to_owned(),
            keep: DEFAULT_BACKUP_KEEP,
        }
    }
}

impl BackupSchedule {
    /// Checks a `--backup-schedule` value: five cron fields of digits, names, `*`, `/`, `,`, `-`,
    /// or one of Kubernetes' macros. The error is a usage error's text.
    pub fn parse_schedule(text: &str) -> Result<String, String> {
        const MACROS: [&str; 7] = [
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ];
        let text = text.trim();
        if MACROS.contains(&text) {
            return Ok(text.to_owned());
        }
        let fields: Vec<&str> = text.split_whitespace().collect();
        let field_ok = |f: &&str| {
            f.len() <= 64
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | '/' | ',' | '-'))
        };
        if fields.len() != 5 || !fields.iter().all(field_ok) {
            return Err(format!(
                "--backup-schedule: expected a cron expression of five fields (minute hour \
                 day-of-month month day-of-week, UTC), e.g. \"{DEFAULT_BACKUP_SCHEDULE}\", or \
                 @hourly/@daily/@weekly/@monthly; got {} field(s)",
                fields.len()
            ));
        }
        Ok(fields.join(" "))
    }

    /// Checks a `--backup-keep` value: a whole number from 1 to 10000.
    pub fn parse_keep(text: &str) -> Result<u16, String> {
        match text.trim().parse::<u16>() {
            Ok(n) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(format!(
                "--backup-keep: expected how many snapshots to keep, a whole number from 1 to \
                 10000 (default {DEFAULT_BACKUP_KEEP})"
            )),
        }
    }
}

/// The objects of scheduled backups, in the order they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupObjects {
    /// The identity the CronJob's pods sign in with.
    pub service_account: ServiceAccount,
    /// Where the snapshots are kept.
    pub volume_claim: PersistentVolumeClaim,
    /// Takes a snapshot on the schedule and prunes.
    pub cron_job: CronJob,
}

/// The shell script the backup container runs (POSIX `sh` and the `bao` CLI of the image; no
/// curl). `KEEP` comes from the container's environment (a validated number).
pub fn backup_script() -> String {
    format!(
        r#"set -eu
umask 077
cd {BACKUP_DIR}
BAO_TOKEN="$(bao write -field=token auth/{KUBERNETES_AUTH_MOUNT}/login role={BACKUP_ROLE} jwt=@{TOKEN_DIR}/{TOKEN_FILE})"
export BAO_TOKEN
name="{SNAPSHOT_PREFIX}$(date -u +%Y%m%dT%H%M%SZ){SNAPSHOT_SUFFIX}"
rm -f ./.partial-*
bao operator raft snapshot save "./.partial-$name"
chmod 0600 "./.partial-$name"
mv "./.partial-$name" "./$name"
echo "saved $name"
ls -1 | grep -E '^{SNAPSHOT_PREFIX}[0-9]{{8}}T[0-9]{{6}}Z\{SNAPSHOT_SUFFIX}$' | sort -r | tail -n +$((KEEP + 1)) | while read -r old; do
  rm -f -- "./$old"
  echo "pruned $old"
done
"#
    )
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), BACKUP_NAME.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "harmony".to_owned(),
        ),
    ])
}

fn meta(namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(BACKUP_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels()),
        ..ObjectMeta::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// The ServiceAccount, PVC and CronJob of scheduled backups in `namespace`, running `image` (the
/// OpenBao pods' image) against OpenBao at `bao_addr` (the in-cluster service URL).
pub fn backup_objects(
    namespace: &str,
    image: &str,
    bao_addr: &str,
    schedule: &BackupSchedule,
) -> BackupObjects {
    let service_account = ServiceAccount {
        metadata: meta(namespace),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    };
    let volume_claim = PersistentVolumeClaim {
        metadata: meta(namespace),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(BACKUP_VOLUME_SIZE.to_owned()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let container = Container {
        name: "backup".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), backup_script()]),
        env: Some(vec![
            env("BAO_ADDR", bao_addr),
            env("HOME", "/tmp"),
            env("KEEP", schedule.keep.to_string()),
        ]),
        volume_mounts: Some(vec![
            mount("backups", BACKUP_DIR, false),
            mount("token", TOKEN_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_owned(), Quantity("50m".to_owned())),
                ("memory".to_owned(), Quantity("64Mi".to_owned())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_owned(),
                Quantity("256Mi".to_owned()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let volumes = vec![
        Volume {
            name: "backups".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: BACKUP_NAME.to_owned(),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "token".to_owned(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o400),
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(BACKUP_TOKEN_AUDIENCE.to_owned()),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        path: TOKEN_FILE.to_owned(),
                        ..ServiceAccountTokenProjection::default()
                    }),
                    ..VolumeProjection::default()
                }]),
                ..ProjectedVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("16Mi".to_owned())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let pod = PodSpec {
        service_account_name: Some(BACKUP_NAME.to_owned()),
        automount_service_account_token: Some(false),
        restart_policy: Some("Never".to_owned()),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(OPENBAO_UID),
            run_as_group: Some(OPENBAO_GID),
            fs_group: Some(OPENBAO_GID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![container],
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    let cron_job = CronJob {
        metadata: meta(namespace),
        spec: CronJobSpec {
            schedule: schedule.schedule.clone(),
            time_zone: Some("Etc/UTC".to_owned()),
            concurrency_policy: Some("Forbid".to_owned()),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            starting_deadline_seconds: Some(600),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(JOB_DEADLINE_SECONDS),
                    ttl_seconds_after_finished: Some(86_400),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels()),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(pod),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        },
        ..CronJob::default()
    };
    BackupObjects {
        service_account,
        volume_claim,
        cron_job,
    }
}

#[cfg(test)]
mod tests {
    use harmony_openbao::backup_role;

    use super::*;

    fn objects() -> BackupObjects {
        backup_objects(
            "openbao",
            &format!("openbao/openbao:{}", super::super::IMAGE_TAG),
            "http://openbao.openbao.svc:8200",
            &BackupSchedule::default(),
        )
    }

    #[test]
    fn service_account_snapshot() {
        insta::assert_yaml_snapshot!(objects().service_account);
    }

    #[test]
    fn volume_claim_snapshot() {
        insta::assert_yaml_snapshot!(objects().volume_claim);
    }

    #[test]
    fn cron_job_snapshot() {
        insta::assert_yaml_snapshot!(objects().cron_job);
    }

    #[test]
    fn the_auth_config_in_a_pod_uses_the_pod_s_ca_and_token() {
        use crate::openbao::kubernetes_auth_config;
        insta::assert_json_snapshot!(kubernetes_auth_config(
            crate::openbao::KubernetesBackupAuth::IN_CLUSTER_HOST,
            None
        ));
        let with_ca = kubernetes_auth_config("https://k8s.example:6443", Some("PEM"));
        assert_eq!(with_ca["kubernetes_ca_cert"], "PEM");
        assert_eq!(with_ca["disable_local_ca_jwt"], false);
    }

    #[test]
    fn the_role_is_bound_to_the_service_account_and_one_policy_string() {
        insta::assert_json_snapshot!(backup_role("openbao"));
    }

    #[test]
    fn the_pod_runs_as_non_root_read_only_and_carries_no_token() {
        let objects = objects();
        let yaml = serde_yaml::to_string(&objects.cron_job).expect("yaml");
        let spec = objects.cron_job.spec;
        let job = spec.job_template.spec.expect("job");
        let pod = job.template.spec.expect("pod");
        assert_eq!(pod.automount_service_account_token, Some(false));
        let sc = pod.containers[0].security_context.clone().expect("sc");
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert!(!yaml.contains("BAO_TOKEN:"), "{yaml}");
        assert!(!yaml.to_lowercase().contains("secretkeyref"), "{yaml}");
        assert!(yaml.contains(&format!(
            "image: openbao/openbao:{}",
            super::super::IMAGE_TAG
        )));
    }

    #[test]
    fn the_script_writes_0600_atomically_and_prunes_to_keep() {
        let script = backup_script();
        assert!(script.starts_with("set -eu\numask 077\n"), "{script}");
        assert!(
            script.contains("jwt=@/var/run/secrets/harmony/token"),
            "{script}"
        );
        let save = script.find("snapshot save").expect("save");
        let rename = script.find("mv \"./.partial-$name\"").expect("mv");
        assert!(save < rename);
        assert!(script.contains("tail -n +$((KEEP + 1))"), "{script}");
        assert!(!script.contains("curl"), "{script}");
    }

    #[test]
    fn schedule_and_keep_are_checked() {
        assert_eq!(
            BackupSchedule::parse_schedule(" 0  * * * * ").as_deref(),
            Ok("0 * * * *")
        );
        assert_eq!(
            BackupSchedule::parse_schedule("@daily").as_deref(),
            Ok("@daily")
        );
        for bad in ["0 * * *", "0 * * * * *", "0 * * * $(id)", "@reboot", ""] {
            let err = BackupSchedule::parse_schedule(bad).expect_err(bad);
            assert!(err.contains("--backup-schedule"), "{err}");
        }
        assert_eq!(BackupSchedule::parse_keep("48"), Ok(48));
        for bad in ["0", "-1", "x", "10001"] {
            let err = BackupSchedule::parse_keep(bad).expect_err(bad);
            assert!(err.contains("--backup-keep"), "{err}");
        }
    }
}
