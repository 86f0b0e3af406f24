//! What the integration tests share: the binary with a clean environment, output as text.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use harmony_env::vars;

/// Every variable that would point the binary at a developer's own server or identity.
const CLEARED: &[&str] = &[
    vars::OPENBAO_USERNAME,
    vars::OPENBAO_PASSWORD,
    vars::OPENBAO_USERPASS_MOUNT,
    vars::OPENBAO_KV_MOUNT,
    vars::OPENBAO_KV_PREFIX,
    vars::OPENBAO_JWT_AUTH_MOUNT,
    vars::OPENBAO_JWT_ROLE,
    vars::HARMONY_SSO_URL,
    vars::HARMONY_SSO_CLIENT_ID,
    vars::HARMONY_SSO_PROJECT_ID,
    vars::HARMONY_SSO_OPEN_BROWSER,
    vars::HARMONY_NON_INTERACTIVE,
    vars::HARMONY_ENV,
    vars::HARMONY_PROJECT_FILE,
    vars::RUST_LOG,
    vars::VISUAL,
    vars::EDITOR,
];

/// The binary as a plain process with a clean environment and its own data dir.
pub fn harmony_std(data_dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("harmony"));
    for name in vars::OPENBAO_URL_ALIASES
        .iter()
        .chain(vars::OPENBAO_TOKEN_ALIASES.iter())
        .chain(CLEARED.iter())
    {
        cmd.env_remove(name);
    }
    cmd.env(vars::HARMONY_DATA_DIR, data_dir);
    cmd.env(vars::HARMONY_SSO_OPEN_BROWSER, "0");
    cmd
}

/// [`harmony_std`] with a 60 s bound.
pub fn harmony(data_dir: &Path) -> Command {
    let mut cmd = Command::from_std(harmony_std(data_dir));
    cmd.timeout(Duration::from_secs(60));
    cmd
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs the binary with piped output, hands every stderr line to `on_line` as it arrives, and
/// returns (exit status, stdout, stderr) once it ends (bounded by `limit`).
pub async fn run_watching_stderr(
    mut cmd: std::process::Command,
    limit: Duration,
    on_line: impl Fn(String) + Send + 'static,
) -> (std::process::ExitStatus, String, String) {
    use std::io::{BufRead as _, Read as _};
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn harmony");
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
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("harmony did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (
        status,
        out_reader.join().expect("stdout reader"),
        err_reader.join().expect("stderr reader"),
    )
}

/// A policy giving full access to the team's KV documents (`secret/<prefix>/...`).
pub fn kv_policy(prefix: &str) -> String {
    format!(
        r#"path "secret/data/{prefix}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "list", "delete"] }}
path "secret/metadata/{prefix}" {{ capabilities = ["list"] }}
path "secret/metadata/" {{ capabilities = ["list"] }}
"#
    )
}

/// `harmony login --sso` against `bao` and `provider`, approving the printed code as `user`.
/// Returns (stdout, stderr).
pub async fn sso_login(
    data: &Path,
    bao_url: &str,
    provider: &harmony_testkit::oidc::OidcProvider,
    user: &str,
) -> (String, String) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let mut cmd = harmony_std(data);
    cmd.args([
        "login",
        "--sso",
        "--openbao-url",
        bao_url,
        "--sso-url",
        provider.issuer(),
        "--client-id",
        provider.client_id(),
    ]);
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
            .approve_user_code(&code, user)
            .await
            .expect("approve the code");
    };
    let ((status, out, err), ()) = tokio::join!(watcher, approve);
    assert!(status.success(), "login failed: {err}");
    (out, err)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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

/// Write `script` to `dir/name` as an executable (a fake tool or editor); returns its path.
pub fn write_executable(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}
