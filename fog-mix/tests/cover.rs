//! Cover traffic: Poisson schedules, and cover that looks like everything
//! else on the wire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    CircuitPool, ClientError, CoverRates, CoverSchedule, DROP_ADDRESS, DescriptorBuilder,
    Destination, DestinationAddress, Directory, FrameCodec, MixClient, NodeAddress, NodeIdentity,
    Packet, PacketBuilder, PacketConfig, PacketTransport, PoolConfig, PrivacyLevel, Processed,
    Processor, ReplayConfig, ReplayFilter, ReplayVerdict, RouteNode, Sent, Stream, TransportError,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn each_stream_runs_at_its_poisson_rate() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let rates = CoverRates::new(10.0, 2.0, 0.5);
    let mut schedule = CoverSchedule::client(rates, Duration::ZERO, &mut rng);
    let horizon = Duration::from_secs(20_000);
    let (mut p, mut l, mut d) = (0u64, 0u64, 0u64);
    let mut last_payload = Duration::ZERO;
    let mut gaps = Vec::new();
    while let Some((at, stream)) = schedule.poll(horizon, &mut rng) {
        match stream {
            Stream::Payload => {
                p += 1;
                gaps.push(at.saturating_sub(last_payload).as_secs_f64());
                last_payload = at;
            }
            Stream::Loop => l += 1,
            Stream::Drop => d += 1,
            other => panic!("unexpected stream {other:?}"),
        }
    }
    let secs = horizon.as_secs_f64();
    // Counts of a Poisson process: mean rate*T, sd sqrt(rate*T); 5 sd bounds.
    for (count, rate) in [(p, 10.0), (l, 2.0), (d, 0.5)] {
        let mean = rate * secs;
        assert!(
            (count as f64 - mean).abs() < 5.0 * mean.sqrt(),
            "{count} events at rate {rate}"
        );
    }
    // Gaps are Exp(rate): coefficient of variation 1.
    let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let var = gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / gaps.len() as f64;
    let cv = var.sqrt() / m;
    assert!((cv - 1.0).abs() < 0.02, "coefficient of variation {cv}");
    // A zero rate never fires.
    let mut off = CoverSchedule::client(CoverRates::new(0.0, 0.0, 0.0), Duration::ZERO, &mut rng);
    assert_eq!(off.next_due(), Duration::MAX);
    assert!(off.poll(horizon, &mut rng).is_none());
}

#[test]
fn real_cover_and_reply_packets_look_alike_on_the_wire() {
    let config = PacketConfig::default();
    let codec = FrameCodec::new(&config);
    let processors: Vec<Processor> = (0..7u8)
        .map(|i| Processor::new(StaticSecret::from([i + 1; 32]), config).unwrap())
        .collect();
    let route: Vec<RouteNode> = processors
        .iter()
        .enumerate()
        .map(|(i, p)| RouteNode::new(NodeAddress::from_bytes([i as u8; 32]), p.public_key()))
        .collect();
    let builder = PacketBuilder::new(config).unwrap();
    let mut rng = rand::rng();
    let real = Destination::new(DestinationAddress::from_bytes([5; 32]), [1; 16]);
    let drop = Destination::new(DROP_ADDRESS, [0; 16]);
    let looped = Destination::new(DestinationAddress::from_bytes([6; 32]), [2; 16]);
    let mut packets = vec![
        builder
            .build(PrivacyLevel::Private, &route[..3], real, b"real", &mut rng)
            .unwrap(),
        builder
            .build(
                PrivacyLevel::Private,
                &route[..3],
                drop,
                &[0u8; 32],
                &mut rng,
            )
            .unwrap(),
        builder
            .build(
                PrivacyLevel::Private,
                &route[..3],
                looped,
                &[0u8; 32],
                &mut rng,
            )
            .unwrap(),
        builder
            .build(PrivacyLevel::Public, &route[..1], real, b"real", &mut rng)
            .unwrap(),
        builder
            .build(PrivacyLevel::Secret, &route, real, b"real", &mut rng)
            .unwrap(),
    ];
    let (block, _) = builder.reply_block(&route[..3], real, &mut rng).unwrap();
    packets.push(block.use_block(b"reply", &config).unwrap());
    for out in packets {
        let frame = codec.encode(out.packet.as_bytes()).unwrap();
        assert_eq!(frame.len(), codec.frame_len());
        // Same header bytes apart from the packet itself.
        assert_eq!(
            &frame[..8],
            &codec.encode(&vec![0; config.packet_len()]).unwrap()[..8]
        );
        let first = processors
            .iter()
            .zip(&route)
            .find(|(_, r)| r.address() == out.first_hop)
            .unwrap()
            .0;
        let mut replay = ReplayFilter::in_memory(0, &ReplayConfig::new(100)).unwrap();
        match first.process(&out.packet, &mut replay).unwrap() {
            Processed::Forward { packet, .. } => assert_eq!(packet.len(), config.packet_len()),
            // PUBLIC: the only hop delivers, as for any one-hop packet.
            Processed::Deliver { .. } => assert_eq!(out.delays.len(), 0),
            other => panic!("{other:?}"),
        }
    }
}

/// A transport that records what the client sends, after refusing as many
/// sends as its second field says.
#[derive(Default)]
struct Recorder(Mutex<Vec<(NodeAddress, Packet)>>, AtomicUsize);

impl PacketTransport for Recorder {
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        if self
            .1
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(TransportError::Closed);
        }
        self.0.lock().unwrap().push((next_hop, packet));
        Ok(())
    }
}

impl Recorder {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Three layers of two mixes, with every mix's processor, and a client over
/// them sending through a [`Recorder`]; its loop cover returns to `me`.
struct World {
    config: PacketConfig,
    processors: HashMap<NodeAddress, Processor>,
    recorder: Arc<Recorder>,
    client: MixClient,
    me: DestinationAddress,
}

fn world() -> World {
    let config = PacketConfig::default();
    let mut descriptors = Vec::new();
    let mut processors = HashMap::new();
    for i in 1..=6u8 {
        let secret = StaticSecret::from([i; 32]);
        let d = DescriptorBuilder::new(PublicKey::from(&secret), 1, format!("10.{i}.0.1:1789"))
            .layer((i - 1) % 3)
            .stake(10)
            .family(format!("op{i}"))
            .sign(&NodeIdentity::from_seed(&[i; 32]))
            .unwrap();
        processors.insert(d.node_address(), Processor::new(secret, config).unwrap());
        descriptors.push(d);
    }
    let (directory, rejected) = Directory::new(descriptors);
    assert!(rejected.is_empty());
    let recorder = Arc::new(Recorder::default());
    let me = DestinationAddress::from_bytes([0xc1; 32]);
    let client = MixClient::new(
        PacketBuilder::new(config).unwrap(),
        CircuitPool::new(directory, PoolConfig::default()),
        recorder.clone(),
        me,
    );
    World {
        config,
        processors,
        recorder,
        client,
        me,
    }
}

impl World {
    /// Peels the `index`th packet the client sent through the mixes of its
    /// route: its destination, the number of hops and the message.
    fn open(&self, index: usize) -> (DestinationAddress, usize, Vec<u8>) {
        let (mut hop, packet) = self.recorder.0.lock().unwrap()[index].clone();
        assert_eq!(packet.len(), self.config.packet_len());
        let mut bytes = packet.into_bytes();
        for hops in 1..=8 {
            let processor = self.processors.get(&hop).expect("a hop of the directory");
            match processor
                .process_with(&bytes, |_| Ok(ReplayVerdict::Fresh))
                .unwrap()
            {
                Processed::Forward {
                    next_hop, packet, ..
                } => {
                    hop = next_hop;
                    bytes = packet.into_bytes();
                }
                Processed::Deliver {
                    destination,
                    message,
                    ..
                } => return (destination, hops, message),
                other => panic!("{other:?}"),
            }
        }
        panic!("the packet never reached its last hop");
    }
}

/// A real message queued on the client does not go out when queued: it
/// waits for the next slot of the payload stream and goes out in that slot
/// instead of its drop cover (FIFO), one message per slot; the loop and
/// drop streams never carry it. With the queue empty again, payload slots
/// carry drop cover. The schedule is driven in virtual time, one event per
/// `tick`, and each event puts exactly one packet on the wire, so the
/// payload stream's packets are the same in number whether it carries
/// real messages or cover. Every packet is opened hop by hop to check what
/// it carries.
#[test]
fn a_queued_message_takes_a_payload_slot_instead_of_its_drop_cover() {
    let mut w = world();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut schedule =
        CoverSchedule::client(CoverRates::new(5.0, 1.0, 1.0), Duration::ZERO, &mut rng);
    let friend = Destination::new(DestinationAddress::from_bytes([0xf0; 32]), [7; 16]);
    // Runs the next event of the schedule; returns its stream's outcome.
    let step = |w: &mut World, schedule: &mut CoverSchedule, rng: &mut ChaCha20Rng| {
        let due = schedule.next_due();
        assert_ne!(due, Duration::MAX);
        let before = w.recorder.len();
        let sent = w.client.tick(schedule, due, rng);
        assert_eq!(sent.len(), 1, "one event per tick at its own time");
        assert_eq!(w.recorder.len(), before + 1, "one packet per event");
        (due, sent[0])
    };

    // Nothing queued: payload slots carry drop cover.
    let mut payload_slots = 0;
    let mut now = Duration::ZERO;
    while payload_slots < 3 {
        let (at, sent) = step(&mut w, &mut schedule, &mut rng);
        now = at;
        assert_ne!(sent, Sent::Real);
        if sent == Sent::PayloadCover {
            payload_slots += 1;
            let (destination, hops, message) = w.open(w.recorder.len() - 1);
            assert_eq!((destination, hops, message.len()), (DROP_ADDRESS, 3, 32));
        }
    }

    // Queued messages send nothing by themselves, nor does a tick before
    // the next event is due.
    let messages: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'm', i]).collect();
    let sent_before = w.recorder.len();
    for m in &messages {
        w.client
            .queue(PrivacyLevel::Private, friend, m.clone())
            .unwrap();
    }
    assert_eq!(w.client.queued(), 3);
    assert!(schedule.next_due() > now);
    assert!(w.client.tick(&mut schedule, now, &mut rng).is_empty());
    assert_eq!(w.recorder.len(), sent_before);
    assert_eq!(w.client.queued(), 3);

    // The next three payload slots carry them, in order; loop and drop
    // events in between leave the queue alone.
    let mut real = 0;
    let mut slots = 0;
    while slots < 6 {
        let queued = w.client.queued();
        let (_, sent) = step(&mut w, &mut schedule, &mut rng);
        let (destination, hops, message) = w.open(w.recorder.len() - 1);
        assert_eq!(hops, 3, "every packet takes a PRIVATE route");
        match sent {
            Sent::Real => {
                assert!(slots < 3, "a real message after the queue ran dry");
                assert_eq!(destination, friend.address());
                assert_eq!(message, messages[real]);
                assert_eq!(w.client.queued(), queued - 1);
                real += 1;
                slots += 1;
            }
            Sent::PayloadCover => {
                assert!(slots >= 3, "drop cover in a slot while a message waited");
                assert_eq!(destination, DROP_ADDRESS);
                assert_eq!(w.client.queued(), 0);
                slots += 1;
            }
            Sent::Loop => {
                assert_eq!(destination, w.me);
                assert_eq!(w.client.queued(), queued);
            }
            Sent::Drop => {
                assert_eq!(destination, DROP_ADDRESS);
                assert_eq!(w.client.queued(), queued);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(real, 3);
    assert_eq!(w.client.queued(), 0);
}

/// Real messages do not add packets: two clients following the same
/// Poisson schedule, one with messages queued and one with nothing to say,
/// send a packet at exactly the same events, the same number in all; the
/// only difference is that the first one's earliest payload slots carry
/// its messages where the other's carry drop cover.
#[test]
fn real_messages_replace_payload_cover_without_adding_packets() {
    let rates = CoverRates::new(10.0, 2.0, 2.0);
    let horizon = Duration::from_secs(4);
    let friend = Destination::new(DestinationAddress::from_bytes([0xf0; 32]), [7; 16]);
    // One client's run over the horizon: every event's time, stream and
    // outcome, the schedule drawn from a seed of its own.
    let run = |queued: usize| {
        let mut w = world();
        for i in 0..queued {
            w.client
                .queue(PrivacyLevel::Private, friend, vec![b'r', i as u8])
                .unwrap();
        }
        let mut schedule_rng = ChaCha20Rng::seed_from_u64(33);
        let mut rng = ChaCha20Rng::seed_from_u64(34);
        let mut schedule = CoverSchedule::client(rates, Duration::ZERO, &mut schedule_rng);
        let mut events = Vec::new();
        while let Some((at, stream)) = schedule.poll(horizon, &mut schedule_rng) {
            events.push((at, stream, w.client.on_event(stream, at, &mut rng).unwrap()));
        }
        (events, w.recorder.len(), w.client.queued())
    };
    let (quiet, quiet_packets, _) = run(0);
    let (talking, talking_packets, left) = run(5);

    let payload_slots = quiet
        .iter()
        .filter(|(_, stream, _)| *stream == Stream::Payload)
        .count();
    assert!(payload_slots >= 5, "{payload_slots} payload slots");
    assert_eq!(left, 0, "every message found a slot");
    assert_eq!(quiet_packets, quiet.len(), "one packet per event");
    assert_eq!(talking_packets, quiet_packets, "messages add no packets");
    assert_eq!(talking.len(), quiet.len());
    let mut real = 0;
    for ((at_q, stream_q, sent_q), (at_t, stream_t, sent_t)) in quiet.iter().zip(&talking) {
        assert_eq!((at_q, stream_q), (at_t, stream_t), "the same schedule");
        match stream_q {
            Stream::Payload => {
                assert_eq!(*sent_q, Sent::PayloadCover);
                if real < 5 {
                    assert_eq!(*sent_t, Sent::Real);
                    real += 1;
                } else {
                    assert_eq!(*sent_t, Sent::PayloadCover);
                }
            }
            _ => assert_eq!(sent_q, sent_t),
        }
    }
    assert_eq!(real, 5);
}

/// A real message whose send fails (here the transport refuses it) is not
/// lost: it stays at the head of the queue and goes out in the next payload
/// slot. A message too long for its level is refused when queued, so it can
/// never block the queue.
#[test]
fn a_real_message_survives_a_failed_send_and_an_oversized_one_is_refused_when_queued() {
    let mut w = world();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let friend = Destination::new(DestinationAddress::from_bytes([0xf1; 32]), [3; 16]);
    let too_long = vec![0u8; PrivacyLevel::Private.payload_capacity(w.config.payload_size) + 1];
    assert!(matches!(
        w.client.queue(PrivacyLevel::Private, friend, too_long),
        Err(ClientError::Build(_))
    ));
    assert_eq!(w.client.queued(), 0);

    w.client
        .queue(PrivacyLevel::Private, friend, b"keep me".to_vec())
        .unwrap();
    w.recorder.1.store(1, Ordering::SeqCst);
    let failed = w.client.on_event(Stream::Payload, Duration::ZERO, &mut rng);
    assert!(
        matches!(failed, Err(ClientError::Transport(_))),
        "{failed:?}"
    );
    assert_eq!(w.client.queued(), 1, "the message is still queued");
    assert_eq!(w.recorder.len(), 0);

    let sent = w
        .client
        .on_event(Stream::Payload, Duration::from_millis(100), &mut rng)
        .unwrap();
    assert_eq!(sent, Sent::Real);
    assert_eq!(w.client.queued(), 0);
    let (destination, _, message) = w.open(0);
    assert_eq!(destination, friend.address());
    assert_eq!(message, b"keep me");
}
