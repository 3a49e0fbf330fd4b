//! A layered mixnet of twelve nodes on loopback TCP: every privacy level,
//! a reply, replays across a restart, and circuits rebuilt around a dead
//! node.
//!
//! Each node listens on its own 127.N.0.1 (Linux routes all of 127/8 to the
//! loopback interface), so every node sits in its own /16 and the circuit
//! diversity rules hold as they would on the internet.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    CircuitPool, Delivery, DescriptorBuilder, Destination, DestinationAddress, Directory,
    FrameCodec, MixClient, MixNode, NodeConfig, NodeDescriptor, NodeIdentity, PacketBuilder,
    PacketConfig, PoolConfig, PrivacyLevel, ReplayConfig, ReplayFilter, TcpConfig,
    TcpListenerHandle, TcpTransport,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const NODES: u8 = 12;
const LAYERS: u8 = 3;

struct Running {
    node: MixNode,
    listener: TcpListenerHandle,
    forward: JoinHandle<()>,
}

struct Net {
    config: PacketConfig,
    addrs: Vec<SocketAddr>,
    descriptors: Vec<NodeDescriptor>,
    running: Vec<Option<Running>>,
    replay_dirs: Vec<PathBuf>,
    collector: mpsc::Sender<Delivery>,
    _tmp: tempfile::TempDir,
}

fn loop_address(i: usize) -> DestinationAddress {
    DestinationAddress::from_bytes([0xc0 + i as u8; 32])
}

fn secret(i: usize) -> StaticSecret {
    StaticSecret::from([i as u8 + 1; 32])
}

impl Net {
    async fn start(config: PacketConfig) -> (Net, mpsc::Receiver<Delivery>) {
        let tmp = tempfile::tempdir().unwrap();
        let (collector, deliveries) = mpsc::channel(1024);
        // Reserve a port on each 127.N.0.1.
        let mut addrs = Vec::new();
        for i in 0..NODES {
            let l =
                std::net::TcpListener::bind(("127.".to_owned() + &(i + 1).to_string() + ".0.1", 0))
                    .unwrap();
            addrs.push(l.local_addr().unwrap());
        }
        let descriptors: Vec<NodeDescriptor> = (0..NODES as usize)
            .map(|i| {
                DescriptorBuilder::new(PublicKey::from(&secret(i)), 1, addrs[i].to_string())
                    .layer(i as u8 % LAYERS)
                    .stake(100)
                    .family(format!("operator-{i}"))
                    .sign(&NodeIdentity::from_seed(&[i as u8 + 1; 32]))
                    .unwrap()
            })
            .collect();
        let replay_dirs = (0..NODES)
            .map(|i| tmp.path().join(format!("node-{i}")))
            .collect();
        let mut net = Net {
            config,
            addrs,
            descriptors,
            running: (0..NODES).map(|_| None).collect(),
            replay_dirs,
            collector,
            _tmp: tmp,
        };
        for i in 0..NODES as usize {
            net.start_node(i).await;
        }
        (net, deliveries)
    }

    fn transport(&self) -> Arc<TcpTransport> {
        let t = Arc::new(TcpTransport::new(
            FrameCodec::new(&self.config),
            TcpConfig::default(),
        ));
        for (d, a) in self.descriptors.iter().zip(&self.addrs) {
            t.set_peer(d.node_address(), *a);
        }
        t
    }

    async fn start_node(&mut self, i: usize) {
        let replay =
            ReplayFilter::open(&self.replay_dirs[i], 1, &ReplayConfig::new(100_000)).unwrap();
        let (node, mut deliveries) = MixNode::start(
            NodeConfig::new(self.config)
                .with_workers(1)
                .with_loop_address(loop_address(i)),
            1,
            secret(i),
            replay,
            self.transport(),
        )
        .unwrap();
        let listener = fog_mix::listen(
            self.addrs[i],
            FrameCodec::new(&self.config),
            TcpConfig::default(),
            node.inbound(),
        )
        .await
        .unwrap();
        let collector = self.collector.clone();
        let forward = tokio::spawn(async move {
            while let Some(d) = deliveries.recv().await {
                let _ = collector.send(d).await;
            }
        });
        self.running[i] = Some(Running {
            node,
            listener,
            forward,
        });
    }

    async fn stop_node(&mut self, i: usize) {
        if let Some(r) = self.running[i].take() {
            r.listener.shutdown().await;
            r.forward.abort();
            drop(r.node);
        }
    }

    fn node(&self, i: usize) -> &MixNode {
        &self.running[i].as_ref().unwrap().node
    }

    fn client(&self, pool: PoolConfig) -> MixClient {
        let (directory, rejected) = Directory::new(self.descriptors.clone());
        assert!(rejected.is_empty());
        MixClient::new(
            PacketBuilder::new(self.config).unwrap(),
            CircuitPool::new(directory, pool),
            self.transport(),
            DestinationAddress::from_bytes([0x10; 32]),
        )
    }
}

/// Waits for a delivery matching `want`, keeping the others.
async fn expect(
    deliveries: &mut mpsc::Receiver<Delivery>,
    what: &str,
    want: impl Fn(&Delivery) -> bool,
) -> Delivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = tokio::time::timeout_at(deadline, deliveries.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} never arrived"))
            .expect("collector closed");
        if want(&d) {
            return d;
        }
    }
}

fn message_is(d: &Delivery, text: &[u8]) -> bool {
    matches!(d, Delivery::Message { message, .. } if message == text)
}

async fn wait_stats(node: &MixNode, what: &str, f: impl Fn(&fog_mix::NodeStats) -> bool) {
    for _ in 0..3000 {
        if f(&node.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: {:?}", node.stats());
}

const LEVELS: [PrivacyLevel; 4] = [
    PrivacyLevel::Public,
    PrivacyLevel::Private,
    PrivacyLevel::Confidential,
    PrivacyLevel::Secret,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layered_mixnet_on_loopback() {
    let config = PacketConfig::default().with_mean_delay(Duration::from_millis(2));
    let (mut net, mut deliveries) = Net::start(config).await;
    let origin = tokio::time::Instant::now();
    let mut rng = rand::rng();
    let mut client = net.client(PoolConfig::default());
    let recipient = Destination::new(DestinationAddress::from_bytes([0xbb; 32]), [7; 16]);

    // 1. A message at each level arrives intact.
    for level in LEVELS {
        let text = format!("hello at {level}").into_bytes();
        let circuit = client
            .send_now(level, recipient, &text, origin.elapsed(), &mut rng)
            .unwrap();
        assert_eq!(circuit.route().len(), level.hops());
        let d = expect(&mut deliveries, level.name(), |d| message_is(d, &text)).await;
        let Delivery::Message {
            destination,
            identifier,
            ..
        } = d
        else {
            unreachable!()
        };
        assert_eq!(destination, recipient.address());
        assert_eq!(identifier, [7; 16]);
    }

    // 2. A reply through a reply block reaches its creator, sealed.
    let alice = DestinationAddress::from_bytes([0xa1; 32]);
    let (block, key) = client
        .reply_block(PrivacyLevel::Private, alice, origin.elapsed(), &mut rng)
        .unwrap();
    let bob = net.client(PoolConfig::default());
    bob.send_reply(block, b"a reply for alice").unwrap();
    let d = expect(
        &mut deliveries,
        "the reply",
        |d| matches!(d, Delivery::Sealed { identifier, .. } if *identifier == key.identifier()),
    )
    .await;
    let Delivery::Sealed {
        destination,
        sealed,
        ..
    } = d
    else {
        unreachable!()
    };
    assert_eq!(destination, alice);
    assert_eq!(key.open(&sealed).unwrap(), b"a reply for alice");

    // 3. A replayed packet is dropped, also after the node restarts.
    let target = 0usize;
    let route = [net.descriptors[target].route_node()];
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Public,
            &route,
            recipient,
            b"only once",
            &mut rng,
        )
        .unwrap();
    let frame = FrameCodec::new(&config)
        .encode(out.packet.as_bytes())
        .unwrap();
    let send_raw = |frame: Vec<u8>, addr: SocketAddr| async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&frame).await.unwrap();
        s.shutdown().await.unwrap();
    };
    send_raw(frame.clone(), net.addrs[target]).await;
    expect(&mut deliveries, "the first copy", |d| {
        message_is(d, b"only once")
    })
    .await;
    send_raw(frame.clone(), net.addrs[target]).await;
    wait_stats(net.node(target), "replay before restart", |s| {
        s.replayed == 1
    })
    .await;
    net.stop_node(target).await;
    net.start_node(target).await;
    send_raw(frame.clone(), net.addrs[target]).await;
    wait_stats(net.node(target), "replay after restart", |s| {
        s.replayed == 1
    })
    .await;
    assert_eq!(net.node(target).stats().delivered, 0);

    // 4. Killing a node: its circuits are rebuilt and messages still arrive.
    let mut pool = PoolConfig::default();
    pool.circuits_per_level = 2;
    let mut client = net.client(pool);
    let used = client
        .send_now(
            PrivacyLevel::Private,
            recipient,
            b"warm up",
            origin.elapsed(),
            &mut rng,
        )
        .unwrap();
    expect(&mut deliveries, "warm up", |d| message_is(d, b"warm up")).await;
    let victim_address = used.route()[1];
    let victim = net
        .descriptors
        .iter()
        .position(|d| d.node_address() == victim_address)
        .unwrap();
    net.stop_node(victim).await;
    // The client's liveness check over the mixes of its pooled circuits.
    let pooled: HashSet<_> = LEVELS
        .iter()
        .flat_map(|l| client.pool().pooled(*l).to_vec())
        .flat_map(|c| c.route().to_vec())
        .collect();
    for mix in pooled {
        let addr: SocketAddr = client
            .pool()
            .directory()
            .get(mix)
            .unwrap()
            .address()
            .parse()
            .unwrap();
        if !fog_mix::probe(addr, Duration::from_millis(500)).await {
            client.pool_mut().mark_failed(mix, origin.elapsed());
        }
    }
    assert!(client.pool().rebuilt() >= 1);
    for round in 0..3 {
        for level in LEVELS {
            let text = format!("after the failure, {level}, round {round}").into_bytes();
            let circuit = client
                .send_now(level, recipient, &text, origin.elapsed(), &mut rng)
                .unwrap();
            assert!(!circuit.route().contains(&victim_address));
            expect(&mut deliveries, "a message after the failure", |d| {
                message_is(d, &text)
            })
            .await;
        }
    }
    for i in 0..NODES as usize {
        if i != victim {
            let s = net.node(i).stats();
            assert_eq!(s.dropped_malformed, 0, "node {i}: {s:?}");
            assert_eq!(s.dropped_unauthenticated, 0, "node {i}: {s:?}");
        }
    }

    // 5. Cover: a mix's own loop cover (λM) comes back to it; a client's
    // Poisson streams (λP with nothing queued, λL, λD) reach the network
    // and the drop cover ends at its last hop.
    let me = (victim + 1) % NODES as usize;
    let (directory, _) = Directory::new(net.descriptors.clone());
    let cover = fog_mix::spawn_mix_cover(
        net.node(me).clone(),
        directory,
        net.descriptors[me].node_address(),
        loop_address(me),
        200.0,
        PacketBuilder::new(config).unwrap(),
    );
    wait_stats(net.node(me), "mix loop cover", |s| {
        s.loop_cover_returned >= 3
    })
    .await;
    cover.abort();
    let mut schedule = fog_mix::CoverSchedule::client(
        fog_mix::CoverRates::new(100.0, 50.0, 50.0),
        origin.elapsed(),
        &mut rng,
    );
    let mut sent = Vec::new();
    while sent.len() < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        sent.extend(client.tick(&mut schedule, origin.elapsed(), &mut rng));
    }
    assert!(sent.contains(&fog_mix::Sent::PayloadCover));
    assert!(sent.contains(&fog_mix::Sent::Loop));
    assert!(sent.contains(&fog_mix::Sent::Drop));
    for _ in 0..3000 {
        let dropped: u64 = (0..NODES as usize)
            .filter(|i| *i != victim)
            .map(|i| net.node(i).stats().drop_cover_received)
            .sum();
        if dropped >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dropped: u64 = (0..NODES as usize)
        .filter(|i| *i != victim)
        .map(|i| net.node(i).stats().drop_cover_received)
        .sum();
    assert!(dropped >= 5, "drop cover received: {dropped}");
}
