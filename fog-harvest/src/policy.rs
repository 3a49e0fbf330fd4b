//! The harvesting policy: BOINC-like computing preferences with fog's
//! defaults, and the check of a device's [`Conditions`] against them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::power::PowerConfig;
use crate::sensors::{PowerSource, Snapshot};

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    fn index(self) -> u32 {
        Self::ALL.iter().position(|d| *d == self).unwrap_or(0) as u32
    }
}

/// A time of day, written `"HH:MM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClockTime(u16);

impl ClockTime {
    /// Minutes after midnight (0..=1440; `24:00` is the end of the day).
    pub fn minutes(self) -> u16 {
        self.0
    }
}

impl TryFrom<String> for ClockTime {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let parsed = text.split_once(':').and_then(|(h, m)| {
            let h: u16 = h.parse().ok()?;
            let m: u16 = m.parse().ok()?;
            (m < 60 && (h < 24 || (h == 24 && m == 0)) && text.len() == 5).then_some(h * 60 + m)
        });
        parsed
            .map(ClockTime)
            .ok_or_else(|| format!("invalid time of day {text:?}: expected \"HH:MM\""))
    }
}

impl From<ClockTime> for String {
    fn from(t: ClockTime) -> String {
        format!("{:02}:{:02}", t.0 / 60, t.0 % 60)
    }
}

/// An allowed time window, optionally with its own CPU share (a time-of-day
/// profile). A window whose end is before its start crosses midnight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeWindow {
    /// Days the window applies to (the day the moment falls on); empty means every day.
    #[serde(default)]
    pub days: Vec<Weekday>,
    /// Start (inclusive).
    pub start: ClockTime,
    /// End (exclusive).
    pub end: ClockTime,
    /// CPU share for fog work inside this window in percent; the policy's
    /// `cpu_cap_percent` when absent.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
}

impl TimeWindow {
    /// A window from `start` to `end` (minutes after midnight) on every day.
    pub fn every_day(start: ClockTime, end: ClockTime) -> Self {
        Self {
            days: Vec::new(),
            start,
            end,
            cpu_percent: None,
        }
    }

    fn contains(&self, minute_of_week: u32) -> bool {
        let day = minute_of_week / 1440;
        let minute = (minute_of_week % 1440) as u16;
        let day_ok = self.days.is_empty() || self.days.iter().any(|d| d.index() == day);
        let (s, e) = (self.start.0, self.end.0);
        let time_ok = if s <= e {
            minute >= s && minute < e
        } else {
            minute >= s || minute < e
        };
        day_ok && time_ok
    }
}

/// The computing preferences. Defaults are the original design's: battery
/// at least 50%, temperature below 70 °C, user idle for 3 minutes, suspend
/// while other programs use more than 25% of the CPU, a 5-minute back-off
/// after a battery or heat suspension, checkpoints at most every 60 s.
///
/// Read from TOML with [`Policy::from_toml`]; every key is optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Policy {
    /// Work only while the battery (when there is one) is at least this full, percent.
    pub min_battery_percent: f64,
    /// Work only while the battery (when there is one) is charging or on external power.
    pub only_while_charging: bool,
    /// Suspend at or above this temperature, °C.
    pub max_temperature_c: f64,
    /// Throttle to `thermal_throttle_percent` at or above this temperature
    /// (below `max_temperature_c`); no thermal throttling when absent.
    pub throttle_temperature_c: Option<f64>,
    /// CPU share while thermally throttled, percent.
    pub thermal_throttle_percent: f64,
    /// The user counts as away after this many minutes without input.
    pub idle_minutes: f64,
    /// CPU share while the user is active, percent; 0 suspends work while
    /// the user is active (BOINC's "suspend when computer is in use").
    pub in_use_cpu_percent: f64,
    /// CPU share for fog work, percent of the whole machine.
    pub cpu_cap_percent: f64,
    /// Suspend while programs other than fog use more than this share of the CPU, percent.
    pub max_non_fog_cpu_percent: f64,
    /// Memory fog work may use, percent of the total (a limit for the executor).
    pub memory_cap_percent: f64,
    /// Suspend while less than this share of memory is available, percent.
    pub min_available_memory_percent: f64,
    /// Allowed time windows; work is allowed at any time when empty.
    pub windows: Vec<TimeWindow>,
    /// Offset of local time from UTC in minutes, for the time windows.
    pub utc_offset_minutes: i32,
    /// After a battery suspension, resume only at `min_battery_percent` plus this.
    pub battery_hysteresis_percent: f64,
    /// After a heat suspension, resume only below `max_temperature_c` minus this.
    pub temperature_hysteresis_c: f64,
    /// A failing condition must last this long before work is suspended, s.
    pub grace_period_s: f64,
    /// After a battery or heat suspension, conditions must stay good this long before resuming, s.
    pub resume_backoff_s: f64,
    /// The controller stays at least this long in a state, s.
    pub min_dwell_s: f64,
    /// Ask running work to checkpoint at most (and at least) every this many seconds of running.
    pub checkpoint_interval_s: f64,
    /// Time a checkpoint needs: a checkpoint is asked for before a
    /// suspension when the grace period is at least this long, s.
    pub checkpoint_lead_s: f64,
    /// Pause suspended work in memory instead of preempting it.
    pub keep_in_memory: bool,
    /// Treat a missing sensor that an enabled rule needs as a failed rule
    /// (by default the rule is skipped and reported as unchecked).
    pub require_sensors: bool,
    /// Power model and cost/carbon figures.
    pub power: PowerConfig,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_battery_percent: 50.0,
            only_while_charging: false,
            max_temperature_c: 70.0,
            throttle_temperature_c: Some(65.0),
            thermal_throttle_percent: 50.0,
            idle_minutes: 3.0,
            in_use_cpu_percent: 0.0,
            cpu_cap_percent: 100.0,
            max_non_fog_cpu_percent: 25.0,
            memory_cap_percent: 50.0,
            min_available_memory_percent: 10.0,
            windows: Vec::new(),
            utc_offset_minutes: 0,
            battery_hysteresis_percent: 5.0,
            temperature_hysteresis_c: 5.0,
            grace_period_s: 10.0,
            resume_backoff_s: 300.0,
            min_dwell_s: 10.0,
            checkpoint_interval_s: 60.0,
            checkpoint_lead_s: 5.0,
            keep_in_memory: false,
            require_sensors: false,
            power: PowerConfig::default(),
        }
    }
}

/// Why a policy could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The TOML did not parse or had unknown keys.
    #[error("invalid policy file")]
    Toml(#[from] toml::de::Error),
    /// A value is out of range.
    #[error("invalid policy: {0}")]
    Invalid(String),
}

impl Policy {
    /// Reads a policy from TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text)?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let percents = [
            ("min_battery_percent", self.min_battery_percent),
            ("thermal_throttle_percent", self.thermal_throttle_percent),
            ("in_use_cpu_percent", self.in_use_cpu_percent),
            ("cpu_cap_percent", self.cpu_cap_percent),
            ("max_non_fog_cpu_percent", self.max_non_fog_cpu_percent),
            ("memory_cap_percent", self.memory_cap_percent),
            (
                "min_available_memory_percent",
                self.min_available_memory_percent,
            ),
            (
                "battery_hysteresis_percent",
                self.battery_hysteresis_percent,
            ),
        ];
        for (name, v) in percents {
            if !(0.0..=100.0).contains(&v) {
                return Err(invalid(format!("{name} must be within 0..=100, got {v}")));
            }
        }
        for (i, w) in self.windows.iter().enumerate() {
            if let Some(p) = w.cpu_percent
                && !(0.0..=100.0).contains(&p)
            {
                return Err(invalid(format!(
                    "windows[{i}].cpu_percent must be within 0..=100, got {p}"
                )));
            }
        }
        let seconds = [
            ("idle_minutes", self.idle_minutes),
            ("temperature_hysteresis_c", self.temperature_hysteresis_c),
            ("grace_period_s", self.grace_period_s),
            ("resume_backoff_s", self.resume_backoff_s),
            ("min_dwell_s", self.min_dwell_s),
            ("checkpoint_lead_s", self.checkpoint_lead_s),
        ];
        for (name, v) in seconds {
            if !(0.0..=1e9).contains(&v) {
                return Err(invalid(format!("{name} must be within 0..=1e9, got {v}")));
            }
        }
        if !(1.0..=1e9).contains(&self.checkpoint_interval_s) {
            return Err(invalid(format!(
                "checkpoint_interval_s must be within 1..=1e9, got {}",
                self.checkpoint_interval_s
            )));
        }
        for (name, v) in [
            ("max_temperature_c", Some(self.max_temperature_c)),
            ("throttle_temperature_c", self.throttle_temperature_c),
        ] {
            if let Some(v) = v
                && !(-50.0..=200.0).contains(&v)
            {
                return Err(invalid(format!("{name} must be within -50..=200, got {v}")));
            }
        }
        if self.utc_offset_minutes.abs() > 18 * 60 {
            return Err(invalid(format!(
                "utc_offset_minutes must be within -1080..=1080, got {}",
                self.utc_offset_minutes
            )));
        }
        self.power.validate().map_err(invalid)
    }

    /// The minute of the local week (0 = Monday 00:00) for a Unix time, using
    /// `utc_offset_minutes`.
    pub fn minute_of_week(&self, unix_s: i64) -> u32 {
        let local_min = unix_s.div_euclid(60) + i64::from(self.utc_offset_minutes);
        // 1970-01-01 was a Thursday: day 3 when Monday is 0.
        (local_min + 3 * 1440).rem_euclid(7 * 1440) as u32
    }

    /// Checks `conditions` against the policy. `suspended_for` is the reason
    /// of the current suspension, which tightens the battery and temperature
    /// thresholds by their hysteresis.
    pub fn assess(&self, c: &Conditions, suspended_for: Option<&Reason>) -> Assessment {
        let mut checks = Vec::new();
        let mut deny: Option<Reason> = None;
        let mut share = self.cpu_cap_percent;
        let mut limiter: Option<Reason> = None;
        let mut fail = |checks: &mut Vec<Check>, rule: &'static str, reason: Reason| {
            checks.push(Check::new(rule, Outcome::Fail, reason.to_string()));
            deny.get_or_insert(reason);
        };
        let missing =
            |checks: &mut Vec<Check>, rule: &'static str, sensor: &str| -> Option<Reason> {
                if self.require_sensors {
                    Some(Reason::SensorMissing {
                        sensor: sensor.to_owned(),
                    })
                } else {
                    checks.push(Check::new(
                        rule,
                        Outcome::Skipped,
                        format!("{sensor} sensor missing: rule not checked"),
                    ));
                    None
                }
            };

        // Power.
        let battery_hold = matches!(suspended_for, Some(r) if r.is_battery());
        match &c.power {
            None => {
                if let Some(r) = missing(&mut checks, "battery", "power supply") {
                    fail(&mut checks, "battery", r);
                }
            }
            Some(PowerCondition::Mains) => {
                checks.push(Check::new(
                    "battery",
                    Outcome::Pass,
                    "no battery: mains power",
                ));
            }
            Some(PowerCondition::Battery {
                percent,
                charging,
                on_external_power,
            }) => {
                let min = if battery_hold {
                    (self.min_battery_percent + self.battery_hysteresis_percent).min(100.0)
                } else {
                    self.min_battery_percent
                };
                match percent {
                    Some(p) if *p < min => fail(
                        &mut checks,
                        "battery",
                        Reason::BatteryLow {
                            percent: *p,
                            min_percent: min,
                        },
                    ),
                    Some(p) => checks.push(Check::new(
                        "battery",
                        Outcome::Pass,
                        format!("battery at {p:.0}% (minimum {min:.0}%)"),
                    )),
                    None => {
                        if let Some(r) = missing(&mut checks, "battery", "battery level") {
                            fail(&mut checks, "battery", r);
                        }
                    }
                }
                if self.only_while_charging {
                    if *charging || *on_external_power {
                        checks.push(Check::new("charging", Outcome::Pass, "charging"));
                    } else {
                        fail(&mut checks, "charging", Reason::NotCharging);
                    }
                }
            }
        }

        // Temperature.
        let heat_hold = matches!(suspended_for, Some(r) if r.is_heat());
        match c.temperature_c {
            None => {
                if let Some(r) = missing(&mut checks, "temperature", "thermal") {
                    fail(&mut checks, "temperature", r);
                }
            }
            Some(t) => {
                let max = if heat_hold {
                    self.max_temperature_c - self.temperature_hysteresis_c
                } else {
                    self.max_temperature_c
                };
                if t >= max {
                    fail(
                        &mut checks,
                        "temperature",
                        Reason::TooHot {
                            celsius: t,
                            max_celsius: max,
                        },
                    );
                } else if let Some(limit) = self.throttle_temperature_c.filter(|l| t >= *l) {
                    checks.push(Check::new(
                        "temperature",
                        Outcome::Throttle,
                        format!(
                            "{t:.1} °C at or above {limit:.1} °C: throttled to {:.0}%",
                            self.thermal_throttle_percent
                        ),
                    ));
                    if self.thermal_throttle_percent < share {
                        share = self.thermal_throttle_percent;
                        limiter = Some(Reason::ThermalThrottle {
                            celsius: t,
                            above_celsius: limit,
                        });
                    }
                } else {
                    checks.push(Check::new(
                        "temperature",
                        Outcome::Pass,
                        format!("{t:.1} °C (maximum {max:.1} °C)"),
                    ));
                }
            }
        }

        // Memory.
        match c.memory_available_percent {
            None => {
                if let Some(r) = missing(&mut checks, "memory", "memory") {
                    fail(&mut checks, "memory", r);
                }
            }
            Some(m) if m < self.min_available_memory_percent => fail(
                &mut checks,
                "memory",
                Reason::MemoryLow {
                    available_percent: m,
                    min_percent: self.min_available_memory_percent,
                },
            ),
            Some(m) => checks.push(Check::new(
                "memory",
                Outcome::Pass,
                format!(
                    "{m:.0}% available (minimum {:.0}%)",
                    self.min_available_memory_percent
                ),
            )),
        }

        // Time windows.
        if !self.windows.is_empty() {
            match c.minute_of_week {
                None => {
                    if let Some(r) = missing(&mut checks, "time window", "clock") {
                        fail(&mut checks, "time window", r);
                    }
                }
                Some(m) => match self.windows.iter().find(|w| w.contains(m)) {
                    None => fail(&mut checks, "time window", Reason::OutsideTimeWindow),
                    Some(w) => {
                        checks.push(Check::new(
                            "time window",
                            Outcome::Pass,
                            "inside an allowed window",
                        ));
                        if let Some(p) = w.cpu_percent
                            && p < share
                        {
                            share = p;
                            limiter = Some(Reason::TimeProfile { cpu_percent: p });
                        }
                    }
                },
            }
        }

        // User activity.
        let required_s = self.idle_minutes * 60.0;
        if required_s <= 0.0 {
            checks.push(Check::new(
                "user idle",
                Outcome::Pass,
                "no idle time required",
            ));
        } else {
            match c.user_idle {
                None => {
                    if let Some(r) = missing(&mut checks, "user idle", "user idle") {
                        fail(&mut checks, "user idle", r);
                    }
                }
                Some(idle) if idle.idle_s >= required_s => checks.push(Check::new(
                    "user idle",
                    Outcome::Pass,
                    format!("idle {:.0} s (required {required_s:.0} s)", idle.idle_s),
                )),
                Some(idle) => {
                    let reason = Reason::UserActive {
                        idle_s: idle.idle_s,
                        required_s,
                        unconfirmed: idle.at_least,
                    };
                    if self.in_use_cpu_percent > 0.0 {
                        checks.push(Check::new(
                            "user idle",
                            Outcome::Throttle,
                            reason.to_string(),
                        ));
                        if self.in_use_cpu_percent < share {
                            share = self.in_use_cpu_percent;
                            limiter = Some(Reason::UserActiveThrottle {
                                cpu_percent: self.in_use_cpu_percent,
                            });
                        }
                    } else {
                        fail(&mut checks, "user idle", reason);
                    }
                }
            }
        }

        // Other programs' CPU use.
        match c.non_fog_cpu_percent {
            None => {
                if let Some(r) = missing(&mut checks, "non-fog cpu", "cpu") {
                    fail(&mut checks, "non-fog cpu", r);
                }
            }
            Some(p) if p > self.max_non_fog_cpu_percent => fail(
                &mut checks,
                "non-fog cpu",
                Reason::NonFogCpuHigh {
                    percent: p,
                    max_percent: self.max_non_fog_cpu_percent,
                },
            ),
            Some(p) => checks.push(Check::new(
                "non-fog cpu",
                Outcome::Pass,
                format!(
                    "other programs use {p:.0}% (maximum {:.0}%)",
                    self.max_non_fog_cpu_percent
                ),
            )),
        }

        if share <= 0.0 && deny.is_none() {
            deny = Some(limiter.take().unwrap_or(Reason::ZeroCpuShare));
        }
        let verdict = match deny {
            Some(reason) => Verdict::Deny { reason },
            None => Verdict::Allow {
                cpu_share: share / 100.0,
                reason: limiter.unwrap_or(Reason::AllConditionsMet),
            },
        };
        Assessment { verdict, checks }
    }
}

fn invalid(message: String) -> PolicyError {
    PolicyError::Invalid(message)
}

/// The power condition the policy checks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PowerCondition {
    /// Mains power, or no battery at all.
    Mains,
    /// A battery is present.
    Battery {
        /// Charge level in percent, if readable.
        percent: Option<f64>,
        /// Whether it is charging (or full).
        charging: bool,
        /// Whether an external supply is online.
        on_external_power: bool,
    },
}

/// User idle time as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IdleCondition {
    /// Seconds without user input.
    pub idle_s: f64,
    /// The idle time is a lower bound (no input seen since observation began).
    pub at_least: bool,
}

/// The inputs of a policy decision; `None` means the sensor is missing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conditions {
    power: Option<PowerCondition>,
    temperature_c: Option<f64>,
    user_idle: Option<IdleCondition>,
    non_fog_cpu_percent: Option<f64>,
    memory_available_percent: Option<f64>,
    minute_of_week: Option<u32>,
}

impl Default for Conditions {
    fn default() -> Self {
        Self::mains()
    }
}

impl Conditions {
    /// A device on mains power whose other sensors are all missing.
    pub fn mains() -> Self {
        Self {
            power: Some(PowerCondition::Mains),
            temperature_c: None,
            user_idle: None,
            non_fog_cpu_percent: None,
            memory_available_percent: None,
            minute_of_week: None,
        }
    }

    /// From a sensor snapshot, at `minute_of_week` local time if known.
    pub fn from_snapshot(s: &Snapshot, minute_of_week: Option<u32>) -> Self {
        let power = s.power.value().map(|p| {
            if p.batteries.is_empty() {
                PowerCondition::Mains
            } else {
                PowerCondition::Battery {
                    percent: p.battery_percent,
                    charging: p.charging.unwrap_or(false),
                    on_external_power: p.source == PowerSource::Mains,
                }
            }
        });
        Self {
            power,
            temperature_c: s.thermal.value().map(|t| t.max_celsius),
            user_idle: s.user_idle.value().map(|u| IdleCondition {
                idle_s: u.idle_s,
                at_least: u.at_least,
            }),
            non_fog_cpu_percent: s.cpu.value().map(|c| c.non_fog_percent),
            memory_available_percent: s
                .memory
                .value()
                .map(crate::sensors::Memory::available_percent),
            minute_of_week,
        }
    }

    /// With a battery at `percent` (`None`: level unreadable), charging or not.
    /// A charging battery counts as on external power.
    pub fn battery(mut self, percent: Option<f64>, charging: bool) -> Self {
        self.power = Some(PowerCondition::Battery {
            percent,
            charging,
            on_external_power: charging,
        });
        self
    }

    /// With the power supply unreadable.
    pub fn power_unknown(mut self) -> Self {
        self.power = None;
        self
    }

    /// With the hottest temperature in °C.
    pub fn temperature(mut self, celsius: f64) -> Self {
        self.temperature_c = Some(celsius);
        self
    }

    /// With the user idle for `seconds` (an exact figure).
    pub fn user_idle(mut self, seconds: f64) -> Self {
        self.user_idle = Some(IdleCondition {
            idle_s: seconds,
            at_least: false,
        });
        self
    }

    /// With other programs using `percent` of the CPU.
    pub fn non_fog_cpu(mut self, percent: f64) -> Self {
        self.non_fog_cpu_percent = Some(percent);
        self
    }

    /// With `percent` of memory available.
    pub fn memory_available(mut self, percent: f64) -> Self {
        self.memory_available_percent = Some(percent);
        self
    }

    /// At this minute of the local week (0 = Monday 00:00).
    pub fn at_minute_of_week(mut self, minute: u32) -> Self {
        self.minute_of_week = Some(minute % (7 * 1440));
        self
    }

    /// The power condition, if known.
    pub fn power(&self) -> Option<PowerCondition> {
        self.power
    }
}

/// How one rule came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The rule allows work.
    Pass,
    /// The rule allows work at a reduced CPU share.
    Throttle,
    /// The rule forbids work.
    Fail,
    /// The sensor the rule needs is missing; the rule was not applied.
    Skipped,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// The rule's name.
    pub rule: &'static str,
    /// Its outcome.
    pub outcome: Outcome,
    /// What it saw.
    pub detail: String,
}

impl Check {
    fn new(rule: &'static str, outcome: Outcome, detail: impl Into<String>) -> Self {
        Self {
            rule,
            outcome,
            detail: detail.into(),
        }
    }
}

/// The overall result of a policy check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Work may run at `cpu_share` of the machine.
    Allow {
        /// Share of the machine's CPU, 0..=1.
        cpu_share: f64,
        /// [`Reason::AllConditionsMet`] or the rule that limits the share.
        reason: Reason,
    },
    /// Work may not run.
    Deny {
        /// The first failing rule.
        reason: Reason,
    },
}

/// Every rule's result and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// The verdict.
    pub verdict: Verdict,
    /// Each rule in order: battery, charging, temperature, memory, time window, user idle, non-fog cpu.
    pub checks: Vec<Check>,
}

impl Assessment {
    /// Whether work may run.
    pub fn allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Allow { .. })
    }

    /// The verdict's reason.
    pub fn reason(&self) -> &Reason {
        match &self.verdict {
            Verdict::Allow { reason, .. } | Verdict::Deny { reason } => reason,
        }
    }
}

/// Why the device is in its state. Every controller state carries one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The controller has just started.
    Starting,
    /// Every rule passes.
    AllConditionsMet,
    /// The battery is below the minimum.
    BatteryLow {
        /// Level in percent.
        percent: f64,
        /// The minimum in force (with hysteresis after a battery suspension).
        min_percent: f64,
    },
    /// The policy wants charging and the battery is not charging.
    NotCharging,
    /// The device is too hot.
    TooHot {
        /// Hottest sensor, °C.
        celsius: f64,
        /// The maximum in force (with hysteresis after a heat suspension).
        max_celsius: f64,
    },
    /// The user has not been idle long enough.
    UserActive {
        /// Seconds without input.
        idle_s: f64,
        /// Seconds required.
        required_s: f64,
        /// The idle figure is only a lower bound so far.
        unconfirmed: bool,
    },
    /// Other programs use too much CPU.
    NonFogCpuHigh {
        /// Their share, percent.
        percent: f64,
        /// The maximum, percent.
        max_percent: f64,
    },
    /// Too little memory is available.
    MemoryLow {
        /// Available share, percent.
        available_percent: f64,
        /// The minimum, percent.
        min_percent: f64,
    },
    /// Outside every allowed time window.
    OutsideTimeWindow,
    /// A sensor the policy requires is missing.
    SensorMissing {
        /// Which.
        sensor: String,
    },
    /// The policy leaves no CPU share.
    ZeroCpuShare,
    /// Throttled because of heat.
    ThermalThrottle {
        /// Hottest sensor, °C.
        celsius: f64,
        /// Throttling threshold, °C.
        above_celsius: f64,
    },
    /// Throttled while the user is active.
    UserActiveThrottle {
        /// The share in force, percent.
        cpu_percent: f64,
    },
    /// Throttled by the time-of-day profile.
    TimeProfile {
        /// The share in force, percent.
        cpu_percent: f64,
    },
    /// Conditions are good again but the back-off after a battery or heat
    /// suspension has not passed.
    BackOff {
        /// Seconds left.
        remaining_s: f64,
        /// The suspension's reason.
        after: Box<Reason>,
    },
    /// A rule fails; work continues until the grace period ends.
    Grace {
        /// Seconds left.
        remaining_s: f64,
        /// The failing rule.
        because: Box<Reason>,
    },
    /// The change is due but the controller has not stayed its minimum dwell time.
    Dwell {
        /// Seconds left.
        remaining_s: f64,
        /// The reason for the coming change.
        because: Box<Reason>,
    },
}

impl Reason {
    /// A battery reason (battery level or charging).
    pub fn is_battery(&self) -> bool {
        match self {
            Reason::BatteryLow { .. } | Reason::NotCharging => true,
            Reason::BackOff { after: inner, .. }
            | Reason::Grace { because: inner, .. }
            | Reason::Dwell { because: inner, .. } => inner.is_battery(),
            _ => false,
        }
    }

    /// A heat reason.
    pub fn is_heat(&self) -> bool {
        match self {
            Reason::TooHot { .. } => true,
            Reason::BackOff { after: inner, .. }
            | Reason::Grace { because: inner, .. }
            | Reason::Dwell { because: inner, .. } => inner.is_heat(),
            _ => false,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Starting => f.write_str("starting"),
            Reason::AllConditionsMet => f.write_str("all conditions met"),
            Reason::BatteryLow {
                percent,
                min_percent,
            } => write!(f, "battery at {percent:.0}%, below {min_percent:.0}%"),
            Reason::NotCharging => f.write_str("battery not charging"),
            Reason::TooHot {
                celsius,
                max_celsius,
            } => write!(f, "too hot: {celsius:.1} °C, limit {max_celsius:.1} °C"),
            Reason::UserActive {
                idle_s,
                required_s,
                unconfirmed,
            } => {
                if *unconfirmed {
                    write!(
                        f,
                        "user idle not confirmed: no input for {idle_s:.0} s of observation, {required_s:.0} s required"
                    )
                } else {
                    write!(
                        f,
                        "user active: idle {idle_s:.0} s, {required_s:.0} s required"
                    )
                }
            }
            Reason::NonFogCpuHigh {
                percent,
                max_percent,
            } => write!(
                f,
                "other programs use {percent:.0}% of the cpu, limit {max_percent:.0}%"
            ),
            Reason::MemoryLow {
                available_percent,
                min_percent,
            } => write!(
                f,
                "memory low: {available_percent:.0}% available, {min_percent:.0}% required"
            ),
            Reason::OutsideTimeWindow => f.write_str("outside the allowed time windows"),
            Reason::SensorMissing { sensor } => write!(f, "required sensor missing: {sensor}"),
            Reason::ZeroCpuShare => f.write_str("the policy leaves no cpu share"),
            Reason::ThermalThrottle {
                celsius,
                above_celsius,
            } => write!(
                f,
                "throttled: {celsius:.1} °C at or above {above_celsius:.1} °C"
            ),
            Reason::UserActiveThrottle { cpu_percent } => {
                write!(f, "throttled to {cpu_percent:.0}% while the user is active")
            }
            Reason::TimeProfile { cpu_percent } => {
                write!(
                    f,
                    "throttled to {cpu_percent:.0}% by the time-of-day profile"
                )
            }
            Reason::BackOff { remaining_s, after } => {
                write!(f, "backing off {remaining_s:.0} s more after: {after}")
            }
            Reason::Grace {
                remaining_s,
                because,
            } => write!(f, "suspending in {remaining_s:.0} s: {because}"),
            Reason::Dwell {
                remaining_s,
                because,
            } => write!(f, "changing state in {remaining_s:.0} s: {because}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_time_parses_strictly() {
        assert_eq!(
            ClockTime::try_from("08:30".to_owned()).map(ClockTime::minutes),
            Ok(510)
        );
        assert_eq!(
            ClockTime::try_from("24:00".to_owned()).map(ClockTime::minutes),
            Ok(1440)
        );
        for bad in ["8:30", "24:01", "12:60", "ab:cd", "", "12:3x"] {
            assert!(ClockTime::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn overnight_window_wraps() {
        let w = TimeWindow::every_day(ClockTime(22 * 60), ClockTime(6 * 60));
        assert!(w.contains(23 * 60));
        assert!(w.contains(1440 + 60));
        assert!(!w.contains(12 * 60));
    }

    #[test]
    fn epoch_is_thursday_midnight() {
        assert_eq!(Policy::default().minute_of_week(0), 3 * 1440);
    }
}
