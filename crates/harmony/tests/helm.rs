//! The helm runner against a fake `helm` executable that records its argv, keeps a copy of
//! the `--values` file it was given (with its mode), and can fail like helm does.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony::helm::{ChartRelease, Helm, HelmError, KubeconfigFile, ReleaseOutcome};
use serde::Serialize;

/// Replies as helm v3.21.4 does for the calls Harmony makes: `status -o json` prints the
/// release (`cmd/helm/status.go`: `info.status`, `chart.metadata.version`, `version`) or fails
/// with "release: not found"; `get values -o json` prints the user-supplied values (`null` when
/// none); `upgrade` refuses a release in a `pending-*` state (`pkg/release/status.go`) with
/// "another operation (install/upgrade/rollback) is in progress"; on SIGTERM an upgrade cancels
/// and records the release as `failed` (`cmd/helm/upgrade.go` cancels its context on
/// SIGTERM/SIGINT); a schema it cannot fetch fails the values check with jsonschema v6's
/// `failing loading "<url>": …` (`pkg/chartutil/jsonschema.go`). State: `release.json`
/// (status), `values.json`, `revision`.
const FAKE_HELM: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
for a in "$@"; do printf '%s\t' "$a" >> "$dir/calls"; done
printf '\n' >> "$dir/calls"
prev=""
version=""
for a in "$@"; do
  if [ "$prev" = "--values" ]; then
    cp "$a" "$dir/values.seen"
    (stat -c %a "$a" 2>/dev/null || stat -f %Lp "$a") > "$dir/values.mode"
    echo "$a" > "$dir/values.path"
  fi
  [ "$prev" = "--version" ] && version="$a"
  prev="$a"
done
rev=$(cat "$dir/revision" 2>/dev/null || echo 0)
write_status() {
  rev=$((rev + 1)); echo "$rev" > "$dir/revision"
  printf '{"name":"openbao","namespace":"openbao","version":%s,"info":{"status":"%s","description":"%s"},"chart":{"metadata":{"name":"openbao","version":"%s"}}}' "$rev" "$1" "$2" "$3" > "$dir/release.json"
}
for a in "$@"; do
  case "$a" in
    status)
      if [ -f "$dir/release.json" ]; then cat "$dir/release.json"; exit 0; fi
      echo 'Error: release: not found' >&2; exit 1 ;;
    get)
      if [ -f "$dir/values.json" ]; then cat "$dir/values.json"; else echo 'null'; fi
      exit 0 ;;
    rollback)
      old=$(sed 's/.*"metadata":{"name":"openbao","version":"\([^"]*\)".*/\1/' "$dir/release.json")
      write_status deployed "Rollback to $((rev - 1))" "${old}-previous"
      echo 'Rollback was a success! Happy Helming!'; exit 0 ;;
    uninstall)
      rm -f "$dir/release.json" "$dir/values.json"
      echo 'release "openbao" uninstalled'; exit 0 ;;
    upgrade)
      if grep -q '"status":"pending-' "$dir/release.json" 2>/dev/null; then
        echo 'Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress' >&2; exit 1
      fi
      if [ -f "$dir/schema-offline" ]; then
        echo 'Error: values don'"'"'t meet the specifications of the schema(s) in the following chart(s):' >&2
        echo 'zitadel:' >&2
        echo 'failing loading "https://schemas.example/k8s/_definitions.json": Get "https://schemas.example/k8s/_definitions.json": Forbidden' >&2
        exit 1
      fi
      if [ -f "$dir/fail" ]; then
        echo 'Error: UPGRADE FAILED: context deadline exceeded waiting for openbao-0' >&2
        exit 1
      fi
      if [ -f "$dir/hang" ]; then
        trap 'write_status failed "Upgrade \"openbao\" failed: context canceled" "$version"; echo "Error: UPGRADE FAILED: context canceled" >&2; exit 1' TERM
        while :; do sleep 0.05; done
      fi
      write_status deployed "Upgrade complete" "$version"
      echo 'Release "openbao" has been upgraded. Happy Helming!'; exit 0 ;;
  esac
done
exit 0
"#;

struct FakeHelm {
    dir: tempfile::TempDir,
}

impl FakeHelm {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("helm");
        std::fs::write(&bin, FAKE_HELM).expect("write fake");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(
            dir.path().join("kubeconfig"),
            "apiVersion: v1\nkind: Config\n",
        )
        .expect("kubeconfig");
        Self { dir }
    }

    fn kubeconfig_path(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn helm(&self) -> Helm {
        Helm::new(
            self.dir.path().join("helm"),
            KubeconfigFile::existing(self.kubeconfig_path()),
        )
    }

    fn calls(&self) -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default();
        text.lines()
            .map(|l| {
                l.split('\t')
                    .filter(|a| !a.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).expect(name)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Typed values as a score would declare them (nested, with a secret inside).
#[derive(Serialize)]
struct Values {
    injector: Enabled,
    server: Server,
}

#[derive(Serialize)]
struct Enabled {
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Server {
    image: Image,
    standalone: Enabled,
    extra_environment_vars: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Image {
    repository: String,
    tag: String,
}

fn values() -> Values {
    Values {
        injector: Enabled { enabled: false },
        server: Server {
            image: Image {
                repository: "openbao/openbao".to_owned(),
                tag: "2.7.2".to_owned(),
            },
            standalone: Enabled { enabled: true },
            extra_environment_vars: [("DB_PASSWORD".to_owned(), "s3cr3t-value".to_owned())]
                .into_iter()
                .collect(),
        },
    }
}

#[tokio::test]
async fn upgrade_install_arguments_and_values_file() {
    let fake = FakeHelm::new();
    let release = ChartRelease::new("openbao", "openbao/openbao", "openbao")
        .version("0.12.0")
        .wait(true)
        .timeout(Duration::from_secs(240));
    let outcome = fake
        .helm()
        .upgrade_install(&release, &values())
        .await
        .expect("installs");
    assert_eq!(outcome, ReleaseOutcome::Installed);

    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let values_path = fake.read("values.path").trim().to_owned();
    let kubeconfig = fake.kubeconfig_path().display().to_string();
    assert_eq!(
        calls[0],
        args(&[
            "--kubeconfig",
            &kubeconfig,
            "status",
            "openbao",
            "--namespace",
            "openbao",
            "-o",
            "json"
        ])
    );
    assert_eq!(
        calls[1],
        args(&[
            "--kubeconfig",
            &kubeconfig,
            "upgrade",
            "--install",
            "openbao",
            "openbao/openbao",
            "--namespace",
            "openbao",
            "--create-namespace",
            "--version",
            "0.12.0",
            "--values",
            &values_path,
            "--wait",
            "--timeout",
            "240s",
        ])
    );
    insta::assert_snapshot!("openbao_values", fake.read("values.seen"));
    // Private while it existed, gone afterwards; the secret never reached the command line.
    assert_eq!(fake.read("values.mode").trim(), "600");
    assert!(
        !Path::new(&values_path).exists(),
        "values file must be removed"
    );
    assert!(!calls[1].iter().any(|a| a.contains("s3cr3t")));
}

#[tokio::test]
async fn no_wait_and_no_version_are_left_out() {
    let fake = FakeHelm::new();
    let release = ChartRelease::new("cnpg", "cnpg/cloudnative-pg", "cnpg-system");
    fake.helm()
        .upgrade_install(&release, &serde_json::json!({}))
        .await
        .expect("installs");
    let call = &fake.calls()[1];
    assert!(!call.contains(&"--wait".to_owned()), "{call:?}");
    assert!(!call.contains(&"--version".to_owned()), "{call:?}");
    assert_eq!(&call[call.len() - 2..], &args(&["--timeout", "300s"]));
    assert_eq!(fake.read("values.seen"), "{}\n");
}

#[tokio::test]
async fn helm_stderr_is_in_the_error_and_the_secret_is_not() {
    let fake = FakeHelm::new();
    std::fs::write(fake.path().join("fail"), "").expect("fail mode");
    let release = ChartRelease::new("openbao", "openbao/openbao", "openbao");
    let err = fake
        .helm()
        .upgrade_install(&release, &values())
        .await
        .expect_err("helm fails");
    assert!(matches!(err, HelmError::UpgradeInstall { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("UPGRADE FAILED: context deadline exceeded waiting for openbao-0"),
        "{text}"
    );
    assert!(text.contains("helm status openbao -n openbao"), "{text}");
    assert!(!text.contains("s3cr3t") && !format!("{err:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn repo_add_update_and_uninstall_arguments() {
    let fake = FakeHelm::new();
    let state = fake.path().join("helm-state");
    let helm = fake.helm().with_state_dir(&state);
    helm.repo_add("openbao", "https://openbao.github.io/openbao-helm")
        .await
        .expect("repo add");
    helm.repo_update().await.expect("repo update");
    helm.uninstall("zitadel", "zitadel", Duration::from_secs(120))
        .await
        .expect("uninstall");

    let kubeconfig = fake.kubeconfig_path().display().to_string();
    let repo_config = state.join("repositories.yaml").display().to_string();
    let repo_cache = state.join("cache").display().to_string();
    let common = [
        "--kubeconfig",
        kubeconfig.as_str(),
        "--repository-config",
        repo_config.as_str(),
        "--repository-cache",
        repo_cache.as_str(),
    ];
    let with = |rest: &[&str]| {
        let mut all = args(&common);
        all.extend(args(rest));
        all
    };
    assert_eq!(
        fake.calls(),
        vec![
            with(&[
                "repo",
                "add",
                "openbao",
                "https://openbao.github.io/openbao-helm",
                "--force-update"
            ]),
            with(&["repo", "update"]),
            with(&[
                "uninstall",
                "zitadel",
                "--namespace",
                "zitadel",
                "--ignore-not-found",
                "--timeout",
                "120s"
            ]),
        ]
    );
}

#[tokio::test]
async fn flag_like_names_are_refused_before_helm_runs() {
    let fake = FakeHelm::new();
    let helm = fake.helm();
    let err = helm
        .upgrade_install(
            &ChartRelease::new("--dry-run", "openbao/openbao", "openbao"),
            &serde_json::json!({}),
        )
        .await
        .expect_err("invalid release");
    assert!(matches!(err, HelmError::InvalidArgument { .. }), "{err:?}");
    let err = helm
        .repo_add("x", "--insecure-skip-tls-verify")
        .await
        .expect_err("invalid url");
    assert!(matches!(err, HelmError::InvalidArgument { .. }), "{err:?}");
    assert!(fake.calls().is_empty());
}

/// A release as the fake's `status` prints it.
fn seed_release(fake: &FakeHelm, status: &str, chart_version: &str, revision: u32) {
    std::fs::write(
        fake.path().join("release.json"),
        serde_json::json!({
            "name": "openbao", "namespace": "openbao", "version": revision,
            "info": {"status": status},
            "chart": {"metadata": {"name": "openbao", "version": chart_version}}
        })
        .to_string(),
    )
    .expect("release");
    std::fs::write(fake.path().join("revision"), revision.to_string()).expect("revision");
}

fn seed_values(fake: &FakeHelm, values: &serde_json::Value) {
    std::fs::write(fake.path().join("values.json"), values.to_string()).expect("values");
}

fn verbs(fake: &FakeHelm) -> Vec<String> {
    fake.calls().iter().map(|c| c[2].clone()).collect()
}

fn pinned() -> ChartRelease {
    ChartRelease::new("openbao", "openbao/openbao", "openbao").version("0.12.0")
}

#[tokio::test]
async fn a_converged_release_runs_no_upgrade_and_adds_no_revision() {
    let fake = FakeHelm::new();
    seed_release(&fake, "deployed", "0.12.0", 3);
    seed_values(&fake, &serde_json::to_value(values()).expect("json"));
    let outcome = fake
        .helm()
        .upgrade_install(&pinned(), &values())
        .await
        .expect("converges");
    assert_eq!(outcome, ReleaseOutcome::Unchanged);
    assert_eq!(verbs(&fake), ["status", "get"]);
    assert_eq!(fake.read("revision"), "3", "no new helm revision");
}

#[tokio::test]
async fn other_values_or_another_chart_version_upgrade() {
    let fake = FakeHelm::new();
    seed_release(&fake, "deployed", "0.12.0", 1);
    seed_values(&fake, &serde_json::json!({"injector": {"enabled": true}}));
    let helm = fake.helm();
    assert_eq!(
        helm.upgrade_install(&pinned(), &values())
            .await
            .expect("ok"),
        ReleaseOutcome::Upgraded
    );
    assert_eq!(verbs(&fake), ["status", "get", "upgrade"]);

    let fake = FakeHelm::new();
    seed_release(&fake, "deployed", "0.11.0", 1);
    seed_values(&fake, &serde_json::to_value(values()).expect("json"));
    let helm = fake.helm();
    assert_eq!(
        helm.upgrade_install(&pinned(), &values())
            .await
            .expect("ok"),
        ReleaseOutcome::Upgraded
    );
    assert_eq!(verbs(&fake), ["status", "upgrade"]);
    assert_eq!(
        helm.outcomes(),
        vec![("openbao".to_owned(), ReleaseOutcome::Upgraded)]
    );
}

#[tokio::test]
async fn a_pending_release_is_reported_and_left_alone_without_consent() {
    let fake = FakeHelm::new();
    seed_release(&fake, "pending-upgrade", "0.12.0", 4);
    let err = fake
        .helm()
        .upgrade_install(&pinned(), &values())
        .await
        .expect_err("stuck");
    assert!(matches!(err, HelmError::Pending(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("pending-upgrade (revision 4)"), "{text}");
    assert!(text.contains("--yes"), "{text}");
    assert!(text.contains("helm rollback openbao -n openbao"), "{text}");
    assert_eq!(verbs(&fake), ["status"], "nothing changed");

    // Refused by the person asked: the same.
    let fake = FakeHelm::new();
    seed_release(&fake, "pending-install", "0.12.0", 1);
    let err = fake
        .helm()
        .with_pending_recovery(std::sync::Arc::new(|_| false))
        .upgrade_install(&pinned(), &values())
        .await
        .expect_err("stuck");
    assert!(
        err.to_string()
            .contains("helm uninstall openbao -n openbao"),
        "{err}"
    );
    assert_eq!(verbs(&fake), ["status"]);
}

#[tokio::test]
async fn with_consent_a_pending_upgrade_is_rolled_back_and_then_upgraded() {
    let fake = FakeHelm::new();
    seed_release(&fake, "pending-upgrade", "0.12.0", 4);
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&asked);
    let outcome = fake
        .helm()
        .with_pending_recovery(std::sync::Arc::new(move |p| {
            seen.lock().expect("lock").push(p.status.clone());
            true
        }))
        .upgrade_install(&pinned(), &values())
        .await
        .expect("recovers");
    assert_eq!(outcome, ReleaseOutcome::Upgraded);
    assert_eq!(*asked.lock().expect("lock"), ["pending-upgrade"]);
    assert_eq!(verbs(&fake), ["status", "rollback", "status", "upgrade"]);
}

#[tokio::test]
async fn with_consent_a_never_deployed_install_is_uninstalled_and_installed_again() {
    let fake = FakeHelm::new();
    seed_release(&fake, "pending-install", "0.12.0", 1);
    let outcome = fake
        .helm()
        .with_pending_recovery(std::sync::Arc::new(|_| true))
        .upgrade_install(&pinned(), &values())
        .await
        .expect("recovers");
    assert_eq!(outcome, ReleaseOutcome::Installed);
    assert_eq!(verbs(&fake), ["status", "uninstall", "status", "upgrade"]);
}

#[test]
fn the_deadline_covers_every_hook_and_the_rollout() {
    let release = pinned().timeout(Duration::from_secs(600)).hooks(2);
    assert_eq!(release.deadline(), Duration::from_secs(1800));
    assert_eq!(pinned().deadline(), Duration::from_secs(300));
}

#[tokio::test]
async fn past_the_deadline_helm_gets_sigterm_and_leaves_the_release_failed_not_pending() {
    let fake = FakeHelm::new();
    std::fs::write(fake.path().join("hang"), "").expect("hang mode");
    let release = pinned().timeout(Duration::from_secs(1));
    let err = fake
        .helm()
        .with_kill_grace(Duration::from_secs(20))
        .upgrade_install(&release, &values())
        .await
        .expect_err("deadline");
    let text = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(text.contains("SIGTERM"), "{text}");
    assert!(text.contains("context canceled"), "{text}");
    let status = fake.read("release.json");
    assert!(status.contains(r#""status":"failed""#), "{status}");
}

#[tokio::test]
async fn an_unreachable_values_schema_is_explained() {
    let fake = FakeHelm::new();
    std::fs::write(fake.path().join("schema-offline"), "").expect("mode");
    let err = fake
        .helm()
        .upgrade_install(&pinned(), &values())
        .await
        .expect_err("schema");
    assert!(matches!(err, HelmError::SchemaFetch { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("HTTPS_PROXY"), "{text}");
    assert!(text.contains("JSON schema"), "{text}");
}

/// The stack of `--kube-context ctx --domain example.com --ingress-class nginx` with `tls`.
fn existing_cluster_stack(
    tls: harmony::ingress::IngressTls,
) -> (harmony::deploy::Stack, harmony::ingress::PublicIngress) {
    let ingress = harmony::ingress::PublicIngress {
        domain: "example.com".parse().expect("domain"),
        class: Some("nginx".to_owned()),
        tls,
    };
    (
        harmony::deploy::Stack::new(harmony::deploy::Profile::Ha, Some(&ingress)),
        ingress,
    )
}

/// What the fake helm was handed for `release`, as the file it read and parsed.
async fn installed<V: Serialize>(
    fake: &FakeHelm,
    release: &ChartRelease,
    values: &V,
) -> (String, serde_yaml::Value) {
    fake.helm()
        .upgrade_install(release, values)
        .await
        .expect("installs");
    let text = fake.read("values.seen");
    let parsed = serde_yaml::from_str(&text).expect("YAML");
    (text, parsed)
}

#[tokio::test]
async fn ha_values_on_an_existing_cluster_with_a_tls_secret() {
    let fake = FakeHelm::new();
    let (stack, _) = existing_cluster_stack(harmony::ingress::IngressTls::Secret(
        "example-com-tls".to_owned(),
    ));

    let (text, bao) = installed(
        &fake,
        &stack.openbao.chart_release(),
        &stack.openbao.values(),
    )
    .await;
    insta::assert_snapshot!("ha_openbao_values", text);
    let server = &bao["server"];
    assert_eq!(server["ha"]["replicas"], 3);
    assert_eq!(server["ha"]["raft"]["enabled"], true);
    let config = server["ha"]["raft"]["config"].as_str().expect("config");
    for n in 0..3 {
        assert!(
            config.contains(&format!("http://openbao-{n}.openbao-internal:8200")),
            "retry_join through the chart's internal service: {config}"
        );
    }
    assert_eq!(server["ha"]["disruptionBudget"]["enabled"], true);
    assert_eq!(server["ha"]["disruptionBudget"]["maxUnavailable"], 1);
    let ingress = &server["ingress"];
    assert_eq!(ingress["enabled"], true);
    assert_eq!(ingress["activeService"], true, "routes to the active node");
    assert_eq!(ingress["ingressClassName"], "nginx");
    assert_eq!(ingress["hosts"][0]["host"], "bao.example.com");
    assert_eq!(ingress["tls"][0]["secretName"], "example-com-tls");
    assert_eq!(ingress["tls"][0]["hosts"][0], "bao.example.com");
    assert!(ingress.get("annotations").is_none(), "{ingress:?}");

    let (text, zitadel) = installed(&fake, &stack.zitadel.release(), &stack.zitadel.values()).await;
    insta::assert_snapshot!("ha_zitadel_values", text);
    let config = &zitadel["zitadel"]["configmapConfig"];
    assert_eq!(config["ExternalDomain"], "sso.example.com");
    assert_eq!(config["ExternalPort"], 443);
    assert_eq!(config["ExternalSecure"], true);
    assert_eq!(stack.zitadel.issuer(), "https://sso.example.com");
    assert_eq!(zitadel["replicaCount"], 2);
    assert_eq!(zitadel["pdb"]["enabled"], true);
    assert_eq!(zitadel["pdb"]["maxUnavailable"], 1);
    assert_eq!(zitadel["login"]["replicaCount"], 2);
    assert_eq!(zitadel["login"]["pdb"]["maxUnavailable"], 1);
    for ingress in [&zitadel["ingress"], &zitadel["login"]["ingress"]] {
        assert_eq!(ingress["className"], "nginx");
        assert_eq!(ingress["hosts"][0]["host"], "sso.example.com");
        assert_eq!(ingress["tls"][0]["secretName"], "example-com-tls");
        assert_eq!(
            ingress["annotations"],
            serde_yaml::Value::Mapping(Default::default())
        );
    }
    // Zitadel's database is the ha PostgreSQL (3 instances), through its -rw service.
    assert_eq!(
        config["Database"]["Postgres"]["Host"],
        "zitadel-pg-rw.zitadel.svc"
    );
}

#[tokio::test]
async fn a_cluster_issuer_annotates_one_ingress_per_host_and_names_its_secret() {
    let fake = FakeHelm::new();
    let (stack, _) = existing_cluster_stack(harmony::ingress::IngressTls::ClusterIssuer(
        "letsencrypt".to_owned(),
    ));
    let (_, bao) = installed(
        &fake,
        &stack.openbao.chart_release(),
        &stack.openbao.values(),
    )
    .await;
    let ingress = &bao["server"]["ingress"];
    assert_eq!(
        ingress["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(ingress["tls"][0]["secretName"], "openbao-tls");
    assert_eq!(ingress["tls"][0]["hosts"][0], "bao.example.com");

    let (_, zitadel) = installed(&fake, &stack.zitadel.release(), &stack.zitadel.values()).await;
    let api = &zitadel["ingress"];
    let login = &zitadel["login"]["ingress"];
    assert_eq!(
        api["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    // The login UI shares the host and the certificate, but only one Ingress asks for it.
    assert_eq!(
        login["annotations"],
        serde_yaml::Value::Mapping(Default::default())
    );
    assert_eq!(api["tls"][0]["secretName"], "zitadel-tls");
    assert_eq!(login["tls"][0]["secretName"], "zitadel-tls");
    assert_eq!(login["hosts"][0]["paths"][0]["path"], "/ui/v2/login");
}

#[tokio::test]
async fn without_tls_flags_the_ingresses_carry_no_tls_but_the_urls_stay_https() {
    let fake = FakeHelm::new();
    let (stack, ingress) = existing_cluster_stack(harmony::ingress::IngressTls::None);
    let (_, bao) = installed(
        &fake,
        &stack.openbao.chart_release(),
        &stack.openbao.values(),
    )
    .await;
    assert!(bao["server"]["ingress"].get("tls").is_none());
    assert!(bao["server"]["ingress"].get("annotations").is_none());
    let (_, zitadel) = installed(&fake, &stack.zitadel.release(), &stack.zitadel.values()).await;
    assert!(zitadel["ingress"].get("tls").is_none());
    assert_eq!(
        zitadel["zitadel"]["configmapConfig"]["ExternalSecure"],
        true
    );
    assert_eq!(
        harmony::ingress::PublicIngress::url(&ingress.bao_host()),
        "https://bao.example.com"
    );
}

#[tokio::test]
async fn the_local_profile_keeps_the_k3d_values() {
    // `cargo run -p example-harmony-sso` with no flags: one of everything, k3d's ingress.
    let stack = harmony::deploy::Stack::new(harmony::deploy::Profile::Local, None);
    assert_eq!(stack.openbao, harmony::openbao::OpenbaoScore::default());
    assert_eq!(stack.zitadel, harmony::zitadel::ZitadelScore::default());
    assert_eq!(stack.postgres, harmony::cnpg::PostgresCluster::default());
}
