//! `fog tui` run as a user would, without a terminal: it refuses to draw on
//! a pipe, and `--json` reads every node once (a node that does not answer
//! is reported down, not an error).

use assert_cmd::Command;
use predicates::prelude::*;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

#[test]
fn without_a_terminal_it_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    fog()
        .args(["tui", "--data-dir"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not one").and(predicate::str::contains("--json")));
}

#[test]
fn json_reports_every_node_and_the_down_ones_with_their_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let devnet = dir.path().join("devnet");
    for n in 0..2 {
        std::fs::create_dir_all(devnet.join(format!("node-{n}"))).expect("node dir");
    }
    // node-1 has an address, but nothing listens there.
    let node1 = devnet.join("node-1");
    std::fs::write(
        node1.join("api.addr"),
        format!("127.0.0.1:{}\n", closed_port()),
    )
    .unwrap();
    std::fs::write(node1.join("api.token"), "t\n").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t\n").unwrap();

    let output = fog()
        .args(["--json", "tui", "--devnet"])
        .arg(&devnet)
        .args([
            "--api",
            &format!("127.0.0.1:{}", closed_port()),
            "--token-file",
        ])
        .arg(&token)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let document: serde_json::Value = serde_json::from_slice(&output).expect("one JSON document");
    let nodes = document["nodes"].as_array().expect("nodes");
    let targets: Vec<&str> = nodes
        .iter()
        .map(|n| n["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets[..2], ["node-0", "node-1"]);
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert_eq!(node["up"], false, "{node}");
        assert!(node["status"].is_null());
        assert!(
            node["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{node}"
        );
    }
    assert!(nodes[0]["error"].as_str().unwrap().contains("api.addr"));
    assert!(nodes[1]["error"].as_str().unwrap().contains("/v1/status"));
}

#[test]
fn a_devnet_without_nodes_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    fog()
        .args(["tui", "--devnet"])
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no node-N directories"));
}
