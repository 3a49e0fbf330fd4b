//! `fog bench <layer>`: each layer's scenario benchmark, printing numbers
//! (one JSON document with `--json`). Speed is measured here and in the
//! criterion benches, never asserted in tests.

use std::io::{self, Write};

use clap::{Args, Subcommand};

use crate::cli::GlobalArgs;

/// `fog bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    layer: BenchLayer,
}

/// The layers with a scenario benchmark.
#[derive(Debug, Subcommand)]
enum BenchLayer {
    /// fog-harvest: policy, controller, simulation, sensor and record throughput
    Harvest,
    /// fog-mix: Sphinx processing against the node pipeline, added latency, the X25519 bound
    Mix(super::mix::BenchArgs),
    /// fog-p2p: DHT lookups and gossip in an in-process network (memory transport)
    P2p(super::p2p::BenchArgs),
    /// fog-mesh: bundle codec rates, trace replay rates, routing comparison
    Mesh,
    /// fog-sched: NSGA-II on ZDT1-3 and fast-path placement on 10,000 nodes
    Sched,
    /// fog-exec: WASM start latency, task throughput, Docker against `docker run`
    Exec,
    /// fog-dao: signature verification, appends, ledger verification
    Dao(super::dao::BenchArgs),
}

/// Runs the benchmark of the chosen layer.
pub(crate) fn run(args: &BenchArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let out = &mut io::stdout().lock();
    let result = match &args.layer {
        BenchLayer::Harvest => super::harvest::bench(global.json, out),
        BenchLayer::Mix(args) => super::mix::bench(args, global),
        BenchLayer::P2p(args) => super::p2p::bench(args, global),
        BenchLayer::Mesh => super::mesh::bench(global.json, out),
        BenchLayer::Sched => super::sched::bench(global),
        BenchLayer::Exec => super::job::bench(global),
        BenchLayer::Dao(args) => super::dao::bench(args, global),
    };
    out.flush()?;
    result
}
