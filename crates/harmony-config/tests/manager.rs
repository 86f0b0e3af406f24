//! ConfigManager behaviour against an in-memory store that honours KV v2 check-and-set exactly.
//! (The same flows against a real OpenBao are in `openbao.rs`.)

mod support;

use std::sync::Arc;

use harmony_config::{
    Config, ConfigError, ConfigManager, EnvSource, PromptError, Prompter, Question,
    ScriptedPrompter, Snapshot, StoreSource,
};
use harmony_secret::WriteMode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use support::{DemoApp, LogLevel, MemoryStore, Shared, demo};
use tracing_test::traced_test;

fn manager(env: &[(&str, &str)], store: &Shared) -> harmony_config::ConfigManagerBuilder {
    ConfigManager::builder()
        .source(EnvSource::from_map(env.iter().copied()))
        .source(StoreSource::new(store.clone()))
}

/// A prompter that fails the test if it is ever asked anything.
struct NeverAsk;
impl Prompter for NeverAsk {
    fn ask(&self, q: &Question) -> Result<Value, PromptError> {
        panic!("unexpected prompt for {}", q.field.dotted());
    }
}

#[tokio::test]
async fn env_overrides_store_field_by_field() -> anyhow::Result<()> {
    let store = Shared::default();
    store.0.insert("demo-app", serde_json::to_value(demo())?);
    let m = manager(
        &[
            ("HARMONY_DEMO_APP_DATABASE_PORT", "6543"),
            ("HARMONY_DEMO_APP_LOG_LEVEL", "debug"),
        ],
        &store,
    )
    .interactive(false)
    .build();
    let got: DemoApp = m.get().await?;
    let mut want = demo();
    want.database.port = 6543;
    want.log_level = LogLevel::Debug;
    // host and password still come from the store: the env only replaced the fields it set.
    assert_eq!(got, want);
    Ok(())
}

#[tokio::test]
async fn missing_fields_error_lists_every_field_with_env_var_and_store_path() {
    let store = Shared::default();
    store.0.insert(
        "demo-app",
        json!({"greeting": "hi", "database": {"port": 5432}}),
    );
    let m = manager(&[], &store).interactive(false).build();
    let err = m.get::<DemoApp>().await.expect_err("fields are missing");
    let ConfigError::Missing(missing) = &err else {
        panic!("expected Missing, got {err:?}");
    };
    assert_eq!(missing.fields.len(), 3);
    insta::assert_snapshot!("missing_fields", err.to_string());
    assert!(
        store.0.puts().is_empty(),
        "nothing is written off a terminal"
    );
}

#[tokio::test]
async fn complete_config_is_returned_without_prompting_even_when_interactive() -> anyhow::Result<()>
{
    let store = Shared::default();
    store.0.insert("demo-app", serde_json::to_value(demo())?);
    let m = manager(&[], &store)
        .interactive(true)
        .prompter(NeverAsk)
        .build();
    assert_eq!(m.get::<DemoApp>().await?, demo());
    assert!(store.0.puts().is_empty());
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn prompted_fields_are_written_back_with_cas_without_env_overrides() -> anyhow::Result<()> {
    let store = Shared::default();
    let v1 = store.0.insert(
        "demo-app",
        json!({"greeting": "hi", "database": {"port": 5432, "host": "db"}}),
    );
    let prompter = Arc::new(ScriptedPrompter::new([
        ("database.password", json!("pg-S3cret-pw")),
        ("api_token", json!("tok-S3cret-api")),
        ("log_level", json!("info")),
    ]));
    let m = manager(&[("HARMONY_DEMO_APP_GREETING", "from-env")], &store)
        .interactive(true)
        .prompter(Arc::clone(&prompter))
        .build();
    let got: DemoApp = m.get().await?;
    assert_eq!(got.greeting, "from-env");
    assert_eq!(got.database.password, "pg-S3cret-pw");
    assert_eq!(got.log_level, LogLevel::Info);

    // Exactly the missing fields were asked, with the schema's type, secrecy and help.
    let asked = prompter.asked();
    let paths: Vec<String> = asked.iter().map(|q| q.field.dotted()).collect();
    assert_eq!(paths, ["api_token", "database.password", "log_level"]);
    assert!(asked[0].field.secret && asked[1].field.secret && !asked[2].field.secret);
    assert_eq!(
        asked[1].field.description.as_deref(),
        Some("Password of the application's database user.")
    );

    // One CAS write at the version read; stored + prompted values, not the env override,
    // not the schema default (`beta`).
    assert_eq!(
        store.0.puts(),
        [("demo-app".to_owned(), WriteMode::Cas(Some(v1)))]
    );
    // ... and the schema stored beside it, once.
    assert_eq!(
        store.0.all_puts().last(),
        Some(&("_schema/demo-app".to_owned(), WriteMode::Cas(None)))
    );
    let (doc, version) = store.0.doc("demo-app").expect("written");
    assert_eq!(version, v1 + 1);
    assert_eq!(
        doc,
        json!({
            "greeting": "hi",
            "database": {"port": 5432, "host": "db", "password": "pg-S3cret-pw"},
            "api_token": "tok-S3cret-api",
            "log_level": "info",
        })
    );

    // A second manager (a teammate) gets everything without being asked.
    let m2 = manager(&[], &store)
        .interactive(true)
        .prompter(NeverAsk)
        .build();
    let again: DemoApp = m2.get().await?;
    assert_eq!(again.database.password, "pg-S3cret-pw");
    assert_eq!(again.greeting, "hi");

    // Secrets never reached the logs or Debug output.
    assert!(!logs_contain("pg-S3cret-pw") && !logs_contain("tok-S3cret-api"));
    assert!(logs_contain("saved the prompted fields"));
    let dbg = format!("{m:?} {prompter:?}");
    assert!(!dbg.contains("S3cret"), "{dbg}");
    Ok(())
}

#[tokio::test]
async fn write_back_conflict_rereads_merges_and_keeps_the_other_writers_data() -> anyhow::Result<()>
{
    let store = Shared::default();
    store
        .0
        .insert("demo-app", json!({"database": {"port": 5432}}));
    // A teammate saves between our read and our write: greeting and the token.
    store.0.before_next_put(|docs| {
        docs.insert(
            "demo-app".into(),
            (
                json!({"database": {"port": 5432}, "greeting": "teammate", "api_token": "theirs"}),
                2,
            ),
        );
    });
    let prompter = ScriptedPrompter::new([
        ("database.password", json!("pw")),
        ("api_token", json!("mine")),
        ("log_level", json!("debug")),
        ("greeting", json!("mine")),
    ]);
    let m = manager(&[], &store)
        .interactive(true)
        .prompter(prompter)
        .build();
    let got: DemoApp = m.get().await?;

    let puts = store.0.puts();
    assert_eq!(
        puts,
        [
            ("demo-app".to_owned(), WriteMode::Cas(Some(1))),
            ("demo-app".to_owned(), WriteMode::Cas(Some(2))),
        ],
        "first write conflicts, the retry is at the version re-read"
    );
    let (doc, version) = store.0.doc("demo-app").expect("doc");
    assert_eq!(version, 3);
    // The teammate's fields survive; ours fill only what is still missing.
    assert_eq!(doc["greeting"], "teammate");
    assert_eq!(doc["api_token"], "theirs");
    assert_eq!(doc["database"], json!({"port": 5432, "password": "pw"}));
    assert_eq!(doc["log_level"], "debug");
    assert_eq!(got.greeting, "teammate");
    Ok(())
}

#[tokio::test]
async fn a_second_conflict_is_surfaced() {
    let store = Shared::default();
    let inner = Arc::clone(&store.0);
    // Every write loses a race: the first hook re-arms itself once.
    store.0.before_next_put(move |docs| {
        docs.insert("demo-app".into(), (json!({"database": {"port": 1}}), 5));
        inner.before_next_put(|docs| {
            docs.insert("demo-app".into(), (json!({"database": {"port": 1}}), 9));
        });
    });
    let prompter = ScriptedPrompter::new([
        ("database.password", json!("pw")),
        ("database.port", json!(1)),
        ("api_token", json!("t")),
        ("log_level", json!("debug")),
        ("greeting", json!("g")),
    ]);
    let m = manager(&[], &store)
        .interactive(true)
        .prompter(prompter)
        .build();
    let err = m.get::<DemoApp>().await.expect_err("conflict twice");
    let msg = err.to_string();
    assert!(
        msg.contains("changed concurrently") && msg.contains("secret/data/harmony/demo-app"),
        "{msg}"
    );
}

#[tokio::test]
async fn cancelled_prompt_names_the_field_and_writes_nothing() {
    let store = Shared::default();
    let m = manager(&[], &store)
        .interactive(true)
        .prompter(ScriptedPrompter::new([("api_token", json!("t"))]))
        .build();
    let err = m.get::<DemoApp>().await.expect_err("unscripted field");
    assert!(matches!(err, ConfigError::Prompt { .. }), "{err:?}");
    assert!(err.to_string().contains("database.password"), "{err}");
    assert!(store.0.puts().is_empty());
}

#[tokio::test]
async fn get_or_prompt_prompts_even_when_not_interactive() -> anyhow::Result<()> {
    let store = Shared::default();
    store.0.insert(
        "demo-app",
        json!({"greeting": "hi", "database": {"port": 1}, "log_level": "info"}),
    );
    let m = manager(&[], &store)
        .interactive(false)
        .prompter(ScriptedPrompter::new([
            ("database.password", json!("pw")),
            ("api_token", json!("t")),
        ]))
        .build();
    assert!(m.get::<DemoApp>().await.is_err());
    let got: DemoApp = m.get_or_prompt().await?;
    assert_eq!(got.api_token, "t");
    Ok(())
}

#[tokio::test]
async fn set_uses_cas_against_the_version_read() -> anyhow::Result<()> {
    let store = Shared::default();
    let m = manager(&[], &store).interactive(false).build();

    // Nothing stored: a new snapshot (version None) creates it.
    assert_eq!(m.set(&Snapshot::new(demo())).await?, 1);
    let read = m.get_versioned::<DemoApp>().await?;
    assert_eq!((read.value.clone(), read.version), (demo(), Some(1)));

    // Read at 1, then a teammate writes 2: our set must conflict, not overwrite.
    store.0.insert("demo-app", serde_json::to_value(demo())?);
    let mut mine = read;
    mine.value.greeting = "mine".into();
    let err = m.set(&mine).await.expect_err("stale version");
    assert!(err.to_string().contains("changed concurrently"), "{err}");
    assert_eq!(store.0.puts().len(), 1, "a stale set writes nothing");

    // After re-reading it succeeds; an explicit overwrite always does.
    let mut fresh = m.get_versioned::<DemoApp>().await?;
    assert_eq!(fresh.version, Some(2));
    fresh.value.greeting = "mine".into();
    assert_eq!(m.set(&fresh).await?, 3);
    assert_eq!(m.set_with_mode(&demo(), WriteMode::Overwrite).await?, 4);

    // A caller that read nothing cannot blindly replace an existing document.
    assert!(m.set(&Snapshot::new(demo())).await.is_err());
    Ok(())
}

#[tokio::test]
async fn set_without_a_store_says_what_to_add() {
    let m = ConfigManager::builder()
        .source(EnvSource::from_map(Vec::<(String, String)>::new()))
        .interactive(false)
        .build();
    let err = m.set(&Snapshot::new(demo())).await.expect_err("no store");
    assert!(err.to_string().contains("add a StoreSource"), "{err}");
}

#[tokio::test]
async fn stored_values_of_the_wrong_type_are_named_without_their_value() {
    let store = Shared::default();
    let mut doc = serde_json::to_value(demo()).expect("json");
    doc["database"]["port"] = json!("fivefourthreetwo");
    doc["database"]["password"] = json!(1234567);
    store.0.insert("demo-app", doc);
    let m = manager(&[], &store).interactive(false).build();
    let err = m.get::<DemoApp>().await.expect_err("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains("database.port: expected an integer, found a string"),
        "{msg}"
    );
    assert!(
        msg.contains("database.password: expected a string"),
        "{msg}"
    );
    assert!(
        !msg.contains("fivefourthreetwo") && !msg.contains("1234567"),
        "{msg}"
    );
}

/// A secret whose own validation quotes its input: serde's message must be scrubbed.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String")]
struct Pin(String);
impl TryFrom<String> for Pin {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() == 4 {
            Ok(Self(s))
        } else {
            Err(format!("pin {s:?} must have 4 digits"))
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Locker {
    #[schemars(extend("x-secret" = true))]
    pin: Pin,
}
impl Config for Locker {
    const KEY: &'static str = "locker";
}

#[tokio::test]
async fn serde_errors_name_the_path_and_hide_secrets() {
    let store = Shared::default();
    store.0.insert("locker", json!({"pin": "123456789"}));
    let m = manager(&[], &store).interactive(false).build();
    let err = m.get::<Locker>().await.expect_err("bad pin");
    let msg = err.to_string();
    assert!(
        msg.contains("field pin") && msg.contains("must have 4 digits"),
        "{msg}"
    );
    assert!(!msg.contains("123456789"), "{msg}");
    assert!(msg.contains("[redacted]"), "{msg}");
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct BadKey {
    a: u8,
}
impl Config for BadKey {
    const KEY: &'static str = "Bad Key";
}

#[tokio::test]
async fn invalid_key_is_rejected_before_any_io() {
    let store = Shared::default();
    let m = manager(&[], &store).interactive(false).build();
    let err = m.get::<BadKey>().await.expect_err("bad key");
    assert!(matches!(err, ConfigError::InvalidKey { .. }), "{err:?}");
    assert!(m.set(&Snapshot::new(BadKey { a: 1 })).await.is_err());
    assert!(store.0.puts().is_empty());
}

#[test]
fn memory_store_honours_kv_v2_cas() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(async {
        use harmony_secret::SecretStore;
        let s = MemoryStore::new();
        assert_eq!(
            s.put("k", &json!({}), WriteMode::Cas(None))
                .await
                .expect("create"),
            1
        );
        assert!(s.put("k", &json!({}), WriteMode::Cas(None)).await.is_err());
        assert!(
            s.put("k", &json!({}), WriteMode::Cas(Some(2)))
                .await
                .is_err()
        );
        assert_eq!(
            s.put("k", &json!({}), WriteMode::Cas(Some(1)))
                .await
                .expect("cas"),
            2
        );
        assert_eq!(
            s.put("k", &json!({}), WriteMode::Overwrite)
                .await
                .expect("over"),
            3
        );
    });
}
