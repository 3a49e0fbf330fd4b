//! The [`Executor`] trait and [`LocalExecutor`], which runs tasks on this
//! machine with the wasmtime and Docker backends and persists every
//! lifecycle transition.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, broadcast, watch};

use crate::ExecError;
use crate::control::{StopCause, TaskControl};
use crate::docker::{CheckpointTaker, DockerBackend, DockerEnd};
use crate::snapshot;
use crate::spec::{
    FailureReason, ModuleHash, Output, StatusEvent, TaskId, TaskResult, TaskSpec, TaskState,
    TaskStatus, WasmWorkload, Workload,
};
use crate::store::{EvidenceRow, StoredSpec, StoredWorkload, TaskRow, TaskStore};
use crate::verify::Evidence;
use crate::wasm::{CheckpointSink, RunContext, RunEnd, WasmConfig, WasmEngine};

/// Runs tasks. Implemented by [`LocalExecutor`]; other layers (the harvest
/// layer's work control, the node runtime) drive execution through it.
pub trait Executor: Send + Sync {
    /// Accepts a task: persists it as Pending and starts it when a slot is
    /// free. Submitting an id that exists returns that task's status and
    /// changes nothing.
    fn submit(&self, spec: TaskSpec) -> impl Future<Output = Result<TaskStatus, ExecError>> + Send;
    /// The task's current status.
    fn status(&self, id: &TaskId) -> Result<TaskStatus, ExecError>;
    /// Waits until the task is in a terminal state and returns its status.
    fn wait(&self, id: &TaskId) -> impl Future<Output = Result<TaskStatus, ExecError>> + Send;
    /// A stream of status events for all tasks (bounded; see [`StatusStream`]).
    fn subscribe(&self) -> StatusStream;
    /// Captured output of the task's last finished attempt (`None` before).
    fn logs(&self, id: &TaskId) -> Result<Option<Output>, ExecError>;
    /// Stops the task; it ends Cancelled.
    fn cancel(&self, id: &TaskId) -> impl Future<Output = Result<(), ExecError>> + Send;
    /// Asks the running task to save a checkpoint now (WASM: the guest sees
    /// `fog.checkpoint_requested() == 1`; Docker: a `checkpoint.request` file
    /// appears in its checkpoint directory).
    fn checkpoint_now(&self, id: &TaskId) -> Result<(), ExecError>;
    /// Pauses a running task (WASM: epoch yield; Docker: `docker pause`).
    fn pause(&self, id: &TaskId) -> impl Future<Output = Result<(), ExecError>> + Send;
    /// Resumes a paused task, or restarts a preempted one from its last
    /// checkpoint.
    fn resume(&self, id: &TaskId) -> impl Future<Output = Result<(), ExecError>> + Send;
    /// Stops a running task to make room; it ends Preempted and can be
    /// resumed from its last checkpoint.
    fn preempt(&self, id: &TaskId) -> impl Future<Output = Result<(), ExecError>> + Send;
}

/// Receiver of [`StatusEvent`]s. The buffer is bounded: a receiver that falls
/// more than the buffer behind loses the oldest events and is told how many
/// with [`StreamItem::Lagged`]; it should then re-read [`Executor::status`].
#[derive(Debug)]
pub struct StatusStream(broadcast::Receiver<StatusEvent>);

/// One item of a [`StatusStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamItem {
    /// The next event.
    Event(StatusEvent),
    /// This many events were dropped because the receiver was slow.
    Lagged(u64),
}

impl StatusStream {
    /// The next item, or `None` once the executor is gone.
    pub async fn next(&mut self) -> Option<StreamItem> {
        match self.0.recv().await {
            Ok(event) => Some(StreamItem::Event(event)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(StreamItem::Lagged(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Settings of a [`LocalExecutor`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecutorConfig {
    /// Data directory: the SQLite store, precompiled modules, work and
    /// checkpoint directories.
    pub data_dir: PathBuf,
    /// Tasks running at once; more wait in Pending.
    pub max_running: usize,
    /// Tasks accepted but not finished; `submit` answers
    /// [`ExecError::Busy`] beyond this.
    pub max_queued: usize,
    /// Events buffered per status subscriber.
    pub status_buffer: usize,
    /// wasmtime settings (its cache directory defaults to `data_dir/modules`).
    pub wasm: WasmConfig,
    /// Use the Docker daemon at its default socket for container tasks.
    pub docker: bool,
}

impl ExecutorConfig {
    /// Defaults for a data directory: 64 running, 65,536 queued, Docker on.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        Self {
            wasm: WasmConfig::default().with_cache_dir(data_dir.join("modules")),
            data_dir,
            max_running: 64,
            max_queued: 65_536,
            status_buffer: 4096,
            docker: true,
        }
    }
    /// Sets the number of tasks running at once.
    pub fn with_max_running(mut self, n: usize) -> Self {
        self.max_running = n.max(1);
        self
    }
    /// Sets the number of unfinished tasks accepted.
    pub fn with_max_queued(mut self, n: usize) -> Self {
        self.max_queued = n.max(1);
        self
    }
    /// Turns the Docker backend on or off.
    pub fn with_docker(mut self, yes: bool) -> Self {
        self.docker = yes;
        self
    }
}

/// Module byte strings kept in memory by the executor.
const MODULES_IN_MEMORY: usize = 64;

struct Live {
    control: Arc<TaskControl>,
    state: watch::Sender<TaskState>,
}

struct Shared {
    store: TaskStore,
    wasm: WasmEngine,
    docker: Option<DockerBackend>,
    events: broadcast::Sender<StatusEvent>,
    live: Mutex<HashMap<TaskId, Live>>,
    /// Module bytes by hash (bounded: an arbitrary entry is dropped when
    /// full; the store keeps every module).
    modules: Mutex<HashMap<String, Arc<[u8]>>>,
    slots: Semaphore,
    max_queued: usize,
    data_dir: PathBuf,
}

/// Runs tasks on this machine. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct LocalExecutor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LocalExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalExecutor")
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

/// What recovery did with the tasks found unfinished at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// Pending tasks queued again.
    pub requeued: Vec<TaskId>,
    /// Interrupted tasks restarted from their last checkpoint.
    pub resumed: Vec<TaskId>,
    /// Interrupted tasks without a checkpoint, now Lost.
    pub lost: Vec<TaskId>,
}

fn dir_name(id: &TaskId) -> String {
    hex::encode(&Sha256::digest(id.as_str().as_bytes())[..16])
}

fn seed_of(id: &TaskId) -> u64 {
    let d = Sha256::digest(id.as_str().as_bytes());
    u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

impl LocalExecutor {
    /// Opens (or creates) the executor's data directory and recovers
    /// unfinished tasks: pending ones are queued again, interrupted ones
    /// resume from their last checkpoint or are marked Lost. Must be called
    /// inside a tokio runtime.
    pub async fn open(config: ExecutorConfig) -> Result<(Self, Recovery), ExecError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| ExecError::io(&config.data_dir, &e))?;
        let store = TaskStore::open(&config.data_dir.join("tasks.sqlite"))?;
        let wasm = WasmEngine::new(config.wasm.clone())?;
        let docker = if config.docker {
            match DockerBackend::connect().await {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::info!(error = %e, "docker backend unavailable");
                    None
                }
            }
        } else {
            None
        };
        let exec = Self {
            shared: Arc::new(Shared {
                store,
                wasm,
                docker,
                events: broadcast::channel(config.status_buffer.max(1)).0,
                live: Mutex::new(HashMap::new()),
                modules: Mutex::new(HashMap::new()),
                slots: Semaphore::new(config.max_running.max(1)),
                max_queued: config.max_queued.max(1),
                data_dir: config.data_dir,
            }),
        };
        let recovery = exec.recover().await?;
        Ok((exec, recovery))
    }

    /// The shared wasmtime engine.
    pub fn wasm_engine(&self) -> &WasmEngine {
        &self.shared.wasm
    }

    /// Whether container tasks can run (a Docker daemon answered at open).
    pub fn has_docker(&self) -> bool {
        self.shared.docker.is_some()
    }

    /// The persisted transitions of a task, oldest first.
    pub fn history(&self, id: &TaskId) -> Result<Vec<TaskState>, ExecError> {
        self.shared.store.history(id)
    }

    /// A task's latest checkpoint: its sequence number (1 for the
    /// checkpoint it was submitted with, counting up with every one it
    /// saves) and its bytes; `None` before the first. What a node ships to
    /// the task's submitter so the task can resume elsewhere
    /// ([`TaskSpec::with_checkpoint`]) should this node fail.
    pub fn checkpoint(&self, id: &TaskId) -> Result<Option<(u64, Vec<u8>)>, ExecError> {
        self.shared.store.checkpoint(id)
    }

    /// Persists verification evidence (a replica that disagreed).
    pub async fn record_evidence(&self, evidence: &Evidence) -> Result<(), ExecError> {
        self.shared
            .store
            .record_evidence(EvidenceRow {
                task: evidence.task.clone(),
                node: evidence.node.clone(),
                claimed: evidence.claimed.to_string(),
                majority: evidence.majority.to_string(),
            })
            .await
    }

    /// All persisted evidence records, oldest first.
    pub fn evidence(&self) -> Result<Vec<(String, String, String, String)>, ExecError> {
        Ok(self
            .shared
            .store
            .evidence()?
            .into_iter()
            .map(|r| (r.task, r.node, r.claimed, r.majority))
            .collect())
    }

    async fn recover(&self) -> Result<Recovery, ExecError> {
        let store = &self.shared.store;
        let mut recovery = Recovery::default();
        for row in store.tasks_in(&[TaskState::Pending])? {
            recovery.requeued.push(row.id.clone());
            self.spawn(row.id, row.spec);
        }
        for row in store.tasks_in(&[TaskState::Assigned, TaskState::Running])? {
            if store.checkpoint(&row.id)?.is_some() {
                self.set_state(
                    &row.id,
                    TaskState::Preempted,
                    false,
                    None,
                    Some("executor restarted"),
                )
                .await?;
                recovery.resumed.push(row.id.clone());
                self.spawn(row.id, row.spec);
            } else {
                if let (Some(docker), StoredWorkload::Container(_)) =
                    (&self.shared.docker, &row.spec.workload)
                {
                    docker.remove_quietly(&container_name(&row.id)).await;
                }
                self.set_state(
                    &row.id,
                    TaskState::Lost,
                    false,
                    None,
                    Some("executor restarted"),
                )
                .await?;
                recovery.lost.push(row.id);
            }
        }
        Ok(recovery)
    }

    async fn set_state(
        &self,
        id: &TaskId,
        state: TaskState,
        bump: bool,
        result: Option<&TaskResult>,
        detail: Option<&str>,
    ) -> Result<u32, ExecError> {
        let attempt = self
            .shared
            .store
            .transition(id, state, bump, result, detail.map(str::to_owned))
            .await?;
        if let Some(live) = self
            .shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
        {
            live.state.send_replace(state);
        }
        let _ = self.shared.events.send(StatusEvent::State {
            id: id.clone(),
            state,
        });
        Ok(attempt)
    }

    fn live_control(&self, id: &TaskId) -> Option<Arc<TaskControl>> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|l| l.control.clone())
    }

    /// Registers the task as live and spawns its run (a Preempted task
    /// restarts from its last checkpoint).
    fn spawn(&self, id: TaskId, spec: StoredSpec) {
        let control = Arc::new(TaskControl::new());
        let initial = TaskState::Pending;
        self.shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                id.clone(),
                Live {
                    control: control.clone(),
                    state: watch::channel(initial).0,
                },
            );
        let exec = self.clone();
        tokio::spawn(async move {
            if let Err(e) = exec.drive(&id, spec, control).await {
                tracing::warn!(task = %id, error = %e, "task run failed to record");
            }
            exec.shared
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        });
    }

    async fn drive(
        &self,
        id: &TaskId,
        spec: StoredSpec,
        control: Arc<TaskControl>,
    ) -> Result<(), ExecError> {
        let _permit = self
            .shared
            .slots
            .acquire()
            .await
            .map_err(|_| ExecError::Closed)?;
        if control.stop_requested().is_some() {
            self.set_state(id, TaskState::Cancelled, false, None, None)
                .await?;
            return Ok(());
        }
        let attempt = self
            .set_state(id, TaskState::Assigned, true, None, None)
            .await?;
        let end = match &spec.workload {
            StoredWorkload::Wasm {
                module,
                args,
                env,
                stdin,
            } => {
                let Some(bytes) = self.module_bytes(module)? else {
                    let r = setup_failure(format!("module {module} missing from the store"));
                    self.set_state(id, TaskState::Failed, false, Some(&r), None)
                        .await?;
                    return Ok(());
                };
                let hash = ModuleHash::from_hex(module)
                    .ok_or_else(|| ExecError::Store(format!("corrupt module hash {module:?}")))?;
                let mut workload = WasmWorkload::with_hash(bytes, hash)
                    .args(args.clone())
                    .stdin(stdin.clone());
                for (k, v) in env {
                    workload = workload.env(k.clone(), v.clone());
                }
                self.run_wasm(id, &workload, &spec, control, attempt)
                    .await?
            }
            StoredWorkload::Container(workload) => {
                let Some(docker) = self.shared.docker.clone() else {
                    let r = setup_failure("no docker daemon available".to_owned());
                    self.set_state(id, TaskState::Failed, false, Some(&r), None)
                        .await?;
                    return Ok(());
                };
                // A container starts from its last committed checkpoint
                // (or the one it was submitted with): whatever it left in
                // the directory after that commit is not part of it.
                let ckpt = self.checkpoint_dir(id);
                if let Some((_, data)) = self.shared.store.checkpoint(id)? {
                    let dir = ckpt.clone();
                    let restored =
                        tokio::task::spawn_blocking(move || snapshot::unpack(&data, &dir))
                            .await
                            .map_err(|e| ExecError::Checkpoint(e.to_string()))?;
                    if let Err(e) = restored {
                        let r = setup_failure(format!("restoring the checkpoint: {e}"));
                        self.set_state(id, TaskState::Failed, false, Some(&r), None)
                            .await?;
                        return Ok(());
                    }
                }
                std::fs::create_dir_all(&ckpt).map_err(|e| ExecError::io(&ckpt, &e))?;
                self.set_state(id, TaskState::Running, false, None, None)
                    .await?;
                let name = container_name(id);
                let taker = CheckpointTaker {
                    dir: ckpt,
                    max_bytes: spec.limits.checkpoint_bytes,
                    sink: self.checkpoint_sink(id),
                };
                match docker
                    .run(&name, workload, &spec.limits, &taker, &control)
                    .await
                {
                    DockerEnd::Finished(r) => RunEnd::Finished(r),
                    DockerEnd::Stopped(cause) => RunEnd::Stopped { cause, fuel: 0 },
                }
            }
        };
        match end {
            RunEnd::Finished(result) => {
                let state = if result.succeeded() {
                    TaskState::Succeeded
                } else {
                    TaskState::Failed
                };
                self.set_state(id, state, false, Some(&result), None)
                    .await?;
                self.cleanup(id);
            }
            RunEnd::Stopped { cause, fuel } => {
                let state = match cause {
                    StopCause::Preempted => TaskState::Preempted,
                    StopCause::Cancelled | StopCause::Timeout => TaskState::Cancelled,
                };
                let partial = TaskResult::new(
                    None,
                    None,
                    Output::default(),
                    fuel,
                    std::time::Duration::ZERO,
                );
                self.set_state(id, state, false, Some(&partial), None)
                    .await?;
                if state == TaskState::Cancelled {
                    self.cleanup(id);
                }
            }
        }
        Ok(())
    }

    async fn run_wasm(
        &self,
        id: &TaskId,
        workload: &WasmWorkload,
        spec: &StoredSpec,
        control: Arc<TaskControl>,
        attempt: u32,
    ) -> Result<RunEnd, ExecError> {
        // A module that cannot open files gets no directory (saves two
        // filesystem operations per task).
        let work_dir = if self.shared.wasm.uses_files(workload)? {
            let dir = self.work_dir(id);
            std::fs::create_dir_all(&dir).map_err(|e| ExecError::io(&dir, &e))?;
            Some(dir)
        } else {
            None
        };
        // The first attempt starts from the checkpoint it was submitted
        // with, if any; a later one from its last checkpoint, with the fuel
        // of the attempts before it.
        let checkpoint = self.shared.store.checkpoint(id)?.map(|(_, data)| data);
        let fuel_before = if attempt > 1 {
            self.shared
                .store
                .task(id)?
                .and_then(|row| row.result.map(|r| r.fuel_consumed))
                .unwrap_or(0)
        } else {
            0
        };
        let sink = self.checkpoint_sink(id);
        self.set_state(id, TaskState::Running, false, None, None)
            .await?;
        let ctx = RunContext {
            work_dir,
            seed: seed_of(id),
            checkpoint,
            control: Some(control),
            sink: Some(sink),
            fuel_before,
        };
        self.shared.wasm.run_with(workload, &spec.limits, ctx).await
    }

    /// Where a task's checkpoints go: persisted as its next sequence
    /// number, then announced as [`StatusEvent::Checkpointed`].
    fn checkpoint_sink(&self, id: &TaskId) -> CheckpointSink {
        let store = self.shared.store.clone();
        let events = self.shared.events.clone();
        let id = id.clone();
        Arc::new(move |data| {
            let store = store.clone();
            let events = events.clone();
            let id = id.clone();
            Box::pin(async move {
                let seq = store.save_checkpoint(&id, data).await?;
                let _ = events.send(StatusEvent::Checkpointed { id, seq });
                Ok(seq)
            })
        })
    }

    fn remember_module(&self, hash: ModuleHash, bytes: &Arc<[u8]>) {
        let mut modules = self
            .shared
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if modules.contains_key(&hash.to_hex()) {
            return;
        }
        if modules.len() >= MODULES_IN_MEMORY
            && let Some(victim) = modules.keys().next().cloned()
        {
            modules.remove(&victim);
        }
        modules.insert(hash.to_hex(), bytes.clone());
    }

    /// Module bytes by hash: from memory, else from the store.
    fn module_bytes(&self, hash: &str) -> Result<Option<Arc<[u8]>>, ExecError> {
        if let Some(bytes) = self
            .shared
            .modules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(hash)
        {
            return Ok(Some(bytes.clone()));
        }
        let Some(bytes) = self.shared.store.module(hash)? else {
            return Ok(None);
        };
        let bytes: Arc<[u8]> = bytes.into();
        if let Some(parsed) = ModuleHash::from_hex(hash) {
            self.remember_module(parsed, &bytes);
        }
        Ok(Some(bytes))
    }

    fn work_dir(&self, id: &TaskId) -> PathBuf {
        self.shared.data_dir.join("work").join(dir_name(id))
    }

    fn checkpoint_dir(&self, id: &TaskId) -> PathBuf {
        self.shared.data_dir.join("checkpoints").join(dir_name(id))
    }

    fn cleanup(&self, id: &TaskId) {
        for dir in [self.work_dir(id), self.checkpoint_dir(id)] {
            if dir.exists()
                && let Err(e) = std::fs::remove_dir_all(&dir)
            {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove task directory");
            }
        }
    }

    fn status_of(row: TaskRow, paused: bool) -> TaskStatus {
        TaskStatus {
            id: row.id,
            state: row.state,
            attempt: row.attempt,
            paused,
            result: row
                .result
                .filter(|_| row.state.is_terminal() && row.state != TaskState::Preempted),
        }
    }

    fn require(&self, id: &TaskId) -> Result<TaskRow, ExecError> {
        self.shared
            .store
            .task(id)?
            .ok_or_else(|| ExecError::UnknownTask(id.clone()))
    }
}

fn setup_failure(message: String) -> TaskResult {
    TaskResult::new(
        None,
        Some(FailureReason::Setup { message }),
        Output::default(),
        0,
        std::time::Duration::ZERO,
    )
}

pub(crate) fn container_name(id: &TaskId) -> String {
    format!("fog-task-{}", dir_name(id))
}

impl Executor for LocalExecutor {
    async fn submit(&self, spec: TaskSpec) -> Result<TaskStatus, ExecError> {
        let (stored, module) = match &spec.workload {
            Workload::Wasm(w) => {
                self.shared.wasm.prepare_workload(w)?;
                let hash = w.module_hash();
                self.remember_module(hash, &w.module);
                (
                    StoredWorkload::Wasm {
                        module: hash.to_hex(),
                        args: w.args.clone(),
                        env: w.env.clone(),
                        stdin: w.stdin.clone(),
                    },
                    Some((hash, w.module.clone())),
                )
            }
            Workload::Container(c) => (StoredWorkload::Container(c.clone()), None),
        };
        let stored = StoredSpec {
            workload: stored,
            limits: spec.limits.clone(),
        };
        {
            let live = self
                .shared
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if live.len() >= self.shared.max_queued && !live.contains_key(&spec.id) {
                return Err(ExecError::Busy { queued: live.len() });
            }
        }
        let checkpoint = match spec.checkpoint {
            Some(data) if data.len() > spec.limits.checkpoint_bytes => {
                return Err(ExecError::InvalidSpec(format!(
                    "the starting checkpoint has {} bytes; the task's limit is {}",
                    data.len(),
                    spec.limits.checkpoint_bytes
                )));
            }
            Some(data) => {
                if matches!(spec.workload, Workload::Container(_)) {
                    snapshot::validate(&data).map_err(|e| {
                        ExecError::InvalidSpec(format!("the starting checkpoint: {e}"))
                    })?;
                }
                Some(data)
            }
            None => None,
        };
        let created = self
            .shared
            .store
            .insert(&spec.id, &stored, module, checkpoint)
            .await?;
        if created {
            let _ = self.shared.events.send(StatusEvent::State {
                id: spec.id.clone(),
                state: TaskState::Pending,
            });
            self.spawn(spec.id.clone(), stored);
            Ok(TaskStatus {
                id: spec.id,
                state: TaskState::Pending,
                attempt: 0,
                paused: false,
                result: None,
            })
        } else {
            self.status(&spec.id)
        }
    }

    fn status(&self, id: &TaskId) -> Result<TaskStatus, ExecError> {
        let row = self.require(id)?;
        let paused = self.live_control(id).is_some_and(|c| c.is_paused());
        Ok(Self::status_of(row, paused))
    }

    async fn wait(&self, id: &TaskId) -> Result<TaskStatus, ExecError> {
        let rx = self
            .shared
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .map(|l| l.state.subscribe());
        if let Some(mut rx) = rx {
            // The sender goes away when the run ends: that ends the wait too.
            let _ = rx.wait_for(|s| s.is_terminal()).await;
        }
        self.status(id)
    }

    fn subscribe(&self) -> StatusStream {
        StatusStream(self.shared.events.subscribe())
    }

    fn logs(&self, id: &TaskId) -> Result<Option<Output>, ExecError> {
        Ok(self.require(id)?.result.map(|r| r.output))
    }

    async fn cancel(&self, id: &TaskId) -> Result<(), ExecError> {
        let row = self.require(id)?;
        if let Some(control) = self.live_control(id) {
            control.request_stop(StopCause::Cancelled);
            if let Some(docker) = &self.shared.docker
                && matches!(row.spec.workload, StoredWorkload::Container(_))
            {
                docker.unpause_quietly(&container_name(id)).await;
            }
            return Ok(());
        }
        if row.state == TaskState::Preempted {
            self.set_state(id, TaskState::Cancelled, false, None, None)
                .await?;
            self.cleanup(id);
            return Ok(());
        }
        Err(ExecError::NotRunning {
            id: id.clone(),
            state: row.state,
        })
    }

    fn checkpoint_now(&self, id: &TaskId) -> Result<(), ExecError> {
        let row = self.require(id)?;
        let control = self.live_control(id).ok_or_else(|| ExecError::NotRunning {
            id: id.clone(),
            state: row.state,
        })?;
        control.request_checkpoint();
        if matches!(row.spec.workload, StoredWorkload::Container(_)) {
            let path = self.checkpoint_dir(id).join(snapshot::REQUEST_FILE);
            std::fs::write(&path, b"1").map_err(|e| ExecError::io(&path, &e))?;
        }
        Ok(())
    }

    async fn pause(&self, id: &TaskId) -> Result<(), ExecError> {
        let row = self.require(id)?;
        let control = self.live_control(id).ok_or_else(|| ExecError::NotRunning {
            id: id.clone(),
            state: row.state,
        })?;
        if let (Some(docker), StoredWorkload::Container(_)) =
            (&self.shared.docker, &row.spec.workload)
        {
            if row.state != TaskState::Running {
                return Err(ExecError::NotRunning {
                    id: id.clone(),
                    state: row.state,
                });
            }
            docker.pause(&container_name(id)).await?;
        }
        if control.set_paused(true) {
            let _ = self.shared.events.send(StatusEvent::Paused {
                id: id.clone(),
                paused: true,
            });
        }
        Ok(())
    }

    async fn resume(&self, id: &TaskId) -> Result<(), ExecError> {
        let row = self.require(id)?;
        if let Some(control) = self.live_control(id) {
            if let (Some(docker), StoredWorkload::Container(_)) =
                (&self.shared.docker, &row.spec.workload)
            {
                docker.unpause(&container_name(id)).await?;
            }
            if control.set_paused(false) {
                let _ = self.shared.events.send(StatusEvent::Paused {
                    id: id.clone(),
                    paused: false,
                });
            }
            return Ok(());
        }
        if row.state == TaskState::Preempted {
            self.spawn(row.id, row.spec);
            return Ok(());
        }
        Err(ExecError::NotRunning {
            id: id.clone(),
            state: row.state,
        })
    }

    async fn preempt(&self, id: &TaskId) -> Result<(), ExecError> {
        let row = self.require(id)?;
        let control = self.live_control(id).ok_or_else(|| ExecError::NotRunning {
            id: id.clone(),
            state: row.state,
        })?;
        control.request_stop(StopCause::Preempted);
        if let (Some(docker), StoredWorkload::Container(_)) =
            (&self.shared.docker, &row.spec.workload)
        {
            docker.unpause_quietly(&container_name(id)).await;
        }
        Ok(())
    }
}
