//! The `harmony-backup` policy the bootstrap writes, proven on a REAL sealed raft OpenBao
//! (harmony-testkit): a token with only that policy takes a snapshot (through the same library
//! operation as `harmony backup save`) and is refused (403) reading a document, writing a
//! policy, and restoring a snapshot.

use anyhow::{Context, Result};
use harmony::openbao::{
    BootstrapOptions, HARMONY_BACKUP_POLICY, OpenbaoBootstrap, StateDir, harmony_backup_policy_hcl,
};
use harmony_secret::backup;
use harmony_secret::{OpenbaoClient, SecretError};
use harmony_testkit::OpenbaoServer;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::json;

#[tokio::test]
async fn a_backup_token_takes_a_snapshot_and_nothing_else() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let state = tempfile::tempdir()?;
    let url = url::Url::parse(bao.url())?;
    let report = OpenbaoBootstrap::new(&url, BootstrapOptions::local(StateDir::new(state.path())))?
        .run()
        .await?;
    assert!(
        report
            .changes
            .iter()
            .any(|c| c == &format!("created policy {HARMONY_BACKUP_POLICY}")),
        "{report:?}"
    );
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(StateDir::new(state.path()).keys_file())?)?;
    let root = keys["root_token"]
        .as_str()
        .context("root token")?
        .to_owned();
    let admin = OpenbaoClient::new(bao.url(), OpenbaoClient::http_client()?)
        .with_token(SecretString::from(root));
    let stored = admin
        .get(&format!("sys/policies/acl/{HARMONY_BACKUP_POLICY}"))
        .await?
        .context("policy")?;
    assert_eq!(
        stored["data"]["policy"].as_str(),
        Some(harmony_backup_policy_hcl().as_str())
    );
    admin
        .post(
            "secret/data/harmony/team",
            &json!({"data": {"password": "hunter2"}}),
        )
        .await?;
    let created = admin
        .post(
            "auth/token/create",
            &json!({"policies": [HARMONY_BACKUP_POLICY], "no_default_policy": true, "ttl": "10m"}),
        )
        .await?
        .context("token")?;
    let token = created["auth"]["client_token"]
        .as_str()
        .context("client_token")?
        .to_owned();
    let backup_client = OpenbaoClient::new(bao.url(), OpenbaoClient::http_client()?)
        .with_token(SecretString::from(token));

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("b.snap");
    let manifest = backup::save(&backup_client, &file, &|_| {}).await?;
    assert!(manifest.raft_index > 0);
    backup::verify(&file).await?;

    let denied = |r: Result<Option<serde_json::Value>, SecretError>| {
        matches!(r, Err(SecretError::PermissionDenied { .. }))
    };
    assert!(
        denied(backup_client.get("secret/data/harmony/team").await),
        "reading a document"
    );
    assert!(
        denied(
            backup_client
                .put(
                    "sys/policies/acl/mine",
                    &json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"})
                )
                .await
        ),
        "writing a policy"
    );
    assert!(
        denied(
            backup_client
                .request(Method::GET, "sys/policies/acl", None)
                .await
        ),
        "listing policies"
    );
    let restore = backup::restore(&backup_client, &file, false).await;
    assert!(
        matches!(
            restore,
            Err(backup::BackupError::Openbao(
                SecretError::PermissionDenied { .. }
            ))
        ),
        "restoring: {restore:?}"
    );
    Ok(())
}
