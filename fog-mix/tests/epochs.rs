//! Key epochs: rotation with an overlap window, one replay filter per key.

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    Destination, DestinationAddress, EpochError, EpochKeys, NodeAddress, OutgoingPacket,
    PacketBuilder, PacketConfig, PrivacyLevel, ProcessError, Processed, ReplayConfig, ReplayFilter,
    RouteNode,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn filter(epoch: u64) -> ReplayFilter {
    ReplayFilter::in_memory(epoch, &ReplayConfig::new(100)).unwrap()
}

fn packet_for(keys: &EpochKeys, rng: &mut ChaCha20Rng) -> OutgoingPacket {
    let route = [RouteNode::new(
        NodeAddress::from_bytes([1; 32]),
        keys.current().public_key(),
    )];
    PacketBuilder::new(PacketConfig::default())
        .unwrap()
        .build(
            PrivacyLevel::Public,
            &route,
            Destination::new(DestinationAddress::from_bytes([2; 32]), [0; 16]),
            b"m",
            rng,
        )
        .unwrap()
}

#[test]
fn packets_for_the_previous_key_survive_a_rotation_until_the_overlap_closes() {
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let config = PacketConfig::default();
    let mut keys = EpochKeys::new(
        1,
        StaticSecret::random_from_rng(&mut rng),
        config,
        filter(1),
    )
    .unwrap();
    let old = packet_for(&keys, &mut rng).packet;
    let old_twice = packet_for(&keys, &mut rng).packet;

    assert!(
        keys.rotate(2, StaticSecret::random_from_rng(&mut rng), filter(2))
            .unwrap()
            .is_none()
    );
    assert_eq!((keys.current_epoch(), keys.previous_epoch()), (2, Some(1)));
    let new = packet_for(&keys, &mut rng).packet;

    // in flight across the rotation: processed with the old key, once
    assert!(matches!(
        keys.process(&old),
        Ok((1, Processed::Deliver { .. }))
    ));
    assert!(matches!(keys.process(&old), Err(ProcessError::Replayed)));
    assert!(matches!(
        keys.process(&new),
        Ok((2, Processed::Deliver { .. }))
    ));
    assert_eq!(keys.replay_filter(1).unwrap().stats().replays, 1);
    assert_eq!(keys.replay_filter(2).unwrap().stats().inserted, 1);

    let retired = keys.close_overlap().unwrap();
    assert_eq!(retired.epoch(), 1);
    assert!(matches!(
        keys.process(&old_twice),
        Err(ProcessError::Unauthenticated)
    ));
}

#[test]
fn rotation_retires_the_oldest_and_refuses_going_back() {
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let config = PacketConfig::default();
    let mut keys = EpochKeys::new(
        5,
        StaticSecret::random_from_rng(&mut rng),
        config,
        filter(5),
    )
    .unwrap();
    assert_eq!(
        keys.rotate(5, StaticSecret::random_from_rng(&mut rng), filter(5))
            .unwrap_err(),
        EpochError::NotAfter { current: 5, new: 5 }
    );
    assert_eq!(
        keys.rotate(6, StaticSecret::random_from_rng(&mut rng), filter(7))
            .unwrap_err(),
        EpochError::FilterEpoch { key: 6, filter: 7 }
    );
    assert_eq!(keys.current_epoch(), 5);
    keys.rotate(6, StaticSecret::random_from_rng(&mut rng), filter(6))
        .unwrap();
    let retired = keys
        .rotate(7, StaticSecret::random_from_rng(&mut rng), filter(7))
        .unwrap()
        .unwrap();
    assert_eq!(retired.epoch(), 5);
    assert_eq!((keys.current_epoch(), keys.previous_epoch()), (7, Some(6)));
}
