//! Replay protection: persisted per-epoch Bloom filters.

use std::fs;

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    Destination, DestinationAddress, NodeAddress, PacketBuilder, PacketConfig, PrivacyLevel,
    ProcessError, Processed, Processor, ReplayConfig, ReplayError, ReplayFilter, ReplayVerdict,
    RouteNode,
};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn small() -> ReplayConfig {
    ReplayConfig::new(1_000)
}

fn tag(rng: &mut ChaCha20Rng) -> [u8; 32] {
    let mut t = [0u8; 32];
    rng.fill_bytes(&mut t);
    t
}

#[test]
fn a_packet_replayed_after_a_restart_is_still_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let config = PacketConfig::default();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let secret = StaticSecret::random_from_rng(&mut rng);
    let processor = Processor::new(secret, config).unwrap();
    let route = [RouteNode::new(
        NodeAddress::from_bytes([1; 32]),
        processor.public_key(),
    )];
    let dest = Destination::new(DestinationAddress::from_bytes([2; 32]), [0; 16]);
    let builder = PacketBuilder::new(config).unwrap();
    let first = builder
        .build(PrivacyLevel::Public, &route, dest, b"one", &mut rng)
        .unwrap()
        .packet;
    let second = builder
        .build(PrivacyLevel::Public, &route, dest, b"two", &mut rng)
        .unwrap()
        .packet;

    // Run 1: accept `first`, then "crash" (drop without saving).
    {
        let mut replay = ReplayFilter::open(dir.path(), 5, &small()).unwrap();
        assert!(matches!(
            processor.process(&first, &mut replay),
            Ok(Processed::Deliver { .. })
        ));
    }
    // Run 2: the journal still holds the tag. Accept `second`, save.
    {
        let mut replay = ReplayFilter::open(dir.path(), 5, &small()).unwrap();
        assert!(matches!(
            processor.process(&first, &mut replay),
            Err(ProcessError::Replayed)
        ));
        assert!(processor.process(&second, &mut replay).is_ok());
        replay.save().unwrap();
        assert_eq!(
            fs::metadata(ReplayFilter::journal_path(dir.path(), 5))
                .unwrap()
                .len(),
            0
        );
    }
    // Run 3: the snapshot holds both.
    let mut replay = ReplayFilter::open(dir.path(), 5, &small()).unwrap();
    assert_eq!(replay.stats().inserted, 2);
    for p in [&first, &second] {
        assert!(matches!(
            processor.process(p, &mut replay),
            Err(ProcessError::Replayed)
        ));
    }
    assert_eq!(replay.stats().replays, 2);
}

#[test]
fn a_full_filter_refuses_new_tags_and_counts_them() {
    let config = ReplayConfig::new(3);
    let mut filter = ReplayFilter::in_memory(0, &config).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let tags: Vec<[u8; 32]> = (0..5).map(|_| tag(&mut rng)).collect();
    for t in &tags[..3] {
        assert_eq!(filter.check_and_insert(t).unwrap(), ReplayVerdict::Fresh);
    }
    assert!(filter.is_full());
    assert_eq!(
        filter.check_and_insert(&tags[3]).unwrap(),
        ReplayVerdict::Full
    );
    assert_eq!(
        filter.check_and_insert(&tags[4]).unwrap(),
        ReplayVerdict::Full
    );
    // replays are still recognised while full
    assert_eq!(
        filter.check_and_insert(&tags[0]).unwrap(),
        ReplayVerdict::Replayed
    );
    let stats = filter.stats();
    assert_eq!(
        (stats.inserted, stats.refused_full, stats.replays),
        (3, 2, 1)
    );
}

#[test]
fn a_corrupt_or_resized_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let mut filter = ReplayFilter::open(dir.path(), 1, &small()).unwrap();
    filter.check_and_insert(&tag(&mut rng)).unwrap();
    filter.save().unwrap();
    drop(filter);

    let bigger = ReplayConfig::new(2_000);
    assert!(matches!(
        ReplayFilter::open(dir.path(), 1, &bigger),
        Err(ReplayError::Corrupt { .. })
    ));

    let path = ReplayFilter::snapshot_path(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        ReplayFilter::open(dir.path(), 1, &small()),
        Err(ReplayError::Corrupt { .. })
    ));
    fs::write(&path, &bytes[..10]).unwrap();
    assert!(matches!(
        ReplayFilter::open(dir.path(), 1, &small()),
        Err(ReplayError::Corrupt { .. })
    ));
}

#[test]
fn a_torn_journal_record_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    let t = tag(&mut rng);
    {
        let mut filter = ReplayFilter::open(dir.path(), 2, &small()).unwrap();
        filter.check_and_insert(&t).unwrap();
        filter.sync().unwrap();
    }
    let journal = ReplayFilter::journal_path(dir.path(), 2);
    let mut bytes = fs::read(&journal).unwrap();
    bytes.extend_from_slice(&[7; 10]);
    fs::write(&journal, &bytes).unwrap();
    let mut filter = ReplayFilter::open(dir.path(), 2, &small()).unwrap();
    assert_eq!(fs::metadata(&journal).unwrap().len(), 32);
    assert_eq!(
        filter.check_and_insert(&t).unwrap(),
        ReplayVerdict::Replayed
    );
    filter.remove().unwrap();
    assert!(!journal.exists());
}

#[test]
fn epochs_have_separate_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(15);
    let t = tag(&mut rng);
    let mut old = ReplayFilter::open(dir.path(), 7, &small()).unwrap();
    let mut new = ReplayFilter::open(dir.path(), 8, &small()).unwrap();
    assert_eq!(old.check_and_insert(&t).unwrap(), ReplayVerdict::Fresh);
    assert_eq!(new.check_and_insert(&t).unwrap(), ReplayVerdict::Fresh);
    old.remove().unwrap();
    assert!(!ReplayFilter::journal_path(dir.path(), 7).exists());
    assert!(ReplayFilter::journal_path(dir.path(), 8).exists());
}

#[test]
fn observed_false_positives_stay_within_the_target() {
    // 10,000 tags at 1e-6 then 200,000 fresh probes: 0.2 false positives
    // expected. The seed is fixed, so the count is deterministic.
    let config = ReplayConfig::new(10_000);
    let mut filter = ReplayFilter::in_memory(0, &config).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(16);
    for _ in 0..10_000 {
        filter.check_and_insert(&tag(&mut rng)).unwrap();
    }
    let false_positives = (0..200_000)
        .filter(|_| filter.contains(&tag(&mut rng)))
        .count();
    assert!(false_positives <= 2, "{false_positives} false positives");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn recorded_tags_are_always_replays(tags in proptest::collection::vec(any::<[u8; 32]>(), 1..200)) {
        let mut filter = ReplayFilter::in_memory(0, &small()).unwrap();
        for t in &tags {
            filter.check_and_insert(t).unwrap();
        }
        for t in &tags {
            prop_assert!(filter.contains(t));
            prop_assert_eq!(filter.check_and_insert(t).unwrap(), ReplayVerdict::Replayed);
        }
        prop_assert!(filter.stats().inserted <= tags.len() as u64);
    }

    #[test]
    fn snapshots_round_trip(tags in proptest::collection::vec(any::<[u8; 32]>(), 0..50)) {
        let dir = tempfile::tempdir().unwrap();
        let mut filter = ReplayFilter::open(dir.path(), 3, &small()).unwrap();
        for t in &tags {
            filter.check_and_insert(t).unwrap();
        }
        filter.save().unwrap();
        let stats = filter.stats();
        drop(filter);
        let reopened = ReplayFilter::open(dir.path(), 3, &small()).unwrap();
        prop_assert_eq!(reopened.stats().inserted, stats.inserted);
        for t in &tags {
            prop_assert!(reopened.contains(t));
        }
    }

    #[test]
    fn arbitrary_snapshot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(ReplayFilter::snapshot_path(dir.path(), 0), &bytes).unwrap();
        let _ = ReplayFilter::open(dir.path(), 0, &small());
    }
}
