//! Environments and access by role, against a real OpenBao (testkit dev server) bootstrapped
//! by `harmony bootstrap --environments`, and people signed in through the real test OpenID
//! provider's device flow. Every refusal here is a real token refused by the real server.
//!
//! Test users (see tests/oidc-provider/server.mjs): `ROLE@groups` carries a `groups` list,
//! `ROLE@zitadel` Zitadel's project-roles map.

mod harness;

use std::path::Path;
use std::time::Duration;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use harness::{harmony, sso_login, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

async fn provider() -> OidcProvider {
    OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider")
}

/// `harmony bootstrap` of `bao` with SSO and `extra` flags, as its administrator (root token).
fn bootstrap(data: &Path, bao: &OpenbaoServer, provider: &OidcProvider, extra: &[&str]) -> String {
    let out = harmony(data)
        .env(
            vars::OPENBAO_TOKEN,
            bao.root_token().expect("dev root token"),
        )
        .args([
            "bootstrap",
            "--openbao-url",
            bao.url(),
            "--sso-url",
            provider.issuer(),
            "--client-id",
            provider.client_id(),
        ])
        .args(extra)
        .output()
        .expect("run");
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    stdout(&out)
}

/// One signed-in person: their own data dir (session cache), commands against `bao`.
struct Person {
    data: tempfile::TempDir,
    url: String,
}

impl Person {
    async fn sign_in(bao: &OpenbaoServer, provider: &OidcProvider, login: &str) -> Self {
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

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    }

    /// A refused command: exit 1, and the message (checked for `needles`).
    fn refused(&self, args: &[&str], needles: &[&str]) -> String {
        let out = self.run(args);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should be refused: {err}"
        );
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in:\n{err}");
        }
        err
    }
}

async fn raw(bao: &OpenbaoServer, path: &str) -> Value {
    bao.root_call(Method::GET, &format!("secret/data/harmony/{path}"), None)
        .await
        .unwrap_or(Value::Null)
}

fn base_doc() -> Value {
    json!({"db": {"host": "db", "port": 5432}, "debug": true, "name": "x"})
}

#[tokio::test]
async fn developers_write_dev_not_prod_and_ops_write_prod_and_the_base() {
    let provider = provider().await;
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    let summary = bootstrap(
        admin.path(),
        &bao,
        &provider,
        &["--environments", "dev,staging,prod"],
    );
    for want in [
        "ROLE               base   dev    staging  prod",
        "harmony-developer  read   write  write    none",
        "harmony-ops        write  write  write    write",
        "wrote the CEL sign-in role harmony-developer",
        "created policy harmony-env-prod-write",
    ] {
        assert!(summary.contains(want), "{want:?} not in:\n{summary}");
    }
    // Idempotent.
    let again = bootstrap(
        admin.path(),
        &bao,
        &provider,
        &["--environments", "dev,staging,prod"],
    );
    assert!(again.contains("nothing changed"), "{again}");

    // A base written before environments existed (as today) stays where it is.
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({"data": base_doc()})),
    )
    .await
    .expect("seed the base");

    // Both claim shapes, one sign-in each.
    let dev = Person::sign_in(&bao, &provider, "harmony-developer@groups").await;
    let ops = Person::sign_in(&bao, &provider, "harmony-ops@zitadel").await;

    // CEL sign-ins get the role's token TTL (1 h), not the server's 32-day default.
    let status = dev.ok(&["status"]);
    let ttl_line = status
        .lines()
        .find(|l| l.starts_with("token ttl:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        ttl_line.contains(" 59m") || ttl_line.ends_with(" 1h"),
        "{status}"
    );
    // `harmony status` shows the access table, read with the person's own token from the
    // recorded _access document.
    for want in [
        "environments:  dev, staging, prod — access by role:",
        "  ROLE               base   dev    staging  prod",
        "  harmony-developer  read   write  write    none",
        "  harmony-ops        write  write  write    write",
    ] {
        assert!(status.contains(want), "{want:?} not in:\n{status}");
    }
    let json: Value = serde_json::from_str(&ops.ok(&["--output", "json", "status"])).expect("json");
    assert_eq!(json["access"]["declared"], "true", "{json}");
    assert_eq!(
        json["access"]["environments"],
        json!(["dev", "staging", "prod"])
    );
    assert_eq!(
        json["access"]["roles"]["harmony-developer"],
        json!({"base": "read", "dev": "write", "staging": "write", "prod": "none"})
    );

    // The developer writes dev.
    let out = dev.run(&["config", "set", "my-app", "--env", "dev", "debug=false"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the dev overlay of my-app: saved version 1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        raw(&bao, "_env/dev/my-app").await["data"]["data"],
        json!({"debug": false})
    );

    // ... is refused writing prod, reading prod and writing the base: by OpenBao (403).
    dev.refused(
        &["config", "set", "my-app", "--env", "prod", "debug=false"],
        &[
            // The overlay is read before it is written: the read is the first refusal.
            "OpenBao refused reading the prod overlay of my-app",
            "read access to prod",
            "harmony-ops",
            "permission denied",
        ],
    );
    dev.refused(
        &["config", "get", "my-app", "--env", "prod", "--no-cache"],
        &[
            "OpenBao refused reading the prod overlay of my-app",
            "permission denied",
        ],
    );
    dev.refused(
        &["config", "set", "my-app", "name=y"],
        &["OpenBao refused writing my-app", "feeds every environment"],
    );
    assert!(
        raw(&bao, "_env/prod/my-app").await.is_null(),
        "nothing written"
    );
    assert_eq!(raw(&bao, "my-app").await["data"]["data"], base_doc());

    // Base-only reads work for everyone, untouched, with and without --env.
    let got: Value =
        serde_json::from_str(&dev.ok(&["--output", "json", "config", "get", "my-app"]))
            .expect("json");
    assert_eq!(got, base_doc());
    let got: Value = serde_json::from_str(&dev.ok(&[
        "--output", "json", "config", "get", "my-app", "--env", "staging",
    ]))
    .expect("json");
    assert_eq!(got, base_doc(), "no staging overlay: the base");

    // Ops write prod and the base.
    ops.ok(&[
        "config",
        "set",
        "my-app",
        "--env",
        "prod",
        "db.host=prod-db",
        "debug=false",
    ]);
    ops.ok(&["config", "set", "my-app", "name=y"]);
    let resolved: Value = serde_json::from_str(&ops.ok(&[
        "--output", "json", "config", "get", "my-app", "--env", "prod",
    ]))
    .expect("json");
    assert_eq!(
        resolved,
        json!({"db": {"host": "prod-db", "port": 5432}, "debug": false, "name": "y"}),
        "prod = base + overlay"
    );
    let explained = ops.ok(&["config", "get", "my-app", "--env", "prod", "--explain"]);
    for line in [
        "db.host                          prod overlay (overrides the base)",
        "db.port                          base",
        "name                             base",
    ] {
        assert!(explained.contains(line), "{line:?} not in:\n{explained}");
    }
    // The overlay holds only what was set there.
    assert_eq!(
        raw(&bao, "_env/prod/my-app").await["data"]["data"],
        json!({"db": {"host": "prod-db"}, "debug": false})
    );
    // history, diff, rollback, check and export work on the overlay.
    let history = ops.ok(&["config", "history", "my-app", "--env", "prod"]);
    assert!(history.lines().any(|l| l.starts_with("1 ")), "{history}");
    assert!(
        !history.lines().any(|l| l.starts_with("2 ")),
        "one prod version: {history}"
    );
    ops.ok(&["config", "set", "my-app", "--env", "prod", "debug=true"]);
    let diff = ops.ok(&["config", "diff", "my-app", "--env", "prod"]);
    assert!(diff.contains("~ debug: false -> true"), "{diff}");
    ops.ok(&["config", "rollback", "my-app", "1", "--env", "prod"]);
    assert_eq!(
        raw(&bao, "_env/prod/my-app").await["data"]["data"],
        json!({"db": {"host": "prod-db"}, "debug": false}),
        "rolled back in the overlay"
    );
    assert_eq!(
        raw(&bao, "my-app").await["data"]["metadata"]["version"],
        2,
        "base untouched"
    );
    let checked = ops.ok(&["config", "check", "my-app", "--env", "prod"]);
    assert!(checked.contains("my-app: untyped"), "{checked}");
    let exported = ops.ok(&["export", "-c", "my-app", "--env", "prod"]);
    assert!(
        exported.contains("HARMONY_MY_APP_DB_HOST='prod-db'"),
        "{exported}"
    );
    dev.refused(
        &["config", "history", "my-app", "--env", "prod"],
        &["prod overlay of my-app", "permission denied"],
    );

    // `env list`: the server's answer for each person's token.
    let mine = dev.ok(&["env", "list"]);
    for line in [
        "(base)       read   harmony-ops",
        "dev          write  harmony-developer, harmony-ops",
        "prod         none   harmony-ops",
    ] {
        assert!(mine.contains(line), "{line:?} not in:\n{mine}");
    }
    let theirs = ops.ok(&["env", "list"]);
    assert!(
        theirs.contains("prod         write  harmony-ops"),
        "{theirs}"
    );
    // Overlays are not configs in the listing.
    let listed = ops.ok(&["config", "list"]);
    assert_eq!(listed.trim(), "my-app", "{listed}");

    // `harmony run` in prod (the variable this time) sees the resolved values.
    let out = harmony(ops.data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::HARMONY_ENV, "prod")
        .args(["run", "-c", "my-app", "--", "env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let env = stdout(&out);
    for var in [
        "HARMONY_MY_APP_DB_HOST=prod-db",
        "HARMONY_MY_APP_DB_PORT=5432",
        "HARMONY_MY_APP_DEBUG=false",
        "HARMONY_MY_APP_NAME=y",
    ] {
        assert!(env.lines().any(|l| l == var), "{var} not in:\n{env}");
    }

    // ConfigManager with the prod environment gets the same values.
    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    struct Db {
        host: String,
        port: u16,
    }
    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    struct MyApp {
        db: Db,
        debug: bool,
        name: String,
    }
    impl harmony_config::Config for MyApp {
        const KEY: &'static str = "my-app";
    }
    let store = harmony_secret::OpenbaoSecretStore::connect(
        harmony_secret::OpenbaoSettings::new(bao.url())
            .with_token(secrecy::SecretString::from(
                bao.root_token().expect("token").to_owned(),
            ))
            .with_session_dir(admin.path().join("sessions")),
    )
    .await
    .expect("store");
    let from_manager: MyApp = harmony_config::ConfigManager::builder()
        .source(harmony_config::StoreSource::new(store).with_environment(Some("prod")))
        .interactive(false)
        .build()
        .get()
        .await
        .expect("config");
    assert_eq!(
        serde_json::to_value(&from_manager).expect("json"),
        resolved,
        "ConfigManager in prod = harmony run --env prod"
    );

    // compare and promote, with a secret field in the schema.
    bao.root_call(
        Method::POST,
        "secret/data/harmony/_schema/my-app",
        Some(json!({"data": {
            "type": "object",
            "properties": {
                "db": {"type": "object", "properties": {
                    "host": {"type": "string"},
                    "port": {"type": "integer"},
                    "password": {"type": "string", "x-secret": true}
                }},
                "debug": {"type": "boolean"},
                "name": {"type": "string"}
            }
        }})),
    )
    .await
    .expect("schema");
    ops.ok(&[
        "config",
        "set",
        "my-app",
        "--env",
        "prod",
        "db.password=prod-S3cret",
    ]);
    dev.ok(&[
        "config",
        "set",
        "my-app",
        "--env",
        "staging",
        "db.password=stg-S3cret",
        "name=staging-name",
    ]);
    let compared = ops.ok(&["config", "compare", "my-app", "staging", "prod"]);
    for line in [
        "~ db.host: \"db\" -> \"prod-db\"",
        "~ db.password: (secret) differs",
        "~ name: \"staging-name\" -> \"y\"",
    ] {
        assert!(compared.contains(line), "{line:?} not in:\n{compared}");
    }
    assert!(!compared.contains("S3cret"), "{compared}");
    dev.refused(
        &[
            "config", "promote", "my-app", "--from", "staging", "--to", "prod", "name",
        ],
        &["prod overlay of my-app", "permission denied"],
    );
    let out = ops.run(&[
        "config", "promote", "my-app", "--from", "staging", "--to", "prod", "name",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the prod overlay of my-app: saved version 5 with name from staging"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("S3cret"));
    let prod_overlay = raw(&bao, "_env/prod/my-app").await;
    assert_eq!(prod_overlay["data"]["data"]["name"], "staging-name");
    assert_eq!(
        prod_overlay["data"]["data"]["db"]["password"], "prod-S3cret",
        "only name was copied"
    );
    let out = ops.run(&[
        "config", "promote", "my-app", "--from", "staging", "--to", "prod", "db.port",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("db.port is not set in the staging overlay"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn the_other_claim_shapes_and_access_overrides() {
    let provider = provider().await;
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    // Developers may only read staging here; adding qa later works.
    bootstrap(
        admin.path(),
        &bao,
        &provider,
        &[
            "--environments",
            "dev,staging,prod",
            "--access",
            "developer=dev:write,staging:read",
        ],
    );
    let summary = bootstrap(
        admin.path(),
        &bao,
        &provider,
        &[
            "--environments",
            "dev,staging,prod,qa",
            "--access",
            "developer=dev:write,staging:read,qa:write",
        ],
    );
    assert!(
        summary.contains("harmony-developer  read   write  read     none   write"),
        "{summary}"
    );
    bao.root_call(
        Method::POST,
        "secret/data/harmony/my-app",
        Some(json!({"data": base_doc()})),
    )
    .await
    .expect("seed the base");

    // A developer by Zitadel's roles map, an operator by a groups list.
    let dev = Person::sign_in(&bao, &provider, "harmony-developer@zitadel").await;
    let ops = Person::sign_in(&bao, &provider, "harmony-ops@groups").await;
    dev.ok(&["config", "set", "my-app", "--env", "qa", "debug=false"]);
    dev.refused(
        &["config", "set", "my-app", "--env", "staging", "debug=false"],
        &[
            "OpenBao refused writing the staging overlay",
            "permission denied",
        ],
    );
    dev.refused(
        &["config", "get", "my-app", "--env", "prod", "--no-cache"],
        &["permission denied"],
    );
    ops.ok(&["config", "set", "my-app", "--env", "staging", "debug=false"]);
    let got: Value = serde_json::from_str(&dev.ok(&[
        "--output", "json", "config", "get", "my-app", "--env", "staging",
    ]))
    .expect("json");
    assert_eq!(got["debug"], false, "the developer reads staging");

    // Someone in neither role is refused at sign-in with the CEL role's own message.
    let data = tempfile::tempdir().expect("tempdir");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut cmd = harness::harmony_std(data.path());
    cmd.args([
        "login",
        "--sso",
        "--openbao-url",
        bao.url(),
        "--sso-url",
        provider.issuer(),
        "--client-id",
        provider.client_id(),
    ]);
    let watcher = harness::run_watching_stderr(cmd, Duration::from_secs(60), move |line| {
        if let Some(code) = line.trim().strip_prefix("code: ") {
            let _ = tx.send(code.to_owned());
        }
    });
    let approve = async {
        let code = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("the user code was printed");
        provider
            .approve_user_code(&code, "mallory")
            .await
            .expect("approve");
    };
    let ((status, _, err), ()) = tokio::join!(watcher, approve);
    assert!(!status.success(), "mallory has no role: {err}");
    assert!(err.contains("in none of the roles"), "{err}");
}

#[tokio::test]
async fn without_environments_sign_in_and_access_stay_as_before() {
    let provider = provider().await;
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    let summary = bootstrap(admin.path(), &bao, &provider, &[]);
    assert!(
        summary.contains("created JWT role harmony-developer"),
        "{summary}"
    );
    assert!(!summary.contains("CEL"), "{summary}");
    assert!(
        summary.contains(
            "Environments not declared: everyone signed in reads and writes the one base"
        ),
        "{summary}"
    );
    // Anyone the provider issues a token to signs in with the classic role and writes the base.
    let someone = Person::sign_in(&bao, &provider, "carol").await;
    let status = someone.ok(&["status"]);
    assert!(
        status.contains("environments:  not declared (everyone signed in shares the one base"),
        "{status}"
    );
    let json: Value =
        serde_json::from_str(&someone.ok(&["--output", "json", "status"])).expect("json");
    assert_eq!(json["access"], json!({"declared": "false"}), "{json}");
    someone.ok(&["config", "set", "my-app", "name=z"]);
    assert_eq!(
        raw(&bao, "my-app").await["data"]["data"],
        json!({"name": "z"})
    );
    // Later environments replace the classic role; a re-run without the flag keeps them.
    bootstrap(
        admin.path(),
        &bao,
        &provider,
        &["--environments", "dev,prod"],
    );
    let again = bootstrap(admin.path(), &bao, &provider, &[]);
    assert!(
        again.contains("gives policies by role (environments were set up)"),
        "{again}"
    );
    // Without the flag the summary shows the table the server records, not the flags'.
    for want in [
        "Environments dev, prod — who may do what (recorded at _access",
        "  harmony-developer  read   write  none",
        "  harmony-ops        write  write  write",
    ] {
        assert!(again.contains(want), "{want:?} not in:\n{again}");
    }
    let role = bao
        .root_call(Method::GET, "auth/jwt/role/harmony-developer", None)
        .await;
    assert!(
        role.is_err() || role.as_ref().is_ok_and(|r| r["data"].is_null()),
        "{role:?}"
    );
}

/// The userpass demo user is no way around the environments: with them declared it gets the
/// developers' access (one policy, `harmony-userpass`), as a developer signed in through SSO
/// does — it writes dev, is refused reading prod and writing the base — also after a re-run
/// without `--environments`.
#[tokio::test]
async fn the_userpass_demo_user_gets_the_developers_access_with_environments() {
    let provider = provider().await;
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let admin = tempfile::tempdir().expect("tempdir");
    let summary = bootstrap(
        admin.path(),
        &bao,
        &provider,
        &["--environments", "dev,staging,prod"],
    );
    assert!(
        summary.contains("created policy harmony-userpass"),
        "{summary}"
    );
    for (path, doc) in [
        ("my-app", base_doc()),
        ("_env/prod/my-app", json!({"db": {"host": "prod-db"}})),
    ] {
        bao.root_call(
            Method::POST,
            &format!("secret/data/harmony/{path}"),
            Some(json!({"data": doc})),
        )
        .await
        .expect("seed");
    }
    // The bootstrap saved the userpass password in the admin's data dir.
    let demo = Person {
        data: admin,
        url: bao.url().to_owned(),
    };
    demo.ok(&["login", "--userpass"]);
    let status = demo.ok(&["status"]);
    assert!(
        status.contains("policies:      default, harmony-userpass"),
        "{status}"
    );
    demo.ok(&["config", "set", "my-app", "--env", "dev", "debug=false"]);
    assert_eq!(
        raw(&bao, "_env/dev/my-app").await["data"]["data"],
        json!({"debug": false})
    );
    demo.refused(
        &["config", "get", "my-app", "--env", "prod", "--no-cache"],
        &["OpenBao refused reading the prod overlay of my-app"],
    );
    demo.refused(
        &["config", "set", "my-app", "name=y"],
        &["OpenBao refused writing my-app"],
    );
    assert_eq!(raw(&bao, "my-app").await["data"]["data"], base_doc());

    // A re-run without --environments keeps the user on the developers' access.
    let again = harmony(demo.data.path())
        .env(
            vars::OPENBAO_TOKEN,
            bao.root_token().expect("dev root token"),
        )
        .args(["bootstrap", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert!(again.status.success(), "{}", stderr(&again));
    let user = bao
        .root_call(Method::GET, "auth/userpass/users/harmony", None)
        .await
        .expect("user");
    assert_eq!(
        user["data"]["token_policies"],
        json!(["harmony-userpass"]),
        "{user}"
    );
}
