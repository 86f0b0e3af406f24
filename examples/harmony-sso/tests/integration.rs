//! Live tests against a stack deployed by `cargo run -p example-harmony-sso` on a machine with
//! Docker (seed plan C.1). They read the local state the deploy saved under `harmony_data_dir()`
//! for cluster `harmony` (or `HARMONY_LIVE_CLUSTER`, see harmony_env::vars), and reach the cluster through the k3d load
//! balancer on 127.0.0.1:8080: `http://bao.harmony.local:8080` / `http://sso.harmony.local:8080`
//! with the names resolved to it (never a hand-set Host header).
//!
//! Run: `cargo run -p example-harmony-sso && cargo test -p example-harmony-sso --test integration -- --ignored`

use std::sync::Arc;
use std::time::Duration;

use harmony::openbao::{DEFAULT_USERPASS_USER, StateDir};
use harmony_config::{Config, ConfigManager, EnvSource, StoreSource};
use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode};
use schemars::JsonSchema;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const OPENBAO: &str = "http://bao.harmony.local:8080";
const ZITADEL: &str = "http://sso.harmony.local:8080";

#[test]
fn the_live_urls_are_the_ingress_urls_the_deploy_uses() {
    use harmony::ingress::{BAO_HOST, LocalIngress, SSO_HOST};
    let ingress = LocalIngress::k3d();
    assert_eq!(
        ingress.url(BAO_HOST).as_str().trim_end_matches('/'),
        OPENBAO
    );
    assert_eq!(
        ingress.url(SSO_HOST).as_str().trim_end_matches('/'),
        ZITADEL
    );
    assert_eq!(
        harmony::zitadel::ZitadelScore::default().issuer(),
        ZITADEL,
        "the issuer the deploy configures is the URL the live tests call"
    );
}

fn cluster() -> String {
    std::env::var(harmony_env::vars::HARMONY_LIVE_CLUSTER).unwrap_or_else(|_| "harmony".to_owned())
}

/// Resolves the stack's host names to the k3d load balancer, the one way the deploy and the CLI
/// do it ([`harmony::ingress::LocalIngress`]).
fn http() -> reqwest::Client {
    harmony::ingress::LocalIngress::k3d()
        .client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn userpass_settings() -> OpenbaoSettings {
    let state = StateDir::for_cluster(&cluster()).expect("state dir");
    let password = state
        .userpass_password(DEFAULT_USERPASS_USER)
        .await
        .expect("read password file")
        .expect(
            "the deploy saved a userpass password; run `cargo run -p example-harmony-sso` first",
        );
    OpenbaoSettings::new(OPENBAO)
        .with_userpass(DEFAULT_USERPASS_USER, password)
        .with_http_client(http())
        .with_kv_prefix("harmony/live-tests")
}

#[tokio::test]
#[ignore = "needs a stack deployed on Docker + k3d"]
async fn test_openbao_health() {
    let resp = http()
        .get(format!("{OPENBAO}/v1/sys/health"))
        .send()
        .await
        .expect("OpenBao through the load balancer");
    assert_eq!(resp.status(), 200, "initialised, unsealed, active");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], false);
}

#[tokio::test]
#[ignore = "needs a stack deployed on Docker + k3d"]
async fn test_zitadel_openid_config() {
    let body: Value = http()
        .get(format!("{ZITADEL}/.well-known/openid-configuration"))
        .send()
        .await
        .expect("Zitadel through the load balancer")
        .error_for_status()
        .expect("discovery answers")
        .json()
        .await
        .expect("json");
    assert_eq!(body["issuer"], ZITADEL);
    assert!(body["device_authorization_endpoint"].is_string(), "{body}");
}

#[tokio::test]
#[ignore = "needs a stack deployed on Docker + k3d"]
async fn test_openbao_userpass_auth() {
    let store = OpenbaoSecretStore::connect(userpass_settings().await)
        .await
        .expect("userpass login with the saved password");
    let doc = json!({"written_by": "integration test"});
    store
        .put("userpass-roundtrip", &doc, WriteMode::Overwrite)
        .await
        .expect("write under secret/harmony/");
    let read = store
        .get("userpass-roundtrip")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read.value, doc);
    store.delete("userpass-roundtrip").await.expect("delete");
}

#[derive(Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct LiveConfig {
    name: String,
    replicas: u32,
}

impl Config for LiveConfig {
    const KEY: &'static str = "live-config";
}

#[tokio::test]
#[ignore = "needs a stack deployed on Docker + k3d"]
async fn test_config_manager_openbao_backend() {
    let store = Arc::new(
        OpenbaoSecretStore::connect(userpass_settings().await)
            .await
            .expect("login"),
    );
    let _ = store.delete(LiveConfig::KEY).await;
    let manager = ConfigManager::builder()
        .source(EnvSource::from_map([("HARMONY_LIVE_CONFIG_REPLICAS", "9")]))
        .source(StoreSource::new(Arc::clone(&store)))
        .interactive(false)
        .build();
    let value = LiveConfig {
        name: "live".into(),
        replicas: 1,
    };
    manager
        .set(&harmony_config::Snapshot::new(value))
        .await
        .expect("set with check-and-set");
    let resolved: LiveConfig = manager.get().await.expect("get");
    assert_eq!(resolved.name, "live");
    assert_eq!(resolved.replicas, 9, "the environment wins field by field");
    store.delete(LiveConfig::KEY).await.expect("clean up");
}

#[tokio::test]
#[ignore = "needs a stack deployed on Docker + k3d"]
async fn test_openbao_jwt_auth_configured() {
    let state = StateDir::for_cluster(&cluster()).expect("state dir");
    let root = state
        .root_token()
        .await
        .expect("read keys file")
        .expect("the deploy saved the root token");
    let get = |path: &'static str| {
        let root = root.expose_secret().to_owned();
        async move {
            http()
                .get(format!("{OPENBAO}/v1/{path}"))
                .header("X-Vault-Token", root)
                .send()
                .await
                .expect("request")
                .error_for_status()
                .expect("answer")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let auths = get("sys/auth").await;
    assert_eq!(auths["jwt/"]["type"], "jwt", "{auths}");
    let config = get("auth/jwt/config").await;
    assert_eq!(config["data"]["oidc_discovery_url"], ZITADEL);
    let role = get("auth/jwt/role/harmony-developer").await;
    assert_eq!(role["data"]["role_type"], "jwt");
    assert!(
        role["data"]["token_policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "harmony-dev")),
        "{role}"
    );
    assert!(
        role["data"]["bound_audiences"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}
