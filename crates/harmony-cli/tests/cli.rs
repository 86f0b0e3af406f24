//! The `harmony` binary as a user meets it: parsing, help, completions, exit codes.
//!
//! Each test runs the binary with every OpenBao and SSO variable of the surrounding environment
//! removed and its own `HARMONY_DATA_DIR`, so a developer's own settings never leak in.

mod harness;

use harness::{harmony, stderr, stdout};

#[test]
fn help_is_stable() {
    let data = tempfile::tempdir().expect("tempdir");
    let output = harmony(data.path()).arg("--help").output().expect("run");
    assert!(output.status.success());
    insta::assert_snapshot!(stdout(&output));
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
