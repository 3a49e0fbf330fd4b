//! The `fog` binary, run as a user would.

use assert_cmd::Command;
use predicates::prelude::*;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

const GROUPS: [&str; 12] = [
    "node",
    "devnet",
    "job",
    "bench",
    "dao",
    "mix",
    "p2p",
    "mesh",
    "sched",
    "harvest",
    "tui",
    "completions",
];

#[test]
fn help_lists_every_group() {
    let output = fog()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(output).expect("help is utf-8");
    for group in GROUPS {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(&format!("{group} "))),
            "`fog --help` does not list `{group}`:\n{help}"
        );
    }
    assert!(
        help.contains("--json"),
        "the --json convention is not in --help"
    );
}

#[test]
fn version_prints_the_package_version() {
    fog()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn completions_bash_prints_a_script() {
    fog()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_fog()").and(predicate::str::contains("complete -F")));
}

#[test]
fn completions_cover_other_shells() {
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        fog()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::is_empty().not());
    }
}

#[test]
fn unknown_shell_is_a_usage_error() {
    fog().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn a_node_that_is_not_running_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    fog()
        .args(["node", "status", "--data-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains(
            "is a node running with this data directory?",
        ));
}

#[test]
fn json_errors_are_one_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let output = fog()
        .args(["--json", "job", "--node"])
        .arg(dir.path())
        .arg("list")
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let document: serde_json::Value =
        serde_json::from_slice(&output).expect("stdout is one JSON document");
    assert_eq!(document["error"]["kind"], "error");
    assert!(
        document["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("api.addr"))
    );
}
