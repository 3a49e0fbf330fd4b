//! fog-harvest hot paths: one policy assessment and one controller step.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fog_harvest::{Conditions, Controller, Policy, RecordingWork};

fn policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("harvest/policy");
    let policy = Policy::default();
    let conditions = Conditions::mains()
        .battery(Some(80.0), false)
        .temperature(50.0)
        .user_idle(600.0)
        .non_fog_cpu(5.0);
    group.bench_function("assess", |b| {
        b.iter(|| policy.assess(black_box(&conditions), None).allowed());
    });
    let mut controller = Controller::new(policy.clone(), 0.0);
    let mut work = RecordingWork::new(64);
    let mut t = 0.0;
    group.bench_function("controller_step", |b| {
        b.iter(|| {
            t += 1.0;
            controller.step(t, black_box(&conditions), &mut work)
        });
    });
    group.finish();
}

criterion_group!(benches, policy);
criterion_main!(benches);
