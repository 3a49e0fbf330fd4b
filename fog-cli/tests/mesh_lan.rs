//! LAN discovery of the UDP bearer, for real: two hosts in their own network
//! namespaces joined by a veth pair, each running the `fog` binary with
//! multicast discovery on and no peer address given. The sender only learns
//! of the receiver from its multicast beacons, so a delivered bundle proves
//! discovery and unicast both work across a link.
//!
//! Needs root and `ip netns` (iproute2). Without them the test prints a skip
//! line and passes, unless `FOG_REQUIRE_NETNS=1` (set by `.ci/run`), where it
//! fails. Nothing leaves the two namespaces it creates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `ip ARGS`, returning its output (or the spawn error as text).
fn ip(args: &[&str]) -> Result<Output, String> {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))
}

/// Runs `ip ARGS` and turns a non-zero exit into an error.
fn ip_ok(args: &[&str]) -> Result<(), String> {
    let output = ip(args)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Lan {
    namespaces: [String; 2],
    addresses: [&'static str; 2],
}

impl Lan {
    fn create() -> Result<Lan, String> {
        let id = std::process::id() % 100_000;
        let lan = Lan {
            namespaces: [format!("fogmesh{id}a"), format!("fogmesh{id}b")],
            addresses: ["10.231.77.1", "10.231.77.2"],
        };
        for ns in &lan.namespaces {
            let _ = ip(&["netns", "del", ns]);
            ip_ok(&["netns", "add", ns])?;
        }
        let (va, vb) = (format!("fmv{id}a"), format!("fmv{id}b"));
        ip_ok(&[
            "link",
            "add",
            &va,
            "netns",
            &lan.namespaces[0],
            "type",
            "veth",
            "peer",
            "name",
            &vb,
            "netns",
            &lan.namespaces[1],
        ])?;
        for ((ns, dev), addr) in lan.namespaces.iter().zip([&va, &vb]).zip(lan.addresses) {
            let cidr = format!("{addr}/24");
            ip_ok(&["-n", ns, "link", "set", "lo", "up"])?;
            ip_ok(&["-n", ns, "addr", "add", &cidr, "dev", dev])?;
            ip_ok(&["-n", ns, "link", "set", dev, "up"])?;
            // Multicast leaves by the veth: the only route out of this host.
            ip_ok(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev])?;
        }
        Ok(lan)
    }

    /// `ip netns exec NS fog ARGS` with the data dir, not yet started.
    fn fog(&self, host: usize, data_dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespaces[host]])
            .arg(assert_cmd::cargo::cargo_bin!("fog"))
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// The LAN, or `None` after printing why this machine cannot make one.
fn lan_or_skip() -> Option<Lan> {
    let required = std::env::var("FOG_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    match Lan::create() {
        Ok(lan) => Some(lan),
        Err(reason) => {
            assert!(
                !required,
                "FOG_REQUIRE_NETNS=1 but network namespaces are unavailable: {reason}"
            );
            eprintln!("skip: mesh LAN discovery test needs root and ip netns ({reason})");
            None
        }
    }
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fog-mesh-lan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn nodes_on_a_lan_find_each_other_by_multicast() {
    let Some(lan) = lan_or_skip() else {
        return;
    };
    let dir = scratch();
    let port = "4600";
    let receiver = lan
        .fog(
            1,
            &dir,
            &[
                "--json",
                "mesh",
                "recv",
                "--name",
                "c",
                "--timeout",
                "60",
                "--bind",
                &format!("{}:{port}", lan.addresses[1]),
            ],
        )
        .spawn()
        .unwrap();
    let sender = lan
        .fog(
            0,
            &dir,
            &[
                "mesh",
                "send",
                "--name",
                "a",
                "--to",
                "dtn://c/inbox",
                "-m",
                "found you by multicast",
                "--linger",
                "8",
                "--bind",
                &format!("{}:{port}", lan.addresses[0]),
            ],
        )
        .output()
        .unwrap();
    assert!(
        sender.status.success(),
        "sender: {}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let output = receiver.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "receiver: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["payload"], "found you by multicast");
    assert_eq!(line["source"], "dtn://a/");
    let _ = std::fs::remove_dir_all(&dir);
}
