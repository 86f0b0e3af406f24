//! `harmony config ...` against a real OpenBao (testkit dev server): typed by a schema stored at
//! `<prefix>/_schema/<KEY>` as `ConfigManager` stores it (here written by the test from
//! `schemars::schema_for!` of a test struct).

mod harness;

use std::path::Path;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{harmony, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

/// The database of the test config.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
struct Database {
    /// Host name of the database.
    host: String,
    /// TCP port.
    port: u16,
    /// Password of the application's user.
    #[schemars(extend("x-secret" = true))]
    password: String,
}

/// The test config.
#[allow(dead_code)]
#[derive(schemars::JsonSchema)]
struct MyApp {
    /// Shown in the UI.
    name: String,
    /// Worker threads.
    workers: u32,
    /// Verbose logs.
    debug: bool,
    database: Database,
}

const PASSWORD: &str = "pw-not-a-real-secret-42";

fn full_doc() -> Value {
    json!({
        "name": "shop",
        "workers": 4,
        "debug": false,
        "database": { "host": "db.internal", "port": 5432, "password": PASSWORD }
    })
}

async fn store_schema(bao: &OpenbaoServer, key: &str) {
    let schema = serde_json::to_value(schemars::schema_for!(MyApp)).expect("schema JSON");
    bao.root_call(
        Method::POST,
        &format!("secret/data/harmony/_schema/{key}"),
        Some(json!({ "data": schema })),
    )
    .await
    .expect("store the schema");
}

async fn stored(bao: &OpenbaoServer, key: &str) -> (Value, u64) {
    let body = bao
        .root_call(Method::GET, &format!("secret/data/harmony/{key}"), None)
        .await
        .expect("read the document");
    (
        body["data"]["data"].clone(),
        body["data"]["metadata"]["version"]
            .as_u64()
            .expect("version"),
    )
}

/// `harmony` with the dev server's root token and URL.
fn cmd(data: &Path, bao: &OpenbaoServer) -> assert_cmd::Command {
    let mut c = harmony(data);
    c.env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("dev token"));
    c
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    stdout(out)
}

fn no_secret(out: &std::process::Output) {
    assert!(
        !stdout(out).contains(PASSWORD),
        "secret on stdout: {}",
        stdout(out)
    );
    assert!(
        !stderr(out).contains(PASSWORD),
        "secret on stderr: {}",
        stderr(out)
    );
}

#[tokio::test]
async fn set_get_history_diff_rollback_with_secrets_masked() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    store_schema(&bao, "my-app").await;
    let file = data.path().join("doc.json");
    std::fs::write(&file, full_doc().to_string()).expect("write");

    let out = cmd(data.path(), &bao)
        .args(["config", "set", "my-app", "--from-file"])
        .arg(&file)
        .output()
        .expect("run");
    ok(&out);
    no_secret(&out);
    assert_eq!(stored(&bao, "my-app").await, (full_doc(), 1));

    // get: YAML with descriptions, the secret masked.
    let out = cmd(data.path(), &bao)
        .args(["config", "get", "my-app"])
        .output()
        .expect("run");
    let yaml = ok(&out);
    no_secret(&out);
    assert!(
        yaml.contains("# Host name of the database.\n  host: db.internal\n"),
        "{yaml}"
    );
    assert!(yaml.contains("password: '********'"), "{yaml}");
    assert!(!stderr(&out).contains("untyped"), "{}", stderr(&out));
    let out = cmd(data.path(), &bao)
        .args(["config", "get", "my-app", "--format", "dotenv"])
        .output()
        .expect("run");
    let env = ok(&out);
    no_secret(&out);
    assert!(env.contains("HARMONY_MY_APP_DATABASE_PORT='5432'"), "{env}");
    let out = cmd(data.path(), &bao)
        .args(["--output", "json", "config", "get", "my-app"])
        .output()
        .expect("run");
    let got: Value = serde_json::from_str(&ok(&out)).expect("JSON");
    assert_eq!(got["database"]["password"], "********");
    assert_eq!(got["workers"], 4);
    let out = cmd(data.path(), &bao)
        .args([
            "config",
            "get",
            "my-app",
            "--field",
            "database.password",
            "--reveal",
        ])
        .output()
        .expect("run");
    assert_eq!(ok(&out), format!("{PASSWORD}\n"));
    let out = cmd(data.path(), &bao)
        .args([
            "config", "get", "my-app", "--field", "database", "--format", "dotenv",
        ])
        .output()
        .expect("run");
    assert_eq!(
        ok(&out),
        "HARMONY_MY_APP_DATABASE_HOST='db.internal'\nHARMONY_MY_APP_DATABASE_PASSWORD='********'\nHARMONY_MY_APP_DATABASE_PORT='5432'\n"
    );
    let out = cmd(data.path(), &bao)
        .args([
            "config",
            "get",
            "my-app",
            "--field",
            "database.host",
            "--format",
            "dotenv",
        ])
        .output()
        .expect("run");
    assert_eq!(ok(&out), "HARMONY_MY_APP_DATABASE_HOST='db.internal'\n");

    // set: typed by the schema.
    let out = cmd(data.path(), &bao)
        .args(["config", "set", "my-app", "database.port=5433", "debug=yes"])
        .output()
        .expect("run");
    ok(&out);
    assert!(stderr(&out).contains("saved version 2"), "{}", stderr(&out));
    let (doc, v) = stored(&bao, "my-app").await;
    assert_eq!(
        (doc["database"]["port"].clone(), doc["debug"].clone(), v),
        (json!(5433), json!(true), 2)
    );
    let out = cmd(data.path(), &bao)
        .args([
            "config",
            "set",
            "my-app",
            "database.password=rotated-secret-77",
        ])
        .output()
        .expect("run");
    ok(&out);
    assert!(!stderr(&out).contains("rotated-secret-77"));

    // history: three versions, newest first, no values.
    let out = cmd(data.path(), &bao)
        .args(["--output", "json", "config", "history", "my-app"])
        .output()
        .expect("run");
    let report: Value = serde_json::from_str(&ok(&out)).expect("JSON");
    let versions = &report["versions"];
    let numbers: Vec<u64> = versions
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v["version"].as_u64().expect("number"))
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(versions[0]["current"], true);
    no_secret(&out);

    // diff: the secret only as changed; plain fields with both values.
    let out = cmd(data.path(), &bao)
        .args(["config", "diff", "my-app"])
        .output()
        .expect("run");
    let text = ok(&out);
    assert!(
        text.contains("~ database.password: (secret) changed"),
        "{text}"
    );
    assert!(!text.contains("rotated-secret-77"), "{text}");
    no_secret(&out);
    let out = cmd(data.path(), &bao)
        .args(["config", "diff", "my-app", "1", "2"])
        .output()
        .expect("run");
    let text = ok(&out);
    assert!(text.contains("~ database.port: 5432 -> 5433"), "{text}");
    assert!(
        text.contains("database.password: (secret) unchanged"),
        "{text}"
    );

    // rollback: version 1's content as version 4.
    let out = cmd(data.path(), &bao)
        .args(["config", "rollback", "my-app", "1"])
        .output()
        .expect("run");
    ok(&out);
    assert_eq!(stored(&bao, "my-app").await, (full_doc(), 4));

    // list: the document, not the schema folder.
    let out = cmd(data.path(), &bao)
        .args(["config", "list"])
        .output()
        .expect("run");
    assert_eq!(ok(&out), "my-app\n");
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_nothing_is_written() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    store_schema(&bao, "my-app").await;
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({ "data": full_doc() })),
    )
    .await
    .expect("seed");

    let run = |args: &[&str]| cmd(data.path(), &bao).args(args).output().expect("run");
    let out = run(&["config", "get", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("harmony config list"),
        "{}",
        stderr(&out)
    );

    let out = run(&["config", "get", "Bad Key"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = run(&["config", "set", "my-app", "databse.port=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no field databse.port"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("database.port"),
        "lists the fields: {}",
        stderr(&out)
    );

    let out = run(&[
        "config",
        "set",
        "my-app",
        "database.password=hunter2",
        "workers=many-secret",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("my-app.workers expects an integer"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("many-secret") && !stderr(&out).contains("hunter2"));

    let out = run(&["config", "set", "my-app", "database.port=70000"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("database.port"), "{}", stderr(&out));

    let bad = data.path().join("bad.yaml");
    std::fs::write(&bad, "name: [unclosed\n  password: leaked-if-quoted\n").expect("write");
    let out = cmd(data.path(), &bao)
        .args(["config", "set", "my-app", "--from-file"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("line"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("leaked-if-quoted"),
        "{}",
        stderr(&out)
    );

    let partial = data.path().join("partial.json");
    std::fs::write(&partial, r#"{"name": "x"}"#).expect("write");
    let out = cmd(data.path(), &bao)
        .args(["config", "set", "my-app", "--from-file"])
        .arg(&partial)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("database.host: missing"),
        "{}",
        stderr(&out)
    );

    assert_eq!(
        stored(&bao, "my-app").await,
        (full_doc(), 1),
        "nothing written"
    );

    // check: the stored document fine; a broken one exits 1 naming the variables.
    let out = run(&["config", "check", "my-app"]);
    assert_eq!(ok(&out), "my-app: ok\n");
    store_schema(&bao, "broken").await;
    bao.root_call(
        Method::POST,
        "secret/data/harmony/broken",
        Some(json!({ "data": { "name": "x", "workers": "four", "database": { "host": "h", "port": 1 } } })),
    )
    .await
    .expect("seed broken");
    let out = run(&["config", "check", "my-app", "broken"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("my-app: ok"), "{text}");
    assert!(text.contains("database.password: missing"), "{text}");
    assert!(text.contains("HARMONY_BROKEN_DATABASE_PASSWORD"), "{text}");
    assert!(text.contains("workers: expects an integer"), "{text}");
    assert!(text.contains("HARMONY_BROKEN_WORKERS"), "{text}");
}

#[tokio::test]
async fn untyped_documents_are_plain_json_and_say_so() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let out = cmd(data.path(), &bao)
        .args(["config", "set", "notes", "a.b=7", "a.c=hello", "flag=true"])
        .output()
        .expect("run");
    ok(&out);
    assert!(stderr(&out).contains("untyped"), "{}", stderr(&out));
    assert_eq!(
        stored(&bao, "notes").await,
        (json!({"a": {"b": 7, "c": "hello"}, "flag": true}), 1)
    );
    let out = cmd(data.path(), &bao)
        .args(["config", "get", "notes", "--field", "a.c"])
        .output()
        .expect("run");
    assert_eq!(ok(&out), "hello\n");
    assert!(stderr(&out).contains("untyped"));
}

#[tokio::test]
async fn sealed_or_unreachable_servers_are_clear_errors() {
    let sealed = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path())
        .args(["config", "get", "my-app", "--openbao-url", sealed.url()])
        .env(vars::OPENBAO_TOKEN, "some-token-value")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("sealed"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("some-token-value"));

    let out = harmony(data.path())
        .args([
            "config",
            "get",
            "my-app",
            "--openbao-url",
            "http://127.0.0.1:1",
        ])
        .env(vars::OPENBAO_TOKEN, "some-token-value")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));

    let out = harmony(data.path())
        .args(["config", "get", "my-app", "--openbao-url", sealed.url()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("harmony login"), "{}", stderr(&out));
}

/// An executable shell script at `dir/name`.
fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    harness::write_executable(dir, name, &format!("#!/bin/sh\nset -e\n{body}"))
}

#[tokio::test]
async fn edit_saves_a_valid_change_and_reopens_on_an_invalid_one() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    store_schema(&bao, "my-app").await;
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({ "data": full_doc() })),
    )
    .await
    .expect("seed");
    let dir = data.path();

    // A valid edit: the description comments are there, the secret masked and kept.
    let editor = script(
        dir,
        "valid-editor",
        &format!(
            "cp \"$1\" {seen}\nsed -i 's/^workers: .*/workers: 9/' \"$1\"\n",
            seen = dir.join("seen.yaml").display()
        ),
    );
    let out = cmd(dir, &bao)
        .args(["config", "edit", "my-app"])
        .env(vars::EDITOR, &editor)
        .output()
        .expect("run");
    ok(&out);
    no_secret(&out);
    let seen = std::fs::read_to_string(dir.join("seen.yaml")).expect("the editor saw a file");
    assert!(seen.contains("# Worker threads.\nworkers: 4\n"), "{seen}");
    assert!(!seen.contains(PASSWORD), "{seen}");
    let (doc, v) = stored(&bao, "my-app").await;
    assert_eq!((doc["workers"].clone(), v), (json!(9), 2));
    assert_eq!(
        doc["database"]["password"], PASSWORD,
        "the masked secret is kept"
    );

    // An invalid value re-opens the editor with the error on top; the fix is saved.
    let editor = script(
        dir,
        "invalid-then-fixed",
        &format!(
            "if [ ! -e {mark} ]; then touch {mark}; sed -i 's/^workers: .*/workers: lots/' \"$1\"; \
             else cp \"$1\" {second}; sed -i 's/^workers: .*/workers: 5/' \"$1\"; fi\n",
            mark = dir.join("first-done").display(),
            second = dir.join("second.yaml").display()
        ),
    );
    let out = cmd(dir, &bao)
        .args(["config", "edit", "my-app"])
        .env(vars::VISUAL, &editor)
        .output()
        .expect("run");
    ok(&out);
    let second = std::fs::read_to_string(dir.join("second.yaml")).expect("re-opened");
    assert!(second.starts_with("#| ERROR: not saved"), "{second}");
    assert!(second.contains("workers: expects an integer"), "{second}");
    assert!(
        second.contains("workers: lots"),
        "the user's text is kept: {second}"
    );
    let (doc, v) = stored(&bao, "my-app").await;
    assert_eq!((doc["workers"].clone(), v), (json!(5), 3));

    // An editor that changes nothing stores nothing.
    let editor = script(dir, "noop", "true\n");
    let out = cmd(dir, &bao)
        .args(["config", "edit", "my-app"])
        .env(vars::EDITOR, &editor)
        .output()
        .expect("run");
    ok(&out);
    assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
    assert_eq!(stored(&bao, "my-app").await.1, 3);
}

#[tokio::test]
async fn edit_never_overwrites_a_concurrent_save() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    store_schema(&bao, "my-app").await;
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({ "data": full_doc() })),
    )
    .await
    .expect("seed");
    let dir = data.path();
    // First round: while "the user" edits workers, another process saves a new name. Second
    // round: the file shows their change with ours re-applied; save it as is.
    let editor = script(
        dir,
        "racing-editor",
        &format!(
            "if [ ! -e {mark} ]; then touch {mark}; \"$HARMONY_BIN\" config set my-app name=theirs; \
             sed -i 's/^workers: .*/workers: 11/' \"$1\"; \
             else cp \"$1\" {second}; fi\n",
            mark = dir.join("first-done").display(),
            second = dir.join("second.yaml").display()
        ),
    );
    let out = cmd(dir, &bao)
        .args(["config", "edit", "my-app"])
        .env(vars::EDITOR, &editor)
        .env("HARMONY_BIN", assert_cmd::cargo::cargo_bin("harmony"))
        .output()
        .expect("run");
    ok(&out);
    let err = stderr(&out);
    assert!(err.contains("someone else saved version 2"), "{err}");
    assert!(err.contains("~ name: \"shop\" -> \"theirs\""), "{err}");
    let second = std::fs::read_to_string(dir.join("second.yaml")).expect("re-opened");
    assert!(second.contains("name: theirs"), "{second}");
    assert!(second.contains("workers: 11"), "{second}");
    let (doc, v) = stored(&bao, "my-app").await;
    assert_eq!(v, 3);
    assert_eq!(doc["name"], "theirs", "their save survives");
    assert_eq!(doc["workers"], 11, "and so does ours");
    assert_eq!(doc["database"]["password"], PASSWORD);
}

/// Issue 25: trust roots are read only for an `https://` server. With the system trust store
/// pointed at nothing (`SSL_CERT_FILE` / `SSL_CERT_DIR` naming missing paths), `config get`
/// from a plain `http://` server still works — it used to fail building its HTTP client, having
/// tried to read the whole store. Over `https://` the same settings fail naming the cause, and
/// `SSL_CERT_FILE` naming dev-tls's CA is used as the system roots (no `BAO_CACERT`).
#[tokio::test]
async fn trust_roots_are_read_only_for_https_servers() {
    let data = tempfile::tempdir().expect("tempdir");
    let nothing = data.path().join("no-such-trust-store");
    let get = |url: &str, token: &str| {
        let mut c = harmony(data.path());
        c.env(vars::OPENBAO_URL, url)
            .env(vars::OPENBAO_TOKEN, token)
            .env(vars::SSL_CERT_FILE, &nothing)
            .env(vars::SSL_CERT_DIR, &nothing)
            .args(["config", "get", "plain", "--format", "json", "--no-cache"]);
        c
    };
    for bao in [
        OpenbaoServer::dev().await.expect("OpenBao dev server"),
        OpenbaoServer::dev_tls()
            .await
            .expect("OpenBao dev-tls server"),
    ] {
        bao.root_call(
            Method::POST,
            "secret/data/harmony/plain",
            Some(json!({ "data": { "n": 1 } })),
        )
        .await
        .expect("store");
        let token = bao.root_token().expect("root");
        let out = get(bao.url(), token).output().expect("run");
        let Some(ca) = bao.ca_cert() else {
            assert!(out.status.success(), "http://: {}", stderr(&out));
            let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(doc["n"], 1);
            continue;
        };
        assert_eq!(out.status.code(), Some(1), "https:// with no trust store");
        let text = stderr(&out);
        assert!(
            text.contains("no CA certificates found") && text.contains(vars::SSL_CERT_FILE),
            "{text}"
        );
        let out = get(bao.url(), token)
            .env(vars::SSL_CERT_FILE, &ca)
            .env_remove(vars::SSL_CERT_DIR)
            .output()
            .expect("run");
        assert!(out.status.success(), "SSL_CERT_FILE=CA: {}", stderr(&out));
    }
}
