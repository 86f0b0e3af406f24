//! The `harmony-sso` binary as a user meets it, against real OpenBao servers from the test kit.
//!
//! Each test owns its server and its `HARMONY_DATA_DIR`, and runs the binary with every OpenBao
//! variable of the surrounding environment removed, so a developer's own settings never leak in.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use reqwest::Method;
use serde_json::Value;

/// The binary with a clean environment: its own data dir, no OpenBao or SSO settings.
fn harmony_sso(data_dir: &Path) -> Command {
    let mut cmd = Command::from_std(harmony_sso_std(data_dir));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// [`harmony_sso`] as a plain process, for tests that watch its output while it runs.
fn harmony_sso_std(data_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("harmony-sso"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
        .chain(vars::OPENBAO_NAMESPACE_ALIASES.iter())
        .chain(vars::OPENBAO_CACERT_ALIASES.iter())
        .chain(vars::OPENBAO_CAPATH_ALIASES.iter())
        .chain(vars::OPENBAO_TLS_SERVER_NAME_ALIASES.iter())
        .chain(vars::OPENBAO_SKIP_VERIFY_ALIASES.iter())
        .chain(
            [
                vars::OPENBAO_USERNAME,
                vars::OPENBAO_PASSWORD,
                vars::OPENBAO_KV_MOUNT,
                vars::OPENBAO_KV_PREFIX,
                vars::HARMONY_SSO_URL,
                vars::HARMONY_SSO_CLIENT_ID,
                vars::HARMONY_SSO_PROJECT_ID,
                vars::HARMONY_NON_INTERACTIVE,
                vars::RUST_LOG,
            ]
            .iter(),
        )
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data_dir);
    cmd
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony_sso(data.path())
        .arg("--help")
        .output()
        .expect("run");
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn wrong_flag_combinations_fail_before_any_work_naming_the_flag() {
    let data = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (&["--demo", "--sso-demo"], "--sso-demo"),
        (&["--cleanup", "--demo"], "--demo"),
        (&["--demo", "--yes"], "--yes"),
        (&["--backup-schedule", "0 * * *"], "--backup-schedule"),
        (
            &["--backup-keep", "0", "--backup-schedule", "@daily"],
            "--backup-keep",
        ),
        (
            &["--demo", "--backup-schedule", "@daily"],
            "--backup-schedule",
        ),
        (
            &[
                "--openbao-url",
                "http://127.0.0.1:1",
                "--backup-schedule",
                "@daily",
            ],
            "harmony backup save",
        ),
        (&["--cluster-name", "Not_Valid"], "--cluster-name"),
        (&["--openbao-url", "not a url"], "--openbao-url"),
        (&["--openbao-url", "ftp://x"], "--openbao-url"),
        (&["--demo", "--openbao-url", "ftp://x"], "--openbao-url"),
        (
            &[
                "--openbao-url",
                "http://127.0.0.1:1",
                "--sso-url",
                "http://127.0.0.1:2",
            ],
            "--client-id",
        ),
        (
            &["--openbao-url", "http://127.0.0.1:1", "--skip-zitadel"],
            "--skip-zitadel",
        ),
        (&["--ci", "github:acme/app"], "--openbao-url"),
        (
            &["--openbao-url", "http://127.0.0.1:1", "--ci", "github:acme"],
            "OWNER/REPO",
        ),
        (
            &[
                "--openbao-url",
                "http://127.0.0.1:1",
                "--ci",
                "github:acme/app",
                "--ci",
                "gitlab:group/project",
            ],
            "one issuer",
        ),
        (
            &[
                "--openbao-url",
                "http://127.0.0.1:1",
                "--ci",
                "github:acme/my.app#1/2@main",
                "--ci",
                "github:acme/my-app#3/2@main",
            ],
            "one role name (github-acme-my-app)",
        ),
        (
            &[
                "--openbao-url",
                "http://127.0.0.1:1",
                "--bound-claim",
                "a=b",
            ],
            "--bound-claim",
        ),
        (&["--bound-claim", "no-value"], "--bound-claim"),
        (
            &["--openbao-url", "http://127.0.0.1:1", "--key-shares", "5"],
            "--key-threshold",
        ),
        (&["--openbao-node", "http://127.0.0.1:2"], "--openbao-url"),
        (&["--demo", "--grant-user", "alice"], "--grant-user"),
        (
            &[
                "--kube-context",
                "prod",
                "--domain",
                "example.com",
                "--openbao-url",
                "http://127.0.0.1:1",
            ],
            "--openbao-url",
        ),
        (
            &["--demo", "--key-shares", "5", "--key-threshold", "3"],
            "--key-shares",
        ),
        (
            &["--key-shares", "5", "--key-threshold", "1"],
            "--key-threshold",
        ),
    ];
    let cases = cases
        .iter()
        .chain(harmony_testkit::cli_cases::CLUSTER_FLAG_MISTAKES);
    for (args, named) in cases {
        let output = harmony_sso(data.path()).args(*args).output().expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(
        files_under(data.path()).is_empty(),
        "usage errors must not touch local state"
    );
}

#[test]
fn environment_flags_are_checked_before_any_work() {
    let data = tempfile::tempdir().expect("tempdir");
    let own: &[(&[&str], &str)] = &[];
    // Port 1 answers nothing: a request would be a different error.
    for (args, named) in harmony_testkit::cli_cases::ENVIRONMENT_FLAG_MISTAKES
        .iter()
        .chain(own)
    {
        let output = harmony_sso(data.path())
            .args(["--openbao-url", "http://127.0.0.1:1"])
            .args(*args)
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = harmony_sso(data.path())
        .args(["--demo", "--environments", "dev"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--environments applies to --openbao-url"),
        "{}",
        stderr(&output)
    );
    assert!(files_under(data.path()).is_empty());
}

#[tokio::test]
async fn openbao_url_bootstraps_a_sealed_server_and_a_second_run_changes_nothing() {
    let bao = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let url = bao.url().to_owned();

    let first = harmony_sso(data.path())
        .args(["--openbao-url", &url])
        .output()
        .expect("run");
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("initialised"), "{out}");
    assert!(out.contains("unsealed"), "{out}");
    assert!(out.contains("created policy harmony-dev"), "{out}");

    // Keys and password are saved 0600, and never shown.
    let files = files_under(data.path());
    assert!(files.len() >= 2, "{files:?}");
    for file in &files {
        let mode = std::fs::metadata(file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let saved: Value =
            serde_json::from_slice(&std::fs::read(file).expect("read")).expect("json");
        for secret in ["root_token", "password"] {
            if let Some(s) = saved.get(secret).and_then(Value::as_str) {
                assert!(
                    !out.contains(s) && !stderr(&first).contains(s),
                    "{secret} leaked"
                );
            }
        }
    }

    let second = harmony_sso(data.path())
        .args(["--openbao-url", &url])
        .output()
        .expect("run");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    assert!(!stdout(&second).contains("initialised"));

    // The server is really unsealed and configured: the saved userpass login works.
    let demo = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", &url])
        .output()
        .expect("run");
    assert!(demo.status.success(), "{}", stderr(&demo));
}

#[tokio::test]
async fn demo_round_trip_with_an_environment_override() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let token = bao.root_token().expect("dev token").to_owned();

    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, &token)
        .env("HARMONY_DEMO_WORKERS", "7")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let resolved: Value = serde_json::from_str(&stdout(&output)).expect("stdout is JSON");
    assert_eq!(resolved["workers"], 7, "the environment wins for its field");
    assert_eq!(
        resolved["app_name"], "harmony-demo",
        "other fields come from the store"
    );
    assert_eq!(
        resolved["database"]["password"], "********",
        "secrets are masked"
    );

    // The store keeps its own value: the override never leaks into the shared copy.
    let stored = bao
        .root_call(Method::GET, "secret/data/harmony/demo", None)
        .await
        .expect("read the stored demo config");
    assert_eq!(stored["data"]["data"]["workers"], 2);
    assert_eq!(stored["data"]["metadata"]["version"], 1);

    let err = stderr(&output);
    assert!(err.contains("HARMONY_DEMO_LOG_LEVEL=debug"), "{err}");
    assert!(!err.contains(&token) && !stdout(&output).contains(&token));
    assert!(!stdout(&output).contains("demo-password-not-a-real-secret"));

    // A second run writes a new version with check-and-set against the one it read.
    let again = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, &token)
        .output()
        .expect("run");
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("(version 2)"), "{}", stderr(&again));
}

/// `--openbao-url` over HTTPS with `BAO_CACERT`, and `--namespace`: the bootstrap creates and
/// configures the namespace, and `--demo` writes its document there (not at the root).
#[tokio::test]
async fn tls_and_namespace_for_an_existing_openbao() {
    let bao = OpenbaoServer::dev_tls().await.expect("dev-tls OpenBao");
    let ca = bao.ca_cert().expect("dev-tls CA");
    let data = tempfile::tempdir().expect("tempdir");
    let token = bao.root_token().expect("dev token").to_owned();

    let output = harmony_sso(data.path())
        .args(["--openbao-url", bao.url(), "--namespace", "team-a"])
        .env(vars::OPENBAO_TOKEN, &token)
        .env(vars::BAO_CACERT, &ca)
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("(namespace team-a)"), "{out}");
    assert!(out.contains("created namespace team-a"), "{out}");

    let output = harmony_sso(data.path())
        .args([
            "--demo",
            "--openbao-url",
            bao.url(),
            "--namespace",
            "team-a",
        ])
        .env(vars::OPENBAO_TOKEN, &token)
        .env(vars::BAO_CACERT, &ca)
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let in_team = bao
        .root_call_in("team-a", Method::GET, "secret/data/harmony/demo", None)
        .await
        .expect("the demo document is in team-a");
    assert_eq!(in_team["data"]["metadata"]["version"], 1);
    assert!(
        bao.root_call(Method::GET, "secret/data/harmony/demo", None)
            .await
            .is_err(),
        "nothing at the root"
    );

    // Without the CA: a failure naming the variable to set.
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, &token)
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(vars::BAO_CACERT),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_bad_environment_value_says_what_it_should_be() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("dev token"))
        .env("HARMONY_DEMO_WORKERS", "notanumber")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("HARMONY_DEMO_WORKERS=\"notanumber\"")
            && err.contains("expected a whole number"),
        "{err}"
    );
    assert!(!err.contains("integer"), "{err}");
}

#[tokio::test]
async fn bad_kv_settings_name_the_variable() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let token = bao.root_token().expect("dev token").to_owned();

    // No KV engine at that mount: the write says so, instead of "nothing found".
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, &token)
        .env(vars::OPENBAO_KV_MOUNT, "nosuchmount")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("no KV v2 secrets engine is mounted at nosuchmount/")
            && err.contains(vars::OPENBAO_KV_MOUNT),
        "{err}"
    );

    // A prefix that escapes its place is a settings error, found before signing in.
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, &token)
        .env(vars::OPENBAO_KV_PREFIX, "team/../other")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(vars::OPENBAO_KV_PREFIX) && err.contains(".."),
        "{err}"
    );
    assert!(!err.to_lowercase().contains("signing in"), "{err}");
}

#[tokio::test]
async fn unreachable_openbao_is_a_clear_error_and_a_failure_exit() {
    let mut bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let url = bao.url().to_owned();
    bao.stop();
    let data = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", &url])
        .env(vars::OPENBAO_TOKEN, "not-a-real-token")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("unreachable"), "{err}");
    assert!(err.contains(url.trim_end_matches('/')), "{err}");
    assert!(!err.contains("not-a-real-token"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let output = harmony_sso(data.path())
        .args(["--openbao-url", &url])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(url.trim_end_matches('/')),
        "{}",
        stderr(&output)
    );
}

#[test]
fn cleanup_off_a_terminal_needs_yes() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony_sso(data.path())
        .arg("--cleanup")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--yes"), "{}", stderr(&output));
}

#[test]
fn deploy_without_docker_fails_in_one_paragraph_before_any_download() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony_sso(data.path())
        .env(
            vars::DOCKER_HOST,
            format!("unix://{}/docker.sock", data.path().display()),
        )
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("Docker is not reachable at unix://"), "{err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "{err}"
    );
    assert!(
        files_under(data.path()).is_empty(),
        "nothing downloaded or created: {:?}",
        files_under(data.path())
    );
}

/// A fake `k3d` at the pinned version on PATH: records its arguments, knows one cluster.
fn fake_k3d(dir: &Path, log: &Path) {
    let script = format!(
        r#"#!/bin/sh
echo "$@" >> "{log}"
case "$1 $2" in
  "version "*) echo "k3d version {version}"; echo "k3s version v1.31.5-k3s1 (default)";;
  "cluster list") echo '[{{"name":"harmony","serversRunning":1,"serversCount":1,"agentsRunning":0,"agentsCount":0}}]';;
  "cluster delete") exit 0;;
  *) echo "unexpected: $@" >&2; exit 1;;
esac
"#,
        log = log.display(),
        version = harmony::tools::K3D_VERSION,
    );
    let path = dir.join("k3d");
    std::fs::write(&path, script).expect("write fake k3d");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn cleanup_deletes_the_cluster_and_its_local_state() {
    let data = tempfile::tempdir().expect("tempdir");
    let bin = tempfile::tempdir().expect("tempdir");
    let log = bin.path().join("calls.log");
    fake_k3d(bin.path(), &log);
    let openbao_state = data.path().join("openbao/cluster-harmony");
    std::fs::create_dir_all(&openbao_state).expect("mkdir");
    std::fs::write(openbao_state.join("init-keys.json"), "{}").expect("write");
    std::fs::write(openbao_state.join("keys.lock"), "").expect("write");
    let sessions = data.path().join("sessions");
    std::fs::create_dir_all(&sessions).expect("mkdir");
    let ours = sessions.join("a.json");
    let theirs = sessions.join("b.json");
    std::fs::write(
        &ours,
        r#"{"url":"http://bao.harmony.local:8080","identity":"x"}"#,
    )
    .expect("write");
    std::fs::write(sessions.join("a.lock"), "").expect("write");
    std::fs::write(
        &theirs,
        r#"{"url":"https://bao.example.com","identity":"x"}"#,
    )
    .expect("write");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let output = harmony_sso(data.path())
        .args(["--cleanup", "--yes"])
        .env("PATH", path)
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
    let calls = std::fs::read_to_string(&log).expect("k3d was called");
    assert!(
        calls.lines().any(|l| l == "cluster delete harmony"),
        "{calls}"
    );
    assert!(
        !openbao_state.join("init-keys.json").exists(),
        "local state removed"
    );
    assert!(
        openbao_state.join("keys.lock").exists(),
        "a lock file is never deleted (another process may hold it)"
    );
    assert!(!ours.exists(), "the cluster's cached session removed");
    assert!(
        sessions.join("a.lock").exists(),
        "the session's lock file is never deleted"
    );
    assert!(theirs.exists(), "another server's session kept");
    assert!(stdout(&output).contains("deleted k3d cluster \"harmony\""));
}

/// Runs the binary with piped output, hands every stderr line to `on_line` as it arrives, and
/// returns (exit status, stdout, stderr) once it ends (bounded by `limit`).
async fn run_watching_stderr(
    mut cmd: std::process::Command,
    limit: Duration,
    on_line: impl Fn(String) + Send + 'static,
) -> (std::process::ExitStatus, String, String) {
    use std::io::{BufRead as _, Read as _};
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn harmony-sso");
    let stderr = child.stderr.take().expect("stderr");
    let mut stdout = child.stdout.take().expect("stdout");
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            all.push_str(&line);
            all.push('\n');
            on_line(line);
        }
        all
    });
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("harmony-sso did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (
        status,
        out_reader.join().expect("stdout reader"),
        err_reader.join().expect("stderr reader"),
    )
}

fn sso_command(data: &Path, bao_url: &str, issuer: &str, client_id: &str) -> std::process::Command {
    let mut cmd = harmony_sso_std(data);
    cmd.args([
        "--sso-demo",
        "--openbao-url",
        bao_url,
        "--sso-url",
        issuer,
        "--client-id",
        client_id,
    ])
    .env(vars::HARMONY_SSO_OPEN_BROWSER, "0");
    cmd
}

#[tokio::test]
async fn sso_demo_end_to_end_then_reuses_the_session() {
    use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};

    let provider = OidcProvider::start(OidcProviderOptions {
        interval: Some(Duration::from_secs(1)),
        ..OidcProviderOptions::default()
    })
    .await
    .expect("test OpenID provider");
    let bao = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let data = tempfile::tempdir().expect("tempdir");

    // The CLI bootstraps the server and wires its JWT auth to the provider.
    let boot = harmony_sso(data.path())
        .args([
            "--openbao-url",
            bao.url(),
            "--sso-url",
            provider.issuer(),
            "--client-id",
            provider.client_id(),
        ])
        .output()
        .expect("run");
    assert!(boot.status.success(), "{}", stderr(&boot));
    assert!(stdout(&boot).contains("jwt"), "{}", stdout(&boot));
    assert!(
        stdout(&boot).contains("limited only by the provider's own rules")
            && stdout(&boot).contains("--bound-claim"),
        "the summary says who can sign in: {}",
        stdout(&boot)
    );

    // Without a session and without a person, --sso-demo fails fast instead of waiting.
    let started = Instant::now();
    let refused = Command::from_std(sso_command(
        data.path(),
        bao.url(),
        provider.issuer(),
        provider.client_id(),
    ))
    .timeout(Duration::from_secs(30))
    .output()
    .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert!(!stderr(&refused).contains("code:"), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("--allow-device-flow"),
        "the error says how to proceed: {}",
        stderr(&refused)
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // First run: device flow; the test approves the printed code like a person would.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut cmd = sso_command(
        data.path(),
        bao.url(),
        provider.issuer(),
        provider.client_id(),
    );
    cmd.arg("--allow-device-flow");
    let watcher = run_watching_stderr(cmd, Duration::from_secs(60), move |line| {
        if let Some(code) = line.trim().strip_prefix("code: ") {
            let _ = tx.send(code.to_owned());
        }
    });
    let approve = async {
        let code = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .expect("join")
            .expect("the user code was printed on stderr");
        provider
            .approve_user_code(&code, "alice")
            .await
            .expect("approve the code");
    };
    let ((status, out, err), ()) = tokio::join!(watcher, approve);
    assert!(status.success(), "{err}");
    let resolved: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(resolved["app_name"], "harmony-demo");
    assert!(err.contains("DeviceFlow"), "{err}");

    // The session is cached 0600 and holds no token in clear on stderr/stdout.
    let sessions: Vec<_> = files_under(&data.path().join("sessions"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    let mode = std::fs::metadata(&sessions[0])
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // The token is in the OS keychain where one answers (the file then holds none), else in
    // the file; either way it reads back, and never shows on stdout or stderr.
    let session: Value =
        serde_json::from_slice(&std::fs::read(&sessions[0]).expect("read")).expect("json");
    let cached = harmony_secret::session::SessionCache::new(data.path().join("sessions"))
        .load(bao.url(), "jwt:jwt:harmony-developer")
        .await
        .expect("load")
        .expect("cached");
    let token = secrecy::ExposeSecret::expose_secret(&cached.token).to_owned();
    assert!(!token.is_empty(), "{session}");
    if session["secrets"] == "keychain" {
        assert_eq!(session["token"], "", "{session}");
    }
    assert!(!out.contains(&token) && !err.contains(&token));

    // Later runs, each a new process, find a session: no device flow, no code printed.
    let rerun = || async {
        let cmd = sso_command(
            data.path(),
            bao.url(),
            provider.issuer(),
            provider.client_id(),
        );
        let (status, out, err) = run_watching_stderr(cmd, Duration::from_secs(30), |_| {}).await;
        assert!(status.success(), "{err}");
        assert!(!err.contains("code:"), "no device flow expected:\n{err}");
        (out, err)
    };
    let (out, err) = rerun().await;
    assert!(err.contains("CachedSession"), "{err}");
    let resolved: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(resolved["workers"], 2);

    // The OpenBao token dies (revoked with the root token the bootstrap saved): the next run
    // refreshes silently with the cached refresh token — still no code shown.
    let keys: Value = serde_json::from_slice(
        &std::fs::read(
            files_under(data.path())
                .into_iter()
                .find(|p| p.ends_with("init-keys.json"))
                .expect("keys file saved by the bootstrap"),
        )
        .expect("read keys"),
    )
    .expect("json");
    let root = keys["root_token"].as_str().expect("root token").to_owned();
    let revoke = reqwest::Client::new()
        .post(format!("{}/v1/auth/token/revoke", bao.url()))
        .header("X-Vault-Token", &root)
        .json(&serde_json::json!({ "token": token }))
        .send()
        .await
        .expect("revoke");
    assert!(revoke.status().is_success(), "{}", revoke.status());
    let (_out, err) = rerun().await;
    assert!(err.contains("SilentRefresh"), "{err}");
    assert!(!err.contains(&root));
}

#[test]
fn sso_demo_without_an_issuer_names_the_flag_before_any_work() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony_sso(data.path())
        .args(["--sso-demo", "--openbao-url", "http://127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--sso-url"), "{}", stderr(&output));
    assert!(stderr(&output).contains(vars::HARMONY_SSO_URL));
}

#[tokio::test]
async fn demo_without_credentials_says_where_they_come_from() {
    let data = tempfile::tempdir().expect("tempdir");
    // The local cluster, not deployed here: it cannot be reached, and that is said first.
    let output = harmony_sso(data.path())
        .arg("--demo")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("cannot reach OpenBao"), "{err}");
    assert!(err.contains("cargo run -p example-harmony-sso"), "{err}");
    assert!(!err.contains("no credentials"), "{err}");
    // An existing server that does not answer: the same, naming it.
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", "http://127.0.0.1:1"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("cannot reach OpenBao at http://127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("no credentials"), "{err}");
    // A server that answers: bootstrapping it would have saved a login.
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("no credentials"), "{err}");
    assert!(err.contains(vars::OPENBAO_TOKEN), "{err}");
    assert!(
        err.contains(&format!(
            "--openbao-url {}",
            bao.url().trim_end_matches('/')
        )),
        "{err}"
    );
}

/// A proxy set in the environment (helm needs it for chart repositories) must not swallow the
/// calls to an OpenBao on loopback (a port-forward, a local server): they never go through it.
#[tokio::test]
async fn a_proxy_in_the_environment_does_not_carry_loopback_calls() {
    let bao = OpenbaoServer::dev().await.expect("dev OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    // Nothing listens here: a request sent to this "proxy" fails.
    let dead_proxy = format!(
        "http://127.0.0.1:{}",
        harmony_testkit::free_port().expect("port")
    );
    let output = harmony_sso(data.path())
        .args(["--demo", "--openbao-url", bao.url()])
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("dev token"))
        .env("HTTP_PROXY", &dead_proxy)
        .env("http_proxy", &dead_proxy)
        .env("HTTPS_PROXY", &dead_proxy)
        .env("ALL_PROXY", &dead_proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", stderr(&output));
}
