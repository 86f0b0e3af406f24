//! Guards the rule that Harmony never runs kubectl as a process: every cluster operation goes
//! through `harmony_k8s::K8sClient`.
//!
//! Walks every `.rs` file of the workspace (skipping `target/`, hidden directories and
//! `node_modules/`) and flags code lines that name kubectl as a program: the string literal
//! (`"kubectl"`, `"kubectl.exe"`) anywhere in code, or a line mentioning both `Command` and
//! kubectl. Comments are ignored, so docs may still talk about kubectl. This file spells the
//! name only in pieces, so it does not flag itself.

use std::{
    fs,
    path::{Path, PathBuf},
};

fn program() -> String {
    ["kube", "ctl"].concat()
}

/// Code lines (1-based number, text) of `source` that run or name the kubectl program.
fn kubectl_uses(source: &str) -> Vec<(usize, String)> {
    let name = program();
    let literals = [format!("\"{name}\""), format!("\"{name}.exe\"")];
    source
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let code = code_part(line);
            let names_program = literals.iter().any(|lit| code.contains(lit.as_str()));
            let spawns = code.contains("Command") && code.to_ascii_lowercase().contains(&name);
            (names_program || spawns).then(|| (i + 1, line.trim().to_owned()))
        })
        .collect()
}

/// The part of a line before a `//` comment. Naive about `//` inside string literals, which
/// only makes the check stricter for the rest of such a line, never looser.
fn code_part(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return "";
    }
    match line.find("//") {
        // `"http://..."` is a URL inside a string, not a comment: keep the whole line.
        Some(at) if line[..at].ends_with(':') => line,
        Some(at) => &line[..at],
        None => line,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if entry.file_type()?.is_dir() {
            if name == "target" || name == "node_modules" || name.starts_with('.') {
                continue;
            }
            rust_files(&path, out)?;
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[test]
fn no_rust_file_in_the_workspace_runs_kubectl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("workspace root exists");
    assert!(
        root.join("Cargo.toml").is_file() && root.join("crates").is_dir(),
        "{} is not the workspace root",
        root.display()
    );
    let mut files = Vec::new();
    rust_files(&root, &mut files).expect("workspace is readable");
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("crates/harmony-k8s/src/lib.rs")),
        "the walk must reach the workspace's own sources"
    );
    let this_file = Path::new(file!());
    assert!(
        files.iter().any(|f| f.ends_with(this_file)),
        "the walk must include this check itself"
    );

    let mut offenders = Vec::new();
    for file in &files {
        let source = fs::read_to_string(file).expect("source is UTF-8");
        for (line, text) in kubectl_uses(&source) {
            let shown = file.strip_prefix(&root).unwrap_or(file);
            offenders.push(format!("{}:{line}: {text}", shown.display()));
        }
    }
    assert!(
        offenders.is_empty(),
        "these lines run {} as a process; use harmony_k8s::K8sClient instead:\n{}",
        program(),
        offenders.join("\n")
    );
}

#[test]
fn the_check_flags_kubectl_processes_and_ignores_comments() {
    let k = program();
    let flagged = [
        format!("let out = std::process::Command::new(\"{k}\").arg(\"get\").output()?;"),
        format!("    tokio::process::Command::new(\"{k}.exe\")"),
        format!("const BIN: &str = \"{k}\";"),
        format!("let mut cmd = Command::new(&self.{k}_path);"),
        format!("Command::new(which(\"{k}\")?)"),
    ];
    for line in &flagged {
        assert_eq!(kubectl_uses(line).len(), 1, "should flag: {line}");
    }
    let multi_line = format!("let c = Command::new(\n    \"{k}\",\n);");
    assert_eq!(kubectl_uses(&multi_line), vec![(2, format!("\"{k}\","))]);

    let allowed = [
        format!("/// Replaces `{k} port-forward`."),
        format!("//! No \"{k}\" anywhere."),
        format!("let x = 1; // was Command::new(\"{k}\")"),
        format!("let msg = \"run {k} get pods to see more\";"),
        "let c = Command::new(\"helm\");".to_owned(),
        "let url = \"http://127.0.0.1:8200\"; let c = Command::new(\"k3d\");".to_owned(),
    ];
    for line in &allowed {
        assert!(kubectl_uses(line).is_empty(), "should allow: {line}");
    }
}
