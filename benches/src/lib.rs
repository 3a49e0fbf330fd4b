//! Fixtures for fog's benchmarks: the inputs every layer's hot path is
//! measured on, shared by the criterion benches (`benches/*.rs`) and the
//! instruction-count kernels that `cargo xtask bench` runs under callgrind
//! (`benches/instructions.rs`). Everything is seeded, so two runs measure the
//! same work.
//!
//! This crate composes layers (like fog-cli, it may depend on every layer
//! crate) and is never published. See `README.md` for how to read the report
//! of `cargo xtask bench`.
//!
//! ```
//! use fog_benches::{MixRoute, fresh_replay_filter};
//! use fog_mix::{PrivacyLevel, Processed};
//!
//! let route = MixRoute::new(PrivacyLevel::Private);
//! let mut rng = fog_benches::seeded_rng(1);
//! let packet = route.build(&mut rng);
//! let mut replay = fresh_replay_filter();
//! let out = route.first_hop().process(&packet, &mut replay).unwrap();
//! assert!(matches!(out, Processed::Forward { .. }));
//! ```

use std::time::Duration;

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    Destination, DestinationAddress, NodeAddress, Packet, PacketBuilder, PacketConfig,
    PrivacyLevel, Processor, REPLAY_TAG_LEN, ReplayConfig, ReplayFilter, RouteNode,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// A seeded cryptographic RNG, so packets and keys are the same every run.
pub fn seeded_rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// A mix route at one privacy level: one processor per hop with a fixed
/// Sphinx key, and a builder with the default packet configuration.
pub struct MixRoute {
    level: PrivacyLevel,
    builder: PacketBuilder,
    route: Vec<RouteNode>,
    secrets: Vec<StaticSecret>,
    processors: Vec<Processor>,
}

/// The message every benchmark packet carries.
pub const MIX_MESSAGE: &[u8] = b"fog benchmark message: a job spec or a result";

impl std::fmt::Debug for MixRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixRoute")
            .field("level", &self.level)
            .field("hops", &self.route.len())
            .finish_non_exhaustive()
    }
}

impl MixRoute {
    /// A route of `level.hops()` mixes with fixed keys.
    pub fn new(level: PrivacyLevel) -> Self {
        let config = PacketConfig::default();
        let secrets: Vec<StaticSecret> = (1..=level.hops())
            .map(|i| StaticSecret::from([i as u8; 32]))
            .collect();
        let processors: Vec<Processor> = secrets
            .iter()
            .map(|s| Processor::new(s.clone(), config).expect("default config is valid"))
            .collect();
        let route = processors
            .iter()
            .enumerate()
            .map(|(i, p)| {
                RouteNode::new(NodeAddress::from_bytes([i as u8 + 1; 32]), p.public_key())
            })
            .collect();
        MixRoute {
            level,
            builder: PacketBuilder::new(config).expect("default config is valid"),
            route,
            secrets,
            processors,
        }
    }

    /// The privacy level.
    pub fn level(&self) -> PrivacyLevel {
        self.level
    }

    /// Builds one packet for the route (fresh ephemeral key from `rng`).
    pub fn build(&self, rng: &mut ChaCha20Rng) -> Packet {
        let destination = Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]);
        let delays = vec![Duration::from_millis(10); self.level.hops().saturating_sub(1)];
        self.builder
            .build_with_delays(
                self.level,
                &self.route,
                destination,
                MIX_MESSAGE,
                &delays,
                rng,
            )
            .expect("benchmark route matches its level")
            .packet
    }

    /// The first mix of the route.
    pub fn first_hop(&self) -> &Processor {
        &self.processors[0]
    }

    /// The first mix's Sphinx secret (for the plain `sphinx-packet` reference).
    pub fn first_hop_secret(&self) -> &StaticSecret {
        &self.secrets[0]
    }
}

/// Packets a fresh replay filter is sized for (about 3.6 MB of bits at the
/// default false-positive rate); a benchmark that inserts more replaces it.
pub const REPLAY_CAPACITY: u64 = 1_000_000;

/// An in-memory replay filter for [`REPLAY_CAPACITY`] packets.
pub fn fresh_replay_filter() -> ReplayFilter {
    ReplayFilter::in_memory(0, &ReplayConfig::new(REPLAY_CAPACITY)).expect("valid replay config")
}

/// The `n`-th distinct replay tag (a counter spread over the tag by a
/// multiplicative hash, so tags do not share prefixes).
pub fn replay_tag(n: u64) -> [u8; REPLAY_TAG_LEN] {
    let mut tag = [0u8; REPLAY_TAG_LEN];
    let mut x = n.wrapping_add(1);
    for chunk in tag.chunks_mut(8) {
        x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) ^ n;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    tag
}

/// fog-sched fixtures.
pub mod sched {
    use fog_sched::model::{Cluster, Job};
    use fog_sched::nsga2::{Nsga2, Nsga2Config, Outcome, Zdt, ZdtKind};
    use fog_sched::placement::Scheduler;
    use fog_sched::synthetic;

    /// Population of the NSGA-II benchmarks (pymoo's default).
    pub const POPULATION: usize = 100;

    /// Runs NSGA-II on ZDT1 with the defaults, population [`POPULATION`],
    /// for the initial population plus `generations` generations.
    pub fn nsga2_zdt1(generations: usize, seed: u64) -> Outcome {
        let mut config = Nsga2Config::with_seed(seed);
        config.population = POPULATION;
        config.max_evaluations = POPULATION * (generations + 1);
        Nsga2::new(config)
            .run(&Zdt::new(ZdtKind::Zdt1))
            .expect("ZDT1 runs")
    }

    /// A fast-path scheduler over `nodes` synthetic nodes and a stream of
    /// synthetic jobs to place on it.
    pub fn scheduler(nodes: usize, jobs: usize) -> (Scheduler, Vec<Job>) {
        let cluster = Cluster::new(synthetic::nodes(nodes, 1));
        (Scheduler::new(cluster, 1), synthetic::jobs(jobs, 0, 1))
    }
}

/// fog-mesh fixtures.
pub mod mesh {
    use fog_mesh::{
        Bundle, BundleBuilder, EndpointId, NodeId, Prophet, ProphetParams, RoutingInfo,
    };

    /// A bundle from `dtn://a/app` to `dtn://b/app` with `payload` bytes.
    pub fn bundle(payload: usize) -> Bundle {
        BundleBuilder::new(
            EndpointId::dtn("a", "app").expect("valid eid"),
            EndpointId::dtn("b", "app").expect("valid eid"),
        )
        .payload(vec![0x42; payload])
        .build()
    }

    /// A PRoPHET router on node 0 and the predictability table a neighbour
    /// sends on contact: `destinations` entries.
    pub fn prophet(destinations: u64) -> (Prophet, RoutingInfo) {
        let router = Prophet::new(NodeId(0), ProphetParams::default());
        let table = (1..=destinations)
            .map(|d| {
                (
                    NodeId(1_000 + d),
                    0.1 + 0.8 * (d as f64 / destinations as f64),
                )
            })
            .collect();
        (router, RoutingInfo::Predictabilities(table))
    }
}

/// fog-dao fixtures.
pub mod dao {
    use fog_dao::merkle::{Hash, leaf_hash};
    use fog_dao::{Body, Choice, Event, SigningKey};

    /// The ledger id the benchmark votes are signed for.
    pub const LEDGER_ID: [u8; 32] = [7; 32];

    /// `n` signed votes from 256 voters (as `fog bench dao` signs them).
    pub fn votes(n: u64) -> Vec<Event> {
        let voters: Vec<SigningKey> = (0..=255u8)
            .map(|i| SigningKey::from_seed([i; 32]))
            .collect();
        (0..n)
            .map(|i| {
                Event::sign(
                    &voters[(i % 256) as usize],
                    &LEDGER_ID,
                    i / 256,
                    i,
                    Body::Vote {
                        proposal: i % 7,
                        choice: Choice::For,
                    },
                )
            })
            .collect()
    }

    /// `n` Merkle leaves.
    pub fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }
}

/// fog-exec fixtures.
pub mod exec {
    use fog_exec::{Limits, WasmConfig, WasmEngine, WasmWorkload};

    /// A WASM engine with the default configuration, the example module that
    /// prints "hi" and default limits.
    pub fn hello() -> (WasmEngine, WasmWorkload, Limits) {
        let engine = WasmEngine::new(WasmConfig::default()).expect("wasmtime engine");
        let workload = WasmWorkload::new(fog_exec::examples::HELLO_WASM);
        (engine, workload, Limits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_tags_are_distinct() {
        let tags: std::collections::HashSet<_> = (0..10_000).map(replay_tag).collect();
        assert_eq!(tags.len(), 10_000);
    }

    #[test]
    fn every_level_builds_and_its_first_hop_processes() {
        let mut rng = seeded_rng(3);
        for level in PrivacyLevel::ALL {
            let route = MixRoute::new(level);
            let packet = route.build(&mut rng);
            let mut replay = fresh_replay_filter();
            route
                .first_hop()
                .process(&packet, &mut replay)
                .expect("first hop processes");
        }
    }

    #[test]
    fn nsga2_fixture_counts_generations() {
        assert_eq!(sched::nsga2_zdt1(2, 1).generations(), 2);
    }

    #[test]
    fn votes_verify() {
        let votes = dao::votes(8);
        assert!(fog_dao::verify_batch(&dao::LEDGER_ID, &votes));
    }
}
