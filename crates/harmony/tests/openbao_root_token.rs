//! The root token handled as production OpenBao wants it, against a REAL sealed OpenBao (raft)
//! and the real test OpenID provider (as a CI issuer, to make the admin token write new mounts,
//! policies and roles): hand-over to a `harmony-admin` token, root revoked, re-runs with the
//! admin token, recovery through `sys/generate-root` with the saved shares.

use anyhow::{Context, Result, ensure};
use harmony::openbao::{
    BootstrapOptions, BootstrapReport, CiOptions, OpenbaoBootstrap, OpenbaoError, StateDir,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use secrecy::ExposeSecret;

fn options(dir: &std::path::Path) -> BootstrapOptions {
    let mut options = BootstrapOptions::local(StateDir::new(dir));
    options.shares = 3;
    options.threshold = 2;
    options.revoke_root = true;
    options
}

async fn run(
    bao: &OpenbaoServer,
    options: BootstrapOptions,
) -> Result<BootstrapReport, OpenbaoError> {
    OpenbaoBootstrap::new(&url::Url::parse(bao.url()).expect("url"), options)?
        .run()
        .await
}

async fn lookup_status(bao: &OpenbaoServer, token: &str) -> Result<u16> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    Ok(http
        .get(format!("{}/v1/auth/token/lookup-self", bao.url()))
        .header("X-Vault-Token", token)
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn root_token_is_revoked_and_the_admin_token_configures_and_can_be_regenerated() -> Result<()>
{
    let bao = OpenbaoServer::sealed().await?;
    let provider = OidcProvider::start(OidcProviderOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());

    let first = run(&bao, options(dir.path())).await.context("first run")?;
    let text = first.changes.join("\n");
    ensure!(text.contains("revoked the root token"), "{text}");
    let root = state
        .root_token()
        .await?
        .context("keys file keeps the root token")?;
    assert_eq!(
        lookup_status(&bao, root.expose_secret()).await?,
        403,
        "root revoked"
    );
    let admin = state.admin_token().await?.context("admin token saved")?;
    assert_eq!(lookup_status(&bao, admin.expose_secret()).await?, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.admin_token_file())?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let keys = std::fs::read(state.keys_file())?;

    // A re-run configures with the admin token: nothing to change ...
    let again = run(&bao, options(dir.path())).await.context("re-run")?;
    ensure!(again.nothing_changed() && again.configured, "{again:?}");
    // ... and it can write what a new option needs: an auth mount, its config, a policy, a role.
    let mut with_ci = options(dir.path());
    with_ci.ci = Some(CiOptions::new(
        vec![format!("github={}:acme/app#1/2@main", provider.issuer()).parse()?],
        bao.url(),
    )?);
    let ci = run(&bao, with_ci)
        .await
        .context("admin token adds CI trust")?;
    assert!(ci.changes.iter().any(|c| c.contains("jwt-ci")), "{ci:?}");

    // The admin token is lost: the error says how to recover, and recovery works.
    std::fs::remove_file(state.admin_token_file())?;
    let err = run(&bao, options(dir.path()))
        .await
        .expect_err("no usable token");
    let text = err.to_string();
    assert!(
        text.contains("--regenerate-root") && text.contains("root token"),
        "{text}"
    );
    assert!(
        !text.contains(root.expose_secret()),
        "no token in errors: {text}"
    );
    let regenerated = OpenbaoBootstrap::new(&url::Url::parse(bao.url())?, options(dir.path()))?
        .regenerate_root()
        .await
        .context("regenerate root")?;
    assert!(
        regenerated
            .iter()
            .any(|c| c.contains("revoked the root token")),
        "{regenerated:?}"
    );
    let admin2 = state.admin_token().await?.context("new admin token")?;
    assert_ne!(admin2.expose_secret(), admin.expose_secret());
    assert_eq!(lookup_status(&bao, admin2.expose_secret()).await?, 200);
    let after = run(&bao, options(dir.path()))
        .await
        .context("after recovery")?;
    ensure!(after.nothing_changed(), "{after:?}");

    // Without the recovery token (or once it expired), and with the unauthenticated flow off
    // (OpenBao's default since 2.5.3): a clear error saying both.
    std::fs::remove_file(state.recovery_token_file())?;
    let err = OpenbaoBootstrap::new(&url::Url::parse(bao.url())?, options(dir.path()))?
        .regenerate_root()
        .await
        .expect_err("no recovery token");
    let text = err.to_string();
    assert!(
        text.contains("disable_unauthed_generate_root_endpoints")
            && text.contains("recovery-token.json"),
        "{text}"
    );

    // A bogus admin token: a clear error naming the file and the way out.
    std::fs::write(
        state.admin_token_file(),
        r#"{"username":"harmony-admin-token","password":"s.bogus"}"#,
    )?;
    let err = run(&bao, options(dir.path()))
        .await
        .expect_err("bogus admin token");
    assert!(
        err.to_string().contains("harmony-admin token")
            && err.to_string().contains("--regenerate-root"),
        "{err}"
    );

    assert_eq!(
        std::fs::read(state.keys_file())?,
        keys,
        "keys file unchanged"
    );
    Ok(())
}

/// The status of `method path` with `token` and a JSON body (none for GET).
async fn call(
    bao: &OpenbaoServer,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> Result<u16> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut request = http
        .request(method.clone(), format!("{}/v1/{path}", bao.url()))
        .header("X-Vault-Token", token);
    if method != reqwest::Method::GET {
        request = request.json(&body);
    }
    Ok(request.send().await?.status().as_u16())
}

/// A token's answer to `auth/token/lookup-self`: its `ttl` in seconds.
async fn token_ttl(bao: &OpenbaoServer, token: &str) -> Result<u64> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let answer: serde_json::Value = http
        .get(format!("{}/v1/auth/token/lookup-self", bao.url()))
        .header("X-Vault-Token", token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["data"]["ttl"]
        .as_u64()
        .context("lookup-self has a ttl")
}

#[tokio::test]
async fn admin_token_cannot_raise_itself_or_hand_out_other_policies() -> Result<()> {
    use reqwest::Method;
    use serde_json::json;
    let bao = OpenbaoServer::sealed().await?;
    let provider = OidcProvider::start(OidcProviderOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());
    let mut first = options(dir.path());
    first.ci = Some(CiOptions::new(
        vec![format!("github={}:acme/app#1/2@main", provider.issuer()).parse()?],
        bao.url(),
    )?);
    run(&bao, first.clone()).await.context("first run")?;
    let admin = state.admin_token().await?.context("admin token saved")?;
    let admin = admin.expose_secret();
    let everything = json!({"policy": "path \"*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"sudo\"] }"});

    for (what, method, path, body) in [
        (
            "rewrite its own policy",
            Method::PUT,
            "sys/policies/acl/harmony-admin",
            everything.clone(),
        ),
        (
            "rewrite the recovery policy",
            Method::PUT,
            "sys/policies/acl/harmony-recovery",
            everything.clone(),
        ),
        (
            "write root's policy",
            Method::PUT,
            "sys/policies/acl/root",
            everything.clone(),
        ),
        (
            "write the default policy (every token has it)",
            Method::PUT,
            "sys/policies/acl/default",
            everything.clone(),
        ),
        (
            "write a policy with another name",
            Method::PUT,
            "sys/policies/acl/everything",
            everything.clone(),
        ),
        (
            "a userpass user with token_policies=root",
            Method::POST,
            "auth/userpass/users/evil",
            json!({"password": "p", "token_policies": "root"}),
        ),
        (
            "a userpass user with policies=[default, everything]",
            Method::POST,
            "auth/userpass/users/evil",
            json!({"password": "p", "policies": ["default", "everything"]}),
        ),
        (
            "a userpass user with harmony-dev and another policy in one string",
            Method::POST,
            "auth/userpass/users/evil",
            json!({"password": "p", "token_policies": "harmony-dev,everything"}),
        ),
        (
            "a userpass user with the admin policy",
            Method::POST,
            "auth/userpass/users/evil",
            json!({"password": "p", "token_policies": "harmony-admin"}),
        ),
        (
            "a JWT role with token_policies=root",
            Method::POST,
            "auth/jwt-ci/role/evil",
            json!({"role_type": "jwt", "bound_audiences": ["x"], "user_claim": "sub", "token_policies": "root"}),
        ),
        (
            "a token with policies=root",
            Method::POST,
            "auth/token/create",
            json!({"policies": ["root"]}),
        ),
        (
            "an orphan token with the recovery policy",
            Method::POST,
            "auth/token/create-orphan",
            json!({"policies": "harmony-recovery"}),
        ),
        (
            "a token role allowing root",
            Method::POST,
            "auth/token/roles/evil",
            json!({"allowed_policies": "root"}),
        ),
        (
            "an auth method of another kind",
            Method::POST,
            "sys/auth/approle",
            json!({"type": "approle"}),
        ),
        (
            "a secrets engine of another kind",
            Method::POST,
            "sys/mounts/transit",
            json!({"type": "transit"}),
        ),
        (
            "an identity group with a policy",
            Method::POST,
            "identity/group",
            json!({"name": "evil", "policies": ["harmony-dev"]}),
        ),
    ] {
        assert_eq!(
            call(&bao, admin, method, path, body).await?,
            403,
            "the admin token may not {what} ({path})"
        );
    }

    // What the bootstrap converges is still allowed: a userpass user with harmony-dev ...
    assert_eq!(
        call(
            &bao,
            admin,
            Method::POST,
            "auth/userpass/users/someone",
            json!({"password": "p", "token_policies": "harmony-dev"}),
        )
        .await?,
        204
    );
    // ... and a re-run with the admin token that has to rewrite what it owns.
    assert_eq!(
        call(
            &bao,
            admin,
            Method::DELETE,
            "auth/jwt-ci/role/github-acme-app",
            json!({})
        )
        .await?,
        204
    );
    let again = run(&bao, first)
        .await
        .context("re-run with the admin token")?;
    assert!(
        again.changes.iter().any(|c| c.contains("github-acme-app")),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hand_over_left_half_done_is_finished_by_the_next_run() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());
    // The recovery token cannot be saved (a directory where its file goes): the run fails after
    // the admin token was saved and before the root token was revoked.
    std::fs::create_dir(state.recovery_token_file())?;
    run(&bao, options(dir.path()))
        .await
        .expect_err("recovery token cannot be saved");
    let root = state.root_token().await?.context("keys file")?;
    assert_eq!(lookup_status(&bao, root.expose_secret()).await?, 200);
    assert!(state.admin_token().await?.is_some(), "admin token saved");

    std::fs::remove_dir(state.recovery_token_file())?;
    let next = run(&bao, options(dir.path())).await.context("next run")?;
    let text = next.changes.join("\n");
    assert!(
        text.contains("left the root token valid") && text.contains("revoked the root token"),
        "{text}"
    );
    assert_eq!(
        lookup_status(&bao, root.expose_secret()).await?,
        403,
        "root revoked"
    );
    let recovery = state.recovery_token().await?.context("recovery token")?;
    assert_eq!(lookup_status(&bao, recovery.expose_secret()).await?, 200);
    // And then nothing is left to do.
    let after = run(&bao, options(dir.path())).await.context("after")?;
    ensure!(after.nothing_changed(), "{after:?}");
    Ok(())
}

#[tokio::test]
async fn recovery_outlives_the_admin_token_and_regenerating_revokes_the_old_tokens() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());
    run(&bao, options(dir.path())).await.context("first run")?;
    let admin = state.admin_token().await?.context("admin")?;
    let recovery = state.recovery_token().await?.context("recovery")?;
    let admin_ttl = token_ttl(&bao, admin.expose_secret()).await?;
    let recovery_ttl = token_ttl(&bao, recovery.expose_secret()).await?;
    assert!(
        recovery_ttl > 4 * admin_ttl,
        "recovery {recovery_ttl} s, admin {admin_ttl} s"
    );

    let regenerated = OpenbaoBootstrap::new(&url::Url::parse(bao.url())?, options(dir.path()))?
        .regenerate_root()
        .await
        .context("regenerate root")?;
    let text = regenerated.join("\n");
    assert!(text.contains("revoked the previous"), "{text}");
    assert_eq!(lookup_status(&bao, admin.expose_secret()).await?, 403);
    assert_eq!(lookup_status(&bao, recovery.expose_secret()).await?, 403);
    let admin2 = state.admin_token().await?.context("new admin")?;
    let recovery2 = state.recovery_token().await?.context("new recovery")?;
    assert_eq!(lookup_status(&bao, admin2.expose_secret()).await?, 200);
    assert_eq!(lookup_status(&bao, recovery2.expose_secret()).await?, 200);
    Ok(())
}

/// A TCP proxy in front of the real server that passes every request through unchanged (one
/// request per connection), except the first `auth/token/revoke-self`: that connection is
/// answered 502 without reaching OpenBao, as a dropped gateway would. Returns its base URL.
async fn proxy_failing_one_revoke_self(upstream: &str) -> Result<String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let upstream = url::Url::parse(upstream)?;
    let upstream = format!(
        "{}:{}",
        upstream.host_str().context("host")?,
        upstream.port_or_known_default().context("port")?
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let failed = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                // The request head, then its body (Content-Length; the client sends no chunks).
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match client.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let first_line = head.lines().next().unwrap_or_default();
                if first_line.contains("/v1/auth/token/revoke-self")
                    && !failed.swap(true, Ordering::SeqCst)
                {
                    let _ = client
                        .write_all(
                            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                // One request per upstream connection: ask it to close after answering.
                let mut request = head[..head_end - 2].to_owned();
                request.push_str("Connection: close\r\n\r\n");
                let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                if server.write_all(request.as_bytes()).await.is_err()
                    || server.write_all(&buf[head_end..]).await.is_err()
                {
                    return;
                }
                let _ = tokio::io::copy(&mut server, &mut client).await;
                let _ = client.shutdown().await;
            });
        }
    });
    Ok(url)
}

#[tokio::test]
async fn a_failed_revoke_self_is_finished_by_the_next_run() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let proxy = proxy_failing_one_revoke_self(bao.url()).await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());
    let proxy = url::Url::parse(&proxy)?;
    let through_proxy = |options: BootstrapOptions| {
        let proxy = proxy.clone();
        async move { OpenbaoBootstrap::new(&proxy, options)?.run().await }
    };
    let err = through_proxy(options(dir.path()))
        .await
        .expect_err("revoke-self failed once");
    assert!(err.to_string().contains("revoke-self"), "{err}");
    let root = state.root_token().await?.context("keys file")?;
    assert_eq!(lookup_status(&bao, root.expose_secret()).await?, 200);
    let recovery = state.recovery_token().await?.context("recovery saved")?;

    let next = through_proxy(options(dir.path()))
        .await
        .context("next run")?;
    let text = next.changes.join("\n");
    assert!(
        text.contains("left the root token valid") && text.contains("revoked the root token"),
        "{text}"
    );
    assert!(
        !text.contains("created a periodic"),
        "recovery kept: {text}"
    );
    assert_eq!(lookup_status(&bao, root.expose_secret()).await?, 403);
    assert_eq!(
        state
            .recovery_token()
            .await?
            .context("recovery")?
            .expose_secret(),
        recovery.expose_secret()
    );
    Ok(())
}

#[tokio::test]
async fn an_older_admin_policy_on_the_server_is_noted_with_the_way_to_apply_the_new_one()
-> Result<()> {
    use reqwest::Method;
    let bao = OpenbaoServer::dev().await?;
    let root = bao.root_token().context("dev root")?.to_owned();
    let dir = tempfile::tempdir()?;
    let mut opts = BootstrapOptions::local(StateDir::new(dir.path()));
    opts.revoke_root = true;
    // Configured with a given (non-root-from-keys) token: nothing is handed over here.
    opts.admin_token = Some(secrecy::SecretString::from(root.clone()));
    let report = run(&bao, opts.clone())
        .await
        .context("no admin policy yet")?;
    assert!(
        report.notes.iter().all(|n| !n.contains("harmony-admin")),
        "{report:?}"
    );

    let older =
        serde_json::json!({"policy": "path \"sys/*\" { capabilities = [\"sudo\", \"update\"] }"});
    assert_eq!(
        call(
            &bao,
            &root,
            Method::PUT,
            "sys/policies/acl/harmony-admin",
            older
        )
        .await?,
        204
    );
    let report = run(&bao, opts).await.context("older admin policy")?;
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("harmony-admin") && n.contains("--regenerate-root")),
        "{report:?}"
    );
    Ok(())
}

/// Once root is retired, the admin token converges what a later run adds: environments (their
/// policies, the access record and the CEL sign-in role) and the backup policy. Before the admin
/// policy covered the access record, the run failed with a 403 on `secret/data/harmony/_access`.
#[tokio::test]
async fn the_admin_token_adds_environments_after_root_is_retired() -> Result<()> {
    use harmony::openbao::{AccessTable, DEFAULT_DEVELOPER_ROLE, DEFAULT_OPS_ROLE, JwtAuthOptions};

    let bao = OpenbaoServer::sealed().await?;
    let provider = OidcProvider::start(OidcProviderOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let with_jwt = || -> Result<BootstrapOptions> {
        let mut options = options(dir.path());
        options.jwt = Some(JwtAuthOptions::oidc(
            url::Url::parse(provider.issuer())?,
            vec![provider.client_id().to_owned()],
        ));
        Ok(options)
    };
    let first = run(&bao, with_jwt()?).await.context("first run")?;
    ensure!(
        first
            .changes
            .iter()
            .any(|c| c.contains("revoked the root token")),
        "{first:?}"
    );

    let mut envs = with_jwt()?;
    envs.environments = Some(AccessTable::new(
        &["dev".to_owned(), "prod".to_owned()],
        DEFAULT_DEVELOPER_ROLE,
        DEFAULT_OPS_ROLE,
        &[],
    )?);
    let report = run(&bao, envs.clone())
        .await
        .context("the admin token adds environments")?;
    let text = report.changes.join("\n");
    ensure!(text.contains("_access"), "{text}");
    let again = run(&bao, envs).await.context("re-run")?;
    ensure!(again.nothing_changed(), "{again:?}");
    Ok(())
}
