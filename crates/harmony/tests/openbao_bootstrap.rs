//! `OpenbaoBootstrap` against a real OpenBao (harmony-testkit): a real sealed raft server for
//! init/unseal, a dev server for the "existing server with an admin token" path, and the real
//! test OpenID provider for the JWT auth config and a JWT login.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use harmony::openbao::{
    BootstrapOptions, BootstrapReport, JwtAuthOptions, OpenbaoBootstrap, OpenbaoError, StateDir,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use tracing_test::traced_test;

fn url_of(bao: &OpenbaoServer) -> url::Url {
    url::Url::parse(bao.url()).expect("testkit URL parses")
}

fn local_options(dir: &Path) -> BootstrapOptions {
    BootstrapOptions::local(StateDir::new(dir))
}

async fn run(bao: &OpenbaoServer, options: BootstrapOptions) -> Result<BootstrapReport> {
    Ok(OpenbaoBootstrap::new(&url_of(bao), options)?.run().await?)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// One call to OpenBao; returns status and JSON body (`null` when empty).
async fn call(
    bao: &OpenbaoServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut req = http().request(method, format!("{}/v1/{path}", bao.url()));
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.with_context(|| format!("call {path}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)?
    };
    Ok((status, body))
}

async fn health(bao: &OpenbaoServer) -> Result<u16> {
    Ok(call(bao, Method::GET, "sys/health", None, None).await?.0)
}

fn read_json(path: &Path) -> Result<Value> {
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("file exists")
        .permissions()
        .mode()
        & 0o777
}

async fn userpass_login(bao: &OpenbaoServer, user: &str, password: &str) -> Result<String> {
    let (status, body) = call(
        bao,
        Method::POST,
        &format!("auth/userpass/login/{user}"),
        None,
        Some(json!({ "password": password })),
    )
    .await?;
    if status != 200 {
        bail!("userpass login answered {status}: {body}");
    }
    Ok(body["auth"]["client_token"]
        .as_str()
        .context("client_token")?
        .to_owned())
}

/// The device flow as the CLI does it, with the test provider approving the user code:
/// returns a real id_token for `login` (claims: `sub`).
async fn id_token_from_device_flow(op: &OidcProvider, login: &str) -> Result<String> {
    id_token_with_scope(op, login, "openid").await
}

/// [`id_token_from_device_flow`] asking for `scope` (`openid email` adds `email` =
/// `<login>@harmony.test` to the id_token).
async fn id_token_with_scope(op: &OidcProvider, login: &str, scope: &str) -> Result<String> {
    let client = http();
    let auth: Value = client
        .post(format!("{}/device/auth", op.issuer()))
        .form(&[("client_id", op.client_id()), ("scope", scope)])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let user_code = auth["user_code"].as_str().context("user_code")?;
    let device_code = auth["device_code"].as_str().context("device_code")?;
    op.approve_user_code(user_code, login).await?;
    let tokens: Value = client
        .post(format!("{}/token", op.issuer()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", op.client_id()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tokens["id_token"].as_str().context("id_token")?.to_owned())
}

/// A token limited to `harmony-dev` may use `secret/harmony/*` and nothing else there.
async fn assert_harmony_dev_scope(bao: &OpenbaoServer, token: &str) -> Result<()> {
    let (status, body) = call(
        bao,
        Method::POST,
        "secret/data/harmony/team-app",
        Some(token),
        Some(json!({ "data": { "db": "postgres://db" }, "options": { "cas": 0 } })),
    )
    .await?;
    assert_eq!(status, 200, "write under secret/harmony/: {body}");
    let (status, body) = call(
        bao,
        Method::GET,
        "secret/metadata/harmony/?list=true",
        Some(token),
        None,
    )
    .await?;
    assert_eq!(status, 200, "list secret/harmony/: {body}");
    assert!(
        body["data"]["keys"]
            .as_array()
            .is_some_and(|k| k.contains(&json!("team-app"))),
        "{body}"
    );
    let (status, _) = call(
        bao,
        Method::POST,
        "secret/data/other-team/x",
        Some(token),
        Some(json!({ "data": { "x": 1 } })),
    )
    .await?;
    assert_eq!(status, 403, "harmony-dev must not reach other KV paths");
    let (status, _) = call(bao, Method::GET, "sys/auth", Some(token), None).await?;
    assert_eq!(status, 403, "harmony-dev must not read sys/");
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn first_run_inits_unseals_configures_and_second_run_changes_nothing() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let op = OidcProvider::start(OidcProviderOptions::default()).await?;
    let tmp = tempfile::tempdir()?;
    let state_path = tmp.path().join("openbao-state"); // created by the bootstrap
    let mut options = local_options(&state_path);
    options.jwt = Some(JwtAuthOptions::oidc(
        url::Url::parse(op.issuer())?,
        vec![op.client_id().to_owned()],
    ));
    assert_eq!(health(&bao).await?, 501, "starts uninitialised");

    let report = run(&bao, options.clone()).await?;
    assert!(
        report.initialised && report.unsealed && report.configured,
        "{report:?}"
    );
    assert_eq!(
        report.changes,
        [
            "enabled the KV v2 secrets engine at secret/",
            "set max_versions = 100 on the KV mount secret/ (was 0: OpenBao's default of 10)",
            "created policy harmony-dev",
            "created policy harmony-backup",
            "enabled the userpass auth method at auth/userpass/",
            "created userpass user harmony",
            "enabled the jwt auth method at auth/jwt/",
            "wrote the JWT auth config at auth/jwt/config",
            "created JWT role harmony-developer",
        ]
    );
    assert_eq!(health(&bao).await?, 200, "active after the run");

    // Keys and password are on disk, 0600, in a 0700 directory.
    let dir = StateDir::new(&state_path);
    let keys = read_json(&dir.keys_file())?;
    let root = keys["root_token"]
        .as_str()
        .context("root_token")?
        .to_owned();
    let unseal_key = keys["keys_base64"][0].as_str().context("key")?.to_owned();
    assert_eq!(keys["keys_base64"].as_array().map(Vec::len), Some(1));
    let creds = read_json(&dir.userpass_file("harmony"))?;
    let password = creds["password"].as_str().context("password")?.to_owned();
    assert!(password.len() >= 32, "generated password is long");
    #[cfg(unix)]
    {
        assert_eq!(mode_of(&dir.keys_file()), 0o600);
        assert_eq!(mode_of(&dir.userpass_file("harmony")), 0o600);
        assert_eq!(mode_of(&state_path), 0o700);
    }

    // The root token from the file is the server's root token.
    let (status, me) = call(
        &bao,
        Method::GET,
        "auth/token/lookup-self",
        Some(&root),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["policies"], json!(["root"]));

    // A userpass login works and gets exactly harmony-dev's reach.
    let user_token = userpass_login(&bao, "harmony", &password).await?;
    assert_harmony_dev_scope(&bao, &user_token).await?;

    // The JWT role has the settings asked for, and a real id_token logs in through it.
    let (_, role) = call(
        &bao,
        Method::GET,
        "auth/jwt/role/harmony-developer",
        Some(&root),
        None,
    )
    .await?;
    let role = &role["data"];
    assert_eq!(role["role_type"], "jwt");
    assert_eq!(role["bound_audiences"], json!([op.client_id()]));
    assert_eq!(role["user_claim"], "sub");
    assert_eq!(role["token_policies"], json!(["harmony-dev"]));
    let (_, config) = call(&bao, Method::GET, "auth/jwt/config", Some(&root), None).await?;
    assert_eq!(config["data"]["oidc_discovery_url"], op.issuer());
    assert_eq!(
        config["data"]["bound_issuer"],
        op.issuer(),
        "OpenBao checks `iss` against exactly the issuer"
    );
    assert_eq!(config["data"]["default_role"], "harmony-developer");
    let id_token = id_token_from_device_flow(&op, "alice").await?;
    let (status, login) = call(
        &bao,
        Method::POST,
        "auth/jwt/login",
        None,
        Some(json!({ "role": "harmony-developer", "jwt": id_token })),
    )
    .await?;
    assert_eq!(status, 200, "JWT login: {login}");
    assert_eq!(login["auth"]["metadata"]["role"], "harmony-developer");
    let jwt_token = login["auth"]["client_token"].as_str().context("token")?;
    let (status, _) = call(
        &bao,
        Method::GET,
        "secret/data/harmony/team-app",
        Some(jwt_token),
        None,
    )
    .await?;
    assert_eq!(status, 200, "the SSO token reads Harmony's documents");

    // Second run: nothing to do.
    let keys_before = std::fs::read(dir.keys_file())?;
    let again = run(&bao, options).await?;
    assert!(again.nothing_changed(), "{again:?}");
    assert!(again.configured);
    assert_eq!(
        std::fs::read(dir.keys_file())?,
        keys_before,
        "keys file untouched"
    );

    // No secret reached the logs (ours at every level, or the server's).
    for secret in [&root, &unseal_key, &password, &id_token] {
        assert!(
            !logs_contain(secret),
            "a secret appeared in the captured logs"
        );
        assert!(
            !bao.log().contains(secret.as_str()),
            "a secret appeared in the server log"
        );
    }
    assert!(
        logs_contain("OpenBao initialised; keys saved"),
        "the run logs its steps"
    );
    Ok(())
}

#[tokio::test]
async fn restarted_server_comes_back_sealed_and_is_unsealed_without_reinit() -> Result<()> {
    let mut bao = OpenbaoServer::sealed().await?;
    let state = tempfile::tempdir()?;
    let first = run(&bao, local_options(state.path())).await?;
    assert!(first.initialised);
    let keys_file = StateDir::new(state.path()).keys_file();
    let keys_before = std::fs::read(&keys_file)?;

    bao.restart().await?;
    assert_eq!(health(&bao).await?, 503, "sealed after restart");
    let report = run(&bao, local_options(state.path())).await?;
    assert!(!report.initialised, "never re-initialised: {report:?}");
    assert!(report.unsealed, "{report:?}");
    assert!(
        report.changes.is_empty(),
        "configuration survived: {report:?}"
    );
    assert_eq!(health(&bao).await?, 200);
    assert_eq!(std::fs::read(&keys_file)?, keys_before, "same keys file");

    // The configuration written before the restart is still there and still works.
    let creds = read_json(&StateDir::new(state.path()).userpass_file("harmony"))?;
    userpass_login(
        &bao,
        "harmony",
        creds["password"].as_str().context("password")?,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn initialised_elsewhere_without_keys_file_is_refused_and_not_reinitialised() -> Result<()> {
    let mut bao = OpenbaoServer::sealed().await?;
    let their_keys = bao.init().await?; // someone else initialised it; we hold no keys file
    let state = tempfile::tempdir()?;

    let err = run(&bao, local_options(state.path()))
        .await
        .expect_err("no keys, sealed: must fail");
    let err = err.downcast::<OpenbaoError>()?;
    assert!(
        matches!(err, OpenbaoError::InitialisedElsewhere { .. }),
        "{err}"
    );
    let message = err.to_string();
    let keys_file = StateDir::new(state.path()).keys_file();
    assert!(
        message.contains(&keys_file.display().to_string()),
        "{message}"
    );
    assert!(message.contains("OPENBAO_TOKEN"), "{message}");
    assert!(message.contains("never re-initialised"), "{message}");
    assert!(!keys_file.exists(), "no keys file was invented");

    // Still the same server: its own keys unseal it.
    assert_eq!(health(&bao).await?, 503);
    bao.unseal(&their_keys).await?;
    assert_eq!(health(&bao).await?, 200);
    Ok(())
}

#[tokio::test]
async fn uninitialised_server_with_a_stale_keys_file_keeps_the_old_file_aside() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let state = tempfile::tempdir()?;
    let keys_file = StateDir::new(state.path()).keys_file();
    std::fs::write(
        &keys_file,
        br#"{"url":"http://old","keys_base64":["b2xk"],"root_token":"s.old"}"#,
    )?;
    let report = run(&bao, local_options(state.path())).await?;
    assert!(report.initialised && report.unsealed, "{report:?}");
    let stale: Vec<_> = std::fs::read_dir(state.path())?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("stale"))
        .collect();
    assert_eq!(stale.len(), 1, "the old keys are kept");
    assert!(std::fs::read_to_string(stale[0].path())?.contains("s.old"));
    assert!(!std::fs::read_to_string(&keys_file)?.contains("s.old"));
    Ok(())
}

#[tokio::test]
async fn existing_server_with_admin_token_is_configured_and_drift_is_repaired() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let root = bao.root_token().context("dev root token")?.to_owned();
    let state = tempfile::tempdir()?;
    let mut options = local_options(state.path());
    options.admin_token = Some(SecretString::from(root.clone()));

    let report = run(&bao, options.clone()).await?;
    assert!(
        !report.initialised && !report.unsealed && report.configured,
        "{report:?}"
    );
    assert_eq!(
        report.changes,
        [
            // Dev mode already has KV v2 at secret/ (keeping OpenBao's default 10 versions).
            "set max_versions = 100 on the KV mount secret/ (was 0: OpenBao's default of 10)",
            "created policy harmony-dev",
            "created policy harmony-backup",
            "enabled the userpass auth method at auth/userpass/",
            "created userpass user harmony",
        ]
    );
    assert!(
        !StateDir::new(state.path()).keys_file().exists(),
        "no keys file for a server we did not initialise"
    );
    assert!(run(&bao, options.clone()).await?.nothing_changed());

    // Someone loosens the policy and changes the user's token TTL: the next run puts them back.
    bao.root_call(
        Method::PUT,
        "sys/policies/acl/harmony-dev",
        Some(json!({ "policy": "path \"secret/*\" { capabilities = [\"read\"] }" })),
    )
    .await?;
    bao.root_call(
        Method::POST,
        "auth/userpass/users/harmony",
        Some(json!({ "token_ttl": 60 })),
    )
    .await?;
    let report = run(&bao, options.clone()).await?;
    assert_eq!(
        report.changes,
        [
            "updated policy harmony-dev",
            "updated the settings of userpass user harmony",
        ]
    );

    // Regression (review finding 6): a teammate's machine has no password file. The user's
    // password is NOT reset (that would break every other machine's saved login); the report
    // says where the password lives and how to get a new one.
    let pw_file = StateDir::new(state.path()).userpass_file("harmony");
    let original = read_json(&pw_file)?["password"]
        .as_str()
        .context("pw")?
        .to_owned();
    std::fs::remove_file(&pw_file)?;
    let report = run(&bao, options.clone()).await?;
    assert!(report.changes.is_empty(), "{report:?}");
    assert!(!pw_file.exists(), "no new password file: {report:?}");
    let note = report.notes.join("\n");
    assert!(note.contains(&pw_file.display().to_string()), "{note}");
    assert!(note.contains("--reset-userpass"), "{note}");
    userpass_login(&bao, "harmony", &original)
        .await
        .context("the existing password still works")?;

    // Only on request: a new password, stored again; the old one stops working.
    options.reset_userpass = true;
    let report = run(&bao, options.clone()).await?;
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert!(
        report.changes[0].starts_with("reset the password of userpass user harmony"),
        "{report:?}"
    );
    let creds = read_json(&pw_file)?;
    let token = userpass_login(&bao, "harmony", creds["password"].as_str().context("pw")?).await?;
    assert_harmony_dev_scope(&bao, &token).await?;
    assert!(userpass_login(&bao, "harmony", &original).await.is_err());
    assert!(run(&bao, options).await?.nothing_changed());
    Ok(())
}

/// `--bound-claim email=alice@harmony.test`: the real OpenBao lets in an id_token carrying the
/// claim with that value and refuses one with another value or without the claim; dropping the
/// bound again is a change the next run makes.
#[tokio::test]
async fn bound_claims_refuse_a_token_without_the_claim() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let op = OidcProvider::start(OidcProviderOptions::default()).await?;
    let root = bao.root_token().context("dev root token")?.to_owned();
    let state = tempfile::tempdir()?;
    let mut options = local_options(state.path());
    options.admin_token = Some(SecretString::from(root.clone()));
    let mut jwt = JwtAuthOptions::oidc(
        url::Url::parse(op.issuer())?,
        vec![op.client_id().to_owned()],
    );
    jwt.bound_claims
        .insert("email".to_owned(), "alice@harmony.test".to_owned());
    options.jwt = Some(jwt);
    run(&bao, options.clone()).await?;
    assert!(run(&bao, options.clone()).await?.nothing_changed());

    let login = |id_token: String| {
        let bao = &bao;
        async move {
            call(
                bao,
                Method::POST,
                "auth/jwt/login",
                None,
                Some(json!({ "role": "harmony-developer", "jwt": id_token })),
            )
            .await
        }
    };
    let (status, body) = login(id_token_with_scope(&op, "alice", "openid email").await?).await?;
    assert_eq!(status, 200, "alice has the claim: {body}");
    let (status, body) = login(id_token_with_scope(&op, "bob", "openid email").await?).await?;
    assert_eq!(status, 400, "bob's email is another: {body}");
    assert!(body.to_string().contains("claim"), "{body}");
    let (status, body) = login(id_token_from_device_flow(&op, "alice").await?).await?;
    assert_eq!(status, 400, "a token without the email claim: {body}");

    // Without the bound, the same token is let in (the next run removes it from the role).
    let mut open = options.clone();
    if let Some(jwt) = open.jwt.as_mut() {
        jwt.bound_claims.clear();
    }
    assert_eq!(
        run(&bao, open).await?.changes,
        ["updated JWT role harmony-developer"]
    );
    let (status, body) = login(id_token_from_device_flow(&op, "bob").await?).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn existing_server_without_token_or_keys_is_left_unconfigured() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let state = tempfile::tempdir()?;
    let report = run(&bao, local_options(state.path())).await?;
    assert!(!report.configured, "{report:?}");
    assert!(report.changes.is_empty());
    let why = report.skipped.context("the report says why")?;
    assert!(why.contains("no admin token"), "{why}");
    let auths = bao.root_call(Method::GET, "sys/auth", None).await?;
    assert!(
        auths["data"].get("userpass/").is_none(),
        "nothing was enabled"
    );
    Ok(())
}

#[tokio::test]
async fn kv_v1_at_secret_is_reported_as_a_mount_conflict() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    bao.root_call(Method::DELETE, "sys/mounts/secret", None)
        .await?;
    bao.root_call(
        Method::POST,
        "sys/mounts/secret",
        Some(json!({ "type": "kv", "options": { "version": "1" } })),
    )
    .await?;
    let state = tempfile::tempdir()?;
    let mut options = local_options(state.path());
    options.admin_token = bao.root_token().map(|t| SecretString::from(t.to_owned()));
    let err = run(&bao, options)
        .await
        .expect_err("kv v1 is not converted");
    let err = err.downcast::<OpenbaoError>()?;
    assert!(matches!(err, OpenbaoError::MountConflict { .. }), "{err}");
    assert!(err.to_string().contains("secret/"), "{err}");
    Ok(())
}

#[tokio::test]
async fn bad_admin_token_is_a_permission_error_naming_the_path() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    let state = tempfile::tempdir()?;
    let mut options = local_options(state.path());
    let bogus = "s.not-a-real-token-7f3a";
    options.admin_token = Some(SecretString::from(bogus));
    assert!(
        !format!("{options:?}").contains(bogus),
        "Debug redacts the token"
    );
    let err = run(&bao, options).await.expect_err("bogus token");
    let err = err.downcast::<OpenbaoError>()?;
    assert!(
        matches!(err, OpenbaoError::PermissionDenied { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("/v1/sys/mounts"), "{message}");
    assert!(
        !message.contains(bogus),
        "the token is not echoed: {message}"
    );
    assert!(!format!("{err:?}").contains(bogus));
    Ok(())
}

#[tokio::test]
async fn unreachable_server_names_the_url() -> Result<()> {
    let mut bao = OpenbaoServer::dev().await?;
    let url = bao.url().to_owned();
    bao.stop();
    let state = tempfile::tempdir()?;
    let err = OpenbaoBootstrap::new(&url::Url::parse(&url)?, local_options(state.path()))?
        .run()
        .await
        .expect_err("nobody listens");
    assert!(matches!(err, OpenbaoError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    Ok(())
}

/// An existing OpenBao over HTTPS with its own CA, configured inside a namespace: the
/// bootstrap reaches it through the one client with the CA (`BAO_CACERT`), creates the
/// namespace, configures everything inside it, and the saved userpass login works there (and
/// only there). Without the CA the error names the variable to set.
#[tokio::test]
async fn tls_server_is_configured_inside_a_namespace() -> Result<()> {
    let bao = OpenbaoServer::dev_tls().await?;
    let ca = bao.ca_cert().context("dev-tls CA")?;
    let state = tempfile::tempdir()?;
    let root = bao.root_token().context("dev root token")?.to_owned();
    let lookup = |name: &str| match name {
        "BAO_CACERT" => Some(ca.display().to_string()),
        "BAO_NAMESPACE" => Some("team-a".to_owned()),
        _ => None,
    };
    let op = OidcProvider::start(OidcProviderOptions::default()).await?;
    let mut options = local_options(state.path()).with_connection_from_lookup(lookup)?;
    options.admin_token = Some(SecretString::from(root.clone()));
    options.jwt = Some(JwtAuthOptions::oidc(
        url::Url::parse(op.issuer())?,
        vec![op.client_id().to_owned()],
    ));
    assert_eq!(options.namespace.as_deref(), Some("team-a"));

    let report = run(&bao, options.clone()).await?;
    assert_eq!(
        report.changes,
        [
            "created namespace team-a",
            "enabled the KV v2 secrets engine at secret/",
            "set max_versions = 100 on the KV mount secret/ (was 0: OpenBao's default of 10)",
            "created policy harmony-dev",
            "enabled the userpass auth method at auth/userpass/",
            "created userpass user harmony",
            "enabled the jwt auth method at auth/jwt/",
            "wrote the JWT auth config at auth/jwt/config",
            "created JWT role harmony-developer",
        ]
    );
    assert!(run(&bao, options.clone()).await?.nothing_changed());

    // The saved login works in team-a through the store, and the root namespace is untouched.
    let password = StateDir::new(state.path())
        .userpass_password("harmony")
        .await?
        .context("password saved")?;
    let sessions = tempfile::tempdir()?;
    let settings = harmony_secret::OpenbaoSettings::new(bao.url())
        .with_tls(harmony_secret::TlsSettings::default().with_ca_cert(&ca))
        .with_namespace(Some("team-a".to_owned()))
        .with_userpass("harmony", password)
        .with_session_dir(sessions.path().to_owned());
    let store = harmony_secret::OpenbaoSecretStore::connect(settings).await?;
    harmony_secret::SecretStore::put(
        &store,
        "app",
        &json!({"ns": "team-a"}),
        harmony_secret::WriteMode::Cas(None),
    )
    .await?;
    let root_auths = bao.root_call(Method::GET, "sys/auth", None).await?;
    assert!(
        root_auths["data"].get("userpass/").is_none(),
        "userpass was enabled in team-a only: {root_auths}"
    );

    // The JWT login works in team-a, through the one client (CA + namespace).
    let id_token = SecretString::from(id_token_from_device_flow(&op, "alice").await?);
    let client = harmony_secret::OpenbaoClient::build(
        bao.url(),
        &harmony_secret::ClientOptions::default()
            .with_tls(harmony_secret::TlsSettings::default().with_ca_cert(&ca))
            .with_namespace(Some("team-a".to_owned())),
    )?;
    let login = harmony_secret::oidc::exchange_id_token(
        &client,
        "jwt",
        harmony::openbao::DEFAULT_JWT_ROLE,
        &id_token,
    )
    .await?;
    assert_eq!(login.policies, ["default", "harmony-dev"]);

    // Without the CA: unreachable, and the chain says which variable to set.
    let mut no_ca = local_options(state.path());
    no_ca.admin_token = Some(SecretString::from(root));
    let err = run(&bao, no_ca).await.expect_err("untrusted CA");
    let chain = format!("{err:#}");
    assert!(chain.contains("BAO_CACERT"), "{chain}");
    Ok(())
}
