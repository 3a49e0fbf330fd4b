//! `fog p2p`: the libp2p overlay (fog-p2p): run a node, put and get DHT
//! records, publish and subscribe, list peers; and `fog bench p2p`.
//!
//! There is no node control API yet, so the one-shot commands (`put`, `get`,
//! `publish`, `peers`) start a short-lived node of their own, join the
//! network through `--bootstrap`, do their work and leave.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use fog_p2p::{Config, Event, KadMode, Multiaddr, NatStatus, Node, PeerId, Protocol};
use serde_json::json;

use crate::cli::GlobalArgs;

/// `fog p2p ...`.
#[derive(Debug, Args)]
pub(crate) struct P2pArgs {
    #[command(subcommand)]
    command: P2pCommand,
}

#[derive(Debug, Subcommand)]
enum P2pCommand {
    /// Run a node until Ctrl-C, printing its events (JSON lines with --json)
    Node(NodeArgs),
    /// Store a record in the DHT
    Put(PutArgs),
    /// Look a record up in the DHT
    Get(GetArgs),
    /// Publish a message on a GossipSub topic
    Publish(PublishArgs),
    /// Print the messages published on a topic
    Subscribe(SubscribeArgs),
    /// Join the network and print the peers found, with addresses, RTT and score
    Peers(PeersArgs),
}

/// Options of every command that starts a node.
#[derive(Debug, Args)]
struct NetOptions {
    /// Address to listen on (repeatable), e.g. /ip4/0.0.0.0/tcp/4001 or /ip4/0.0.0.0/udp/4001/quic-v1.
    #[arg(long = "listen", value_name = "MULTIADDR")]
    listen: Vec<Multiaddr>,
    /// Bootstrap peer with /p2p/<peer id> (repeatable).
    #[arg(long = "bootstrap", value_name = "MULTIADDR")]
    bootstrap: Vec<Multiaddr>,
    /// Network name keeping fog networks apart (default: libp2p's standard protocol names).
    #[arg(long)]
    network: Option<String>,
    /// Identity key file (created when missing); default: a fresh key.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Address others reach this node at (repeatable), announced without
    /// waiting for AutoNAT: a relay or bootstrap node on a public address.
    #[arg(long = "external", value_name = "MULTIADDR")]
    external: Vec<Multiaddr>,
    /// Always answer DHT queries (a bootstrap node, or a loopback network).
    #[arg(long)]
    kad_server: bool,
    /// Do not discover peers on the LAN with mDNS.
    #[arg(long)]
    no_mdns: bool,
    /// Seconds to wait for the network before giving up.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct NodeArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Topic to subscribe to (repeatable).
    #[arg(long = "subscribe", value_name = "TOPIC")]
    topics: Vec<String>,
    /// Capability to announce in the DHT (repeatable), e.g. exec:wasm.
    #[arg(long = "provide", value_name = "CAPABILITY")]
    provides: Vec<String>,
    /// SQLite file of the store-and-forward queue (default: in memory).
    #[arg(long, value_name = "FILE")]
    queue: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct PutArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Record key.
    #[arg(long)]
    key_name: String,
    /// Record value (text).
    #[arg(long)]
    value: String,
}

#[derive(Debug, Args)]
struct GetArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Record key.
    #[arg(long)]
    key_name: String,
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Message text.
    #[arg(long, short)]
    message: String,
}

#[derive(Debug, Args)]
struct SubscribeArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Stop after this many messages (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    count: usize,
}

#[derive(Debug, Args)]
struct PeersArgs {
    #[command(flatten)]
    net: NetOptions,
    /// Seconds to spend discovering peers before printing.
    #[arg(long, default_value_t = 3)]
    wait: u64,
}

/// Runs `fog p2p ...`.
pub(crate) fn run(args: &P2pArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        match &args.command {
            P2pCommand::Node(a) => run_node(a, global.json).await,
            P2pCommand::Put(a) => run_put(a, global.json).await,
            P2pCommand::Get(a) => run_get(a, global.json).await,
            P2pCommand::Publish(a) => run_publish(a, global.json).await,
            P2pCommand::Subscribe(a) => run_subscribe(a, global.json).await,
            P2pCommand::Peers(a) => run_peers(a, global.json).await,
        }
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn config(net: &NetOptions) -> Config {
    let mut c = Config::new();
    c.listen.clone_from(&net.listen);
    c.bootstrap.clone_from(&net.bootstrap);
    c.external.clone_from(&net.external);
    c.network.clone_from(&net.network);
    c.key_file.clone_from(&net.key);
    c.mdns = !net.no_mdns;
    if net.kad_server {
        c.kad_mode = KadMode::Server;
    }
    if net
        .listen
        .iter()
        .chain(&net.bootstrap)
        .chain(&net.external)
        .any(is_local)
    {
        // A loopback, LAN or VPN network: AutoNAT may dial back (and trust)
        // private addresses.
        c.autonat_local = true;
    }
    c
}

fn is_local(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback() || ip.is_private(),
        _ => false,
    })
}

async fn start(net: &NetOptions, mut c: Config) -> anyhow::Result<Node> {
    if net.bootstrap.is_empty() && net.listen.is_empty() {
        bail!("give --bootstrap <multiaddr>/p2p/<peer id> (and/or --listen) to reach a network");
    }
    c.listen.clone_from(&net.listen);
    Node::start(c).await.context("start the p2p node")
}

/// Waits until the node has at least one connected peer, then bootstraps.
async fn join(node: &Node, timeout: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        if node.stats().await?.connected_peers > 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("no peer reachable within {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Err(e) = node.bootstrap().await {
        tracing::debug!(error = %e, "bootstrap");
    }
    Ok(())
}

fn print(json: bool, value: &serde_json::Value, text: &str) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    out.flush()?;
    Ok(())
}

async fn run_node(args: &NodeArgs, json: bool) -> anyhow::Result<()> {
    let mut c = config(&args.net);
    c.queue_path.clone_from(&args.queue);
    let node = start(&args.net, c).await?;
    let mut events = node.events();
    for t in &args.topics {
        node.subscribe(t).await?;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addrs = node.listen_addrs().await?;
    print(
        json,
        &json!({"event": "started", "peer_id": node.peer_id().to_string(),
                "listen": addrs.iter().map(ToString::to_string).collect::<Vec<_>>()}),
        &format!(
            "peer id {}\n{}",
            node.peer_id(),
            addrs
                .iter()
                .map(|a| format!("listening on {a}/p2p/{}", node.peer_id()))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )?;
    if !args.net.bootstrap.is_empty() && join(&node, args.net.timeout).await.is_err() {
        tracing::warn!("no bootstrap peer reachable yet; running alone");
    }
    for cap in &args.provides {
        if let Err(e) = node.provide(cap).await {
            tracing::warn!(capability = %cap, error = %e, "announce failed");
        }
    }
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => print_event(&ev, json)?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event printer fell behind");
                }
                Err(_) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    node.shutdown().await;
    Ok(())
}

fn print_event(ev: &Event, json: bool) -> anyhow::Result<()> {
    let (value, text) = match ev {
        Event::Listening(a) => (
            json!({"event": "listening", "addr": a.to_string()}),
            format!("listening on {a}"),
        ),
        Event::PeerConnected(p) => (
            json!({"event": "peer_up", "peer": p.to_string()}),
            format!("peer up {p}"),
        ),
        Event::PeerDisconnected(p) => (
            json!({"event": "peer_down", "peer": p.to_string()}),
            format!("peer down {p}"),
        ),
        Event::Nat(s) => {
            let (status, addr) = match s {
                NatStatus::Public(a) => ("public", Some(a.to_string())),
                NatStatus::Private => ("private", None),
                _ => ("unknown", None),
            };
            (
                json!({"event": "nat", "status": status, "addr": addr}),
                match &addr {
                    Some(a) => format!("reachability: {status} at {a}"),
                    None => format!("reachability: {status}"),
                },
            )
        }
        Event::KadServer(s) => (
            json!({"event": "kad_mode", "server": s}),
            format!("dht server mode: {s}"),
        ),
        Event::Gossip {
            topic,
            source,
            data,
            ..
        } => (
            json!({"event": "message", "topic": topic, "source": source.map(|s| s.to_string()),
                   "data": String::from_utf8_lossy(data)}),
            format!(
                "[{topic}] {}: {}",
                source.map_or("?".into(), |s| s.to_string()),
                String::from_utf8_lossy(data)
            ),
        ),
        Event::Direct { from, envelope } => (
            json!({"event": "direct", "from": from.to_string(), "priority": envelope.priority.to_string(),
                   "data": String::from_utf8_lossy(&envelope.payload)}),
            format!(
                "direct from {from}: {}",
                String::from_utf8_lossy(&envelope.payload)
            ),
        ),
        Event::Delivered { peer, id } => (
            json!({"event": "delivered", "peer": peer.to_string(), "id": id}),
            format!("delivered {id} to {peer}"),
        ),
        Event::Banned(p) => (
            json!({"event": "banned", "peer": p.to_string()}),
            format!("banned {p}"),
        ),
        Event::HolePunch { peer, addr, error } => (
            json!({"event": "hole_punch", "peer": peer.to_string(),
                   "addr": addr.as_ref().map(ToString::to_string), "error": error}),
            match (addr, error) {
                (Some(a), _) => format!("hole punch to {peer}: direct connection at {a}"),
                (None, Some(e)) => format!("hole punch to {peer} failed: {e}"),
                (None, None) => format!("hole punch to {peer}: direct connection"),
            },
        ),
        other => (json!({"event": format!("{other:?}")}), format!("{other:?}")),
    };
    print(json, &value, &text)
}

async fn run_put(args: &PutArgs, json: bool) -> anyhow::Result<()> {
    let node = start(&args.net, config(&args.net)).await?;
    join(&node, args.net.timeout).await?;
    let r = node
        .put_record(args.key_name.as_bytes(), args.value.clone().into_bytes())
        .await;
    node.shutdown().await;
    r.context("put the record")?;
    print(
        json,
        &json!({"key": args.key_name, "stored": true}),
        "stored",
    )
}

async fn run_get(args: &GetArgs, json: bool) -> anyhow::Result<()> {
    let node = start(&args.net, config(&args.net)).await?;
    join(&node, args.net.timeout).await?;
    let r = node.get_record(args.key_name.as_bytes()).await;
    node.shutdown().await;
    let found = r.context("get the record")?;
    let value = String::from_utf8_lossy(&found.value).into_owned();
    print(
        json,
        &json!({"key": args.key_name, "value": value,
                "from": found.from.map(|p| p.to_string()), "requests": found.requests}),
        &value,
    )
}

async fn run_publish(args: &PublishArgs, json: bool) -> anyhow::Result<()> {
    let node = start(&args.net, config(&args.net)).await?;
    join(&node, args.net.timeout).await?;
    node.subscribe(&args.topic).await?;
    // Publishing needs a peer known to be on the topic: retry while the
    // subscriptions propagate.
    let deadline = Instant::now() + Duration::from_secs(args.net.timeout);
    let r = loop {
        match node
            .publish(&args.topic, args.message.clone().into_bytes())
            .await
        {
            Ok(()) => break Ok(()),
            Err(e) if Instant::now() > deadline => break Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    // Let the message leave before closing the connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.shutdown().await;
    r.context("publish")?;
    print(
        json,
        &json!({"topic": args.topic, "published": true}),
        "published",
    )
}

async fn run_subscribe(args: &SubscribeArgs, json: bool) -> anyhow::Result<()> {
    let node = start(&args.net, config(&args.net)).await?;
    let mut events = node.events();
    node.subscribe(&args.topic).await?;
    if !args.net.bootstrap.is_empty() {
        join(&node, args.net.timeout).await?;
    }
    let mut seen = 0;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev @ Event::Gossip { .. }) => {
                    print_event(&ev, json)?;
                    seen += 1;
                    if args.count > 0 && seen >= args.count {
                        break;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    node.shutdown().await;
    Ok(())
}

async fn run_peers(args: &PeersArgs, json: bool) -> anyhow::Result<()> {
    let node = start(&args.net, config(&args.net)).await?;
    join(&node, args.net.timeout).await?;
    tokio::time::sleep(Duration::from_secs(args.wait)).await;
    let peers = node.peers().await?;
    node.shutdown().await;
    if json {
        print(true, &json!({"peers": peers}), "")
    } else {
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "{:<54} {:>9} {:>8}  addresses",
            "peer", "rtt ms", "score"
        )?;
        for p in &peers {
            writeln!(
                out,
                "{:<54} {:>9} {:>8.1}  {}",
                p.peer_id.to_string(),
                p.rtt_us
                    .map_or("-".into(), |r| format!("{:.2}", r as f64 / 1000.0)),
                p.score,
                p.addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
        }
        Ok(())
    }
}

/// `fog bench p2p` options.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Nodes in the in-process network.
    #[arg(long, default_value_t = 200)]
    nodes: usize,
    /// DHT records put before the lookups.
    #[arg(long, default_value_t = 50)]
    records: usize,
    /// DHT lookups measured.
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Gossip messages published.
    #[arg(long, default_value_t = 5)]
    messages: usize,
    /// Bootstrap peers of each node (random earlier nodes).
    #[arg(long, default_value_t = 3)]
    degree: usize,
    /// Random seed of the topology and the workload.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// GossipSub mesh degree D (D_low is D - 1, D_high is D + 1).
    #[arg(long, default_value_t = 4)]
    mesh: usize,
    /// Publish to every topic peer rather than only the mesh.
    #[arg(long)]
    flood_publish: bool,
    /// Send IDONTWANT for messages above this many bytes (GossipSub v1.2).
    #[arg(long, default_value_t = 0)]
    idontwant_over: usize,
    /// Connected peers each node keeps; the lowest-scored beyond are pruned.
    #[arg(long, default_value_t = 24)]
    target_peers: usize,
    /// Most connections a node keeps open (fog-p2p's connection limit).
    #[arg(long, default_value_t = 96)]
    max_connections: usize,
}

/// A small deterministic generator (splitmix64) for the bench workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU seconds this process has used (user + system; Linux).
fn cpu_seconds() -> f64 {
    // Fields 14 and 15 of /proc/self/stat, in USER_HZ (100 on Linux) ticks;
    // the command name (field 2) may hold spaces, so count after its ')'.
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let mut f = rest.split_whitespace().skip(11);
            let user: f64 = f.next()?.parse().ok()?;
            let system: f64 = f.next()?.parse().ok()?;
            Some((user + system) / 100.0)
        })
        .unwrap_or(0.0)
}

/// Connection churn summed over nodes: what the progress lines and the
/// report show of it.
#[derive(Debug, Default, Clone, Copy)]
struct Churn {
    dialed: u64,
    closed: u64,
    background_queries: u64,
    connected: usize,
}

impl Churn {
    async fn of(nodes: &[Node]) -> Self {
        let stats: Vec<fog_p2p::Stats> = libp2p_join(nodes.iter().map(Node::stats))
            .await
            .into_iter()
            .flatten()
            .collect();
        Self::sum(&stats)
    }

    fn sum(stats: &[fog_p2p::Stats]) -> Self {
        let mut c = Churn::default();
        for s in stats {
            c.dialed += s.connections_dialed;
            c.closed += s.connections_closed;
            c.background_queries += s.kad_background_queries;
            c.connected += s.connected_peers;
        }
        c
    }

    fn line(&self, nodes: usize) -> String {
        format!(
            "connections opened {}, closed {}, open per node {:.1}; background DHT queries {}; cpu {:.0} s",
            self.dialed,
            self.closed,
            self.connected as f64 / nodes.max(1) as f64,
            self.background_queries,
            cpu_seconds()
        )
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[idx.min(sorted.len() - 1)])
}

/// Runs `fog bench p2p`.
pub(crate) fn bench(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    if args.nodes < 2 {
        bail!("--nodes must be at least 2");
    }
    let rt = runtime()?;
    let report = rt.block_on(bench_network(args))?;
    let mut out = io::stdout().lock();
    if global.json {
        writeln!(out, "{report}")?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}

fn bench_config(args: &BenchArgs) -> Config {
    let mut c = Config::local();
    c.tcp = false;
    c.quic = false;
    c.memory = true;
    c.relay_server = false;
    // Sequential lookups: the request count of a lookup is its hop count.
    c.kad_parallelism = 1;
    // The default of a real network, not the loopback profile's 10 s: a
    // thousand nodes share this process's few cores, and a sequential
    // lookup's requests wait their turn.
    c.query_timeout = Config::default().query_timeout;
    c.listen = vec!["/memory/0".parse().expect("valid multiaddr")];
    c.event_capacity = 256;
    c.gossip_heartbeat = Duration::from_secs(1);
    c.maintenance_interval = Duration::from_secs(2);
    // Every node is a DHT server on a memory address: no reachability to
    // probe, and the bench bootstraps each node once itself.
    c.autonat = false;
    c.kad_bootstrap_interval = None;
    c.ping_interval = Duration::from_secs(30);
    // Lookup connections close soon after use; gossip mesh links stay.
    c.idle_timeout = Duration::from_secs(10);
    // A narrow mesh and no flood publishing keep duplicates low; IHAVE
    // gossip repairs any gap the mesh leaves.
    let d = args.mesh.max(2);
    c.gossip_mesh_n = d;
    c.gossip_mesh_n_low = d - 1;
    c.gossip_mesh_n_high = d + 1;
    c.gossip_lazy = d;
    c.gossip_flood_publish = args.flood_publish;
    c.gossip_idontwant_threshold = args.idontwant_over;
    c.target_peers = args.target_peers.max(d + 2);
    // Each open connection holds Noise and yamux buffers on both of its
    // in-process ends (about 120 KiB together); with the default limit of
    // 256 the first bootstraps of a thousand nodes would hold nearly a full
    // mesh for a query timeout. A node refused at the limit is, to a lookup,
    // one that did not answer.
    c.max_connections = u32::try_from(args.max_connections).unwrap_or(u32::MAX);
    c
}

#[allow(clippy::too_many_lines)] // Reason: one linear scenario reads best in one place.
async fn bench_network(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    const TOPIC: &str = "bench";
    let n = args.nodes;
    let mut rng = Rng(args.seed);
    let rss_before = rss_bytes();
    let t0 = Instant::now();
    // Where a long run is, on stderr (stdout keeps the one report).
    let phase = |what: String| {
        eprintln!(
            "fog bench p2p: {what} ({:.0} s)",
            t0.elapsed().as_secs_f64()
        );
    };

    // Nodes start in waves. Each node with bootstrap peers runs one
    // Kademlia bootstrap as it starts (fog-p2p does); the next wave starts
    // once this one's have ended, so at most a wave's walks run at once and
    // every wave finds the nodes before it. The nodes before learn of the
    // newcomers from the newcomers' own queries, as in a live network.
    const WAVE: usize = 50;
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    let mut addrs: Vec<Multiaddr> = Vec::with_capacity(n);
    let mut unfinished_bootstraps = 0usize;
    for wave_start in (0..n).step_by(WAVE) {
        let wave_end = (wave_start + WAVE).min(n);
        for i in wave_start..wave_end {
            let mut c = bench_config(args);
            let mut chosen = HashSet::new();
            for _ in 0..args.degree.min(i) {
                chosen.insert(rng.below(i));
            }
            c.bootstrap = chosen.into_iter().map(|j| addrs[j].clone()).collect();
            let node = Node::start(c).await?;
            let addr = loop {
                if let Some(a) = node.listen_addrs().await?.into_iter().next() {
                    break a
                        .with_p2p(node.peer_id())
                        .map_err(|a| anyhow::anyhow!("bad address {a}"))?;
                }
                tokio::task::yield_now().await;
            };
            node.subscribe(TOPIC).await?;
            addrs.push(addr);
            nodes.push(node);
        }
        // Node 0 has nobody to bootstrap from.
        let wave = &nodes[wave_start.max(1).min(wave_end)..wave_end];
        let deadline = Instant::now() + Duration::from_mins(5);
        loop {
            let waiting = libp2p_join(wave.iter().map(Node::stats))
                .await
                .into_iter()
                .filter(|s| !s.as_ref().is_ok_and(|s| s.bootstrapped))
                .count();
            if waiting == 0 {
                break;
            }
            if Instant::now() > deadline {
                unfinished_bootstraps += waiting;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if wave_end.is_multiple_of(100) && wave_end < n {
            let churn = Churn::of(&nodes).await.line(nodes.len());
            phase(format!("{wave_end} of {n} nodes started; {churn}"));
        }
    }
    let ids: Vec<PeerId> = nodes.iter().map(Node::peer_id).collect();
    let churn = Churn::of(&nodes).await.line(n);
    phase(format!("{n} nodes started and bootstrapped; {churn}"));
    let build_s = t0.elapsed().as_secs_f64();
    // Let the gossip meshes settle for a few heartbeats.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_bytes();
    // The idle network's own cost: what it spends with nothing asked of it
    // (pings, gossip heartbeats, Kademlia's liveness checks, pruning).
    const IDLE: Duration = Duration::from_secs(20);
    let (idle_before, cpu_before) = (Churn::of(&nodes).await, cpu_seconds());
    tokio::time::sleep(IDLE).await;
    let (idle_after, cpu_after) = (Churn::of(&nodes).await, cpu_seconds());
    let idle_cpu_cores = (cpu_after - cpu_before) / IDLE.as_secs_f64();
    let idle_opened_per_node_per_min =
        (idle_after.dialed - idle_before.dialed) as f64 / n as f64 * (60.0 / IDLE.as_secs_f64());
    phase(format!(
        "idle for {} s: {idle_cpu_cores:.2} cores busy, {idle_opened_per_node_per_min:.1} connections opened per node per minute",
        IDLE.as_secs()
    ));

    // DHT: records put by random nodes, looked up by other random nodes.
    let t1 = Instant::now();
    let records = args.records.max(1);
    // Lookups go to records whose put succeeded: a failed put is counted
    // on its own (`put_success_ratio`), not as a failed lookup.
    let mut stored = Vec::new();
    // Why puts failed: error text -> count (at most 8 distinct texts).
    let mut put_errors: BTreeMap<String, usize> = BTreeMap::new();
    for r in 0..records {
        let who = rng.below(n);
        match nodes[who]
            .put_record(format!("bench/{r}").as_bytes(), vec![1; 32])
            .await
        {
            Ok(()) => stored.push(r),
            Err(e) => {
                let text = e.to_string();
                if put_errors.len() < 8 || put_errors.contains_key(&text) {
                    *put_errors.entry(text).or_default() += 1;
                }
            }
        }
    }
    let put_ok = stored.len();
    phase(format!("{put_ok} of {records} records put"));
    if stored.is_empty() {
        bail!("no DHT record could be stored ({records} puts failed)");
    }
    let mut lookups = Vec::new();
    for _ in 0..args.lookups {
        let src = rng.below(n);
        let r = stored[rng.below(stored.len())];
        lookups.push((src, format!("bench/{r}")));
    }
    let mut hops = Vec::new();
    let mut found = 0usize;
    for batch in lookups.chunks(50) {
        let futs = batch
            .iter()
            .map(|(src, key)| nodes[*src].get_record(key.as_bytes()));
        for l in libp2p_join(futs).await.into_iter().flatten() {
            found += 1;
            hops.push(l.requests);
        }
    }
    hops.sort_unstable();
    phase(format!(
        "{found} of {} record lookups succeeded",
        lookups.len()
    ));
    // Peer lookups: a random node finds a random other node.
    let mut peer_found = 0usize;
    let peer_lookups: Vec<(usize, usize)> = (0..args.lookups)
        .map(|_| {
            let a = rng.below(n);
            let mut b = rng.below(n);
            if a == b {
                b = (b + 1) % n;
            }
            (a, b)
        })
        .collect();
    for batch in peer_lookups.chunks(50) {
        let futs = batch.iter().map(|(a, b)| nodes[*a].find_peer(ids[*b]));
        peer_found += libp2p_join(futs).await.iter().filter(|r| r.is_ok()).count();
    }
    let dht_s = t1.elapsed().as_secs_f64();
    phase(format!(
        "{peer_found} of {} peer lookups succeeded",
        args.lookups
    ));

    // Gossip: messages from random publishers; count deliveries.
    let t2 = Instant::now();
    let before: Vec<fog_p2p::Stats> = libp2p_join(nodes.iter().map(Node::stats))
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut published = 0usize;
    for m in 0..args.messages {
        let who = rng.below(n);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match nodes[who]
                .publish(TOPIC, format!("msg {m}").into_bytes())
                .await
            {
                Ok(()) => {
                    published += 1;
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "publish failed");
                    break;
                }
            }
        }
    }
    let expected = (published * (n - 1)) as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let now: Vec<fog_p2p::Stats> = libp2p_join(nodes.iter().map(Node::stats))
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let delivered: u64 = now
            .iter()
            .zip(&before)
            .map(|(a, b)| a.gossip_delivered - b.gossip_delivered)
            .sum();
        if delivered >= expected || Instant::now() > deadline {
            // A little longer so late duplicates are counted too.
            tokio::time::sleep(Duration::from_secs(1)).await;
            break libp2p_join(nodes.iter().map(Node::stats))
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivered: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.gossip_delivered - b.gossip_delivered)
        .sum();
    let received: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.gossip_received - b.gossip_received)
        .sum();
    let gossip_s = t2.elapsed().as_secs_f64();
    phase("gossip measured".to_owned());
    let connections: usize = after.iter().map(|s| s.connected_peers).sum();
    let churn = Churn::sum(&after);
    let routing: usize = after.iter().map(|s| s.routing_table).sum();

    for node in nodes {
        node.shutdown().await;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(json!({
        "nodes": n,
        "transport": "memory",
        "kad_parallelism": 1,
        "gossip_mesh_n": args.mesh.max(2),
        "gossip_flood_publish": args.flood_publish,
        "gossip_idontwant_over_bytes": args.idontwant_over,
        "records_put": put_ok,
        "put_success_ratio": put_ok as f64 / records as f64,
        "put_errors": put_errors,
        "lookups": args.lookups,
        "lookup_success_ratio": ratio(found, args.lookups),
        "lookup_hops_median": percentile(&hops, 0.5),
        "lookup_hops_p99": percentile(&hops, 0.99),
        "peer_lookup_success_ratio": ratio(peer_found, args.lookups),
        "gossip_messages": published,
        "gossip_delivery_ratio": if expected == 0 { 0.0 } else { delivered as f64 / expected as f64 },
        "duplicates_per_message": if delivered == 0 { 0.0 } else { (received.saturating_sub(delivered)) as f64 / delivered as f64 },
        "rss_per_node_bytes": rss_after.saturating_sub(rss_before) / n as u64,
        "rss_total_bytes": rss_after,
        "mean_connections_per_node": connections as f64 / n as f64,
        "mean_routing_table_size": routing as f64 / n as f64,
        // Connection churn over the whole run: every connection costs a
        // Noise handshake on both sides.
        "connections_opened_per_node": churn.dialed as f64 / n as f64,
        "connections_closed_per_node": churn.closed as f64 / n as f64,
        "kad_background_queries_per_node": churn.background_queries as f64 / n as f64,
        "cpu_seconds": cpu_seconds(),
        "unfinished_bootstraps": unfinished_bootstraps,
        "idle_cpu_cores": idle_cpu_cores,
        "idle_connections_opened_per_node_per_min": idle_opened_per_node_per_min,
        "build_seconds": build_s,
        "dht_seconds": dht_s,
        "gossip_seconds": gossip_s,
        "total_seconds": t0.elapsed().as_secs_f64(),
    }))
}

async fn libp2p_join<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    futures_util::future::join_all(futs).await
}
