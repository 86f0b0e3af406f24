//! Shared test fixtures: a demo config type and an in-memory store with KV v2's check-and-set.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use harmony_config::Config;
use harmony_secret::{SecretError, SecretStore, Versioned, WriteMode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The database section of [`DemoApp`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Database {
    /// Host name of the PostgreSQL server.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port of the PostgreSQL server.
    pub port: u16,
    /// Password of the application's database user.
    #[schemars(extend("x-secret" = true))]
    pub password: String,
}

fn default_host() -> String {
    "localhost".into()
}

/// How the demo app logs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Debug,
    /// The usual.
    Info,
}

/// The demo config used throughout the tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DemoApp {
    /// Connection settings.
    pub database: Database,
    /// Name shown in greetings.
    pub greeting: String,
    /// How chatty the app is.
    pub log_level: LogLevel,
    /// Whether new features are on.
    #[serde(default)]
    pub beta: bool,
    /// API token for the upstream service.
    #[schemars(extend("writeOnly" = true))]
    pub api_token: String,
}

impl Config for DemoApp {
    const KEY: &'static str = "demo-app";
}

pub fn demo() -> DemoApp {
    DemoApp {
        database: Database {
            host: "db.internal".into(),
            port: 5432,
            password: "pg-S3cret-pw".into(),
        },
        greeting: "hello".into(),
        log_level: LogLevel::Info,
        beta: false,
        api_token: "tok-S3cret-api".into(),
    }
}

type Hook = Box<dyn FnOnce(&mut HashMap<String, (Value, u64)>) + Send>;

/// Documents in memory, with exactly KV v2's versioning: the first write is version 1,
/// `Cas(None)` fails when present, `Cas(Some(v))` fails unless the current version is `v`.
#[derive(Default)]
pub struct MemoryStore {
    docs: Mutex<HashMap<String, (Value, u64)>>,
    before_next_put: Mutex<Option<Hook>>,
    puts: Mutex<Vec<(String, WriteMode)>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Run `hook` on the documents right before the next `put` (to simulate a teammate's write
    /// landing between our read and our write).
    pub fn before_next_put(
        &self,
        hook: impl FnOnce(&mut HashMap<String, (Value, u64)>) + Send + 'static,
    ) {
        *self.before_next_put.lock().expect("lock") = Some(Box::new(hook));
    }

    pub fn doc(&self, path: &str) -> Option<(Value, u64)> {
        self.docs.lock().expect("lock").get(path).cloned()
    }

    pub fn insert(&self, path: &str, value: Value) -> u64 {
        let mut docs = self.docs.lock().expect("lock");
        let version = docs.get(path).map_or(1, |(_, v)| v + 1);
        docs.insert(path.to_owned(), (value, version));
        version
    }

    /// The writes of documents, in order (the schemas kept beside them are left out).
    pub fn puts(&self) -> Vec<(String, WriteMode)> {
        self.all_puts()
            .into_iter()
            .filter(|(path, _)| !path.starts_with("_schema/"))
            .collect()
    }

    /// Every write, schemas included.
    pub fn all_puts(&self) -> Vec<(String, WriteMode)> {
        self.puts.lock().expect("lock").clone()
    }
}

impl SecretStore for MemoryStore {
    async fn get(&self, path: &str) -> Result<Option<Versioned<Value>>, SecretError> {
        Ok(self
            .docs
            .lock()
            .expect("lock")
            .get(path)
            .map(|(value, version)| Versioned {
                value: value.clone(),
                version: *version,
            }))
    }

    async fn put(&self, path: &str, value: &Value, mode: WriteMode) -> Result<u64, SecretError> {
        self.puts
            .lock()
            .expect("lock")
            .push((path.to_owned(), mode));
        let hook = self.before_next_put.lock().expect("lock").take();
        let mut docs = self.docs.lock().expect("lock");
        if let Some(hook) = hook {
            hook(&mut docs);
        }
        let current = docs.get(path).map(|(_, v)| *v);
        if let WriteMode::Cas(expected) = mode
            && expected != current
        {
            return Err(SecretError::Conflict {
                path: self.describe(path),
                expected,
                actual: current,
            });
        }
        let version = current.map_or(1, |v| v + 1);
        docs.insert(path.to_owned(), (value.clone(), version));
        Ok(version)
    }

    async fn delete(&self, path: &str) -> Result<(), SecretError> {
        self.docs.lock().expect("lock").remove(path);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SecretError> {
        let docs = self.docs.lock().expect("lock");
        let mut out: Vec<String> = docs
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .map(|rest| match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest.to_owned(),
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn describe(&self, path: &str) -> String {
        format!("secret/data/harmony/{path}")
    }
}

/// `Arc<MemoryStore>` as a store, so a test keeps a handle to inspect it.
#[derive(Clone, Default)]
pub struct Shared(pub std::sync::Arc<MemoryStore>);

impl SecretStore for Shared {
    async fn get(&self, path: &str) -> Result<Option<Versioned<Value>>, SecretError> {
        self.0.get(path).await
    }
    async fn put(&self, path: &str, value: &Value, mode: WriteMode) -> Result<u64, SecretError> {
        self.0.put(path, value, mode).await
    }
    async fn delete(&self, path: &str) -> Result<(), SecretError> {
        self.0.delete(path).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, SecretError> {
        self.0.list(prefix).await
    }
    fn describe(&self, path: &str) -> String {
        self.0.describe(path)
    }
}
