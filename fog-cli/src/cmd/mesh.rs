//! `fog mesh`: offline delay-tolerant messaging (fog-mesh): run a node over
//! UDP, send and receive bundles, simulate routing on contact traces.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use fog_mesh::{
    Bundle, BundleBuilder, ContactTrace, Delivery, EndpointId, Keyring, MeshConfig, MeshIdentity,
    MeshNode, PeerKeys, RandomWaypoint, RouterKind, SimConfig, SimReport, UdpBearer, UdpConfig,
    simulate,
};
use serde_json::json;

use crate::cli::GlobalArgs;

/// `fog mesh ...`.
#[derive(Debug, Args)]
pub(crate) struct MeshArgs {
    #[command(subcommand)]
    command: MeshCommand,
}

#[derive(Debug, Subcommand)]
enum MeshCommand {
    /// Run a mesh node until Ctrl-C, printing the bundles addressed to it
    Node(NodeArgs),
    /// Create a bundle and hand it to the neighbours in reach (it stays stored for later contacts)
    Send(SendArgs),
    /// Wait for bundles addressed to this node and print them
    Recv(RecvArgs),
    /// Replay a contact trace with a message workload and report delivery, latency and overhead
    Sim(SimArgs),
    /// Print a synthetic random-waypoint contact trace in the ONE format
    Trace(TraceArgs),
    /// Create this node's keys (DIR/NAME.key) and print its public keys for peers' keyrings
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The node's name.
    #[arg(long)]
    name: String,
    /// Directory of the key (default: $FOG_DATA_DIR/mesh, or ./.fog/mesh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Replace an existing key.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BearerKind {
    /// UDP: LAN multicast discovery and unicast frames.
    Udp,
    /// Bluetooth LE (needs a build with the `ble` feature and an adapter).
    Ble,
}

/// Options shared by the commands that run a node.
#[derive(Debug, Args)]
struct NodeOptions {
    /// This node's name: its endpoint is dtn://NAME/.
    #[arg(long)]
    name: String,
    /// The link technology.
    #[arg(long, value_enum, default_value_t = BearerKind::Udp)]
    bearer: BearerKind,
    /// Local UDP address.
    #[arg(long, default_value = "0.0.0.0:4556")]
    bind: SocketAddr,
    /// A known neighbour's UDP address (repeatable); beacons go there directly.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Do not beacon on the LAN multicast group (239.255.45.56:4556).
    #[arg(long)]
    no_multicast: bool,
    /// Routing scheme.
    #[arg(long, default_value = "epidemic", value_parser = parse_router)]
    router: RouterKind,
    /// Directory of the bundle store and keys (default: $FOG_DATA_DIR/mesh, or ./.fog/mesh).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seal payloads end to end and run Noise on every link, with the key
    /// from `fog mesh keygen` and the peers in DIR/keyring (lines `NAME KEYS`).
    #[arg(long)]
    secure: bool,
    /// Trust a peer's keys, as printed by its `fog mesh keygen` (repeatable).
    #[arg(long = "trust", value_name = "NAME=KEYS", requires = "secure")]
    trust: Vec<String>,
}

fn parse_router(text: &str) -> Result<RouterKind, String> {
    text.parse()
}

#[derive(Debug, Args)]
struct NodeArgs {
    #[command(flatten)]
    node: NodeOptions,
}

#[derive(Debug, Args)]
struct SendArgs {
    #[command(flatten)]
    node: NodeOptions,
    /// Destination endpoint (dtn://node/service or ipn:N.S).
    #[arg(long)]
    to: String,
    /// The message text.
    #[arg(long, short, conflicts_with = "file", required_unless_present = "file")]
    message: Option<String>,
    /// Send a file's bytes instead.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Bundle lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    lifetime: u64,
    /// Seconds to stay up handing the bundle to neighbours.
    #[arg(long, default_value_t = 10)]
    linger: u64,
}

#[derive(Debug, Args)]
struct RecvArgs {
    #[command(flatten)]
    node: NodeOptions,
    /// Stop after this many bundles.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Contact trace in the ONE format (`<time> CONN <a> <b> up|down`).
    #[arg(long)]
    trace: PathBuf,
    /// Routing scheme (flood, epidemic, prophet, spray); `all` runs each.
    #[arg(long, default_value = "all")]
    router: String,
    /// Messages created per hour across the network.
    #[arg(long, default_value_t = 120.0)]
    rate: f64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Message lifetime in seconds.
    #[arg(long, default_value_t = 14_400.0)]
    ttl: f64,
    /// Workload seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Bundles each node can hold.
    #[arg(long, default_value_t = 2000)]
    buffer: usize,
    /// Spray-and-wait's initial copies L.
    #[arg(long, default_value_t = 8)]
    spray_copies: u32,
}

#[derive(Debug, Args)]
struct TraceArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 50)]
    nodes: u32,
    /// Trace length in hours.
    #[arg(long, default_value_t = 12.0)]
    hours: f64,
    /// Side of the square area in metres.
    #[arg(long, default_value_t = 2000.0)]
    area: f64,
    /// Radio range in metres.
    #[arg(long, default_value_t = 60.0)]
    range: f64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Runs `fog mesh ...`.
pub(crate) fn run(args: &MeshArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match &args.command {
        MeshCommand::Sim(sim) => run_sim(sim, global.json),
        MeshCommand::Trace(trace) => {
            let trace = random_waypoint(trace)?;
            io::stdout()
                .lock()
                .write_all(trace.to_one_format().as_bytes())?;
            Ok(())
        }
        MeshCommand::Keygen(keygen) => run_keygen(keygen, global.json),
        MeshCommand::Node(node) => runtime()?.block_on(run_node(node, global.json)),
        MeshCommand::Send(send) => runtime()?.block_on(run_send(send, global.json)),
        MeshCommand::Recv(recv) => runtime()?.block_on(run_recv(recv, global.json)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn random_waypoint(args: &TraceArgs) -> anyhow::Result<ContactTrace> {
    let mut rwp = RandomWaypoint::default();
    rwp.nodes = args.nodes;
    rwp.duration = args.hours * 3600.0;
    rwp.width = args.area;
    rwp.height = args.area;
    rwp.range = args.range;
    rwp.seed = args.seed;
    Ok(rwp.generate()?)
}

fn sim_config(args: &SimArgs, router: RouterKind) -> SimConfig {
    let mut config = SimConfig::new(router);
    config.workload.messages_per_hour = args.rate;
    config.workload.size = args.size;
    config.workload.ttl_s = args.ttl;
    config.workload.seed = args.seed;
    config.buffer_bundles = args.buffer;
    config.routers.spray_copies = args.spray_copies;
    config
}

fn run_sim(args: &SimArgs, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.trace)
        .with_context(|| format!("cannot read the trace {}", args.trace.display()))?;
    let trace = ContactTrace::parse(&text)?;
    let routers: Vec<RouterKind> = if args.router == "all" {
        RouterKind::ALL.to_vec()
    } else {
        vec![args.router.parse().map_err(anyhow::Error::msg)?]
    };
    let mut reports = Vec::new();
    for router in routers {
        let started = Instant::now();
        let report = simulate(&trace, &sim_config(args, router))?;
        reports.push((report, started.elapsed().as_secs_f64()));
    }
    let out = &mut io::stdout().lock();
    if json {
        let document = if reports.len() == 1 {
            serde_json::to_value(&reports[0].0)?
        } else {
            json!({ "reports": reports.iter().map(|(r, _)| r).collect::<Vec<&SimReport>>() })
        };
        writeln!(out, "{document}")?;
    } else {
        writeln!(
            out,
            "trace: {} nodes, {} contacts, {:.0} s",
            trace.nodes(),
            trace.contacts(),
            trace.duration()
        )?;
        for (r, seconds) in &reports {
            writeln!(
                out,
                "{:>9}: delivery {:.3}  latency p50 {:.0} s p95 {:.0} s  overhead {:.2}  hops {:.2}  peak buffer {}  ({:.2} s)",
                r.router.name(),
                r.delivery_ratio,
                r.latency_median_s,
                r.latency_p95_s,
                r.overhead_ratio,
                r.mean_hops,
                r.peak_buffer_bundles,
                seconds
            )?;
        }
    }
    Ok(())
}

fn data_dir(options: &NodeOptions) -> PathBuf {
    default_dir(options.data_dir.as_ref())
}

fn default_dir(given: Option<&PathBuf>) -> PathBuf {
    super::layer_dir(given, "mesh")
}

fn key_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.key"))
}

fn run_keygen(args: &KeygenArgs, json: bool) -> anyhow::Result<()> {
    let dir = default_dir(args.data_dir.as_ref());
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    EndpointId::dtn(&args.name, "").context("bad node name")?;
    let path = key_path(&dir, &args.name);
    if path.exists() && !args.force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    let identity = MeshIdentity::generate()?;
    let mut seed = String::with_capacity(64);
    for byte in identity.seed() {
        let _ = write!(seed, "{byte:02x}");
    }
    let temp = path.with_extension("key.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&temp)
            .with_context(|| format!("cannot write {}", temp.display()))?;
        writeln!(file, "{seed}")?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, &path)?;
    let out = &mut io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            json!({ "name": args.name, "keys": identity.public().to_string(), "key_file": path })
        )?;
    } else {
        writeln!(out, "{} {}", args.name, identity.public())?;
    }
    Ok(())
}

fn load_identity(dir: &Path, name: &str) -> anyhow::Result<MeshIdentity> {
    let path = key_path(dir, name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (create it with `fog mesh keygen --name {name}`)",
            path.display()
        )
    })?;
    let text = text.trim();
    let mut seed = [0u8; 32];
    if text.len() != 64 || !text.is_ascii() {
        bail!("{} is not a fog mesh key", path.display());
    }
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .with_context(|| format!("{} is not a fog mesh key", path.display()))?;
    }
    Ok(MeshIdentity::from_seed(seed))
}

fn load_keyring(dir: &Path, trust: &[String]) -> anyhow::Result<Keyring> {
    let mut keyring = Keyring::new();
    let mut add = |name: &str, keys: &str, place: &str| -> anyhow::Result<()> {
        let node = EndpointId::dtn(name, "")
            .ok()
            .and_then(|e| e.node_id())
            .with_context(|| format!("{place}: bad node name `{name}`"))?;
        let keys: PeerKeys = keys
            .parse()
            .with_context(|| format!("{place}: bad keys for `{name}`"))?;
        keyring.insert(node, keys)?;
        Ok(())
    };
    let path = dir.join("keyring");
    if let Ok(text) = std::fs::read_to_string(&path) {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let place = format!("{} line {}", path.display(), number + 1);
            let (name, keys) = line
                .split_once(char::is_whitespace)
                .with_context(|| format!("{place}: expected `NAME KEYS`"))?;
            add(name, keys.trim(), &place)?;
        }
    }
    for entry in trust {
        let (name, keys) = entry.split_once('=').context("--trust takes NAME=KEYS")?;
        add(name, keys, "--trust")?;
    }
    Ok(keyring)
}

async fn start_node(options: &NodeOptions) -> anyhow::Result<MeshNode> {
    let eid = EndpointId::dtn(&options.name, "").context("bad node name")?;
    let dir = data_dir(options);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut config = MeshConfig::new(eid);
    config.router = options.router;
    config.store_path = Some(store_path(&dir, &options.name));
    if options.secure {
        config.identity = Some(std::sync::Arc::new(load_identity(&dir, &options.name)?));
        config.keyring = load_keyring(&dir, &options.trust)?;
    }
    let (node, link) = match options.bearer {
        BearerKind::Udp => {
            let mut udp = UdpConfig::new(options.bind);
            udp.peers.clone_from(&options.peers);
            udp.label.clone_from(&options.name);
            if !options.no_multicast {
                udp.multicast = Some(UdpConfig::default_multicast());
            }
            let bearer = UdpBearer::bind(udp)
                .await
                .with_context(|| format!("cannot bind {}", options.bind))?;
            let local = bearer.local_addr();
            (MeshNode::spawn(config, bearer)?, format!("udp {local}"))
        }
        BearerKind::Ble => (
            spawn_ble(config, &options.name).await?,
            "bluetooth le".to_owned(),
        ),
    };
    tracing::info!(%link, node = %node.eid(), "mesh node running");
    eprintln!(
        "fog mesh: {} on {link}, router {}",
        node.eid(),
        options.router
    );
    Ok(node)
}

#[cfg(feature = "ble")]
async fn spawn_ble(config: MeshConfig, name: &str) -> anyhow::Result<MeshNode> {
    let mut ble = fog_mesh::BleConfig::new();
    ble.local_name = format!("fog-{name}");
    let bearer = fog_mesh::BleBearer::new(ble).await?;
    Ok(MeshNode::spawn(config, bearer)?)
}

#[cfg(not(feature = "ble"))]
#[allow(clippy::unused_async)] // the same shape as the `ble` build
async fn spawn_ble(_config: MeshConfig, _name: &str) -> anyhow::Result<MeshNode> {
    bail!(
        "the BLE bearer is not in this build: rebuild fog with `cargo build -p fog-cli --features ble` (Linux with BlueZ)"
    )
}

fn store_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sqlite"))
}

fn print_bundle(delivery: &Delivery, json: bool) -> anyhow::Result<()> {
    let out = &mut io::stdout().lock();
    let bundle = delivery.bundle();
    let text = String::from_utf8_lossy(delivery.payload());
    if json {
        let line = json!({
            "id": bundle.id().to_string(),
            "source": bundle.source().to_string(),
            "destination": bundle.destination().to_string(),
            "hops": bundle.hop_count().map(|h| h.count),
            "payload": text,
            "payload_bytes": delivery.payload().len(),
            "sealed": delivery.sealed(),
        });
        writeln!(out, "{line}")?;
    } else {
        writeln!(
            out,
            "{} -> {}: {text}",
            bundle.source(),
            bundle.destination()
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn run_node(args: &NodeArgs, json: bool) -> anyhow::Result<()> {
    let mut node = start_node(&args.node).await?;
    loop {
        tokio::select! {
            bundle = node.recv() => match bundle {
                Some(bundle) => print_bundle(&bundle, json)?,
                None => bail!("the mesh node stopped"),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let stats = node.stats();
    node.shutdown().await;
    eprintln!("fog mesh: stopped ({stats:?})");
    Ok(())
}

async fn run_send(args: &SendArgs, json: bool) -> anyhow::Result<()> {
    let destination: EndpointId = args.to.parse().context("bad destination")?;
    let payload = match (&args.message, &args.file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, None) => bail!("give --message or --file"),
    };
    // Check the size before starting anything.
    let probe = BundleBuilder::new(EndpointId::dtn(&args.node.name, "")?, destination.clone())
        .payload(payload.clone())
        .build();
    if probe.encode().len() > fog_mesh::MAX_LINK_MESSAGE {
        bail!(
            "the message is larger than a mesh bundle may be ({} bytes)",
            fog_mesh::MAX_LINK_MESSAGE
        );
    }
    let node = start_node(&args.node).await?;
    let id = node
        .send(destination, payload, Duration::from_secs(args.lifetime))
        .await?;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(args.linger)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let stats = node.stats();
    let stored = node.stored().await.unwrap_or(0);
    node.shutdown().await;
    let out = &mut io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            json!({ "id": id.to_string(), "forwarded": stats.forwarded, "still_stored": stored > 0 })
        )?;
    } else {
        writeln!(
            out,
            "bundle {id}: forwarded {} time(s); {}",
            stats.forwarded,
            if stored > 0 {
                "kept in the store for later contacts"
            } else {
                "no copy left here"
            }
        )?;
    }
    Ok(())
}

async fn run_recv(args: &RecvArgs, json: bool) -> anyhow::Result<()> {
    let mut node = start_node(&args.node).await?;
    let deadline = tokio::time::sleep(Duration::from_secs(args.timeout));
    tokio::pin!(deadline);
    let mut received = 0;
    while received < args.count {
        tokio::select! {
            bundle = node.recv() => match bundle {
                Some(bundle) => {
                    print_bundle(&bundle, json)?;
                    received += 1;
                }
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    node.shutdown().await;
    if received < args.count {
        bail!(
            "received {received} of {} bundle(s) within {} s",
            args.count,
            args.timeout
        );
    }
    Ok(())
}

/// `fog bench mesh`: bundle codec rates and trace replay rates.
pub(crate) fn bench(json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let bundle = BundleBuilder::new(EndpointId::dtn("a", "app")?, EndpointId::dtn("b", "app")?)
        .payload(vec![0x42; 1024])
        .build();
    let encoded = bundle.encode();
    let rounds = 20_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(std::hint::black_box(&bundle).encode());
    }
    let encode_per_s = f64::from(rounds) / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(Bundle::decode(std::hint::black_box(&encoded))?);
    }
    let decode_per_s = f64::from(rounds) / started.elapsed().as_secs_f64();

    // A trace of more than 10,000 contacts: 120 random-waypoint nodes.
    let mut rwp = RandomWaypoint::default();
    rwp.nodes = 120;
    rwp.width = 2500.0;
    rwp.height = 2500.0;
    let trace = rwp.generate()?;
    let mut replay = serde_json::Map::new();
    let mut reports = Vec::new();
    for router in RouterKind::ALL {
        let started = Instant::now();
        let report = simulate(&trace, &SimConfig::new(router))?;
        let seconds = started.elapsed().as_secs_f64();
        replay.insert(
            router.name().to_owned(),
            json!({ "seconds": seconds, "contacts_per_s": trace.contacts() as f64 / seconds }),
        );
        reports.push(report);
    }
    // The routing comparison on the 50-node benchmark trace.
    let small = RandomWaypoint::default().generate()?;
    let by = |kind: RouterKind| simulate(&small, &SimConfig::new(kind));
    let (epidemic, prophet, spray) = (
        by(RouterKind::Epidemic)?,
        by(RouterKind::Prophet)?,
        by(RouterKind::Spray)?,
    );
    let document = json!({
        "layer": "mesh",
        "bundle_bytes": encoded.len(),
        "encode_per_s": encode_per_s,
        "decode_per_s": decode_per_s,
        "replay_contacts": trace.contacts(),
        "replay_nodes": trace.nodes(),
        "replay": replay,
        "routing_trace_nodes": small.nodes(),
        "routing_trace_contacts": small.contacts(),
        "prophet_delivery_vs_epidemic": prophet.delivery_ratio / epidemic.delivery_ratio,
        "prophet_overhead_vs_epidemic": prophet.overhead_ratio / epidemic.overhead_ratio,
        "spray_overhead_vs_epidemic": spray.overhead_ratio / epidemic.overhead_ratio,
        "routing": [epidemic, prophet, spray],
    });
    if json {
        writeln!(out, "{document}")?;
    } else {
        writeln!(
            out,
            "bundle encode: {encode_per_s:.0}/s, decode: {decode_per_s:.0}/s ({} bytes)",
            encoded.len()
        )?;
        for (router, figures) in &replay {
            writeln!(
                out,
                "replay {} contacts with {router}: {:.2} s ({:.0} contacts/s)",
                trace.contacts(),
                figures["seconds"].as_f64().unwrap_or(0.0),
                figures["contacts_per_s"].as_f64().unwrap_or(0.0)
            )?;
        }
        writeln!(
            out,
            "50-node trace: prophet delivers {:.2}x epidemic at {:.2}x its overhead; spray-and-wait {:.2}x overhead",
            document["prophet_delivery_vs_epidemic"]
                .as_f64()
                .unwrap_or(0.0),
            document["prophet_overhead_vs_epidemic"]
                .as_f64()
                .unwrap_or(0.0),
            document["spray_overhead_vs_epidemic"]
                .as_f64()
                .unwrap_or(0.0)
        )?;
    }
    Ok(())
}
