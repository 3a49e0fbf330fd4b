//! The Docker backend (bollard): load the image from a local tarball,
//! create, start, wait, read logs, and always remove the container; memory,
//! CPU and pids limits, no network by default, optional read-only root
//! filesystem, timeout kill, OOM-kill detection, pause and unpause, and
//! the checkpoint handshake of [`crate::snapshot`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, KillContainerOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptions,
};
use futures_util::StreamExt;

use crate::ExecError;
use crate::control::{StopCause, TaskControl};
use crate::snapshot::{self, COMMIT_FILE, ERROR_FILE};
use crate::spec::{ContainerWorkload, FailureReason, Limits, Output, TaskResult};
use crate::wasm::CheckpointSink;

/// Where a container task sees its checkpoint directory.
pub const CHECKPOINT_MOUNT: &str = "/fog/checkpoint";

/// How often a running container's checkpoint directory is looked at for
/// a commit.
const COMMIT_POLL: Duration = Duration::from_millis(200);

/// A container's checkpoint directory and where its commits go.
pub(crate) struct CheckpointTaker {
    /// The host directory mounted at [`CHECKPOINT_MOUNT`].
    pub(crate) dir: PathBuf,
    /// The task's [`Limits::checkpoint_bytes`].
    pub(crate) max_bytes: usize,
    /// Persists a packed checkpoint.
    pub(crate) sink: CheckpointSink,
}

impl CheckpointTaker {
    /// Takes the container's checkpoint if it committed one: packs the
    /// directory, persists it and removes the commit file, so the container
    /// knows it may write again. A refused commit (too large, a symlink)
    /// is logged and explained in `checkpoint.error`; the task goes on.
    async fn take_committed(&self, name: &str) {
        let commit = self.dir.join(COMMIT_FILE);
        if !commit.exists() {
            return;
        }
        let dir = self.dir.clone();
        let max = self.max_bytes;
        let packed = tokio::task::spawn_blocking(move || snapshot::pack(&dir, max))
            .await
            .unwrap_or_else(|e| Err(ExecError::Checkpoint(e.to_string())));
        let saved = match packed {
            Ok(data) => (self.sink)(data).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error_file = self.dir.join(ERROR_FILE);
        match saved {
            Ok(()) => {
                let _ = std::fs::remove_file(&error_file);
            }
            Err(e) => {
                tracing::warn!(container = name, error = %e, "container checkpoint refused");
                let _ = std::fs::write(&error_file, format!("{e}\n"));
            }
        }
        let _ = std::fs::remove_file(&commit);
    }
}

/// How a container run ended.
#[derive(Debug)]
pub(crate) enum DockerEnd {
    Finished(TaskResult),
    Stopped(StopCause),
}

/// A connection to the local Docker daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DockerBackend {
    docker: Docker,
}

fn derr(e: &bollard::errors::Error) -> ExecError {
    ExecError::Docker(e.to_string())
}

impl DockerBackend {
    /// Connects to the daemon at its default socket (or `DOCKER_HOST`) and
    /// checks that it answers.
    pub async fn connect() -> Result<Self, ExecError> {
        let docker = Docker::connect_with_local_defaults().map_err(|e| derr(&e))?;
        // Older daemons refuse bollard's default API version: agree on one.
        let docker = tokio::time::timeout(Duration::from_secs(3), docker.negotiate_version())
            .await
            .map_err(|_| ExecError::Docker("daemon did not answer within 3 s".into()))?
            .map_err(|e| derr(&e))?;
        Ok(Self { docker })
    }

    /// Loads an image tarball (`docker save` format) into the daemon.
    pub async fn load_image_tar(&self, path: &Path) -> Result<(), ExecError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|e| ExecError::io(path, &e))?;
        let mut stream = self.docker.import_image(
            ImportImageOptionsBuilder::default().quiet(true).build(),
            bollard::body_full(bytes.into()),
            None,
        );
        while let Some(item) = stream.next().await {
            item.map_err(|e| derr(&e))?;
        }
        Ok(())
    }

    /// Makes sure `image` exists, loading `tar` if it does not.
    pub async fn ensure_image(&self, image: &str, tar: Option<&Path>) -> Result<(), ExecError> {
        if self.docker.inspect_image(image).await.is_ok() {
            return Ok(());
        }
        let Some(tar) = tar else {
            return Err(ExecError::Docker(format!(
                "image {image} is not present and no image tarball was given"
            )));
        };
        self.load_image_tar(tar).await?;
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|_| {
                ExecError::Docker(format!(
                    "image tarball {} does not contain {image}",
                    tar.display()
                ))
            })
    }

    pub(crate) async fn pause(&self, name: &str) -> Result<(), ExecError> {
        self.docker
            .pause_container(name)
            .await
            .map_err(|e| derr(&e))
    }

    pub(crate) async fn unpause(&self, name: &str) -> Result<(), ExecError> {
        self.docker
            .unpause_container(name)
            .await
            .map_err(|e| derr(&e))
    }

    pub(crate) async fn unpause_quietly(&self, name: &str) {
        let _ = self.docker.unpause_container(name).await;
    }

    pub(crate) async fn remove_quietly(&self, name: &str) {
        let _ = self
            .docker
            .remove_container(
                name,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
    }

    async fn kill(&self, name: &str) {
        let _ = self.docker.unpause_container(name).await;
        let _ = self
            .docker
            .kill_container(
                name,
                Some(
                    KillContainerOptionsBuilder::default()
                        .signal("KILL")
                        .build(),
                ),
            )
            .await;
    }

    /// Runs one container to the end. The container is removed on every
    /// path out of this function.
    pub(crate) async fn run(
        &self,
        name: &str,
        workload: &ContainerWorkload,
        limits: &Limits,
        checkpoints: &CheckpointTaker,
        control: &Arc<TaskControl>,
    ) -> DockerEnd {
        let started = Instant::now();
        let setup = |message: String| {
            DockerEnd::Finished(TaskResult::new(
                None,
                Some(FailureReason::Setup { message }),
                Output::default(),
                0,
                started.elapsed(),
            ))
        };
        if let Err(e) = self
            .ensure_image(&workload.image, workload.image_tar.as_deref())
            .await
        {
            return setup(e.to_string());
        }
        let end = match self.create(name, workload, limits, &checkpoints.dir).await {
            Ok(()) => {
                self.start_and_wait(name, limits, checkpoints, control, started)
                    .await
            }
            Err(e) => setup(e.to_string()),
        };
        self.remove_quietly(name).await;
        end
    }

    async fn create(
        &self,
        name: &str,
        workload: &ContainerWorkload,
        limits: &Limits,
        checkpoint_dir: &Path,
    ) -> Result<(), ExecError> {
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let host = HostConfig {
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(i64::from(limits.cpu_millis) * 1_000_000),
            pids_limit: Some(i64::from(limits.pids)),
            network_mode: Some(if workload.network { "bridge" } else { "none" }.to_owned()),
            readonly_rootfs: Some(workload.read_only_rootfs),
            binds: Some(vec![format!(
                "{}:{CHECKPOINT_MOUNT}:rw",
                checkpoint_dir.display()
            )]),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(workload.image.clone()),
            cmd: (!workload.cmd.is_empty()).then(|| workload.cmd.clone()),
            env: Some(
                workload
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(std::iter::once(format!(
                        "FOG_CHECKPOINT_DIR={CHECKPOINT_MOUNT}"
                    )))
                    .collect(),
            ),
            network_disabled: Some(!workload.network),
            labels: Some(HashMap::from([("fog.task".to_owned(), name.to_owned())])),
            host_config: Some(host),
            ..Default::default()
        };
        let options = || Some(CreateContainerOptionsBuilder::default().name(name).build());
        match self.docker.create_container(options(), body.clone()).await {
            Ok(_) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => {
                // A leftover from an interrupted run of the same task.
                self.remove_quietly(name).await;
                self.docker
                    .create_container(options(), body)
                    .await
                    .map(|_| ())
                    .map_err(|e| derr(&e))
            }
            Err(e) => Err(derr(&e)),
        }
    }

    async fn start_and_wait(
        &self,
        name: &str,
        limits: &Limits,
        checkpoints: &CheckpointTaker,
        control: &Arc<TaskControl>,
        started: Instant,
    ) -> DockerEnd {
        let setup = |message: String| {
            DockerEnd::Finished(TaskResult::new(
                None,
                Some(FailureReason::Setup { message }),
                Output::default(),
                0,
                started.elapsed(),
            ))
        };
        if let Err(e) = self.docker.start_container(name, None).await {
            return setup(derr(&e).to_string());
        }
        let mut wait = Box::pin(
            self.docker
                .wait_container(name, None::<WaitContainerOptions>),
        );
        let mut stopped: Option<StopCause> = None;
        let mut next_look = Instant::now() + COMMIT_POLL;
        loop {
            let due = started + limits.timeout + control.paused_for();
            tokio::select! {
                // Any answer (an exit code, or an error for a non-zero exit)
                // means the container stopped; inspect tells the details.
                _ = wait.next() => break,
                () = tokio::time::sleep(Duration::from_millis(20)) => {
                    if stopped.is_some() {
                        continue;
                    }
                    if Instant::now() >= next_look {
                        checkpoints.take_committed(name).await;
                        next_look = Instant::now() + COMMIT_POLL;
                    }
                    if let Some(cause) = control.stop_requested() {
                        self.kill(name).await;
                        stopped = Some(cause);
                    } else if Instant::now() > due && !control.is_paused() {
                        self.kill(name).await;
                        stopped = Some(StopCause::Timeout);
                    }
                }
            }
        }
        if let Some(cause @ (StopCause::Cancelled | StopCause::Preempted)) = stopped {
            if cause == StopCause::Preempted {
                // A commit made just before the kill still counts.
                checkpoints.take_committed(name).await;
            }
            return DockerEnd::Stopped(cause);
        }
        let (exit_code, oom) = match self.docker.inspect_container(name, None).await {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                (
                    state.exit_code.map(|c| c as i32),
                    state.oom_killed.unwrap_or(false),
                )
            }
            Err(e) => return setup(derr(&e).to_string()),
        };
        let output = self.logs(name, limits).await;
        let failure = if stopped == Some(StopCause::Timeout) {
            Some(FailureReason::Timeout {
                millis: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
            })
        } else if oom {
            Some(FailureReason::OomKilled)
        } else {
            match exit_code {
                Some(0) => None,
                Some(code) => Some(FailureReason::NonZeroExit { code }),
                None => Some(FailureReason::Setup {
                    message: "container exited without an exit code".into(),
                }),
            }
        };
        DockerEnd::Finished(TaskResult::new(
            exit_code,
            failure,
            output,
            0,
            started.elapsed(),
        ))
    }

    async fn logs(&self, name: &str, limits: &Limits) -> Output {
        let mut out = Output::default();
        let mut stream = self.docker.logs(
            name,
            Some(
                LogsOptionsBuilder::default()
                    .stdout(true)
                    .stderr(true)
                    .follow(false)
                    .build(),
            ),
        );
        let push = |buf: &mut Vec<u8>, cut: &mut bool, cap: usize, bytes: &[u8]| {
            let room = cap.saturating_sub(buf.len());
            if bytes.len() > room {
                *cut = true;
            }
            buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => push(
                    &mut out.stdout,
                    &mut out.stdout_truncated,
                    limits.stdout_bytes,
                    &message,
                ),
                Ok(LogOutput::StdErr { message }) => push(
                    &mut out.stderr,
                    &mut out.stderr_truncated,
                    limits.stderr_bytes,
                    &message,
                ),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => {
                    tracing::warn!(container = name, error = %e, "reading logs failed");
                    break;
                }
            }
        }
        out
    }
}
