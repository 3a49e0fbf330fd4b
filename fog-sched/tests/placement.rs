//! Placement: capacity is never exceeded, strategies do what they say,
//! SLA weights steer the choice, market prices stay in bounds.

use fog_sched::market::{MarketConfig, MarketPrices};
use fog_sched::model::{
    Cluster, Coordinates, Job, JobId, Node, NodeId, PrivacyLevel, Resources, SlaClass, Tier,
};
use fog_sched::nsga2::Nsga2Config;
use fog_sched::placement::{Scheduler, Strategy, Weights};
use fog_sched::synthetic;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

fn node(id: u64, cpu: u64) -> Node {
    Node::new(NodeId::new(id), Resources::new(cpu, 4096, 0))
}

#[test]
fn strategies_pick_what_they_promise() {
    let nodes = vec![
        node(0, 4000)
            .with_price(3.0)
            .with_reputation(0.99)
            .with_coordinates(Coordinates::new(90.0, 0.0, 1.0)),
        node(1, 4000)
            .with_price(0.5)
            .with_reputation(0.6)
            .with_coordinates(Coordinates::new(50.0, 0.0, 1.0)),
        node(2, 4000)
            .with_price(1.0)
            .with_reputation(0.8)
            .with_coordinates(Coordinates::new(1.0, 0.0, 1.0))
            .with_load(Resources::new(3000, 0, 0)),
    ];
    let job = Job::new(JobId::new(1), Resources::new(500, 100, 0));
    let mut s = Scheduler::new(Cluster::new(nodes), 1);
    assert_eq!(s.choose(&job, Strategy::TrustFirst).unwrap(), 0);
    assert_eq!(s.choose(&job, Strategy::CostFirst).unwrap(), 1);
    assert_eq!(s.choose(&job, Strategy::Proximity).unwrap(), 2);
    assert_eq!(s.choose(&job, Strategy::LeastLoaded).unwrap(), 0);
    assert_eq!(s.choose(&job, Strategy::RoundRobin).unwrap(), 0);
    assert_eq!(s.choose(&job, Strategy::RoundRobin).unwrap(), 1);
    assert_eq!(s.choose(&job, Strategy::RoundRobin).unwrap(), 2);
    assert_eq!(s.choose(&job, Strategy::RoundRobin).unwrap(), 0);
}

#[test]
fn measured_latencies_override_coordinates() {
    // By coordinates node 1 is nearest to node 0, but the measured round
    // trips say node 2 is.
    let nodes = vec![
        // The submitting node has no room for the job.
        node(0, 100).with_coordinates(Coordinates::new(0.0, 0.0, 1.0)),
        node(1, 4000).with_coordinates(Coordinates::new(5.0, 0.0, 1.0)),
        node(2, 4000).with_coordinates(Coordinates::new(80.0, 0.0, 1.0)),
    ];
    let (a, b, c) = (NodeId::new(0), NodeId::new(1), NodeId::new(2));
    let mut cluster = Cluster::new(nodes);
    assert_eq!(cluster.latency_between(a, b), Some(7.0));
    assert_eq!(cluster.latency_between(a, a), Some(0.0));
    cluster.set_latency(a, b, 120.0).unwrap();
    cluster.set_latency(c, a, 3.0).unwrap();
    assert_eq!(cluster.latency_between(b, a), Some(120.0));
    assert_eq!(cluster.latency_between(a, c), Some(3.0));
    // Unmeasured pairs keep the coordinate estimate.
    assert_eq!(cluster.latency_between(b, c), Some(77.0));
    assert!(cluster.set_latency(a, b, f64::NAN).is_err());
    assert!(cluster.set_latency(a, b, -1.0).is_err());
    assert!(cluster.set_latency(a, NodeId::new(9), 1.0).is_err());
    assert_eq!(
        cluster.latency_between(a, b),
        Some(120.0),
        "refused values change nothing"
    );

    // Submitted at node 0 (which cannot host it): node 2 is nearest.
    let job = Job::new(JobId::new(1), Resources::new(500, 100, 0)).with_origin_node(a);
    let mut s = Scheduler::new(cluster, 1);
    assert_eq!(s.choose(&job, Strategy::Proximity).unwrap(), 2);
    assert_eq!(s.choose(&job, Strategy::LatencyFirst).unwrap(), 2);
    let s_job = job.clone().with_class(SlaClass::S);
    assert_eq!(s.choose(&s_job, Strategy::Scored).unwrap(), 2);
    let placed = s.place(&s_job, Strategy::Scored).unwrap();
    assert!(placed.objectives.latency_ms < 10.0, "{placed:?}");
    // A job without an origin node still measures from its coordinates.
    let plain = Job::new(JobId::new(2), Resources::new(500, 100, 0));
    assert_eq!(s.choose(&plain, Strategy::Proximity).unwrap(), 1);
    // The scheduler takes new measurements while running.
    s.set_latency(a, c, 500.0).unwrap();
    let late = Job::new(JobId::new(3), Resources::new(500, 100, 0)).with_origin_node(a);
    assert_eq!(s.choose(&late, Strategy::Proximity).unwrap(), 1);
}

#[test]
fn strategies_read_their_names() {
    for strategy in Strategy::ALL {
        assert_eq!(strategy.name().parse::<Strategy>().unwrap(), strategy);
        assert_eq!(strategy.to_string(), strategy.name());
    }
    assert_eq!(
        "Least_Loaded".parse::<Strategy>().unwrap(),
        Strategy::LeastLoaded
    );
    let error = "fastest".parse::<Strategy>().unwrap_err().to_string();
    assert!(error.contains("round-robin"), "{error}");
}

#[test]
fn sla_classes_steer_the_scored_choice() {
    // A near, trusted, expensive node and a far, cheap, less trusted one.
    let nodes = vec![
        node(0, 8000)
            .with_price(4.0)
            .with_reputation(0.99)
            .with_tier(Tier::Edge)
            .with_coordinates(Coordinates::new(1.0, 0.0, 1.0)),
        node(1, 8000)
            .with_price(0.2)
            .with_reputation(0.7)
            .with_tier(Tier::Cloud)
            .with_coordinates(Coordinates::new(150.0, 0.0, 5.0)),
    ];
    let mut s = Scheduler::new(Cluster::new(nodes), 1);
    let s_job = Job::new(JobId::new(1), Resources::new(1000, 100, 0)).with_class(SlaClass::S);
    let b_job = Job::new(JobId::new(2), Resources::new(1000, 100, 0)).with_class(SlaClass::B);
    assert_eq!(s.choose(&s_job, Strategy::Scored).unwrap(), 0);
    assert_eq!(s.choose(&b_job, Strategy::Scored).unwrap(), 1);
}

#[test]
fn privacy_affinity_and_anti_affinity_are_rules() {
    let nodes = vec![
        node(0, 8000).with_max_privacy(PrivacyLevel::Public),
        node(1, 8000)
            .with_max_privacy(PrivacyLevel::Secret)
            .with_label("gpu-box"),
    ];
    let mut s = Scheduler::new(Cluster::new(nodes), 1);
    let secret =
        Job::new(JobId::new(1), Resources::new(100, 10, 0)).with_privacy(PrivacyLevel::Secret);
    for strategy in Strategy::ALL {
        assert_eq!(s.choose(&secret, strategy).unwrap(), 1, "{strategy:?}");
    }
    let labelled = Job::new(JobId::new(2), Resources::new(100, 10, 0)).with_affinity("gpu-box");
    let placed = s.place(&labelled, Strategy::CostFirst).unwrap();
    assert_eq!(placed.node, NodeId::new(1));
    let apart =
        Job::new(JobId::new(3), Resources::new(100, 10, 0)).with_anti_affinity(JobId::new(2));
    for strategy in Strategy::ALL {
        assert_eq!(s.choose(&apart, strategy).unwrap(), 0, "{strategy:?}");
    }
    let nowhere = Job::new(JobId::new(4), Resources::new(100, 10, 0))
        .with_privacy(PrivacyLevel::Secret)
        .with_anti_affinity(JobId::new(2));
    assert!(s.place(&nowhere, Strategy::Scored).is_err());
}

#[test]
fn batch_placement_returns_a_front_and_commits_the_choice() {
    let cluster = Cluster::new(synthetic::nodes(40, 3));
    let jobs = synthetic::jobs(12, 0, 3);
    let mut s = Scheduler::new(cluster, 3);
    let mut config = Nsga2Config::with_seed(3);
    config.max_evaluations = 1_000;
    config.population = 20;
    let result = s.place_batch(&jobs, 8, config, None).expect("places");
    assert!(!result.front.is_empty());
    assert_eq!(s.cluster().placed_count(), jobs.len());
    for (job, node) in &result.front[result.chosen].assignments {
        assert_eq!(s.cluster().placement_of(*job), Some(*node));
    }
    assert!(s.cluster().within_capacity());
    // A class-specific choice picks from the same kind of front.
    let cheapest = Weights::new(0.0, 0.0, 0.0, 1.0, 0.0);
    let chosen = fog_sched::placement::choose_by_weights(&result.front, cheapest);
    let min_cost = result
        .front
        .iter()
        .map(|p| p.objectives[3])
        .fold(f64::INFINITY, f64::min);
    assert_eq!(result.front[chosen].objectives[3], min_cost);
}

#[test]
fn market_prices_follow_utilization_within_bounds() {
    let config = MarketConfig::default();
    let mut market = MarketPrices::new(config);
    let base = market.prices(Tier::Fog)[0];
    for _ in 0..100 {
        market.observe_utilization(Tier::Fog, 0, 1.0);
    }
    let high = market.prices(Tier::Fog)[0];
    assert!((high - base * config.max_factor).abs() < 1e-9);
    for _ in 0..100 {
        market.observe_utilization(Tier::Fog, 0, 0.0);
    }
    let low = market.prices(Tier::Fog)[0];
    assert!((low - base * config.min_factor).abs() < 1e-9);
    // Driven by a cluster: a full tier gets dearer than an idle one.
    let nodes = vec![
        node(0, 1000)
            .with_tier(Tier::Edge)
            .with_load(Resources::new(1000, 0, 0)),
        node(1, 1000).with_tier(Tier::Cloud),
    ];
    let mut market = MarketPrices::default();
    market.update(&Cluster::new(nodes));
    assert!(market.prices(Tier::Edge)[0] > market.prices(Tier::Cloud)[0]);
}

fn arb_nodes() -> impl proptest::strategy::Strategy<Value = Vec<Node>> {
    prop::collection::vec((0u64..4000, 0u64..4096, 0u64..2, 0u8..4, 0u64..3000), 1..12).prop_map(
        |v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (cpu, mem, gpu, privacy, load))| {
                    node(i as u64, cpu)
                        .with_load(Resources::new(load.min(cpu), 0, 0))
                        .with_max_privacy(
                            [
                                PrivacyLevel::Public,
                                PrivacyLevel::Private,
                                PrivacyLevel::Confidential,
                                PrivacyLevel::Secret,
                            ][privacy as usize],
                        )
                        .with_price(f64::from(privacy))
                        .with_coordinates(Coordinates::new(f64::from(privacy) * 10.0, 0.0, 1.0))
                        .with_reputation(f64::from(privacy) / 4.0)
                        .with_label(if gpu == 1 { "x" } else { "y" })
                        .with_tier(Tier::ALL[privacy as usize])
                        .with_load(Resources::new(load.min(cpu), mem / 2, 0))
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_placement_exceeds_capacity(
        nodes in arb_nodes(),
        requests in prop::collection::vec((1u64..3000, 0u64..2048, 0u8..4, 0usize..10), 1..40),
        seed in 0u64..1000,
        limit in prop::option::of(1usize..4),
    ) {
        let mut s = Scheduler::new(Cluster::new(nodes), seed).with_score_limit(limit);
        for (k, (cpu, mem, privacy, strat)) in requests.into_iter().enumerate() {
            let job = Job::new(JobId::new(k as u64), Resources::new(cpu, mem, 0))
                .with_privacy([
                    PrivacyLevel::Public,
                    PrivacyLevel::Private,
                    PrivacyLevel::Confidential,
                    PrivacyLevel::Secret,
                ][privacy as usize]);
            let strategy = Strategy::ALL[strat];
            let fits_somewhere = (0..s.cluster().len()).any(|i| s.cluster().is_feasible(&job, i));
            match s.place(&job, strategy) {
                Ok(p) => {
                    let node = &s.cluster().nodes()[s.cluster().node_index(p.node).unwrap()];
                    prop_assert!(job.privacy() <= node.max_privacy());
                    // Free half of what was placed again now and then.
                    if k % 2 == 0 {
                        s.release(job.id()).unwrap();
                    }
                }
                Err(_) => prop_assert!(!fits_somewhere, "{strategy:?} missed a feasible node"),
            }
            prop_assert!(s.cluster().within_capacity());
        }
    }

    #[test]
    fn batch_placement_never_exceeds_capacity(
        nodes in arb_nodes(),
        requests in prop::collection::vec((1u64..2000, 0u64..1024), 1..10),
        seed in 0u64..1000,
    ) {
        let mut s = Scheduler::new(Cluster::new(nodes), seed);
        let jobs: Vec<Job> = requests
            .into_iter()
            .enumerate()
            .map(|(k, (cpu, mem))| Job::new(JobId::new(k as u64), Resources::new(cpu, mem, 0)))
            .collect();
        let mut config = Nsga2Config::with_seed(seed);
        config.max_evaluations = 200;
        config.population = 20;
        let placed = s.place_batch(&jobs, 4, config, None).is_ok();
        let expected = if placed { jobs.len() } else { 0 };
        prop_assert_eq!(s.cluster().placed_count(), expected);
        prop_assert!(s.cluster().within_capacity());
    }
}

#[test]
fn dispatch_order_is_class_then_deadline_then_priority() {
    use fog_sched::placement::dispatch_order;
    let r = Resources::new(1, 1, 0);
    let mut jobs = vec![
        Job::new(JobId::new(1), r).with_class(SlaClass::B),
        Job::new(JobId::new(2), r)
            .with_class(SlaClass::A)
            .with_priority(9),
        Job::new(JobId::new(3), r)
            .with_class(SlaClass::A)
            .with_deadline_ms(500),
        Job::new(JobId::new(4), r)
            .with_class(SlaClass::S)
            .with_deadline_ms(900),
        Job::new(JobId::new(5), r)
            .with_class(SlaClass::S)
            .with_deadline_ms(100),
    ];
    dispatch_order(&mut jobs);
    let ids: Vec<u64> = jobs.iter().map(|j| j.id().get()).collect();
    assert_eq!(ids, vec![5, 4, 3, 2, 1]);
}

#[test]
fn reputation_feeds_the_scheduler() {
    use fog_sched::reputation::{OutcomeSink, ReputationConfig, ReputationStore, TaskOutcome};
    let nodes = vec![node(0, 4000), node(1, 4000)];
    let mut s = Scheduler::new(Cluster::new(nodes), 1);
    let mut store = ReputationStore::in_memory(ReputationConfig::default()).unwrap();
    for _ in 0..10 {
        store
            .record_outcome(NodeId::new(0), TaskOutcome::VerificationMismatch)
            .unwrap();
        store
            .record_outcome(NodeId::new(1), TaskOutcome::Success)
            .unwrap();
    }
    store
        .record_outcome(NodeId::new(99), TaskOutcome::Success)
        .unwrap();
    assert_eq!(s.refresh_reputation(&store).unwrap(), 2);
    let job = Job::new(JobId::new(1), Resources::new(100, 10, 0));
    assert_eq!(s.choose(&job, Strategy::TrustFirst).unwrap(), 1);
    let s_job = job.clone().with_class(SlaClass::S);
    assert_eq!(s.choose(&s_job, Strategy::Scored).unwrap(), 1);
}
