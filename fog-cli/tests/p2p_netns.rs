//! The overlay on real networks, each machine a Linux network namespace
//! running the `fog` binary.
//!
//! NAT traversal: two peers behind separate NATs (nftables masquerade,
//! unsolicited inbound packets dropped as a home router does), a circuit
//! relay v2 server and a peer P on the "public" side. Peer B dials peer A
//! through the relay; DCUtR must then punch through both NATs and upgrade
//! the relayed connection to a direct one, over TCP and over QUIC. AutoNAT
//! must find P public (its Kademlia then turns server) and A private (A
//! then reserves a relay slot on its own).
//!
//! ```text
//!   A 10.233.1.2 ── 10.233.1.1 NAT-A 10.232.1.2 ── 10.232.1.1 ┐
//!                                                              R (relay 10.232.0.1) ── 10.232.3.2 P
//!   B 10.233.2.2 ── 10.233.2.1 NAT-B 10.232.2.2 ── 10.232.2.1 ┘
//! ```
//!
//! R routes between the public sides but knows nothing of the private
//! 10.233.x networks, so the only direct path between A and B is the pair
//! of NAT mappings the hole punch opens.
//!
//! LAN discovery: two peers on one link, told nothing of each other, find
//! each other by mDNS.
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

/// Network namespaces joined by veth pairs; deleted (with their veth
/// pairs) on drop.
struct Netns {
    ns: Vec<String>,
    /// Prefix of this run's veth names (unique per process and test).
    dev: String,
    links: usize,
}

impl Netns {
    /// Creates one namespace per name, each with its loopback up.
    fn create(tag: char, names: &[&str]) -> Result<Netns, String> {
        let id = std::process::id() % 100_000;
        let mut net = Netns {
            ns: Vec::new(),
            dev: format!("fn{id}{tag}"),
            links: 0,
        };
        for name in names {
            let ns = format!("fognat{id}{tag}{name}");
            let _ = run("ip", &["netns", "del", &ns], None);
            ok("ip", &["netns", "add", &ns], None)?;
            net.ns.push(ns.clone());
            ok("ip", &["-n", &ns, "link", "set", "lo", "up"], None)?;
        }
        Ok(net)
    }

    /// Joins namespaces `n1` and `n2` with a veth pair addressed `a1` and
    /// `a2` (CIDR); returns the two device names.
    fn link(&mut self, n1: usize, a1: &str, n2: usize, a2: &str) -> Result<[String; 2], String> {
        let i = self.links;
        self.links += 1;
        let (d1, d2) = (format!("{}{i}x", self.dev), format!("{}{i}y", self.dev));
        ok(
            "ip",
            &[
                "link",
                "add",
                &d1,
                "netns",
                &self.ns[n1],
                "type",
                "veth",
                "peer",
                "name",
                &d2,
                "netns",
                &self.ns[n2],
            ],
            None,
        )?;
        for (n, d, a) in [(n1, &d1, a1), (n2, &d2, a2)] {
            self.ip(n, &["addr", "add", a, "dev", d])?;
            self.ip(n, &["link", "set", d, "up"])?;
        }
        Ok([d1, d2])
    }

    /// `ip ARGS` inside namespace `n`.
    fn ip(&self, n: usize, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["-n", &self.ns[n]];
        full.extend_from_slice(args);
        ok("ip", &full, None)
    }

    /// Runs a program inside namespace `n`.
    fn exec(&self, n: usize, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
        let mut full = vec!["netns", "exec", &self.ns[n]];
        full.extend_from_slice(args);
        ok("ip", &full, stdin)
    }

    /// Starts `fog --json p2p node ARGS` in namespace `n`.
    fn node(&self, n: usize, args: &[&str], events: &mpsc::Sender<(usize, String)>) -> Proc {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns[n]])
            .arg(assert_cmd::cargo::cargo_bin!("fog"))
            .args(["--json", "p2p", "node"])
            .args(args)
            .env(
                "FOG_LOG",
                "fog_p2p=debug,libp2p_dcutr=debug,libp2p_relay=debug,libp2p_autonat=debug,libp2p_mdns=debug",
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

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = run("ip", &["netns", "del", ns], None);
        }
    }
}

const RELAY: usize = 0;
const NAT_A: usize = 1;
const NAT_B: usize = 2;
const PEER_A: usize = 3;
const PEER_B: usize = 4;
const PUBLIC: usize = 5;
/// The relay's public address.
const RELAY_IP: &str = "10.232.0.1";

/// The NAT topology of the module docs: relay, NAT-A, NAT-B, A, B and the
/// public peer P.
fn nat_topology(tag: char) -> Result<Netns, String> {
    let mut net = Netns::create(tag, &["r", "na", "nb", "a", "b", "p"])?;
    let mut wan = Vec::new();
    for (n1, a1, n2, a2) in [
        (RELAY, "10.232.1.1/24", NAT_A, "10.232.1.2/24"),
        (RELAY, "10.232.2.1/24", NAT_B, "10.232.2.2/24"),
        (NAT_A, "10.233.1.1/24", PEER_A, "10.233.1.2/24"),
        (NAT_B, "10.233.2.1/24", PEER_B, "10.233.2.2/24"),
        (RELAY, "10.232.3.1/24", PUBLIC, "10.232.3.2/24"),
    ] {
        let [_, d2] = net.link(n1, a1, n2, a2)?;
        wan.push(d2);
    }
    net.ip(
        RELAY,
        &["addr", "add", &format!("{RELAY_IP}/32"), "dev", "lo"],
    )?;
    for (n, via) in [
        (NAT_A, "10.232.1.1"),
        (NAT_B, "10.232.2.1"),
        (PEER_A, "10.233.1.1"),
        (PEER_B, "10.233.2.1"),
        (PUBLIC, "10.232.3.1"),
    ] {
        net.ip(n, &["route", "add", "default", "via", via])?;
    }
    for n in [RELAY, NAT_A, NAT_B] {
        net.exec(n, &["sysctl", "-qw", "net.ipv4.ip_forward=1"], None)?;
    }
    for (n, wan) in [(NAT_A, &wan[0]), (NAT_B, &wan[1])] {
        // Masquerade out of the public side; drop whatever arrives
        // there unsolicited (no conntrack entry), as a home router does.
        let rules = format!(
            "table ip fognat {{
                chain post {{ type nat hook postrouting priority srcnat; oifname \"{wan}\" masquerade; }}
                chain input {{ type filter hook input priority filter; iifname \"{wan}\" ct state new drop; }}
                chain forward {{ type filter hook forward priority filter; iifname \"{wan}\" ct state new drop; }}
            }}\n"
        );
        net.exec(n, &["nft", "-f", "-"], Some(&rules))?;
    }
    Ok(net)
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

/// Builds a topology, or prints a skip line (fails instead under
/// `FOG_REQUIRE_NETNS=1`) when this machine cannot.
fn topology_or_skip(what: &str, build: impl FnOnce() -> Result<Netns, String>) -> Option<Netns> {
    let required = std::env::var("FOG_REQUIRE_NETNS").is_ok_and(|v| v == "1");
    match build() {
        Ok(t) => Some(t),
        Err(reason) => {
            assert!(
                !required,
                "FOG_REQUIRE_NETNS=1 but network namespaces with nftables are unavailable: {reason}"
            );
            eprintln!("skip: p2p {what} test needs root, ip netns and nft ({reason})");
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

/// Starts the relay of the NAT topology listening on `listen(ip)` and
/// announcing its public address; returns it with its full address.
fn start_relay(
    topo: &Netns,
    listen: &dyn Fn(&str) -> String,
    tx: &mpsc::Sender<(usize, String)>,
    rx: &mpsc::Receiver<(usize, String)>,
    seen: &mut Vec<(usize, String)>,
) -> (Proc, String) {
    let external = listen(RELAY_IP);
    let relay = topo.node(
        RELAY,
        &[
            "--no-mdns",
            "--listen",
            &listen("0.0.0.0"),
            "--external",
            &external,
            "--kad-server",
        ],
        tx,
    );
    let started = wait(rx, seen, &[&relay], "relay start", |n, v| {
        n == RELAY && v["event"] == "started"
    });
    let id = started["peer_id"].as_str().unwrap().to_owned();
    (relay, format!("{external}/p2p/{id}"))
}

/// `transport` is "tcp" or "quic-v1".
fn hole_punch(tag: char, transport: &str) {
    let Some(topo) = topology_or_skip("NAT traversal", || nat_topology(tag)) else {
        return;
    };
    let listen = |ip: &str| match transport {
        "tcp" => format!("/ip4/{ip}/tcp/4001"),
        _ => format!("/ip4/{ip}/udp/4001/quic-v1"),
    };
    let (tx, rx) = mpsc::channel();
    let mut seen = Vec::new();

    let (relay, relay_addr) = start_relay(&topo, &listen, &tx, &rx, &mut seen);

    // A listens directly (for port reuse) and through the relay.
    let circuit = format!("{relay_addr}/p2p-circuit");
    let a = topo.node(
        PEER_A,
        &[
            "--no-mdns",
            "--listen",
            &listen("0.0.0.0"),
            "--listen",
            &circuit,
        ],
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
        &[
            "--no-mdns",
            "--listen",
            &listen("0.0.0.0"),
            "--bootstrap",
            &a_relayed,
        ],
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

/// AutoNAT: the relay dials back whoever asks. P, on the public side, is
/// found reachable and its Kademlia turns server; A, behind its NAT, is
/// found private, stays a DHT client and, given no circuit address, reserves
/// a slot at the relay on its own so that others can still reach it.
#[test]
fn autonat_tells_public_from_private_and_a_private_peer_listens_through_the_relay() {
    let Some(topo) = topology_or_skip("AutoNAT", || nat_topology('n')) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let mut seen = Vec::new();
    let tcp = |ip: &str| format!("/ip4/{ip}/tcp/4001");
    let (relay, relay_addr) = start_relay(&topo, &tcp, &tx, &rx, &mut seen);
    let peer = |n| {
        topo.node(
            n,
            &[
                "--no-mdns",
                "--listen",
                "/ip4/0.0.0.0/tcp/4001",
                "--bootstrap",
                &relay_addr,
            ],
            &tx,
        )
    };
    let (p, a) = (peer(PUBLIC), peer(PEER_A));

    let (mut p_public, mut p_server, mut a_private, mut a_circuit) = (None, false, false, None);
    wait(
        &rx,
        &mut seen,
        &[&relay, &p, &a],
        "P public with a DHT server, A private listening through the relay",
        |n, v| {
            let addr = v["addr"].as_str().map(str::to_owned);
            match (n, v["event"].as_str()) {
                (PUBLIC, Some("nat")) if v["status"] == "public" => p_public = addr,
                (PUBLIC, Some("kad_mode")) => p_server = v["server"] == true,
                (PEER_A, Some("nat")) => a_private = v["status"] == "private",
                (PEER_A, Some("listening"))
                    if addr.as_deref().is_some_and(|a| a.contains("p2p-circuit")) =>
                {
                    a_circuit = addr;
                }
                _ => {}
            }
            p_public.is_some() && p_server && a_private && a_circuit.is_some()
        },
    );
    let context = format!("events: {seen:#?}");
    drop((a, p, relay));
    let p_public = p_public.unwrap();
    assert!(
        p_public.starts_with("/ip4/10.232.3.2/tcp/4001"),
        "P's confirmed address {p_public}: {context}"
    );
    assert!(
        !seen.iter().any(|(n, line)| *n == PEER_A
            && serde_json::from_str::<serde_json::Value>(line)
                .is_ok_and(|v| v["event"] == "kad_mode" && v["server"] == true)),
        "A, unreachable, must not serve the DHT: {context}"
    );
    let a_circuit = a_circuit.unwrap();
    assert!(
        a_circuit.starts_with(&relay_addr),
        "A's relayed address {a_circuit} goes through the relay {relay_addr}"
    );
    eprintln!("AutoNAT: P public at {p_public}; A private, listening at {a_circuit}");
}

/// Two namespaces on one Ethernet-like link, as two machines on a LAN.
fn lan_topology() -> Result<Netns, String> {
    let mut net = Netns::create('m', &["l1", "l2"])?;
    let devs = net.link(0, "10.234.0.1/24", 1, "10.234.0.2/24")?;
    // No router on this LAN: multicast leaves through the link itself.
    for (n, dev) in devs.iter().enumerate() {
        net.ip(n, &["route", "add", "224.0.0.0/4", "dev", dev])?;
    }
    Ok(net)
}

/// mDNS: two peers on one LAN, given no address of each other (no
/// bootstrap), find each other and connect.
#[test]
fn mdns_finds_a_peer_on_the_lan_without_bootstrap() {
    let Some(lan) = topology_or_skip("mDNS", lan_topology) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    let mut seen = Vec::new();
    let nodes: Vec<Proc> = (0..2)
        .map(|n| lan.node(n, &["--listen", "/ip4/0.0.0.0/tcp/4001"], &tx))
        .collect();
    let mut ids: [Option<String>; 2] = [None, None];
    let mut up: Vec<(usize, String)> = Vec::new();
    wait(
        &rx,
        &mut seen,
        &nodes.iter().collect::<Vec<_>>(),
        "each LAN peer connected to the other",
        |n, v| {
            match v["event"].as_str() {
                Some("started") => ids[n] = v["peer_id"].as_str().map(str::to_owned),
                Some("peer_up") => up.push((n, v["peer"].as_str().unwrap_or("").to_owned())),
                _ => {}
            }
            (0..2).all(|n| {
                ids[1 - n]
                    .as_ref()
                    .is_some_and(|other| up.contains(&(n, other.clone())))
            })
        },
    );
    eprintln!("mDNS: {ids:?} found each other");
}
