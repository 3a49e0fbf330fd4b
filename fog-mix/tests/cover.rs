//! Cover traffic: Poisson schedules, and cover that looks like everything
//! else on the wire.

use std::time::Duration;

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    CoverRates, CoverSchedule, DROP_ADDRESS, Destination, DestinationAddress, FrameCodec,
    NodeAddress, PacketBuilder, PacketConfig, PrivacyLevel, Processed, Processor, ReplayConfig,
    ReplayFilter, RouteNode, Stream,
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
