//! Signed contribution records and the bounded sink.

use fog_harvest::{
    ContributionError, ContributionRecord, ContributionSigner, ContributionSink, EnergyMeter,
    PowerModel, QueueSink, SIGNING_CONTEXT, SignedContribution, SinkError, Verification,
};
use proptest::prelude::*;

fn record(sequence: u64) -> ContributionRecord {
    ContributionRecord::new(
        sequence,
        1_700_000_000,
        1_700_003_600,
        vec!["task-a".to_owned(), "task-b".to_owned()],
        1800.0,
        12_345.5,
        Verification::Pending,
    )
    .expect("valid record")
}

#[test]
fn records_sign_verify_and_round_trip() {
    let signer = ContributionSigner::from_seed(&[7u8; 32]);
    let signed = signer.sign(record(1));
    signed.verify().expect("verifies");
    assert_eq!(signed.public_key(), signer.public_key());
    let decoded = SignedContribution::from_bytes(&signed.to_bytes()).expect("decodes");
    assert_eq!(decoded, signed);
    decoded.verify().expect("decoded record verifies");
}

#[test]
fn tampering_breaks_the_signature() {
    let signer = ContributionSigner::from_seed(&[7u8; 32]);
    let signed = signer.sign(record(1));
    let mut bytes = signed.to_bytes();
    // Flip a bit in the cpu-seconds field (after version, key, sequence and period).
    bytes[1 + 32 + 24] ^= 0x01;
    let forged = SignedContribution::from_bytes(&bytes).expect("still well-formed");
    assert_eq!(forged.verify(), Err(ContributionError::BadSignature));
    // Upgrading the verification status needs a new signature.
    let verified = signed
        .record()
        .clone()
        .with_verification(Verification::Verified);
    let resigned = signer.sign(verified);
    resigned.verify().expect("re-signed");
    assert_ne!(resigned.to_bytes(), signed.to_bytes());
}

#[test]
fn the_signature_is_domain_separated() {
    assert_eq!(SIGNING_CONTEXT, b"fog-harvest/contribution/v1");
    // The same key signing the same bytes under another context does not verify as a contribution.
    let seed = [9u8; 32];
    let signer = ContributionSigner::from_seed(&seed);
    let signed = signer.sign(record(2));
    let mut bytes = signed.to_bytes();
    let message_len = bytes.len() - 64;
    let keypair = schnorrkel::MiniSecretKey::from_bytes(&seed)
        .expect("seed")
        .expand_to_keypair(schnorrkel::ExpansionMode::Ed25519);
    let other =
        keypair.sign(schnorrkel::signing_context(b"fog-dao/vote/v1").bytes(&bytes[..message_len]));
    bytes[message_len..].copy_from_slice(&other.to_bytes());
    let foreign = SignedContribution::from_bytes(&bytes).expect("well-formed");
    assert_eq!(foreign.verify(), Err(ContributionError::BadSignature));
}

#[test]
fn invalid_records_are_refused() {
    assert!(ContributionRecord::new(1, 10, 5, vec![], 0.0, 0.0, Verification::Pending).is_err());
    assert!(
        ContributionRecord::new(1, 0, 5, vec![], f64::NAN, 0.0, Verification::Pending).is_err()
    );
    assert!(
        ContributionRecord::new(
            1,
            0,
            5,
            vec![String::new()],
            1.0,
            0.0,
            Verification::Pending
        )
        .is_err()
    );
    assert!(
        ContributionRecord::new(
            1,
            0,
            5,
            vec!["x".repeat(129)],
            1.0,
            0.0,
            Verification::Pending
        )
        .is_err()
    );
}

#[test]
fn a_full_sink_hands_the_record_back() {
    let signer = ContributionSigner::from_seed(&[1u8; 32]);
    let mut sink = QueueSink::new(2);
    sink.deliver(signer.sign(record(1))).expect("room");
    sink.deliver(signer.sign(record(2))).expect("room");
    match sink.deliver(signer.sign(record(3))) {
        Err(SinkError::Full { capacity, record }) => {
            assert_eq!(capacity, 2);
            assert_eq!(record.record().sequence(), 3);
        }
        other => panic!("expected Full, got {other:?}"),
    }
    let drained: Vec<u64> = sink.drain().iter().map(|r| r.record().sequence()).collect();
    assert_eq!(drained, vec![1, 2]);
    assert!(sink.is_empty());
}

#[test]
fn energy_per_task_feeds_a_record() {
    let model = PowerModel::new(10.0, 50.0, 4).expect("model");
    assert_eq!(model.watts(0.5), 30.0);
    let mut meter = EnergyMeter::new(model, 2);
    assert!(meter.charge("task-a", 400.0));
    assert!(meter.charge("task-b", 100.0));
    assert!(
        !meter.charge("task-c", 1.0),
        "full: refused, not dropped silently"
    );
    assert!(meter.charge("task-a", 400.0));
    // 800 CPU-seconds on 4 CPUs = 200 s at full load above idle: 40 W × 200 s.
    assert_eq!(meter.usage("task-a").map(|u| u.joules), Some(8000.0));
    let usage = meter.take();
    let ids = usage.iter().map(|(id, _)| id.clone()).collect();
    let cpu = usage.iter().map(|(_, u)| u.cpu_seconds).sum();
    let joules = usage.iter().map(|(_, u)| u.joules).sum();
    let r =
        ContributionRecord::new(5, 0, 60, ids, cpu, joules, Verification::Pending).expect("record");
    assert_eq!(r.cpu_seconds(), 900.0);
    assert_eq!(r.energy_joules(), 9000.0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip(
        seed in any::<[u8; 32]>(),
        seq in any::<u64>(),
        start in 0u64..u64::MAX / 2,
        len in 0u64..1_000_000,
        tasks in prop::collection::vec("[a-z0-9-]{1,40}", 0..8),
        cpu in 0.0..1e9f64,
        joules in 0.0..1e12f64,
        status in prop::sample::select(vec![Verification::Pending, Verification::Verified, Verification::Rejected]),
    ) {
        let r = ContributionRecord::new(seq, start, start + len, tasks, cpu, joules, status).expect("valid");
        let signed = ContributionSigner::from_seed(&seed).sign(r);
        let decoded = SignedContribution::from_bytes(&signed.to_bytes()).expect("decodes");
        prop_assert_eq!(&decoded, &signed);
        prop_assert!(decoded.verify().is_ok());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(s) = SignedContribution::from_bytes(&bytes) {
            let _ = s.verify();
        }
    }
}
