//! `fog harvest`: whether and how much this device may lend compute
//! (fog-harvest's sensors, policy and trace simulator).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use fog_harvest::{
    Conditions, ContributionRecord, ContributionSigner, Controller, LinuxSensors, Outcome, Policy,
    PowerSource, Reading, RecordingWork, Sensors, SimOptions, SimReport, Snapshot, Trace,
    Verification, simulate,
};
use serde_json::json;

use crate::cli::GlobalArgs;

/// `fog harvest ...`.
#[derive(Debug, Args)]
pub(crate) struct HarvestArgs {
    #[command(subcommand)]
    command: HarvestCommand,
}

#[derive(Debug, Subcommand)]
enum HarvestCommand {
    /// Read every sensor and say whether this device may lend compute now, and why
    Status(StatusArgs),
    /// Replay a device trace (CSV) through the policy and report what would be harvested
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Root of sysfs (a fixture tree in tests).
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
    /// Root of procfs (a fixture tree in tests).
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    procfs_root: PathBuf,
    /// Policy file (TOML); the defaults when absent.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Milliseconds between the two readings that CPU use, energy and input
    /// activity are measured over (0: one reading, CPU use since boot).
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    sample_ms: u64,
    /// A process id of fog's own work, not counted as other programs' CPU use (repeatable).
    #[arg(long = "fog-pid", value_name = "PID")]
    fog_pids: Vec<u32>,
    /// The cgroup v2 group of fog's work, under the cgroup2 mount (for
    /// example `fog.slice`); replaces --fog-pid when given.
    #[arg(long, value_name = "GROUP")]
    fog_cgroup: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// The trace: CSV with time_s, battery_percent, charging, temperature_c,
    /// user_active, other_cpu_percent [, memory_available_percent].
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// Policy file (TOML); the defaults when absent.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Unix time of the trace start, for the policy's time windows
    /// (default 2024-01-01 00:00 UTC, a Monday).
    #[arg(long, value_name = "SECONDS")]
    start_unix: Option<i64>,
}

/// Runs `fog harvest ...`.
pub(crate) fn run(args: HarvestArgs, global: &GlobalArgs) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match args.command {
        HarvestCommand::Status(a) => status(&a, global.json, &mut out),
        HarvestCommand::Simulate(a) => simulate_cmd(&a, global.json, &mut out),
    }
}

/// Largest policy or trace file read.
const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= MAX_INPUT_BYTES,
        "{what} {} is larger than {MAX_INPUT_BYTES} bytes",
        path.display()
    );
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<(Policy, String)> {
    match path {
        None => Ok((Policy::default(), "defaults".to_owned())),
        Some(p) => {
            let text = read_text(p, "policy file")?;
            let policy = Policy::from_toml(&text)
                .with_context(|| format!("in policy file {}", p.display()))?;
            Ok((policy, p.display().to_string()))
        }
    }
}

fn status(args: &StatusArgs, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let (policy, policy_source) = load_policy(args.policy.as_deref())?;
    // logind describes this machine only: not when reading fixture trees.
    let real_roots = args.sysfs_root == Path::new("/sys") && args.procfs_root == Path::new("/proc");
    let mut sensors =
        LinuxSensors::with_roots(&args.sysfs_root, &args.procfs_root)?.with_logind(real_roots);
    sensors.set_fog_pids(&args.fog_pids);
    if let Some(group) = &args.fog_cgroup {
        sensors = sensors.with_fog_cgroup(group);
    }
    let start = Instant::now();
    let mut snapshot = sensors.read(0.0);
    if args.sample_ms > 0 {
        std::thread::sleep(Duration::from_millis(args.sample_ms));
        snapshot = sensors.read(start.elapsed().as_secs_f64());
    }
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let minute = policy.minute_of_week(unix);
    let conditions = Conditions::from_snapshot(&snapshot, Some(minute));
    let assessment = policy.assess(&conditions, None);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let model = policy.power.model(cpus);
    let utilisation = snapshot.cpu.value().map(|c| c.total_percent / 100.0);
    let cpu_share = match &assessment.verdict {
        fog_harvest::Verdict::Allow { cpu_share, .. } => *cpu_share,
        _ => 0.0,
    };
    if json {
        let document = json!({
            "sysfs_root": args.sysfs_root,
            "procfs_root": args.procfs_root,
            "policy_source": policy_source,
            "sample_ms": args.sample_ms,
            "readings": snapshot,
            "eligible": assessment.allowed(),
            "reason": assessment.reason(),
            "reason_text": assessment.reason().to_string(),
            "cpu_share": cpu_share,
            "memory_limit_bytes": snapshot
                .memory
                .value()
                .map(|m| (m.total_bytes as f64 * policy.memory_cap_percent / 100.0) as u64),
            "checks": assessment.checks,
            "power_model": {
                "idle_watts": model.idle_watts(),
                "max_watts": model.max_watts(),
                "cpus": model.cpus(),
                "estimated_watts_now": utilisation.map(|u| model.watts(u)),
                "measured_watts_now": snapshot.energy.value().and_then(|e| e.watts),
            },
            "policy": policy,
        });
        writeln!(out, "{document}")?;
    } else {
        write_status_text(out, &snapshot, &assessment, cpu_share, &policy_source)?;
    }
    Ok(())
}

fn write_status_text(
    out: &mut dyn Write,
    s: &Snapshot,
    a: &fog_harvest::Assessment,
    cpu_share: f64,
    policy_source: &str,
) -> anyhow::Result<()> {
    if a.allowed() {
        writeln!(
            out,
            "eligible: yes, at {:.0}% of the cpu ({})",
            cpu_share * 100.0,
            a.reason()
        )?;
    } else {
        writeln!(out, "eligible: no ({})", a.reason())?;
    }
    writeln!(out, "policy: {policy_source}")?;
    let line = |name: &str, r: Result<String, String>| match r {
        Ok(v) => format!("  {name:<12} {v}"),
        Err(why) => format!("  {name:<12} missing: {why}"),
    };
    writeln!(out, "readings:")?;
    writeln!(
        out,
        "{}",
        line(
            "power",
            describe(&s.power, |p| {
                let source = match p.source {
                    PowerSource::Battery => "on battery",
                    _ => "on mains",
                };
                let charging = if p.charging == Some(true) {
                    ", charging"
                } else {
                    ""
                };
                match p.battery_percent {
                    _ if p.batteries.is_empty() => "on mains, no battery".to_owned(),
                    Some(pct) => format!("{source}, battery at {pct:.0}%{charging}"),
                    None => format!("{source}, battery level unreadable{charging}"),
                }
            })
        )
    )?;
    writeln!(
        out,
        "{}",
        line(
            "temperature",
            describe(&s.thermal, |t| format!(
                "{:.1} °C (hottest of {})",
                t.max_celsius,
                t.sensors.len()
            ))
        )
    )?;
    writeln!(
        out,
        "{}",
        line(
            "cpu",
            describe(&s.cpu, |c| format!(
                "{:.0}% busy, {:.0}% other programs, {:.0}% fog ({})",
                c.total_percent,
                c.non_fog_percent,
                c.fog_percent,
                c.window_s
                    .map_or("since boot".to_owned(), |w| format!("over {w:.1} s"))
            ))
        )
    )?;
    writeln!(
        out,
        "{}",
        line(
            "memory",
            describe(&s.memory, |m| format!(
                "{:.0}% available of {:.1} GiB",
                m.available_percent(),
                m.total_bytes as f64 / f64::from(1u32 << 30)
            ))
        )
    )?;
    writeln!(
        out,
        "{}",
        line(
            "user idle",
            describe(&s.user_idle, |u| format!(
                "{}{:.0} s",
                if u.at_least { "at least " } else { "" },
                u.idle_s
            ))
        )
    )?;
    writeln!(
        out,
        "{}",
        line(
            "energy",
            describe(&s.energy, |e| match e.watts {
                Some(w) => format!("{w:.1} W ({})", e.domains.join(", ")),
                None => format!("{:.1} J counter ({})", e.total_joules, e.domains.join(", ")),
            })
        )
    )?;
    writeln!(out, "checks:")?;
    for c in &a.checks {
        let mark = match c.outcome {
            Outcome::Pass => "pass",
            Outcome::Throttle => "throttle",
            Outcome::Fail => "FAIL",
            _ => "skip",
        };
        writeln!(out, "  {mark:<8} {:<12} {}", c.rule, c.detail)?;
    }
    Ok(())
}

fn describe<T>(r: &Reading<T>, f: impl Fn(&T) -> String) -> Result<String, String> {
    match r {
        Reading::Present { value, .. } => Ok(f(value)),
        Reading::Missing { why } => Err(why.clone()),
        _ => Err("unknown".to_owned()),
    }
}

fn simulate_cmd(args: &SimulateArgs, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let (policy, policy_source) = load_policy(args.policy.as_deref())?;
    let text = read_text(&args.trace, "trace")?;
    let trace =
        Trace::parse_csv(&text).with_context(|| format!("in trace {}", args.trace.display()))?;
    let mut options = SimOptions::default();
    if let Some(start) = args.start_unix {
        options.start_unix = start;
    }
    let report = simulate(&trace, &policy, &options);
    if json {
        let document = json!({
            "trace": args.trace,
            "rows": trace.rows().len(),
            "policy_source": policy_source,
            "report": report,
        });
        writeln!(out, "{document}")?;
    } else {
        write_sim_text(out, &report, trace.rows().len())?;
    }
    Ok(())
}

fn write_sim_text(out: &mut dyn Write, r: &SimReport, rows: usize) -> anyhow::Result<()> {
    writeln!(
        out,
        "simulated {:.1} h ({rows} trace rows, {} cpu)",
        r.duration_s / 3600.0,
        r.cpus
    )?;
    writeln!(
        out,
        "harvested    {:.3} cpu-hours ({:.3} run, {:.3} lost)",
        r.harvested_cpu_hours, r.run_cpu_hours, r.lost_cpu_hours
    )?;
    writeln!(
        out,
        "suspensions  {} ({} preempted, {} paused)",
        r.suspensions, r.preemptions, r.pauses
    )?;
    writeln!(
        out,
        "work lost    {:.0} s in all, at most {:.0} s per preemption (checkpoint interval {:.0} s)",
        r.work_lost_s, r.max_work_lost_per_preemption_s, r.checkpoint_interval_s
    )?;
    writeln!(
        out,
        "checkpoints  {} ({} right before a suspension)",
        r.checkpoints, r.checkpoints_before_suspension
    )?;
    let mut energy = format!(
        "energy       {:.0} J by fog work ({:.4} kWh), {:.0} J by the whole device",
        r.fog_energy.joules, r.fog_energy.kwh, r.device_energy_joules
    );
    if let Some(cost) = r.fog_energy.cost {
        let _ = write!(energy, ", cost {cost:.4}");
    }
    if let Some(carbon) = r.fog_energy.carbon_g {
        let _ = write!(energy, ", {carbon:.1} g CO2e");
    }
    writeln!(out, "{energy}")?;
    let t = &r.time_in_state;
    writeln!(
        out,
        "time         harvesting {:.0} s, throttled {:.0} s, suspended {:.0} s, eligible {:.0} s, ineligible {:.0} s",
        t.harvesting_s, t.throttled_s, t.suspended_s, t.eligible_s, t.ineligible_s
    )?;
    writeln!(out, "final state  {:?} ({})", r.final_state, r.final_reason)?;
    Ok(())
}

/// `fog bench harvest`: throughput of the harvest hot paths, printed as
/// figures (one JSON document under `--json`). Not wired yet: the lead hooks
/// it into `fog bench`.
pub(crate) fn bench(json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    // Controller steps: a full simulated day, one step per second.
    let mut csv = String::from(
        "time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent\n",
    );
    for m in 0..1440u32 {
        let temp = if (600..660).contains(&m) { 75 } else { 50 };
        let active = u8::from(m % 97 == 0);
        let _ = writeln!(
            csv,
            "{},{},1,{temp},{active},{}",
            m * 60,
            60 + m % 40,
            m % 30
        );
    }
    let trace = Trace::parse_csv(&csv)?;
    let policy = Policy::default();
    let started = Instant::now();
    let report = simulate(&trace, &policy, &SimOptions::default());
    let sim_s = started.elapsed().as_secs_f64();
    let steps_per_s = (report.duration_s + 1.0) / sim_s;

    // Policy decisions alone.
    let c = Conditions::mains()
        .battery(Some(80.0), false)
        .temperature(50.0)
        .user_idle(600.0)
        .non_fog_cpu(5.0);
    let n = 100_000u32;
    let started = Instant::now();
    let mut allowed = 0u32;
    for _ in 0..n {
        allowed += u32::from(policy.assess(&c, None).allowed());
    }
    let assess_per_s = f64::from(n) / started.elapsed().as_secs_f64();
    anyhow::ensure!(allowed == n, "bench conditions should be allowed");

    // Controller steps with a recording double.
    let mut controller = Controller::new(policy.clone(), 0.0);
    let mut work = RecordingWork::new(64);
    let started = Instant::now();
    for t in 0..n {
        controller.step(f64::from(t), &c, &mut work);
    }
    let steps_direct_per_s = f64::from(n) / started.elapsed().as_secs_f64();

    // Sensor reads on this machine.
    let mut sensors = LinuxSensors::system()?;
    let reads = 200u32;
    let started = Instant::now();
    for i in 0..reads {
        let _ = sensors.read(f64::from(i));
    }
    let reads_per_s = f64::from(reads) / started.elapsed().as_secs_f64();

    // Contribution signing and verification.
    let signer = ContributionSigner::from_seed(&[42u8; 32]);
    let signs = 100u32;
    let started = Instant::now();
    let mut signed = Vec::with_capacity(signs as usize);
    for i in 0..signs {
        let r = ContributionRecord::new(
            u64::from(i),
            0,
            60,
            vec!["task".to_owned()],
            60.0,
            100.0,
            Verification::Pending,
        )?;
        signed.push(signer.sign(r));
    }
    let signs_per_s = f64::from(signs) / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for s in &signed {
        s.verify()?;
    }
    let verifies_per_s = f64::from(signs) / started.elapsed().as_secs_f64();

    if json {
        let document = json!({
            "layer": "harvest",
            "policy_assessments_per_s": assess_per_s,
            "controller_steps_per_s": steps_direct_per_s,
            "simulated_steps_per_s": steps_per_s,
            "sensor_reads_per_s": reads_per_s,
            "contribution_signs_per_s": signs_per_s,
            "contribution_verifies_per_s": verifies_per_s,
        });
        writeln!(out, "{document}")?;
    } else {
        writeln!(out, "policy assessments   {assess_per_s:>12.0} /s")?;
        writeln!(out, "controller steps     {steps_direct_per_s:>12.0} /s")?;
        writeln!(
            out,
            "simulated steps      {steps_per_s:>12.0} /s (one day, 1 s steps)"
        )?;
        writeln!(
            out,
            "sensor reads         {reads_per_s:>12.0} /s (/sys and /proc)"
        )?;
        writeln!(out, "contribution signs   {signs_per_s:>12.0} /s")?;
        writeln!(out, "contribution verifies{verifies_per_s:>12.0} /s")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bench_prints_one_json_document() {
        let mut out = Vec::new();
        super::bench(true, &mut out).expect("bench runs");
        let doc: serde_json::Value = serde_json::from_slice(&out).expect("one JSON document");
        assert!(
            doc["controller_steps_per_s"]
                .as_f64()
                .is_some_and(|v| v > 0.0)
        );
    }
}
