//! DAG scheduling: the HEFT worked example, order properties and WfFormat.

use fog_sched::dag::DagProblem;
use fog_sched::nsga2::Nsga2Config;
use proptest::prelude::*;

/// Topcuoglu, Hariri and Wu 2002, Fig. 2: ten tasks on three processors.
fn topcuoglu() -> DagProblem {
    let costs = vec![
        vec![14.0, 16.0, 9.0],
        vec![13.0, 19.0, 18.0],
        vec![11.0, 13.0, 19.0],
        vec![13.0, 8.0, 17.0],
        vec![12.0, 13.0, 10.0],
        vec![13.0, 16.0, 9.0],
        vec![7.0, 15.0, 11.0],
        vec![5.0, 11.0, 14.0],
        vec![18.0, 12.0, 20.0],
        vec![21.0, 7.0, 16.0],
    ];
    let edges = [
        (0, 1, 18.0),
        (0, 2, 12.0),
        (0, 3, 9.0),
        (0, 4, 11.0),
        (0, 5, 14.0),
        (1, 7, 19.0),
        (1, 8, 16.0),
        (2, 6, 23.0),
        (3, 7, 27.0),
        (3, 8, 23.0),
        (4, 8, 13.0),
        (5, 7, 15.0),
        (6, 9, 17.0),
        (7, 9, 11.0),
        (8, 9, 13.0),
    ];
    let names = (1..=10).map(|i| format!("n{i}")).collect();
    DagProblem::new(names, costs, &edges, 1.0, vec![1.0, 2.0, 3.0]).expect("valid graph")
}

#[test]
fn heft_reproduces_the_topcuoglu_example() {
    let dag = topcuoglu();
    let ranks = dag.upward_ranks();
    let expected = [
        108.0, 77.0, 80.0, 80.0, 69.0, 63.333, 42.667, 35.667, 44.333, 14.667,
    ];
    for (r, e) in ranks.iter().zip(expected) {
        assert!((r - e).abs() < 1e-3, "rank {r} != {e}");
    }
    assert_eq!(dag.heft_order(), vec![0, 2, 3, 1, 4, 5, 8, 6, 7, 9]);
    let schedule = dag.heft();
    assert_eq!(schedule.makespan, 80.0);
    // The published schedule: n1 on P3 at 0-9, n10 on P2 at 73-80.
    let first = schedule.slots[0];
    assert_eq!((first.processor, first.start, first.finish), (2, 0.0, 9.0));
    let last = schedule.slots[9];
    assert_eq!((last.processor, last.start, last.finish), (1, 73.0, 80.0));
}

#[test]
fn nsga_seeded_with_heft_is_never_worse_than_heft() {
    let dag = topcuoglu();
    let mut config = Nsga2Config::with_seed(3);
    config.max_evaluations = 3_000;
    let front = dag.nsga_makespan_cost(config).expect("runs");
    assert!(!front.is_empty());
    assert!(front[0].makespan <= dag.heft().makespan);
    // The front trades makespan for cost.
    for pair in front.windows(2) {
        assert!(pair[0].makespan <= pair[1].makespan);
        assert!(pair[0].cost >= pair[1].cost);
    }
}

#[test]
fn bad_graphs_are_refused() {
    let costs = vec![vec![1.0], vec![1.0]];
    let names = vec!["a".to_string(), "b".to_string()];
    assert!(
        DagProblem::new(
            names.clone(),
            costs.clone(),
            &[(0, 1, 1.0), (1, 0, 1.0)],
            1.0,
            vec![1.0]
        )
        .is_err()
    );
    assert!(DagProblem::new(names.clone(), costs.clone(), &[(0, 5, 1.0)], 1.0, vec![1.0]).is_err());
    assert!(DagProblem::new(names, costs, &[(0, 1, f64::NAN)], 1.0, vec![1.0]).is_err());
}

const WF_14: &str = r#"{
  "name": "tiny", "schemaVersion": "1.4",
  "workflow": { "tasks": [
    {"name": "split", "id": "1", "parents": [], "runtimeInSeconds": 10,
     "files": [{"link": "output", "name": "a.dat", "sizeInBytes": 2000000}]},
    {"name": "work", "id": "2", "parents": ["split"], "runtimeInSeconds": 20,
     "files": [{"link": "input", "name": "a.dat", "sizeInBytes": 2000000},
               {"link": "output", "name": "b.dat", "sizeInBytes": 1000000}]},
    {"name": "merge", "id": "3", "parents": ["work", "split"], "runtime": 5,
     "files": [{"link": "input", "name": "b.dat", "sizeInBytes": 1000000}]}
  ]}
}"#;

const WF_15: &str = r#"{
  "name": "tiny", "schemaVersion": "1.5",
  "workflow": {
    "specification": {
      "tasks": [
        {"name": "split", "id": "t1", "parents": [], "children": ["t2"], "inputFiles": [], "outputFiles": ["a"]},
        {"name": "work", "id": "t2", "parents": ["t1"], "children": [], "inputFiles": ["a"], "outputFiles": []}
      ],
      "files": [{"id": "a", "sizeInBytes": 4000000}]
    },
    "execution": {"makespanInSeconds": 30, "tasks": [
      {"id": "t1", "runtimeInSeconds": 10}, {"id": "t2", "runtimeInSeconds": 20}
    ]}
  }
}"#;

#[test]
fn wfformat_14_and_15_are_read() {
    let dag = DagProblem::from_wfformat(WF_14, &[1.0, 2.0], vec![1.0, 3.0], 1e6).expect("1.4");
    assert_eq!(dag.tasks(), 3);
    assert_eq!(dag.parents(1), &[(0, 2_000_000.0)]);
    assert_eq!(dag.parents(2).len(), 2);
    // Everything on the fast processor: 5 + 10 + 2.5, no communication.
    assert_eq!(dag.heft().makespan, 17.5);

    let dag = DagProblem::from_wfformat(WF_15, &[1.0], vec![1.0], 1e6).expect("1.5");
    assert_eq!(dag.tasks(), 2);
    assert_eq!(dag.parents(1), &[(0, 4_000_000.0)]);
    assert_eq!(dag.heft().makespan, 30.0);
}

#[test]
fn broken_workflows_are_errors_not_panics() {
    for text in [
        "",
        "{}",
        "[1,2]",
        r#"{"workflow": {}}"#,
        r#"{"workflow": {"tasks": [{"name": "a", "parents": ["ghost"]}]}}"#,
        r#"{"workflow": {"tasks": [{"name": "a", "parents": ["b"]}, {"name": "b", "parents": ["a"]}]}}"#,
        r#"{"workflow": {"specification": {"tasks": [{"name": "x"}]}}}"#,
    ] {
        assert!(
            DagProblem::from_wfformat(text, &[1.0], vec![1.0], 1.0).is_err(),
            "{text}"
        );
    }
}

/// A random DAG: edges only from lower to higher index.
fn arb_dag() -> impl Strategy<Value = DagProblem> {
    (2usize..14, 1usize..4).prop_flat_map(|(n, p)| {
        (
            prop::collection::vec(prop::collection::vec(1u32..30, p), n),
            prop::collection::vec((0..n, 0..n, 0u32..20), 0..3 * n),
            prop::collection::vec(0u32..5, p),
        )
            .prop_map(move |(costs, raw, prices)| {
                let mut edges: Vec<(usize, usize, f64)> = Vec::new();
                for (a, b, d) in raw {
                    let (a, b) = (a.min(b), a.max(b));
                    if a != b && !edges.iter().any(|e| e.0 == a && e.1 == b) {
                        edges.push((a, b, f64::from(d)));
                    }
                }
                let costs = costs
                    .into_iter()
                    .map(|r| r.into_iter().map(f64::from).collect())
                    .collect();
                let names = (0..n).map(|i| i.to_string()).collect();
                DagProblem::new(
                    names,
                    costs,
                    &edges,
                    2.0,
                    prices.into_iter().map(f64::from).collect(),
                )
                .expect("acyclic by construction")
            })
    })
}

fn assert_valid(dag: &DagProblem, s: &fog_sched::dag::Schedule) {
    for t in 0..dag.tasks() {
        let slot = s.slots[t];
        for &(parent, data) in dag.parents(t) {
            let ps = s.slots[parent];
            let comm = if ps.processor == slot.processor {
                0.0
            } else {
                data / 2.0
            };
            assert!(
                slot.start + 1e-9 >= ps.finish + comm,
                "task {t} starts before parent {parent}"
            );
        }
        for u in 0..dag.tasks() {
            let other = s.slots[u];
            if u != t && other.processor == slot.processor {
                let overlap = slot.start < other.finish - 1e-9 && other.start < slot.finish - 1e-9;
                assert!(!overlap, "tasks {t} and {u} overlap");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn wfformat_reader_never_panics(text in ".{0,400}", tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = DagProblem::from_wfformat(&text, &[1.0], vec![1.0], 1.0);
        // Valid framing with junk inside.
        let doc = format!(
            r#"{{"workflow": {{"tasks": [{{"name": "a", "parents": [{}], "runtime": {}}}]}}}}"#,
            String::from_utf8_lossy(&tail).escape_debug(),
            tail.len()
        );
        let _ = DagProblem::from_wfformat(&doc, &[1.0, 2.0], vec![1.0, 1.0], 1.0);
    }

    #[test]
    fn dag_order_is_respected(dag in arb_dag(), seed in 0u64..1000) {
        assert_valid(&dag, &dag.heft());
        let mut config = Nsga2Config::with_seed(seed);
        config.max_evaluations = 400;
        config.population = 20;
        for s in dag.nsga_makespan_cost(config).expect("runs") {
            assert_valid(&dag, &s);
        }
    }
}

#[test]
fn schedule_with_checks_its_input() {
    let dag = topcuoglu();
    let order = dag.heft_order();
    let heft = dag.heft();
    let assignment: Vec<usize> = heft.slots.iter().map(|s| s.processor).collect();
    assert_eq!(
        dag.schedule_with(&order, &assignment).unwrap().makespan,
        80.0
    );
    let mut reversed = order.clone();
    reversed.reverse();
    assert!(dag.schedule_with(&reversed, &assignment).is_err());
    assert!(dag.schedule_with(&order, &[0; 3]).is_err());
    assert!(dag.schedule_with(&order, &[7; 10]).is_err());
    assert!(dag.schedule_with(&[0; 10], &assignment).is_err());
}
