//! `OpenbaoSecretStore` against a real OpenBao (harmony-testkit): KV v2 CRUD, check-and-set,
//! and each error the store promises (permission denied, sealed, unreachable, timeout).

use std::time::{Duration, Instant};

use harmony_secret::{
    OpenbaoSecretStore, OpenbaoSettings, SecretError, SecretStore, Versioned, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use secrecy::SecretString;
use serde_json::json;

/// A store on `bao` with its root token, under a KV prefix of its own.
async fn root_store(bao: &OpenbaoServer, prefix: &str) -> anyhow::Result<OpenbaoSecretStore> {
    let dir = tempfile::tempdir()?;
    let token = bao
        .root_token()
        .ok_or_else(|| anyhow::anyhow!("dev server has a root token"))?;
    Ok(OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(token))
            .with_kv_prefix(prefix)
            .with_session_dir(dir.path().join("sessions")),
    )
    .await?)
}

#[tokio::test]
async fn crud_and_list() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let store = root_store(&bao, "crud").await?;
    assert_eq!(store.describe("team/app"), "secret/data/crud/team/app");

    assert_eq!(store.get("team/app").await?, None, "nothing stored yet");
    assert!(
        store.list("").await?.is_empty(),
        "empty prefix lists nothing"
    );

    let v1 = json!({"db_url": "postgres://db", "port": 5432});
    assert_eq!(store.put("team/app", &v1, WriteMode::Cas(None)).await?, 1);
    assert_eq!(
        store.get("team/app").await?,
        Some(Versioned {
            value: v1.clone(),
            version: 1
        })
    );

    let v2 = json!({"db_url": "postgres://db2", "port": 5433});
    assert_eq!(
        store.put("team/app", &v2, WriteMode::Cas(Some(1))).await?,
        2
    );
    let v3 = json!({"db_url": "postgres://db3"});
    assert_eq!(store.put("team/app", &v3, WriteMode::Overwrite).await?, 3);
    assert_eq!(store.get("team/app").await?.map(|d| d.value), Some(v3));

    store
        .put("top", &json!({"a": 1}), WriteMode::default())
        .await?;
    let mut names = store.list("").await?;
    names.sort();
    assert_eq!(names, ["team/", "top"]);
    assert_eq!(store.list("team").await?, ["app"]);
    assert_eq!(store.list("team/").await?, ["app"]);
    assert!(store.list("nothing-here").await?.is_empty());

    store.delete("team/app").await?;
    assert_eq!(store.get("team/app").await?, None);
    store.delete("team/app").await?; // absent: still fine
    assert_eq!(
        store
            .put("team/app", &json!({"again": true}), WriteMode::Cas(None))
            .await?,
        1,
        "delete removed all versions, so create-only works again from version 1"
    );

    for bad in ["", "a//b", "../etc", "/abs"] {
        let err = store.get(bad).await.expect_err(bad);
        assert!(matches!(err, SecretError::Config(_)), "{bad}: {err:?}");
        assert!(
            err.to_string().contains(&format!("{bad:?}")) || bad.is_empty(),
            "{err}"
        );
    }
    let err = store
        .put("x", &json!("not an object"), WriteMode::Overwrite)
        .await
        .expect_err("scalar");
    assert!(matches!(err, SecretError::Config(_)), "{err:?}");
    Ok(())
}

/// A document whose latest version was deleted outside Harmony (`bao kv delete`, a soft
/// delete that keeps the metadata) reads as absent, so a create-only write must succeed on it,
/// still as a check-and-set: KV v2 itself would refuse `cas: 0` there forever.
#[tokio::test]
async fn create_only_write_succeeds_over_a_soft_deleted_document() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let store = root_store(&bao, "soft").await?;
    store
        .put("app", &json!({"v": 1}), WriteMode::Cas(None))
        .await?;
    bao.root_call(reqwest::Method::DELETE, "secret/data/soft/app", None)
        .await?;
    assert_eq!(
        store.get("app").await?,
        None,
        "soft-deleted reads as absent"
    );

    assert_eq!(
        store
            .put("app", &json!({"v": 2}), WriteMode::Cas(None))
            .await?,
        2
    );
    assert_eq!(
        store.get("app").await?.map(|d| d.value),
        Some(json!({"v": 2}))
    );
    // Live again: create-only conflicts, naming the version it found.
    let err = store
        .put("app", &json!({"v": 3}), WriteMode::Cas(None))
        .await
        .expect_err("exists");
    assert!(
        matches!(
            err,
            SecretError::Conflict {
                expected: None,
                actual: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test]
async fn cas_conflict_between_two_writers_loses_nothing() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let alice = root_store(&bao, "cas").await?;
    let bob = root_store(&bao, "cas").await?;
    alice
        .put("shared", &json!({"owner": "nobody"}), WriteMode::Cas(None))
        .await?;
    let seen_a = alice.get("shared").await?.map(|d| d.version);
    let seen_b = bob.get("shared").await?.map(|d| d.version);
    assert_eq!((seen_a, seen_b), (Some(1), Some(1)));

    let a_doc = json!({"owner": "alice"});
    let b_doc = json!({"owner": "bob"});
    let (a, b) = tokio::join!(
        alice.put("shared", &a_doc, WriteMode::Cas(seen_a)),
        bob.put("shared", &b_doc, WriteMode::Cas(seen_b)),
    );
    let (winner_doc, loser_err) = match (a, b) {
        (Ok(2), Err(e)) => (a_doc, e),
        (Err(e), Ok(2)) => (b_doc, e),
        other => anyhow::bail!("exactly one writer must win with version 2: {other:?}"),
    };
    match &loser_err {
        SecretError::Conflict {
            path,
            expected,
            actual,
        } => {
            assert_eq!(path, "secret/data/cas/shared");
            assert_eq!((*expected, *actual), (Some(1), Some(2)));
        }
        other => anyhow::bail!("the loser must get Conflict, got {other:?}"),
    }
    let text = loser_err.to_string();
    assert!(
        text.contains("version 1") && text.contains("version 2"),
        "{text}"
    );
    assert_eq!(
        alice.get("shared").await?,
        Some(Versioned {
            value: winner_doc,
            version: 2
        }),
        "the winner's value is intact"
    );
    Ok(())
}

#[tokio::test]
async fn create_only_on_existing_document_is_conflict() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let store = root_store(&bao, "create-only").await?;
    store
        .put("doc", &json!({"v": 1}), WriteMode::Cas(None))
        .await?;
    store
        .put("doc", &json!({"v": 2}), WriteMode::Cas(Some(1)))
        .await?;
    let err = store
        .put("doc", &json!({"v": "clobber"}), WriteMode::Cas(None))
        .await
        .expect_err("document exists");
    assert!(
        matches!(
            &err,
            SecretError::Conflict { path, expected: None, actual: Some(2) } if path == "secret/data/create-only/doc"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no document"), "{err}");
    assert_eq!(
        store.get("doc").await?.map(|d| d.value),
        Some(json!({"v": 2}))
    );
    Ok(())
}

#[tokio::test]
async fn forbidden_path_is_permission_denied_with_openbaos_message() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let token = bao
        .token_with_policy(
            "only-allowed",
            r#"path "secret/data/harmony/allowed/*" { capabilities = ["create", "read", "update"] }"#,
            "1h",
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(token))
            .with_session_dir(dir.path().to_owned()),
    )
    .await?;
    store
        .put("allowed/doc", &json!({"ok": true}), WriteMode::Cas(None))
        .await?;
    let err = store
        .get("forbidden/doc")
        .await
        .expect_err("policy forbids");
    match &err {
        SecretError::PermissionDenied { path, message } => {
            assert_eq!(path, "secret/data/harmony/forbidden/doc");
            assert!(message.contains("permission denied"), "{message}");
        }
        other => anyhow::bail!("expected PermissionDenied, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("secret/data/harmony/forbidden/doc"),
        "{err}"
    );
    // The token itself is fine, so the store did not go and sign in again.
    assert_eq!(store.auth_method(), harmony_secret::AuthMethodUsed::Token);
    Ok(())
}

/// OpenBao answers 404 to a write under a path no engine is mounted at; that is a wrong mount
/// setting, not a missing document.
#[tokio::test]
async fn write_without_a_kv_engine_at_the_mount_names_the_mount_and_variable() -> anyhow::Result<()>
{
    let bao = OpenbaoServer::dev().await?;
    let dir = tempfile::tempdir()?;
    let token = bao
        .root_token()
        .ok_or_else(|| anyhow::anyhow!("dev server has a root token"))?;
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(token))
            .with_kv_mount("nosuchmount")
            .with_session_dir(dir.path().join("sessions")),
    )
    .await?;
    assert_eq!(store.get("app").await?, None, "a read finds nothing");
    let err = store
        .put("app", &json!({"k": "v"}), WriteMode::Cas(None))
        .await
        .expect_err("no engine there");
    let msg = err.to_string();
    assert!(
        matches!(err, SecretError::Config(_))
            && msg.contains("no KV v2 secrets engine is mounted at nosuchmount/")
            && msg.contains("OPENBAO_KV_MOUNT"),
        "{msg}"
    );
    Ok(())
}

#[tokio::test]
async fn sealed_server_is_sealed() -> anyhow::Result<()> {
    let mut bao = OpenbaoServer::sealed().await?;
    let keys = bao.init().await?;
    let dir = tempfile::tempdir()?;
    let err = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(keys.root_token.clone()))
            .with_session_dir(dir.path().to_owned()),
    )
    .await
    .expect_err("sealed");
    match &err {
        SecretError::Sealed { url } => assert_eq!(url, bao.url()),
        other => anyhow::bail!("expected Sealed, got {other:?}"),
    }
    assert!(err.to_string().contains("unseal"), "{err}");
    Ok(())
}

#[tokio::test]
async fn stopped_server_is_unreachable_within_the_timeout() -> anyhow::Result<()> {
    let mut bao = OpenbaoServer::dev().await?;
    let dir = tempfile::tempdir()?;
    let token = bao.root_token().unwrap_or_default().to_owned();
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(token))
            .with_timeout(Duration::from_secs(1))
            .with_session_dir(dir.path().to_owned()),
    )
    .await?;
    store
        .put("doc", &json!({"a": 1}), WriteMode::Cas(None))
        .await?;
    bao.stop();
    let started = Instant::now();
    let err = store.get("doc").await.expect_err("server stopped");
    let elapsed = started.elapsed();
    match &err {
        SecretError::Unreachable { url, .. } => assert_eq!(url, bao.url()),
        other => anyhow::bail!("expected Unreachable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(err.to_string().contains(bao.url()), "{err}");
    Ok(())
}

/// A server that accepts the connection and never answers: the per-request timeout is what ends
/// the wait.
#[tokio::test]
async fn silent_server_times_out_as_unreachable() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    // Accept and hold connections without reading or answering, until the test ends.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(4) {
            held.push(conn);
        }
        std::thread::sleep(Duration::from_secs(10));
    });
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let err = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(&url)
            .with_token(SecretString::from("s.irrelevant"))
            .with_timeout(Duration::from_secs(1))
            .with_session_dir(dir.path().to_owned()),
    )
    .await
    .expect_err("no answer");
    let elapsed = started.elapsed();
    match &err {
        SecretError::Unreachable {
            url: got, reason, ..
        } => {
            assert_eq!(got, &url);
            assert!(reason.contains("no answer within 1.0 s"), "{reason}");
        }
        other => anyhow::bail!("expected Unreachable, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    Ok(())
}
