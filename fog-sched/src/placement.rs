//! Placement: where a job (or a batch of jobs) should run.
//!
//! Five objectives, all minimised: latency (network distance from the
//! submitter, inflated by the node's load), load (the node's dominant
//! utilization after placement), distrust (1 − reputation), cost (the node's
//! asking price) and market price (the tier's current market price).
//!
//! [`Scheduler::place`] is the fast path for single jobs: one pass over the
//! nodes with an explicit [`Strategy`]. [`Scheduler::place_batch`] runs
//! NSGA-II over a batch and returns the Pareto front with the plan chosen by
//! SLA-class weights. Every placement goes through [`Cluster::assign`], so no
//! node is ever given more than its capacity.

use std::collections::HashMap;

use crate::error::{Result, SchedError};
use crate::market::MarketPrices;
use crate::model::{Cluster, Job, JobId, NodeId, SlaClass};
use crate::nsga2::{Nsga2, Nsga2Config, Problem, Variables};
use crate::rng::SeededRng;

/// Number of objectives of a placement.
pub const OBJECTIVES: usize = 5;

/// Weights of the five objectives (latency, load, trust, cost, market price).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Weights {
    /// Latency weight.
    pub latency: f64,
    /// Load-balance weight.
    pub load: f64,
    /// Trust (reputation) weight.
    pub trust: f64,
    /// Node price weight.
    pub cost: f64,
    /// Market price weight.
    pub price: f64,
}

impl Weights {
    /// Weights with the given values, in objective order.
    pub const fn new(latency: f64, load: f64, trust: f64, cost: f64, price: f64) -> Self {
        Self {
            latency,
            load,
            trust,
            cost,
            price,
        }
    }

    /// The weights of an SLA class: S favours latency and trust, B favours
    /// cost and price, A is balanced.
    pub const fn for_class(class: SlaClass) -> Self {
        match class {
            SlaClass::S => Self::new(0.4, 0.15, 0.35, 0.05, 0.05),
            SlaClass::A => Self::new(0.2, 0.2, 0.2, 0.2, 0.2),
            SlaClass::B => Self::new(0.05, 0.15, 0.1, 0.4, 0.3),
        }
    }

    fn as_array(self) -> [f64; OBJECTIVES] {
        [self.latency, self.load, self.trust, self.cost, self.price]
    }
}

/// A placement rule for the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Weighted sum of the normalised objectives with the job's SLA-class
    /// weights (the default).
    Scored,
    /// The next feasible node after the previous choice.
    RoundRobin,
    /// The feasible node with the lowest utilization after placement.
    LeastLoaded,
    /// The lowest load-inflated latency.
    LatencyFirst,
    /// The highest reputation.
    TrustFirst,
    /// The lowest asking price.
    CostFirst,
    /// The node hosting most of the job's dependencies and gang peers
    /// (co-location), then the least loaded.
    Affinity,
    /// The smallest network distance, whatever the load.
    Proximity,
    /// The node whose privacy clearance is the lowest that suffices (keeping
    /// cleared nodes for sensitive work), then the most trusted; for private
    /// and stricter jobs trust comes first.
    PrivacyAware,
    /// A uniformly random feasible node.
    Random,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 10] = [
        Strategy::Scored,
        Strategy::RoundRobin,
        Strategy::LeastLoaded,
        Strategy::LatencyFirst,
        Strategy::TrustFirst,
        Strategy::CostFirst,
        Strategy::Affinity,
        Strategy::Proximity,
        Strategy::PrivacyAware,
        Strategy::Random,
    ];

    /// The strategy's name in kebab case (`round-robin`), as [`FromStr`]
    /// reads it.
    ///
    /// [`FromStr`]: std::str::FromStr
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Scored => "scored",
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastLoaded => "least-loaded",
            Strategy::LatencyFirst => "latency-first",
            Strategy::TrustFirst => "trust-first",
            Strategy::CostFirst => "cost-first",
            Strategy::Affinity => "affinity",
            Strategy::Proximity => "proximity",
            Strategy::PrivacyAware => "privacy-aware",
            Strategy::Random => "random",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = SchedError;

    /// Reads a strategy by its [`Strategy::name`] (case-insensitive; `_`
    /// may stand for `-`).
    fn from_str(text: &str) -> Result<Self> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Strategy::ALL
            .into_iter()
            .find(|s| s.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.name()).collect();
                SchedError::InvalidConfig(format!(
                    "unknown strategy {text:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// The objective values of one job on one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Objectives {
    /// Estimated latency in milliseconds.
    pub latency_ms: f64,
    /// Dominant utilization of the node after placement.
    pub load: f64,
    /// 1 − reputation.
    pub distrust: f64,
    /// Asking price for the job's run.
    pub cost: f64,
    /// Market price for the job's run.
    pub market_price: f64,
}

impl Objectives {
    /// The values in objective order.
    pub fn as_array(&self) -> [f64; OBJECTIVES] {
        [
            self.latency_ms,
            self.load,
            self.distrust,
            self.cost,
            self.market_price,
        ]
    }
}

/// A decision of the fast path.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// The job.
    pub job: JobId,
    /// The chosen node.
    pub node: NodeId,
    /// The objective values of that choice.
    pub objectives: Objectives,
}

/// One plan of a batch placement.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Job-to-node assignments, in the batch's order.
    pub assignments: Vec<(JobId, NodeId)>,
    /// Summed objectives over the batch (latency, load as the peak
    /// utilization of the nodes used, distrust, cost, market price).
    pub objectives: [f64; OBJECTIVES],
}

/// The result of a batch placement.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlacement {
    /// The feasible Pareto front.
    pub front: Vec<Plan>,
    /// Index in `front` of the plan that was chosen (and committed).
    pub chosen: usize,
}

/// Places jobs on a [`Cluster`], tracking market prices.
#[derive(Debug, Clone)]
pub struct Scheduler {
    cluster: Cluster,
    market: MarketPrices,
    cursor: usize,
    rng: SeededRng,
    latency_ref: f64,
    price_ref: f64,
    statics: Vec<NodeStatic>,
    hot: Vec<Hot>,
    score_limit: Option<usize>,
    scan_start: usize,
}

/// Per-node values the fast path reads in its scan, laid out compactly.
#[derive(Debug, Clone, Copy)]
struct NodeStatic {
    x: f64,
    y: f64,
    height: f64,
    cap: [u64; 3],
    inv_cap: [f64; 3],
    price_norm: f64,
    distrust: f64,
    /// `trust × distrust + cost × price_norm` under the S, A and B weights.
    fixed: [f64; 3],
    /// Mirror of the cluster's `used` for this node (kept in step by every
    /// change made through the scheduler).
    used: [u64; 3],
    /// `used / capacity` per resource (0 where the capacity is 0).
    used_share: [f64; 3],
    tier: u8,
    privacy: u8,
}

/// The per-decision inputs of [`Scheduler::scan_nodes`].
struct Scan<'a> {
    job: &'a Job,
    need: [u64; 3],
    need_f: [f32; 3],
    privacy: u8,
    simple: bool,
    lat_scale: f32,
    w_load: f32,
    class: usize,
    market: [f32; 4],
    start: usize,
    limit: usize,
}

/// The 64 bytes per node that the scored scan reads (single precision:
/// the score is a heuristic; the capacity check stays exact in integers and
/// [`Cluster::assign`] has the last word).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Hot {
    /// Free capacity, saturated to `u32::MAX`.
    free: [u32; 3],
    x: f32,
    y: f32,
    height: f32,
    used_share: [f32; 3],
    inv_cap: [f32; 3],
    fixed: [f32; 3],
    tier: u8,
    privacy: u8,
}

impl Hot {
    fn of(st: &NodeStatic) -> Self {
        let sat = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            free: [
                sat(st.cap[0].saturating_sub(st.used[0])),
                sat(st.cap[1].saturating_sub(st.used[1])),
                sat(st.cap[2].saturating_sub(st.used[2])),
            ],
            x: st.x as f32,
            y: st.y as f32,
            height: st.height as f32,
            used_share: st.used_share.map(|v| v as f32),
            inv_cap: st.inv_cap.map(|v| v as f32),
            fixed: st.fixed.map(|v| v as f32),
            tier: st.tier,
            privacy: st.privacy,
        }
    }
}

impl NodeStatic {
    fn set_used(&mut self, used: [u64; 3]) {
        self.used = used;
        self.used_share = [0, 1, 2].map(|k| used[k] as f64 * self.inv_cap[k]);
    }

    fn refresh_fixed(&mut self) {
        for (k, class) in [SlaClass::S, SlaClass::A, SlaClass::B]
            .into_iter()
            .enumerate()
        {
            let w = Weights::for_class(class);
            self.fixed[k] = w.trust * self.distrust + w.cost * self.price_norm;
        }
    }
}

fn class_index(class: SlaClass) -> usize {
    match class {
        SlaClass::S => 0,
        SlaClass::A => 1,
        SlaClass::B => 2,
    }
}

impl Scheduler {
    /// A scheduler over `cluster` with default market prices; `seed` drives
    /// the random strategy and batch optimisation.
    pub fn new(cluster: Cluster, seed: u64) -> Self {
        let mut s = Self {
            cluster,
            market: MarketPrices::default(),
            cursor: 0,
            rng: SeededRng::new(seed),
            latency_ref: 1.0,
            price_ref: 1.0,
            statics: Vec::new(),
            hot: Vec::new(),
            score_limit: None,
            scan_start: 0,
        };
        s.refresh_scales();
        s
    }

    /// Replaces the market prices.
    pub fn with_market(mut self, market: MarketPrices) -> Self {
        self.market = market;
        self
    }

    fn refresh_scales(&mut self) {
        let nodes = self.cluster.nodes();
        let origin = crate::model::Coordinates::default();
        self.latency_ref = nodes
            .iter()
            .map(|n| n.coordinates().latency_ms(origin))
            .fold(1.0, f64::max);
        self.price_ref = nodes
            .iter()
            .map(crate::model::Node::price)
            .fold(1e-9, f64::max);
        let inv = |c: u64| {
            if c == 0 {
                f64::INFINITY
            } else {
                1.0 / c as f64
            }
        };
        self.statics = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let c = n.capacity();
                let p = n.coordinates();
                let u = self.cluster.used(i);
                let mut st = NodeStatic {
                    x: p.x(),
                    y: p.y(),
                    height: p.height(),
                    cap: [c.cpu_millis(), c.memory_mib(), c.gpus()],
                    inv_cap: [inv(c.cpu_millis()), inv(c.memory_mib()), inv(c.gpus())],
                    price_norm: n.price() / self.price_ref,
                    distrust: 1.0 - n.reputation(),
                    fixed: [0.0; 3],
                    used: [0; 3],
                    used_share: [0.0; 3],
                    tier: n.tier().index() as u8,
                    privacy: n.max_privacy() as u8,
                };
                st.refresh_fixed();
                st.set_used([u.cpu_millis(), u.memory_mib(), u.gpus()]);
                st
            })
            .collect();
        self.hot = self.statics.iter().map(Hot::of).collect();
    }

    /// The cluster state.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The market prices.
    pub fn market(&self) -> &MarketPrices {
        &self.market
    }

    /// Moves market prices towards current utilization.
    pub fn update_market(&mut self) {
        self.market.update(&self.cluster);
    }

    /// Records a measured round-trip latency between two nodes (see
    /// [`Cluster::set_latency`]); jobs submitted at either node then use it
    /// instead of the coordinate estimate.
    pub fn set_latency(&mut self, a: NodeId, b: NodeId, ms: f64) -> Result<()> {
        self.cluster.set_latency(a, b, ms)?;
        self.latency_ref = self.latency_ref.max(ms);
        Ok(())
    }

    /// Feeds a node's reputation (from the reputation store).
    pub fn set_reputation(&mut self, node: NodeId, reputation: f64) -> Result<()> {
        self.cluster.set_reputation(node, reputation)?;
        if let Some(i) = self.cluster.node_index(node) {
            self.statics[i].distrust = 1.0 - self.cluster.nodes()[i].reputation();
            self.statics[i].refresh_fixed();
            self.hot[i] = Hot::of(&self.statics[i]);
        }
        Ok(())
    }

    /// Copies every stored reputation of a node in the cluster into the
    /// scheduler; returns how many nodes were updated.
    pub fn refresh_reputation(
        &mut self,
        store: &crate::reputation::ReputationStore,
    ) -> Result<usize> {
        let mut updated = 0;
        for (node, rep) in store.ranking()? {
            if self.cluster.node_index(node).is_some() {
                self.set_reputation(node, rep.expected())?;
                updated += 1;
            }
        }
        Ok(updated)
    }

    /// The scored fast path: one pass over compact per-node data, the same
    /// score as [`Scheduler::weighted_score`].
    fn scored_scan(&mut self, job: &Job) -> Option<usize> {
        let w = Weights::for_class(job.class());
        let (_, market_ref) = self.refs(job);
        let hours = job.duration_s() / 3600.0;
        let market: [f64; 4] = crate::model::Tier::ALL
            .map(|t| w.price * self.market.cost(t, job.resources(), hours) / market_ref);
        let r = job.resources();
        let need = [r.cpu_millis(), r.memory_mib(), r.gpus()];
        let privacy = job.privacy() as u8;
        let simple = job.affinity().is_empty() && job.anti_affinity().is_empty();
        let (origin_index, row, origin) = self.cluster.origin_row(job);
        let (ox, oy, oh) = (origin.x(), origin.y(), origin.height());
        let lat_scale = w.latency / (2.0 * self.latency_ref);
        let class = class_index(job.class());
        let n = self.statics.len();
        let limit = self.score_limit.unwrap_or(n).max(1);
        let start = if limit < n { self.scan_start % n } else { 0 };
        let (ox, oy, oh) = (ox as f32, oy as f32, oh as f32);
        let scan = Scan {
            job,
            need,
            need_f: need.map(|v| v as f32),
            privacy,
            simple,
            lat_scale: lat_scale as f32,
            w_load: w.load as f32,
            class,
            market: market.map(|v| v as f32),
            start,
            limit,
        };
        let coords = move |h: &Hot| {
            let dx = ox - h.x;
            let dy = oy - h.y;
            (dx * dx + dy * dy).sqrt() + oh + h.height
        };
        // One monomorphised loop per latency source, so the common case (no
        // origin node) pays nothing for measured latencies.
        let (best, stop) = match (origin_index, row) {
            (None, _) => self.scan_nodes(&scan, |_, h| coords(h)),
            (Some(o), None) => self.scan_nodes(&scan, |i, h| if i == o { 0.0 } else { coords(h) }),
            (Some(o), Some(row)) => self.scan_nodes(&scan, |i, h| {
                if i == o {
                    0.0
                } else if row[i].is_nan() {
                    coords(h)
                } else {
                    row[i]
                }
            }),
        };
        self.scan_start = stop;
        best
    }

    /// The scored scan over the rotated node range with `latency(i, hot)`
    /// as the unloaded latency to node `i`: the best node, if any, and where
    /// the next scan should start.
    #[inline]
    fn scan_nodes(
        &self,
        p: &Scan<'_>,
        latency: impl Fn(usize, &Hot) -> f32,
    ) -> (Option<usize>, usize) {
        let n = self.hot.len();
        let mut best = (usize::MAX, f32::INFINITY);
        let mut found = 0;
        let mut stop = p.start;
        // The two halves of the rotated range as plain loops (a chained
        // iterator keeps the compiler from tightening the body).
        'scan: for (lo, hi) in [(p.start, n), (0, p.start)] {
            for (i, h) in self.hot[lo..hi].iter().enumerate() {
                let i = lo + i;
                if u64::from(h.free[0]) < p.need[0]
                    || u64::from(h.free[1]) < p.need[1]
                    || u64::from(h.free[2]) < p.need[2]
                    || p.privacy > h.privacy
                {
                    continue;
                }
                if !p.simple && !self.cluster.is_feasible(p.job, i) {
                    continue;
                }
                // Dominant share after placement.
                let load = (h.used_share[0] + p.need_f[0] * h.inv_cap[0])
                    .max(h.used_share[1] + p.need_f[1] * h.inv_cap[1])
                    .max(h.used_share[2] + p.need_f[2] * h.inv_cap[2]);
                let latency = latency(i, h) * (1.0 + load.min(1.0));
                let score = p.lat_scale * latency
                    + p.w_load * load
                    + h.fixed[p.class]
                    + p.market[h.tier as usize];
                if score < best.1 {
                    best = (i, score);
                }
                found += 1;
                if found >= p.limit {
                    stop = i + 1;
                    break 'scan;
                }
            }
        }
        ((best.0 != usize::MAX).then_some(best.0), stop)
    }

    /// Scores at most `limit` feasible nodes per decision in the scored fast
    /// path, starting where the previous decision stopped (Kubernetes'
    /// `percentageOfNodesToScore`); `None` (the default) scores every node.
    /// [`kubernetes_score_limit`] gives Kubernetes' adaptive value.
    pub fn with_score_limit(mut self, limit: Option<usize>) -> Self {
        self.score_limit = limit;
        self
    }

    /// Copies the cluster's usage of `node` into the scan mirror.
    fn sync(&mut self, node: NodeId) {
        if let Some(i) = self.cluster.node_index(node) {
            let u = self.cluster.used(i);
            self.statics[i].set_used([u.cpu_millis(), u.memory_mib(), u.gpus()]);
            self.hot[i] = Hot::of(&self.statics[i]);
        }
    }

    /// Frees a finished or evicted job's resources.
    pub fn release(&mut self, job: JobId) -> Result<NodeId> {
        let node = self.cluster.release(job)?;
        self.sync(node);
        Ok(node)
    }

    /// The objective values of `job` on node `index`.
    pub fn objectives(&self, job: &Job, index: usize) -> Objectives {
        let node = &self.cluster.nodes()[index];
        let after = self.cluster.used(index).plus(job.resources());
        let load = after.dominant_share(node.capacity());
        let hours = job.duration_s() / 3600.0;
        Objectives {
            latency_ms: self.cluster.origin_latency(job, index) * (1.0 + load.min(1.0)),
            load,
            distrust: 1.0 - node.reputation(),
            cost: node.price() * job.resources().cpu_millis() as f64 / 1000.0 * hours,
            market_price: self.market.cost(node.tier(), job.resources(), hours),
        }
    }

    /// Normalisers of the cost and market objectives for `job`.
    fn refs(&self, job: &Job) -> (f64, f64) {
        let hours = job.duration_s() / 3600.0;
        let cores = job.resources().cpu_millis() as f64 / 1000.0;
        let market_ref = crate::model::Tier::ALL
            .iter()
            .map(|&t| self.market.cost(t, job.resources(), hours))
            .fold(1e-12, f64::max);
        ((self.price_ref * cores * hours).max(1e-12), market_ref)
    }

    /// The weighted sum of `job`'s normalised objectives on node `index`.
    #[inline]
    fn weighted_score(&self, job: &Job, index: usize, w: Weights, refs: (f64, f64)) -> f64 {
        let o = self.objectives(job, index);
        w.latency * o.latency_ms / (2.0 * self.latency_ref)
            + w.load * o.load
            + w.trust * o.distrust
            + w.cost * o.cost / refs.0
            + w.price * o.market_price / refs.1
    }

    /// Decides where `job` should run with `strategy`, without committing.
    pub fn choose(&mut self, job: &Job, strategy: Strategy) -> Result<usize> {
        if self.cluster.is_empty() {
            return Err(SchedError::EmptyCluster);
        }
        if strategy == Strategy::Scored {
            return self
                .scored_scan(job)
                .ok_or(SchedError::NoFeasibleNode(job.id()));
        }
        let n = self.cluster.len();
        let cluster = &self.cluster;
        let feasible = |i: usize| cluster.is_feasible(job, i);
        let best_by = |key: &dyn Fn(usize) -> f64| -> Option<usize> {
            let mut best: Option<(usize, f64)> = None;
            for i in 0..n {
                if !feasible(i) {
                    continue;
                }
                let k = key(i);
                if best.is_none_or(|(_, b)| k < b) {
                    best = Some((i, k));
                }
            }
            best.map(|(i, _)| i)
        };
        let nodes = cluster.nodes();
        let chosen = match strategy {
            // Handled above, without the shared borrow.
            Strategy::Scored => None,
            Strategy::RoundRobin => {
                let start = self.cursor;
                (0..n).map(|k| (start + k) % n).find(|&i| feasible(i))
            }
            Strategy::LeastLoaded => best_by(&|i| {
                cluster
                    .used(i)
                    .plus(job.resources())
                    .dominant_share(nodes[i].capacity())
            }),
            Strategy::LatencyFirst => best_by(&|i| self.objectives(job, i).latency_ms),
            Strategy::TrustFirst => best_by(&|i| -nodes[i].reputation()),
            Strategy::CostFirst => best_by(&|i| nodes[i].price()),
            Strategy::Affinity => {
                let peers: Vec<JobId> = job.dependencies().to_vec();
                best_by(&|i| {
                    let together = cluster
                        .residents(i)
                        .iter()
                        .filter(|r| peers.contains(r))
                        .count() as f64;
                    let load = cluster
                        .used(i)
                        .plus(job.resources())
                        .dominant_share(nodes[i].capacity());
                    -together + load.min(1.0) * 0.5
                })
            }
            Strategy::Proximity => best_by(&|i| cluster.origin_latency(job, i)),
            Strategy::PrivacyAware => {
                let sensitive = job.privacy() > crate::model::PrivacyLevel::Public;
                best_by(&|i| {
                    let spare = (nodes[i].max_privacy() as u8 - job.privacy() as u8) as f64;
                    let distrust = 1.0 - nodes[i].reputation();
                    if sensitive {
                        distrust * 10.0 + spare
                    } else {
                        spare * 10.0 + distrust
                    }
                })
            }
            Strategy::Random => {
                let count = (0..n).filter(|&i| feasible(i)).count();
                if count == 0 {
                    None
                } else {
                    let k = self.rng.below(count);
                    (0..n).filter(|&i| feasible(i)).nth(k)
                }
            }
        };
        let index = chosen.ok_or(SchedError::NoFeasibleNode(job.id()))?;
        if strategy == Strategy::RoundRobin {
            self.cursor = (index + 1) % n;
        }
        Ok(index)
    }

    /// The fast path: decides with `strategy` and commits the placement.
    pub fn place(&mut self, job: &Job, strategy: Strategy) -> Result<Placement> {
        let index = self.choose(job, strategy)?;
        let objectives = self.objectives(job, index);
        let node = self.cluster.nodes()[index].id();
        self.cluster.assign(job, node)?;
        self.sync(node);
        tracing::trace!(job = %job.id(), %node, ?strategy, "placed");
        Ok(Placement {
            job: job.id(),
            node,
            objectives,
        })
    }

    /// Places a batch of jobs with NSGA-II over at most `candidates` nodes per
    /// job (the best by the job's SLA weights), returns the Pareto front and
    /// commits the plan chosen with `weights` (by default the weights of the
    /// batch's most important class). Nothing is committed when no feasible
    /// plan exists.
    pub fn place_batch(
        &mut self,
        jobs: &[Job],
        candidates: usize,
        config: Nsga2Config,
        weights: Option<Weights>,
    ) -> Result<BatchPlacement> {
        if self.cluster.is_empty() {
            return Err(SchedError::EmptyCluster);
        }
        if jobs.is_empty() {
            return Ok(BatchPlacement {
                front: Vec::new(),
                chosen: 0,
            });
        }
        let mut seen = std::collections::HashSet::new();
        for j in jobs {
            if !seen.insert(j.id()) || self.cluster.placement_of(j.id()).is_some() {
                return Err(SchedError::DuplicateJob(j.id()));
            }
        }
        let k = candidates.max(1);
        let mut lists = Vec::with_capacity(jobs.len());
        for job in jobs {
            let w = Weights::for_class(job.class());
            let refs = self.refs(job);
            let mut scored: Vec<(f64, usize)> = (0..self.cluster.len())
                .filter(|&i| self.cluster.is_feasible(job, i))
                .map(|i| (self.weighted_score(job, i, w, refs), i))
                .collect();
            if scored.is_empty() {
                return Err(SchedError::NoFeasibleNode(job.id()));
            }
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            scored.truncate(k);
            lists.push(scored.into_iter().map(|(_, i)| i).collect::<Vec<_>>());
        }
        let problem = BatchProblem {
            sched: self,
            jobs,
            lists,
        };
        let mut config = config;
        // Seed with the greedy answer (everyone on its best candidate).
        config.initial.insert(0, vec![0.0; jobs.len()]);
        let outcome = Nsga2::new(config).run(&problem)?;
        let mut front: Vec<Plan> = Vec::new();
        let mut genes: Vec<Vec<f64>> = Vec::new();
        for s in outcome.front() {
            if genes.contains(&s.x) {
                continue;
            }
            genes.push(s.x.clone());
            let nodes = problem.decode(&s.x);
            front.push(Plan {
                assignments: jobs
                    .iter()
                    .zip(&nodes)
                    .map(|(j, &i)| (j.id(), self.cluster.nodes()[i].id()))
                    .collect(),
                objectives: s
                    .objectives
                    .as_slice()
                    .try_into()
                    .unwrap_or([0.0; OBJECTIVES]),
            });
        }
        if front.is_empty() {
            return Err(SchedError::NoFeasibleNode(jobs[0].id()));
        }
        let weights = weights.unwrap_or_else(|| {
            let top = jobs
                .iter()
                .map(Job::class)
                .max_by_key(|c| c.rank())
                .unwrap_or(SlaClass::A);
            Weights::for_class(top)
        });
        let chosen = choose_by_weights(&front, weights);
        // Commit all or nothing.
        let plan = &front[chosen];
        let by_id: HashMap<JobId, &Job> = jobs.iter().map(|j| (j.id(), j)).collect();
        let mut done = Vec::new();
        for &(job, node) in &plan.assignments {
            if let Err(e) = self.cluster.assign(by_id[&job], node) {
                for j in done {
                    let _ = self.release(j);
                }
                return Err(e);
            }
            self.sync(node);
            done.push(job);
        }
        Ok(BatchPlacement { front, chosen })
    }
}

/// Sorts jobs into dispatch order: higher SLA class first, then the earlier
/// deadline (none last), then higher priority, then the job id.
pub fn dispatch_order(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| {
        b.class()
            .rank()
            .cmp(&a.class().rank())
            .then_with(|| match (a.deadline_ms(), b.deadline_ms()) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| b.priority().cmp(&a.priority()))
            .then_with(|| a.id().cmp(&b.id()))
    });
}

/// Kubernetes' adaptive number of feasible nodes to score in a cluster of
/// `nodes`: `max(5, 50 − nodes/125)` percent, at least 100 nodes.
pub fn kubernetes_score_limit(nodes: usize) -> usize {
    let percent = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percent / 100).max(100)
}

/// The plan with the lowest weighted sum of objectives normalised to the
/// front's range.
pub fn choose_by_weights(front: &[Plan], weights: Weights) -> usize {
    let w = weights.as_array();
    let mut lo = [f64::INFINITY; OBJECTIVES];
    let mut hi = [f64::NEG_INFINITY; OBJECTIVES];
    for p in front {
        for k in 0..OBJECTIVES {
            lo[k] = lo[k].min(p.objectives[k]);
            hi[k] = hi[k].max(p.objectives[k]);
        }
    }
    let mut best = (0, f64::INFINITY);
    for (i, p) in front.iter().enumerate() {
        let s: f64 = (0..OBJECTIVES)
            .map(|k| {
                let range = hi[k] - lo[k];
                if range > 0.0 {
                    w[k] * (p.objectives[k] - lo[k]) / range
                } else {
                    0.0
                }
            })
            .sum();
        if s < best.1 {
            best = (i, s);
        }
    }
    best.0
}

/// A batch placement as an integer NSGA-II problem: gene `j` picks one of
/// job `j`'s candidate nodes.
struct BatchProblem<'a> {
    sched: &'a Scheduler,
    jobs: &'a [Job],
    lists: Vec<Vec<usize>>,
}

impl BatchProblem<'_> {
    fn decode(&self, x: &[f64]) -> Vec<usize> {
        x.iter()
            .zip(&self.lists)
            .map(|(&g, list)| list[(g as usize).min(list.len() - 1)])
            .collect()
    }
}

impl Problem for BatchProblem<'_> {
    fn variables(&self) -> Variables {
        Variables::Integer(self.lists.iter().map(|l| l.len() as u32).collect())
    }

    fn objectives(&self) -> usize {
        OBJECTIVES
    }

    fn constraints(&self) -> usize {
        1
    }

    fn evaluate(&self, x: &[f64], objectives: &mut [f64], constraints: &mut [f64]) {
        let cluster = &self.sched.cluster;
        let nodes = self.decode(x);
        let mut extra: HashMap<usize, crate::model::Resources> = HashMap::new();
        let mut sums = [0.0; OBJECTIVES];
        let mut over = 0.0;
        for (job, &i) in self.jobs.iter().zip(&nodes) {
            let o = self.sched.objectives(job, i).as_array();
            for k in [0, 2, 3, 4] {
                sums[k] += o[k];
            }
            let e = extra.entry(i).or_default();
            *e = e.plus(job.resources());
        }
        for (&i, &e) in &extra {
            let cap = cluster.nodes()[i].capacity();
            let after = cluster.used(i).plus(e);
            sums[1] = sums[1].max(after.dominant_share(cap));
            if !after.fits_in(cap) {
                over += after.dominant_share(cap) - 1.0;
            }
        }
        // Anti-affinity between jobs of the batch.
        for (a, job) in self.jobs.iter().enumerate() {
            for other in job.anti_affinity() {
                if let Some(b) = self.jobs.iter().position(|j| j.id() == *other)
                    && nodes[a] == nodes[b]
                {
                    over += 1.0;
                }
            }
        }
        objectives.copy_from_slice(&sums);
        constraints[0] = over;
    }

    /// Capacity repair: a job whose candidate is full (given the jobs before
    /// it) moves to its next candidate that still has room.
    fn repair(&self, x: &mut [f64]) {
        let cluster = &self.sched.cluster;
        let mut extra: HashMap<usize, crate::model::Resources> = HashMap::new();
        for (j, job) in self.jobs.iter().enumerate() {
            let list = &self.lists[j];
            let start = (x[j] as usize).min(list.len() - 1);
            let fits = |i: usize, extra: &HashMap<usize, crate::model::Resources>| {
                job.resources()
                    .plus(extra.get(&i).copied().unwrap_or_default())
                    .fits_in(cluster.free(i))
            };
            let pick = (0..list.len())
                .map(|k| (start + k) % list.len())
                .find(|&k| fits(list[k], &extra))
                .unwrap_or(start);
            x[j] = pick as f64;
            let e = extra.entry(list[pick]).or_default();
            *e = e.plus(job.resources());
        }
    }
}
