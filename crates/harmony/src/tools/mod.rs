//! Pinned, checksum-verified external tools: k3d and helm.
//!
//! A [`ToolSpec`] names one release of a tool: its version, where the release assets live and
//! where their sha256 checksums are published. [`Tools::ensure`] returns a path to that exact
//! version: the one on `PATH` when `<tool> version` reports it, else a copy under
//! `<data dir>/bin/<name>-<version>`, downloaded once.
//!
//! The main design choice is that nothing unverified is ever executable. A download goes to a
//! temporary file in the `bin` directory itself, its sha256 is computed while streaming and
//! compared with the release's checksum file (matched by file name), and only then is it
//! made `0755` and renamed into place, so the rename is atomic and a failure (bad checksum,
//! missing entry, network error) leaves nothing behind: the temporary file is deleted when
//! dropped. Base URLs are part of the spec so tests serve releases from a local HTTP server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), harmony::tools::ToolError> {
//! use harmony::tools::{ToolSpec, Tools};
//! let tools = Tools::from_env()?; // <harmony_data_dir()>/bin
//! let k3d = tools.ensure(&ToolSpec::k3d()).await?;
//! # let _ = k3d; Ok(()) }
//! ```

mod checksum;
mod command;

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tracing::Instrument as _;

pub use checksum::expected_sha256;
pub use command::{CommandError, CommandOutput, ToolCommand};

/// The pinned k3d release.
pub const K3D_VERSION: &str = "v5.8.3";
/// The pinned helm release (Helm 3; the charts Harmony installs are tested with it).
pub const HELM_VERSION: &str = "v3.21.4";

/// Where k3d publishes release assets (`<base>/<version>/k3d-<os>-<arch>`).
pub const K3D_RELEASES_URL: &str = "https://github.com/k3d-io/k3d/releases/download";
/// Where helm publishes release tarballs (`<base>/helm-<version>-<os>-<arch>.tar.gz`).
pub const HELM_RELEASES_URL: &str = "https://get.helm.sh";

/// Operating systems with published k3d and helm builds, spelled as in asset names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// Linux.
    Linux,
    /// macOS.
    Darwin,
}

/// CPU architectures, spelled as in asset names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

/// An OS and architecture pair selecting a release asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// The operating system.
    pub os: Os,
    /// The CPU architecture.
    pub arch: Arch,
}

impl Platform {
    /// The platform this program was built for.
    pub fn current() -> Result<Self, ToolError> {
        let os = match std::env::consts::OS {
            "linux" => Os::Linux,
            "macos" => Os::Darwin,
            _ => return Err(Self::unsupported()),
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => Arch::Amd64,
            "aarch64" => Arch::Arm64,
            _ => return Err(Self::unsupported()),
        };
        Ok(Self { os, arch })
    }

    fn unsupported() -> ToolError {
        ToolError::UnsupportedPlatform {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }

    fn os_str(self) -> &'static str {
        match self.os {
            Os::Linux => "linux",
            Os::Darwin => "darwin",
        }
    }

    fn arch_str(self) -> &'static str {
        match self.arch {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }
}

/// How a release asset holds the executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetFormat {
    /// The asset is the executable itself (k3d).
    Binary,
    /// A gzip'd tarball; `member` is the executable's path inside it (a template like the
    /// asset's, e.g. `{os}-{arch}/helm`).
    TarGz {
        /// Path of the executable in the archive.
        member: String,
    },
}

/// One pinned release of a tool.
///
/// Templates are relative to `base_url` and may use `{version}`, `{os}` and `{arch}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    /// The executable's name, e.g. `k3d`.
    pub name: String,
    /// The pinned version as the tool prints it, e.g. `v5.8.3`.
    pub version: String,
    /// Base URL of the release downloads (no trailing slash needed).
    pub base_url: String,
    /// The asset's path under `base_url`.
    pub asset: String,
    /// The checksum file's path under `base_url`.
    pub checksums: String,
    /// What the asset is.
    pub format: AssetFormat,
    /// Arguments that make the tool print its version (checked against [`ToolSpec::version`]).
    pub version_args: Vec<String>,
}

impl ToolSpec {
    /// k3d [`K3D_VERSION`]: a bare binary per platform, sha256 sums in the release's
    /// `checksums.txt`.
    pub fn k3d() -> Self {
        Self {
            name: "k3d".to_owned(),
            version: K3D_VERSION.to_owned(),
            base_url: K3D_RELEASES_URL.to_owned(),
            asset: "{version}/k3d-{os}-{arch}".to_owned(),
            checksums: "{version}/checksums.txt".to_owned(),
            format: AssetFormat::Binary,
            version_args: vec!["version".to_owned()],
        }
    }

    /// helm [`HELM_VERSION`]: a tarball per platform with a `<tarball>.sha256sum` beside it.
    pub fn helm() -> Self {
        Self {
            name: "helm".to_owned(),
            version: HELM_VERSION.to_owned(),
            base_url: HELM_RELEASES_URL.to_owned(),
            asset: "helm-{version}-{os}-{arch}.tar.gz".to_owned(),
            checksums: "helm-{version}-{os}-{arch}.tar.gz.sha256sum".to_owned(),
            format: AssetFormat::TarGz {
                member: "{os}-{arch}/helm".to_owned(),
            },
            version_args: vec!["version".to_owned(), "--short".to_owned()],
        }
    }

    /// The same release served from another place (a mirror, or a test server).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    fn expand(&self, template: &str, platform: Platform) -> String {
        template
            .replace("{version}", &self.version)
            .replace("{os}", platform.os_str())
            .replace("{arch}", platform.arch_str())
    }

    fn url(&self, template: &str, platform: Platform) -> String {
        format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            self.expand(template, platform)
        )
    }

    /// Whether `<tool> version` output names this version. Helm's `--short` form carries
    /// build metadata (`v3.21.4+g1a2b3c`), so that suffix is ignored.
    pub fn version_matches(&self, output: &str) -> bool {
        output
            .split_whitespace()
            .map(|word| word.split('+').next().unwrap_or(word))
            .any(|word| word == self.version)
    }

    /// File name of the installed copy: `<name>-<version>`.
    fn installed_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// Where [`Tools`] looks for an already installed tool before downloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchPath {
    /// The directories in the process's `PATH`.
    Environment,
    /// These directories (tests use a directory of fake tools).
    Dirs(Vec<PathBuf>),
    /// Never use an installed tool; always the pinned download.
    Disabled,
}

/// Deadlines for obtaining tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolTimeouts {
    /// Establishing a connection.
    pub connect: Duration,
    /// The whole checksum-file request.
    pub checksums: Duration,
    /// The whole asset download (tens of MB).
    pub download: Duration,
    /// The longest pause between two chunks of a download before giving up.
    pub stall: Duration,
    /// Running `<tool> version` on a candidate from `PATH`.
    pub version_check: Duration,
}

impl Default for ToolTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            checksums: Duration::from_secs(30),
            download: Duration::from_secs(600),
            stall: Duration::from_secs(60),
            version_check: Duration::from_secs(10),
        }
    }
}

/// Why a tool could not be obtained.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No release is published for this machine.
    #[error(
        "no pinned k3d/helm build exists for {os}/{arch}; install the tools yourself \
         (matching versions) and put them on PATH"
    )]
    UnsupportedPlatform {
        /// `std::env::consts::OS`.
        os: &'static str,
        /// `std::env::consts::ARCH`.
        arch: &'static str,
    },
    /// The data directory could not be determined.
    #[error(transparent)]
    DataDir(#[from] harmony_env::DataDirError),
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the HTTP client for tool downloads: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The request failed in transport (refused, DNS, TLS, reset).
    #[error("downloading {url} failed: {source}; check the network connection and retry")]
    Transport {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The request took too long.
    #[error("downloading {url} did not finish within {} s; retry on a better connection", .after.as_secs())]
    TimedOut {
        /// The URL.
        url: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The server answered with an error status.
    #[error("downloading {url} failed with HTTP {status}; check that the release exists")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The checksum file has no entry for the asset.
    #[error(
        "{checksums_url} lists no sha256 for {file}; refusing to install an unverified {file} \
         (nothing was installed)"
    )]
    ChecksumMissing {
        /// The asset's file name.
        file: String,
        /// The checksum file.
        checksums_url: String,
    },
    /// The download does not match the published checksum.
    #[error(
        "sha256 of the downloaded {file} is {actual} but {checksums_url} says {expected}; \
         the download is corrupt or was tampered with and was deleted (nothing was installed); retry"
    )]
    ChecksumMismatch {
        /// The asset's file name.
        file: String,
        /// The checksum file.
        checksums_url: String,
        /// The published sha256.
        expected: String,
        /// The sha256 of what arrived.
        actual: String,
    },
    /// The tarball holds no such file.
    #[error("{archive} has no {member}; the pinned release layout changed, update the tool spec")]
    MemberMissing {
        /// The asset's file name.
        archive: String,
        /// The expected path inside.
        member: String,
    },
    /// A local file operation failed.
    #[error("{context} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Blocking work (archive extraction) panicked or was cancelled.
    #[error("extracting {archive} did not complete: {source}")]
    Join {
        /// The asset's file name.
        archive: String,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl ToolError {
    fn io(context: &'static str, path: &Path, source: std::io::Error) -> Self {
        ToolError::Io {
            context,
            path: path.to_owned(),
            source,
        }
    }
}

/// Obtains pinned tools into one data directory.
#[derive(Debug, Clone)]
pub struct Tools {
    data_dir: PathBuf,
    search_path: SearchPath,
    platform: Platform,
    timeouts: ToolTimeouts,
    http: reqwest::Client,
}

impl Tools {
    /// Tools kept under `data_dir/bin`, looked up on `PATH` first, for this machine's platform.
    pub fn new(data_dir: impl Into<PathBuf>) -> Result<Self, ToolError> {
        Self::with_timeouts(data_dir, ToolTimeouts::default())
    }

    /// [`Tools::new`] with [`harmony_env::harmony_data_dir`].
    pub fn from_env() -> Result<Self, ToolError> {
        Self::new(harmony_env::harmony_data_dir()?)
    }

    /// [`Tools::new`] with other deadlines.
    pub fn with_timeouts(
        data_dir: impl Into<PathBuf>,
        timeouts: ToolTimeouts,
    ) -> Result<Self, ToolError> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.stall)
            .build()
            .map_err(ToolError::HttpClient)?;
        Ok(Self {
            data_dir: data_dir.into(),
            search_path: SearchPath::Environment,
            platform: Platform::current()?,
            timeouts,
            http,
        })
    }

    /// Where to look for installed tools before downloading.
    pub fn search_path(mut self, search_path: SearchPath) -> Self {
        self.search_path = search_path;
        self
    }

    /// Download assets for another platform (tests pin one so asset names are stable).
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = platform;
        self
    }

    /// The directory holding downloaded tools.
    pub fn bin_dir(&self) -> PathBuf {
        self.data_dir.join("bin")
    }

    /// A path to the pinned version of `spec`: from the search path when it reports that
    /// version, else the verified download (fetched now if not yet there).
    pub async fn ensure(&self, spec: &ToolSpec) -> Result<PathBuf, ToolError> {
        if let Some(found) = self.find_installed(spec).await {
            tracing::info!(tool = %spec.name, path = %found.display(), "using installed {} {}", spec.name, spec.version);
            return Ok(found);
        }
        let target = self.bin_dir().join(spec.installed_name());
        if is_executable_file(&target) {
            tracing::debug!(tool = %spec.name, path = %target.display(), "already downloaded");
            return Ok(target);
        }
        let span = tracing::info_span!(
            "download_tool",
            message = %format!("Downloading {} {}", spec.name, spec.version),
            bytes = tracing::field::Empty,
        );
        self.download(spec, &target).instrument(span).await?;
        Ok(target)
    }

    async fn find_installed(&self, spec: &ToolSpec) -> Option<PathBuf> {
        let dirs: Vec<PathBuf> = match &self.search_path {
            SearchPath::Disabled => return None,
            SearchPath::Dirs(dirs) => dirs.clone(),
            SearchPath::Environment => std::env::var_os(harmony_env::vars::PATH)
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
        };
        for dir in dirs {
            let candidate = dir.join(&spec.name);
            if !is_executable_file(&candidate) {
                continue;
            }
            let check = ToolCommand::new(&candidate, self.timeouts.version_check)
                .args(spec.version_args.iter().map(OsString::from));
            match check.run().await {
                Ok(out) if spec.version_matches(&out.stdout) => return Some(candidate),
                Ok(out) => tracing::info!(
                    path = %candidate.display(),
                    reported = %out.stdout.lines().next().unwrap_or("").trim(),
                    wanted = %spec.version,
                    "installed {} is another version; using the pinned download", spec.name
                ),
                Err(err) => tracing::info!(
                    path = %candidate.display(), error = %err,
                    "installed {} does not report its version; using the pinned download", spec.name
                ),
            }
        }
        None
    }

    async fn download(&self, spec: &ToolSpec, target: &Path) -> Result<(), ToolError> {
        let bin_dir = self.bin_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&bin_dir)
            .map_err(|e| ToolError::io("could not create", &bin_dir, e))?;

        let asset_url = spec.url(&spec.asset, self.platform);
        let checksums_url = spec.url(&spec.checksums, self.platform);
        let file = asset_url
            .rsplit('/')
            .next()
            .unwrap_or(&asset_url)
            .to_owned();

        // The checksum first: without an entry there is no point downloading tens of MB.
        let checksums = self.fetch_text(&checksums_url).await?;
        let expected =
            expected_sha256(&checksums, &file).ok_or_else(|| ToolError::ChecksumMissing {
                file: file.clone(),
                checksums_url: checksums_url.clone(),
            })?;

        let (download, actual) = self.fetch_to_temp(&asset_url, &bin_dir).await?;
        if actual != expected {
            // `download` is dropped here, deleting the temporary file.
            return Err(ToolError::ChecksumMismatch {
                file,
                checksums_url,
                expected,
                actual,
            });
        }

        let executable = match &spec.format {
            AssetFormat::Binary => download,
            AssetFormat::TarGz { member } => {
                let member = spec.expand(member, self.platform);
                let archive = file.clone();
                let dir = bin_dir.clone();
                tokio::task::spawn_blocking(move || {
                    extract_member(download, &archive, &member, &dir)
                })
                .await
                .map_err(|source| ToolError::Join {
                    archive: file.clone(),
                    source,
                })??
            }
        };
        std::fs::set_permissions(executable.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| ToolError::io("could not make executable", executable.path(), e))?;
        executable
            .persist(target)
            .map_err(|e| ToolError::io("could not install", target, e.error))?;
        tracing::info!(tool = %spec.name, path = %target.display(), sha256 = %actual, "installed {} {}", spec.name, spec.version);
        Ok(())
    }

    async fn fetch_text(&self, url: &str) -> Result<String, ToolError> {
        let response = self.get(url, self.timeouts.checksums).await?;
        response
            .text()
            .await
            .map_err(|e| self.request_error(url, self.timeouts.checksums, e))
    }

    async fn get(&self, url: &str, timeout: Duration) -> Result<reqwest::Response, ToolError> {
        let response = self
            .http
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.request_error(url, timeout, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ToolError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        Ok(response)
    }

    fn request_error(&self, url: &str, timeout: Duration, source: reqwest::Error) -> ToolError {
        if source.is_timeout() {
            ToolError::TimedOut {
                url: url.to_owned(),
                after: timeout,
            }
        } else {
            ToolError::Transport {
                url: url.to_owned(),
                source,
            }
        }
    }

    /// Streams `url` into a temporary file in `dir`, hashing on the way; returns the file and
    /// its sha256 (lowercase hex).
    async fn fetch_to_temp(
        &self,
        url: &str,
        dir: &Path,
    ) -> Result<(tempfile::NamedTempFile, String), ToolError> {
        let temp = tempfile::Builder::new()
            .prefix(".download-")
            .tempfile_in(dir)
            .map_err(|e| ToolError::io("could not create a temporary file in", dir, e))?;
        let std_file = temp
            .as_file()
            .try_clone()
            .map_err(|e| ToolError::io("could not open", temp.path(), e))?;
        let mut out = tokio::fs::File::from_std(std_file);
        let mut response = self.get(url, self.timeouts.download).await?;
        let total = response.content_length();
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let span = tracing::Span::current();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.request_error(url, self.timeouts.download, e))?
        {
            hasher.update(&chunk);
            out.write_all(&chunk)
                .await
                .map_err(|e| ToolError::io("could not write", temp.path(), e))?;
            received += chunk.len() as u64;
            span.record("bytes", received);
        }
        out.flush()
            .await
            .map_err(|e| ToolError::io("could not write", temp.path(), e))?;
        out.sync_all()
            .await
            .map_err(|e| ToolError::io("could not write", temp.path(), e))?;
        tracing::info!(url, bytes = received, expected_bytes = ?total, "downloaded");
        Ok((temp, hex::encode(hasher.finalize())))
    }
}

/// [`Tools::ensure`] with the default [`Tools`] (data in [`harmony_env::harmony_data_dir`],
/// installed copies looked up on `PATH`).
pub async fn ensure_tool(spec: &ToolSpec) -> Result<PathBuf, ToolError> {
    Tools::from_env()?.ensure(spec).await
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Copies `member` out of the gzip'd tarball into a new temporary file in `dir`.
fn extract_member(
    archive_file: tempfile::NamedTempFile,
    archive: &str,
    member: &str,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, ToolError> {
    let path = archive_file.path().to_owned();
    let reader =
        std::fs::File::open(&path).map_err(|e| ToolError::io("could not open", &path, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let entries = tar
        .entries()
        .map_err(|e| ToolError::io("could not read the archive", &path, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ToolError::io("could not read the archive", &path, e))?;
        let entry_path = entry
            .path()
            .map_err(|e| ToolError::io("could not read the archive", &path, e))?;
        let name = entry_path.to_string_lossy();
        if name.trim_start_matches("./") != member {
            continue;
        }
        let mut out = tempfile::Builder::new()
            .prefix(".extract-")
            .tempfile_in(dir)
            .map_err(|e| ToolError::io("could not create a temporary file in", dir, e))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| ToolError::io("could not extract from", &path, e))?;
        out.flush()
            .map_err(|e| ToolError::io("could not write", out.path(), e))?;
        return Ok(out);
    }
    Err(ToolError::MemberMissing {
        archive: archive.to_owned(),
        member: member.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_AMD64: Platform = Platform {
        os: Os::Linux,
        arch: Arch::Amd64,
    };

    #[test]
    fn release_urls_follow_the_published_layout() {
        let k3d = ToolSpec::k3d();
        assert_eq!(
            k3d.url(&k3d.asset, LINUX_AMD64),
            format!("{K3D_RELEASES_URL}/{K3D_VERSION}/k3d-linux-amd64")
        );
        assert_eq!(
            k3d.url(&k3d.checksums, LINUX_AMD64),
            format!("{K3D_RELEASES_URL}/{K3D_VERSION}/checksums.txt")
        );
        let helm = ToolSpec::helm().with_base_url("http://127.0.0.1:9/");
        let mac = Platform {
            os: Os::Darwin,
            arch: Arch::Arm64,
        };
        assert_eq!(
            helm.url(&helm.asset, mac),
            format!("http://127.0.0.1:9/helm-{HELM_VERSION}-darwin-arm64.tar.gz")
        );
        assert_eq!(
            helm.url(&helm.checksums, mac),
            format!("http://127.0.0.1:9/helm-{HELM_VERSION}-darwin-arm64.tar.gz.sha256sum")
        );
    }

    #[test]
    fn version_output_is_matched_exactly() {
        let k3d = ToolSpec::k3d();
        assert!(k3d.version_matches(&format!(
            "k3d version {K3D_VERSION}\nk3s version v1.31.5-k3s1 (default)\n"
        )));
        assert!(!k3d.version_matches("k3d version v5.8.30\n"));
        let helm = ToolSpec::helm();
        assert!(helm.version_matches(&format!("{HELM_VERSION}+g0123abc\n")));
        assert!(!helm.version_matches("v3.2.1+g0123abc\n"));
    }
}
