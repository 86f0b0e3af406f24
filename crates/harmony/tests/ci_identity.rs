//! CI identity end to end against a REAL OpenBao dev server, with the project's test OpenID
//! provider acting as the CI platform's issuer (its GitHub-style id_token endpoint signs job
//! tokens with the provider's key, so OpenBao verifies them through the issuer's discovery):
//! the bootstrap's `--ci` trust, then `OpenbaoSecretStore::connect` inside a "job". The
//! platform's REST API (repository ids, default branch) is a local wiremock stand-in answering
//! as GitHub's `GET /repos/{owner}/{repo}` and GitLab's `GET /projects/{id}` are documented to.

use std::collections::HashMap;

use anyhow::{Context, Result};
use harmony::openbao::{
    AccessTable, BootstrapOptions, CiOptions, CiTrust, DEFAULT_DEVELOPER_ROLE, DEFAULT_OPS_ROLE,
    OpenbaoBootstrap, OpenbaoError, StateDir,
};
use harmony_secret::{
    AuthMethodUsed, OpenbaoSecretStore, OpenbaoSettings, SecretError, SecretStore, WriteMode,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use secrecy::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Setup {
    bao: OpenbaoServer,
    provider: OidcProvider,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Result<Self> {
        Ok(Self {
            bao: OpenbaoServer::dev().await.context("OpenBao dev server")?,
            provider: OidcProvider::start(OidcProviderOptions::default())
                .await
                .context("test OpenID provider")?,
            dir: tempfile::tempdir()?,
        })
    }

    fn ci(&self, specs: &[String]) -> Result<CiOptions> {
        let trusts = specs
            .iter()
            .map(|s| s.parse::<CiTrust>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CiOptions::new(trusts, self.bao.url())?)
    }

    async fn bootstrap(&self, ci: CiOptions) -> Result<Vec<String>> {
        Ok(self.try_bootstrap(ci).await??)
    }

    /// The bootstrap's own error kept apart from the setup's.
    async fn try_bootstrap(&self, ci: CiOptions) -> Result<Result<Vec<String>, OpenbaoError>> {
        self.try_bootstrap_with(ci, None).await
    }

    /// The same with `--environments` (an access table).
    async fn try_bootstrap_with(
        &self,
        ci: CiOptions,
        environments: Option<AccessTable>,
    ) -> Result<Result<Vec<String>, OpenbaoError>> {
        let mut options = BootstrapOptions::local(StateDir::new(self.dir.path().join("state")));
        options.admin_token = Some(SecretString::from(
            self.bao.root_token().context("dev root token")?.to_owned(),
        ));
        options.ci = Some(ci);
        options.environments = environments;
        let url = url::Url::parse(self.bao.url())?;
        Ok(match OpenbaoBootstrap::new(&url, options)?.run().await {
            Ok(report) => Ok(report.changes),
            Err(e) => Err(e),
        })
    }

    /// Settings as a job's environment gives them.
    fn job_settings(&self, env: &[(&str, String)]) -> Result<OpenbaoSettings> {
        let mut map: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        map.insert("OPENBAO_URL".into(), self.bao.url().to_owned());
        Ok(OpenbaoSettings::from_lookup(|k| map.get(k).cloned())?
            .with_session_dir(self.dir.path().join("sessions")))
    }

    async fn github_job(&self, claims: Value) -> Result<Vec<(&'static str, String)>> {
        let request_token = self.provider.ci_job(&claims).await?;
        Ok(vec![
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                self.provider.github_token_url(),
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
            ("GITHUB_REPOSITORY", "acme/app".to_owned()),
        ])
    }
}

/// A GitHub job's claims; `ids` are (`repository_id`, `repository_owner_id`).
fn github_claims(repository: &str, ids: (&str, &str), git_ref: &str) -> Value {
    json!({
        "repository": repository,
        "repository_owner": repository.split('/').next(),
        "repository_id": ids.0,
        "repository_owner_id": ids.1,
        "ref": git_ref,
        "ref_type": if git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
        "sub": format!("repo:{repository}:ref:{git_ref}"),
        "job_workflow_ref": format!("{repository}/.github/workflows/ci.yml@{git_ref}"),
    })
}

#[tokio::test]
async fn github_job_reads_with_its_own_identity_and_nothing_else_gets_in() -> Result<()> {
    let s = Setup::start().await?;
    let issuer = s.provider.issuer().to_owned();
    // GitHub's API as documented for `GET /repos/{owner}/{repo}`: ids and the default branch.
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 1001,
            "full_name": "acme/app",
            "owner": {"login": "acme", "id": 2002},
            "default_branch": "main",
        })))
        .mount(&api)
        .await;
    let mut ci = s.ci(&[format!("github={issuer}:acme/app")])?;
    ci.github_api = url::Url::parse(&api.uri())?;

    // The bootstrap creates the mount, the issuer config, the policy and the role, binding the
    // ids and (no @REF) the default branch only, and says so ...
    let changes = s.bootstrap(ci.clone()).await?;
    let text = changes.join("\n");
    for want in [
        "jwt-ci",
        "harmony-ci",
        "github-acme-app",
        "repository_id 1001",
        "repository_owner_id 2002",
        "the default branch main only",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }
    // ... and a second run changes nothing.
    assert_eq!(s.bootstrap(ci).await?, Vec::<String>::new());

    // The team's config, written by a person.
    let admin = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(s.bao.url())
            .with_token(SecretString::from(
                s.bao.root_token().context("root")?.to_owned(),
            ))
            .with_session_dir(s.dir.path().join("admin-sessions")),
    )
    .await?;
    admin
        .put("my-app", &json!({"port": 8080}), WriteMode::Cas(None))
        .await?;

    // A job of acme/app on main reads it, signed in with its own id_token.
    let env = s
        .github_job(github_claims(
            "acme/app",
            ("1001", "2002"),
            "refs/heads/main",
        ))
        .await?;
    let job = OpenbaoSecretStore::connect(s.job_settings(&env)?).await?;
    assert_eq!(job.auth_method(), AuthMethodUsed::CiIdentity);
    let doc = job.get("my-app").await?.context("readable")?;
    assert_eq!(doc.value, json!({"port": 8080}));
    // Nothing was cached for the job: a runner may be shared.
    assert!(
        !s.dir.path().join("sessions").exists()
            || std::fs::read_dir(s.dir.path().join("sessions"))?
                .next()
                .is_none()
    );

    // Read-only: a write is refused with OpenBao's permission error naming the path.
    let err = job
        .put("my-app", &json!({"port": 1}), WriteMode::Cas(Some(1)))
        .await
        .expect_err("CI is read-only");
    assert!(matches!(err, SecretError::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("my-app"), "{err}");

    // A repository now named acme/app (the old one renamed or deleted, the name taken) has
    // another id: refused, naming its claims.
    let env = s
        .github_job(github_claims(
            "acme/app",
            ("1003", "2002"),
            "refs/heads/main",
        ))
        .await?;
    let err = OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .expect_err("same name, another repository_id");
    assert!(err.to_string().contains("repository_id=1003"), "{err}");
    // The same under another owner id (an account that took the owner's name).
    let env = s
        .github_job(github_claims(
            "acme/app",
            ("1001", "9999"),
            "refs/heads/main",
        ))
        .await?;
    OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .expect_err("another repository_owner_id");

    // Another repository presenting acme/app's role: refused, naming its claims.
    let env = s
        .github_job(github_claims(
            "acme/other",
            ("1004", "2002"),
            "refs/heads/main",
        ))
        .await?;
    let err = OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .expect_err("wrong repository");
    let text = err.to_string();
    assert!(
        text.contains("repository=acme/other") && text.contains("github-acme-app"),
        "{text}"
    );
    assert!(
        text.to_lowercase().contains("claim"),
        "OpenBao's own reason: {text}"
    );

    // The right repository on another branch: refused too (no @REF: the default branch only).
    let env = s
        .github_job(github_claims(
            "acme/app",
            ("1001", "2002"),
            "refs/heads/feature",
        ))
        .await?;
    let err = OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .expect_err("not the default branch");
    assert!(err.to_string().contains("ref=refs/heads/feature"), "{err}");

    // With @* (ids given in the spec, no API call), every ref is allowed.
    let any = s.ci(&[format!("github={issuer}:acme/app#1001/2002@*")])?;
    let changes = s.bootstrap(any).await?.join("\n");
    assert!(changes.contains("every ref (@*)"), "{changes}");
    let env = s
        .github_job(github_claims(
            "acme/app",
            ("1001", "2002"),
            "refs/heads/feature",
        ))
        .await?;
    OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .context("@* allows a feature branch")?;
    assert_eq!(api.received_requests().await.map(|r| r.len()), Some(2));

    // A token for another audience: refused.
    let mut env = s
        .github_job(github_claims(
            "acme/app",
            ("1001", "2002"),
            "refs/heads/main",
        ))
        .await?;
    env.push(("HARMONY_CI_AUDIENCE", "https://somewhere-else".to_owned()));
    let err = OpenbaoSecretStore::connect(s.job_settings(&env)?)
        .await
        .expect_err("wrong audience");
    let text = err.to_string();
    assert!(text.contains("aud=https://somewhere-else"), "{text}");

    // No id_token request token or id_token ever shows up in an error.
    assert!(!text.contains("eyJ"), "{text}");
    Ok(())
}

#[tokio::test]
async fn gitlab_job_token_from_a_variable_or_a_file() -> Result<()> {
    let s = Setup::start().await?;
    let issuer = s.provider.issuer().to_owned();
    // GitLab's API as documented for `GET /projects/:id` with the URL-encoded path.
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/projects/group%2Fsub%2Fproject"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 77,
            "path_with_namespace": "group/sub/project",
            "default_branch": "main",
        })))
        .mount(&api)
        .await;
    let mut ci = s.ci(&[format!("gitlab={issuer}:group/sub/project")])?;
    ci.gitlab_api = Some(url::Url::parse(&api.uri())?);
    let changes = s.bootstrap(ci).await?.join("\n");
    assert!(
        changes.contains("project_id 77") && changes.contains("protected refs only"),
        "{changes}"
    );
    let claims = |project_id: &str, protected: &str| {
        json!({
            "project_path": "group/sub/project",
            "project_id": project_id,
            "ref": "main",
            "ref_type": "branch",
            "ref_protected": protected,
            "sub": "project_path:group/sub/project:ref_type:branch:ref:main",
        })
    };
    // Without @REF an unprotected ref is refused, and so is another project with the path.
    for (project_id, protected) in [("77", "false"), ("78", "true")] {
        let request = s.provider.ci_job(&claims(project_id, protected)).await?;
        let id_token = s.provider.ci_id_token(&request, s.bao.url()).await?;
        let env = vec![
            ("HARMONY_OIDC_TOKEN", id_token),
            ("CI_PROJECT_PATH", "group/sub/project".to_owned()),
        ];
        let err = OpenbaoSecretStore::connect(s.job_settings(&env)?)
            .await
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains(&format!("project_id={project_id}")),
            "{err}"
        );
    }
    let claims = claims("77", "true");
    let request = s.provider.ci_job(&claims).await?;
    let id_token = s.provider.ci_id_token(&request, s.bao.url()).await?;

    let env = vec![
        ("HARMONY_OIDC_TOKEN", id_token.clone()),
        ("CI_PROJECT_PATH", "group/sub/project".to_owned()),
    ];
    let job = OpenbaoSecretStore::connect(s.job_settings(&env)?).await?;
    assert_eq!(job.auth_method(), AuthMethodUsed::CiIdentity);
    assert_eq!(
        job.get("absent").await?,
        None,
        "signed in and allowed to read"
    );

    let file = s.dir.path().join("id_token");
    std::fs::write(&file, format!("{id_token}\n"))?;
    let env = vec![
        ("HARMONY_OIDC_TOKEN_FILE", file.display().to_string()),
        ("CI_PROJECT_PATH", "group/sub/project".to_owned()),
    ];
    let job = OpenbaoSecretStore::connect(s.job_settings(&env)?).await?;
    assert_eq!(job.auth_method(), AuthMethodUsed::CiIdentity);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_platform_api_says_to_give_the_ids_in_the_spec() -> Result<()> {
    let s = Setup::start().await?;
    let issuer = s.provider.issuer().to_owned();
    let mut ci = s.ci(&[format!("github={issuer}:acme/app")])?;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = closed.local_addr()?.port();
    drop(closed);
    ci.github_api = url::Url::parse(&format!("http://127.0.0.1:{port}"))?;
    let err = s.try_bootstrap(ci).await?.expect_err("no API").to_string();
    assert!(
        err.contains("acme/app")
            && err.contains("github:acme/app#REPO_ID/OWNER_ID")
            && err.contains("HARMONY_GITHUB_API_URL"),
        "{err}"
    );
    Ok(())
}

/// `--ci ...=ENV` with environments declared: a job reads the base and the environments its
/// entry names, and OpenBao refuses every other overlay; an entry without `=ENV` reads the base
/// only. Each role gets one policy (`harmony-ci-<ENVS>` / `harmony-ci-base`).
#[tokio::test]
async fn ci_jobs_read_the_environments_their_entry_names_and_no_other() -> Result<()> {
    let s = Setup::start().await?;
    let issuer = s.provider.issuer().to_owned();
    let ci = s.ci(&[
        format!("github={issuer}:acme/app#1001/2002@main=prod"),
        format!("github={issuer}:acme/lib#1005/2002@main"),
        format!("github={issuer}:acme/web#1007/2002@main=staging,dev"),
    ])?;
    let table = AccessTable::new(
        &["dev".to_owned(), "staging".to_owned(), "prod".to_owned()],
        DEFAULT_DEVELOPER_ROLE,
        DEFAULT_OPS_ROLE,
        &[],
    )?;
    let changes = s
        .try_bootstrap_with(ci.clone(), Some(table.clone()))
        .await??
        .join("\n");
    for want in [
        "wrote policy harmony-ci-prod (read-only)",
        "wrote policy harmony-ci-base (read-only)",
        "wrote policy harmony-ci-dev.staging (read-only)",
        "CI role github-acme-app",
        "policy harmony-ci-prod)",
        "policy harmony-ci-base)",
        "policy harmony-ci-dev.staging)",
    ] {
        assert!(changes.contains(want), "{want} missing from:\n{changes}");
    }
    assert!(!changes.contains("policy harmony-ci "), "{changes}");
    // Idempotent, and a later run without --environments finds them in the access record.
    assert_eq!(
        s.try_bootstrap_with(ci.clone(), Some(table)).await??,
        Vec::<String>::new()
    );
    assert_eq!(s.try_bootstrap_with(ci, None).await??, Vec::<String>::new());

    let admin = OpenbaoSecretStore::connect(
        OpenbaoSettings::new(s.bao.url())
            .with_token(SecretString::from(
                s.bao.root_token().context("root")?.to_owned(),
            ))
            .with_session_dir(s.dir.path().join("admin-sessions")),
    )
    .await?;
    for (key, value) in [
        ("my-app", json!({"port": 8080})),
        ("_env/prod/my-app", json!({"port": 443})),
        ("_env/dev/my-app", json!({"port": 3000})),
        ("_env/staging/my-app", json!({"port": 8443})),
    ] {
        admin.put(key, &value, WriteMode::Cas(None)).await?;
    }

    let job = |repo: &'static str, id: &'static str| {
        let s = &s;
        async move {
            let mut env = s
                .github_job(github_claims(repo, (id, "2002"), "refs/heads/main"))
                .await?;
            for (k, v) in &mut env {
                if *k == "GITHUB_REPOSITORY" {
                    *v = repo.to_owned();
                }
            }
            let store = OpenbaoSecretStore::connect(s.job_settings(&env)?).await?;
            anyhow::Ok(store)
        }
    };
    let refused = |r: Result<Option<harmony_secret::Versioned<Value>>, SecretError>, what: &str| {
        let err = r.expect_err(what);
        assert!(
            matches!(err, SecretError::PermissionDenied { .. }),
            "{what}: {err}"
        );
    };

    // acme/app=prod: the base and prod's overlay; dev's and staging's refused by OpenBao.
    let app = job("acme/app", "1001").await?;
    assert_eq!(
        app.get("my-app").await?.context("base")?.value,
        json!({"port": 8080})
    );
    assert_eq!(
        app.get("_env/prod/my-app").await?.context("prod")?.value,
        json!({"port": 443})
    );
    refused(app.get("_env/dev/my-app").await, "dev overlay for =prod");
    refused(
        app.get("_env/staging/my-app").await,
        "staging overlay for =prod",
    );
    let err = app
        .put(
            "_env/prod/my-app",
            &json!({"port": 1}),
            WriteMode::Cas(Some(1)),
        )
        .await
        .expect_err("read-only");
    assert!(matches!(err, SecretError::PermissionDenied { .. }), "{err}");

    // acme/lib (no =ENV): the base only.
    let lib = job("acme/lib", "1005").await?;
    assert_eq!(
        lib.get("my-app").await?.context("base")?.value,
        json!({"port": 8080})
    );
    for overlay in ["_env/prod/my-app", "_env/dev/my-app", "_env/staging/my-app"] {
        refused(lib.get(overlay).await, overlay);
    }

    // acme/web=staging,dev: both, not prod.
    let web = job("acme/web", "1007").await?;
    assert_eq!(
        web.get("_env/dev/my-app").await?.context("dev")?.value,
        json!({"port": 3000})
    );
    assert_eq!(
        web.get("_env/staging/my-app")
            .await?
            .context("staging")?
            .value,
        json!({"port": 8443})
    );
    refused(
        web.get("_env/prod/my-app").await,
        "prod overlay for =staging,dev",
    );
    Ok(())
}

#[tokio::test]
async fn ci_environments_must_be_declared() -> Result<()> {
    let s = Setup::start().await?;
    let issuer = s.provider.issuer().to_owned();
    // No environments on the server: naming one is refused before any role is written.
    let ci = s.ci(&[format!("github={issuer}:acme/app#1001/2002@main=prod")])?;
    let err = s
        .try_bootstrap_with(ci, None)
        .await?
        .expect_err("no environments")
        .to_string();
    assert!(
        err.contains("none are declared") && err.contains("--environments"),
        "{err}"
    );
    // Declared, but not that one.
    let table = AccessTable::new(
        &["dev".to_owned(), "prod".to_owned()],
        DEFAULT_DEVELOPER_ROLE,
        DEFAULT_OPS_ROLE,
        &[],
    )?;
    let ci = s.ci(&[format!("github={issuer}:acme/app#1001/2002@main=qa")])?;
    let err = s
        .try_bootstrap_with(ci, Some(table))
        .await?
        .expect_err("qa undeclared")
        .to_string();
    assert!(
        err.contains("qa is not declared") && err.contains("dev, prod"),
        "{err}"
    );
    Ok(())
}
