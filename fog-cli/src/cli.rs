//! The `fog` command tree (clap derive).
//!
//! Every layer owns one group (`fog mix`, `fog p2p`, ...). A group whose layer
//! has not landed yet still parses any arguments, so that a user gets a plain
//! "not available yet" answer instead of a usage error.

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

/// fog: decentralized fog computing. Idle machines lend compute to a
/// peer-to-peer network; jobs are placed, sandboxed, verified, paid for and
/// governed by vote.
#[derive(Debug, Parser)]
#[command(name = "fog", version, propagate_version = true, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Print machine-readable output: one JSON document on stdout (JSON lines
    /// for streams). Errors become a JSON document too.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). `FOG_LOG`
    /// takes a full filter (for example `FOG_LOG=fog_p2p=debug`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run and inspect a full fog node
    Node(crate::cmd::node::NodeArgs),
    /// Start a local fog network on loopback and run the sample workload
    Devnet(crate::cmd::devnet::DevnetArgs),
    /// Submit, run and follow jobs
    Job(crate::cmd::job::JobArgs),
    /// Benchmark a layer and print its figures
    Bench(crate::cmd::bench::BenchArgs),
    /// Tokens, staking and governance
    Dao(crate::cmd::dao::DaoArgs),
    /// Mixnet keys, mix nodes, sending through circuits and anonymity simulation
    Mix(crate::cmd::mix::MixArgs),
    /// The libp2p overlay: nodes, DHT records, gossip, peers
    P2p(crate::cmd::p2p::P2pArgs),
    /// Offline delay-tolerant messaging over UDP and BLE
    Mesh(crate::cmd::mesh::MeshArgs),
    /// Placement, reputation and DAG scheduling
    Sched(crate::cmd::sched::SchedArgs),
    /// Whether and how much this device may lend compute
    Harvest(crate::cmd::harvest::HarvestArgs),
    /// Live terminal monitor of a node or devnet
    Tui(crate::tui::TuiArgs),
    /// Print a shell completion script to stdout
    Completions(CompletionsArgs),
    /// Write the manual pages into a directory (used by `cargo xtask man`)
    #[command(hide = true)]
    Manpages(crate::cmd::manpages::ManpagesArgs),
}

/// `fog completions <shell>`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
