//! The test OpenID provider itself: it starts, its device flow can be approved and denied over
//! HTTP, its options (interval, slow_down) take effect, and OpenBao's JWT auth accepts its
//! id_tokens. Real provider (Node + oidc-provider) and real OpenBao.

use std::time::Duration;

use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{JwtRole, OidcProvider, OidcProviderOptions};
use serde_json::Value;

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn device_auth(op: &OidcProvider) -> Value {
    reqwest::Client::new()
        .post(format!("{}/device/auth", op.issuer()))
        .form(&[
            ("client_id", op.client_id()),
            ("scope", "openid offline_access email profile"),
        ])
        .send()
        .await
        .expect("device auth")
        .json()
        .await
        .expect("device auth JSON")
}

async fn poll(op: &OidcProvider, device_code: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/token", op.issuer()))
        .form(&[
            ("client_id", op.client_id()),
            ("grant_type", DEVICE_GRANT),
            ("device_code", device_code),
        ])
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("poll JSON")
}

#[tokio::test]
async fn approve_gives_tokens_and_openbao_accepts_the_id_token() {
    let op = OidcProvider::start(OidcProviderOptions::default())
        .await
        .expect("provider");
    let auth = device_auth(&op).await;
    assert!(
        auth.get("interval").is_none(),
        "provider sends no interval by default"
    );
    let device_code = auth["device_code"].as_str().expect("device_code");
    assert_eq!(
        poll(&op, device_code).await["error"],
        "authorization_pending"
    );

    op.approve_user_code(auth["user_code"].as_str().expect("user_code"), "alice")
        .await
        .expect("approve");
    let tokens = poll(&op, device_code).await;
    let id_token = tokens["id_token"].as_str().expect("id_token");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    let bao = OpenbaoServer::dev().await.expect("bao");
    op.configure_openbao_jwt(&bao, "jwt", &JwtRole::default())
        .await
        .expect("configure jwt");
    let login: Value = reqwest::Client::new()
        .post(format!("{}/v1/auth/jwt/login", bao.url()))
        .json(&serde_json::json!({"role": "harmony-developer", "jwt": id_token}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login JSON");
    assert_eq!(login["auth"]["metadata"]["role"], "harmony-developer");
    assert!(login["auth"]["client_token"].is_string(), "{login}");

    let polls = op.polls().await.expect("polls");
    let outcomes: Vec<&str> = polls.iter().map(|p| p.outcome.as_str()).collect();
    assert_eq!(outcomes, ["authorization_pending", "tokens"]);
}

#[tokio::test]
async fn deny_gives_access_denied_and_options_take_effect() {
    let op = OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(2)),
        slow_down: 1,
        ..Default::default()
    })
    .await
    .expect("provider");
    let auth = device_auth(&op).await;
    assert_eq!(auth["interval"], 2);
    let device_code = auth["device_code"].as_str().expect("device_code");
    assert_eq!(poll(&op, device_code).await["error"], "slow_down");
    assert_eq!(
        poll(&op, device_code).await["error"],
        "authorization_pending"
    );
    op.deny_user_code(auth["user_code"].as_str().expect("user_code"))
        .await
        .expect("deny");
    assert_eq!(poll(&op, device_code).await["error"], "access_denied");
    assert!(
        op.approve_user_code("XXXX-XXXX", "bob").await.is_err(),
        "an unknown user code cannot be approved"
    );
}
