//! The wasmtime backend and the executor through the public API: real
//! wasmtime, real SQLite, modules written as WAT text.

use std::time::Duration;

use fog_exec::verify::{self, Claim, Replica, Verdict};
use fog_exec::{
    Executor, ExecutorConfig, FailureReason, Limits, LocalExecutor, StatusEvent, StreamItem,
    TaskId, TaskSpec, TaskState, WasmConfig, WasmEngine, WasmWorkload,
};

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("valid wat")
}

const FD_WRITE: &str = r#"(import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))"#;

/// Prints "hello" and then every argument after argv[0], space separated.
fn hello_args() -> Vec<u8> {
    wasm(&format!(
        r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  {FD_WRITE}
  (memory (export "memory") 1)
  (data (i32.const 32) "hello")
  (data (i32.const 40) " ")
  (data (i32.const 44) "\n")
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (func $write (param $p i32) (param $len i32)
    (i32.store (i32.const 16) (local.get $p))
    (i32.store (i32.const 20) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24))))
  (func (export "_start") (local $i i32) (local $p i32)
    (drop (call $args_sizes_get (i32.const 0) (i32.const 4)))
    (drop (call $args_get (i32.const 64) (i32.const 1024)))
    (call $write (i32.const 32) (i32.const 5))
    (local.set $i (i32.const 1))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 0))))
      (call $write (i32.const 40) (i32.const 1))
      (local.set $p (i32.load (i32.add (i32.const 64) (i32.mul (local.get $i) (i32.const 4)))))
      (call $write (local.get $p) (call $strlen (local.get $p)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $write (i32.const 44) (i32.const 1))))"#
    ))
}

/// Sums i*i for i in 0..1000 with a busy inner loop, saving (i, acc) as a
/// checkpoint every 50 steps and restoring it at start; prints acc as 8
/// little-endian bytes.
fn checkpointing() -> Vec<u8> {
    wasm(&format!(
        r#"(module
  (import "fog" "checkpoint_save" (func $save (param i32 i32) (result i32)))
  (import "fog" "checkpoint_load" (func $load (param i32 i32) (result i32)))
  {FD_WRITE}
  (memory (export "memory") 1)
  (func (export "_start") (local $spin i32)
    (if (i32.ne (call $load (i32.const 0) (i32.const 16)) (i32.const 16))
      (then (i64.store (i32.const 0) (i64.const 0)) (i64.store (i32.const 8) (i64.const 0))))
    (block $done (loop $outer
      (br_if $done (i64.ge_u (i64.load (i32.const 0)) (i64.const 1000)))
      (i64.store (i32.const 8) (i64.add (i64.load (i32.const 8))
        (i64.mul (i64.load (i32.const 0)) (i64.load (i32.const 0)))))
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (local.set $spin (i32.const 100000))
      (loop $busy
        (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
        (br_if $busy (i32.ne (local.get $spin) (i32.const 0))))
      (if (i64.eqz (i64.rem_u (i64.load (i32.const 0)) (i64.const 50)))
        (then (drop (call $save (i32.const 0) (i32.const 16)))))
      (br $outer)))
    (i32.store (i32.const 32) (i32.const 8))
    (i32.store (i32.const 36) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))))"#
    ))
}

fn expected_sum() -> Vec<u8> {
    (0u64..1000)
        .map(|i| i * i)
        .sum::<u64>()
        .to_le_bytes()
        .to_vec()
}

fn engine() -> WasmEngine {
    WasmEngine::new(WasmConfig::default().with_pool_instances(16)).expect("engine")
}

fn id(text: &str) -> TaskId {
    TaskId::new(text).expect("id")
}

#[tokio::test]
async fn hello_world_with_args_and_stdout() {
    let engine = engine();
    let result = engine
        .run(
            &WasmWorkload::new(hello_args()).args(["fog", "exec"]),
            &Limits::default(),
        )
        .await
        .expect("run");
    assert!(result.succeeded(), "{result:?}");
    assert_eq!(result.output.stdout, b"hello fog exec\n");
    assert!(result.fuel_consumed > 0);
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_fuel() {
    let module = wasm("(module (func (export \"_start\") (loop $l (br $l))))");
    let result = engine()
        .run(
            &WasmWorkload::new(module),
            &Limits::default().with_fuel(Some(1_000_000)),
        )
        .await
        .expect("run");
    assert_eq!(
        result.failure,
        Some(FailureReason::OutOfFuel { fuel: 1_000_000 })
    );
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_the_epoch_timeout() {
    let module = wasm("(module (func (export \"_start\") (loop $l (br $l))))");
    let result = engine()
        .run(
            &WasmWorkload::new(module),
            &Limits::default()
                .with_fuel(None)
                .with_timeout(Duration::from_millis(200)),
        )
        .await
        .expect("run");
    assert_eq!(result.failure, Some(FailureReason::Timeout { millis: 200 }));
}

#[tokio::test]
async fn memory_bomb_is_stopped_by_the_limit() {
    let module = wasm(
        "(module (memory (export \"memory\") 1)
           (func (export \"_start\") (loop $l (drop (memory.grow (i32.const 16))) (br $l))))",
    );
    let result = engine()
        .run(
            &WasmWorkload::new(module),
            &Limits::default().with_memory_bytes(4 << 20),
        )
        .await
        .expect("run");
    match result.failure {
        Some(FailureReason::MemoryLimit { requested, limit }) => {
            assert_eq!(limit, 4 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected a memory limit failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trap_is_reported() {
    let module = wasm("(module (func (export \"_start\") unreachable))");
    let result = engine()
        .run(&WasmWorkload::new(module), &Limits::default())
        .await
        .expect("run");
    match result.failure {
        Some(FailureReason::Trap { message }) => {
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn non_zero_exit_is_reported() {
    let module = wasm(
        r#"(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))"#,
    );
    let result = engine()
        .run(&WasmWorkload::new(module), &Limits::default())
        .await
        .expect("run");
    assert_eq!(result.failure, Some(FailureReason::NonZeroExit { code: 3 }));
    assert_eq!(result.exit_code, Some(3));
}

#[tokio::test]
async fn oversized_output_is_capped() {
    // Writes 64 KiB in 100 writes of 655 bytes; the cap is 1000 bytes.
    let module = wasm(&format!(
        r#"(module {FD_WRITE}
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 655))
    (local.set $n (i32.const 100))
    (loop $l
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.ne (local.get $n) (i32.const 0))))))"#
    ));
    let result = engine()
        .run(
            &WasmWorkload::new(module),
            &Limits::default().with_output_bytes(1000),
        )
        .await
        .expect("run");
    assert!(result.succeeded(), "{result:?}");
    assert_eq!(result.output.stdout.len(), 1000);
    assert!(result.output.stdout_truncated);
}

#[tokio::test]
async fn nan_results_are_canonical() {
    // Stores the bits of 0.0/0.0 (f32) and writes them to stdout.
    let module = wasm(&format!(
        r#"(module {FD_WRITE}
  (memory (export "memory") 1)
  (func (export "_start")
    (f32.store (i32.const 64) (f32.div (f32.const 0) (f32.const 0)))
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ));
    let result = engine()
        .run(&WasmWorkload::new(module), &Limits::default())
        .await
        .expect("run");
    assert_eq!(result.output.stdout, 0x7fc0_0000u32.to_le_bytes());
}

#[tokio::test]
async fn invalid_module_is_a_clear_error() {
    let exec_dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(exec_dir.path()).with_docker(false))
        .await
        .expect("open");
    let err = exec
        .submit(TaskSpec::wasm(
            id("bad"),
            WasmWorkload::new(b"not wasm".to_vec()),
        ))
        .await
        .expect_err("must refuse");
    assert!(err.to_string().contains("invalid wasm module"), "{err}");
    assert!(exec.status(&id("bad")).is_err(), "nothing was stored");
}

#[tokio::test]
async fn executor_persists_every_transition_and_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    let spec = TaskSpec::wasm(id("t1"), WasmWorkload::new(hello_args()).args(["a"]));
    exec.submit(spec.clone()).await.expect("submit");
    let again = exec.submit(spec).await.expect("submit twice");
    assert_eq!(again.id, id("t1"));
    let status = exec.wait(&id("t1")).await.expect("wait");
    assert_eq!(status.state, TaskState::Succeeded);
    assert_eq!(status.attempt, 1);
    assert_eq!(
        exec.logs(&id("t1")).expect("logs").expect("output").stdout,
        b"hello a\n"
    );
    assert_eq!(
        exec.history(&id("t1")).expect("history"),
        vec![
            TaskState::Pending,
            TaskState::Assigned,
            TaskState::Running,
            TaskState::Succeeded
        ]
    );
    // A third submission after the end still changes nothing.
    let third = exec
        .submit(TaskSpec::wasm(id("t1"), WasmWorkload::new(hello_args())))
        .await
        .expect("submit after end");
    assert_eq!(third.state, TaskState::Succeeded);
    assert_eq!(exec.history(&id("t1")).expect("history").len(), 4);
}

async fn wait_for_checkpoint(events: &mut fog_exec::StatusStream, task: &TaskId, seq: u64) {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("no checkpoint within 30 s")
        {
            Some(StreamItem::Event(StatusEvent::Checkpointed { id, seq: s }))
                if &id == task && s >= seq =>
            {
                return;
            }
            Some(_) => {}
            None => panic!("executor gone"),
        }
    }
}

#[tokio::test]
async fn checkpoint_preempt_and_resume_gives_the_right_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    let task = id("ckpt");
    let mut events = exec.subscribe();
    exec.submit(TaskSpec::wasm(
        task.clone(),
        WasmWorkload::new(checkpointing()),
    ))
    .await
    .expect("submit");
    wait_for_checkpoint(&mut events, &task, 2).await;
    exec.pause(&task).await.expect("pause");
    assert!(exec.status(&task).expect("status").paused);
    exec.resume(&task).await.expect("unpause");
    exec.preempt(&task).await.expect("preempt");
    let preempted = exec.wait(&task).await.expect("wait");
    assert_eq!(preempted.state, TaskState::Preempted);
    exec.resume(&task).await.expect("resume from checkpoint");
    let done = exec.wait(&task).await.expect("wait");
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(done.attempt, 2);
    assert_eq!(done.result.expect("result").output.stdout, expected_sum());
    let history = exec.history(&task).expect("history");
    assert!(history.contains(&TaskState::Preempted), "{history:?}");
}

#[tokio::test]
async fn a_task_resumes_on_another_executor_from_a_shipped_checkpoint() {
    // First executor: runs until the task has saved two checkpoints, then
    // the "node" goes away (the task is cancelled there).
    let first_dir = tempfile::tempdir().expect("tempdir");
    let (first, _) = LocalExecutor::open(ExecutorConfig::new(first_dir.path()).with_docker(false))
        .await
        .expect("open");
    let task = id("moved.0");
    let mut events = first.subscribe();
    first
        .submit(TaskSpec::wasm(
            task.clone(),
            WasmWorkload::new(checkpointing()),
        ))
        .await
        .expect("submit");
    wait_for_checkpoint(&mut events, &task, 2).await;
    let (seq, data) = first
        .checkpoint(&task)
        .expect("read checkpoint")
        .expect("a checkpoint");
    assert!(seq >= 2);
    first.cancel(&task).await.expect("cancel");
    // The checkpoint is (i, acc) after at least 100 of 1000 steps.
    let step = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    assert!(step >= 100, "step {step}");

    // Second executor: the same task under another id, started from it.
    let second_dir = tempfile::tempdir().expect("tempdir");
    let (second, _) =
        LocalExecutor::open(ExecutorConfig::new(second_dir.path()).with_docker(false))
            .await
            .expect("open");
    let moved = id("moved.1");
    second
        .submit(
            TaskSpec::wasm(moved.clone(), WasmWorkload::new(checkpointing()))
                .with_checkpoint(data.clone()),
        )
        .await
        .expect("submit with a checkpoint");
    assert_eq!(
        second.checkpoint(&moved).expect("read").map(|(s, _)| s),
        Some(1),
        "the starting checkpoint is number 1"
    );
    let done = second.wait(&moved).await.expect("wait");
    assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
    assert_eq!(done.attempt, 1);
    let result = done.result.expect("result");
    assert_eq!(result.output.stdout, expected_sum());

    // It did less work than a run from the start.
    let fresh = id("fresh");
    second
        .submit(TaskSpec::wasm(
            fresh.clone(),
            WasmWorkload::new(checkpointing()),
        ))
        .await
        .expect("submit");
    let full = second
        .wait(&fresh)
        .await
        .expect("wait")
        .result
        .expect("result");
    assert!(
        result.fuel_consumed < full.fuel_consumed,
        "resumed {} vs fresh {}",
        result.fuel_consumed,
        full.fuel_consumed
    );

    // A starting checkpoint over the task's limit is refused, and nothing
    // is stored.
    let mut limits = Limits::default();
    limits.checkpoint_bytes = 4;
    let too_big = id("too-big");
    let err = second
        .submit(
            TaskSpec::wasm(too_big.clone(), WasmWorkload::new(checkpointing()))
                .with_limits(limits)
                .with_checkpoint(data),
        )
        .await
        .expect_err("over the limit");
    assert!(err.to_string().contains("checkpoint"), "{err}");
    assert!(second.status(&too_big).is_err());
}

#[test]
fn restart_mid_task_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || ExecutorConfig::new(dir.path()).with_docker(false);
    let resumable = id("resumable");
    let doomed = id("doomed");
    // First life: both tasks running, one has checkpointed; then the
    // runtime dies without any shutdown.
    let first = tokio::runtime::Runtime::new().expect("runtime");
    first.block_on(async {
        let (exec, _) = LocalExecutor::open(config()).await.expect("open");
        let mut events = exec.subscribe();
        exec.submit(TaskSpec::wasm(
            doomed.clone(),
            WasmWorkload::new(wasm(
                "(module (func (export \"_start\") (loop $l (br $l))))",
            )),
        ))
        .await
        .expect("submit");
        exec.submit(TaskSpec::wasm(
            resumable.clone(),
            WasmWorkload::new(checkpointing()),
        ))
        .await
        .expect("submit");
        wait_for_checkpoint(&mut events, &resumable, 1).await;
        assert_eq!(
            exec.status(&doomed).expect("status").state,
            TaskState::Running
        );
    });
    first.shutdown_background();
    // Second life: nothing vanished.
    let second = tokio::runtime::Runtime::new().expect("runtime");
    second.block_on(async {
        let (exec, recovery) = LocalExecutor::open(config()).await.expect("reopen");
        assert_eq!(recovery.resumed, vec![resumable.clone()]);
        assert_eq!(recovery.lost, vec![doomed.clone()]);
        let done = exec.wait(&resumable).await.expect("wait");
        assert_eq!(done.state, TaskState::Succeeded, "{done:?}");
        assert_eq!(done.result.expect("result").output.stdout, expected_sum());
        assert_eq!(exec.status(&doomed).expect("status").state, TaskState::Lost);
    });
}

#[tokio::test]
async fn three_replicas_one_lying_gives_the_majority_and_one_evidence() {
    let engine = engine();
    let workload = WasmWorkload::new(hello_args()).args(["replica"]);
    let mut replicas = Vec::new();
    for node in ["node-a", "node-b", "node-c"] {
        let result = engine
            .run(&workload, &Limits::default())
            .await
            .expect("run");
        let mut claim = Claim::of(&result);
        if node == "node-c" {
            // The liar claims more work and a different output.
            claim.fuel += 1_000;
            claim.output_hash = "00".repeat(32);
        }
        replicas.push(Replica::new(node, claim));
    }
    assert_eq!(
        replicas[0].claim, replicas[1].claim,
        "honest replicas agree on hash and fuel"
    );
    let Verdict::Agreed {
        claim,
        agreeing,
        evidence,
    } = verify::quorum("task-v", &replicas, 2)
    else {
        panic!("expected a quorum");
    };
    assert_eq!(claim, replicas[0].claim);
    assert_eq!(agreeing, vec!["node-a".to_owned(), "node-b".to_owned()]);
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].node, "node-c");
    assert_eq!(evidence[0].majority, claim);

    // Evidence is persisted for reputation and slashing.
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    exec.record_evidence(&evidence[0]).await.expect("record");
    let stored = exec.evidence().expect("evidence");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].1, "node-c");
}

#[test]
fn quorum_without_enough_agreement_is_refused() {
    let claim = |h: &str| Claim {
        output_hash: h.to_owned(),
        fuel: 1,
    };
    let replicas = [
        Replica::new("a", claim("x")),
        Replica::new("b", claim("y")),
        Replica::new("a", claim("y")),
    ];
    assert_eq!(
        verify::quorum("t", &replicas, 2),
        Verdict::NoQuorum { best: 1 }
    );
}

async fn wait_for_state(events: &mut fog_exec::StatusStream, task: &TaskId, state: TaskState) {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("no event within 30 s")
        {
            Some(StreamItem::Event(StatusEvent::State { id, state: s }))
                if &id == task && s == state =>
            {
                return;
            }
            Some(_) => {}
            None => panic!("executor gone"),
        }
    }
}

#[tokio::test]
async fn cancel_stops_a_running_task() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    let task = id("spin");
    let mut events = exec.subscribe();
    exec.submit(
        TaskSpec::wasm(
            task.clone(),
            WasmWorkload::new(wasm(
                "(module (func (export \"_start\") (loop $l (br $l))))",
            )),
        )
        .with_limits(Limits::default().with_fuel(None)),
    )
    .await
    .expect("submit");
    wait_for_state(&mut events, &task, TaskState::Running).await;
    exec.cancel(&task).await.expect("cancel");
    assert_eq!(
        exec.wait(&task).await.expect("wait").state,
        TaskState::Cancelled
    );
    assert!(
        exec.cancel(&task).await.is_err(),
        "cancelling twice is refused"
    );
}

#[tokio::test]
async fn checkpoint_now_reaches_the_guest() {
    // Spins until the host asks for a checkpoint, saves "ckpt" and returns.
    let module = wasm(
        r#"(module
  (import "fog" "checkpoint_save" (func $save (param i32 i32) (result i32)))
  (import "fog" "checkpoint_requested" (func $req (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "ckpt")
  (func (export "_start")
    (loop $l (br_if $l (i32.eqz (call $req))))
    (drop (call $save (i32.const 0) (i32.const 4)))))"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    let task = id("asked");
    let mut events = exec.subscribe();
    exec.submit(
        TaskSpec::wasm(task.clone(), WasmWorkload::new(module))
            .with_limits(Limits::default().with_fuel(None)),
    )
    .await
    .expect("submit");
    wait_for_state(&mut events, &task, TaskState::Running).await;
    exec.checkpoint_now(&task).expect("checkpoint now");
    wait_for_checkpoint(&mut events, &task, 1).await;
    assert_eq!(
        exec.wait(&task).await.expect("wait").state,
        TaskState::Succeeded
    );
}

#[tokio::test]
async fn module_cache_survives_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = || {
        WasmConfig::default()
            .with_pool_instances(4)
            .with_cache_dir(dir.path())
    };
    let module = hello_args();
    let first = WasmEngine::new(config()).expect("engine");
    let hash = first.prepare(&module).expect("prepare");
    let artifacts: Vec<_> = std::fs::read_dir(dir.path())
        .expect("cache dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&hash.to_hex()))
        .collect();
    assert_eq!(artifacts.len(), 1, "one precompiled artifact");
    // A fresh engine loads it and runs the same.
    let second = WasmEngine::new(config()).expect("engine");
    let result = second
        .run(&WasmWorkload::new(module), &Limits::default())
        .await
        .expect("run");
    assert_eq!(result.output.stdout, b"hello\n");
}

mod properties {
    use std::sync::OnceLock;

    use fog_exec::{WasmConfig, WasmEngine};
    use proptest::prelude::*;

    fn engine() -> &'static WasmEngine {
        static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
        ENGINE.get_or_init(|| {
            WasmEngine::new(WasmConfig::default().with_pool_instances(1)).expect("engine")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Arbitrary bytes as a module: a clear error, never a panic.
        #[test]
        fn arbitrary_module_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let engine = engine();
            let mut with_magic = b"\0asm\x01\0\0\0".to_vec();
            with_magic.extend_from_slice(&bytes);
            for candidate in [bytes, with_magic] {
                if let Err(e) = engine.prepare(&candidate) {
                    prop_assert!(e.to_string().starts_with("invalid wasm module"), "{}", e);
                }
            }
        }
    }
}

#[tokio::test]
async fn spot_check_catches_a_wrong_claim() {
    let engine = engine();
    let workload = WasmWorkload::new(hello_args()).args(["spot"]);
    let reference = engine
        .run(&workload, &Limits::default())
        .await
        .expect("run");
    let honest = Replica::new("honest", Claim::of(&reference));
    assert_eq!(verify::spot_check("t", &honest, &reference), None);
    let mut inflated = Claim::of(&reference);
    inflated.fuel *= 2;
    let evidence =
        verify::spot_check("t", &Replica::new("greedy", inflated), &reference).expect("evidence");
    assert_eq!(evidence.node, "greedy");
    assert!(!verify::should_spot_check("t", b"secret", 0.0));
    assert!(verify::should_spot_check("t", b"secret", 1.0));
}

#[tokio::test]
async fn the_work_directory_is_preopened_and_writable() {
    // Creates /work/f.txt through the preopen (fd 3) and prints the errno
    // digit of path_open followed by that of fd_write.
    let module = wasm(&format!(
        r#"(module {FD_WRITE}
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "f.txt")
  (data (i32.const 120) "data")
  (func (export "_start") (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 5)
      (i32.const 1) (i64.const 0x1fffffff) (i64.const 0) (i32.const 0) (i32.const 200)))
    (i32.store8 (i32.const 300) (i32.add (i32.const 48) (local.get $e)))
    (i32.store (i32.const 0) (i32.const 120))
    (i32.store (i32.const 4) (i32.const 4))
    (local.set $e (call $fd_write (i32.load (i32.const 200)) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store8 (i32.const 301) (i32.add (i32.const 48) (local.get $e)))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 2))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let (exec, _) = LocalExecutor::open(ExecutorConfig::new(dir.path()).with_docker(false))
        .await
        .expect("open");
    exec.submit(TaskSpec::wasm(id("files"), WasmWorkload::new(module)))
        .await
        .expect("submit");
    let status = exec.wait(&id("files")).await.expect("wait");
    assert_eq!(status.result.expect("result").output.stdout, b"00");
}
