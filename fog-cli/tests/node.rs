//! The node runtime end to end, through the real binary: `fog devnet up`
//! runs the sample workload to its summary, nodes killed with SIGKILL come
//! back without losing a job or a ledger entry, and the task of a node that
//! fails resumes elsewhere from its last checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fog_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fog"))
}

/// Runs `fog` to its end; one that takes longer than five minutes is
/// killed and fails the test, so that a stuck node never hangs the suite.
fn fog(args: &[&str]) -> std::process::Output {
    const LIMIT: Duration = Duration::from_mins(5);
    let child = Command::new(fog_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fog runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    if let Ok(output) = rx.recv_timeout(LIMIT) {
        return output.expect("fog runs");
    }
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    panic!("`fog {}` did not end within {LIMIT:?}", args.join(" "));
}

fn json(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "fog failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

/// Stops a devnet's nodes when the test ends, passed or not, and shows
/// the end of every node's log when it failed.
struct Devnet(PathBuf);

impl Drop for Devnet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_logs(&self.0);
        }
        let _ = fog(&["devnet", "down", "--dir", &self.0.display().to_string()]);
        std::thread::sleep(Duration::from_millis(500));
        for node in nodes(&self.0) {
            if let Ok(pid) = std::fs::read_to_string(node.join("node.pid")) {
                let _ = Command::new("kill")
                    .args(["-9", pid.trim()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

fn nodes(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("node-"))
        })
        .collect();
    v.sort();
    v
}

fn dump_logs(dir: &Path) {
    for node in nodes(dir) {
        if let Ok(log) = std::fs::read_to_string(node.join("node.log")) {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- {} (last lines)", node.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

#[test]
fn devnet_runs_the_sample_workload_to_a_verified_summary() {
    let dir = tempfile::tempdir().unwrap();
    let devnet = dir.path().join("devnet");
    let _guard = Devnet(devnet.clone());
    let output = fog(&[
        "--json",
        "devnet",
        "up",
        "--nodes",
        "5",
        "--dir",
        &devnet.display().to_string(),
    ]);
    let summary = json(&output);
    let submitted = summary["jobs_submitted"].as_u64().unwrap();
    assert!(submitted >= 20, "{summary}");
    assert_eq!(
        summary["jobs_verified"].as_u64().unwrap(),
        submitted,
        "{summary}"
    );
    assert_eq!(summary["jobs_failed"].as_u64().unwrap(), 0, "{summary}");
    assert!(summary["preemptions"].as_u64().unwrap() >= 1, "{summary}");
    assert!(
        summary["evidence_records"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(summary["rewards_paid"].as_u64().unwrap() > 0, "{summary}");
    for key in [
        "mix_pps",
        "jobs_submitted",
        "jobs_verified",
        "jobs_failed",
        "preemptions",
        "rewards_paid",
        "evidence_records",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
}

fn spawn(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("node.log"))
        .unwrap();
    Command::new(fog_path())
        .args(["-v", "node", "run", "--config"])
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn kill9(dir: &Path) {
    let pid = std::fs::read_to_string(dir.join("node.pid")).unwrap();
    let status = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .unwrap();
    assert!(status.success());
    // The API address of the dead process must not be used.
    let _ = std::fs::remove_file(dir.join("api.addr"));
}

fn jobs(node: &Path) -> Option<Vec<serde_json::Value>> {
    let output = fog(&[
        "--json",
        "job",
        "--node",
        &node.display().to_string(),
        "list",
    ]);
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&output.stdout)
        .ok()?
        .as_array()
        .cloned()
}

/// A devnet of `nodes` nodes on loopback without the sample workload (and
/// `extra` arguments for `fog devnet up`), every node up; its nodes stop
/// when the returned guard drops, before the directory goes.
fn idle_devnet(nodes: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Devnet) {
    let dir = tempfile::tempdir().unwrap();
    let devnet = dir.path().join("devnet");
    let guard = Devnet(devnet.clone());
    let path = devnet.display().to_string();
    let mut args = vec!["--json", "devnet", "up", "--nodes", nodes];
    args.extend_from_slice(extra);
    args.extend(["--no-workload", "--dir", &path]);
    json(&fog(&args));
    (dir, devnet, guard)
}

#[test]
fn nodes_killed_with_sigkill_resume_without_losing_jobs_or_ledger_entries() {
    let (_dir, devnet, _guard) = idle_devnet("3", &[]);
    let submitter = devnet.join("node-0");
    let executor = devnet.join("node-2");
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("devnet/compute.wat");
    let mut ids = Vec::new();
    for i in 0..6 {
        let out = fog(&[
            "--json",
            "job",
            "--node",
            &submitter.display().to_string(),
            "submit",
            "--wasm",
            &module.display().to_string(),
            "--name",
            &format!("k{i}"),
            "--",
            "60000000",
        ]);
        ids.push(json(&out)["id"].as_str().unwrap().to_owned());
    }
    // Wait until work is under way, then kill the submitter (which holds
    // the ledger) and an executor in the middle of it.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let list = jobs(&submitter).unwrap_or_default();
        if list.iter().any(|j| j["state"] == "running") {
            break;
        }
        assert!(Instant::now() < deadline, "no job started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ledger_before = json(&fog(&[
        "--json",
        "dao",
        "--data-dir",
        &submitter.display().to_string(),
        "status",
    ]));
    kill9(&submitter);
    kill9(&executor);
    std::thread::sleep(Duration::from_millis(500));
    let mut restarted = vec![spawn(&submitter), spawn(&executor)];

    let deadline = Instant::now() + Duration::from_mins(3);
    let finished = loop {
        if let Some(list) = jobs(&submitter) {
            let verified = list.iter().filter(|j| j["state"] == "verified").count();
            if list.len() == ids.len() && verified == ids.len() {
                break list;
            }
            assert!(
                list.iter().all(|j| j["state"] != "failed"),
                "a job failed: {list:?}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "jobs did not all verify after the restart: {:?}",
            jobs(&submitter)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    for id in &ids {
        assert!(
            finished.iter().any(|j| j["id"] == id.as_str()),
            "job {id} was lost"
        );
    }
    // Every ledger entry from before is still there and the log verifies.
    std::thread::sleep(Duration::from_secs(3));
    let dao = submitter.display().to_string();
    let after = json(&fog(&["--json", "dao", "--data-dir", &dao, "status"]));
    let height = |v: &serde_json::Value| {
        v["events"]
            .as_u64()
            .or_else(|| v["height"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        height(&after) >= height(&ledger_before),
        "{ledger_before} -> {after}"
    );
    let verify = fog(&["--json", "dao", "--data-dir", &dao, "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    for child in &mut restarted {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Steps of [`RESUMABLE`]: each adds one term to its checksum, spins and
/// saves (step, checksum) as a checkpoint.
const STEPS: u64 = 300;

/// A WASI module that resumes from its checkpoint: 300 steps of about
/// 30 M spins, a checkpoint after each, then the checksum in hex.
const RESUMABLE: &str = r#"(module
  (import "fog" "checkpoint_save" (func $save (param i32 i32) (result i32)))
  (import "fog" "checkpoint_load" (func $load (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $spin i32) (local $k i32) (local $d i32)
    (if (i32.ne (call $load (i32.const 0) (i32.const 16)) (i32.const 16))
      (then (i64.store (i32.const 0) (i64.const 0)) (i64.store (i32.const 8) (i64.const 1))))
    (block $done (loop $step
      (br_if $done (i64.ge_u (i64.load (i32.const 0)) (i64.const 300)))
      (i64.store (i32.const 8)
        (i64.add (i64.mul (i64.load (i32.const 8)) (i64.const 1099511628211)) (i64.load (i32.const 0))))
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (local.set $spin (i32.const 30000000))
      (loop $busy
        (local.set $spin (i32.sub (local.get $spin) (i32.const 1)))
        (br_if $busy (local.get $spin)))
      (drop (call $save (i32.const 0) (i32.const 16)))
      (br $step)))
    (block $written (loop $hex
      (br_if $written (i32.ge_u (local.get $k) (i32.const 16)))
      (local.set $d (i32.wrap_i64 (i64.and
        (i64.shr_u (i64.load (i32.const 8))
          (i64.extend_i32_u (i32.mul (i32.sub (i32.const 15) (local.get $k)) (i32.const 4))))
        (i64.const 15))))
      (i32.store8 (i32.add (i32.const 32) (local.get $k))
        (i32.add (local.get $d)
          (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10)))))
      (local.set $k (i32.add (local.get $k) (i32.const 1)))
      (br $hex)))
    (i32.store8 (i32.const 48) (i32.const 10))
    (i32.store (i32.const 64) (i32.const 32))
    (i32.store (i32.const 68) (i32.const 17))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 72)))))"#;

/// What [`RESUMABLE`] prints.
fn resumable_output() -> String {
    let mut acc: u64 = 1;
    for step in 0..STEPS {
        acc = acc.wrapping_mul(1_099_511_628_211).wrapping_add(step);
    }
    format!("{acc:016x}\n")
}

fn job_status(node: &Path, id: &str) -> Option<serde_json::Value> {
    let out = fog(&[
        "--json",
        "job",
        "--node",
        &node.display().to_string(),
        "status",
        id,
    ]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[test]
fn a_failed_nodes_task_resumes_elsewhere_from_its_last_checkpoint() {
    let (dir, devnet, _guard) = idle_devnet("3", &[]);
    // The submitter takes no work itself, so the task runs on another node
    // and its checkpoints travel (through the mixnet, at PUBLIC).
    let submitter = devnet.join("node-0");
    kill9(&submitter);
    let config = std::fs::read_to_string(submitter.join("config.toml")).unwrap();
    assert!(config.contains("exec = true"), "{config}");
    std::fs::write(
        submitter.join("config.toml"),
        config.replace("exec = true", "exec = false"),
    )
    .unwrap();
    let mut restarted = spawn(&submitter);
    let deadline = Instant::now() + Duration::from_mins(1);
    while jobs(&submitter).is_none() {
        assert!(Instant::now() < deadline, "node-0 did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    // node-0's mix listens on the port of its last run again, so the other
    // nodes' directories need no refresh before its replies come back.

    let module = dir.path().join("resumable.wat");
    std::fs::write(&module, RESUMABLE).unwrap();
    let id = json(&fog(&[
        "--json",
        "job",
        "--node",
        &submitter.display().to_string(),
        "submit",
        "--wasm",
        &module.display().to_string(),
        "--name",
        "resumable",
        "--fuel",
        "1000000000000",
        "--timeout",
        "600",
    ]))["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Once the submitter keeps a checkpoint of it, kill the node running it.
    let deadline = Instant::now() + Duration::from_mins(2);
    let executor = loop {
        let job = job_status(&submitter, &id);
        if let Some(job) = &job
            && job["last_checkpoint"].as_u64().is_some_and(|seq| seq >= 2)
            && let Some(node) = job["nodes"][0].as_str()
        {
            break node.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint reached the submitter: {job:?}"
        );
        assert!(
            job.as_ref().is_none_or(|j| j["state"] != "verified"),
            "the job ended before a node could fail: make it longer"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    kill9(&devnet.join(&executor));

    // Its heartbeats stop; the task goes to the other node, from the
    // checkpoint, and ends with the output of an uninterrupted run.
    let deadline = Instant::now() + Duration::from_mins(4);
    let job = loop {
        let job = job_status(&submitter, &id);
        if let Some(job) = &job
            && ["verified", "failed"].contains(&job["state"].as_str().unwrap_or(""))
        {
            break job.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the job did not end after its node failed: {job:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(job["state"], "verified", "{job}");
    assert!(job["resumed"].as_u64().unwrap() >= 1, "{job}");
    assert!(
        job["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n != executor.as_str()),
        "{job}"
    );
    let logs = json(&fog(&[
        "--json",
        "job",
        "--node",
        &submitter.display().to_string(),
        "logs",
        &id,
    ]));
    assert_eq!(logs["stdout"], resumable_output(), "{logs}");
    let _ = restarted.kill();
    let _ = restarted.wait();
}

#[test]
fn a_cancelled_job_stops_on_its_executor() {
    let (dir, devnet, _guard) = idle_devnet("3", &[]);
    let node0 = devnet.join("node-0");
    let node = node0.display().to_string();
    let module = dir.path().join("long.wat");
    std::fs::write(&module, RESUMABLE).unwrap();
    let id = json(&fog(&[
        "--json",
        "job",
        "--node",
        &node,
        "submit",
        "--wasm",
        &module.display().to_string(),
        "--name",
        "to-cancel",
        "--fuel",
        "1000000000000",
        "--timeout",
        "600",
    ]))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Once it runs somewhere, cancel it.
    let deadline = Instant::now() + Duration::from_mins(2);
    let executor = loop {
        let job = job_status(&node0, &id);
        if let Some(job) = &job
            && job["state"] == "running"
            && let Some(name) = job["nodes"][0].as_str()
        {
            break name.to_owned();
        }
        assert!(Instant::now() < deadline, "the job never ran: {job:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let task = format!("{id}.%");
    let exec_db = devnet.join(&executor).join("exec").join("tasks.sqlite");
    let task_state = || -> Option<String> {
        let db = rusqlite::Connection::open_with_flags(
            &exec_db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        db.query_row(
            "SELECT state FROM tasks WHERE id LIKE ?1 ORDER BY created_ms DESC LIMIT 1",
            [&task],
            |r| r.get::<_, String>(0),
        )
        .ok()
    };
    let deadline = Instant::now() + Duration::from_mins(1);
    while task_state().as_deref() != Some("running") {
        assert!(
            Instant::now() < deadline,
            "task {task} never ran on {executor}: {:?}",
            task_state()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = json(&fog(&["--json", "job", "--node", &node, "cancel", &id]));
    assert_eq!(out["cancelled"], true, "{out}");
    let job = job_status(&node0, &id).unwrap();
    assert_eq!(job["state"], "cancelled", "{job}");
    // The cancel reaches the executor (through the mixnet, as the task
    // came), which stops the task.
    let deadline = Instant::now() + Duration::from_mins(1);
    while task_state().as_deref() != Some("cancelled") {
        assert!(
            Instant::now() < deadline,
            "task {task} on {executor} is {:?}, not cancelled",
            task_state()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A job that ended cannot be cancelled again, and stays cancelled.
    let again = fog(&["--json", "job", "--node", &node, "cancel", &id]);
    assert!(!again.status.success());
    assert_eq!(job_status(&node0, &id).unwrap()["state"], "cancelled");
}

/// The `node` section of a node's `fog node status --json`.
fn node_info(node: &Path) -> Option<serde_json::Value> {
    let out = fog(&[
        "--json",
        "node",
        "status",
        "--data-dir",
        &node.display().to_string(),
    ]);
    out.status
        .success()
        .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok())
        .flatten()
        .map(|s| s["node"].clone())
}

/// Waits until every node in `nodes` applies `min_quorum_signers == want`.
fn await_quorum_param(nodes: &[PathBuf], want: u64) {
    let deadline = Instant::now() + Duration::from_mins(1);
    for node in nodes {
        loop {
            let info = node_info(node);
            if info
                .as_ref()
                .is_some_and(|n| n["min_quorum_signers"] == want)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} does not apply min_quorum_signers = {want}: {info:?}",
                node.display()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Submits a three-replica job at `node` and returns it once verified.
fn verified_replicated_job(node: &Path, name: &str) -> serde_json::Value {
    let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("devnet/compute.wat");
    let job = json(&fog(&[
        "--json",
        "job",
        "--node",
        &node.display().to_string(),
        "submit",
        "--wasm",
        &module.display().to_string(),
        "--name",
        name,
        "--replicas",
        "3",
        "--wait",
        "--",
        "100000",
    ]));
    assert_eq!(job["job"]["state"], "verified", "{job}");
    job["job"].clone()
}

#[test]
fn an_executed_parameter_proposal_changes_the_quorum_every_running_node_verifies_with() {
    let (_dir, devnet, _guard) = idle_devnet("3", &[]);
    let execs: Vec<PathBuf> = (0..3).map(|i| devnet.join(format!("node-{i}"))).collect();
    let ledger = &execs[0];
    // Genesis parameters: at least 2 agreeing replicas, on every node.
    await_quorum_param(&execs, 2);
    let before = verified_replicated_job(ledger, "before");
    assert_eq!(before["quorum"], 2, "{before}");
    // Its reward is settled before governance writes to the same ledger.
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let out = fog(&[
            "--json",
            "node",
            "status",
            "--data-dir",
            &ledger.display().to_string(),
        ]);
        let paid = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|s| s["dao"]["rewards_paid"].as_u64());
        if paid.is_some_and(|p| p > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "the job's reward never settled");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Governance on the ledger node's live ledger, through `fog dao`: a
    // staked holder proposes `min_quorum_signers = 3`, votes it through,
    // queues it and executes it after the timelock (logical times ahead
    // of the clock stand in for the default hour-long vote and day-long
    // timelock).
    let data = ledger.display().to_string();
    let dao = |args: &[&str]| {
        json(&fog(
            &[&["--json", "dao", "--data-dir", &data], args].concat()
        ))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = |offset: u64| (now + 30 + offset).to_string();
    dao(&["key", "new", "alice"]);
    dao(&["mint", "--to", "alice", "--units", "10000", "--at", &t(0)]);
    let bonded = dao(&["status", "--at", &t(0)])["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "alice")
        .unwrap()["balance"]
        .as_u64()
        .unwrap();
    dao(&[
        "stake",
        "--key",
        "alice",
        "--at",
        &t(0),
        &bonded.to_string(),
    ]);
    let proposal = dao(&[
        "propose",
        "--key",
        "alice",
        "--kind",
        "parameter",
        "--param",
        "min_quorum_signers=3",
        "--description",
        "three agreeing replicas",
        "--at",
        &t(1),
    ]);
    assert_eq!(proposal["kind"], "propose", "{proposal}");
    // The devnet's ledger has no other proposal: this is number 0.
    let id = "0";
    dao(&["vote", "--key", "alice", id, "for", "--at", &t(61)]);
    dao(&["queue", "--key", "alice", id, "--at", &t(3_700)]);
    dao(&["execute", "--key", "alice", id, "--at", &t(3_700 + 86_400)]);
    let status = dao(&["status", "--at", &t(3_700 + 86_400)]);
    assert_eq!(status["params"]["min_quorum_signers"], 3, "{status}");
    assert_eq!(status["proposals"][0]["state"], "executed", "{status}");

    // The running nodes pick it up (the ledger node from its ledger, the
    // others from its heartbeats) and verify with it.
    await_quorum_param(&execs, 3);
    let after = verified_replicated_job(&execs[1], "after");
    assert_eq!(after["quorum"], 3, "{after}");
}

#[test]
fn a_container_job_runs_through_the_network_on_docker() {
    let required = std::env::var("FOG_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let daemon = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    let busybox = std::fs::read("/bin/busybox");
    let (true, Ok(busybox)) = (daemon, busybox) else {
        assert!(
            !required,
            "FOG_REQUIRE_DOCKER=1 but no docker daemon or /bin/busybox"
        );
        println!("skipped: no docker daemon");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let image = format!("fog-node-test-busybox:{}", std::process::id());
    std::fs::write(
        &tar,
        fog_exec::image::busybox_image_tar(&image, &busybox).unwrap(),
    )
    .unwrap();
    let (_devnet_dir, devnet, _guard) = idle_devnet("2", &["--relays", "0"]);
    let submitter = devnet.join("node-0").display().to_string();
    let out = fog(&[
        "--json",
        "job",
        "--node",
        &submitter,
        "submit",
        "--image",
        &image,
        "--image-tar",
        &tar.display().to_string(),
        "--replicas",
        "2",
        "--wait",
        "--wait-timeout",
        "180",
        "--",
        "/bin/sh",
        "-c",
        "echo from-a-container",
    ]);
    let doc = json(&out);
    assert_eq!(doc["job"]["state"], "verified", "{doc}");
    assert_eq!(doc["job"]["kind"], "container", "{doc}");
    assert_eq!(doc["logs"]["stdout"], "from-a-container\n", "{doc}");
    let _ = Command::new("docker")
        .args(["image", "rm", "-f", &image])
        .output();
}
