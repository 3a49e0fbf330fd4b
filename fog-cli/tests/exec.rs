//! `fog job run` (fog-exec) through the real binary.

use assert_cmd::Command;
use predicates::prelude::*;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

const ECHO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $p i32) (local $n i32)
    (drop (call $sizes (i32.const 0) (i32.const 4)))
    (drop (call $args (i32.const 64) (i32.const 1024)))
    ;; print argv[1] up to its NUL
    (local.set $p (i32.load (i32.const 68)))
    (block $d (loop $l
      (br_if $d (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (i32.store (i32.const 16) (local.get $p))
    (i32.store (i32.const 20) (local.get $n))
    (drop (call $w (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))"#;

fn module(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write module");
    path
}

#[test]
fn job_run_wasm_prints_the_guest_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = module(&dir, "echo.wat", ECHO_WAT);
    fog()
        .args(["job", "run", "--wasm"])
        .arg(&path)
        .args(["--", "hello-fog"])
        .assert()
        .success()
        .stdout("hello-fog");
}

#[test]
fn job_run_json_is_one_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = module(&dir, "echo.wat", ECHO_WAT);
    let out = fog()
        .args([
            "--json",
            "job",
            "run",
            "--fuel",
            "100000",
            "--memory",
            "16",
            "--timeout",
            "5",
            "--wasm",
        ])
        .arg(&path)
        .args(["--", "x"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
    assert_eq!(doc["state"], "succeeded");
    assert_eq!(doc["stdout"], "x");
    assert!(doc["fuel_consumed"].as_u64().is_some_and(|f| f > 0));
}

#[test]
fn job_run_out_of_fuel_fails_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = module(
        &dir,
        "loop.wat",
        "(module (func (export \"_start\") (loop $l (br $l))))",
    );
    fog()
        .args(["job", "run", "--fuel", "1000", "--wasm"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("out of fuel"));
}

#[test]
fn job_run_needs_a_workload() {
    fog().args(["job", "run"]).assert().code(2);
}

#[test]
fn job_run_image_tar_runs_a_container() {
    let required = std::env::var("FOG_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let daemon = std::path::Path::new("/var/run/docker.sock").exists();
    let busybox = std::fs::read("/bin/busybox");
    let (true, Ok(busybox)) = (daemon, busybox) else {
        assert!(
            !required,
            "FOG_REQUIRE_DOCKER=1 but no docker daemon or /bin/busybox"
        );
        println!("skipped: no docker daemon");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("image.tar");
    let image = "fog-cli-test-busybox:1";
    std::fs::write(
        &tar,
        fog_exec::image::busybox_image_tar(image, &busybox).expect("image tarball"),
    )
    .expect("write tarball");
    fog()
        .args(["job", "run", "--image", image, "--image-tar"])
        .arg(&tar)
        .args(["--", "/bin/sh", "-c", "echo from-container; exit 0"])
        .assert()
        .success()
        .stdout("from-container\n");
}
