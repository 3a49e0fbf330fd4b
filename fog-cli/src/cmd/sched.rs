//! `fog sched`: placement, NSGA-II benchmarks and DAG scheduling with fog-sched.

use std::io::{self, Write};
use std::time::Instant;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use fog_sched::nsga2::{Nsga2, Nsga2Config, Zdt, ZdtKind, hypervolume_2d, igd};
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
    for seed in 0..args.seeds {
        let mut config = Nsga2Config::with_seed(seed);
        config.max_evaluations = args.evaluations;
        config.population = args.population;
        let start = Instant::now();
        let outcome = Nsga2::new(config)
            .run(&problem)
            .context("nsga-ii run failed")?;
        let elapsed = start.elapsed().as_secs_f64() * 1e3;
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
    Ok(json!({
        "problem": format!("{:?}", args.problem).to_lowercase(),
        "seeds": args.seeds,
        "population": args.population,
        "hypervolume": median(&mut hv),
        "igd": median(&mut ig),
        "evaluations": median(&mut evals),
        "ms_per_generation": median(&mut ms),
    }))
}
