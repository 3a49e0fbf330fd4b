//! `fog p2p` and `fog bench p2p`, run as a user would: real processes on
//! loopback sockets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

/// Runs a `fog --json` command that must succeed; its one JSON document.
fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out).expect("one JSON document")
}

/// A `fog p2p node` process, killed on drop.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a node on loopback, subscribed to "news"; returns it with its
/// full address and its remaining output lines.
fn start_node() -> (NodeProcess, String, mpsc::Receiver<String>) {
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
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.try_send(line);
        }
    });
    (proc, format!("{listen}/p2p/{peer}"), rx)
}

#[test]
fn put_then_get_through_a_running_node() {
    let (_node, addr, _events) = start_node();
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
    let doc = json_of(
        fog()
            .args(["--json", "p2p", "get", "--key-name", "greeting"])
            .args(common),
    );
    assert_eq!(doc["value"], "hello");

    let doc = json_of(
        fog()
            .args(["--json", "p2p", "peers", "--wait", "1"])
            .args(common),
    );
    let peers = doc["peers"].as_array().expect("a peer list");
    assert!(
        peers
            .iter()
            .any(|p| addr.ends_with(p["peer_id"].as_str().unwrap_or("?"))),
        "the running node is listed: {doc}"
    );
}

/// `fog p2p subscribe` prints what `fog p2p publish` sends, and so does the
/// running node subscribed to the topic; three processes, one network.
#[test]
fn publish_reaches_subscribe_and_the_running_node() {
    let (_node, addr, events) = start_node();
    let common = ["--bootstrap", &addr, "--kad-server", "--no-mdns"];
    let mut subscriber = NodeProcess(
        StdCommand::new(assert_cmd::cargo::cargo_bin("fog"))
            .args([
                "--json",
                "p2p",
                "subscribe",
                "--topic",
                "news",
                "--count",
                "1",
            ])
            .args(common)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn fog p2p subscribe"),
    );
    // The subscriber joins the topic's mesh within a GossipSub heartbeat or
    // two; until it has the message, publish again (each publish is a new
    // message). A hang guard, not a timing assertion.
    let deadline = Instant::now() + Duration::from_mins(1);
    let mut published = 0;
    while subscriber
        .0
        .try_wait()
        .expect("subscriber status")
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "subscribe printed nothing after {published} publishes"
        );
        let doc = json_of(
            fog()
                .args([
                    "--json",
                    "p2p",
                    "publish",
                    "--topic",
                    "news",
                    "-m",
                    "hello fog",
                ])
                .args(common),
        );
        assert_eq!(doc["published"], true, "{doc}");
        published += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = subscriber.0.wait().expect("subscriber exit");
    assert!(status.success(), "subscribe exited with {status}");
    let mut out = String::new();
    std::io::Read::read_to_string(
        subscriber.0.stdout.as_mut().expect("piped stdout"),
        &mut out,
    )
    .expect("read subscribe output");
    let line: serde_json::Value =
        serde_json::from_str(out.trim()).expect("one JSON line per message");
    assert_eq!(line["event"], "message", "{out}");
    assert_eq!(line["topic"], "news", "{out}");
    assert_eq!(line["data"], "hello fog", "{out}");
    assert!(line["source"].is_string(), "signed author: {out}");

    let seen = std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(30)).ok())
        .find(|l| l.contains("\"event\":\"message\""))
        .expect("the running node printed the message");
    let seen: serde_json::Value = serde_json::from_str(&seen).expect("json");
    assert_eq!(seen["data"], "hello fog", "{seen}");
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
    let doc = json_of(fog().args([
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
    ]));
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
