//! The auth chain and session cache against a real OpenBao (harmony-testkit): userpass login,
//! reuse of a cached session without logging in, renewal, fall-through on a revoked token,
//! re-authentication mid-run, and that no token or password reaches `Debug`, errors or logs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony_secret::session::{Session, SessionCache};
use harmony_secret::{
    AttemptFailure, AuthError, AuthMethodUsed, AuthStep, OpenbaoSecretStore, OpenbaoSettings,
    SecretError, SecretStore, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

mod support;

use support::{POLICY, captured_logs, captured_text};

/// A dev OpenBao with userpass user `user` / `password` allowed to use `secret/harmony/*`.
async fn server_with_user(user: &str, password: &str, ttl: &str) -> anyhow::Result<OpenbaoServer> {
    captured_logs();
    let bao = OpenbaoServer::dev().await?;
    bao.root_call(
        Method::PUT,
        "sys/policies/acl/harmony-rw",
        Some(json!({ "policy": POLICY })),
    )
    .await?;
    bao.add_userpass_user(user, password, &["harmony-rw"], ttl)
        .await?;
    Ok(bao)
}

fn userpass_settings(
    bao: &OpenbaoServer,
    dir: &Path,
    user: &str,
    password: &str,
) -> OpenbaoSettings {
    OpenbaoSettings::new(bao.url())
        .with_userpass(user, SecretString::from(password))
        .with_session_dir(dir.to_owned())
}

fn session_file(bao: &OpenbaoServer, dir: &Path, user: &str) -> PathBuf {
    SessionCache::new(dir).file_path(bao.url(), &format!("userpass:userpass:{user}"))
}

async fn cached(bao: &OpenbaoServer, dir: &Path, user: &str) -> anyhow::Result<Session> {
    SessionCache::new(dir)
        .load(bao.url(), &format!("userpass:userpass:{user}"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no session cached for {user}"))
}

async fn change_password(bao: &OpenbaoServer, user: &str, password: &str) -> anyhow::Result<()> {
    bao.root_call(
        Method::POST,
        &format!("auth/userpass/users/{user}/password"),
        Some(json!({ "password": password })),
    )
    .await?;
    Ok(())
}

async fn revoke(bao: &OpenbaoServer, session: &Session) -> anyhow::Result<()> {
    let accessor = session
        .accessor
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the session records its accessor"))?;
    bao.root_call(
        Method::POST,
        "auth/token/revoke-accessor",
        Some(json!({ "accessor": accessor })),
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn userpass_login_then_cached_session_without_login() -> anyhow::Result<()> {
    let bao = server_with_user("alice", "first-password", "1h").await?;
    let dir = tempfile::tempdir()?;
    let first = OpenbaoSecretStore::connect(userpass_settings(
        &bao,
        dir.path(),
        "alice",
        "first-password",
    ))
    .await?;
    assert_eq!(first.auth_method(), AuthMethodUsed::Userpass);
    first
        .put("alice-doc", &json!({"k": "v"}), WriteMode::Cas(None))
        .await?;

    let file = session_file(&bao, dir.path(), "alice");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "session file mode");
        let dir_mode = std::fs::metadata(dir.path())?.permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700, "session dir mode");
    }

    // With the old password a new login would now fail: a second store that works proves the
    // cached token was used without logging in.
    change_password(&bao, "alice", "second-password").await?;
    let second = OpenbaoSecretStore::connect(userpass_settings(
        &bao,
        dir.path(),
        "alice",
        "first-password",
    ))
    .await?;
    assert_eq!(second.auth_method(), AuthMethodUsed::CachedSession);
    assert_eq!(
        second.get("alice-doc").await?.map(|d| d.value),
        Some(json!({"k": "v"}))
    );

    // And the stale password really is rejected once the session is gone.
    SessionCache::new(dir.path())
        .remove(bao.url(), "userpass:userpass:alice")
        .await?;
    let err = OpenbaoSecretStore::connect(userpass_settings(
        &bao,
        dir.path(),
        "alice",
        "first-password",
    ))
    .await
    .expect_err("old password");
    match &err {
        SecretError::Auth(AuthError::Exhausted { attempts, .. }) => {
            let userpass = attempts
                .iter()
                .find(|a| a.step == AuthStep::Userpass)
                .ok_or_else(|| anyhow::anyhow!("userpass attempt listed: {attempts:?}"))?;
            assert!(
                matches!(&userpass.failure, AttemptFailure::Rejected { message } if message.contains("invalid")),
                "{userpass:?}"
            );
        }
        other => anyhow::bail!("expected Exhausted, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("OPENBAO_USERNAME") && text.contains(bao.url()),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn revoked_cached_token_falls_through_to_userpass() -> anyhow::Result<()> {
    let bao = server_with_user("bob", "bob-password", "1h").await?;
    let dir = tempfile::tempdir()?;
    let settings = userpass_settings(&bao, dir.path(), "bob", "bob-password");
    OpenbaoSecretStore::connect(settings.clone()).await?;
    let old = cached(&bao, dir.path(), "bob").await?;
    revoke(&bao, &old).await?;

    let store = OpenbaoSecretStore::connect(settings).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::Userpass);
    store
        .put("bob-doc", &json!({"x": 1}), WriteMode::Cas(None))
        .await?;
    let new = cached(&bao, dir.path(), "bob").await?;
    assert_ne!(new.accessor, old.accessor, "the cache holds the new token");
    assert_ne!(new.token.expose_secret(), old.token.expose_secret());
    Ok(())
}

#[tokio::test]
async fn cached_token_close_to_expiry_is_renewed() -> anyhow::Result<()> {
    let bao = server_with_user("carol", "carol-password", "4s").await?;
    let dir = tempfile::tempdir()?;
    let settings = userpass_settings(&bao, dir.path(), "carol", "carol-password");
    OpenbaoSecretStore::connect(settings.clone()).await?;
    let before = cached(&bao, dir.path(), "carol").await?;
    assert!(before.renewable);
    // Wait until OpenBao itself reports less than a third of the 4 s TTL left (it rounds the
    // seconds, so a fixed sleep would be flaky).
    let accessor = before.accessor.clone().unwrap_or_default();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info = bao
            .root_call(
                Method::POST,
                "auth/token/lookup-accessor",
                Some(json!({ "accessor": accessor })),
            )
            .await?;
        let ttl = info["data"]["ttl"].as_u64().unwrap_or(u64::MAX);
        if ttl.saturating_mul(3) < 4 {
            break;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "token TTL never dropped below a third (last {ttl} s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = OpenbaoSecretStore::connect(settings).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::CachedSession);
    let after = cached(&bao, dir.path(), "carol").await?;
    assert_eq!(after.accessor, before.accessor, "same token, renewed");
    let (b, a) = (
        before.expires_at.unwrap_or_default(),
        after.expires_at.unwrap_or_default(),
    );
    assert!(a > b, "expiry moved forward: {b} -> {a}");
    // Past the original expiry the token still works, so OpenBao did renew it.
    let wait = b.saturating_sub(harmony_now()) + 1;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    store
        .put("carol-doc", &json!({"ok": 1}), WriteMode::Cas(None))
        .await?;
    Ok(())
}

fn harmony_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test]
async fn token_revoked_mid_run_signs_in_again_once() -> anyhow::Result<()> {
    let bao = server_with_user("dave", "dave-password", "1h").await?;
    let dir = tempfile::tempdir()?;
    let store =
        OpenbaoSecretStore::connect(userpass_settings(&bao, dir.path(), "dave", "dave-password"))
            .await?;
    store
        .put("dave-doc", &json!({"v": 1}), WriteMode::Cas(None))
        .await?;
    let first = cached(&bao, dir.path(), "dave").await?;
    revoke(&bao, &first).await?;

    // Concurrent reads all hit the revoked token; together they sign in once.
    let (a, b, c) = tokio::join!(store.get("dave-doc"), store.get("dave-doc"), store.list(""));
    assert_eq!(a?.map(|d| d.version), Some(1));
    assert_eq!(b?.map(|d| d.version), Some(1));
    assert_eq!(c?, ["dave-doc"]);
    assert_eq!(store.auth_method(), AuthMethodUsed::Userpass);
    let second = cached(&bao, dir.path(), "dave").await?;
    assert_ne!(second.accessor, first.accessor, "a new login happened");

    // With no way to sign in again (explicit token only), a revoked token ends in one clear
    // error instead of a retry loop.
    let token = bao.token_with_policy("harmony-rw-2", POLICY, "1h").await?;
    let explicit = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(token.clone()))
            .with_session_dir(dir.path().join("explicit")),
    )
    .await?;
    assert_eq!(explicit.auth_method(), AuthMethodUsed::Token);
    bao.root_call(
        Method::POST,
        "auth/token/revoke",
        Some(json!({ "token": token })),
    )
    .await?;
    let err = explicit.get("dave-doc").await.expect_err("token revoked");
    match &err {
        SecretError::Auth(AuthError::Exhausted { attempts, .. }) => {
            assert!(
                matches!(
                    attempts.first(),
                    Some(a) if a.step == AuthStep::ExplicitToken
                        && matches!(a.failure, AttemptFailure::Rejected { .. })
                ),
                "{attempts:?}"
            );
        }
        other => anyhow::bail!("expected Auth(Exhausted), got {other:?}"),
    }
    Ok(())
}

/// Several stores logging in at once all write the same session file; it must end up one
/// complete, valid session (no torn or interleaved write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_leave_a_valid_session_file() -> anyhow::Result<()> {
    let bao = server_with_user("erin", "erin-password", "1h").await?;
    let dir = tempfile::tempdir()?;
    let settings = userpass_settings(&bao, dir.path(), "erin", "erin-password");
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let settings = settings.clone();
        tasks.push(tokio::spawn(OpenbaoSecretStore::connect(settings)));
    }
    for t in tasks {
        t.await??;
    }
    let file = session_file(&bao, dir.path(), "erin");
    let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&file)?)?;
    assert_eq!(parsed["identity"], "userpass:userpass:erin");
    let session = cached(&bao, dir.path(), "erin").await?;
    let store = OpenbaoSecretStore::connect(settings).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::CachedSession);
    let again = cached(&bao, dir.path(), "erin").await?;
    assert_eq!(again.accessor, session.accessor);
    Ok(())
}

#[tokio::test]
async fn explicit_token_wins_and_is_not_cached() -> anyhow::Result<()> {
    let bao = server_with_user("frank", "frank-password", "1h").await?;
    let dir = tempfile::tempdir()?;
    let token = bao.token_with_policy("harmony-rw-3", POLICY, "1h").await?;
    let store = OpenbaoSecretStore::connect(
        userpass_settings(&bao, dir.path(), "frank", "frank-password")
            .with_token(SecretString::from(token)),
    )
    .await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::Token);
    assert!(
        !session_file(&bao, dir.path(), "frank").exists(),
        "no login happened, so nothing was cached"
    );
    // A rejected explicit token falls through to the next step.
    let store = OpenbaoSecretStore::connect(
        userpass_settings(&bao, dir.path(), "frank", "frank-password")
            .with_token(SecretString::from("s.not-a-real-token")),
    )
    .await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::Userpass);
    Ok(())
}

#[tokio::test]
async fn no_secret_in_debug_errors_or_logs() -> anyhow::Result<()> {
    let logs = captured_logs();
    let password = "pw-leak-canary-1f3a";
    let bad_password = "pw-wrong-canary-9c2e";
    let bad_token = "s.bad-token-canary-77d1";
    let bao = server_with_user("grace", password, "1h").await?;
    let dir = tempfile::tempdir()?;

    let mut texts = Vec::new();
    let settings = userpass_settings(&bao, dir.path(), "grace", password)
        .with_token(SecretString::from(bad_token));
    texts.push(format!("{settings:?}"));
    let store = OpenbaoSecretStore::connect(settings.clone()).await?;
    texts.push(format!("{store:?}"));
    texts.push(format!("{:?}", store.client()));
    store
        .put("g", &json!({"a": 1}), WriteMode::Cas(None))
        .await?;
    let session = cached(&bao, dir.path(), "grace").await?;
    texts.push(format!("{session:?}"));
    let token = session.token.expose_secret().to_owned();

    // Revoke mid-run: re-authentication logs too.
    revoke(&bao, &session).await?;
    store.get("g").await?;
    let new_token = cached(&bao, dir.path(), "grace")
        .await?
        .token
        .expose_secret()
        .to_owned();

    // Errors: wrong password, forbidden path, conflict.
    SessionCache::new(dir.path())
        .remove(bao.url(), "userpass:userpass:grace")
        .await?;
    let err = OpenbaoSecretStore::connect(
        userpass_settings(&bao, dir.path(), "grace", bad_password)
            .with_token(SecretString::from(bad_token)),
    )
    .await
    .expect_err("wrong password");
    texts.push(format!("{err} {err:?}"));
    let err = store.get("../x").await.expect_err("bad path");
    texts.push(format!("{err} {err:?}"));
    let err = store
        .put("g", &json!({"a": 2}), WriteMode::Cas(None))
        .await
        .expect_err("conflict");
    texts.push(format!("{err} {err:?}"));

    let root = bao.root_token().unwrap_or_default().to_owned();
    let log_text = captured_text(&logs);
    assert!(
        log_text.contains("signed in to OpenBao"),
        "the capture works (else this test proves nothing): {} bytes",
        log_text.len()
    );
    for secret in [password, bad_password, bad_token, &token, &new_token, &root] {
        assert!(!log_text.contains(secret), "a secret leaked into the logs");
        for text in &texts {
            assert!(!text.contains(secret), "a secret leaked into: {text}");
        }
    }
    Ok(())
}
