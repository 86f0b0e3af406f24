//! `harmony login`, `status` and `logout` against a real OpenBao (testkit dev server) and the
//! real test OpenID provider (`oidc-provider` under Node), the device flow approved over HTTP.

mod harness;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{JwtRole, OidcProvider, OidcProviderOptions};
use harness::{files_under, harmony, sso_login, stderr, stdout};
use reqwest::Method;
use serde_json::Value;

/// A dev OpenBao whose JWT auth trusts `provider`, role `harmony-developer` with `policies`.
async fn bao_with_sso(provider: &OidcProvider, policies: &[&str]) -> OpenbaoServer {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    provider
        .configure_openbao_jwt(
            &bao,
            "jwt",
            &JwtRole {
                policies: policies.iter().map(|p| (*p).to_owned()).collect(),
                ..JwtRole::default()
            },
        )
        .await
        .expect("JWT auth on OpenBao");
    bao
}

/// A dev OpenBao with the team's KV policy, whose JWT auth gives SSO users that policy for
/// `token_ttl`.
async fn bao_for_the_team(provider: &OidcProvider, token_ttl: &str) -> OpenbaoServer {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    bao.root_call(
        Method::PUT,
        "sys/policies/acl/team",
        Some(serde_json::json!({ "policy": harness::kv_policy("harmony") })),
    )
    .await
    .expect("team policy");
    provider
        .configure_openbao_jwt(
            &bao,
            "jwt",
            &JwtRole {
                policies: vec!["default".to_owned(), "team".to_owned()],
                token_ttl: token_ttl.to_owned(),
                ..JwtRole::default()
            },
        )
        .await
        .expect("JWT auth");
    bao
}

#[tokio::test]
async fn status_without_a_session_says_so() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args(["status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("unsealed"), "{text}");
    assert!(text.contains("signed in:     no"), "{text}");
    assert!(text.contains("harmony login"), "{text}");

    let out = harmony(data.path())
        .args(["status", "--output", "json", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["signed_in"], false);
    assert_eq!(report["server"]["sealed"], false);
    assert!(report.get("session").is_none(), "{report}");
    assert!(files_under(data.path()).is_empty(), "status writes nothing");

    // Which store sessions use: the file when asked for, the OS keychain by default where one
    // answers (Linux keyutils here).
    for (setting, want) in [("file", "file"), ("keychain", "keychain")] {
        let out = harmony(data.path())
            .env(harmony_env::vars::HARMONY_SESSION_STORE, setting)
            .args(["status", "--output", "json", "--openbao-url", bao.url()])
            .output()
            .expect("run");
        let report: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
        assert_eq!(report["session_store"], want, "{}", stderr(&out));
    }
}

#[tokio::test]
async fn status_of_an_unreachable_server_exits_1_naming_it() {
    let mut bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let url = bao.url().trim_end_matches('/').to_owned();
    bao.stop();
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args(["status", "--openbao-url", &url])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("unreachable"), "{}", stdout(&out));
    assert!(stdout(&out).contains(&url), "{}", stdout(&out));
}

#[tokio::test]
async fn sso_login_status_logout_then_the_old_tokens_are_dead() {
    let provider = OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider");
    let bao = bao_with_sso(&provider, &["default"]).await;
    let data = tempfile::tempdir().expect("tempdir");

    let (out, err) = sso_login(data.path(), bao.url(), &provider, "alice").await;
    assert!(out.is_empty(), "login prints no data: {out}");
    assert!(err.contains("signed in to"), "{err}");

    // The session is cached 0600 with the OpenBao token and the refresh token.
    let sessions: Vec<_> = files_under(&data.path().join("sessions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let mode = std::fs::metadata(&sessions[0])
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let (token, refresh) = cached_tokens(&sessions[0]).await;
    let refresh = refresh.expect("refresh token");
    assert!(!err.contains(&token) && !err.contains(&refresh));

    // status shows the SSO identity, as text and JSON, from a new process without flags but
    // the URL (the login record says how to sign in).
    let st = harmony(data.path())
        .args(["status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(st.status.success(), "{}", stderr(&st));
    let text = stdout(&st);
    assert!(
        text.contains("signed in:     yes, as jwt-alice (via sso login)"),
        "{text}"
    );
    assert!(text.contains("refresh token: held"), "{text}");
    assert!(text.contains("auth/jwt/login"), "{text}");
    assert!(!text.contains(&token) && !text.contains(&refresh));
    let st = harmony(data.path())
        .args(["--output", "json", "status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&st.stdout).expect("JSON");
    assert_eq!(report["signed_in"], true, "{report}");
    assert_eq!(report["session"]["method"], "sso");
    assert_eq!(report["session"]["display_name"], "jwt-alice");
    assert_eq!(report["session"]["refresh_token"], true);
    assert!(
        report["session"]["entity_id"]
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    assert!(
        report["session"]["ttl_seconds"]
            .as_u64()
            .is_some_and(|t| t > 0)
    );
    assert!(
        report["session"]["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "default")),
        "{report}"
    );

    // logout revokes both tokens and deletes the session.
    let lo = harmony(data.path())
        .args(["logout", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(lo.status.success(), "{}", stderr(&lo));
    let err = stderr(&lo);
    assert!(err.contains("revoked the OpenBao token"), "{err}");
    assert!(err.contains("revoked the refresh token"), "{err}");
    assert!(
        !files_under(&data.path().join("sessions"))
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json")),
        "session file deleted"
    );

    // The old OpenBao token fails lookup-self...
    let http = reqwest::Client::new();
    let lookup = http
        .get(format!(
            "{}/v1/auth/token/lookup-self",
            bao.url().trim_end_matches('/')
        ))
        .header("X-Vault-Token", &token)
        .send()
        .await
        .expect("lookup-self");
    assert_eq!(lookup.status().as_u16(), 403, "the old token still works");
    // ...and the provider refuses the refresh token.
    let refreshed = http
        .post(format!("{}/token", provider.issuer()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", provider.client_id()),
        ])
        .send()
        .await
        .expect("refresh grant");
    assert_eq!(refreshed.status().as_u16(), 400);
    let body: Value = refreshed.json().await.expect("OAuth error JSON");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // status now says there is no session.
    let st = harmony(data.path())
        .args(["status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(stdout(&st).contains("signed in:     no"), "{}", stdout(&st));
}

#[tokio::test]
async fn token_stdin_login_is_used_by_status_and_forgotten_not_revoked_by_logout() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let token = bao
        .token_with_policy("reader", &harness::kv_policy("harmony"), "1h")
        .await
        .expect("a token with the default policy");
    let out = harmony(data.path())
        .args(["login", "--token-stdin", "--openbao-url", bao.url()])
        .write_stdin(format!("{token}\n"))
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = harmony(data.path())
        .args(["--output", "json", "status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&st.stdout).expect("JSON");
    assert_eq!(report["signed_in"], true, "{report}");
    assert_eq!(report["session"]["method"], "token");
    assert!(!stdout(&st).contains(&token));

    let lo = harmony(data.path())
        .args(["logout", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(lo.status.success(), "{}", stderr(&lo));
    let still = bao
        .root_call(
            Method::POST,
            "auth/token/lookup",
            Some(serde_json::json!({ "token": token })),
        )
        .await;
    assert!(
        still.is_ok(),
        "a token you brought is not revoked: {still:?}"
    );

    // A bad token is refused and nothing is stored.
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args(["login", "--token-stdin", "--openbao-url", bao.url()])
        .write_stdin("not-a-token\n")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-a-token"), "{}", stderr(&out));
    assert!(files_under(data.path()).is_empty(), "nothing stored");
}

#[tokio::test]
async fn login_without_a_method_or_device_flow_off_a_terminal_is_usage_or_clear_error() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args(["login", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for flag in ["--sso", "--userpass", "--token-stdin"] {
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
    let out = harmony(data.path())
        .args(["login", "--sso", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--sso-url"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(vars::HARMONY_SSO_URL),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn userpass_login_then_logout_revokes_the_token() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    bao.add_userpass_user("bob", "pw-bob-not-real", &["default"], "1h")
        .await
        .expect("userpass user");
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args([
            "login",
            "--userpass",
            "--username",
            "bob",
            "--openbao-url",
            bao.url(),
        ])
        .env(vars::OPENBAO_PASSWORD, "pw-bob-not-real")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("pw-bob-not-real"));
    // Later commands need neither the user nor the password.
    let st = harmony(data.path())
        .args(["--output", "json", "status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&st.stdout).expect("JSON");
    assert_eq!(report["signed_in"], true, "{report}");
    assert_eq!(report["session"]["method"], "userpass");
    assert_eq!(report["session"]["display_name"], "userpass-bob");

    let (token, _) = cached_tokens(
        &files_under(&data.path().join("sessions"))
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("session file"),
    )
    .await;
    // Another session cached for the same server (e.g. a chain signed in with other
    // credentials) is forgotten too; another server's is kept.
    let sessions = data.path().join("sessions");
    let base = bao.url().trim_end_matches('/');
    std::fs::write(
        sessions.join("other.json"),
        format!(r#"{{"url":"{base}","identity":"userpass:userpass:someone"}}"#),
    )
    .expect("write");
    std::fs::write(
        sessions.join("elsewhere.json"),
        r#"{"url":"https://bao.example.com","identity":"x"}"#,
    )
    .expect("write");
    let lo = harmony(data.path())
        .args(["logout", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(lo.status.success(), "{}", stderr(&lo));
    let looked = bao
        .root_call(
            Method::POST,
            "auth/token/lookup",
            Some(serde_json::json!({ "token": token })),
        )
        .await;
    assert!(looked.is_err(), "the token was revoked: {looked:?}");
    assert!(!sessions.join("other.json").exists(), "{}", stderr(&lo));
    assert!(sessions.join("elsewhere.json").exists());

    // A wrong password is a clear failure (exit 1), nothing cached.
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args([
            "login",
            "--userpass",
            "--username",
            "bob",
            "--openbao-url",
            bao.url(),
        ])
        .env(vars::OPENBAO_PASSWORD, "wrong-password-xyz")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-password-xyz"));
    assert!(!data.path().join("cli").exists(), "no login recorded");
}

#[tokio::test]
async fn a_teammates_day_sso_login_config_round_trip_logout() {
    let provider = OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider");
    let bao = bao_for_the_team(&provider, "1h").await;
    let data = tempfile::tempdir().expect("tempdir");
    sso_login(data.path(), bao.url(), &provider, "carol").await;

    // Every later command signs in from the cached session: no flags but the URL, no code.
    let run = |args: &[&str]| {
        harmony(data.path())
            .env(vars::OPENBAO_URL, bao.url())
            .args(args)
            .output()
            .expect("run")
    };
    for args in [
        &["config", "set", "team-app", "replicas=2", "region=eu"][..],
        &["config", "set", "team-app", "replicas=3"][..],
    ] {
        let out = run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("code:"),
            "no device flow: {}",
            stderr(&out)
        );
    }
    let out = run(&["--output", "json", "config", "get", "team-app"]);
    let got: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(got, serde_json::json!({"replicas": 3, "region": "eu"}));
    // edit with a scripted editor, then the diff shows it.
    let editor = harness::write_executable(
        data.path(),
        "editor.sh",
        "#!/bin/sh\nsed -i 's/^region: .*/region: us/' \"$1\"\n",
    );
    let out = harmony(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::EDITOR, &editor)
        .args(["config", "edit", "team-app"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("saved version 3"), "{}", stderr(&out));
    let out = run(&["config", "diff", "team-app"]);
    assert!(
        stdout(&out).contains("~ region: \"eu\" -> \"us\""),
        "{}",
        stdout(&out)
    );
    let out = run(&["config", "history", "team-app"]);
    assert!(stdout(&out).contains("current"), "{}", stdout(&out));
    let out = run(&["config", "rollback", "team-app", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = bao
        .root_call(Method::GET, "secret/data/harmony/team-app", None)
        .await
        .expect("read");
    assert_eq!(doc["data"]["data"]["replicas"], 2);
    assert_eq!(doc["data"]["data"]["region"], "eu");
    assert_eq!(doc["data"]["metadata"]["version"], 4);

    let out = run(&["logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["config", "get", "team-app"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("harmony login"), "{}", stderr(&out));
}

/// On a terminal (a real pty from `script`), `login --userpass` asks for the password, echoes
/// only stars, and signs in.
#[tokio::test]
async fn userpass_password_is_asked_on_a_terminal() {
    use std::io::{Read as _, Write as _};

    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    bao.add_userpass_user("dana", "typed-pw-not-real", &["default"], "1h")
        .await
        .expect("userpass user");
    let data = tempfile::tempdir().expect("tempdir");
    let inner = format!(
        "{} login --userpass --username dana --openbao-url {}",
        assert_cmd::cargo::cargo_bin("harmony").display(),
        bao.url()
    );
    // `script` gives the command a pty; our stdin becomes its keyboard, its screen our stdout.
    // The clean environment of the other tests, with `script` as the program.
    let mut cmd = harness::harmony_std(data.path());
    let env: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    cmd = std::process::Command::new("script");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .args(["-qefc", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut screen_out = child.stdout.take().expect("stdout");
    let mut keyboard = child.stdin.take().expect("stdin");
    let screen = tokio::task::spawn_blocking(move || {
        // Type the password once the prompt is on the screen, then read to the end.
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut typed = false;
        loop {
            let n = screen_out.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !typed && String::from_utf8_lossy(&seen).contains("password for dana") {
                keyboard.write_all(b"typed-pw-not-real\r").expect("type");
                keyboard.flush().expect("flush");
                typed = true;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let screen = tokio::time::timeout(Duration::from_secs(60), screen)
        .await
        .expect("the login finished")
        .expect("join");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{screen}");
    assert!(screen.contains("signed in to"), "{screen}");
    assert!(
        !screen.contains("typed-pw-not-real"),
        "the password was echoed: {screen}"
    );
    let st = harmony(data.path())
        .args(["--output", "json", "status", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    let report: Value = serde_json::from_slice(&st.stdout).expect("JSON");
    assert_eq!(
        report["session"]["display_name"], "userpass-dana",
        "{report}"
    );
}

/// The token and refresh token of the session cached in `file`, wherever they are kept (the OS
/// keychain where one answers: the file then holds none).
async fn cached_tokens(file: &std::path::Path) -> (String, Option<String>) {
    use secrecy::ExposeSecret as _;
    let meta: Value = serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
    let dir = file.parent().expect("session dir");
    let session = harmony_secret::session::SessionCache::new(dir)
        .load(
            meta["url"].as_str().expect("url"),
            meta["identity"].as_str().expect("identity"),
        )
        .await
        .expect("load")
        .expect("cached");
    let token = session.token.expose_secret().to_owned();
    assert!(!token.is_empty());
    let refresh = session
        .oidc
        .and_then(|o| o.refresh_token)
        .map(|t| t.expose_secret().to_owned());
    (token, refresh)
}

/// A laptop offline the next morning: the cached OpenBao token has expired, so signing in means
/// a silent refresh at the provider, which is unreachable too. `harmony run` serves the offline
/// copy with its warning instead of failing on the sign-in.
#[tokio::test]
async fn offline_after_the_token_expired_serves_the_copy() {
    let provider = OidcProvider::start(OidcProviderOptions::default())
        .await
        .expect("test OpenID provider");
    let mut bao = bao_for_the_team(&provider, "3s").await;
    let data = tempfile::tempdir().expect("tempdir");
    sso_login(data.path(), bao.url(), &provider, "dave").await;
    let url = bao.url().to_owned();
    let run = |args: &[&str]| {
        harmony(data.path())
            .env(vars::OPENBAO_URL, &url)
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["config", "set", "laptop-app", "region=eu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["run", "-c", "laptop-app", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Both servers gone, and the token past its TTL.
    drop(provider);
    bao.stop();
    std::thread::sleep(Duration::from_secs(4));
    let out = run(&[
        "run",
        "-c",
        "laptop-app",
        "--",
        "sh",
        "-c",
        "echo $HARMONY_LAPTOP_APP_REGION",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "eu");
    let text = stderr(&out);
    assert_eq!(text.matches("warning:").count(), 1, "{text}");
    assert!(
        text.contains("unreachable") && text.contains("laptop-app (version 1"),
        "{text}"
    );
    // The library's log line about the provider is plain text off a terminal.
    assert!(text.contains("WARN"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes on a pipe: {text:?}");
}

/// `harmony login --userpass` as `user` into `data` with `store` (`keychain` or `file`); the
/// session file and its token.
async fn userpass_login(
    data: &std::path::Path,
    bao: &OpenbaoServer,
    user: &str,
    store: &str,
) -> (std::path::PathBuf, String) {
    let password = format!("pw-{user}-not-real");
    bao.add_userpass_user(user, &password, &["default"], "1h")
        .await
        .expect("userpass user");
    let out = harmony(data)
        .args(["login", "--userpass", "--username", user])
        .args(["--openbao-url", bao.url()])
        .env(vars::OPENBAO_PASSWORD, &password)
        .env(vars::HARMONY_SESSION_STORE, store)
        .output()
        .expect("login");
    assert!(out.status.success(), "{}", stderr(&out));
    let file = files_under(&data.join("sessions"))
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("session file");
    let (token, _) = cached_tokens(&file).await;
    (file, token)
}

/// Whether OpenBao still knows `token` (asked with the root token).
async fn token_is_valid(bao: &OpenbaoServer, token: &str) -> bool {
    bao.root_call(
        Method::POST,
        "auth/token/lookup",
        Some(serde_json::json!({ "token": token })),
    )
    .await
    .is_ok()
}

/// A session signed in with the keychain store (real Linux keyutils) and logged out with
/// `HARMONY_SESSION_STORE=file` leaves no keychain entry: the session file put back where it
/// was finds no tokens.
#[tokio::test]
async fn logout_deletes_the_keychain_entry_whatever_the_store_says_now() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let (file, token) = userpass_login(data.path(), &bao, "erin", "keychain").await;
    let kept = std::fs::read(&file).expect("read");
    assert!(
        String::from_utf8_lossy(&kept).contains("\"keychain\""),
        "the tokens are in the keychain"
    );
    let out = harmony(data.path())
        .args(["logout", "--openbao-url", bao.url()])
        .env(vars::HARMONY_SESSION_STORE, "file")
        .output()
        .expect("logout");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!token_is_valid(&bao, &token).await);
    assert!(!file.exists());
    std::fs::write(&file, &kept).expect("put the file back");
    let meta: Value = serde_json::from_slice(&kept).expect("json");
    let found = harmony_secret::session::SessionCache::new(file.parent().expect("dir"))
        .load(
            meta["url"].as_str().expect("url"),
            meta["identity"].as_str().expect("identity"),
        )
        .await
        .expect("load");
    assert!(found.is_none(), "the keychain entry outlived the logout");
}

/// logout revokes even when the offline cache cannot be deleted (a file stands where its
/// directory goes), and the other sessions it deletes for the server are revoked first.
#[tokio::test]
async fn logout_revokes_despite_a_cache_error_and_revokes_the_other_sessions() {
    use secrecy::SecretString;
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let (_, token) = userpass_login(data.path(), &bao, "frank", "file").await;
    // Another sign-in cached for the same server, with a real token.
    let created = bao
        .root_call(
            Method::POST,
            "auth/token/create",
            Some(serde_json::json!({ "policies": ["default"], "ttl": "1h" })),
        )
        .await
        .expect("token");
    let other = created["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned();
    let sessions = harmony_secret::session::SessionCache::new(data.path().join("sessions"))
        .with_store(harmony_secret::keychain::SessionStore::File);
    sessions
        .store(harmony_secret::session::Session::new(
            bao.url().trim_end_matches('/'),
            "userpass:userpass:someone-else",
            SecretString::from(other.clone()),
            Some(Duration::from_secs(3600)),
            true,
        ))
        .await
        .expect("store");
    std::fs::write(data.path().join("cache"), b"not a directory").expect("block the cache");

    let out = harmony(data.path())
        .args(["logout", "--openbao-url", bao.url()])
        .output()
        .expect("logout");
    let text = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("offline"), "{text}");
    assert!(!token_is_valid(&bao, &token).await, "{text}");
    assert!(!token_is_valid(&bao, &other).await, "{text}");
    assert!(
        files_under(&data.path().join("sessions"))
            .iter()
            .all(|p| p.extension().is_none_or(|e| e != "json")),
        "{text}"
    );
}
