//! A real OpenBao server per test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{TestkitError, free_port, io_err, locate, log_tail};

/// How long a freshly started server may take to answer `sys/health`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any single request to the test server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Dev,
    /// Dev mode over HTTPS with a CA of its own (`-dev-tls`).
    DevTls,
    Raft,
}

/// The unseal keys and root token of a server initialised by [`OpenbaoServer::init`].
#[derive(Clone)]
pub struct InitKeys {
    /// Base64 unseal keys.
    pub keys_b64: Vec<String>,
    /// The root token.
    pub root_token: String,
}

impl std::fmt::Debug for InitKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitKeys")
            .field(
                "keys_b64",
                &format_args!("[{} redacted]", self.keys_b64.len()),
            )
            .field("root_token", &"[redacted]")
            .finish()
    }
}

/// A running OpenBao, killed on drop.
pub struct OpenbaoServer {
    mode: Mode,
    child: Option<Child>,
    port: u16,
    cluster_port: u16,
    url: String,
    root_token: Option<String>,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    /// Raft: this node's id, and the API address of the node it joins (`retry_join`).
    raft_node_id: String,
    raft_join: Option<String>,
    /// More server configuration (HCL) for a dev server, e.g. an `audit` stanza.
    extra_config: Option<String>,
}

impl std::fmt::Debug for OpenbaoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenbaoServer")
            .field("mode", &self.mode)
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl OpenbaoServer {
    /// A dev-mode server: initialised, unsealed, in-memory, KV v2 at `secret/`, with a random
    /// root token available from [`OpenbaoServer::root_token`].
    pub async fn dev() -> Result<Self, TestkitError> {
        let token = format!("root-{:016x}", rand_u64());
        Self::start(Mode::Dev, Some(token)).await
    }

    /// [`OpenbaoServer::dev`] with more server configuration (`-config=FILE` beside `-dev`),
    /// e.g. a declarative `audit` stanza.
    pub async fn dev_with_config(hcl: &str) -> Result<Self, TestkitError> {
        let token = format!("root-{:016x}", rand_u64());
        Self::start_node(Mode::Dev, Some(token), "harmony-test", None, Some(hcl)).await
    }

    /// A dev-mode server over HTTPS (`bao server -dev -dev-tls -dev-tls-cert-dir=DIR`): its
    /// certificate is signed by a CA it generates, written to [`OpenbaoServer::ca_cert`]
    /// (`vault-ca.pem`), valid for `localhost` and `127.0.0.1`. The URL is
    /// `https://127.0.0.1:<port>`. Otherwise as [`OpenbaoServer::dev`].
    pub async fn dev_tls() -> Result<Self, TestkitError> {
        let token = format!("root-{:016x}", rand_u64());
        Self::start(Mode::DevTls, Some(token)).await
    }

    /// A real server on raft storage in a temporary directory: **uninitialised and sealed**.
    /// Use [`OpenbaoServer::init`] and [`OpenbaoServer::unseal`] (or the code under test) to
    /// bring it up, and [`OpenbaoServer::restart`] to see it come back sealed.
    pub async fn sealed() -> Result<Self, TestkitError> {
        Self::start(Mode::Raft, None).await
    }

    /// One node of a raft cluster (see [`crate::OpenbaoCluster`]): uninitialised and sealed;
    /// with `join`, it keeps trying to join the node whose API address that is (`retry_join`)
    /// and completes the join when it is unsealed with that cluster's keys.
    pub async fn raft_node(node_id: &str, join: Option<&str>) -> Result<Self, TestkitError> {
        Self::start_node(Mode::Raft, None, node_id, join, None).await
    }

    async fn start(mode: Mode, root_token: Option<String>) -> Result<Self, TestkitError> {
        Self::start_node(mode, root_token, "harmony-test", None, None).await
    }

    async fn start_node(
        mode: Mode,
        root_token: Option<String>,
        node_id: &str,
        join: Option<&str>,
        extra_config: Option<&str>,
    ) -> Result<Self, TestkitError> {
        let dir = tempfile::Builder::new()
            .prefix("harmony-openbao-")
            .tempdir()
            .map_err(io_err("create a temp dir for OpenBao"))?;
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TestkitError::Http {
                context: "build HTTP client".into(),
                message: e.to_string(),
            })?;
        let mut server = Self {
            mode,
            child: None,
            port: 0,
            cluster_port: 0,
            url: String::new(),
            root_token,
            dir,
            http,
            raft_node_id: node_id.to_owned(),
            raft_join: join.map(str::to_owned),
            extra_config: extra_config.map(str::to_owned),
        };
        // A port picked by free_port can be taken by someone else before bao binds it; try a
        // few times with fresh ports.
        let mut last = None;
        for _ in 0..3 {
            server.port = free_port()?;
            server.cluster_port = free_port()?;
            let scheme = if mode == Mode::DevTls {
                "https"
            } else {
                "http"
            };
            server.url = format!("{scheme}://127.0.0.1:{}", server.port);
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    server.kill();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| TestkitError::Http {
            context: "start OpenBao".into(),
            message: "no attempt was made".into(),
        }))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("bao.log")
    }

    fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// The CA certificate (PEM) of a [`OpenbaoServer::dev_tls`] server; `None` for the others.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        (self.mode == Mode::DevTls).then(|| self.tls_dir().join("vault-ca.pem"))
    }

    /// Once a dev-tls server has written its CA: a client of ours that trusts it.
    fn trust_own_ca(&mut self) -> Result<bool, TestkitError> {
        let Some(ca) = self.ca_cert() else {
            return Ok(true);
        };
        let Ok(pem) = std::fs::read(&ca) else {
            return Ok(false);
        };
        let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem) else {
            return Ok(false); // Still being written.
        };
        if certs.is_empty() {
            return Ok(false);
        }
        self.http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tls_certs_only(certs)
            .build()
            .map_err(|e| TestkitError::Http {
                context: "build HTTP client trusting the dev-tls CA".into(),
                message: e.to_string(),
            })?;
        Ok(true)
    }

    fn spawn_and_wait_args(&self) -> Result<Vec<String>, TestkitError> {
        Ok(match self.mode {
            Mode::Dev => {
                let mut args = vec![
                    "server".into(),
                    "-dev".into(),
                    format!(
                        "-dev-root-token-id={}",
                        self.root_token.as_deref().unwrap_or_default()
                    ),
                    format!("-dev-listen-address=127.0.0.1:{}", self.port),
                    "-dev-no-store-token".into(),
                ];
                if let Some(hcl) = &self.extra_config {
                    let path = self.dir.path().join("extra.hcl");
                    std::fs::write(&path, hcl).map_err(io_err("write extra.hcl"))?;
                    args.push(format!("-config={}", path.display()));
                }
                args
            }
            Mode::DevTls => vec![
                "server".into(),
                "-dev".into(),
                "-dev-tls".into(),
                format!("-dev-tls-cert-dir={}", self.tls_dir().display()),
                format!(
                    "-dev-root-token-id={}",
                    self.root_token.as_deref().unwrap_or_default()
                ),
                format!("-dev-listen-address=127.0.0.1:{}", self.port),
                "-dev-no-store-token".into(),
            ],
            Mode::Raft => {
                let config = self.write_raft_config()?;
                vec!["server".into(), format!("-config={}", config.display())]
            }
        })
    }

    fn write_raft_config(&self) -> Result<PathBuf, TestkitError> {
        let data = self.dir.path().join("raft");
        std::fs::create_dir_all(&data).map_err(io_err("create raft dir"))?;
        let join = self
            .raft_join
            .as_ref()
            .map(|leader| format!("  retry_join {{\n    leader_api_addr = \"{leader}\"\n  }}\n"))
            .unwrap_or_default();
        let config = format!(
            r#"storage "raft" {{
  path = "{data}"
  node_id = "{node_id}"
  performance_multiplier = 1
{join}}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  cluster_address = "127.0.0.1:{cport}"
  tls_disable = true
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cport}"
disable_mlock = true
ui = false
# Standbys forward reads to the active node (read-after-write; what the README recommends).
disable_standby_reads = true
"#,
            data = data.display(),
            port = self.port,
            cport = self.cluster_port,
            node_id = self.raft_node_id,
        );
        let path = self.dir.path().join("server.hcl");
        std::fs::write(&path, config).map_err(io_err("write server.hcl"))?;
        Ok(path)
    }

    async fn spawn_and_wait(&mut self) -> Result<(), TestkitError> {
        let bao = locate::bao_binary()?;
        if self.mode == Mode::DevTls {
            // A fresh CA per start: the old one would not match the new certificate.
            let _ = std::fs::remove_dir_all(self.tls_dir());
            std::fs::create_dir_all(self.tls_dir()).map_err(io_err("create tls dir"))?;
        }
        let args = self.spawn_and_wait_args()?;
        let log = std::fs::File::create(self.log_path()).map_err(io_err("create bao.log"))?;
        let log_err = log.try_clone().map_err(io_err("clone log handle"))?;
        let child = Command::new(&bao)
            .args(&args)
            .env_remove("VAULT_TOKEN")
            .env_remove("BAO_TOKEN")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|source| TestkitError::Spawn {
                program: bao.clone(),
                source,
            })?;
        self.child = Some(child);
        self.wait_answering().await
    }

    async fn wait_answering(&mut self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let health = format!("{}/v1/sys/health", self.url);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(TestkitError::NotReady {
                    what: "OpenBao",
                    seconds: 0,
                    log_tail: format!("(exited with {status})\n{}", log_tail(&self.log_path(), 20)),
                });
            }
            if !self.trust_own_ca()? {
                if Instant::now() >= deadline {
                    return Err(TestkitError::NotReady {
                        what: "OpenBao (dev-tls CA file)",
                        seconds: READY_TIMEOUT.as_secs(),
                        log_tail: log_tail(&self.log_path(), 20),
                    });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let wanted_status = match self.mode {
                Mode::Dev | Mode::DevTls => |s: u16| s == 200,
                // 501 uninitialised, 503 sealed, 200 once someone unsealed it.
                Mode::Raft => |s: u16| matches!(s, 200 | 429 | 501 | 503),
            };
            if let Ok(resp) = self
                .http
                .get(&health)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                && wanted_status(resp.status().as_u16())
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::NotReady {
                    what: "OpenBao",
                    seconds: READY_TIMEOUT.as_secs(),
                    log_tail: log_tail(&self.log_path(), 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The base URL, `http://127.0.0.1:<port>` (`https://` for [`OpenbaoServer::dev_tls`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The root token of a dev server, or of a raft server after [`OpenbaoServer::init`].
    pub fn root_token(&self) -> Option<&str> {
        self.root_token.as_deref()
    }

    /// The temporary directory holding this server's state and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log so far (for a test's own assertions, e.g. that nothing leaked).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stop the server (SIGKILL) and wait for it to exit. The data directory is kept.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Stop and start the same server on the same ports and data. A raft server comes back sealed.
    pub async fn restart(&mut self) -> Result<(), TestkitError> {
        self.kill();
        self.spawn_and_wait().await
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Initialise a raft server (1 share, threshold 1) and remember its root token.
    /// Returns the keys; the server stays sealed.
    pub async fn init(&mut self) -> Result<InitKeys, TestkitError> {
        let body = self
            .call(
                reqwest::Method::POST,
                "sys/init",
                None,
                Some(json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .await?;
        let keys = InitKeys {
            keys_b64: body["keys_base64"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            root_token: body["root_token"].as_str().unwrap_or_default().to_owned(),
        };
        self.root_token = Some(keys.root_token.clone());
        Ok(keys)
    }

    /// Unseal with the given keys.
    pub async fn unseal(&self, keys: &InitKeys) -> Result<(), TestkitError> {
        for key in &keys.keys_b64 {
            self.call(
                reqwest::Method::POST,
                "sys/unseal",
                None,
                Some(json!({ "key": key })),
            )
            .await?;
        }
        self.wait_active().await
    }

    /// Wait until `sys/health` says active (200).
    pub async fn wait_active(&self) -> Result<(), TestkitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(resp) = self
                .http
                .get(format!("{}/v1/sys/health", self.url))
                .send()
                .await
                && resp.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TestkitError::NotReady {
                    what: "OpenBao (active after unseal)",
                    seconds: READY_TIMEOUT.as_secs(),
                    log_tail: log_tail(&self.log_path(), 20),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An admin call with the root token (for test setup: policies, auth methods, tokens).
    /// `path` is relative to `/v1/`. Returns the JSON body (`null` for 204).
    pub async fn root_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        let token = self.root_token.clone();
        self.call(method, path, token.as_deref(), body).await
    }

    /// [`OpenbaoServer::root_call`] inside `namespace` (header `X-Vault-Namespace`).
    pub async fn root_call_in(
        &self,
        namespace: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        let token = self.root_token.clone();
        self.call_in(Some(namespace), method, path, token.as_deref(), body)
            .await
    }

    /// Create the namespace `name` (`sys/namespaces/<name>`) with a KV v2 engine at `secret/`
    /// inside it, as dev mode has at the root.
    pub async fn create_namespace(&self, name: &str) -> Result<(), TestkitError> {
        self.root_call(
            reqwest::Method::POST,
            &format!("sys/namespaces/{name}"),
            Some(json!({})),
        )
        .await?;
        self.root_call_in(
            name,
            reqwest::Method::POST,
            "sys/mounts/secret",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await?;
        Ok(())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        self.call_in(None, method, path, token, body).await
    }

    async fn call_in(
        &self,
        namespace: Option<&str>,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, TestkitError> {
        let url = format!("{}/v1/{}", self.url, path.trim_start_matches('/'));
        let mut req = self.http.request(method.clone(), &url);
        if let Some(token) = token {
            req = req.header("X-Vault-Token", token);
        }
        if let Some(namespace) = namespace {
            req = req.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let context = format!("{method} /v1/{path}");
        let resp = req.send().await.map_err(|e| TestkitError::Http {
            context: context.clone(),
            message: e.to_string(),
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(TestkitError::Http {
                context,
                message: format!("{status}: {text}"),
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| TestkitError::Http {
            context,
            message: format!("bad JSON ({e})"),
        })
    }

    /// Create a policy with the given HCL and a token carrying only it (plus `default`).
    pub async fn token_with_policy(
        &self,
        name: &str,
        hcl: &str,
        ttl: &str,
    ) -> Result<String, TestkitError> {
        self.root_call(
            reqwest::Method::PUT,
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        )
        .await?;
        let body = self
            .root_call(
                reqwest::Method::POST,
                "auth/token/create",
                Some(json!({ "policies": [name], "ttl": ttl })),
            )
            .await?;
        body["auth"]["client_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| TestkitError::Http {
                context: "auth/token/create".into(),
                message: "no client_token in the answer".into(),
            })
    }

    /// Enable userpass at `userpass/` (if not yet) and create a user with the given policies.
    pub async fn add_userpass_user(
        &self,
        username: &str,
        password: &str,
        policies: &[&str],
        token_ttl: &str,
    ) -> Result<(), TestkitError> {
        let auths = self
            .root_call(reqwest::Method::GET, "sys/auth", None)
            .await?;
        if auths.get("userpass/").is_none() && auths["data"].get("userpass/").is_none() {
            self.root_call(
                reqwest::Method::POST,
                "sys/auth/userpass",
                Some(json!({ "type": "userpass" })),
            )
            .await?;
        }
        self.root_call(
            reqwest::Method::POST,
            &format!("auth/userpass/users/{username}"),
            Some(json!({
                "password": password,
                "token_policies": policies.join(","),
                "token_ttl": token_ttl,
            })),
        )
        .await?;
        Ok(())
    }
}

impl Drop for OpenbaoServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}
