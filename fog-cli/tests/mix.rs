//! `fog mix` and `fog bench mix` through the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt as _;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fog-mix-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn sim_reports_entropy_next_to_its_maximum() {
    let output = fog()
        .args(["--json", "mix", "sim", "--senders", "64", "--samples", "40"])
        .output()
        .unwrap();
    let report = json_of(&output);
    assert_eq!(report["senders"], 64);
    let entropy = report["entropy_bits"].as_f64().unwrap();
    let max = report["max_entropy_bits"].as_f64().unwrap();
    assert!((max - 6.0).abs() < 1e-9);
    assert!(entropy > 0.0 && entropy <= max, "{report}");
}

#[test]
fn bench_prints_every_key() {
    let output = fog()
        .args(["--json", "bench", "mix", "--packets", "200"])
        .output()
        .unwrap();
    let report = json_of(&output);
    for key in [
        "raw_pps",
        "pipeline_pps",
        "cores",
        "ratio",
        "added_latency_p50_us",
        "added_latency_p99_us",
        "reference_timer_lateness_p99_us",
        "added_latency_p99_beyond_reference_us",
        "x25519_bound_pps_per_core",
    ] {
        assert!(report[key].is_number(), "missing {key}: {report}");
    }
}

struct Kill(Vec<Child>);
impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn three_mix_processes_carry_a_private_message() {
    let dir = scratch("net");
    let names = ["a", "b", "c"];
    let mut lines = Vec::new();
    let mut addrs = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let key = json_of(
            &fog()
                .args(["--json", "mix", "keygen", "--name", name, "--data-dir"])
                .arg(&dir)
                .output()
                .unwrap(),
        );
        assert_eq!(key["node_address"].as_str().unwrap().len(), 64);
        // Each mix in its own /16 of the loopback range.
        let host = format!("127.{}.0.1", i + 1);
        let port = std::net::TcpListener::bind((host.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("{host}:{port}");
        let d = fog()
            .args(["mix", "descriptor", "--name", name, "--data-dir"])
            .arg(&dir)
            .args([
                "--address",
                &addr,
                "--layer",
                &i.to_string(),
                "--stake",
                "10",
            ])
            .args(["--family", name])
            .output()
            .unwrap();
        assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
        lines.push(String::from_utf8(d.stdout).unwrap());
        addrs.push(addr);
    }
    std::fs::write(dir.join("directory.txt"), lines.concat()).unwrap();
    let mut children = Kill(Vec::new());
    let mut outputs = Vec::new();
    for (name, addr) in names.iter().zip(&addrs) {
        let config = dir.join(format!("{name}.json"));
        std::fs::write(
            &config,
            serde_json::json!({
                "name": name, "listen": addr, "directory": "directory.txt",
                "data_dir": ".", "workers": 1, "loop_rate": 2.0,
            })
            .to_string(),
        )
        .unwrap();
        let mut child = StdCommand::cargo_bin("fog")
            .unwrap()
            .args(["--json", "mix", "node", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        children.0.push(child);
        let first = rx
            .recv_timeout(Duration::from_mins(1))
            .expect("node started");
        assert!(first.contains("listening"), "{first}");
        outputs.push(rx);
    }
    let to = "ab".repeat(32);
    let sent = json_of(
        &fog()
            .args(["--json", "mix", "send", "--directory"])
            .arg(dir.join("directory.txt"))
            .args([
                "--to",
                &to,
                "--level",
                "PRIVATE",
                "-m",
                "through three mixes",
            ])
            .args(["--mean-delay-ms", "5"])
            .output()
            .unwrap(),
    );
    assert_eq!(sent["route"].as_array().unwrap().len(), 3);
    // The layer-2 mix (c) is the last hop.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = outputs[2]
            .recv_timeout(left)
            .expect("the message was delivered");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["event"] == "delivered" {
            assert_eq!(v["message"], "through three mixes");
            assert_eq!(v["destination"], to);
            break;
        }
    }
}

#[test]
fn a_node_rotates_its_epochs_and_checks_layers_against_the_lottery() {
    let dir = scratch("epochs");
    let randomness = "5a".repeat(32);
    // Epochs long enough that a loaded machine (debug binaries, other tests
    // on both cores) still sees every rotation and overlap event in order.
    let epoch_secs = 4u64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let first = now / epoch_secs;
    let mut lines = Vec::new();
    let mut listen = String::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        json_of(
            &fog()
                .args(["--json", "mix", "keygen", "--name", name, "--data-dir"])
                .arg(&dir)
                .output()
                .unwrap(),
        );
        let host = format!("127.{}.0.1", i + 1);
        let port = std::net::TcpListener::bind((host.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("{host}:{port}");
        if i == 0 {
            listen.clone_from(&addr);
        }
        // Every mix claims layer 0 in every epoch; the draw deals the three
        // active slots to layers 0, 1 and 2, so exactly one claim holds.
        for epoch in first..first + 8 {
            let d = fog()
                .args(["mix", "descriptor", "--name", name, "--data-dir"])
                .arg(&dir)
                .args(["--address", &addr, "--layer", "0", "--stake", "10"])
                .args(["--epoch", &epoch.to_string(), "--family", name])
                .args(["--ticket-randomness", &randomness])
                .output()
                .unwrap();
            assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
            let line = String::from_utf8(d.stdout).unwrap();
            assert_eq!(line.split_whitespace().count(), 2, "descriptor and ticket");
            lines.push(line);
        }
    }
    std::fs::write(dir.join("directory.txt"), lines.concat()).unwrap();
    let config = dir.join("a.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "name": "a", "listen": listen, "directory": "directory.txt",
            "data_dir": ".", "workers": 1, "loop_rate": 0.0,
            "epoch_secs": epoch_secs, "overlap_secs": 1.0, "replay_rate": 500.0,
            "lottery": { "randomness": randomness, "slots": 3, "layers": 3 },
        })
        .to_string(),
    )
    .unwrap();
    let mut child = StdCommand::cargo_bin("fog")
        .unwrap()
        .args(["--json", "mix", "node", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let _kill = Kill(vec![child]);
    let next = |event: &str| loop {
        let v = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {event} event"));
        if v["event"] == event {
            return v;
        }
    };
    let listening = next("listening");
    let epoch = listening["epoch"].as_u64().unwrap();
    assert!((first..first + 5).contains(&epoch), "{listening}");
    // The replay filter is sized for 500 packets/s over the epoch and its
    // overlap.
    assert_eq!(
        listening["replay_capacity"].as_u64(),
        Some(500 * (epoch_secs + 1)),
        "{listening}"
    );
    // Two of the three layer claims contradict the draw.
    assert_eq!(listening["directory"], 1, "{listening}");
    assert_eq!(
        listening["refused"].as_array().unwrap().len(),
        2,
        "{listening}"
    );
    let rotated = next("rotated");
    assert_eq!(rotated["epoch"].as_u64(), Some(epoch + 1), "{rotated}");
    assert_eq!(rotated["directory"], 1, "{rotated}");
    let closed = next("overlap_closed");
    assert_eq!(closed["epoch"].as_u64(), Some(epoch), "{closed}");
    let rotated = next("rotated");
    assert_eq!(rotated["epoch"].as_u64(), Some(epoch + 2), "{rotated}");
    // The retired epochs' replay filters are gone, the current one is kept.
    let replay = dir.join("a.replay");
    assert!(!replay.join(format!("replay-{epoch}.journal")).exists());
}
