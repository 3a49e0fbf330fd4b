//! `fog mesh` through the real binary.

use std::net::UdpSocket;
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt as _;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fog-mesh-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn trace_then_sim_reports_every_key() {
    let dir = scratch("sim");
    let trace = fog()
        .args([
            "mesh", "trace", "--nodes", "12", "--hours", "2", "--area", "600",
        ])
        .output()
        .unwrap();
    assert!(trace.status.success());
    let path = dir.join("trace.one");
    std::fs::write(&path, &trace.stdout).unwrap();
    let output = fog()
        .args(["--json", "mesh", "sim", "--router", "prophet", "--trace"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "delivery_ratio",
        "latency_median_s",
        "latency_p95_s",
        "overhead_ratio",
        "mean_hops",
        "peak_buffer_bundles",
    ] {
        assert!(report[key].is_number(), "missing {key}: {report}");
    }
    // Deterministic for a seed.
    let again = fog()
        .args(["--json", "mesh", "sim", "--router", "prophet", "--trace"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(again.stdout, output.stdout);
}

#[test]
fn a_bad_trace_is_a_clear_error() {
    let dir = scratch("bad");
    let path = dir.join("bad.one");
    std::fs::write(&path, "0 CONN 0 1 up\n5 CONN 0 1 sideways\n").unwrap();
    let output = fog()
        .args(["mesh", "sim", "--trace"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("trace line 2"));
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `fog mesh recv` as node c and `fog mesh send` from node a to it over
/// loopback UDP, each with its extra arguments; returns the one JSON line c printed.
fn send_to_c(
    dir: &std::path::Path,
    message: &str,
    recv_extra: &[String],
    send_extra: &[String],
) -> serde_json::Value {
    let (pa, pc) = (free_port(), free_port());
    let receiver = StdCommand::cargo_bin("fog")
        .unwrap()
        .args([
            "--json",
            "mesh",
            "recv",
            "--name",
            "c",
            "--no-multicast",
            "--timeout",
            "60",
        ])
        .args(recv_extra)
        .args([
            "--bind",
            &format!("127.0.0.1:{pc}"),
            "--peer",
            &format!("127.0.0.1:{pa}"),
        ])
        .arg("--data-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sender = fog()
        .args([
            "mesh",
            "send",
            "--name",
            "a",
            "--no-multicast",
            "--to",
            "dtn://c/inbox",
            "-m",
            message,
            "--linger",
            "4",
        ])
        .args(send_extra)
        .args([
            "--bind",
            &format!("127.0.0.1:{pa}"),
            "--peer",
            &format!("127.0.0.1:{pc}"),
        ])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        sender.status.success(),
        "{}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let output = receiver.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn send_and_recv_between_two_processes_over_udp() {
    let dir = scratch("udp");
    let line = send_to_c(&dir, "hello over udp", &[], &[]);
    assert_eq!(line["payload"], "hello over udp");
    assert_eq!(line["source"], "dtn://a/");
}

#[test]
fn ble_without_the_feature_or_an_adapter_says_so() {
    let output = fog()
        .args([
            "mesh",
            "recv",
            "--name",
            "x",
            "--bearer",
            "ble",
            "--timeout",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Without the `ble` feature the build says so; with it, this machine's
    // missing adapter is reported.
    assert!(
        stderr.contains("BLE bearer") || stderr.contains("bluetooth adapter"),
        "{stderr}"
    );
}

fn keygen(dir: &std::path::Path, name: &str) -> String {
    let output = fog()
        .args(["mesh", "keygen", "--name", name, "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    let (printed, keys) = line.trim().split_once(' ').unwrap();
    assert_eq!(printed, name);
    keys.to_owned()
}

#[test]
fn secure_send_and_recv_seal_end_to_end() {
    let dir = scratch("secure");
    let a_keys = keygen(&dir, "a");
    let c_keys = keygen(&dir, "c");
    // A second keygen does not silently replace the key.
    assert!(
        !fog()
            .args(["mesh", "keygen", "--name", "a", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap()
            .status
            .success()
    );
    let recv_extra = [
        "--secure".to_owned(),
        "--trust".to_owned(),
        format!("a={a_keys}"),
    ];
    let send_extra = [
        "--secure".to_owned(),
        "--trust".to_owned(),
        format!("c={c_keys}"),
    ];
    let line = send_to_c(&dir, "sealed hello", &recv_extra, &send_extra);
    assert_eq!(line["payload"], "sealed hello");
    assert_eq!(line["sealed"], true);
}
