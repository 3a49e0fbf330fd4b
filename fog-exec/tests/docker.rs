//! The Docker backend against the real daemon. The tests run whenever a
//! daemon answers, print `skipped: no docker daemon` otherwise, and fail
//! instead of skipping when `FOG_REQUIRE_DOCKER=1`.

use std::path::PathBuf;
use std::time::Duration;

use fog_exec::{
    ContainerWorkload, DockerBackend, Executor, ExecutorConfig, FailureReason, Limits,
    LocalExecutor, TaskId, TaskSpec, TaskState,
};

const IMAGE: &str = "fog-exec-test-busybox:1";

/// A connected executor and the busybox image tarball, or `None` (skip).
async fn setup(dir: &std::path::Path) -> Option<(LocalExecutor, PathBuf)> {
    let required = std::env::var("FOG_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    if let Err(e) = DockerBackend::connect().await {
        assert!(!required, "FOG_REQUIRE_DOCKER=1 but no docker daemon: {e}");
        println!("skipped: no docker daemon ({e})");
        return None;
    }
    let busybox = match std::fs::read("/bin/busybox") {
        Ok(b) => b,
        Err(e) => {
            assert!(
                !required,
                "FOG_REQUIRE_DOCKER=1 but /bin/busybox is missing: {e}"
            );
            println!("skipped: /bin/busybox missing (apt-get install busybox-static)");
            return None;
        }
    };
    let tar = dir.join("busybox-image.tar");
    std::fs::write(
        &tar,
        fog_exec::image::busybox_image_tar(IMAGE, &busybox).expect("image"),
    )
    .expect("write image tar");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.join("data")))
        .await
        .expect("open");
    assert!(exec.has_docker());
    Some((exec, tar))
}

fn task(name: &str) -> TaskId {
    TaskId::new(format!("docker-{name}-{}", std::process::id())).expect("id")
}

fn sh(tar: &PathBuf, script: &str) -> ContainerWorkload {
    ContainerWorkload::new(IMAGE)
        .image_tar(tar)
        .cmd(["/bin/sh", "-c", script])
}

#[tokio::test]
async fn docker_success_with_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("ok");
    exec.submit(TaskSpec::container(
        id.clone(),
        sh(&tar, "echo out; echo err >&2; ls -d $FOG_CHECKPOINT_DIR").read_only_rootfs(true),
    ))
    .await
    .expect("submit");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Succeeded, "{status:?}");
    let output = status.result.expect("result").output;
    assert_eq!(output.stdout, b"out\n/fog/checkpoint\n");
    assert_eq!(output.stderr, b"err\n");
}

#[tokio::test]
async fn docker_non_zero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("exit");
    exec.submit(TaskSpec::container(id.clone(), sh(&tar, "exit 7")))
        .await
        .expect("submit");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(
        status.result.expect("result").failure,
        Some(FailureReason::NonZeroExit { code: 7 })
    );
}

#[tokio::test]
async fn docker_memory_limit_oom_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("oom");
    // dd allocates (and fills) a 256 MiB block buffer; the limit is 32 MiB.
    exec.submit(
        TaskSpec::container(
            id.clone(),
            sh(&tar, "dd if=/dev/zero of=/dev/null bs=256M count=1"),
        )
        .with_limits(Limits::default().with_memory_bytes(32 << 20)),
    )
    .await
    .expect("submit");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(
        status.result.expect("result").failure,
        Some(FailureReason::OomKilled)
    );
}

#[tokio::test]
async fn docker_timeout_kills_the_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("timeout");
    exec.submit(
        TaskSpec::container(id.clone(), sh(&tar, "sleep 60"))
            .with_limits(Limits::default().with_timeout(Duration::from_secs(1))),
    )
    .await
    .expect("submit");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Failed);
    assert_eq!(
        status.result.expect("result").failure,
        Some(FailureReason::Timeout { millis: 1000 })
    );
}

#[tokio::test]
async fn docker_pause_and_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("pause");
    exec.submit(TaskSpec::container(
        id.clone(),
        sh(&tar, "sleep 1; echo done"),
    ))
    .await
    .expect("submit");
    // Wait until it runs, then pause and resume it.
    let mut tries = 0;
    while exec.status(&id).expect("status").state != TaskState::Running {
        tries += 1;
        assert!(tries < 500, "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The container may still be starting; retry the pause briefly.
    let mut paused = false;
    for _ in 0..50 {
        if exec.pause(&id).await.is_ok() {
            paused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(paused, "pause failed");
    assert!(exec.status(&id).expect("status").paused);
    exec.resume(&id).await.expect("resume");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Succeeded, "{status:?}");
    assert_eq!(status.result.expect("result").output.stdout, b"done\n");
}

#[tokio::test]
async fn docker_checkpoint_directory_and_checkpoint_now() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let id = task("ckpt");
    // Waits for the executor's checkpoint request, then saves state into
    // the mounted checkpoint directory it owns and reads it back.
    exec.submit(TaskSpec::container(
        id.clone(),
        sh(
            &tar,
            "while [ ! -f $FOG_CHECKPOINT_DIR/checkpoint.request ]; do sleep 1; done; \
             echo saved > $FOG_CHECKPOINT_DIR/state; cat $FOG_CHECKPOINT_DIR/state",
        )
        .read_only_rootfs(true),
    ))
    .await
    .expect("submit");
    let mut tries = 0;
    while exec.status(&id).expect("status").state != TaskState::Running {
        tries += 1;
        assert!(tries < 500, "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    exec.checkpoint_now(&id).expect("checkpoint now");
    let status = exec.wait(&id).await.expect("wait");
    assert_eq!(status.state, TaskState::Succeeded, "{status:?}");
    assert_eq!(status.result.expect("result").output.stdout, b"saved\n");
}

/// Counts to 6 in its checkpoint directory, committing after every step;
/// a run that started from nothing stops at 3 and waits to be cancelled.
const COUNTER: &str = "D=$FOG_CHECKPOINT_DIR; n=0; [ -f $D/count ] && n=$(cat $D/count); \
     echo from $n; \
     while [ $n -lt 6 ]; do n=$((n+1)); echo $n > $D/count; touch $D/checkpoint.commit; \
       while [ -f $D/checkpoint.commit ]; do sleep 0.1; done; \
       if [ $n -eq 3 ]; then sleep 600; fi; \
     done; echo done $n";

#[tokio::test]
async fn a_container_resumes_on_another_executor_from_its_committed_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some((exec, tar)) = setup(dir.path()).await else {
        return;
    };
    let first = task("counter-a");
    exec.submit(TaskSpec::container(first.clone(), sh(&tar, COUNTER)))
        .await
        .expect("submit");
    let mut tries = 0;
    let data = loop {
        if let Some((3, data)) = exec.checkpoint(&first).expect("checkpoint") {
            break data;
        }
        tries += 1;
        assert!(tries < 600, "the container never committed its third step");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    exec.cancel(&first).await.expect("cancel");
    assert_eq!(
        exec.wait(&first).await.expect("wait").state,
        TaskState::Cancelled
    );

    // Another executor (another node) picks the task up from the shipped
    // archive and counts on from 3.
    let (other, _) = LocalExecutor::open(ExecutorConfig::new(dir.path().join("other")))
        .await
        .expect("open");
    let second = task("counter-b");
    other
        .submit(TaskSpec::container(second.clone(), sh(&tar, COUNTER)).with_checkpoint(data))
        .await
        .expect("submit with checkpoint");
    let status = other.wait(&second).await.expect("wait");
    assert_eq!(status.state, TaskState::Succeeded, "{status:?}");
    assert_eq!(
        status.result.expect("result").output.stdout,
        b"from 3\ndone 6\n"
    );
    // Its own commits count on from the inherited checkpoint (number 1).
    let (seq, _) = other
        .checkpoint(&second)
        .expect("checkpoint")
        .expect("some");
    assert_eq!(seq, 4);

    // An archive that is not one is refused at submission, and nothing is
    // stored.
    let bad = task("counter-bad");
    let refused = other
        .submit(
            TaskSpec::container(bad.clone(), sh(&tar, COUNTER)).with_checkpoint(vec![0xff; 1024]),
        )
        .await;
    assert!(
        matches!(refused, Err(fog_exec::ExecError::InvalidSpec(_))),
        "{refused:?}"
    );
    assert!(other.status(&bad).is_err());
}
