//! How the one OpenBao client connects, against real servers (harmony-testkit): TLS with the
//! server's own CA (`bao server -dev -dev-tls`), a wrong TLS server name, and namespaces
//! (`sys/namespaces`) for the store and for logins.

use harmony_env::vars;
use harmony_secret::oidc::{OidcClient, OidcError, SsoSettings};
use harmony_secret::{
    AuthMethodUsed, AuthStep, OpenbaoSecretStore, OpenbaoSettings, SecretError, SecretStore,
    TlsSettings, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use secrecy::SecretString;
use serde_json::json;

mod support;

use support::{POLICY, captured_logs, captured_text};

fn root_settings(
    bao: &OpenbaoServer,
    sessions: &std::path::Path,
) -> anyhow::Result<OpenbaoSettings> {
    let token = bao
        .root_token()
        .ok_or_else(|| anyhow::anyhow!("dev server has a root token"))?;
    Ok(OpenbaoSettings::new(bao.url())
        .with_token(SecretString::from(token))
        .with_auth_steps([AuthStep::ExplicitToken])
        .with_session_dir(sessions.to_owned()))
}

fn env_settings(pairs: &[(&str, String)]) -> Result<OpenbaoSettings, SecretError> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    OpenbaoSettings::from_lookup(move |name| map.get(name).cloned())
}

#[tokio::test]
async fn tls_with_the_servers_ca_works_and_without_it_the_error_names_bao_cacert()
-> anyhow::Result<()> {
    let logs = captured_logs();
    let bao = OpenbaoServer::dev_tls().await?;
    assert!(bao.url().starts_with("https://"), "{}", bao.url());
    let ca = bao
        .ca_cert()
        .ok_or_else(|| anyhow::anyhow!("dev-tls has a CA"))?;
    let dir = tempfile::tempdir()?;
    let token = bao.root_token().unwrap_or_default().to_owned();

    // With the CA, from the environment as a user would set it.
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (vars::OPENBAO_TOKEN, token.clone()),
        (vars::BAO_CACERT, ca.display().to_string()),
    ])?
    .with_session_dir(dir.path().join("sessions"));
    let store = OpenbaoSecretStore::connect(settings).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::Token);
    store
        .put("tls/app", &json!({"over": "https"}), WriteMode::Cas(None))
        .await?;
    assert_eq!(
        store.get("tls/app").await?.map(|d| d.value),
        Some(json!({"over": "https"}))
    );

    // The Vault name works too.
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (vars::OPENBAO_TOKEN, token.clone()),
        ("VAULT_CACERT", ca.display().to_string()),
    ])?;
    OpenbaoSecretStore::connect(settings).await?;

    // A directory of PEM files (with the key beside them, as bao writes it).
    let capath = tempfile::tempdir()?;
    std::fs::copy(&ca, capath.path().join("ca.pem"))?;
    std::fs::write(capath.path().join("notes.pem"), "not a certificate")?;
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (vars::OPENBAO_TOKEN, token.clone()),
        (vars::BAO_CAPATH, capath.path().display().to_string()),
    ])?;
    OpenbaoSecretStore::connect(settings).await?;

    // Without it: unreachable, and the message says which variable to set.
    let err = OpenbaoSecretStore::connect(root_settings(&bao, dir.path())?)
        .await
        .expect_err("the dev CA is not a system root");
    assert!(matches!(err, SecretError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(vars::BAO_CACERT), "{text}");
    assert!(text.contains(bao.url()), "{text}");

    // Skip-verify connects (and warns; the warning is logged on every client built).
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (vars::OPENBAO_TOKEN, token),
        (vars::BAO_SKIP_VERIFY, "true".to_owned()),
    ])?;
    assert!(settings.tls().skip_verify);
    OpenbaoSecretStore::connect(settings).await?;
    let text = captured_text(&logs);
    assert!(
        text.contains("TLS certificate verification is OFF"),
        "{text}"
    );
    assert!(
        !text.contains(bao.root_token().unwrap_or("-")),
        "the token reached the logs"
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_tls_server_name_fails_clearly_and_a_right_one_works() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev_tls().await?;
    let ca = bao
        .ca_cert()
        .ok_or_else(|| anyhow::anyhow!("dev-tls has a CA"))?;
    let dir = tempfile::tempdir()?;

    let wrong = root_settings(&bao, dir.path())?.with_tls(
        TlsSettings::default()
            .with_ca_cert(&ca)
            .with_server_name("wrong.example"),
    );
    let err = OpenbaoSecretStore::connect(wrong)
        .await
        .expect_err("the certificate is not for wrong.example");
    let text = err.to_string();
    assert!(matches!(err, SecretError::Unreachable { .. }), "{err:?}");
    assert!(
        text.contains("not valid for the name \"wrong.example\""),
        "{text}"
    );
    assert!(text.contains(vars::BAO_TLS_SERVER_NAME), "{text}");

    // The URL says 127.0.0.1; the certificate also lists `localhost`, which is checked while
    // the connection still goes to the URL's address.
    let right = root_settings(&bao, dir.path())?.with_tls(
        TlsSettings::default()
            .with_ca_cert(&ca)
            .with_server_name("localhost"),
    );
    let store = OpenbaoSecretStore::connect(right).await?;
    assert_eq!(
        store.client().url(),
        bao.url(),
        "messages keep the URL given"
    );
    store
        .put("named", &json!({"n": 1}), WriteMode::Cas(None))
        .await?;

    // A URL with a DNS name: the server name (`localhost6`, also in the certificate, not
    // resolvable here) is connected to at the address the URL's host resolves to.
    let by_name = bao.url().replace("127.0.0.1", "localhost");
    let token = bao.root_token().unwrap_or_default().to_owned();
    let named = OpenbaoSettings::new(by_name)
        .with_token(SecretString::from(token))
        .with_auth_steps([AuthStep::ExplicitToken])
        .with_tls(
            TlsSettings::default()
                .with_ca_cert(&ca)
                .with_server_name("localhost6"),
        );
    let store = OpenbaoSecretStore::connect(named).await?;
    assert!(store.get("named").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn a_document_written_in_a_namespace_is_not_visible_at_the_root() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    bao.create_namespace("team-a").await?;
    let dir = tempfile::tempdir()?;

    let mut in_team = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (
            vars::OPENBAO_TOKEN,
            bao.root_token().unwrap_or_default().to_owned(),
        ),
        (vars::BAO_NAMESPACE, "team-a".to_owned()),
    ])?;
    assert_eq!(in_team.namespace(), Some("team-a"));
    in_team = in_team.with_session_dir(dir.path().join("sessions"));
    let team = OpenbaoSecretStore::connect(in_team).await?;
    team.put("app", &json!({"team": "a"}), WriteMode::Cas(None))
        .await?;
    assert_eq!(
        team.get("app").await?.map(|d| d.value),
        Some(json!({"team": "a"}))
    );
    assert_eq!(team.list("").await?, ["app"]);

    let root = OpenbaoSecretStore::connect(root_settings(&bao, dir.path())?).await?;
    assert_eq!(
        root.get("app").await?,
        None,
        "the root namespace has its own KV"
    );
    assert!(root.list("").await?.is_empty());
    // And the namespace's data really is where OpenBao keeps team-a's.
    let raw = bao
        .root_call_in(
            "team-a",
            reqwest::Method::GET,
            "secret/data/harmony/app",
            None,
        )
        .await?;
    assert_eq!(raw["data"]["data"], json!({"team": "a"}));

    // The Vault name works too.
    let vault_named = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (
            vars::OPENBAO_TOKEN,
            bao.root_token().unwrap_or_default().to_owned(),
        ),
        ("VAULT_NAMESPACE", "team-a".to_owned()),
    ])?;
    let team_again = OpenbaoSecretStore::connect(vault_named).await?;
    assert!(team_again.get("app").await?.is_some());
    Ok(())
}

#[tokio::test]
async fn userpass_login_in_a_namespace_works_and_is_cached_apart() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev().await?;
    bao.create_namespace("team-a").await?;
    for (path, body) in [
        ("sys/policies/acl/harmony-dev", json!({ "policy": POLICY })),
        ("sys/auth/userpass", json!({ "type": "userpass" })),
        (
            "auth/userpass/users/alice",
            json!({"password": "pw-alice-ns", "token_policies": "harmony-dev", "token_ttl": "1h"}),
        ),
    ] {
        bao.root_call_in("team-a", reqwest::Method::POST, path, Some(body))
            .await?;
    }
    let dir = tempfile::tempdir()?;
    let settings = |namespace: Option<&str>| {
        OpenbaoSettings::new(bao.url())
            .with_namespace(namespace.map(str::to_owned))
            .with_userpass("alice", SecretString::from("pw-alice-ns"))
            .with_session_dir(dir.path().join("sessions"))
    };

    let store = OpenbaoSecretStore::connect(settings(Some("team-a"))).await?;
    assert_eq!(store.auth_method(), AuthMethodUsed::Userpass);
    store
        .put("login", &json!({"ok": true}), WriteMode::Cas(None))
        .await?;
    let again = OpenbaoSecretStore::connect(settings(Some("team-a"))).await?;
    assert_eq!(again.auth_method(), AuthMethodUsed::CachedSession);
    assert!(again.get("login").await?.is_some());

    // At the root, alice does not exist, and team-a's cached session is not offered.
    let err = OpenbaoSecretStore::connect(settings(None))
        .await
        .expect_err("no such user at the root");
    let text = err.to_string();
    assert!(text.contains("userpass login: rejected"), "{text}");
    assert!(text.contains("cached session: no cached session"), "{text}");
    Ok(())
}

/// The OpenID provider's HTTPS trusts the system roots plus `HARMONY_SSO_CACERT`. The provider
/// here is OpenBao's own (its `identity/oidc/provider/default` serves discovery over the
/// dev-tls listener, signed by the dev CA): with the CA discovery succeeds, without it the
/// error names the variable.
#[tokio::test]
async fn the_sso_providers_https_trusts_harmony_sso_cacert() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev_tls().await?;
    let ca = bao
        .ca_cert()
        .ok_or_else(|| anyhow::anyhow!("dev-tls has a CA"))?;
    let issuer = format!("{}/v1/identity/oidc/provider/default", bao.url());
    let lookup = |with_ca: bool| {
        let (issuer, ca) = (issuer.clone(), ca.display().to_string());
        move |name: &str| match name {
            vars::HARMONY_SSO_URL => Some(issuer.clone()),
            vars::HARMONY_SSO_CLIENT_ID => Some("harmony-cli".to_owned()),
            vars::HARMONY_SSO_CACERT if with_ca => Some(ca.clone()),
            _ => None,
        }
    };
    let with_ca =
        SsoSettings::from_lookup(lookup(true))?.ok_or_else(|| anyhow::anyhow!("configured"))?;
    let provider = OidcClient::discover(&with_ca).await?;
    assert_eq!(provider.metadata().issuer, issuer);
    assert!(provider.metadata().token_endpoint.starts_with("https://"));

    let without =
        SsoSettings::from_lookup(lookup(false))?.ok_or_else(|| anyhow::anyhow!("configured"))?;
    let err = OidcClient::discover(&without)
        .await
        .expect_err("the dev CA is not a system root");
    assert!(matches!(err, OidcError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(vars::HARMONY_SSO_CACERT), "{err}");
    Ok(())
}

/// A client certificate and key are read and presented (the dev-tls listener does not ask for
/// one, so this proves the files are loaded and the TLS setup still connects).
#[tokio::test]
async fn a_client_certificate_is_loaded_from_pem_files() -> anyhow::Result<()> {
    let bao = OpenbaoServer::dev_tls().await?;
    let ca = bao
        .ca_cert()
        .ok_or_else(|| anyhow::anyhow!("dev-tls has a CA"))?;
    let tls_dir = ca
        .parent()
        .ok_or_else(|| anyhow::anyhow!("CA in a directory"))?;
    let dir = tempfile::tempdir()?;
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (
            vars::OPENBAO_TOKEN,
            bao.root_token().unwrap_or_default().to_owned(),
        ),
        (vars::BAO_CACERT, ca.display().to_string()),
        (
            vars::BAO_CLIENT_CERT,
            tls_dir.join("vault-cert.pem").display().to_string(),
        ),
        (
            vars::BAO_CLIENT_KEY,
            tls_dir.join("vault-key.pem").display().to_string(),
        ),
    ])?
    .with_session_dir(dir.path().join("sessions"));
    OpenbaoSecretStore::connect(settings).await?;

    // A key file that is not a key: a clear error naming both variables.
    let settings = env_settings(&[
        (vars::OPENBAO_URL, bao.url().to_owned()),
        (
            vars::BAO_CLIENT_CERT,
            tls_dir.join("vault-cert.pem").display().to_string(),
        ),
        (vars::BAO_CLIENT_KEY, ca.display().to_string()),
    ])?;
    let err = OpenbaoSecretStore::connect(settings)
        .await
        .expect_err("no private key");
    let text = err.to_string();
    assert!(
        text.contains(vars::BAO_CLIENT_CERT) && text.contains(vars::BAO_CLIENT_KEY),
        "{text}"
    );
    Ok(())
}
