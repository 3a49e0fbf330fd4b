//! fog-exec: running work safely on a contributing device.
//!
//! Two real backends behind one [`Executor`] trait: **wasmtime** (WASI
//! preview 1 with captured, capped output, one shared engine, a content-hash
//! module cache in memory and precompiled on disk, `InstancePre`, the pooling
//! allocator and copy-on-write memory images) and **Docker** through bollard
//! (images loaded from a local tarball, memory/CPU/pids limits, no network by
//! default). Every task goes through a lifecycle persisted in SQLite
//! (`Pending → Assigned → Running → Succeeded | Failed | Cancelled |
//! Preempted | Lost`), can checkpoint through the `fog` WASM imports (or a
//! mounted directory for containers), be paused, preempted and resumed, and
//! its result can be verified by a quorum of replicas ([`verify`]).
//!
//! WASM runs are deterministic (NaN canonicalization, deterministic relaxed
//! SIMD, fixed clocks, seeded randomness), so honest replicas agree on the
//! output hash and on the fuel consumed.
//!
//! ```
//! use fog_exec::{Executor, ExecutorConfig, LocalExecutor, TaskId, TaskSpec, TaskState, WasmWorkload};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A WASI module that prints "hi\n" (as a binary; tests write WAT text).
//! let wasm = fog_exec::examples::HELLO_WASM;
//! let dir = std::env::temp_dir().join(format!("fog-exec-doc-{}", std::process::id()));
//! let (exec, _recovered) = LocalExecutor::open(ExecutorConfig::new(&dir).with_docker(false)).await?;
//! let id = TaskId::new("hello-1")?;
//! exec.submit(TaskSpec::wasm(id.clone(), WasmWorkload::new(wasm))).await?;
//! let status = exec.wait(&id).await?;
//! assert_eq!(status.state, TaskState::Succeeded);
//! assert_eq!(status.result.unwrap().output.stdout, b"hi\n");
//! # drop(exec);
//! # let _ = std::fs::remove_dir_all(&dir);
//! # Ok(())
//! # }
//! ```

mod control;
mod docker;
pub mod examples;
mod executor;
pub mod image;
mod snapshot;
mod spec;
mod store;
pub mod verify;
mod wasm;

use std::path::Path;

pub use docker::{CHECKPOINT_MOUNT, DockerBackend};
pub use executor::{Executor, ExecutorConfig, LocalExecutor, Recovery, StatusStream, StreamItem};
pub use spec::{
    ContainerWorkload, FailureReason, Limits, ModuleHash, Output, StatusEvent, TaskId, TaskResult,
    TaskSpec, TaskState, TaskStatus, WasmWorkload, Workload,
};
pub use wasm::{WasmConfig, WasmEngine};

/// Errors of the executor (a task over a limit is not an error: it ends
/// Failed with a [`FailureReason`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The task spec is not acceptable.
    #[error("invalid task spec: {0}")]
    InvalidSpec(String),
    /// The WASM module does not compile or imports something unknown.
    #[error("invalid wasm module: {0}")]
    InvalidModule(String),
    /// The wasmtime engine could not be set up or failed.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// The SQLite task store failed.
    #[error("task store: {0}")]
    Store(String),
    /// A file operation failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The Docker daemon refused or failed.
    #[error("docker: {0}")]
    Docker(String),
    /// A container checkpoint could not be packed or restored (over its
    /// limit, holding something other than files and directories, or a
    /// corrupt or hostile archive).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// No task with this id.
    #[error("unknown task {0}")]
    UnknownTask(TaskId),
    /// The operation needs a running (or preempted) task.
    #[error("task {id} is {state}, not running")]
    NotRunning {
        /// The task.
        id: TaskId,
        /// Its state.
        state: TaskState,
    },
    /// The lifecycle does not allow this transition.
    #[error("task {id}: illegal transition {from} -> {to}")]
    IllegalTransition {
        /// The task.
        id: TaskId,
        /// Current state.
        from: TaskState,
        /// Refused next state.
        to: TaskState,
    },
    /// Too many unfinished tasks; try again later.
    #[error("executor busy: {queued} tasks unfinished")]
    Busy {
        /// Unfinished tasks.
        queued: usize,
    },
    /// The executor is shutting down.
    #[error("executor closed")]
    Closed,
}

impl ExecError {
    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        ExecError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        }
    }
}
