//! The mix node pipeline: counters, hostile bytes, TCP frames.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    Delivery, Destination, DestinationAddress, FrameCodec, MixNode, NodeAddress, NodeConfig,
    Packet, PacketBuilder, PacketConfig, PacketTransport, PrivacyLevel, ProcessError, Processor,
    ReplayConfig, ReplayFilter, ReplayVerdict, RouteNode, TcpConfig, TransportError,
};
use proptest::prelude::*;
use sphinx_packet::constants::{
    EXPANDED_SHARED_SECRET_HKDF_INFO, EXPANDED_SHARED_SECRET_HKDF_SALT,
    EXPANDED_SHARED_SECRET_LENGTH,
};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination as SDest, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::version::PAYLOAD_KEYS_SEEDS_VERSION;
use tokio::sync::mpsc;

/// A transport that records what the node sends.
#[derive(Default)]
struct Recorder(Mutex<Vec<(NodeAddress, Packet)>>);

impl PacketTransport for Recorder {
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        self.0.lock().unwrap().push((next_hop, packet));
        Ok(())
    }
}

fn replay() -> ReplayFilter {
    ReplayFilter::in_memory(0, &ReplayConfig::new(10_000)).unwrap()
}

/// Polls the node's counters until `what` holds; fails after `limit` (a
/// hang guard, not a timing assertion).
async fn wait_until(node: &MixNode, limit: Duration, what: impl Fn(&fog_mix::NodeStats) -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if what(&node.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("node never reached the expected state: {:?}", node.stats());
}

async fn wait_for(node: &MixNode, what: impl Fn(&fog_mix::NodeStats) -> bool) {
    wait_until(node, Duration::from_secs(10), what).await;
}

/// A one-hop packet whose routing information carries a version with a
/// non-zero first byte and a header MAC that verifies: only a sender can
/// make it, and `sphinx-packet` asserts on it in debug builds.
fn bad_version_packet(node_key: &PublicKey, config: &PacketConfig) -> Vec<u8> {
    let initial = StaticSecret::from([7u8; 32]);
    let route = [Node::new(NodeAddressBytes::from_bytes([1; 32]), *node_key)];
    let dest = SDest::new(DestinationAddressBytes::from_bytes([2; 32]), [0; 16]);
    let packet = sphinx_packet::SphinxPacketBuilder::new()
        .with_version(PAYLOAD_KEYS_SEEDS_VERSION)
        .with_payload_size(config.payload_size)
        .with_initial_secret(&initial)
        .build_packet(b"x", &route, &dest, &[Delay::new_from_nanos(0)])
        .unwrap();
    let mut bytes = packet.to_bytes();
    // The sender knows the shared secret: re-derive its keys.
    let shared = initial.diffie_hellman(node_key);
    let hkdf =
        hkdf::Hkdf::<sha2::Sha256>::new(Some(EXPANDED_SHARED_SECRET_HKDF_SALT), shared.as_bytes());
    let mut expanded = [0u8; EXPANDED_SHARED_SECRET_LENGTH];
    hkdf.expand(EXPANDED_SHARED_SECRET_HKDF_INFO, &mut expanded)
        .unwrap();
    let mac_key = &expanded[16..32];
    // Flip the first version byte (routing info byte 1) under the stream cipher.
    let routing = 32 + 16;
    bytes[routing + 1] ^= 0x80;
    let mac = sphinx_packet::crypto::compute_keyed_hmac::<sha2::Sha256>(
        mac_key,
        &bytes[routing..sphinx_packet::header::HEADER_SIZE],
    )
    .unwrap()
    .into_bytes();
    bytes[32..48].copy_from_slice(&mac[..16]);
    bytes
}

#[test]
fn a_sender_controlled_version_byte_is_refused_not_a_panic() {
    let config = PacketConfig::default();
    let secret = StaticSecret::from([3u8; 32]);
    let processor = Processor::new(secret.clone(), config).unwrap();
    let bytes = bad_version_packet(&PublicKey::from(&secret), &config);
    let mut filter = replay();
    let result = processor.process_with(&bytes, |tag| filter.check_and_insert(tag));
    // Refused by fog-mix's own check, before sphinx-packet saw the byte.
    assert!(
        matches!(&result, Err(ProcessError::Malformed(m)) if m.contains("version prefix")),
        "{result:?}"
    );
    // It was refused before the replay filter was touched.
    assert_eq!(filter.stats().inserted, 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes of any length, and arbitrary bytes of exactly the
    /// packet length, never panic the processing path.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..3000),
        seed in any::<[u8; 32]>(),
    ) {
        let config = PacketConfig::default();
        let processor = Processor::new(StaticSecret::from([5u8; 32]), config).unwrap();
        let _ = processor.process_with(&bytes, |_| Ok(ReplayVerdict::Fresh));
        let mut exact = bytes;
        exact.resize(config.packet_len(), 0);
        exact[..32].copy_from_slice(&seed);
        let r = processor.process_with(&exact, |_| Ok(ReplayVerdict::Fresh));
        prop_assert!(r.is_err());
    }

    /// A valid packet with any one byte changed never panics either.
    #[test]
    fn a_mutated_packet_never_panics(index in 0usize..2396, xor in 1u8..=255) {
        let config = PacketConfig::default();
        let secret = StaticSecret::from([9u8; 32]);
        let processor = Processor::new(secret.clone(), config).unwrap();
        let route = [RouteNode::new(NodeAddress::from_bytes([1; 32]), PublicKey::from(&secret))];
        let out = PacketBuilder::new(config).unwrap().build(
            PrivacyLevel::Public,
            &route,
            Destination::new(DestinationAddress::from_bytes([4; 32]), [0; 16]),
            b"m",
            &mut rand::rng(),
        ).unwrap();
        let mut bytes = out.packet.into_bytes();
        bytes[index] ^= xor;
        let _ = processor.process_with(&bytes, |_| Ok(ReplayVerdict::Fresh));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_forwards_delivers_and_counts_every_drop() {
    let config = PacketConfig::default().with_mean_delay(Duration::from_millis(1));
    let secrets: Vec<StaticSecret> = (0..3u8).map(|i| StaticSecret::from([i + 20; 32])).collect();
    let route: Vec<RouteNode> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| RouteNode::new(NodeAddress::from_bytes([i as u8; 32]), PublicKey::from(s)))
        .collect();
    let recorder = Arc::new(Recorder::default());
    let (node, mut deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(2),
        0,
        secrets[0].clone(),
        replay(),
        recorder.clone(),
    )
    .unwrap();
    let inbound = node.inbound();
    let builder = PacketBuilder::new(config).unwrap();
    let dest = Destination::new(DestinationAddress::from_bytes([9; 32]), [1; 16]);
    let out = builder
        .build_with_delays(
            PrivacyLevel::Private,
            &route,
            dest,
            b"hi",
            &[Duration::from_millis(3), Duration::ZERO],
            &mut rand::rng(),
        )
        .unwrap();
    // Forwarded after its delay.
    assert!(inbound.deliver(out.packet.as_bytes().to_vec()).await);
    wait_for(&node, |s| s.forwarded == 1).await;
    let (hop, packet) = recorder.0.lock().unwrap().pop().unwrap();
    assert_eq!(hop, route[1].address());
    assert_eq!(packet.len(), config.packet_len());
    // The same packet again is a replay.
    assert!(inbound.deliver(out.packet.as_bytes().to_vec()).await);
    wait_for(&node, |s| s.replayed == 1).await;
    // Garbage of the right length does not authenticate; wrong length is malformed.
    assert!(inbound.deliver(vec![0u8; config.packet_len()]).await);
    assert!(inbound.deliver(vec![1u8; 10]).await);
    wait_for(&node, |s| {
        s.dropped_unauthenticated == 1 && s.dropped_malformed == 1
    })
    .await;
    // A sender-forged version byte is malformed, the node still runs.
    let forged = bad_version_packet(&node.public_key(), &config);
    assert!(inbound.deliver(forged).await);
    wait_for(&node, |s| s.dropped_malformed == 2).await;
    // A one-hop packet to this node is delivered.
    let out = builder
        .build(
            PrivacyLevel::Public,
            &route[..1],
            dest,
            b"for you",
            &mut rand::rng(),
        )
        .unwrap();
    assert!(inbound.deliver(out.packet.into_bytes()).await);
    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        delivery,
        Delivery::Message {
            destination: dest.address(),
            identifier: [1; 16],
            message: b"for you".to_vec()
        }
    );
    // The counter is bumped just after the hand-over.
    wait_for(&node, |s| s.delivered == 1).await;
    let stats = node.stats();
    assert_eq!(stats.received, 6);
    assert_eq!(stats.inbound_depth, 0);
}

/// A transport that refuses everything: the node counts overload.
struct Refuser;
impl PacketTransport for Refuser {
    fn send(&self, _: NodeAddress, _: Packet) -> Result<(), TransportError> {
        Err(TransportError::Full)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_next_hop_is_counted_as_overload() {
    let config = PacketConfig::default();
    let secrets: Vec<StaticSecret> = (0..3u8).map(|i| StaticSecret::from([i + 40; 32])).collect();
    let route: Vec<RouteNode> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| RouteNode::new(NodeAddress::from_bytes([i as u8; 32]), PublicKey::from(s)))
        .collect();
    let (node, _deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(1),
        0,
        secrets[0].clone(),
        replay(),
        Arc::new(Refuser),
    )
    .unwrap();
    let out = PacketBuilder::new(config)
        .unwrap()
        .build_with_delays(
            PrivacyLevel::Private,
            &route,
            Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]),
            b"x",
            &[Duration::ZERO, Duration::ZERO],
            &mut rand::rng(),
        )
        .unwrap();
    node.inbound().deliver(out.packet.into_bytes()).await;
    wait_for(&node, |s| s.dropped_overload == 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_tcp_frames_are_counted_and_the_connection_goes_on() {
    use tokio::io::AsyncWriteExt;
    let config = PacketConfig::default();
    let codec = FrameCodec::new(&config);
    let secret = StaticSecret::from([50u8; 32]);
    let (node, mut deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(1),
        0,
        secret.clone(),
        replay(),
        Arc::new(Recorder::default()),
    )
    .unwrap();
    let listener = fog_mix::listen(
        "127.0.0.1:0".parse().unwrap(),
        codec,
        TcpConfig::default(),
        node.inbound(),
    )
    .await
    .unwrap();
    let mut stream = tokio::net::TcpStream::connect(listener.local_addr())
        .await
        .unwrap();
    // Three frames of garbage, then a good frame on the same connection.
    for fill in [0u8, 0x46, 0xff] {
        stream
            .write_all(&vec![fill; codec.frame_len()])
            .await
            .unwrap();
    }
    let route = [RouteNode::new(
        NodeAddress::from_bytes([1; 32]),
        PublicKey::from(&secret),
    )];
    let dest = Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Public,
            &route,
            dest,
            b"after garbage",
            &mut rand::rng(),
        )
        .unwrap();
    stream
        .write_all(&codec.encode(out.packet.as_bytes()).unwrap())
        .await
        .unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(d, Delivery::Message { message, .. } if message == b"after garbage"));
    assert_eq!(node.stats().dropped_malformed, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_cross_three_nodes_over_tcp() {
    let config = PacketConfig::default().with_mean_delay(Duration::from_millis(2));
    let codec = FrameCodec::new(&config);
    let secrets: Vec<StaticSecret> = (0..3u8).map(|i| StaticSecret::from([i + 60; 32])).collect();
    let route: Vec<RouteNode> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| RouteNode::new(NodeAddress::from_bytes([i as u8; 32]), PublicKey::from(s)))
        .collect();
    let transport = Arc::new(fog_mix::TcpTransport::new(codec, TcpConfig::default()));
    let mut nodes = Vec::new();
    let mut deliveries: Vec<mpsc::Receiver<Delivery>> = Vec::new();
    let mut listeners = Vec::new();
    for (i, s) in secrets.iter().enumerate() {
        let (node, d) = MixNode::start(
            NodeConfig::new(config).with_workers(1),
            0,
            s.clone(),
            replay(),
            transport.clone(),
        )
        .unwrap();
        let l = fog_mix::listen(
            "127.0.0.1:0".parse().unwrap(),
            codec,
            TcpConfig::default(),
            node.inbound(),
        )
        .await
        .unwrap();
        transport.set_peer(route[i].address(), l.local_addr());
        nodes.push(node);
        deliveries.push(d);
        listeners.push(l);
    }
    let dest = Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Private,
            &route,
            dest,
            b"three hops",
            &mut rand::rng(),
        )
        .unwrap();
    transport.send(out.first_hop, out.packet).unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), deliveries[2].recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(d, Delivery::Message { message, .. } if message == b"three hops"));
    assert_eq!(nodes[0].stats().forwarded, 1);
}

/// A PRIVATE packet whose first hop is the mix holding `first`, delays
/// zeroed.
fn packet_for(first: &PublicKey, config: &PacketConfig) -> Vec<u8> {
    delayed_packet_for(first, config, Duration::ZERO)
}

fn filter(epoch: u64) -> ReplayFilter {
    ReplayFilter::in_memory(epoch, &ReplayConfig::new(10_000)).unwrap()
}

#[tokio::test]
async fn a_rotation_keeps_the_previous_key_until_the_overlap_closes() {
    let config = PacketConfig::default();
    let old = StaticSecret::from([40u8; 32]);
    let new = StaticSecret::from([41u8; 32]);
    let newer = StaticSecret::from([42u8; 32]);
    let recorder = Arc::new(Recorder::default());
    let (node, _deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(2),
        1,
        old.clone(),
        filter(1),
        recorder.clone(),
    )
    .unwrap();
    let inbound = node.inbound();
    // Built by senders who saw only epoch 1's descriptor.
    let in_flight = packet_for(&PublicKey::from(&old), &config);
    let late = packet_for(&PublicKey::from(&old), &config);
    let too_late = packet_for(&PublicKey::from(&old), &config);

    // Going back, or a filter of another epoch, is refused and changes nothing.
    assert!(node.rotate(1, new.clone(), filter(1)).is_err());
    assert!(node.rotate(2, new.clone(), filter(3)).is_err());
    assert_eq!(node.epoch(), 1);

    assert!(node.rotate(2, new.clone(), filter(2)).unwrap().is_none());
    assert_eq!(node.epoch(), 2);
    assert_eq!(node.public_key(), PublicKey::from(&new));
    // During the overlap window both keys work: the old epoch's packets
    // and the new epoch's.
    assert!(inbound.deliver(in_flight.clone()).await);
    assert!(
        inbound
            .deliver(packet_for(&PublicKey::from(&new), &config))
            .await
    );
    wait_for(&node, |s| s.forwarded == 2).await;
    // The previous epoch keeps its own replay filter through the window.
    assert!(inbound.deliver(in_flight).await);
    wait_for(&node, |s| s.replayed == 1).await;
    assert!(inbound.deliver(late).await);
    wait_for(&node, |s| s.forwarded == 3).await;

    // Closing the window hands back epoch 1's filter; its key is refused now.
    let retired = node.close_overlap().expect("the previous epoch's filter");
    assert_eq!(retired.epoch(), 1);
    assert!(inbound.deliver(too_late).await);
    wait_for(&node, |s| s.dropped_unauthenticated == 1).await;
    assert_eq!(node.stats().forwarded, 3);

    // A second rotation with the window open retires the oldest epoch.
    node.rotate(3, newer.clone(), filter(3)).unwrap();
    let retired = node
        .rotate(4, StaticSecret::from([43u8; 32]), filter(4))
        .unwrap();
    assert_eq!(retired.map(|f| f.epoch()), Some(2));
    assert!(
        inbound
            .deliver(packet_for(&PublicKey::from(&new), &config))
            .await
    );
    wait_for(&node, |s| s.dropped_unauthenticated == 2).await;
    assert!(
        inbound
            .deliver(packet_for(&PublicKey::from(&newer), &config))
            .await
    );
    wait_for(&node, |s| s.forwarded == 4).await;
}

/// A transport whose `send` blocks until the test opens it (or a generous
/// hang guard runs out), so the worker calling it stalls; what it sends is
/// recorded.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    /// Calls to `send` so far (including one blocked now).
    entered: AtomicUsize,
    sent: Mutex<Vec<(NodeAddress, Packet)>>,
}

impl Gate {
    fn new() -> Self {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
            entered: AtomicUsize::new(0),
            sent: Mutex::new(Vec::new()),
        }
    }

    fn entered(&self) -> usize {
        self.entered.load(Ordering::SeqCst)
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl PacketTransport for Gate {
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let open = self.open.lock().unwrap();
        // Hang guard: a failed test never opens the gate.
        let (open, _) = self
            .opened
            .wait_timeout_while(open, Duration::from_mins(2), |open| !*open)
            .unwrap();
        drop(open);
        self.sent.lock().unwrap().push((next_hop, packet));
        Ok(())
    }
}

/// A PRIVATE packet whose first hop is the mix holding `first`, held there
/// for `first_delay` and then sent on to `NodeAddress([2; 32])`.
fn delayed_packet_for(first: &PublicKey, config: &PacketConfig, first_delay: Duration) -> Vec<u8> {
    let other = PublicKey::from(&StaticSecret::from([99u8; 32]));
    let route = [
        RouteNode::new(NodeAddress::from_bytes([1; 32]), *first),
        RouteNode::new(NodeAddress::from_bytes([2; 32]), other),
        RouteNode::new(NodeAddress::from_bytes([3; 32]), other),
    ];
    let dest = Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]);
    PacketBuilder::new(*config)
        .unwrap()
        .build_with_delays(
            PrivacyLevel::Private,
            &route,
            dest,
            b"held",
            &[first_delay, Duration::ZERO],
            &mut rand::rng(),
        )
        .unwrap()
        .packet
        .into_bytes()
}

/// Like [`wait_for`] with a longer hang guard (a minute), for waits that
/// include a packet's hold.
async fn wait_long(node: &MixNode, what: impl Fn(&fog_mix::NodeStats) -> bool) {
    wait_until(node, Duration::from_mins(1), what).await;
}

/// Every packet received is accounted for exactly once.
fn accounted(s: &fog_mix::NodeStats) -> u64 {
    s.forwarded
        + s.delivered
        + s.loop_cover_returned
        + s.drop_cover_received
        + s.inbox_delivered
        + s.dropped_malformed
        + s.dropped_unauthenticated
        + s.replayed
        + s.dropped_replay_full
        + s.dropped_overload
        + s.dropped_delay_too_long
        + s.dropped_send_failed
        + s.dropped_journal
}

/// Inbound back-pressure: with the only worker stalled in a blocking
/// transport and its queue (two packets) full, `try_deliver` refuses and
/// counts each refusal as overload, while `deliver` (async) and
/// `deliver_blocking` wait instead of dropping. Once the transport lets go,
/// both waiting calls complete and every accepted packet is forwarded:
/// received = forwarded + dropped_overload, nothing left queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_pushes_back_on_deliver_and_try_deliver_counts_overload() {
    let config = PacketConfig::default();
    let secret = StaticSecret::from([70u8; 32]);
    let key = PublicKey::from(&secret);
    let gate = Arc::new(Gate::new());
    let mut node_config = NodeConfig::new(config).with_workers(1).with_worker_nice(0);
    node_config.inbound_queue = 2;
    let (node, _deliveries) =
        MixNode::start(node_config, 0, secret, replay(), gate.clone()).unwrap();
    let inbound = node.inbound();
    let packets: Vec<Vec<u8>> = (0..7)
        .map(|_| delayed_packet_for(&key, &config, Duration::ZERO))
        .collect();

    // The worker takes the first packet and blocks in the transport.
    assert!(inbound.try_deliver(packets[0].clone()));
    for _ in 0..12_000 {
        if gate.entered() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(gate.entered(), 1, "the worker never reached the transport");
    wait_for(&node, |s| s.inbound_depth == 0).await;

    // Two more fill its queue; beyond that try_deliver drops and counts.
    assert!(inbound.try_deliver(packets[1].clone()));
    assert!(inbound.try_deliver(packets[2].clone()));
    assert_eq!(node.stats().inbound_depth, 2);
    assert!(!inbound.try_deliver(packets[3].clone()));
    assert_eq!(node.stats().dropped_overload, 1);
    assert!(!inbound.try_deliver(packets[4].clone()));
    let s = node.stats();
    assert_eq!((s.received, s.dropped_overload), (5, 2));
    assert_eq!(s.inbound_depth, 2);

    // deliver and deliver_blocking wait rather than drop.
    let waiting = {
        let inbound = inbound.clone();
        let packet = packets[5].clone();
        tokio::spawn(async move { inbound.deliver(packet).await })
    };
    let blocked = {
        let inbound = inbound.clone();
        let packet = packets[6].clone();
        std::thread::spawn(move || inbound.deliver_blocking(packet))
    };
    // Both have been counted as received, neither is queued nor dropped.
    wait_for(&node, |s| s.received == 7).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "deliver returned with every queue full"
    );
    assert!(
        !blocked.is_finished(),
        "deliver_blocking returned with every queue full"
    );
    let s = node.stats();
    assert_eq!(
        (s.inbound_depth, s.dropped_overload, s.forwarded),
        (2, 2, 0)
    );

    // Released, the worker drains its queue and both waiting calls get in.
    gate.release();
    let queued = tokio::time::timeout(Duration::from_mins(1), waiting)
        .await
        .expect("deliver completes once the worker drains its queue")
        .unwrap();
    assert!(queued);
    let blocked = tokio::task::spawn_blocking(move || blocked.join().unwrap());
    let queued = tokio::time::timeout(Duration::from_mins(1), blocked)
        .await
        .expect("deliver_blocking completes once the worker drains its queue")
        .unwrap();
    assert!(queued);

    // Every accepted packet is forwarded; the drops are the two refusals.
    wait_long(&node, |s| s.forwarded == 5).await;
    let s = node.stats();
    assert_eq!(s.received, 7);
    assert_eq!(s.dropped_overload, 2);
    assert_eq!(s.received, accounted(&s));
    assert_eq!((s.inbound_depth, s.delay_depth), (0, 0));
    let sent = gate.sent.lock().unwrap();
    assert_eq!(sent.len(), 5);
    assert!(
        sent.iter()
            .all(|(hop, p)| *hop == NodeAddress::from_bytes([2; 32])
                && p.len() == config.packet_len())
    );
}

/// A packet asking its first hop for a hold longer than
/// `NodeConfig::max_delay` is dropped and counted as
/// `dropped_delay_too_long`; a hold of exactly the maximum is still
/// accepted and forwarded, as is a packet with no hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_over_the_maximum_is_dropped_and_counted() {
    let config = PacketConfig::default();
    let secret = StaticSecret::from([71u8; 32]);
    let key = PublicKey::from(&secret);
    let recorder = Arc::new(Recorder::default());
    let mut node_config = NodeConfig::new(config).with_workers(1);
    node_config.max_delay = Duration::from_millis(200);
    let (node, _deliveries) =
        MixNode::start(node_config, 0, secret, replay(), recorder.clone()).unwrap();
    let inbound = node.inbound();

    let too_long = delayed_packet_for(&key, &config, Duration::from_secs(30));
    let just_over = delayed_packet_for(
        &key,
        &config,
        Duration::from_millis(200) + Duration::from_nanos(1),
    );
    assert!(inbound.deliver(too_long).await);
    assert!(inbound.deliver(just_over).await);
    wait_for(&node, |s| s.dropped_delay_too_long == 2).await;

    let at_max = delayed_packet_for(&key, &config, Duration::from_millis(200));
    let none = delayed_packet_for(&key, &config, Duration::ZERO);
    assert!(inbound.deliver(at_max).await);
    assert!(inbound.deliver(none).await);
    wait_long(&node, |s| s.forwarded == 2).await;

    let s = node.stats();
    assert_eq!(s.received, 4);
    assert_eq!(s.dropped_delay_too_long, 2);
    assert_eq!(s.received, accounted(&s));
    assert_eq!(s.delay_depth, 0);
    assert_eq!(recorder.0.lock().unwrap().len(), 2);
}

/// A transport that fails with a fixed error other than `Full`.
struct Failing(TransportError);
impl PacketTransport for Failing {
    fn send(&self, _: NodeAddress, _: Packet) -> Result<(), TransportError> {
        Err(self.0.clone())
    }
}

/// A transport that cannot reach the next hop (unknown peer, closed) is
/// counted as `dropped_send_failed`, not as overload, whether the packet
/// is sent straight from a worker or after a hold in the delay stage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_transport_is_counted_as_send_failure() {
    let config = PacketConfig::default();
    for (i, error) in [
        TransportError::UnknownPeer(NodeAddress::from_bytes([2; 32])),
        TransportError::Closed,
    ]
    .into_iter()
    .enumerate()
    {
        let secret = StaticSecret::from([72 + i as u8; 32]);
        let key = PublicKey::from(&secret);
        let (node, _deliveries) = MixNode::start(
            NodeConfig::new(config).with_workers(1),
            0,
            secret,
            replay(),
            Arc::new(Failing(error.clone())),
        )
        .unwrap();
        let inbound = node.inbound();
        assert!(
            inbound
                .deliver(delayed_packet_for(&key, &config, Duration::ZERO))
                .await
        );
        assert!(
            inbound
                .deliver(delayed_packet_for(&key, &config, Duration::from_millis(5)))
                .await
        );
        wait_long(&node, |s| s.dropped_send_failed == 2).await;
        let s = node.stats();
        assert_eq!(
            (s.received, s.forwarded, s.dropped_overload),
            (2, 0, 0),
            "{error:?}"
        );
        assert_eq!(s.received, accounted(&s), "{error:?}");
        assert_eq!(s.delay_depth, 0, "{error:?}");
    }
}

/// `delay_depth` shows the packets held in the delay stage: three packets
/// held for seconds are counted there (and not forwarded) while a packet
/// without a hold goes straight through; once their hold is over they are
/// forwarded and the depth is back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_depth_counts_held_packets_until_they_leave() {
    let config = PacketConfig::default();
    let secret = StaticSecret::from([75u8; 32]);
    let key = PublicKey::from(&secret);
    let recorder = Arc::new(Recorder::default());
    let (node, _deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(1),
        0,
        secret,
        replay(),
        recorder.clone(),
    )
    .unwrap();
    let inbound = node.inbound();
    assert_eq!(node.stats().delay_depth, 0);

    // Long enough that the test sees them held even on a loaded machine.
    let hold = Duration::from_secs(10);
    for _ in 0..3 {
        assert!(
            inbound
                .deliver(delayed_packet_for(&key, &config, hold))
                .await
        );
    }
    assert!(
        inbound
            .deliver(delayed_packet_for(&key, &config, Duration::ZERO))
            .await
    );
    wait_for(&node, |s| s.delay_depth == 3 && s.forwarded == 1).await;
    let s = node.stats();
    assert_eq!((s.received, s.delay_depth, s.forwarded), (4, 3, 1));
    assert_eq!(recorder.0.lock().unwrap().len(), 1);

    // After the hold they leave and nothing is held any more.
    wait_long(&node, |s| s.forwarded == 4).await;
    wait_long(&node, |s| s.delay_depth == 0).await;
    let s = node.stats();
    assert_eq!((s.received, s.forwarded, s.delay_depth), (4, 4, 0));
    assert_eq!(s.received, accounted(&s));
    assert_eq!(recorder.0.lock().unwrap().len(), 4);
}

/// A full replay filter never panics: once it holds as many tags as it was
/// sized for, fresh packets are refused and counted as `dropped_replay_full`
/// (the filter counts them too), while a replay of a recorded packet is
/// still told apart and counted as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_replay_filter_refuses_and_counts_fresh_packets() {
    let config = PacketConfig::default();
    let secret = StaticSecret::from([77u8; 32]);
    let key = PublicKey::from(&secret);
    let recorder = Arc::new(Recorder::default());
    let (node, _deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(1),
        0,
        secret,
        ReplayFilter::in_memory(0, &ReplayConfig::new(2)).unwrap(),
        recorder.clone(),
    )
    .unwrap();
    let inbound = node.inbound();
    let packets: Vec<Vec<u8>> = (0..4).map(|_| packet_for(&key, &config)).collect();
    for p in &packets {
        assert!(inbound.deliver(p.clone()).await);
    }
    assert!(inbound.deliver(packets[0].clone()).await);
    wait_for(&node, |s| s.received == 5 && accounted(s) == 5).await;
    let s = node.stats();
    assert_eq!(
        (s.forwarded, s.dropped_replay_full, s.replayed),
        (2, 2, 1),
        "{s:?}"
    );
    let r = node.replay_stats();
    assert_eq!((r.inserted, r.capacity, r.refused_full), (2, 2, 2), "{r:?}");
    assert_eq!(recorder.0.lock().unwrap().len(), 2);
}

/// The TCP transport's bounds: a packet for one peer more than `max_peers`
/// is refused as `Full`; towards a peer that never reads, the queue stops
/// at `peer_queue` packets (once the kernel's socket buffers are full) and
/// further sends are refused as `Full`, never buffered without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_transport_bounds_its_peers_and_its_queues() {
    use tokio::net::TcpListener;
    let config = PacketConfig::default();
    let codec = FrameCodec::new(&config);
    let key = PublicKey::from(&StaticSecret::from([78u8; 32]));
    let packet = Packet::from_bytes(packet_for(&key, &config), &config).unwrap();
    // Accepts and then never reads.
    let sink = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = sink.accept().await {
            held.push(s);
        }
    });
    let mut tcp = TcpConfig::default();
    tcp.peer_queue = 2;
    tcp.max_peers = 1;
    let transport = fog_mix::TcpTransport::new(codec, tcp);
    let (a, b) = (
        NodeAddress::from_bytes([0xa1; 32]),
        NodeAddress::from_bytes([0xb2; 32]),
    );
    transport.set_peer(a, sink_addr);
    transport.set_peer(b, "127.0.0.1:9".parse().unwrap());
    transport.send(a, packet.clone()).unwrap();
    assert!(matches!(
        transport.send(b, packet.clone()),
        Err(TransportError::Full)
    ));

    // About 10 MB of frames at most fit in the two sockets' buffers; the
    // queue fills after them.
    let mut refused = None;
    for i in 0..20_000 {
        match transport.send(a, packet.clone()) {
            Ok(()) => {}
            Err(TransportError::Full) => {
                refused = Some(i);
                break;
            }
            Err(e) => panic!("{e}"),
        }
        if i % 64 == 0 {
            // Let the writer move what it can into the socket.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert!(
        refused.is_some(),
        "20,000 packets queued towards a stalled peer"
    );
    assert!(transport.pending() <= 2, "{}", transport.pending());
    keep.abort();
}

/// `listen` serves at most `max_connections` connections: a further one is
/// closed on accept, and once a served connection ends a new one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_serves_at_most_max_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let config = PacketConfig::default();
    let codec = FrameCodec::new(&config);
    let secret = StaticSecret::from([79u8; 32]);
    let key = PublicKey::from(&secret);
    let (node, _deliveries) = MixNode::start(
        NodeConfig::new(config).with_workers(1),
        0,
        secret,
        replay(),
        Arc::new(Recorder::default()),
    )
    .unwrap();
    let mut tcp = TcpConfig::default();
    tcp.max_connections = 1;
    let listener = fog_mix::listen("127.0.0.1:0".parse().unwrap(), codec, tcp, node.inbound())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let mut first = TcpStream::connect(addr).await.unwrap();
    // The first is served: a frame on it arrives.
    first
        .write_all(&codec.encode(&packet_for(&key, &config)).unwrap())
        .await
        .unwrap();
    wait_for(&node, |s| s.received == 1).await;
    // The second is closed at once: its read ends (EOF or reset).
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let ended = tokio::time::timeout(Duration::from_secs(30), second.read(&mut byte))
        .await
        .expect("the connection over the limit is closed");
    assert!(matches!(ended, Ok(0) | Err(_)), "{ended:?}");
    // The first goes on, and when it ends a new one is served.
    drop(first);
    let mut served = false;
    for _ in 0..300 {
        let mut third = TcpStream::connect(addr).await.unwrap();
        let _ = third
            .write_all(&codec.encode(&packet_for(&key, &config)).unwrap())
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if node.stats().received == 2 {
            served = true;
            break;
        }
    }
    assert!(served, "no connection served after the first ended");
    let s = node.stats();
    assert_eq!(s.received, 2);
}
