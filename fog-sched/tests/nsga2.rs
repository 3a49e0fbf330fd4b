//! NSGA-II: determinism, sorting, indicators and convergence on ZDT.

use fog_sched::nsga2::{
    Nsga2, Nsga2Config, Problem, SortAlgorithm, Variables, Zdt, ZdtKind, hypervolume_2d, igd,
    non_dominated_sort,
};
use proptest::prelude::*;

fn small(seed: u64) -> Nsga2Config {
    let mut c = Nsga2Config::with_seed(seed);
    c.max_evaluations = 3_000;
    c
}

fn front_points(outcome: &fog_sched::nsga2::Outcome) -> Vec<[f64; 2]> {
    outcome
        .front()
        .iter()
        .map(|s| [s.objectives[0], s.objectives[1]])
        .collect()
}

#[test]
fn defaults_are_pymoos() {
    let c = Nsga2Config::default();
    assert_eq!(c.population, 100);
    assert_eq!(c.max_evaluations, 25_000);
    assert_eq!(
        (c.sbx_eta, c.crossover_prob, c.sbx_var_prob),
        (15.0, 0.9, 0.5)
    );
    assert_eq!(c.mutation_eta, 20.0);
    assert_eq!(c.mutation_var_prob, None);
}

#[test]
fn threads_do_not_change_the_result() {
    let problem = Zdt::new(ZdtKind::Zdt1);
    let one = Nsga2::new(small(5)).run(&problem).expect("runs");
    let mut config = small(5);
    config.threads = 3;
    let three = Nsga2::new(config).run(&problem).expect("runs");
    assert_eq!(one.population(), three.population());
}

#[test]
fn the_true_fronts_have_the_known_hypervolume() {
    // Reference (1.1, 1.1); pymoo's fronts give 0.87662 (ZDT1, 10,000
    // points), 0.54328 (ZDT2, 10,000 points) and 1.32914 (ZDT3, its 100
    // points; a finer sampling approaches 1.3317).
    for (kind, hv) in [
        (ZdtKind::Zdt1, 0.8766),
        (ZdtKind::Zdt2, 0.5433),
        (ZdtKind::Zdt3, 1.3317),
    ] {
        let front = Zdt::new(kind).true_front(10_000);
        let points: Vec<[f64; 2]> = front.iter().map(|p| [p[0], p[1]]).collect();
        let got = hypervolume_2d(&points, [1.1, 1.1]);
        assert!((got - hv).abs() < 2e-3, "{kind:?}: {got}");
        let few = Zdt::new(kind).true_front(200);
        assert!(igd(&few, &few) < 1e-12);
    }
}

#[test]
fn nsga2_converges_on_zdt1() {
    let problem = Zdt::new(ZdtKind::Zdt1);
    let mut config = Nsga2Config::with_seed(1);
    config.max_evaluations = 10_000;
    let outcome = Nsga2::new(config).run(&problem).expect("runs");
    assert_eq!(outcome.evaluations(), 10_000);
    let hv = hypervolume_2d(&front_points(&outcome), [1.1, 1.1]);
    assert!(hv > 0.8, "hypervolume {hv}");
    let reference = problem.true_front(500);
    let fronts: Vec<Vec<f64>> = outcome
        .front()
        .iter()
        .map(|s| s.objectives.clone())
        .collect();
    assert!(igd(&fronts, &reference) < 0.05);
}

#[test]
fn hypervolume_of_simple_sets() {
    assert_eq!(hypervolume_2d(&[], [1.0, 1.0]), 0.0);
    assert_eq!(hypervolume_2d(&[[0.0, 0.0]], [1.0, 1.0]), 1.0);
    let hv = hypervolume_2d(
        &[[0.0, 0.5], [0.5, 0.0], [0.6, 0.6], [2.0, -1.0]],
        [1.0, 1.0],
    );
    assert!((hv - 0.75).abs() < 1e-12);
}

/// A constrained problem: minimise (x, y) with x + y >= 1 on integers 0..10.
struct Knapsackish;

impl Problem for Knapsackish {
    fn variables(&self) -> Variables {
        Variables::Integer(vec![10, 10])
    }
    fn objectives(&self) -> usize {
        2
    }
    fn constraints(&self) -> usize {
        1
    }
    fn evaluate(&self, x: &[f64], f: &mut [f64], g: &mut [f64]) {
        f[0] = x[0];
        f[1] = x[1];
        g[0] = 5.0 - (x[0] + x[1]);
    }
}

#[test]
fn integer_encoding_with_constraints_finds_the_feasible_front() {
    let outcome = Nsga2::new(small(2)).run(&Knapsackish).expect("runs");
    let front = outcome.front();
    assert!(!front.is_empty());
    for s in front {
        assert!(
            s.x.iter()
                .all(|v| v.fract() == 0.0 && (0.0..10.0).contains(v))
        );
        assert_eq!(s.x[0] + s.x[1], 5.0, "{:?}", s.x);
    }
}

#[test]
fn bad_problems_are_refused() {
    struct Empty;
    impl Problem for Empty {
        fn variables(&self) -> Variables {
            Variables::Real(vec![(1.0, 0.0)])
        }
        fn objectives(&self) -> usize {
            1
        }
        fn evaluate(&self, _: &[f64], _: &mut [f64], _: &mut [f64]) {}
    }
    assert!(Nsga2::new(small(0)).run(&Empty).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn same_seed_same_result(seed in 0u64..10_000) {
        let problem = Zdt::new(ZdtKind::Zdt3);
        let mut config = small(seed);
        config.max_evaluations = 600;
        let a = Nsga2::new(config.clone()).run(&problem).expect("runs");
        let b = Nsga2::new(config).run(&problem).expect("runs");
        prop_assert_eq!(a.population(), b.population());
    }

    #[test]
    fn both_sorts_agree(
        points in prop::collection::vec((0u8..6, 0u8..6, 0u8..6, 0u8..3), 1..300),
        m in 2usize..4,
    ) {
        let f: Vec<f64> = points
            .iter()
            .flat_map(|&(a, b, c, _)| [f64::from(a), f64::from(b), f64::from(c)][..m].to_vec())
            .collect();
        let cv: Vec<f64> = points.iter().map(|&(_, _, _, v)| f64::from(v)).collect();
        let (deb, _) = non_dominated_sort(&f, m, &cv, SortAlgorithm::FastNonDominated);
        let (ens, _) = non_dominated_sort(&f, m, &cv, SortAlgorithm::EfficientBinary);
        prop_assert_eq!(deb, ens);
    }
}
