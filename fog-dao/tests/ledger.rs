//! Flows through the public API: tokens, staking, slashing, governance, bad
//! input, reopening and proofs.

use fog_dao::merkle::{verify_consistency, verify_inclusion};
use fog_dao::{
    AccountId, Action, Body, Choice, DaoError, DoubleSignEvidence, EarningRule, Event, Ledger,
    MismatchEvidence, ParamKey, Params, ProposalKind, ProposalState, Role, SigningKey,
    VerifyOptions,
};

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    ledger: Ledger,
    king: SigningKey,
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn test_params() -> Params {
    let mut p = Params::default();
    for (k, v) in [
        (ParamKey::TimelockEmergency, 5),
        (ParamKey::VotingDelay, 10),
        (ParamKey::VotingPeriod, 100),
        (ParamKey::LateQuorumExtension, 20),
        (ParamKey::TimelockParameter, 50),
        (ParamKey::TimelockTreasury, 50),
        (ParamKey::TimelockUpgrade, 50),
        (ParamKey::TimelockGeneral, 50),
        (ParamKey::GracePeriod, 100),
        (ParamKey::UnbondingPeriod, 30),
        (ParamKey::EpochLength, 100),
        (ParamKey::JailDuration, 40),
        (ParamKey::TreasuryShareBps, 0),
        (ParamKey::RateCompute, 1),
    ] {
        p = p.with(k, v).unwrap();
    }
    p
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let king = key(1);
    let ledger = Ledger::create(&path, &king, key(99), test_params(), 0).unwrap();
    Fixture {
        _dir: dir,
        path,
        ledger,
        king,
    }
}

impl Fixture {
    fn mint(&mut self, to: &SigningKey, units: u64, t: u64) {
        self.ledger
            .submit(
                &self.king,
                t,
                Body::Mint {
                    to: to.account(),
                    rule: EarningRule::Compute,
                    units,
                },
            )
            .unwrap();
    }

    fn balance(&self, who: &SigningKey) -> u64 {
        self.ledger
            .state()
            .account(&who.account())
            .map_or(0, fog_dao::Account::balance)
    }

    fn bonded(&self, who: &SigningKey) -> u64 {
        self.ledger
            .state()
            .account(&who.account())
            .map_or(0, fog_dao::Account::bonded)
    }

    fn state_of(&self, id: u64, t: u64) -> ProposalState {
        self.ledger.state().proposal_state(id, t).unwrap()
    }

    /// Submits and expects a refusal that appends nothing.
    fn refused(&mut self, who: &SigningKey, t: u64, body: Body) -> DaoError {
        let before = self.ledger.len();
        let head = self.ledger.head().cloned();
        let circulating = self.ledger.state().circulating();
        let nonce = self.ledger.state().next_nonce(&who.account());
        let err = self.ledger.submit(who, t, body).unwrap_err();
        assert_eq!(self.ledger.len(), before);
        assert_eq!(self.ledger.head().cloned(), head);
        assert_eq!(self.ledger.state().circulating(), circulating);
        assert_eq!(self.ledger.state().next_nonce(&who.account()), nonce);
        err
    }

    fn conserved(&self) {
        let s = self.ledger.state();
        assert_eq!(
            s.circulating(),
            u128::from(s.minted()) - u128::from(s.burned()) - u128::from(s.slashed())
        );
    }
}

#[test]
fn tokens_move_and_supply_is_conserved() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    f.mint(&a, 1_000, 1);
    assert_eq!(f.balance(&a), 1_000);
    f.ledger
        .submit(
            &a,
            2,
            Body::Transfer {
                to: b.account(),
                amount: 300,
            },
        )
        .unwrap();
    f.ledger.submit(&b, 3, Body::Burn { amount: 100 }).unwrap();
    f.ledger
        .submit(&a, 4, Body::TreasuryDeposit { amount: 50 })
        .unwrap();
    assert_eq!(f.balance(&a), 650);
    assert_eq!(f.balance(&b), 200);
    assert_eq!(f.ledger.state().treasury(), 50);
    assert_eq!(f.ledger.state().burned(), 100);
    f.conserved();
}

#[test]
fn earning_rules_apply_rates_multipliers_and_treasury_share() {
    let dir = tempfile::tempdir().unwrap();
    let king = key(1);
    let params = Params::default()
        .with(ParamKey::RateRelay, 3)
        .unwrap()
        .with(ParamKey::MultiplierRelay, 20_000)
        .unwrap()
        .with(ParamKey::TreasuryShareBps, 1_000)
        .unwrap();
    let mut ledger = Ledger::create(&dir.path().join("l.db"), &king, key(99), params, 0).unwrap();
    let a = key(2);
    ledger
        .submit(
            &king,
            1,
            Body::Mint {
                to: a.account(),
                rule: EarningRule::Relay,
                units: 10,
            },
        )
        .unwrap();
    // 10 units x 3 x 2.0 = 60, of which 10% to the treasury.
    let s = ledger.state();
    assert_eq!(s.account(&a.account()).unwrap().balance(), 54);
    assert_eq!(s.treasury(), 6);
    assert_eq!(s.minted(), 60);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    f.mint(&a, 100, 1);
    // Insufficient funds.
    let e = f.refused(
        &a,
        2,
        Body::Transfer {
            to: b.account(),
            amount: 101,
        },
    );
    assert!(matches!(e, DaoError::InsufficientFunds { .. }), "{e}");
    // Only the king mints.
    let e = f.refused(
        &a,
        2,
        Body::Mint {
            to: a.account(),
            rule: EarningRule::Compute,
            units: 1,
        },
    );
    assert!(matches!(e, DaoError::NotAuthorized { .. }), "{e}");
    // Zero amounts.
    let e = f.refused(&a, 2, Body::Bond { amount: 0 });
    assert!(matches!(e, DaoError::InvalidAmount(0)), "{e}");
    // Unknown proposal.
    let e = f.refused(
        &a,
        2,
        Body::Vote {
            proposal: 7,
            choice: Choice::For,
        },
    );
    assert!(matches!(e, DaoError::UnknownProposal(7)), "{e}");
    // Time going backwards.
    let e = f.refused(&a, 0, Body::Burn { amount: 1 });
    assert!(matches!(e, DaoError::TimeWentBackwards { .. }), "{e}");
    // A second genesis.
    let e = f.refused(
        &a,
        2,
        Body::Genesis {
            params: Params::default(),
            log_key: a.account(),
        },
    );
    assert!(matches!(e, DaoError::Genesis), "{e}");

    // A forged signature: b's key signs an event claiming to be a's.
    let id = *f.ledger.state().ledger_id();
    let good = Event::sign(&a, &id, 0, 3, Body::Burn { amount: 1 });
    let mut bytes = good.encode();
    bytes[2..34].copy_from_slice(b.account().as_bytes());
    let forged = Event::decode(&bytes).unwrap();
    let before = f.ledger.len();
    let e = f.ledger.append(&forged).unwrap_err();
    assert!(matches!(e, DaoError::BadSignature { .. }), "{e}");
    // An event signed for another ledger.
    let other = Event::sign(&a, &[7; 32], 0, 3, Body::Burn { amount: 1 });
    assert!(matches!(
        f.ledger.append(&other).unwrap_err(),
        DaoError::BadSignature { .. }
    ));
    // A replayed event (same nonce twice).
    f.ledger.append(&good).unwrap();
    assert!(matches!(
        f.ledger.append(&good).unwrap_err(),
        DaoError::BadNonce { .. }
    ));
    assert_eq!(f.ledger.len(), before + 1);
    f.conserved();
}

#[test]
fn a_batch_is_all_or_nothing() {
    let mut f = fixture();
    let a = key(2);
    f.mint(&a, 100, 1);
    let id = *f.ledger.state().ledger_id();
    let ok = Event::sign(&a, &id, 0, 2, Body::Burn { amount: 10 });
    let bad = Event::sign(&a, &id, 1, 2, Body::Burn { amount: 1_000 });
    let before = f.ledger.len();
    assert!(f.ledger.append_batch(&[ok.clone(), bad]).is_err());
    assert_eq!(f.ledger.len(), before);
    assert_eq!(f.balance(&a), 100);
    f.ledger.append_batch(&[ok]).unwrap();
    assert_eq!(f.balance(&a), 90);
}

#[test]
fn unbonded_stake_is_released_only_after_the_period_and_stays_slashable() {
    let mut f = fixture();
    let a = key(2);
    f.mint(&a, 1_000, 1);
    f.ledger
        .submit(&a, 2, Body::Bond { amount: 1_000 })
        .unwrap();
    f.ledger
        .submit(&a, 3, Body::Unbond { amount: 400 })
        .unwrap();
    assert_eq!(f.bonded(&a), 600);
    // Period is 30: release at 33.
    let e = f.refused(&a, 32, Body::Withdraw);
    assert!(matches!(e, DaoError::Rule(_)), "{e}");
    // Downtime slash of 10 bps... use a bigger fraction through a double sign.
    let task = [5u8; 32];
    let ev = DoubleSignEvidence {
        node: a.account(),
        task,
        first: a.sign_task_result(&task, &[1; 32]),
        second: a.sign_task_result(&task, &[2; 32]),
    };
    f.ledger
        .submit(&f.king, 32, Body::DoubleSign(ev.clone()))
        .unwrap();
    // 5% of (600 + 400) = 50, taken from bonded first.
    assert_eq!(f.bonded(&a), 550);
    assert_eq!(f.ledger.state().slashed(), 50);
    let acct = f.ledger.state().account(&a.account()).unwrap();
    assert!(acct.is_tombstoned());
    // One double-sign slash per offence.
    let king = key(1);
    let e = f.refused(&king, 33, Body::DoubleSign(ev));
    assert!(matches!(e, DaoError::DuplicateOffence { .. }), "{e}");
    f.ledger.submit(&a, 33, Body::Withdraw).unwrap();
    assert_eq!(f.balance(&a), 400);
    f.conserved();
}

#[test]
fn slashing_takes_unbonding_stake_when_bonded_is_short() {
    let mut f = fixture();
    let a = key(2);
    f.mint(&a, 1_000, 1);
    f.ledger
        .submit(&a, 2, Body::Bond { amount: 1_000 })
        .unwrap();
    f.ledger
        .submit(&a, 3, Body::Unbond { amount: 990 })
        .unwrap();
    let task = [6u8; 32];
    let ev = DoubleSignEvidence {
        node: a.account(),
        task,
        first: a.sign_task_result(&task, &[1; 32]),
        second: a.sign_task_result(&task, &[2; 32]),
    };
    f.ledger.submit(&f.king, 4, Body::DoubleSign(ev)).unwrap();
    let acct = f.ledger.state().account(&a.account()).unwrap();
    assert_eq!(acct.bonded(), 0);
    assert_eq!(acct.unbonding_total(), 950);
    f.conserved();
}

#[test]
fn evidence_must_prove_the_offence() {
    let mut f = fixture();
    let (a, v1, v2) = (key(2), key(3), key(4));
    for k in [&a, &v1, &v2] {
        f.mint(k, 1_000, 2);
        f.ledger.submit(k, 2, Body::Bond { amount: 1_000 }).unwrap();
    }
    let task = [9u8; 32];
    // Same result twice is no double sign.
    let same = DoubleSignEvidence {
        node: a.account(),
        task,
        first: a.sign_task_result(&task, &[1; 32]),
        second: a.sign_task_result(&task, &[1; 32]),
    };
    let king = key(1);
    assert!(matches!(
        f.refused(&king, 3, Body::DoubleSign(same)),
        DaoError::InvalidEvidence(_)
    ));
    // A result signed by someone else is no evidence against a.
    let forged = DoubleSignEvidence {
        node: a.account(),
        task,
        first: a.sign_task_result(&task, &[1; 32]),
        second: v1.sign_task_result(&task, &[2; 32]),
    };
    assert!(matches!(
        f.refused(&king, 3, Body::DoubleSign(forged)),
        DaoError::InvalidEvidence(_)
    ));
    // Quorum mismatch: two bonded verifiers signed the majority result.
    let majority = [7u8; 32];
    let mismatch = MismatchEvidence {
        node: a.account(),
        task,
        node_result: a.sign_task_result(&task, &[1; 32]),
        majority,
        attestations: vec![
            (
                v1.account(),
                v1.sign_task_result(&task, &majority).signature,
            ),
            (
                v2.account(),
                v2.sign_task_result(&task, &majority).signature,
            ),
        ],
    };
    let mut short = mismatch.clone();
    short.attestations.pop();
    assert!(matches!(
        f.refused(&v1, 3, Body::QuorumMismatch(short)),
        DaoError::InvalidEvidence(_)
    ));
    f.ledger
        .submit(&v1, 3, Body::QuorumMismatch(mismatch.clone()))
        .unwrap();
    // 1% of 1,000.
    assert_eq!(f.bonded(&a), 990);
    assert!(matches!(
        f.refused(&v2, 4, Body::QuorumMismatch(mismatch)),
        DaoError::DuplicateOffence { .. }
    ));
    f.conserved();
}

#[test]
fn downtime_jails_and_jailed_stake_earns_no_reward() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    for k in [&a, &b] {
        f.mint(k, 10_000, 2);
        f.ledger
            .submit(k, 2, Body::Bond { amount: 10_000 })
            .unwrap();
    }
    f.ledger
        .submit(
            &f.king,
            3,
            Body::Downtime {
                node: a.account(),
                epoch: 0,
            },
        )
        .unwrap();
    assert_eq!(f.bonded(&a), 9_990);
    assert!(matches!(
        f.refused(
            &key(1),
            4,
            Body::Downtime {
                node: a.account(),
                epoch: 0
            }
        ),
        DaoError::DuplicateOffence { .. }
    ));
    // The epoch has not ended at 50.
    assert!(matches!(
        f.refused(&key(1), 50, Body::DistributeRewards { epoch: 0 }),
        DaoError::Rule(_)
    ));
    f.ledger
        .submit(&f.king, 100, Body::DistributeRewards { epoch: 0 })
        .unwrap();
    assert_eq!(f.balance(&a), 0);
    assert_eq!(f.balance(&b), 1_000);
    assert!(matches!(
        f.refused(&key(1), 100, Body::DistributeRewards { epoch: 0 }),
        DaoError::Rule(_)
    ));
    // Jailed until 3 + 40.
    f.ledger.submit(&a, 100, Body::Unjail).unwrap();
    f.ledger
        .submit(&f.king, 200, Body::DistributeRewards { epoch: 1 })
        .unwrap();
    assert!(f.balance(&a) > 0);
    f.conserved();
}

fn propose(f: &mut Fixture, who: &SigningKey, t: u64, kind: ProposalKind, action: Action) -> u64 {
    f.ledger
        .submit(
            who,
            t,
            Body::Propose {
                kind,
                action,
                description: "test".into(),
            },
        )
        .unwrap();
    f.ledger.state().proposals().len() as u64 - 1
}

fn vote(f: &mut Fixture, who: &SigningKey, t: u64, proposal: u64, choice: Choice) {
    f.ledger
        .submit(who, t, Body::Vote { proposal, choice })
        .unwrap();
}

#[test]
fn a_parameter_proposal_runs_its_whole_life() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    f.mint(&a, 1_000, 1);
    f.mint(&b, 500, 1);
    f.ledger
        .submit(&a, 2, Body::Bond { amount: 1_000 })
        .unwrap();
    f.ledger.submit(&b, 2, Body::Bond { amount: 500 }).unwrap();
    let action = Action::SetParam {
        key: ParamKey::VotingPeriod,
        value: 77,
    };
    let id = propose(&mut f, &a, 5, ProposalKind::Parameter, action);
    assert_eq!(f.state_of(id, 5), ProposalState::Pending);
    // Not yet open (start = 15).
    let e = f.refused(
        &b,
        14,
        Body::Vote {
            proposal: id,
            choice: Choice::For,
        },
    );
    assert!(matches!(e, DaoError::WrongState { .. }), "{e}");
    vote(&mut f, &a, 15, id, Choice::For);
    vote(&mut f, &b, 16, id, Choice::Against);
    assert_eq!(f.ledger.state().proposals()[0].tally(), [1_000, 500, 0, 0]);
    let e = f.refused(
        &a,
        17,
        Body::Vote {
            proposal: id,
            choice: Choice::Against,
        },
    );
    assert!(matches!(e, DaoError::DoubleVote { .. }), "{e}");
    assert_eq!(f.state_of(id, 50), ProposalState::Active);
    // Voting ends at 115; a queue before that is refused.
    assert!(matches!(
        f.refused(&a, 60, Body::Queue { proposal: id }),
        DaoError::WrongState { .. }
    ));
    let e = f.refused(
        &b,
        115,
        Body::Vote {
            proposal: id,
            choice: Choice::Against,
        },
    );
    assert!(matches!(e, DaoError::WrongState { .. }), "{e}");
    assert_eq!(f.state_of(id, 115), ProposalState::Succeeded);
    f.ledger
        .submit(&b, 120, Body::Queue { proposal: id })
        .unwrap();
    assert_eq!(f.state_of(id, 120), ProposalState::Queued);
    // Timelock 50: not before 170.
    let e = f.refused(&b, 169, Body::Execute { proposal: id });
    assert!(matches!(e, DaoError::Timelocked { eta: 170, .. }), "{e}");
    f.ledger
        .submit(&b, 170, Body::Execute { proposal: id })
        .unwrap();
    assert_eq!(f.state_of(id, 170), ProposalState::Executed);
    assert_eq!(f.ledger.state().params().get(ParamKey::VotingPeriod), 77);
    assert!(
        Ledger::verify_file(&f.path, VerifyOptions::default())
            .unwrap()
            .is_ok()
    );
}

#[test]
fn a_treasury_proposal_moves_funds_and_an_unexecuted_one_expires() {
    let mut f = fixture();
    let (a, c) = (key(2), key(3));
    f.mint(&a, 1_000, 1);
    f.ledger.submit(&a, 2, Body::Bond { amount: 500 }).unwrap();
    f.ledger
        .submit(&a, 2, Body::TreasuryDeposit { amount: 300 })
        .unwrap();
    let pay = Action::TreasuryTransfer {
        to: c.account(),
        amount: 200,
    };
    let id = propose(&mut f, &a, 3, ProposalKind::Treasury, pay.clone());
    vote(&mut f, &a, 13, id, Choice::For);
    f.ledger
        .submit(&a, 113, Body::Queue { proposal: id })
        .unwrap();
    f.ledger
        .submit(&a, 163, Body::Execute { proposal: id })
        .unwrap();
    assert_eq!(f.balance(&c), 200);
    assert_eq!(f.ledger.state().treasury(), 100);
    // A second one for more than the treasury holds cannot execute.
    let big = Action::TreasuryTransfer {
        to: c.account(),
        amount: 1_000,
    };
    let id2 = propose(&mut f, &a, 200, ProposalKind::Treasury, big);
    vote(&mut f, &a, 210, id2, Choice::For);
    f.ledger
        .submit(&a, 310, Body::Queue { proposal: id2 })
        .unwrap();
    let e = f.refused(&a, 360, Body::Execute { proposal: id2 });
    assert!(matches!(e, DaoError::InsufficientFunds { .. }), "{e}");
    // Grace 100 after eta 360.
    assert_eq!(f.state_of(id2, 460), ProposalState::Queued);
    assert_eq!(f.state_of(id2, 461), ProposalState::Expired);
    f.conserved();
}

#[test]
fn flash_stake_after_the_snapshot_has_no_weight_and_nothing_executes_early() {
    let mut f = fixture();
    let (a, whale) = (key(2), key(3));
    f.mint(&a, 100, 1);
    f.ledger.submit(&a, 2, Body::Bond { amount: 100 }).unwrap();
    let id = propose(&mut f, &a, 3, ProposalKind::General, Action::None);
    vote(&mut f, &a, 13, id, Choice::For);
    // The whale gets tokens and stakes after the snapshot (start = 13).
    f.mint(&whale, 1_000_000, 13);
    f.ledger
        .submit(&whale, 14, Body::Bond { amount: 1_000_000 })
        .unwrap();
    assert_eq!(
        f.ledger.state().voting_power(id, &whale.account()).unwrap(),
        0
    );
    let e = f.refused(
        &whale,
        15,
        Body::Vote {
            proposal: id,
            choice: Choice::Against,
        },
    );
    assert!(matches!(e, DaoError::NoVotingPower { .. }), "{e}");
    // Stake bonded at the snapshot instant does not count either.
    let later = propose(&mut f, &a, 20, ProposalKind::General, Action::None);
    assert_eq!(f.ledger.state().proposals()[later as usize].start(), 30);
    // Slashing after the snapshot does not change snapshot power.
    let power_before = f
        .ledger
        .state()
        .voting_power(later, &whale.account())
        .unwrap();
    assert_eq!(power_before, 1_000_000);
    // Nothing executes before its timelock, emergency included.
    let em = propose(&mut f, &a, 40, ProposalKind::Emergency, Action::None);
    vote(&mut f, &a, 50, em, Choice::For);
    vote(&mut f, &whale, 50, em, Choice::For);
    vote(&mut f, &whale, 50, later, Choice::For);
    f.ledger
        .submit(&a, 150, Body::Queue { proposal: em })
        .unwrap();
    let e = f.refused(&a, 150, Body::Execute { proposal: em });
    assert!(matches!(e, DaoError::Timelocked { eta: 155, .. }), "{e}");
    f.ledger
        .submit(&a, 155, Body::Execute { proposal: em })
        .unwrap();
    // Guardian cancel.
    let g = key(5);
    f.ledger
        .submit(
            &f.king,
            156,
            Body::SetRole {
                account: g.account(),
                role: Role::Guardian,
            },
        )
        .unwrap();
    assert_eq!(f.state_of(later, 156), ProposalState::Succeeded);
    f.ledger
        .submit(&g, 157, Body::Cancel { proposal: later })
        .unwrap();
    assert_eq!(f.state_of(later, 157), ProposalState::Canceled);
    let e = f.refused(&a, 158, Body::Queue { proposal: later });
    assert!(matches!(e, DaoError::WrongState { .. }), "{e}");
}

#[test]
fn only_the_proposer_while_pending_or_a_guardian_may_cancel() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    for k in [&a, &b] {
        f.mint(k, 100, 2);
        f.ledger.submit(k, 2, Body::Bond { amount: 100 }).unwrap();
    }
    let id = propose(&mut f, &a, 3, ProposalKind::General, Action::None);
    let e = f.refused(&b, 4, Body::Cancel { proposal: id });
    assert!(matches!(e, DaoError::NotAuthorized { .. }), "{e}");
    let e = f.refused(&a, 13, Body::Cancel { proposal: id });
    assert!(matches!(e, DaoError::NotAuthorized { .. }), "{e}");
    f.ledger
        .submit(&a, 12, Body::Cancel { proposal: id })
        .unwrap();
}

#[test]
fn delegation_is_single_hop_and_a_delegator_can_override() {
    let mut f = fixture();
    let (a, b, c, d) = (key(2), key(3), key(4), key(5));
    for (k, n) in [(&a, 100), (&b, 200), (&c, 400), (&d, 800)] {
        f.mint(k, n, 2);
        f.ledger.submit(k, 2, Body::Bond { amount: n }).unwrap();
    }
    // a -> b, b -> c: c gets b's stake but not a's (single hop).
    f.ledger
        .submit(
            &a,
            3,
            Body::Delegate {
                to: Some(b.account()),
            },
        )
        .unwrap();
    f.ledger
        .submit(
            &b,
            3,
            Body::Delegate {
                to: Some(c.account()),
            },
        )
        .unwrap();
    assert!(matches!(
        f.refused(
            &d,
            3,
            Body::Delegate {
                to: Some(d.account())
            }
        ),
        DaoError::Rule(_)
    ));
    let id = propose(&mut f, &d, 4, ProposalKind::General, Action::None);
    let s = f.ledger.state();
    assert_eq!(s.voting_power(id, &b.account()).unwrap(), 300);
    assert_eq!(s.voting_power(id, &c.account()).unwrap(), 600);
    vote(&mut f, &b, 14, id, Choice::For);
    assert_eq!(f.ledger.state().proposals()[0].tally(), [300, 0, 0, 0]);
    // a overrides its delegate.
    vote(&mut f, &a, 15, id, Choice::Against);
    assert_eq!(f.ledger.state().proposals()[0].tally(), [200, 100, 0, 0]);
    // c votes: b already voted itself, so c has only its own stake.
    vote(&mut f, &c, 16, id, Choice::Abstain);
    assert_eq!(f.ledger.state().proposals()[0].tally(), [200, 100, 400, 0]);
    // Role weights: a councilor's stake counts 1.5x.
    f.ledger
        .submit(
            &f.king,
            17,
            Body::SetRole {
                account: d.account(),
                role: Role::Councilor,
            },
        )
        .unwrap();
    vote(&mut f, &d, 17, id, Choice::Veto);
    assert_eq!(
        f.ledger.state().proposals()[0].tally(),
        [200, 100, 400, 1_200]
    );
    // Veto 1200/1900 >= 33.4%: defeated although For > Against.
    assert_eq!(f.state_of(id, 200), ProposalState::Defeated);
}

#[test]
fn a_late_quorum_extends_voting() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    f.mint(&a, 100, 1);
    f.mint(&b, 900, 1);
    f.ledger.submit(&a, 2, Body::Bond { amount: 100 }).unwrap();
    f.ledger.submit(&b, 2, Body::Bond { amount: 900 }).unwrap();
    let id = propose(&mut f, &a, 3, ProposalKind::General, Action::None);
    // start 13, end 113; quorum 20% of 1000 = 200. a's 100 is not enough.
    vote(&mut f, &a, 13, id, Choice::For);
    assert_eq!(f.ledger.state().proposals()[0].end(), 113);
    vote(&mut f, &b, 110, id, Choice::Against);
    // Reached at 110, within 20 of the end: extended to 130.
    assert_eq!(f.ledger.state().proposals()[0].end(), 130);
    assert_eq!(f.state_of(id, 120), ProposalState::Active);
    assert_eq!(f.state_of(id, 130), ProposalState::Defeated);
}

#[test]
fn a_proposal_needs_stake_and_a_fitting_valid_action() {
    let mut f = fixture();
    let a = key(2);
    f.mint(&a, 100, 1);
    let e = f.refused(
        &a,
        2,
        Body::Propose {
            kind: ProposalKind::General,
            action: Action::None,
            description: String::new(),
        },
    );
    assert!(matches!(e, DaoError::BelowProposalThreshold { .. }), "{e}");
    f.ledger.submit(&a, 2, Body::Bond { amount: 10 }).unwrap();
    let e = f.refused(
        &a,
        3,
        Body::Propose {
            kind: ProposalKind::General,
            action: Action::Upgrade { release: [1; 32] },
            description: String::new(),
        },
    );
    assert!(matches!(e, DaoError::InvalidProposal(_)), "{e}");
    let e = f.refused(
        &a,
        3,
        Body::Propose {
            kind: ProposalKind::Parameter,
            action: Action::SetParam {
                key: ParamKey::QuorumBps,
                value: 10_001,
            },
            description: String::new(),
        },
    );
    assert!(matches!(e, DaoError::InvalidParameter { .. }), "{e}");
    // An emergency timelock longer than the others is refused.
    let e = f.refused(
        &a,
        3,
        Body::Propose {
            kind: ProposalKind::Parameter,
            action: Action::SetParam {
                key: ParamKey::TimelockEmergency,
                value: 51,
            },
            description: String::new(),
        },
    );
    assert!(matches!(e, DaoError::InvalidParameter { .. }), "{e}");
    let e = f.refused(
        &a,
        3,
        Body::Propose {
            kind: ProposalKind::General,
            action: Action::None,
            description: "x".repeat(2_000),
        },
    );
    assert!(matches!(e, DaoError::InvalidProposal(_)), "{e}");
}

#[test]
fn reopening_replays_the_same_state_and_proofs_verify() {
    let mut f = fixture();
    let (a, b) = (key(2), key(3));
    f.mint(&a, 1_000, 1);
    let mut heads = Vec::new();
    for t in 2..40 {
        f.ledger
            .submit(
                &a,
                t,
                Body::Transfer {
                    to: b.account(),
                    amount: 1,
                },
            )
            .unwrap();
        heads.push(f.ledger.head().unwrap().clone());
    }
    let head = f.ledger.head().unwrap().clone();
    let len = f.ledger.len();
    let balances: Vec<(AccountId, u64)> = f
        .ledger
        .state()
        .accounts()
        .iter()
        .map(|(k, v)| (*k, v.balance()))
        .collect();
    let path = f.path.clone();
    drop(f.ledger);
    // Read-only open cannot append; the wrong log key is refused.
    let mut ro = Ledger::open(&path, None).unwrap();
    assert!(matches!(
        ro.submit(&a, 50, Body::Burn { amount: 1 }),
        Err(DaoError::ReadOnly)
    ));
    assert!(matches!(
        Ledger::open(&path, Some(key(98))),
        Err(DaoError::WrongLogKey)
    ));
    let ledger = Ledger::open(&path, Some(key(99))).unwrap();
    assert_eq!(ledger.len(), len);
    assert_eq!(ledger.head(), Some(&head));
    let again: Vec<(AccountId, u64)> = ledger
        .state()
        .accounts()
        .iter()
        .map(|(k, v)| (*k, v.balance()))
        .collect();
    assert_eq!(again, balances);
    let log_key = ledger.state().log_key().unwrap();
    let id = *ledger.state().ledger_id();
    for seq in 0..len {
        let proof = ledger.inclusion_proof(seq, len).unwrap();
        assert!(verify_inclusion(
            &ledger.leaf(seq).unwrap(),
            seq,
            len,
            &proof,
            head.root()
        ));
        assert_eq!(
            fog_dao::merkle::leaf_hash(&ledger.event(seq).unwrap().encode()),
            ledger.leaf(seq).unwrap()
        );
    }
    for old in &heads {
        assert!(old.verify(&id, &log_key));
        let proof = ledger.consistency_proof(old.size(), len).unwrap();
        assert!(verify_consistency(
            old.size(),
            old.root(),
            len,
            head.root(),
            &proof
        ));
    }
    assert!(matches!(
        ledger.inclusion_proof(len, len),
        Err(DaoError::UnknownEvent(_))
    ));
    assert!(matches!(ledger.event(len), Err(DaoError::UnknownEvent(_))));
}

#[test]
fn statements_sign_in_their_own_context_and_never_in_the_ledgers() {
    let key = SigningKey::generate();
    let account = key.account();
    let signature = key
        .sign_statement(b"fog/checkpoint/1", b"task and data")
        .expect("a context of our own");
    assert!(fog_dao::verify_statement(
        &account,
        b"fog/checkpoint/1",
        b"task and data",
        &signature
    ));
    assert!(!fog_dao::verify_statement(
        &account,
        b"fog/checkpoint/1",
        b"other data",
        &signature
    ));
    assert!(!fog_dao::verify_statement(
        &account,
        b"fog/other/1",
        b"task and data",
        &signature
    ));
    // The ledger's contexts are refused both ways.
    assert!(
        key.sign_statement(fog_dao::TASK_RESULT_CONTEXT, &[0; 64])
            .is_none()
    );
    let result = key.sign_task_result(&[0; 32], &[0; 32]);
    assert!(!fog_dao::verify_statement(
        &account,
        fog_dao::TASK_RESULT_CONTEXT,
        &[0; 64],
        &result.signature
    ));
}
