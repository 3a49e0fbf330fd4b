//! `fog harvest`, run as a user would.

use assert_cmd::Command;
use predicates::prelude::*;

fn fog() -> Command {
    Command::cargo_bin("fog").expect("the fog binary is built")
}

fn testdata(name: &str) -> String {
    format!(
        "{}/../fog-harvest/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn json_of(args: &[&str]) -> serde_json::Value {
    let output = fog()
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).expect("stdout is one JSON document")
}

#[test]
fn status_runs_on_this_machine_and_reports_every_reading() {
    let doc = json_of(&["--json", "harvest", "status", "--sample-ms", "200"]);
    assert!(doc["eligible"].is_boolean(), "{doc}");
    assert!(doc["reason"]["kind"].is_string(), "{doc}");
    assert!(doc["reason_text"].is_string(), "{doc}");
    assert_eq!(doc["sysfs_root"], "/sys");
    assert_eq!(doc["procfs_root"], "/proc");
    for sensor in ["power", "thermal", "cpu", "memory", "user_idle", "energy"] {
        let status = doc["readings"][sensor]["status"].as_str();
        assert!(
            matches!(status, Some("present" | "missing")),
            "{sensor}: {}",
            doc["readings"][sensor]
        );
    }
    // Every machine with a /proc has these.
    assert_eq!(doc["readings"]["cpu"]["status"], "present");
    assert_eq!(doc["readings"]["memory"]["status"], "present");
    assert!(doc["checks"].as_array().is_some_and(|c| c.len() >= 4));
    assert!(
        doc["memory_limit_bytes"].as_u64().is_some_and(|b| b > 0),
        "{doc}"
    );
    // Human output too.
    fog()
        .args(["harvest", "status", "--sample-ms", "0"])
        .assert()
        .success()
        .stdout(
            predicate::str::starts_with("eligible: ").and(predicate::str::contains("readings:")),
        );
}

#[test]
fn status_on_a_fixture_laptop_at_40_percent_gives_the_battery_reason() {
    let root = testdata("laptop-battery-40");
    let doc = json_of(&[
        "--json",
        "harvest",
        "status",
        "--sysfs-root",
        &format!("{root}/sys"),
        "--procfs-root",
        &format!("{root}/proc"),
        "--sample-ms",
        "0",
    ]);
    assert_eq!(doc["eligible"], false);
    assert_eq!(doc["reason"]["kind"], "battery_low");
    assert_eq!(doc["reason_text"], "battery at 40%, below 50%");
    assert_eq!(doc["readings"]["power"]["value"]["source"], "battery");
}

#[test]
fn status_on_a_fixture_desktop_with_a_policy_file_is_eligible() {
    let root = testdata("desktop-no-battery");
    let doc = json_of(&[
        "--json",
        "harvest",
        "status",
        "--sysfs-root",
        &format!("{root}/sys"),
        "--procfs-root",
        &format!("{root}/proc"),
        "--policy",
        &testdata("policy.toml"),
        "--sample-ms",
        "0",
    ]);
    assert_eq!(doc["eligible"], true, "{doc}");
    assert_eq!(doc["readings"]["power"]["value"]["source"], "mains");
    assert_eq!(doc["readings"]["user_idle"]["status"], "missing");
    assert_eq!(doc["power_model"]["cpus"], 8);
    assert!(
        doc["policy_source"]
            .as_str()
            .is_some_and(|p| p.ends_with("policy.toml"))
    );
}

#[test]
fn status_with_a_bad_root_or_policy_fails_clearly() {
    fog()
        .args(["harvest", "status", "--sysfs-root", "/nonexistent/sys"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "sysfs root /nonexistent/sys is not a readable directory",
        ));
    let dir = tempfile_dir();
    let policy = format!("{dir}/bad.toml");
    std::fs::write(&policy, "min_battery_percent = 500\n").expect("write");
    let output = fog()
        .args(["--json", "harvest", "status", "--policy", &policy])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&output).expect("one JSON error document");
    let causes = doc["error"]["causes"].to_string();
    assert!(
        causes.contains("min_battery_percent must be within 0..=100"),
        "{doc}"
    );
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("fog-harvest-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.display().to_string()
}

#[test]
fn simulate_reports_harvest_suspensions_preemptions_work_lost_and_energy() {
    let doc = json_of(&[
        "--json",
        "harvest",
        "simulate",
        "--trace",
        &testdata("laptop-day.csv"),
    ]);
    let r = &doc["report"];
    assert_eq!(doc["rows"], 720);
    assert!(
        r["harvested_cpu_hours"].as_f64().is_some_and(|h| h > 1.0),
        "{r}"
    );
    assert!(r["suspensions"].as_u64().is_some_and(|n| n >= 3), "{r}");
    assert!(r["preemptions"].as_u64().is_some_and(|n| n >= 1), "{r}");
    let lost = r["max_work_lost_per_preemption_s"]
        .as_f64()
        .expect("number");
    assert!(lost <= r["checkpoint_interval_s"].as_f64().expect("number"));
    assert!(
        r["fog_energy"]["joules"].as_f64().is_some_and(|j| j > 0.0),
        "{r}"
    );

    fog()
        .args([
            "harvest",
            "simulate",
            "--trace",
            &testdata("laptop-day.csv"),
            "--policy",
            &testdata("policy.toml"),
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("harvested").and(predicate::str::contains("g CO2e")));
}

#[test]
fn simulate_with_a_bad_trace_names_the_line() {
    let dir = tempfile_dir();
    let trace = format!("{dir}/bad.csv");
    std::fs::write(
        &trace,
        "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n0,50,0,40,0,5\n60,50,0,hot,0,5\n",
    )
    .expect("write");
    fog()
        .args(["harvest", "simulate", "--trace", &trace])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "trace line 3: temperature_c must be a number",
        ));
    fog()
        .args(["harvest", "simulate", "--trace", "/nonexistent.csv"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "cannot read trace /nonexistent.csv",
        ));
}
