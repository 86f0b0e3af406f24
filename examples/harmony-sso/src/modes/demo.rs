//! `--demo` and `--sso-demo`: a typed config written to OpenBao, read back through
//! `ConfigManager` (environment over store), printed as JSON on stdout.

use std::sync::Arc;

use anyhow::Context as _;
use harmony_config::{Config, ConfigManager, EnvSource, Snapshot, StoreSource};
use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretStore};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::modes::Ui;

/// The demo application's configuration, shared by the team through OpenBao.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DemoConfig {
    /// Name the application reports itself as.
    pub app_name: String,
    /// Log filter of the application.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// How many workers to run.
    pub workers: u32,
    /// The application's database.
    pub database: DemoDatabase,
}

/// Database settings of the demo application.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DemoDatabase {
    /// Host name of the PostgreSQL server.
    pub host: String,
    /// TCP port of the PostgreSQL server.
    pub port: u16,
    /// Password of the application's database user.
    #[schemars(extend("x-secret" = true))]
    pub password: String,
}

/// The password is a secret: never shown, not even in debug output.
impl std::fmt::Debug for DemoDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoDatabase")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password", &"[redacted]")
            .finish()
    }
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Config for DemoConfig {
    const KEY: &'static str = "demo";
}

impl DemoConfig {
    /// The value the demo stores.
    fn sample() -> Self {
        Self {
            app_name: "harmony-demo".to_owned(),
            log_level: default_log_level(),
            workers: 2,
            database: DemoDatabase {
                host: "db.harmony.local".to_owned(),
                port: 5432,
                password: "demo-password-not-a-real-secret".to_owned(),
            },
        }
    }

    /// JSON for display: secret fields masked.
    fn redacted_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(db) = value.get_mut("database").and_then(|v| v.as_object_mut()) {
            db.insert("password".into(), "********".into());
        }
        value
    }
}

/// The variable that overrides `log_level` in the demonstration of environment precedence.
const OVERRIDE_VAR: &str = "HARMONY_DEMO_LOG_LEVEL";

/// Run the round trip against an authenticated store.
pub async fn run(settings: OpenbaoSettings, ui: &Ui, title: &str) -> anyhow::Result<()> {
    let url = settings.url().to_owned();
    let store = OpenbaoSecretStore::connect(settings)
        .instrument(tracing::info_span!(
            "sign_in",
            message = %format!("Signing in to OpenBao at {url}")
        ))
        .await
        .with_context(|| format!("signing in to OpenBao at {url}"))?;
    let method = store.auth_method();
    let store = Arc::new(store);
    let location = store.describe(DemoConfig::KEY);
    ui.note(format!("{title}: signed in to {url} ({method:?})"));

    // 1. Write the typed value with check-and-set against the version currently stored.
    let writer = ConfigManager::builder()
        .source(StoreSource::new(Arc::clone(&store)))
        .interactive(false)
        .build();
    // The version stored now (even when the stored value is incomplete for `DemoConfig`).
    let read_at = store
        .get(DemoConfig::KEY)
        .await
        .with_context(|| format!("reading {location}"))?
        .map(|doc| doc.version);
    let sample = DemoConfig::sample();
    let version = writer
        .set(&Snapshot {
            value: sample.clone(),
            version: read_at,
        })
        .await
        .with_context(|| format!("writing the demo config to {location}"))?;
    ui.note(format!("wrote {location} (version {version})"));

    // 2. Read it back from the store alone.
    let stored: DemoConfig = ConfigManager::builder()
        .source(StoreSource::new(Arc::clone(&store)))
        .interactive(false)
        .build()
        .get()
        .await
        .with_context(|| format!("reading {location} back"))?;
    anyhow::ensure!(
        stored == sample,
        "read back a different value from {location} than was written: a concurrent writer?"
    );
    ui.note("read it back: identical".to_owned());

    // 3. Environment over store, field by field.
    let demo_env = EnvSource::from_map([(OVERRIDE_VAR, "debug")]);
    let overridden: DemoConfig = ConfigManager::builder()
        .source(demo_env)
        .source(StoreSource::new(Arc::clone(&store)))
        .interactive(false)
        .build()
        .get()
        .await?;
    ui.note(format!(
        "with {OVERRIDE_VAR}=debug, log_level resolves to {:?} while the store keeps {:?}",
        overridden.log_level, stored.log_level
    ));

    // 4. The config as this process resolves it (its real environment over the store).
    let resolved: DemoConfig = ConfigManager::builder()
        .source(EnvSource::new())
        .source(StoreSource::new(Arc::clone(&store)))
        .interactive(ui.interactive)
        .build()
        .get()
        .await
        .context("resolving the demo config (environment over store)")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&resolved.redacted_json())?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review finding 9: `Debug` of the demo config must not show the database password.
    #[test]
    fn debug_masks_the_database_password() {
        let sample = DemoConfig::sample();
        let shown = format!("{sample:?} {:#?}", sample.database);
        assert!(!shown.contains(&sample.database.password), "{shown}");
        assert!(
            shown.contains("db.harmony.local") && shown.contains("[redacted]"),
            "{shown}"
        );
    }
}
