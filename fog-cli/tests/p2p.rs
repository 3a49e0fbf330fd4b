//! `fog p2p` and `fog bench p2p`, run as a user would: real processes on
//! loopback sockets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as StdCommand, Stdio};

use assert_cmd::Command;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

/// A `fog p2p node` process, killed on drop.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node on loopback and returns it with its full address.
fn start_node() -> (NodeProcess, String) {
    let bin = assert_cmd::cargo::cargo_bin("fog");
    let mut child = StdCommand::new(bin)
        .args([
            "--json",
            "p2p",
            "node",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--kad-server",
            "--no-mdns",
            "--subscribe",
            "news",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fog p2p node");
    let stdout = child.stdout.take().expect("piped stdout");
    let proc = NodeProcess(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a started line").expect("utf-8");
    let started: serde_json::Value = serde_json::from_str(&first).expect("json");
    assert_eq!(started["event"], "started");
    let peer = started["peer_id"].as_str().expect("peer id").to_owned();
    let listen = started["listen"][0]
        .as_str()
        .expect("a listen address")
        .to_owned();
    // Keep draining the node's output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (proc, format!("{listen}/p2p/{peer}"))
}

#[test]
fn put_then_get_through_a_running_node() {
    let (_node, addr) = start_node();
    let common = ["--bootstrap", &addr, "--kad-server", "--no-mdns"];
    fog()
        .args([
            "--json",
            "p2p",
            "put",
            "--key-name",
            "greeting",
            "--value",
            "hello",
        ])
        .args(common)
        .assert()
        .success();
    let out = fog()
        .args(["--json", "p2p", "get", "--key-name", "greeting"])
        .args(common)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(doc["value"], "hello");

    let out = fog()
        .args(["--json", "p2p", "peers", "--wait", "1"])
        .args(common)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    let peers = doc["peers"].as_array().expect("a peer list");
    assert!(
        peers
            .iter()
            .any(|p| addr.ends_with(p["peer_id"].as_str().unwrap_or("?"))),
        "the running node is listed: {doc}"
    );
}

#[test]
fn one_shot_commands_need_a_network() {
    fog()
        .args(["p2p", "get", "--key-name", "x"])
        .assert()
        .failure()
        .stderr(predicates::str::contains("--bootstrap"));
}

#[test]
fn bench_p2p_prints_the_figures() {
    let out = fog()
        .args([
            "--json",
            "bench",
            "p2p",
            "--nodes",
            "12",
            "--records",
            "5",
            "--lookups",
            "10",
            "--messages",
            "2",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    for key in [
        "nodes",
        "lookup_success_ratio",
        "lookup_hops_median",
        "lookup_hops_p99",
        "gossip_delivery_ratio",
        "duplicates_per_message",
        "rss_per_node_bytes",
    ] {
        assert!(doc.get(key).is_some(), "missing {key} in {doc}");
    }
    assert_eq!(doc["nodes"], 12);
}
