//! Packets at every privacy level, through the public API and against plain
//! `sphinx-packet` calls.

use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    BuildError, Destination, DestinationAddress, NodeAddress, Packet, PacketBuilder, PacketConfig,
    PrivacyLevel, ProcessError, Processed, Processor, ReplayConfig, ReplayFilter, RouteNode,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{
    Destination as SDestination, DestinationAddressBytes, Node, NodeAddressBytes,
};
use sphinx_packet::version::{CURRENT_VERSION, PAYLOAD_KEYS_SEEDS_VERSION, Version};
use sphinx_packet::{ProcessedPacketData, SphinxPacket, SphinxPacketBuilder};

struct Mix {
    address: NodeAddress,
    secret: StaticSecret,
    processor: Processor,
    replay: ReplayFilter,
}

fn mixes(n: usize, config: PacketConfig, rng: &mut ChaCha20Rng) -> Vec<Mix> {
    (0..n)
        .map(|i| {
            let secret = StaticSecret::random_from_rng(&mut *rng);
            Mix {
                address: NodeAddress::from_bytes([i as u8 + 1; 32]),
                processor: Processor::new(secret.clone(), config).unwrap(),
                secret,
                replay: ReplayFilter::in_memory(0, &ReplayConfig::default()).unwrap(),
            }
        })
        .collect()
}

fn route(mixes: &[Mix]) -> Vec<RouteNode> {
    mixes
        .iter()
        .map(|m| RouteNode::new(m.address, m.processor.public_key()))
        .collect()
}

fn destination() -> Destination {
    Destination::new(DestinationAddress::from_bytes([0xd5; 32]), [7; 16])
}

/// Sends `packet` through `mixes` (looked up by address), checking the size
/// at every hop; returns the delivered message and the delays the mixes saw.
fn run(
    mixes: &mut [Mix],
    first_hop: NodeAddress,
    packet: Packet,
    config: &PacketConfig,
    version: Version,
) -> (Vec<u8>, Vec<Duration>) {
    let (mut next, mut packet) = (first_hop, packet);
    let mut delays = Vec::new();
    for _ in 0..mixes.len() {
        assert_eq!(packet.len(), config.packet_len());
        let mix = mixes
            .iter_mut()
            .find(|m| m.address == next)
            .expect("known hop");
        // every hop sees the same Sphinx version, whatever the level or part
        let plain = SphinxPacket::from_bytes(packet.as_bytes())
            .unwrap()
            .process(&mix.secret)
            .unwrap();
        assert_eq!(plain.version, version);
        match mix.processor.process(&packet, &mut mix.replay).unwrap() {
            Processed::Forward {
                next_hop,
                delay,
                packet: p,
            } => {
                delays.push(delay);
                (next, packet) = (next_hop, p);
            }
            Processed::Deliver {
                destination: d,
                identifier,
                message,
            } => {
                assert_eq!(d, destination().address());
                assert_eq!(identifier, destination().identifier());
                return (message, delays);
            }
            _ => unreachable!(),
        }
    }
    panic!("packet was not delivered within the route");
}

#[test]
fn every_level_delivers_with_one_packet_size_and_the_senders_delays() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let builder = PacketBuilder::new(config).unwrap();
    for level in PrivacyLevel::ALL {
        let mut mixes = mixes(level.hops(), config, &mut rng);
        let message = format!("a {level} message").into_bytes();
        let out = builder
            .build(level, &route(&mixes), destination(), &message, &mut rng)
            .unwrap();
        assert_eq!(out.packet.len(), config.packet_len(), "{level}");
        assert_eq!(out.delays.len(), level.hops() - 1, "{level}");
        let (got, delays) = run(
            &mut mixes,
            out.first_hop,
            out.packet,
            &config,
            PAYLOAD_KEYS_SEEDS_VERSION,
        );
        assert_eq!(got, message, "{level}");
        assert_eq!(delays, out.delays, "{level}");
    }
}

#[test]
fn documented_capacities_hold_at_the_default_payload_size() {
    let config = PacketConfig::default();
    assert_eq!(config.payload_size, 2048);
    assert_eq!(fog_mix::HEADER_LEN, 348);
    assert_eq!(config.packet_len(), 2396);
    let documented = [
        (PrivacyLevel::Public, 2031),
        (PrivacyLevel::Private, 2031),
        (PrivacyLevel::Confidential, 2031),
        (PrivacyLevel::Secret, 1610),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let builder = PacketBuilder::new(config).unwrap();
    for (level, capacity) in documented {
        assert_eq!(level.payload_capacity(config.payload_size), capacity);
        assert_eq!(level.payload_capacity(config.payload_size), capacity);
        let mut mixes = mixes(level.hops(), config, &mut rng);
        // a message of exactly the capacity arrives intact ...
        let message: Vec<u8> = (0..capacity).map(|i| (i % 251) as u8).collect();
        let out = builder
            .build(level, &route(&mixes), destination(), &message, &mut rng)
            .unwrap();
        assert_eq!(
            run(
                &mut mixes,
                out.first_hop,
                out.packet,
                &config,
                PAYLOAD_KEYS_SEEDS_VERSION
            )
            .0,
            message
        );
        // ... and one byte more is refused
        let err = builder
            .build(
                level,
                &route(&mixes),
                destination(),
                &[0; 1][..].repeat(capacity + 1),
                &mut rng,
            )
            .unwrap_err();
        assert!(matches!(err, BuildError::MessageTooLong { .. }), "{err}");
    }
}

#[test]
fn capacity_follows_a_configured_payload_size() {
    let config = PacketConfig::default().with_payload_size(4096);
    assert_eq!(
        PrivacyLevel::Private.payload_capacity(config.payload_size),
        4096 - 17
    );
    assert_eq!(
        PrivacyLevel::Secret.payload_capacity(config.payload_size),
        4096 - 17 - 421
    );
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut mixes = mixes(7, config, &mut rng);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Secret,
            &route(&mixes),
            destination(),
            b"big",
            &mut rng,
        )
        .unwrap();
    assert_eq!(out.packet.len(), 348 + 4096);
    assert_eq!(
        run(
            &mut mixes,
            out.first_hop,
            out.packet,
            &config,
            PAYLOAD_KEYS_SEEDS_VERSION
        )
        .0,
        b"big"
    );
    assert!(
        PacketConfig::default()
            .with_payload_size(100)
            .validate()
            .is_err()
    );
}

#[test]
fn wrong_route_length_is_refused() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let mixes = mixes(4, config, &mut rng);
    let err = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Private,
            &route(&mixes),
            destination(),
            b"x",
            &mut rng,
        )
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::RouteLength {
            level: PrivacyLevel::Private,
            expected: 3,
            got: 4
        }
    );
}

fn sphinx_node(m: &Mix) -> Node {
    Node::new(
        NodeAddressBytes::from_bytes(*m.address.as_bytes()),
        PublicKey::from(&m.secret),
    )
}

#[test]
fn a_fog_mix_packet_is_processed_by_plain_sphinx_packet() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let mixes = mixes(3, config, &mut rng);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Private,
            &route(&mixes),
            destination(),
            b"interop",
            &mut rng,
        )
        .unwrap();
    let mut packet = SphinxPacket::from_bytes(out.packet.as_bytes()).unwrap();
    for (hop, mix) in mixes.iter().enumerate() {
        match packet.process(&mix.secret).unwrap().data {
            ProcessedPacketData::ForwardHop {
                next_hop_packet,
                next_hop_address,
                delay,
            } => {
                assert_eq!(
                    next_hop_address.to_bytes(),
                    *mixes[hop + 1].address.as_bytes()
                );
                assert_eq!(delay.to_duration(), out.delays[hop]);
                assert_eq!(next_hop_packet.len(), config.packet_len());
                packet = next_hop_packet;
            }
            ProcessedPacketData::FinalHop {
                destination: d,
                identifier,
                payload,
            } => {
                assert_eq!(hop, 2);
                assert_eq!(d.as_bytes(), *destination().address().as_bytes());
                assert_eq!(identifier, destination().identifier());
                assert_eq!(payload.recover_plaintext().unwrap(), b"interop");
                return;
            }
        }
    }
    panic!("not delivered");
}

#[test]
fn a_plain_sphinx_packet_is_processed_by_fog_mix() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut mixes = mixes(3, config, &mut rng);
    let nodes: Vec<Node> = mixes.iter().map(sphinx_node).collect();
    let dest = SDestination::new(
        DestinationAddressBytes::from_bytes(*destination().address().as_bytes()),
        destination().identifier(),
    );
    let delays = [
        Delay::new_from_millis(3),
        Delay::new_from_millis(4),
        Delay::new_from_millis(0),
    ];
    let packet = SphinxPacketBuilder::new()
        .with_payload_size(config.payload_size)
        .build_packet(b"from plain sphinx", &nodes, &dest, &delays)
        .unwrap();
    let packet = Packet::from_bytes(packet.to_bytes(), &config).unwrap();
    let first = mixes[0].address;
    // a packet of sphinx-packet's default version
    let (message, seen) = run(&mut mixes, first, packet, &config, CURRENT_VERSION);
    assert_eq!(message, b"from plain sphinx");
    assert_eq!(seen, [Duration::from_millis(3), Duration::from_millis(4)]);
}

#[test]
fn a_replayed_packet_is_dropped_and_counted() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut mixes = mixes(1, config, &mut rng);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Public,
            &route(&mixes),
            destination(),
            b"once",
            &mut rng,
        )
        .unwrap();
    let mix = &mut mixes[0];
    assert!(matches!(
        mix.processor.process(&out.packet, &mut mix.replay),
        Ok(Processed::Deliver { .. })
    ));
    assert!(matches!(
        mix.processor.process(&out.packet, &mut mix.replay),
        Err(ProcessError::Replayed)
    ));
    assert_eq!(mix.replay.stats().replays, 1);
    assert_eq!(mix.replay.stats().inserted, 1);
}

#[test]
fn garbage_and_wrong_keys_are_errors_and_do_not_touch_the_replay_filter() {
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut mixes = mixes(2, config, &mut rng);
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Public,
            &route(&mixes[..1]),
            destination(),
            b"x",
            &mut rng,
        )
        .unwrap();
    // the packet is for mix 0, not mix 1: the MAC does not verify
    let mix = &mut mixes[1];
    assert!(matches!(
        mix.processor.process(&out.packet, &mut mix.replay),
        Err(ProcessError::Unauthenticated)
    ));
    let garbage = Packet::from_bytes(vec![0xab; config.packet_len()], &config).unwrap();
    assert!(mix.processor.process(&garbage, &mut mix.replay).is_err());
    assert_eq!(mix.replay.stats().inserted, 0);
    assert!(matches!(
        Packet::from_bytes(vec![0; 10], &config),
        Err(ProcessError::WrongLength { .. })
    ));
}

#[test]
fn privacy_levels_parse_and_print() {
    for level in PrivacyLevel::ALL {
        assert_eq!(level.to_string().parse::<PrivacyLevel>().unwrap(), level);
    }
    assert_eq!(
        "secret".parse::<PrivacyLevel>().unwrap(),
        PrivacyLevel::Secret
    );
    assert!("TOP".parse::<PrivacyLevel>().is_err());
    let hops: Vec<usize> = PrivacyLevel::ALL.iter().map(|l| l.hops()).collect();
    assert_eq!(hops, [1, 3, 5, 7]);
}
