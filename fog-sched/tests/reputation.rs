//! Beta reputation: ranking reacts fast, the store survives a restart.

use fog_sched::model::NodeId;
use fog_sched::reputation::{BetaReputation, ReputationConfig, ReputationStore, TaskOutcome};

/// A deterministic stream with `percent`% successes (spread evenly).
fn outcome(percent: u32, k: u32) -> TaskOutcome {
    // Success unless the running success count would exceed the rate.
    if (k + 1) * percent / 100 > k * percent / 100 {
        TaskOutcome::Success
    } else {
        TaskOutcome::Failure
    }
}

#[test]
fn a_degrading_node_falls_below_healthy_ones_within_20_observations() {
    let mut store = ReputationStore::in_memory(ReputationConfig::default()).unwrap();
    let degrading = NodeId::new(0);
    let healthy: Vec<NodeId> = (1..=5).map(NodeId::new).collect();
    for k in 0..200 {
        store.record(degrading, outcome(99, k)).unwrap();
        for &h in &healthy {
            store
                .record(h, outcome(95, k + h.get() as u32 * 7))
                .unwrap();
        }
    }
    // At 99% it ranks first.
    assert_eq!(store.ranking().unwrap()[0].0, degrading);
    let mut fell_after = None;
    for k in 0..20 {
        store.record(degrading, outcome(50, k)).unwrap();
        for &h in &healthy {
            store
                .record(h, outcome(95, 200 + k + h.get() as u32 * 7))
                .unwrap();
        }
        let ranking = store.ranking().unwrap();
        if ranking.last().unwrap().0 == degrading && fell_after.is_none() {
            fell_after = Some(k + 1);
        }
    }
    let fell_after = fell_after.expect("the degrading node fell to the bottom");
    assert!(fell_after <= 20);
    // And it stays below every healthy node at the end.
    let ranking = store.ranking().unwrap();
    assert_eq!(ranking.last().unwrap().0, degrading, "{ranking:?}");
}

#[test]
fn outcomes_weigh_differently_and_uncertainty_shrinks() {
    let config = ReputationConfig::default();
    let mut fresh = BetaReputation::new();
    assert_eq!(fresh.expected(), 0.5);
    assert_eq!(fresh.uncertainty(), 1.0);
    let before = fresh.uncertainty();
    fresh.observe(TaskOutcome::Success, &config);
    assert!(fresh.expected() > 0.5 && fresh.uncertainty() < before);
    let mut timeout = BetaReputation::new();
    let mut failure = BetaReputation::new();
    let mut mismatch = BetaReputation::new();
    timeout.observe(TaskOutcome::Timeout, &config);
    failure.observe(TaskOutcome::Failure, &config);
    mismatch.observe(TaskOutcome::VerificationMismatch, &config);
    assert!(timeout.expected() > failure.expected());
    assert!(failure.expected() > mismatch.expected());
    assert!(mismatch.variance() > 0.0);
}

#[test]
fn the_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reputation.sqlite");
    let expected = {
        let mut store = ReputationStore::open(&path, ReputationConfig::default()).unwrap();
        store.record(NodeId::new(7), TaskOutcome::Success).unwrap();
        store.record(NodeId::new(7), TaskOutcome::Failure).unwrap();
        store
            .record(NodeId::new(u64::MAX), TaskOutcome::Success)
            .unwrap()
    };
    let store = ReputationStore::open(&path, ReputationConfig::default()).unwrap();
    assert_eq!(store.get(NodeId::new(u64::MAX)).unwrap(), expected);
    assert_eq!(store.get(NodeId::new(7)).unwrap().observations(), 2);
    assert_eq!(store.get(NodeId::new(8)).unwrap(), BetaReputation::new());
    assert_eq!(store.ranking().unwrap().len(), 2);
}

#[test]
fn bad_settings_and_files_are_errors() {
    let mut config = ReputationConfig::default();
    config.forgetting = 0.0;
    assert!(ReputationStore::in_memory(config).is_err());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.sqlite");
    std::fs::write(&path, b"this is not a database, not even close, 0123456789").unwrap();
    assert!(ReputationStore::open(&path, ReputationConfig::default()).is_err());
}
