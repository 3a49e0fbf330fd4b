//! fog-sched hot paths: NSGA-II generations on ZDT1 (population 100) and
//! fast-path placement on 10,000 nodes.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fog_benches::sched::{nsga2_zdt1, scheduler};
use fog_sched::placement::Strategy;

/// Generations per measured run; the figure is per generation (criterion's
/// element throughput), the initial population's evaluation included once.
const GENERATIONS: usize = 10;

fn nsga2(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched/nsga2");
    group.throughput(Throughput::Elements(GENERATIONS as u64));
    let mut seed = 0;
    group.bench_function(BenchmarkId::new("zdt1_generation", GENERATIONS), |b| {
        b.iter(|| {
            seed += 1;
            black_box(nsga2_zdt1(GENERATIONS, seed))
        });
    });
    group.finish();
}

fn place(c: &mut Criterion) {
    let mut group = c.benchmark_group("sched/place");
    let (mut scheduler, jobs) = scheduler(10_000, 1_000);
    let mut next = 0usize;
    // One decision plus the release that keeps the cluster's load steady.
    group.bench_function("scored_10000_nodes", |b| {
        b.iter(|| {
            let job = &jobs[next % jobs.len()];
            next += 1;
            let placed = scheduler.place(job, Strategy::Scored).expect("fits");
            scheduler.release(job.id()).expect("was placed");
            placed
        });
    });
    group.finish();
}

criterion_group!(benches, nsga2, place);
criterion_main!(benches);
