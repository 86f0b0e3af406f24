//! `harmony_secret::backup` against REAL OpenBao raft storage (harmony-testkit): the restore
//! drill on the single sealed raft server and on a 3-node raft cluster (write documents,
//! schemas and several versions; save; stop and delete the data; a new server with new keys;
//! restore with force; unseal with the ORIGINAL keys; everything is back), and a tampered
//! archive refused offline.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use harmony_secret::backup::{self, BackupError};
use harmony_secret::{OpenbaoClient, OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode};
use harmony_testkit::{InitKeys, OpenbaoCluster, OpenbaoServer};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

const PREFIX: &str = "drill";

async fn store(url: &str, token: &str) -> Result<OpenbaoSecretStore> {
    let dir = tempfile::tempdir()?;
    Ok(OpenbaoSecretStore::connect(
        OpenbaoSettings::new(url)
            .with_token(SecretString::from(token.to_owned()))
            .with_kv_prefix(PREFIX)
            .with_session_dir(dir.path().join("sessions")),
    )
    .await?)
}

fn client(url: &str, token: &str) -> Result<OpenbaoClient> {
    Ok(OpenbaoClient::new(url, OpenbaoClient::http_client()?)
        .with_token(SecretString::from(token.to_owned())))
}

/// What the drill writes: two documents with several versions each, and a schema.
fn history() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        (
            "app",
            vec![
                json!({"db": {"host": "db-1", "port": 5432}}),
                json!({"db": {"host": "db-2", "port": 5432}, "debug": true}),
                json!({"db": {"host": "db-2", "port": 5433}, "debug": false, "api_key": "s3cr3t"}),
            ],
        ),
        (
            "billing",
            vec![json!({"currency": "EUR"}), json!({"currency": "CHF"})],
        ),
        (
            "_schema/app",
            vec![json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {"api_key": {"type": "string", "x-secret": true}},
            })],
        ),
    ]
}

async fn write_history(url: &str, token: &str) -> Result<()> {
    let store = store(url, token).await?;
    for (key, versions) in history() {
        let mut current = None;
        for value in versions {
            current = Some(store.put(key, &value, WriteMode::Cas(current)).await?);
        }
    }
    Ok(())
}

/// Every version of every document and schema reads back as written.
async fn check_history(url: &str, token: &str) -> Result<()> {
    let client = client(url, token)?;
    for (key, versions) in history() {
        let meta = client
            .get(&format!("secret/metadata/{PREFIX}/{key}"))
            .await?
            .context("metadata")?;
        assert_eq!(
            meta["data"]["current_version"].as_u64(),
            Some(versions.len() as u64),
            "{key}"
        );
        for (i, value) in versions.iter().enumerate() {
            let read = client
                .get(&format!("secret/data/{PREFIX}/{key}?version={}", i + 1))
                .await?
                .context("version")?;
            assert_eq!(&read["data"]["data"], value, "{key} version {}", i + 1);
        }
    }
    Ok(())
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

async fn enable_kv(bao: &OpenbaoServer) -> Result<()> {
    bao.enable_kv_v2("secret").await?;
    Ok(())
}

#[tokio::test]
async fn drill_on_the_single_sealed_raft_server_restores_every_version_with_the_original_keys()
-> Result<()> {
    let mut bao = OpenbaoServer::sealed().await?;
    let original = bao.init().await?;
    bao.unseal(&original).await?;
    enable_kv(&bao).await?;
    write_history(bao.url(), &original.root_token).await?;

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("team.snap");
    let seen = std::sync::atomic::AtomicU64::new(0);
    let manifest = backup::save(&client(bao.url(), &original.root_token)?, &file, &|n| {
        seen.store(n, std::sync::atomic::Ordering::Relaxed)
    })
    .await?;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&backup::manifest_path(&file)), 0o600);
    assert_eq!(manifest.size, std::fs::metadata(&file)?.len());
    assert_eq!(seen.into_inner(), manifest.size, "progress saw every byte");
    assert_eq!(manifest.server, bao.url());
    assert_eq!(manifest.openbao_version.as_deref(), Some("2.7.2"));
    assert_eq!((manifest.unseal.shares, manifest.unseal.threshold), (1, 1));
    assert!(manifest.raft_index > 0);
    let text = std::fs::read_to_string(backup::manifest_path(&file))?;
    for key in &original.keys_b64 {
        assert!(
            !text.contains(key.as_str()),
            "no unseal key in the manifest"
        );
    }
    assert!(
        !text.contains(&original.root_token),
        "no token in the manifest"
    );
    let again = backup::save(&client(bao.url(), &original.root_token)?, &file, &|_| {}).await;
    assert!(
        matches!(again, Err(BackupError::Exists { .. })),
        "{again:?}"
    );

    let verified = backup::verify(&file).await?;
    assert_eq!(verified.raft_index, manifest.raft_index);
    assert_eq!(verified.manifest.as_ref(), Some(&manifest));
    assert!(verified.checked.contains(&"state.bin".to_owned()));

    // The server and its data are gone; a new one gets new keys.
    drop(bao);
    let mut fresh = OpenbaoServer::sealed().await?;
    let new_keys = fresh.init().await?;
    fresh.unseal(&new_keys).await?;
    let fresh_client = client(fresh.url(), &new_keys.root_token)?;
    let refused = backup::restore(&fresh_client, &file, false).await;
    match &refused {
        Err(e @ BackupError::NeedsForce { .. }) => {
            assert!(e.to_string().contains("--force"), "{e}")
        }
        other => anyhow::bail!("expected NeedsForce, got {other:?}"),
    }
    let restored = backup::restore(&fresh_client, &file, true).await?;
    assert!(restored.forced && restored.sealed, "{restored:?}");
    assert_eq!(restored.unseal, Some(manifest.unseal.clone()));

    // The new keys no longer open it; the original ones do.
    let wrong = fresh
        .root_call(
            Method::POST,
            "sys/unseal",
            Some(json!({"key": new_keys.keys_b64[0]})),
        )
        .await;
    assert!(
        wrong.is_err(),
        "the new cluster's key must not unseal the restored data"
    );
    fresh.unseal(&original).await?;
    check_history(fresh.url(), &original.root_token).await?;
    Ok(())
}

async fn unseal_node(node: &OpenbaoServer, keys: &InitKeys) -> Result<()> {
    // A follower says it is uninitialised until its retry_join has reached the leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    while node.root_call(Method::GET, "sys/seal-status", None).await?["initialized"] != true {
        ensure!(Instant::now() < deadline, "{} never joined", node.url());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for key in &keys.keys_b64 {
        node.root_call(Method::POST, "sys/unseal", Some(json!({"key": key})))
            .await?;
    }
    Ok(())
}

/// Node 0 initialised and active, the followers unsealed and voters.
async fn bring_up(cluster: &mut OpenbaoCluster) -> Result<InitKeys> {
    let keys = cluster.node_mut(0).init().await?;
    cluster.node(0).unseal(&keys).await?;
    for i in 1..cluster.len() {
        unseal_node(cluster.node(i), &keys).await?;
    }
    wait_voters(cluster.node(0), cluster.len()).await?;
    Ok(keys)
}

/// Wait (bounded) until raft lists `n` voters.
pub async fn wait_voters(node: &OpenbaoServer, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(body) = node
            .root_call(Method::GET, "sys/storage/raft/configuration", None)
            .await
        {
            let voters = body["data"]["config"]["servers"]
                .as_array()
                .map(|s| s.iter().filter(|x| x["voter"] == true).count())
                .unwrap_or(0);
            if voters == n {
                return Ok(());
            }
        }
        ensure!(Instant::now() < deadline, "raft never listed {n} voters");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn active_url(cluster: &OpenbaoCluster) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for url in cluster.urls() {
            let c = OpenbaoClient::new(&url, OpenbaoClient::http_client()?);
            if matches!(c.health().await, Ok(h) if h.status == 200) {
                return Ok(url);
            }
        }
        ensure!(Instant::now() < deadline, "no active node");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn drill_on_a_three_node_raft_cluster_restores_every_version_with_the_original_keys()
-> Result<()> {
    let mut cluster = OpenbaoCluster::start(3).await?;
    let original = bring_up(&mut cluster).await?;
    enable_kv(cluster.node(0)).await?;
    write_history(cluster.node(0).url(), &original.root_token).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("cluster.snap");
    // A standby (with disable_standby_reads) redirects a snapshot to the active node; the
    // client follows no redirect and names the active node instead.
    let err = backup::save(
        &client(cluster.node(1).url(), &original.root_token)?,
        &file,
        &|_| {},
    )
    .await
    .expect_err("a standby redirects");
    assert!(err.to_string().contains(cluster.node(0).url()), "{err}");
    assert!(!file.exists());
    let manifest = backup::save(
        &client(cluster.node(0).url(), &original.root_token)?,
        &file,
        &|_| {},
    )
    .await?;
    backup::verify(&file).await?;

    drop(cluster);
    let mut fresh = OpenbaoCluster::start(3).await?;
    let new_keys = bring_up(&mut fresh).await?;
    let restored = backup::restore(
        &client(fresh.node(0).url(), &new_keys.root_token)?,
        &file,
        true,
    )
    .await?;
    assert!(restored.sealed, "{restored:?}");
    assert_eq!(restored.unseal, Some(manifest.unseal));
    // Each node unseals on its own, with the snapshot's keys.
    for i in 0..fresh.len() {
        let sealed = OpenbaoClient::new(fresh.node(i).url(), OpenbaoClient::http_client()?)
            .health()
            .await?
            .sealed;
        if sealed {
            unseal_node(fresh.node(i), &original).await?;
        }
    }
    let active = active_url(&fresh).await?;
    check_history(&active, &original.root_token).await?;
    // ... and through a standby.
    let standby = fresh
        .urls()
        .into_iter()
        .find(|u| *u != active)
        .context("a standby")?;
    check_history(&standby, &original.root_token).await?;
    Ok(())
}

/// Rebuild `archive` with `state.bin` changed but the original `SHA256SUMS`.
fn tamper_state(archive: &Path, out: &Path) -> Result<()> {
    let mut input = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(archive)?));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        std::fs::File::create(out)?,
        flate2::Compression::default(),
    ));
    for entry in input.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        if name == "state.bin" {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
        }
        let mut header = entry.header().clone();
        header.set_cksum();
        builder.append(&header, bytes.as_slice())?;
    }
    builder.into_inner()?.finish()?;
    Ok(())
}

#[tokio::test]
async fn verify_refuses_a_tampered_archive_and_one_that_does_not_match_its_manifest() -> Result<()>
{
    let mut bao = OpenbaoServer::sealed().await?;
    let keys = bao.init().await?;
    bao.unseal(&keys).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("good.snap");
    backup::save(&client(bao.url(), &keys.root_token)?, &file, &|_| {}).await?;

    let tampered = dir.path().join("tampered.snap");
    tamper_state(&file, &tampered)?;
    match backup::verify(&tampered).await {
        Err(BackupError::ChecksumMismatch { entry, .. }) => assert_eq!(entry, "state.bin"),
        other => anyhow::bail!("expected ChecksumMismatch, got {other:?}"),
    }
    // Restore checks first: nothing is sent.
    let err = backup::restore(&client(bao.url(), &keys.root_token)?, &tampered, true)
        .await
        .expect_err("refused");
    assert!(
        matches!(err, BackupError::ChecksumMismatch { .. }),
        "{err:?}"
    );

    // A valid archive beside another backup's manifest.
    std::fs::copy(
        backup::manifest_path(&file),
        backup::manifest_path(&tampered),
    )?;
    let other = dir.path().join("other.snap");
    backup::save(&client(bao.url(), &keys.root_token)?, &other, &|_| {}).await?;
    std::fs::copy(&other, &tampered)?;
    match backup::verify(&tampered).await {
        Err(e @ BackupError::ManifestMismatch { .. }) => {
            assert!(e.to_string().contains("SHA-256"), "{e}")
        }
        other => anyhow::bail!("expected ManifestMismatch, got {other:?}"),
    }

    // Not an archive at all.
    let junk = dir.path().join("junk.snap");
    std::fs::write(&junk, b"not a snapshot")?;
    assert!(matches!(
        backup::verify(&junk).await,
        Err(BackupError::NotAnArchive { .. })
    ));
    Ok(())
}
