//! `fog job submit|status|logs|cancel|list`: jobs on the network, through
//! a node's control API.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;

use crate::cli::GlobalArgs;
use crate::node::api::{JobView, SubmitRequest};
use crate::node::client::ApiClient;

/// Which node to talk to.
#[derive(Debug, Clone, Args)]
pub(crate) struct NodeSelect {
    /// The node's data directory, where `api.addr` and `api.token` are
    /// (default `$FOG_DATA_DIR/node`, else `./.fog/node`).
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) node: Option<PathBuf>,
    /// The node's API address instead (needs --token-file).
    #[arg(long, value_name = "HOST:PORT", global = true, requires = "token_file")]
    pub(crate) api: Option<String>,
    /// File holding the API token (with --api).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) token_file: Option<PathBuf>,
}

impl NodeSelect {
    /// A client for the selected node.
    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        match (&self.api, &self.token_file) {
            (Some(addr), Some(file)) => {
                let token = std::fs::read_to_string(file)
                    .with_context(|| format!("reading {}", file.display()))?;
                ApiClient::new(addr, &token)
            }
            _ => ApiClient::from_data_dir(&crate::cmd::layer_dir(self.node.as_ref(), "node")),
        }
    }
}

/// `fog job submit`.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// WASI preview 1 module (`.wasm` or `.wat`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "image",
        conflicts_with = "image"
    )]
    pub(crate) wasm: Option<PathBuf>,
    /// Container image name.
    #[arg(long, value_name = "NAME")]
    pub(crate) image: Option<String>,
    /// Image tarball path the executors can read.
    #[arg(long, value_name = "FILE", requires = "image")]
    pub(crate) image_tar: Option<PathBuf>,
    /// A name for people.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// SLA class: S (may preempt), A or B.
    #[arg(long, default_value = "B")]
    pub(crate) class: String,
    /// Privacy level: PUBLIC, PRIVATE, CONFIDENTIAL or SECRET.
    #[arg(long, default_value = "PUBLIC")]
    pub(crate) privacy: String,
    /// Replicas to run and compare.
    #[arg(long, default_value_t = 1)]
    pub(crate) replicas: u32,
    /// CPU in millicores.
    #[arg(long, value_name = "MILLIS")]
    pub(crate) cpu: Option<u32>,
    /// Memory in MiB.
    #[arg(long, value_name = "MB")]
    pub(crate) memory: Option<u32>,
    /// WASM fuel budget.
    #[arg(long)]
    pub(crate) fuel: Option<u64>,
    /// Timeout in seconds.
    #[arg(long, value_name = "S")]
    pub(crate) timeout: Option<f64>,
    /// A job (submitted at the same node) that must be verified first (repeatable).
    #[arg(long, value_name = "ID")]
    pub(crate) depends_on: Vec<String>,
    /// Gang name: members are placed all at once.
    #[arg(long, requires = "gang_size")]
    pub(crate) gang: Option<String>,
    /// Members of the gang.
    #[arg(long, requires = "gang")]
    pub(crate) gang_size: Option<u32>,
    /// Wait until the job ends, showing progress, then print its output.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Give up waiting after this many seconds (the job goes on).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub(crate) wait_timeout: Option<f64>,
    /// Arguments for the module, or the container command.
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,
}

/// A job id argument.
#[derive(Debug, Args)]
pub(crate) struct IdArgs {
    /// The job id.
    pub(crate) id: String,
}

/// `fog job status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The job id.
    pub(crate) id: String,
    /// Wait until it ends.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Give up waiting after this many seconds (the job goes on).
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    pub(crate) wait_timeout: Option<f64>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The API document for a submission.
pub(crate) fn request_of(args: &SubmitArgs) -> anyhow::Result<SubmitRequest> {
    let wasm_b64 = match &args.wasm {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let bytes = if path.extension().is_some_and(|e| e == "wat") {
                wat::parse_bytes(&bytes)
                    .with_context(|| format!("parsing {}", path.display()))?
                    .into_owned()
            } else {
                bytes
            };
            Some(base64::engine::general_purpose::STANDARD.encode(bytes))
        }
        None => None,
    };
    Ok(SubmitRequest {
        name: args.name.clone().unwrap_or_default(),
        wasm_b64,
        image: args.image.clone(),
        image_tar: args.image_tar.as_ref().map(|p| p.display().to_string()),
        args: args.args.clone(),
        cpu_millis: args.cpu,
        memory_mb: args.memory,
        fuel: args.fuel,
        timeout_s: args.timeout,
        class: Some(args.class.clone()),
        privacy: Some(args.privacy.clone()),
        replicas: Some(args.replicas),
        depends_on: args.depends_on.clone(),
        gang: args.gang.clone(),
        gang_size: args.gang_size,
    })
}

/// Whether a job state is final.
pub(crate) fn is_final(state: &str) -> bool {
    matches!(state, "verified" | "failed" | "cancelled")
}

/// Polls until the job ends, with a spinner on a terminal; past `limit`
/// (seconds) it is an error naming the job's state, and the job goes on.
pub(crate) async fn wait_for(
    client: &ApiClient,
    id: &str,
    quiet: bool,
    limit: Option<f64>,
) -> anyhow::Result<JobView> {
    let limit = match limit {
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s.min(1e9))),
        Some(s) => bail!("--wait-timeout must be a positive number of seconds, not {s}"),
        None => None,
    };
    let started = std::time::Instant::now();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    };
    loop {
        let job = client.job(id).await?;
        bar.set_message(format!(
            "{} {} on {}",
            job.id,
            job.state,
            if job.nodes.is_empty() {
                "-".to_owned()
            } else {
                job.nodes.join(",")
            }
        ));
        if is_final(&job.state) {
            bar.finish_and_clear();
            return Ok(job);
        }
        if let Some(limit) = limit.filter(|l| started.elapsed() > *l) {
            bar.finish_and_clear();
            bail!(
                "job {} is still {} after {:.0} s{}",
                job.id,
                job.state,
                limit.as_secs_f64(),
                job.last_failure
                    .as_deref()
                    .map(|w| format!(" ({} failed replicas; the last: {w})", job.failures))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `fog job submit`.
pub(crate) fn submit(
    args: &SubmitArgs,
    select: &NodeSelect,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let request = request_of(args)?;
    let client = select.client()?;
    runtime()?.block_on(async {
        let id = client.submit(&request).await?.id;
        if !args.wait {
            if global.json {
                println!("{}", serde_json::json!({ "id": id }));
            } else {
                println!("{id}");
            }
            return Ok(());
        }
        let job = wait_for(&client, &id, global.json || global.quiet, args.wait_timeout).await?;
        print_outcome(&client, &job, global.json).await
    })
}

async fn print_outcome(client: &ApiClient, job: &JobView, json: bool) -> anyhow::Result<()> {
    let logs = client.logs(&job.id).await.ok();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({ "job": job, "logs": logs });
        writeln!(out, "{doc}")?;
    } else {
        writeln!(out, "{} {} on {}", job.id, job.state, job.nodes.join(","))?;
        if let Some(q) = job.quorum.filter(|_| job.replicas > 1) {
            writeln!(out, "quorum: {q} agreeing replicas")?;
        }
        if job.resumed > 0 {
            writeln!(
                out,
                "resumed from a checkpoint {} time(s) after a replica was dropped",
                job.resumed
            )?;
        }
        if let Some(logs) = &logs {
            out.write_all(logs.stdout.as_bytes())?;
        }
        if let Some(e) = &job.error {
            writeln!(out, "error: {e}")?;
        }
    }
    if job.state != "verified" {
        bail!("job {} ended {}", job.id, job.state);
    }
    Ok(())
}

/// `fog job status`.
pub(crate) fn status(
    args: &StatusArgs,
    select: &NodeSelect,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let client = select.client()?;
    runtime()?.block_on(async {
        let job = if args.wait {
            wait_for(
                &client,
                &args.id,
                global.json || global.quiet,
                args.wait_timeout,
            )
            .await?
        } else {
            client.job(&args.id).await?
        };
        if global.json {
            println!("{}", serde_json::to_string(&job)?);
        } else {
            print_table(&[job]);
        }
        Ok(())
    })
}

/// `fog job logs`.
pub(crate) fn logs(args: &IdArgs, select: &NodeSelect, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = select.client()?;
    let logs = runtime()?.block_on(client.logs(&args.id))?;
    let mut out = std::io::stdout().lock();
    if global.json {
        writeln!(out, "{}", serde_json::to_string(&logs)?)?;
    } else {
        out.write_all(logs.stdout.as_bytes())?;
        if !logs.stderr.is_empty() {
            eprint!("{}", logs.stderr);
        }
    }
    Ok(())
}

/// `fog job cancel`.
pub(crate) fn cancel(
    args: &IdArgs,
    select: &NodeSelect,
    global: &GlobalArgs,
) -> anyhow::Result<()> {
    let client = select.client()?;
    runtime()?.block_on(client.cancel(&args.id))?;
    if global.json {
        println!(
            "{}",
            serde_json::json!({ "id": args.id, "cancelled": true })
        );
    } else {
        println!("cancelled {}", args.id);
    }
    Ok(())
}

/// `fog job list`.
pub(crate) fn list(select: &NodeSelect, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = select.client()?;
    let jobs = runtime()?.block_on(client.jobs())?;
    if global.json {
        println!("{}", serde_json::to_string(&jobs)?);
    } else {
        print_table(&jobs);
    }
    Ok(())
}

fn print_table(jobs: &[JobView]) {
    println!(
        "{:<24} {:<16} {:<5} {:<12} {:<10} NODES",
        "ID", "NAME", "CLASS", "PRIVACY", "STATE"
    );
    for j in jobs {
        println!(
            "{:<24} {:<16} {:<5} {:<12} {:<10} {}",
            j.id,
            j.name.chars().take(16).collect::<String>(),
            j.class,
            j.privacy,
            j.state,
            j.nodes.join(",")
        );
    }
}
