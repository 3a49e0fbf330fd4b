//! `fog sched`: placement, NSGA-II benchmarks and DAG scheduling with fog-sched.

use std::io::{self, Read as _, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use fog_sched::dag::DagProblem;
use fog_sched::model::Cluster;
use fog_sched::nsga2::{Nsga2, Nsga2Config, Truncation, Zdt, ZdtKind, hypervolume_2d, igd};
use fog_sched::placement::{Scheduler, Strategy, kubernetes_score_limit};
use fog_sched::synthetic;
use serde_json::json;

use crate::cli::GlobalArgs;

/// `fog sched ...`.
#[derive(Debug, Args)]
pub(crate) struct SchedArgs {
    #[command(subcommand)]
    command: SchedCommand,
}

#[derive(Debug, Subcommand)]
enum SchedCommand {
    /// Run NSGA-II on a ZDT problem over several seeds and print median
    /// hypervolume (reference 1.1, 1.1), IGD and time per generation
    Bench(BenchArgs),
    /// Place a synthetic job stream on a synthetic cluster with the fast path
    /// and print throughput, p99 decision time and capacity violations
    Place(PlaceArgs),
    /// Schedule a WfCommons WfFormat workflow on K heterogeneous nodes with
    /// HEFT and with NSGA-II (makespan against cost) seeded by HEFT
    Dag(DagArgs),
}

#[derive(Debug, Args)]
struct DagArgs {
    /// The workflow instance (WfFormat JSON, schema 1.4, 1.5 or 1.6).
    file: PathBuf,
    /// Number of nodes; node k runs at speed 1 + 0.5 (k mod 4) and costs
    /// speed² per second.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Link bandwidth between nodes, in bytes per second.
    #[arg(long, default_value_t = 125_000_000.0)]
    bandwidth: f64,
    /// NSGA-II evaluation budget.
    #[arg(long, default_value_t = 10_000)]
    evaluations: usize,
    /// NSGA-II seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Largest workflow file read.
const MAX_WORKFLOW_BYTES: u64 = 64 << 20;

#[derive(Debug, Args)]
struct PlaceArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 10_000)]
    nodes: usize,
    /// Number of jobs.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Placement strategy: scored, round-robin, least-loaded, latency-first,
    /// trust-first, cost-first, affinity, proximity, privacy-aware or random.
    #[arg(long, default_value_t = Strategy::Scored)]
    strategy: Strategy,
    /// Seed of the synthetic cluster and jobs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Score only Kubernetes' adaptive number of feasible nodes per decision
    /// (5% of 10,000 nodes) instead of all of them (scored strategy only).
    #[arg(long)]
    sample: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The test problem.
    #[arg(long, value_enum, default_value_t = ProblemName::Zdt1)]
    problem: ProblemName,
    /// Number of seeds (0, 1, ..., N-1); medians are reported.
    #[arg(long, default_value_t = 11)]
    seeds: u64,
    /// Evaluation budget per run.
    #[arg(long, default_value_t = 25_000)]
    evaluations: usize,
    /// Population size.
    #[arg(long, default_value_t = 100)]
    population: usize,
    /// How survival cuts the last front: `pcd` (pruning crowding distance,
    /// fog's default) or `cd` (one-shot crowding distance, pymoo's default).
    #[arg(long, value_enum, default_value_t = Crowding::Pcd)]
    crowding: Crowding,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Crowding {
    Cd,
    Pcd,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProblemName {
    Zdt1,
    Zdt2,
    Zdt3,
}

/// Runs `fog sched ...`.
pub(crate) fn run(args: SchedArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let document = match args.command {
        SchedCommand::Bench(b) => zdt_bench(&b)?,
        SchedCommand::Place(p) => place_bench(&p)?,
        SchedCommand::Dag(d) => dag(&d)?,
    };
    emit(&document, global.json)
}

fn emit(document: &serde_json::Value, json: bool) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        writeln!(out, "{document}")?;
    } else if let Some(map) = document.as_object() {
        for (key, value) in map {
            writeln!(out, "{key}: {value}")?;
        }
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        f64::midpoint(values[n / 2 - 1], values[n / 2])
    }
}

fn zdt_bench(args: &BenchArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
    let kind = match args.problem {
        ProblemName::Zdt1 => ZdtKind::Zdt1,
        ProblemName::Zdt2 => ZdtKind::Zdt2,
        ProblemName::Zdt3 => ZdtKind::Zdt3,
    };
    let problem = Zdt::new(kind);
    let reference = problem.true_front(1000);
    let (mut hv, mut ig, mut ms, mut evals) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cpu = Vec::new();
    for seed in 0..args.seeds {
        let mut config = Nsga2Config::with_seed(seed);
        config.max_evaluations = args.evaluations;
        config.population = args.population;
        config.truncation = match args.crowding {
            Crowding::Cd => Truncation::Crowding,
            Crowding::Pcd => Truncation::PruningCrowding,
        };
        let cpu_start = thread_cpu_ms();
        let start = Instant::now();
        let outcome = Nsga2::new(config)
            .run(&problem)
            .context("nsga-ii run failed")?;
        let elapsed = start.elapsed().as_secs_f64() * 1e3;
        if let (Some(a), Some(b)) = (cpu_start, thread_cpu_ms()) {
            cpu.push((b - a) / outcome.generations().max(1) as f64);
        }
        let front: Vec<Vec<f64>> = outcome
            .front()
            .iter()
            .map(|s| s.objectives.clone())
            .collect();
        let points: Vec<[f64; 2]> = front.iter().map(|p| [p[0], p[1]]).collect();
        hv.push(hypervolume_2d(&points, [1.1, 1.1]));
        ig.push(igd(&front, &reference));
        ms.push(elapsed / outcome.generations().max(1) as f64);
        evals.push(outcome.evaluations() as f64);
    }
    let per_seed = hv.clone();
    Ok(json!({
        "problem": format!("{:?}", args.problem).to_lowercase(),
        "seeds": args.seeds,
        "population": args.population,
        "hypervolume": median(&mut hv),
        "hypervolume_per_seed": per_seed,
        "igd": median(&mut ig),
        "evaluations": median(&mut evals),
        "crowding": format!("{:?}", args.crowding).to_lowercase(),
        "ms_per_generation": median(&mut ms),
        "cpu_ms_per_generation": if cpu.is_empty() { serde_json::Value::Null } else { json!(median(&mut cpu)) },
    }))
}

/// CPU time of the calling thread in milliseconds (Linux schedstat), so
/// that a loaded machine does not inflate the figure; `None` elsewhere.
fn thread_cpu_ms() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}

fn place_bench(args: &PlaceArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(args.nodes > 0, "--nodes must be at least 1");
    let cluster = Cluster::new(synthetic::nodes(args.nodes, args.seed));
    let jobs = synthetic::jobs(args.jobs, 0, args.seed);
    let limit = args.sample.then(|| kubernetes_score_limit(args.nodes));
    let mut scheduler = Scheduler::new(cluster, args.seed).with_score_limit(limit);
    let strategy = args.strategy;
    let mut times = Vec::with_capacity(jobs.len());
    let mut placed = 0usize;
    let mut violations = 0usize;
    let cpu_start = thread_cpu_ms();
    let start = Instant::now();
    for job in &jobs {
        let t = Instant::now();
        let result = scheduler.place(job, strategy);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        if let Ok(p) = result {
            placed += 1;
            let cluster = scheduler.cluster();
            let i = cluster
                .node_index(p.node)
                .context("placed on an unknown node")?;
            if !cluster.used(i).fits_in(cluster.nodes()[i].capacity()) {
                violations += 1;
            }
        }
    }
    let total = start.elapsed().as_secs_f64();
    let cpu_s = match (cpu_start, thread_cpu_ms()) {
        (Some(a), Some(b)) if b > a => Some((b - a) / 1e3),
        _ => None,
    };
    if !scheduler.cluster().within_capacity() {
        violations += 1;
    }
    times.sort_by(f64::total_cmp);
    let p99 = times
        .get(((times.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0.0);
    Ok(json!({
        "nodes": args.nodes,
        "jobs": args.jobs,
        "strategy": args.strategy.name(),
        "nodes_scored_per_decision": limit.unwrap_or(args.nodes),
        "placed": placed,
        "unplaced": jobs.len() - placed,
        "placements_per_s": if total > 0.0 { jobs.len() as f64 / total } else { 0.0 },
        "placements_per_cpu_s": cpu_s.map(|c| jobs.len() as f64 / c),
        "decision_p50_ms": median(&mut times.clone()),
        "decision_p99_ms": p99,
        "capacity_violations": violations,
    }))
}

fn dag(args: &DagArgs) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        (1..=1024).contains(&args.nodes),
        "--nodes must be between 1 and 1024"
    );
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let mut text = String::new();
    file.take(MAX_WORKFLOW_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {} as UTF-8", args.file.display()))?;
    anyhow::ensure!(
        text.len() as u64 <= MAX_WORKFLOW_BYTES,
        "{} is larger than {MAX_WORKFLOW_BYTES} bytes",
        args.file.display()
    );
    let speeds: Vec<f64> = (0..args.nodes)
        .map(|k| 1.0 + 0.5 * (k % 4) as f64)
        .collect();
    let prices = speeds.iter().map(|s| s * s).collect();
    let problem = DagProblem::from_wfformat(&text, &speeds, prices, args.bandwidth)
        .with_context(|| format!("cannot schedule {}", args.file.display()))?;
    let start = Instant::now();
    let heft = problem.heft();
    let heft_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut config = Nsga2Config::with_seed(args.seed);
    config.max_evaluations = args.evaluations;
    let start = Instant::now();
    let front = problem.nsga_makespan_cost(config)?;
    let nsga_ms = start.elapsed().as_secs_f64() * 1e3;
    let fastest = front.first().context("nsga-ii found no schedule")?;
    let cheapest = front.last().context("nsga-ii found no schedule")?;
    Ok(json!({
        "tasks": problem.tasks(),
        "nodes": args.nodes,
        "heft_makespan": heft.makespan,
        "heft_cost": heft.cost,
        "nsga_makespan": fastest.makespan,
        "nsga_makespan_cost": fastest.cost,
        "nsga_min_cost": cheapest.cost,
        "nsga_min_cost_makespan": cheapest.makespan,
        "front_size": front.len(),
        "heft_ms": heft_ms,
        "nsga_ms": nsga_ms,
    }))
}

/// `fog bench sched`: the ZDT1 check (11 seeds, 25,000 evaluations) and the
/// fast path on 10,000 nodes, as one JSON document (or text).
pub(crate) fn bench(global: &GlobalArgs) -> anyhow::Result<()> {
    let mut zdt = serde_json::Map::new();
    for problem in [ProblemName::Zdt1, ProblemName::Zdt2, ProblemName::Zdt3] {
        let args = BenchArgs {
            problem,
            seeds: 11,
            evaluations: 25_000,
            population: 100,
            crowding: Crowding::Pcd,
        };
        let name = format!("{problem:?}").to_lowercase();
        zdt.insert(name, zdt_bench(&args)?);
    }
    let place = place_bench(&PlaceArgs {
        nodes: 10_000,
        jobs: 10_000,
        strategy: Strategy::Scored,
        seed: 1,
        sample: false,
    })?;
    let sampled = place_bench(&PlaceArgs {
        nodes: 10_000,
        jobs: 10_000,
        strategy: Strategy::Scored,
        seed: 1,
        sample: true,
    })?;
    let document = json!({ "nsga2": zdt, "place": place, "place_sampled": sampled });
    emit(&document, global.json)
}
