//! Client-side circuits: path selection over a layered directory and
//! per-level pools rotated on a lifetime.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand::{Rng, RngExt};

use crate::descriptor::NodeDescriptor;
use crate::level::PrivacyLevel;
use crate::packet::{NodeAddress, RouteNode};

/// Why no circuit could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CircuitError {
    /// No node is eligible for a hop under the diversity rules.
    #[error("no eligible node for hop {hop} (layer {layer}) of a {level} circuit")]
    NoCandidate {
        /// The level.
        level: PrivacyLevel,
        /// The hop, from 0.
        hop: usize,
        /// The layer the hop draws from.
        layer: u8,
    },
    /// The directory has no layers.
    #[error("the directory is empty")]
    EmptyDirectory,
}

/// A mix as a client sees it: its verified descriptor and a reputation
/// score in `[0, 1]` (default 1).
#[derive(Debug, Clone)]
struct Entry {
    descriptor: NodeDescriptor,
    reputation: f64,
    group: Option<Group>,
}

/// The network group of an address: /16 for IPv4, /32 for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    V4([u8; 2]),
    V6([u8; 4]),
}

fn group_of(address: &str) -> Option<Group> {
    let ip = address
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| address.parse::<IpAddr>())
        .ok()?;
    Some(match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            Group::V4([o[0], o[1]])
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let o = v4.octets();
                Group::V4([o[0], o[1]])
            } else {
                let o = v6.octets();
                Group::V6([o[0], o[1], o[2], o[3]])
            }
        }
    })
}

/// The mixes a client routes over: verified descriptors grouped by layer,
/// each with a reputation. Layers are numbered from 0; hop `i` of a circuit
/// is drawn from layer `i mod layers`.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: Vec<Entry>,
    index: HashMap<NodeAddress, usize>,
    layers: u8,
}

impl Directory {
    /// A directory of `descriptors` (their signatures are checked; a
    /// descriptor that does not verify is skipped and returned). A later
    /// descriptor for the same node replaces an earlier one.
    pub fn new(
        descriptors: impl IntoIterator<Item = NodeDescriptor>,
    ) -> (Self, Vec<NodeDescriptor>) {
        let mut d = Directory::default();
        let mut rejected = Vec::new();
        for descriptor in descriptors {
            if descriptor.verify().is_err() {
                rejected.push(descriptor);
                continue;
            }
            d.insert(descriptor);
        }
        (d, rejected)
    }

    fn insert(&mut self, descriptor: NodeDescriptor) {
        let address = descriptor.node_address();
        self.layers = self.layers.max(descriptor.layer().saturating_add(1));
        let entry = Entry {
            group: group_of(descriptor.address()),
            descriptor,
            reputation: 1.0,
        };
        if let Some(&i) = self.index.get(&address) {
            self.entries[i] = entry;
        } else {
            self.index.insert(address, self.entries.len());
            self.entries.push(entry);
        }
    }

    /// Number of layers (highest layer + 1).
    pub fn layers(&self) -> u8 {
        self.layers
    }

    /// Number of mixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the directory holds no mix.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The descriptor of a mix.
    pub fn get(&self, node: NodeAddress) -> Option<&NodeDescriptor> {
        self.index.get(&node).map(|&i| &self.entries[i].descriptor)
    }

    /// Every descriptor.
    pub fn descriptors(&self) -> impl Iterator<Item = &NodeDescriptor> {
        self.entries.iter().map(|e| &e.descriptor)
    }

    /// Sets a mix's reputation (clamped to `[0, 1]`; NaN counts as 0).
    /// Returns false for an unknown mix.
    pub fn set_reputation(&mut self, node: NodeAddress, reputation: f64) -> bool {
        match self.index.get(&node) {
            Some(&i) => {
                self.entries[i].reputation = if reputation.is_nan() {
                    0.0
                } else {
                    reputation.clamp(0.0, 1.0)
                };
                true
            }
            None => false,
        }
    }

    fn weight(&self, i: usize) -> f64 {
        let e = &self.entries[i];
        e.descriptor.stake() as f64 * e.reputation
    }

    /// Picks a route for `level`: one mix per hop, hop `i` from layer
    /// `i mod layers`, each drawn with probability proportional to stake ×
    /// reputation among the mixes still allowed: not in `exclude`, not
    /// already on the route, not of an operator family already on it (an
    /// empty family is nobody's), and not in a /16 (IPv4) or /32 (IPv6)
    /// already on it. Mixes of weight zero are never chosen.
    pub fn select<R: Rng + ?Sized>(
        &self,
        level: PrivacyLevel,
        exclude: &HashSet<NodeAddress>,
        rng: &mut R,
    ) -> Result<Vec<NodeAddress>, CircuitError> {
        if self.layers == 0 {
            return Err(CircuitError::EmptyDirectory);
        }
        // Greedy draws can paint themselves into a corner; a few fresh
        // attempts find a route whenever one is likely to exist.
        let mut last = None;
        for _ in 0..16 {
            match self.try_select(level, exclude, rng) {
                Ok(route) => return Ok(route),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(CircuitError::EmptyDirectory))
    }

    fn try_select<R: Rng + ?Sized>(
        &self,
        level: PrivacyLevel,
        exclude: &HashSet<NodeAddress>,
        rng: &mut R,
    ) -> Result<Vec<NodeAddress>, CircuitError> {
        let mut chosen: Vec<usize> = Vec::with_capacity(level.hops());
        for hop in 0..level.hops() {
            let layer = (hop % usize::from(self.layers)) as u8;
            let candidates: Vec<(usize, f64)> = (0..self.entries.len())
                .filter(|&i| {
                    let e = &self.entries[i];
                    e.descriptor.layer() == layer
                        && !exclude.contains(&e.descriptor.node_address())
                        && self.compatible(i, &chosen)
                })
                .map(|i| (i, self.weight(i)))
                .filter(|&(_, w)| w > 0.0)
                .collect();
            let total: f64 = candidates.iter().map(|(_, w)| w).sum();
            if candidates.is_empty() || total <= 0.0 {
                return Err(CircuitError::NoCandidate { level, hop, layer });
            }
            let mut x = rng.random::<f64>() * total;
            let mut pick = candidates[candidates.len() - 1].0;
            for &(i, w) in &candidates {
                if x < w {
                    pick = i;
                    break;
                }
                x -= w;
            }
            chosen.push(pick);
        }
        Ok(chosen
            .into_iter()
            .map(|i| self.entries[i].descriptor.node_address())
            .collect())
    }

    fn compatible(&self, i: usize, chosen: &[usize]) -> bool {
        let e = &self.entries[i];
        chosen.iter().all(|&j| {
            let o = &self.entries[j];
            j != i
                && (e.descriptor.family().is_empty()
                    || e.descriptor.family() != o.descriptor.family())
                && (e.group.is_none() || e.group != o.group)
        })
    }

    /// The route nodes (addresses and Sphinx keys) of `route`, or `None` if
    /// a mix is no longer in the directory.
    pub fn route_nodes(&self, route: &[NodeAddress]) -> Option<Vec<RouteNode>> {
        route
            .iter()
            .map(|a| self.get(*a).map(NodeDescriptor::route_node))
            .collect()
    }
}

/// Circuit pool parameters.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PoolConfig {
    /// Circuits kept per privacy level (default 4).
    pub circuits_per_level: usize,
    /// How long a circuit is used before it is replaced (default 10 min).
    pub lifetime: Duration,
    /// How long a failed mix stays excluded (default 5 min).
    pub failure_ttl: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            circuits_per_level: 4,
            lifetime: Duration::from_mins(10),
            failure_ttl: Duration::from_mins(5),
        }
    }
}

/// A route for one privacy level and when it was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    level: PrivacyLevel,
    route: Vec<NodeAddress>,
    built: Duration,
}

impl Circuit {
    /// The level.
    pub fn level(&self) -> PrivacyLevel {
        self.level
    }

    /// The mixes, in order.
    pub fn route(&self) -> &[NodeAddress] {
        &self.route
    }

    /// When it was built (on the pool's clock).
    pub fn built(&self) -> Duration {
        self.built
    }
}

/// Per-level pools of circuits: each circuit is replaced after its
/// lifetime, and a mix reported failed is excluded (for
/// [`PoolConfig::failure_ttl`]) and every circuit through it rebuilt at
/// once. Time is an input (`now` on any monotonic origin), as everywhere in
/// fog-mix. Each pool holds at most `circuits_per_level` circuits.
#[derive(Debug)]
pub struct CircuitPool {
    config: PoolConfig,
    directory: Directory,
    pools: HashMap<PrivacyLevel, Vec<Circuit>>,
    failed: HashMap<NodeAddress, Duration>,
    rebuilt: u64,
}

impl CircuitPool {
    /// A pool over `directory`.
    pub fn new(directory: Directory, config: PoolConfig) -> Self {
        CircuitPool {
            config,
            directory,
            pools: HashMap::new(),
            failed: HashMap::new(),
            rebuilt: 0,
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Replaces the directory (a new epoch); circuits through mixes that
    /// left are dropped.
    pub fn set_directory(&mut self, directory: Directory) {
        self.directory = directory;
        let dir = &self.directory;
        for pool in self.pools.values_mut() {
            pool.retain(|c| c.route.iter().all(|a| dir.get(*a).is_some()));
        }
    }

    /// Mutable access to the directory (reputations).
    pub fn directory_mut(&mut self) -> &mut Directory {
        &mut self.directory
    }

    /// Circuits built to replace expired or failed ones so far.
    pub fn rebuilt(&self) -> u64 {
        self.rebuilt
    }

    fn excluded(&mut self, now: Duration) -> HashSet<NodeAddress> {
        let ttl = self.config.failure_ttl;
        self.failed.retain(|_, at| now.saturating_sub(*at) < ttl);
        self.failed.keys().copied().collect()
    }

    /// A circuit for `level`: fills the pool up to its size (building new
    /// circuits around excluded mixes), drops expired ones, and returns one
    /// of the pool's circuits at random.
    pub fn circuit<R: Rng + ?Sized>(
        &mut self,
        level: PrivacyLevel,
        now: Duration,
        rng: &mut R,
    ) -> Result<Circuit, CircuitError> {
        let exclude = self.excluded(now);
        let lifetime = self.config.lifetime;
        let pool = self.pools.entry(level).or_default();
        let before = pool.len();
        pool.retain(|c| {
            now.saturating_sub(c.built) < lifetime && !c.route.iter().any(|a| exclude.contains(a))
        });
        let replaced = before - pool.len();
        while pool.len() < self.config.circuits_per_level.max(1) {
            let route = self.directory.select(level, &exclude, rng)?;
            pool.push(Circuit {
                level,
                route,
                built: now,
            });
        }
        self.rebuilt += replaced as u64;
        let i = rng.random_range(0..pool.len());
        Ok(pool[i].clone())
    }

    /// Reports that `node` failed (a connection refused, a loop cover
    /// packet that never came back): every circuit through it is dropped
    /// and it is left out of new circuits for the failure TTL.
    pub fn mark_failed(&mut self, node: NodeAddress, now: Duration) {
        self.failed.insert(node, now);
        for pool in self.pools.values_mut() {
            let before = pool.len();
            pool.retain(|c| !c.route.contains(&node));
            self.rebuilt += (before - pool.len()) as u64;
        }
    }

    /// The circuits currently pooled for `level`.
    pub fn pooled(&self, level: PrivacyLevel) -> &[Circuit] {
        self.pools.get(&level).map_or(&[], Vec::as_slice)
    }
}
