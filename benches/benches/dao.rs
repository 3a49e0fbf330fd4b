//! fog-dao hot paths: signed-vote verification, one at a time and batched,
//! and the Merkle log (append to the frontier, inclusion proof and its
//! verification).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fog_benches::dao::{LEDGER_ID, leaves, votes};
use fog_dao::merkle::{Frontier, inclusion_path, leaf_hash, root_of, verify_inclusion};

fn signatures(c: &mut Criterion) {
    let mut group = c.benchmark_group("dao/verify");
    let votes = votes(1024);
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % votes.len();
            assert!(votes[i].verify_signature(black_box(&LEDGER_ID)));
        });
    });
    for n in [64usize, 1024] {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter(|| assert!(fog_dao::verify_batch(&LEDGER_ID, black_box(&votes[..n]))));
        });
    }
    group.finish();
}

fn merkle(c: &mut Criterion) {
    let mut group = c.benchmark_group("dao/merkle");
    let mut frontier = Frontier::new();
    let mut i = 0u64;
    group.bench_function("append", |b| {
        b.iter(|| {
            i += 1;
            frontier.push(leaf_hash(&i.to_le_bytes()));
            frontier.size()
        });
    });
    let leaves = leaves(4096);
    let root = root_of(&leaves);
    group.bench_function("proof_4096", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 7) % leaves.len();
            inclusion_path(black_box(&leaves), k).expect("in range")
        });
    });
    let path = inclusion_path(&leaves, 1234).expect("in range");
    group.bench_function("verify_proof_4096", |b| {
        b.iter(|| {
            assert!(verify_inclusion(
                &leaves[1234],
                1234,
                4096,
                black_box(&path),
                &root
            ));
        });
    });
    group.finish();
}

criterion_group!(benches, signatures, merkle);
criterion_main!(benches);
