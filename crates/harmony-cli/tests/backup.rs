//! `harmony backup save|verify|restore` against a REAL sealed raft OpenBao (harmony-testkit):
//! a snapshot saved, verified offline, restored (`--yes`, refused off a terminal without it), a
//! tampered copy refused by `verify`, and another cluster's snapshot refused without `--force`.

mod harness;

use std::os::unix::fs::PermissionsExt as _;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{harmony, stderr, stdout};
use serde_json::json;

async fn unsealed_with_kv() -> (OpenbaoServer, String) {
    let mut bao = OpenbaoServer::sealed().await.expect("sealed OpenBao");
    let keys = bao.init().await.expect("init");
    bao.unseal(&keys).await.expect("unseal");
    bao.root_call(
        reqwest::Method::POST,
        "sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    )
    .await
    .expect("kv");
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
