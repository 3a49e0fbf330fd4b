//! What a task is: its workload, its limits, its lifecycle states and its
//! result.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A task identifier chosen by the submitter. Submitting the same id twice is
/// idempotent: the second submission returns the first one's task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// Wraps an id. Ids are opaque text of 1 to 128 bytes without control
    /// characters; see [`TaskId::parse`] for the checked constructor.
    pub fn new(id: impl Into<String>) -> Result<Self, crate::ExecError> {
        Self::parse(id.into())
    }

    /// Checks and wraps an id.
    pub fn parse(id: String) -> Result<Self, crate::ExecError> {
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(crate::ExecError::InvalidSpec(format!(
                "task id must be 1 to 128 bytes without control characters, got {} bytes",
                id.len()
            )));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resource limits of one task. Every field has a safe default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// WASM fuel (roughly one unit per instruction); `None` means unmetered
    /// (the wall-clock timeout still applies).
    pub fuel: Option<u64>,
    /// Memory limit in bytes (WASM linear memory, or the container's memory).
    pub memory_bytes: u64,
    /// Wall-clock limit for one attempt.
    pub timeout: Duration,
    /// Bytes of stdout kept; more output is dropped and the result marked
    /// truncated.
    pub stdout_bytes: usize,
    /// Bytes of stderr kept, as for stdout.
    pub stderr_bytes: usize,
    /// Container CPU limit in millicores (1000 = one core). Docker only.
    pub cpu_millis: u32,
    /// Container process limit. Docker only.
    pub pids: u32,
    /// Largest checkpoint a task may save, in bytes.
    pub checkpoint_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: Some(10_000_000_000),
            memory_bytes: 64 << 20,
            timeout: Duration::from_mins(1),
            stdout_bytes: 1 << 20,
            stderr_bytes: 1 << 20,
            cpu_millis: 1000,
            pids: 64,
            checkpoint_bytes: 16 << 20,
        }
    }
}

impl Limits {
    /// Sets the fuel budget (`None`: unmetered).
    pub fn with_fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }
    /// Sets the memory limit in bytes.
    pub fn with_memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }
    /// Sets the wall-clock timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets both output caps (stdout and stderr) in bytes.
    pub fn with_output_bytes(mut self, bytes: usize) -> Self {
        self.stdout_bytes = bytes;
        self.stderr_bytes = bytes;
        self
    }
    /// Sets the container CPU limit in millicores.
    pub fn with_cpu_millis(mut self, millis: u32) -> Self {
        self.cpu_millis = millis;
        self
    }
    /// Sets the container process limit.
    pub fn with_pids(mut self, pids: u32) -> Self {
        self.pids = pids;
        self
    }
}

/// A WebAssembly (WASI preview 1) workload.
#[derive(Debug, Clone)]
pub struct WasmWorkload {
    pub(crate) module: Arc<[u8]>,
    pub(crate) hash: ModuleHash,
    pub(crate) args: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) stdin: Vec<u8>,
}

impl WasmWorkload {
    /// A workload running `module` (WASM binary bytes) with no arguments.
    pub fn new(module: impl Into<Arc<[u8]>>) -> Self {
        let module = module.into();
        Self {
            hash: ModuleHash::of(&module),
            module,
            args: Vec::new(),
            env: Vec::new(),
            stdin: Vec::new(),
        }
    }
    /// A workload whose module hash is already known (from the store).
    pub(crate) fn with_hash(module: Arc<[u8]>, hash: ModuleHash) -> Self {
        Self {
            module,
            hash,
            args: Vec::new(),
            env: Vec::new(),
            stdin: Vec::new(),
        }
    }

    /// Sets the arguments after `argv[0]` (which is always `task`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }
    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Sets the bytes the guest reads on stdin.
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }
    /// The SHA-256 of the module bytes (the cache key).
    pub fn module_hash(&self) -> ModuleHash {
        self.hash
    }
}

/// A container workload for the Docker backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerWorkload {
    pub(crate) image: String,
    pub(crate) image_tar: Option<PathBuf>,
    pub(crate) cmd: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) read_only_rootfs: bool,
    pub(crate) network: bool,
}

impl ContainerWorkload {
    /// A workload running `image` with its default command.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            image_tar: None,
            cmd: Vec::new(),
            env: Vec::new(),
            read_only_rootfs: false,
            network: false,
        }
    }
    /// Loads the image from this local tarball (`docker save` format) if the
    /// daemon does not have it yet.
    pub fn image_tar(mut self, path: impl Into<PathBuf>) -> Self {
        self.image_tar = Some(path.into());
        self
    }
    /// Sets the command.
    pub fn cmd<I, S>(mut self, cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cmd = cmd.into_iter().map(Into::into).collect();
        self
    }
    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
    /// Mounts the root filesystem read-only.
    pub fn read_only_rootfs(mut self, yes: bool) -> Self {
        self.read_only_rootfs = yes;
        self
    }
    /// Gives the container a network (off by default).
    pub fn network(mut self, yes: bool) -> Self {
        self.network = yes;
        self
    }
}

/// What a task runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Workload {
    /// A WASI preview 1 module on wasmtime.
    Wasm(WasmWorkload),
    /// A container on Docker.
    Container(ContainerWorkload),
}

/// A task to run: id, workload, limits, and optionally the checkpoint it
/// starts from.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub(crate) id: TaskId,
    pub(crate) workload: Workload,
    pub(crate) limits: Limits,
    pub(crate) checkpoint: Option<Vec<u8>>,
}

impl TaskSpec {
    /// A task with default limits.
    pub fn new(id: TaskId, workload: Workload) -> Self {
        Self {
            id,
            workload,
            limits: Limits::default(),
            checkpoint: None,
        }
    }
    /// A WASM task with default limits.
    pub fn wasm(id: TaskId, workload: WasmWorkload) -> Self {
        Self::new(id, Workload::Wasm(workload))
    }
    /// A container task with default limits.
    pub fn container(id: TaskId, workload: ContainerWorkload) -> Self {
        Self::new(id, Workload::Container(workload))
    }
    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
    /// Starts the task from `data`, a checkpoint another run of the same
    /// task saved (for example on a node that failed): a WASM guest's first
    /// attempt sees it through `fog.checkpoint_load` as if it had saved it
    /// itself; a container finds it unpacked in its checkpoint directory
    /// (the data is the tar archive its own commits produce, see
    /// [`LocalExecutor::checkpoint`](crate::LocalExecutor::checkpoint)). It
    /// is stored with the task as its checkpoint number 1, so the task's own
    /// checkpoints count on from 2. A checkpoint over
    /// [`Limits::checkpoint_bytes`], or for a container one that is not an
    /// archive of plain files and directories, is refused at submission.
    pub fn with_checkpoint(mut self, data: Vec<u8>) -> Self {
        self.checkpoint = Some(data);
        self
    }
    /// The checkpoint the task starts from, if any.
    pub fn checkpoint(&self) -> Option<&[u8]> {
        self.checkpoint.as_deref()
    }
    /// The task id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }
    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// The workload.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
}

/// SHA-256 of a WASM module's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash([u8; 32]);

impl ModuleHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses lowercase hex.
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Self(out))
    }
}

/// Where a task is in its lifecycle.
///
/// `Pending → Assigned → Running → Succeeded | Failed | Cancelled | Preempted
/// | Lost`. A preempted task may be resumed (`Preempted → Assigned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskState {
    /// Accepted and persisted, not yet given to a backend.
    Pending,
    /// Given to a backend, not started.
    Assigned,
    /// Running (possibly paused).
    Running,
    /// Finished with exit code 0.
    Succeeded,
    /// Finished over a limit, trapped or with a non-zero exit.
    Failed,
    /// Stopped on request.
    Cancelled,
    /// Stopped to make room; resumable from its last checkpoint.
    Preempted,
    /// Was running when the executor stopped and had no checkpoint.
    Lost,
}

impl TaskState {
    /// Whether no further transition happens without a resume.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::Preempted
                | TaskState::Lost
        )
    }

    /// Lowercase name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Preempted => "preempted",
            TaskState::Lost => "lost",
        }
    }

    /// Parses [`TaskState::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => TaskState::Pending,
            "assigned" => TaskState::Assigned,
            "running" => TaskState::Running,
            "succeeded" => TaskState::Succeeded,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            "preempted" => TaskState::Preempted,
            "lost" => TaskState::Lost,
            _ => return None,
        })
    }

    /// Whether `self → next` is a lifecycle edge.
    pub fn can_move_to(self, next: TaskState) -> bool {
        use TaskState as S;
        matches!(
            (self, next),
            (S::Pending, S::Assigned | S::Cancelled | S::Lost)
                | (
                    S::Assigned,
                    S::Running | S::Failed | S::Cancelled | S::Lost | S::Preempted
                )
                | (
                    S::Running,
                    S::Succeeded | S::Failed | S::Cancelled | S::Preempted | S::Lost
                )
                | (S::Preempted | S::Lost, S::Assigned)
                | (S::Preempted, S::Cancelled)
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FailureReason {
    /// The WASM fuel budget ran out.
    OutOfFuel {
        /// The budget.
        fuel: u64,
    },
    /// A memory grow beyond the limit was refused.
    MemoryLimit {
        /// Bytes the guest asked for.
        requested: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The wall-clock timeout passed.
    Timeout {
        /// The timeout in milliseconds.
        millis: u64,
    },
    /// The guest trapped (unreachable, out-of-bounds access, ...).
    Trap {
        /// The trap message.
        message: String,
    },
    /// The program exited with a non-zero code.
    NonZeroExit {
        /// The exit code.
        code: i32,
    },
    /// The container was killed by the kernel's OOM killer.
    OomKilled,
    /// The executor could not run the task (bad module, image missing, ...).
    Setup {
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureReason::OutOfFuel { fuel } => write!(f, "out of fuel (budget {fuel})"),
            FailureReason::MemoryLimit { requested, limit } => write!(
                f,
                "memory limit: grow to {requested} bytes refused (limit {limit} bytes)"
            ),
            FailureReason::Timeout { millis } => write!(f, "timeout after {millis} ms"),
            FailureReason::Trap { message } => write!(f, "trap: {message}"),
            FailureReason::NonZeroExit { code } => write!(f, "exited with code {code}"),
            FailureReason::OomKilled => f.write_str("killed by the out-of-memory killer"),
            FailureReason::Setup { message } => write!(f, "setup failed: {message}"),
        }
    }
}

/// Captured output of a task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Captured stdout (at most the stdout cap).
    pub stdout: Vec<u8>,
    /// Captured stderr (at most the stderr cap).
    pub stderr: Vec<u8>,
    /// Whether stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// Whether stderr was cut at the cap.
    pub stderr_truncated: bool,
}

/// How one finished attempt of a task ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskResult {
    /// Exit code (0 for a WASM module that returned from `_start`).
    pub exit_code: Option<i32>,
    /// Why it failed, if it did.
    pub failure: Option<FailureReason>,
    /// Captured output.
    pub output: Output,
    /// WASM fuel consumed (all attempts together); 0 for containers.
    pub fuel_consumed: u64,
    /// SHA-256 over exit code, stdout and stderr: what replicas compare.
    pub output_hash: String,
    /// Wall time of the last attempt in microseconds.
    pub wall_micros: u64,
}

impl TaskResult {
    pub(crate) fn new(
        exit_code: Option<i32>,
        failure: Option<FailureReason>,
        output: Output,
        fuel_consumed: u64,
        wall: Duration,
    ) -> Self {
        let output_hash = output_hash(exit_code, &output);
        Self {
            exit_code,
            failure,
            output,
            fuel_consumed,
            output_hash,
            wall_micros: u64::try_from(wall.as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Whether the task succeeded.
    pub fn succeeded(&self) -> bool {
        self.failure.is_none() && self.exit_code == Some(0)
    }
}

fn output_hash(exit_code: Option<i32>, output: &Output) -> String {
    let mut h = Sha256::new();
    h.update(b"fog-exec/result/v1");
    h.update(exit_code.unwrap_or(i32::MIN).to_le_bytes());
    for (bytes, cut) in [
        (&output.stdout, output.stdout_truncated),
        (&output.stderr, output.stderr_truncated),
    ] {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
        h.update([u8::from(cut)]);
    }
    hex::encode(h.finalize())
}

/// A task's current status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskStatus {
    /// The task.
    pub id: TaskId,
    /// Its state.
    pub state: TaskState,
    /// Attempt number (1 for the first run; a resume adds one).
    pub attempt: u32,
    /// Whether it is paused (only while running).
    pub paused: bool,
    /// The result once an attempt finished.
    pub result: Option<TaskResult>,
}

/// One event on the status stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusEvent {
    /// A lifecycle transition (already persisted).
    State {
        /// The task.
        id: TaskId,
        /// The new state.
        state: TaskState,
    },
    /// The task saved a checkpoint (already persisted).
    Checkpointed {
        /// The task.
        id: TaskId,
        /// Checkpoint sequence number (1 for the first, or for the
        /// checkpoint the task was submitted with; its own count on from 2).
        seq: u64,
    },
    /// The task was paused or resumed.
    Paused {
        /// The task.
        id: TaskId,
        /// `true` when paused, `false` when running again.
        paused: bool,
    },
}

impl StatusEvent {
    /// The task the event is about.
    pub fn id(&self) -> &TaskId {
        match self {
            StatusEvent::State { id, .. }
            | StatusEvent::Checkpointed { id, .. }
            | StatusEvent::Paused { id, .. } => id,
        }
    }
}
