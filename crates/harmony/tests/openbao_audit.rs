//! The server's own audit trail: the declarative file audit device the deploy puts in
//! OpenBao's configuration ([`harmony::openbao::audit_device_hcl`]; OpenBao 2.7 refuses
//! enabling audit devices through the API), proven on the REAL pinned `bao` 2.7.2
//! (harmony-testkit) started with that stanza. A user signed in through JWT (an id_token of
//! the real test OpenID provider) and one through userpass write a secret; the log names each
//! write's entity and carries no plaintext value, password or token (they are HMAC'd).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use harmony::openbao::{
    AUDIT_DEVICE_PATH, HARMONY_DEV_POLICY, audit_device_hcl, harmony_dev_policy_hcl,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{JwtRole, OidcProvider, OidcProviderOptions};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "pg-audit-S3cret-value-42";
const PASSWORD: &str = "pw-for-the-audit-test";

async fn post(bao: &OpenbaoServer, path: &str, token: Option<&str>, body: Value) -> Result<Value> {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/{path}", bao.url()))
        .timeout(Duration::from_secs(10))
        .json(&body);
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    let resp = req.send().await?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("POST {path}: {status} {body}");
    }
    Ok(body)
}

/// (token, entity id) of a login answer.
fn signed_in(body: &Value) -> Result<(String, String)> {
    let token = body["auth"]["client_token"]
        .as_str()
        .context("client_token")?;
    let entity = body["auth"]["entity_id"].as_str().context("entity_id")?;
    anyhow::ensure!(!entity.is_empty(), "the login has an entity");
    Ok((token.to_owned(), entity.to_owned()))
}

/// The audit log's entries for a KV write of `path` (request and response), parsed.
fn writes_of(log: &str, path: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["request"]["path"] == path
                && matches!(
                    e["request"]["operation"].as_str(),
                    Some("create" | "update")
                )
        })
        .collect()
}

#[tokio::test]
async fn the_declared_audit_device_records_each_write_with_its_entity_and_no_plaintext()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let log_path = dir.path().join("audit.log");
    let bao = OpenbaoServer::dev_with_config(&audit_device_hcl(&log_path.display().to_string()))
        .await
        .context("bao accepts the audit stanza")?;
    let devices = bao.root_call(Method::GET, "sys/audit", None).await?;
    let key = format!("{AUDIT_DEVICE_PATH}/");
    let device = devices
        .get(&key)
        .or_else(|| devices["data"].get(&key))
        .with_context(|| format!("{key} in {devices}"))?;
    assert_eq!(device["type"], "file");

    bao.root_call(
        Method::PUT,
        &format!("sys/policies/acl/{HARMONY_DEV_POLICY}"),
        Some(json!({ "policy": harmony_dev_policy_hcl() })),
    )
    .await?;

    // A JWT sign-in with a real id_token of the test OpenID provider.
    let provider = OidcProvider::start(OidcProviderOptions::default()).await?;
    provider
        .configure_openbao_jwt(
            &bao,
            "jwt",
            &JwtRole {
                policies: vec![HARMONY_DEV_POLICY.to_owned()],
                ..JwtRole::default()
            },
        )
        .await?;
    let job = provider
        .ci_job(&json!({"sub": "alice", "email": "alice@harmony.test"}))
        .await?;
    let id_token = provider.ci_id_token(&job, provider.client_id()).await?;
    let (alice, alice_entity) = signed_in(
        &post(
            &bao,
            "auth/jwt/login",
            None,
            json!({"role": "harmony-developer", "jwt": id_token}),
        )
        .await?,
    )?;
    // A userpass sign-in.
    bao.add_userpass_user("bob", PASSWORD, &[HARMONY_DEV_POLICY], "10m")
        .await?;
    let (bob, bob_entity) = signed_in(
        &post(
            &bao,
            "auth/userpass/login/bob",
            None,
            json!({ "password": PASSWORD }),
        )
        .await?,
    )?;

    post(
        &bao,
        "secret/data/harmony/app",
        Some(&alice),
        json!({"data": {"db_password": SECRET}}),
    )
    .await?;
    post(
        &bao,
        "secret/data/harmony/other",
        Some(&bob),
        json!({"data": {"db_password": SECRET}}),
    )
    .await?;

    let log = std::fs::read_to_string(&log_path).context("the audit log")?;
    for (path, entity, who) in [
        ("secret/data/harmony/app", &alice_entity, "alice (JWT)"),
        ("secret/data/harmony/other", &bob_entity, "bob (userpass)"),
    ] {
        let entries = writes_of(&log, path);
        assert!(
            entries.iter().any(|e| e["type"] == "request"),
            "{who}: no request entry for {path}"
        );
        for e in &entries {
            assert_eq!(e["auth"]["entity_id"], entity.as_str(), "{who}: {e}");
            let value = e["request"]["data"]["data"]["db_password"]
                .as_str()
                .unwrap_or_default();
            assert!(value.starts_with("hmac-sha256:"), "{who}: {e}");
        }
    }
    assert!(
        writes_of(&log, "secret/data/harmony/app")
            .iter()
            .any(|e| e["auth"]["display_name"] == "jwt-alice"),
        "the JWT login is named"
    );
    for plaintext in [
        SECRET,
        PASSWORD,
        alice.as_str(),
        bob.as_str(),
        id_token.as_str(),
    ] {
        assert!(
            !log.contains(plaintext),
            "a plaintext value or token is in the audit log"
        );
    }
    Ok(())
}
