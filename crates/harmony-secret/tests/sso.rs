//! SSO sign-in to OpenBao, end to end, against a real OpenID provider (`oidc-provider`, run by
//! harmony-testkit) and a real OpenBao whose JWT auth is configured from the provider's
//! discovery. A "person" approves or denies the user code over HTTP, from the notifier.
//!
//! Each test owns its provider, OpenBao and session directory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harmony_secret::oidc::{
    DeviceCodeNotifier, DevicePrompt, OidcClient, OidcError, SsoLogin, SsoSettings,
    exchange_id_token,
};
use harmony_secret::session::{Session, SessionCache};
use harmony_secret::{
    AttemptFailure, AuthError, AuthMethodUsed, AuthStep, ClientOptions, OpenbaoClient,
    OpenbaoSecretStore, OpenbaoSettings, SecretError, SecretStore, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{JwtRole, OidcProvider, OidcProviderOptions};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

mod support;

use support::{POLICY, captured_logs, captured_text};

/// What the "person" does with a user code shown by the notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Person {
    /// Approves at once.
    Approves,
    /// Approves once the provider has answered a poll with `slow_down`.
    ApprovesAfterSlowDown,
    /// Approves once the device has polled once and been told to wait.
    ApprovesAfterFirstPoll,
    /// Presses "Abort".
    Denies,
    /// Never looks.
    Ignores,
}

/// One test's world: a provider, an OpenBao with JWT auth pointed at it, a session directory,
/// and every prompt the notifier was given.
struct World {
    bao: OpenbaoServer,
    op: Arc<OidcProvider>,
    dir: tempfile::TempDir,
    prompts: Arc<Mutex<Vec<DevicePrompt>>>,
}

impl World {
    async fn start(options: OidcProviderOptions, role: JwtRole) -> anyhow::Result<Self> {
        captured_logs();
        let op = OidcProvider::start(options).await?;
        let bao = OpenbaoServer::dev().await?;
        bao.root_call(
            reqwest::Method::PUT,
            "sys/policies/acl/harmony-dev",
            Some(json!({ "policy": POLICY })),
        )
        .await?;
        op.configure_openbao_jwt(&bao, "jwt", &role).await?;
        Ok(Self {
            bao,
            op: Arc::new(op),
            dir: tempfile::tempdir()?,
            prompts: Arc::default(),
        })
    }

    /// Provider polling every second, device codes valid 30 s (a broken approval fails fast),
    /// role `harmony-developer` with the KV policy.
    async fn standard() -> anyhow::Result<Self> {
        Self::start(fast_provider(), dev_role()).await
    }

    fn notifier(&self, person: Person) -> Arc<dyn DeviceCodeNotifier> {
        let op = self.op.clone();
        let prompts = self.prompts.clone();
        let runtime = tokio::runtime::Handle::current();
        Arc::new(move |prompt: &DevicePrompt| {
            prompts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(prompt.clone());
            let (op, code) = (op.clone(), prompt.user_code.clone());
            runtime.spawn(async move {
                let result = match person {
                    Person::Approves => op.approve_user_code(&code, "alice").await,
                    Person::ApprovesAfterSlowDown => {
                        wait_for_poll(&op, "slow_down").await;
                        op.approve_user_code(&code, "alice").await
                    }
                    Person::ApprovesAfterFirstPoll => {
                        wait_for_poll(&op, "authorization_pending").await;
                        op.approve_user_code(&code, "alice").await
                    }
                    Person::Denies => op.deny_user_code(&code).await,
                    Person::Ignores => Ok(()),
                };
                if let Err(e) = result {
                    eprintln!("the test's person could not act on {code}: {e}");
                }
            });
        })
    }

    fn sso(&self, person: Person) -> SsoLogin {
        SsoLogin::new(SsoSettings::new(self.op.issuer(), self.op.client_id()))
            .with_interactive(true)
            .with_notifier(self.notifier(person))
    }

    fn sessions(&self) -> std::path::PathBuf {
        self.dir.path().join("sessions")
    }

    fn settings(&self, sso: SsoLogin) -> OpenbaoSettings {
        OpenbaoSettings::new(self.bao.url())
            .with_session_dir(self.sessions())
            .with_sso(sso)
    }

    async fn connect(&self, person: Person) -> Result<OpenbaoSecretStore, SecretError> {
        OpenbaoSecretStore::connect(self.settings(self.sso(person))).await
    }

    fn prompt_count(&self) -> usize {
        self.prompts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    async fn cached(&self) -> anyhow::Result<Session> {
        SessionCache::new(self.sessions())
            .load(self.bao.url(), "jwt:jwt:harmony-developer")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no cached SSO session"))
    }

    /// Mark the cached OpenBao token expired (the refresh token stays), so the next sign-in
    /// needs a silent refresh: a token the cache still holds would be used instead.
    async fn expire_cached_token(&self) -> anyhow::Result<()> {
        SessionCache::new(self.sessions())
            .update(self.bao.url(), "jwt:jwt:harmony-developer", |s| {
                s.map(|mut s| {
                    s.expires_at = Some(0);
                    s
                })
            })
            .await?
            .ok_or_else(|| anyhow::anyhow!("no cached SSO session to expire"))?;
        Ok(())
    }

    async fn cached_refresh_token(&self) -> anyhow::Result<String> {
        let session = self.cached().await?;
        let oidc = session
            .oidc
            .ok_or_else(|| anyhow::anyhow!("the session has no SSO block"))?;
        Ok(oidc
            .refresh_token
            .ok_or_else(|| anyhow::anyhow!("the session has no refresh token"))?
            .expose_secret()
            .to_owned())
    }
}

fn fast_provider() -> OidcProviderOptions {
    OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        device_code_ttl: Duration::from_secs(30),
        ..Default::default()
    }
}

fn dev_role() -> JwtRole {
    JwtRole {
        policies: vec!["harmony-dev".to_owned()],
        ..Default::default()
    }
}

/// Wait (≤ 20 s) until the provider has answered a device poll with `outcome`.
async fn wait_for_poll(op: &OidcProvider, outcome: &str) {
    for _ in 0..200 {
        if let Ok(polls) = op.polls().await
            && polls.iter().any(|p| p.outcome == outcome)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the provider never answered a poll with {outcome}");
}

fn sso_error(e: SecretError) -> OidcError {
    match e {
        SecretError::Auth(AuthError::Sso(e)) => e,
        other => panic!("expected an SSO error, got {other:?}"),
    }
}

#[tokio::test]
async fn device_flow_signs_in_and_round_trips_a_secret() -> anyhow::Result<()> {
    let world = World::standard().await?;
    let store = world.connect(Person::ApprovesAfterFirstPoll).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::DeviceFlow);
    assert_eq!(world.prompt_count(), 1);

    let doc = json!({"db_url": "postgres://db", "password": "s3cret"});
    let version = store.put("team/app", &doc, WriteMode::Cas(None)).await?;
    let read = store.get("team/app").await?.expect("just written");
    assert_eq!((read.value, read.version), (doc, version));

    // The poll interval the provider sent (1 s) was honoured, not the 5 s default.
    let polls = world.op.polls().await?;
    let outcomes: Vec<&str> = polls.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(outcomes.last(), Some(&"tokens"), "{outcomes:?}");
    let gaps: Vec<u64> = polls.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!(
        gaps.iter().all(|&g| (950..2500).contains(&g)),
        "polls should be ~1 s apart: {gaps:?}"
    );

    // The session file: 0600, with the OpenBao token, its expiry and the SSO state.
    let session = world.cached().await?;
    let oidc = session.oidc.as_ref().expect("SSO block");
    assert_eq!(oidc.issuer, world.op.issuer());
    assert_eq!(oidc.client_id, world.op.client_id());
    assert_eq!(oidc.role, "harmony-developer");
    assert!(oidc.refresh_token.is_some());
    assert!(session.expires_at.is_some());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let path = SessionCache::new(world.sessions())
            .file_path(world.bao.url(), "jwt:jwt:harmony-developer");
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    Ok(())
}

#[tokio::test]
async fn second_process_reuses_the_cached_session_without_a_device_flow() -> anyhow::Result<()> {
    use harmony_env::vars;
    let world = World::standard().await?;
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(world.bao.url())
            // The default location under HARMONY_DATA_DIR, which the child process uses.
            .with_session_dir(world.dir.path().join("sessions"))
            .with_sso(world.sso(Person::Approves)),
    )
    .await?;
    store
        .put(
            "sso/app",
            &json!({"greeting": "hello"}),
            WriteMode::Cas(None),
        )
        .await?;
    let device_polls = world.op.polls().await?.len();

    // A new process, configured only through the environment, non-interactive: it must sign in
    // from the cached session (a device flow would be refused there).
    let output = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "child_reads_with_the_cached_session",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(vars::OPENBAO_URL, world.bao.url())
        .env(vars::HARMONY_SSO_URL, world.op.issuer())
        .env(vars::HARMONY_SSO_CLIENT_ID, world.op.client_id())
        .env(vars::HARMONY_NON_INTERACTIVE, "1")
        .env(vars::HARMONY_DATA_DIR, world.dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(r#"CHILD method=CachedSession value={"greeting":"hello"}"#),
        "child stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        world.prompt_count(),
        1,
        "only the first process was prompted"
    );
    assert_eq!(
        world.op.polls().await?.len(),
        device_polls,
        "no new device flow"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "helper run as a child process by second_process_reuses_the_cached_session_without_a_device_flow"]
async fn child_reads_with_the_cached_session() {
    let settings = OpenbaoSettings::from_env().expect("settings from the environment");
    let store = OpenbaoSecretStore::connect(settings)
        .await
        .expect("connect with the cached session");
    let value = store
        .get("sso/app")
        .await
        .expect("read")
        .expect("present")
        .value;
    println!("CHILD method={:?} value={value}", store.auth_method());
}

#[tokio::test]
async fn expired_openbao_token_is_replaced_by_silent_refresh_without_a_prompt() -> anyhow::Result<()>
{
    let world = World::start(
        fast_provider(),
        JwtRole {
            token_ttl: "2s".to_owned(),
            ..dev_role()
        },
    )
    .await?;
    let first = world.connect(Person::Approves).await?;
    first
        .put("ttl/app", &json!({"k": "v"}), WriteMode::Cas(None))
        .await?;
    assert_eq!(world.prompt_count(), 1);
    let before = world.cached().await?;

    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert!(world.cached().await?.is_expired());

    // A new store: the cached token has expired, the refresh token signs in silently.
    let second = world.connect(Person::Ignores).await?;
    assert_eq!(second.auth_method(), AuthMethodUsed::SilentRefresh);
    assert_eq!(
        second.get("ttl/app").await?.expect("present").value,
        json!({"k": "v"})
    );
    assert_eq!(
        world.prompt_count(),
        1,
        "no user code shown for a silent refresh"
    );
    let after = world.cached().await?;
    assert_ne!(
        after.token.expose_secret(),
        before.token.expose_secret(),
        "a new OpenBao token is cached"
    );

    // The first store's token expired mid-run: its next request signs in again, once, without
    // asking anyone (it finds the token the second store cached).
    assert_eq!(
        first.get("ttl/app").await?.expect("present").value,
        json!({"k": "v"})
    );
    assert_eq!(first.auth_method(), AuthMethodUsed::CachedSession);
    assert_eq!(world.prompt_count(), 1);
    Ok(())
}

/// Two stores (standing in for two processes: the session lock is an OS file lock, which two
/// opens of one file contend for even in one process) find the cached OpenBao token revoked and
/// both fall to the silent refresh at the same moment. Presenting the same refresh token twice
/// would make the provider revoke the whole grant; under the session lock the second store
/// instead finds the token the first one stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_silent_refreshes_refresh_once_and_keep_the_grant() -> anyhow::Result<()> {
    let world = World::standard().await?;
    world.connect(Person::Approves).await?;
    let revoked = world.cached().await?.token.expose_secret().to_owned();
    world
        .bao
        .root_call(
            reqwest::Method::POST,
            "auth/token/revoke",
            Some(json!({ "token": revoked })),
        )
        .await?;

    // Non-interactive: a store that lost its grant could not rescue itself with a device flow.
    let settings = world.settings(world.sso(Person::Ignores).with_interactive(false));
    let (a, b) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(
            OpenbaoSecretStore::connect(settings.clone()),
            OpenbaoSecretStore::connect(settings.clone()),
        )
    })
    .await?;
    let (a, b) = (a?, b?);
    let mut methods = [a.auth_method(), b.auth_method()];
    methods.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(
        methods,
        [AuthMethodUsed::CachedSession, AuthMethodUsed::SilentRefresh],
        "one store refreshes, the other uses what it stored"
    );
    let outcomes: Vec<String> = world
        .op
        .refreshes()
        .await?
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, ["tokens"], "exactly one refresh grant, accepted");
    assert_eq!(world.prompt_count(), 1, "nobody was asked to sign in again");

    // Both hold a live token, and the grant survived: the cached refresh token still works.
    a.put("race/a", &json!({"k": 1}), WriteMode::Cas(None))
        .await?;
    assert!(b.get("race/a").await?.is_some());
    let provider =
        OidcClient::discover(&SsoSettings::new(world.op.issuer(), world.op.client_id())).await?;
    provider
        .refresh(&SecretString::from(world.cached_refresh_token().await?))
        .await?;
    Ok(())
}

#[tokio::test]
async fn rotated_refresh_token_cache_holds_only_the_newest() -> anyhow::Result<()> {
    let world = World::standard().await?;
    world.connect(Person::Approves).await?;
    let first = world.cached_refresh_token().await?;

    // Force the silent-refresh step.
    world.expire_cached_token().await?;
    let refreshed = OpenbaoSecretStore::connect(
        world
            .settings(world.sso(Person::Ignores))
            .with_auth_steps([AuthStep::SilentRefresh]),
    )
    .await?;
    assert_eq!(refreshed.auth_method(), AuthMethodUsed::SilentRefresh);
    let second = world.cached_refresh_token().await?;
    assert_ne!(second, first, "the provider rotated the refresh token");

    // What the cache holds is the live one; the one it replaced is refused.
    let provider =
        OidcClient::discover(&SsoSettings::new(world.op.issuer(), world.op.client_id())).await?;
    provider.refresh(&SecretString::from(second)).await?;
    let old = provider.refresh(&SecretString::from(first)).await;
    assert!(
        matches!(old, Err(OidcError::RefreshRejected { ref error, .. }) if error == "invalid_grant"),
        "{old:?}"
    );
    Ok(())
}

#[tokio::test]
async fn revoked_refresh_token_falls_back_to_the_device_flow() -> anyhow::Result<()> {
    let world = World::standard().await?;
    world.connect(Person::Approves).await?;
    let revoked = world.cached_refresh_token().await?;
    world.op.revoke_refresh_token(&revoked).await?;
    world.expire_cached_token().await?;

    let store = OpenbaoSecretStore::connect(
        world
            .settings(world.sso(Person::Approves))
            .with_auth_steps([AuthStep::SilentRefresh, AuthStep::DeviceFlow]),
    )
    .await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::DeviceFlow);
    assert_eq!(world.prompt_count(), 2, "the person was asked again");
    let newest = world.cached_refresh_token().await?;
    assert_ne!(newest, revoked);
    store
        .put("after/revoke", &json!({"ok": true}), WriteMode::Cas(None))
        .await?;
    Ok(())
}

/// A provider outage (HTTP 500 `server_error`, as Zitadel answers an internal failure) is not
/// a rejected refresh token: the session keeps it, a non-interactive run fails fast saying the
/// provider is unavailable, and the next run refreshes silently with the same token.
#[tokio::test]
async fn provider_outage_keeps_the_refresh_token_for_the_next_run() -> anyhow::Result<()> {
    let options = OidcProviderOptions {
        fail_refresh: 1,
        ..fast_provider()
    };
    outage_keeps_the_refresh_token(options, "server_error", |e| {
        matches!(
            e,
            OidcError::ProviderUnavailable {
                status: Some(500),
                ..
            }
        )
    })
    .await
}

/// The same when the provider's connection breaks before an answer (a transport error).
#[tokio::test]
async fn broken_connection_to_the_provider_keeps_the_refresh_token() -> anyhow::Result<()> {
    let options = OidcProviderOptions {
        drop_refresh: 1,
        ..fast_provider()
    };
    outage_keeps_the_refresh_token(options, "dropped", |e| {
        matches!(e, OidcError::Unreachable { .. })
    })
    .await
}

/// Sign in, let the provider fail the first refresh grant (`options` say how; its log calls
/// that grant `outcome`), and check the refresh token survives it.
async fn outage_keeps_the_refresh_token(
    options: OidcProviderOptions,
    outcome: &str,
    expected: impl Fn(&OidcError) -> bool,
) -> anyhow::Result<()> {
    let world = World::start(options, dev_role()).await?;
    world.connect(Person::Approves).await?;
    let kept = world.cached_refresh_token().await?;
    world.expire_cached_token().await?;

    let non_interactive = || world.settings(world.sso(Person::Ignores).with_interactive(false));
    let started = Instant::now();
    let err = OpenbaoSecretStore::connect(non_interactive())
        .await
        .expect_err("the provider is down");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    let err = sso_error(err);
    assert!(expected(&err), "{err:?}");
    assert!(
        text.contains("unavailable") || text.contains("unreachable"),
        "{text}"
    );
    assert_eq!(
        world.cached_refresh_token().await?,
        kept,
        "the session keeps its refresh token through the outage"
    );

    let store = OpenbaoSecretStore::connect(non_interactive()).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::SilentRefresh);
    assert_eq!(world.prompt_count(), 1, "nobody was asked to sign in again");
    let outcomes: Vec<String> = world
        .op
        .refreshes()
        .await?
        .into_iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [outcome, "tokens"]);
    Ok(())
}

#[tokio::test]
async fn expired_refresh_token_falls_back_to_the_device_flow() -> anyhow::Result<()> {
    let world = World::start(
        OidcProviderOptions {
            refresh_token_ttl: Duration::from_secs(1),
            ..fast_provider()
        },
        dev_role(),
    )
    .await?;
    world.connect(Person::Approves).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    world.expire_cached_token().await?;
    let store = OpenbaoSecretStore::connect(
        world
            .settings(world.sso(Person::Approves))
            .with_auth_steps([AuthStep::SilentRefresh, AuthStep::DeviceFlow]),
    )
    .await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::DeviceFlow);
    assert_eq!(world.prompt_count(), 2);
    Ok(())
}

#[tokio::test]
async fn access_denied_ends_the_sign_in_with_a_clear_error() -> anyhow::Result<()> {
    let world = World::standard().await?;
    let err = sso_error(world.connect(Person::Denies).await.expect_err("denied"));
    assert!(matches!(err, OidcError::AccessDenied { .. }), "{err:?}");
    assert!(err.to_string().contains("denied"), "{err}");
    let polls = world.op.polls().await?;
    assert_eq!(
        polls.last().map(|p| p.outcome.as_str()),
        Some("access_denied")
    );
    Ok(())
}

#[tokio::test]
async fn expired_device_code_ends_the_sign_in_with_a_clear_error() -> anyhow::Result<()> {
    let world = World::start(
        OidcProviderOptions {
            device_code_ttl: Duration::from_secs(2),
            ..fast_provider()
        },
        dev_role(),
    )
    .await?;
    let started = Instant::now();
    let err = sso_error(world.connect(Person::Ignores).await.expect_err("expired"));
    assert!(
        matches!(err, OidcError::DeviceCodeExpired { expires_in_secs: 2 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("expired"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "polling stops at the code's expiry: {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_the_poll_interval() -> anyhow::Result<()> {
    let world = World::start(
        OidcProviderOptions {
            slow_down: 1,
            ..fast_provider()
        },
        dev_role(),
    )
    .await?;
    let store = world.connect(Person::ApprovesAfterSlowDown).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::DeviceFlow);
    let polls = world.op.polls().await?;
    let outcomes: Vec<&str> = polls.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(outcomes, ["slow_down", "tokens"]);
    let gap = polls[1].at_ms - polls[0].at_ms;
    assert!(
        gap >= 6000,
        "after slow_down the next poll waits interval (1 s) + 5 s, waited {gap} ms"
    );
    assert!(gap < 8000, "but not much longer: {gap} ms");
    Ok(())
}

#[tokio::test]
async fn wrong_role_or_audience_is_an_error_with_openbaos_message() -> anyhow::Result<()> {
    let world = World::standard().await?;
    let err = sso_error(
        OpenbaoSecretStore::connect(
            world.settings(world.sso(Person::Approves).with_jwt_role("no-such-role")),
        )
        .await
        .expect_err("unknown role"),
    );
    match &err {
        OidcError::JwtLogin {
            role,
            status,
            message,
            ..
        } => {
            assert_eq!((role.as_str(), *status), ("no-such-role", 400));
            assert!(message.contains("no-such-role"), "{message}");
        }
        other => panic!("expected JwtLogin, got {other:?}"),
    }

    world
        .op
        .write_openbao_jwt_role(
            &world.bao,
            "jwt",
            &JwtRole {
                name: "other-audience".to_owned(),
                bound_audiences: Some(vec!["some-other-client".to_owned()]),
                ..dev_role()
            },
        )
        .await?;
    let err = sso_error(
        OpenbaoSecretStore::connect(
            world.settings(world.sso(Person::Approves).with_jwt_role("other-audience")),
        )
        .await
        .expect_err("wrong audience"),
    );
    let text = err.to_string();
    assert!(
        matches!(err, OidcError::JwtLogin { .. }) && text.contains("aud"),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn non_interactive_without_a_session_fails_fast_and_clearly() -> anyhow::Result<()> {
    let world = World::standard().await?;
    let started = Instant::now();
    let err = OpenbaoSecretStore::connect(
        world.settings(world.sso(Person::Approves).with_interactive(false)),
    )
    .await
    .expect_err("nobody to approve");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    match &err {
        SecretError::Auth(AuthError::Exhausted { attempts, .. }) => {
            assert!(
                attempts.iter().any(|a| a.step == AuthStep::DeviceFlow
                    && a.failure == AttemptFailure::NonInteractive),
                "{attempts:?}"
            );
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("HARMONY_NON_INTERACTIVE"), "{text}");
    assert_eq!(world.prompt_count(), 0);
    assert!(world.op.polls().await?.is_empty(), "no device flow started");
    Ok(())
}

#[tokio::test]
async fn no_token_of_any_kind_in_logs_debug_or_errors() -> anyhow::Result<()> {
    let logs = captured_logs();
    let world = World::standard().await?;
    let store = world.connect(Person::Approves).await?;
    let session = world.cached().await?;
    let refresh_first = world.cached_refresh_token().await?;
    world.expire_cached_token().await?;
    let refreshed = OpenbaoSecretStore::connect(
        world
            .settings(world.sso(Person::Ignores))
            .with_auth_steps([AuthStep::SilentRefresh]),
    )
    .await?;
    let refresh_second = world.cached_refresh_token().await?;
    let openbao_second = world.cached().await?.token.expose_secret().to_owned();

    // An id_token and a refused exchange, through the public API.
    let provider =
        OidcClient::discover(&SsoSettings::new(world.op.issuer(), world.op.client_id())).await?;
    let tokens = provider
        .device_flow(
            world.notifier(Person::Approves).as_ref(),
            &Default::default(),
        )
        .await?;
    let id_token = tokens.id_token.expose_secret().to_owned();
    let refresh_third = tokens
        .refresh_token
        .as_ref()
        .expect("refresh token")
        .expose_secret()
        .to_owned();
    let openbao = OpenbaoClient::build(
        world.bao.url(),
        &ClientOptions::default().with_timeout(Duration::from_secs(5)),
    )?;
    let refused = exchange_id_token(&openbao, "jwt", "no-such-role", &tokens.id_token)
        .await
        .expect_err("unknown role");
    let stale = provider
        .refresh(&SecretString::from(refresh_first.clone()))
        .await
        .expect_err("rotated away");

    let secrets = [
        (
            "OpenBao token (device flow)",
            session.token.expose_secret().to_owned(),
        ),
        ("OpenBao token (silent refresh)", openbao_second),
        ("refresh token 1", refresh_first),
        ("refresh token 2", refresh_second),
        ("refresh token 3", refresh_third),
        ("id_token", id_token),
    ];
    let texts = [
        ("store Debug", format!("{store:?} {refreshed:?}")),
        (
            "settings Debug",
            format!("{:?}", world.settings(world.sso(Person::Ignores))),
        ),
        ("session Debug", format!("{session:?}")),
        ("tokens Debug", format!("{tokens:?}")),
        ("exchange error", format!("{refused} / {refused:?}")),
        ("refresh error", format!("{stale} / {stale:?}")),
        ("logs", captured_text(&logs)),
    ];
    for (secret_name, secret) in &secrets {
        assert!(
            secret.len() >= 16,
            "{secret_name} looks too short to be real"
        );
        for (where_, text) in &texts {
            assert!(
                !text.contains(secret.as_str()),
                "{secret_name} leaked into {where_}"
            );
        }
    }
    // The logs did capture this flow (so the check above had something to look at).
    assert!(
        texts[6].1.contains("sign-in approved"),
        "logs were not captured"
    );
    Ok(())
}

/// Regression (review finding 5): the id_token exchange built its own HTTP client, so the
/// OpenBao TLS settings (CA) and the namespace did not apply to it. Here OpenBao speaks HTTPS
/// with its own CA and the JWT auth lives in namespace `team-a`: the device flow's id_token
/// is exchanged through the store's one client, and the session works in the namespace.
#[tokio::test]
async fn sso_sign_in_reaches_a_tls_openbao_in_a_namespace() -> anyhow::Result<()> {
    captured_logs();
    let op = Arc::new(OidcProvider::start(fast_provider()).await?);
    let bao = OpenbaoServer::dev_tls().await?;
    bao.create_namespace("team-a").await?;
    for (path, body) in [
        ("sys/policies/acl/harmony-dev", json!({ "policy": POLICY })),
        ("sys/auth/jwt", json!({ "type": "jwt" })),
        (
            "auth/jwt/config",
            json!({ "oidc_discovery_url": op.issuer() }),
        ),
        (
            "auth/jwt/role/harmony-developer",
            json!({
                "role_type": "jwt",
                "bound_audiences": [op.client_id()],
                "user_claim": "sub",
                "token_policies": ["harmony-dev"],
                "token_ttl": "1h",
            }),
        ),
    ] {
        bao.root_call_in("team-a", reqwest::Method::POST, path, Some(body))
            .await?;
    }
    let ca = bao
        .ca_cert()
        .ok_or_else(|| anyhow::anyhow!("dev-tls has a CA"))?;
    let dir = tempfile::tempdir()?;
    let notifier: Arc<dyn DeviceCodeNotifier> = {
        let op = op.clone();
        let runtime = tokio::runtime::Handle::current();
        Arc::new(move |prompt: &DevicePrompt| {
            let (op, code) = (op.clone(), prompt.user_code.clone());
            runtime.spawn(async move {
                if let Err(e) = op.approve_user_code(&code, "alice").await {
                    eprintln!("could not approve {code}: {e}");
                }
            });
        })
    };
    let settings = OpenbaoSettings::new(bao.url())
        .with_tls(harmony_secret::TlsSettings::default().with_ca_cert(&ca))
        .with_namespace(Some("team-a".to_owned()))
        .with_session_dir(dir.path().join("sessions"))
        .with_sso(
            SsoLogin::new(SsoSettings::new(op.issuer(), op.client_id()))
                .with_interactive(true)
                .with_notifier(notifier),
        );
    let store = OpenbaoSecretStore::connect(settings.clone()).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::DeviceFlow);
    store
        .put("sso-ns", &json!({"who": "alice"}), WriteMode::Cas(None))
        .await?;
    let raw = bao
        .root_call_in(
            "team-a",
            reqwest::Method::GET,
            "secret/data/harmony/sso-ns",
            None,
        )
        .await?;
    assert_eq!(raw["data"]["data"], json!({"who": "alice"}));
    // The next run reuses the namespace's session.
    let again = OpenbaoSecretStore::connect(settings).await?;
    assert_eq!(again.auth_method(), AuthMethodUsed::CachedSession);
    Ok(())
}
