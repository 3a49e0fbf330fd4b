//! Preemption and gang scheduling.

use fog_sched::gang::{GangEvent, GangQueue, place_gang};
use fog_sched::model::{Cluster, GangId, Job, JobId, Node, NodeId, Resources, SlaClass};
use fog_sched::placement::{Scheduler, Strategy};
use fog_sched::preempt::{RunningTask, plan_preemption};
use proptest::prelude::*;

fn node(id: u64, cpu: u64) -> Node {
    Node::new(NodeId::new(id), Resources::new(cpu, 1 << 20, 0))
}

fn job(id: u64, cpu: u64) -> Job {
    Job::new(JobId::new(id), Resources::new(cpu, 0, 0))
}

#[test]
fn preemption_picks_fewest_victims_then_least_lost_work() {
    let mut cluster = Cluster::new(vec![node(0, 4000), node(1, 4100)]);
    // Node 0: two small B tasks; node 1: one big A task with much unsaved work
    // and one big B with little.
    let tasks = [
        (1, 0, 2000, SlaClass::B, 5.0),
        (2, 0, 2000, SlaClass::B, 5.0),
        (3, 1, 3000, SlaClass::A, 100.0),
        (4, 1, 1000, SlaClass::S, 0.0),
    ];
    let mut running = Vec::new();
    for (id, n, cpu, class, work) in tasks {
        cluster
            .assign(&job(id, cpu).with_class(class), NodeId::new(n))
            .unwrap();
        running.push(RunningTask::new(JobId::new(id), class, work));
    }
    let s_job = job(10, 3000).with_class(SlaClass::S);
    let plan = plan_preemption(&cluster, &running, &s_job).unwrap();
    // One victim (task 3) beats two (tasks 1 and 2), despite more lost work.
    assert_eq!(plan.node, NodeId::new(1));
    assert_eq!(plan.victims, vec![JobId::new(3)]);
    assert_eq!(plan.work_lost_s, 100.0);

    // A job of class A does not preempt.
    assert!(plan_preemption(&cluster, &running, &job(11, 3000)).is_err());
    // A job that fits needs no victims.
    let small = job(12, 10).with_class(SlaClass::S);
    assert!(
        plan_preemption(&cluster, &running, &small)
            .unwrap()
            .victims
            .is_empty()
    );
}

#[test]
fn gang_members_are_evicted_together() {
    let mut cluster = Cluster::new(vec![node(0, 2000), node(1, 2000)]);
    let mut running = Vec::new();
    for (id, n) in [(1, 0), (2, 1)] {
        cluster.assign(&job(id, 2000), NodeId::new(n)).unwrap();
        running.push(RunningTask::new(JobId::new(id), SlaClass::B, 1.0).with_gang(GangId::new(9)));
    }
    let plan = plan_preemption(&cluster, &running, &job(5, 1500).with_class(SlaClass::S)).unwrap();
    let mut victims = plan.victims.clone();
    victims.sort();
    assert_eq!(victims, vec![JobId::new(1), JobId::new(2)]);
}

#[test]
fn gang_queue_waits_places_and_times_out() {
    let mut s = Scheduler::new(Cluster::new(vec![node(0, 3000), node(1, 3000)]), 1);
    s.place(&job(100, 3000), Strategy::Scored).unwrap();
    let mut queue = GangQueue::new(2);
    let members = |base: u64| vec![job(base, 2000), job(base + 1, 2000)];
    queue.submit(GangId::new(1), members(1), 0, 1_000).unwrap();
    queue.submit(GangId::new(2), members(10), 0, 5_000).unwrap();
    assert!(queue.submit(GangId::new(3), members(20), 0, 5_000).is_err());
    // Only one node is free: neither gang fits, nothing is reserved.
    assert!(queue.tick(&mut s, 10, Strategy::Scored).is_empty());
    assert_eq!(s.cluster().placed_count(), 1);
    // Gang 1 times out; room appears; gang 2 is placed whole.
    s.release(JobId::new(100)).unwrap();
    let events = queue.tick(&mut s, 2_000, Strategy::Scored);
    assert_eq!(
        events[0],
        GangEvent::TimedOut {
            gang: GangId::new(1)
        }
    );
    assert!(matches!(&events[1], GangEvent::Placed { gang, placements }
        if *gang == GangId::new(2) && placements.len() == 2));
    assert!(queue.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_gang_is_all_or_nothing(
        capacities in prop::collection::vec(0u64..4000, 1..6),
        preload in prop::collection::vec(0u64..3000, 0..6),
        members in prop::collection::vec(1u64..3000, 1..6),
        strat in 0usize..10,
    ) {
        let nodes = capacities.iter().enumerate().map(|(i, &c)| node(i as u64, c)).collect();
        let mut s = Scheduler::new(Cluster::new(nodes), 1);
        for (k, &cpu) in preload.iter().enumerate() {
            let _ = s.place(&job(1000 + k as u64, cpu), Strategy::Scored);
        }
        let before = s.cluster().placed_count();
        let used_before: Vec<_> = (0..s.cluster().len()).map(|i| s.cluster().used(i)).collect();
        let gang: Vec<Job> = members
            .iter()
            .enumerate()
            .map(|(k, &cpu)| job(k as u64, cpu).with_gang(GangId::new(1)))
            .collect();
        let result = place_gang(&mut s, &gang, Strategy::ALL[strat]);
        #[allow(clippy::single_match_else)]
        match result {
            Ok(p) => {
                prop_assert_eq!(p.len(), gang.len());
                prop_assert_eq!(s.cluster().placed_count(), before + gang.len());
            }
            Err(_) => {
                prop_assert_eq!(s.cluster().placed_count(), before);
                let used_after: Vec<_> = (0..s.cluster().len()).map(|i| s.cluster().used(i)).collect();
                prop_assert_eq!(used_before, used_after);
            }
        }
        prop_assert!(s.cluster().within_capacity());
    }

    #[test]
    fn preemption_never_evicts_s_and_makes_room(
        nodes in prop::collection::vec(1000u64..4000, 1..5),
        tasks in prop::collection::vec((1u64..2000, 0u8..3, 0u32..100, 0u8..4), 0..20),
        need in 1u64..4000,
    ) {
        let count = nodes.len();
        let mut cluster = Cluster::new(nodes.iter().enumerate().map(|(i, &c)| node(i as u64, c)).collect());
        let mut running = Vec::new();
        for (k, &(cpu, class, work, gang)) in tasks.iter().enumerate() {
            let class = [SlaClass::S, SlaClass::A, SlaClass::B][class as usize];
            let id = JobId::new(k as u64);
            let j = job(k as u64, cpu).with_class(class);
            if cluster.assign(&j, NodeId::new((k % count) as u64)).is_ok() {
                let mut t = RunningTask::new(id, class, f64::from(work));
                if gang < 2 {
                    t = t.with_gang(GangId::new(u64::from(gang)));
                }
                running.push(t);
            }
        }
        let s_job = job(999, need).with_class(SlaClass::S);
        if let Ok(plan) = plan_preemption(&cluster, &running, &s_job) {
            for v in &plan.victims {
                let task = running.iter().find(|t| t.job() == *v).unwrap();
                prop_assert!(task.class() != SlaClass::S);
            }
            for v in &plan.victims {
                cluster.release(*v).unwrap();
            }
            prop_assert!(cluster.assign(&s_job, plan.node).is_ok());
        }
    }
}
