//! `fog node`: run a full fog node, and read a running node's status.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::cli::GlobalArgs;
use crate::node::client::ApiClient;
use crate::node::config::NodeConfig;
use crate::node::runtime::Runtime;

/// `fog node ...`.
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(subcommand)]
    pub(crate) command: NodeCommand,
}

/// The `fog node` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Run a fog node until Ctrl-C, SIGTERM or `POST /v1/shutdown`
    Run(RunArgs),
    /// Print a running node's status (peers, jobs, harvest, mix, ledger)
    Status(DirArgs),
    /// Ask a running node to stop gracefully
    Stop(DirArgs),
}

/// A node's data directory.
#[derive(Debug, Args)]
pub(crate) struct DirArgs {
    /// The node's data directory (default `$FOG_DATA_DIR/node`, else `./.fog/node`).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

/// `fog node run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// TOML configuration file (keys as in `NodeConfig`; see README).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Data directory (default `$FOG_DATA_DIR/node`, else `./.fog/node`).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Name shown to other nodes and people.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// libp2p listen address (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) listen: Vec<String>,
    /// Bootstrap peer `/ip4/.../tcp/.../p2p/<id>` (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) bootstrap: Vec<String>,
    /// Control API address (loopback by default).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) api: Option<std::net::SocketAddr>,
    /// Hold the ledger (`<data>/dao`, created with fresh keys when missing).
    #[arg(long)]
    pub(crate) ledger: bool,
    /// Do not run work for others.
    #[arg(long)]
    pub(crate) no_exec: bool,
    /// Loopback profile: short timers, no mDNS, DHT server mode.
    #[arg(long)]
    pub(crate) local: bool,
}

/// Runs `fog node ...`.
pub(crate) fn run(args: NodeArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        NodeCommand::Run(run) => node_run(&run),
        NodeCommand::Status(dir) => node_status(&dir, global),
        NodeCommand::Stop(dir) => {
            let client =
                ApiClient::from_data_dir(&crate::cmd::layer_dir(dir.data_dir.as_ref(), "node"))?;
            runtime()?.block_on(client.shutdown())?;
            if global.json {
                println!("{}", serde_json::json!({"stopping": true}));
            } else {
                println!("asked the node to stop");
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The configuration from defaults, file, environment and flags.
pub(crate) fn config_from(args: &RunArgs) -> anyhow::Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => NodeConfig::from_file(path)?,
        None => NodeConfig {
            data_dir: crate::cmd::layer_dir(None, "node"),
            ..NodeConfig::default()
        },
    };
    config.apply_env()?;
    if let Some(dir) = &args.data_dir {
        config.data_dir.clone_from(dir);
    }
    if let Some(name) = &args.name {
        config.name.clone_from(name);
    }
    if !args.listen.is_empty() {
        config.listen.clone_from(&args.listen);
    }
    if !args.bootstrap.is_empty() {
        config.bootstrap.clone_from(&args.bootstrap);
    }
    if let Some(api) = args.api {
        config.api = api;
    }
    config.ledger |= args.ledger;
    config.exec &= !args.no_exec;
    config.local |= args.local;
    config.validate()?;
    Ok(config)
}

fn node_run(args: &RunArgs) -> anyhow::Result<()> {
    let config = config_from(args)?;
    if config.ledger {
        crate::node::ledger_init(&config.data_dir.join("dao"))?;
    }
    runtime()?.block_on(async move {
        let node = Runtime::start(config).await?;
        let api = tokio::spawn(crate::node::http::serve(std::sync::Arc::clone(&node)));
        let signals = {
            let node = std::sync::Arc::clone(&node);
            tokio::spawn(async move {
                wait_for_signal().await;
                tracing::info!("signal received; stopping");
                node.request_shutdown();
            })
        };
        let result = std::sync::Arc::clone(&node).run().await;
        signals.abort();
        match api.await {
            Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "control API"),
            Err(e) => tracing::warn!(error = %e, "control API task"),
            Ok(Ok(())) => {}
        }
        node.close().await;
        result
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn node_status(args: &DirArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = ApiClient::from_data_dir(&crate::cmd::layer_dir(args.data_dir.as_ref(), "node"))?;
    let status = runtime()?.block_on(client.status())?;
    let mut out = std::io::stdout().lock();
    if global.json {
        writeln!(out, "{}", serde_json::to_string(&status)?)?;
        return Ok(());
    }
    let n = &status.node;
    writeln!(
        out,
        "{} ({}), up {} s, roles {}",
        n.name,
        n.peer_id,
        n.uptime_s,
        n.roles.join(",")
    )?;
    writeln!(
        out,
        "harvest: {} ({})",
        status.harvest.state, status.harvest.reason
    )?;
    match n.min_quorum_signers {
        Some(q) => writeln!(
            out,
            "verification: a majority of replicas, at least {q} (ledger min_quorum_signers)"
        )?,
        None => writeln!(
            out,
            "verification: a majority of replicas (ledger not heard yet)"
        )?,
    }
    let alive = status.peers.iter().filter(|p| p.alive).count();
    writeln!(out, "peers: {alive} alive of {}", status.peers.len())?;
    for p in &status.peers {
        writeln!(
            out,
            "  {:<12} {:<6} load {:>4.0}%  rep {:.2}  {}",
            p.name,
            if p.alive { "alive" } else { "failed" },
            p.load * 100.0,
            p.reputation,
            p.roles.join(",")
        )?;
    }
    let c = &status.counts;
    writeln!(
        out,
        "jobs: {} submitted, {} pending, {} running, {} verified, {} failed, {} cancelled; {} preemptions, {} evidence; {} tasks run here",
        c.submitted,
        c.pending,
        c.running,
        c.verified,
        c.failed,
        c.cancelled,
        c.preemptions,
        c.evidence,
        c.executed
    )?;
    if status.dao.ledger {
        writeln!(
            out,
            "ledger: {} events, supply {}, rewards paid {}, {} evidence events, {} proposals",
            status.dao.height,
            status.dao.supply,
            status.dao.rewards_paid,
            status.dao.evidence,
            status.dao.proposals.len()
        )?;
    }
    Ok(())
}
