//! The scheduling model: nodes, jobs and the cluster state that placements
//! are checked against.

use std::collections::HashMap;
use std::fmt;

use crate::error::{Result, SchedError};

/// A node's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u64);

impl NodeId {
    /// A node id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }
    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A job's (or task's) identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(u64);

impl JobId {
    /// A job id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }
    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "j{}", self.0)
    }
}

/// A gang's identifier: jobs with the same gang run all together or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GangId(u64);

impl GangId {
    /// A gang id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }
    /// The numeric id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// An amount of compute: CPU in millicores, memory in MiB, whole GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Resources {
    cpu_millis: u64,
    memory_mib: u64,
    gpus: u64,
}

impl Resources {
    /// Nothing.
    pub const ZERO: Self = Self::new(0, 0, 0);

    /// `cpu_millis` millicores, `memory_mib` MiB and `gpus` GPUs.
    pub const fn new(cpu_millis: u64, memory_mib: u64, gpus: u64) -> Self {
        Self {
            cpu_millis,
            memory_mib,
            gpus,
        }
    }
    /// CPU in millicores.
    pub const fn cpu_millis(self) -> u64 {
        self.cpu_millis
    }
    /// Memory in MiB.
    pub const fn memory_mib(self) -> u64 {
        self.memory_mib
    }
    /// Whole GPUs.
    pub const fn gpus(self) -> u64 {
        self.gpus
    }
    /// Whether `self` fits inside `other` in every dimension.
    #[inline]
    pub const fn fits_in(self, other: Self) -> bool {
        self.cpu_millis <= other.cpu_millis
            && self.memory_mib <= other.memory_mib
            && self.gpus <= other.gpus
    }
    /// The sum (saturating).
    #[must_use]
    #[inline]
    pub const fn plus(self, other: Self) -> Self {
        Self::new(
            self.cpu_millis.saturating_add(other.cpu_millis),
            self.memory_mib.saturating_add(other.memory_mib),
            self.gpus.saturating_add(other.gpus),
        )
    }
    /// The difference, floored at zero in every dimension.
    #[must_use]
    #[inline]
    pub const fn minus(self, other: Self) -> Self {
        Self::new(
            self.cpu_millis.saturating_sub(other.cpu_millis),
            self.memory_mib.saturating_sub(other.memory_mib),
            self.gpus.saturating_sub(other.gpus),
        )
    }
    /// The largest share of `capacity` that `self` takes in any dimension
    /// (0 when the capacity is zero and so is the amount).
    #[inline]
    pub fn dominant_share(self, capacity: Self) -> f64 {
        fn share(used: u64, cap: u64) -> f64 {
            if cap == 0 {
                if used == 0 { 0.0 } else { f64::INFINITY }
            } else {
                used as f64 / cap as f64
            }
        }
        share(self.cpu_millis, capacity.cpu_millis)
            .max(share(self.memory_mib, capacity.memory_mib))
            .max(share(self.gpus, capacity.gpus))
    }
}

/// Where a node sits in the hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Tier {
    /// A data-centre machine.
    Cloud,
    /// An edge server (base station, PoP).
    Edge,
    /// A fog box near users (home server, gateway).
    Fog,
    /// An end device (laptop, phone).
    Device,
}

impl Tier {
    /// All tiers, in order.
    pub const ALL: [Tier; 4] = [Tier::Cloud, Tier::Edge, Tier::Fog, Tier::Device];

    /// The tier's index in [`Tier::ALL`].
    pub const fn index(self) -> usize {
        match self {
            Tier::Cloud => 0,
            Tier::Edge => 1,
            Tier::Fog => 2,
            Tier::Device => 3,
        }
    }
}

/// A job's service class: S (latency-critical, never preempted), A
/// (standard), B (best effort, cheapest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SlaClass {
    /// Latency-critical; may preempt A and B; never preempted.
    S,
    /// Standard; may be preempted by S.
    A,
    /// Best effort; may be preempted by S.
    B,
}

impl SlaClass {
    /// Rank for comparisons: a higher number is a more important class.
    pub const fn rank(self) -> u8 {
        match self {
            SlaClass::S => 2,
            SlaClass::A => 1,
            SlaClass::B => 0,
        }
    }
}

/// A job's privacy level (the number of mix hops grows with it; a node must
/// be cleared for the level to host the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PrivacyLevel {
    /// No particular care.
    Public,
    /// Hide the submitter.
    Private,
    /// Only nodes cleared for confidential work.
    Confidential,
    /// Only the most trusted nodes.
    Secret,
}

/// A position in a network-coordinate space (Vivaldi style): Euclidean
/// distance plus both heights approximates round-trip latency in
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Coordinates {
    x: f64,
    y: f64,
    height: f64,
}

impl Coordinates {
    /// A point `(x, y)` with access-link `height`, all in milliseconds.
    pub const fn new(x: f64, y: f64, height: f64) -> Self {
        Self { x, y, height }
    }
    /// The x coordinate.
    pub const fn x(self) -> f64 {
        self.x
    }
    /// The y coordinate.
    pub const fn y(self) -> f64 {
        self.y
    }
    /// The height (access-link latency).
    pub const fn height(self) -> f64 {
        self.height
    }
    /// The estimated latency between two points, in milliseconds.
    #[inline]
    pub fn latency_ms(self, other: Self) -> f64 {
        let dx = self.x - other.x;
        let dy = self.y - other.y;
        (dx * dx + dy * dy).sqrt() + self.height + other.height
    }
}

/// A node as the scheduler sees it: capacity, current load, position, price
/// and trust.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    id: NodeId,
    capacity: Resources,
    load: Resources,
    tier: Tier,
    coordinates: Coordinates,
    price: f64,
    reputation: f64,
    max_privacy: PrivacyLevel,
    labels: Vec<String>,
}

impl Node {
    /// A node with `capacity`, no load, tier fog, at the origin, price 1,
    /// reputation 0.5 and cleared for public work only.
    pub fn new(id: NodeId, capacity: Resources) -> Self {
        Self {
            id,
            capacity,
            load: Resources::ZERO,
            tier: Tier::Fog,
            coordinates: Coordinates::default(),
            price: 1.0,
            reputation: 0.5,
            max_privacy: PrivacyLevel::Public,
            labels: Vec::new(),
        }
    }
    /// Sets the load already running on the node (not managed by this scheduler).
    pub fn with_load(mut self, load: Resources) -> Self {
        self.load = load;
        self
    }
    /// Sets the tier.
    pub fn with_tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }
    /// Sets the network coordinates.
    pub fn with_coordinates(mut self, coordinates: Coordinates) -> Self {
        self.coordinates = coordinates;
        self
    }
    /// Sets the asking price per CPU-core-hour (non-negative, NaN becomes 0).
    pub fn with_price(mut self, price: f64) -> Self {
        self.price = if price.is_finite() {
            price.max(0.0)
        } else {
            0.0
        };
        self
    }
    /// Sets the reputation (expected trust in `[0, 1]`, clamped).
    pub fn with_reputation(mut self, reputation: f64) -> Self {
        self.reputation = if reputation.is_nan() {
            0.0
        } else {
            reputation.clamp(0.0, 1.0)
        };
        self
    }
    /// Sets the highest privacy level the node is cleared for.
    pub fn with_max_privacy(mut self, level: PrivacyLevel) -> Self {
        self.max_privacy = level;
        self
    }
    /// Adds a label (used by affinity rules).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.labels.push(label.into());
        self
    }
    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Total capacity.
    pub fn capacity(&self) -> Resources {
        self.capacity
    }
    /// Load not managed by this scheduler.
    pub fn load(&self) -> Resources {
        self.load
    }
    /// The tier.
    pub fn tier(&self) -> Tier {
        self.tier
    }
    /// Network coordinates.
    pub fn coordinates(&self) -> Coordinates {
        self.coordinates
    }
    /// Asking price per CPU-core-hour.
    pub fn price(&self) -> f64 {
        self.price
    }
    /// Reputation in `[0, 1]`.
    pub fn reputation(&self) -> f64 {
        self.reputation
    }
    /// Highest privacy level the node may host.
    pub fn max_privacy(&self) -> PrivacyLevel {
        self.max_privacy
    }
    /// Labels.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }
    /// Whether the node has `label`.
    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l == label)
    }
}

/// A unit of work to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    id: JobId,
    resources: Resources,
    class: SlaClass,
    deadline_ms: Option<u64>,
    priority: u8,
    privacy: PrivacyLevel,
    affinity: Vec<String>,
    anti_affinity: Vec<JobId>,
    gang: Option<GangId>,
    dependencies: Vec<JobId>,
    origin: Coordinates,
    origin_node: Option<NodeId>,
    duration_s: f64,
}

impl Job {
    /// A class-A, public, priority-0 job needing `resources`, expected to
    /// run for 60 seconds, submitted from the origin of the coordinate space.
    pub fn new(id: JobId, resources: Resources) -> Self {
        Self {
            id,
            resources,
            class: SlaClass::A,
            deadline_ms: None,
            priority: 0,
            privacy: PrivacyLevel::Public,
            affinity: Vec::new(),
            anti_affinity: Vec::new(),
            gang: None,
            dependencies: Vec::new(),
            origin: Coordinates::default(),
            origin_node: None,
            duration_s: 60.0,
        }
    }
    /// Sets the SLA class.
    pub fn with_class(mut self, class: SlaClass) -> Self {
        self.class = class;
        self
    }
    /// Sets a completion deadline, in milliseconds after submission.
    pub fn with_deadline_ms(mut self, deadline_ms: u64) -> Self {
        self.deadline_ms = Some(deadline_ms);
        self
    }
    /// Sets the priority within the class (higher first).
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }
    /// Sets the privacy level.
    pub fn with_privacy(mut self, privacy: PrivacyLevel) -> Self {
        self.privacy = privacy;
        self
    }
    /// Requires a node label (node affinity).
    pub fn with_affinity(mut self, label: impl Into<String>) -> Self {
        self.affinity.push(label.into());
        self
    }
    /// Forbids sharing a node with `other` (anti-affinity).
    pub fn with_anti_affinity(mut self, other: JobId) -> Self {
        self.anti_affinity.push(other);
        self
    }
    /// Makes the job a member of `gang`.
    pub fn with_gang(mut self, gang: GangId) -> Self {
        self.gang = Some(gang);
        self
    }
    /// Adds a dependency: this job starts after `other` finished.
    pub fn with_dependency(mut self, other: JobId) -> Self {
        self.dependencies.push(other);
        self
    }
    /// Sets where the job was submitted from (latency is measured from here).
    pub fn with_origin(mut self, origin: Coordinates) -> Self {
        self.origin = origin;
        self
    }
    /// Sets the node the job was submitted at. Latency is then the measured
    /// round trip from that node (see [`Cluster::set_latency`]) where one is
    /// known, else the distance from that node's coordinates.
    pub fn with_origin_node(mut self, node: NodeId) -> Self {
        self.origin_node = Some(node);
        self
    }
    /// Sets the expected run time in seconds (used for cost).
    pub fn with_duration_s(mut self, duration_s: f64) -> Self {
        self.duration_s = if duration_s.is_finite() {
            duration_s.max(0.0)
        } else {
            0.0
        };
        self
    }
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }
    /// Resources requested.
    pub fn resources(&self) -> Resources {
        self.resources
    }
    /// SLA class.
    pub fn class(&self) -> SlaClass {
        self.class
    }
    /// Deadline in milliseconds after submission, if any.
    pub fn deadline_ms(&self) -> Option<u64> {
        self.deadline_ms
    }
    /// Priority within the class.
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// Privacy level.
    pub fn privacy(&self) -> PrivacyLevel {
        self.privacy
    }
    /// Required node labels.
    pub fn affinity(&self) -> &[String] {
        &self.affinity
    }
    /// Jobs this one must not share a node with.
    pub fn anti_affinity(&self) -> &[JobId] {
        &self.anti_affinity
    }
    /// Gang membership.
    pub fn gang(&self) -> Option<GangId> {
        self.gang
    }
    /// Jobs that must finish first.
    pub fn dependencies(&self) -> &[JobId] {
        &self.dependencies
    }
    /// The node the job was submitted at, if any.
    pub fn origin_node(&self) -> Option<NodeId> {
        self.origin_node
    }
    /// Where the job was submitted from, as coordinates.
    pub fn origin(&self) -> Coordinates {
        self.origin
    }
    /// Expected run time in seconds.
    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }
}

/// The nodes and what this scheduler has placed on them. Every change goes
/// through [`Cluster::assign`], which refuses anything that would exceed a
/// node's capacity, so the cluster can never be over-committed.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    nodes: Vec<Node>,
    index: HashMap<NodeId, usize>,
    used: Vec<Resources>,
    residents: Vec<Vec<JobId>>,
    placed: HashMap<JobId, (usize, Resources)>,
    /// Measured round trips in milliseconds: for each origin node index that
    /// has measurements, one entry per node index (NaN where unmeasured).
    latencies: HashMap<usize, Vec<f32>>,
}

impl Cluster {
    /// A cluster of `nodes`; each node's own `load` counts as used.
    /// A repeated node id keeps the first node.
    pub fn new(nodes: Vec<Node>) -> Self {
        let mut index = HashMap::with_capacity(nodes.len());
        let mut kept = Vec::with_capacity(nodes.len());
        for node in nodes {
            if let std::collections::hash_map::Entry::Vacant(slot) = index.entry(node.id) {
                slot.insert(kept.len());
                kept.push(node);
            }
        }
        let used = kept.iter().map(Node::load).collect();
        let residents = vec![Vec::new(); kept.len()];
        Self {
            nodes: kept,
            index,
            used,
            residents,
            placed: HashMap::new(),
            latencies: HashMap::new(),
        }
    }
    /// Records a measured round-trip latency between two nodes, in
    /// milliseconds (for example a ping RTT from the overlay); it is used in
    /// both directions instead of the coordinate estimate. A negative or
    /// non-finite value is refused.
    pub fn set_latency(&mut self, a: NodeId, b: NodeId, ms: f64) -> Result<()> {
        let ia = self.node_index(a).ok_or(SchedError::UnknownNode(a))?;
        let ib = self.node_index(b).ok_or(SchedError::UnknownNode(b))?;
        if !(ms.is_finite() && ms >= 0.0) {
            return Err(SchedError::InvalidConfig(format!(
                "latency between {a} and {b} must be a finite, non-negative number of ms"
            )));
        }
        let n = self.nodes.len();
        for (from, to) in [(ia, ib), (ib, ia)] {
            self.latencies
                .entry(from)
                .or_insert_with(|| vec![f32::NAN; n])[to] = ms as f32;
        }
        Ok(())
    }
    /// The latency between two nodes in milliseconds: 0 from a node to
    /// itself, the measured round trip when there is one, else the
    /// coordinate estimate; `None` for an unknown node.
    pub fn latency_between(&self, a: NodeId, b: NodeId) -> Option<f64> {
        let ia = self.node_index(a)?;
        let ib = self.node_index(b)?;
        Some(self.latency_from_index(ia, ib))
    }
    fn latency_from_index(&self, from: usize, to: usize) -> f64 {
        if from == to {
            return 0.0;
        }
        match self.latencies.get(&from).map(|row| row[to]) {
            Some(ms) if !ms.is_nan() => f64::from(ms),
            _ => self.nodes[from]
                .coordinates
                .latency_ms(self.nodes[to].coordinates),
        }
    }
    /// The latency from where `job` was submitted to node `index`, in
    /// milliseconds: from its origin node (measured, else by coordinates)
    /// when it has one in this cluster, else from its origin coordinates.
    pub fn origin_latency(&self, job: &Job, index: usize) -> f64 {
        match job.origin_node.and_then(|o| self.node_index(o)) {
            Some(from) => self.latency_from_index(from, index),
            None => job.origin.latency_ms(self.nodes[index].coordinates),
        }
    }
    /// Where `job`'s latencies are measured from: the index of its origin
    /// node (latency 0 to itself) and that node's measured-latency row, if
    /// any, and the coordinates latency is estimated from otherwise.
    pub(crate) fn origin_row(&self, job: &Job) -> (Option<usize>, Option<&[f32]>, Coordinates) {
        match job.origin_node.and_then(|o| self.node_index(o)) {
            Some(from) => (
                Some(from),
                self.latencies.get(&from).map(Vec::as_slice),
                self.nodes[from].coordinates,
            ),
            None => (None, None, job.origin),
        }
    }
    /// The nodes, in a stable order (indices are used by placements).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// The index of a node id.
    pub fn node_index(&self, id: NodeId) -> Option<usize> {
        self.index.get(&id).copied()
    }
    /// Resources in use on node `index` (its own load plus placed jobs).
    pub fn used(&self, index: usize) -> Resources {
        self.used[index]
    }
    /// Resources still free on node `index`.
    pub fn free(&self, index: usize) -> Resources {
        self.nodes[index].capacity.minus(self.used[index])
    }
    /// The dominant-resource utilization of node `index`, in `[0, 1]` when
    /// not over-committed by its own load.
    pub fn utilization(&self, index: usize) -> f64 {
        self.used[index].dominant_share(self.nodes[index].capacity)
    }
    /// The jobs placed on node `index`.
    pub fn residents(&self, index: usize) -> &[JobId] {
        &self.residents[index]
    }
    /// Where a job is placed, if it is.
    pub fn placement_of(&self, job: JobId) -> Option<NodeId> {
        self.placed.get(&job).map(|&(i, _)| self.nodes[i].id)
    }
    /// The resources a placed job holds.
    pub fn placed_resources(&self, job: JobId) -> Option<Resources> {
        self.placed.get(&job).map(|&(_, r)| r)
    }
    /// Number of placed jobs.
    pub fn placed_count(&self) -> usize {
        self.placed.len()
    }
    /// Whether `job` may run on node `index` now: capacity, privacy clearance,
    /// required labels and anti-affinity.
    pub fn is_feasible(&self, job: &Job, index: usize) -> bool {
        let node = &self.nodes[index];
        job.resources.fits_in(self.free(index))
            && job.privacy <= node.max_privacy
            && job.affinity.iter().all(|l| node.has_label(l))
            && (job.anti_affinity.is_empty()
                || !self.residents[index]
                    .iter()
                    .any(|r| job.anti_affinity.contains(r)))
    }
    /// Places `job` on node `node`, refusing (and changing nothing) if it
    /// does not fit or is already placed.
    pub fn assign(&mut self, job: &Job, node: NodeId) -> Result<()> {
        let index = self.node_index(node).ok_or(SchedError::UnknownNode(node))?;
        if self.placed.contains_key(&job.id) {
            return Err(SchedError::DuplicateJob(job.id));
        }
        if !self.is_feasible(job, index) {
            return Err(SchedError::CapacityExceeded { job: job.id, node });
        }
        self.used[index] = self.used[index].plus(job.resources);
        self.residents[index].push(job.id);
        self.placed.insert(job.id, (index, job.resources));
        Ok(())
    }
    /// Removes a placed job and frees its resources; returns the node it was on.
    pub fn release(&mut self, job: JobId) -> Result<NodeId> {
        let (index, resources) = self
            .placed
            .remove(&job)
            .ok_or(SchedError::UnknownJob(job))?;
        self.used[index] = self.used[index].minus(resources);
        self.residents[index].retain(|&r| r != job);
        Ok(self.nodes[index].id)
    }
    /// Replaces a node's reputation (fed from the reputation store).
    pub fn set_reputation(&mut self, node: NodeId, reputation: f64) -> Result<()> {
        let index = self.node_index(node).ok_or(SchedError::UnknownNode(node))?;
        let n = self.nodes[index].clone().with_reputation(reputation);
        self.nodes[index] = n;
        Ok(())
    }
    /// Whether no node holds more than its capacity (an invariant; always
    /// `true` unless a node's own load already exceeds its capacity).
    pub fn within_capacity(&self) -> bool {
        self.nodes
            .iter()
            .zip(&self.used)
            .all(|(n, &u)| u.fits_in(n.capacity))
    }
}
