//! `fog job`: `fog job run` runs one task on this machine (no network)
//! and prints its result; `submit`, `status`, `logs`, `cancel` and `list`
//! ([`crate::cmd::job_api`]) work with a running node. The `fog bench exec`
//! figures live here too ([`bench`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fog_exec::{
    ContainerWorkload, Executor, ExecutorConfig, Limits, LocalExecutor, TaskId, TaskSpec,
    TaskState, TaskStatus, WasmConfig, WasmEngine, WasmWorkload,
};

use crate::cli::GlobalArgs;
use crate::cmd::Failure;

/// `fog job ...`.
#[derive(Debug, Args)]
pub(crate) struct JobArgs {
    #[command(flatten)]
    pub(crate) node: crate::cmd::job_api::NodeSelect,
    #[command(subcommand)]
    pub(crate) command: JobCommand,
}

/// The `fog job` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Run one task on this machine in a sandbox and print its output
    Run(RunArgs),
    /// Submit a job to the network through a running node
    Submit(crate::cmd::job_api::SubmitArgs),
    /// Show a job's state (--wait: until it ends)
    Status(crate::cmd::job_api::StatusArgs),
    /// Print a verified job's output
    Logs(crate::cmd::job_api::IdArgs),
    /// Cancel a job
    Cancel(crate::cmd::job_api::IdArgs),
    /// List the jobs submitted at a node
    List,
}

/// `fog job run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// WASI preview 1 module to run (`.wasm` binary or `.wat` text).
    #[arg(long, value_name = "FILE", required_unless_present = "image")]
    pub(crate) wasm: Option<PathBuf>,
    /// Fuel budget (about one unit per WASM instruction).
    #[arg(long, value_name = "N", requires = "wasm")]
    pub(crate) fuel: Option<u64>,
    /// Memory limit in MiB.
    #[arg(long, value_name = "MB")]
    pub(crate) memory: Option<u64>,
    /// Wall-clock timeout in seconds.
    #[arg(long, value_name = "S")]
    pub(crate) timeout: Option<f64>,
    /// Container image tarball (`docker save` format) to load the image from.
    #[arg(long, value_name = "FILE", requires = "image", conflicts_with = "wasm")]
    pub(crate) image_tar: Option<PathBuf>,
    /// Container image to run (Docker).
    #[arg(long, value_name = "NAME", conflicts_with = "wasm")]
    pub(crate) image: Option<String>,
    /// Executor data directory (task store, module cache); a fresh
    /// temporary one, removed afterwards, when not given.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Arguments for the module, or the container command.
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,
}

/// Runs `fog job ...`.
pub(crate) fn run(args: JobArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    use crate::cmd::job_api;
    match args.command {
        JobCommand::Run(run_args) => job_run(&run_args, global),
        JobCommand::Submit(a) => job_api::submit(&a, &args.node, global),
        JobCommand::Status(a) => job_api::status(&a, &args.node, global),
        JobCommand::Logs(a) => job_api::logs(&a, &args.node, global),
        JobCommand::Cancel(a) => job_api::cancel(&a, &args.node, global),
        JobCommand::List => job_api::list(&args.node, global),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn read_module(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path.extension().is_some_and(|e| e == "wat") {
        return wat::parse_bytes(&bytes)
            .map(std::borrow::Cow::into_owned)
            .with_context(|| format!("parsing {}", path.display()));
    }
    Ok(bytes)
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn limits(args: &RunArgs) -> anyhow::Result<Limits> {
    let mut limits = Limits::default();
    if let Some(fuel) = args.fuel {
        limits = limits.with_fuel(Some(fuel));
    }
    if let Some(mb) = args.memory {
        if mb == 0 {
            bail!("--memory must be at least 1 MiB");
        }
        limits = limits.with_memory_bytes(mb.saturating_mul(1 << 20));
    }
    if let Some(s) = args.timeout {
        if !(s.is_finite() && s > 0.0) {
            bail!("--timeout must be a positive number of seconds");
        }
        limits = limits.with_timeout(Duration::from_secs_f64(s.min(1e9)));
    }
    Ok(limits)
}

fn job_run(args: &RunArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let limits = limits(args)?;
    let workload = if let Some(path) = &args.wasm {
        fog_exec::Workload::Wasm(WasmWorkload::new(read_module(path)?).args(args.args.clone()))
    } else {
        let image = args
            .image
            .clone()
            .context("--wasm or --image is required")?;
        let mut c = ContainerWorkload::new(image).cmd(args.args.clone());
        if let Some(tar) = &args.image_tar {
            c = c.image_tar(tar);
        }
        fog_exec::Workload::Container(c)
    };
    let temp;
    let data_dir = if let Some(dir) = &args.data_dir {
        dir.clone()
    } else {
        temp = TempDir::new("fog-job")?;
        temp.0.clone()
    };
    let id = TaskId::new(format!(
        "run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ))?;
    let is_container = matches!(workload, fog_exec::Workload::Container(_));
    let status = runtime()?.block_on(async {
        let config = ExecutorConfig::new(&data_dir).with_docker(is_container);
        let (exec, _) = LocalExecutor::open(config).await?;
        if is_container && !exec.has_docker() {
            bail!("no docker daemon answered (is /var/run/docker.sock reachable?)");
        }
        exec.submit(TaskSpec::new(id.clone(), workload).with_limits(limits))
            .await?;
        Ok::<_, anyhow::Error>(exec.wait(&id).await?)
    })?;
    report(&status, global.json)
}

fn report(status: &TaskStatus, json: bool) -> anyhow::Result<()> {
    let result = status.result.as_ref();
    let code = match result {
        Some(r) if r.succeeded() => 0,
        Some(r) => r
            .exit_code
            .filter(|c| *c != 0)
            .map_or(1, |c| u8::try_from(c.clamp(1, 255)).unwrap_or(1)),
        None => 1,
    };
    if json {
        let doc = serde_json::json!({
            "id": status.id.as_str(),
            "state": status.state.as_str(),
            "attempt": status.attempt,
            "exit_code": result.and_then(|r| r.exit_code),
            "failure": result.and_then(|r| r.failure.as_ref()).map(ToString::to_string),
            "stdout": result.map(|r| String::from_utf8_lossy(&r.output.stdout).into_owned()),
            "stderr": result.map(|r| String::from_utf8_lossy(&r.output.stderr).into_owned()),
            "stdout_truncated": result.is_some_and(|r| r.output.stdout_truncated),
            "stderr_truncated": result.is_some_and(|r| r.output.stderr_truncated),
            "fuel_consumed": result.map(|r| r.fuel_consumed),
            "output_hash": result.map(|r| r.output_hash.clone()),
            "wall_micros": result.map(|r| r.wall_micros),
        });
        let mut out = std::io::stdout().lock();
        writeln!(out, "{doc}")?;
        out.flush()?;
        if code != 0 {
            // The document above is the one answer; only the exit code remains.
            std::process::exit(i32::from(code));
        }
        return Ok(());
    }
    if let Some(r) = result {
        std::io::stdout().lock().write_all(&r.output.stdout)?;
        std::io::stderr().lock().write_all(&r.output.stderr)?;
    }
    if code == 0 {
        return Ok(());
    }
    let why = result
        .and_then(|r| r.failure.as_ref())
        .map_or_else(|| status.state.to_string(), ToString::to_string);
    Err(Failure {
        code,
        kind: "task_failed",
        message: format!("task {} {}: {why}", status.id, status.state),
    }
    .into())
}

/// The trivial benchmark module: writes `hi\n` to stdout.
const TRIVIAL_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hi\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 3))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

/// `fog bench exec`: WASM start latency (p50/p99 of a new store, instantiate
/// and run with captured stdout), trivial tasks/s in the engine alone and
/// through the executor with every transition persisted, and the Docker
/// backend's time per container next to `docker run --rm` of the same image.
/// Prints one JSON document with `--json`, a table otherwise.
pub(crate) fn bench(global: &GlobalArgs) -> anyhow::Result<()> {
    let module = wat::parse_str(TRIVIAL_WAT).context("benchmark module")?;
    let rt = runtime()?;
    let temp = TempDir::new("fog-bench-exec")?;
    let workers = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);

    let (p50, p99, engine_rate) = rt.block_on(async {
        let engine = WasmEngine::new(WasmConfig::default())?;
        let workload = WasmWorkload::new(module.clone());
        let limits = Limits::default();
        for _ in 0..200 {
            engine.run(&workload, &limits).await?;
        }
        let mut samples = Vec::with_capacity(5000);
        for _ in 0..5000 {
            let t = Instant::now();
            let r = engine.run(&workload, &limits).await?;
            samples.push(t.elapsed());
            anyhow::ensure!(r.succeeded(), "benchmark task failed: {r:?}");
        }
        samples.sort();
        let total = 40_000usize;
        let per = total / workers;
        let t = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..workers {
            let engine = engine.clone();
            let workload = workload.clone();
            let limits = limits.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..per {
                    engine.run(&workload, &limits).await?;
                }
                Ok::<_, fog_exec::ExecError>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let rate = (per * workers) as f64 / t.elapsed().as_secs_f64();
        Ok::<_, anyhow::Error>((percentile(&samples, 0.5), percentile(&samples, 0.99), rate))
    })?;

    let executor_rate = rt.block_on(async {
        let (exec, _) = LocalExecutor::open(
            ExecutorConfig::new(temp.0.join("exec"))
                .with_docker(false)
                .with_max_running(64),
        )
        .await?;
        let n = 20_000usize;
        let t = Instant::now();
        // Submissions arrive concurrently (at most 256 in flight), as they do
        // on a node serving many clients; each waits for its Pending commit.
        let mut ids = Vec::with_capacity(n);
        let mut inflight = tokio::task::JoinSet::new();
        let trivial = WasmWorkload::new(module.clone());
        for i in 0..n {
            let id = TaskId::new(format!("bench-{i}"))?;
            ids.push(id.clone());
            if inflight.len() >= 256
                && let Some(done) = inflight.join_next().await
            {
                done??;
            }
            let exec = exec.clone();
            let workload = trivial.clone();
            inflight.spawn(async move { exec.submit(TaskSpec::wasm(id, workload)).await });
        }
        while let Some(done) = inflight.join_next().await {
            done??;
        }
        for id in &ids {
            let s = exec.wait(id).await?;
            anyhow::ensure!(s.state == TaskState::Succeeded, "benchmark task {id} {s:?}");
        }
        Ok::<_, anyhow::Error>(n as f64 / t.elapsed().as_secs_f64())
    })?;

    let docker = rt.block_on(bench_docker(&temp.0))?;

    let doc = serde_json::json!({
        "start_p50_us": p50,
        "start_p99_us": p99,
        "engine_tasks_per_s": engine_rate,
        "executor_tasks_per_s": executor_rate,
        "docker_ms_per_container": docker.map(|d| d.0),
        "docker_run_ms_per_container": docker.map(|d| d.1),
        "workers": workers,
    });
    if global.json {
        println!("{doc}");
    } else {
        println!("wasm start p50        {p50:>10.1} us   (target <= 50)");
        println!("wasm start p99        {p99:>10.1} us   (target <= 250)");
        println!("engine tasks/s        {engine_rate:>10.0}      (target >= 40000)");
        println!("executor tasks/s      {executor_rate:>10.0}      (target >= 5000)");
        match docker {
            Some((ours, theirs)) => {
                println!("docker ms/container   {ours:>10.1}");
                println!("docker run --rm ms    {theirs:>10.1}      (target: ours <= 1.0x)");
            }
            None => println!("docker                 skipped: no docker daemon or /bin/busybox"),
        }
    }
    Ok(())
}

const BENCH_IMAGE: &str = "fog-bench-busybox:1";

async fn bench_docker(dir: &Path) -> anyhow::Result<Option<(f64, f64)>> {
    let Ok(busybox) = std::fs::read("/bin/busybox") else {
        return Ok(None);
    };
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.join("docker"))).await?;
    if !exec.has_docker() {
        return Ok(None);
    }
    let tar = dir.join("busybox.tar");
    std::fs::write(
        &tar,
        fog_exec::image::busybox_image_tar(BENCH_IMAGE, &busybox)?,
    )?;
    let runs = 5;
    let mut ours = Duration::ZERO;
    for i in 0..=runs {
        let id = TaskId::new(format!("docker-bench-{i}"))?;
        let t = Instant::now();
        exec.submit(TaskSpec::container(
            id.clone(),
            ContainerWorkload::new(BENCH_IMAGE)
                .image_tar(&tar)
                .cmd(["/bin/true"]),
        ))
        .await?;
        let s = exec.wait(&id).await?;
        anyhow::ensure!(s.state == TaskState::Succeeded, "docker bench task {s:?}");
        // The first run loads the image; it is not counted.
        if i > 0 {
            ours += t.elapsed();
        }
    }
    let mut theirs = Duration::ZERO;
    for _ in 0..runs {
        let t = Instant::now();
        let out = std::process::Command::new("docker")
            .args(["run", "--rm", "--network", "none", BENCH_IMAGE, "/bin/true"])
            .output()
            .context("running `docker run`")?;
        anyhow::ensure!(out.status.success(), "docker run --rm failed");
        theirs += t.elapsed();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(runs);
    Ok(Some((ms(ours), ms(theirs))))
}
