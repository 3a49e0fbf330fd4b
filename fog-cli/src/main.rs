//! `fog`: the command-line front of the fog ecosystem.
//!
//! This binary composes the layer crates; it holds no layer logic of its own.
//! It is the only place that installs a `tracing` subscriber.

mod cli;
mod cmd;
mod node;
mod tui;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, GlobalArgs, LogFormat};
use crate::cmd::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.global);
    let json = cli.global.json;
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error, json),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Completions(args) => cmd::completions::run(&args, &mut io::stdout().lock()),
        Command::Job(args) => cmd::job::run(args, &cli.global),
        Command::Node(args) => cmd::node::run(args, &cli.global),
        Command::Devnet(args) => cmd::devnet::run(args, &cli.global),
        Command::Bench(args) => cmd::bench::run(&args, &cli.global),
        Command::Dao(args) => cmd::dao::run(args, &cli.global),
        Command::Mix(args) => cmd::mix::run(&args, &cli.global),
        Command::P2p(args) => cmd::p2p::run(&args, &cli.global),
        Command::Mesh(args) => cmd::mesh::run(&args, &cli.global),
        Command::Sched(args) => cmd::sched::run(args, &cli.global),
        Command::Harvest(args) => cmd::harvest::run(args, &cli.global),
        Command::Tui(args) => tui::run(&args, &cli.global),
        Command::Manpages(args) => cmd::manpages::run(&args, &cli.global),
    }
}

/// Prints `error` (as JSON on stdout under `--json`, as text on stderr
/// otherwise) and returns its exit code.
fn report(error: &anyhow::Error, json: bool) -> ExitCode {
    let (code, kind) = match error.downcast_ref::<Failure>() {
        Some(failure) => (failure.code, failure.kind),
        None => (1, "error"),
    };
    if json {
        let chain: Vec<String> = error.chain().map(ToString::to_string).collect();
        let document = serde_json::json!({
            "error": { "kind": kind, "message": error.to_string(), "causes": &chain[1..] }
        });
        let _ = writeln!(io::stdout().lock(), "{document}");
    } else {
        let _ = writeln!(io::stderr().lock(), "error: {error:#}");
    }
    ExitCode::from(code)
}

/// Installs the one subscriber: logs on stderr, filtered by `FOG_LOG` or the
/// verbosity flags.
fn init_tracing(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("FOG_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = match global.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
