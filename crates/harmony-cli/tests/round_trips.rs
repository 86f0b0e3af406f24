//! How many requests a command sends, and whether it waits for them one after another: the
//! binary against a real OpenBao (testkit dev server) behind [`RequestProxy`], which counts the
//! requests and can hold each one back, as a slow network would.

mod harness;

use std::time::{Duration, Instant};

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harmony_testkit::proxy::RequestProxy;
use harness::{harmony, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

/// Write a document with the root token. A fresh dev server upgrades its KV mount to v2 in
/// the background and refuses writes meanwhile ("Upgrading from non-versioned to versioned
/// data"): retried, at most 5 s.
async fn put(bao: &OpenbaoServer, path: &str, data: Value) {
    let body = json!({ "data": data });
    for attempt in 0.. {
        match bao
            .root_call(
                Method::POST,
                &format!("secret/data/harmony/{path}"),
                Some(body.clone()),
            )
            .await
        {
            Ok(_) => return,
            Err(e) if attempt < 50 && e.to_string().contains("Upgrading") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("write {path}: {e}"),
        }
    }
}

fn through(data: &std::path::Path, proxy: &RequestProxy, token: &str) -> assert_cmd::Command {
    let mut cmd = harmony(data);
    cmd.env(vars::OPENBAO_URL, proxy.url())
        .env(vars::OPENBAO_TOKEN, token);
    cmd
}

/// Each request held back this long: reads one after another would take a multiple of it.
const DELAY: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_and_configs_are_read_at_once_and_errors_stay_in_order() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    for key in ["a", "b", "c"] {
        put(
            &bao,
            key,
            json!({ "name": format!("{key}-base"), "port": 1 }),
        )
        .await;
        put(
            &bao,
            &format!("_env/prod/{key}"),
            json!({ "name": format!("{key}-prod") }),
        )
        .await;
        put(
            &bao,
            &format!("_schema/{key}"),
            json!({ "type": "object", "properties": {
                "name": { "type": "string" }, "port": { "type": "integer" } } }),
        )
        .await;
    }
    let proxy = RequestProxy::start(bao.url(), DELAY).await.expect("proxy");
    let data = tempfile::tempdir().expect("tempdir");
    let root = bao.root_token().expect("root").to_owned();

    // The token's check (lookup-self), then three configs × (base, overlay, schema): nine
    // reads, one round trip's wait.
    let started = Instant::now();
    let out = through(data.path(), &proxy, &root)
        .args([
            "--env",
            "prod",
            "run",
            "--no-cache",
            "-c",
            "a",
            "-c",
            "b",
            "-c",
            "c",
        ])
        .args([
            "--",
            "sh",
            "-c",
            "echo $HARMONY_A_NAME $HARMONY_B_NAME $HARMONY_C_NAME",
        ])
        .output()
        .expect("run");
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "a-prod b-prod c-prod");
    assert_eq!(proxy.requests(), 1 + 9, "base, overlay and schema of each");
    assert!(
        took < DELAY * 3,
        "took {took:?}: the reads waited for each other (one after another: ≥ {:?})",
        DELAY * 10
    );

    // `config get KEY --env prod`: base, overlay and schema at once.
    proxy.reset();
    let started = Instant::now();
    let out = through(data.path(), &proxy, &root)
        .args([
            "--env",
            "prod",
            "--output",
            "json",
            "config",
            "get",
            "a",
            "--no-cache",
        ])
        .output()
        .expect("run");
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(got, json!({ "name": "a-prod", "port": 1 }));
    assert_eq!(proxy.requests(), 1 + 3);
    assert!(
        took < DELAY * 3,
        "took {took:?} (one after another: ≥ {:?})",
        DELAY * 4
    );

    // Two missing configs: the error always names the first one given, whichever answer
    // arrived first.
    let fast = RequestProxy::start(bao.url(), Duration::ZERO)
        .await
        .expect("proxy");
    for _ in 0..4 {
        let out = through(data.path(), &fast, &root)
            .args([
                "run",
                "--no-cache",
                "-c",
                "a",
                "-c",
                "gone-1",
                "-c",
                "gone-2",
            ])
            .args(["--", "true"])
            .output()
            .expect("run");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("gone-1") && !err.contains("gone-2"), "{err}");
    }
}

/// 1,000 documents in 100 folders, plus overlays, schemas and author records that a listing
/// leaves out.
async fn thousand_documents(bao: &OpenbaoServer) -> Vec<String> {
    let mut expected = Vec::new();
    for folder in 0..100 {
        for doc in 0..10 {
            let key = format!("team-{folder:02}/app-{doc}");
            put(bao, &key, json!({ "n": doc })).await;
            expected.push(key);
        }
    }
    put(bao, "_env/prod/team-00/app-0", json!({ "n": 1 })).await;
    put(bao, "_schema/team-00/app-0", json!({ "type": "object" })).await;
    put(bao, "team-01/_history/x/1", json!({ "n": 1 })).await;
    expected.sort();
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_list_scans_in_one_request_and_lists_the_same_as_the_folder_walk() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let expected = thousand_documents(&bao).await;
    let proxy = RequestProxy::start(bao.url(), Duration::ZERO)
        .await
        .expect("proxy");
    let data = tempfile::tempdir().expect("tempdir");
    let list = |token: &str| {
        proxy.reset();
        let out = through(data.path(), &proxy, token)
            .args(["-v", "--output", "json", "config", "list"])
            .output()
            .expect("run");
        assert!(out.status.success(), "{}", stderr(&out));
        let keys: Vec<String> = serde_json::from_str(&stdout(&out)).expect("json");
        (keys, proxy.requests(), stderr(&out))
    };

    // The policy the bootstrap gives teammates without environments allows the scan.
    let dev = bao
        .token_with_policy(
            "harmony-dev",
            &harmony_openbao::harmony_dev_policy_hcl(),
            "1h",
        )
        .await
        .expect("token");
    let (scanned, requests, err) = list(&dev);
    assert_eq!(scanned, expected);
    assert!(requests <= 3, "{requests} requests");
    assert!(!err.contains("scan unavailable"), "{err}");
    let (by_root, requests, _) = list(bao.root_token().expect("root"));
    assert_eq!(by_root, expected);
    assert!(requests <= 3, "{requests} requests");

    // A policy without `scan`: refused, so a LIST per folder — the same keys.
    let list_only = bao
        .token_with_policy(
            "list-only",
            r#"path "secret/metadata/harmony/*" { capabilities = ["read", "list"] }
path "secret/metadata/harmony" { capabilities = ["read", "list"] }"#,
            "1h",
        )
        .await
        .expect("token");
    let (walked, requests, err) = list(&list_only);
    assert_eq!(walked, expected);
    assert!(requests > 100, "one LIST per folder: {requests}");
    assert!(err.contains("KV scan unavailable"), "{err}");

    // A folder: the same both ways.
    proxy.reset();
    let out = through(data.path(), &proxy, &dev)
        .args(["--output", "json", "config", "list", "team-01"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let folder: Vec<String> = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(
        folder,
        (0..10)
            .map(|d| format!("team-01/app-{d}"))
            .collect::<Vec<_>>()
    );
    let out = through(data.path(), &proxy, &list_only)
        .args(["--output", "json", "config", "list", "team-01"])
        .output()
        .expect("run");
    let walked: Vec<String> = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(walked, folder);
}
