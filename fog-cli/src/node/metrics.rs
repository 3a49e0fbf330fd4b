//! The node's one metrics registry, served as OpenMetrics on `/metrics`.
//! Layer crates keep no metrics: the runtime turns their counters and
//! events into these series (the names the Grafana dashboard in
//! `fog-cli/grafana/` uses).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every series the node exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) info: Family<Labels, Gauge>,
    pub(crate) peers_alive: Gauge,
    pub(crate) jobs_submitted: Counter,
    pub(crate) jobs_verified: Counter,
    pub(crate) jobs_failed: Counter,
    pub(crate) preemptions: Counter,
    pub(crate) evidence: Counter,
    pub(crate) tasks_executed: Counter,
    pub(crate) jobs: Family<Labels, Gauge>,
    pub(crate) task_duration: Histogram,
    pub(crate) mix_packets: Family<Labels, Counter>,
    pub(crate) mix_latency: Histogram,
    pub(crate) p2p_connected: Gauge,
    pub(crate) p2p_gossip_received: Counter,
    pub(crate) p2p_queued: Gauge,
    pub(crate) harvest_state: Family<Labels, Gauge>,
    pub(crate) harvest_cpu_share: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) harvest_battery: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) harvest_temperature: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub(crate) dao_height: Gauge,
    pub(crate) dao_rewards: Counter,
    pub(crate) dao_supply: Gauge,
    pub(crate) placements: Counter,
    pub(crate) checkpoints: Family<Labels, Counter>,
    pub(crate) reputation: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Metrics {
    /// A registry with every series registered.
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("fog");
        let m = Self {
            info: Family::default(),
            peers_alive: Gauge::default(),
            jobs_submitted: Counter::default(),
            jobs_verified: Counter::default(),
            jobs_failed: Counter::default(),
            preemptions: Counter::default(),
            evidence: Counter::default(),
            tasks_executed: Counter::default(),
            jobs: Family::default(),
            task_duration: Histogram::new(exponential_buckets(0.005, 2.0, 16)),
            mix_packets: Family::default(),
            mix_latency: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            p2p_connected: Gauge::default(),
            p2p_gossip_received: Counter::default(),
            p2p_queued: Gauge::default(),
            harvest_state: Family::default(),
            harvest_cpu_share: Gauge::default(),
            harvest_battery: Gauge::default(),
            harvest_temperature: Gauge::default(),
            dao_height: Gauge::default(),
            dao_rewards: Counter::default(),
            dao_supply: Gauge::default(),
            placements: Counter::default(),
            checkpoints: Family::default(),
            reputation: Family::default(),
            registry: Registry::default(),
        };
        registry.register("node_info", "This node (name, version)", m.info.clone());
        registry.register(
            "node_peers_alive",
            "Nodes with a fresh heartbeat",
            m.peers_alive.clone(),
        );
        registry.register(
            "jobs_submitted",
            "Jobs submitted at this node",
            m.jobs_submitted.clone(),
        );
        registry.register(
            "jobs_verified",
            "Jobs whose result was verified",
            m.jobs_verified.clone(),
        );
        registry.register("jobs_failed", "Jobs that failed", m.jobs_failed.clone());
        registry.register(
            "jobs_preemptions",
            "Tasks preempted for S jobs",
            m.preemptions.clone(),
        );
        registry.register(
            "jobs_evidence",
            "Evidence records from verification",
            m.evidence.clone(),
        );
        registry.register(
            "tasks_executed",
            "Tasks this node ran for others",
            m.tasks_executed.clone(),
        );
        registry.register("jobs", "Jobs submitted here by state", m.jobs.clone());
        registry.register(
            "task_duration_seconds",
            "Wall time of tasks run here",
            m.task_duration.clone(),
        );
        registry.register("mix_packets", "Mix packets by event", m.mix_packets.clone());
        registry.register(
            "mix_latency_seconds",
            "End-to-end latency of own mix messages",
            m.mix_latency.clone(),
        );
        registry.register(
            "p2p_connected_peers",
            "Peers with an open connection",
            m.p2p_connected.clone(),
        );
        registry.register(
            "p2p_gossip_received",
            "GossipSub messages received",
            m.p2p_gossip_received.clone(),
        );
        registry.register(
            "p2p_queued_messages",
            "Messages in the store-and-forward queue",
            m.p2p_queued.clone(),
        );
        registry.register(
            "harvest_state",
            "1 for the harvest controller's current state",
            m.harvest_state.clone(),
        );
        registry.register(
            "harvest_cpu_share",
            "CPU share fog may use",
            m.harvest_cpu_share.clone(),
        );
        registry.register(
            "harvest_battery_percent",
            "Battery charge",
            m.harvest_battery.clone(),
        );
        registry.register(
            "harvest_temperature_celsius",
            "Hottest temperature",
            m.harvest_temperature.clone(),
        );
        registry.register(
            "dao_ledger_height",
            "Events in the ledger",
            m.dao_height.clone(),
        );
        registry.register(
            "dao_rewards_paid",
            "Tokens minted for verified work",
            m.dao_rewards.clone(),
        );
        registry.register("dao_supply", "Tokens in circulation", m.dao_supply.clone());
        registry.register(
            "sched_placements",
            "Replicas placed by this node",
            m.placements.clone(),
        );
        registry.register(
            "checkpoints",
            "Task checkpoints by event: shipped (by this executor), kept (by this submitter), resumed (replicas placed from one)",
            m.checkpoints.clone(),
        );
        registry.register(
            "sched_reputation",
            "This node's reputation of a peer",
            m.reputation.clone(),
        );
        Self { registry, ..m }
    }

    /// The OpenMetrics text of every series.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Sets a one-hot gauge family: `value` 1, every other of `all` 0.
    pub(crate) fn one_hot(family: &Family<Labels, Gauge>, key: &str, all: &[&str], value: &str) {
        for name in all {
            family
                .get_or_create(&vec![(key.to_owned(), (*name).to_owned())])
                .set(i64::from(*name == value));
        }
    }
}

/// A label set of one pair.
pub(crate) fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openmetrics_with_the_dashboard_names() {
        let m = Metrics::new();
        m.jobs_submitted.inc();
        m.mix_packets
            .get_or_create(&label("event", "received"))
            .inc_by(3);
        Metrics::one_hot(
            &m.harvest_state,
            "state",
            &["harvesting", "suspended"],
            "harvesting",
        );
        let text = m.render();
        assert!(text.contains("fog_jobs_submitted_total 1"), "{text}");
        assert!(
            text.contains("fog_mix_packets_total{event=\"received\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("fog_harvest_state{state=\"harvesting\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
