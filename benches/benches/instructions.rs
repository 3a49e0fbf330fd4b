//! Instruction-count kernels: `instructions <kernel> <n>` runs one hot path
//! `n` times after a fixed setup. `cargo xtask bench` runs each kernel under
//! `valgrind --tool=callgrind` with `n = 0` and `n = N` and reports
//! `(Ir(N) - Ir(0)) / N`: instructions per call, setup excluded, a figure
//! that does not move with the machine's load.
//!
//! `instructions --list` prints the kernel names. Cargo's `--bench` flag is
//! accepted and ignored, so `cargo bench` runs every kernel once as a smoke
//! check.

use std::hint::black_box;
use std::process::ExitCode;

use fog_benches::{MixRoute, dao, fresh_replay_filter, mesh, replay_tag, sched, seeded_rng};
use fog_mix::PrivacyLevel;

/// Most calls a kernel makes (setups that pre-build inputs build this many).
const MAX_CALLS: usize = 16;

/// The kernels, with what one call is.
const KERNELS: &[(&str, &str)] = &[
    (
        "mix_process",
        "one PRIVATE packet processed at its first mix",
    ),
    ("replay_insert", "one replay-tag check-and-insert"),
    ("vote_verify", "one signed vote verified"),
    ("bundle_roundtrip", "one 1 KiB bundle encoded and decoded"),
    (
        "nsga2_generation",
        "one NSGA-II generation on ZDT1, population 100",
    ),
];

fn run(kernel: &str, calls: usize) -> Result<(), String> {
    match kernel {
        "mix_process" => {
            let route = MixRoute::new(PrivacyLevel::Private);
            let mut rng = seeded_rng(5);
            let packets: Vec<_> = (0..MAX_CALLS).map(|_| route.build(&mut rng)).collect();
            let mut replay = fresh_replay_filter();
            for packet in &packets[..calls] {
                black_box(route.first_hop().process(packet, &mut replay))
                    .map_err(|e| e.to_string())?;
            }
        }
        "replay_insert" => {
            let mut filter = fresh_replay_filter();
            for i in 0..calls as u64 {
                black_box(
                    filter
                        .check_and_insert(&replay_tag(i))
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        "vote_verify" => {
            let votes = dao::votes(1);
            for _ in 0..calls {
                assert!(black_box(&votes[0]).verify_signature(&dao::LEDGER_ID));
            }
        }
        "bundle_roundtrip" => {
            let bundle = mesh::bundle(1024);
            for _ in 0..calls {
                let bytes = black_box(&bundle).encode();
                black_box(fog_mesh::Bundle::decode(&bytes).map_err(|e| e.to_string())?);
            }
        }
        "nsga2_generation" => {
            black_box(sched::nsga2_zdt1(calls, 1));
        }
        other => return Err(format!("unknown kernel `{other}` (try --list)")),
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let result = match args.as_slice() {
        [] => KERNELS.iter().try_for_each(|(name, _)| run(name, 1)),
        [flag] if flag == "--list" => {
            for (name, what) in KERNELS {
                println!("{name}\t{what}");
            }
            Ok(())
        }
        [kernel, calls] => match calls.parse::<usize>() {
            Ok(n) if n <= MAX_CALLS => run(kernel, n),
            _ => Err(format!("calls must be a number from 0 to {MAX_CALLS}")),
        },
        _ => Err("usage: instructions [--list | <kernel> <calls>]".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("instructions: {message}");
            ExitCode::FAILURE
        }
    }
}
