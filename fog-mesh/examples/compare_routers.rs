//! Compares the four routing schemes on a synthetic random-waypoint trace.
//!
//! `cargo run --release -p fog-mesh --example compare_routers [nodes] [seed]`

use std::time::Instant;

use fog_mesh::{RandomWaypoint, RouterKind, SimConfig, simulate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let nodes = args.next().map_or(Ok(50), |a| a.parse())?;
    let seed = args.next().map_or(Ok(1), |a| a.parse())?;
    let mut rwp = RandomWaypoint::default();
    rwp.nodes = nodes;
    rwp.seed = seed;
    let started = Instant::now();
    let trace = rwp.generate()?;
    println!(
        "trace: {} nodes, {} contacts, {:.0} s long, generated in {:.2} s",
        trace.nodes(),
        trace.contacts(),
        trace.duration(),
        started.elapsed().as_secs_f64()
    );
    for kind in RouterKind::ALL {
        let started = Instant::now();
        let report = simulate(&trace, &SimConfig::new(kind))?;
        println!(
            "{kind:>9}: delivery {:.3}  overhead {:>7.2}  latency p50 {:>6.0} s p95 {:>6.0} s  hops {:.2}  peak buffer {:>5}  ({:.2} s)",
            report.delivery_ratio,
            report.overhead_ratio,
            report.latency_median_s,
            report.latency_p95_s,
            report.mean_hops,
            report.peak_buffer_bundles,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
