//! The event encoding: round trips, canonical form, and no panic on any bytes.

use fog_dao::{
    AccountId, Action, Body, Choice, DoubleSignEvidence, EarningRule, Event, MismatchEvidence,
    ParamKey, Params, ProposalKind, Role, SignedResult, SigningKey, TreeHead,
};
use proptest::prelude::*;

fn account() -> impl Strategy<Value = AccountId> {
    any::<[u8; 32]>().prop_map(AccountId::from_bytes)
}

fn signed() -> impl Strategy<Value = SignedResult> {
    (any::<[u8; 32]>(), prop::collection::vec(any::<u8>(), 64)).prop_map(|(result, sig)| {
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&sig);
        SignedResult { result, signature }
    })
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    prop::sample::select(all)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::None),
        (pick(ParamKey::ALL), any::<u64>())
            .prop_map(|(key, value)| Action::SetParam { key, value }),
        (account(), any::<u64>()).prop_map(|(to, amount)| Action::TreasuryTransfer { to, amount }),
        any::<[u8; 32]>().prop_map(|release| Action::Upgrade { release }),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (account(), pick(EarningRule::ALL), any::<u64>())
            .prop_map(|(to, rule, units)| Body::Mint { to, rule, units }),
        (account(), any::<u64>()).prop_map(|(to, amount)| Body::Transfer { to, amount }),
        any::<u64>().prop_map(|amount| Body::Burn { amount }),
        any::<u64>().prop_map(|amount| Body::TreasuryDeposit { amount }),
        any::<u64>().prop_map(|amount| Body::Bond { amount }),
        any::<u64>().prop_map(|amount| Body::Unbond { amount }),
        Just(Body::Withdraw),
        Just(Body::Unjail),
        prop::option::of(account()).prop_map(|to| Body::Delegate { to }),
        (account(), pick(Role::ALL)).prop_map(|(account, role)| Body::SetRole { account, role }),
        any::<u64>().prop_map(|epoch| Body::DistributeRewards { epoch }),
        (pick(ProposalKind::ALL), action(), ".{0,40}").prop_map(|(kind, action, description)| {
            Body::Propose {
                kind,
                action,
                description,
            }
        }),
        (any::<u64>(), pick(Choice::ALL))
            .prop_map(|(proposal, choice)| Body::Vote { proposal, choice }),
        any::<u64>().prop_map(|proposal| Body::Queue { proposal }),
        any::<u64>().prop_map(|proposal| Body::Execute { proposal }),
        any::<u64>().prop_map(|proposal| Body::Cancel { proposal }),
        (account(), any::<[u8; 32]>(), signed(), signed()).prop_map(
            |(node, task, first, second)| {
                Body::DoubleSign(DoubleSignEvidence {
                    node,
                    task,
                    first,
                    second,
                })
            }
        ),
        (
            account(),
            any::<[u8; 32]>(),
            signed(),
            any::<[u8; 32]>(),
            prop::collection::vec((account(), signed()), 0..4)
        )
            .prop_map(|(node, task, node_result, majority, a)| {
                Body::QuorumMismatch(MismatchEvidence {
                    node,
                    task,
                    node_result,
                    majority,
                    attestations: a.into_iter().map(|(k, s)| (k, s.signature)).collect(),
                })
            }),
        (account(), any::<u64>()).prop_map(|(node, epoch)| Body::Downtime { node, epoch }),
        account().prop_map(|log_key| Body::Genesis {
            params: Params::default(),
            log_key
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn events_round_trip_and_verify(seed in any::<[u8; 32]>(), nonce in any::<u64>(), time in any::<u64>(), body in body(), id in any::<[u8; 32]>()) {
        let key = SigningKey::from_seed(seed);
        let event = Event::sign(&key, &id, nonce, time, body);
        let bytes = event.encode();
        let back = Event::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &event);
        prop_assert!(back.verify_signature(&id));
        let mut other = id;
        other[0] ^= 1;
        prop_assert!(!back.verify_signature(&other));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(event) = Event::decode(&bytes) {
            // Whatever decodes is canonical.
            prop_assert_eq!(event.encode(), bytes.clone());
        }
        let _ = TreeHead::decode(&bytes);
    }

    #[test]
    fn a_changed_byte_never_passes_as_the_same_signed_event(body in body(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let key = SigningKey::from_seed([3; 32]);
        let event = Event::sign(&key, &[1; 32], 0, 0, body);
        let mut bytes = event.encode();
        let i = pos.index(bytes.len());
        bytes[i] ^= flip;
        if let Ok(changed) = Event::decode(&bytes) {
            prop_assert!(changed != event);
            prop_assert!(!changed.verify_signature(&[1; 32]));
        }
    }
}
