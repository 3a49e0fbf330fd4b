//! `fog sched`, run as a user would.

use assert_cmd::Command;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let output = fog()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).expect("one JSON document")
}

#[test]
fn bench_prints_medians() {
    let doc = json_of(&[
        "sched",
        "bench",
        "--problem",
        "zdt1",
        "--seeds",
        "3",
        "--evaluations",
        "3000",
        "--json",
    ]);
    assert_eq!(doc["evaluations"], 3000.0);
    let hv = doc["hypervolume"].as_f64().unwrap();
    assert!(hv > 0.0 && hv < 0.88, "{hv}");
    assert!(doc["igd"].as_f64().unwrap() >= 0.0);
    assert!(doc["ms_per_generation"].as_f64().unwrap() > 0.0);
}

#[test]
fn place_never_violates_capacity() {
    for strategy in ["scored", "round-robin", "random", "privacy-aware"] {
        let doc = json_of(&[
            "sched",
            "place",
            "--nodes",
            "50",
            "--jobs",
            "400",
            "--strategy",
            strategy,
            "--json",
        ]);
        assert_eq!(doc["capacity_violations"], 0, "{strategy}");
        assert!(doc["placements_per_s"].as_f64().unwrap() > 0.0);
        assert!(doc["decision_p99_ms"].as_f64().unwrap() >= 0.0);
    }
}

#[test]
fn dag_schedules_a_wfformat_file() {
    let path = std::env::temp_dir().join(format!("fog-sched-cli-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"name": "t", "schemaVersion": "1.4", "workflow": {"tasks": [
            {"name": "a", "id": "1", "parents": [], "runtimeInSeconds": 10,
             "files": [{"link": "output", "name": "x", "sizeInBytes": 1000}]},
            {"name": "b", "id": "2", "parents": ["a"], "runtimeInSeconds": 20,
             "files": [{"link": "input", "name": "x", "sizeInBytes": 1000}]},
            {"name": "c", "id": "3", "parents": ["a"], "runtimeInSeconds": 20,
             "files": [{"link": "input", "name": "x", "sizeInBytes": 1000}]}
        ]}}"#,
    )
    .unwrap();
    let file = path.to_str().unwrap();
    let doc = json_of(&[
        "sched",
        "dag",
        file,
        "--nodes",
        "3",
        "--evaluations",
        "500",
        "--json",
    ]);
    let heft = doc["heft_makespan"].as_f64().unwrap();
    let nsga = doc["nsga_makespan"].as_f64().unwrap();
    assert!(heft > 0.0 && nsga <= heft, "{doc}");
    std::fs::write(&path, "{ not json").unwrap();
    let out = fog()
        .args(["sched", "dag", file, "--json"])
        .assert()
        .failure()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot schedule")
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn dag_front_trades_makespan_for_cost_on_a_60_task_workflow() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fog-sched/tests/data/layered-60.json"
    );
    let doc = json_of(&[
        "sched",
        "dag",
        file,
        "--nodes",
        "4",
        "--evaluations",
        "2000",
        "--json",
    ]);
    assert_eq!(doc["tasks"], 60);
    assert!(doc["nsga_makespan"].as_f64().unwrap() <= doc["heft_makespan"].as_f64().unwrap());
    assert!(doc["nsga_min_cost"].as_f64().unwrap() <= doc["heft_cost"].as_f64().unwrap());
    assert!(doc["front_size"].as_u64().unwrap() > 1);
}
