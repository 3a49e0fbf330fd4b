//! Any single changed byte in the events stored in the SQLite file is found
//! by `verify`, which names the event.

use std::path::Path;

use fog_dao::{
    Action, Body, Choice, EarningRule, Ledger, ParamKey, Params, ProposalKind, SigningKey,
    VerifyOptions,
};

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn build(path: &Path) -> Vec<(Vec<u8>, [u8; 32])> {
    let king = SigningKey::from_seed([1; 32]);
    let (a, b) = (
        SigningKey::from_seed([2; 32]),
        SigningKey::from_seed([3; 32]),
    );
    let params = Params::default().with(ParamKey::VotingDelay, 1).unwrap();
    let mut l = Ledger::create(path, &king, SigningKey::from_seed([9; 32]), params, 0).unwrap();
    for (who, t, body) in [
        (
            &king,
            1,
            Body::Mint {
                to: a.account(),
                rule: EarningRule::Compute,
                units: 1_000,
            },
        ),
        (&a, 2, Body::Bond { amount: 5_000 }),
        (
            &a,
            3,
            Body::Transfer {
                to: b.account(),
                amount: 77,
            },
        ),
        (
            &a,
            4,
            Body::Delegate {
                to: Some(b.account()),
            },
        ),
        (
            &a,
            5,
            Body::Propose {
                kind: ProposalKind::General,
                action: Action::None,
                description: "tamper test".into(),
            },
        ),
        (
            &a,
            6,
            Body::Vote {
                proposal: 0,
                choice: Choice::For,
            },
        ),
        (&b, 7, Body::Burn { amount: 7 }),
        (&a, 8, Body::Unbond { amount: 10 }),
    ] {
        l.submit(who, t, body).unwrap();
    }
    (0..l.len())
        .map(|seq| (l.event(seq).unwrap().encode(), l.leaf(seq).unwrap()))
        .collect()
}

#[test]
fn every_changed_event_byte_is_detected_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("ledger.db");
    let events = build(&original);
    assert!(
        !dir.path().join("ledger.db-wal").exists()
            || std::fs::metadata(dir.path().join("ledger.db-wal"))
                .unwrap()
                .len()
                == 0
    );
    let bytes = std::fs::read(&original).unwrap();
    assert!(
        Ledger::verify_file(&original, VerifyOptions::default())
            .unwrap()
            .is_ok()
    );

    let copy = dir.path().join("copy.db");
    let mut checked = 0;
    for (seq, (data, leaf)) in events.iter().enumerate() {
        let at = find(&bytes, data).expect("event bytes are in the file");
        let leaf_at = find(&bytes, leaf).expect("leaf hash is in the file");
        // Every 5th byte of the event (offset by seq so that, over all
        // events, every field is hit) and a few bytes of its leaf hash.
        let positions = (seq % 5..data.len()).step_by(5).map(|i| at + i).chain([
            leaf_at,
            leaf_at + 17,
            leaf_at + 31,
        ]);
        for pos in positions {
            let mut changed = bytes.clone();
            changed[pos] ^= 0x5a;
            std::fs::write(&copy, &changed).unwrap();
            let _ = std::fs::remove_file(dir.path().join("copy.db-wal"));
            let _ = std::fs::remove_file(dir.path().join("copy.db-shm"));
            // Signatures are re-verified for one position in eight (they are
            // slow in debug builds); hashes and replay for every position.
            let options = VerifyOptions::default().with_signatures(checked % 8 == 0);
            // An `Err` means the file no longer reads as a ledger: detected too.
            if let Ok(report) = Ledger::verify_file(&copy, options) {
                let problem = report.problem.expect("a changed byte must be detected");
                assert_eq!(
                    problem.seq,
                    Some(seq as u64),
                    "byte {pos}: {}",
                    problem.reason
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "checked {checked} positions");
}

#[test]
fn a_dropped_last_event_or_replaced_head_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    build(&path);
    // Delete the last event with SQLite itself: the tree head no longer fits.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)",
        [],
    )
    .unwrap();
    drop(conn);
    let report = Ledger::verify_file(&path, VerifyOptions::default()).unwrap();
    let problem = report.problem.unwrap();
    assert_eq!(problem.seq, None, "{}", problem.reason);
    assert!(Ledger::open(&path, None).is_err());
}
