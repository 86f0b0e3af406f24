//! `harmony config set` is a patch, proven with two real `harmony` processes and a real OpenBao:
//! the first one's write is held (by a small forwarding proxy in front of the server) after it
//! read the document, the second one writes meanwhile, then the first one's write goes on —
//! and loses its check-and-set, exactly as when two people press enter at the same moment.
//! Different fields: both land. The same field: the first one is refused, naming the field,
//! and the second one's value stays.

mod harness;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{harmony_std, stderr};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

const DOC_PATH: &str = "/v1/secret/data/harmony/my-app";

/// Forwards HTTP/1.1 requests to `upstream`; the first write of the document is held until
/// `release` is notified (`held` fires when it arrives).
struct HoldingProxy {
    url: String,
    held: Arc<Notify>,
    release: Arc<Notify>,
}

impl HoldingProxy {
    async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let held = Arc::new(Notify::new());
        let release = Arc::new(Notify::new());
        let holding = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let (h, r) = (held.clone(), release.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (upstream, http, h, r, holding) = (
                    upstream.clone(),
                    http.clone(),
                    h.clone(),
                    r.clone(),
                    holding.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(socket, &upstream, &http, &h, &r, &holding).await;
                });
            }
        });
        Self { url, held, release }
    }
}

async fn serve(
    socket: TcpStream,
    upstream: &str,
    http: &reqwest::Client,
    held: &Notify,
    release: &Notify,
    holding: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if read.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("GET").to_owned(),
            parts.next().unwrap_or("/").to_owned(),
        );
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            read.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                }
                if !matches!(name.as_str(), "host" | "connection" | "content-length") {
                    headers.push((name, value));
                }
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        let is_write = matches!(method.as_str(), "POST" | "PUT") && target == DOC_PATH;
        if is_write && holding.swap(false, std::sync::atomic::Ordering::SeqCst) {
            held.notify_one();
            release.notified().await;
        }
        let mut req = http.request(
            method.parse().unwrap_or(reqwest::Method::GET),
            format!("{upstream}{target}"),
        );
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req.body(body).send().await.map_err(std::io::Error::other)?;
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        let bytes = resp.bytes().await.map_err(std::io::Error::other)?;
        let head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            bytes.len()
        );
        write.write_all(head.as_bytes()).await?;
        write.write_all(&bytes).await?;
    }
}

fn set(data: &Path, url: &str, bao: &OpenbaoServer, field: &str) -> std::process::Command {
    let mut cmd = harmony_std(data);
    cmd.env(vars::OPENBAO_URL, url)
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("dev token"))
        .args(["config", "set", "my-app", field]);
    cmd
}

async fn seeded() -> OpenbaoServer {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({"data": {"db": {"host": "db", "port": 5432}, "name": "x"}})),
    )
    .await
    .expect("seed");
    bao
}

async fn stored(bao: &OpenbaoServer) -> (Value, u64) {
    let body = bao
        .root_call(Method::GET, "secret/data/harmony/my-app", None)
        .await
        .expect("read");
    (
        body["data"]["data"].clone(),
        body["data"]["metadata"]["version"].as_u64().unwrap_or(0),
    )
}

/// Runs `first` through the proxy until its write is held, `second` against the server, then
/// lets `first` go on; returns both outputs.
async fn race(
    proxy: &HoldingProxy,
    mut first: std::process::Command,
    mut second: std::process::Command,
) -> (std::process::Output, std::process::Output) {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(first.output().expect("run the first writer"));
    });
    tokio::time::timeout(Duration::from_secs(30), proxy.held.notified())
        .await
        .expect("the first writer's write reached the proxy");
    let second = tokio::task::spawn_blocking(move || second.output().expect("run the second"))
        .await
        .expect("join");
    proxy.release.notify_one();
    let first = tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .expect("the first writer finished")
        .expect("output");
    (first, second)
}

#[tokio::test]
async fn two_people_setting_different_fields_at_once_both_land() {
    let bao = seeded().await;
    let proxy = HoldingProxy::start(bao.url()).await;
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (first, second) = race(
        &proxy,
        set(a.path(), &proxy.url, &bao, "name=y"),
        set(b.path(), bao.url(), &bao, "db.port=6543"),
    )
    .await;
    assert!(second.status.success(), "{}", stderr(&second));
    let err = stderr(&first);
    assert!(first.status.success(), "{err}");
    assert!(
        err.contains("version 2 was written meanwhile (changing db.port); applying your change on top of it (attempt 2 of 5)"),
        "{err}"
    );
    assert!(err.contains("saved version 3"), "{err}");
    assert_eq!(
        stored(&bao).await,
        (json!({"db": {"host": "db", "port": 6543}, "name": "y"}), 3),
        "both changes kept"
    );
}

#[tokio::test]
async fn two_people_setting_the_same_field_at_once_is_a_named_conflict_and_nothing_is_lost() {
    let bao = seeded().await;
    let proxy = HoldingProxy::start(bao.url()).await;
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (first, second) = race(
        &proxy,
        set(a.path(), &proxy.url, &bao, "db.port=1111"),
        set(b.path(), bao.url(), &bao, "db.port=2222"),
    )
    .await;
    assert!(second.status.success(), "{}", stderr(&second));
    let err = stderr(&first);
    assert_eq!(first.status.code(), Some(1), "{err}");
    assert!(
        err.contains("field db.port was changed by someone else meanwhile (version 2 is stored)")
            && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        stored(&bao).await,
        (json!({"db": {"host": "db", "port": 2222}, "name": "x"}), 2),
        "the second person's value stays, nothing written after it"
    );
}
