//! `harmony backup save|verify|restore` against a REAL sealed raft OpenBao (harmony-testkit):
//! a snapshot saved, verified offline, restored (`--yes`, refused off a terminal without it), a
//! tampered copy refused by `verify`, and another cluster's snapshot refused without `--force`.

mod harness;

use std::os::unix::fs::PermissionsExt as _;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{harmony, stderr, stdout};

async fn unsealed_with_kv() -> (OpenbaoServer, String) {
    let mut bao = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let keys = bao.init().await.expect("init");
    bao.unseal(&keys).await.expect("unseal");
    bao.enable_kv_v2("secret").await.expect("kv");
    (bao, keys.root_token)
}

#[tokio::test]
async fn save_verify_restore_and_a_tampered_archive_is_refused() {
    let (bao, root) = unsealed_with_kv().await;
    let data = tempfile::tempdir().expect("tempdir");
    let url = bao.url().to_owned();
    let run = |args: &[&str]| {
        harmony(data.path())
            .env(vars::OPENBAO_TOKEN, &root)
            .args(args)
            .args(["--openbao-url", &url])
            .output()
            .expect("run")
    };
    let set = run(&["config", "set", "team", "x=1"]);
    assert!(set.status.success(), "{}", stderr(&set));

    let file = data.path().join("team.snap");
    let file_arg = file.to_str().expect("utf-8 path");
    let save = run(&["backup", "save", file_arg]);
    assert!(save.status.success(), "{}", stderr(&save));
    assert!(stdout(&save).contains("saved"), "{}", stdout(&save));
    assert!(
        stdout(&save).contains("1 of the 1 unseal key shares"),
        "{}",
        stdout(&save)
    );
    assert!(
        stderr(&save).contains("taking a raft snapshot"),
        "{}",
        stderr(&save)
    );
    assert!(!stdout(&save).contains(&root) && !stderr(&save).contains(&root));
    for f in [file.clone(), data.path().join("team.snap.json")] {
        let mode = std::fs::metadata(&f).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }

    // verify needs no server.
    let verify = harmony(data.path())
        .args(["backup", "verify", file_arg])
        .output()
        .expect("run");
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(stdout(&verify).contains(": OK"), "{}", stdout(&verify));
    assert!(stdout(&verify).contains("matches"), "{}", stdout(&verify));

    let set = run(&["config", "set", "team", "x=2"]);
    assert!(set.status.success(), "{}", stderr(&set));

    let unconfirmed = run(&["backup", "restore", file_arg]);
    assert_eq!(
        unconfirmed.status.code(),
        Some(2),
        "{}",
        stderr(&unconfirmed)
    );
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );

    let restore = run(&["backup", "restore", file_arg, "--yes"]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert!(
        stdout(&restore).contains("restored"),
        "{}",
        stdout(&restore)
    );
    assert!(stdout(&restore).contains("unseal"), "{}", stdout(&restore));
    let get = run(&["config", "get", "team", "--field", "x", "--no-cache"]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert_eq!(stdout(&get).trim(), "1", "the snapshot's version is back");

    // One bit flipped in the middle of a copy.
    let tampered = data.path().join("tampered.snap");
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&tampered, &bytes).expect("write");
    let bad = harmony(data.path())
        .args(["backup", "verify", tampered.to_str().expect("utf-8")])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    let err = stderr(&bad);
    assert!(
        err.contains("damaged") || err.contains("is not an OpenBao raft snapshot"),
        "{err}"
    );

    // Another cluster refuses it without --force, and says so.
    let (other, other_root) = unsealed_with_kv().await;
    let other_url = other.url().to_owned();
    let refused = harmony(data.path())
        .env(vars::OPENBAO_TOKEN, &other_root)
        .args([
            "backup",
            "restore",
            file_arg,
            "--yes",
            "--openbao-url",
            &other_url,
        ])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let forced = harmony(data.path())
        .env(vars::OPENBAO_TOKEN, &other_root)
        .args([
            "backup",
            "restore",
            file_arg,
            "--yes",
            "--force",
            "--openbao-url",
            &other_url,
        ])
        .output()
        .expect("run");
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        stdout(&forced).contains("sealed now: unseal it with 1 of the 1 unseal key shares"),
        "{}",
        stdout(&forced)
    );
}

/// `harmony backup list --kube-context` reaches the cluster of that context (a stand-in API
/// server on loopback answering as the Kubernetes API does for a missing object) and, with no
/// backup CronJob there, says how to enable scheduled backups; no pod is created.
#[cfg(feature = "deploy")]
#[test]
fn backup_list_on_a_cluster_without_scheduled_backups_names_the_flag() {
    use std::io::{BufRead as _, BufReader, Write as _};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
            let request_line = head.first().cloned().unwrap_or_default();
            let authorized = head
                .iter()
                .any(|h| h.eq_ignore_ascii_case("authorization: Bearer not-a-real-token"));
            record
                .lock()
                .expect("lock")
                .push(format!("{request_line} authorized={authorized}"));
            let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "reason": "NotFound", "code": 404,
                "message": "cronjobs.batch \"openbao-backup\" not found"})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let data = tempfile::tempdir().expect("tempdir");
    let kubeconfig = data.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: other\nclusters:\n- name: c\n  \
             cluster: {{server: \"http://127.0.0.1:{port}\"}}\nusers:\n- name: me\n  user: \
             {{token: not-a-real-token}}\ncontexts:\n- name: staging\n  context: {{cluster: c, \
             user: me}}\n- name: other\n  context: {{cluster: c, user: me}}\n"
        ),
    )
    .expect("kubeconfig");
    let mut cmd = harmony(data.path());
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(name);
    }
    let out = cmd
        .env(vars::KUBECONFIG, &kubeconfig)
        .args(["backup", "list", "--kube-context", "staging"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--backup-schedule"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("not-a-real-token"),
        "{}",
        stderr(&out)
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        ["GET /apis/batch/v1/namespaces/openbao/cronjobs/openbao-backup HTTP/1.1 authorized=true"],
        "one read of the CronJob, nothing created"
    );
}
