//! A writer killed with SIGKILL in the middle of appending leaves a log that
//! verifies and can be appended to again.
//!
//! The test runs its own test binary as the child (`crash_child`, which does
//! nothing unless `FOG_DAO_CRASH_CHILD` names a ledger file).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fog_dao::{Body, Durability, EarningRule, Ledger, Params, SigningKey, VerifyOptions};

const CHILD_ENV: &str = "FOG_DAO_CRASH_CHILD";

fn king() -> SigningKey {
    SigningKey::from_seed([1; 32])
}
fn log_key() -> SigningKey {
    SigningKey::from_seed([9; 32])
}
fn alice() -> SigningKey {
    SigningKey::from_seed([2; 32])
}

/// The child: appends transfers (and a batch now and then) until killed.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut ledger = Ledger::open(Path::new(&path), Some(log_key())).unwrap();
    ledger.set_durability(Durability::Normal).unwrap();
    let bob = SigningKey::from_seed([3; 32]).account();
    loop {
        let t = ledger.state().time() + 1;
        ledger
            .submit(&alice(), t, Body::Transfer { to: bob, amount: 1 })
            .unwrap();
    }
}

fn count(path: &Path) -> u64 {
    Ledger::verify_file(path, VerifyOptions::hashes_only()).map_or(0, |r| r.events)
}

#[test]
fn a_killed_writer_leaves_a_log_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    {
        let mut l = Ledger::create(&path, &king(), log_key(), Params::default(), 0).unwrap();
        l.submit(
            &king(),
            0,
            Body::Mint {
                to: alice().account(),
                rule: EarningRule::Compute,
                units: 1_000_000,
            },
        )
        .unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    for round in 1..=2u64 {
        let before = count(&path);
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it append a while (a safety cap, not a timing assertion).
        let deadline = Instant::now() + Duration::from_mins(1);
        while count(&path) < before + 30 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child was killed");
        let report = Ledger::verify_file(&path, VerifyOptions::default()).unwrap();
        assert!(report.is_ok(), "round {round}: {:?}", report.problem);
        assert!(report.events > before, "round {round}: the child appended");
    }
    // The survivor opens, appends and still verifies.
    let mut ledger = Ledger::open(&path, Some(log_key())).unwrap();
    let t = ledger.state().time() + 1;
    ledger
        .submit(&alice(), t, Body::Burn { amount: 1 })
        .unwrap();
    let s = ledger.state();
    assert_eq!(
        s.circulating(),
        u128::from(s.minted()) - u128::from(s.burned()) - u128::from(s.slashed())
    );
    drop(ledger);
    assert!(
        Ledger::verify_file(&path, VerifyOptions::default())
            .unwrap()
            .is_ok()
    );
}
