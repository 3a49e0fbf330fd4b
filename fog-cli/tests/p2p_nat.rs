//! NAT traversal for real: two peers behind separate NATs (nftables
//! masquerade, unsolicited inbound packets dropped as a home router does)
//! and a circuit relay v2 server on the "public" side, each in its own
//! network namespace running the `fog` binary. Peer B dials peer A through
//! the relay; DCUtR must then punch through both NATs and upgrade the
//! relayed connection to a direct one, over TCP and over QUIC.
//!
//! ```text
//!   A 10.233.1.2 ── 10.233.1.1 NAT-A 10.232.1.2 ── 10.232.1.1 ┐
//!                                                              R (relay 10.232.0.1)
//!   B 10.233.2.2 ── 10.233.2.1 NAT-B 10.232.2.2 ── 10.232.2.1 ┘
//! ```
//!
//! R routes between the two NATs' public sides but knows nothing of the
//! private 10.233.x networks, so the only direct path between A and B is
//! the pair of NAT mappings the hole punch opens.
//!
//! Needs root, `ip netns` (iproute2) and `nft` (nftables). Without them the
//! tests print a skip line and pass, unless `FOG_REQUIRE_NETNS=1` (set by
//! `.ci/run`), where they fail. Nothing leaves the namespaces they create;
//! the namespaces (and their veth pairs) are deleted on drop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long to wait for each step (a hang guard, not a timing assertion).
const STEP: Duration = Duration::from_secs(90);
/// Log lines kept per process for a failure message.
const LOG_LINES: usize = 200;

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<Output, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {program}: {error}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{program} stdin: {e}"))?;
    }
    child
        .wait_with_output()
        .map_err(|error| format!("{program}: {error}"))
}

fn ok(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let output = run(program, args, stdin)?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// The five namespaces; deleted (with their veth pairs) on drop.
struct Topology {
    /// relay, NAT-A, NAT-B, A, B.
    ns: [String; 5],
}

const RELAY: usize = 0;
const NAT_A: usize = 1;
const NAT_B: usize = 2;
const PEER_A: usize = 3;
const PEER_B: usize = 4;
/// The relay's public address.
const RELAY_IP: &str = "10.232.0.1";

impl Topology {
    fn create(tag: char) -> Result<Topology, String> {
        let id = std::process::id() % 100_000;
        let ns = ["r", "na", "nb", "a", "b"].map(|n| format!("fognat{id}{tag}{n}"));
        let topo = Topology { ns };
        for ns in &topo.ns {
            let _ = run("ip", &["netns", "del", ns], None);
            ok("ip", &["netns", "add", ns], None)?;
            ok("ip", &["-n", ns, "link", "set", "lo", "up"], None)?;
        }
        // Links: (namespace, device, address) at both ends.
        let links = [
            ((RELAY, "10.232.1.1/24"), (NAT_A, "10.232.1.2/24")),
            ((RELAY, "10.232.2.1/24"), (NAT_B, "10.232.2.2/24")),
            ((NAT_A, "10.233.1.1/24"), (PEER_A, "10.233.1.2/24")),
            ((NAT_B, "10.233.2.1/24"), (PEER_B, "10.233.2.2/24")),
        ];
        for (i, ((n1, a1), (n2, a2))) in links.into_iter().enumerate() {
            let (d1, d2) = (format!("fn{id}{tag}{i}x"), format!("fn{id}{tag}{i}y"));
            ok(
                "ip",
                &[
                    "link",
                    "add",
                    &d1,
                    "netns",
                    &topo.ns[n1],
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &d2,
                    "netns",
                    &topo.ns[n2],
                ],
                None,
            )?;
            for (n, d, a) in [(n1, &d1, a1), (n2, &d2, a2)] {
                ok("ip", &["-n", &topo.ns[n], "addr", "add", a, "dev", d], None)?;
                ok("ip", &["-n", &topo.ns[n], "link", "set", d, "up"], None)?;
            }
        }
        ok(
            "ip",
            &[
                "-n",
                &topo.ns[RELAY],
                "addr",
                "add",
                &format!("{RELAY_IP}/32"),
                "dev",
                "lo",
            ],
            None,
        )?;
        for (n, via) in [
            (NAT_A, "10.232.1.1"),
            (NAT_B, "10.232.2.1"),
            (PEER_A, "10.233.1.1"),
            (PEER_B, "10.233.2.1"),
        ] {
            ok(
                "ip",
                &["-n", &topo.ns[n], "route", "add", "default", "via", via],
                None,
            )?;
        }
        topo.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        for (n, wan) in [
            (NAT_A, format!("fn{id}{tag}0y")),
            (NAT_B, format!("fn{id}{tag}1y")),
        ] {
            // Masquerade out of the public side; drop whatever arrives
            // there unsolicited (no conntrack entry), as a home router does.
            let rules = format!(
                "table ip fognat {{
                    chain post {{ type nat hook postrouting priority srcnat; oifname \"{wan}\" masquerade; }}
                    chain input {{ type filter hook input priority filter; iifname \"{wan}\" ct state new drop; }}
                    chain forward {{ type filter hook forward priority filter; iifname \"{wan}\" ct state new drop; }}
                }}\n"
            );
            ok(
                "ip",
                &["netns", "exec", &topo.ns[n], "nft", "-f", "-"],
                Some(&rules),
            )?;
        }
        Ok(topo)
    }

    /// Runs a command in every router namespace (relay and NATs).
    fn exec(&self, args: &[&str]) -> Result<(), String> {
        for n in [RELAY, NAT_A, NAT_B] {
            let mut full = vec!["netns", "exec", &self.ns[n]];
            full.extend_from_slice(args);
            ok("ip", &full, None)?;
        }
        Ok(())
    }

    /// Starts `fog --json p2p node ARGS` in namespace `n`.
    fn node(&self, n: usize, args: &[&str], events: &mpsc::Sender<(usize, String)>) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns[n]])
            .arg(assert_cmd::cargo::cargo_bin!("fog"))
            .args(["--json", "p2p", "node", "--no-mdns"])
            .args(args)
            .env(
                "FOG_LOG",
                "fog_p2p=debug,libp2p_dcutr=debug,libp2p_relay=debug",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start fog");
        let stdout = child.stdout.take().expect("stdout");
        let tx = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send((n, line)).is_err() {
                    break;
                }
            }
        });
        // The log is drained as it comes (a full pipe would stall the node)
        // and its last lines kept for the failure message.
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = keep.lock().unwrap();
                if log.len() >= LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
        Proc { child, log }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = run("ip", &["netns", "del", ns], None);
        }
    }
}

/// A `fog` process, killed on drop.
struct Proc {
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Proc {
    /// The last lines of the process's log.
    fn tail(&self) -> String {
        let log = self.log.lock().unwrap();
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn topology_or_skip(tag: char) -> Option<Topology> {
    let required = std::env::var("FOG_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    match Topology::create(tag) {
        Ok(t) => Some(t),
        Err(reason) => {
            assert!(
                !required,
                "FOG_REQUIRE_NETNS=1 but network namespaces with nftables NAT are unavailable: {reason}"
            );
            eprintln!("skip: p2p NAT traversal test needs root, ip netns and nft ({reason})");
            None
        }
    }
}

/// Waits for a JSON event line that `pick` accepts (the namespace index
/// and the line); on a timeout fails with everything the nodes printed.
fn wait(
    rx: &mpsc::Receiver<(usize, String)>,
    seen: &mut Vec<(usize, String)>,
    procs: &[&Proc],
    what: &str,
    mut pick: impl FnMut(usize, &serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((n, line)) = rx.recv_timeout(left) else {
            let logs: Vec<String> = procs.iter().map(|p| p.tail()).collect();
            panic!(
                "{what}: not seen; events: {seen:#?}\nlogs:\n{}",
                logs.join("\n----\n")
            )
        };
        seen.push((n, line.clone()));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && pick(n, &v)
        {
            return v;
        }
    }
}

/// `transport` is "tcp" or "quic-v1".
fn hole_punch(tag: char, transport: &str) {
    let Some(topo) = topology_or_skip(tag) else {
        return;
    };
    let listen = |ip: &str| match transport {
        "tcp" => format!("/ip4/{ip}/tcp/4001"),
        _ => format!("/ip4/{ip}/udp/4001/quic-v1"),
    };
    let (tx, rx) = mpsc::channel();
    let mut seen = Vec::new();

    let relay_listen = listen("0.0.0.0");
    let relay_external = listen(RELAY_IP);
    let relay = topo.node(
        RELAY,
        &[
            "--listen",
            &relay_listen,
            "--external",
            &relay_external,
            "--kad-server",
        ],
        &tx,
    );
    let started = wait(&rx, &mut seen, &[&relay], "relay start", |n, v| {
        n == RELAY && v["event"] == "started"
    });
    let relay_id = started["peer_id"].as_str().unwrap().to_owned();
    let relay_addr = format!("{relay_external}/p2p/{relay_id}");

    // A listens directly (for port reuse) and through the relay.
    let circuit = format!("{relay_addr}/p2p-circuit");
    let a = topo.node(
        PEER_A,
        &["--listen", &listen("0.0.0.0"), "--listen", &circuit],
        &tx,
    );
    let a_started = wait(&rx, &mut seen, &[&relay, &a], "A start", |n, v| {
        n == PEER_A && v["event"] == "started"
    });
    let a_id = a_started["peer_id"].as_str().unwrap().to_owned();
    wait(
        &rx,
        &mut seen,
        &[&relay, &a],
        "A's reservation at the relay",
        |n, v| {
            n == PEER_A
                && v["event"] == "listening"
                && v["addr"]
                    .as_str()
                    .is_some_and(|a| a.contains("p2p-circuit"))
        },
    );

    // B knows A only by its relayed address.
    let a_relayed = format!("{circuit}/p2p/{a_id}");
    let b = topo.node(
        PEER_B,
        &["--listen", &listen("0.0.0.0"), "--bootstrap", &a_relayed],
        &tx,
    );
    let punched = wait(
        &rx,
        &mut seen,
        &[&relay, &a, &b],
        "DCUtR hole punch",
        |n, v| (n == PEER_A || n == PEER_B) && v["event"] == "hole_punch" && v["error"].is_null(),
    );
    let addr = punched["addr"].as_str().unwrap_or_default().to_owned();
    let context = format!(
        "{punched}\nevents: {seen:#?}\nA: {}\nB: {}\nrelay: {}",
        a.tail(),
        b.tail(),
        relay.tail()
    );
    drop((a, b, relay));
    assert!(!addr.contains("p2p-circuit"), "not direct: {context}");
    assert!(
        addr.contains(&format!("/{transport}")),
        "not over {transport}: {context}"
    );
    // The direct connection runs between the NATs' public addresses.
    assert!(
        addr.starts_with("/ip4/10.232.1.2/") || addr.starts_with("/ip4/10.232.2.2/"),
        "not through the NAT mappings: {context}"
    );
    eprintln!("hole punch over {transport}: {punched}");
}

#[test]
fn a_relayed_tcp_connection_is_upgraded_to_direct_by_dcutr() {
    hole_punch('t', "tcp");
}

#[test]
fn a_relayed_quic_connection_is_upgraded_to_direct_by_dcutr() {
    hole_punch('q', "quic-v1");
}
