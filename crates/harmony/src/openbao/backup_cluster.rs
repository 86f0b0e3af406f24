//! Scheduled backups in a cluster, the I/O half of [`super::backup_schedule`]: applying the
//! ServiceAccount, PVC and CronJob ([`apply_backup_schedule`]), and reading the snapshots the
//! CronJob keeps on the PVC ([`list_snapshots`], [`fetch_snapshot`]).
//!
//! Design choices:
//! - **The image already pulled**: the CronJob runs the image of OpenBao's StatefulSet; the
//!   short-lived reader pod of `list`/`fetch` runs the CronJob's image. Nothing else is pulled.
//! - **A reader pod, not the CronJob's pods**: a finished Job's pod has no running container to
//!   exec into, so `list`/`fetch` start a pod of their own (`openbao-backup-reader-<random>`)
//!   that mounts the PVC read-only, runs as the image's non-root user with every capability
//!   dropped, sleeps, and is deleted when done (and stops by itself after
//!   [`READER_DEADLINE_SECONDS`] if the client dies).
//! - **No shell on user input**: a snapshot name must match the CronJob's
//!   `harmony-YYYYMMDDTHHMMSSZ.snap` pattern ([`is_snapshot_name`]) and travels as an argument
//!   of `sha256sum`/`base64`, never inside a shell string.
//! - **Checked before it is kept**: the file comes back base64-encoded over the exec stream, is
//!   compared with the SHA-256 the pod computed, checked like `harmony backup verify` (every
//!   `SHA256SUMS` entry of the archive) while still under a temporary name, then renamed into
//!   place 0600, never over an existing file.
//! - **Exec is a seam** (`*_through`): the websocket upgrade behind exec cannot run against a
//!   `tower_test` mock API, so the tests answer the API calls (apply, watch, delete) from a mock
//!   and the exec calls from a closure playing the pod's busybox.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use harmony_k8s::{ExecStatus, K8sClient, K8sError};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::Digest as _;

use super::OpenbaoError;
use super::backup_schedule::{
    BACKUP_DIR, BACKUP_NAME, BackupSchedule, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX, backup_objects,
};
use super::values::API_PORT;

/// How long the reader pod may take to run (image already on the node, volume attach).
pub const READER_RUNNING_TIMEOUT: Duration = Duration::from_secs(120);
/// The reader pod stops by itself after this, even if nobody deletes it.
pub const READER_DEADLINE_SECONDS: i64 = 900;
/// The largest snapshot `fetch` copies (it travels base64-encoded in memory).
pub const MAX_FETCH_BYTES: u64 = 512 * 1024 * 1024;
/// The image's `openbao` user and group (as in the CronJob).
const OPENBAO_UID: i64 = 100;
const OPENBAO_GID: i64 = 1000;

/// What one command in a pod printed and how it ended (the part of
/// [`harmony_k8s::ExecOutput`] the backup commands need).
#[derive(Clone, PartialEq, Eq)]
pub struct PodOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// How it ended.
    pub status: ExecStatus,
}

impl std::fmt::Debug for PodOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodOutput")
            .field("stdout", &format_args!("<{} bytes>", self.stdout.len()))
            .field("stderr", &format_args!("<{} bytes>", self.stderr.len()))
            .field("status", &self.status)
            .finish()
    }
}

/// What [`apply_backup_schedule`] applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedBackups {
    /// The namespace.
    pub namespace: String,
    /// The image the CronJob runs (OpenBao's own).
    pub image: String,
    /// The schedule and how many are kept.
    pub schedule: BackupSchedule,
}

impl AppliedBackups {
    /// One line for the deploy's summary.
    pub fn summary(&self) -> String {
        format!(
            "scheduled backups: CronJob {ns}/{BACKUP_NAME} \"{}\" (UTC), keeping the newest {} \
             on PVC {ns}/{BACKUP_NAME}; `harmony backup list` shows them",
            self.schedule.schedule,
            self.schedule.keep,
            ns = self.namespace
        )
    }
}

/// One snapshot on the backups PVC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotEntry {
    /// File name (`harmony-YYYYMMDDTHHMMSSZ.snap`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (seconds since the Unix epoch).
    pub modified: u64,
}

/// What [`fetch_snapshot`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedSnapshot {
    /// The snapshot on the PVC.
    pub entry: SnapshotEntry,
    /// Where it was written.
    pub path: PathBuf,
    /// The offline check of the copy (the same as `harmony backup verify`).
    pub verified: harmony_secret::backup::Verified,
}

/// Whether `name` is a snapshot file name the CronJob writes (`harmony-YYYYMMDDTHHMMSSZ.snap`).
pub fn is_snapshot_name(name: &str) -> bool {
    let Some(stamp) = name
        .strip_prefix(SNAPSHOT_PREFIX)
        .and_then(|rest| rest.strip_suffix(SNAPSHOT_SUFFIX))
    else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}

fn kube_err(what: String) -> impl FnOnce(K8sError) -> OpenbaoError {
    move |e| OpenbaoError::Kubernetes {
        what,
        source: Some(Box::new(e)),
    }
}

fn plain_err(what: String) -> OpenbaoError {
    OpenbaoError::ScheduledBackups(what)
}

/// The OpenBao address the CronJob calls: the active node's Service with several replicas
/// (`<release>-active`), else `<release>`.
pub fn in_cluster_addr(namespace: &str, release: &str, several_replicas: bool) -> String {
    let service = if several_replicas {
        format!("{release}-active")
    } else {
        release.to_owned()
    };
    format!("http://{service}.{namespace}.svc:{API_PORT}")
}

/// Applies the ServiceAccount, PVC and CronJob of scheduled backups in `namespace`, with the
/// image of OpenBao's StatefulSet `release` (read from the cluster), calling OpenBao at
/// `bao_addr` ([`in_cluster_addr`]). Server-side apply: a re-run with the same flags changes
/// nothing, a new schedule or keep updates the CronJob. The PVC's size is only set at creation.
pub async fn apply_backup_schedule(
    k8s: &K8sClient,
    namespace: &str,
    release: &str,
    bao_addr: &str,
    schedule: &BackupSchedule,
) -> Result<AppliedBackups, OpenbaoError> {
    let sts_ref = format!("StatefulSet {namespace}/{release}");
    let sts = crate::deploy::api::get_namespaced::<StatefulSet>(k8s, namespace, release)
        .await
        .map_err(kube_err(format!("reading {sts_ref} for its image")))?
        .ok_or_else(|| plain_err(format!("{sts_ref} does not exist: deploy OpenBao first")))?;
    let image = sts
        .spec
        .template
        .spec
        .and_then(|p| {
            let mut containers = p.containers.into_iter();
            let first = containers.next();
            containers
                .find(|c| c.name == "openbao")
                .or(first)
                .and_then(|c| c.image)
        })
        .ok_or_else(|| plain_err(format!("{sts_ref} names no container image")))?;
    let objects = backup_objects(namespace, &image, bao_addr, schedule);
    k8s.apply(&objects.service_account, Some(namespace))
        .await
        .map_err(kube_err(format!(
            "applying ServiceAccount {namespace}/{BACKUP_NAME}"
        )))?;
    k8s.apply(&objects.volume_claim, Some(namespace))
        .await
        .map_err(kube_err(format!(
            "applying PersistentVolumeClaim {namespace}/{BACKUP_NAME}"
        )))?;
    k8s.apply(&objects.cron_job, Some(namespace))
        .await
        .map_err(kube_err(format!(
            "applying CronJob {namespace}/{BACKUP_NAME}"
        )))?;
    Ok(AppliedBackups {
        namespace: namespace.to_owned(),
        image,
        schedule: schedule.clone(),
    })
}

/// For a deploy without `--backup-schedule`: when an earlier deploy set up scheduled backups in
/// `namespace`, the note that they stay as they are (schedule and keep as found); `None` when
/// there are none, or the CronJob could not be read (logged; the deploy does not fail for it).
pub async fn backups_left_in_place(k8s: &K8sClient, namespace: &str) -> Option<String> {
    let cron =
        match crate::deploy::api::get_namespaced::<CronJob>(k8s, namespace, BACKUP_NAME).await {
            Ok(found) => found?,
            Err(e) => {
                tracing::debug!(error = %crate::cnpg::retry::ErrorChain(&e),
                "could not look for the backup CronJob");
                return None;
            }
        };
    let spec = cron.spec;
    let keep = spec
        .job_template
        .spec
        .and_then(|j| j.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env)
        .and_then(|env| env.into_iter().find(|e| e.name == "KEEP"))
        .and_then(|e| e.value)
        .unwrap_or_else(|| "?".to_owned());
    Some(format!(
        "scheduled backups stay as an earlier deploy set them (CronJob {namespace}/{BACKUP_NAME} \
         \"{}\", keeping {keep}{}); pass --backup-schedule to change them",
        spec.schedule,
        if spec.suspend == Some(true) {
            ", suspended"
        } else {
            ""
        }
    ))
}

/// The reader pod: the CronJob's image, the PVC read-only, non-root, sleeping until deleted.
pub fn reader_pod(namespace: &str, name: &str, image: &str) -> Pod {
    let labels = std::collections::BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            format!("{BACKUP_NAME}-reader"),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "harmony".to_owned(),
        ),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            restart_policy: Some("Never".to_owned()),
            active_deadline_seconds: Some(READER_DEADLINE_SECONDS),
            termination_grace_period_seconds: Some(1),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(OPENBAO_UID),
                run_as_group: Some(OPENBAO_GID),
                // No fs_group: the volume is read-only and the kubelet must not chown it.
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_owned(),
                    ..SeccompProfile::default()
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "reader".to_owned(),
                image: Some(image.to_owned()),
                image_pull_policy: Some("IfNotPresent".to_owned()),
                command: Some(vec![
                    "/bin/sh".to_owned(),
                    "-c".to_owned(),
                    format!("sleep {READER_DEADLINE_SECONDS}"),
                ]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "backups".to_owned(),
                    mount_path: BACKUP_DIR.to_owned(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]),
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
            }],
            volumes: Some(vec![Volume {
                name: "backups".to_owned(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: BACKUP_NAME.to_owned(),
                    read_only: Some(true),
                }),
                ..Volume::default()
            }]),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// The command that lists the snapshots: `size mtime name` per file (busybox `stat`).
fn list_command() -> Vec<String> {
    vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        format!(
            "cd {BACKUP_DIR} && for f in {SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}; do \
             [ -f \"$f\" ] && stat -c '%s %Y %n' \"$f\"; done; true"
        ),
    ]
}

/// Parses [`list_command`]'s output, newest first; lines that are not a snapshot are skipped.
pub fn parse_listing(stdout: &str) -> Vec<SnapshotEntry> {
    let mut entries: Vec<SnapshotEntry> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, ' ');
            let size = parts.next()?.parse().ok()?;
            let modified = parts.next()?.parse().ok()?;
            let name = parts.next()?;
            is_snapshot_name(name).then(|| SnapshotEntry {
                name: name.to_owned(),
                size,
                modified,
            })
        })
        .collect();
    // The name holds the UTC time: newest first.
    entries.sort_by(|a, b| b.name.cmp(&a.name));
    entries
}

/// The running reader pod, deleted when [`Reader::finish`] is called.
struct Reader<'a> {
    k8s: &'a K8sClient,
    namespace: String,
    name: String,
}

impl<'a> Reader<'a> {
    /// Checks scheduled backups exist (their CronJob gives the image), creates the reader pod
    /// and waits for it to run.
    async fn start(k8s: &'a K8sClient, namespace: &str) -> Result<Self, OpenbaoError> {
        let cron_ref = format!("CronJob {namespace}/{BACKUP_NAME}");
        let cron = crate::deploy::api::get_namespaced::<CronJob>(k8s, namespace, BACKUP_NAME)
            .await
            .map_err(kube_err(format!("reading {cron_ref}")))?
            .ok_or_else(|| {
                plain_err(format!(
                    "there are no scheduled backups in namespace {namespace} ({cron_ref} does \
                     not exist): deploy with --backup-schedule, or pass the namespace OpenBao \
                     runs in"
                ))
            })?;
        crate::deploy::api::get_namespaced::<PersistentVolumeClaim>(k8s, namespace, BACKUP_NAME)
            .await
            .map_err(kube_err(format!(
                "reading PersistentVolumeClaim {namespace}/{BACKUP_NAME}"
            )))?
            .ok_or_else(|| {
                plain_err(format!(
                    "PersistentVolumeClaim {namespace}/{BACKUP_NAME} does not exist: re-run the \
                     deploy with --backup-schedule to create it"
                ))
            })?;
        let image = cron
            .spec
            .job_template
            .spec
            .and_then(|j| j.template.spec)
            .and_then(|p| p.containers.into_iter().next())
            .and_then(|c| c.image)
            .ok_or_else(|| plain_err(format!("{cron_ref} names no container image")))?;
        let name = format!("{BACKUP_NAME}-reader-{:08x}", rand::random::<u32>());
        let pod = reader_pod(namespace, &name, &image);
        let reader = Reader {
            k8s,
            namespace: namespace.to_owned(),
            name,
        };
        k8s.apply(&pod, Some(namespace))
            .await
            .map_err(kube_err(format!(
                "creating the reader pod {namespace}/{}",
                reader.name
            )))?;
        if let Err(e) = k8s
            .wait_for_pod_running(namespace, &reader.name, READER_RUNNING_TIMEOUT)
            .await
        {
            let what = format!(
                "waiting for the reader pod {namespace}/{} (it mounts PVC {BACKUP_NAME}, which \
                 a running backup Job on another node may hold)",
                reader.name
            );
            reader.finish().await;
            return Err(kube_err(what)(e));
        }
        Ok(reader)
    }

    fn pod_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Deletes the pod; a failure is logged (the pod stops by itself after its deadline).
    async fn finish(self) {
        if let Err(e) = self
            .k8s
            .delete_resource::<Pod>(&self.name, Some(&self.namespace))
            .await
        {
            tracing::warn!(pod = %self.pod_ref(), error = %crate::cnpg::retry::ErrorChain(&e),
                "could not delete the backup reader pod; it stops by itself after its deadline");
        }
    }
}

/// Runs `command` through `exec` and returns its stdout when it succeeded.
async fn run<E, Fut>(
    exec: &E,
    reader: &Reader<'_>,
    command: Vec<String>,
    what: &str,
) -> Result<String, OpenbaoError>
where
    E: Fn(String, String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<PodOutput, K8sError>>,
{
    let output = exec(reader.namespace.clone(), reader.name.clone(), command)
        .await
        .map_err(kube_err(format!("{what} in pod {}", reader.pod_ref())))?;
    match output.status {
        ExecStatus::Success => Ok(output.stdout),
        ExecStatus::Failed { code, message } => Err(plain_err(format!(
            "{what} in pod {} failed (exit code {}): {}{}",
            reader.pod_ref(),
            code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
            message,
            match output.stderr.trim() {
                "" => String::new(),
                err => format!("; {}", err.chars().take(500).collect::<String>()),
            }
        ))),
    }
}

/// What one exec call returns, boxed (the seam's future type).
pub type PodExecFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<PodOutput, K8sError>> + Send>>;

/// The real exec: [`K8sClient::exec_pod_capture_output`].
fn k8s_exec(k8s: &K8sClient) -> impl Fn(String, String, Vec<String>) -> PodExecFuture {
    let k8s = k8s.clone();
    move |ns, pod, command| {
        let k8s = k8s.clone();
        Box::pin(async move {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            let out = k8s.exec_pod_capture_output(&ns, &pod, None, &args).await?;
            Ok(PodOutput {
                stdout: out.stdout.clone(),
                stderr: out.stderr.clone(),
                status: out.status.clone(),
            })
        })
    }
}

/// The snapshots on the backups PVC in `namespace`, newest first (through a reader pod).
pub async fn list_snapshots(
    k8s: &K8sClient,
    namespace: &str,
) -> Result<Vec<SnapshotEntry>, OpenbaoError> {
    list_snapshots_through(k8s, namespace, k8s_exec(k8s)).await
}

/// [`list_snapshots`] with `exec(namespace, pod, command)` running each command.
pub async fn list_snapshots_through<E, Fut>(
    k8s: &K8sClient,
    namespace: &str,
    exec: E,
) -> Result<Vec<SnapshotEntry>, OpenbaoError>
where
    E: Fn(String, String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<PodOutput, K8sError>>,
{
    let reader = Reader::start(k8s, namespace).await?;
    let listed = run(&exec, &reader, list_command(), "listing the snapshots").await;
    reader.finish().await;
    Ok(parse_listing(&listed?))
}

/// Copies the snapshot `name` off the backups PVC in `namespace` to `dest` (0600, never over an
/// existing file), after checking it against the SHA-256 the pod computed and like
/// `harmony backup verify`.
pub async fn fetch_snapshot(
    k8s: &K8sClient,
    namespace: &str,
    name: &str,
    dest: &Path,
) -> Result<FetchedSnapshot, OpenbaoError> {
    fetch_snapshot_through(k8s, namespace, name, dest, k8s_exec(k8s)).await
}

/// [`fetch_snapshot`] with `exec(namespace, pod, command)` running each command.
pub async fn fetch_snapshot_through<E, Fut>(
    k8s: &K8sClient,
    namespace: &str,
    name: &str,
    dest: &Path,
    exec: E,
) -> Result<FetchedSnapshot, OpenbaoError>
where
    E: Fn(String, String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<PodOutput, K8sError>>,
{
    if !is_snapshot_name(name) {
        return Err(plain_err(format!(
            "{name:?} is not a scheduled snapshot's name ({SNAPSHOT_PREFIX}YYYYMMDDTHHMMSSZ\
             {SNAPSHOT_SUFFIX}); `harmony backup list` shows them"
        )));
    }
    if dest.exists() {
        return Err(plain_err(format!(
            "{} already exists: fetch never overwrites a file; give another FILE",
            dest.display()
        )));
    }
    let reader = Reader::start(k8s, namespace).await?;
    let copied = copy_off(&exec, &reader, name).await;
    reader.finish().await;
    let (entry, bytes, pod_sha) = copied?;
    write_checked(dest, entry, &bytes, &pod_sha).await
}

async fn copy_off<E, Fut>(
    exec: &E,
    reader: &Reader<'_>,
    name: &str,
) -> Result<(SnapshotEntry, Vec<u8>, String), OpenbaoError>
where
    E: Fn(String, String, Vec<String>) -> Fut,
    Fut: Future<Output = Result<PodOutput, K8sError>>,
{
    let listed = parse_listing(&run(exec, reader, list_command(), "listing the snapshots").await?);
    let entry = listed.into_iter().find(|e| e.name == name).ok_or_else(|| {
        plain_err(format!(
            "there is no snapshot {name} on PVC {}/{BACKUP_NAME} (pruned, or not taken \
                 yet?); `harmony backup list` shows them",
            reader.namespace
        ))
    })?;
    if entry.size > MAX_FETCH_BYTES {
        return Err(plain_err(format!(
            "{name} has {} bytes, more than fetch copies ({MAX_FETCH_BYTES})",
            entry.size
        )));
    }
    let path = format!("{BACKUP_DIR}/{name}");
    let sums = run(
        exec,
        reader,
        vec!["sha256sum".to_owned(), path.clone()],
        "checksumming the snapshot",
    )
    .await?;
    let pod_sha = sums
        .split_whitespace()
        .next()
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            plain_err(format!(
                "sha256sum in pod {} printed no checksum",
                reader.pod_ref()
            ))
        })?
        .to_ascii_lowercase();
    let encoded = run(
        exec,
        reader,
        vec!["base64".to_owned(), path],
        "reading the snapshot",
    )
    .await?;
    let compact: String = encoded.split_ascii_whitespace().collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| {
            plain_err(format!(
                "the snapshot {name} came back damaged from pod {} (base64: {e})",
                reader.pod_ref()
            ))
        })?;
    Ok((entry, bytes, pod_sha))
}

async fn write_checked(
    dest: &Path,
    entry: SnapshotEntry,
    bytes: &[u8],
    pod_sha: &str,
) -> Result<FetchedSnapshot, OpenbaoError> {
    let local_sha = hex::encode(sha2::Sha256::digest(bytes));
    if local_sha != pod_sha || bytes.len() as u64 != entry.size {
        return Err(plain_err(format!(
            "the copy of {} differs from the file on the PVC (SHA-256 {local_sha}, {} bytes; \
             the pod says {pod_sha}, {} bytes): fetch it again",
            entry.name,
            bytes.len(),
            entry.size
        )));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let io_err = |what: &str| {
        let what = format!("{what} {}", dest.display());
        move |e: std::io::Error| plain_err(format!("{what}: {e}"))
    };
    // tempfile creates 0600; checked under the temporary name, then renamed without clobbering.
    let mut tmp = tempfile::Builder::new()
        .prefix(".harmony-fetch-")
        .tempfile_in(&dir)
        .map_err(io_err("creating a temporary file beside"))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(io_err("writing"))?;
    tmp.as_file().sync_all().map_err(io_err("syncing"))?;
    let verified = harmony_secret::backup::verify(tmp.path())
        .await
        .map_err(|e| {
            plain_err(format!(
                "the snapshot {} is not a sound archive: {}",
                entry.name,
                crate::cnpg::retry::ErrorChain(&e)
            ))
        })?;
    tmp.persist_noclobber(dest)
        .map_err(|e| io_err("renaming the copy to")(e.error))?;
    Ok(FetchedSnapshot {
        entry,
        path: dest.to_owned(),
        verified: harmony_secret::backup::Verified {
            path: dest.to_owned(),
            ..verified
        },
    })
}

#[cfg(test)]
mod tests;
