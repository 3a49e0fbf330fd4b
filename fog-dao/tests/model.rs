//! A state-machine property test: random sequences of events, accepted or
//! refused, against the ledger's invariants.

use std::collections::BTreeMap;

use fog_dao::{
    AccountId, Action, Body, Choice, DoubleSignEvidence, EarningRule, Event, Ledger, ParamKey,
    Params, ProposalKind, Role, SigningKey, State, VerifyOptions,
};
use proptest::prelude::*;

const USERS: usize = 5; // index 0 is the king

#[derive(Debug, Clone)]
enum Op {
    Mint(usize, u64),
    Transfer(usize, usize, u64),
    Burn(usize, u64),
    Deposit(usize, u64),
    Bond(usize, u64),
    Unbond(usize, u64),
    Withdraw(usize),
    Delegate(usize, Option<usize>),
    Propose(usize, u8),
    Vote(usize, u64, u8),
    Queue(usize, u64),
    Execute(usize, u64),
    Cancel(usize, u64),
    Downtime(usize, u64),
    DoubleSign(usize, u8),
    Distribute(u64),
    Unjail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..USERS;
    let amt = prop_oneof![1u64..200, 0u64..5_000];
    prop_oneof![
        1 => (who.clone(), 1u64..500).prop_map(|(w, u)| Op::Mint(w, u)),
        1 => (who.clone(), 0..USERS, amt.clone()).prop_map(|(a, b, n)| Op::Transfer(a, b, n)),
        1 => (who.clone(), amt.clone()).prop_map(|(a, n)| Op::Burn(a, n)),
        1 => (who.clone(), amt.clone()).prop_map(|(a, n)| Op::Deposit(a, n)),
        1 => (who.clone(), amt.clone()).prop_map(|(a, n)| Op::Bond(a, n)),
        1 => (who.clone(), amt.clone()).prop_map(|(a, n)| Op::Unbond(a, n)),
        1 => who.clone().prop_map(Op::Withdraw),
        1 => (who.clone(), prop::option::of(0..USERS)).prop_map(|(a, b)| Op::Delegate(a, b)),
        1 => (who.clone(), 0u8..5).prop_map(|(a, k)| Op::Propose(a, k)),
        // Ballots are frequent and mostly For, so that proposals pass and
        // the queue/execute paths are exercised.
        4 => (who.clone(), 0u64..3, prop_oneof![8 => Just(0u8), 1 => 1u8..4])
            .prop_map(|(a, p, c)| Op::Vote(a, p, c)),
        2 => (who.clone(), 0u64..3).prop_map(|(a, p)| Op::Queue(a, p)),
        2 => (who.clone(), 0u64..3).prop_map(|(a, p)| Op::Execute(a, p)),
        1 => (who.clone(), 0u64..4).prop_map(|(a, p)| Op::Cancel(a, p)),
        1 => (who.clone(), 0u64..3).prop_map(|(a, e)| Op::Downtime(a, e)),
        1 => (who.clone(), 0u8..2).prop_map(|(a, t)| Op::DoubleSign(a, t)),
        1 => (0u64..6).prop_map(Op::Distribute),
        1 => who.prop_map(Op::Unjail),
    ]
}

fn keys() -> Vec<SigningKey> {
    (0..USERS as u8)
        .map(|i| SigningKey::from_seed([i + 1; 32]))
        .collect()
}

fn params() -> Params {
    let mut p = Params::default();
    for (k, v) in [
        (ParamKey::TimelockEmergency, 3),
        (ParamKey::VotingDelay, 1),
        (ParamKey::VotingPeriod, 60),
        (ParamKey::QuorumBps, 1_000),
        (ParamKey::LateQuorumExtension, 5),
        (ParamKey::TimelockParameter, 10),
        (ParamKey::TimelockTreasury, 10),
        (ParamKey::TimelockUpgrade, 10),
        (ParamKey::TimelockGeneral, 10),
        (ParamKey::GracePeriod, 60),
        (ParamKey::UnbondingPeriod, 15),
        (ParamKey::EpochLength, 30),
        (ParamKey::JailDuration, 10),
        (ParamKey::RateCompute, 10),
        (ParamKey::SlashDoubleSignBps, 5_000),
        (ParamKey::SlashDowntimeBps, 1_000),
    ] {
        p = p.with(k, v).unwrap();
    }
    p
}

fn body(op: &Op, k: &[SigningKey]) -> (usize, Body) {
    let acct = |i: usize| k[i].account();
    match *op {
        Op::Mint(w, units) => (
            0,
            Body::Mint {
                to: acct(w),
                rule: EarningRule::Compute,
                units,
            },
        ),
        Op::Transfer(a, b, amount) => (
            a,
            Body::Transfer {
                to: acct(b),
                amount,
            },
        ),
        Op::Burn(a, amount) => (a, Body::Burn { amount }),
        Op::Deposit(a, amount) => (a, Body::TreasuryDeposit { amount }),
        Op::Bond(a, amount) => (a, Body::Bond { amount }),
        Op::Unbond(a, amount) => (a, Body::Unbond { amount }),
        Op::Withdraw(a) => (a, Body::Withdraw),
        Op::Delegate(a, b) => (a, Body::Delegate { to: b.map(acct) }),
        Op::Propose(a, kind) => {
            let (kind, action) = match kind {
                0 => (ProposalKind::General, Action::None),
                1 => (
                    ProposalKind::Parameter,
                    Action::SetParam {
                        key: ParamKey::VotingPeriod,
                        value: 25,
                    },
                ),
                2 => (
                    ProposalKind::Treasury,
                    Action::TreasuryTransfer {
                        to: acct(1),
                        amount: 50,
                    },
                ),
                3 => (ProposalKind::Upgrade, Action::Upgrade { release: [7; 32] }),
                _ => (ProposalKind::Emergency, Action::None),
            };
            (
                a,
                Body::Propose {
                    kind,
                    action,
                    description: String::new(),
                },
            )
        }
        Op::Vote(a, proposal, c) => (
            a,
            Body::Vote {
                proposal,
                choice: Choice::ALL[c as usize],
            },
        ),
        Op::Queue(a, proposal) => (a, Body::Queue { proposal }),
        Op::Execute(a, proposal) => (a, Body::Execute { proposal }),
        Op::Cancel(a, proposal) => (a, Body::Cancel { proposal }),
        Op::Downtime(n, epoch) => (
            0,
            Body::Downtime {
                node: acct(n),
                epoch,
            },
        ),
        Op::DoubleSign(n, task) => {
            let task = [task; 32];
            (
                1,
                Body::DoubleSign(DoubleSignEvidence {
                    node: acct(n),
                    task,
                    first: k[n].sign_task_result(&task, &[1; 32]),
                    second: k[n].sign_task_result(&task, &[2; 32]),
                }),
            )
        }
        Op::Distribute(epoch) => (0, Body::DistributeRewards { epoch }),
        Op::Unjail(a) => (a, Body::Unjail),
    }
}

fn stake(s: &State, id: &AccountId) -> u64 {
    s.account(id)
        .map_or(0, |a| a.bonded() + a.unbonding_total())
}

/// Runs `ops` (with time steps) and checks every invariant after each one.
/// Returns the final state.
fn run(ops: &[(Op, u64)], mut ledger: Option<&mut Ledger>) -> State {
    let k = keys();
    // With a ledger, start from its own genesis (signatures are randomised,
    // so a re-signed genesis would name another ledger id).
    let genesis = ledger.as_deref().map_or_else(
        || {
            Event::sign(
                &k[0],
                &[0; 32],
                0,
                0,
                Body::Genesis {
                    params: params(),
                    log_key: SigningKey::from_seed([99; 32]).account(),
                },
            )
        },
        |l| l.event(0).unwrap(),
    );
    let mut s = State::default();
    s.apply(&genesis, true).unwrap();
    let guardian = Event::sign(
        &k[0],
        s.ledger_id(),
        1,
        0,
        Body::SetRole {
            account: k[4].account(),
            role: Role::Guardian,
        },
    );
    s.apply(&guardian, false).unwrap();
    if let Some(l) = ledger.as_deref_mut() {
        l.append(&guardian).unwrap();
    }
    // Everyone starts with tokens and some stake, so that governance paths
    // (proposals that pass, queue and execute) are reached often.
    for (i, key) in k.iter().enumerate().skip(1) {
        let mint = Event::sign(
            &k[0],
            s.ledger_id(),
            s.next_nonce(&k[0].account()),
            0,
            Body::Mint {
                to: key.account(),
                rule: EarningRule::Compute,
                units: 100,
            },
        );
        let bond = Event::sign(
            key,
            s.ledger_id(),
            0,
            0,
            Body::Bond {
                amount: 100 * i as u64,
            },
        );
        for e in [mint, bond] {
            s.apply(&e, false).unwrap();
            if let Some(l) = ledger.as_deref_mut() {
                l.append(&e).unwrap();
            }
        }
    }
    let mut snapshot_power: BTreeMap<(u64, AccountId), u64> = BTreeMap::new();
    let mut ranks: BTreeMap<u64, u8> = BTreeMap::new();
    let mut t = 0u64;
    for (op, dt) in ops {
        t += dt;
        let (signer, body) = body(op, &k);
        let event = Event::sign(
            &k[signer],
            s.ledger_id(),
            s.next_nonce(&k[signer].account()),
            t,
            body,
        );
        let before = s.clone();
        let result = s.apply(&event, false);
        match &result {
            Err(_) => assert_eq!(s, before, "a refused event changed the state: {op:?}"),
            Ok(()) => {
                if let Some(l) = ledger.as_deref_mut() {
                    l.append(&event).unwrap();
                }
            }
        }
        // Supply conservation.
        assert_eq!(
            s.circulating(),
            u128::from(s.minted()) - u128::from(s.burned()) - u128::from(s.slashed()),
            "after {op:?}"
        );
        // A slash never exceeds stake, and takes exactly what it reports.
        let slashed = s.slashed() - before.slashed();
        if let Op::Downtime(n, _) | Op::DoubleSign(n, _) = op {
            let id = k[*n].account();
            assert!(slashed <= stake(&before, &id));
            assert_eq!(stake(&s, &id), stake(&before, &id) - slashed);
        } else {
            assert_eq!(slashed, 0);
        }
        // Unbonded funds are released only after the period, and exactly.
        if let (Op::Withdraw(a), Ok(())) = (op, &result) {
            let id = k[*a].account();
            let old = before.account(&id).unwrap();
            let matured: u64 = old
                .unbonding()
                .iter()
                .filter(|u| u.release <= t)
                .map(|u| u.amount)
                .sum();
            let new = s.account(&id).unwrap();
            assert_eq!(new.balance(), old.balance() + matured);
            assert!(new.unbonding().iter().all(|u| u.release > t));
        }
        for p in s.proposals() {
            // No voter counted twice.
            let mut counted = std::collections::BTreeSet::new();
            let mut sum = 0u64;
            for (voter, ballot) in p.ballots() {
                assert!(counted.insert(*voter), "voter counted twice");
                for d in ballot.delegators().keys() {
                    assert!(counted.insert(*d), "delegator counted twice");
                }
                sum += ballot.weight();
            }
            assert_eq!(sum, p.tally().iter().sum::<u64>());
            // Snapshot power never changes once the snapshot has passed.
            if p.start() <= t {
                for key in &k {
                    let power = s
                        .account(&key.account())
                        .map_or(0, |a| a.bonded_at(p.start()));
                    let first = *snapshot_power
                        .entry((p.id(), key.account()))
                        .or_insert(power);
                    assert_eq!(first, power, "snapshot power changed");
                }
            }
            // States only move forward.
            let rank = s.proposal_state(p.id(), t).unwrap().rank();
            let old = ranks.insert(p.id(), rank).unwrap_or(0);
            assert!(rank >= old, "proposal {} went back", p.id());
        }
    }
    if std::env::var_os("FOG_DAO_MODEL_STATS").is_some() {
        let states: Vec<_> = s
            .proposals()
            .iter()
            .map(|p| s.proposal_state(p.id(), t).unwrap())
            .collect();
        eprintln!("model: {} events, proposals {states:?}", s.event_count());
    }
    s
}

fn ops() -> impl Strategy<Value = Vec<(Op, u64)>> {
    prop::collection::vec(
        (
            op(),
            prop_oneof![3 => Just(0u64), 6 => 0u64..4, 2 => 0u64..40],
        ),
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn invariants_hold_for_any_sequence(ops in ops()) {
        run(&ops, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// The same sequences through SQLite: the file verifies and reopening
    /// replays to the same state.
    #[test]
    fn verify_holds_after_any_sequence(ops in ops()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.db");
        let k = keys();
        let mut ledger = Ledger::create(&path, &k[0], SigningKey::from_seed([99; 32]), params(), 0).unwrap();
        let state = run(&ops, Some(&mut ledger));
        prop_assert_eq!(ledger.state(), &state);
        drop(ledger);
        let report = Ledger::verify_file(&path, VerifyOptions::default()).unwrap();
        prop_assert!(report.is_ok(), "{:?}", report.problem);
        let reopened = Ledger::open(&path, None).unwrap();
        prop_assert_eq!(reopened.state(), &state);
    }
}
