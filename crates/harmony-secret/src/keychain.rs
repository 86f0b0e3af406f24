//! Where a cached session keeps its tokens: the OS keychain or the 0600 session file itself. On
//! Linux the keychain is the kernel's keyutils, the user keyring (`@u`, the one `keyctl add user
//! NAME DATA @u` writes: shared by the user's processes, gone at reboot). Each of Harmony's keys
//! is readable by a possessor and by the user's own processes, including those whose session
//! keyring does not link `@u`, and by no one else; a key this process cannot read (one written
//! with the kernel's default permissions, seen from such a process) counts as absent. Elsewhere
//! the `keyring` crate's native store (macOS Keychain, Windows Credential Manager — not run on
//! this project's machines).
//!
//! With the keychain, the session file stays (0600, atomic, locked as before: listing, locking and
//! forgetting sessions work the same) but holds no secret: its `token` is empty and `secrets`
//! says `keychain`; the OpenBao token and the newest refresh token live in one keychain entry
//! (service `harmony`, account `session-` and a hash of the session file's path). Forgetting a
//! session deletes that entry whatever the store setting is now. The choice is
//! [`vars::HARMONY_SESSION_STORE`] (`keychain` or `file`); by default the keychain when one answers
//! (probed once per process), else the file.

use std::sync::OnceLock;

use harmony_env::vars;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::SecretError;

/// The keychain service name of Harmony's entries.
pub const KEYCHAIN_SERVICE: &str = "harmony";

/// Where session tokens are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// In the OS keychain; the session file holds no secret.
    Keychain,
    /// In the session file (0600).
    File,
}

impl SessionStore {
    /// The store [`vars::HARMONY_SESSION_STORE`] names, else the keychain when it answers, else
    /// the file. An unknown value is an error naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        match lookup(vars::HARMONY_SESSION_STORE)
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") => Ok(if keychain_available() {
                Self::Keychain
            } else {
                Self::File
            }),
            Some("keychain") => {
                if keychain_available() {
                    Ok(Self::Keychain)
                } else {
                    Err(SecretError::Config(format!(
                        "{}=keychain, but no OS keychain answers on this machine; set it to `file` \
                         (sessions in a 0600 file) or unset it",
                        vars::HARMONY_SESSION_STORE
                    )))
                }
            }
            Some("file") => Ok(Self::File),
            Some(other) => Err(SecretError::Config(format!(
                "{} must be `keychain` or `file`, not {other:?}",
                vars::HARMONY_SESSION_STORE
            ))),
        }
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, SecretError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `keychain` or `file`, as `harmony status` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keychain => "keychain",
            Self::File => "file",
        }
    }
}

/// Whether the OS keychain stores and returns an entry (probed once per process).
pub fn keychain_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let account = format!("probe-{}-{:08x}", std::process::id(), rand::random::<u32>());
        let ok = backend::set(&account, "probe").is_ok()
            && backend::get(&account).is_ok_and(|p| p.as_deref() == Some("probe"));
        let _ = backend::delete(&account);
        if !ok {
            tracing::debug!("no OS keychain answers; sessions are kept in 0600 files");
        }
        ok
    })
}

/// The secret half of a session, as one keychain entry.
#[derive(Serialize, Deserialize)]
struct Secrets {
    token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

fn keychain_error(action: &str, account: &str, reason: String) -> SecretError {
    // Platform errors describe the failure, never the secret.
    SecretError::Io {
        context: format!("{action} the keychain entry {KEYCHAIN_SERVICE}/{account}"),
        source: std::io::Error::other(reason),
    }
}

/// Store the tokens under `account`.
pub(crate) fn put(
    account: &str,
    token: &SecretString,
    refresh_token: Option<&SecretString>,
) -> Result<(), SecretError> {
    let secrets = zeroize::Zeroizing::new(
        serde_json::to_string(&Secrets {
            token: token.expose_secret().to_owned(),
            refresh_token: refresh_token.map(|t| t.expose_secret().to_owned()),
        })
        .unwrap_or_default(),
    );
    backend::set(account, &secrets).map_err(|e| keychain_error("write", account, e))
}

/// The tokens under `account`; `None` when there is no entry (or it is not a session's).
pub(crate) fn get(
    account: &str,
) -> Result<Option<(SecretString, Option<SecretString>)>, SecretError> {
    let Some(text) = backend::get(account).map_err(|e| keychain_error("read", account, e))? else {
        return Ok(None);
    };
    let text = zeroize::Zeroizing::new(text);
    match serde_json::from_str::<Secrets>(&text) {
        Ok(s) => Ok(Some((
            SecretString::from(s.token),
            s.refresh_token.map(SecretString::from),
        ))),
        Err(_) => {
            tracing::warn!(
                account,
                "keychain entry is not a Harmony session; ignoring it"
            );
            Ok(None)
        }
    }
}

/// Store `text` under `account` as it is (for entries that are not sessions).
pub(crate) fn put_text(account: &str, text: &str) -> Result<(), SecretError> {
    backend::set(account, text).map_err(|e| keychain_error("write", account, e))
}

/// The text under `account`, `None` when there is no entry.
pub(crate) fn get_text(account: &str) -> Result<Option<zeroize::Zeroizing<String>>, SecretError> {
    Ok(backend::get(account)
        .map_err(|e| keychain_error("read", account, e))?
        .map(zeroize::Zeroizing::new))
}

/// Delete the entry under `account` (absent is fine).
pub(crate) fn delete(account: &str) -> Result<(), SecretError> {
    backend::delete(account).map_err(|e| keychain_error("delete", account, e))
}

/// Linux: the kernel keyutils user keyring.
#[cfg(target_os = "linux")]
mod backend {
    use linux_keyutils::{
        KeyError, KeyPermissions, KeyPermissionsBuilder, KeyRing, KeyRingIdentifier, Permission,
    };

    /// What Harmony's keys allow: everything to a possessor, and view, read, write, search
    /// and setattr to the user (the kernel's default gives the user only view). Possession
    /// depends on the process's session keyring linking `@u`; a process of the same user
    /// whose session keyring does not (`keyctl session -`, some service managers) could not
    /// read its own sessions. Giving the user read is no weaker: any process of that uid can
    /// link `@u` into its own session keyring and possess the keys anyway. Group and others
    /// get nothing.
    fn permissions() -> KeyPermissions {
        KeyPermissionsBuilder::builder()
            .posessor(Permission::ALL)
            .user(
                Permission::VIEW
                    | Permission::READ
                    | Permission::WRITE
                    | Permission::SEARCH
                    | Permission::SETATTR,
            )
            .build()
    }

    fn user_keyring() -> Result<KeyRing, String> {
        KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(|e| format!("{e:?}"))
    }

    fn description(account: &str) -> String {
        format!("{}:{account}", super::KEYCHAIN_SERVICE)
    }

    pub(super) fn set(account: &str, secret: &str) -> Result<(), String> {
        let ring = user_keyring()?;
        let description = description(account);
        // An existing key (perhaps written with the kernel's default permissions) gets ours
        // first: a process that may not change it (it does not possess it) leaves it alone
        // rather than replacing a payload other processes read.
        if let Ok(existing) = ring.search(&description) {
            existing.set_perms(permissions()).map_err(|e| {
                format!("{e:?} (the entry exists and this process may not change it)")
            })?;
        }
        // add_key replaces the payload of an existing key with the same description.
        let key = ring
            .add_key(&description, secret.as_bytes())
            .map_err(|e| format!("{e:?}"))?;
        key.set_perms(permissions()).map_err(|e| format!("{e:?}"))
    }

    pub(super) fn get(account: &str) -> Result<Option<String>, String> {
        // Written with the kernel's default permissions (user: view only) and not possessed
        // here: absent for this process, not an error.
        let unreadable = || {
            tracing::warn!(
                account,
                "the keychain entry cannot be read from this process: its session keyring does \
                 not link the user keyring (@u) and the entry was written without user read \
                 permission; treating it as absent (a new sign-in or key replaces it where it may)"
            );
            Ok(None)
        };
        let key = match user_keyring()?.search(&description(account)) {
            Ok(key) => key,
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => {
                return Ok(None);
            }
            Err(KeyError::AccessDenied) => return unreadable(),
            Err(e) => return Err(format!("{e:?}")),
        };
        let bytes = match key.read_to_vec() {
            Ok(bytes) => zeroize::Zeroizing::new(bytes),
            Err(KeyError::AccessDenied) => return unreadable(),
            Err(e) => return Err(format!("{e:?}")),
        };
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| "the entry is not UTF-8".to_owned())
    }

    pub(super) fn delete(account: &str) -> Result<(), String> {
        match user_keyring()?.search(&description(account)) {
            Ok(key) => key.invalidate().map_err(|e| format!("{e:?}")),
            Err(KeyError::KeyDoesNotExist | KeyError::KeyExpired | KeyError::KeyRevoked) => Ok(()),
            Err(e) => Err(format!("{e:?}")),
        }
    }
}

/// Elsewhere: the `keyring` crate's native store.
#[cfg(not(target_os = "linux"))]
mod backend {
    fn entry(account: &str) -> Result<keyring::Entry, String> {
        keyring::Entry::new(super::KEYCHAIN_SERVICE, account).map_err(|e| e.to_string())
    }

    pub(super) fn set(account: &str, secret: &str) -> Result<(), String> {
        entry(account)?
            .set_password(secret)
            .map_err(|e| e.to_string())
    }

    pub(super) fn get(account: &str) -> Result<Option<String>, String> {
        match entry(account)?.get_password() {
            Ok(text) => Ok(Some(text)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    pub(super) fn delete(account: &str) -> Result<(), String> {
        match entry(account)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use linux_keyutils::{KeyRing, KeyRingIdentifier};

    use super::*;

    const CHILD_ACCOUNT: &str = "HARMONY_TEST_KEYRING_CHILD_ACCOUNT";

    /// A process of the same user whose session keyring does not link the user keyring (here:
    /// a child that joins a new anonymous session keyring, as `keyctl session -` does) does not
    /// possess `@u`'s keys. It reads Harmony's entries all the same (real Linux keyutils).
    #[test]
    fn a_process_whose_session_keyring_does_not_link_the_user_keyring_reads_the_entry() {
        if let Ok(account) = std::env::var(CHILD_ACCOUNT) {
            // No session keyring yet: this creates and joins a new, empty anonymous one.
            let session =
                KeyRing::from_special_id(KeyRingIdentifier::Session, true).expect("session");
            let user = KeyRing::from_special_id(KeyRingIdentifier::User, false).expect("user");
            let links = session.get_links(64).expect("links");
            assert!(
                !links.contains(&user),
                "this child's session keyring links @u: run the test from a process without one"
            );
            match get_text(&account) {
                Ok(Some(text)) if text.as_str() == "probe-value" => println!("CHILD-READ-OK"),
                Ok(Some(_)) => println!("CHILD-READ-OTHER"),
                Ok(None) => println!("CHILD-READ-NONE"),
                Err(e) => println!("CHILD-READ-ERROR {e}"),
            }
            // An entry with the kernel's default permissions is absent here, not an error.
            match get_text(&format!("{account}-old")) {
                Ok(None) => println!("CHILD-OLD-NONE"),
                Ok(Some(_)) => println!("CHILD-OLD-READ"),
                Err(e) => println!("CHILD-OLD-ERROR {e}"),
            }
            return;
        }
        assert!(keychain_available(), "this test needs Linux keyutils");
        let account = format!("test-perm-{:08x}", rand::random::<u32>());
        put_text(&account, "probe-value").expect("put");
        let old = format!("{account}-old");
        put_text(&old, "old-value").expect("put");
        KeyRing::from_special_id(KeyRingIdentifier::User, false)
            .and_then(|ring| ring.search(&format!("{KEYCHAIN_SERVICE}:{old}")))
            .and_then(|key| key.set_perms(linux_keyutils::KeyPermissions::from_u32(0x3f01_0000)))
            .expect("the kernel's default permissions");
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args([
                "keychain::tests::a_process_whose_session_keyring_does_not_link_the_user_keyring_reads_the_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ACCOUNT, &account)
            .output()
            .expect("child");
        delete(&account).expect("delete");
        delete(&old).expect("delete");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("CHILD-READ-OK"), "{text}");
        assert!(text.contains("CHILD-OLD-NONE"), "{text}");
    }
}
