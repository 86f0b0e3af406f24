//! The author records of config versions (`<prefix>/_history/<ENTITY_ID>/<LAYER_PATH>/<VERSION>`)
//! and the policy stanzas the bootstrap writes for them, proven on a REAL OpenBao 2.7.2 dev
//! server (harmony-testkit): the templated path `_history/{{identity.entity.id}}/*` lets a
//! signed-in teammate create records under their own entity only — bob is refused (403) a
//! record under alice's entity, and nobody rewrites a record, not even their own.

use anyhow::{Context, Result, bail};
use harmony::openbao::{
    AccessLevel, HARMONY_BASE_READ_POLICY, HARMONY_BASE_WRITE_POLICY, HARMONY_DEV_POLICY,
    base_policy_hcl, environment_policy_hcl, environment_policy_name, harmony_dev_policy_hcl,
};
use harmony_testkit::OpenbaoServer;
use reqwest::Method;
use serde_json::{Value, json};

/// A call with `token`; returns the status code and the JSON body (`null` when empty).
async fn call(
    bao: &OpenbaoServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let mut req = http.request(method, format!("{}/v1/{path}", bao.url()));
    if let Some(token) = token {
        req = req.header("X-Vault-Token", token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).context("JSON answer")?
    };
    Ok((status, body))
}

async fn put_policy(bao: &OpenbaoServer, name: &str, hcl: String) -> Result<()> {
    bao.root_call(
        Method::PUT,
        &format!("sys/policies/acl/{name}"),
        Some(json!({ "policy": hcl })),
    )
    .await?;
    Ok(())
}

/// A userpass sign-in: the token and its entity id (every login has an entity).
async fn login(bao: &OpenbaoServer, user: &str, policies: &[&str]) -> Result<(String, String)> {
    bao.add_userpass_user(user, "pw-for-tests", policies, "10m")
        .await?;
    let (status, body) = call(
        bao,
        Method::POST,
        &format!("auth/userpass/login/{user}"),
        None,
        Some(json!({ "password": "pw-for-tests" })),
    )
    .await?;
    if status != 200 {
        bail!("userpass login of {user} answered {status}");
    }
    let token = body["auth"]["client_token"]
        .as_str()
        .context("client_token")?
        .to_owned();
    let entity = body["auth"]["entity_id"]
        .as_str()
        .context("entity_id")?
        .to_owned();
    assert!(!entity.is_empty(), "a userpass login has an entity");
    Ok((token, entity))
}

async fn write_record(bao: &OpenbaoServer, token: &str, path: &str) -> Result<u16> {
    let (status, _) = call(
        bao,
        Method::POST,
        &format!("secret/data/harmony/_history/{path}"),
        Some(token),
        Some(json!({ "data": { "message": "set database.port" } })),
    )
    .await?;
    Ok(status)
}

#[tokio::test]
async fn a_teammate_creates_author_records_under_their_own_entity_only() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    put_policy(&bao, HARMONY_DEV_POLICY, harmony_dev_policy_hcl()).await?;
    let (alice, alice_id) = login(&bao, "alice", &[HARMONY_DEV_POLICY]).await?;
    let (bob, bob_id) = login(&bao, "bob", &[HARMONY_DEV_POLICY]).await?;
    assert_ne!(alice_id, bob_id);

    // Bob cannot claim alice wrote version 1 of app/db.
    assert_eq!(
        write_record(&bao, &bob, &format!("{alice_id}/app/db/1")).await?,
        403
    );
    // His own record is accepted, once: a record is never rewritten.
    assert_eq!(
        write_record(&bao, &bob, &format!("{bob_id}/app/db/1")).await?,
        200
    );
    assert_eq!(
        write_record(&bao, &bob, &format!("{bob_id}/app/db/1")).await?,
        403
    );
    // Nor deleted.
    let (status, _) = call(
        &bao,
        Method::DELETE,
        &format!("secret/metadata/harmony/_history/{bob_id}/app/db/1"),
        Some(&bob),
        None,
    )
    .await?;
    assert_eq!(status, 403);
    // Alice reads it, and lists whose records there are.
    let (status, body) = call(
        &bao,
        Method::GET,
        &format!("secret/data/harmony/_history/{bob_id}/app/db/1"),
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["data"]["message"], "set database.port");
    let (status, body) = call(
        &bao,
        Method::from_bytes(b"LIST")?,
        "secret/metadata/harmony/_history/",
        Some(&alice),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["keys"], json!([format!("{bob_id}/")]));
    // The documents themselves are still written as before.
    let (status, _) = call(
        &bao,
        Method::POST,
        "secret/data/harmony/app/db",
        Some(&alice),
        Some(json!({ "data": { "port": 5432 } })),
    )
    .await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn with_environments_records_follow_the_write_policies() -> Result<()> {
    let bao = OpenbaoServer::dev().await?;
    put_policy(
        &bao,
        HARMONY_BASE_READ_POLICY,
        base_policy_hcl(AccessLevel::Read),
    )
    .await?;
    put_policy(
        &bao,
        HARMONY_BASE_WRITE_POLICY,
        base_policy_hcl(AccessLevel::Write),
    )
    .await?;
    let dev_write = environment_policy_name("dev", AccessLevel::Write);
    put_policy(
        &bao,
        &dev_write,
        environment_policy_hcl("dev", AccessLevel::Write),
    )
    .await?;
    // A developer: reads the base, writes dev. An operator: writes the base.
    let (dev, dev_id) = login(&bao, "dana", &[HARMONY_BASE_READ_POLICY, &dev_write]).await?;
    let (ops, ops_id) = login(&bao, "olga", &[HARMONY_BASE_WRITE_POLICY]).await?;

    assert_eq!(
        write_record(&bao, &dev, &format!("{dev_id}/_env/dev/app/1")).await?,
        200
    );
    // Not for the base (the developer cannot write it), not for another entity.
    assert_eq!(
        write_record(&bao, &dev, &format!("{dev_id}/app/1")).await?,
        403
    );
    assert_eq!(
        write_record(&bao, &dev, &format!("{ops_id}/_env/dev/app/2")).await?,
        403
    );
    // The operator, with write on `<prefix>/*`, still cannot name the developer's entity.
    assert_eq!(
        write_record(&bao, &ops, &format!("{dev_id}/app/1")).await?,
        403
    );
    assert_eq!(
        write_record(&bao, &ops, &format!("{ops_id}/app/1")).await?,
        200
    );
    Ok(())
}
