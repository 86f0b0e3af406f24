//! Files that hold secrets (sessions, the offline cache): a 0700 directory, 0600 files, replaced
//! atomically (a temporary file in the same directory, then a rename), so a reader sees the old or
//! the new content, never half of it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::SecretError;

const LOCK_POLL: Duration = Duration::from_millis(20);

/// Whether a write must survive a crash right after it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync the file and its directory before returning (sessions: losing one loses a sign-in).
    Flushed,
    /// Leave flushing to the OS (caches: losing one costs one more online read).
    Lazy,
}

fn io(context: &str, path: &Path) -> impl FnOnce(std::io::Error) -> SecretError {
    let context = format!("{context} {}", path.display());
    move |source| SecretError::Io { context, source }
}

/// Create `dir` (and its parents) readable by its owner only; tighten it when it exists looser.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), SecretError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io("create private directory", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)
            .map_err(io("inspect private directory", dir))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("restrict to its owner the directory", dir))?;
        }
    }
    Ok(())
}

/// Replace `path` with `bytes` atomically, as a 0600 file.
pub(crate) fn write_private(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), SecretError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:08x}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&tmp)
            .map_err(io("create temporary file", &tmp))?;
        file.write_all(bytes)
            .map_err(io("write temporary file", &tmp))?;
        if durability == Durability::Flushed {
            file.sync_all().map_err(io("flush temporary file", &tmp))?;
        }
        std::fs::rename(&tmp, path).map_err(io("replace", path))?;
        // The rename itself is only durable once the directory is flushed.
        if durability == Durability::Flushed
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An exclusive lock on `path`, released when the returned file is dropped (or its process
/// exits). Polls for at most `wait`.
pub(crate) fn acquire_lock(path: &Path, what: &str, wait: Duration) -> Result<File, SecretError> {
    let io = |context: &str| {
        let context = format!("{context} {}", path.display());
        move |source| SecretError::Io { context, source }
    };
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path).map_err(io(&format!("open {what}")))?;
    let deadline = Instant::now() + wait;
    let mut logged = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if Instant::now() >= deadline {
                    // The OS drops the lock of a process that exits, so the holder is alive:
                    // deleting the lock file would only let two processes in at once.
                    return Err(SecretError::Io {
                        context: format!(
                            "another Harmony process has held the {what} {} for over {} s \
                             (probably a sign-in waiting on a slow network); retry once it has \
                             finished, or stop it",
                            path.display(),
                            wait.as_secs()
                        ),
                        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                    });
                }
                if !logged {
                    tracing::info!(path = %path.display(), max_wait_secs = wait.as_secs(), "waiting for another Harmony process to release the {what}");
                    logged = true;
                }
                std::thread::sleep(LOCK_POLL);
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(SecretError::Io {
                    context: format!("lock {}", path.display()),
                    source,
                });
            }
        }
    }
}

pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, SecretError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SecretError> + Send + 'static,
{
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    tokio::task::spawn_blocking(move || tracing::dispatcher::with_default(&dispatch, work))
        .await
        .map_err(|e| SecretError::Io {
            context: "file worker".to_owned(),
            source: std::io::Error::other(e),
        })?
}
