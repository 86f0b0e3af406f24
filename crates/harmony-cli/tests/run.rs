//! `harmony run` and `harmony export` against a real OpenBao (testkit dev server). The document
//! and its schema are written by `ConfigManager` itself, as an application would.

mod harness;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::time::Duration;

use harmony_config::{Config, ConfigManager, Snapshot, StoreSource};
use harmony_env::vars;
use harmony_secret::{OpenbaoSecretStore, OpenbaoSettings};
use harmony_testkit::OpenbaoServer;
use harness::{harmony, harmony_std, stderr, stdout};
use secrecy::SecretString;

const PASSWORD: &str = "pw-run-not-a-real-secret";

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Database {
    /// Host of the database.
    host: String,
    /// Its port.
    port: u16,
    /// The application's password.
    #[schemars(extend("x-secret" = true))]
    password: String,
}

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Shop {
    /// Worker threads.
    workers: u32,
    database: Database,
}

impl Config for Shop {
    const KEY: &'static str = "shop";
}

async fn setup() -> (OpenbaoServer, tempfile::TempDir) {
    let bao = OpenbaoServer::dev().await.expect("OpenBao dev server");
    let data = tempfile::tempdir().expect("tempdir");
    let store = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(bao.url())
            .with_token(SecretString::from(
                bao.root_token().expect("root").to_owned(),
            ))
            .with_session_dir(data.path().join("app-sessions")),
    )
    .await
    .expect("connect");
    ConfigManager::builder()
        .source(StoreSource::new(store))
        .interactive(false)
        .build()
        .set(&Snapshot::new(Shop {
            workers: 4,
            database: Database {
                host: "db.internal".into(),
                port: 5432,
                password: PASSWORD.into(),
            },
        }))
        .await
        .expect("the application saves its config (and schema)");
    (bao, data)
}

fn cmd(data: &std::path::Path, bao: &OpenbaoServer) -> assert_cmd::Command {
    let mut c = harmony(data);
    c.env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"));
    c
}

#[tokio::test]
async fn run_passes_values_names_and_the_exit_code() {
    let (bao, data) = setup().await;
    let script = r#"echo "w=$HARMONY_SHOP_WORKERS h=$HARMONY_SHOP_DATABASE_HOST p=$HARMONY_SHOP_DATABASE_PASSWORD"; tr '\0' ' ' < /proc/$$/cmdline; echo; exit 7"#;
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--", "sh", "-c", script])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("w=4 h=db.internal p={PASSWORD}").as_str())
    );
    // The values are in the environment, never on a command line.
    assert!(
        !lines.next().unwrap_or_default().contains(PASSWORD),
        "{text}"
    );
    assert!(!stderr(&out).contains(PASSWORD));

    // --plain names; an existing variable wins unless --override.
    let out = cmd(data.path(), &bao)
        .env("WORKERS", "99")
        .args(["run", "-c", "shop", "--plain", "--", "sh", "-c"])
        .arg(r#"echo "$WORKERS $DATABASE_HOST $DATABASE_PORT""#)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "99 db.internal 5432");
    assert!(stderr(&out).contains("kept WORKERS"), "{}", stderr(&out));
    let out = cmd(data.path(), &bao)
        .env("WORKERS", "99")
        .args([
            "run",
            "-c",
            "shop",
            "--plain",
            "--override",
            "--prefix",
            "APP_",
        ])
        .args(["--", "sh", "-c", r#"echo "$APP_WORKERS""#])
        .output()
        .expect("run");
    assert_eq!(stdout(&out).trim(), "4", "{}", stderr(&out));

    // Bad input: an unknown document, a missing program.
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "nope", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("harmony config list"),
        "{}",
        stderr(&out)
    );
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--", "no-such-program-xyz"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no-such-program-xyz"),
        "{}",
        stderr(&out)
    );
}

/// The process is replaced: a SIGTERM sent to `harmony run`'s pid reaches the program.
#[tokio::test]
async fn run_hands_signals_to_the_program() {
    let (bao, data) = setup().await;
    let mut child = harmony_std(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
        .args(["run", "-c", "shop", "--", "sh", "-c"])
        .arg(r#"trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.1; done"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("ready"));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the program did not end"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        lines.next().and_then(Result::ok).as_deref(),
        Some("got-term")
    );
}

#[tokio::test]
async fn export_prints_the_same_values_masked_on_request() {
    let (bao, data) = setup().await;
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "shop"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("HARMONY_SHOP_WORKERS='4'"), "{text}");
    assert!(
        text.contains(&format!("HARMONY_SHOP_DATABASE_PASSWORD='{PASSWORD}'")),
        "{text}"
    );
    let out = cmd(data.path(), &bao)
        .args([
            "export", "-c", "shop", "--format", "json", "--mask", "--plain",
        ])
        .output()
        .expect("run");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["DATABASE_PASSWORD"], "********");
    assert_eq!(json["DATABASE_HOST"], "db.internal");
    assert!(!stdout(&out).contains(PASSWORD));
}

/// In CI, `harmony run` signs in with the job's own OIDC identity (GitHub-style id_token request,
/// the project's test provider acting as the CI issuer) — no OpenBao token in the job.
#[tokio::test]
async fn run_in_ci_signs_in_with_the_jobs_own_identity() {
    use harmony_openbao::{BootstrapOptions, CiOptions, OpenbaoBootstrap, StateDir};
    use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};

    let (bao, data) = setup().await;
    let provider = OidcProvider::start(OidcProviderOptions::default())
        .await
        .expect("test provider");
    let mut options = BootstrapOptions::local(StateDir::new(data.path().join("state")));
    options.admin_token = Some(SecretString::from(
        bao.root_token().expect("root").to_owned(),
    ));
    options.ci = Some(
        CiOptions::new(
            vec![
                format!("github={}:acme/shop#101/202@main", provider.issuer())
                    .parse()
                    .expect("spec"),
            ],
            bao.url(),
        )
        .expect("one issuer"),
    );
    OpenbaoBootstrap::new(&url::Url::parse(bao.url()).expect("url"), options)
        .expect("bootstrap")
        .run()
        .await
        .expect("CI trust");
    let request_token = provider
        .ci_job(&serde_json::json!({
            "repository": "acme/shop",
            "repository_id": "101",
            "repository_owner_id": "202",
            "ref": "refs/heads/main",
            "ref_type": "branch",
            "job_workflow_ref": "acme/shop/.github/workflows/ci.yml@refs/heads/main",
        }))
        .await
        .expect("CI job");
    let out = harmony(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(
            vars::ACTIONS_ID_TOKEN_REQUEST_URL,
            provider.github_token_url(),
        )
        .env(vars::ACTIONS_ID_TOKEN_REQUEST_TOKEN, &request_token)
        .env(vars::GITHUB_REPOSITORY, "acme/shop")
        .args([
            "run",
            "-c",
            "shop",
            "--",
            "sh",
            "-c",
            "echo $HARMONY_SHOP_WORKERS",
        ])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "4");
    assert!(!stderr(&out).contains(&request_token));
}

/// The `*.json` copies in the offline cache of `data`.
fn cached_files(data: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data.join("cache"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

/// A read keeps an encrypted copy (the keychain is real Linux keyutils here); with the server
/// gone, `run`, `export` and `config get` serve it with one warning naming its age and version;
/// `--max-age` bounds that; `--no-cache` refuses it; logout deletes it.
#[tokio::test]
async fn reads_keep_working_from_the_offline_copy_while_openbao_is_gone() {
    let (mut bao, data) = setup().await;
    let echo = ["--", "sh", "-c", "echo $HARMONY_SHOP_DATABASE_PASSWORD"];
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop"])
        .args(echo)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    // The document and its schema, encrypted, 0600.
    let files = cached_files(data.path());
    assert_eq!(files.len(), 2, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        assert!(!text.contains(PASSWORD), "not encrypted: {text}");
        assert!(text.contains("\"sealed\""), "{text}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }

    let out = cmd(data.path(), &bao)
        .arg("status")
        .output()
        .expect("status");
    assert!(
        stdout(&out).contains("offline:       2 copies kept, encrypted"),
        "{}",
        stdout(&out)
    );

    bao.stop();
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop"])
        .args(echo)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), PASSWORD);
    let warning = stderr(&out);
    assert_eq!(warning.matches("warning:").count(), 1, "{warning}");
    assert!(warning.contains("unreachable"), "{warning}");
    assert!(warning.contains("shop (version 1, read "), "{warning}");
    assert!(!warning.contains(PASSWORD));

    let out = cmd(data.path(), &bao)
        .args(["config", "get", "shop", "--format", "json"])
        .output()
        .expect("get");
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        doc["database"]["password"], "********",
        "typed from the cached schema"
    );
    assert_eq!(doc["workers"], 4);
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "shop", "--plain"])
        .output()
        .expect("export");
    assert!(
        stdout(&out).contains("DATABASE_HOST='db.internal'"),
        "{}",
        stderr(&out)
    );

    // Older than --max-age: the original error, and why the copy was not used.
    std::thread::sleep(Duration::from_millis(1100));
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--max-age", "1s"])
        .args(echo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("unreachable") && text.contains("--max-age 1 s"),
        "{text}"
    );
    assert!(stdout(&out).is_empty());

    // --no-cache: the error as it is.
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--no-cache"])
        .args(echo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr(&out).contains("offline"), "{}", stderr(&out));

    // logout deletes the copies (even with no login record).
    let out = cmd(data.path(), &bao)
        .arg("logout")
        .output()
        .expect("logout");
    assert!(
        stderr(&out).contains("deleted 2 offline copies"),
        "{}",
        stderr(&out)
    );
    assert!(cached_files(data.path()).is_empty());
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop"])
        .args(echo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did not answer and there is no offline copy of shop"),
        "{}",
        stderr(&out)
    );
}

/// `--offline` never signs in or asks the server: with a token OpenBao would refuse it still
/// reads the copy; with nothing cached it says what to do.
#[tokio::test]
async fn offline_reads_only_the_cache() {
    let (bao, data) = setup().await;
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--offline", "--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("no offline copy of shop"), "{text}");
    assert!(text.contains("harmony config get shop"), "{text}");

    let out = cmd(data.path(), &bao)
        .args(["config", "get", "shop"])
        .output()
        .expect("get");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = harmony(data.path())
        .env(vars::OPENBAO_URL, bao.url())
        .env(vars::OPENBAO_TOKEN, "not-a-token-openbao-knows")
        .args(["run", "-c", "shop", "--offline", "--"])
        .args(["sh", "-c", "echo $HARMONY_SHOP_WORKERS"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "4");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // --no-cache writes nothing.
    let fresh = tempfile::tempdir().expect("tempdir");
    let out = cmd(fresh.path(), &bao)
        .args(["config", "get", "shop", "--no-cache"])
        .output()
        .expect("get");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(cached_files(fresh.path()).is_empty());
}

/// A sealed OpenBao is served from the copy too, and the warning says sealed.
#[tokio::test]
async fn a_sealed_server_is_served_from_the_copy() {
    let (bao, data) = setup().await;
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "shop"])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    bao.root_call(reqwest::Method::PUT, "sys/seal", None)
        .await
        .expect("seal");
    let out = cmd(data.path(), &bao)
        .args(["export", "-c", "shop"])
        .output()
        .expect("export");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("HARMONY_SHOP_WORKERS='4'"));
    assert!(stderr(&out).contains("is sealed"), "{}", stderr(&out));
}

/// `harmony run --watch` with its stdout read line by line, and a way to signal it.
struct Watched {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Watched {
    fn start(data: &std::path::Path, bao: &OpenbaoServer, script: &str) -> Self {
        Self::start_at(data, bao.url(), bao, script)
    }

    /// As [`Watched::start`], asking OpenBao at `url` (a proxy in front of `bao`).
    fn start_at(data: &std::path::Path, url: &str, bao: &OpenbaoServer, script: &str) -> Self {
        let mut child = harmony_std(data)
            .env(vars::OPENBAO_URL, url)
            .env(vars::OPENBAO_TOKEN, bao.root_token().expect("root"))
            .args([
                "run",
                "-c",
                "shop",
                "--watch",
                "--interval",
                "1s",
                "--grace",
                "2s",
            ])
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, lines) = std::sync::mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = BufReader::new(child.stderr.take().expect("stderr"));
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let mut all = sink.lock().expect("lock");
                all.push_str(&line);
                all.push('\n');
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    fn next_line(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// SIGTERM to harmony; its exit code once it ends (bounded).
    fn terminate(self) -> (Option<i32>, String) {
        self.terminate_within(Duration::from_secs(15))
    }

    /// SIGTERM to harmony; its exit code once it ends, which it must within `limit`.
    fn terminate_within(mut self, limit: Duration) -> (Option<i32>, String) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), self.stderr());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "harmony did not end within {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // A failed test must not leave harmony running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` still runs (a zombie waiting for its parent does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        !matches!(state, Some('Z' | 'X'))
    })
}

/// Waits (bounded by `limit`) for `pid` to end; whether it did.
fn ends_within(pid: u32, limit: Duration) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while alive(pid) {
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The pids in a `started PID PID …` line.
fn pids(line: &str) -> Vec<u32> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A program that ignores SIGTERM (and its `sleep`, which inherits that) does not keep harmony
/// waiting when harmony is told to stop: SIGKILL after --grace reaches the whole group.
#[tokio::test]
async fn watch_kills_a_program_that_ignores_sigterm_when_told_to_stop() {
    let (bao, data) = setup().await;
    let script = r#"trap '' TERM; sleep 1000 & echo "started $$ $!"; wait"#;
    let watched = Watched::start(data.path(), &bao, script);
    let line = watched
        .next_line(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the program did not start: {}", watched.stderr()));
    let started = pids(&line);
    assert_eq!(started.len(), 2, "{line}");
    let (code, text) = watched.terminate_within(Duration::from_secs(30));
    assert_eq!(code, Some(137), "ended by SIGKILL: {text}");
    assert!(text.contains("SIGKILL"), "{text}");
    for pid in started {
        assert!(
            ends_within(pid, Duration::from_secs(10)),
            "{pid} survived: {text}"
        );
    }
}

/// A restart stops the program's whole process group: a `sleep` started by the shell does not
/// survive the old configuration.
#[tokio::test]
async fn watch_restart_stops_the_programs_whole_group() {
    let (bao, data) = setup().await;
    let script = r#"sleep 1000 & echo "started $$ $! w$HARMONY_SHOP_WORKERS"; wait"#;
    let watched = Watched::start(data.path(), &bao, script);
    let first = watched
        .next_line(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the program did not start: {}", watched.stderr()));
    assert!(first.ends_with(" w4"), "{first}");
    let old = pids(&first);
    assert_eq!(old.len(), 2, "{first}");
    let patched = std::process::Command::new(harmony_testkit::bao_binary().expect("bao"))
        .env("BAO_ADDR", bao.url())
        .env("BAO_TOKEN", bao.root_token().expect("root"))
        .args(["kv", "patch", "-mount=secret", "harmony/shop", "workers=9"])
        .output()
        .expect("bao kv patch");
    assert!(patched.status.success());
    let second = watched
        .next_line(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no restart: {}", watched.stderr()));
    assert!(second.ends_with(" w9"), "{second}");
    for pid in old {
        assert!(
            ends_within(pid, Duration::from_secs(10)),
            "{pid} of the old program survived the restart: {}",
            watched.stderr()
        );
    }
    let new = pids(&second);
    let (_, text) = watched.terminate();
    for pid in new {
        assert!(ends_within(pid, Duration::from_secs(10)), "{pid}: {text}");
    }
}

/// A TCP proxy to `upstream` that, once `hang` is set, keeps reading requests but forwards and
/// answers none (a server that accepts and never answers); `held` counts requests it sat on.
async fn hanging_proxy(
    upstream: String,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let (hang, held, upstream) = (hang.clone(), held.clone(), upstream.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut from_server, mut to_server) = server.into_split();
                let (mut from_client, mut to_client) = client.split();
                let upward = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match from_client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if hang.load(Ordering::SeqCst) {
                            held.fetch_add(1, Ordering::SeqCst);
                            // Never answer; keep the connection open.
                            std::future::pending::<()>().await;
                        }
                        if to_server.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let downward = tokio::io::copy(&mut from_server, &mut to_client);
                tokio::select! {
                    _ = upward => {}
                    _ = downward => {}
                }
            });
        }
    });
    url
}

/// A check against a server that accepts and never answers does not hold up SIGTERM: harmony
/// hands it to the program and ends well before the request's own 10 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_check_does_not_hold_up_sigterm() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (bao, data) = setup().await;
    let hang = std::sync::Arc::new(AtomicBool::new(false));
    let held = std::sync::Arc::new(AtomicUsize::new(0));
    let upstream = bao
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let url = hanging_proxy(upstream, hang.clone(), held.clone()).await;
    let watched = Watched::start_at(data.path(), &url, &bao, WATCHED);
    assert_eq!(
        watched.next_line(Duration::from_secs(20)).as_deref(),
        Some("workers=4"),
        "{}",
        watched.stderr()
    );
    hang.store(true, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while held.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no check reached the proxy"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, text) = watched.terminate_within(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{text}");
}

/// A program that prints the workers count, then waits; on SIGTERM it says so and exits 0.
const WATCHED: &str = r#"trap 'echo "stopped $HARMONY_SHOP_WORKERS"; exit 0' TERM; echo "workers=$HARMONY_SHOP_WORKERS"; while :; do sleep 0.1; done"#;

/// A change made with the `bao` CLI restarts the program with the new value; SIGTERM to
/// harmony reaches the program and harmony ends with its exit code.
#[tokio::test]
async fn watch_restarts_the_program_when_the_document_changes() {
    let (bao, data) = setup().await;
    let watched = Watched::start(data.path(), &bao, WATCHED);
    assert_eq!(
        watched.next_line(Duration::from_secs(20)).as_deref(),
        Some("workers=4"),
        "{}",
        watched.stderr()
    );
    let patched = std::process::Command::new(harmony_testkit::bao_binary().expect("bao"))
        .env("BAO_ADDR", bao.url())
        .env("BAO_TOKEN", bao.root_token().expect("root"))
        .args(["kv", "patch", "-mount=secret", "harmony/shop", "workers=9"])
        .output()
        .expect("bao kv patch");
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );
    let changed_at = std::time::Instant::now();
    // The old program is stopped with SIGTERM, the new one starts with the new value. The
    // signal goes to the program's whole group: a subshell the script had just forked (before
    // its exec) may run the trap too, so "stopped 4" may come twice.
    assert_eq!(
        watched.next_line(Duration::from_secs(10)).as_deref(),
        Some("stopped 4"),
        "{}",
        watched.stderr()
    );
    let mut next = watched.next_line(Duration::from_secs(10));
    if next.as_deref() == Some("stopped 4") {
        next = watched.next_line(Duration::from_secs(10));
    }
    assert_eq!(next.as_deref(), Some("workers=9"), "{}", watched.stderr());
    eprintln!("restarted {:?} after the change", changed_at.elapsed());
    let text = watched.stderr();
    assert!(
        text.contains("shop changed (version 1 → 2); restarting sh"),
        "{text}"
    );
    let (code, text) = watched.terminate();
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

/// An unchanged document never restarts the program, and a program that stops on its own
/// ends harmony with its exit code.
#[tokio::test]
async fn watch_leaves_an_unchanged_program_alone() {
    let (bao, data) = setup().await;
    let script = r#"echo "workers=$HARMONY_SHOP_WORKERS"; sleep 3.5; exit 5"#;
    let mut watched = Watched::start(data.path(), &bao, script);
    assert_eq!(
        watched.next_line(Duration::from_secs(20)).as_deref(),
        Some("workers=4")
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = watched.child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "harmony did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(5), "{}", watched.stderr());
    // Three checks passed meanwhile, none restarted it.
    assert!(watched.next_line(Duration::from_millis(200)).is_none());
    assert!(
        !watched.stderr().contains("restarting"),
        "{}",
        watched.stderr()
    );
}

/// With no keychain chosen, copies are plain 0600 files, and that is said once (first save).
#[tokio::test]
async fn unencrypted_copies_are_said_once() {
    let (bao, data) = setup().await;
    let get = || {
        cmd(data.path(), &bao)
            .env(vars::HARMONY_SESSION_STORE, "file")
            .args(["config", "get", "shop"])
            .output()
            .expect("get")
    };
    let first = get();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("keeps copies unencrypted in 0600 files"),
        "{}",
        stderr(&first)
    );
    let second = get();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("unencrypted"),
        "{}",
        stderr(&second)
    );
    for file in cached_files(data.path()) {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

/// The cache file whose header names a location ending in `suffix` (e.g. `harmony/shop`).
fn cached_file_of(data: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    cached_files(data)
        .into_iter()
        .find(|file| {
            let text = std::fs::read_to_string(file).expect("read");
            let entry: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            entry["location"]
                .as_str()
                .is_some_and(|l| l.ends_with(suffix))
        })
        .unwrap_or_else(|| panic!("no cached copy of {suffix}"))
}

/// `--offline` says which copy it serves (version and age, one line); in encrypted mode (real
/// Linux keyutils) a plain entry planted in the cache directory is refused, quoting nothing.
#[tokio::test]
async fn offline_names_its_copy_and_refuses_a_planted_plain_entry() {
    let (bao, data) = setup().await;
    let out = cmd(data.path(), &bao)
        .args(["config", "get", "shop"])
        .output()
        .expect("get");
    assert!(out.status.success(), "{}", stderr(&out));
    let echo = ["--", "sh", "-c", "echo $HARMONY_SHOP_WORKERS"];
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--offline"])
        .args(echo)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "4");
    let text = stderr(&out);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("offline copy of shop (version 1, read "))
            .count(),
        1,
        "{text}"
    );

    let file = cached_file_of(data.path(), "harmony/shop");
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("JSON");
    let object = entry.as_object_mut().expect("object");
    object.remove("sealed");
    object.insert(
        "value".into(),
        serde_json::json!({"workers": 666, "database": {"host": "evil.example", "port": 1, "password": "planted-pw"}}),
    );
    std::fs::write(&file, serde_json::to_vec(&entry).expect("JSON")).expect("plant");
    let out = cmd(data.path(), &bao)
        .args(["run", "-c", "shop", "--offline"])
        .args(echo)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    let text = stderr(&out);
    assert!(text.contains("not encrypted"), "{text}");
    assert!(
        !text.contains("planted-pw") && !text.contains("evil.example"),
        "{text}"
    );
}

/// A schema copy that is gone or damaged does not mean "nothing is secret": offline, every
/// value is masked unless `--reveal`, and stderr says why.
#[tokio::test]
async fn a_lost_schema_copy_masks_every_value_offline() {
    let (bao, data) = setup().await;
    let out = cmd(data.path(), &bao)
        .args(["config", "get", "shop"])
        .output()
        .expect("get");
    assert!(out.status.success(), "{}", stderr(&out));
    let schema = cached_file_of(data.path(), "_schema/shop");
    for damage in ["delete", "garble"] {
        match damage {
            "delete" => std::fs::remove_file(&schema).expect("delete"),
            _ => std::fs::write(&schema, b"{\"format\":1,").expect("garble"),
        }
        let out = cmd(data.path(), &bao)
            .args(["config", "get", "shop", "--offline", "--format", "json"])
            .output()
            .expect("get");
        assert!(out.status.success(), "{damage}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["workers"], "********", "{damage}: {doc}");
        assert_eq!(doc["database"]["host"], "********", "{damage}: {doc}");
        assert_eq!(doc["database"]["password"], "********", "{damage}: {doc}");
        let text = stderr(&out);
        assert!(
            text.contains("schema") && text.contains("every value is masked"),
            "{damage}: {text}"
        );
        assert!(!text.contains(PASSWORD), "{text}");

        let out = cmd(data.path(), &bao)
            .args(["config", "get", "shop", "--offline", "--format", "json"])
            .arg("--reveal")
            .output()
            .expect("get");
        assert!(out.status.success(), "{damage}: {}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(doc["workers"], 4, "{damage}: {doc}");
        assert_eq!(doc["database"]["password"], PASSWORD, "{damage}");
    }
}
