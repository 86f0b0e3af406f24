//! The storage abstraction every config source and CLI mode is written against.

use std::future::Future;

use serde_json::Value;

use crate::SecretError;

/// A document together with the version it was read at.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The document.
    pub value: T,
    /// The store's version of it (KV v2: `metadata.version`, starting at 1).
    pub version: u64,
}

/// A document with its version and the server's time of that version (RFC 3339, UTC), if the
/// store keeps one.
pub type Timed = (Versioned<Value>, Option<String>);

/// How a write treats what is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Check-and-set: `None` means "must not exist yet" (as [`SecretStore::get`] sees it: never
    /// written, or its latest version deleted); `Some(v)` means "must still be at version `v`".
    /// A mismatch is [`SecretError::Conflict`]. This is the default.
    Cas(Option<u64>),
    /// Write whatever is there. Only for callers that have decided losing a concurrent edit is fine.
    Overwrite,
}

impl Default for WriteMode {
    fn default() -> Self {
        Self::Cas(None)
    }
}

/// A store of JSON documents addressed by relative paths such as `"my-app"` or `"team/db"`.
///
/// Paths are relative to the store's own prefix (for OpenBao: `<mount>/data/<prefix>/<path>`).
pub trait SecretStore: Send + Sync {
    /// Read a document. `Ok(None)` when nothing is stored at `path` (or it was deleted).
    fn get(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Value>>, SecretError>> + Send;

    /// [`SecretStore::get`] with the server's time of the version read (RFC 3339, UTC; `None`
    /// when the store keeps no time): what shows that an author record was created after the
    /// version it names.
    fn get_timed(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Timed>, SecretError>> + Send {
        async move { Ok(self.get(path).await?.map(|doc| (doc, None))) }
    }

    /// Write a document; returns the new version.
    fn put(
        &self,
        path: &str,
        value: &Value,
        mode: WriteMode,
    ) -> impl Future<Output = Result<u64, SecretError>> + Send;

    /// Delete a document and all its versions. Deleting what is absent succeeds.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), SecretError>> + Send;

    /// The names directly under `prefix` (sub-folders end in `/`). Empty when there are none.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, SecretError>> + Send;

    /// A human-readable location of `path`, for messages (e.g. `secret/data/harmony/my-app`).
    fn describe(&self, path: &str) -> String;

    /// Whose writes these are (the OpenBao entity of the store's token), for the author
    /// records of config versions. `Ok(None)`: the store has no notion of identity.
    fn identity(
        &self,
    ) -> impl Future<Output = Result<Option<crate::client::TokenIdentity>, SecretError>> + Send
    {
        async { Ok(None) }
    }
}

/// A shared store is a store: several config managers (or tasks) can use one authenticated
/// connection.
impl<S: SecretStore + ?Sized> SecretStore for std::sync::Arc<S> {
    fn get(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Value>>, SecretError>> + Send {
        (**self).get(path)
    }

    fn get_timed(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<Timed>, SecretError>> + Send {
        (**self).get_timed(path)
    }

    fn put(
        &self,
        path: &str,
        value: &Value,
        mode: WriteMode,
    ) -> impl Future<Output = Result<u64, SecretError>> + Send {
        (**self).put(path, value, mode)
    }

    fn delete(&self, path: &str) -> impl Future<Output = Result<(), SecretError>> + Send {
        (**self).delete(path)
    }

    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, SecretError>> + Send {
        (**self).list(prefix)
    }

    fn describe(&self, path: &str) -> String {
        (**self).describe(path)
    }

    fn identity(
        &self,
    ) -> impl Future<Output = Result<Option<crate::client::TokenIdentity>, SecretError>> + Send
    {
        (**self).identity()
    }
}
