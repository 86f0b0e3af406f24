//! A check-and-set write whose answer is lost after OpenBao applied it: the store must report
//! the version it made, not a conflict (and never write twice). The server is the REAL `bao`;
//! between it and the store sits a TCP relay that, once armed, passes one `POST` to OpenBao and
//! then cuts the connection instead of relaying the answer (what a client sees when the node
//! answering it dies after the write committed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings, SecretStore, WriteMode};
use harmony_testkit::OpenbaoServer;
use secrecy::SecretString;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Relay 127.0.0.1:<port> → `upstream`; while `armed`, the next `POST` reaches OpenBao but its
/// answer is dropped and the client connection closed (then `armed` is cleared).
async fn relay(upstream: String, armed: Arc<AtomicBool>) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream.trim_start_matches("http://")).await
                else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let dropping = Arc::new(AtomicBool::new(false));
                let flag = dropping.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if buf[..n].starts_with(b"POST ") && armed.swap(false, Ordering::SeqCst) {
                            flag.store(true, Ordering::SeqCst);
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if dropping.load(Ordering::SeqCst) {
                        // OpenBao answered (so the write is applied); the client never hears it.
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    Ok(url)
}

#[tokio::test]
async fn a_cas_write_whose_answer_was_lost_reports_its_version_not_a_conflict() -> anyhow::Result<()>
{
    let bao = OpenbaoServer::dev().await?;
    let armed = Arc::new(AtomicBool::new(false));
    let url = relay(bao.url().to_owned(), armed.clone()).await?;
    let dir = tempfile::tempdir()?;
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(&url)
            .with_token(SecretString::from(
                bao.root_token().unwrap_or_default().to_owned(),
            ))
            .with_kv_prefix("lost")
            .with_session_dir(dir.path().join("sessions")),
    )
    .await?;
    let v1 = store
        .put("doc", &json!({"n": 1}), WriteMode::Cas(None))
        .await?;
    assert_eq!(v1, 1);

    armed.store(true, Ordering::SeqCst);
    let v2 = store
        .put("doc", &json!({"n": 2}), WriteMode::Cas(Some(v1)))
        .await?;
    assert!(!armed.load(Ordering::SeqCst), "the relay cut one answer");
    assert_eq!(v2, 2, "the version the lost write made");
    let read = store.get("doc").await?.expect("stored");
    assert_eq!(
        (read.version, read.value),
        (2, json!({"n": 2})),
        "written once"
    );

    // A real conflict is still one: someone else's version 3, then ours based on 2.
    store
        .put(
            "doc",
            &json!({"n": 3, "by": "someone else"}),
            WriteMode::Cas(Some(2)),
        )
        .await?;
    armed.store(true, Ordering::SeqCst);
    let err = store
        .put("doc", &json!({"n": 3}), WriteMode::Cas(Some(2)))
        .await
        .expect_err("a real conflict");
    assert!(
        matches!(err, harmony_secret::SecretError::Conflict { .. }),
        "{err:?}"
    );
    Ok(())
}
