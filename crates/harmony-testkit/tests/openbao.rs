//! The test kit's OpenBao is the real server: dev mode answers with its root token, and a raft
//! server starts uninitialised, can be initialised and unsealed, and comes back sealed on restart.

use harmony_testkit::OpenbaoServer;
use reqwest::Method;

async fn health(url: &str) -> u16 {
    reqwest::get(format!("{url}/v1/sys/health"))
        .await
        .expect("health request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn dev_server_is_active_and_knows_its_root_token() {
    let bao = OpenbaoServer::dev().await.expect("start dev OpenBao");
    assert_eq!(health(bao.url()).await, 200);
    let me = bao
        .root_call(Method::GET, "auth/token/lookup-self", None)
        .await
        .expect("lookup-self with the root token");
    assert_eq!(me["data"]["policies"][0], "root");
}

#[tokio::test]
async fn raft_server_starts_sealed_and_reseals_on_restart() {
    let mut bao = OpenbaoServer::sealed().await.expect("start raft OpenBao");
    assert_eq!(health(bao.url()).await, 501, "uninitialised");
    let keys = bao.init().await.expect("init");
    assert_eq!(keys.keys_b64.len(), 1);
    assert!(
        !format!("{keys:?}").contains(&keys.root_token),
        "Debug redacts"
    );
    assert_eq!(health(bao.url()).await, 503, "initialised but sealed");
    bao.unseal(&keys).await.expect("unseal");
    assert_eq!(health(bao.url()).await, 200);
    bao.restart().await.expect("restart");
    assert_eq!(health(bao.url()).await, 503, "sealed again after restart");
    bao.unseal(&keys).await.expect("unseal after restart");
    assert_eq!(health(bao.url()).await, 200);
}

#[tokio::test]
async fn stopped_server_refuses_connections() {
    let mut bao = OpenbaoServer::dev().await.expect("start dev OpenBao");
    let url = bao.url().to_owned();
    bao.stop();
    assert!(reqwest::get(format!("{url}/v1/sys/health")).await.is_err());
}
