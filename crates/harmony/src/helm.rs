//! Installing charts with the pinned helm.
//!
//! [`Helm`] runs the helm binary (normally from [`Tools::ensure`] with [`ToolSpec::helm`])
//! against one cluster, named by a [`KubeconfigFile`]. Callers pass chart values as their own
//! typed `Serialize` structs (the OpenBao, CNPG and Zitadel scores own theirs); they are
//! rendered to YAML ([`render_values`]) and handed to helm as a private `--values` file, never
//! as `--set` arguments, so secrets in values never show in a process list or an error.
//!
//! Every call is bounded. `upgrade --install` passes `--timeout` to helm, which gives that
//! timeout to each hook *and* to the rollout, so our deadline is (hooks + 1) × timeout; past it
//! helm gets SIGTERM (it cancels and records the release as failed) and only after a grace
//! period SIGKILL (which would leave the release `pending-*`). helm's stderr is part of every
//! error.
//!
//! **Converge means no change.** [`Helm::upgrade_install`] first reads the release
//! (`helm status -o json`, `helm get values -o json`): when the deployed chart version and the
//! values equal ours it runs nothing and says [`ReleaseOutcome::Unchanged`], so a re-run adds
//! no helm revision. A release left `pending-install`/`pending-upgrade`/`pending-rollback` (a
//! helm that was killed) is reported, and recovered — rollback, or uninstall of an install that
//! never deployed — only when the caller's [`PendingRecovery`] agrees.
//!
//! ```no_run
//! # async fn demo(helm: harmony::helm::Helm) -> Result<(), harmony::helm::HelmError> {
//! use harmony::helm::ChartRelease;
//! use std::time::Duration;
//! #[derive(serde::Serialize)]
//! struct Values { replicas: u32 }
//! helm.repo_add("openbao", "https://openbao.github.io/openbao-helm").await?;
//! let release = ChartRelease::new("openbao", "openbao/openbao", "openbao")
//!     .version("0.1.0")
//!     .timeout(Duration::from_secs(300));
//! helm.upgrade_install(&release, &Values { replicas: 1 }).await?;
//! # Ok(()) }
//! ```
//!
//! [`Tools::ensure`]: crate::tools::Tools::ensure
//! [`ToolSpec::helm`]: crate::tools::ToolSpec::helm

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use tracing::Instrument as _;

use crate::tools::{CommandError, ToolCommand, ToolError, ToolSpec, Tools};

/// How long helm may take to stop after SIGTERM (it cancels, records the failure, reports)
/// before it is SIGKILLed.
const KILL_GRACE: Duration = Duration::from_secs(60);

/// What [`Helm::upgrade_install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The release did not exist and was installed.
    Installed,
    /// The release existed with another chart version or other values and was upgraded.
    Upgraded,
    /// The release is deployed with this chart version and these values: nothing ran.
    Unchanged,
}

impl ReleaseOutcome {
    /// `installed`, `upgraded` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseOutcome::Installed => "installed",
            ReleaseOutcome::Upgraded => "upgraded",
            ReleaseOutcome::Unchanged => "unchanged",
        }
    }
}

/// A release helm left in a `pending-*` state (helm v3.21.4 `pkg/release/status.go`:
/// `pending-install`, `pending-upgrade`, `pending-rollback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRelease {
    /// Release name.
    pub release: String,
    /// Namespace.
    pub namespace: String,
    /// The status, e.g. `pending-upgrade`.
    pub status: String,
    /// The stuck revision.
    pub revision: u32,
}

impl PendingRelease {
    /// A first install that never deployed: recovered by uninstalling it (there is nothing to
    /// roll back to).
    pub fn never_deployed(&self) -> bool {
        self.status == "pending-install"
    }

    /// The question both binaries ask a person before recovering it.
    pub fn question(&self) -> String {
        format!(
            "helm release {}/{} is stuck in {} (a helm that was killed leaves it so). {}?",
            self.namespace,
            self.release,
            self.status,
            self.recovery()
        )
    }

    /// What recovering it does, for a question or a message.
    pub fn recovery(&self) -> String {
        if self.never_deployed() {
            format!(
                "uninstall the never-deployed release ({})",
                self.manual_command()
            )
        } else {
            format!(
                "roll back to the last deployed revision ({})",
                self.manual_command()
            )
        }
    }

    /// The helm command that recovers it by hand.
    pub fn manual_command(&self) -> String {
        if self.never_deployed() {
            format!("helm uninstall {} -n {}", self.release, self.namespace)
        } else {
            format!("helm rollback {} -n {}", self.release, self.namespace)
        }
    }
}

/// Decides whether a [`PendingRelease`] may be recovered (run on a blocking thread, so it may
/// ask a person). The CLI answers "yes" for `--yes`, asks on a terminal, else "no".
pub type PendingRecovery = std::sync::Arc<dyn Fn(&PendingRelease) -> bool + Send + Sync>;

/// Why a private file (kubeconfig, values) could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{context} {}: {source}", .path.display())]
pub struct PrivateFileError {
    context: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A kubeconfig on disk for helm's `--kubeconfig`.
///
/// Written ones are mode 0600 (they hold a client key), written to a temporary name in the
/// same directory and renamed. A [`KubeconfigFile::temporary`] one lives in a private
/// temporary directory that is deleted with the value.
#[derive(Debug)]
pub struct KubeconfigFile {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl KubeconfigFile {
    /// Writes `yaml` to a new private temporary directory.
    pub fn temporary(yaml: &SecretString) -> Result<Self, PrivateFileError> {
        let dir = tempfile::Builder::new()
            .prefix("harmony-kubeconfig-")
            .tempdir()
            .map_err(|source| PrivateFileError {
                context: "could not create a temporary directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        let path = write_private(dir.path(), "kubeconfig", yaml)?;
        Ok(Self {
            path,
            _dir: Some(dir),
        })
    }

    /// Writes `yaml` to `dir/file_name` (e.g. under `harmony_data_dir()`); kept when dropped.
    pub fn write(
        dir: &Path,
        file_name: &str,
        yaml: &SecretString,
    ) -> Result<Self, PrivateFileError> {
        std::fs::create_dir_all(dir).map_err(|source| PrivateFileError {
            context: "could not create",
            path: dir.to_owned(),
            source,
        })?;
        let path = write_private(dir, file_name, yaml)?;
        Ok(Self { path, _dir: None })
    }

    /// A kubeconfig that already exists (an existing cluster's), used as is.
    pub fn existing(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            _dir: None,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a 0600 file atomically: temp file in `dir` (created 0600), then rename.
fn write_private(
    dir: &Path,
    file_name: &str,
    content: &SecretString,
) -> Result<PathBuf, PrivateFileError> {
    let target = dir.join(file_name);
    let err = |context, path: &Path| {
        let path = path.to_owned();
        move |source| PrivateFileError {
            context,
            path,
            source,
        }
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".kubeconfig-")
        .tempfile_in(dir)
        .map_err(err("could not create a temporary file in", dir))?;
    temp.write_all(content.expose_secret().as_bytes())
        .and_then(|()| temp.as_file().sync_all())
        .map_err(err("could not write", temp.path()))?;
    temp.persist(&target)
        .map_err(|e| err("could not rename into", &target)(e.error))?;
    Ok(target)
}

/// One chart release to install or upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartRelease {
    /// Release name.
    pub release: String,
    /// Chart reference: `repo/chart`, `oci://…` or a path.
    pub chart: String,
    /// Namespace (created when missing).
    pub namespace: String,
    /// Chart version; `None` takes the repository's latest (avoid: pin it).
    pub version: Option<String>,
    /// Pass `--wait`: helm returns only once the release's pods are ready.
    pub wait: bool,
    /// helm's `--timeout`: helm applies it to each hook and to the rollout separately.
    pub timeout: Duration,
    /// How many hooks the chart runs on install/upgrade (each may take the whole timeout).
    pub hooks: u32,
}

impl ChartRelease {
    /// `release` of `chart` in `namespace`, no `--wait`, a 5-minute timeout.
    pub fn new(
        release: impl Into<String>,
        chart: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Self {
        Self {
            release: release.into(),
            chart: chart.into(),
            namespace: namespace.into(),
            version: None,
            wait: false,
            timeout: Duration::from_secs(300),
            hooks: 0,
        }
    }

    /// The chart's install/upgrade hooks (e.g. Zitadel's init and setup Jobs: 2).
    pub fn hooks(mut self, hooks: u32) -> Self {
        self.hooks = hooks;
        self
    }

    /// How long helm may run in the worst case: (hooks + 1) × timeout.
    pub fn deadline(&self) -> Duration {
        self.timeout.max(Duration::from_secs(1)) * (self.hooks + 1)
    }

    /// Pins the chart version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Whether helm waits for the release's resources to be ready.
    pub fn wait(mut self, wait: bool) -> Self {
        self.wait = wait;
        self
    }

    /// helm's `--timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a helm operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelmError {
    /// The helm binary could not be obtained.
    #[error("could not obtain helm: {0}")]
    Tool(#[source] Box<ToolError>),
    /// A name or chart reference would be read as a flag or is empty.
    #[error("{what} {value:?} is not valid: {reason}")]
    InvalidArgument {
        /// What it is ("release name", "namespace", ...).
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `helm repo add` failed.
    #[error(
        "could not add helm repository {name} ({url}): {source}; check the URL and the network"
    )]
    RepoAdd {
        /// Repository name.
        name: String,
        /// Repository URL.
        url: String,
        /// The failed run (helm's stderr inside).
        #[source]
        source: Box<CommandError>,
    },
    /// `helm repo update` failed.
    #[error("could not update helm repositories: {source}; check the network")]
    RepoUpdate {
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// The values could not be rendered to YAML.
    #[error("could not render the helm values of release {release}: {source}")]
    RenderValues {
        /// Release name.
        release: String,
        /// The serialisation error.
        #[source]
        source: serde_yaml::Error,
    },
    /// The values file could not be written.
    #[error("could not write the values file for release {release}: {source}")]
    ValuesFile {
        /// Release name.
        release: String,
        /// The write error.
        #[source]
        source: PrivateFileError,
    },
    /// `helm upgrade --install` failed.
    #[error(
        "helm could not install or upgrade release {release} ({chart}) in namespace {namespace}: \
         {source}; inspect it with `helm status {release} -n {namespace}`, fix the cause and re-run"
    )]
    UpgradeInstall {
        /// Release name.
        release: String,
        /// Chart reference.
        chart: String,
        /// Namespace.
        namespace: String,
        /// The failed run (helm's stderr inside).
        #[source]
        source: Box<CommandError>,
    },
    /// helm's chart values schema refers to a JSON schema on the internet (Zitadel 9.34.0's
    /// `values.schema.json` does) and helm could not fetch it.
    #[error(
        "helm could not fetch a JSON schema that chart {chart} refers to from the internet while \
         validating the values of release {release}: {source}. helm downloads it at install time, \
         so behind a proxy set HTTPS_PROXY (and NO_PROXY for local addresses) for this command, \
         or allow the schema's host through the firewall, then re-run"
    )]
    SchemaFetch {
        /// Release name.
        release: String,
        /// Chart reference.
        chart: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// The release is stuck in a `pending-*` state and recovery was not allowed.
    #[error(
        "helm release {} in namespace {} is stuck in {} (revision {}): a helm that was killed \
         mid-operation leaves it so, and every upgrade then fails with \"another operation \
         (install/upgrade/rollback) is in progress\". Re-run with --yes to {}, or do it by hand",
        .0.release, .0.namespace, .0.status, .0.revision, .0.recovery()
    )]
    Pending(PendingRelease),
    /// `helm status` / `helm get values` failed or printed something unexpected.
    #[error("could not read helm release {release} in namespace {namespace}: {detail}")]
    Inspect {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
        /// What went wrong.
        detail: String,
        /// The failed run, when helm failed.
        #[source]
        source: Option<Box<CommandError>>,
    },
    /// `helm rollback` failed.
    #[error("helm could not roll back release {release} in namespace {namespace}: {source}")]
    Rollback {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
    /// `helm uninstall` failed.
    #[error("helm could not uninstall release {release} in namespace {namespace}: {source}")]
    Uninstall {
        /// Release name.
        release: String,
        /// Namespace.
        namespace: String,
        /// The failed run.
        #[source]
        source: Box<CommandError>,
    },
}

/// Renders chart values to the YAML helm reads from `--values`.
pub fn render_values<V: Serialize + ?Sized>(values: &V) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(values)
}

/// The pinned helm bound to one cluster.
pub struct Helm {
    binary: PathBuf,
    kubeconfig: KubeconfigFile,
    state_dir: Option<PathBuf>,
    query_timeout: Duration,
    kill_grace: Duration,
    recover_pending: Option<PendingRecovery>,
    outcomes: std::sync::Mutex<Vec<(String, ReleaseOutcome)>>,
}

impl std::fmt::Debug for Helm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helm")
            .field("binary", &self.binary)
            .field("kubeconfig", &self.kubeconfig)
            .field("state_dir", &self.state_dir)
            .field("recover_pending", &self.recover_pending.is_some())
            .finish_non_exhaustive()
    }
}

/// The parts of `helm status -o json` we read (helm v3.21.4 `cmd/helm/status.go` prints the
/// release: `info.status`, `chart.metadata.version`, `version` = revision).
#[derive(Debug, serde::Deserialize)]
struct ReleaseStatus {
    #[serde(default)]
    info: ReleaseInfo,
    #[serde(default)]
    chart: Option<ReleaseChart>,
    #[serde(default)]
    version: u32,
}

#[derive(Debug, Default, serde::Deserialize)]
struct ReleaseInfo {
    #[serde(default)]
    status: String,
}

#[derive(Debug, serde::Deserialize)]
struct ReleaseChart {
    metadata: ReleaseChartMetadata,
}

#[derive(Debug, serde::Deserialize)]
struct ReleaseChartMetadata {
    #[serde(default)]
    version: String,
}

/// helm's error text for a release that does not exist (`helm status`).
fn is_release_not_found(e: &CommandError) -> bool {
    e.stderr().is_some_and(|s| s.contains("release: not found"))
}

/// helm failing to fetch a `$ref`ed JSON schema while validating values. helm v3.21.4
/// (`pkg/chartutil/jsonschema.go`) compiles the chart's schema with santhosh-tekuri/jsonschema
/// v6 and an HTTP loader (`http.ProxyFromEnvironment`, 15 s timeout); a failed fetch surfaces
/// as `failing loading "<url>": <transport error>` under "values don't meet the
/// specifications of the schema(s)".
fn is_schema_fetch_failure(e: &CommandError) -> bool {
    e.stderr().is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        (s.contains("schema") || s.contains("jsonschema"))
            && (s.contains("failing loading")
                || s.contains("failed to load")
                || s.contains("could not load")
                || s.contains("error loading")
                || s.contains("dial tcp")
                || s.contains("proxyconnect")
                || s.contains("no such host")
                || s.contains("i/o timeout"))
    })
}

impl Helm {
    /// helm at `binary`, talking to the cluster in `kubeconfig`.
    pub fn new(binary: impl Into<PathBuf>, kubeconfig: KubeconfigFile) -> Self {
        Self {
            binary: binary.into(),
            kubeconfig,
            state_dir: None,
            query_timeout: Duration::from_secs(120),
            kill_grace: KILL_GRACE,
            recover_pending: None,
            outcomes: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Who decides whether a release stuck in `pending-*` is recovered (default: never; the
    /// error says how to do it).
    pub fn with_pending_recovery(mut self, decide: PendingRecovery) -> Self {
        self.recover_pending = Some(decide);
        self
    }

    /// How long helm may take to stop after SIGTERM before it is killed (default 60 s).
    pub fn with_kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// What each [`Self::upgrade_install`] so far did, in order (release name, outcome).
    pub fn outcomes(&self) -> Vec<(String, ReleaseOutcome)> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The pinned helm from `tools` (downloaded and verified if needed).
    pub async fn install(tools: &Tools, kubeconfig: KubeconfigFile) -> Result<Self, HelmError> {
        let binary = tools
            .ensure(&ToolSpec::helm())
            .await
            .map_err(|e| HelmError::Tool(Box::new(e)))?;
        Ok(Self::new(binary, kubeconfig))
    }

    /// Keep helm's repository list and index cache in `dir` (e.g. `harmony_data_dir()/helm`)
    /// instead of the user's helm configuration.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Deadline for repository calls (`repo add`, `repo update`).
    pub fn with_query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = timeout;
        self
    }

    /// The helm executable in use.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A helm command with the flags every call shares (cluster, repository state).
    fn command(&self, timeout: Duration) -> ToolCommand {
        let mut cmd = ToolCommand::new(&self.binary, timeout);
        cmd = cmd.arg("--kubeconfig").arg(self.kubeconfig.path());
        if let Some(dir) = &self.state_dir {
            cmd = cmd
                .arg("--repository-config")
                .arg(dir.join("repositories.yaml"))
                .arg("--repository-cache")
                .arg(dir.join("cache"));
        }
        cmd
    }

    /// Adds (or re-points) the chart repository `name` at `url`.
    pub async fn repo_add(&self, name: &str, url: &str) -> Result<(), HelmError> {
        check_name("repository name", name)?;
        check_not_flag("repository URL", url)?;
        self.command(self.query_timeout)
            .args(["repo", "add", name, url, "--force-update"])
            .run()
            .await
            .map_err(|source| HelmError::RepoAdd {
                name: name.to_owned(),
                url: url.to_owned(),
                source: Box::new(source),
            })?;
        Ok(())
    }

    /// Refreshes every repository's index.
    pub async fn repo_update(&self) -> Result<(), HelmError> {
        let span = tracing::info_span!("helm_repo_update", message = "Updating helm repositories");
        self.command(self.query_timeout)
            .args(["repo", "update"])
            .run()
            .instrument(span)
            .await
            .map_err(|source| HelmError::RepoUpdate {
                source: Box::new(source),
            })?;
        Ok(())
    }

    fn inspect_error(release: &ChartRelease, detail: impl Into<String>) -> HelmError {
        HelmError::Inspect {
            release: release.release.clone(),
            namespace: release.namespace.clone(),
            detail: detail.into(),
            source: None,
        }
    }

    /// `helm status -o json`; `None` when the release does not exist.
    async fn status(&self, release: &ChartRelease) -> Result<Option<ReleaseStatus>, HelmError> {
        let out = self
            .command(self.query_timeout)
            .args(["status", release.release.as_str()])
            .args(["--namespace", release.namespace.as_str(), "-o", "json"])
            .run()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) if is_release_not_found(&e) => return Ok(None),
            Err(e) => {
                return Err(HelmError::Inspect {
                    release: release.release.clone(),
                    namespace: release.namespace.clone(),
                    detail: "`helm status` failed".into(),
                    source: Some(Box::new(e)),
                });
            }
        };
        serde_json::from_str(out.stdout.trim())
            .map(Some)
            .map_err(|e| Self::inspect_error(release, format!("`helm status -o json`: {e}")))
    }

    /// `helm get values -o json` (the user-supplied values; `null` when there are none). May
    /// hold secrets: never logged.
    async fn deployed_values(
        &self,
        release: &ChartRelease,
    ) -> Result<serde_json::Value, HelmError> {
        let out = self
            .command(self.query_timeout)
            .args(["get", "values", release.release.as_str()])
            .args(["--namespace", release.namespace.as_str(), "-o", "json"])
            .run()
            .await
            .map_err(|e| HelmError::Inspect {
                release: release.release.clone(),
                namespace: release.namespace.clone(),
                detail: "`helm get values` failed".into(),
                source: Some(Box::new(e)),
            })?;
        let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).map_err(|_| {
            // serde_json's message could quote a value: say only where it failed.
            Self::inspect_error(release, "`helm get values -o json` printed no JSON")
        })?;
        Ok(if v.is_null() {
            serde_json::json!({})
        } else {
            v
        })
    }

    /// Recovers a `pending-*` release when the caller agrees, else reports it.
    async fn recover(&self, pending: PendingRelease) -> Result<(), HelmError> {
        let agreed = match &self.recover_pending {
            None => false,
            Some(decide) => {
                let decide = std::sync::Arc::clone(decide);
                let asked = pending.clone();
                tokio::task::spawn_blocking(move || decide(&asked))
                    .await
                    .unwrap_or(false)
            }
        };
        if !agreed {
            return Err(HelmError::Pending(pending));
        }
        tracing::warn!(
            release = %pending.release,
            namespace = %pending.namespace,
            status = %pending.status,
            "recovering a release a killed helm left behind: {}",
            pending.recovery()
        );
        let (release, namespace) = (pending.release.as_str(), pending.namespace.as_str());
        if pending.never_deployed() {
            self.uninstall(release, namespace, Duration::from_secs(300))
                .await
        } else {
            self.command(Duration::from_secs(300) + self.kill_grace)
                .args(["rollback", release, "--namespace", namespace, "--wait"])
                .args(["--timeout", "300s"])
                .terminate_grace(self.kill_grace)
                .run()
                .await
                .map(drop)
                .map_err(|source| HelmError::Rollback {
                    release: release.to_owned(),
                    namespace: namespace.to_owned(),
                    source: Box::new(source),
                })
        }
    }

    fn record(&self, release: &ChartRelease, outcome: ReleaseOutcome) -> ReleaseOutcome {
        if let Ok(mut o) = self.outcomes.lock() {
            o.push((release.release.clone(), outcome));
        }
        outcome
    }

    /// Converges `release` to `values`: installs it when absent, upgrades it when its chart
    /// version or values differ, runs nothing when they match (no new helm revision). A release
    /// stuck in `pending-*` is recovered first if [`Self::with_pending_recovery`] agrees, else
    /// [`HelmError::Pending`].
    pub async fn upgrade_install<V: Serialize + ?Sized>(
        &self,
        release: &ChartRelease,
        values: &V,
    ) -> Result<ReleaseOutcome, HelmError> {
        check_name("release name", &release.release)?;
        check_name("namespace", &release.namespace)?;
        check_not_flag("chart", &release.chart)?;
        if let Some(version) = &release.version {
            check_not_flag("chart version", version)?;
        }
        let ours = serde_json::to_value(values).map_err(|e| {
            Self::inspect_error(release, format!("the values do not serialise to JSON: {e}"))
        })?;
        let existing = match self.status(release).await? {
            Some(status) if status.info.status.starts_with("pending-") => {
                self.recover(PendingRelease {
                    release: release.release.clone(),
                    namespace: release.namespace.clone(),
                    status: status.info.status.clone(),
                    revision: status.version,
                })
                .await?;
                self.status(release).await?
            }
            other => other,
        };
        let outcome = match &existing {
            None => ReleaseOutcome::Installed,
            Some(status) => {
                let deployed_version = status.chart.as_ref().map(|c| c.metadata.version.as_str());
                let same_chart =
                    release.version.is_some() && deployed_version == release.version.as_deref();
                if status.info.status == "deployed"
                    && same_chart
                    && self.deployed_values(release).await? == ours
                {
                    tracing::info!(release = %release.release, namespace = %release.namespace, "helm release unchanged: same chart version and values");
                    return Ok(self.record(release, ReleaseOutcome::Unchanged));
                }
                ReleaseOutcome::Upgraded
            }
        };
        self.run_upgrade_install(release, values).await?;
        Ok(self.record(release, outcome))
    }

    /// The `helm upgrade --install` run itself.
    async fn run_upgrade_install<V: Serialize + ?Sized>(
        &self,
        release: &ChartRelease,
        values: &V,
    ) -> Result<(), HelmError> {
        let yaml = render_values(values).map_err(|source| HelmError::RenderValues {
            release: release.release.clone(),
            source,
        })?;
        // Values may carry secrets (database passwords, master keys): a private file in a
        // private temporary directory, deleted after the run.
        let values_dir = tempfile::Builder::new()
            .prefix("harmony-helm-values-")
            .tempdir()
            .map_err(|source| HelmError::ValuesFile {
                release: release.release.clone(),
                source: PrivateFileError {
                    context: "could not create a temporary directory in",
                    path: std::env::temp_dir(),
                    source,
                },
            })?;
        let values_file =
            write_private(values_dir.path(), "values.yaml", &SecretString::from(yaml)).map_err(
                |source| HelmError::ValuesFile {
                    release: release.release.clone(),
                    source,
                },
            )?;

        let helm_timeout = release.timeout.max(Duration::from_secs(1));
        // helm gives each hook and then the rollout the whole --timeout.
        let mut cmd = self
            .command(release.deadline())
            .terminate_grace(self.kill_grace)
            .args(["upgrade", "--install"])
            .args([release.release.as_str(), release.chart.as_str()])
            .args([
                "--namespace",
                release.namespace.as_str(),
                "--create-namespace",
            ]);
        if let Some(version) = &release.version {
            cmd = cmd.args(["--version", version.as_str()]);
        }
        cmd = cmd.arg("--values").arg(&values_file);
        if release.wait {
            cmd = cmd.arg("--wait");
        }
        cmd = cmd.args([
            "--timeout".to_owned(),
            format!("{}s", helm_timeout.as_secs()),
        ]);

        let span = tracing::info_span!(
            "helm_upgrade_install",
            message = %format!("Installing {} ({}) in {}", release.release, release.chart, release.namespace),
        );
        cmd.run().instrument(span).await.map_err(|source| {
            if is_schema_fetch_failure(&source) {
                HelmError::SchemaFetch {
                    release: release.release.clone(),
                    chart: release.chart.clone(),
                    source: Box::new(source),
                }
            } else {
                HelmError::UpgradeInstall {
                    release: release.release.clone(),
                    chart: release.chart.clone(),
                    namespace: release.namespace.clone(),
                    source: Box::new(source),
                }
            }
        })?;
        tracing::info!(release = %release.release, namespace = %release.namespace, "helm release installed");
        drop(values_dir);
        Ok(())
    }

    /// Removes `release` from `namespace`; a release that does not exist is success.
    pub async fn uninstall(
        &self,
        release: &str,
        namespace: &str,
        timeout: Duration,
    ) -> Result<(), HelmError> {
        check_name("release name", release)?;
        check_name("namespace", namespace)?;
        let timeout = timeout.max(Duration::from_secs(1));
        let span = tracing::info_span!(
            "helm_uninstall",
            message = %format!("Uninstalling {release} from {namespace}"),
        );
        self.command(timeout)
            .terminate_grace(self.kill_grace)
            .args([
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--ignore-not-found",
            ])
            .args(["--timeout".to_owned(), format!("{}s", timeout.as_secs())])
            .run()
            .instrument(span)
            .await
            .map_err(|source| HelmError::Uninstall {
                release: release.to_owned(),
                namespace: namespace.to_owned(),
                source: Box::new(source),
            })?;
        Ok(())
    }
}

/// Release, namespace and repository names: DNS-1123 labels, so never a flag.
fn check_name(what: &'static str, value: &str) -> Result<(), HelmError> {
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 53
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(HelmError::InvalidArgument {
            what,
            value: value.to_owned(),
            reason: "use at most 53 lowercase letters, digits or '-', starting and ending with a letter or digit",
        })
    }
}

fn check_not_flag(what: &'static str, value: &str) -> Result<(), HelmError> {
    if value.is_empty() || value.starts_with('-') {
        return Err(HelmError::InvalidArgument {
            what,
            value: value.to_owned(),
            reason: "it must be non-empty and must not start with '-'",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn kubeconfig_files_are_private_and_temporary_ones_vanish() {
        let yaml = SecretString::from("apiVersion: v1\nkind: Config\n");
        let file = KubeconfigFile::temporary(&yaml).expect("write");
        let path = file.path().to_owned();
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            yaml.expose_secret()
        );
        drop(file);
        assert!(!path.exists());

        let dir = tempfile::tempdir().expect("tempdir");
        let kept = KubeconfigFile::write(dir.path(), "k3d-harmony.yaml", &yaml).expect("write");
        assert_eq!(
            std::fs::metadata(kept.path())
                .expect("stat")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // Only the renamed file remains: no temporary leftovers.
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn names_that_could_be_flags_are_refused() {
        assert!(check_name("release name", "openbao").is_ok());
        for bad in ["", "-n", "Open", "a_b", "x-"] {
            assert!(check_name("release name", bad).is_err(), "{bad}");
        }
        assert!(check_not_flag("chart", "--set=x").is_err());
        assert!(check_not_flag("chart", "oci://ghcr.io/x/y").is_ok());
    }
}
