//! The VRF relay lottery.

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    DescriptorBuilder, LayerRefusal, LotteryError, NodeDescriptor, NodeIdentity, TICKET_LEN,
    Ticket, check_layers, run_lottery,
};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn candidate(i: u8, stake: u64) -> (NodeIdentity, NodeDescriptor) {
    let identity = NodeIdentity::from_seed(&[i; 32]);
    let d = DescriptorBuilder::new(
        PublicKey::from(&StaticSecret::from([i; 32])),
        1,
        format!("10.{i}.0.1:1789"),
    )
    .stake(stake)
    .family(format!("f{i}"))
    .sign(&identity)
    .unwrap();
    (identity, d)
}

#[test]
fn a_ticket_verifies_and_forgeries_and_replays_do_not() {
    let (id, d) = candidate(1, 10);
    let (other_id, other) = candidate(2, 10);
    let r = [7u8; 32];
    let ticket = Ticket::draw(&id, 5, &r);
    let score = ticket.verify(&d, 5, &r).unwrap();
    assert!(score > 0.0 && score.is_finite());
    // Deterministic output: drawing again gives the same score.
    assert_eq!(Ticket::draw(&id, 5, &r).verify(&d, 5, &r).unwrap(), score);
    // Round trip.
    let bytes = ticket.to_bytes();
    assert_eq!(bytes.len(), TICKET_LEN);
    assert_eq!(Ticket::from_bytes(&bytes).unwrap(), ticket);
    // Replayed into another epoch, or with other randomness.
    assert_eq!(
        ticket.verify(&d, 6, &r),
        Err(LotteryError::WrongEpoch {
            expected: 6,
            got: 5
        })
    );
    let mut moved = bytes.clone();
    moved[..8].copy_from_slice(&6u64.to_be_bytes());
    assert_eq!(
        Ticket::from_bytes(&moved).unwrap().verify(&d, 6, &r),
        Err(LotteryError::BadProof)
    );
    assert_eq!(
        ticket.verify(&d, 5, &[8u8; 32]),
        Err(LotteryError::BadProof)
    );
    // Someone else's ticket presented for this descriptor.
    let theirs = Ticket::draw(&other_id, 5, &r);
    assert_eq!(theirs.verify(&d, 5, &r), Err(LotteryError::WrongIdentity));
    assert!(theirs.verify(&other, 5, &r).is_ok());
    // A forged output or proof: every byte matters.
    for i in [40usize, 60, 72, 100, 135] {
        let mut forged = bytes.clone();
        forged[i] ^= 1;
        let t = Ticket::from_bytes(&forged).unwrap();
        assert!(t.verify(&d, 5, &r).is_err(), "byte {i}");
    }
    // An identity swapped in with a copied proof.
    let mut swapped = bytes.clone();
    swapped[8..40].copy_from_slice(&other.identity());
    assert_eq!(
        Ticket::from_bytes(&swapped).unwrap().verify(&other, 5, &r),
        Err(LotteryError::BadProof)
    );
    // No stake, no ticket.
    let (zid, zero) = candidate(3, 0);
    assert_eq!(
        Ticket::draw(&zid, 5, &r).verify(&zero, 5, &r),
        Err(LotteryError::NoStake)
    );
}

#[test]
fn winning_is_stake_proportional() {
    let stakes = [1u64, 2, 3, 4];
    let candidates: Vec<_> = stakes
        .iter()
        .enumerate()
        .map(|(i, s)| candidate(i as u8 + 10, *s))
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(21);
    let mut wins = [0u64; 4];
    let epochs = 1200u64;
    for epoch in 0..epochs {
        let mut r = [0u8; 32];
        rng.fill(&mut r);
        let entries: Vec<_> = candidates
            .iter()
            .map(|(id, d)| (d.clone(), Ticket::draw(id, epoch, &r)))
            .collect();
        let draw = run_lottery(&entries, epoch, &r, 1, 1);
        assert!(draw.rejected.is_empty());
        let winner = draw.active[0].node;
        let i = candidates
            .iter()
            .position(|(_, d)| d.node_address() == winner)
            .unwrap();
        wins[i] += 1;
    }
    let total: u64 = stakes.iter().sum();
    let chi2: f64 = stakes
        .iter()
        .zip(wins)
        .map(|(s, w)| {
            let e = epochs as f64 * *s as f64 / total as f64;
            (w as f64 - e).powi(2) / e
        })
        .sum();
    // 3 degrees of freedom, alpha = 0.001: 16.27.
    assert!(chi2 < 16.27, "wins {wins:?}, chi2 {chi2}");
}

#[test]
fn the_active_set_is_capped_and_dealt_evenly_to_layers() {
    let candidates: Vec<_> = (0..9u8).map(|i| candidate(i + 30, 5)).collect();
    let r = [3u8; 32];
    let mut entries: Vec<_> = candidates
        .iter()
        .map(|(id, d)| (d.clone(), Ticket::draw(id, 1, &r)))
        .collect();
    // A forged ticket and a duplicate candidate.
    let mut forged = entries[0].1.to_bytes();
    forged[100] ^= 0xff;
    entries[1].1 = Ticket::from_bytes(&forged).unwrap();
    entries.push(entries[2].clone());
    let draw = run_lottery(&entries, 1, &r, 6, 3);
    assert_eq!(draw.active.len(), 6);
    assert_eq!(draw.rejected.len(), 1);
    assert_eq!(draw.rejected[0].0, candidates[1].1.node_address());
    for layer in 0..3u8 {
        assert_eq!(draw.active.iter().filter(|a| a.layer == layer).count(), 2);
    }
    assert!(draw.active.windows(2).all(|w| w[0].score <= w[1].score));
    // Everyone computes the same draw.
    let again = run_lottery(&entries, 1, &r, 6, 3);
    assert_eq!(again.active, draw.active);
}

proptest! {
    #[test]
    fn ticket_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(t) = Ticket::from_bytes(&bytes) {
            let (_, d) = candidate(1, 1);
            let _ = t.verify(&d, t.epoch(), &[0; 32]);
        }
    }
}

fn at_layer(i: u8, id: &NodeIdentity, layer: u8) -> NodeDescriptor {
    DescriptorBuilder::new(
        PublicKey::from(&StaticSecret::from([i; 32])),
        1,
        format!("10.{i}.0.1:1789"),
    )
    .stake(10)
    .layer(layer)
    .sign(id)
    .unwrap()
}

#[test]
fn descriptor_layers_are_checked_against_the_draw() {
    let r = [3u8; 32];
    let epoch = 9;
    let ids: Vec<(u8, NodeIdentity)> = (1..=6u8).map(|i| (i, candidate(i, 10).0)).collect();
    // The draw depends on identities, stakes, epoch and randomness only.
    let probe: Vec<(NodeDescriptor, Ticket)> = ids
        .iter()
        .map(|(i, id)| (at_layer(*i, id, 0), Ticket::draw(id, epoch, &r)))
        .collect();
    let draw = run_lottery(&probe, epoch, &r, 4, 2);
    assert_eq!(draw.active.len(), 4);
    let drawn = |i: u8| {
        let node = probe[usize::from(i - 1)].0.node_address();
        draw.active.iter().find(|a| a.node == node).map(|a| a.layer)
    };
    let winners: Vec<u8> = (1..=6).filter(|i| drawn(*i).is_some()).collect();
    let loser = (1..=6).find(|i| drawn(*i).is_none()).unwrap();
    let liar = winners[0];
    let mut candidates = Vec::new();
    for (i, id) in &ids {
        let layer = match drawn(*i) {
            Some(l) if *i == liar => 1 - l,
            Some(l) => l,
            None => 0,
        };
        candidates.push((at_layer(*i, id, layer), Some(Ticket::draw(id, epoch, &r))));
    }
    // One mix with a ticket for another epoch, one with none at all.
    let (late_id, _) = candidate(7, 10);
    candidates.push((
        at_layer(7, &late_id, 0),
        Some(Ticket::draw(&late_id, epoch - 1, &r)),
    ));
    let (bare_id, _) = candidate(8, 10);
    candidates.push((at_layer(8, &bare_id, 1), None));

    let check = check_layers(candidates.clone(), epoch, &r, 4, 2, false);
    let refusal = |i: u8| {
        let node = candidates[usize::from(i - 1)].0.node_address();
        check
            .refused
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, r)| r.clone())
    };
    assert_eq!(
        refusal(liar),
        Some(LayerRefusal::WrongLayer {
            claimed: 1 - drawn(liar).unwrap(),
            drawn: drawn(liar).unwrap()
        })
    );
    assert_eq!(refusal(loser), Some(LayerRefusal::NotDrawn));
    assert_eq!(
        refusal(7),
        Some(LayerRefusal::Ticket(LotteryError::WrongEpoch {
            expected: epoch,
            got: epoch - 1
        }))
    );
    // The three honest winners and the ticketless mix are kept.
    assert_eq!(check.kept.len(), 4, "{:?}", check.refused);
    assert!(
        check
            .kept
            .iter()
            .any(|d| d.node_address() == candidates[7].0.node_address())
    );
    // With tickets required the ticketless mix goes too.
    let strict = check_layers(candidates, epoch, &r, 4, 2, true);
    assert_eq!(strict.kept.len(), 3);
    assert!(
        strict
            .refused
            .iter()
            .any(|(_, r)| *r == LayerRefusal::NoTicket)
    );
}
