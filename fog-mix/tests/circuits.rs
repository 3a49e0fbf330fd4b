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

/// Three layers of five mixes in their own families and /16s, plus mixes
/// that collide: a layer-1 mix in layer-0 mix `op0_0`'s family, a layer-0
/// mix in `op0_1`'s family, a layer-0 mix in `10.2/16` and a layer-2 mix in
/// `10.6/16` (both held by other mixes), and two mixes of the empty family.
fn colliding_network() -> Vec<NodeDescriptor> {
    let mut descriptors: Vec<NodeDescriptor> = (0..15u8)
        .map(|i| {
            let (layer, j) = (i / 5, i % 5);
            descriptor(
                i + 1,
                layer,
                100,
                &format!("op{layer}_{j}"),
                &format!("10.{i}.0.1:1789"),
            )
        })
        .collect();
    descriptors.push(descriptor(40, 1, 100, "op0_0", "10.200.0.1:1789"));
    descriptors.push(descriptor(41, 0, 100, "op0_1", "10.201.0.1:1789"));
    descriptors.push(descriptor(42, 0, 100, "x42", "10.2.5.5:1789"));
    descriptors.push(descriptor(43, 2, 100, "x43", "10.6.9.9:1789"));
    descriptors.push(descriptor(44, 1, 100, "", "10.202.0.1:1789"));
    descriptors.push(descriptor(45, 2, 100, "", "10.203.0.1:1789"));
    descriptors
}

/// Asserts that `route` is a valid `level` route over `dir`: `level.hops()`
/// mixes, hop `i` from layer `i mod layers`, no mix twice, no non-empty
/// family twice and no IPv4 /16 twice.
fn assert_valid_route(dir: &Directory, level: PrivacyLevel, route: &[NodeAddress]) {
    assert_eq!(route.len(), level.hops(), "{level} route {route:?}");
    let layers = usize::from(dir.layers());
    let ds: Vec<&NodeDescriptor> = route.iter().map(|a| dir.get(*a).unwrap()).collect();
    for (hop, d) in ds.iter().enumerate() {
        assert_eq!(usize::from(d.layer()), hop % layers, "{level} hop {hop}");
    }
    let mixes: HashSet<NodeAddress> = route.iter().copied().collect();
    assert_eq!(mixes.len(), route.len(), "{level}: mix repeated");
    let families: Vec<&str> = ds
        .iter()
        .map(|d| d.family())
        .filter(|f| !f.is_empty())
        .collect();
    let distinct: HashSet<&str> = families.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        families.len(),
        "{level}: family repeated in {ds:?}"
    );
    let subnets: HashSet<String> = ds
        .iter()
        .map(|d| d.address().split('.').take(2).collect::<Vec<_>>().join("."))
        .collect();
    assert_eq!(subnets.len(), ds.len(), "{level}: /16 repeated in {ds:?}");
}

/// One `CircuitPool` serves every privacy level: PUBLIC, PRIVATE,
/// CONFIDENTIAL and SECRET circuits have 1, 3, 5 and 7 hops, hop `i` from
/// layer `i mod 3`, with no family or /16 twice in a circuit (on a directory
/// that has family and /16 collisions, within and across layers). Every
/// level's pool is reused until exactly the lifetime has passed and is then
/// rebuilt in full. A mix reported failed is dropped from every level's
/// pool at once (each dropped circuit counted as rebuilt), and no level
/// routes through it while it is excluded, even across two further
/// rotations that rebuild every pool.
#[test]
fn pools_serve_every_level_and_rotate_and_avoid_failed_mixes_per_level() {
    let (dir, rejected) = Directory::new(colliding_network());
    assert!(rejected.is_empty());
    assert_eq!(dir.layers(), 3);
    let mut config = PoolConfig::default();
    config.circuits_per_level = 6;
    config.lifetime = Duration::from_mins(1);
    // Longer than the lifetime: rotations happen while the mix is excluded.
    config.failure_ttl = Duration::from_secs(150);
    let per_level = config.circuits_per_level;
    let mut pool = CircuitPool::new(dir.clone(), config);
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let check_pools = |pool: &CircuitPool, built: Option<Duration>| {
        for level in PrivacyLevel::ALL {
            let pooled = pool.pooled(level);
            assert_eq!(pooled.len(), per_level, "{level}");
            for c in pooled {
                assert_eq!(c.level(), level);
                assert_valid_route(&dir, level, c.route());
                if let Some(t) = built {
                    assert_eq!(c.built(), t, "{level}");
                }
            }
        }
    };

    // Every level's pool is filled on its first request.
    let t0 = Duration::from_secs(1);
    for level in PrivacyLevel::ALL {
        let c = pool.circuit(level, t0, &mut rng).unwrap();
        assert_eq!(c.level(), level);
        assert_eq!(c.route().len(), level.hops());
        assert!(pool.pooled(level).contains(&c));
    }
    assert_eq!(
        PrivacyLevel::ALL.map(PrivacyLevel::hops),
        [1, 3, 5, 7],
        "hop counts per level"
    );
    check_pools(&pool, Some(t0));
    assert_eq!(pool.rebuilt(), 0);

    // Just inside the lifetime every pool is reused as it is.
    let before: HashMap<PrivacyLevel, Vec<_>> = PrivacyLevel::ALL
        .iter()
        .map(|&l| (l, pool.pooled(l).to_vec()))
        .collect();
    let almost = (t0 + config.lifetime)
        .checked_sub(Duration::from_nanos(1))
        .unwrap();
    for level in PrivacyLevel::ALL {
        let c = pool.circuit(level, almost, &mut rng).unwrap();
        assert!(before[&level].contains(&c));
        assert_eq!(pool.pooled(level), before[&level].as_slice());
    }
    assert_eq!(pool.rebuilt(), 0);

    // At the lifetime every circuit of every level is replaced.
    let t1 = t0 + config.lifetime;
    for level in PrivacyLevel::ALL {
        pool.circuit(level, t1, &mut rng).unwrap();
    }
    check_pools(&pool, Some(t1));
    assert_eq!(pool.rebuilt(), (4 * per_level) as u64);

    // A layer-0 mix that every level's pool routes through fails.
    let dead = dir
        .descriptors()
        .filter(|d| d.layer() == 0)
        .map(NodeDescriptor::node_address)
        .find(|a| {
            PrivacyLevel::ALL
                .iter()
                .all(|&l| pool.pooled(l).iter().any(|c| c.route().contains(a)))
        })
        .expect("a layer-0 mix in every level's pool (seed-dependent)");
    let through_dead: usize = PrivacyLevel::ALL
        .iter()
        .map(|&l| {
            pool.pooled(l)
                .iter()
                .filter(|c| c.route().contains(&dead))
                .count()
        })
        .sum();
    let rebuilt = pool.rebuilt();
    let tf = t1 + Duration::from_secs(1);
    pool.mark_failed(dead, tf);
    assert_eq!(pool.rebuilt(), rebuilt + through_dead as u64);
    for level in PrivacyLevel::ALL {
        assert!(pool.pooled(level).len() < per_level, "{level}");
        assert!(
            pool.pooled(level)
                .iter()
                .all(|c| !c.route().contains(&dead))
        );
    }

    // While it is excluded (two more rotations, at t1 + 60 s and + 120 s),
    // no level's circuit goes through it.
    let mut t = tf;
    while t < tf + config.failure_ttl {
        for level in PrivacyLevel::ALL {
            let c = pool.circuit(level, t, &mut rng).unwrap();
            assert!(!c.route().contains(&dead), "{level} at {t:?}");
        }
        check_pools(&pool, None);
        for level in PrivacyLevel::ALL {
            assert!(
                pool.pooled(level)
                    .iter()
                    .all(|c| !c.route().contains(&dead)),
                "{level} at {t:?}"
            );
        }
        t += Duration::from_secs(5);
    }
    assert_eq!(
        pool.rebuilt(),
        rebuilt + through_dead as u64 + 2 * (4 * per_level) as u64,
        "two full rotations while the mix was excluded"
    );
}

/// Failure exclusion expires: a mix reported failed at `tf` is left out of
/// every level's circuits while `now - tf < failure_ttl` (checked every
/// second, across two rotations, and one nanosecond before the TTL ends),
/// and from `tf + failure_ttl` on it is eligible again: the rotation at
/// exactly that instant already routes through it, no circuit through it
/// was built earlier, and later rotations put it back in every level's
/// circuits.
#[test]
fn a_failed_mix_is_used_again_once_its_failure_ttl_has_passed() {
    let (dir, _) = Directory::new(colliding_network());
    let mut config = PoolConfig::default();
    config.circuits_per_level = 6;
    config.lifetime = Duration::from_secs(10);
    config.failure_ttl = Duration::from_secs(30);
    let per_level = config.circuits_per_level;
    let mut pool = CircuitPool::new(dir.clone(), config);
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let t0 = Duration::from_secs(1);
    for level in PrivacyLevel::ALL {
        pool.circuit(level, t0, &mut rng).unwrap();
    }
    // A layer-0 mix (every level draws hop 0 from layer 0) fails at once,
    // so every circuit from here on is built at t0 + k * lifetime.
    let dead = pool.pooled(PrivacyLevel::Public)[0].route()[0];
    let tf = t0;
    pool.mark_failed(dead, tf);
    let expiry = tf + config.failure_ttl;
    let avoided = |pool: &CircuitPool, level: PrivacyLevel| {
        pool.pooled(level)
            .iter()
            .all(|c| !c.route().contains(&dead))
    };

    // Up to the last nanosecond of the TTL (rotations at +10 s and +20 s),
    // never used.
    let mut times: Vec<Duration> = (0..30).map(|s| tf + Duration::from_secs(s)).collect();
    times.push(expiry.checked_sub(Duration::from_nanos(1)).unwrap());
    for &t in &times {
        for level in PrivacyLevel::ALL {
            let c = pool.circuit(level, t, &mut rng).unwrap();
            assert!(!c.route().contains(&dead), "{level} at {t:?}");
            assert!(avoided(&pool, level), "{level} at {t:?}");
        }
    }

    // At the TTL's end (also a rotation) every pool is rebuilt, and the mix
    // is eligible again.
    for level in PrivacyLevel::ALL {
        pool.circuit(level, expiry, &mut rng).unwrap();
        assert_eq!(pool.pooled(level).len(), per_level);
        assert!(pool.pooled(level).iter().all(|c| c.built() == expiry));
    }
    assert!(
        PrivacyLevel::ALL.iter().any(|&l| !avoided(&pool, l)),
        "the mix should be usable from the TTL's end"
    );

    // Later rotations bring it back into every level's circuits. (Over
    // these ~290 circuits the two empty-family mixes also share one: an
    // empty family is nobody's.)
    let unaffiliated: Vec<NodeAddress> = dir
        .descriptors()
        .filter(|d| d.family().is_empty())
        .map(NodeDescriptor::node_address)
        .collect();
    assert_eq!(unaffiliated.len(), 2);
    let mut unaffiliated_together = false;
    let mut used_by: HashSet<PrivacyLevel> = HashSet::new();
    for s in 0..120 {
        let t = expiry + Duration::from_secs(s);
        for level in PrivacyLevel::ALL {
            pool.circuit(level, t, &mut rng).unwrap();
            for c in pool.pooled(level) {
                assert_valid_route(&dir, level, c.route());
                if c.route().contains(&dead) {
                    assert!(c.built() >= expiry, "{level}: {c:?}");
                    used_by.insert(level);
                }
                unaffiliated_together |= unaffiliated.iter().all(|a| c.route().contains(a));
            }
        }
    }
    assert_eq!(
        used_by.len(),
        4,
        "the mix should be back in every level's circuits, got {used_by:?}"
    );
    assert!(unaffiliated_together);
}
