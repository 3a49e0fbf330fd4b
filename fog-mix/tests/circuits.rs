//! Path selection and circuit pools.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    CircuitPool, DescriptorBuilder, Directory, NodeAddress, NodeDescriptor, NodeIdentity,
    PoolConfig, PrivacyLevel,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

fn descriptor(i: u8, layer: u8, stake: u64, family: &str, address: &str) -> NodeDescriptor {
    let identity = NodeIdentity::from_seed(&[i; 32]);
    DescriptorBuilder::new(PublicKey::from(&StaticSecret::from([i; 32])), 1, address)
        .layer(layer)
        .stake(stake)
        .family(family)
        .sign(&identity)
        .unwrap()
}

/// Three layers of four mixes, each in its own /16 and family.
fn network() -> Vec<NodeDescriptor> {
    (0..12u8)
        .map(|i| {
            descriptor(
                i + 1,
                i % 3,
                100,
                &format!("op{i}"),
                &format!("10.{i}.0.1:1789"),
            )
        })
        .collect()
}

#[test]
fn routes_take_one_mix_per_layer_and_never_share_family_or_subnet() {
    let mut descriptors = network();
    // Two extra mixes that collide: same family as mix 0, same /16 as mix 1.
    descriptors.push(descriptor(40, 1, 100, "op0", "10.200.0.1:1789"));
    descriptors.push(descriptor(41, 2, 100, "x", "10.1.7.7:1789"));
    let (dir, rejected) = Directory::new(descriptors);
    assert!(rejected.is_empty());
    assert_eq!(dir.layers(), 3);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for level in [
        PrivacyLevel::Public,
        PrivacyLevel::Private,
        PrivacyLevel::Confidential,
        PrivacyLevel::Secret,
    ] {
        for _ in 0..300 {
            let route = dir.select(level, &HashSet::new(), &mut rng).unwrap();
            assert_eq!(route.len(), level.hops());
            let ds: Vec<&NodeDescriptor> = route.iter().map(|a| dir.get(*a).unwrap()).collect();
            for (hop, d) in ds.iter().enumerate() {
                assert_eq!(usize::from(d.layer()), hop % 3);
            }
            let families: HashSet<&str> = ds.iter().map(|d| d.family()).collect();
            assert_eq!(families.len(), ds.len(), "family repeated in {ds:?}");
            let subnets: HashSet<String> = ds
                .iter()
                .map(|d| d.address().split('.').take(2).collect::<Vec<_>>().join("."))
                .collect();
            assert_eq!(subnets.len(), ds.len(), "/16 repeated in {ds:?}");
        }
    }
}

#[test]
fn ipv6_mixes_in_one_slash_32_never_share_a_route() {
    let descriptors = vec![
        descriptor(1, 0, 1, "a", "[2001:db8:1::1]:1"),
        descriptor(2, 1, 1, "b", "[2001:db8:2::1]:1"),
        descriptor(3, 1, 1, "c", "[2001:db9::1]:1"),
    ];
    let (dir, _) = Directory::new(descriptors);
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for _ in 0..50 {
        let route = dir
            .select(PrivacyLevel::Public, &HashSet::new(), &mut rng)
            .unwrap();
        assert_eq!(route.len(), 1);
    }
    // Two hops: layer 1 must be the mix outside 2001:db8::/32.
    let two = Directory::new(vec![
        descriptor(1, 0, 1, "a", "[2001:db8:1::1]:1"),
        descriptor(2, 1, 1, "b", "[2001:db8:2::1]:1"),
        descriptor(3, 1, 1, "c", "[2001:db9::1]:1"),
        descriptor(4, 2, 1, "d", "[2001:dba::1]:1"),
    ])
    .0;
    for _ in 0..50 {
        let route = two
            .select(PrivacyLevel::Private, &HashSet::new(), &mut rng)
            .unwrap();
        assert_eq!(two.get(route[1]).unwrap().address(), "[2001:db9::1]:1");
    }
}

#[test]
fn hops_are_drawn_in_proportion_to_stake_times_reputation() {
    // Layer 0: stakes 1, 2, 3, 4 (and one with reputation 0).
    let mut descriptors: Vec<NodeDescriptor> = (1..=4u8)
        .map(|i| {
            descriptor(
                i,
                0,
                u64::from(i) * 1000,
                &format!("f{i}"),
                &format!("10.{i}.0.1:1"),
            )
        })
        .collect();
    descriptors.push(descriptor(9, 0, 50_000, "f9", "10.9.0.1:1"));
    let (mut dir, _) = Directory::new(descriptors);
    let banned = dir
        .descriptors()
        .find(|d| d.stake() == 50_000)
        .unwrap()
        .node_address();
    assert!(dir.set_reputation(banned, 0.0));
    // Halving one mix's reputation halves its weight: stake 4000 * 0.5.
    let four = dir
        .descriptors()
        .find(|d| d.stake() == 4000)
        .unwrap()
        .node_address();
    dir.set_reputation(four, 0.5);
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut counts: HashMap<NodeAddress, u64> = HashMap::new();
    let n = 40_000u64;
    for _ in 0..n {
        let r = dir
            .select(PrivacyLevel::Public, &HashSet::new(), &mut rng)
            .unwrap();
        *counts.entry(r[0]).or_default() += 1;
    }
    assert!(!counts.contains_key(&banned));
    // Weights 1000, 2000, 3000, 2000 (4000 * 0.5): total 8000.
    let mut chi2 = 0.0;
    for d in dir.descriptors().filter(|d| d.stake() < 50_000) {
        let w = if d.stake() == 4000 {
            2000.0
        } else {
            d.stake() as f64
        };
        let expected = n as f64 * w / 8000.0;
        let got = *counts.get(&d.node_address()).unwrap_or(&0) as f64;
        chi2 += (got - expected).powi(2) / expected;
    }
    // 3 degrees of freedom: the 0.999 quantile is 16.27.
    assert!(chi2 < 16.27, "chi2 = {chi2}, counts {counts:?}");
}

#[test]
fn pools_rotate_on_lifetime_and_rebuild_around_failed_mixes() {
    let (dir, _) = Directory::new(network());
    let mut config = PoolConfig::default();
    config.circuits_per_level = 3;
    config.lifetime = Duration::from_mins(1);
    config.failure_ttl = Duration::from_secs(30);
    let mut pool = CircuitPool::new(dir, config);
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let t0 = Duration::from_secs(1);
    let c = pool.circuit(PrivacyLevel::Private, t0, &mut rng).unwrap();
    assert_eq!(pool.pooled(PrivacyLevel::Private).len(), 3);
    // Within the lifetime the pool is reused.
    let before: Vec<_> = pool.pooled(PrivacyLevel::Private).to_vec();
    pool.circuit(
        PrivacyLevel::Private,
        t0 + Duration::from_secs(10),
        &mut rng,
    )
    .unwrap();
    assert_eq!(pool.pooled(PrivacyLevel::Private), before.as_slice());
    // A failed mix: no circuit goes through it until its TTL passes.
    let dead = c.route()[1];
    pool.mark_failed(dead, t0 + Duration::from_secs(11));
    for s in 12..40 {
        let c = pool
            .circuit(PrivacyLevel::Private, t0 + Duration::from_secs(s), &mut rng)
            .unwrap();
        assert!(!c.route().contains(&dead));
        assert!(
            pool.pooled(PrivacyLevel::Private)
                .iter()
                .all(|c| !c.route().contains(&dead))
        );
    }
    assert!(pool.rebuilt() >= 1);
    // After the lifetime every circuit is new.
    let later = t0 + Duration::from_secs(200);
    pool.circuit(PrivacyLevel::Private, later, &mut rng)
        .unwrap();
    assert!(
        pool.pooled(PrivacyLevel::Private)
            .iter()
            .all(|c| c.built() == later)
    );
}

#[test]
fn an_impossible_route_is_an_error_not_a_loop() {
    // Every mix in one family: only one-hop routes exist.
    let descriptors: Vec<NodeDescriptor> = (0..6u8)
        .map(|i| descriptor(i + 1, i % 3, 10, "same", &format!("10.{i}.0.1:1")))
        .collect();
    let (dir, _) = Directory::new(descriptors);
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    assert!(
        dir.select(PrivacyLevel::Public, &HashSet::new(), &mut rng)
            .is_ok()
    );
    assert!(
        dir.select(PrivacyLevel::Private, &HashSet::new(), &mut rng)
            .is_err()
    );
    assert!(
        Directory::default()
            .select(PrivacyLevel::Public, &HashSet::new(), &mut rng)
            .is_err()
    );
}
