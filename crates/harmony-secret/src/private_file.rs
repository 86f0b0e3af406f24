//! Files that hold secrets (sessions, the offline cache): a 0700 directory, 0600 files, replaced
//! atomically (a temporary file in the same directory, then a rename), so a reader sees the old or
//! the new content, never half of it. A temporary file a crash left behind (`.NAME.tmp-PID-HEX`,
//! plaintext where the file holds values) is removed by the next write in its directory once it
//! is over [`LEFTOVER_AGE`] old: younger, it may be another process's write in flight. Locks are
//! opened without following symlinks.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::SecretError;

const LOCK_POLL: Duration = Duration::from_millis(20);
/// A temporary file older than this is a crash's leftover: a write takes milliseconds.
pub(crate) const LEFTOVER_AGE: Duration = Duration::from_secs(60);

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
    remove_leftovers(dir);
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

/// Whether `name` is one of [`write_private`]'s temporary files: `.NAME.tmp-PID-HEX8`.
fn is_our_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let Some((_, tail)) = rest.rsplit_once(".tmp-") else {
        return false;
    };
    let Some((pid, hex)) = tail.split_once('-') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && hex.len() == 8
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Remove the temporary files a crash left in `dir` (ours by name, over [`LEFTOVER_AGE`] old).
/// Best effort: a leftover that cannot be removed now is tried again at the next write.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(is_our_temp_name) {
            continue;
        }
        // DirEntry::metadata does not follow symlinks: a leftover is a regular file.
        let old = entry
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|m| m.modified().ok());
        let old =
            old.is_some_and(|modified| modified.elapsed().is_ok_and(|age| age > LEFTOVER_AGE));
        if old {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::debug!(path = %entry.path().display(), "removed a temporary file a crash left behind")
                }
                Err(e) => {
                    tracing::debug!(path = %entry.path().display(), error = %e, "could not remove a leftover temporary file")
                }
            }
        }
    }
}

/// Open (creating) the lock file at `path`, 0600, never through a symlink.
#[cfg(unix)]
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

#[cfg(not(unix))]
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

/// An exclusive lock on `path`, released when the returned file is dropped (or its process
/// exits). Polls for at most `wait`.
pub(crate) fn acquire_lock(path: &Path, what: &str, wait: Duration) -> Result<File, SecretError> {
    let io = |context: &str| {
        let context = format!("{context} {}", path.display());
        move |source| SecretError::Io { context, source }
    };
    // O_NOFOLLOW: a symlink planted where the lock goes is an error (ELOOP), never followed.
    let file = open_lock_file(path).map_err(io(&format!("open {what}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A crash between creating the temporary file and renaming it leaves `.NAME.tmp-PID-HEX`
    /// (plaintext in file mode): the next write in that directory removes such leftovers once
    /// they are over a minute old, and leaves a fresh one (another process's write in flight)
    /// and every file not named like ours alone.
    #[test]
    fn crash_leftovers_are_removed_by_the_next_write() {
        let dir = tempfile::tempdir().expect("test step");
        let old = dir.path().join(".abc.json.tmp-4242-0badf00d");
        let fresh = dir.path().join(".abc.json.tmp-4243-deadbeef");
        let not_ours = dir.path().join(".abc.json.tmp-notapid-xyz");
        let plain = dir.path().join("notes.txt");
        for path in [&old, &fresh, &not_ours, &plain] {
            std::fs::write(path, b"{\"password\":\"hunter2-leftover\"}").expect("test step");
        }
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        for path in [&old, &not_ours, &plain] {
            File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(an_hour_ago))
                .expect("test step");
        }
        write_private(&dir.path().join("abc.json"), b"{}", Durability::Lazy).expect("test step");
        assert!(!old.exists(), "an old leftover is removed");
        assert!(fresh.exists(), "a write in flight is left alone");
        assert!(
            not_ours.exists() && plain.exists(),
            "other files are left alone"
        );
        assert_eq!(
            std::fs::read(dir.path().join("abc.json")).expect("test step"),
            b"{}"
        );
    }

    /// A lock is opened without following a symlink planted where it goes.
    #[cfg(unix)]
    #[test]
    fn a_symlink_where_a_lock_goes_is_not_followed() {
        let dir = tempfile::tempdir().expect("test step");
        let target = dir.path().join("elsewhere");
        let lock = dir.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &lock).expect("test step");
        let err = acquire_lock(&lock, "test lock", Duration::ZERO).expect_err("must refuse");
        assert!(err.to_string().contains("test lock"), "{err}");
        assert!(!target.exists(), "the symlink was followed");
    }
}
