//! Fixture sysfs/procfs trees give the right readings, eligibility and reason.

use std::fs;
use std::path::{Path, PathBuf};

use fog_harvest::{
    Conditions, LinuxSensors, Outcome, Policy, PowerSource, Reason, Sensors, Snapshot,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// Reads a fixture twice, ten minutes apart with no input-device interrupt,
/// as a node that has watched the device for a while would.
fn watched(name: &str) -> Snapshot {
    let root = fixture(name);
    let mut sensors =
        LinuxSensors::with_roots(root.join("sys"), root.join("proc")).expect("fixture roots");
    let _ = sensors.read(0.0);
    sensors.read(600.0)
}

fn assess(snapshot: &Snapshot, policy: &Policy) -> fog_harvest::Assessment {
    policy.assess(&Conditions::from_snapshot(snapshot, None), None)
}

fn outcome(a: &fog_harvest::Assessment, rule: &str) -> Outcome {
    a.checks
        .iter()
        .find(|c| c.rule == rule)
        .unwrap_or_else(|| panic!("no {rule} check in {:?}", a.checks))
        .outcome
}

#[test]
fn laptop_on_battery_at_40_percent_is_ineligible_for_its_battery() {
    let s = watched("laptop-battery-40");
    let power = s.power.value().expect("power present");
    assert_eq!(power.source, PowerSource::Battery);
    assert_eq!(power.battery_percent, Some(40.0));
    assert_eq!(power.charging, Some(false));
    assert_eq!(power.ac_online, Some(false));
    assert_eq!(
        power.batteries.len(),
        1,
        "the mouse's battery is not a system battery"
    );
    let a = assess(&s, &Policy::default());
    assert!(!a.allowed());
    assert_eq!(
        *a.reason(),
        Reason::BatteryLow {
            percent: 40.0,
            min_percent: 50.0
        }
    );
    assert_eq!(a.reason().to_string(), "battery at 40%, below 50%");
}

#[test]
fn laptop_charging_at_60_percent_is_eligible() {
    let s = watched("laptop-charging-60");
    let power = s.power.value().expect("power present");
    assert_eq!(power.source, PowerSource::Mains);
    assert_eq!(power.battery_percent, Some(60.0));
    assert_eq!(power.charging, Some(true));
    let a = assess(&s, &Policy::default());
    assert!(a.allowed(), "{a:?}");
    assert_eq!(*a.reason(), Reason::AllConditionsMet);
    assert_eq!(outcome(&a, "battery"), Outcome::Pass);
    assert_eq!(outcome(&a, "user idle"), Outcome::Pass);
    // Only while charging: still eligible.
    let mut policy = Policy::default();
    policy.only_while_charging = true;
    assert!(assess(&s, &policy).allowed());
}

#[test]
fn hot_cpu_is_ineligible_for_heat() {
    let s = watched("hot-cpu");
    let thermal = s.thermal.value().expect("thermal present");
    assert_eq!(thermal.max_celsius, 83.0);
    assert_eq!(thermal.sensors.len(), 2);
    let a = assess(&s, &Policy::default());
    assert!(!a.allowed());
    assert_eq!(
        *a.reason(),
        Reason::TooHot {
            celsius: 83.0,
            max_celsius: 70.0
        }
    );
}

#[test]
fn desktop_without_battery_is_on_mains_and_eligible() {
    let s = watched("desktop-no-battery");
    let power = s.power.value().expect("no battery is a reading: mains");
    assert_eq!(power.source, PowerSource::Mains);
    assert!(power.batteries.is_empty());
    assert_eq!(power.battery_percent, None);
    // hwmon answers where thermal zones do not.
    assert_eq!(s.thermal.value().map(|t| t.max_celsius), Some(51.0));
    // No keyboard or mouse interrupt: idle is missing, not guessed.
    assert!(s.user_idle.value().is_none());
    // RAPL: the package domain, not its core subzone.
    let energy = s.energy.value().expect("rapl present");
    assert_eq!(energy.domains, vec!["package-0".to_owned()]);
    assert_eq!(energy.total_joules, 1000.0);
    let a = assess(&s, &Policy::default());
    assert!(a.allowed(), "{a:?}");
    assert_eq!(*a.reason(), Reason::AllConditionsMet);
    assert_eq!(outcome(&a, "battery"), Outcome::Pass);
    assert_eq!(outcome(&a, "user idle"), Outcome::Skipped);
}

#[test]
fn missing_thermal_zones_are_reported_missing_and_skipped_or_required() {
    let s = watched("missing-thermal");
    assert!(s.thermal.value().is_none());
    let a = assess(&s, &Policy::default());
    assert!(a.allowed(), "{a:?}");
    assert_eq!(outcome(&a, "temperature"), Outcome::Skipped);
    let mut strict = Policy::default();
    strict.require_sensors = true;
    let a = assess(&s, &strict);
    assert!(!a.allowed());
    assert_eq!(
        *a.reason(),
        Reason::SensorMissing {
            sensor: "thermal".to_owned()
        }
    );
}

#[test]
fn a_first_reading_does_not_claim_the_user_is_idle() {
    let root = fixture("laptop-charging-60");
    let mut sensors = LinuxSensors::with_roots(root.join("sys"), root.join("proc")).expect("roots");
    let s = sensors.read(0.0);
    let idle = s.user_idle.value().expect("input interrupts present");
    assert!(idle.at_least);
    let a = assess(&s, &Policy::default());
    assert!(matches!(
        a.reason(),
        Reason::UserActive {
            unconfirmed: true,
            ..
        }
    ));
}

#[test]
fn memory_and_cpu_come_from_procfs() {
    let s = watched("laptop-charging-60");
    let m = s.memory.value().expect("meminfo");
    assert_eq!(m.total_bytes, 16_000_000 * 1024);
    assert_eq!(m.available_percent(), 50.0);
    let cpu = s.cpu.value().expect("stat");
    // Since boot: busy 1535 of 9635 ticks.
    assert!((cpu.total_percent - 1535.0 * 100.0 / 9635.0).abs() < 1e-9);
    assert_eq!(cpu.non_fog_percent, cpu.total_percent);
    assert_eq!(cpu.window_s, None);
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[test]
fn deltas_give_window_cpu_fog_share_rapl_watts_and_input_activity() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture("laptop-charging-60"), dir.path());
    copy_tree(
        &fixture("desktop-no-battery").join("sys/class/powercap"),
        &dir.path().join("sys/class/powercap"),
    );
    let proc_dir = dir.path().join("proc");
    fs::create_dir_all(proc_dir.join("4242")).expect("pid dir");
    let stat = |utime: u64| {
        format!("4242 (fog task) R 1 4242 4242 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 5 0 0\n")
    };
    fs::write(proc_dir.join("4242/stat"), stat(100)).expect("write");
    let mut sensors = LinuxSensors::with_roots(dir.path().join("sys"), &proc_dir).expect("roots");
    sensors.set_fog_pids(&[4242, 999_999]);
    let _ = sensors.read(0.0);

    // Ten seconds later: 1000 more ticks, 600 busy, 400 of them fog's; 50 J
    // more on the package; the keyboard typed.
    fs::write(
        proc_dir.join("stat"),
        "cpu  1500 20 600 8400 100 10 5 0 0 0\n",
    )
    .expect("write");
    fs::write(proc_dir.join("4242/stat"), stat(500)).expect("write");
    fs::write(
        dir.path().join("sys/class/powercap/intel-rapl:0/energy_uj"),
        "1050000000\n",
    )
    .expect("write");
    let interrupts = fs::read_to_string(proc_dir.join("interrupts")).expect("read");
    fs::write(
        proc_dir.join("interrupts"),
        interrupts.replace("1200", "1250"),
    )
    .expect("write");
    let s = sensors.read(10.0);
    let cpu = s.cpu.value().expect("cpu");
    assert_eq!(cpu.window_s, Some(10.0));
    assert!((cpu.total_percent - 60.0).abs() < 1e-9, "{cpu:?}");
    assert!((cpu.fog_percent - 40.0).abs() < 1e-9, "{cpu:?}");
    assert!((cpu.non_fog_percent - 20.0).abs() < 1e-9, "{cpu:?}");
    assert_eq!(s.energy.value().and_then(|e| e.watts), Some(5.0));
    let idle = s.user_idle.value().expect("idle");
    assert_eq!((idle.idle_s, idle.at_least), (0.0, false));

    // Thirty seconds later with no input: idle 30 s, exact.
    let s = sensors.read(40.0);
    let idle = s.user_idle.value().expect("idle");
    assert_eq!((idle.idle_s, idle.at_least), (30.0, false));
}

#[test]
fn a_root_that_is_not_a_directory_is_an_error() {
    let err = LinuxSensors::with_roots("/nonexistent/sys", "/proc").expect_err("bad root");
    assert!(
        err.to_string().contains("sysfs root /nonexistent/sys"),
        "{err}"
    );
}

#[test]
fn garbage_sensor_files_are_missing_readings_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sys = dir.path().join("sys");
    let proc_dir = dir.path().join("proc");
    fs::create_dir_all(sys.join("class/power_supply/BAT0")).expect("mkdir");
    fs::create_dir_all(sys.join("class/thermal/thermal_zone0")).expect("mkdir");
    fs::create_dir_all(&proc_dir).expect("mkdir");
    fs::write(sys.join("class/power_supply/BAT0/type"), "Battery\n").expect("w");
    fs::write(
        sys.join("class/power_supply/BAT0/capacity"),
        [0xff, 0xfe, 0x00],
    )
    .expect("w");
    fs::write(sys.join("class/thermal/thermal_zone0/temp"), "hot\n").expect("w");
    fs::write(proc_dir.join("stat"), "cpu x y z\n").expect("w");
    fs::write(proc_dir.join("meminfo"), "MemTotal: lots\n").expect("w");
    fs::write(proc_dir.join("interrupts"), [0u8, 159, 146, 150]).expect("w");
    let mut sensors = LinuxSensors::with_roots(&sys, &proc_dir).expect("roots");
    let s = sensors.read(0.0);
    let power = s.power.value().expect("power");
    assert_eq!(
        power.battery_percent, None,
        "unreadable level is missing, not guessed"
    );
    assert!(s.thermal.value().is_none());
    assert!(s.cpu.value().is_none());
    assert!(s.memory.value().is_none());
    assert!(s.user_idle.value().is_none());
    assert!(s.energy.value().is_none());
    let a = assess(&s, &Policy::default());
    assert_eq!(outcome(&a, "battery"), Outcome::Skipped);
}

#[test]
fn a_fog_cgroup_counts_fogs_cpu_and_an_unreadable_one_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture("laptop-charging-60"), dir.path());
    let group = dir.path().join("sys/fs/cgroup/fog.slice");
    fs::create_dir_all(&group).expect("mkdir");
    fs::write(
        group.join("cpu.stat"),
        "usage_usec 2000000\nuser_usec 1500000\nsystem_usec 500000\n",
    )
    .expect("write");
    let proc_dir = dir.path().join("proc");
    fs::write(proc_dir.join("uptime"), "100.00 50.00\n").expect("write");
    let mut sensors = LinuxSensors::with_roots(dir.path().join("sys"), &proc_dir)
        .expect("roots")
        .with_fog_cgroup("/fog.slice");
    // Since boot: 2 s of fog CPU in 100 s on one CPU.
    let cpu = sensors.read(0.0).cpu.value().cloned().expect("cpu");
    assert!((cpu.fog_percent - 2.0).abs() < 1e-9, "{cpu:?}");
    assert!((cpu.non_fog_percent - (cpu.total_percent - 2.0)).abs() < 1e-9);
    // Ten seconds later: 60% busy, 4 s of it fog's.
    fs::write(
        proc_dir.join("stat"),
        "cpu  1500 20 600 8400 100 10 5 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n",
    )
    .expect("write");
    fs::write(group.join("cpu.stat"), "usage_usec 6000000\n").expect("write");
    let cpu = sensors.read(10.0).cpu.value().cloned().expect("cpu");
    assert!((cpu.total_percent - 60.0).abs() < 1e-9, "{cpu:?}");
    assert!((cpu.fog_percent - 40.0).abs() < 1e-9, "{cpu:?}");
    assert!((cpu.non_fog_percent - 20.0).abs() < 1e-9, "{cpu:?}");
    // The group disappears: the non-fog share is unknown, so cpu is missing.
    fs::remove_file(group.join("cpu.stat")).expect("rm");
    let s = sensors.read(20.0);
    match &s.cpu {
        fog_harvest::Reading::Missing { why } => assert!(why.contains("fog cgroup"), "{why}"),
        other => panic!("expected missing, got {other:?}"),
    }
}
