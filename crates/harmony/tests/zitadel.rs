//! Zitadel: rendered Helm values and the CoreDNS override (snapshots plus the k3d fixes asserted
//! explicitly), and Management API contract tests on wiremock (Zitadel cannot run here), with
//! request bodies as Zitadel's proto definitions document them.

use harmony::ingress::{LocalIngress, SSO_HOST};
use harmony::zitadel::{
    DeviceAppSpec, SsoClientState, ZitadelApi, ZitadelScore, ZitadelSetupError, ensure_device_app,
    issuer::{COREDNS_CUSTOM_CONFIGMAP, COREDNS_NAMESPACE, OVERRIDE_KEY},
    setup::{STATE_FILE, load_state},
};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{body_json, body_partial_json, header, header_regex, method, path},
};

const PAT: &str = "pat-3xq-SUPER-SECRET-do-not-leak";
const ISSUER: &str = "http://sso.harmony.local:8080";

// ---------------------------------------------------------------------------------------------
// Helm values

fn values_json() -> Value {
    serde_json::to_value(ZitadelScore::default().values()).expect("values serialise")
}

#[test]
fn helm_values_snapshot() {
    let yaml = ZitadelScore::default().values_yaml().expect("yaml");
    insta::assert_snapshot!(yaml);
}

/// Every object under a key ending in `ecurityContext`, with its path.
fn security_contexts<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                if k == "podSecurityContext" || k == "securityContext" {
                    out.push((p.clone(), child));
                }
                security_contexts(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                security_contexts(child, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_security_context_runs_as_uid_1000() {
    let v = values_json();
    let mut found = Vec::new();
    security_contexts(&v, String::new(), &mut found);
    let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
    for required in [
        "podSecurityContext",
        "securityContext",
        "login.podSecurityContext",
        "login.securityContext",
    ] {
        assert!(paths.contains(&required), "missing {required}: {paths:?}");
    }
    // Chart 9.34.0 never reads per-job contexts (its jobs use the chart-wide ones): none set.
    for unread in ["initJob", "setupJob"] {
        assert!(
            !paths.iter().any(|p| p.starts_with(unread)),
            "{unread} security contexts are not read by the chart: {paths:?}"
        );
    }
    for (p, ctx) in &found {
        assert_eq!(ctx["runAsUser"], 1000, "{p} must set runAsUser: 1000");
        assert_eq!(ctx["runAsNonRoot"], true, "{p}");
    }
}

#[test]
fn no_nginx_ingress_class_anywhere() {
    let yaml = ZitadelScore::default().values_yaml().expect("yaml");
    assert!(!yaml.contains("kubernetes.io/ingress.class"), "{yaml}");
    assert!(!yaml.to_lowercase().contains("nginx"), "{yaml}");
    let v = values_json();
    for ingress in [&v["ingress"], &v["login"]["ingress"]] {
        assert_eq!(ingress["enabled"], true);
        assert_eq!(ingress["className"], "", "no class: traefik serves it");
        assert_eq!(ingress["controller"], "generic");
        assert_eq!(ingress["annotations"], json!({}));
        assert_eq!(ingress["hosts"][0]["host"], "sso.harmony.local");
    }
}

#[test]
fn issuer_settings_database_and_secrets() {
    let v = values_json();
    let cfg = &v["zitadel"]["configmapConfig"];
    assert_eq!(cfg["ExternalDomain"], "sso.harmony.local");
    assert_eq!(cfg["ExternalPort"], 8080);
    assert_eq!(cfg["ExternalSecure"], false);
    // The cluster domain is not always `cluster.local`: the namespace-qualified name resolves
    // through every pod's DNS search path.
    assert_eq!(
        cfg["Database"]["Postgres"]["Host"],
        "zitadel-pg-rw.zitadel.svc"
    );
    // CNPG serves TLS by default (cloudnative-pg v1.30.0 `docs/src/ssl_connections.md`): the
    // connection is encrypted (`require`; the server certificate is CNPG's own CA).
    assert_eq!(
        cfg["Database"]["Postgres"]["User"]["SSL"]["Mode"],
        "require"
    );
    // No superuser: `zitadel init zitadel` (the init job's `initJob.command: zitadel`),
    // `zitadel setup` and `zitadel start` connect as the user (`database.Connect(config,
    // false, ...)` in zitadel `cmd/initialise/verify_zitadel.go` and `cmd/setup/setup.go`).
    assert!(cfg["Database"]["Postgres"].get("Admin").is_none(), "{cfg}");
    assert_eq!(
        cfg["FirstInstance"]["Org"]["Machine"]["Machine"]["Username"],
        "harmony-admin"
    );
    assert!(cfg["FirstInstance"]["Org"]["Machine"]["Pat"]["ExpirationDate"].is_string());
    // The masterkey is referenced, never inlined.
    assert_eq!(v["zitadel"]["masterkeySecretName"], "zitadel-masterkey");
    assert!(v["zitadel"].get("masterkey").is_none());
    // DB passwords come from CNPG's secrets.
    let env = v["env"].as_array().expect("env");
    assert!(env.iter().all(|e| e.get("value").is_none()), "{env:?}");
    assert_eq!(
        env[0]["valueFrom"]["secretKeyRef"],
        json!({"name": "zitadel-pg-app", "key": "password"})
    );
    assert!(
        env.iter()
            .all(|e| e["name"] != "ZITADEL_DATABASE_POSTGRES_ADMIN_PASSWORD"),
        "{env:?}"
    );
    let score = ZitadelScore::default();
    assert_eq!(score.pat_secret(), "harmony-admin-pat");
    assert_eq!(score.issuer(), ISSUER);
}

/// Chart zitadel-9.34.0 pulls `docker.io/alpine/k8s:<cluster version>` for the setup and
/// cleanup Jobs unless `tools.kubectl.image` is set (`charts/zitadel/templates/_helpers.tpl`,
/// `kubectl.image`); that tag often does not exist (zitadel-charts #614, #490, #419).
#[test]
fn the_jobs_kubectl_image_is_pinned_and_can_be_overridden() {
    let v = values_json();
    assert_eq!(
        v.pointer("/tools/kubectl/image")
            .cloned()
            .unwrap_or_default(),
        json!({"repository": "alpine/k8s", "tag": "1.32.3"})
    );
    let score = ZitadelScore {
        kubectl_image: "alpine/k8s:1.34.9".parse().expect("image"),
        ..ZitadelScore::default()
    };
    let v = serde_json::to_value(score.values()).expect("values");
    assert_eq!(
        v.pointer("/tools/kubectl/image/tag"),
        Some(&json!("1.34.9"))
    );
}

/// The chart names its Service `<release>-zitadel` unless the release name contains
/// `zitadel`; `fullnameOverride` pins it to the release, which the CoreDNS rewrite targets.
#[test]
fn service_is_named_after_any_release() {
    let score = ZitadelScore {
        release: "sso".into(),
        ..ZitadelScore::default()
    };
    let v = serde_json::to_value(score.values()).expect("values serialise");
    assert_eq!(v["fullnameOverride"], "sso");
    assert_eq!(
        score.coredns_rewrite().service_fqdn,
        "sso.zitadel.svc.cluster.local"
    );
}

// ---------------------------------------------------------------------------------------------
// CoreDNS

#[test]
fn coredns_override_snapshot() {
    let rewrite = ZitadelScore::default().coredns_rewrite();
    let cm = rewrite.configmap();
    insta::assert_yaml_snapshot!(cm);
    assert_eq!(cm.metadata.name.as_deref(), Some(COREDNS_CUSTOM_CONFIGMAP));
    assert_eq!(cm.metadata.namespace.as_deref(), Some(COREDNS_NAMESPACE));
    let data = cm.data.expect("data");
    assert_eq!(
        data[OVERRIDE_KEY],
        "rewrite name sso.harmony.local zitadel.zitadel.svc.cluster.local\n"
    );
    assert!(
        OVERRIDE_KEY.ends_with(".override"),
        "k3s imports *.override"
    );
}

#[test]
fn coredns_restart_annotation_changes_only_with_the_override() {
    let a = ZitadelScore::default().coredns_rewrite();
    let same = ZitadelScore::default().coredns_rewrite();
    let other = ZitadelScore {
        external_domain: "sso.example.local".into(),
        ..ZitadelScore::default()
    };
    let b = other.coredns_rewrite();
    assert_eq!(a.coredns_restart(), same.coredns_restart());
    assert_ne!(a.coredns_restart(), b.coredns_restart());
    let patch = serde_json::to_value(a.coredns_restart()).expect("json");
    assert_eq!(patch["kind"], "Deployment");
    // Only the annotation: nothing else of CoreDNS is claimed.
    assert_eq!(
        patch["spec"].as_object().map(|o| o.len()),
        Some(1),
        "{patch}"
    );
}

// ---------------------------------------------------------------------------------------------
// Management API contract tests

/// The stand-in's load balancer: `sso.harmony.local` resolves to the mock server.
fn ingress(server: &MockServer) -> LocalIngress {
    LocalIngress::new(*server.address(), [SSO_HOST])
}

/// The client exactly as the deploy builds it, pointed at the stand-in.
fn api(server: &MockServer) -> ZitadelApi {
    ZitadelApi::via_ingress(&ingress(server), SSO_HOST, SecretString::from(PAT)).expect("client")
}

/// The Host a browser sends to the stand-in: the name and the load balancer's port.
fn host(server: &MockServer) -> String {
    format!("{SSO_HOST}:{}", server.address().port())
}

fn name_query(name: &str) -> Value {
    json!({ "queries": [{ "nameQuery": { "name": name, "method": "TEXT_QUERY_METHOD_EQUALS" } }] })
}

/// Authenticated with the PAT, and the Host carries a port (as a browser's does through the
/// load balancer).
fn authed(m: wiremock::MockBuilder) -> wiremock::MockBuilder {
    m.and(header("authorization", format!("Bearer {PAT}").as_str()))
        .and(header_regex("host", r"^sso\.harmony\.local:[0-9]+$"))
}

// Paths and JSON field names below: zitadel/zitadel `proto/zitadel/management.proto`
// (ListProjects, AddProject, UpdateProject, ListProjectRoles, AddProjectRole, ListUsers,
// ListUserGrants, AddUserGrant, UpdateUserGrant; `google.api.http` under base path
// `/management/v1`), `project.proto` (Project, RoleQuery.key_query) and `user.proto`
// (SearchQuery.login_name_query, UserGrantQuery.user_id_query / project_id_query), v4.13.0.
// proto3 JSON leaves out empty lists and `false` booleans, as Zitadel's gateway does.

const ALICE: &str = "alice@zitadel.sso.harmony.local";

fn role_query(key: &str) -> Value {
    json!({ "queries": [{ "keyQuery": { "key": key, "method": "TEXT_QUERY_METHOD_EQUALS" } }] })
}

fn login_query(login: &str) -> Value {
    json!({ "queries": [{ "loginNameQuery": { "loginName": login, "method": "TEXT_QUERY_METHOD_EQUALS" } }] })
}

fn grant_query(user_id: &str, project_id: &str) -> Value {
    json!({ "queries": [
        { "userIdQuery": { "userId": user_id } },
        { "projectIdQuery": { "projectId": project_id } }
    ] })
}

/// ListUsers answering with one human user `alice` (id `u-alice`) for [`ALICE`].
async fn mount_alice(server: &MockServer) {
    authed(Mock::given(method("POST")).and(path("/management/v1/users/_search")))
        .and(body_json(login_query(ALICE)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "details": {"totalResult": "1"},
            "result": [{
                "id": "u-alice",
                "state": "USER_STATE_ACTIVE",
                "userName": "alice",
                "loginNames": [ALICE],
                "preferredLoginName": ALICE,
                "human": {"profile": {"firstName": "Alice", "lastName": "Dev"}}
            }]
        })))
        .mount(server)
        .await;
}

/// Both project roles exist in project `project_id`.
async fn mount_role_exists(server: &MockServer, project_id: &str) {
    for role in ["harmony-developer", "harmony-ops"] {
        authed(Mock::given(method("POST")).and(path(format!(
            "/management/v1/projects/{project_id}/roles/_search"
        ))))
        .and(body_json(role_query(role)))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "details": {"totalResult": "1"},
            "result": [{"key": role, "displayName": role}]
        })))
        .mount(server)
        .await;
    }
}

/// The device app `333@harmony` exists in project `project_id`.
async fn mount_app_exists(server: &MockServer, project_id: &str) {
    authed(Mock::given(method("POST")).and(path(format!(
        "/management/v1/projects/{project_id}/apps/_search"
    ))))
    .and(body_json(name_query("harmony-cli")))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "result": [{
            "id": "333",
            "name": "harmony-cli",
            "oidcConfig": {"clientId": "333@harmony",
                           "idTokenRoleAssertion": true, "idTokenUserinfoAssertion": true}
        }]
    })))
    .mount(server)
    .await;
}

fn spec_granting(users: &[&str]) -> DeviceAppSpec {
    DeviceAppSpec {
        grant_users: users.iter().map(|u| (*u).to_owned()).collect(),
        ..DeviceAppSpec::default()
    }
}

#[tokio::test]
async fn creates_project_and_device_app_and_saves_client_id() {
    let server = MockServer::start().await;
    // Empty results: proto3 JSON omits the empty `result` list.
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/_search")))
        .and(body_json(name_query("harmony")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"details": {"totalResult": "0"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    // Members only: Zitadel refuses to sign in users without a grant on the project.
    authed(Mock::given(method("POST")).and(path("/management/v1/projects")))
        .and(body_json(json!({
            "name": "harmony",
            "projectRoleAssertion": true,
            "projectRoleCheck": true,
            "hasProjectCheck": true
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "270000000000000001",
            "details": {"sequence": "2", "resourceOwner": "269999999999999999"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    authed(Mock::given(method("POST")).and(path(
        "/management/v1/projects/270000000000000001/roles/_search",
    )))
    .and(body_json(role_query("harmony-developer")))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
    .expect(1)
    .mount(&server)
    .await;
    authed(
        Mock::given(method("POST")).and(path("/management/v1/projects/270000000000000001/roles")),
    )
    .and(body_json(
        json!({"roleKey": "harmony-developer", "displayName": "Harmony developer"}),
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {"sequence": "3"}})))
    .expect(1)
    .mount(&server)
    .await;
    authed(Mock::given(method("POST")).and(path(
        "/management/v1/projects/270000000000000001/roles/_search",
    )))
    .and(body_json(role_query("harmony-ops")))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
    .expect(1)
    .mount(&server)
    .await;
    authed(
        Mock::given(method("POST")).and(path("/management/v1/projects/270000000000000001/roles")),
    )
    .and(body_json(
        json!({"roleKey": "harmony-ops", "displayName": "Harmony operator"}),
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {"sequence": "4"}})))
    .expect(1)
    .mount(&server)
    .await;
    mount_alice(&server).await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/grants/_search")))
        .and(body_json(grant_query("u-alice", "270000000000000001")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
        .expect(1)
        .mount(&server)
        .await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/u-alice/grants")))
        .and(body_json(json!({
            "projectId": "270000000000000001",
            "roleKeys": ["harmony-developer"]
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "userGrantId": "270000000000000009",
            "details": {"sequence": "4"}
        })))
        .expect(1)
        .mount(&server)
        .await;
    authed(Mock::given(method("POST")).and(path(
        "/management/v1/projects/270000000000000001/apps/_search",
    )))
    .and(body_json(name_query("harmony-cli")))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
    .expect(1)
    .mount(&server)
    .await;
    authed(
        Mock::given(method("POST"))
            .and(path("/management/v1/projects/270000000000000001/apps/oidc")),
    )
    .and(body_partial_json(json!({
        "name": "harmony-cli",
        "responseTypes": ["OIDC_RESPONSE_TYPE_CODE"],
        "grantTypes": ["OIDC_GRANT_TYPE_DEVICE_CODE", "OIDC_GRANT_TYPE_REFRESH_TOKEN"],
        "appType": "OIDC_APP_TYPE_NATIVE",
        "authMethodType": "OIDC_AUTH_METHOD_TYPE_NONE",
        "version": "OIDC_VERSION_1_0",
        "idTokenRoleAssertion": true,
        "idTokenUserinfoAssertion": true
    })))
    .respond_with(ResponseTemplate::new(200).set_body_json(json!({
        "appId": "270000000000000002",
        "details": {"sequence": "3"},
        "clientId": "270000000000000002@harmony",
        "noneCompliant": false
    })))
    .expect(1)
    .mount(&server)
    .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("zitadel").join("harmony");
    let state = ensure_device_app(&api(&server), &spec_granting(&[ALICE]), ISSUER, &state_dir)
        .await
        .expect("setup");
    server.verify().await;
    let expected = SsoClientState {
        client_id: "270000000000000002@harmony".into(),
        project_id: "270000000000000001".into(),
        issuer: ISSUER.into(),
    };
    assert_eq!(state, expected);
    assert_eq!(load_state(&state_dir).await.expect("load"), Some(expected));
    let raw = std::fs::read_to_string(state_dir.join(STATE_FILE)).expect("state file");
    assert!(!raw.contains(PAT));
    // The app carries no redirect URI and no secret-based auth.
    let reqs = server.received_requests().await.expect("recording");
    let create = reqs
        .iter()
        .find(|r| r.url.path().ends_with("/apps/oidc"))
        .expect("create app request");
    let body: Value = serde_json::from_slice(&create.body).expect("json body");
    assert_eq!(body["redirectUris"], json!([]));
}

#[tokio::test]
async fn finds_existing_project_and_app_without_creating() {
    let server = MockServer::start().await;
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/_search")))
        .and(body_json(name_query("harmony")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "details": {"totalResult": "2"},
            // A prefix match from a lenient server must not be taken for ours.
            "result": [
                {"id": "111", "name": "harmony-old", "state": "PROJECT_STATE_ACTIVE"},
                {"id": "222", "name": "harmony", "state": "PROJECT_STATE_ACTIVE",
                 "projectRoleAssertion": true, "projectRoleCheck": true, "hasProjectCheck": true}
            ]
        })))
        .expect(2)
        .mount(&server)
        .await;
    mount_role_exists(&server, "222").await;
    mount_alice(&server).await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/grants/_search")))
        .and(body_json(grant_query("u-alice", "222")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{
                "id": "g-1", "userId": "u-alice", "projectId": "222",
                "roleKeys": ["harmony-developer"], "state": "USER_GRANT_STATE_ACTIVE"
            }]
        })))
        .expect(2)
        .mount(&server)
        .await;
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/222/apps/_search")))
        .and(body_json(name_query("harmony-cli")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{
                "id": "333",
                "name": "harmony-cli",
                "state": "APP_STATE_ACTIVE",
                "oidcConfig": {
                    "clientId": "333@harmony",
                    "grantTypes": ["OIDC_GRANT_TYPE_DEVICE_CODE", "OIDC_GRANT_TYPE_REFRESH_TOKEN"],
                    "appType": "OIDC_APP_TYPE_NATIVE",
                    "authMethodType": "OIDC_AUTH_METHOD_TYPE_NONE",
                    "idTokenRoleAssertion": true,
                    "idTokenUserinfoAssertion": true
                }
            }]
        })))
        .expect(2)
        .mount(&server)
        .await;
    // Creating or changing anything would be a duplicate.
    for (verb, p) in [
        ("POST", "/management/v1/projects"),
        ("PUT", "/management/v1/projects/222"),
        ("POST", "/management/v1/projects/222/roles"),
        ("POST", "/management/v1/users/u-alice/grants"),
        ("PUT", "/management/v1/users/u-alice/grants/g-1"),
        ("PUT", "/management/v1/projects/222/apps/333/oidc_config"),
    ] {
        Mock::given(method(verb))
            .and(path(p))
            .respond_with(ResponseTemplate::new(500))
            .expect(0)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/management/v1/projects/222/apps/oidc"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..2 {
        let state = ensure_device_app(&api(&server), &spec_granting(&[ALICE]), ISSUER, dir.path())
            .await
            .expect("setup");
        assert_eq!(state.client_id, "333@harmony");
        assert_eq!(state.project_id, "222");
    }
    server.verify().await;
}

/// A project an older Harmony created with Zitadel's defaults (no role check) is updated, not
/// duplicated: UpdateProject sets every field, so its name, role assertion and branding are
/// sent as found.
#[tokio::test]
async fn existing_project_without_role_checks_is_made_members_only() {
    let server = MockServer::start().await;
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/_search")))
        .and(body_json(name_query("harmony")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{
                "id": "222", "name": "harmony", "state": "PROJECT_STATE_ACTIVE",
                "projectRoleAssertion": true,
                "privateLabelingSetting": "PRIVATE_LABELING_SETTING_UNSPECIFIED"
            }]
        })))
        .mount(&server)
        .await;
    authed(Mock::given(method("PUT")).and(path("/management/v1/projects/222")))
        .and(body_json(json!({
            "name": "harmony",
            "projectRoleAssertion": true,
            "projectRoleCheck": true,
            "hasProjectCheck": true,
            "privateLabelingSetting": "PRIVATE_LABELING_SETTING_UNSPECIFIED"
        })))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"details": {"sequence": "9"}})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/management/v1/projects"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    mount_role_exists(&server, "222").await;
    mount_app_exists(&server, "222").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ensure_device_app(&api(&server), &DeviceAppSpec::default(), ISSUER, dir.path())
        .await
        .expect("setup");
    assert_eq!(state.project_id, "222");
    server.verify().await;
}

/// A user already granted something else on the project gets the role added to that grant
/// (Zitadel allows one grant per user and project); a missing `grant_if_present` user (the
/// default admin) is skipped.
#[tokio::test]
async fn role_is_added_to_an_existing_grant_and_absent_optional_users_are_skipped() {
    let server = MockServer::start().await;
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/_search")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{"id": "222", "name": "harmony", "projectRoleAssertion": true,
                        "projectRoleCheck": true, "hasProjectCheck": true}]
        })))
        .mount(&server)
        .await;
    mount_role_exists(&server, "222").await;
    mount_app_exists(&server, "222").await;
    mount_alice(&server).await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/_search")))
        .and(body_json(login_query(
            "zitadel-admin@zitadel.sso.harmony.local",
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
        .expect(1)
        .mount(&server)
        .await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/grants/_search")))
        .and(body_json(grant_query("u-alice", "222")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{"id": "g-1", "userId": "u-alice", "projectId": "222",
                        "roleKeys": ["viewer"]}]
        })))
        .mount(&server)
        .await;
    authed(Mock::given(method("PUT")).and(path("/management/v1/users/u-alice/grants/g-1")))
        .and(body_json(
            json!({"roleKeys": ["viewer", "harmony-developer"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/management/v1/users/u-alice/grants"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let spec = DeviceAppSpec {
        grant_if_present: vec!["zitadel-admin@zitadel.sso.harmony.local".into()],
        ..spec_granting(&[ALICE])
    };
    let dir = tempfile::tempdir().expect("tempdir");
    ensure_device_app(&api(&server), &spec, ISSUER, dir.path())
        .await
        .expect("setup");
    server.verify().await;
}

#[tokio::test]
async fn unknown_grant_user_is_a_clear_error_and_nothing_is_saved() {
    let server = MockServer::start().await;
    authed(Mock::given(method("POST")).and(path("/management/v1/projects/_search")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result": [{"id": "222", "name": "harmony", "projectRoleAssertion": true,
                        "projectRoleCheck": true, "hasProjectCheck": true}]
        })))
        .mount(&server)
        .await;
    mount_role_exists(&server, "222").await;
    mount_app_exists(&server, "222").await;
    authed(Mock::given(method("POST")).and(path("/management/v1/users/_search")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ensure_device_app(&api(&server), &spec_granting(&["bob"]), ISSUER, dir.path())
        .await
        .expect_err("no such user");
    assert!(
        matches!(err, ZitadelSetupError::UserNotFound { ref login } if login == "bob"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("--grant-user") && msg.contains("console"),
        "{msg}"
    );
    assert!(!dir.path().join(STATE_FILE).exists());
}

#[tokio::test]
async fn rejected_pat_is_a_clear_error_without_the_pat() {
    for status in [401u16, 403] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/management/v1/projects/_search"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "code": 16,
                "message": "Errors.Token.Invalid (AUTH-7fs1e)"
            })))
            .mount(&server)
            .await;
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ensure_device_app(&api(&server), &DeviceAppSpec::default(), ISSUER, dir.path())
            .await
            .expect_err("PAT rejected");
        assert!(
            matches!(err, ZitadelSetupError::PatRejected { status: s, .. } if s.as_u16() == status),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("stale"), "{msg}");
        assert!(msg.contains("-pat"), "names the Secret: {msg}");
        assert!(msg.contains("--cleanup"), "says what to do: {msg}");
        assert!(!msg.contains(PAT) && !format!("{err:?}").contains(PAT));
        assert!(
            !dir.path().join(STATE_FILE).exists(),
            "nothing saved on failure"
        );
    }
}

#[tokio::test]
async fn server_error_carries_zitadels_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/management/v1/projects/_search"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"details": {}})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/management/v1/projects"))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "code": 6, "message": "Errors.Project.AlreadyExists"
        })))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ensure_device_app(&api(&server), &DeviceAppSpec::default(), ISSUER, dir.path())
        .await
        .expect_err("conflict");
    let msg = err.to_string();
    assert!(
        msg.contains("409") && msg.contains("Errors.Project.AlreadyExists"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// The same calls against a stand-in with state (`zitadel_support::management`, which says what
// of Zitadel it encodes): what one run creates, the next finds.

use zitadel_support::management::ZitadelStandIn;

const ADMIN: &str = "zitadel-admin@zitadel.sso.harmony.local";

async fn standin(users: &[&str]) -> (MockServer, ZitadelStandIn) {
    let server = MockServer::start().await;
    let standin = ZitadelStandIn::new(PAT, users);
    Mock::given(wiremock::matchers::any())
        .respond_with(standin.clone())
        .mount(&server)
        .await;
    (server, standin)
}

/// As the deploy asks when it set the first admin's password.
fn deploy_spec() -> DeviceAppSpec {
    DeviceAppSpec {
        grant_users: vec![ALICE.into()],
        grant_if_present: vec![ADMIN.into()],
        ..DeviceAppSpec::default()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_fresh_instance_gets_both_roles_their_assertion_in_the_id_token_and_a_rerun_writes_nothing()
 {
    let (server, zitadel) = standin(&[ALICE, ADMIN]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ensure_device_app(&api(&server), &deploy_spec(), ISSUER, dir.path())
        .await
        .expect("setup");
    {
        let s = zitadel.state.lock().expect("lock");
        let project = s.project("harmony").expect("project");
        assert_eq!(project["id"], first.project_id.as_str());
        for flag in [
            "projectRoleAssertion",
            "projectRoleCheck",
            "hasProjectCheck",
        ] {
            assert_eq!(project[flag], true, "{flag}: {project}");
        }
        let roles: Vec<String> = s.roles.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(sorted(roles), ["harmony-developer", "harmony-ops"]);
        let app = s.app_config("harmony-cli").expect("app");
        assert_eq!(app["clientId"], first.client_id.as_str());
        assert_eq!(app["idTokenRoleAssertion"], true, "{app}");
        assert_eq!(app["idTokenUserinfoAssertion"], true, "{app}");
        assert_eq!(
            app["grantTypes"],
            json!([
                "OIDC_GRANT_TYPE_DEVICE_CODE",
                "OIDC_GRANT_TYPE_REFRESH_TOKEN"
            ])
        );
        assert_eq!(app["authMethodType"], "OIDC_AUTH_METHOD_TYPE_NONE");
        // The admin (password set by this deploy) gets both roles, a --grant-user the
        // developers' role only.
        assert_eq!(
            sorted(s.roles_of(ADMIN)),
            ["harmony-developer", "harmony-ops"]
        );
        assert_eq!(s.roles_of(ALICE), ["harmony-developer"]);
    }
    let writes = zitadel.state.lock().expect("lock").writes.clone();
    let again = ensure_device_app(&api(&server), &deploy_spec(), ISSUER, dir.path())
        .await
        .expect("re-run");
    assert_eq!(again, first);
    let after = zitadel.state.lock().expect("lock").writes.clone();
    assert_eq!(after, writes, "a re-run converges without writing");
}

/// What an older Harmony left: members-only project without the role assertion, one role, the
/// admin granted it, an app without the id_token assertions (and settings someone changed in the
/// console). Everything converges; what Harmony does not manage is sent back as found.
#[tokio::test]
async fn an_older_setup_converges_and_keeps_what_it_does_not_manage() {
    let (server, zitadel) = standin(&[ALICE, ADMIN]).await;
    {
        let mut s = zitadel.state.lock().expect("lock");
        let admin = s
            .users
            .iter()
            .find(|u| u.login == ADMIN)
            .expect("admin")
            .id
            .clone();
        s.projects.push(json!({
            "id": "222", "name": "harmony", "state": "PROJECT_STATE_ACTIVE",
            "projectRoleAssertion": false, "projectRoleCheck": true, "hasProjectCheck": true,
            "privateLabelingSetting": "PRIVATE_LABELING_SETTING_ENFORCE_PROJECT_RESOURCE_OWNER_POLICY"
        }));
        s.roles.push(("222".into(), "harmony-developer".into()));
        s.grants.push(zitadel_support::management::Grant {
            id: "g-admin".into(),
            user_id: admin,
            project_id: "222".into(),
            role_keys: vec!["harmony-developer".into()],
        });
        s.apps.push(("222".into(), json!({
            "id": "333", "name": "harmony-cli", "state": "APP_STATE_ACTIVE",
            "oidcConfig": {
                "clientId": "333@harmony", "version": "OIDC_VERSION_1_0",
                "redirectUris": [], "responseTypes": ["OIDC_RESPONSE_TYPE_CODE"],
                "grantTypes": ["OIDC_GRANT_TYPE_DEVICE_CODE", "OIDC_GRANT_TYPE_REFRESH_TOKEN"],
                "appType": "OIDC_APP_TYPE_NATIVE", "authMethodType": "OIDC_AUTH_METHOD_TYPE_NONE",
                "postLogoutRedirectUris": [], "devMode": true,
                "accessTokenType": "OIDC_TOKEN_TYPE_JWT", "accessTokenRoleAssertion": true,
                "idTokenRoleAssertion": false, "idTokenUserinfoAssertion": true,
                "clockSkew": "1s", "additionalOrigins": ["http://localhost:3000"],
                "skipNativeAppSuccessPage": false, "backChannelLogoutUri": "",
                "loginVersion": ""
            }
        })));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ensure_device_app(&api(&server), &deploy_spec(), ISSUER, dir.path())
        .await
        .expect("setup");
    assert_eq!(
        (state.project_id.as_str(), state.client_id.as_str()),
        ("222", "333@harmony")
    );
    let s = zitadel.state.lock().expect("lock");
    let project = s.project("harmony").expect("project");
    assert_eq!(project["projectRoleAssertion"], true);
    assert_eq!(
        project["privateLabelingSetting"],
        "PRIVATE_LABELING_SETTING_ENFORCE_PROJECT_RESOURCE_OWNER_POLICY",
        "branding kept"
    );
    assert_eq!(s.projects.len(), 1, "no second project");
    let app = s.app_config("harmony-cli").expect("app");
    assert_eq!(app["idTokenRoleAssertion"], true);
    assert_eq!(app["idTokenUserinfoAssertion"], true);
    for (field, kept) in [
        ("devMode", json!(true)),
        ("accessTokenType", json!("OIDC_TOKEN_TYPE_JWT")),
        ("accessTokenRoleAssertion", json!(true)),
        ("clockSkew", json!("1s")),
        ("additionalOrigins", json!(["http://localhost:3000"])),
        ("appType", json!("OIDC_APP_TYPE_NATIVE")),
        ("authMethodType", json!("OIDC_AUTH_METHOD_TYPE_NONE")),
        (
            "grantTypes",
            json!([
                "OIDC_GRANT_TYPE_DEVICE_CODE",
                "OIDC_GRANT_TYPE_REFRESH_TOKEN"
            ]),
        ),
        ("responseTypes", json!(["OIDC_RESPONSE_TYPE_CODE"])),
    ] {
        assert_eq!(app[field], kept, "{field} kept: {app}");
    }
    // One grant per user and project: the admin's grant got the ops role added.
    assert_eq!(
        sorted(s.roles_of(ADMIN)),
        ["harmony-developer", "harmony-ops"]
    );
    assert_eq!(s.grants.iter().filter(|g| g.id == "g-admin").count(), 1);
    let writes: Vec<String> = s.writes.iter().map(|(m, p)| format!("{m} {p}")).collect();
    assert_eq!(
        writes,
        [
            "PUT /management/v1/projects/222",
            "POST /management/v1/projects/222/roles",
            "POST /management/v1/users/270000000000000001/grants",
            "PUT /management/v1/users/270000000000000002/grants/g-admin",
            "PUT /management/v1/projects/222/apps/333/oidc_config",
        ]
    );
}

/// The role names come from `--developer-role` / `--ops-role`; an admin whose password the
/// deploy did not set (`first_admin_grant` leaves `grant_if_present` empty) gets nothing.
#[tokio::test]
async fn role_names_are_the_flags_and_an_admin_the_deploy_did_not_set_up_gets_no_role() {
    let (server, zitadel) = standin(&[ALICE, ADMIN]).await;
    let spec = DeviceAppSpec {
        role_key: "app-dev".into(),
        ops_role_key: "app-ops".into(),
        grant_users: vec![ALICE.into()],
        ..DeviceAppSpec::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    ensure_device_app(&api(&server), &spec, ISSUER, dir.path())
        .await
        .expect("setup");
    let s = zitadel.state.lock().expect("lock");
    let roles: Vec<String> = s.roles.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(sorted(roles), ["app-dev", "app-ops"]);
    assert_eq!(s.roles_of(ALICE), ["app-dev"]);
    assert!(s.roles_of(ADMIN).is_empty(), "{:?}", s.roles_of(ADMIN));
}

/// The stand-in refuses an update that changes nothing, as Zitadel does: the reason the setup
/// reads first and sends nothing when everything is on.
#[tokio::test]
async fn an_update_that_changes_nothing_is_refused_as_zitadel_refuses_it() {
    let (server, _zitadel) = standin(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = ensure_device_app(&api(&server), &DeviceAppSpec::default(), ISSUER, dir.path())
        .await
        .expect("setup");
    let app = api(&server)
        .find_app(&state.project_id, "harmony-cli")
        .await
        .expect("list")
        .expect("app");
    let err = api(&server)
        .converge_app_assertions(&state.project_id, &app)
        .await
        .expect_err("no change");
    assert!(
        err.to_string().contains("400") && err.to_string().contains("Errors.NoChangesFound"),
        "{err}"
    );
}

/// Zitadel's discovery as Zitadel answers it: the issuer is the request's origin, built from the
/// Host it receives. Encoded from zitadel/zitadel v4.13.0
/// `internal/api/http/middleware/origin_interceptor.go` (`composeDomainContext`: the instance
/// host is the first of the forwarded headers — `Forwarded`, `X-Zitadel-Forwarded`,
/// `X-Forwarded-Host` — else `r.Host`; `sanitizeHost` keeps a valid port; the protocol is `http`
/// unless forwarded or enforced) and `internal/api/http/domain.go` (`DomainCtx.Origin()` =
/// protocol + "://" + host), which the OIDC provider uses as its issuer. Traefik forwards the
/// Host unchanged.
struct ZitadelDiscovery;

impl wiremock::Respond for ZitadelDiscovery {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let Some(host) = header("x-forwarded-host").or_else(|| header("host")) else {
            return ResponseTemplate::new(404).set_body_string("Instance not found");
        };
        let proto = header("x-forwarded-proto").unwrap_or_else(|| "http".to_owned());
        let issuer = format!("{proto}://{host}");
        ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "device_authorization_endpoint": format!("{issuer}/oauth/v2/device_authorization"),
        }))
    }
}

async fn zitadel_standin() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ZitadelDiscovery)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn the_deploys_client_sees_the_issuer_it_configures() {
    let server = zitadel_standin().await;
    // The score's ExternalPort is the load balancer's port, as on k3d (8080 both).
    let score = ZitadelScore {
        external_port: server.address().port(),
        ..ZitadelScore::default()
    };
    assert_eq!(
        score.issuer(),
        format!("http://{}", host(&server)),
        "the issuer is the name plus the load balancer's port"
    );
    let api = score
        .api_via(&ingress(&server), SecretString::from(PAT))
        .expect("client");
    api.wait_ready(&score.issuer(), 1, std::time::Duration::ZERO)
        .await
        .expect("the issuer Zitadel announces is the one Harmony configures");
}

#[tokio::test]
async fn a_port_less_host_gets_another_issuer_from_zitadel() {
    // What the deploy used to do: call the load balancer's address with `Host: sso.harmony.local`.
    let server = zitadel_standin().await;
    let score = ZitadelScore {
        external_port: server.address().port(),
        ..ZitadelScore::default()
    };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::HOST,
        reqwest::header::HeaderValue::from_static(SSO_HOST),
    );
    let api = ZitadelApi::with_client_builder(
        Url::parse(&server.uri()).expect("url"),
        SecretString::from(PAT),
        reqwest::Client::builder().default_headers(headers),
    )
    .expect("client");
    let err = api
        .wait_ready(&score.issuer(), 1, std::time::Duration::ZERO)
        .await
        .expect_err("a port-less Host makes Zitadel announce a port-less issuer");
    match err {
        ZitadelSetupError::IssuerMismatch { found, .. } => {
            assert_eq!(found, "http://sso.harmony.local");
        }
        other => panic!("expected an issuer mismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn wait_ready_checks_the_announced_issuer() {
    let server = zitadel_standin().await;
    let api = api(&server);
    let expected = format!("http://{}", host(&server));
    api.wait_ready(&expected, 1, std::time::Duration::ZERO)
        .await
        .expect("ready");
    let err = api
        .wait_ready(ISSUER, 1, std::time::Duration::ZERO)
        .await
        .expect_err("mismatch");
    assert!(
        matches!(err, ZitadelSetupError::IssuerMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn wait_ready_is_bounded_when_zitadel_never_answers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Instance not found"))
        .expect(3)
        .mount(&server)
        .await;
    let err = api(&server)
        .wait_ready(ISSUER, 3, std::time::Duration::from_millis(5))
        .await
        .expect_err("never ready");
    let msg = format!("{err}");
    assert!(msg.contains("after 3 attempts"), "{msg}");
    server.verify().await;
}

// ---------------------------------------------------------------------------------------------
// Kubernetes side against a scripted API (tower_test)

mod zitadel_support;

use anyhow::{Result, ensure};
use base64::Engine as _;
use harmony::cnpg::RetryPolicy;
use harmony::zitadel::{MASTERKEY_LEN, ZitadelError, apply_in_cluster_issuer};
use http::{Method, StatusCode};
use secrecy::ExposeSecret;
use tracing_test::traced_test;
use zitadel_support::{
    body_json as request_json, mock_client, next_request, no_more_requests, not_found, query,
    respond,
};

const MASTERKEY_PATH: &str = "/api/v1/namespaces/zitadel/secrets/zitadel-masterkey";

fn secret_json(name: &str, key: &str, value: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "zitadel"},
        "data": { key: base64::engine::general_purpose::STANDARD.encode(value) },
    })
}

#[tokio::test]
#[traced_test]
async fn masterkey_is_created_once_immutable_and_not_logged() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == MASTERKEY_PATH);
        not_found(send, "secrets \"zitadel-masterkey\"");
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH && request.uri().path() == MASTERKEY_PATH);
        ensure!(query(&request).contains("fieldManager=harmony"));
        let body = request_json(request).await?;
        respond(send, StatusCode::OK, &body);
        Ok::<_, anyhow::Error>(body)
    });
    ZitadelScore::default().ensure_masterkey(&client).await?;
    let body = api.await??;
    assert_eq!(body["immutable"], true, "{body}");
    let key = base64::engine::general_purpose::STANDARD
        .decode(body["data"]["masterkey"].as_str().expect("masterkey data"))?;
    let key = String::from_utf8(key)?;
    assert_eq!(key.len(), MASTERKEY_LEN);
    assert!(!logs_contain(&key), "the masterkey must not be logged");
    assert!(logs_contain("created the Zitadel masterkey"));
    Ok(())
}

#[tokio::test]
async fn existing_masterkey_is_reused_never_rewritten() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == MASTERKEY_PATH);
        respond(
            send,
            StatusCode::OK,
            &secret_json(
                "zitadel-masterkey",
                "masterkey",
                "abcdefghijklmnopqrstuvwxyz012345",
            ),
        );
        // No PATCH/POST may follow.
        no_more_requests(&mut server).await
    });
    ZitadelScore::default().ensure_masterkey(&client).await?;
    drop(client);
    api.await??;
    Ok(())
}

#[tokio::test]
async fn a_malformed_masterkey_is_an_error_not_a_replacement() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        respond(
            send,
            StatusCode::OK,
            &secret_json("zitadel-masterkey", "masterkey", "short"),
        );
        no_more_requests(&mut server).await
    });
    let err = ZitadelScore::default()
        .ensure_masterkey(&client)
        .await
        .expect_err("short key");
    assert!(
        matches!(err, ZitadelError::MasterkeyInvalid { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("short"));
    drop(client);
    api.await??;
    Ok(())
}

#[tokio::test]
async fn in_cluster_issuer_applies_the_override_and_the_restart_annotation() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH);
        ensure!(
            request.uri().path() == "/api/v1/namespaces/kube-system/configmaps/coredns-custom",
            "{}",
            request.uri()
        );
        let cm = request_json(request).await?;
        ensure!(
            cm["data"].as_object().map(|d| d.len()) == Some(1),
            "only our key: {cm}"
        );
        ensure!(
            cm["data"][OVERRIDE_KEY]
                == "rewrite name sso.harmony.local zitadel.zitadel.svc.cluster.local\n",
            "{cm}"
        );
        respond(send, StatusCode::OK, &cm);

        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH);
        ensure!(
            request.uri().path() == "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
            "{}",
            request.uri()
        );
        let dep = request_json(request).await?;
        ensure!(dep["spec"].get("selector").is_none(), "no selector: {dep}");
        let annotations = &dep["spec"]["template"]["metadata"]["annotations"];
        ensure!(
            annotations["harmony.io/coredns-override-sha256"]
                .as_str()
                .is_some_and(|h| h.len() == 64),
            "{dep}"
        );
        // The API server answers with the whole Deployment; the partial type must accept it.
        let mut full = dep.clone();
        full["spec"]["selector"] = json!({"matchLabels": {"k8s-app": "kube-dns"}});
        full["spec"]["replicas"] = json!(1);
        full["status"] = json!({"readyReplicas": 1});
        respond(send, StatusCode::OK, &full);
        Ok::<_, anyhow::Error>(())
    });
    apply_in_cluster_issuer(&client, &ZitadelScore::default().coredns_rewrite()).await?;
    api.await??;
    Ok(())
}

#[tokio::test]
async fn pat_is_read_after_the_setup_job_writes_it() -> Result<()> {
    let built = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let b = built.clone();
    let servers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = servers.clone();
    let connect = move || {
        let n = b.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let (client, mut server) = mock_client();
        s.lock().expect("lock").push(tokio::spawn(async move {
            let (request, send) = next_request(&mut server).await?;
            ensure!(
                request.uri().path() == "/api/v1/namespaces/zitadel/secrets/harmony-admin-pat",
                "{}",
                request.uri()
            );
            if n < 2 {
                not_found(send, "secrets \"harmony-admin-pat\"");
            } else {
                respond(
                    send,
                    StatusCode::OK,
                    &secret_json("harmony-admin-pat", "pat", PAT),
                );
            }
            Ok::<_, anyhow::Error>(())
        }));
        std::future::ready(Ok(client))
    };
    let pat = ZitadelScore::default()
        .read_pat(&connect, RetryPolicy::immediate(3))
        .await?;
    assert_eq!(pat.expose_secret(), PAT);
    assert_eq!(built.load(std::sync::atomic::Ordering::SeqCst), 2);
    let handles = std::mem::take(&mut *servers.lock().expect("lock"));
    for h in handles {
        h.await??;
    }
    Ok(())
}

#[tokio::test]
async fn missing_pat_secret_explains_the_fresh_database_rule() -> Result<()> {
    let connect = || {
        let (client, mut server) = mock_client();
        tokio::spawn(async move {
            if let Ok((_, send)) = next_request(&mut server).await {
                not_found(send, "secrets \"harmony-admin-pat\"");
            }
        });
        std::future::ready(Ok(client))
    };
    let err = ZitadelScore::default()
        .read_pat(&connect, RetryPolicy::immediate(2))
        .await
        .expect_err("never written");
    let msg = format!("{err}");
    assert!(
        msg.contains("harmony-admin-pat") && msg.contains("after 2 attempts"),
        "{msg}"
    );
    let ZitadelError::Exhausted(e) = &err else {
        panic!("{err:?}");
    };
    let cause = e.last.to_string();
    assert!(cause.contains("fresh database"), "{cause}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The first human admin's password: generated into a Secret before the install, never Zitadel's
// public default (zitadel `cmd/setup/steps.yaml`: `FirstInstance.Org.Human.Password:
// Password1!`, env `ZITADEL_FIRSTINSTANCE_ORG_HUMAN_PASSWORD`)

const ADMIN_PATH: &str = "/api/v1/namespaces/zitadel/secrets/zitadel-admin-password";
const PAT_PATH: &str = "/api/v1/namespaces/zitadel/secrets/harmony-admin-pat";

fn secret_with(name: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| {
            (
                (*k).to_owned(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "zitadel"},
        "data": data,
    })
}

fn decoded(body: &Value, key: &str) -> Result<String> {
    let b64 = body["data"][key]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no data.{key} in {body}"))?;
    Ok(String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(b64)?,
    )?)
}

/// Chart zitadel-9.34.0 adds `.Values.env` to the setup Job (`templates/_helpers.tpl`,
/// `zitadel.dbEnv`, included by `templates/job_setup.yaml`): the password reaches it from the
/// Secret, and no password is in the values.
#[test]
fn the_admin_password_reaches_the_setup_job_from_a_secret_only() {
    let v = values_json();
    let env = v["env"].as_array().expect("env");
    let admin = env
        .iter()
        .find(|e| e["name"] == "ZITADEL_FIRSTINSTANCE_ORG_HUMAN_PASSWORD")
        .expect("the admin password variable");
    assert_eq!(
        admin["valueFrom"]["secretKeyRef"],
        json!({"name": "zitadel-admin-password", "key": "password"})
    );
    assert!(admin.get("value").is_none(), "{admin}");
    let human = &v["zitadel"]["configmapConfig"]["FirstInstance"]["Org"]["Human"];
    assert_eq!(human, &json!({"PasswordChangeRequired": true}));
    let text = serde_json::to_string(&v).expect("json");
    assert!(!text.contains("Password1!"), "{text}");
}

#[tokio::test]
#[traced_test]
async fn a_fresh_instance_gets_a_generated_admin_password_secret() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == ADMIN_PATH);
        not_found(send, "secrets \"zitadel-admin-password\"");
        // No PAT Secret: Zitadel has not created its first instance yet.
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::GET && request.uri().path() == PAT_PATH);
        not_found(send, "secrets \"harmony-admin-pat\"");
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH && request.uri().path() == ADMIN_PATH);
        ensure!(query(&request).contains("fieldManager=harmony"));
        let body = request_json(request).await?;
        respond(send, StatusCode::OK, &body);
        no_more_requests(&mut server).await?;
        Ok::<_, anyhow::Error>(body)
    });
    let admin = ZitadelScore::default()
        .ensure_admin_password(&client)
        .await?;
    drop(client);
    let body = api.await??;
    assert_eq!(body["immutable"], true, "{body}");
    let stored = decoded(&body, "password")?;
    assert_eq!(stored, admin.password.expose_secret());
    assert_eq!(decoded(&body, "origin")?, "deploy");
    assert!(admin.set_by_deploy);
    // Zitadel's default complexity policy: upper, lower, digit, symbol.
    assert!(stored.len() >= 20, "{}", stored.len());
    assert!(stored.chars().any(|c| c.is_ascii_uppercase()));
    assert!(stored.chars().any(|c| c.is_ascii_lowercase()));
    assert!(stored.chars().any(|c| c.is_ascii_digit()));
    assert!(stored.chars().any(|c| !c.is_ascii_alphanumeric()));
    assert_ne!(stored, "Password1!");
    assert!(!logs_contain(&stored), "the password must not be logged");
    assert!(!format!("{admin:?}").contains(&stored));
    Ok(())
}

#[tokio::test]
async fn an_existing_admin_password_secret_is_kept_never_regenerated() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        for _ in 0..2 {
            let (request, send) = next_request(&mut server).await?;
            ensure!(request.method() == Method::GET && request.uri().path() == ADMIN_PATH);
            respond(
                send,
                StatusCode::OK,
                &secret_with(
                    "zitadel-admin-password",
                    &[("password", "Kept-4-ever!xyz"), ("origin", "deploy")],
                ),
            );
        }
        // No PATCH/POST may follow.
        no_more_requests(&mut server).await
    });
    let admin = ZitadelScore::default()
        .ensure_admin_password(&client)
        .await?;
    drop(client);
    api.await??;
    assert_eq!(admin.password.expose_secret(), "Kept-4-ever!xyz");
    assert!(admin.set_by_deploy);
    Ok(())
}

/// An instance an older deploy created (its PAT Secret exists) has a human admin with another
/// password: the new Secret says so, and so does every later run.
#[tokio::test]
async fn an_instance_older_than_the_secret_is_marked_as_not_set_by_the_deploy() -> Result<()> {
    let (client, mut server) = mock_client();
    let api = tokio::spawn(async move {
        let (_, send) = next_request(&mut server).await?;
        not_found(send, "secrets \"zitadel-admin-password\"");
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.uri().path() == PAT_PATH);
        respond(
            send,
            StatusCode::OK,
            &secret_with("harmony-admin-pat", &[("pat", "old-pat")]),
        );
        let (request, send) = next_request(&mut server).await?;
        ensure!(request.method() == Method::PATCH && request.uri().path() == ADMIN_PATH);
        let body = request_json(request).await?;
        respond(send, StatusCode::OK, &body);
        // The next run reads the Secret back: still not set by the deploy.
        for _ in 0..2 {
            let (request, send) = next_request(&mut server).await?;
            ensure!(request.uri().path() == ADMIN_PATH);
            respond(send, StatusCode::OK, &body);
        }
        no_more_requests(&mut server).await?;
        Ok::<_, anyhow::Error>(body)
    });
    let first = ZitadelScore::default()
        .ensure_admin_password(&client)
        .await?;
    let again = ZitadelScore::default()
        .ensure_admin_password(&client)
        .await?;
    drop(client);
    let body = api.await??;
    assert_eq!(decoded(&body, "origin")?, "instance-existed");
    assert!(!first.set_by_deploy && !again.set_by_deploy);
    assert_eq!(
        first.password.expose_secret(),
        again.password.expose_secret()
    );
    Ok(())
}

#[test]
fn the_local_copy_of_the_admin_password_is_0600_and_replaced_atomically() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("zitadel").join("harmony");
    let path = harmony::zitadel::save_admin_password(&state, &SecretString::from("first-Pw1!"))?;
    assert_eq!(path, state.join(harmony::zitadel::ADMIN_PASSWORD_FILE));
    assert_eq!(std::fs::read_to_string(&path)?, "first-Pw1!");
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );
    harmony::zitadel::save_admin_password(&state, &SecretString::from("second-Pw2!"))?;
    assert_eq!(std::fs::read_to_string(&path)?, "second-Pw2!");
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );
    // Only the file: no temporary left behind.
    assert_eq!(std::fs::read_dir(&state)?.count(), 1);
    Ok(())
}
