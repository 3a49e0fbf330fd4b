//! fog-mix hot paths: Sphinx packet build per privacy level, processing at a
//! mix next to plain `sphinx-packet` processing of the same packet (the
//! reference), and the replay filter.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use fog_benches::{MixRoute, fresh_replay_filter, replay_tag, seeded_rng};
use fog_mix::{PrivacyLevel, Processed};
use sphinx_packet::{ProcessedPacketData, SphinxPacket};

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix/build");
    let mut rng = seeded_rng(1);
    for level in PrivacyLevel::ALL {
        let route = MixRoute::new(level);
        group.bench_function(BenchmarkId::from_parameter(level.name()), |b| {
            b.iter(|| black_box(route.build(&mut rng)));
        });
    }
    group.finish();
}

fn process(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix/process");
    let mut rng = seeded_rng(2);
    let route = MixRoute::new(PrivacyLevel::Private);
    // fog-mix: length and MAC check, replay filter, one layer peeled. Every
    // iteration gets a fresh packet (a replayed one would be dropped early).
    let mut replay = fresh_replay_filter();
    group.bench_function("fog-mix", |b| {
        b.iter_batched(
            || route.build(&mut rng),
            |packet| {
                if replay.is_full() {
                    replay = fresh_replay_filter();
                }
                let out = route.first_hop().process(&packet, &mut replay);
                assert!(matches!(out, Ok(Processed::Forward { .. })));
                out
            },
            BatchSize::SmallInput,
        );
    });
    // The reference: the same packet through plain sphinx-packet (parse,
    // process, serialise the next hop's packet), no replay filter.
    let packet = route.build(&mut rng);
    let secret = route.first_hop_secret().clone();
    group.bench_function("sphinx-packet", |b| {
        b.iter(|| {
            let sphinx = SphinxPacket::from_bytes(black_box(packet.as_bytes())).expect("parses");
            match sphinx.process(&secret).expect("processes").data {
                ProcessedPacketData::ForwardHop {
                    next_hop_packet, ..
                } => next_hop_packet.to_bytes(),
                ProcessedPacketData::FinalHop { .. } => unreachable!("first of three hops"),
            }
        });
    });
    group.finish();
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("mix/replay");
    let mut filter = fresh_replay_filter();
    let mut n = 0u64;
    group.bench_function("insert", |b| {
        b.iter(|| {
            if filter.is_full() {
                filter = fresh_replay_filter();
            }
            n += 1;
            filter.check_and_insert(&replay_tag(n)).expect("in memory")
        });
    });
    let mut full = fresh_replay_filter();
    for i in 0..100_000 {
        full.check_and_insert(&replay_tag(i)).expect("in memory");
    }
    let mut i = 0u64;
    group.bench_function("check", |b| {
        b.iter(|| {
            i = (i + 1) % 200_000;
            full.contains(&replay_tag(i))
        });
    });
    group.finish();
}

criterion_group!(benches, build, process, replay);
criterion_main!(benches);
