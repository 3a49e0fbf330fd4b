//! `fog devnet up|down`: a local fog network on loopback with embedded
//! defaults. `up` starts N `fog node run` processes (node 0 holds the
//! ledger; with 4 or more nodes the last one lies about replicated work),
//! gives every node a bonded stake, submits the sample workload in
//! `fog-cli/devnet/` to node 0, waits for it and prints a summary.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;
use crate::node::api::{StatusSnapshot, SubmitRequest};
use crate::node::client::ApiClient;
use crate::node::config::NodeConfig;

/// The sample task.
const COMPUTE_WAT: &str = include_str!("../../devnet/compute.wat");
/// The sample workload.
const WORKLOAD_TOML: &str = include_str!("../../devnet/workload.toml");

/// `fog devnet ...`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    #[command(subcommand)]
    pub(crate) command: DevnetCommand,
}

/// The `fog devnet` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum DevnetCommand {
    /// Start a local network, run the sample workload, print a summary
    Up(UpArgs),
    /// Stop the nodes of a devnet started with --keep
    Down(DirArg),
}

/// A devnet directory.
#[derive(Debug, Args)]
pub(crate) struct DirArg {
    /// Devnet directory (default `$FOG_DATA_DIR/devnet`, else `./.fog/devnet`).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// `fog devnet up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Nodes to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=32))]
    pub(crate) nodes: u32,
    /// Devnet directory; emptied first (default `$FOG_DATA_DIR/devnet`, else `./.fog/devnet`).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// A workload file instead of the embedded sample (same format).
    #[arg(long, value_name = "FILE")]
    pub(crate) workload: Option<PathBuf>,
    /// Give up waiting for the workload after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub(crate) timeout: u64,
    /// Leave the nodes running afterwards (`fog devnet down` stops them).
    #[arg(long)]
    pub(crate) keep: bool,
    /// Open the live monitor instead of printing the summary.
    #[arg(long)]
    pub(crate) tui: bool,
    /// Relay nodes (mix and p2p only, no work) added so that SECRET jobs find
    /// seven distinct mixes; default: as many as needed to reach seven nodes.
    #[arg(long, value_name = "N")]
    pub(crate) relays: Option<u32>,
    /// Start the nodes only (implies --keep): no workload, no summary.
    #[arg(long)]
    pub(crate) no_workload: bool,
}

/// One entry of the workload file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
struct WorkloadJob {
    name: String,
    phase: u8,
    per_node: bool,
    class: Option<String>,
    privacy: Option<String>,
    cpu: Option<u32>,
    fuel: Option<u64>,
    /// Task time limit in seconds (the node's default when absent).
    timeout: Option<f64>,
    replicas: Option<u32>,
    depends_on: Vec<String>,
    gang: Option<String>,
    gang_size: Option<u32>,
    args: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Workload {
    job: Vec<WorkloadJob>,
}

/// The summary document.
#[derive(Debug, Default, Serialize)]
struct Summary {
    nodes: u32,
    jobs_submitted: u64,
    jobs_verified: u64,
    jobs_failed: u64,
    jobs_unfinished: u64,
    preemptions: u64,
    rewards_paid: u64,
    mix_pps: f64,
    evidence_records: u64,
    ledger_evidence_events: u64,
    ledger_height: u64,
    elapsed_s: f64,
    failed_jobs: Vec<String>,
}

/// Runs `fog devnet ...`.
pub(crate) fn run(args: DevnetArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    match args.command {
        DevnetCommand::Up(up) => devnet_up(&up, global),
        DevnetCommand::Down(dir) => {
            let dir = crate::cmd::layer_dir(dir.dir.as_ref(), "devnet");
            let rt = runtime()?;
            let mut stopped = 0;
            for node in node_dirs(&dir) {
                if let Ok(client) = ApiClient::from_data_dir(&node)
                    && rt.block_on(client.shutdown()).is_ok()
                {
                    stopped += 1;
                }
            }
            if global.json {
                println!("{}", serde_json::json!({ "stopped": stopped }));
            } else {
                println!("asked {stopped} nodes to stop");
            }
            Ok(())
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The node directories of a devnet, in order.
pub(crate) fn node_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n = name.strip_prefix("node-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    dirs.sort();
    dirs.into_iter().map(|(_, p)| p).collect()
}

/// The child processes; killed on drop unless kept.
struct Nodes {
    children: Vec<Child>,
    keep: bool,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn devnet_up(args: &UpArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = crate::cmd::layer_dir(args.dir.as_ref(), "devnet");
    let workload: Workload = match &args.workload {
        Some(path) => toml::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("parsing {}", path.display()))?,
        None => toml::from_str(WORKLOAD_TOML).context("parsing the embedded workload")?,
    };
    let module = wat::parse_str(COMPUTE_WAT).context("assembling the sample task")?;
    if dir.exists() {
        // Only ever a previous devnet: refuse anything else.
        if !dir.join("devnet.json").exists() && std::fs::read_dir(&dir)?.next().is_some() {
            bail!(
                "{} exists and is not a devnet directory; pick another --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir).with_context(|| format!("emptying {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("devnet.json"),
        serde_json::json!({ "nodes": args.nodes }).to_string(),
    )?;
    let quiet = global.json || global.quiet;
    let say = |text: &str| {
        if !quiet {
            eprintln!("devnet: {text}");
        }
    };

    // Configurations, seeds and the ledger with a bonded stake for every node.
    let n = args.nodes as usize;
    let relays = args.relays.map_or(7usize.saturating_sub(n), |r| r as usize);
    let total = n + relays;
    let mut configs = Vec::new();
    let mut seeds = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..total {
        let node_dir = dir.join(format!("node-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        let name = if i < n {
            format!("node-{i}")
        } else {
            format!("relay-{}", i - n)
        };
        let mut config = NodeConfig::devnet(&node_dir, &name);
        config.ledger = i == 0;
        config.exec = i < n;
        if n >= 4 && i == n - 1 {
            config.fault_lie = "replicated".into();
        }
        let seed = crate::node::runtime::load_or_create_seed(&node_dir)?;
        // Fixed ports, so that a node restarted later is found again.
        let port = free_port()?;
        config.listen = vec![format!("/ip4/127.0.0.1/tcp/{port}")];
        addrs.push(format!(
            "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
            crate::node::runtime::peer_id_of(&seed)?
        ));
        seeds.push(seed);
        configs.push(config);
    }
    for (i, config) in configs.iter_mut().enumerate() {
        // Everyone bootstraps from node 0, node 0 from node 1.
        let via = usize::from(i == 0);
        if via < total && via != i {
            config.bootstrap = vec![addrs[via].clone()];
        }
        config.save(&config.data_dir.join("config.toml"))?;
    }
    genesis(&dir.join("node-0").join("dao"), &seeds)?;

    let exe = std::env::current_exe().context("finding the fog binary")?;
    let mut nodes = Nodes {
        children: Vec::new(),
        keep: args.keep,
    };
    let rt = runtime()?;
    let mut clients = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let child =
            spawn_node(&exe, &config.data_dir).with_context(|| format!("starting node {i}"))?;
        nodes.children.push(child);
    }
    for (i, config) in configs.iter().enumerate() {
        let client = rt
            .block_on(wait_api(&config.data_dir, Duration::from_mins(1)))
            .with_context(|| {
                format!(
                    "node {i} did not come up (see {})",
                    config.data_dir.join("node.log").display()
                )
            })?;
        clients.push(client);
        say(&format!("node-{i} up"));
    }
    rt.block_on(wait_membership(&clients, Duration::from_mins(1)))?;
    say(&format!(
        "{total} nodes see each other ({n} take work, {relays} relay)"
    ));
    if args.no_workload {
        nodes.keep = true;
        if global.json {
            let doc = serde_json::json!({
                "dir": dir,
                "nodes": configs.iter().map(|c| &c.data_dir).collect::<Vec<_>>(),
            });
            println!("{doc}");
        } else {
            println!(
                "devnet of {total} nodes running in {} (`fog devnet down --dir {}` stops it)",
                dir.display(),
                dir.display()
            );
        }
        return Ok(());
    }

    // The workload, to node 0.
    let submitter = &clients[0];
    let b64 = base64::engine::general_purpose::STANDARD.encode(&module);
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut all_ids = Vec::new();
    for phase in [1u8, 0] {
        let mut phase_ids = Vec::new();
        for job in workload.job.iter().filter(|j| {
            if phase == 1 {
                j.phase == 1
            } else {
                j.phase != 1
            }
        }) {
            let copies = if job.per_node { n } else { 1 };
            for c in 0..copies {
                let name = if copies > 1 {
                    format!("{}-{c}", job.name)
                } else {
                    job.name.clone()
                };
                let replicas = match job.replicas {
                    Some(0) => args.nodes,
                    Some(r) => r.min(args.nodes),
                    None => 1,
                };
                let request = SubmitRequest {
                    name: name.clone(),
                    wasm_b64: Some(b64.clone()),
                    args: job.args.clone(),
                    cpu_millis: job.cpu,
                    fuel: job.fuel,
                    timeout_s: job.timeout,
                    class: job.class.clone(),
                    privacy: job.privacy.clone(),
                    replicas: Some(replicas),
                    depends_on: job
                        .depends_on
                        .iter()
                        .map(|d| {
                            ids.get(d)
                                .cloned()
                                .with_context(|| format!("{name}: unknown dependency {d}"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                    gang: job.gang.clone(),
                    gang_size: job.gang_size,
                    ..SubmitRequest::default()
                };
                let id = rt.block_on(submitter.submit(&request))?.id;
                ids.insert(name, id.clone());
                phase_ids.push(id.clone());
                all_ids.push(id);
            }
        }
        if phase == 1 && !phase_ids.is_empty() {
            // Let phase 1 occupy the nodes before the urgent work arrives.
            rt.block_on(wait_states(
                submitter,
                &phase_ids,
                &["running", "verified", "failed"],
                Duration::from_mins(1),
            ))?;
        }
    }
    say(&format!("submitted {} jobs", all_ids.len()));

    if args.tui {
        nodes.keep = true;
        let result = open_tui(&dir, global);
        nodes.keep = args.keep;
        return result;
    }

    // Wait with a progress bar.
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(all_ids.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} jobs ended {elapsed} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let jobs = rt.block_on(submitter.jobs())?;
        let ended = jobs
            .iter()
            .filter(|j| crate::cmd::job_api::is_final(&j.state))
            .count();
        bar.set_position(ended as u64);
        if ended >= all_ids.len() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bar.finish_and_clear();
    // Let the ledger settle the last verified jobs.
    std::thread::sleep(Duration::from_secs(3));

    let statuses: Vec<StatusSnapshot> = clients
        .iter()
        .filter_map(|c| rt.block_on(c.status()).ok())
        .collect();
    let jobs = rt.block_on(submitter.jobs())?;
    let head = &statuses[0];
    let summary = Summary {
        nodes: args.nodes,
        jobs_submitted: head.counts.submitted,
        jobs_verified: head.counts.verified,
        jobs_failed: head.counts.failed,
        jobs_unfinished: head.counts.pending + head.counts.running,
        preemptions: head.counts.preemptions,
        rewards_paid: head.dao.rewards_paid,
        mix_pps: statuses.iter().map(|s| s.mix.pps).sum(),
        evidence_records: head.counts.evidence,
        ledger_evidence_events: head.dao.evidence,
        ledger_height: head.dao.height,
        elapsed_s: started.elapsed().as_secs_f64(),
        failed_jobs: jobs
            .iter()
            .filter(|j| j.state != "verified")
            .map(|j| {
                format!(
                    "{} ({}): {}",
                    j.name,
                    j.state,
                    j.error.clone().unwrap_or_default()
                )
            })
            .collect(),
    };
    if !args.keep {
        for c in &clients {
            let _ = rt.block_on(c.shutdown());
        }
        let until = Instant::now() + Duration::from_secs(10);
        for child in &mut nodes.children {
            while Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    print_summary(&summary, global.json)?;
    if summary.jobs_verified < summary.jobs_submitted {
        bail!(
            "{} of {} jobs were not verified",
            summary.jobs_submitted - summary.jobs_verified,
            summary.jobs_submitted
        );
    }
    Ok(())
}

fn print_summary(s: &Summary, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(s)?)?;
        return Ok(());
    }
    writeln!(out, "devnet of {} nodes, {:.1} s", s.nodes, s.elapsed_s)?;
    writeln!(out, "  jobs submitted   {}", s.jobs_submitted)?;
    writeln!(out, "  jobs verified    {}", s.jobs_verified)?;
    writeln!(out, "  jobs failed      {}", s.jobs_failed)?;
    writeln!(out, "  preemptions      {}", s.preemptions)?;
    writeln!(out, "  rewards paid     {} tokens", s.rewards_paid)?;
    writeln!(out, "  mix throughput   {:.1} packets/s", s.mix_pps)?;
    writeln!(
        out,
        "  evidence records {} (ledger: {} slashing events)",
        s.evidence_records, s.ledger_evidence_events
    )?;
    for f in &s.failed_jobs {
        writeln!(out, "  not verified: {f}")?;
    }
    Ok(())
}

/// Creates the devnet ledger: every node gets tokens and bonds them, so
/// every node is a bonded verifier whose attestations count as evidence.
fn genesis(dao_dir: &Path, seeds: &[[u8; 32]]) -> anyhow::Result<()> {
    crate::node::ledger_init(dao_dir)?;
    let authority = fog_dao::SigningKey::load(&dao_dir.join("keys/authority.key"))?;
    let log = fog_dao::SigningKey::load(&dao_dir.join("keys/log.key"))?;
    let mut ledger = fog_dao::Ledger::open(&dao_dir.join("ledger.db"), Some(log))?;
    let time = ledger.state().time();
    for seed in seeds {
        let key = crate::node::runtime::account_of(seed);
        ledger.submit(
            &authority,
            time,
            fog_dao::Body::Mint {
                to: key.account(),
                rule: fog_dao::EarningRule::Hosting,
                units: 1_000,
            },
        )?;
        let balance = ledger
            .state()
            .account(&key.account())
            .map_or(0, fog_dao::Account::balance);
        ledger.submit(&key, time, fog_dao::Body::Bond { amount: balance })?;
    }
    Ok(())
}

/// Starts `fog node run` on a node directory (its `config.toml`), logging
/// to `node.log` there.
pub(crate) fn spawn_node(exe: &Path, dir: &Path) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))?;
    Command::new(exe)
        .args(["--log-format", "text", "-v", "node", "run", "--config"])
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("spawning fog node run")
}

/// A TCP port that was free a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until the node in `dir` answers and knows its listen address.
async fn wait_api(dir: &Path, timeout: Duration) -> anyhow::Result<ApiClient> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(client) = ApiClient::from_data_dir(dir)
            && let Ok(status) = client.status().await
            && !status.node.listen.is_empty()
        {
            return Ok(client);
        }
        if Instant::now() > deadline {
            bail!(
                "no answer from the node in {} within {} s",
                dir.display(),
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every node sees every other one alive.
async fn wait_membership(clients: &[ApiClient], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let want = clients.len() - 1;
    loop {
        let mut ok = true;
        for c in clients {
            let alive = c
                .status()
                .await
                .map_or(0, |s| s.peers.iter().filter(|p| p.alive).count());
            ok &= alive >= want;
        }
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the nodes did not all see each other within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every job in `ids` is in one of `states`.
async fn wait_states(
    client: &ApiClient,
    ids: &[String],
    states: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let jobs = client.jobs().await?;
        let ready = ids.iter().all(|id| {
            jobs.iter()
                .any(|j| &j.id == id && states.contains(&j.state.as_str()))
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("phase-1 jobs did not start within {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the live monitor on the devnet's nodes.
fn open_tui(dir: &Path, global: &GlobalArgs) -> anyhow::Result<()> {
    let _ = global;
    let targets = node_dirs(dir)
        .into_iter()
        .map(crate::tui::Target::data_dir)
        .collect();
    runtime()?.block_on(crate::tui::monitor(targets, Duration::from_secs(1)))
}
