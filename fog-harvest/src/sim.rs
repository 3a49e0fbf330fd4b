//! Replays a device trace through the policy and controller.
//!
//! A trace is CSV with a header naming at least these columns (any order):
//!
//! ```text
//! time_s,battery_percent,charging,temperature_c,user_active,other_cpu_percent
//! ```
//!
//! and optionally `memory_available_percent`. `time_s` is seconds since the
//! trace start, strictly increasing; each row holds until the next one. An
//! empty `battery_percent` means no battery (mains), an empty
//! `temperature_c` or `memory_available_percent` a missing sensor.
//! `charging` and `user_active` are `0`/`1` (or `false`/`true`). The user
//! counts as idle since the end of the last active row (since the trace
//! start if there was none). Lines starting with `#` are comments.
//!
//! The simulator steps the controller once per second with a
//! [`WorkControl`](crate::WorkControl) double whose checkpoints always succeed.

use serde::Serialize;

use crate::controller::{Controller, Event, State};
use crate::policy::{Conditions, Policy, Reason};
use crate::power::Footprint;
use crate::work::RecordingWork;

/// Most rows a trace may have.
pub const MAX_ROWS: usize = 1_000_000;
/// Longest trace, seconds (31 days).
pub const MAX_SPAN_S: f64 = 31.0 * 86_400.0;
/// Most transitions kept in a report (the counts cover all of them).
pub const MAX_REPORTED_TRANSITIONS: usize = 1000;

/// One trace row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceRow {
    /// Seconds since the trace start.
    pub time_s: f64,
    /// Battery level, `None` without a battery.
    pub battery_percent: Option<f64>,
    /// Charging.
    pub charging: bool,
    /// Temperature, `None` when missing.
    pub temperature_c: Option<f64>,
    /// The user is active during this row.
    pub user_active: bool,
    /// CPU used by other programs, percent.
    pub other_cpu_percent: f64,
    /// Available memory, percent, `None` when missing.
    pub memory_available_percent: Option<f64>,
}

/// A device trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    rows: Vec<TraceRow>,
}

/// A trace that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trace line {line}: {message}")]
#[non_exhaustive]
pub struct TraceError {
    /// 1-based line number (0 for the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

const COLUMNS: [&str; 7] = [
    "time_s",
    "battery_percent",
    "charging",
    "temperature_c",
    "user_active",
    "other_cpu_percent",
    "memory_available_percent",
];

impl Trace {
    /// The rows.
    pub fn rows(&self) -> &[TraceRow] {
        &self.rows
    }

    /// Parses CSV text (see the module docs).
    pub fn parse_csv(text: &str) -> Result<Self, TraceError> {
        let err = |line: usize, message: String| TraceError { line, message };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let (header_line, header) = lines
            .next()
            .ok_or_else(|| err(0, "empty trace".to_owned()))?;
        let names: Vec<&str> = header.split(',').map(str::trim).collect();
        let mut index = [None; 7];
        for (i, name) in names.iter().enumerate() {
            let Some(c) = COLUMNS.iter().position(|c| c == name) else {
                return Err(err(header_line, format!("unknown column {name:?}")));
            };
            if index[c].replace(i).is_some() {
                return Err(err(header_line, format!("duplicate column {name:?}")));
            }
        }
        if let Some(c) = (0..6).find(|c| index[*c].is_none()) {
            return Err(err(header_line, format!("missing column {:?}", COLUMNS[c])));
        }
        let mut rows: Vec<TraceRow> = Vec::new();
        for (n, line) in lines {
            if rows.len() >= MAX_ROWS {
                return Err(err(n, format!("more than {MAX_ROWS} rows")));
            }
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if fields.len() != names.len() {
                return Err(err(
                    n,
                    format!("{} fields, header has {}", fields.len(), names.len()),
                ));
            }
            let field = |c: usize| index[c].map_or("", |i| fields[i]);
            let number = |c: usize, lo: f64, hi: f64| -> Result<Option<f64>, TraceError> {
                let f = field(c);
                if f.is_empty() {
                    return Ok(None);
                }
                match f.parse::<f64>() {
                    Ok(v) if v.is_finite() && (lo..=hi).contains(&v) => Ok(Some(v)),
                    _ => Err(err(
                        n,
                        format!(
                            "{} must be a number within {lo}..={hi}, got {f:?}",
                            COLUMNS[c]
                        ),
                    )),
                }
            };
            let flag = |c: usize| -> Result<bool, TraceError> {
                match field(c) {
                    "1" | "true" => Ok(true),
                    "0" | "false" | "" => Ok(false),
                    other => Err(err(
                        n,
                        format!("{} must be 0 or 1, got {other:?}", COLUMNS[c]),
                    )),
                }
            };
            let time_s =
                number(0, 0.0, MAX_SPAN_S)?.ok_or_else(|| err(n, "time_s is empty".to_owned()))?;
            if rows.last().is_some_and(|r| r.time_s >= time_s) {
                return Err(err(n, format!("time_s {time_s} does not increase")));
            }
            rows.push(TraceRow {
                time_s,
                battery_percent: number(1, 0.0, 100.0)?,
                charging: flag(2)?,
                temperature_c: number(3, -50.0, 200.0)?,
                user_active: flag(4)?,
                other_cpu_percent: number(5, 0.0, 100.0)?.unwrap_or(0.0),
                memory_available_percent: number(6, 0.0, 100.0)?,
            });
        }
        if rows.is_empty() {
            return Err(err(header_line, "no rows after the header".to_owned()));
        }
        Ok(Self { rows })
    }
}

/// Simulation settings beyond the policy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimOptions {
    /// Unix time of the trace start, for the policy's time windows
    /// (default 2024-01-01 00:00 UTC, a Monday).
    pub start_unix: i64,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            start_unix: 1_704_067_200,
        }
    }
}

/// One state change in a simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimTransition {
    /// Seconds since the trace start.
    pub time_s: f64,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Why.
    pub reason: Reason,
}

/// Seconds spent in each state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StateTimes {
    /// In [`State::Ineligible`].
    pub ineligible_s: f64,
    /// In [`State::Eligible`].
    pub eligible_s: f64,
    /// In [`State::Harvesting`].
    pub harvesting_s: f64,
    /// In [`State::Throttled`].
    pub throttled_s: f64,
    /// In [`State::Suspended`].
    pub suspended_s: f64,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    /// Seconds simulated.
    pub duration_s: f64,
    /// CPUs assumed (`power.cpus`, 1 when absent).
    pub cpus: u32,
    /// CPU-hours of fog work kept (run minus lost).
    pub harvested_cpu_hours: f64,
    /// CPU-hours fog work ran.
    pub run_cpu_hours: f64,
    /// CPU-hours lost to preemptions.
    pub lost_cpu_hours: f64,
    /// Times work was suspended.
    pub suspensions: u64,
    /// Suspensions that evicted work.
    pub preemptions: u64,
    /// Suspensions that paused work in memory.
    pub pauses: u64,
    /// Checkpoints taken (periodic and before suspensions).
    pub checkpoints: u64,
    /// Checkpoints taken because a suspension was coming.
    pub checkpoints_before_suspension: u64,
    /// Seconds of running lost over all preemptions.
    pub work_lost_s: f64,
    /// The largest loss of one preemption, seconds of running.
    pub max_work_lost_per_preemption_s: f64,
    /// The policy's checkpoint interval, which bounds the figure above.
    pub checkpoint_interval_s: f64,
    /// Time in each state.
    pub time_in_state: StateTimes,
    /// Energy the whole device drew (model, with other programs' load), joules.
    pub device_energy_joules: f64,
    /// Energy fog work added, with cost and carbon when configured.
    pub fog_energy: Footprint,
    /// State changes (the first [`MAX_REPORTED_TRANSITIONS`]).
    pub transitions: Vec<SimTransition>,
    /// How many state changes there were in all.
    pub transition_count: u64,
    /// State at the end.
    pub final_state: State,
    /// Reason at the end.
    pub final_reason: Reason,
}

/// Replays `trace` through `policy` (see the module docs).
pub fn simulate(trace: &Trace, policy: &Policy, options: &SimOptions) -> SimReport {
    let rows = trace.rows();
    let start = rows[0].time_s;
    let end = rows[rows.len() - 1].time_s;
    let model = policy.power.model(1);
    let cpus = f64::from(model.cpus());
    let mut controller = Controller::new(policy.clone(), start);
    let mut work = RecordingWork::new(16);
    let mut report = SimReport {
        duration_s: end - start,
        cpus: model.cpus(),
        harvested_cpu_hours: 0.0,
        run_cpu_hours: 0.0,
        lost_cpu_hours: 0.0,
        suspensions: 0,
        preemptions: 0,
        pauses: 0,
        checkpoints: 0,
        checkpoints_before_suspension: 0,
        work_lost_s: 0.0,
        max_work_lost_per_preemption_s: 0.0,
        checkpoint_interval_s: policy.checkpoint_interval_s,
        time_in_state: StateTimes::default(),
        device_energy_joules: 0.0,
        fog_energy: policy.power.footprint(0.0),
        transitions: Vec::new(),
        transition_count: 0,
        final_state: controller.state(),
        final_reason: controller.reason().clone(),
    };
    let mut run_cpu_s = 0.0;
    let mut lost_cpu_s = 0.0;
    let mut cpu_since_checkpoint = 0.0;
    let mut fog_joules = 0.0;
    let mut row = 0usize;
    let mut idle_since = start;
    let mut previous_t = start;
    let steps = (end - start).ceil() as u64;
    for i in 0..=steps {
        let t = (start + i as f64).min(end);
        if i > 0 && t <= previous_t {
            break;
        }
        let dt = t - previous_t;
        // Account the interval (previous_t, t] at the state held during it.
        let share = controller.cpu_share();
        let other = rows[row].other_cpu_percent / 100.0;
        report.device_energy_joules += model.watts((other + share).min(1.0)) * dt;
        let cpu = share * cpus * dt;
        run_cpu_s += cpu;
        cpu_since_checkpoint += cpu;
        fog_joules += model.joules_for_cpu_seconds(cpu);
        add_state_time(&mut report.time_in_state, controller.state(), dt);
        previous_t = t;

        while row + 1 < rows.len() && rows[row + 1].time_s <= t {
            if rows[row].user_active && !rows[row + 1].user_active {
                idle_since = rows[row + 1].time_s;
            }
            row += 1;
        }
        let r = &rows[row];
        let idle_s = if r.user_active { 0.0 } else { t - idle_since };
        let minute = policy.minute_of_week(options.start_unix.saturating_add(t as i64));
        let mut c = Conditions::mains()
            .non_fog_cpu(r.other_cpu_percent)
            .user_idle(idle_s)
            .at_minute_of_week(minute);
        if let Some(b) = r.battery_percent {
            c = c.battery(Some(b), r.charging);
        }
        if let Some(temp) = r.temperature_c {
            c = c.temperature(temp);
        }
        if let Some(m) = r.memory_available_percent {
            c = c.memory_available(m);
        }
        let step = controller.step(t, &c, &mut work);
        for event in step.events {
            match event {
                Event::Transition { from, to, reason } => {
                    report.transition_count += 1;
                    if to == State::Suspended {
                        report.suspensions += 1;
                    }
                    if report.transitions.len() < MAX_REPORTED_TRANSITIONS {
                        report.transitions.push(SimTransition {
                            time_s: t,
                            from,
                            to,
                            reason,
                        });
                    }
                }
                Event::Checkpoint { before_suspension } => {
                    report.checkpoints += 1;
                    if before_suspension {
                        report.checkpoints_before_suspension += 1;
                    }
                    cpu_since_checkpoint = 0.0;
                }
                Event::Preempted { work_lost_s } => {
                    report.preemptions += 1;
                    report.work_lost_s += work_lost_s;
                    report.max_work_lost_per_preemption_s =
                        report.max_work_lost_per_preemption_s.max(work_lost_s);
                    lost_cpu_s += cpu_since_checkpoint;
                    cpu_since_checkpoint = 0.0;
                }
                Event::Paused => report.pauses += 1,
                Event::WorkFailed { .. } => {}
            }
        }
    }
    report.run_cpu_hours = run_cpu_s / 3600.0;
    report.lost_cpu_hours = lost_cpu_s / 3600.0;
    report.harvested_cpu_hours = (run_cpu_s - lost_cpu_s).max(0.0) / 3600.0;
    report.fog_energy = policy.power.footprint(fog_joules);
    report.final_state = controller.state();
    report.final_reason = controller.reason().clone();
    report
}

fn add_state_time(times: &mut StateTimes, state: State, dt: f64) {
    let slot = match state {
        State::Ineligible => &mut times.ineligible_s,
        State::Eligible => &mut times.eligible_s,
        State::Harvesting => &mut times.harvesting_s,
        State::Throttled => &mut times.throttled_s,
        State::Suspended => &mut times.suspended_s,
    };
    *slot += dt;
}
