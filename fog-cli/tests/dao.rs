//! `fog dao ...` through the real binary.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use assert_cmd::Command;
use serde_json::Value;

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fog-cli-dao-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fog(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("fog").unwrap();
    cmd.env_remove("FOG_DATA_DIR")
        .arg("--json")
        .arg("dao")
        .arg("--data-dir")
        .arg(dir);
    cmd
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let out = fog(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn refused(dir: &Path, args: &[&str]) -> Value {
    let out = fog(dir).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?} should fail");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn init(dir: &Path) {
    ok(
        dir,
        &[
            "init",
            "--at",
            "0",
            "--param",
            "timelock_emergency=2",
            "--param",
            "voting_delay=1",
            "--param",
            "voting_period=10",
            "--param",
            "late_quorum_extension=0",
            "--param",
            "timelock_parameter=5",
            "--param",
            "treasury_share_bps=0",
        ],
    );
    ok(dir, &["key", "new", "alice"]);
    ok(dir, &["key", "new", "bob"]);
}

#[test]
fn a_parameter_change_goes_from_proposal_to_execution() {
    let tmp = Scratch::new();
    let dir = tmp.path();
    init(dir);
    ok(
        dir,
        &["mint", "--to", "alice", "--units", "100", "--at", "1"],
    );
    ok(
        dir,
        &[
            "transfer", "--key", "alice", "--to", "bob", "10", "--at", "2",
        ],
    );
    ok(dir, &["stake", "--key", "alice", "--at", "2", "500"]);
    ok(dir, &["stake", "--key", "bob", "--at", "2", "10"]);
    ok(
        dir,
        &["delegate", "--key", "bob", "--to", "alice", "--at", "2"],
    );
    let r = ok(
        dir,
        &[
            "propose",
            "--key",
            "alice",
            "--kind",
            "parameter",
            "--param",
            "voting_period=20",
            "--description",
            "longer votes",
            "--at",
            "3",
        ],
    );
    assert_eq!(r["kind"], "propose");
    // Before the voting window.
    let e = refused(dir, &["vote", "--key", "alice", "0", "for", "--at", "3"]);
    assert_eq!(e["error"]["kind"], "refused");
    ok(dir, &["vote", "--key", "alice", "0", "for", "--at", "4"]);
    let e = refused(
        dir,
        &["vote", "--key", "alice", "0", "against", "--at", "5"],
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already voted")
    );
    let e = refused(dir, &["vote", "--key", "alice", "9", "for", "--at", "5"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown proposal")
    );
    let e = refused(
        dir,
        &[
            "transfer", "--key", "bob", "--to", "alice", "1000", "--at", "5",
        ],
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("insufficient funds")
    );
    ok(dir, &["queue", "--key", "bob", "0", "--at", "14"]);
    let e = refused(dir, &["execute", "--key", "bob", "0", "--at", "18"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timelocked")
    );
    ok(dir, &["execute", "--key", "bob", "0", "--at", "19"]);

    // Staking: unbond, withdraw only after the period, epoch rewards.
    ok(dir, &["unstake", "--key", "bob", "10", "--at", "20"]);
    let e = refused(dir, &["withdraw", "--key", "bob", "--at", "21"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to withdraw")
    );
    let e = refused(dir, &["distribute", "0", "--at", "21"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("epoch has not ended")
    );

    let s = ok(dir, &["status", "--at", "21"]);
    assert_eq!(s["params"]["voting_period"], 20);
    assert_eq!(s["proposals"][0]["state"], "executed");
    // bob's 10 was delegated to alice at the snapshot.
    assert_eq!(s["proposals"][0]["tally"]["for"], 510);
    assert_eq!(s["minted"], 1000);
    let alice = s["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "alice")
        .unwrap();
    assert_eq!(alice["bonded"], 500);
    assert_eq!(alice["balance"], 490);

    let v = ok(dir, &["verify"]);
    assert_eq!(v["ok"], true);
    assert_eq!(v["events"], s["events"]);
    let p = ok(dir, &["proof", "3", "--since", "4"]);
    assert_eq!(p["verified"], true);
    assert_eq!(p["consistency"]["verified"], true);
    assert_eq!(p["root"], s["root"]);
}

#[test]
fn verify_names_a_tampered_event() {
    let tmp = Scratch::new();
    let dir = tmp.path();
    init(dir);
    ok(
        dir,
        &["mint", "--to", "alice", "--units", "100", "--at", "1"],
    );
    ok(dir, &["burn", "--key", "alice", "7", "--at", "2"]);
    let p = ok(dir, &["proof", "1"]);
    let leaf = p["leaf"].as_str().unwrap();
    let leaf: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&leaf[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let db = dir.join("dao").join("ledger.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let at = bytes
        .windows(32)
        .position(|w| w == leaf.as_slice())
        .expect("leaf hash in the file");
    bytes[at + 3] ^= 0xff;
    std::fs::write(&db, &bytes).unwrap();
    let e = refused(dir, &["verify"]);
    assert_eq!(e["error"]["kind"], "verify_failed");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("event 1"),
        "{e}"
    );
}

#[test]
fn commands_without_a_ledger_or_key_fail_clearly() {
    let tmp = Scratch::new();
    let dir = tmp.path();
    let e = refused(dir, &["status"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fog dao init")
    );
    init(dir);
    let e = refused(dir, &["stake", "--key", "nobody", "5"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no key named")
    );
    refused(dir, &["init"]);
    refused(dir, &["key", "new", "alice"]);
    refused(dir, &["key", "new", "../evil"]);
}

#[test]
fn double_sign_evidence_slashes_and_tombstones_once() {
    let tmp = Scratch::new();
    let dir = tmp.path();
    init(dir);
    ok(dir, &["key", "new", "node"]);
    ok(
        dir,
        &["mint", "--to", "node", "--units", "200", "--at", "1"],
    );
    ok(dir, &["stake", "--key", "node", "1000", "--at", "2"]);
    let task = "11".repeat(32);
    let a = ok(
        dir,
        &[
            "sign-result",
            "--key",
            "node",
            "--task",
            &task,
            "--result",
            &"aa".repeat(32),
        ],
    );
    let b = ok(
        dir,
        &[
            "sign-result",
            "--key",
            "node",
            "--task",
            &task,
            "--result",
            &"bb".repeat(32),
        ],
    );
    let evidence = serde_json::json!({"double_sign": {
        "node": a["node"], "task": task,
        "first": {"result": a["result"], "signature": a["signature"]},
        "second": {"result": b["result"], "signature": b["signature"]},
    }});
    let file = dir.join("evidence.json");
    std::fs::write(&file, evidence.to_string()).unwrap();
    let file = file.to_str().unwrap();
    ok(dir, &["evidence", "--key", "alice", file, "--at", "3"]);
    let e = refused(dir, &["evidence", "--key", "bob", file, "--at", "4"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already punished"),
        "{e}"
    );
    let s = ok(dir, &["status", "--at", "4"]);
    let node = s["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "node")
        .unwrap();
    // 5% of 1000 slashed by default.
    assert_eq!(node["bonded"], 950);
    assert_eq!(node["tombstoned"], true);
    assert_eq!(s["slashed"], 50);
    // The same result twice proves nothing.
    let same = serde_json::json!({"double_sign": {
        "node": a["node"], "task": task,
        "first": {"result": a["result"], "signature": a["signature"]},
        "second": {"result": a["result"], "signature": a["signature"]},
    }});
    std::fs::write(dir.join("same.json"), same.to_string()).unwrap();
    let e = refused(
        dir,
        &[
            "evidence",
            "--key",
            "alice",
            dir.join("same.json").to_str().unwrap(),
            "--at",
            "5",
        ],
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid evidence"),
        "{e}"
    );
    assert_eq!(ok(dir, &["verify"])["ok"], true);
}
