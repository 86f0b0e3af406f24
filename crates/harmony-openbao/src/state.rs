//! Local state of a bootstrapped OpenBao: its unseal keys + root token, and the generated
//! userpass password.
//!
//! Both are secrets, so both files are written the same way: into a `0700` directory, through a
//! `0600` temporary file in that same directory that is flushed and then renamed over the target,
//! so a crash never leaves a half-written keys file (losing the only copy of unseal keys would
//! make the server's data unrecoverable). File I/O runs on the blocking pool.

use std::io::Write;
use std::path::{Path, PathBuf};

use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::OpenbaoError;

/// The unseal keys and root token returned by `sys/init`. `Debug` shows neither.
#[derive(Clone)]
pub struct InitKeys {
    /// Base64 unseal keys, as many as the server's secret shares.
    pub keys_base64: Vec<SecretString>,
    /// The initial root token.
    pub root_token: SecretString,
}

impl std::fmt::Debug for InitKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitKeys")
            .field(
                "keys_base64",
                &format_args!("[{} redacted]", self.keys_base64.len()),
            )
            .field("root_token", &"[redacted]")
            .finish()
    }
}

/// On-disk form of [`InitKeys`]; `url` says which server the keys belong to.
#[derive(Deserialize)]
struct KeysFile {
    url: Option<String>,
    keys_base64: Vec<SecretString>,
    root_token: SecretString,
}

/// On-disk form of the userpass credentials.
#[derive(Deserialize)]
struct PasswordFile {
    username: String,
    password: SecretString,
}

/// Where one OpenBao's local state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// State in an explicit directory (tests, or a user's choice).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// `harmony_data_dir()/openbao/<cluster>` for the OpenBao installed in a cluster.
    pub fn for_cluster(cluster: &str) -> Result<Self, OpenbaoError> {
        let name: String = cluster
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Ok(Self(
            harmony_env::harmony_data_dir()?
                .join("openbao")
                .join(format!("cluster-{name}")),
        ))
    }

    /// `harmony_data_dir()/openbao/url-<hash>` for an existing server the user points at: the
    /// hash keeps two servers apart without putting a URL's characters in a file name.
    pub fn for_url(url: &url::Url) -> Result<Self, OpenbaoError> {
        use sha2::Digest;
        let canonical = url.as_str().trim_end_matches('/');
        let digest = sha2::Sha256::digest(canonical.as_bytes());
        let short = hex::encode(&digest[..8]);
        Ok(Self(
            harmony_env::harmony_data_dir()?
                .join("openbao")
                .join(format!("url-{short}")),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The file holding the unseal keys and root token.
    pub fn keys_file(&self) -> PathBuf {
        self.0.join("init-keys.json")
    }

    /// The file holding the generated password of a userpass user.
    pub fn userpass_file(&self, username: &str) -> PathBuf {
        self.0.join(format!("userpass-{username}.json"))
    }

    /// The saved password of a userpass user created by the bootstrap; `None` when there is none.
    pub async fn userpass_password(
        &self,
        username: &str,
    ) -> Result<Option<SecretString>, OpenbaoError> {
        load_password(self.userpass_file(username), username.to_owned()).await
    }

    /// The file holding the `harmony-admin` token that replaces the root token once it is revoked.
    pub fn admin_token_file(&self) -> PathBuf {
        self.0.join("admin-token.json")
    }

    /// The saved `harmony-admin` token; `None` when there is none.
    pub async fn admin_token(&self) -> Result<Option<SecretString>, OpenbaoError> {
        load_password(self.admin_token_file(), ADMIN_TOKEN_ENTRY.to_owned()).await
    }

    /// The file holding the `harmony-recovery` token (root token generation with the key shares).
    pub fn recovery_token_file(&self) -> PathBuf {
        self.0.join("recovery-token.json")
    }

    /// The saved `harmony-recovery` token; `None` when there is none.
    pub async fn recovery_token(&self) -> Result<Option<SecretString>, OpenbaoError> {
        load_password(self.recovery_token_file(), RECOVERY_TOKEN_ENTRY.to_owned()).await
    }

    /// The saved root token (from the keys file written at init); `None` when there is none.
    pub async fn root_token(&self) -> Result<Option<SecretString>, OpenbaoError> {
        Ok(load_keys(self.keys_file())
            .await?
            .map(|keys| keys.root_token))
    }
}

/// Reads the keys file; `None` when it does not exist.
pub(crate) async fn load_keys(path: PathBuf) -> Result<Option<InitKeys>, OpenbaoError> {
    blocking("read the OpenBao keys file", move || {
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let file: KeysFile = harmony_secret::redact::from_json_slice(&bytes).map_err(|source| {
            OpenbaoError::StateCorrupt {
                path: path.clone(),
                source,
            }
        })?;
        tracing::debug!(path = %path.display(), for_url = ?file.url, "loaded OpenBao keys file");
        Ok(Some(InitKeys {
            keys_base64: file.keys_base64,
            root_token: file.root_token,
        }))
    })
    .await
}

/// Writes the keys file (atomic, 0600).
pub(crate) async fn save_keys(
    path: PathBuf,
    url: String,
    keys: &InitKeys,
) -> Result<(), OpenbaoError> {
    let json = serde_json::json!({
        "url": url,
        "keys_base64": keys.keys_base64.iter().map(|k| k.expose_secret()).collect::<Vec<_>>(),
        "root_token": keys.root_token.expose_secret(),
    });
    let bytes = secret_json_bytes(json);
    blocking("write the OpenBao keys file", move || {
        write_secret_file(&path, &bytes)
    })
    .await
}

/// Reads the stored password of `username`; `None` when there is none (or it is for another user).
pub(crate) async fn load_password(
    path: PathBuf,
    username: String,
) -> Result<Option<SecretString>, OpenbaoError> {
    blocking("read the userpass password file", move || {
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        let file: PasswordFile =
            harmony_secret::redact::from_json_slice(&bytes).map_err(|source| {
                OpenbaoError::StateCorrupt {
                    path: path.clone(),
                    source,
                }
            })?;
        Ok((file.username == username).then_some(file.password))
    })
    .await
}

/// The name under which the admin token file stores its token (same format as a password file).
pub(crate) const ADMIN_TOKEN_ENTRY: &str = "harmony-admin-token";
/// The same for the recovery token file.
pub(crate) const RECOVERY_TOKEN_ENTRY: &str = "harmony-recovery-token";

/// Writes the password file (atomic, 0600).
pub(crate) async fn save_password(
    path: PathBuf,
    username: &str,
    password: &SecretString,
) -> Result<(), OpenbaoError> {
    let json = serde_json::json!({
        "username": username,
        "password": password.expose_secret(),
    });
    let bytes = secret_json_bytes(json);
    blocking("write the userpass password file", move || {
        write_secret_file(&path, &bytes)
    })
    .await
}

/// Creates `dir` (0700) and proves a file can be written there, before `sys/init` hands out
/// keys that would otherwise have nowhere to go.
pub(crate) async fn ensure_writable_dir(dir: PathBuf) -> Result<(), OpenbaoError> {
    blocking("check the OpenBao state directory", move || {
        create_private_dir(&dir).map_err(|source| OpenbaoError::StateIo {
            context: "cannot create the directory",
            path: dir.clone(),
            source,
        })?;
        tempfile::Builder::new()
            .prefix(".harmony-probe-")
            .tempfile_in(&dir)
            .map(drop)
            .map_err(|source| OpenbaoError::StateIo {
                context: "cannot write into",
                path: dir,
                source,
            })
    })
    .await
}

/// A fresh random password: 32 alphanumerics (~190 bits).
pub(crate) fn generate_password() -> SecretString {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    let s: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    SecretString::from(s)
}

fn secret_json_bytes(mut json: serde_json::Value) -> Zeroizing<Vec<u8>> {
    // Serialising a `Value` into a Vec cannot fail (string keys, no custom serialisers).
    let bytes = Zeroizing::new(serde_json::to_vec_pretty(&json).unwrap_or_default());
    wipe_strings(&mut json);
    bytes
}

/// Overwrites the secret strings left in a JSON tree before it is dropped.
fn wipe_strings(v: &mut serde_json::Value) {
    use secrecy::zeroize::Zeroize;
    match v {
        serde_json::Value::String(s) => s.zeroize(),
        serde_json::Value::Array(a) => a.iter_mut().for_each(wipe_strings),
        serde_json::Value::Object(o) => o.values_mut().for_each(wipe_strings),
        _ => {}
    }
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> Result<T, OpenbaoError> + Send + 'static,
) -> Result<T, OpenbaoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|source| OpenbaoError::Task { what, source })?
}

fn read_if_exists(path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, OpenbaoError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(Zeroizing::new(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(OpenbaoError::StateIo {
            context: "cannot read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Atomic 0600 write: temp file in the same directory, flushed, renamed over `path`.
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), OpenbaoError> {
    let io = |context: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| OpenbaoError::StateIo {
            context,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io("cannot create the directory", dir))?;
    // tempfile creates the file with mode 0600 on Unix; it is set again below so the guarantee
    // does not rest on a library default.
    let mut tmp = tempfile::Builder::new()
        .prefix(".harmony-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io("cannot create a temporary file in", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io("cannot restrict the permissions of", tmp.path()))?;
    }
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io("cannot write", tmp.path()))?;
    tmp.persist(path).map_err(|e| OpenbaoError::StateIo {
        context: "cannot move the new file into place at",
        path: path.to_owned(),
        source: e.error,
    })?;
    // Make the rename itself durable; failure here only weakens crash safety, so it is logged.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not fsync the state directory");
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_round_trip_with_0600_and_redacted_debug() {
        let dir = tempfile::tempdir().expect("test value");
        let state = StateDir::new(dir.path().join("nested/state"));
        let keys = InitKeys {
            keys_base64: vec![SecretString::from("a2V5LW9uZQ==")],
            root_token: SecretString::from("s.root-token-value"),
        };
        save_keys(state.keys_file(), "http://x".into(), &keys)
            .await
            .expect("test value");
        let back = load_keys(state.keys_file())
            .await
            .expect("test value")
            .expect("test value");
        assert_eq!(back.keys_base64[0].expose_secret(), "a2V5LW9uZQ==");
        assert_eq!(back.root_token.expose_secret(), "s.root-token-value");
        let dbg = format!("{back:?}");
        assert!(
            !dbg.contains("a2V5LW9uZQ==") && !dbg.contains("root-token-value"),
            "{dbg}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.keys_file())
                .expect("test value")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(state.path())
                .expect("test value")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(state.path())
            .expect("test value")
            .map(|e| e.expect("test value").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("init-keys.json")]);
    }

    #[tokio::test]
    async fn missing_file_is_none_and_corrupt_file_is_an_error_without_content() {
        let dir = tempfile::tempdir().expect("test value");
        let state = StateDir::new(dir.path());
        assert!(
            load_keys(state.keys_file())
                .await
                .expect("test value")
                .is_none()
        );
        std::fs::write(state.keys_file(), b"{\"root_token\": \"s.leaky\"").expect("test value");
        let err = load_keys(state.keys_file())
            .await
            .expect_err("test expects an error");
        assert!(matches!(err, OpenbaoError::StateCorrupt { .. }), "{err}");
        assert!(!err.to_string().contains("s.leaky"), "{err}");
    }

    /// Regression (review finding 1): a wrong-typed field made serde_json quote the value, an
    /// unseal key or password, in the error that the binary prints.
    #[tokio::test]
    async fn wrong_typed_fields_are_reported_by_path_without_their_value() {
        let dir = tempfile::tempdir().expect("test value");
        let state = StateDir::new(dir.path());
        std::fs::write(
            state.keys_file(),
            br#"{"url": "http://x", "keys_base64": "a2V5LXNlY3JldA==", "root_token": "s.root-leak"}"#,
        )
        .expect("test value");
        let err = load_keys(state.keys_file())
            .await
            .expect_err("keys_base64 must be a list");
        let text = format!("{err} / {err:?}");
        assert!(!text.contains("a2V5LXNlY3JldA=="), "{text}");
        assert!(!text.contains("root-leak"), "{text}");
        assert!(text.contains("keys_base64"), "the field is named: {text}");
        std::fs::write(
            state.userpass_file("harmony"),
            br#"{"username": "harmony", "password": ["pw-leak-123"]}"#,
        )
        .expect("test value");
        let err = load_password(state.userpass_file("harmony"), "harmony".into())
            .await
            .expect_err("password must be a string");
        let text = format!("{err} / {err:?}");
        assert!(!text.contains("pw-leak-123"), "{text}");
        assert!(text.contains("password"), "{text}");
    }

    #[tokio::test]
    async fn password_is_bound_to_its_username() {
        let dir = tempfile::tempdir().expect("test value");
        let state = StateDir::new(dir.path());
        let pw = generate_password();
        assert_eq!(pw.expose_secret().len(), 32);
        save_password(state.userpass_file("harmony"), "harmony", &pw)
            .await
            .expect("test value");
        let back = load_password(state.userpass_file("harmony"), "harmony".into())
            .await
            .expect("test value")
            .expect("test value");
        assert_eq!(back.expose_secret(), pw.expose_secret());
        assert!(
            load_password(state.userpass_file("harmony"), "other".into())
                .await
                .expect("test value")
                .is_none()
        );
    }

    #[test]
    fn url_state_dirs_differ_per_server_and_ignore_trailing_slash() {
        // Only the last component is compared, so the data dir itself does not matter.
        let a = StateDir::for_url(&url::Url::parse("http://127.0.0.1:8200").expect("test value"))
            .expect("test value");
        let b = StateDir::for_url(&url::Url::parse("http://127.0.0.1:8200/").expect("test value"))
            .expect("test value");
        let c = StateDir::for_url(&url::Url::parse("http://127.0.0.1:8201").expect("test value"))
            .expect("test value");
        assert_eq!(a, b);
        assert_ne!(a, c);
        let cl = StateDir::for_cluster("harmony/../x").expect("test value");
        assert!(
            cl.path().ends_with("openbao/cluster-harmony____x"),
            "{cl:?}"
        );
    }
}
