//! The trace simulator and the policy file, through the public API.

use std::fmt::Write as _;
use std::path::Path;

use fog_harvest::{Policy, PolicyError, SimOptions, State, Trace, simulate};
use proptest::prelude::*;

fn testdata(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata")
            .join(name),
    )
    .expect("testdata file")
}

#[test]
fn the_sample_policy_parses_and_defaults_are_the_issues() {
    let policy = Policy::from_toml(&testdata("policy.toml")).expect("sample policy");
    assert_eq!(policy.cpu_cap_percent, 80.0);
    assert_eq!(policy.windows.len(), 3);
    assert_eq!(policy.power.cpus, Some(8));
    let d = Policy::default();
    assert_eq!(d.min_battery_percent, 50.0);
    assert_eq!(d.max_temperature_c, 70.0);
    assert_eq!(d.resume_backoff_s, 300.0);
    assert_eq!(Policy::from_toml("").expect("empty is all defaults"), d);
}

#[test]
fn bad_policies_are_clear_errors() {
    let unknown = Policy::from_toml("min_battery = 50").expect_err("unknown key");
    assert!(matches!(unknown, PolicyError::Toml(_)));
    let range = Policy::from_toml("min_battery_percent = 150").expect_err("range");
    assert_eq!(
        range.to_string(),
        "invalid policy: min_battery_percent must be within 0..=100, got 150"
    );
    let time =
        Policy::from_toml("[[windows]]\nstart = \"25:00\"\nend = \"08:00\"").expect_err("time");
    assert!(format!("{time:?}").contains("25:00"));
    assert!(Policy::from_toml("checkpoint_interval_s = 0").is_err());
    assert!(Policy::from_toml("[power]\nidle_watts = 50\nmax_watts = 10").is_err());
}

#[test]
fn the_sample_trace_harvests_suspends_and_preempts() {
    let trace = Trace::parse_csv(&testdata("laptop-day.csv")).expect("sample trace");
    assert_eq!(trace.rows().len(), 720);
    let policy = Policy::default();
    let report = simulate(&trace, &policy, &SimOptions::default());
    assert_eq!(report.duration_s, 719.0 * 60.0);
    assert!(report.harvested_cpu_hours > 3.0, "{report:#?}");
    assert!(
        report.suspensions >= 3,
        "heat, battery and the backup job: {report:#?}"
    );
    assert_eq!(report.preemptions, report.suspensions);
    assert!(report.max_work_lost_per_preemption_s <= policy.checkpoint_interval_s);
    assert!(report.checkpoints_before_suspension >= 3);
    assert!(report.fog_energy.joules > 0.0);
    assert!(report.device_energy_joules > report.fog_energy.joules);
    let reasons: Vec<String> = report
        .transitions
        .iter()
        .filter(|t| t.to == State::Suspended)
        .map(|t| t.reason.to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("too hot")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("battery at")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("other programs")),
        "{reasons:?}"
    );
    // Deterministic.
    assert_eq!(simulate(&trace, &policy, &SimOptions::default()), report);
    // Cost and carbon appear when configured.
    let sample = Policy::from_toml(&testdata("policy.toml")).expect("sample policy");
    let report = simulate(&trace, &sample, &SimOptions::default());
    assert!(report.fog_energy.cost.is_some() && report.fog_energy.carbon_g.is_some());
}

#[test]
fn bad_traces_are_clear_errors() {
    let cases = [
        ("", "trace line 0: empty trace"),
        (
            "time_s,battery_percent\n0,1\n",
            "missing column \"charging\"",
        ),
        ("time_s,bogus\n", "unknown column \"bogus\""),
        (
            "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n0,50,0,40,0,5\n0,50,0,40,0,5\n",
            "trace line 3: time_s 0 does not increase",
        ),
        (
            "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n0,150,0,40,0,5\n",
            "battery_percent must be a number within 0..=100",
        ),
        (
            "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n0,50,2,40,0,5\n",
            "charging must be 0 or 1",
        ),
        (
            "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n0,50,0\n",
            "3 fields, header has 6",
        ),
        (
            "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n",
            "no rows after the header",
        ),
    ];
    for (text, expected) in cases {
        let err = Trace::parse_csv(text).expect_err(expected);
        assert!(
            err.to_string().contains(expected),
            "{err} does not contain {expected}"
        );
    }
}

/// gap, battery, charging, temperature, user active, other cpu.
type Row = (u32, Option<u8>, bool, Option<u8>, bool, u8);

fn trace_rows() -> impl Strategy<Value = Vec<Row>> {
    prop::collection::vec(
        (
            1u32..900,
            prop::option::weighted(0.8, 0u8..=100),
            any::<bool>(),
            prop::option::weighted(0.9, 30u8..90),
            prop::bool::weighted(0.3),
            0u8..=100,
        ),
        1..16,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Work lost per preemption never exceeds the checkpoint interval.
    #[test]
    fn work_lost_per_preemption_is_at_most_the_checkpoint_interval(
        rows in trace_rows(),
        interval in 1u32..240,
        grace in 0u32..40,
        lead in 0u32..40,
        dwell in 0u32..30,
    ) {
        let mut csv = String::from("time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n");
        let mut t = 0u32;
        for (gap, battery, charging, temp, active, other) in &rows {
            let b = battery.map(|b| b.to_string()).unwrap_or_default();
            let temp = temp.map(|x| x.to_string()).unwrap_or_default();
            writeln!(csv, "{t},{b},{},{temp},{},{other}", u8::from(*charging), u8::from(*active)).expect("write to string");
            t += gap;
        }
        let trace = Trace::parse_csv(&csv).expect("generated trace parses");
        let mut policy = Policy::default();
        policy.checkpoint_interval_s = f64::from(interval);
        policy.grace_period_s = f64::from(grace);
        policy.checkpoint_lead_s = f64::from(lead);
        policy.min_dwell_s = f64::from(dwell);
        policy.idle_minutes = 1.0;
        policy.resume_backoff_s = 60.0;
        let report = simulate(&trace, &policy, &SimOptions::default());
        prop_assert!(report.max_work_lost_per_preemption_s <= policy.checkpoint_interval_s,
            "lost {} s with interval {} s", report.max_work_lost_per_preemption_s, interval);
        prop_assert!(report.lost_cpu_hours <= report.run_cpu_hours + 1e-12);
    }

    /// Any text gives a trace or an error, never a panic.
    #[test]
    fn trace_parsing_never_panics(text in "\\PC{0,400}") {
        let _ = Trace::parse_csv(&text);
        let _ = Policy::from_toml(&text);
    }
}
