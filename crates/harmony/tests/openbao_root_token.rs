//! The root token handled as production OpenBao wants it, against a REAL sealed OpenBao (raft)
//! and the real test OpenID provider (as a CI issuer, to make the admin token write new mounts,
//! policies and roles): hand-over to a `harmony-admin` token, root revoked, re-runs with the
//! admin token, recovery through `sys/generate-root` with the saved shares.

use anyhow::{Context, Result, ensure};
use harmony::openbao::{
    BootstrapOptions, BootstrapReport, CiOptions, OpenbaoBootstrap, OpenbaoError, StateDir,
};
use harmony_testkit::OpenbaoServer;
use harmony_testkit::oidc::{OidcProvider, OidcProviderOptions};
use secrecy::ExposeSecret;

fn options(dir: &std::path::Path) -> BootstrapOptions {
    let mut options = BootstrapOptions::local(StateDir::new(dir));
    options.shares = 3;
    options.threshold = 2;
    options.revoke_root = true;
    options
}

async fn run(
    bao: &OpenbaoServer,
    options: BootstrapOptions,
) -> Result<BootstrapReport, OpenbaoError> {
    OpenbaoBootstrap::new(&url::Url::parse(bao.url()).expect("url"), options)?
        .run()
        .await
}

async fn lookup_status(bao: &OpenbaoServer, token: &str) -> Result<u16> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    Ok(http
        .get(format!("{}/v1/auth/token/lookup-self", bao.url()))
        .header("X-Vault-Token", token)
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn root_token_is_revoked_and_the_admin_token_configures_and_can_be_regenerated() -> Result<()>
{
    let bao = OpenbaoServer::sealed().await?;
    let provider = OidcProvider::start(OidcProviderOptions::default()).await?;
    let dir = tempfile::tempdir()?;
    let state = StateDir::new(dir.path());

    let first = run(&bao, options(dir.path())).await.context("first run")?;
    let text = first.changes.join("\n");
    ensure!(text.contains("revoked the root token"), "{text}");
    let root = state
        .root_token()
        .await?
        .context("keys file keeps the root token")?;
    assert_eq!(
        lookup_status(&bao, root.expose_secret()).await?,
        403,
        "root revoked"
    );
    let admin = state.admin_token().await?.context("admin token saved")?;
    assert_eq!(lookup_status(&bao, admin.expose_secret()).await?, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state.admin_token_file())?
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let keys = std::fs::read(state.keys_file())?;

    // A re-run configures with the admin token: nothing to change ...
    let again = run(&bao, options(dir.path())).await.context("re-run")?;
    ensure!(again.nothing_changed() && again.configured, "{again:?}");
    // ... and it can write what a new option needs: an auth mount, its config, a policy, a role.
    let mut with_ci = options(dir.path());
    with_ci.ci = Some(CiOptions::new(
        vec![format!("github={}:acme/app", provider.issuer()).parse()?],
        bao.url(),
    )?);
    let ci = run(&bao, with_ci)
        .await
        .context("admin token adds CI trust")?;
    assert!(ci.changes.iter().any(|c| c.contains("jwt-ci")), "{ci:?}");

    // The admin token is lost: the error says how to recover, and recovery works.
    std::fs::remove_file(state.admin_token_file())?;
    let err = run(&bao, options(dir.path()))
        .await
        .expect_err("no usable token");
    let text = err.to_string();
    assert!(
        text.contains("--regenerate-root") && text.contains("root token"),
        "{text}"
    );
    assert!(
        !text.contains(root.expose_secret()),
        "no token in errors: {text}"
    );
    let regenerated = OpenbaoBootstrap::new(&url::Url::parse(bao.url())?, options(dir.path()))?
        .regenerate_root()
        .await
        .context("regenerate root")?;
    assert!(
        regenerated
            .iter()
            .any(|c| c.contains("revoked the root token")),
        "{regenerated:?}"
    );
    let admin2 = state.admin_token().await?.context("new admin token")?;
    assert_ne!(admin2.expose_secret(), admin.expose_secret());
    assert_eq!(lookup_status(&bao, admin2.expose_secret()).await?, 200);
    let after = run(&bao, options(dir.path()))
        .await
        .context("after recovery")?;
    ensure!(after.nothing_changed(), "{after:?}");

    // Without the recovery token (or once it expired), and with the unauthenticated flow off
    // (OpenBao's default since 2.5.3): a clear error saying both.
    std::fs::remove_file(state.recovery_token_file())?;
    let err = OpenbaoBootstrap::new(&url::Url::parse(bao.url())?, options(dir.path()))?
        .regenerate_root()
        .await
        .expect_err("no recovery token");
    let text = err.to_string();
    assert!(
        text.contains("disable_unauthed_generate_root_endpoints")
            && text.contains("recovery-token.json"),
        "{text}"
    );

    // A bogus admin token: a clear error naming the file and the way out.
    std::fs::write(
        state.admin_token_file(),
        r#"{"username":"harmony-admin-token","password":"s.bogus"}"#,
    )?;
    let err = run(&bao, options(dir.path()))
        .await
        .expect_err("bogus admin token");
    assert!(
        err.to_string().contains("harmony-admin token")
            && err.to_string().contains("--regenerate-root"),
        "{err}"
    );

    assert_eq!(
        std::fs::read(state.keys_file())?,
        keys,
        "keys file unchanged"
    );
    Ok(())
}
