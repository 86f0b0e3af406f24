//! The `harmony` binary as a user meets it: parsing, help, completions, exit codes.
//!
//! Each test runs the binary with every OpenBao and SSO variable of the surrounding environment
//! removed and its own `HARMONY_DATA_DIR`, so a developer's own settings never leak in.

mod harness;

use harness::{harmony, stderr, stdout};

#[cfg(feature = "deploy")]
#[test]
fn help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony(data.path()).arg("--help").output().expect("run");
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}

/// The lean build (`--no-default-features`): its help lists every command but `deploy` and
/// `cleanup` (`bootstrap` of an existing OpenBao needs no Kubernetes and stays), and those two
/// are unknown commands (usage, exit 2).
#[cfg(not(feature = "deploy"))]
#[test]
fn lean_help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony(data.path()).arg("--help").output().expect("run");
    assert!(output.status.success());
    let help = stdout(&output);
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"bootstrap"), "{commands:?}");
    assert!(commands.contains(&"backup"), "{commands:?}");
    assert!(!commands.contains(&"deploy"), "{commands:?}");
    assert!(!commands.contains(&"cleanup"), "{commands:?}");
    insta::assert_snapshot!(help);
    for gone in ["deploy", "cleanup"] {
        let output = harmony(data.path()).arg(gone).output().expect("run");
        assert_eq!(output.status.code(), Some(2), "{gone}: {}", stderr(&output));
        assert!(
            stderr(&output).contains("unrecognized subcommand"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn config_help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony(data.path())
        .args(["config", "--help"])
        .output()
        .expect("run");
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}

/// `export` (the same flags as `run`: --plain, --prefix, --allow-name) and `config set`
/// (FIELD=-, a bare FIELD).
#[test]
fn export_and_config_set_help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    for (name, args) in [
        ("export_help", vec!["export", "--help"]),
        ("config_set_help", vec!["config", "set", "--help"]),
    ] {
        let output = harmony(data.path()).args(&args).output().expect("run");
        assert!(output.status.success());
        insta::assert_snapshot!(name, stdout(&output));
    }
}

#[cfg(feature = "deploy")]
#[test]
fn deploy_help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony(data.path())
        .args(["deploy", "--help"])
        .output()
        .expect("run");
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn completions_for_each_shell_name_the_subcommands() {
    let data = tempfile::tempdir().expect("tempdir");
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef harmony"),
        ("fish", "complete -c harmony"),
    ] {
        let output = harmony(data.path())
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("completions"), "{shell}");
        assert!(stderr(&output).is_empty(), "{shell}: {}", stderr(&output));
    }
}

#[test]
fn usage_errors_exit_2_on_stderr() {
    let data = tempfile::tempdir().expect("tempdir");
    let cases: &[(&[&str], &str)] = &[
        (&["completions", "tcsh"], "tcsh"),
        (&["--output", "xml", "completions", "bash"], "--output"),
        (
            &["--openbao-url", "not a url", "completions", "bash"],
            "--openbao-url",
        ),
        (&["no-such-command"], "no-such-command"),
        // Scheduled backups (the deploy feature): checked before anything runs.
        #[cfg(feature = "deploy")]
        (
            &["deploy", "--backup-schedule", "0 * * *"],
            "--backup-schedule",
        ),
        #[cfg(feature = "deploy")]
        (
            &["deploy", "--backup-schedule", "@reboot"],
            "--backup-schedule",
        ),
        #[cfg(feature = "deploy")]
        (
            &[
                "deploy",
                "--backup-schedule",
                "@hourly",
                "--backup-keep",
                "0",
            ],
            "--backup-keep",
        ),
        #[cfg(feature = "deploy")]
        (&["deploy", "--backup-keep", "3"], "--backup-schedule"),
        #[cfg(feature = "deploy")]
        (
            &["backup", "fetch", "../../etc/passwd"],
            "harmony backup list",
        ),
    ];
    for (args, named) in cases {
        let output = harmony(data.path()).args(*args).output().expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(named),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).is_empty(), "{args:?}: data only on success");
    }
}

/// The offline and watch options: contradictions and bad durations are usage errors (exit 2)
/// that name the option, before anything is read.
#[test]
fn run_options_that_cannot_work_are_usage_errors() {
    let data = tempfile::tempdir().expect("tempdir");
    for (args, names) in [
        (&["--interval", "5s"][..], "--watch"),
        (&["--watch", "--offline"][..], "--offline"),
        (&["--offline", "--no-cache"][..], "--no-cache"),
        (&["--max-age", "5y"][..], "--max-age"),
        (&["--watch", "--grace", "soon"][..], "--grace"),
    ] {
        let output = harmony(data.path())
            .args(["run", "-c", "shop"])
            .args(args)
            .args(["--", "true"])
            .output()
            .expect("run");
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(names),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

/// `scripts/release --binary PATH` packs that binary with the README and the LICENSE as
/// `harmony-<version>-<target>.tar.gz` — the name and layout harmony-cli's
/// `[package.metadata.binstall]` asks for — and a `SHA256SUMS` that `sha256sum -c` accepts; a
/// binary of another version is refused. A stand-in binary (a shell script answering
/// `--version`) spares the test a release build.
#[test]
fn release_script_packs_the_binstall_archive_with_its_checksum() {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let version = env!("CARGO_PKG_VERSION");
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc -vV");
    let target = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("a host triple");
    let dir = tempfile::tempdir().expect("tempdir");
    let stand_in = |name: &str, says: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho 'harmony {says}'\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    };
    let out = dir.path().join("dist");
    let release = |binary: &std::path::Path| {
        Command::new(root.join("scripts/release"))
            .arg("--binary")
            .arg(binary)
            .arg("--out")
            .arg(&out)
            .output()
            .expect("run scripts/release")
    };

    let wrong = release(&stand_in("old", "0.0.1"));
    assert!(
        !wrong.status.success(),
        "a binary of another version is refused"
    );
    assert!(stderr(&wrong).contains("not version"), "{}", stderr(&wrong));

    let made = release(&stand_in("harmony", version));
    assert!(made.status.success(), "{}", stderr(&made));
    let name = format!("harmony-{version}-{target}");
    let archive = format!("{name}.tar.gz");
    assert!(stdout(&made).contains(&archive), "{}", stdout(&made));

    // The names cargo binstall builds from the metadata are the ones made.
    let manifest = std::fs::read_to_string(root.join("crates/harmony-cli/Cargo.toml"))
        .expect("read the manifest");
    let template = |key: &str| {
        manifest
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{key} in [package.metadata.binstall]"))
            .replace("{ version }", version)
            .replace("{ target }", &target)
            .replace("{ bin }", "harmony")
            .replace("{ binary-ext }", "")
    };
    assert!(template("pkg-url").ends_with(&format!("/v{version}/{archive}")));
    let bin_dir = template("bin-dir");
    assert_eq!(bin_dir, format!("{name}/harmony"));

    let check = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&out)
        .output()
        .expect("sha256sum");
    assert!(check.status.success(), "{}", stdout(&check));
    assert_eq!(stdout(&check).trim(), format!("{archive}: OK"));

    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(out.join(&archive))
        .arg("-C")
        .arg(&unpacked)
        .output()
        .expect("tar");
    assert!(tar.status.success(), "{}", stderr(&tar));
    let packed = Command::new(unpacked.join(&bin_dir))
        .arg("--version")
        .output()
        .expect("run the packed binary");
    assert_eq!(stdout(&packed).trim(), format!("harmony {version}"));
    for file in ["README.md", "LICENSE"] {
        assert_eq!(
            std::fs::read(unpacked.join(&name).join(file)).expect("packed file"),
            std::fs::read(root.join(file)).expect("repository file"),
            "{file}"
        );
    }
}
