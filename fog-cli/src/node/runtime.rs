//! The node runtime: the only place where the layers meet.
//!
//! - fog-p2p carries heartbeats (GossipSub) and work messages (direct
//!   messages with store-and-forward);
//! - fog-sched places replicas on the nodes the heartbeats describe, with
//!   reputation fed by verification outcomes, and plans preemptions;
//! - fog-exec runs the tasks this node takes, and [`HarvestWork`]
//!   implements fog-harvest's `WorkControl` with it;
//! - fog-harvest's controller decides whether this node takes work;
//! - fog-dao pays verified work and slashes on evidence (on the node that
//!   holds the ledger), and its parameters set the verification quorum.
//!
//! Every decision the runtime takes is a layer's answer; the runtime only
//! moves messages and records between them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use base64::Engine as _;
use fog_dao::{AccountId, Body, EarningRule, Ledger, ParamKey, SignedResult, SigningKey};
use fog_exec::{
    ContainerWorkload, Executor, ExecutorConfig, Limits, LocalExecutor, StatusEvent, StreamItem,
    TaskId, TaskSpec, TaskState, WasmWorkload,
};
use fog_harvest::{Conditions, Controller, LinuxSensors, Policy, Sensors, WorkControl, WorkError};
use fog_p2p::{Event, PeerId, Priority};
use fog_sched::model::{
    Cluster, GangId, Job, JobId, Node as SchedNode, NodeId, Resources, SlaClass,
};
use fog_sched::placement::{Scheduler, Strategy};
use fog_sched::preempt::{RunningTask, plan_preemption};
use fog_sched::reputation::{ReputationConfig, ReputationStore, TaskOutcome};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::api::{
    DaoView, HarvestView, JobCounts, JobView, MixView, NodeInfo, PeerView, ProposalView,
    StatusSnapshot, SubmitRequest,
};
use super::checkpoint;
use super::config::NodeConfig;
use super::metrics::{Metrics, label};
use super::mixnet::{MixMessage, MixPlane, MixPlaneConfig, ReplyHandle};
use super::store::{
    ExecutionRecord, JobRecord, JobState, ReplicaRecord, ReplicaState, ResultRecord, Store,
};
use super::wire::{
    self, HEARTBEAT_TOPIC, Heartbeat, Message, RunTask, Settlement, ShippedCheckpoint, TaskReport,
};
use prometheus_client::metrics::counter::Counter;

/// Largest stdout an executor reports (the whole output is what replicas
/// compare; this is what the submitter shows).
const MAX_REPORTED_STDOUT: usize = 4 * 1024;
/// Largest stderr an executor reports.
const MAX_REPORTED_STDERR: usize = 1024;
/// Reply blocks a task carries through the mixnet for its report.
const REPORT_REPLY_BLOCKS: usize = 4;
/// Reply handles kept for tasks running here (one per task).
const MAX_REPLY_HANDLES: usize = 10_000;
/// Jobs that may wait for placement at once; a submission beyond is refused.
pub(crate) const MAX_PENDING_JOBS: usize = 10_000;
/// Final jobs kept in memory (all stay in the database).
const MAX_FINAL_IN_MEMORY: usize = 2_000;
/// Settlements waiting for the ledger.
const MAX_SETTLEMENTS: usize = 10_000;
/// A job no node could take for this long fails.
const PLACEMENT_PATIENCE: Duration = Duration::from_mins(5);
/// Replicas a job may add when its replicas disagree without a quorum.
const EXTRA_REPLICAS: u32 = 2;
/// Failed replicas a job may have beyond the replicas it wants before it
/// fails: a task that no executor can start must not be retried forever.
const FAILURE_BUDGET: u32 = 4;
/// How an executor's refusal under its harvest policy begins.
const HARVEST_REFUSAL: &str = "harvest policy: ";
/// How long a work message waits in the store-and-forward queue.
const MESSAGE_TTL: Duration = Duration::from_hours(1);
/// Samples kept for sparklines.
const HISTORY: usize = 120;

/// Harvest states, for the one-hot gauge.
const HARVEST_STATES: [&str; 5] = [
    "ineligible",
    "eligible",
    "harvesting",
    "throttled",
    "suspended",
];
/// Job states, for the gauge family.
const JOB_STATES: [&str; 5] = ["pending", "running", "verified", "failed", "cancelled"];

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fog-sched node id for a peer: the first 8 bytes of SHA-256(peer id).
fn node_id(peer: &str) -> NodeId {
    let digest = Sha256::digest(peer.as_bytes());
    NodeId::new(u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")))
}

/// A fog-sched job id for a task id.
fn job_id(task: &str) -> JobId {
    let digest = Sha256::digest(task.as_bytes());
    JobId::new(u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")))
}

/// The 32-byte task id the ledger signs over.
fn task_digest(task: &str) -> [u8; 32] {
    Sha256::digest(task.as_bytes()).into()
}

/// The 32-byte digest of a claim (output hash and fuel).
fn claim_digest(output_hash: &str, fuel: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fog/claim/1");
    h.update(output_hash.as_bytes());
    h.update(fuel.to_le_bytes());
    h.finalize().into()
}

fn parse_class(text: Option<&str>) -> anyhow::Result<SlaClass> {
    match text.unwrap_or("B").to_ascii_uppercase().as_str() {
        "S" => Ok(SlaClass::S),
        "A" => Ok(SlaClass::A),
        "B" => Ok(SlaClass::B),
        other => bail!("unknown SLA class {other:?} (S, A or B)"),
    }
}

/// Privacy levels by name, with their fog-sched and fog-mix values.
fn parse_privacy(
    text: Option<&str>,
) -> anyhow::Result<(fog_sched::model::PrivacyLevel, fog_mix::PrivacyLevel)> {
    use fog_sched::model::PrivacyLevel as S;
    Ok(
        match text.unwrap_or("PUBLIC").to_ascii_uppercase().as_str() {
            "PUBLIC" => (S::Public, fog_mix::PrivacyLevel::Public),
            "PRIVATE" => (S::Private, fog_mix::PrivacyLevel::Private),
            "CONFIDENTIAL" => (S::Confidential, fog_mix::PrivacyLevel::Confidential),
            "SECRET" => (S::Secret, fog_mix::PrivacyLevel::Secret),
            other => {
                bail!("unknown privacy level {other:?} (PUBLIC, PRIVATE, CONFIDENTIAL or SECRET)")
            }
        },
    )
}

/// Checks a submission and normalises it; returns the module bytes.
pub(crate) fn validate_submission(request: &mut SubmitRequest) -> anyhow::Result<Option<Vec<u8>>> {
    parse_class(request.class.as_deref())?;
    parse_privacy(request.privacy.as_deref())?;
    let module = match (&request.wasm_b64, &request.image) {
        (Some(b64), None) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .context("wasm_b64 is not valid base64")?;
            if bytes.len() > wire::MAX_MESSAGE - 64 * 1024 {
                bail!(
                    "the module is {} bytes; at most {} fit a work message",
                    bytes.len(),
                    wire::MAX_MESSAGE - 64 * 1024
                );
            }
            if !bytes.starts_with(b"\0asm") {
                bail!("wasm_b64 does not hold a WASM binary module");
            }
            Some(bytes)
        }
        (None, Some(_)) => None,
        (Some(_), Some(_)) => bail!("give either wasm_b64 or image, not both"),
        (None, None) => bail!("a job needs wasm_b64 or image"),
    };
    let replicas = request.replicas.unwrap_or(1);
    if !(1..=7).contains(&replicas) {
        bail!("replicas must be 1 to 7, got {replicas}");
    }
    if request.gang.is_some() != request.gang_size.is_some() {
        bail!("gang and gang_size go together");
    }
    if let Some(size) = request.gang_size
        && !(1..=64).contains(&size)
    {
        bail!("gang_size must be 1 to 64, got {size}");
    }
    if let Some(t) = request.timeout_s
        && !(t.is_finite() && t > 0.0)
    {
        bail!("timeout_s must be a positive number");
    }
    if request.name.len() > 200 || request.args.len() > 256 {
        bail!("name or args too long");
    }
    Ok(module)
}

/// What the node knows about another node.
#[derive(Debug, Clone)]
struct Member {
    heartbeat: Heartbeat,
    last_seen: Instant,
    alive: bool,
}

/// A task this node runs for someone else, while it runs.
#[derive(Debug, Clone)]
struct Running {
    cpu_millis: u32,
    memory_mb: u32,
    /// Where its report (and checkpoints) go over fog-p2p; `None` when it
    /// came through the mixnet.
    reply_peer: Option<String>,
    /// When its last checkpoint was shipped.
    shipped_at: Option<Instant>,
    /// A checkpoint waits for reply blocks (the task's were used up): the
    /// next refill ships it.
    unshipped: bool,
}

/// Everything behind the runtime's one lock.
struct State {
    store: Store,
    jobs: BTreeMap<String, JobRecord>,
    members: HashMap<String, Member>,
    running: HashMap<String, Running>,
    reputation: ReputationStore,
    harvest: HarvestView,
    accepting: bool,
    counts: JobCounts,
    quorum_param: Option<u64>,
    settlements: VecDeque<Settlement>,
    dao: DaoView,
    pps_history: VecDeque<u64>,
    latency_history: VecDeque<u64>,
    last_mix: super::mixnet::MixPlaneStats,
    descriptors: HashMap<String, Vec<u8>>,
    replies: HashMap<String, ReplyHandle>,
    /// Reply blocks for the next checkpoint of tasks that came through the
    /// mixnet (at most [`MAX_REPLY_HANDLES`]).
    checkpoint_replies: HashMap<String, ReplyHandle>,
    /// When this node last sent checkpoint reply blocks to the executor of
    /// each of its running mix-routed replicas (see `refill_loop`).
    refilled: HashMap<String, Instant>,
    next_job: u64,
    seq: u64,
    round_robin: u64,
}

/// The shared core of a running node.
pub(crate) struct Runtime {
    config: NodeConfig,
    started: Instant,
    p2p: fog_p2p::Node,
    exec: Option<Arc<LocalExecutor>>,
    key: SigningKey,
    state: Mutex<State>,
    /// The metrics registry.
    pub(crate) metrics: Metrics,
    wake: Notify,
    shutdown: watch::Sender<bool>,
    listen: Mutex<Vec<String>>,
    /// Messages this node sends to itself (bounded; senders wait when full).
    local: tokio::sync::mpsc::Sender<Message>,
    local_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Message>>>,
    /// The mix plane (a mix node and a client), when enabled.
    mix: Option<Arc<MixPlane>>,
    mix_rx: Mutex<Option<tokio::sync::mpsc::Receiver<MixMessage>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// The node's secret seed: 32 random bytes in `<data>/node.seed` (0600),
/// from which its libp2p, ledger and mix keys are derived.
pub(crate) fn load_or_create_seed(dir: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    let path = dir.join("node.seed");
    match std::fs::read(&path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte seed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            super::store::write_atomic(&path, &seed)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            Ok(seed)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Derives a 32-byte key for `purpose` from the node seed.
pub(crate) fn derive(seed: &[u8; 32], purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fog/node-key/1/");
    h.update(purpose.as_bytes());
    h.update(seed);
    h.finalize().into()
}

/// The libp2p peer id of the node with this seed.
pub(crate) fn peer_id_of(seed: &[u8; 32]) -> anyhow::Result<PeerId> {
    let mut bytes = derive(seed, "p2p");
    let key =
        fog_p2p::Keypair::ed25519_from_bytes(&mut bytes).context("deriving the libp2p key")?;
    Ok(key.public().to_peer_id())
}

/// The ledger account of the node with this seed.
pub(crate) fn account_of(seed: &[u8; 32]) -> SigningKey {
    SigningKey::from_seed(derive(seed, "dao"))
}

impl Runtime {
    /// Starts every part of the node. The returned receiver turns `true`
    /// when the node is asked to stop.
    pub(crate) async fn start(config: NodeConfig) -> anyhow::Result<Arc<Self>> {
        let dir = config.data_dir.clone();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let seed = load_or_create_seed(&dir)?;
        let key = account_of(&seed);
        super::store::write_atomic(
            &dir.join("node.pid"),
            std::process::id().to_string().as_bytes(),
        )?;

        // fog-p2p.
        let mut p2p_config = if config.local {
            fog_p2p::Config::local()
        } else {
            fog_p2p::Config::new()
        };
        p2p_config.listen = config
            .listen
            .iter()
            .map(|a| a.parse().with_context(|| format!("listen address {a:?}")))
            .collect::<anyhow::Result<_>>()?;
        p2p_config.bootstrap = config
            .bootstrap
            .iter()
            .map(|a| {
                a.parse()
                    .with_context(|| format!("bootstrap address {a:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        p2p_config.network.clone_from(&config.network);
        p2p_config.queue_path = Some(dir.join("p2p-queue.db"));
        p2p_config.gossip_max_message = 256 * 1024;
        if config.local {
            p2p_config.quic = false;
        }
        let mut p2p_seed = derive(&seed, "p2p");
        let p2p_key = fog_p2p::Keypair::ed25519_from_bytes(&mut p2p_seed)
            .context("deriving the libp2p key")?;
        let p2p = fog_p2p::Node::start_with_key(p2p_config, p2p_key)
            .await
            .context("starting the libp2p node")?;
        p2p.subscribe(HEARTBEAT_TOPIC).await?;

        // fog-mix.
        let (mix, mix_rx) = if config.mix {
            let (plane, rx) = MixPlane::start(MixPlaneConfig {
                data_dir: dir.join("mix"),
                identity_seed: derive(&seed, "mix"),
                listen: config.mix_listen,
                advertise: config.mix_advertise,
                family: config.name.clone(),
                mean_delay: Duration::from_secs_f64(config.mix_delay_ms / 1000.0),
                cover: config.mix_cover,
                latency_stamps: config.local,
            })
            .await
            .context("starting the mix plane")?;
            (Some(Arc::new(plane)), Some(rx))
        } else {
            (None, None)
        };

        // fog-exec.
        let exec = if config.exec {
            let mut exec_config = ExecutorConfig::new(dir.join("exec")).with_docker(config.docker);
            if config.max_running > 0 {
                exec_config = exec_config.with_max_running(config.max_running);
            }
            let (exec, recovery) = LocalExecutor::open(exec_config)
                .await
                .context("opening the executor")?;
            tracing::info!(?recovery, "executor recovered");
            Some(Arc::new(exec))
        } else {
            None
        };

        // The registry and reputation.
        let store = Store::open(&dir.join("node.db"))?;
        let mut jobs = BTreeMap::new();
        let mut next_job = 0;
        for job in store.jobs()? {
            next_job += 1;
            jobs.insert(job.id.clone(), job);
        }
        // Replicas this node sent to itself travel through memory only: one
        // that its executor never took was lost in a crash; place it again.
        let me = p2p.peer_id().to_string();
        for job in jobs.values_mut().filter(|j| !j.state.is_final()) {
            let mut changed = false;
            for r in job
                .replicas
                .iter_mut()
                .filter(|r| r.state == ReplicaState::Sent && r.peer == me)
            {
                let known = exec.as_ref().is_some_and(|e| {
                    TaskId::new(r.task.clone()).is_ok_and(|id| e.status(&id).is_ok())
                });
                if !known {
                    r.state = ReplicaState::Dropped;
                    changed = true;
                }
            }
            if changed {
                settle_state(job);
                store.put_job(job)?;
            }
        }
        let mut counts = JobCounts::default();
        for job in jobs.values() {
            count_job(&mut counts, job, 1);
        }
        counts.preemptions = store.counter("preemptions")?;
        counts.evidence = store.counter("evidence")?;
        counts.executed = store.counter("executed")?;
        let reputation =
            ReputationStore::open(dir.join("reputation.db"), ReputationConfig::default())
                .context("opening the reputation store")?;

        let metrics = Metrics::new();
        metrics
            .info
            .get_or_create(&vec![
                ("name".into(), config.name.clone()),
                ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ])
            .set(1);
        let (shutdown, _) = watch::channel(false);
        let (local, local_rx) = tokio::sync::mpsc::channel(1024);
        let runtime = Arc::new(Self {
            started: Instant::now(),
            p2p,
            exec,
            key,
            state: Mutex::new(State {
                store,
                jobs,
                members: HashMap::new(),
                running: HashMap::new(),
                reputation,
                harvest: HarvestView::default(),
                accepting: false,
                counts,
                quorum_param: None,
                settlements: VecDeque::new(),
                dao: DaoView::default(),
                pps_history: VecDeque::new(),
                latency_history: VecDeque::new(),
                last_mix: super::mixnet::MixPlaneStats::default(),
                descriptors: HashMap::new(),
                replies: HashMap::new(),
                checkpoint_replies: HashMap::new(),
                refilled: HashMap::new(),
                next_job,
                seq: 0,
                round_robin: 0,
            }),
            metrics,
            wake: Notify::new(),
            shutdown,
            listen: Mutex::new(Vec::new()),
            local,
            local_rx: Mutex::new(Some(local_rx)),
            mix,
            mix_rx: Mutex::new(mix_rx),
            config,
        });
        runtime.resume_executions()?;
        Ok(runtime)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// This node's configuration.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Asks every loop to stop.
    pub(crate) fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// A receiver that turns `true` at shutdown.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Runs the node's loops until shutdown, then stops the layers.
    pub(crate) async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(Arc::clone(&self).p2p_loop());
        tasks.spawn(Arc::clone(&self).heartbeat_loop());
        tasks.spawn(Arc::clone(&self).schedule_loop());
        tasks.spawn(Arc::clone(&self).harvest_loop());
        tasks.spawn(Arc::clone(&self).sample_loop());
        tasks.spawn(Arc::clone(&self).mix_loop());
        tasks.spawn(Arc::clone(&self).checkpoint_loop());
        tasks.spawn(Arc::clone(&self).refill_loop());
        if self.config.ledger {
            tasks.spawn(Arc::clone(&self).ledger_loop());
        }
        let mut stop = self.shutdown_signal();
        let _ = stop.wait_for(|s| *s).await;
        tasks.shutdown().await;
        tracing::info!("node stopping");
        Ok(())
    }

    /// Stops fog-p2p (after `run` returned).
    pub(crate) async fn close(self: Arc<Self>) {
        if let Ok(runtime) = Arc::try_unwrap(self) {
            runtime.p2p.shutdown().await;
        } else {
            tracing::debug!("runtime still shared at close; p2p stops on drop");
        }
    }

    // ----- submission and the API's reads -------------------------------------------------

    /// Accepts a job: checks it, stores it (and its module) and wakes the
    /// scheduler. Returns the job id.
    pub(crate) fn submit(&self, mut request: SubmitRequest) -> anyhow::Result<String> {
        let module = validate_submission(&mut request)?;
        let mut state = self.lock();
        let pending = state.jobs.values().filter(|j| !j.state.is_final()).count();
        if pending >= MAX_PENDING_JOBS {
            bail!("the node holds {pending} unfinished jobs; try again later");
        }
        for dep in &request.depends_on {
            if !state.jobs.contains_key(dep) {
                bail!(
                    "unknown dependency {dep:?} (dependencies must be submitted at this node first)"
                );
            }
        }
        state.next_job += 1;
        let id = format!("j-{}-{}", now_ms(), state.next_job);
        let module_hash = match &module {
            Some(bytes) => {
                let hash = hex::encode(Sha256::digest(bytes));
                state.store.put_module(&hash, bytes)?;
                Some(hash)
            }
            None => None,
        };
        request.wasm_b64 = None;
        if request.name.is_empty() {
            request.name.clone_from(&id);
        }
        let job = JobRecord::new(id.clone(), request, module_hash, now_ms());
        state.store.put_job(&job)?;
        count_job(&mut state.counts, &job, 1);
        state.jobs.insert(id.clone(), job);
        drop(state);
        self.metrics.jobs_submitted.inc();
        self.wake.notify_one();
        Ok(id)
    }

    /// Cancels a job: its replicas are told to stop.
    pub(crate) async fn cancel(self: &Arc<Self>, id: &str) -> anyhow::Result<bool> {
        let tasks = {
            let mut state = self.lock();
            let Some(mut job) = state.jobs.get(id).cloned() else {
                return Ok(false);
            };
            if job.state.is_final() {
                bail!("job {id} already ended ({})", job.state.as_str());
            }
            let tasks = cancel_running(&mut job);
            count_job(&mut state.counts, &job, -1);
            job.state = JobState::Cancelled;
            job.finished_ms = Some(now_ms());
            state.store.put_job(&job)?;
            count_job(&mut state.counts, &job, 1);
            state.jobs.insert(job.id.clone(), job);
            tasks
        };
        // Like every work message: through the mixnet when the replica
        // went that way, so a cancel does not name the submitter.
        self.deliver(tasks).await;
        Ok(true)
    }

    /// One job's view.
    pub(crate) fn job(&self, id: &str) -> Option<JobView> {
        let state = self.lock();
        state
            .jobs
            .get(id)
            .map(|j| job_view(j, &state.members, &self.config.name))
    }

    /// Every job's view, newest first (at most `limit`).
    pub(crate) fn jobs(&self, limit: usize) -> Vec<JobView> {
        let state = self.lock();
        state
            .jobs
            .values()
            .rev()
            .take(limit)
            .map(|j| job_view(j, &state.members, &self.config.name))
            .collect()
    }

    /// A verified job's output.
    pub(crate) fn logs(&self, id: &str) -> Option<Result<ResultRecord, String>> {
        let state = self.lock();
        let job = state.jobs.get(id)?;
        Some(match (&job.result, &job.error) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(format!(
                "job {id} has no result yet ({})",
                job.state.as_str()
            )),
        })
    }

    /// The whole status document.
    pub(crate) async fn status(&self) -> StatusSnapshot {
        let stats = self.p2p.stats().await.unwrap_or_default();
        self.metrics.p2p_connected.set(stats.connected_peers as i64);
        self.metrics.p2p_queued.set(stats.queued as i64);
        let listen = self.listen.lock().map(|l| l.clone()).unwrap_or_default();
        let state = self.lock();
        let now = Instant::now();
        let mut peers: Vec<PeerView> = state
            .members
            .iter()
            .map(|(id, m)| PeerView {
                name: m.heartbeat.name.clone(),
                peer_id: id.clone(),
                roles: m.heartbeat.roles.clone(),
                alive: m.alive,
                last_seen_s: now.duration_since(m.last_seen).as_secs(),
                load: if m.heartbeat.cpu_millis == 0 {
                    0.0
                } else {
                    f64::from(m.heartbeat.used_cpu_millis) / f64::from(m.heartbeat.cpu_millis)
                },
                running: m.heartbeat.running,
                reputation: state
                    .reputation
                    .get(node_id(id))
                    .map_or(0.5, |r| r.expected()),
                harvest: m.heartbeat.harvest.clone(),
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        let mut jobs: Vec<JobView> = state
            .jobs
            .values()
            .rev()
            .take(200)
            .map(|j| job_view(j, &state.members, &self.config.name))
            .collect();
        for (task, _) in state.running.iter().take(50) {
            jobs.push(JobView {
                id: task.clone(),
                name: task.clone(),
                kind: "task".into(),
                state: "executing".into(),
                nodes: vec![self.config.name.clone()],
                ..JobView::default()
            });
        }
        StatusSnapshot {
            node: NodeInfo {
                name: self.config.name.clone(),
                peer_id: self.p2p.peer_id().to_string(),
                account: self.key.account().to_hex(),
                version: env!("CARGO_PKG_VERSION").into(),
                uptime_s: self.started.elapsed().as_secs(),
                roles: self.roles(),
                listen,
                min_quorum_signers: state.quorum_param,
            },
            peers,
            jobs,
            counts: state.counts,
            mix: MixView {
                enabled: self.mix.is_some(),
                pps: state.last_mix.pps,
                received: state.last_mix.received,
                forwarded: state.last_mix.forwarded,
                delivered: state.last_mix.delivered,
                cover: state.last_mix.cover,
                dropped: state.last_mix.dropped,
                latency_p50_ms: state.last_mix.latency_p50_ms,
                latency_p99_ms: state.last_mix.latency_p99_ms,
                pps_history: state.pps_history.iter().copied().collect(),
                latency_history: state.latency_history.iter().copied().collect(),
            },
            harvest: state.harvest.clone(),
            dao: state.dao.clone(),
        }
    }

    fn roles(&self) -> Vec<String> {
        let mut roles = Vec::new();
        if self.exec.is_some() {
            roles.push("exec".to_owned());
        }
        if self.config.ledger {
            roles.push("ledger".to_owned());
        }
        if self.mix.is_some() {
            roles.push("mix".to_owned());
        }
        roles
    }

    // ----- fog-p2p: heartbeats and messages ---------------------------------------------

    async fn heartbeat_loop(self: Arc<Self>) {
        // Capability provider records in the DHT, next to the heartbeats.
        if let Some(exec) = &self.exec {
            let mut caps = vec!["exec:wasm"];
            if exec.has_docker() {
                caps.push("exec:docker");
            }
            for cap in caps {
                if let Err(e) = self.p2p.provide(cap).await {
                    tracing::debug!(capability = cap, error = %e, "provider record not stored yet");
                }
            }
        }
        let mut tick = tokio::time::interval(self.config.heartbeat());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Ok(addrs) = self.p2p.listen_addrs().await {
                let peer = self.p2p.peer_id();
                if let Ok(mut listen) = self.listen.lock() {
                    *listen = addrs.iter().map(|a| format!("{a}/p2p/{peer}")).collect();
                }
            }
            let heartbeat = self.heartbeat();
            if let Err(e) = self
                .p2p
                .publish(HEARTBEAT_TOPIC, wire::encode(&heartbeat))
                .await
            {
                // Nobody subscribed yet (a lone node) is the usual reason.
                tracing::debug!(error = %e, "heartbeat not published");
            }
        }
    }

    fn heartbeat(&self) -> Heartbeat {
        let mut state = self.lock();
        state.seq += 1;
        let (used_cpu, used_mem) = state.running.values().fold((0u32, 0u32), |(c, m), r| {
            (c + r.cpu_millis, m + r.memory_mb)
        });
        let mut capabilities = Vec::new();
        if let Some(exec) = &self.exec {
            capabilities.push("exec:wasm".to_owned());
            if exec.has_docker() {
                capabilities.push("exec:docker".to_owned());
            }
        }
        Heartbeat {
            name: self.config.name.clone(),
            account: self.key.account().to_hex(),
            roles: self.roles(),
            capabilities,
            cpu_millis: self.cpu_millis(),
            memory_mb: self.memory_mb(),
            used_cpu_millis: used_cpu,
            used_memory_mb: used_mem,
            running: state.running.len() as u32,
            accepting: state.accepting && self.exec.is_some(),
            harvest: state.harvest.state.clone(),
            mix_address: self.mix.as_ref().map(|m| hex::encode(m.address())),
            mix_descriptor: self.mix.as_ref().map(|m| ByteBuf::from(m.descriptor())),
            seq: state.seq,
            sent_ms: now_ms(),
            quorum: state.quorum_param,
        }
    }

    fn cpu_millis(&self) -> u32 {
        if self.config.cpu_millis > 0 {
            return self.config.cpu_millis;
        }
        std::thread::available_parallelism().map_or(1000, |n| n.get() as u32 * 1000)
    }

    fn memory_mb(&self) -> u32 {
        if self.config.memory_mb > 0 {
            return self.config.memory_mb;
        }
        2048
    }

    async fn p2p_loop(self: Arc<Self>) {
        let mut events = self.p2p.events();
        let mut local = self.local_rx.lock().ok().and_then(|mut l| l.take());
        loop {
            let received = tokio::select! {
                e = events.recv() => e,
                Some(message) = async {
                    match local.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    let me = self.p2p.peer_id();
                    Box::pin(Arc::clone(&self).on_message(me, message)).await;
                    continue;
                }
            };
            let event = match received {
                Ok(e) => e,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(lost = n, "p2p events lagged");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            match event {
                Event::Gossip {
                    topic,
                    source,
                    data,
                    ..
                } if topic == HEARTBEAT_TOPIC => {
                    self.metrics.p2p_gossip_received.inc();
                    let Some(source) = source else { continue };
                    match wire::decode::<Heartbeat>(&data) {
                        Ok(hb) => self.on_heartbeat(source, hb),
                        Err(e) => {
                            tracing::debug!(peer = %source, error = %e, "bad heartbeat");
                            let _ = self.p2p.report_misbehaviour(source).await;
                        }
                    }
                }
                Event::Direct { from, envelope } => {
                    match wire::decode::<Message>(&envelope.payload) {
                        Ok(message) => Box::pin(Arc::clone(&self).on_message(from, message)).await,
                        Err(e) => {
                            tracing::debug!(peer = %from, error = %e, "bad work message");
                            let _ = self.p2p.report_misbehaviour(from).await;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn on_heartbeat(&self, peer: PeerId, heartbeat: Heartbeat) {
        if peer == self.p2p.peer_id() {
            return;
        }
        let mut state = self.lock();
        if heartbeat.roles.iter().any(|r| r == "ledger")
            && let Some(q) = heartbeat.quorum
        {
            state.quorum_param = Some(q);
        }
        let fresh = !state.members.contains_key(&peer.to_string());
        // A node back from missed heartbeats returns to the mix directory
        // now, not at the next sampling tick: placement sees it alive at
        // once, and a replica routed to it must find it there.
        let revived = state
            .members
            .get(&peer.to_string())
            .is_some_and(|m| !m.alive);
        let mut directory_changed = revived;
        if let Some(d) = &heartbeat.mix_descriptor
            && state.descriptors.get(&peer.to_string()).map(Vec::as_slice) != Some(d.as_slice())
        {
            state.descriptors.insert(peer.to_string(), d.to_vec());
            directory_changed = true;
        }
        state.members.insert(
            peer.to_string(),
            Member {
                heartbeat,
                last_seen: Instant::now(),
                alive: true,
            },
        );
        drop(state);
        if directory_changed {
            self.refresh_directory();
        }
        if fresh {
            self.wake.notify_one();
        }
    }

    /// Sends a work message to a peer (queued while it is unreachable).
    async fn send_to(&self, peer: &str, message: &Message) {
        if peer == self.p2p.peer_id().to_string() {
            // To ourselves: no network hop, through the bounded local inbox
            // (waits when full).
            match self.local.try_send(message.clone()) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(m)) => {
                    // The inbox's own consumer may be the sender: wait elsewhere.
                    let tx = self.local.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(m).await;
                    });
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    tracing::debug!("local inbox closed");
                }
            }
            return;
        }
        let Ok(peer_id) = peer.parse::<PeerId>() else {
            tracing::warn!(%peer, "not a peer id");
            return;
        };
        let priority = match message {
            Message::Preempt { .. } | Message::Cancel { .. } => Priority::High,
            _ => Priority::Normal,
        };
        if let Err(e) = self
            .p2p
            .send(peer_id, wire::encode(message), priority, MESSAGE_TTL)
            .await
        {
            tracing::warn!(%peer, error = %e, "work message not sent");
        }
    }

    /// Sends what a round produced; an empty peer means "the ledger node,
    /// which is this one or not known yet": the settlement waits here.
    async fn deliver(self: &Arc<Self>, messages: Vec<(String, Message)>) {
        for (peer, message) in messages {
            if let Some((address, level, task)) = self.mix_route(&peer, &message) {
                let mut message = message;
                let blocks = match &mut message {
                    Message::Run(run) => {
                        run.reply_peer = None;
                        // Blocks for the report, then for checkpoints.
                        REPORT_REPLY_BLOCKS + checkpoint::REPLY_BLOCKS
                    }
                    Message::Refill { .. } => checkpoint::REPLY_BLOCKS,
                    _ => 0,
                };
                let mix = self.mix.clone().expect("a mix route needs the plane");
                if let Err(e) = mix
                    .send(address, level, wire::encode(&message), blocks)
                    .await
                {
                    tracing::warn!(%task, error = %format!("{e:#}"), "not sent through the mixnet");
                    if matches!(message, Message::Run(_)) {
                        // The replica cannot travel at its level: it counts as refused.
                        let report = TaskReport {
                            task,
                            node: String::new(),
                            peer: peer.clone(),
                            refused: Some(format!("mixnet: {e:#}")),
                            interrupted: None,
                            result: None,
                        };
                        Box::pin(Arc::clone(self).on_report(report)).await;
                    }
                }
                continue;
            }
            if peer.is_empty() {
                if let Message::Settle(s) = message {
                    let mut state = self.lock();
                    if state.settlements.len() < MAX_SETTLEMENTS {
                        state.settlements.push_back(*s);
                    } else {
                        tracing::warn!("settlement queue full; one verified job goes unpaid");
                    }
                }
            } else {
                self.send_to(&peer, &message).await;
            }
        }
    }

    /// Where a work message goes through the mixnet: the executor's mix
    /// address, the job's privacy level and the task. `None`: fog-p2p
    /// (messages to this node, settlements, or no mix plane).
    fn mix_route(
        &self,
        peer: &str,
        message: &Message,
    ) -> Option<([u8; 32], fog_mix::PrivacyLevel, String)> {
        self.mix.as_ref()?;
        if peer.is_empty() || peer == self.p2p.peer_id().to_string() {
            return None;
        }
        let task = match message {
            Message::Run(run) => run.task.clone(),
            Message::Cancel { task } | Message::Preempt { task } | Message::Refill { task } => {
                task.clone()
            }
            _ => return None,
        };
        let state = self.lock();
        let address = mix_address(&state.members.get(peer)?.heartbeat)?;
        let privacy = state
            .jobs
            .get(job_of(&task))
            .and_then(|j| j.request.privacy.clone());
        let level =
            parse_privacy(privacy.as_deref()).map_or(fog_mix::PrivacyLevel::Public, |p| p.1);
        Some((address, level, task))
    }

    /// Whether work can reach a node whose heartbeat is `hb`: over fog-p2p
    /// when either side has no mix plane, else only when this plane's
    /// directory holds the node's mix.
    fn mix_reachable(&self, hb: &Heartbeat) -> bool {
        let (Some(mix), Some(_)) = (&self.mix, &hb.mix_address) else {
            return true;
        };
        mix_address(hb).is_some_and(|a| mix.knows(a))
    }

    /// Hands the mix plane every live node's descriptor.
    fn refresh_directory(&self) {
        let Some(mix) = &self.mix else { return };
        let list: Vec<Vec<u8>> = {
            let state = self.lock();
            state
                .descriptors
                .iter()
                .filter(|(peer, _)| state.members.get(*peer).is_some_and(|m| m.alive))
                .map(|(_, d)| d.clone())
                .chain(std::iter::once(mix.descriptor()))
                .collect()
        };
        mix.set_directory(&list);
    }

    async fn mix_loop(self: Arc<Self>) {
        let Some(mut rx) = self.mix_rx.lock().ok().and_then(|mut r| r.take()) else {
            return std::future::pending().await;
        };
        let me = self.p2p.peer_id();
        while let Some(incoming) = rx.recv().await {
            let message = match wire::decode::<Message>(&incoming.body) {
                Ok(m) => m,
                Err(e) => {
                    tracing::debug!(error = %e, "bad work message from the mixnet");
                    continue;
                }
            };
            match message {
                Message::Run(task) => {
                    Box::pin(Arc::clone(&self).on_run(me, *task, incoming.reply)).await;
                }
                Message::Refill { task } => {
                    let Some(blocks) = incoming.reply else {
                        continue;
                    };
                    let waiting = {
                        let mut state = self.lock();
                        let state = &mut *state;
                        match state.running.get_mut(&task) {
                            Some(running) => {
                                let waiting = std::mem::take(&mut running.unshipped);
                                keep_checkpoint_blocks(state, &task, blocks);
                                waiting
                            }
                            None => false,
                        }
                    };
                    if waiting
                        && let Some(exec) = &self.exec
                        && let Ok(id) = TaskId::new(task)
                    {
                        self.ship_checkpoint(exec, &id, true).await;
                    }
                }
                other => Box::pin(Arc::clone(&self).on_message(me, other)).await,
            }
        }
    }

    async fn on_message(self: Arc<Self>, from: PeerId, message: Message) {
        match message {
            Message::Run(task) => self.on_run(from, *task, None).await,
            Message::Report(report) => self.on_report(*report).await,
            Message::Cancel { task } => {
                if let Some(exec) = &self.exec
                    && let Ok(id) = TaskId::new(task)
                {
                    let _ = exec.cancel(&id).await;
                }
            }
            Message::Preempt { task } => {
                if let Some(exec) = &self.exec
                    && let Ok(id) = TaskId::new(task)
                {
                    let _ = exec.checkpoint_now(&id);
                    if let Err(e) = exec.preempt(&id).await {
                        tracing::debug!(error = %e, "preempt");
                    }
                }
            }
            Message::Checkpoint(shipped) => self.on_checkpoint(*shipped).await,
            // Only meaningful with reply blocks: see `mix_loop`.
            Message::Refill { .. } => {}
            Message::Settle(settlement) => {
                if self.config.ledger {
                    let mut state = self.lock();
                    if state.settlements.len() < MAX_SETTLEMENTS {
                        state.settlements.push_back(*settlement);
                    } else {
                        tracing::warn!("settlement queue full; dropping one");
                    }
                }
            }
        }
    }

    // ----- the executor side -------------------------------------------------------------

    async fn on_run(self: Arc<Self>, from: PeerId, task: RunTask, handle: Option<ReplyHandle>) {
        // Through the mixnet the answer goes by reply block, and the
        // sender is unknown; over fog-p2p it goes to the sender.
        let mut handle = handle;
        let reply_peer = if handle.is_some() {
            None
        } else {
            task.reply_peer.clone().or_else(|| Some(from.to_string()))
        };
        let refuse = |why: String| TaskReport {
            task: task.task.clone(),
            node: self.config.name.clone(),
            peer: self.p2p.peer_id().to_string(),
            refused: Some(why),
            interrupted: None,
            result: None,
        };
        let Some(exec) = self.exec.clone() else {
            self.answer(
                reply_peer,
                handle.take(),
                refuse("this node does not run work".into()),
            )
            .await;
            return;
        };
        let accepting = {
            let state = self.lock();
            if state.running.contains_key(&task.task) {
                return; // a duplicate delivery
            }
            state
                .accepting
                .then_some(())
                .ok_or_else(|| state.harvest.reason.clone())
        };
        if let Err(reason) = accepting {
            self.answer(
                reply_peer,
                handle.take(),
                refuse(format!("{HARVEST_REFUSAL}{reason}")),
            )
            .await;
            return;
        }
        let spec = match task_spec(&task) {
            Ok(spec) => spec,
            Err(e) => {
                self.answer(reply_peer, handle.take(), refuse(format!("{e:#}")))
                    .await;
                return;
            }
        };
        let id = spec.id().clone();
        if let Err(e) = exec.submit(spec).await {
            self.answer(reply_peer, handle.take(), refuse(format!("executor: {e}")))
                .await;
            return;
        }
        {
            let mut state = self.lock();
            let mut reply_blocks = None;
            if let Some(mut h) = handle.take() {
                // Blocks beyond the report's carry the task's checkpoints.
                let for_checkpoints = h.split_off(REPORT_REPLY_BLOCKS);
                reply_blocks = Some(base64::engine::general_purpose::STANDARD.encode(h.to_bytes()));
                if state.replies.len() < MAX_REPLY_HANDLES {
                    state.replies.insert(task.task.clone(), h);
                } else {
                    tracing::warn!(task = %task.task, "too many reply handles; its report will not travel back");
                }
                if let Some(blocks) = for_checkpoints {
                    keep_checkpoint_blocks(&mut state, &task.task, blocks);
                }
            }
            state.running.insert(
                task.task.clone(),
                Running {
                    cpu_millis: task.cpu_millis,
                    memory_mb: task.memory_mb,
                    reply_peer: reply_peer.clone(),
                    shipped_at: None,
                    unshipped: false,
                },
            );
            let record = ExecutionRecord {
                task: task.task.clone(),
                reply_peer: reply_peer.clone(),
                received_ms: now_ms(),
                reported: false,
                reply_blocks,
            };
            if let Err(e) = state.store.put_execution(&record) {
                tracing::warn!(error = %e, "execution not recorded");
            }
        }
        let lie = !self.config.fault_lie.is_empty() && task.name.contains(&self.config.fault_lie);
        tokio::spawn(self.watch_task(exec, id, reply_peer, lie));
    }

    /// Re-attaches to tasks that were running for others before a restart.
    fn resume_executions(self: &Arc<Self>) -> anyhow::Result<()> {
        let Some(exec) = self.exec.clone() else {
            return Ok(());
        };
        let mut open = self.lock().store.open_executions()?;
        // Reports a node sends itself travel through memory: after a crash,
        // every replica it placed on itself is watched again.
        let me = self.p2p.peer_id().to_string();
        let own: Vec<String> = self
            .lock()
            .jobs
            .values()
            .filter(|j| !j.state.is_final())
            .flat_map(|j| j.replicas.iter())
            .filter(|r| r.state == ReplicaState::Sent && r.peer == me)
            .map(|r| r.task.clone())
            .collect();
        for task in own {
            if !open.iter().any(|e| e.task == task) {
                open.push(ExecutionRecord {
                    task,
                    reply_peer: Some(me.clone()),
                    received_ms: now_ms(),
                    reported: false,
                    reply_blocks: None,
                });
            }
        }
        for record in open {
            let Ok(id) = TaskId::new(record.task.clone()) else {
                continue;
            };
            if exec.status(&id).is_err() {
                continue;
            }
            let handle = record.reply_blocks.as_deref().and_then(|text| {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(anyhow::Error::from)
                    .and_then(|bytes| ReplyHandle::from_bytes(&bytes))
                    .inspect_err(|e| {
                        tracing::warn!(task = %record.task, error = %format!("{e:#}"), "kept reply blocks unreadable; its report will not travel back");
                    })
                    .ok()
            });
            let mut state = self.lock();
            state.running.insert(
                record.task.clone(),
                Running {
                    cpu_millis: 0,
                    memory_mb: 0,
                    reply_peer: record.reply_peer.clone(),
                    shipped_at: None,
                    unshipped: false,
                },
            );
            if let Some(handle) = handle
                && state.replies.len() < MAX_REPLY_HANDLES
            {
                state.replies.insert(record.task.clone(), handle);
            }
            drop(state);
            tokio::spawn(Arc::clone(self).watch_task(exec.clone(), id, record.reply_peer, false));
        }
        Ok(())
    }

    async fn watch_task(
        self: Arc<Self>,
        exec: Arc<LocalExecutor>,
        id: TaskId,
        reply_peer: Option<String>,
        lie: bool,
    ) {
        let status = match exec.wait(&id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "waiting for a task");
                return;
            }
        };
        if status.state == TaskState::Preempted {
            // The replica goes elsewhere: its last checkpoint goes first.
            self.ship_checkpoint(&exec, &id, true).await;
        }
        let mut report = TaskReport {
            task: id.as_str().to_owned(),
            node: self.config.name.clone(),
            peer: self.p2p.peer_id().to_string(),
            refused: None,
            interrupted: None,
            result: None,
        };
        match status.state {
            TaskState::Cancelled => {}
            TaskState::Preempted | TaskState::Lost => {
                report.interrupted = Some(status.state.to_string());
            }
            _ => {
                if let Some(result) = status.result {
                    self.metrics
                        .task_duration
                        .observe(result.wall_micros as f64 / 1e6);
                    report.result = Some(self.sign_result(id.as_str(), &result, lie));
                } else {
                    report.interrupted = Some(format!("ended {} without a result", status.state));
                }
            }
        }
        {
            let mut state = self.lock();
            state.running.remove(id.as_str());
            state.checkpoint_replies.remove(id.as_str());
            let record = ExecutionRecord {
                task: id.as_str().to_owned(),
                reply_peer: reply_peer.clone(),
                received_ms: 0,
                reported: true,
                reply_blocks: None,
            };
            let _ = state.store.put_execution(&record);
            if report.result.is_some() {
                state.counts.executed = state
                    .store
                    .bump("executed", 1)
                    .unwrap_or(state.counts.executed + 1);
            }
        }
        if report.result.is_some() {
            self.metrics.tasks_executed.inc();
        }
        let handle = self.lock().replies.remove(id.as_str());
        if status.state != TaskState::Cancelled {
            self.answer(reply_peer, handle, report).await;
        }
    }

    /// Ships the checkpoints of the tasks this node runs for other nodes
    /// to their submitters (see [`checkpoint`]).
    async fn checkpoint_loop(self: Arc<Self>) {
        let Some(exec) = self.exec.clone() else {
            return std::future::pending().await;
        };
        let mut events = exec.subscribe();
        while let Some(item) = events.next().await {
            if let StreamItem::Event(StatusEvent::Checkpointed { id, .. }) = item {
                self.ship_checkpoint(&exec, &id, false).await;
            }
        }
    }

    /// Ships `id`'s latest checkpoint to its submitter when it runs for
    /// another node, there is a way back (fog-p2p, or reply blocks it fits)
    /// and, unless `now`, none was shipped within
    /// [`checkpoint::SHIP_INTERVAL`].
    async fn ship_checkpoint(&self, exec: &LocalExecutor, id: &TaskId, now: bool) {
        enum Way {
            Peer(String),
            Blocks(ReplyHandle),
        }
        let me = self.p2p.peer_id().to_string();
        // Most events find the task throttled or its blocks used up: those
        // are answered before the checkpoint's bytes are read.
        {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(r) = state.running.get_mut(id.as_str()) else {
                return;
            };
            let throttled = !now
                && r.shipped_at
                    .is_some_and(|t| t.elapsed() < checkpoint::SHIP_INTERVAL);
            let way_back = if let Some(peer) = &r.reply_peer {
                *peer != me
            } else {
                let held = state.checkpoint_replies.contains_key(id.as_str());
                // Used up: the next refill ships it.
                r.unshipped |= !held;
                held
            };
            if throttled || !way_back {
                return;
            }
        }
        let (seq, data) = match exec.checkpoint(id) {
            Ok(Some(latest)) => latest,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "reading a checkpoint to ship");
                return;
            }
        };
        let way = {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(running) = state.running.get_mut(id.as_str()) else {
                return;
            };
            if !now
                && running
                    .shipped_at
                    .is_some_and(|t| t.elapsed() < checkpoint::SHIP_INTERVAL)
            {
                return;
            }
            let way = match &running.reply_peer {
                // This node submitted it: its checkpoints are here already.
                Some(peer) if *peer == me => return,
                Some(peer) => {
                    (data.len() <= checkpoint::MAX_SHIPPED).then(|| Way::Peer(peer.clone()))
                }
                None => match state.checkpoint_replies.remove(id.as_str()) {
                    Some(mut blocks) if data.len() + checkpoint::OVERHEAD <= blocks.capacity() => {
                        // A shipment takes only the blocks it needs: should
                        // it be lost, the next still travels on the rest.
                        let needed = blocks.blocks_for(data.len() + checkpoint::OVERHEAD);
                        if let Some(rest) = blocks.split_off(needed) {
                            state
                                .checkpoint_replies
                                .insert(id.as_str().to_owned(), rest);
                        }
                        Some(Way::Blocks(blocks))
                    }
                    Some(blocks) => {
                        state
                            .checkpoint_replies
                            .insert(id.as_str().to_owned(), blocks);
                        None
                    }
                    // Used up; the submitter's refill is on its way.
                    None => return,
                },
            };
            let Some(way) = way else {
                tracing::debug!(task = %id, bytes = data.len(), "checkpoint too large to ship; it stays here");
                return;
            };
            running.shipped_at = Some(Instant::now());
            way
        };
        let message = Message::Checkpoint(Box::new(checkpoint::sign(
            &self.key,
            id.as_str(),
            seq,
            data,
        )));
        match way {
            Way::Peer(peer) => self.send_to(&peer, &message).await,
            Way::Blocks(blocks) => {
                let Some(mix) = &self.mix else { return };
                if let Err(e) = mix.reply(blocks, wire::encode(&message)).await {
                    tracing::warn!(task = %id, error = %format!("{e:#}"), "checkpoint not shipped");
                    return;
                }
            }
        }
        tracing::debug!(task = %id, seq, "checkpoint shipped");
        self.metrics
            .checkpoints
            .get_or_create(&label("event", "shipped"))
            .inc();
    }

    fn sign_result(&self, task: &str, result: &fog_exec::TaskResult, lie: bool) -> ResultRecord {
        let mut output_hash = result.output_hash.clone();
        let mut stdout = result.output.stdout.clone();
        if lie {
            // The test fault: a node that claims a different output.
            output_hash = hex::encode(Sha256::digest(format!("lie:{output_hash}")));
            stdout = b"a lie\n".to_vec();
        }
        stdout.truncate(MAX_REPORTED_STDOUT);
        let mut stderr = result.output.stderr.clone();
        stderr.truncate(MAX_REPORTED_STDERR);
        let digest = claim_digest(&output_hash, result.fuel_consumed);
        // Signed over the job, which every replica shares, so that agreeing
        // replicas attest the same statement (the ledger's evidence needs it).
        let signed = self
            .key
            .sign_task_result(&task_digest(job_of(task)), &digest);
        ResultRecord {
            exit_code: result.exit_code,
            failure: result.failure.as_ref().map(ToString::to_string),
            output_hash,
            fuel: result.fuel_consumed,
            stdout,
            stderr,
            account: self.key.account().to_hex(),
            signature: hex::encode(signed.signature),
        }
    }

    /// Answers a task: by its reply blocks when it came through the
    /// mixnet, else over fog-p2p.
    async fn answer(
        &self,
        reply_peer: Option<String>,
        handle: Option<ReplyHandle>,
        report: TaskReport,
    ) {
        match (handle, &self.mix) {
            (Some(handle), Some(mix)) => {
                let body = wire::encode(&Message::Report(Box::new(report.clone())));
                if let Err(e) = mix.reply(handle, body).await {
                    tracing::warn!(task = %report.task, error = %format!("{e:#}"), "report not sent through the mixnet");
                }
            }
            _ => self.report(reply_peer, report).await,
        }
    }

    async fn report(&self, reply_peer: Option<String>, report: TaskReport) {
        if let Some(peer) = reply_peer {
            self.send_to(&peer, &Message::Report(Box::new(report)))
                .await;
        } else {
            tracing::warn!(task = %report.task, "no way to answer");
        }
    }

    // ----- the submitter side: results and verification ---------------------------------

    async fn on_report(self: Arc<Self>, report: TaskReport) {
        let Some((job_id, _)) = report.task.rsplit_once('.') else {
            return;
        };
        let mut outgoing: Vec<(String, Message)> = Vec::new();
        {
            let mut state = self.lock();
            let Some(mut job) = state.jobs.get(job_id).cloned() else {
                return;
            };
            let Some(replica) = job.replicas.iter_mut().find(|r| r.task == report.task) else {
                return;
            };
            if replica.state != ReplicaState::Sent || report.peer != replica.peer {
                return; // late, duplicate or forged
            }
            let node = node_id(&replica.peer);
            let mut failure = None;
            if let Some(why) = report.refused.as_ref().or(report.interrupted.as_ref()) {
                tracing::info!(task = %report.task, node = %report.node, %why, "replica did not finish");
                replica.state = ReplicaState::Dropped;
                if report.interrupted.is_some() && why != "preempted" {
                    let _ = state.reputation.record(node, TaskOutcome::Failure);
                }
                // A harvest refusal or a preemption says nothing about the task.
                if why != "preempted" && !why.starts_with(HARVEST_REFUSAL) {
                    failure = Some(format!("{}: {why}", replica.node));
                }
            } else if let Some(result) = report.result {
                if verify_signature(&report.task, &result) {
                    replica.state = ReplicaState::Reported;
                    replica.result = Some(result);
                } else {
                    tracing::warn!(task = %report.task, node = %report.node, "result with a bad signature dropped");
                    replica.state = ReplicaState::Dropped;
                    let _ = state.reputation.record(node, TaskOutcome::Failure);
                }
            }
            if let Some(why) = failure {
                outgoing.extend(record_failure(&mut job, why, &self.metrics.jobs_failed));
            }
            if !job.state.is_final() {
                outgoing.extend(self.verify(&mut state, &mut job));
                settle_state(&mut job);
            }
            let old = state.jobs.get(job_id).cloned();
            if let Some(old) = &old {
                count_job(&mut state.counts, old, -1);
            }
            count_job(&mut state.counts, &job, 1);
            if let Err(e) = state.store.put_job(&job) {
                tracing::error!(error = %e, "job not saved");
            }
            state.jobs.insert(job.id.clone(), job);
            trim_final(&mut state);
        }
        self.deliver(outgoing).await;
        self.wake.notify_one();
    }

    /// A checkpoint shipped by the executor of one of this node's replicas:
    /// kept when it checks out (see [`checkpoint`]). One that came through
    /// the mixnet used up its reply blocks, so fresh ones go back.
    async fn on_checkpoint(self: Arc<Self>, shipped: ShippedCheckpoint) {
        let me = self.p2p.peer_id().to_string();
        let peer = {
            let mut state = self.lock();
            let state = &mut *state;
            let Some(job) = state.jobs.get_mut(job_of(&shipped.task)) else {
                return;
            };
            // Until a replica takes it over, a dropped replica's checkpoint
            // still counts: a preempted one ships its last on the way out.
            let taken = job
                .replicas
                .iter()
                .any(|r| r.resumed_from.as_deref() == Some(shipped.task.as_str()));
            let Some(replica) = job.replicas.iter_mut().find(|r| r.task == shipped.task) else {
                return;
            };
            if job.state.is_final() || replica.state == ReplicaState::Reported || taken {
                return;
            }
            let expected = if replica.peer == me {
                self.key.account().to_hex()
            } else {
                match state.members.get(&replica.peer) {
                    Some(m) => m.heartbeat.account.clone(),
                    None => return,
                }
            };
            if shipped.data.len() > checkpoint::MAX_SHIPPED
                || !checkpoint::verify(&shipped, &expected)
            {
                tracing::warn!(task = %shipped.task, node = %replica.node, "a checkpoint that does not check out dropped");
                return;
            }
            let peer = replica.peer.clone();
            match state.store.put_checkpoint(
                &shipped.task,
                shipped.seq,
                &shipped.data,
                checkpoint::STORE_BUDGET,
            ) {
                Ok(true) => {
                    replica.checkpoint_seq = Some(shipped.seq);
                    if let Err(e) = state.store.put_job(job) {
                        tracing::error!(error = %e, "job not saved");
                    }
                    self.metrics
                        .checkpoints
                        .get_or_create(&label("event", "kept"))
                        .inc();
                    tracing::debug!(task = %shipped.task, seq = shipped.seq, "checkpoint kept");
                }
                Ok(false) => {
                    tracing::debug!(task = %shipped.task, seq = shipped.seq, "checkpoint not kept: not newer, or over the budget");
                }
                Err(e) => tracing::warn!(task = %shipped.task, error = %e, "checkpoint not kept"),
            }
            peer
        };
        let refill = Message::Refill { task: shipped.task };
        if self.mix_route(&peer, &refill).is_some() {
            if let Message::Refill { task } = &refill {
                self.lock().refilled.insert(task.clone(), Instant::now());
            }
            self.deliver(vec![(peer, refill)]).await;
        }
    }

    /// Sends checkpoint reply blocks to the executor of each running
    /// replica of this node's that travels through the mixnet and has
    /// shipped nothing for [`checkpoint::REFILL_AFTER`]: a shipment lost
    /// on the way, or an executor restart (it keeps its blocks in memory),
    /// would otherwise end the replica's shipments for good.
    async fn refill_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(checkpoint::REFILL_AFTER / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let due: Vec<(String, Message)> = {
                let mut state = self.lock();
                let state = &mut *state;
                let now = Instant::now();
                let mut live = HashSet::new();
                let mut due = Vec::new();
                for job in state.jobs.values().filter(|j| !j.state.is_final()) {
                    for r in job
                        .replicas
                        .iter()
                        .filter(|r| r.state == ReplicaState::Sent)
                    {
                        live.insert(r.task.clone());
                        // First seen (placed, or this node restarted): the
                        // run message brought blocks, or they still work.
                        let since = state.refilled.entry(r.task.clone()).or_insert(now);
                        if now.saturating_duration_since(*since) >= checkpoint::REFILL_AFTER {
                            *since = now;
                            due.push((
                                r.peer.clone(),
                                Message::Refill {
                                    task: r.task.clone(),
                                },
                            ));
                        }
                    }
                }
                state.refilled.retain(|task, _| live.contains(task));
                due
            };
            let due: Vec<(String, Message)> = due
                .into_iter()
                .filter(|(peer, m)| self.mix_route(peer, m).is_some())
                .collect();
            if !due.is_empty() {
                tracing::debug!(replicas = due.len(), "refilling checkpoint reply blocks");
                self.deliver(due).await;
            }
        }
    }

    /// Checks a running job's reports; on a verdict, finishes the job and
    /// returns the settlement to send to the ledger node.
    fn verify(&self, state: &mut State, job: &mut JobRecord) -> Vec<(String, Message)> {
        let wanted = job.request.replicas.unwrap_or(1) as usize;
        let reported: Vec<ReplicaRecord> = job
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Reported)
            .cloned()
            .collect();
        let quorum = quorum_size(wanted, state.quorum_param);
        let replicas: Vec<fog_exec::verify::Replica> = reported
            .iter()
            .map(|r| {
                let result = r.result.as_ref().expect("reported replicas have results");
                fog_exec::verify::Replica::new(
                    r.peer.clone(),
                    fog_exec::verify::Claim {
                        output_hash: result.output_hash.clone(),
                        fuel: compared_fuel(r, &reported),
                    },
                )
            })
            .collect();
        // Replicas that resumed from another's checkpoint: never evidence
        // (the checkpoint they were handed may be what went wrong).
        let resumed: HashSet<&str> = reported
            .iter()
            .filter(|r| r.resumed_from.is_some())
            .map(|r| r.peer.as_str())
            .collect();
        let verdict = fog_exec::verify::quorum(&job.id, &replicas, quorum);
        let mut out = Vec::new();
        match verdict {
            fog_exec::verify::Verdict::Agreed {
                claim,
                agreeing,
                evidence,
            } => {
                let evidence: Vec<_> = evidence
                    .into_iter()
                    .filter(|e| !resumed.contains(e.node.as_str()))
                    .collect();
                let agreed = reported
                    .iter()
                    .find(|r| {
                        r.result.as_ref().is_some_and(|x| {
                            x.output_hash == claim.output_hash && x.fuel == claim.fuel
                        })
                    })
                    .and_then(|r| r.result.clone());
                // Wait for every replica still running, unless a quorum of all
                // wanted replicas already agrees.
                // Every wanted replica reports before the verdict (a liar
                // among them becomes evidence), unless all wanted replicas
                // already agree; a job that cannot get more nodes for a
                // while settles with what it has.
                let outstanding = job.replicas.iter().any(|r| r.state == ReplicaState::Sent);
                let enough = reported.len() >= wanted || job.unplaced_rounds > 40;
                if agreeing.len() < wanted && (outstanding || !enough) {
                    return out;
                }
                for peer in &agreeing {
                    let _ = state.reputation.record(node_id(peer), TaskOutcome::Success);
                }
                for e in &evidence {
                    let _ = state
                        .reputation
                        .record(node_id(&e.node), TaskOutcome::VerificationMismatch);
                    tracing::warn!(job = %job.id, node = %e.node, claimed = %e.claimed, majority = %e.majority, "evidence: a replica disagreed");
                }
                job.evidence += evidence.len() as u32;
                if !evidence.is_empty() {
                    state.counts.evidence = state
                        .store
                        .bump("evidence", evidence.len() as u64)
                        .unwrap_or(state.counts.evidence);
                    self.metrics.evidence.inc_by(evidence.len() as u64);
                }
                let settlement = Settlement {
                    task: job.id.clone(),
                    digest: hex::encode(claim_digest(&claim.output_hash, claim.fuel)),
                    fuel: claim.fuel,
                    // Only signatures over the agreed claim itself: a resumed
                    // replica that agreed on the output signed its own fuel.
                    agreeing: reported
                        .iter()
                        .filter(|r| agreeing.contains(&r.peer))
                        .filter_map(|r| r.result.as_ref())
                        .filter(|x| x.output_hash == claim.output_hash && x.fuel == claim.fuel)
                        .map(|x| (x.account.clone(), x.signature.clone()))
                        .collect(),
                    disagreeing: reported
                        .iter()
                        .filter(|r| !agreeing.contains(&r.peer) && r.resumed_from.is_none())
                        .filter_map(|r| r.result.as_ref())
                        .map(|x| {
                            (
                                x.account.clone(),
                                hex::encode(claim_digest(&x.output_hash, x.fuel)),
                                x.signature.clone(),
                            )
                        })
                        .collect(),
                };
                // Replicas still running are no longer needed.
                out.extend(cancel_running(job));
                job.finished_ms = Some(now_ms());
                job.quorum = Some(quorum as u32);
                match agreed {
                    Some(result) if result.failure.is_none() && result.exit_code == Some(0) => {
                        job.state = JobState::Verified;
                        job.result = Some(result);
                        self.metrics.jobs_verified.inc();
                        let ledger = self.ledger_peer(state);
                        out.push((ledger, Message::Settle(Box::new(settlement))));
                    }
                    Some(result) => {
                        job.state = JobState::Failed;
                        job.error = Some(format!(
                            "the task failed on every agreeing replica: {}",
                            result
                                .failure
                                .clone()
                                .unwrap_or_else(|| format!("exit code {:?}", result.exit_code))
                        ));
                        job.result = Some(result);
                        self.metrics.jobs_failed.inc();
                    }
                    None => {}
                }
            }
            fog_exec::verify::Verdict::NoQuorum { .. } => {
                let outstanding = job.replicas.iter().any(|r| r.state == ReplicaState::Sent);
                let active = job
                    .replicas
                    .iter()
                    .filter(|r| r.state != ReplicaState::Dropped)
                    .count();
                if !outstanding && active >= wanted {
                    let limit = wanted + EXTRA_REPLICAS as usize;
                    if job.replicas.len() < limit + 2 && active < limit {
                        // Ask one more node to break the tie.
                        job.request.replicas = Some(active as u32 + 1);
                        job.state = JobState::Pending;
                    } else {
                        job.state = JobState::Failed;
                        job.error = Some("replicas disagree and no quorum formed".into());
                        job.finished_ms = Some(now_ms());
                        self.metrics.jobs_failed.inc();
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// The peer that holds the ledger ("" for this node or when unknown).
    fn ledger_peer(&self, state: &State) -> String {
        if self.config.ledger {
            return String::new();
        }
        state
            .members
            .iter()
            .find(|(_, m)| m.alive && m.heartbeat.roles.iter().any(|r| r == "ledger"))
            .map(|(id, _)| id.clone())
            .unwrap_or_default()
    }

    // ----- placement ---------------------------------------------------------------------

    async fn schedule_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
            }
            let messages = self.schedule_round();
            self.deliver(messages).await;
        }
    }

    /// One scheduling round: failure detection, then placement of every
    /// pending job in dispatch order. Returns the messages to send.
    fn schedule_round(&self) -> Vec<(String, Message)> {
        let mut out = Vec::new();
        let mut state = self.lock();
        let state = &mut *state;
        let timeout = self.config.heartbeat_timeout();
        let now = Instant::now();

        // Failure detection: a silent node's replicas go elsewhere.
        let mut failed = HashSet::new();
        for (id, m) in &mut state.members {
            let alive = now.duration_since(m.last_seen) < timeout;
            if m.alive && !alive {
                tracing::warn!(peer = %id, name = %m.heartbeat.name, "node missed its heartbeats: failed");
                failed.insert(id.clone());
            }
            m.alive = alive;
        }
        let alive_count = state.members.values().filter(|m| m.alive).count();
        self.metrics.peers_alive.set(alive_count as i64);
        for peer in &failed {
            let _ = state.reputation.record(node_id(peer), TaskOutcome::Timeout);
        }

        let mut ids: Vec<String> = state
            .jobs
            .values()
            .filter(|j| !j.state.is_final())
            .map(|j| j.id.clone())
            .collect();
        // Dispatch order: class S first, then submission time.
        ids.sort_by_key(|id| {
            let j = &state.jobs[id];
            (
                class_rank(j.request.class.as_deref()),
                j.submitted_ms,
                j.id.clone(),
            )
        });
        let mut changed: Vec<JobRecord> = Vec::new();
        for id in &ids {
            let mut job = state.jobs[id].clone();
            let before = job.clone();
            let patience_ms = ((job.request.timeout_s.unwrap_or(60.0)
                + self.config.task_grace_s.max(0.0))
                * 1000.0) as u64;
            let mut lost = Vec::new();
            for r in &mut job.replicas {
                let stuck = now_ms().saturating_sub(r.sent_ms) > patience_ms;
                if r.state == ReplicaState::Sent && (failed.contains(&r.peer) || stuck) {
                    tracing::warn!(task = %r.task, node = %r.node, stuck, "replica lost; placing it again");
                    r.state = ReplicaState::Dropped;
                    lost.push(if stuck {
                        format!("{}: no report within {} s", r.node, patience_ms / 1000)
                    } else {
                        format!("{}: the node failed", r.node)
                    });
                }
            }
            for why in lost {
                out.extend(record_failure(&mut job, why, &self.metrics.jobs_failed));
            }
            if job != before && !job.state.is_final() {
                let messages = self.verify(state, &mut job);
                out.extend(messages);
                settle_state(&mut job);
            }
            if job != before {
                state.jobs.insert(id.clone(), job.clone());
                changed.push(job);
            }
        }

        // Settlements wait here until a ledger node is known.
        if !self.config.ledger {
            let ledger = self.ledger_peer(state);
            if !ledger.is_empty() {
                while let Some(s) = state.settlements.pop_front() {
                    out.push((ledger.clone(), Message::Settle(Box::new(s))));
                }
            }
        }

        // Placement.
        let mut cluster_nodes = self.cluster_nodes(state);
        if cluster_nodes.is_empty() {
            for job in changed {
                save_job(state, job);
            }
            return out;
        }
        // Our own replicas in flight count as load until the heartbeats show them.
        let mut outstanding: HashMap<String, Resources> = HashMap::new();
        let mut running_tasks: Vec<RunningTask> = Vec::new();
        for job in state
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running || j.state == JobState::Pending)
        {
            let class = parse_class(job.request.class.as_deref()).unwrap_or(SlaClass::B);
            for r in job
                .replicas
                .iter()
                .filter(|r| r.state == ReplicaState::Sent)
            {
                let res = job_resources(&job.request);
                let e = outstanding.entry(r.peer.clone()).or_insert(Resources::ZERO);
                *e = e.plus(res);
                let elapsed = now_ms().saturating_sub(r.sent_ms) as f64 / 1000.0;
                let mut t = RunningTask::new(job_id(&r.task), class, elapsed);
                if let Some(g) = &job.request.gang {
                    t = t.with_gang(GangId::new(job_id(g).get()));
                }
                running_tasks.push(t);
            }
        }
        // Heartbeats report all load, ours included: the base load is the
        // rest, and our replicas are assigned on top so that preemption
        // sees them as residents.
        for (peer, node) in &mut cluster_nodes {
            if let Some(ours) = outstanding.get(peer) {
                let reported = node.load();
                let others = Resources::new(
                    reported.cpu_millis().saturating_sub(ours.cpu_millis()),
                    reported.memory_mib().saturating_sub(ours.memory_mib()),
                    0,
                );
                *node = node.clone().with_load(others);
            }
        }
        let peers: Vec<String> = cluster_nodes.iter().map(|(p, _)| p.clone()).collect();
        let by_node: HashMap<NodeId, String> =
            peers.iter().map(|p| (node_id(p), p.clone())).collect();
        let mut cluster = Cluster::new(cluster_nodes.into_iter().map(|(_, n)| n).collect());
        // Re-assign our running replicas so preemption sees them as
        // residents; a replica that already reported stays as a resident
        // without resources, so that anti-affinity keeps the job's next
        // replicas off its node.
        for job in state
            .jobs
            .values()
            .filter(|j| j.state == JobState::Running || j.state == JobState::Pending)
        {
            for r in &job.replicas {
                let resources = match r.state {
                    ReplicaState::Sent => job_resources(&job.request),
                    ReplicaState::Reported => Resources::ZERO,
                    ReplicaState::Dropped => continue,
                };
                let _ = cluster.assign(&Job::new(job_id(&r.task), resources), node_id(&r.peer));
            }
        }
        state.round_robin = state.round_robin.wrapping_add(1);
        let mut scheduler = Scheduler::new(cluster, state.round_robin);

        // Gangs wait until every member arrived.
        let mut gangs: HashMap<String, Vec<String>> = HashMap::new();
        for id in &ids {
            let j = &state.jobs[id];
            if let (Some(g), JobState::Pending) = (&j.request.gang, j.state) {
                gangs.entry(g.clone()).or_default().push(id.clone());
            }
        }

        let mut placed_gangs: HashSet<String> = HashSet::new();
        for id in &ids {
            let mut job = state.jobs[id].clone();
            if job.state != JobState::Pending {
                continue;
            }
            // Dependencies.
            let mut blocked = false;
            for dep in &job.request.depends_on {
                match state.jobs.get(dep).map(|d| d.state) {
                    Some(JobState::Verified) => {}
                    Some(JobState::Failed | JobState::Cancelled) | None => {
                        job.state = JobState::Failed;
                        job.error = Some(format!("dependency {dep} did not succeed"));
                        job.finished_ms = Some(now_ms());
                        self.metrics.jobs_failed.inc();
                        blocked = true;
                        break;
                    }
                    Some(_) => {
                        blocked = true;
                        break;
                    }
                }
            }
            if blocked {
                if job.state.is_final() {
                    state.jobs.insert(id.clone(), job.clone());
                    changed.push(job);
                }
                continue;
            }
            if let Some(gang) = job.request.gang.clone() {
                if placed_gangs.contains(&gang) {
                    continue;
                }
                let members = gangs.get(&gang).cloned().unwrap_or_default();
                if members.len() < job.request.gang_size.unwrap_or(1) as usize {
                    continue;
                }
                let member_jobs: Vec<(String, Job)> = members
                    .iter()
                    .map(|m| {
                        let mj = &state.jobs[m];
                        let task = format!("{m}.{}", mj.replicas.len());
                        let sj = sched_job(mj, &task);
                        (task, sj)
                    })
                    .collect();
                let jobs_only: Vec<Job> = member_jobs.iter().map(|(_, j)| j.clone()).collect();
                if let Ok(placements) =
                    fog_sched::gang::place_gang(&mut scheduler, &jobs_only, Strategy::Scored)
                {
                    placed_gangs.insert(gang.clone());
                    for ((member, (task, _)), placement) in
                        members.iter().zip(&member_jobs).zip(placements)
                    {
                        let mut mj = state.jobs[member].clone();
                        let peer = by_node[&placement.node].clone();
                        out.push(self.dispatch(state, &mut mj, task.clone(), &peer));
                        state.jobs.insert(member.clone(), mj.clone());
                        changed.push(mj);
                    }
                } else {
                    job.unplaced_rounds += 1;
                    state.jobs.insert(id.clone(), job.clone());
                }
                continue;
            }
            let wanted = job.request.replicas.unwrap_or(1) as usize;
            let mut used_peers: Vec<String> = job
                .replicas
                .iter()
                .filter(|r| r.state != ReplicaState::Dropped)
                .map(|r| r.peer.clone())
                .collect();
            let mut active = used_peers.len();
            let mut progress = false;
            while active < wanted {
                let task = format!("{}.{}", job.id, job.replicas.len());
                let mut sj = sched_job(&job, &task);
                for r in job
                    .replicas
                    .iter()
                    .filter(|r| r.state != ReplicaState::Dropped)
                {
                    sj = sj.with_anti_affinity(job_id(&r.task));
                }
                let choice = match scheduler.place(&sj, Strategy::Scored) {
                    Ok(p) => Some(p.node),
                    Err(_) if sj.class() == SlaClass::S => {
                        match plan_preemption(scheduler.cluster(), &running_tasks, &sj) {
                            Ok(plan) if !plan.victims.is_empty() => {
                                out.extend(self.preempt(state, &plan.victims, &mut changed));
                                for v in &plan.victims {
                                    let _ = scheduler.release(*v);
                                }
                                running_tasks.retain(|t| !plan.victims.contains(&t.job()));
                                scheduler.place(&sj, Strategy::Scored).ok().map(|p| p.node)
                            }
                            _ => None,
                        }
                    }
                    Err(_) => None,
                };
                let Some(node) = choice else { break };
                let peer = by_node[&node].clone();
                if used_peers.contains(&peer) {
                    // Anti-affinity could not hold (fewer nodes than replicas).
                    let _ = scheduler.release(sj.id());
                    break;
                }
                used_peers.push(peer.clone());
                out.push(self.dispatch(state, &mut job, task, &peer));
                active += 1;
                progress = true;
            }
            if active >= wanted {
                job.state = JobState::Running;
            } else if !progress {
                job.unplaced_rounds += 1;
                if job.unplaced_rounds > 40
                    && job
                        .replicas
                        .iter()
                        .any(|r| r.state == ReplicaState::Reported)
                {
                    // No node for the missing replicas: settle with the reports in.
                    let messages = self.verify(state, &mut job);
                    out.extend(messages);
                    settle_state(&mut job);
                }
                let waited = Duration::from_millis(now_ms().saturating_sub(job.submitted_ms));
                if active == 0 && waited > PLACEMENT_PATIENCE {
                    job.state = JobState::Failed;
                    job.error = Some(format!(
                        "no node could take it for {} s ({} nodes known)",
                        PLACEMENT_PATIENCE.as_secs(),
                        peers.len()
                    ));
                    job.finished_ms = Some(now_ms());
                    self.metrics.jobs_failed.inc();
                }
            }
            if active > 0
                && job.state == JobState::Pending
                && !job.replicas.iter().any(|r| r.state == ReplicaState::Sent)
            {
                // Only reported replicas remain: keep waiting for more nodes.
            }
            if job != state.jobs[id] {
                state.jobs.insert(id.clone(), job.clone());
                changed.push(job);
            }
        }
        for job in changed {
            save_job(state, job);
        }
        out
    }

    /// The fog-sched nodes: every live node that takes work, this one too.
    fn cluster_nodes(&self, state: &State) -> Vec<(String, SchedNode)> {
        let mut nodes = Vec::new();
        let reputation = |peer: &str| {
            state
                .reputation
                .get(node_id(peer))
                .map_or(0.5, |r| r.expected())
        };
        let me = self.p2p.peer_id().to_string();
        if self.exec.is_some() && state.accepting {
            let used = state.running.values().fold(Resources::ZERO, |acc, r| {
                acc.plus(Resources::new(
                    u64::from(r.cpu_millis),
                    u64::from(r.memory_mb),
                    0,
                ))
            });
            let capacity =
                Resources::new(u64::from(self.cpu_millis()), u64::from(self.memory_mb()), 0);
            nodes.push((
                me.clone(),
                SchedNode::new(node_id(&me), capacity)
                    .with_load(min_of(used, capacity))
                    .with_reputation(reputation(&me))
                    .with_max_privacy(fog_sched::model::PrivacyLevel::Secret)
                    .with_label("exec:wasm")
                    .with_label(if self.exec.as_ref().is_some_and(|e| e.has_docker()) {
                        "exec:docker"
                    } else {
                        "exec:wasm"
                    }),
            ));
        }
        for (peer, m) in &state.members {
            let hb = &m.heartbeat;
            if !m.alive || !hb.accepting || !hb.roles.iter().any(|r| r == "exec") {
                continue;
            }
            if !self.mix_reachable(hb) {
                // Work to it goes through the mixnet, whose directory does
                // not (yet) hold it: placing there would refuse the replica.
                continue;
            }
            let capacity = Resources::new(u64::from(hb.cpu_millis), u64::from(hb.memory_mb), 0);
            let used = Resources::new(
                u64::from(hb.used_cpu_millis),
                u64::from(hb.used_memory_mb),
                0,
            );
            let mut node = SchedNode::new(node_id(peer), capacity)
                .with_load(min_of(used, capacity))
                .with_reputation(reputation(peer))
                .with_max_privacy(fog_sched::model::PrivacyLevel::Secret);
            for c in &hb.capabilities {
                node = node.with_label(c.clone());
            }
            nodes.push((peer.clone(), node));
        }
        nodes
    }

    /// Records a replica on `peer` and returns its run message.
    fn dispatch(
        &self,
        state: &State,
        job: &mut JobRecord,
        task: String,
        peer: &str,
    ) -> (String, Message) {
        let node = if peer == self.p2p.peer_id().to_string() {
            self.config.name.clone()
        } else {
            state
                .members
                .get(peer)
                .map_or_else(|| peer.to_owned(), |m| m.heartbeat.name.clone())
        };
        tracing::info!(job = %job.id, %task, %node, "placed");
        self.metrics.placements.inc();
        let wasm = job
            .module_hash
            .as_ref()
            .and_then(|h| state.store.module(h).ok().flatten())
            .map(ByteBuf::from);
        let resources = job_resources(&job.request);
        let (resumed_from, checkpoint) = self.inherit_checkpoint(state, job, &task);
        let message = Message::Run(Box::new(RunTask {
            task: task.clone(),
            name: job.request.name.clone(),
            wasm,
            image: job.request.image.clone(),
            image_tar: job.request.image_tar.clone(),
            args: job.request.args.clone(),
            fuel: job.request.fuel,
            memory_mb: resources.memory_mib() as u32,
            cpu_millis: resources.cpu_millis() as u32,
            timeout_s: job.request.timeout_s,
            reply_peer: Some(self.p2p.peer_id().to_string()),
            checkpoint: checkpoint.map(ByteBuf::from),
        }));
        job.replicas.push(ReplicaRecord {
            task,
            peer: peer.to_owned(),
            node,
            state: ReplicaState::Sent,
            sent_ms: now_ms(),
            result: None,
            checkpoint_seq: resumed_from.as_ref().map(|_| 1),
            resumed_from,
        });
        (peer.to_owned(), message)
    }

    /// The checkpoint a new replica `task` of `job` starts from: the last
    /// one of a dropped replica (its node failed, it was preempted or went
    /// silent) that no replica took over yet. WASM jobs only. The new
    /// replica takes over that lineage: the bytes are kept under its own
    /// task id as its checkpoint 1 (its executor numbers its own from 2), so
    /// that should it fail before shipping one, the next starts from the
    /// same place. Returns the replica it resumes and the bytes.
    fn inherit_checkpoint(
        &self,
        state: &State,
        job: &JobRecord,
        task: &str,
    ) -> (Option<String>, Option<Vec<u8>>) {
        if job.module_hash.is_none() {
            return (None, None);
        }
        let Some(from) = job
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Dropped && r.checkpoint_seq.is_some())
            .find(|r| {
                !job.replicas
                    .iter()
                    .any(|o| o.resumed_from.as_deref() == Some(r.task.as_str()))
            })
        else {
            return (None, None);
        };
        let data = match state.store.checkpoint(&from.task) {
            Ok(Some((_, data))) => data,
            Ok(None) => return (None, None),
            Err(e) => {
                tracing::warn!(task = %from.task, error = %e, "reading a kept checkpoint");
                return (None, None);
            }
        };
        if let Err(e) = state
            .store
            .put_checkpoint(task, 1, &data, checkpoint::STORE_BUDGET)
        {
            tracing::warn!(%task, error = %e, "checkpoint not handed on");
        }
        tracing::info!(%task, from = %from.task, bytes = data.len(), "resuming from a checkpoint");
        self.metrics
            .checkpoints
            .get_or_create(&label("event", "resumed"))
            .inc();
        (Some(from.task.clone()), Some(data))
    }

    /// Preempts the replicas behind `victims` (fog-sched job ids).
    fn preempt(
        &self,
        state: &mut State,
        victims: &[JobId],
        changed: &mut Vec<JobRecord>,
    ) -> Vec<(String, Message)> {
        let mut out = Vec::new();
        let ids: Vec<String> = state.jobs.keys().cloned().collect();
        for id in ids {
            let mut job = state.jobs[&id].clone();
            let mut hit = false;
            for r in job
                .replicas
                .iter_mut()
                .filter(|r| r.state == ReplicaState::Sent)
            {
                if victims.contains(&job_id(&r.task)) {
                    r.state = ReplicaState::Dropped;
                    out.push((
                        r.peer.clone(),
                        Message::Preempt {
                            task: r.task.clone(),
                        },
                    ));
                    hit = true;
                }
            }
            if hit {
                tracing::info!(job = %job.id, "preempted for an S job");
                job.preemptions += 1;
                job.state = JobState::Pending;
                state.counts.preemptions = state
                    .store
                    .bump("preemptions", 1)
                    .unwrap_or(state.counts.preemptions + 1);
                self.metrics.preemptions.inc();
                state.jobs.insert(id.clone(), job.clone());
                changed.push(job);
            }
        }
        out
    }

    // ----- fog-harvest ----------------------------------------------------------------------

    async fn harvest_loop(self: Arc<Self>) {
        let policy = match load_policy(&self.config.policy) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "harvest policy unusable; the node takes no work");
                return;
            }
        };
        let real = self.config.sysfs_root == std::path::Path::new("/sys");
        let mut sensors =
            match LinuxSensors::with_roots(&self.config.sysfs_root, &self.config.procfs_root) {
                Ok(s) => s.with_logind(real),
                Err(e) => {
                    tracing::error!(error = %e, "harvest sensors unusable; the node takes no work");
                    return;
                }
            };
        sensors.set_fog_pids(&[std::process::id()]);
        let start = Instant::now();
        let mut controller = Controller::new(policy.clone(), 0.0);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now_s = start.elapsed().as_secs_f64();
            let snapshot = sensors.read(now_s);
            let unix = now_ms() as i64 / 1000;
            let conditions =
                Conditions::from_snapshot(&snapshot, Some(policy.minute_of_week(unix)));
            let mut work = HarvestWork::default();
            controller.step(now_s, &conditions, &mut work);
            let state_name = format!("{:?}", controller.state()).to_ascii_lowercase();
            let accepting = controller.state().is_running()
                || controller.state() == fog_harvest::State::Eligible;
            let view = HarvestView {
                state: state_name.clone(),
                reason: controller.reason().to_string(),
                cpu_share: controller.cpu_share(),
                battery_pct: snapshot.power.value().and_then(|p| p.battery_percent),
                on_ac: snapshot.power.value().and_then(|p| p.ac_online),
                temperature_c: snapshot.thermal.value().map(|t| t.max_celsius),
                other_cpu_pct: snapshot.cpu.value().map(|c| c.non_fog_percent),
                user_idle_s: snapshot.user_idle.value().map(|u| u.idle_s),
                memory_available_pct: snapshot
                    .memory
                    .value()
                    .map(fog_harvest::Memory::available_percent),
            };
            Metrics::one_hot(
                &self.metrics.harvest_state,
                "state",
                &HARVEST_STATES,
                &state_name,
            );
            self.metrics.harvest_cpu_share.set(view.cpu_share);
            if let Some(b) = view.battery_pct {
                self.metrics.harvest_battery.set(b);
            }
            if let Some(t) = view.temperature_c {
                self.metrics.harvest_temperature.set(t);
            }
            let tasks: Vec<TaskId> = {
                let mut state = self.lock();
                let was = state.accepting;
                state.accepting = accepting;
                state.harvest = view;
                if accepting && !was {
                    self.wake.notify_one();
                }
                state
                    .running
                    .keys()
                    .filter_map(|t| TaskId::new(t.clone()).ok())
                    .collect()
            };
            // Carry out what the controller asked of the work (the WorkControl seam).
            if let Some(exec) = &self.exec {
                for call in work.calls {
                    for id in &tasks {
                        let result = match call {
                            HarvestCall::Pause => exec.pause(id).await,
                            HarvestCall::Resume => exec.resume(id).await,
                            HarvestCall::Checkpoint => exec.checkpoint_now(id),
                            HarvestCall::Preempt => exec.preempt(id).await,
                        };
                        if let Err(e) = result {
                            tracing::debug!(task = %id, ?call, error = %e, "work control");
                        }
                    }
                }
            }
        }
    }

    // ----- fog-dao (ledger node) ------------------------------------------------------------

    async fn ledger_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let batch: Vec<Settlement> = {
                let mut state = self.lock();
                let n = state.settlements.len().min(256);
                state.settlements.drain(..n).collect()
            };
            let dir = self.config.data_dir.join("dao");
            let outcome = tokio::task::spawn_blocking(move || settle(&dir, &batch)).await;
            match outcome {
                Ok(Ok(view)) => {
                    self.metrics.dao_height.set(view.0.height as i64);
                    self.metrics.dao_supply.set(view.0.supply as i64);
                    let before = self.lock().dao.rewards_paid;
                    if view.0.rewards_paid > before {
                        self.metrics
                            .dao_rewards
                            .inc_by(view.0.rewards_paid - before);
                    }
                    let mut state = self.lock();
                    let mut dao = view.0;
                    dao.balance = view.2.get(&self.key.account()).copied().unwrap_or(0);
                    state.dao = dao;
                    state.quorum_param = Some(view.1);
                }
                Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "ledger"),
                Err(e) => tracing::warn!(error = %e, "ledger task"),
            }
        }
    }

    // ----- sampling -------------------------------------------------------------------------

    async fn sample_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let state = self.lock();
            let counts: HashMap<&str, i64> = JOB_STATES.iter().map(|s| (*s, 0)).collect();
            let mut counts = counts;
            for j in state.jobs.values() {
                *counts.entry(j.state.as_str()).or_default() += 1;
            }
            for (s, n) in counts {
                self.metrics.jobs.get_or_create(&label("state", s)).set(n);
            }
            drop(state);
            if let Some(mix) = &self.mix {
                let now = mix.stats();
                let mut state = self.lock();
                let before = state.last_mix;
                for (event, new, old) in [
                    ("received", now.received, before.received),
                    ("forwarded", now.forwarded, before.forwarded),
                    ("delivered", now.delivered, before.delivered),
                    ("cover", now.cover, before.cover),
                    ("dropped", now.dropped, before.dropped),
                ] {
                    self.metrics
                        .mix_packets
                        .get_or_create(&label("event", event))
                        .inc_by(new.saturating_sub(old));
                }
                if now.latency_samples > before.latency_samples {
                    self.metrics
                        .mix_latency
                        .observe(now.latency_p50_ms / 1000.0);
                }
                push_bounded(&mut state.pps_history, now.pps.round() as u64);
                push_bounded(
                    &mut state.latency_history,
                    now.latency_p50_ms.round() as u64,
                );
                state.last_mix = now;
                drop(state);
                self.refresh_directory();
            }
        }
    }
}

/// The mix address a heartbeat announces, when it announces a well-formed one.
fn mix_address(hb: &Heartbeat) -> Option<[u8; 32]> {
    hex::decode(hb.mix_address.as_ref()?).ok()?.try_into().ok()
}

fn parse_account(hex_text: &str) -> Result<AccountId, ()> {
    hex_text.parse().map_err(|_| ())
}

fn min_of(a: Resources, b: Resources) -> Resources {
    Resources::new(
        a.cpu_millis().min(b.cpu_millis()),
        a.memory_mib().min(b.memory_mib()),
        a.gpus().min(b.gpus()),
    )
}

fn push_bounded(q: &mut VecDeque<u64>, v: u64) {
    if q.len() == HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

/// After verification: a non-final job with fewer live replicas than it
/// wants goes back to pending; with enough, it is running.
fn settle_state(job: &mut JobRecord) {
    if job.state.is_final() {
        return;
    }
    let active = job
        .replicas
        .iter()
        .filter(|r| r.state != ReplicaState::Dropped)
        .count();
    job.state = if active >= job.request.replicas.unwrap_or(1) as usize {
        JobState::Running
    } else {
        JobState::Pending
    };
}

fn save_job(state: &mut State, job: JobRecord) {
    if let Err(e) = state.store.put_job(&job) {
        tracing::error!(job = %job.id, error = %e, "job not saved");
    }
    recount(state);
    state.jobs.insert(job.id.clone(), job);
}

fn recount(state: &mut State) {
    let mut counts = JobCounts {
        preemptions: state.counts.preemptions,
        evidence: state.counts.evidence,
        executed: state.counts.executed,
        ..JobCounts::default()
    };
    for j in state.jobs.values() {
        count_job(&mut counts, j, 1);
    }
    state.counts = counts;
}

fn trim_final(state: &mut State) {
    let finals = state.jobs.values().filter(|j| j.state.is_final()).count();
    if finals <= MAX_FINAL_IN_MEMORY {
        return;
    }
    let drop: Vec<String> = state
        .jobs
        .values()
        .filter(|j| j.state.is_final())
        .take(finals - MAX_FINAL_IN_MEMORY)
        .map(|j| j.id.clone())
        .collect();
    for id in drop {
        state.jobs.remove(&id);
    }
}

fn count_job(counts: &mut JobCounts, job: &JobRecord, sign: i64) {
    let add = |c: &mut u64| *c = c.saturating_add_signed(sign);
    add(&mut counts.submitted);
    match job.state {
        JobState::Pending => add(&mut counts.pending),
        JobState::Running => add(&mut counts.running),
        JobState::Verified => add(&mut counts.verified),
        JobState::Failed => add(&mut counts.failed),
        JobState::Cancelled => add(&mut counts.cancelled),
    }
}

fn class_rank(class: Option<&str>) -> u8 {
    match parse_class(class).unwrap_or(SlaClass::B) {
        SlaClass::S => 0,
        SlaClass::A => 1,
        _ => 2,
    }
}

/// The quorum for `wanted` replicas: a majority, raised to the ledger's
/// `min_quorum_signers` where that many replicas run.
fn quorum_size(wanted: usize, param: Option<u64>) -> usize {
    let majority = wanted / 2 + 1;
    let from_param = param.map_or(0, |p| (p as usize).min(wanted));
    majority.max(from_param).max(1)
}

fn job_resources(request: &SubmitRequest) -> Resources {
    Resources::new(
        u64::from(request.cpu_millis.unwrap_or(250)),
        u64::from(request.memory_mb.unwrap_or(64)),
        0,
    )
}

fn sched_job(job: &JobRecord, task: &str) -> Job {
    let class = parse_class(job.request.class.as_deref()).unwrap_or(SlaClass::B);
    let privacy = parse_privacy(job.request.privacy.as_deref())
        .map_or(fog_sched::model::PrivacyLevel::Public, |p| p.0);
    let mut sj = Job::new(job_id(task), job_resources(&job.request))
        .with_class(class)
        .with_privacy(privacy);
    if job.request.image.is_some() {
        sj = sj.with_affinity("exec:docker");
    } else {
        sj = sj.with_affinity("exec:wasm");
    }
    sj
}

fn task_spec(task: &RunTask) -> anyhow::Result<TaskSpec> {
    let id = TaskId::new(task.task.clone())?;
    let mut limits = Limits::default().with_memory_bytes(u64::from(task.memory_mb.max(16)) << 20);
    if let Some(fuel) = task.fuel {
        limits = limits.with_fuel(Some(fuel));
    }
    if let Some(t) = task.timeout_s {
        limits = limits.with_timeout(Duration::from_secs_f64(t.clamp(0.001, 86_400.0)));
    }
    limits = limits.with_cpu_millis(task.cpu_millis.max(1));
    let spec = match (&task.wasm, &task.image) {
        (Some(module), None) => TaskSpec::wasm(
            id,
            WasmWorkload::new(module.to_vec()).args(task.args.clone()),
        ),
        (None, Some(image)) => {
            let mut workload = ContainerWorkload::new(image.clone()).cmd(task.args.clone());
            if let Some(tar) = &task.image_tar {
                workload = workload.image_tar(PathBuf::from(tar));
            }
            TaskSpec::container(id, workload)
        }
        _ => bail!("a task needs a module or an image"),
    };
    let spec = spec.with_limits(limits);
    Ok(match &task.checkpoint {
        Some(data) => spec.with_checkpoint(data.to_vec()),
        None => spec,
    })
}

fn verify_signature(task: &str, result: &ResultRecord) -> bool {
    let Ok(account) = parse_account(&result.account) else {
        return false;
    };
    let Ok(sig) = hex::decode(&result.signature) else {
        return false;
    };
    let Ok(signature) = <[u8; 64]>::try_from(sig.as_slice()) else {
        return false;
    };
    let signed = SignedResult {
        result: claim_digest(&result.output_hash, result.fuel),
        signature,
    };
    fog_dao::verify_task_result(&account, &task_digest(job_of(task)), &signed)
}

/// Counts a replica that failed without a result; past the job's
/// failure budget the job fails, naming the last reason, and its
/// replicas still running are cancelled.
fn record_failure(job: &mut JobRecord, why: String, failed: &Counter) -> Vec<(String, Message)> {
    job.failures = job.failures.saturating_add(1);
    job.last_failure = Some(why);
    let budget = job.request.replicas.unwrap_or(1) + FAILURE_BUDGET;
    if job.state.is_final() || job.failures <= budget {
        return Vec::new();
    }
    job.state = JobState::Failed;
    job.error = Some(format!(
        "{} replicas failed without a result; the last: {}",
        job.failures,
        job.last_failure.as_deref().unwrap_or("-")
    ));
    job.finished_ms = Some(now_ms());
    failed.inc();
    cancel_running(job)
}

/// Drops a job's replicas still running and returns their cancel messages.
fn cancel_running(job: &mut JobRecord) -> Vec<(String, Message)> {
    job.replicas
        .iter_mut()
        .filter(|r| r.state == ReplicaState::Sent)
        .map(|r| {
            r.state = ReplicaState::Dropped;
            (
                r.peer.clone(),
                Message::Cancel {
                    task: r.task.clone(),
                },
            )
        })
        .collect()
}

/// The job a replica's task id belongs to (`<job>.<n>`).
/// The fuel verification compares for replica `r`: its own, unless it
/// resumed from another replica's checkpoint. Its fuel then covers only the
/// work after the checkpoint, so it takes the fuel of a replica that ran
/// from the start to the same output, when one reported (else its own).
fn compared_fuel(r: &ReplicaRecord, reported: &[ReplicaRecord]) -> u64 {
    let own = r.result.as_ref().map_or(0, |x| x.fuel);
    let Some(output) = r.result.as_ref().map(|x| &x.output_hash) else {
        return own;
    };
    if r.resumed_from.is_none() {
        return own;
    }
    reported
        .iter()
        .filter(|o| o.resumed_from.is_none())
        .filter_map(|o| o.result.as_ref())
        .find(|x| &x.output_hash == output)
        .map_or(own, |x| x.fuel)
}

/// Keeps the reply blocks for `task`'s next checkpoint, unless the node
/// keeps [`MAX_REPLY_HANDLES`] such handles already.
/// Keeps reply blocks for a task's checkpoints, fresh ones in front of
/// those it still holds, at most [`checkpoint::MAX_HELD_BLOCKS`] per task.
fn keep_checkpoint_blocks(state: &mut State, task: &str, blocks: ReplyHandle) {
    if let Some(held) = state.checkpoint_replies.get_mut(task) {
        held.absorb(blocks, checkpoint::MAX_HELD_BLOCKS);
    } else if state.checkpoint_replies.len() < MAX_REPLY_HANDLES {
        state.checkpoint_replies.insert(task.to_owned(), blocks);
    } else {
        tracing::debug!(%task, "too many checkpoint reply handles; its checkpoints stay here");
    }
}

fn job_of(task: &str) -> &str {
    task.rsplit_once('.').map_or(task, |(job, _)| job)
}

fn job_view(job: &JobRecord, members: &HashMap<String, Member>, me: &str) -> JobView {
    let _ = (members, me);
    JobView {
        id: job.id.clone(),
        name: job.request.name.clone(),
        kind: if job.request.image.is_some() {
            "container"
        } else {
            "wasm"
        }
        .into(),
        class: job
            .request
            .class
            .clone()
            .unwrap_or_else(|| "B".into())
            .to_ascii_uppercase(),
        privacy: job
            .request
            .privacy
            .clone()
            .unwrap_or_else(|| "PUBLIC".into())
            .to_ascii_uppercase(),
        state: job.state.as_str().into(),
        replicas: job.request.replicas.unwrap_or(1),
        nodes: job
            .replicas
            .iter()
            .filter(|r| r.state != ReplicaState::Dropped)
            .map(|r| r.node.clone())
            .collect(),
        preemptions: job.preemptions,
        submitted_ms: job.submitted_ms,
        finished_ms: job.finished_ms,
        output_hash: job.result.as_ref().map(|r| r.output_hash.clone()),
        error: job.error.clone(),
        failures: job.failures,
        last_failure: job.last_failure.clone(),
        resumed: job
            .replicas
            .iter()
            .filter(|r| r.resumed_from.is_some())
            .count() as u32,
        last_checkpoint: job
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Sent)
            .filter_map(|r| r.checkpoint_seq)
            .max(),
        quorum: job.quorum,
    }
}

/// A harvest policy by name or file.
pub(crate) fn load_policy(spec: &str) -> anyhow::Result<Policy> {
    match spec {
        "default" => Ok(Policy::default()),
        "dedicated" => Policy::from_toml(
            "idle_minutes = 0.0\nmax_non_fog_cpu_percent = 100.0\nmin_dwell_s = 0.0\ngrace_period_s = 5.0\nresume_backoff_s = 5.0\nmin_battery_percent = 20.0\n",
        )
        .context("the dedicated policy"),
        path => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading policy {path}"))?;
            Policy::from_toml(&text).with_context(|| format!("in policy file {path}"))
        }
    }
}

/// What the harvest controller asked of the work during one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HarvestCall {
    Pause,
    Resume,
    Checkpoint,
    Preempt,
}

/// fog-harvest's `WorkControl`, implemented with fog-exec: the controller's
/// calls are collected during its (synchronous) step and carried out on
/// every task this node runs right after it.
#[derive(Debug, Default)]
struct HarvestWork {
    calls: Vec<HarvestCall>,
}

impl WorkControl for HarvestWork {
    fn resume(&mut self) -> Result<(), WorkError> {
        self.calls.push(HarvestCall::Resume);
        Ok(())
    }
    fn pause(&mut self) -> Result<(), WorkError> {
        self.calls.push(HarvestCall::Pause);
        Ok(())
    }
    fn throttle(&mut self, _cpu_share: f64) -> Result<(), WorkError> {
        // The share is announced in heartbeats (fewer tasks are placed here);
        // fog-exec has no per-task CPU knob for running WASM tasks.
        Ok(())
    }
    fn checkpoint_now(&mut self) -> Result<(), WorkError> {
        self.calls.push(HarvestCall::Checkpoint);
        Ok(())
    }
    fn preempt(&mut self) -> Result<(), WorkError> {
        self.calls.push(HarvestCall::Preempt);
        Ok(())
    }
}

/// Applies settlements to the ledger in `dir` (mints for agreeing
/// replicas, quorum-mismatch evidence for the others) and reads the view.
/// Opens the ledger for each batch, so `fog dao` commands on the same
/// directory (proposals, votes) work while the node runs.
fn settle(
    dir: &std::path::Path,
    batch: &[Settlement],
) -> anyhow::Result<(DaoView, u64, HashMap<AccountId, u64>)> {
    let path = dir.join("ledger.db");
    let authority = SigningKey::load(&dir.join("keys/authority.key"))
        .context("reading the ledger authority key")?;
    let log = SigningKey::load(&dir.join("keys/log.key")).ok();
    let unix_s = now_ms() / 1000;
    let mut ledger =
        Ledger::open(&path, log).with_context(|| format!("opening {}", path.display()))?;
    for s in batch {
        let task = task_digest(&s.task);
        let Ok(digest) = hex::decode(&s.digest) else {
            continue;
        };
        let Ok(digest) = <[u8; 32]>::try_from(digest.as_slice()) else {
            continue;
        };
        let mut attestations = Vec::new();
        for (account, signature) in &s.agreeing {
            let (Ok(account), Ok(sig)) = (parse_account(account), hex::decode(signature)) else {
                continue;
            };
            let Ok(signature) = <[u8; 64]>::try_from(sig.as_slice()) else {
                continue;
            };
            if !fog_dao::verify_task_result(
                &account,
                &task,
                &SignedResult {
                    result: digest,
                    signature,
                },
            ) {
                tracing::warn!(task = %s.task, "settlement signature does not verify; not paid");
                continue;
            }
            attestations.push((account, signature));
            let units = (s.fuel / 100_000).max(1);
            let time = ledger.state().time().max(unix_s);
            if let Err(e) = ledger.submit(
                &authority,
                time,
                Body::Mint {
                    to: account,
                    rule: EarningRule::Compute,
                    units,
                },
            ) {
                tracing::warn!(error = %e, "reward not minted");
            }
        }
        for (account, their_digest, signature) in &s.disagreeing {
            let (Ok(node), Ok(d), Ok(sig)) = (
                parse_account(account),
                hex::decode(their_digest),
                hex::decode(signature),
            ) else {
                continue;
            };
            let (Ok(result), Ok(signature)) = (
                <[u8; 32]>::try_from(d.as_slice()),
                <[u8; 64]>::try_from(sig.as_slice()),
            ) else {
                continue;
            };
            let evidence = fog_dao::MismatchEvidence {
                node,
                task,
                node_result: SignedResult { result, signature },
                majority: digest,
                attestations: attestations.clone(),
            };
            let time = ledger.state().time().max(unix_s);
            match ledger.submit(&authority, time, Body::QuorumMismatch(evidence)) {
                Ok(_) => {
                    tracing::info!(task = %s.task, "quorum-mismatch evidence recorded; stake slashed");
                }
                Err(e) => {
                    tracing::warn!(task = %s.task, error = %e, "evidence refused by the ledger");
                }
            }
        }
    }
    let state = ledger.state();
    let mut rewards = 0u64;
    let mut evidence = 0u64;
    for seq in 0..ledger.len() {
        if let Ok(event) = ledger.event(seq) {
            match event.body() {
                Body::Mint {
                    rule: EarningRule::Compute,
                    units,
                    ..
                } => {
                    let (rate, mult) = state.params().earning(EarningRule::Compute);
                    rewards += units * rate * mult / 10_000;
                }
                Body::QuorumMismatch(_) | Body::DoubleSign(_) | Body::Downtime { .. } => {
                    evidence += 1;
                }
                _ => {}
            }
        }
    }
    let proposals = state
        .proposals()
        .iter()
        .rev()
        .take(50)
        .map(|p| {
            let [f, a, ab, v] = p.tally();
            ProposalView {
                id: p.id(),
                kind: p.kind().name().into(),
                description: p.description().into(),
                state: state.proposal_state(p.id(), state.time()).map_or_else(
                    |_| "unknown".to_owned(),
                    |s| format!("{s:?}").to_ascii_lowercase(),
                ),
                votes_for: f,
                votes_against: a,
                votes_abstain: ab,
                votes_veto: v,
            }
        })
        .collect();
    let supply = state.minted() - state.burned() - state.slashed();
    let balances = state
        .accounts()
        .iter()
        .map(|(id, a)| (*id, a.balance()))
        .collect();
    let quorum = state.params().get(ParamKey::MinQuorumSigners);
    Ok((
        DaoView {
            ledger: true,
            height: ledger.len(),
            supply,
            rewards_paid: rewards,
            evidence,
            balance: 0,
            proposals,
        },
        quorum,
        balances,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(replicas: u32) -> JobRecord {
        let request = SubmitRequest {
            replicas: Some(replicas),
            ..SubmitRequest::default()
        };
        let mut job = JobRecord::new("j-1-0".into(), request, None, 1);
        job.state = JobState::Running;
        job.replicas.push(ReplicaRecord {
            task: "j-1-0.0".into(),
            peer: "p".into(),
            node: "n".into(),
            state: ReplicaState::Sent,
            sent_ms: 1,
            result: None,
            checkpoint_seq: None,
            resumed_from: None,
        });
        job
    }

    #[test]
    fn a_job_fails_once_its_failure_budget_is_spent() {
        let failed = Counter::default();
        let mut j = job(2);
        for i in 0..2 + FAILURE_BUDGET {
            assert!(record_failure(&mut j, format!("n{i}: refused"), &failed).is_empty());
            assert_eq!(j.state, JobState::Running);
        }
        assert_eq!(j.last_failure.as_deref(), Some("n5: refused"));
        let cancels = record_failure(&mut j, "n6: refused".into(), &failed);
        assert_eq!(j.state, JobState::Failed);
        assert_eq!(failed.get(), 1);
        assert!(j.error.as_deref().unwrap().contains("7 replicas failed"));
        assert!(j.error.as_deref().unwrap().contains("n6: refused"));
        assert_eq!(cancels.len(), 1, "the replica still running is cancelled");
        assert!(j.replicas.iter().all(|r| r.state == ReplicaState::Dropped));
        // A final job stays as it is.
        assert!(record_failure(&mut j, "late".into(), &failed).is_empty());
        assert_eq!(failed.get(), 1);
    }

    #[test]
    fn a_resumed_replica_is_compared_by_its_output_alone() {
        let replica = |task: &str, output: &str, fuel: u64, from: Option<&str>| ReplicaRecord {
            task: task.into(),
            peer: task.into(),
            node: task.into(),
            state: ReplicaState::Reported,
            sent_ms: 1,
            result: Some(ResultRecord {
                exit_code: Some(0),
                failure: None,
                output_hash: output.into(),
                fuel,
                stdout: vec![],
                stderr: vec![],
                account: String::new(),
                signature: String::new(),
            }),
            checkpoint_seq: None,
            resumed_from: from.map(Into::into),
        };
        let full = replica("a", "h", 100, None);
        let resumed = replica("b", "h", 40, Some("x"));
        let astray = replica("c", "g", 30, Some("y"));
        let all = vec![full.clone(), resumed.clone(), astray.clone()];
        assert_eq!(compared_fuel(&full, &all), 100);
        assert_eq!(
            compared_fuel(&resumed, &all),
            100,
            "takes the full run's fuel"
        );
        assert_eq!(
            compared_fuel(&astray, &all),
            30,
            "no full run to compare with"
        );
        assert_eq!(compared_fuel(&resumed, std::slice::from_ref(&resumed)), 40);
    }

    #[test]
    fn quorum_is_a_majority_raised_by_the_parameter_up_to_all() {
        assert_eq!(quorum_size(1, None), 1);
        assert_eq!(quorum_size(3, None), 2);
        assert_eq!(quorum_size(4, None), 3);
        assert_eq!(quorum_size(3, Some(3)), 3);
        assert_eq!(quorum_size(3, Some(9)), 3);
    }
}
