//! Secrets for Harmony: a [`SecretStore`] of JSON documents, and [`OpenbaoSecretStore`], its
//! implementation on OpenBao's KV v2 engine.
//!
//! Design choices:
//! - **Nothing is lost.** Every write is check-and-set by default ([`WriteMode::Cas`]): a
//!   concurrent change makes the write fail with [`SecretError::Conflict`], carrying the version
//!   the writer expected and the one it found, instead of silently overwriting a teammate's edit.
//! - **Errors say what happened and where**: sealed, unreachable (with the URL), permission
//!   denied (with the path and OpenBao's own message), not found, conflict, bad response.
//! - **Secrets stay secret**: tokens and passwords are [`secrecy::SecretString`]s; no `Debug`,
//!   error or log line carries one.
//! - **Sign in once.** [`OpenbaoSecretStore::connect`] runs an ordered auth chain ([`AuthStep`]:
//!   explicit token → cached session → userpass → SSO); a token from a login is cached in
//!   [`session`] (0600 file, atomic, locked read-modify-write) and reused, renewed when close to
//!   expiry. A token OpenBao stops accepting mid-run triggers one new sign-in, not a loop.
//! - **One OpenBao client**: [`OpenbaoClient`] (timeouts, TLS from [`TlsSettings`], the
//!   namespace header, redirects off, a sensitive token header, capped and scrubbed bodies)
//!   turns every OpenBao answer into a [`SecretError`]; the store, the auth chain, the SSO
//!   id_token exchange and the deploy's bootstrap all go through it.
//! - **Refresh once.** A silent SSO refresh holds the session file's lock from reading the
//!   refresh token to storing its successor, so concurrent processes never present the same
//!   refresh token twice (Zitadel then rejects the second use; providers with reuse detection
//!   revoke the whole grant).
//!
//! ```no_run
//! use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode};
//! # async fn demo() -> Result<(), harmony_secret::SecretError> {
//! // OPENBAO_URL plus OPENBAO_TOKEN, or OPENBAO_USERNAME / OPENBAO_PASSWORD.
//! let store = OpenbaoSecretStore::connect(OpenbaoSettings::from_env()?).await?;
//! let doc = serde_json::json!({"db_url": "postgres://db"});
//! store.put("my-app", &doc, WriteMode::Cas(None)).await?;
//! let read = store.get("my-app").await?.expect("just written");
//! assert_eq!(read.value, doc);
//! # Ok(()) }
//! ```

pub mod auth;
pub mod backup;
pub mod ci;
pub mod client;
mod error;
pub mod keychain;
mod lookup;
pub mod offline;
pub mod oidc;
mod openbao;
mod path;
mod private_file;
pub mod redact;
pub mod session;
mod settings;
mod steps;
mod store;
mod tls;

pub use auth::{AuthMethodUsed, AuthStep};
pub use client::{ClientOptions, OpenbaoClient};
pub use error::{AttemptFailure, AuthAttempt, AuthError, SecretError};
pub use openbao::OpenbaoSecretStore;
pub use settings::{OpenbaoSettings, UserpassLogin};
pub use store::{SecretStore, Timed, Versioned, WriteMode};
pub use tls::TlsSettings;
