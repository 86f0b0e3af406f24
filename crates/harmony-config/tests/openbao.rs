//! ConfigManager against a REAL OpenBao dev server (harmony-testkit) through
//! `OpenbaoSecretStore`: layering, set/get, prompted write-back, and a concurrent write-back
//! conflict. Each test owns its server and data dir.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use harmony_config::{
    ConfigError, ConfigManager, EnvSource, PromptError, Prompter, Question, SCHEMA_FOLDER,
    ScriptedPrompter, Snapshot, StoreSource,
};
use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode};
use harmony_testkit::OpenbaoServer;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{DemoApp, demo};
use tracing_test::traced_test;

struct Bao {
    server: OpenbaoServer,
    data: tempfile::TempDir,
}

impl Bao {
    async fn start() -> anyhow::Result<Self> {
        Ok(Self {
            server: OpenbaoServer::dev()
                .await
                .context("start OpenBao dev server")?,
            data: tempfile::tempdir()?,
        })
    }

    /// A new store connection (a new process, as far as OpenBao can tell), token auth.
    async fn store(&self) -> anyhow::Result<OpenbaoSecretStore> {
        let token = self
            .server
            .root_token()
            .context("dev root token")?
            .to_owned();
        let settings = OpenbaoSettings::new(self.server.url())
            .with_token(SecretString::from(token))
            .with_session_dir(self.data.path().join("sessions"));
        Ok(OpenbaoSecretStore::connect(settings).await?)
    }

    async fn manager(
        &self,
        env: &[(&str, &str)],
    ) -> anyhow::Result<harmony_config::ConfigManagerBuilder> {
        Ok(ConfigManager::builder()
            .source(EnvSource::from_map(env.iter().copied()))
            .source(StoreSource::new(self.store().await?)))
    }
}

struct NeverAsk;
impl Prompter for NeverAsk {
    fn ask(&self, q: &Question) -> Result<Value, PromptError> {
        panic!("unexpected prompt for {}", q.field.dotted());
    }
}

#[tokio::test]
async fn env_overrides_one_field_of_a_stored_config() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    bao.manager(&[])
        .await?
        .interactive(false)
        .build()
        .set(&Snapshot::new(demo()))
        .await?;

    let m = bao
        .manager(&[("HARMONY_DEMO_APP_DATABASE_PORT", "6543")])
        .await?
        .interactive(false)
        .build();
    let got: DemoApp = m.get().await?;
    let mut want = demo();
    want.database.port = 6543;
    assert_eq!(got, want, "only the port comes from the environment");

    // Reading never writes: the stored copy is untouched.
    let stored = bao
        .store()
        .await?
        .get("demo-app")
        .await?
        .context("stored")?;
    assert_eq!(stored.version, 1);
    assert_eq!(stored.value["database"]["port"], 5432);
    Ok(())
}

#[tokio::test]
async fn set_get_round_trip_with_cas() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let m = bao.manager(&[]).await?.interactive(false).build();
    assert_eq!(m.set(&Snapshot::new(demo())).await?, 1);
    let mine = m.get_versioned::<DemoApp>().await?;

    let other = bao.manager(&[]).await?.interactive(false).build();
    let mut theirs = other.get_versioned::<DemoApp>().await?;
    assert_eq!((&theirs.value, theirs.version), (&demo(), Some(1)));

    // `other` read version 1 and saves 2; `m` still holds 1, so its save is refused.
    theirs.value.greeting = "changed by other".into();
    assert_eq!(other.set(&theirs).await?, 2);
    let err = m.set(&mine).await.expect_err("stale write must conflict");
    assert!(
        err.to_string().contains("changed concurrently")
            && err.to_string().contains("secret/data/harmony/demo-app"),
        "{err}"
    );
    assert_eq!(m.get::<DemoApp>().await?.greeting, "changed by other");
    assert_eq!(m.set_with_mode(&demo(), WriteMode::Overwrite).await?, 3);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn prompted_values_are_written_back_and_a_teammate_is_not_asked() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let store = bao.store().await?;
    store
        .put(
            "demo-app",
            &json!({"greeting": "hi", "database": {"port": 5432}}),
            WriteMode::Cas(None),
        )
        .await?;

    // Off a terminal: one error naming every missing field, its variable and the real path.
    let off = bao.manager(&[]).await?.interactive(false).build();
    let err = off.get::<DemoApp>().await.expect_err("missing");
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Missing(_)), "{err:?}");
    for needle in [
        "database.password (secret): set HARMONY_DEMO_APP_DATABASE_PASSWORD, or store it at secret/data/harmony/demo-app",
        "api_token (secret)",
        "log_level (one of: ",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in:\n{msg}");
    }

    let prompter = Arc::new(ScriptedPrompter::new([
        ("database.password", json!("pg-S3cret-pw")),
        ("api_token", json!("tok-S3cret-api")),
        ("log_level", json!("debug")),
    ]));
    let m = bao
        .manager(&[("HARMONY_DEMO_APP_GREETING", "temporary")])
        .await?
        .interactive(true)
        .prompter(Arc::clone(&prompter))
        .build();
    let got: DemoApp = m.get().await?;
    assert_eq!(got.greeting, "temporary");
    assert_eq!(got.database.password, "pg-S3cret-pw");
    assert_eq!(prompter.asked().len(), 3);

    let stored = store.get("demo-app").await?.context("stored")?;
    assert_eq!(stored.version, 2, "one check-and-set write");
    assert_eq!(
        stored.value,
        json!({
            "greeting": "hi",
            "database": {"port": 5432, "password": "pg-S3cret-pw"},
            "api_token": "tok-S3cret-api",
            "log_level": "debug",
        }),
        "stored + prompted values; the env override did not leak"
    );

    let teammate = bao
        .manager(&[])
        .await?
        .interactive(true)
        .prompter(NeverAsk)
        .build();
    let theirs: DemoApp = teammate.get().await?;
    assert_eq!(theirs.api_token, "tok-S3cret-api");
    assert_eq!(theirs.greeting, "hi");

    assert!(!logs_contain("pg-S3cret-pw") && !logs_contain("tok-S3cret-api"));
    let root = bao.server.root_token().context("token")?.to_owned();
    assert!(!logs_contain(&root), "the token is not logged");
    assert!(!format!("{m:?}").contains(&root));
    Ok(())
}

/// Answers like a script, but the first time it is asked a teammate saves the same config
/// (a separate OpenBao connection), so our write-back loses the check-and-set race.
struct TeammateSavesWhilePrompting {
    teammate: Arc<OpenbaoSecretStore>,
    handle: tokio::runtime::Handle,
    fired: AtomicBool,
    script: ScriptedPrompter,
}

impl Prompter for TeammateSavesWhilePrompting {
    fn ask(&self, q: &Question) -> Result<Value, PromptError> {
        if !self.fired.swap(true, Ordering::SeqCst) {
            // Prompters run on the blocking pool, where blocking on the runtime is allowed.
            self.handle
                .block_on(async {
                    let current = self.teammate.get("demo-app").await?.expect("seeded");
                    let mut doc = current.value;
                    doc["greeting"] = json!("teammate");
                    doc["api_token"] = json!("teammate-token");
                    self.teammate
                        .put("demo-app", &doc, WriteMode::Cas(Some(current.version)))
                        .await
                })
                .map_err(|e| PromptError::Other(e.to_string()))?;
        }
        self.script.ask(q)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_write_back_conflict_keeps_the_other_writers_data() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let store = bao.store().await?;
    store
        .put(
            "demo-app",
            &json!({"database": {"port": 5432}}),
            WriteMode::Cas(None),
        )
        .await?;

    let prompter = TeammateSavesWhilePrompting {
        teammate: Arc::new(bao.store().await?),
        handle: tokio::runtime::Handle::current(),
        fired: AtomicBool::new(false),
        script: ScriptedPrompter::new([
            ("api_token", json!("mine")),
            ("database.password", json!("pw")),
            ("greeting", json!("mine")),
            ("log_level", json!("info")),
        ]),
    };
    let m = bao
        .manager(&[])
        .await?
        .interactive(true)
        .prompter(prompter)
        .build();
    let got: DemoApp = m.get().await?;

    let stored = store.get("demo-app").await?.context("stored")?;
    assert_eq!(stored.version, 3, "seed, teammate, our retried write-back");
    assert_eq!(stored.value["greeting"], "teammate", "{}", stored.value);
    assert_eq!(stored.value["api_token"], "teammate-token");
    assert_eq!(
        stored.value["database"],
        json!({"port": 5432, "password": "pw"})
    );
    assert_eq!(stored.value["log_level"], "info");
    assert_eq!(got.greeting, "teammate");
    Ok(())
}

/// Review finding 7: two tasks share one manager; each must check-and-set against the version
/// *it* read, not the last version the process saw.
#[tokio::test]
async fn stale_writer_in_another_task_of_the_same_manager_conflicts() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let m = Arc::new(bao.manager(&[]).await?.interactive(false).build());
    m.set(&Snapshot::new(demo())).await?;

    // Task A reads version 1 and takes its time.
    let a_read = m.get_versioned::<DemoApp>().await?;
    // Task B reads, changes and saves: version 2.
    let b = {
        let m = Arc::clone(&m);
        tokio::spawn(async move {
            let mut b = m.get_versioned::<DemoApp>().await?;
            b.value.greeting = "saved by task B".into();
            m.set(&b).await
        })
    };
    assert_eq!(b.await??, 2);

    // Task A saves what it based on version 1: refused, B's save survives.
    let mut a = a_read;
    a.value.beta = true;
    let err = m.set(&a).await.expect_err("task A never saw version 2");
    assert!(err.to_string().contains("changed concurrently"), "{err}");
    let stored = bao
        .store()
        .await?
        .get("demo-app")
        .await?
        .context("stored")?;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.value["greeting"], "saved by task B");
    Ok(())
}

/// Review finding 8: a write keeps the fields of the stored document that the writing type does
/// not declare (written by a newer version of the app), at the top level and nested.
#[tokio::test]
async fn set_keeps_fields_a_newer_app_wrote() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let mut newer = serde_json::to_value(demo())?;
    newer["feature_flags"] = json!({"dark_mode": true});
    newer["database"]["pool_size"] = json!(9);
    bao.store()
        .await?
        .put("demo-app", &newer, WriteMode::Cas(None))
        .await?;

    let m = bao.manager(&[]).await?.interactive(false).build();
    let mut mine = m.get_versioned::<DemoApp>().await?;
    mine.value.database.port = 6000;
    m.set(&mine).await?;

    let stored = bao
        .store()
        .await?
        .get("demo-app")
        .await?
        .context("stored")?;
    assert_eq!(stored.value["database"]["port"], 6000, "my change is saved");
    assert_eq!(stored.value["feature_flags"], json!({"dark_mode": true}));
    assert_eq!(stored.value["database"]["pool_size"], 9);
    Ok(())
}

/// The schema lives in the store: every write stores the config's JSON schema at
/// `_schema/<KEY>`, and only when it changed (a second save writes no new schema version).
#[tokio::test]
async fn writes_store_the_schema_beside_the_document_once() -> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let schema_path = format!("{SCHEMA_FOLDER}/demo-app");
    let m = bao.manager(&[]).await?.interactive(false).build();
    m.set(&Snapshot::new(demo())).await?;

    let store = bao.store().await?;
    let stored = store.get(&schema_path).await?.context("schema stored")?;
    assert_eq!(stored.version, 1);
    let want = harmony_config::ConfigSchema::of::<DemoApp>("demo-app")?;
    assert_eq!(&stored.value, want.json());
    // What tools without the Rust type need is there: secret markers and descriptions.
    let text = stored.value.to_string();
    assert!(
        text.contains("x-secret") && text.contains("writeOnly"),
        "{text}"
    );
    assert!(text.contains("TCP port of the PostgreSQL server"), "{text}");
    // ... and the schema can be read back into the same field tree.
    let back = harmony_config::ConfigSchema::from_json("demo-app", &stored.value)?;
    assert_eq!(back.fields(), want.fields());

    // Another process saving the same type does not write the schema again.
    let again = bao.manager(&[]).await?.interactive(false).build();
    let mut read = again.get_versioned::<DemoApp>().await?;
    read.value.beta = true;
    again.set(&read).await?;
    assert_eq!(store.get(&schema_path).await?.context("schema")?.version, 1);

    // The folder is not a config: listing the prefix shows it as a folder apart.
    let names = store.list("").await?;
    assert!(names.contains(&"_schema/".to_owned()), "{names:?}");
    Ok(())
}

/// Opt-in offline fallback: a manager whose `StoreSource` keeps copies still gets its config
/// while OpenBao is gone (warning in the log); one without it gets the store's error; an
/// application that could not even sign in starts from `OfflineSource`.
#[tokio::test]
#[traced_test]
async fn the_offline_fallback_serves_the_last_copy_only_when_asked() -> anyhow::Result<()> {
    use harmony_config::OfflineSource;
    use harmony_secret::offline::{CacheProtection, OfflineCache};

    let mut bao = Bao::start().await?;
    let cache = OfflineCache::new(bao.data.path().join("cache"))
        .with_protection(CacheProtection::PrivateFile);
    let store = Arc::new(bao.store().await?);
    let settings = store.settings().clone();
    let with_copies = ConfigManager::builder()
        .source(StoreSource::new(store.clone()).with_offline_cache(store.offline_scope(&cache)))
        .interactive(false)
        .build();
    let without = ConfigManager::builder()
        .source(StoreSource::new(store.clone()))
        .interactive(false)
        .build();
    with_copies.set(&Snapshot::new(demo())).await?;
    let online: DemoApp = with_copies.get().await?;
    assert_eq!(online, demo());

    bao.server.stop();
    let offline: DemoApp = with_copies.get().await?;
    assert_eq!(offline, demo());
    assert!(logs_contain("using the offline copy"));
    assert!(!logs_contain(&demo().database.password));
    let err = without
        .get::<DemoApp>()
        .await
        .expect_err("no fallback without opting in");
    assert!(
        matches!(&err, ConfigError::Store { source, .. } if source.is_unavailable()),
        "{err}"
    );

    let started_offline = ConfigManager::builder()
        .source(OfflineSource::for_openbao(
            &settings,
            &cache,
            "could not sign in at start",
        ))
        .interactive(false)
        .build();
    assert_eq!(started_offline.get::<DemoApp>().await?, demo());
    // A copy of nothing is nothing: the missing-fields error, not a cache error.
    let empty = OfflineCache::new(bao.data.path().join("empty"))
        .with_protection(CacheProtection::PrivateFile);
    let err = ConfigManager::builder()
        .source(OfflineSource::for_openbao(&settings, &empty, "offline"))
        .interactive(false)
        .build()
        .get::<DemoApp>()
        .await
        .expect_err("nothing cached");
    assert!(matches!(err, ConfigError::Missing(_)), "{err}");
    Ok(())
}

#[tokio::test]
async fn an_environment_reads_its_overlay_over_the_base_and_writes_only_the_overlay()
-> anyhow::Result<()> {
    let bao = Bao::start().await?;
    let store = bao.store().await?;
    let base =
        json!({"greeting": "hi", "database": {"port": 5432, "host": "db"}, "log_level": "info"});
    store.put("demo-app", &base, WriteMode::Cas(None)).await?;
    store
        .put(
            "_env/prod/demo-app",
            &json!({"database": {"host": "prod-db"}}),
            WriteMode::Cas(None),
        )
        .await?;
    let prod = || async {
        Ok::<_, anyhow::Error>(
            ConfigManager::builder()
                .source(StoreSource::new(bao.store().await?).with_environment(Some("prod"))),
        )
    };

    // Missing fields are prompted for and saved to the prod overlay; the base is untouched.
    let prompter = Arc::new(ScriptedPrompter::new([
        ("database.password", json!("prod-S3cret")),
        ("api_token", json!("prod-token")),
    ]));
    let got: DemoApp = prod()
        .await?
        .interactive(true)
        .prompter(Arc::clone(&prompter))
        .build()
        .get()
        .await?;
    assert_eq!(got.database.host, "prod-db", "the overlay wins");
    assert_eq!(got.database.port, 5432, "the base fills the rest");
    let overlay = store.get("_env/prod/demo-app").await?.context("overlay")?;
    assert_eq!(
        overlay.value,
        json!({"database": {"host": "prod-db", "password": "prod-S3cret"}, "api_token": "prod-token"})
    );
    assert_eq!(overlay.version, 2);
    let stored_base = store.get("demo-app").await?.context("base")?;
    assert_eq!((stored_base.value, stored_base.version), (base.clone(), 1));

    // A whole value saved in prod keeps only what differs from the base.
    let m = prod().await?.interactive(false).build();
    let mut snap = m.get_versioned::<DemoApp>().await?;
    assert_eq!(snap.version, Some(2), "the overlay's version");
    snap.value.greeting = "hello prod".into();
    assert_eq!(m.set(&snap).await?, 3);
    let overlay = store.get("_env/prod/demo-app").await?.context("overlay")?;
    assert_eq!(overlay.value["greeting"], "hello prod");
    assert!(
        overlay.value["database"].get("port").is_none(),
        "{:?}",
        overlay.value
    );
    assert_eq!(store.get("demo-app").await?.context("base")?.version, 1);

    // Without an environment the base alone is read (its missing secrets stay missing).
    let err = ConfigManager::builder()
        .source(StoreSource::new(bao.store().await?).with_environment(None))
        .interactive(false)
        .build()
        .get::<DemoApp>()
        .await
        .expect_err("the base has no password");
    assert!(err.to_string().contains("database.password"), "{err}");

    // A bad environment name is refused before anything is read.
    let err = ConfigManager::builder()
        .source(StoreSource::new(bao.store().await?).with_environment(Some("../x")))
        .interactive(false)
        .build()
        .get::<DemoApp>()
        .await
        .expect_err("invalid");
    assert!(
        err.to_string().contains("environment \"../x\" is invalid"),
        "{err}"
    );
    Ok(())
}

/// Full access to the documents, and author records under the token's own entity only (the
/// shape of the bootstrap's policies).
const TEAM_POLICY: &str = r#"
path "secret/data/harmony/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/harmony/*" { capabilities = ["read", "list"] }
path "secret/data/harmony/_history/*" { capabilities = ["read"] }
path "secret/metadata/harmony/_history/*" { capabilities = ["read", "list"] }
path "secret/data/harmony/_history/{{identity.entity.id}}/*" { capabilities = ["create", "read"] }
"#;

#[tokio::test]
#[traced_test]
async fn write_backs_record_their_author_and_a_refused_record_keeps_the_value() -> anyhow::Result<()>
{
    let bao = Bao::start().await?;
    bao.server
        .root_call(
            reqwest::Method::PUT,
            "sys/policies/acl/team",
            Some(json!({ "policy": TEAM_POLICY })),
        )
        .await?;
    bao.server
        .add_userpass_user("alice", "pw-alice", &["team"], "10m")
        .await?;
    let settings = OpenbaoSettings::new(bao.server.url())
        .with_userpass("alice", SecretString::from("pw-alice".to_owned()))
        .with_session_dir(bao.data.path().join("alice"));
    let alice = Arc::new(OpenbaoSecretStore::connect(settings).await?);
    let identity = alice.identity().await?.context("an OpenBao identity")?;
    assert!(
        !identity.entity_id.is_empty(),
        "a userpass login has an entity"
    );
    alice
        .put(
            "demo-app",
            &json!({"greeting": "hi", "database": {"port": 5432}}),
            WriteMode::Cas(None),
        )
        .await?;

    // A prompted write-back: version 2, recorded as alice's, with what was asked.
    let m = ConfigManager::builder()
        .source(StoreSource::new(Arc::clone(&alice)))
        .interactive(true)
        .prompter(ScriptedPrompter::new([
            ("database.password", json!("pg-S3cret-pw")),
            ("api_token", json!("tok-S3cret-api")),
            ("log_level", json!("debug")),
        ]))
        .build();
    let _: DemoApp = m.get().await?;
    let authors = harmony_config::history::authors(&*alice, "demo-app").await?;
    let Some(harmony_config::history::Author::Known(record)) = authors.get(&2) else {
        panic!("version 2 has one record: {authors:?}");
    };
    assert_eq!(record.entity_id, identity.entity_id);
    assert_eq!(record.body.name, "alice");
    assert!(record.body.tool.starts_with("harmony "), "{record:?}");
    assert_eq!(
        record.body.message,
        "entered api_token, database.password, log_level when asked"
    );
    assert!(
        !authors.contains_key(&1),
        "version 1 was written without a record"
    );

    // `set` writes version 3 and its record.
    let snapshot = m.get_versioned::<DemoApp>().await?;
    let mut value = snapshot.value;
    value.greeting = "hello".into();
    let v3 = m
        .set(&Snapshot {
            value,
            version: snapshot.version,
        })
        .await?;
    assert_eq!(v3, 3);
    let authors = harmony_config::history::authors(&*alice, "demo-app").await?;
    assert_eq!(
        authors.get(&3).and_then(|a| a.message()),
        Some(harmony_config::history::SET_MESSAGE)
    );

    // A teammate who may write the document but not records: the value is saved, the
    // missing record is a warning naming the version.
    bao.server
        .root_call(
            reqwest::Method::PUT,
            "sys/policies/acl/docs-only",
            Some(json!({ "policy": r#"path "secret/data/harmony/*" { capabilities = ["create", "read", "update"] }
path "secret/data/harmony/_history/*" { capabilities = ["deny"] }"# })),
        )
        .await?;
    bao.server
        .add_userpass_user("carol", "pw-carol", &["docs-only"], "10m")
        .await?;
    let settings = OpenbaoSettings::new(bao.server.url())
        .with_userpass("carol", SecretString::from("pw-carol".to_owned()))
        .with_session_dir(bao.data.path().join("carol"));
    let m = ConfigManager::builder()
        .source(StoreSource::new(
            OpenbaoSecretStore::connect(settings).await?,
        ))
        .interactive(false)
        .build();
    let snapshot = m.get_versioned::<DemoApp>().await?;
    assert_eq!(
        m.set(&snapshot).await?,
        4,
        "saved although no record can be"
    );
    assert!(logs_contain(
        "version 4 of demo-app is saved, but its author record could not be written"
    ));
    assert!(!authors_of(&alice).await?.contains_key(&4));

    // A root token has no entity: saved, no record, and a note saying so.
    let m = bao.manager(&[]).await?.interactive(false).build();
    let snapshot = m.get_versioned::<DemoApp>().await?;
    assert_eq!(m.set(&snapshot).await?, 5);
    assert!(logs_contain(
        "version 5 of demo-app is saved without an author record"
    ));
    assert!(!logs_contain("pg-S3cret-pw") && !logs_contain("tok-S3cret-api"));
    Ok(())
}

async fn authors_of(
    store: &OpenbaoSecretStore,
) -> anyhow::Result<std::collections::BTreeMap<u64, harmony_config::history::Author>> {
    Ok(harmony_config::history::authors(store, "demo-app").await?)
}
