//! `cargo xtask ci` against fixture workspaces: a layer-to-layer dependency
//! makes it fail before anything is built.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("has a parent")).expect("create dir");
    fs::write(path, text).expect("write fixture file");
}

/// A workspace with two layer crates; `fog-mix` optionally depends on `fog-p2p`.
fn fixture(layer_dependency: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        &dir.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"fog-mix\", \"fog-p2p\", \"fog-cli\"]\n",
    );
    let dep = layer_dependency.map_or(String::new(), |section| {
        format!("\n[{section}]\nfog-p2p = {{ path = \"../fog-p2p\" }}\n")
    });
    write(
        &dir.path().join("fog-mix/Cargo.toml"),
        &format!("[package]\nname = \"fog-mix\"\nversion = \"0.1.0\"\nedition = \"2024\"\n{dep}"),
    );
    write(&dir.path().join("fog-mix/src/lib.rs"), "");
    write(
        &dir.path().join("fog-p2p/Cargo.toml"),
        "[package]\nname = \"fog-p2p\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write(&dir.path().join("fog-p2p/src/lib.rs"), "");
    write(
        &dir.path().join("fog-cli/Cargo.toml"),
        "[package]\nname = \"fog-cli\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nfog-mix = { path = \"../fog-mix\" }\nfog-p2p = { path = \"../fog-p2p\" }\n",
    );
    write(&dir.path().join("fog-cli/src/main.rs"), "fn main() {}\n");
    dir
}

fn xtask(task: &str, root: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([task, "--workspace-root"])
        .arg(root)
        .output()
        .expect("run xtask")
}

#[test]
fn ci_fails_on_a_layer_to_layer_dependency() {
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        let ws = fixture(Some(section));
        let output = xtask("ci", ws.path());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "ci passed with a {section} edge: {stderr}"
        );
        assert!(stderr.contains("fog-mix -> fog-p2p"), "{stderr}");
        assert!(
            !stderr.contains("$ cargo"),
            "ci went on to build after the layer check failed: {stderr}"
        );
    }
}

#[test]
fn check_layers_passes_when_only_fog_cli_composes() {
    let ws = fixture(None);
    let output = xtask("check-layers", ws.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn stray_top_level_entries_are_refused() {
    let ws = fixture(None);
    write(&ws.path().join("fog-common/Cargo.toml"), "");
    let output = xtask("check-layers", ws.path());
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("fog-common"));
}

#[test]
fn this_workspace_keeps_its_layers_apart() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let output = xtask("check-layers", root);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
