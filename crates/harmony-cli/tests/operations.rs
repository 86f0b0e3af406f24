//! `harmony bootstrap` and `harmony cleanup`: the same library operations as the seed's
//! `harmony-sso --openbao-url` and `--cleanup`, here through the `harmony` parser. Bootstrap runs
//! against a real sealed OpenBao (testkit); cleanup against a fake `k3d` on PATH.

mod harness;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{files_under, harmony, stderr, stdout};

#[tokio::test]
async fn bootstrap_inits_unseals_configures_then_changes_nothing_and_login_works() {
    let bao = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let data = tempfile::tempdir().expect("tempdir");
    let url = bao.url().to_owned();
    let first = harmony(data.path())
        .args(["bootstrap", "--openbao-url", &url])
        .output()
        .expect("run");
    assert!(first.status.success(), "{}", stderr(&first));
    let out = stdout(&first);
    assert!(out.contains("initialised"), "{out}");
    assert!(out.contains("unsealed"), "{out}");
    assert!(out.contains("created policy harmony-dev"), "{out}");
    assert!(out.contains("harmony login"), "{out}");
    for file in files_under(data.path()) {
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }

    let second = harmony(data.path())
        .args(["bootstrap", "--openbao-url", &url])
        .output()
        .expect("run");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );

    // The bootstrap's saved userpass login is what `harmony login --userpass` uses.
    let login = harmony(data.path())
        .args(["login", "--userpass", "--openbao-url", &url])
        .output()
        .expect("run");
    assert!(login.status.success(), "{}", stderr(&login));
    let set = harmony(data.path())
        .args(["config", "set", "team", "x=1", "--openbao-url", &url])
        .output()
        .expect("run");
    assert!(set.status.success(), "{}", stderr(&set));
}

#[test]
fn bootstrap_without_a_url_or_with_half_the_sso_settings_is_usage() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path()).arg("bootstrap").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--openbao-url"), "{}", stderr(&out));
    let out = harmony(data.path())
        .args([
            "bootstrap",
            "--openbao-url",
            "http://127.0.0.1:1",
            "--sso-url",
            "http://127.0.0.1:2",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--client-id"), "{}", stderr(&out));
    assert!(files_under(data.path()).is_empty());
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
fn cleanup_needs_yes_off_a_terminal_then_deletes_the_cluster_and_its_state() {
    let data = tempfile::tempdir().expect("tempdir");
    let out = harmony(data.path()).arg("cleanup").output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));

    let bin = tempfile::tempdir().expect("tempdir");
    let log = bin.path().join("calls.log");
    fake_k3d(bin.path(), &log);
    let openbao_state = data.path().join("openbao/cluster-harmony");
    std::fs::create_dir_all(&openbao_state).expect("mkdir");
    std::fs::write(openbao_state.join("init-keys.json"), "{}").expect("write");
    let sessions = data.path().join("sessions");
    std::fs::create_dir_all(&sessions).expect("mkdir");
    let ours = sessions.join("a.json");
    let theirs = sessions.join("b.json");
    std::fs::write(
        &ours,
        r#"{"url":"http://bao.harmony.local:8080","identity":"x"}"#,
    )
    .expect("write");
    std::fs::write(
        &theirs,
        r#"{"url":"https://bao.example.com","identity":"x"}"#,
    )
    .expect("write");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var(vars::PATH).unwrap_or_default()
    );
    let out = harmony(data.path())
        .args(["cleanup", "--yes"])
        .env(vars::PATH, path)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = std::fs::read_to_string(&log).expect("k3d was called");
    assert!(
        calls.lines().any(|l| l == "cluster delete harmony"),
        "{calls}"
    );
    assert!(!openbao_state.exists(), "local state removed");
    assert!(!ours.exists(), "the cluster's cached session removed");
    assert!(theirs.exists(), "another server's session kept");
    assert!(
        stdout(&out).contains("deleted k3d cluster \"harmony\""),
        "{}",
        stdout(&out)
    );
}
