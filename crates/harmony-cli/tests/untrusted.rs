//! What a teammate can store — a value, a field name, a schema — is untrusted input: it must
//! never run code on another teammate's machine, change how a program starts, or exhaust memory
//! or time. Every test here writes the hostile input with the root token of a real OpenBao
//! (testkit dev server), as anyone with write access could, and runs `harmony` as the victim.
//! And the other way round: a secret being stored never travels on a command line
//! (`config set KEY field=-`, or the prompt of a bare `field`).

mod harness;

use std::collections::BTreeMap;
use std::path::Path;

use harmony_env::vars;
use harmony_testkit::OpenbaoServer;
use harness::{harmony, stderr, stdout};
use reqwest::Method;
use serde_json::{Value, json};

fn cmd(data: &Path, bao: &OpenbaoServer) -> assert_cmd::Command {
    let mut c = harmony(data);
    c.env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"));
    c
}

/// Store `doc` at `secret/harmony/<key>` (no schema: untyped, so nothing is masked).
async fn store(bao: &OpenbaoServer, key: &str, doc: Value) {
    bao.root_call(
        Method::POST,
        &format!("secret/data/harmony/{key}"),
        Some(json!({ "data": doc })),
    )
    .await
    .expect("store the document");
}

/// Source `file` in `shell` the way people load a dotenv file (`set -a; . FILE`) and return
/// the variables it set, byte for byte (read back with `env -0`).
fn source_in(shell: &str, file: &Path, canary_dir: &Path) -> BTreeMap<String, String> {
    let out = std::process::Command::new(shell)
        .arg("-c")
        .arg(r#"set -a; . "$1"; env -0"#)
        .arg(shell)
        .arg(file)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(canary_dir)
        .output()
        .expect("run the shell");
    assert!(
        out.status.success(),
        "{shell} could not source the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8 environment")
        .split('\0')
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Values that run `touch CANARY` (or expand something) if a shell ever evaluates them as
/// code rather than data.
fn hostile_values(c: &str) -> BTreeMap<&'static str, String> {
    [
        ("backtick", format!("hi `touch {c}`")),
        ("subst", format!("$(touch {c})")),
        ("brace", "${HOME}x${x:-y}".to_owned()),
        ("squote", format!("it's'; touch {c}; echo '")),
        ("dquote", format!("say \"hi\" \"; touch {c}; \"")),
        ("backslash", r"a\b\\n\".to_owned()),
        ("newline", format!("line1\nline2\ntouch {c}\n")),
        ("bang", "hi!! !$ !-1".to_owned()),
        ("dollar", "$".to_owned()),
        ("empty", String::new()),
    ]
    .into_iter()
    .collect()
}

/// Finding 1 of issue 20: `export --format dotenv` (and `config get --format dotenv`) output,
/// sourced by bash and by dash (`/bin/sh` here), gives exactly the stored bytes and runs
/// nothing, whatever the value holds.
#[tokio::test]
async fn dotenv_output_sourced_by_a_shell_runs_nothing_and_keeps_every_byte() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    let canary_dir = tempfile::tempdir().expect("tempdir");
    let canary = canary_dir.path().join("PWNED");
    let c = canary.display().to_string();
    let values = hostile_values(&c);
    store(&bao, "evil", json!(values)).await;

    let outputs = [
        ("export", vec!["export", "-c", "evil", "--format", "dotenv"]),
        (
            "config get",
            vec!["config", "get", "evil", "--format", "dotenv", "--reveal"],
        ),
    ];
    for (what, args) in outputs {
        let out = cmd(data.path(), &bao).args(&args).output().expect("run");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let file = data.path().join("out.env");
        std::fs::write(&file, &out.stdout).expect("write the dotenv file");
        for shell in ["bash", "sh"] {
            let env = source_in(shell, &file, canary_dir.path());
            assert!(
                !canary.exists(),
                "sourcing the {what} output in {shell} ran the payload:\n{}",
                stdout(&out)
            );
            for (field, stored) in &values {
                let name = format!("HARMONY_EVIL_{}", field.to_ascii_uppercase());
                assert_eq!(
                    env.get(&name),
                    Some(stored),
                    "{what} sourced in {shell}: {name}\n{}",
                    stdout(&out)
                );
            }
        }
    }
}

/// Issue 25: `export --format direnv` is what a direnv `.envrc` evals. The `.envrc` line itself
/// (`eval "$(harmony export -c KEY --format direnv)"`), run by bash against a config of hostile
/// values, exports exactly the stored bytes and runs nothing.
#[tokio::test]
async fn direnv_output_evaluated_by_bash_exports_every_byte_and_runs_nothing() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    let canary_dir = tempfile::tempdir().expect("tempdir");
    let canary = canary_dir.path().join("PWNED");
    let values = hostile_values(&canary.display().to_string());
    store(&bao, "evil", json!(values)).await;

    let envrc = r#"eval "$("$HARMONY" export -c evil --format direnv)"; env -0"#;
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(envrc)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HARMONY", assert_cmd::cargo::cargo_bin("harmony"))
        .env(vars::HARMONY_DATA_DIR, data.path())
        .env(vars::HARMONY_SSO_OPEN_BROWSER, "0")
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .current_dir(canary_dir.path())
        .output()
        .expect("run bash");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !canary.exists(),
        "evaluating the direnv output ran the payload"
    );
    let env: BTreeMap<String, String> = String::from_utf8(out.stdout)
        .expect("UTF-8 environment")
        .split('\0')
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (field, stored) in &values {
        let name = format!("HARMONY_EVIL_{}", field.to_ascii_uppercase());
        assert_eq!(
            env.get(&name),
            Some(stored),
            "{name} (exported, exact bytes)"
        );
    }

    let lines = cmd(data.path(), &bao)
        .args(["export", "-c", "evil", "--format", "direnv"])
        .output()
        .expect("export");
    assert!(lines.status.success(), "{}", stderr(&lines));
    assert!(
        stdout(&lines)
            .lines()
            .any(|l| l == "export HARMONY_EVIL_DOLLAR='$'"),
        "{}",
        stdout(&lines)
    );
}

/// A value with a NUL byte cannot be a shell word or an environment variable: dotenv output and
/// `harmony run` refuse it naming the field (never showing the value); JSON still carries it.
#[tokio::test]
async fn a_nul_in_a_value_is_refused_naming_the_field() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    store(
        &bao,
        "nul",
        json!({"ok": "fine", "token": "secret-part\u{0}hidden-part"}),
    )
    .await;
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "nul", "--format", "dotenv"])
        .output()
        .expect("export");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("nul.token") && text.contains("NUL"), "{text}");
    assert!(
        !text.contains("secret-part") && !text.contains("hidden-part"),
        "{text}"
    );
    assert!(
        stdout(&out).is_empty(),
        "nothing half written: {}",
        stdout(&out)
    );

    let out = cmd(data.path(), &bao)
        .args(["config", "get", "nul", "--format", "dotenv", "--reveal"])
        .output()
        .expect("get");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nul.token"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "nul", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(text.contains("nul.token") && text.contains("NUL"), "{text}");
    assert!(!text.contains("could not start"), "{text}");
    assert!(!text.contains("secret-part"), "{text}");

    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "nul", "--format", "json"])
        .output()
        .expect("export json");
    assert!(out.status.success(), "{}", stderr(&out));
    let back: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(back["HARMONY_NUL_TOKEN"], "secret-part\u{0}hidden-part");
}

/// Issue 20 finding 3 as a user meets it: the 236-byte self-referencing schema stored at
/// `secret/harmony/_schema/app` (before: `config get app` ran past 60 s and 5.8 GB). Online and
/// `--offline` (from the copy that online read kept) both refuse it at once, naming the key.
#[tokio::test]
async fn a_self_referencing_stored_schema_is_a_clear_error_online_and_offline() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    store(&bao, "app", json!({"a": "x"})).await;
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "App",
        "$ref": "#/$defs/n",
        "$defs": {"n": {"type": "object", "properties": {
            "a": {"$ref": "#/$defs/n"},
            "b": {"$ref": "#/$defs/n"},
            "c": {"$ref": "#/$defs/n"}
        }}}
    });
    store(&bao, "_schema/app", schema).await;
    for offline in [false, true] {
        let mut c = cmd(data.path(), &bao);
        c.args(["config", "get", "app"]);
        if offline {
            c.arg("--offline");
        }
        let out = c.output().expect("get");
        assert_eq!(
            out.status.code(),
            Some(1),
            "offline={offline}: {}",
            stderr(&out)
        );
        let text = stderr(&out);
        assert!(
            text.contains("the schema stored for app cannot be used")
                && text.contains("refers to itself"),
            "offline={offline}: {text}"
        );
        assert!(stdout(&out).is_empty());
    }
}

/// Issue 20 finding 2: a field name becomes a variable name only when it is a plain name that
/// changes nothing about how the program starts (or `--allow-name` names it), and never one of
/// harmony's own.
#[tokio::test]
async fn field_names_that_would_change_how_programs_start_are_refused() {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    let canary_dir = tempfile::tempdir().expect("tempdir");
    let canary = canary_dir.path().join("PWNED");
    let payload = canary_dir.path().join("payload.sh");
    std::fs::write(&payload, format!("touch {}\n", canary.display())).expect("payload");
    store(
        &bao,
        "startup",
        json!({"bash_env": payload.display().to_string(), "port": "80"}),
    )
    .await;
    for verb in ["run", "export"] {
        let mut c = cmd(data.path(), &bao);
        c.args([verb, "-c", "startup", "--plain"]);
        if verb == "run" {
            c.args(["--", "bash", "-c", "true"]);
        }
        let out = c.output().expect("harmony");
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(
            text.contains("startup.bash_env") && text.contains("--allow-name BASH_ENV"),
            "{verb}: {text}"
        );
        assert!(stdout(&out).is_empty(), "{verb}: {}", stdout(&out));
        assert!(!canary.exists(), "{verb}: bash ran BASH_ENV");
    }
    // Named on the command line, it goes through (and bash does what BASH_ENV says).
    let out = cmd(data.path(), &bao)
        .args([
            "run",
            "-c",
            "startup",
            "--plain",
            "--allow-name",
            "BASH_ENV",
        ])
        .args(["--", "bash", "-c", "echo $PORT"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "80");
    assert!(canary.exists(), "the allowed BASH_ENV was passed on");
    // With a prefix the name is harmless.
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "startup", "--plain", "--prefix", "APP_"])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("APP_BASH_ENV='"), "{}", stdout(&out));

    // Names that are no plain variable name, in both commands.
    for (i, field) in ["a\nb", "a;touch x", "a=b", "a${b}", "a$(b)"]
        .iter()
        .enumerate()
    {
        let key = format!("odd{i}");
        store(&bao, &key, json!({ *field: "v" })).await;
        for verb in ["run", "export"] {
            let mut c = cmd(data.path(), &bao);
            c.args([verb, "-c", key.as_str(), "--plain"]);
            if verb == "run" {
                c.args(["--", "true"]);
            }
            let out = c.output().expect("harmony");
            assert_eq!(
                out.status.code(),
                Some(2),
                "{field:?} {verb}: {}",
                stderr(&out)
            );
            let text = stderr(&out);
            assert!(
                text.contains(&format!("{key}.{}", field.escape_debug()))
                    && text.contains("not a plain variable name"),
                "{field:?} {verb}: {text}"
            );
        }
    }

    // harmony's own variables, even with the default names and --allow-name.
    store(&bao, "sso", json!({"cacert": "/tmp/attacker-ca.pem"})).await;
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "sso", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sso.cacert would set HARMONY_SSO_CACERT"),
        "{}",
        stderr(&out)
    );
    for field in [None, Some("cacert")] {
        let mut c = cmd(data.path(), &bao);
        c.args(["config", "get", "sso", "--format", "dotenv"]);
        if let Some(field) = field {
            c.args(["--field", field]);
        }
        let out = c.output().expect("get");
        assert_eq!(out.status.code(), Some(2), "{field:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{field:?}: {}", stdout(&out));
    }
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "sso", "--allow-name", "HARMONY_SSO_CACERT"])
        .output()
        .expect("export");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("outside harmony"), "{}", stderr(&out));
}

/// A typed config with a secret field, for `config set`.
async fn store_secret_config(bao: &OpenbaoServer) {
    store(
        bao,
        "_schema/app",
        json!({"type": "object", "properties": {
            "token": {"type": "string", "x-secret": true},
            "port": {"type": "integer"}
        }}),
    )
    .await;
    store(bao, "app", json!({"port": 1})).await;
}

async fn stored_field(bao: &OpenbaoServer, field: &str) -> Value {
    bao.root_call(Method::GET, "secret/data/harmony/app", None)
        .await
        .expect("read back")["data"]["data"][field]
        .clone()
}

/// Issue 20 finding 15: `config set KEY field=-` takes that value from stdin, so it never is in
/// `/proc/PID/cmdline`; a bare `field` off a terminal is a usage error pointing at `field=-`.
#[tokio::test]
async fn config_set_reads_a_value_from_stdin_never_from_the_command_line() {
    use std::io::Write as _;

    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    store_secret_config(&bao).await;
    const SECRET: &str = "s3cret-from-stdin-not-real";
    let mut child = harness::harmony_std(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .args(["config", "set", "app", "token=-", "port=2"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Right after exec the kernel may not show the arguments yet: read until it does (bounded).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let cmdline = loop {
        let text = std::fs::read(format!("/proc/{}/cmdline", child.id())).expect("cmdline");
        if !text.is_empty() || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{SECRET}\n").as_bytes())
        .expect("write stdin");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&cmdline).contains("token=-"),
        "{cmdline:?}"
    );
    assert!(!String::from_utf8_lossy(&cmdline).contains(SECRET));
    assert!(!stderr(&out).contains(SECRET) && !stdout(&out).contains(SECRET));
    assert_eq!(
        stored_field(&bao, "token").await,
        SECRET,
        "one newline dropped"
    );
    assert_eq!(stored_field(&bao, "port").await, 2);

    // A bare field off a terminal, two values from one stdin: usage errors, nothing written.
    for args in [vec!["token"], vec!["token=-", "port=-"]] {
        let out = cmd(data.path(), &bao)
            .args(["config", "set", "app"])
            .args(&args)
            .write_stdin("x\n")
            .output()
            .expect("set");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("=-"), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(stored_field(&bao, "token").await, SECRET);
}

/// On a terminal (a pty from `script`), a bare secret `field` is asked for, echoed as stars
/// only, and stored.
#[tokio::test]
async fn config_set_asks_for_a_bare_field_on_a_terminal() {
    use std::io::{Read as _, Write as _};

    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    store_secret_config(&bao).await;
    const TYPED: &str = "typed-secret-not-real";
    let inner = format!(
        "{} config set app token",
        assert_cmd::cargo::cargo_bin("harmony").display()
    );
    let mut cmd = harness::harmony_std(data.path());
    let env: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    cmd = std::process::Command::new("script");
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .args(["-qefc", &inner, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script");
    let mut screen_out = child.stdout.take().expect("stdout");
    let mut keyboard = child.stdin.take().expect("stdin");
    let screen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut typed = false;
        loop {
            let n = screen_out.read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if !typed && String::from_utf8_lossy(&seen).contains("app.token:") {
                keyboard
                    .write_all(format!("{TYPED}\r").as_bytes())
                    .expect("type");
                keyboard.flush().expect("flush");
                typed = true;
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let screen = tokio::time::timeout(std::time::Duration::from_secs(60), screen)
        .await
        .expect("set finished")
        .expect("join");
    let status = child.wait().expect("wait");
    assert!(status.success(), "{screen}");
    assert!(!screen.contains(TYPED), "the secret was echoed: {screen}");
    assert!(screen.contains("saved version 2"), "{screen}");
    assert_eq!(stored_field(&bao, "token").await, TYPED);
}
