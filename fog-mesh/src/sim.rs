//! Trace-driven simulation of the routing schemes.
//!
//! A contact trace in the ONE simulator's format (`<time> CONN <a> <b> up|down`,
//! one event per line) is replayed with a message workload; every node runs a
//! real [`Router`](crate::Router). Transfers are instantaneous while a link is
//! up (contacts are treated as long enough for every bundle the router picks),
//! buffers are bounded (oldest bundle dropped first) and bundles expire. The
//! run is deterministic for a seed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use crate::NodeId;
use crate::error::SimError;
use crate::router::{Offer, Router, RouterConfig, RouterKind, Trigger};

/// One link event of a contact trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContactEvent {
    /// Seconds from the start of the trace.
    pub time: f64,
    /// One end.
    pub a: u32,
    /// The other end.
    pub b: u32,
    /// Whether the link comes up (or goes down).
    pub up: bool,
}

/// A contact trace: link events in time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactTrace {
    events: Vec<ContactEvent>,
    nodes: u32,
}

/// Most nodes a trace may name (node ids are below this).
pub const MAX_TRACE_NODES: u32 = 100_000;

impl ContactTrace {
    /// A trace from events (sorted here by time, stable).
    pub fn from_events(mut events: Vec<ContactEvent>) -> Self {
        events.sort_by(|x, y| x.time.total_cmp(&y.time));
        let nodes = events.iter().map(|e| e.a.max(e.b) + 1).max().unwrap_or(0);
        ContactTrace { events, nodes }
    }

    /// Parses the ONE format. Blank lines and lines starting with `#` are
    /// skipped; node names are numbers, optionally with a letter prefix as
    /// ONE writes them (`n12`, `p3`).
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let mut events = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| SimError::Trace {
                line: index + 1,
                reason: reason.to_owned(),
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [time, kind, a, b, state] = fields.as_slice() else {
                return Err(bad("expected `<time> CONN <a> <b> up|down`"));
            };
            if *kind != "CONN" {
                return Err(bad("only CONN events are supported"));
            }
            let time: f64 = time.parse().map_err(|_| bad("bad time"))?;
            if !time.is_finite() || time < 0.0 {
                return Err(bad("time must be a finite, non-negative number"));
            }
            let node = |text: &str| -> Result<u32, SimError> {
                let digits = text.trim_start_matches(|c: char| c.is_ascii_alphabetic());
                let id: u32 = digits.parse().map_err(|_| bad("bad node id"))?;
                if id >= MAX_TRACE_NODES {
                    return Err(bad("node id too large"));
                }
                Ok(id)
            };
            let (a, b) = (node(a)?, node(b)?);
            if a == b {
                return Err(bad("a node cannot meet itself"));
            }
            let up = match *state {
                "up" => true,
                "down" => false,
                _ => return Err(bad("state must be up or down")),
            };
            events.push(ContactEvent { time, a, b, up });
        }
        Ok(ContactTrace::from_events(events))
    }

    /// The trace in the ONE format.
    pub fn to_one_format(&self) -> String {
        let mut out = String::new();
        for e in &self.events {
            let _ = writeln!(
                out,
                "{:.1} CONN {} {} {}",
                e.time,
                e.a,
                e.b,
                if e.up { "up" } else { "down" }
            );
        }
        out
    }

    /// The events, in time order.
    pub fn events(&self) -> &[ContactEvent] {
        &self.events
    }

    /// Number of nodes (highest id + 1).
    pub fn nodes(&self) -> u32 {
        self.nodes
    }

    /// Number of contacts (up events).
    pub fn contacts(&self) -> usize {
        self.events.iter().filter(|e| e.up).count()
    }

    /// Time of the last event.
    pub fn duration(&self) -> f64 {
        self.events.last().map_or(0.0, |e| e.time)
    }
}

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// The random-waypoint mobility model, sampled into a contact trace: each
/// node walks to a uniformly chosen point at a uniformly chosen speed,
/// pauses, and repeats; two nodes are in contact while closer than the range.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RandomWaypoint {
    /// Number of nodes.
    pub nodes: u32,
    /// Area width in metres.
    pub width: f64,
    /// Area height in metres.
    pub height: f64,
    /// Radio range in metres.
    pub range: f64,
    /// Slowest walking speed, m/s.
    pub min_speed: f64,
    /// Fastest walking speed, m/s.
    pub max_speed: f64,
    /// Longest pause at a waypoint, s.
    pub max_pause: f64,
    /// Length of the trace, s.
    pub duration: f64,
    /// Sampling step, s.
    pub step: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for RandomWaypoint {
    fn default() -> Self {
        RandomWaypoint {
            nodes: 50,
            width: 2000.0,
            height: 2000.0,
            range: 60.0,
            min_speed: 0.5,
            max_speed: 2.0,
            max_pause: 120.0,
            duration: 12.0 * 3600.0,
            step: 5.0,
            seed: 1,
        }
    }
}

impl RandomWaypoint {
    /// Generates the trace.
    pub fn generate(&self) -> Result<ContactTrace, SimError> {
        if self.nodes < 2 || self.nodes > 10_000 {
            return Err(SimError::Config(
                "random waypoint needs 2 to 10,000 nodes".to_owned(),
            ));
        }
        let positive = [
            self.width,
            self.height,
            self.range,
            self.max_speed,
            self.duration,
            self.step,
        ];
        if positive.iter().any(|v| !v.is_finite() || *v <= 0.0)
            || !(0.0..=self.max_speed).contains(&self.min_speed)
            || self.max_pause < 0.0
        {
            return Err(SimError::Config(
                "random waypoint settings must be positive".to_owned(),
            ));
        }
        struct Walker {
            x: f64,
            y: f64,
            tx: f64,
            ty: f64,
            speed: f64,
            pause_until: f64,
        }
        let mut rng = SplitMix::new(self.seed);
        let n = self.nodes as usize;
        let mut walkers: Vec<Walker> = (0..n)
            .map(|_| {
                let (x, y) = (rng.range(0.0, self.width), rng.range(0.0, self.height));
                Walker {
                    x,
                    y,
                    tx: rng.range(0.0, self.width),
                    ty: rng.range(0.0, self.height),
                    speed: rng.range(self.min_speed.max(0.01), self.max_speed),
                    pause_until: 0.0,
                }
            })
            .collect();
        let mut linked = vec![false; n * n];
        let mut events = Vec::new();
        let range2 = self.range * self.range;
        let steps = (self.duration / self.step).floor() as u64;
        for step in 0..=steps {
            let t = step as f64 * self.step;
            for w in &mut walkers {
                if t < w.pause_until {
                    continue;
                }
                let (dx, dy) = (w.tx - w.x, w.ty - w.y);
                let dist = (dx * dx + dy * dy).sqrt();
                let reach = w.speed * self.step;
                if dist <= reach {
                    w.x = w.tx;
                    w.y = w.ty;
                    w.pause_until = t + rng.range(0.0, self.max_pause);
                    w.tx = rng.range(0.0, self.width);
                    w.ty = rng.range(0.0, self.height);
                    w.speed = rng.range(self.min_speed.max(0.01), self.max_speed);
                } else {
                    w.x += dx / dist * reach;
                    w.y += dy / dist * reach;
                }
            }
            for i in 0..n {
                for j in i + 1..n {
                    let (dx, dy) = (walkers[i].x - walkers[j].x, walkers[i].y - walkers[j].y);
                    let close = dx * dx + dy * dy <= range2;
                    let cell = &mut linked[i * n + j];
                    if close != *cell {
                        *cell = close;
                        events.push(ContactEvent {
                            time: t,
                            a: i as u32,
                            b: j as u32,
                            up: close,
                        });
                    }
                }
            }
        }
        // Close the links still up at the end, so every contact has both events.
        let end = steps as f64 * self.step;
        for i in 0..n {
            for j in i + 1..n {
                if linked[i * n + j] {
                    events.push(ContactEvent {
                        time: end,
                        a: i as u32,
                        b: j as u32,
                        up: false,
                    });
                }
            }
        }
        Ok(ContactTrace {
            events,
            nodes: self.nodes,
        })
    }
}

/// The message workload of a simulation.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Workload {
    /// Messages created per hour across the network (Poisson arrivals).
    pub messages_per_hour: f64,
    /// Message size in bytes (reported; transfers are not bandwidth-limited).
    pub size: usize,
    /// Message lifetime in seconds.
    pub ttl_s: f64,
    /// Seed for arrivals and endpoints.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            messages_per_hour: 120.0,
            size: 1024,
            ttl_s: 4.0 * 3600.0,
            seed: 7,
        }
    }
}

/// A simulation's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SimConfig {
    /// The routing scheme every node runs.
    pub router: RouterKind,
    /// Router parameters.
    pub routers: RouterConfig,
    /// The messages.
    pub workload: Workload,
    /// Bundles each node can hold; the oldest is dropped when full.
    pub buffer_bundles: usize,
}

impl SimConfig {
    /// Defaults for `router`.
    pub fn new(router: RouterKind) -> Self {
        SimConfig {
            router,
            routers: RouterConfig::default(),
            workload: Workload::default(),
            buffer_bundles: 2000,
        }
    }
}

/// What a simulation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SimReport {
    /// The routing scheme.
    pub router: RouterKind,
    /// Nodes in the trace.
    pub nodes: u32,
    /// Contacts (link-up events) replayed.
    pub contacts: usize,
    /// Messages created.
    pub created: usize,
    /// Messages delivered.
    pub delivered: usize,
    /// delivered / created.
    pub delivery_ratio: f64,
    /// Median creation-to-delivery time of delivered messages, seconds.
    pub latency_median_s: f64,
    /// 95th percentile of the same.
    pub latency_p95_s: f64,
    /// Bundle transmissions between nodes.
    pub relayed: u64,
    /// Relayed copies per delivered message.
    pub overhead_ratio: f64,
    /// Mean hops of delivered messages.
    pub mean_hops: f64,
    /// Largest number of bundles any node held at once.
    pub peak_buffer_bundles: usize,
    /// Bundles dropped because a buffer was full.
    pub buffer_drops: u64,
}

#[derive(Debug, Clone, Copy)]
struct Message {
    created: f64,
    source: u32,
    destination: u32,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    copies: u32,
    hops: u64,
    arrived: u64,
}

struct Node {
    router: Box<dyn Router>,
    buffer: BTreeMap<u32, Held>,
    neighbours: BTreeSet<u32>,
}

struct World<'a> {
    config: &'a SimConfig,
    nodes: Vec<Node>,
    messages: Vec<Message>,
    /// seen[node * messages + message]: the node has (or had) the message.
    seen: Vec<bool>,
    delivered: Vec<Option<(f64, u64)>>,
    relayed: u64,
    drops: u64,
    peak: usize,
    arrivals: u64,
    queue: VecDeque<(u32, u32, u32, Trigger)>,
}

impl World<'_> {
    fn seen(&self, node: u32, message: u32) -> bool {
        self.seen[node as usize * self.messages.len() + message as usize]
    }

    fn mark_seen(&mut self, node: u32, message: u32) {
        let at = node as usize * self.messages.len() + message as usize;
        self.seen[at] = true;
    }

    fn expired(&self, message: u32, now: f64) -> bool {
        now >= self.messages[message as usize].created + self.config.workload.ttl_s
    }

    fn hold(&mut self, node: u32, message: u32, copies: u32, hops: u64) {
        self.arrivals += 1;
        let held = Held {
            copies,
            hops,
            arrived: self.arrivals,
        };
        let buffer = &mut self.nodes[node as usize].buffer;
        if buffer.len() >= self.config.buffer_bundles {
            let oldest = buffer
                .iter()
                .min_by_key(|(_, h)| h.arrived)
                .map(|(&m, _)| m);
            if let Some(oldest) = oldest {
                buffer.remove(&oldest);
                self.drops += 1;
            }
        }
        buffer.insert(message, held);
        self.peak = self.peak.max(buffer.len());
        let neighbours: Vec<u32> = self.nodes[node as usize]
            .neighbours
            .iter()
            .copied()
            .collect();
        for peer in neighbours {
            self.queue
                .push_back((node, peer, message, Trigger::NewBundle));
        }
    }

    fn create(&mut self, message: u32, now: f64) {
        let source = self.messages[message as usize].source;
        self.mark_seen(source, message);
        let copies = self.nodes[source as usize].router.initial_copies();
        self.hold(source, message, copies, 0);
        self.drain(now);
    }

    fn link(&mut self, event: &ContactEvent) {
        let (a, b, now) = (event.a, event.b, event.time);
        if !event.up {
            if self.nodes[a as usize].neighbours.remove(&b) {
                self.nodes[b as usize].neighbours.remove(&a);
                self.nodes[a as usize]
                    .router
                    .link_down(now, NodeId(b.into()));
                self.nodes[b as usize]
                    .router
                    .link_down(now, NodeId(a.into()));
            }
            return;
        }
        if !self.nodes[a as usize].neighbours.insert(b) {
            return; // already up
        }
        self.nodes[b as usize].neighbours.insert(a);
        let info_a = self.nodes[a as usize].router.link_up(now, NodeId(b.into()));
        let info_b = self.nodes[b as usize].router.link_up(now, NodeId(a.into()));
        self.nodes[a as usize]
            .router
            .peer_info(now, NodeId(b.into()), &info_b);
        self.nodes[b as usize]
            .router
            .peer_info(now, NodeId(a.into()), &info_a);
        for (from, to) in [(a, b), (b, a)] {
            let expired: Vec<u32> = self.nodes[from as usize]
                .buffer
                .keys()
                .copied()
                .filter(|&m| self.expired(m, now))
                .collect();
            for m in expired {
                self.nodes[from as usize].buffer.remove(&m);
            }
            let held: Vec<u32> = self.nodes[from as usize].buffer.keys().copied().collect();
            for m in held {
                self.queue.push_back((from, to, m, Trigger::LinkUp));
            }
        }
        self.drain(now);
    }

    fn drain(&mut self, now: f64) {
        while let Some((from, to, message, trigger)) = self.queue.pop_front() {
            if !self.nodes[from as usize].neighbours.contains(&to) || self.seen(to, message) {
                continue;
            }
            let Some(held) = self.nodes[from as usize].buffer.get(&message).copied() else {
                continue;
            };
            if self.expired(message, now) {
                continue;
            }
            let destination = self.messages[message as usize].destination;
            let offer = Offer {
                peer: NodeId(to.into()),
                destination: Some(NodeId(destination.into())),
                copies: held.copies,
                hops: held.hops,
                trigger,
            };
            let router = &mut self.nodes[from as usize].router;
            let given = router.offer(now, &offer).min(held.copies);
            if given == 0 {
                continue;
            }
            let kept = router.after_send(&offer, given);
            let buffer = &mut self.nodes[from as usize].buffer;
            if kept == 0 {
                buffer.remove(&message);
            } else if let Some(h) = buffer.get_mut(&message) {
                h.copies = kept;
            }
            self.relayed += 1;
            self.mark_seen(to, message);
            if to == destination {
                let slot = &mut self.delivered[message as usize];
                if slot.is_none() {
                    *slot = Some((now - self.messages[message as usize].created, held.hops + 1));
                }
            } else {
                self.hold(to, message, given, held.hops + 1);
            }
        }
    }
}

/// Replays `trace` with `config` and reports what happened.
pub fn simulate(trace: &ContactTrace, config: &SimConfig) -> Result<SimReport, SimError> {
    let w = &config.workload;
    if !(w.messages_per_hour.is_finite()
        && w.messages_per_hour > 0.0
        && w.ttl_s.is_finite()
        && w.ttl_s > 0.0)
    {
        return Err(SimError::Config(
            "the workload needs a positive rate and ttl".to_owned(),
        ));
    }
    if config.buffer_bundles == 0 {
        return Err(SimError::Config(
            "buffers must hold at least one bundle".to_owned(),
        ));
    }
    let nodes = trace.nodes();
    if nodes < 2 {
        return Err(SimError::Config(
            "the trace has fewer than two nodes".to_owned(),
        ));
    }
    // Messages arrive as a Poisson process until one ttl before the end,
    // so each has its whole lifetime inside the trace when possible.
    let mut rng = SplitMix::new(w.seed);
    let start = trace.events().first().map_or(0.0, |e| e.time);
    let end = (trace.duration() - w.ttl_s).max(start + (trace.duration() - start) / 2.0);
    let rate = w.messages_per_hour / 3600.0;
    let mut messages = Vec::new();
    let mut t = start;
    loop {
        t += -(1.0 - rng.unit()).ln() / rate;
        if t >= end || messages.len() >= 1_000_000 {
            break;
        }
        let source = rng.below(nodes);
        let mut destination = rng.below(nodes - 1);
        if destination >= source {
            destination += 1;
        }
        messages.push(Message {
            created: t,
            source,
            destination,
        });
    }
    let count = messages.len();
    let seen_cells = (nodes as usize)
        .checked_mul(count)
        .filter(|&c| c <= 1 << 31)
        .ok_or_else(|| {
            SimError::Config("nodes × messages is too large for one simulation".to_owned())
        })?;
    let mut world = World {
        config,
        nodes: (0..nodes)
            .map(|n| Node {
                router: config.routers.build(config.router, NodeId(n.into())),
                buffer: BTreeMap::new(),
                neighbours: BTreeSet::new(),
            })
            .collect(),
        messages,
        seen: vec![false; seen_cells],
        delivered: vec![None; count],
        relayed: 0,
        drops: 0,
        peak: 0,
        arrivals: 0,
        queue: VecDeque::new(),
    };
    let mut next_message = 0usize;
    for event in trace.events() {
        while next_message < count && world.messages[next_message].created <= event.time {
            let created = world.messages[next_message].created;
            world.create(next_message as u32, created);
            next_message += 1;
        }
        world.link(event);
    }
    while next_message < count {
        let created = world.messages[next_message].created;
        world.create(next_message as u32, created);
        next_message += 1;
    }
    let mut latencies: Vec<f64> = world.delivered.iter().flatten().map(|(l, _)| *l).collect();
    latencies.sort_by(f64::total_cmp);
    let delivered = latencies.len();
    let hops: u64 = world.delivered.iter().flatten().map(|(_, h)| *h).sum();
    Ok(SimReport {
        router: config.router,
        nodes,
        contacts: trace.contacts(),
        created: count,
        delivered,
        delivery_ratio: if count == 0 {
            0.0
        } else {
            delivered as f64 / count as f64
        },
        latency_median_s: percentile(&latencies, 0.5),
        latency_p95_s: percentile(&latencies, 0.95),
        relayed: world.relayed,
        overhead_ratio: world.relayed as f64 / delivered.max(1) as f64,
        mean_hops: if delivered == 0 {
            0.0
        } else {
            hops as f64 / delivered as f64
        },
        peak_buffer_bundles: world.peak,
        buffer_drops: world.drops,
    })
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_format() {
        let trace = ContactTrace::parse(
            "# comment\n0 CONN 0 1 up\n\n10.5 CONN n1 n2 up\n20 CONN 0 1 down\n",
        )
        .unwrap();
        assert_eq!(trace.nodes(), 3);
        assert_eq!(trace.contacts(), 2);
        assert_eq!(ContactTrace::parse(&trace.to_one_format()).unwrap(), trace);
        for bad in [
            "0 CONN 0 1",
            "x CONN 0 1 up",
            "0 LINK 0 1 up",
            "0 CONN 0 0 up",
            "0 CONN 0 1 sideways",
            "-1 CONN 0 1 up",
        ] {
            assert!(ContactTrace::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn store_carry_forward_on_a_chain() {
        // 0 meets 1, later 1 meets 2: only carrying delivers from 0 to 2.
        let trace = ContactTrace::parse(
            "0 CONN 0 1 up\n100 CONN 0 1 down\n200 CONN 1 2 up\n300 CONN 1 2 down\n5000 CONN 0 2 up\n5001 CONN 0 2 down\n",
        )
        .unwrap();
        let mut config = SimConfig::new(RouterKind::Epidemic);
        config.workload = Workload {
            messages_per_hour: 3600.0,
            size: 10,
            ttl_s: 4000.0,
            seed: 3,
        };
        let report = simulate(&trace, &config).unwrap();
        assert!(report.created > 0);
        assert!(report.delivered > 0);
        assert_eq!(simulate(&trace, &config).unwrap(), report, "deterministic");
    }

    #[test]
    fn random_waypoint_is_deterministic_and_balanced() {
        let rwp = RandomWaypoint {
            nodes: 10,
            duration: 3600.0,
            width: 500.0,
            height: 500.0,
            ..RandomWaypoint::default()
        };
        let trace = rwp.generate().unwrap();
        assert_eq!(trace, rwp.generate().unwrap());
        let ups = trace.events().iter().filter(|e| e.up).count();
        assert_eq!(
            ups * 2,
            trace.events().len(),
            "every contact goes up and down"
        );
        assert!(ups > 0);
    }
}
