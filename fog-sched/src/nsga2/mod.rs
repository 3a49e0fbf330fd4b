//! A generic NSGA-II (Deb et al. 2002) with pymoo's operators and defaults.
//!
//! Implement [`Problem`] (variables, objectives, constraints) and call
//! [`Nsga2::run`]. Real variables use simulated binary crossover and
//! polynomial mutation; integer variables (for example an assignment of
//! jobs to nodes) use uniform crossover and random-reset mutation followed by
//! the problem's [`Problem::repair`]. Constraints follow Deb's constrained
//! domination. The run is deterministic for a seed, also when the evaluation
//! is spread over several threads.

mod indicators;
mod operators;
mod sort;
mod zdt;

pub use indicators::{hypervolume_2d, igd};
pub use sort::{
    SortAlgorithm, constrained_dominates, crowding_distance, non_dominated_sort, pareto_dominates,
};
pub use zdt::{Zdt, ZdtKind};

use crate::error::{Result, SchedError};
use crate::rng::SeededRng;

/// How survival cuts the last front that fits only in part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Truncation {
    /// Deb et al. 2002: keep the largest crowding distances computed once
    /// (pymoo's `crowding_func="cd"`, its default).
    Crowding,
    /// Remove the most crowded solution one at a time, updating its
    /// neighbours' distances after each removal (pymoo's
    /// `crowding_func="pcd"`; Kukkonen and Deb 2006). Better spread, so a
    /// higher hypervolume, at almost no cost.
    #[default]
    PruningCrowding,
}

/// The decision variables of a problem.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Variables {
    /// Real variables with inclusive `(lower, upper)` bounds.
    Real(Vec<(f64, f64)>),
    /// Integer variables, each in `0..upper` (exclusive), carried as whole
    /// `f64` values.
    Integer(Vec<u32>),
}

impl Variables {
    /// Number of variables.
    pub fn len(&self) -> usize {
        match self {
            Variables::Real(b) => b.len(),
            Variables::Integer(u) => u.len(),
        }
    }
    /// Whether there are no variables.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A multi-objective minimisation problem.
pub trait Problem: Sync {
    /// The decision variables (asked once per run).
    fn variables(&self) -> Variables;
    /// Number of objectives (all minimised).
    fn objectives(&self) -> usize;
    /// Number of inequality constraints `g(x) <= 0`.
    fn constraints(&self) -> usize {
        0
    }
    /// Writes the objectives and constraint values of `x`. A constraint value
    /// above zero is a violation of that size.
    fn evaluate(&self, x: &[f64], objectives: &mut [f64], constraints: &mut [f64]);
    /// Repairs a new candidate in place before it is evaluated (for example
    /// moving jobs off full nodes). The default does nothing.
    fn repair(&self, _x: &mut [f64]) {}
}

/// NSGA-II settings. The defaults are pymoo's: population 100, as many
/// offspring, SBX with η = 15 and probability 0.9 (each variable crossing
/// with probability 0.5), polynomial mutation of 90% of the children with
/// η = 20 and a per-variable probability of 1/n, and 25,000 evaluations.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Nsga2Config {
    /// Population size (at least 4, made even).
    pub population: usize,
    /// Evaluation budget, the initial population included.
    pub max_evaluations: usize,
    /// Probability that a pair of parents is crossed.
    pub crossover_prob: f64,
    /// SBX distribution index η.
    pub sbx_eta: f64,
    /// SBX per-variable probability.
    pub sbx_var_prob: f64,
    /// Probability that a child is mutated at all (pymoo's `PM(prob=0.9)`).
    pub mutation_prob: f64,
    /// Polynomial mutation distribution index η.
    pub mutation_eta: f64,
    /// Per-variable mutation probability; `None` means `min(0.5, 1/n)`.
    pub mutation_var_prob: Option<f64>,
    /// Whether a child equal to a parent or an earlier child is discarded
    /// and bred again (pymoo's `eliminate_duplicates=True`).
    pub eliminate_duplicates: bool,
    /// How the last front that fits only in part is cut.
    pub truncation: Truncation,
    /// Seed of the random stream.
    pub seed: u64,
    /// Threads used to evaluate offspring (1 = the calling thread only).
    pub threads: usize,
    /// Which non-dominated sort to use.
    pub sort: SortAlgorithm,
    /// Solutions to put in the initial population (after repair), for example
    /// a heuristic's answer; the rest is random.
    pub initial: Vec<Vec<f64>>,
}

impl Default for Nsga2Config {
    fn default() -> Self {
        Self {
            population: 100,
            max_evaluations: 25_000,
            crossover_prob: 0.9,
            sbx_eta: 15.0,
            sbx_var_prob: 0.5,
            mutation_prob: 0.9,
            mutation_eta: 20.0,
            mutation_var_prob: None,
            eliminate_duplicates: true,
            truncation: Truncation::PruningCrowding,
            seed: 0,
            threads: 1,
            sort: SortAlgorithm::Auto,
            initial: Vec::new(),
        }
    }
}

impl Nsga2Config {
    /// The defaults with `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }
}

/// One solution of the final population.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Decision variables.
    pub x: Vec<f64>,
    /// Objective values.
    pub objectives: Vec<f64>,
    /// Total constraint violation (0 when feasible).
    pub violation: f64,
    /// Non-domination rank (0 = first front).
    pub rank: usize,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct Outcome {
    population: Vec<Solution>,
    evaluations: usize,
    generations: usize,
}

impl Outcome {
    /// The final population.
    pub fn population(&self) -> &[Solution] {
        &self.population
    }
    /// The feasible first front of the final population (may be empty when
    /// nothing feasible was found).
    pub fn front(&self) -> Vec<&Solution> {
        self.population
            .iter()
            .filter(|s| s.rank == 0 && s.violation <= 0.0)
            .collect()
    }
    /// Evaluations spent.
    pub fn evaluations(&self) -> usize {
        self.evaluations
    }
    /// Generations run after the initial population.
    pub fn generations(&self) -> usize {
        self.generations
    }
}

/// The NSGA-II algorithm.
#[derive(Debug, Clone, Default)]
pub struct Nsga2 {
    config: Nsga2Config,
}

/// A population in flat arrays.
struct Pop {
    x: Vec<f64>,
    f: Vec<f64>,
    cv: Vec<f64>,
    g: Vec<f64>,
}

impl Pop {
    fn with_capacity(size: usize, n: usize, m: usize, c: usize) -> Self {
        Self {
            x: Vec::with_capacity(size * n),
            f: vec![0.0; size * m],
            cv: vec![0.0; size],
            g: vec![0.0; size * c.max(1)],
        }
    }
}

impl Nsga2 {
    /// An NSGA-II with `config`.
    pub fn new(config: Nsga2Config) -> Self {
        Self { config }
    }

    /// The settings.
    pub fn config(&self) -> &Nsga2Config {
        &self.config
    }

    /// Runs the algorithm on `problem` until the evaluation budget is spent.
    pub fn run<P: Problem + ?Sized>(&self, problem: &P) -> Result<Outcome> {
        let cfg = &self.config;
        let vars = problem.variables();
        let n = vars.len();
        let m = problem.objectives();
        let c = problem.constraints();
        if n == 0 || m == 0 {
            return Err(SchedError::InvalidConfig(
                "a problem needs at least one variable and one objective".into(),
            ));
        }
        if cfg.population < 4 {
            return Err(SchedError::InvalidConfig("population below 4".into()));
        }
        match &vars {
            Variables::Real(b)
                if b.iter()
                    .any(|&(l, u)| !(l.is_finite() && u.is_finite() && l <= u)) =>
            {
                return Err(SchedError::InvalidConfig("invalid real bounds".into()));
            }
            Variables::Integer(u) if u.contains(&0) => {
                return Err(SchedError::InvalidConfig(
                    "an integer variable has no values".into(),
                ));
            }
            _ => {}
        }
        let size = cfg.population + cfg.population % 2;
        let pm = cfg
            .mutation_var_prob
            .unwrap_or_else(|| (1.0 / n as f64).min(0.5));
        let mut rng = SeededRng::new(cfg.seed);

        // Initial population.
        let mut pop = Pop::with_capacity(size, n, m, c);
        for k in 0..size {
            let mut x = match cfg.initial.get(k) {
                Some(seed) if seed.len() == n => clamp_to(seed, &vars),
                _ => random_x(&vars, &mut rng),
            };
            problem.repair(&mut x);
            pop.x.extend_from_slice(&x);
        }
        evaluate_all(problem, &mut pop, 0, size, n, m, c, cfg.threads);
        let mut evaluations = size;
        let (mut rank, fronts) = non_dominated_sort(&pop.f, m, &pop.cv, cfg.sort);
        let mut crowd = vec![0.0; size];
        for front in &fronts {
            crowding_distance(&pop.f, m, front, &mut crowd);
        }

        let mut merged = Pop::with_capacity(2 * size, n, m, c);
        let mut perm: Vec<usize> = Vec::with_capacity(size);
        let mut perm_at = size;
        let mut generations = 0;
        let mut order: Vec<usize> = Vec::with_capacity(2 * size);
        let mut merged_crowd = vec![0.0; 2 * size];
        let (mut c1, mut c2) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut seen: std::collections::HashSet<u64> =
            std::collections::HashSet::with_capacity(2 * size);
        while evaluations + size <= cfg.max_evaluations.max(size)
            && evaluations < cfg.max_evaluations
        {
            // Mating: parents by binary tournament over random permutations.
            merged.x.clear();
            merged.x.extend_from_slice(&pop.x);
            let mut pick = |rng: &mut SeededRng| {
                let mut draw = || {
                    if perm_at >= perm.len() {
                        perm.clear();
                        perm.extend(0..size);
                        shuffle(&mut perm, rng);
                        perm_at = 0;
                    }
                    perm_at += 1;
                    perm[perm_at - 1]
                };
                let a = draw();
                let b = draw();
                tournament(a, b, &pop, m, &rank, &crowd, rng)
            };
            // Hashes of the rows already in `merged` (parents and accepted
            // children), for duplicate elimination.
            seen.clear();
            if cfg.eliminate_duplicates {
                seen.extend((0..size).map(|i| row_hash(&pop.x[i * n..(i + 1) * n])));
            }
            let mut produced = 0;
            let mut attempts = 0;
            while produced < size {
                attempts += 1;
                let p1 = pick(&mut rng);
                let p2 = pick(&mut rng);
                c1.clear();
                c1.extend_from_slice(&pop.x[p1 * n..(p1 + 1) * n]);
                c2.clear();
                c2.extend_from_slice(&pop.x[p2 * n..(p2 + 1) * n]);
                let cross = rng.chance(cfg.crossover_prob);
                match &vars {
                    Variables::Real(bounds) => {
                        if cross {
                            operators::sbx(
                                &mut c1,
                                &mut c2,
                                bounds,
                                cfg.sbx_eta,
                                cfg.sbx_var_prob,
                                &mut rng,
                            );
                        }
                        for c in [&mut c1, &mut c2] {
                            if rng.chance(cfg.mutation_prob) {
                                operators::polynomial_mutation(
                                    c,
                                    bounds,
                                    cfg.mutation_eta,
                                    pm,
                                    &mut rng,
                                );
                            }
                        }
                    }
                    Variables::Integer(upper) => {
                        if cross {
                            operators::uniform_crossover(&mut c1, &mut c2, &mut rng);
                        }
                        for c in [&mut c1, &mut c2] {
                            if rng.chance(cfg.mutation_prob) {
                                operators::reset_mutation(c, upper, pm, &mut rng);
                            }
                        }
                    }
                }
                problem.repair(&mut c1);
                problem.repair(&mut c2);
                for child in [&c1, &c2] {
                    if produced == size {
                        break;
                    }
                    // Like pymoo, breed again for duplicates, but give up after
                    // ten rounds' worth of pairs (a small integer space may
                    // hold fewer distinct solutions than the population).
                    if cfg.eliminate_duplicates && attempts <= 5 * size {
                        let h = row_hash(child);
                        if seen.contains(&h) && is_duplicate(child, &merged.x, n, size + produced) {
                            continue;
                        }
                        seen.insert(h);
                    }
                    merged.x.extend_from_slice(child);
                    produced += 1;
                }
            }
            merged.f[..size * m].copy_from_slice(&pop.f);
            merged.cv[..size].copy_from_slice(&pop.cv);
            evaluate_all(problem, &mut merged, size, 2 * size, n, m, c, cfg.threads);
            evaluations += size;
            generations += 1;

            // Survival: whole fronts, then the most crowded-apart of the last.
            let (mrank, mfronts) = non_dominated_sort(&merged.f, m, &merged.cv, cfg.sort);
            order.clear();
            for front in &mfronts {
                crowding_distance(&merged.f, m, front, &mut merged_crowd);
                if order.len() + front.len() <= size {
                    order.extend_from_slice(front);
                } else {
                    let mut last = front.clone();
                    // Random tie-breaking among equal distances, as pymoo.
                    shuffle(&mut last, &mut rng);
                    let keep = size - order.len();
                    match cfg.truncation {
                        Truncation::Crowding => {
                            last.sort_by(|&a, &b| merged_crowd[b].total_cmp(&merged_crowd[a]));
                            order.extend_from_slice(&last[..keep]);
                        }
                        Truncation::PruningCrowding => {
                            let kept = sort::prune_by_crowding(
                                &merged.f,
                                m,
                                &last,
                                keep,
                                &mut merged_crowd,
                            );
                            order.extend_from_slice(&kept);
                        }
                    }
                }
                if order.len() == size {
                    break;
                }
            }
            let mut next = Pop::with_capacity(size, n, m, c);
            for (slot, &i) in order.iter().enumerate() {
                next.x.extend_from_slice(&merged.x[i * n..(i + 1) * n]);
                next.f[slot * m..(slot + 1) * m].copy_from_slice(&merged.f[i * m..(i + 1) * m]);
                next.cv[slot] = merged.cv[i];
                rank[slot] = mrank[i];
                crowd[slot] = merged_crowd[i];
            }
            pop = next;
        }

        let population = (0..size)
            .map(|i| Solution {
                x: pop.x[i * n..(i + 1) * n].to_vec(),
                objectives: pop.f[i * m..(i + 1) * m].to_vec(),
                violation: pop.cv[i],
                rank: rank[i],
            })
            .collect();
        tracing::debug!(evaluations, generations, "nsga-ii finished");
        Ok(Outcome {
            population,
            evaluations,
            generations,
        })
    }
}

fn clamp_to(x: &[f64], vars: &Variables) -> Vec<f64> {
    match vars {
        Variables::Real(b) => x
            .iter()
            .zip(b)
            .map(|(&v, &(l, u))| if v.is_nan() { l } else { v.clamp(l, u) })
            .collect(),
        Variables::Integer(up) => x
            .iter()
            .zip(up)
            .map(|(&v, &u)| {
                if v.is_nan() {
                    0.0
                } else {
                    v.floor().clamp(0.0, f64::from(u - 1))
                }
            })
            .collect(),
    }
}

fn random_x(vars: &Variables, rng: &mut SeededRng) -> Vec<f64> {
    match vars {
        Variables::Real(b) => b.iter().map(|&(l, u)| l + rng.unit() * (u - l)).collect(),
        Variables::Integer(up) => up.iter().map(|&u| rng.below(u as usize) as f64).collect(),
    }
}

/// A hash of a row's exact bits (FNV-1a over the words).
fn row_hash(x: &[f64]) -> u64 {
    x.iter().fold(0xcbf2_9ce4_8422_2325, |h, v| {
        (h ^ v.to_bits()).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `x` equals one of the first `rows` rows of `all`.
fn is_duplicate(x: &[f64], all: &[f64], n: usize, rows: usize) -> bool {
    (0..rows).any(|r| all[r * n..(r + 1) * n] == *x)
}

fn shuffle(v: &mut [usize], rng: &mut SeededRng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

/// pymoo's binary tournament for NSGA-II: feasibility and violation first,
/// then domination, then the larger crowding distance, then a coin.
fn tournament(
    a: usize,
    b: usize,
    pop: &Pop,
    m: usize,
    rank: &[usize],
    crowd: &[f64],
    rng: &mut SeededRng,
) -> usize {
    let (cva, cvb) = (pop.cv[a], pop.cv[b]);
    if cva > 0.0 || cvb > 0.0 {
        if cva < cvb {
            return a;
        }
        if cvb < cva {
            return b;
        }
        return if rng.chance(0.5) { a } else { b };
    }
    let fa = &pop.f[a * m..(a + 1) * m];
    let fb = &pop.f[b * m..(b + 1) * m];
    if pareto_dominates(fa, fb) {
        return a;
    }
    if pareto_dominates(fb, fa) {
        return b;
    }
    let _ = rank;
    if crowd[a] > crowd[b] {
        a
    } else if crowd[b] > crowd[a] {
        b
    } else if rng.chance(0.5) {
        a
    } else {
        b
    }
}

/// Evaluates rows `from..to` of `pop`, on `threads` threads.
#[allow(clippy::too_many_arguments)]
fn evaluate_all<P: Problem + ?Sized>(
    problem: &P,
    pop: &mut Pop,
    from: usize,
    to: usize,
    n: usize,
    m: usize,
    c: usize,
    threads: usize,
) {
    let cw = c.max(1);
    let xs = &pop.x[from * n..to * n];
    let fs = &mut pop.f[from * m..to * m];
    let gs = &mut pop.g[from * cw..to * cw];
    let cvs = &mut pop.cv[from..to];
    let count = to - from;
    let eval_chunk = |xs: &[f64], fs: &mut [f64], gs: &mut [f64], cvs: &mut [f64]| {
        for i in 0..cvs.len() {
            let g = &mut gs[i * cw..i * cw + c];
            g.fill(0.0);
            problem.evaluate(&xs[i * n..(i + 1) * n], &mut fs[i * m..(i + 1) * m], g);
            for v in &mut fs[i * m..(i + 1) * m] {
                if v.is_nan() {
                    *v = f64::INFINITY;
                }
            }
            cvs[i] = g
                .iter()
                .map(|&v| {
                    if v.is_nan() {
                        f64::INFINITY
                    } else {
                        v.max(0.0)
                    }
                })
                .sum();
        }
    };
    if threads <= 1 || count < 2 * threads {
        eval_chunk(xs, fs, gs, cvs);
        return;
    }
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut xs = xs;
        let mut fs = fs;
        let mut gs = gs;
        let mut cvs = cvs;
        while !cvs.is_empty() {
            let k = per.min(cvs.len());
            let (x0, x1) = xs.split_at(k * n);
            let (f0, f1) = fs.split_at_mut(k * m);
            let (g0, g1) = gs.split_at_mut(k * cw);
            let (c0, c1) = cvs.split_at_mut(k);
            let run = &eval_chunk;
            scope.spawn(move || run(x0, f0, g0, c0));
            xs = x1;
            fs = f1;
            gs = g1;
            cvs = c1;
        }
    });
}
