//! Who changed what, and why: `harmony config set/edit/rollback/promote -m` write an author
//! record per version, `config history` and `config blame` read them back. Against a real
//! OpenBao (testkit dev server) configured by `harmony bootstrap`, with people signed in by
//! userpass and through the real test OpenID provider's device flow. A version written
//! without harmony (raw HTTP, as the bare `bao` CLI does) shows as unknown; bob can neither
//! create a record under alice's entity nor pass his records off as hers.

mod harness;

use std::path::Path;
use std::time::Duration;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use harness::{harmony, sso_login, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

const UNKNOWN: &str = "unknown (written without harmony)";

/// `harmony bootstrap` of `bao` as its administrator (root token), with `extra` flags.
fn bootstrap(data: &Path, bao: &OpenbaoServer, extra: &[&str]) -> String {
    let out = harmony(data)
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root token"))
        .args(["bootstrap", "--openbao-url", bao.url()])
        .args(extra)
        .output()
        .expect("run");
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    stdout(&out)
}

/// One signed-in person: their own data dir (session cache).
struct Person {
    data: tempfile::TempDir,
    url: String,
}

impl Person {
    /// Signed in with userpass as `user` (created with the bootstrap's `harmony-dev` policy).
    async fn userpass(bao: &OpenbaoServer, user: &str) -> Self {
        let password = format!("pw-{user}-not-real");
        bao.add_userpass_user(user, &password, &["harmony-dev"], "10m")
            .await
            .expect("userpass user");
        let data = tempfile::tempdir().expect("tempdir");
        let out = harmony(data.path())
            .args(["login", "--userpass", "--username", user])
            .args(["--openbao-url", bao.url()])
            .env(vars::OPENBAO_PASSWORD, &password)
            .output()
            .expect("run");
        assert!(out.status.success(), "login {user}: {}", stderr(&out));
        Self {
            data,
            url: bao.url().to_owned(),
        }
    }

    async fn sso(bao: &OpenbaoServer, provider: &OidcProvider, login: &str) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        sso_login(data.path(), bao.url(), provider, login).await;
        Self {
            data,
            url: bao.url().to_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        harmony(self.data.path())
            .env(vars::OPENBAO_URL, &self.url)
            .args(args)
            .output()
            .expect("run")
    }

    /// Success; returns (stdout, stderr).
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        (stdout(&out), stderr(&out))
    }

    fn json(&self, args: &[&str]) -> Value {
        let (out, _) = self.ok(&[args, &["--output", "json"]].concat());
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
    }

    /// The token of the cached session, read back from OpenBao's point of view: its entity.
    fn entity(&self) -> String {
        let status = self.json(&["status"]);
        status["session"]["entity_id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no entity in status: {status}"))
    }
}

/// A raw KV v2 write, as the bare `bao` CLI makes it (no author record).
async fn raw_write(bao: &OpenbaoServer, token: &str, path: &str, data: Value) -> u16 {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/secret/data/harmony/{path}", bao.url()))
        .header("X-Vault-Token", token)
        .timeout(Duration::from_secs(10))
        .json(&json!({ "data": data }))
        .send()
        .await
        .expect("raw write");
    resp.status().as_u16()
}

/// The version entries of `history --output json`, by version.
fn by_version(report: &Value) -> std::collections::BTreeMap<u64, Value> {
    report["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| (v["version"].as_u64().expect("version"), v.clone()))
        .collect()
}

/// A token of `user` of its own (a raw userpass login: the same entity as their session).
async fn raw_login(bao: &OpenbaoServer, user: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{}/v1/auth/userpass/login/{user}", bao.url()))
        .timeout(Duration::from_secs(10))
        .json(&json!({ "password": format!("pw-{user}-not-real") }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    body["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned()
}

#[tokio::test]
async fn every_write_names_its_author_and_history_shows_who_why_and_what_was_pruned() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    let root = bao.root_token().expect("root").to_owned();

    // History length: the mount keeps N versions, set only when it differs.
    let summary = bootstrap(admin.path(), &bao, &["--kv-max-versions", "4"]);
    assert!(
        summary.contains(
            "set max_versions = 4 on the KV mount secret/ (was 0: OpenBao's default of 10)"
        ),
        "{summary}"
    );
    let again = bootstrap(admin.path(), &bao, &["--kv-max-versions", "4"]);
    assert!(!again.contains("max_versions"), "{again}");
    let config = bao
        .root_call(Method::GET, "secret/config", None)
        .await
        .expect("kv config");
    assert_eq!(config["data"]["max_versions"], 4);

    let alice = Person::userpass(&bao, "alice").await;
    let bob = Person::userpass(&bao, "bob").await;
    let (alice_id, bob_id) = (alice.entity(), bob.entity());
    assert_ne!(alice_id, bob_id);

    // 1: alice, with a message. 2: bob, the default message. 3: a raw write (no harmony).
    let (_, err) = alice.ok(&[
        "config",
        "set",
        "app",
        "port=1",
        "name=a",
        "-m",
        "first cut",
    ]);
    assert!(err.contains("app: saved version 1"), "{err}");
    assert!(!err.contains("warning"), "{err}");
    bob.ok(&["config", "set", "app", "port=2"]);
    assert_eq!(
        raw_write(&bao, &root, "app", json!({"port": 3, "name": "a"})).await,
        200
    );
    // 4: alice rolls back to 1.
    let (_, err) = alice.ok(&["config", "rollback", "app", "1"]);
    assert!(
        err.contains("saved version 4 with the content of version 1"),
        "{err}"
    );

    let report = alice.json(&["config", "history", "app"]);
    let v = by_version(&report);
    assert_eq!(v[&1]["author"]["name"], "alice", "{report}");
    assert_eq!(v[&1]["author"]["entity_id"], alice_id.as_str());
    assert_eq!(v[&1]["author"]["message"], "first cut");
    assert!(
        v[&1]["author"]["tool"]
            .as_str()
            .is_some_and(|t| t.starts_with("harmony ")),
        "{report}"
    );
    assert_eq!(v[&2]["author"]["name"], "bob");
    assert_eq!(v[&2]["author"]["message"], "set port");
    assert_eq!(v[&3]["author"]["status"], "unknown");
    assert_eq!(v[&4]["author"]["message"], "rollback to 1");
    assert_eq!(v[&4]["current"], true);
    assert!(report["pruned"].is_null(), "{report}");
    assert!(
        report["retention"]
            .as_str()
            .is_some_and(|r| r.contains("max_versions = 4 on the KV mount secret/config")),
        "{report}"
    );

    // Bob cannot create a record under alice's entity (403 from OpenBao), not even for the
    // version nobody claimed; he can only claim it for himself, and a name he chooses that
    // another entity uses is shown as such, with his entity.
    let bob_token = raw_login(&bao, "bob").await;
    assert_eq!(
        raw_write(
            &bao,
            &bob_token,
            &format!("_history/{alice_id}/app/3"),
            json!({"name": "alice", "time": "2026-01-01T00:00:00Z", "tool": "harmony 0.1.0", "message": "forged"})
        )
        .await,
        403
    );
    assert_eq!(
        raw_write(
            &bao,
            &bob_token,
            &format!("_history/{bob_id}/app/3"),
            json!({"name": "alice", "time": "2026-01-01T00:00:00Z", "tool": "harmony 0.1.0", "message": "forged"})
        )
        .await,
        200
    );
    let (text, _) = alice.ok(&["config", "history", "app"]);
    let line3 = text
        .lines()
        .find(|l| l.starts_with("3 "))
        .unwrap_or_default();
    assert!(
        line3.contains(&format!(
            "alice (entity {bob_id}; other entities also use this name)"
        )),
        "{text}"
    );
    let line1 = text
        .lines()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_default();
    assert!(
        line1.contains("(entity {alice_id}") || line1.contains("alice (entity"),
        "{text}"
    );

    // 5 and 6 push version 1 and 2 out (4 kept): history says so, and by which setting.
    alice.ok(&["config", "set", "app", "name=b"]);
    raw_write(&bao, &root, "app", json!({"port": 1, "name": "c"})).await;
    let (text, _) = alice.ok(&["config", "history", "app"]);
    assert!(text.contains(UNKNOWN), "{text}");
    assert!(
        text.contains(
            "versions 1 to 2 were pruned: OpenBao keeps the newest 4 (max_versions = 4 on the KV mount secret/config)"
        ),
        "{text}"
    );
    let report = alice.json(&["config", "history", "app"]);
    assert_eq!(report["pruned"]["through"], 2, "{report}");
    assert_eq!(
        by_version(&report).keys().copied().collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );

    // Blame: port last changed in 4 (alice's rollback; 3 held 3), name in 6 (no harmony).
    let blame = alice.json(&["config", "blame", "app"]);
    let field = |f: &str| {
        blame
            .as_array()
            .expect("lines")
            .iter()
            .find(|l| l["field"] == f)
            .cloned()
            .unwrap_or_else(|| panic!("{f}: {blame}"))
    };
    assert_eq!(field("port")["version"], 4, "{blame}");
    assert_eq!(field("port")["author"]["name"], "alice");
    assert_eq!(field("name")["version"], 6);
    assert_eq!(field("name")["author"]["status"], "unknown");
    let (text, _) = alice.ok(&["config", "blame", "app"]);
    assert!(text.contains(UNKNOWN) && text.contains("alice"), "{text}");
}

#[tokio::test]
async fn a_record_that_cannot_be_written_is_a_warning_and_the_value_stays_saved() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    bootstrap(admin.path(), &bao, &[]);
    // Write access to the documents, none to the records.
    bao.root_call(
        Method::PUT,
        "sys/policies/acl/docs-only",
        Some(json!({"policy": format!(
            "{}path \"secret/data/harmony/_history/*\" {{ capabilities = [\"deny\"] }}\n",
            harness::kv_policy("harmony")
        )})),
    )
    .await
    .expect("policy");
    let password = "pw-carol-not-real";
    bao.add_userpass_user("carol", password, &["docs-only"], "10m")
        .await
        .expect("user");
    let data = tempfile::tempdir().expect("tempdir");
    let login = harmony(data.path())
        .args(["login", "--userpass", "--username", "carol"])
        .args(["--openbao-url", bao.url()])
        .env(vars::OPENBAO_PASSWORD, password)
        .output()
        .expect("run");
    assert!(login.status.success(), "{}", stderr(&login));
    let out = harmony(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .args(["config", "set", "app", "x=1", "-m", "why not"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("app: saved version 1"), "{err}");
    assert!(
        err.contains(
            "warning: version 1 of app is saved, but its author record could not be written"
        ),
        "{err}"
    );
    let stored = bao
        .root_call(Method::GET, "secret/data/harmony/app", None)
        .await
        .expect("read");
    assert_eq!(stored["data"]["data"], json!({"x": 1}));

    // The root token has no entity: saved, with a note.
    let out = harmony(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .args(["config", "set", "app", "x=2"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("version 2 of app is saved without an author record"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn people_signed_in_through_sso_are_named_by_their_email_per_environment() {
    let provider = OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider");
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    bootstrap(
        admin.path(),
        &bao,
        &[
            "--sso-url",
            provider.issuer(),
            "--client-id",
            provider.client_id(),
            "--environments",
            "dev,prod",
        ],
    );
    let (dev, ops) = tokio::join!(
        Person::sso(&bao, &provider, "harmony-developer@groups"),
        Person::sso(&bao, &provider, "harmony-ops@zitadel"),
    );
    let (_, err) = dev.ok(&[
        "config",
        "set",
        "my-app",
        "--env",
        "dev",
        "debug=false",
        "-m",
        "quiet logs",
    ]);
    assert!(
        !err.contains("warning") && !err.contains("without an author record"),
        "{err}"
    );
    let (_, err) = ops.ok(&[
        "config", "promote", "my-app", "--from", "dev", "--to", "prod",
    ]);
    assert!(!err.contains("warning"), "{err}");

    let dev_history = ops.json(&["config", "history", "my-app", "--env", "dev"]);
    let v = by_version(&dev_history);
    assert_eq!(
        v[&1]["author"]["name"], "harmony-developer.groups@harmony.test",
        "{dev_history}"
    );
    assert_eq!(v[&1]["author"]["message"], "quiet logs");
    assert_eq!(dev_history["environment"], "dev");
    let prod_history = ops.json(&["config", "history", "my-app", "--env", "prod"]);
    let v = by_version(&prod_history);
    assert_eq!(
        v[&1]["author"]["name"], "harmony-ops.zitadel@harmony.test",
        "{prod_history}"
    );
    assert_eq!(v[&1]["author"]["message"], "promote from dev");
    // The base has no version at all; the dev overlay's record is not the prod overlay's.
    let out = ops.run(&["config", "history", "my-app"]);
    assert!(!out.status.success());
}
