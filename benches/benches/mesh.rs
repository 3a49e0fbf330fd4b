//! fog-mesh hot paths: BPv7 bundle encode and decode (1 KiB payload) and a
//! PRoPHET contact (aging, encounter, transitive update from a neighbour's
//! table of 100 destinations).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fog_benches::mesh::{bundle, prophet};
use fog_mesh::{Bundle, NodeId, Router};

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("mesh/bundle");
    let bundle = bundle(1024);
    let encoded = bundle.encode();
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode_1k", |b| b.iter(|| black_box(&bundle).encode()));
    group.bench_function("decode_1k", |b| {
        b.iter(|| Bundle::decode(black_box(&encoded)).expect("decodes"));
    });
    group.finish();
}

fn routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("mesh/prophet");
    let (mut router, table) = prophet(100);
    let mut now = 0.0;
    let mut peer = 0u64;
    group.bench_function("contact_100_destinations", |b| {
        b.iter(|| {
            now += 1.0;
            peer = peer % 50 + 1;
            let info = router.link_up(now, NodeId(peer));
            router.peer_info(now, NodeId(peer), black_box(&table));
            router.link_down(now, NodeId(peer));
            info
        });
    });
    group.finish();
}

criterion_group!(benches, codec, routing);
criterion_main!(benches);
