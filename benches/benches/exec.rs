//! fog-exec hot path: a WASM task's start (new store, instantiate from the
//! cached `InstancePre`, run to exit with captured output).

use criterion::{Criterion, criterion_group, criterion_main};
use fog_benches::exec::hello;

fn wasm(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (engine, workload, limits) = hello();
    engine
        .prepare(fog_exec::examples::HELLO_WASM)
        .expect("module compiles");
    let mut group = c.benchmark_group("exec/wasm");
    group.bench_function("instantiate_run_hello", |b| {
        b.iter(|| {
            let result = runtime
                .block_on(engine.run(&workload, &limits))
                .expect("runs");
            assert!(result.succeeded());
            result
        });
    });
    group.finish();
}

criterion_group!(benches, wasm);
criterion_main!(benches);
