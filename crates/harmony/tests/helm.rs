//! The helm runner against a fake `helm` executable that records its argv, keeps a copy of
//! the `--values` file it was given (with its mode), and can fail like helm does.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use harmony::helm::{ChartRelease, Helm, HelmError, KubeconfigFile};
use serde::Serialize;

const FAKE_HELM: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
for a in "$@"; do printf '%s\t' "$a" >> "$dir/calls"; done
printf '\n' >> "$dir/calls"
prev=""
for a in "$@"; do
  if [ "$prev" = "--values" ]; then
    cp "$a" "$dir/values.seen"
    (stat -c %a "$a" 2>/dev/null || stat -f %Lp "$a") > "$dir/values.mode"
    echo "$a" > "$dir/values.path"
  fi
  prev="$a"
done
if [ -f "$dir/fail" ]; then
  echo 'Error: UPGRADE FAILED: context deadline exceeded waiting for openbao-0' >&2
  exit 1
fi
echo 'Release "openbao" has been upgraded. Happy Helming!'
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
    fake.helm()
        .upgrade_install(&release, &values())
        .await
        .expect("installs");

    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    let values_path = fake.read("values.path").trim().to_owned();
    let kubeconfig = fake.kubeconfig_path().display().to_string();
    assert_eq!(
        calls[0],
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
    assert!(!calls[0].iter().any(|a| a.contains("s3cr3t")));
}

#[tokio::test]
async fn no_wait_and_no_version_are_left_out() {
    let fake = FakeHelm::new();
    let release = ChartRelease::new("cnpg", "cnpg/cloudnative-pg", "cnpg-system");
    fake.helm()
        .upgrade_install(&release, &serde_json::json!({}))
        .await
        .expect("installs");
    let call = &fake.calls()[0];
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
