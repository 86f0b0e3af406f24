//! The project file (`harmony.toml`) against a real OpenBao (testkit dev server): found from the
//! working directory up to the repository's root, it names the server, the configs and the
//! default environment; flags and variables win over it; a bad file is a usage error (exit 2)
//! naming the file and the key, never quoting a value.

mod harness;

use std::path::{Path, PathBuf};

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use harness::{harmony, harmony_std, run_watching_stderr, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

/// A repository (a `.git` folder) with `harmony.toml` holding `text`, and a folder inside it.
struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    deep: PathBuf,
}

fn repo(text: &str) -> Repo {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("app");
    let deep = root.join("src/bin");
    std::fs::create_dir_all(&deep).expect("dirs");
    std::fs::create_dir_all(root.join(".git")).expect(".git");
    std::fs::write(root.join("harmony.toml"), text).expect("write harmony.toml");
    Repo {
        _dir: dir,
        root,
        deep,
    }
}

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

/// Two base documents, a `prod` and a `dev` overlay of `web`.
async fn server() -> OpenbaoServer {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    put(&bao, "web", json!({ "name": "web-base", "port": 8080 })).await;
    put(&bao, "_env/prod/web", json!({ "name": "web-prod" })).await;
    put(&bao, "_env/dev/web", json!({ "name": "web-dev" })).await;
    put(&bao, "shared/db", json!({ "host": "db.internal" })).await;
    bao
}

/// `harmony` in `cwd` with only the root token in the environment (no URL).
fn in_dir(data: &Path, cwd: &Path, bao: &OpenbaoServer) -> assert_cmd::Command {
    let mut cmd = harmony(data);
    cmd.current_dir(cwd)
        .env_remove(vars::HARMONY_PROJECT_FILE)
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"));
    cmd
}

fn project_text(bao: &OpenbaoServer) -> String {
    format!(
        "# The shop's settings.\nopenbao_url = \"{}\"\nenvironment = \"prod\"\nconfigs = [\"web\", \"shared/db\"]\n",
        bao.url()
    )
}

fn lines_with(text: &str, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn the_project_file_names_the_server_the_configs_and_the_environment() {
    let bao = server().await;
    let repo = repo(&project_text(&bao));
    let data = tempfile::tempdir().expect("tempdir");

    // `harmony run -- env` from a folder deep inside the repository: no -c, no URL, no --env.
    let out = in_dir(data.path(), &repo.deep, &bao)
        .args(["run", "--no-cache", "--", "env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        lines_with(&stdout(&out), "HARMONY_WEB_")
            .into_iter()
            .chain(lines_with(&stdout(&out), "HARMONY_SHARED_"))
            .collect::<Vec<_>>(),
        [
            "HARMONY_WEB_NAME=web-prod",
            "HARMONY_WEB_PORT=8080",
            "HARMONY_SHARED_DB_HOST=db.internal",
        ],
        "both configs of the file, web in prod"
    );

    // `config get` reads the file's server and environment too.
    let out = in_dir(data.path(), &repo.deep, &bao)
        .args(["--output", "json", "config", "get", "web", "--no-cache"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let got: Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(got, json!({ "name": "web-prod", "port": 8080 }));
}

#[tokio::test]
async fn flags_and_variables_win_over_the_project_file() {
    let bao = server().await;
    let repo = repo(&project_text(&bao));
    let data = tempfile::tempdir().expect("tempdir");
    let env_of = |extra: &[&str], envs: &[(&str, &str)]| {
        let mut cmd = in_dir(data.path(), &repo.root, &bao);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd
            .args(["run", "--no-cache"])
            .args(extra)
            .args(["--", "env"])
            .output()
            .expect("run");
        (out.status.code(), stdout(&out), stderr(&out))
    };

    // -c replaces the file's configs; --env and HARMONY_ENV its environment; --env '' is the base.
    let (code, out, err) = env_of(&["-c", "web", "--env", "dev"], &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        lines_with(&out, "HARMONY_WEB_"),
        ["HARMONY_WEB_NAME=web-dev", "HARMONY_WEB_PORT=8080"]
    );
    let (_, out, err) = env_of(&["-c", "web"], &[(vars::HARMONY_ENV, "dev")]);
    assert!(out.contains("HARMONY_WEB_NAME=web-dev"), "{out}{err}");
    let (_, out, err) = env_of(&["-c", "web", "--env", ""], &[]);
    assert!(out.contains("HARMONY_WEB_NAME=web-base"), "{out}{err}");
    // The flag wins over the variable.
    let (_, out, err) = env_of(
        &["-c", "web", "--env", "prod"],
        &[(vars::HARMONY_ENV, "dev")],
    );
    assert!(out.contains("HARMONY_WEB_NAME=web-prod"), "{out}{err}");

    // OPENBAO_URL wins over the file's server, and --openbao-url over both.
    let nowhere = "http://127.0.0.1:9";
    let (code, _, err) = env_of(&[], &[(vars::OPENBAO_URL, nowhere)]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    let (code, _, err) = env_of(&["--openbao-url", nowhere], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    let (code, out, err) = env_of(
        &["--openbao-url", bao.url()],
        &[(vars::OPENBAO_URL, nowhere)],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("HARMONY_WEB_NAME=web-prod"), "{out}");

    // --project-file (and HARMONY_PROJECT_FILE) from outside the repository.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(elsewhere.path().join(".git")).expect(".git");
    let file = repo.root.join("harmony.toml");
    let out = in_dir(data.path(), elsewhere.path(), &bao)
        .args(["run", "--no-cache", "--project-file"])
        .arg(&file)
        .args(["--", "env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("HARMONY_WEB_NAME=web-prod"));
    let out = in_dir(data.path(), elsewhere.path(), &bao)
        .env(vars::HARMONY_PROJECT_FILE, &file)
        .args(["run", "--no-cache", "--", "env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("HARMONY_SHARED_DB_HOST=db.internal"));

    // Outside any project: no configs named is a usage error that says how to name them.
    let out = in_dir(data.path(), elsewhere.path(), &bao)
        .env(vars::OPENBAO_URL, bao.url())
        .args(["run", "--", "env"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("-c KEY"), "{}", stderr(&out));
    // /dev/null reads no project file: the file's configs are gone from inside the repo too.
    let out = in_dir(data.path(), &repo.root, &bao)
        .env(vars::OPENBAO_URL, bao.url())
        .args(["--project-file", "/dev/null", "run", "--", "env"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test]
async fn a_bad_project_file_is_a_usage_error_naming_file_and_key_never_a_value() {
    let bao = server().await;
    let data = tempfile::tempdir().expect("tempdir");
    let url = bao.url().to_owned();
    let cases = [
        (
            format!("openbao_url = \"{url}\"\nconfig = [\"web\"]\n"),
            "unknown key `config`",
        ),
        (
            format!("openbao_url = \"{url}\"\nopenbao_token = \"hvs.s3cr3t-project\"\n"),
            "looks like a credential",
        ),
        (
            "openbao_url = \"hvs.s3cr3t-project\n".to_owned(),
            "not valid TOML",
        ),
        (
            "configs = \"hvs.s3cr3t-project\"\n".to_owned(),
            "`configs`: expected a sequence",
        ),
        (
            "openbao_url = \"https://me:hvs.s3cr3t-project@bao\"\n".to_owned(),
            "user name or password",
        ),
        ("environment = \"Prod\"\n".to_owned(), "`environment`"),
    ];
    for (text, expected) in cases {
        let repo = repo(&text);
        for args in [
            &["run", "-c", "web", "--", "true"][..],
            &["config", "get", "web"][..],
        ] {
            let out = in_dir(data.path(), &repo.deep, &bao)
                .args(args)
                .output()
                .expect("run");
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{text}: {err}");
            assert!(err.contains(expected), "{text}: {err}");
            assert!(
                err.contains(&repo.root.join("harmony.toml").display().to_string()),
                "{err}"
            );
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
        }
    }
    let out = in_dir(data.path(), data.path(), &bao)
        .args(["--project-file", "/nonexistent/harmony.toml", "status"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

/// The promise of the file: a teammate who clones the repository signs in with `harmony login`
/// and runs the program with `harmony run -- CMD`, no flag and no variable — the device flow
/// through the real test OpenID provider named by `[sso]`, against the server it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_teammate_signs_in_and_runs_with_no_flags() {
    let bao = server().await;
    let provider = OidcProvider::start(OidcProviderOptions {
        interval: Some(std::time::Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider");
    let admin = tempfile::tempdir().expect("tempdir");
    let out = harmony(admin.path())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .args(["bootstrap", "--openbao-url", bao.url(), "--sso-url"])
        .args([provider.issuer(), "--client-id", provider.client_id()])
        .output()
        .expect("bootstrap");
    assert!(out.status.success(), "bootstrap: {}", stderr(&out));
    let repo = repo(&format!(
        "{}\n[sso]\nissuer = \"{}\"\nclient_id = \"{}\"\n",
        project_text(&bao),
        provider.issuer(),
        provider.client_id()
    ));
    let data = tempfile::tempdir().expect("tempdir");

    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut login = harmony_std(data.path());
    login.current_dir(&repo.deep).arg("login");
    let watcher = run_watching_stderr(login, std::time::Duration::from_secs(60), move |line| {
        if let Some(code) = line.trim().strip_prefix("code: ") {
            let _ = tx.send(code.to_owned());
        }
    });
    let approve = async {
        let code = tokio::task::spawn_blocking(move || {
            rx.recv_timeout(std::time::Duration::from_secs(30))
        })
        .await
        .expect("join")
        .expect("the user code was printed on stderr");
        provider
            .approve_user_code(&code, "alice")
            .await
            .expect("approve the code");
    };
    let ((status, _, err), ()) = tokio::join!(watcher, approve);
    assert!(status.success(), "login: {err}");

    let out = harmony(data.path())
        .current_dir(&repo.deep)
        .env_remove(vars::HARMONY_PROJECT_FILE)
        .args(["run", "--", "env"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("HARMONY_WEB_NAME=web-prod"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("HARMONY_SHARED_DB_HOST=db.internal"));
}
