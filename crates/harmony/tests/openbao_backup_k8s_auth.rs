//! The backup CronJob's sign-in, proven on a REAL sealed raft OpenBao 2.7.2 (harmony-testkit):
//! the bootstrap's Kubernetes auth config and `harmony-backup` role, a login with a projected
//! service-account token through the real `bao` CLI running the CronJob's own script (snapshot
//! written 0600 under a temporary name, renamed, pruned to KEEP), and everything else refused.
//!
//! No Kubernetes runs here, so the TokenReview API that OpenBao's Kubernetes auth calls at login
//! is a stand-in (wiremock with a responder that behaves as the Kubernetes API does). What it
//! encodes, from the Kubernetes API reference "TokenReview v1"
//! (<https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-review-v1/>)
//! and "Managing Service Accounts" (bound service account tokens):
//! - `POST /apis/authentication.k8s.io/v1/tokenreviews` with a `TokenReview` whose
//!   `spec.token` is the token under review and `spec.audiences` the audiences the caller
//!   wants; the caller authenticates with its own bearer token (a request without one is
//!   401 Unauthorized).
//! - The answer (201 Created) is the `TokenReview` with `status`: `authenticated`; for a
//!   service account `user.username` = `system:serviceaccount:<namespace>:<name>`, `user.uid` =
//!   the ServiceAccount's uid, `user.groups`; `audiences` = those of the requested audiences
//!   the token is valid for. A token it does not know, or one valid for none of the requested
//!   audiences, is `authenticated: false` with `error` set.
//!
//! The tokens are JWT-shaped like a projected token (`aud`, `exp`, `iss`, and the
//! `kubernetes.io` claim with `namespace` and `serviceaccount.{name,uid}`), signed with garbage:
//! OpenBao checks no signature when it has no `pem_keys` (the chart's default), and trusts
//! only the TokenReview's answer, which this test proves (forged claims are refused).
//!
//! The stand-in is plain HTTP; the auth config carries a CA anyway (a test certificate in
//! `tests/fixtures`, its key discarded) because without one OpenBao reads the pod's CA file,
//! which does not exist outside a pod. In a pod the deploy writes no CA (see
//! `KubernetesBackupAuth::in_cluster`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use harmony::openbao::{
    BACKUP_NAME, BACKUP_ROLE, BootstrapOptions, HARMONY_BACKUP_POLICY, KUBERNETES_AUTH_MOUNT,
    KubernetesBackupAuth, OpenbaoBootstrap, StateDir, backup_script,
};
use harmony_secret::{OpenbaoClient, SecretError};
use harmony_testkit::OpenbaoServer;
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKENREVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";
const CA: &str = include_str!("fixtures/kubernetes-standin-ca.pem");
const NAMESPACE: &str = "openbao";

/// Who a token really is, as the API server knows it.
#[derive(Clone)]
struct Identity {
    namespace: &'static str,
    name: &'static str,
    uid: &'static str,
    audiences: Vec<&'static str>,
}

/// The TokenReview API of the stand-in cluster.
#[derive(Clone, Default)]
struct TokenReviewApi {
    tokens: Arc<Mutex<HashMap<String, Identity>>>,
    reviews: Arc<Mutex<Vec<Value>>>,
}

impl Respond for TokenReviewApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let bearer = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !bearer.starts_with("Bearer ") || bearer.len() <= "Bearer ".len() {
            return ResponseTemplate::new(401).set_body_json(json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
            }));
        }
        let Ok(review) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400);
        };
        self.reviews.lock().expect("lock").push(review.clone());
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        let wanted: Vec<String> = review["spec"]["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let known = self.tokens.lock().expect("lock").get(token).cloned();
        let status = match known {
            None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
            Some(id) => {
                // No audiences asked: the API server's own audience (a bound token for
                // another audience is not valid for it).
                let valid: Vec<&str> = if wanted.is_empty() {
                    id.audiences
                        .iter()
                        .copied()
                        .filter(|a| *a == "https://kubernetes.default.svc.cluster.local")
                        .collect()
                } else {
                    id.audiences
                        .iter()
                        .copied()
                        .filter(|a| wanted.iter().any(|w| w == a))
                        .collect()
                };
                if valid.is_empty() {
                    json!({"authenticated": false, "user": {},
                           "error": "token audiences are invalid for the target audiences"})
                } else {
                    json!({
                        "authenticated": true,
                        "user": {
                            "username": format!("system:serviceaccount:{}:{}", id.namespace, id.name),
                            "uid": id.uid,
                            "groups": ["system:serviceaccounts",
                                       format!("system:serviceaccounts:{}", id.namespace),
                                       "system:authenticated"],
                        },
                        "audiences": valid,
                    })
                }
            }
        };
        ResponseTemplate::new(201).set_body_json(json!({
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": review["spec"],
            "status": status,
        }))
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT shaped like a projected service-account token (claims as the kubelet's), with a
/// signature nobody checks.
fn projected_token(namespace: &str, name: &str, uid: &str, aud: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = json!({"alg": "RS256", "kid": "standin", "typ": "JWT"});
    let claims = json!({
        "aud": aud,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": format!("{name}-{}", rand_suffix()),
        "kubernetes.io": {
            "namespace": namespace,
            "pod": {"name": format!("{name}-29380000-x7k2p"), "uid": "5a0f1c2e-0000-4000-8000-00000000aaaa"},
            "serviceaccount": {"name": name, "uid": uid},
        },
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
    });
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(&[7u8; 256])
    )
}

fn rand_suffix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

const BACKUP_UID: &str = "0b5e7a1c-1111-4000-8000-000000000001";

async fn login_status(url: &str, jwt: &str) -> Result<(u16, Value)> {
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .post(format!("{url}/v1/auth/{KUBERNETES_AUTH_MOUNT}/login"))
        .json(&json!({"role": BACKUP_ROLE, "jwt": jwt}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

#[tokio::test]
async fn the_cron_job_s_token_takes_a_snapshot_and_nothing_else() -> Result<()> {
    let api = TokenReviewApi::default();
    let standin = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TOKENREVIEWS))
        .respond_with(api.clone())
        .mount(&standin)
        .await;

    let bao = OpenbaoServer::sealed().await?;
    let state = tempfile::tempdir()?;
    let url = url::Url::parse(bao.url())?;
    let mut options = BootstrapOptions::local(StateDir::new(state.path()));
    options.kubernetes_backup = Some(KubernetesBackupAuth {
        kubernetes_host: standin.uri(),
        namespace: NAMESPACE.to_owned(),
        ca_cert: Some(CA.to_owned()),
    });
    let report = OpenbaoBootstrap::new(&url, options.clone())?.run().await?;
    let changes = report.changes.join("\n");
    ensure!(changes.contains("kubernetes"), "{changes}");
    ensure!(
        changes.contains(&format!("auth/{KUBERNETES_AUTH_MOUNT}/role/{BACKUP_ROLE}")),
        "{changes}"
    );
    // A re-run changes nothing.
    let again = OpenbaoBootstrap::new(&url, options)?.run().await?;
    ensure!(again.nothing_changed(), "{:?}", again.changes);

    let keys: Value =
        serde_json::from_slice(&std::fs::read(StateDir::new(state.path()).keys_file())?)?;
    let root = keys["root_token"]
        .as_str()
        .context("root token")?
        .to_owned();
    let admin = OpenbaoClient::new(bao.url(), OpenbaoClient::http_client()?)
        .with_token(SecretString::from(root));
    admin
        .post(
            "secret/data/harmony/team",
            &json!({"data": {"password": "hunter2"}}),
        )
        .await?;

    // The service accounts the stand-in cluster knows.
    let backup_jwt = projected_token(NAMESPACE, BACKUP_NAME, BACKUP_UID, &["openbao"]);
    let other_sa_jwt = projected_token(NAMESPACE, "default", "0b5e-2", &["openbao"]);
    let other_ns_jwt = projected_token("team-a", BACKUP_NAME, "0b5e-3", &["openbao"]);
    let api_audience_jwt = projected_token(
        NAMESPACE,
        BACKUP_NAME,
        BACKUP_UID,
        &["https://kubernetes.default.svc.cluster.local"],
    );
    // Claims that say openbao-backup, but the cluster knows the token as another account.
    let forged_jwt = projected_token(NAMESPACE, BACKUP_NAME, BACKUP_UID, &["openbao"]);
    {
        let mut tokens = api.tokens.lock().expect("lock");
        let id = |namespace, name, uid, audiences: &[&'static str]| Identity {
            namespace,
            name,
            uid,
            audiences: audiences.to_vec(),
        };
        tokens.insert(
            backup_jwt.clone(),
            id(NAMESPACE, BACKUP_NAME, BACKUP_UID, &["openbao"]),
        );
        tokens.insert(
            other_sa_jwt.clone(),
            id(NAMESPACE, "default", "0b5e-2", &["openbao"]),
        );
        tokens.insert(
            other_ns_jwt.clone(),
            id("team-a", BACKUP_NAME, "0b5e-3", &["openbao"]),
        );
        tokens.insert(
            api_audience_jwt.clone(),
            id(
                NAMESPACE,
                BACKUP_NAME,
                BACKUP_UID,
                &["https://kubernetes.default.svc.cluster.local"],
            ),
        );
        tokens.insert(
            forged_jwt.clone(),
            id(NAMESPACE, "attacker", "0b5e-4", &["openbao"]),
        );
    }

    // Refused logins: 403 each, and no token.
    for (what, jwt) in [
        ("another ServiceAccount of the namespace", &other_sa_jwt),
        ("the same name in another namespace", &other_ns_jwt),
        ("a token for the API server's audience", &api_audience_jwt),
        ("claims the cluster does not confirm", &forged_jwt),
        (
            "a token the cluster does not know",
            &projected_token(NAMESPACE, BACKUP_NAME, BACKUP_UID, &["openbao"]),
        ),
    ] {
        let (status, body) = login_status(bao.url(), jwt).await?;
        ensure!(status == 403, "{what}: HTTP {status} {body}");
        ensure!(body["auth"].is_null(), "{what}: {body}");
    }

    // Who refused what: the role's bounds refuse another name or namespace before asking the
    // cluster; forged claims and an unknown token were asked about, and the cluster's answer
    // refused them.
    {
        let reviewed = |jwt: &str| {
            api.reviews
                .lock()
                .expect("lock")
                .iter()
                .any(|r| r["spec"]["token"] == jwt)
        };
        ensure!(!reviewed(&other_sa_jwt) && !reviewed(&other_ns_jwt));
        ensure!(
            reviewed(&forged_jwt),
            "the forged claims were never reviewed"
        );
    }

    // The good login, as the CronJob's API call: exactly the backup policy, short-lived.
    let (status, body) = login_status(bao.url(), &backup_jwt).await?;
    ensure!(status == 200, "HTTP {status} {body}");
    assert_eq!(body["auth"]["policies"], json!([HARMONY_BACKUP_POLICY]));
    assert_eq!(body["auth"]["lease_duration"], 600);
    assert_eq!(
        body["auth"]["metadata"]["service_account_name"],
        BACKUP_NAME
    );
    let token = body["auth"]["client_token"]
        .as_str()
        .context("client_token")?
        .to_owned();
    // OpenBao asked the cluster about the token, for the role's audience, with a bearer.
    let reviews = api.reviews.lock().expect("lock").clone();
    ensure!(
        reviews
            .iter()
            .any(|r| r["spec"]["token"] == backup_jwt.as_str()
                && r["spec"]["audiences"] == json!(["openbao"])),
        "{} reviews",
        reviews.len()
    );

    let backup = OpenbaoClient::new(bao.url(), OpenbaoClient::http_client()?)
        .with_token(SecretString::from(token));
    let denied = |r: Result<Option<Value>, SecretError>| {
        matches!(r, Err(SecretError::PermissionDenied { .. }))
    };
    ensure!(
        denied(backup.get("secret/data/harmony/team").await),
        "reading a document"
    );
    ensure!(
        denied(
            backup
                .post(
                    "secret/data/harmony/team",
                    &json!({"data": {"password": "x"}})
                )
                .await
        ),
        "writing a document"
    );
    ensure!(
        denied(backup.list("secret/metadata/harmony").await),
        "listing documents"
    );
    ensure!(
        denied(backup.request(Method::GET, "sys/policies/acl", None).await),
        "listing policies"
    );
    ensure!(
        denied(
            backup
                .get(&format!("sys/policies/acl/{HARMONY_BACKUP_POLICY}"))
                .await
        ),
        "reading its own policy"
    );
    ensure!(
        denied(
            backup
                .put(
                    &format!("sys/policies/acl/{HARMONY_BACKUP_POLICY}"),
                    &json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"})
                )
                .await
        ),
        "widening its own policy"
    );
    ensure!(
        denied(
            backup
                .get(&format!("auth/{KUBERNETES_AUTH_MOUNT}/config"))
                .await
        ),
        "reading the auth config"
    );
    ensure!(
        denied(
            backup
                .post(
                    &format!("auth/{KUBERNETES_AUTH_MOUNT}/role/{BACKUP_ROLE}"),
                    &json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*"})
                )
                .await
        ),
        "rewriting the role"
    );
    ensure!(
        denied(backup.get("auth/token/lookup-self").await),
        "even lookup-self (no default policy)"
    );

    // The CronJob's own script through the real `bao` CLI: sign in with the token file, save
    // a snapshot, keep the newest KEEP.
    let work = tempfile::tempdir()?;
    let dir = work.path().join("backups");
    let token_dir = work.path().join("token");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&token_dir)?;
    std::fs::write(token_dir.join("token"), &backup_jwt)?;
    for old in [
        "harmony-20200101T000000Z.snap",
        "harmony-20200102T000000Z.snap",
        "harmony-20200103T000000Z.snap",
    ] {
        std::fs::write(dir.join(old), b"old")?;
    }
    std::fs::write(
        dir.join(".partial-harmony-20200104T000000Z.snap"),
        b"left by a killed run",
    )?;
    let script = backup_script()
        .replace("/var/run/secrets/harmony", &token_dir.display().to_string())
        .replace("/backups", &dir.display().to_string());
    let bao_bin = harmony_testkit::bao_binary()?;
    let path = format!(
        "{}:{}",
        bao_bin.parent().context("bao dir")?.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = tempfile::tempdir()?;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .env_clear()
            .env("PATH", path)
            .env("HOME", home.path())
            .env("BAO_ADDR", bao.url())
            .env("KEEP", "2")
            .output(),
    )
    .await
    .context("the backup script did not finish within 60 s")??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "script failed: {stdout}\n{stderr}");
    ensure!(!stdout.contains(&backup_jwt) && !stderr.contains(&backup_jwt));
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    ensure!(names.len() == 2, "kept {names:?}: {stdout}");
    ensure!(names[0] == "harmony-20200103T000000Z.snap", "{names:?}");
    let saved = dir.join(&names[1]);
    ensure!(harmony::openbao::is_snapshot_name(&names[1]), "{names:?}");
    ensure!(stdout.contains(&format!("saved {}", names[1])), "{stdout}");
    ensure!(
        stdout.contains("pruned harmony-20200101T000000Z.snap"),
        "{stdout}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&saved)?.permissions().mode() & 0o777,
        0o600
    );
    let verified = harmony_secret::backup::verify(&saved).await?;
    ensure!(verified.raft_index > 0);
    // The snapshot token may not restore what it saved.
    let restore = harmony_secret::backup::restore(&backup, &saved, false).await;
    ensure!(
        matches!(
            restore,
            Err(harmony_secret::backup::BackupError::Openbao(
                SecretError::PermissionDenied { .. }
            ))
        ),
        "restoring: {restore:?}"
    );
    Ok(())
}

/// `--profile ha` retires the root token: a later deploy that adds `--backup-schedule` sets up
/// the Kubernetes auth mount, config and role on the `harmony-admin` token alone.
#[tokio::test]
async fn the_admin_token_enables_scheduled_backups_after_the_root_token_is_retired() -> Result<()> {
    let bao = OpenbaoServer::sealed().await?;
    let state = tempfile::tempdir()?;
    let url = url::Url::parse(bao.url())?;
    let mut options = BootstrapOptions::local(StateDir::new(state.path()));
    options.revoke_root = true;
    let first = OpenbaoBootstrap::new(&url, options.clone())?.run().await?;
    ensure!(
        first
            .changes
            .iter()
            .any(|c| c.contains("revoked the root token")),
        "{:?}",
        first.changes
    );
    options.kubernetes_backup = Some(KubernetesBackupAuth {
        kubernetes_host: "http://127.0.0.1:1".to_owned(),
        namespace: NAMESPACE.to_owned(),
        ca_cert: Some(CA.to_owned()),
    });
    let second = OpenbaoBootstrap::new(&url, options.clone())?.run().await?;
    let text = second.changes.join("\n");
    ensure!(
        text.contains(&format!("auth/{KUBERNETES_AUTH_MOUNT}/role/{BACKUP_ROLE}")),
        "{text}"
    );
    let third = OpenbaoBootstrap::new(&url, options)?.run().await?;
    ensure!(third.nothing_changed(), "{:?}", third.changes);
    Ok(())
}
