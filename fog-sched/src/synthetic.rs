//! Seeded synthetic clusters and job streams, for benchmarks, tests and
//! demos.

use crate::model::{
    Coordinates, Job, JobId, Node, NodeId, PrivacyLevel, Resources, SlaClass, Tier,
};
use crate::rng::SeededRng;

/// `n` nodes with mixed tiers, capacities, prices, reputations and positions,
/// the same for the same seed.
pub fn nodes(n: usize, seed: u64) -> Vec<Node> {
    let mut rng = SeededRng::new(seed ^ 0x6e6f_6465);
    (0..n)
        .map(|i| {
            let tier = Tier::ALL[rng.below(4)];
            let (cpu, mem, gpu, price) = match tier {
                Tier::Cloud => (32_000, 131_072, rng.below(3) as u64, 1.0),
                Tier::Edge => (16_000, 65_536, rng.below(2) as u64, 0.8),
                Tier::Fog => (8_000, 16_384, 0, 0.5),
                _ => (4_000, 8_192, 0, 0.3),
            };
            let privacy = [
                PrivacyLevel::Public,
                PrivacyLevel::Private,
                PrivacyLevel::Confidential,
                PrivacyLevel::Secret,
            ][rng.below(4)];
            Node::new(NodeId::new(i as u64), Resources::new(cpu, mem, gpu))
                .with_tier(tier)
                .with_price(price * (0.5 + rng.unit()))
                .with_reputation(0.5 + 0.5 * rng.unit())
                .with_max_privacy(privacy)
                .with_coordinates(Coordinates::new(
                    rng.unit() * 200.0 - 100.0,
                    rng.unit() * 200.0 - 100.0,
                    1.0 + rng.unit() * 10.0,
                ))
        })
        .collect()
}

/// `m` jobs with small, mixed resource requests, classes and privacy levels,
/// the same for the same seed. Job ids start at `first_id`.
pub fn jobs(m: usize, first_id: u64, seed: u64) -> Vec<Job> {
    let mut rng = SeededRng::new(seed ^ 0x6a6f_6273);
    (0..m)
        .map(|i| {
            let class = [SlaClass::S, SlaClass::A, SlaClass::B][rng.below(3)];
            let privacy = if rng.chance(0.8) {
                PrivacyLevel::Public
            } else {
                PrivacyLevel::Private
            };
            Job::new(
                JobId::new(first_id + i as u64),
                Resources::new(
                    250 * (1 + rng.below(8) as u64),
                    256 * (1 + rng.below(8) as u64),
                    0,
                ),
            )
            .with_class(class)
            .with_privacy(privacy)
            .with_duration_s(30.0 + rng.unit() * 600.0)
            .with_origin(Coordinates::new(
                rng.unit() * 200.0 - 100.0,
                rng.unit() * 200.0 - 100.0,
                1.0,
            ))
        })
        .collect()
}
