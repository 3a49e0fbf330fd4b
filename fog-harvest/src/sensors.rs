//! Device sensors: what the device reports about its power, heat, load,
//! memory, user and energy, behind the [`Sensors`] trait.
//!
//! [`LinuxSensors`] reads sysfs and procfs under configurable roots, so tests
//! run on fixture trees. A sensor that is not there is reported as
//! [`Reading::Missing`] with the reason; nothing is guessed. The one rule that
//! is not a guess but a definition: a machine without a battery runs on mains.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One sensor's value, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reading<T> {
    /// The sensor answered.
    Present {
        /// The value.
        value: T,
        /// Where it came from (a path or a method).
        source: String,
    },
    /// The sensor is not there or could not be read.
    Missing {
        /// Why (lowercase, for people).
        why: String,
    },
}

impl<T> Reading<T> {
    /// A present reading.
    pub fn present(value: T, source: impl Into<String>) -> Self {
        Reading::Present {
            value,
            source: source.into(),
        }
    }

    /// A missing reading.
    pub fn missing(why: impl Into<String>) -> Self {
        Reading::Missing { why: why.into() }
    }

    /// The value, if present.
    pub fn value(&self) -> Option<&T> {
        match self {
            Reading::Present { value, .. } => Some(value),
            Reading::Missing { .. } => None,
        }
    }
}

impl<T> Default for Reading<T> {
    fn default() -> Self {
        Reading::missing("not read")
    }
}

/// Where the device gets its power from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PowerSource {
    /// Mains power (also: no battery at all).
    Mains,
    /// Running from its battery.
    Battery,
}

/// One battery as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Battery {
    /// The power-supply name (for example `BAT0`).
    pub name: String,
    /// Charge level in percent (0..=100), if readable.
    pub percent: Option<f64>,
    /// The kernel's status word (`Charging`, `Discharging`, `Full`, `Not charging`, ...).
    pub status: String,
}

/// The power situation of the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerSupply {
    /// Mains or battery.
    pub source: PowerSource,
    /// System batteries (peripheral batteries such as a mouse's are left out).
    pub batteries: Vec<Battery>,
    /// Combined charge level of the batteries in percent, if there is a
    /// battery and its level is readable.
    pub battery_percent: Option<f64>,
    /// Whether the batteries are charging (or full on external power); `None`
    /// without a battery.
    pub charging: Option<bool>,
    /// Whether an external supply (AC adapter, USB-C) reports online; `None`
    /// when the device has no such supply entry.
    pub ac_online: Option<bool>,
}

/// One temperature sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThermalSensor {
    /// Zone or hwmon name (for example `x86_pkg_temp`, `coretemp`).
    pub name: String,
    /// Temperature in degrees Celsius.
    pub celsius: f64,
}

/// Temperatures of the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thermal {
    /// The hottest sensor, in degrees Celsius.
    pub max_celsius: f64,
    /// Every sensor that answered.
    pub sensors: Vec<ThermalSensor>,
}

/// CPU utilisation over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CpuUsage {
    /// Busy share of all CPUs, 0..=100.
    pub total_percent: f64,
    /// Busy share used by fog's own processes, 0..=100.
    pub fog_percent: f64,
    /// Busy share used by everything else, 0..=100.
    pub non_fog_percent: f64,
    /// Length of the window in seconds; `None` when this is the average since
    /// boot (the first reading has no earlier sample to compare with).
    pub window_s: Option<f64>,
}

/// Memory of the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memory {
    /// Total memory in bytes.
    pub total_bytes: u64,
    /// Memory available for new work in bytes (`MemAvailable`).
    pub available_bytes: u64,
}

impl Memory {
    /// Available memory as a percentage of the total.
    pub fn available_percent(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.available_bytes as f64 * 100.0 / self.total_bytes as f64
        }
    }
}

/// How long the user has left the device alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserIdle {
    /// Seconds since the last user input.
    pub idle_s: f64,
    /// `true` when no input was seen during the whole observation, so the
    /// real idle time is at least `idle_s` (and may be much longer).
    pub at_least: bool,
}

/// Energy counters (RAPL).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Energy {
    /// Sum of the package counters in joules (wraps per domain; deltas handle it).
    pub total_joules: f64,
    /// Average power in watts since the previous reading, when there was one.
    pub watts: Option<f64>,
    /// Domain names summed (for example `package-0`).
    pub domains: Vec<String>,
}

/// Everything the sensors said at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Battery, charging and AC state.
    pub power: Reading<PowerSupply>,
    /// Temperatures.
    pub thermal: Reading<Thermal>,
    /// CPU utilisation, total and by non-fog processes.
    pub cpu: Reading<CpuUsage>,
    /// Free memory.
    pub memory: Reading<Memory>,
    /// User idle time.
    pub user_idle: Reading<UserIdle>,
    /// Energy counters.
    pub energy: Reading<Energy>,
}

/// A source of sensor readings: Linux sysfs/procfs here, a phone platform's
/// APIs elsewhere (this trait is the seam for Android and iOS).
pub trait Sensors {
    /// Reads every sensor. `now_s` is a monotonic time in seconds supplied by
    /// the caller; sensors that need deltas (CPU, idle, energy) use it.
    fn read(&mut self, now_s: f64) -> Snapshot;

    /// Tells the sensors which processes are fog's own work, so that their
    /// CPU use is not counted as the user's. The default ignores it.
    fn set_fog_pids(&mut self, pids: &[u32]) {
        let _ = pids;
    }
}

/// A [`Sensors`] double that returns a fixed snapshot.
#[derive(Debug, Clone, Default)]
pub struct StaticSensors {
    snapshot: Snapshot,
}

impl StaticSensors {
    /// Sensors that always report `snapshot`.
    pub fn new(snapshot: Snapshot) -> Self {
        Self { snapshot }
    }
}

impl Sensors for StaticSensors {
    fn read(&mut self, _now_s: f64) -> Snapshot {
        self.snapshot.clone()
    }
}

/// Why a [`LinuxSensors`] could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SensorError {
    /// A root is not a readable directory.
    #[error("{what} root {path} is not a readable directory")]
    BadRoot {
        /// `sysfs` or `procfs`.
        what: &'static str,
        /// The path given.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Largest sensor file read (sysfs attributes are one line; `/proc/interrupts`
/// on a big machine is the largest thing read).
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// At most this many entries are looked at in one sysfs class directory.
const MAX_ENTRIES: usize = 512;

/// Previous counters, for deltas.
#[derive(Debug, Clone, Default)]
struct Previous {
    at_s: f64,
    cpu: Option<CpuCounters>,
    fog_ticks: HashMap<u32, u64>,
    cgroup_usec: Option<u64>,
    energy: Option<EnergySample>,
}

/// `/proc/stat` aggregate counters: (total ticks, busy ticks, CPUs).
type CpuCounters = (u64, u64, u64);
/// One RAPL domain: (name, energy µJ, wrap range µJ).
type RaplDomain = (String, u64, u64);
/// RAPL domains read at a time.
type EnergySample = (f64, Vec<RaplDomain>);
/// A CPU reading with the counters it was computed from.
#[derive(Debug, Default)]
struct CpuSample {
    reading: Reading<CpuUsage>,
    counters: Option<CpuCounters>,
    fog_ticks: HashMap<u32, u64>,
    cgroup_usec: Option<u64>,
}

/// Idle tracking from input-device interrupt counts.
#[derive(Debug, Clone, Default)]
struct IdleTracker {
    first_at_s: Option<f64>,
    last_count: Option<u64>,
    last_change_s: Option<f64>,
}

/// Sensors read from Linux sysfs and procfs.
///
/// User idle time comes from systemd-logind when enabled
/// ([`LinuxSensors::with_logind`]) and answering, otherwise from the
/// interrupt counts of input devices (keyboard, mouse, touchpad, HID) in
/// `/proc/interrupts`: the user is idle since the last time one of them
/// changed. Until a change has been seen the idle time is a lower bound
/// (`at_least`).
#[derive(Debug, Clone)]
pub struct LinuxSensors {
    sysfs: PathBuf,
    procfs: PathBuf,
    fog_pids: Vec<u32>,
    fog_cgroup: Option<PathBuf>,
    previous: Option<Previous>,
    idle: IdleTracker,
    logind: bool,
}

impl LinuxSensors {
    /// Sensors under the real roots `/sys` and `/proc`.
    pub fn system() -> Result<Self, SensorError> {
        Self::with_roots("/sys", "/proc")
    }

    /// Sensors under other roots (fixture trees in tests).
    pub fn with_roots(
        sysfs: impl Into<PathBuf>,
        procfs: impl Into<PathBuf>,
    ) -> Result<Self, SensorError> {
        let sysfs = sysfs.into();
        let procfs = procfs.into();
        for (what, path) in [("sysfs", &sysfs), ("procfs", &procfs)] {
            fs::read_dir(path).map_err(|source| SensorError::BadRoot {
                what,
                path: path.clone(),
                source,
            })?;
        }
        Ok(Self {
            sysfs,
            procfs,
            fog_pids: Vec::new(),
            fog_cgroup: None,
            previous: None,
            idle: IdleTracker::default(),
            logind: false,
        })
    }

    /// Asks systemd-logind for the user's idle time first (its `IdleHint`,
    /// over D-Bus through `loginctl`, bounded by a 1.5 s timeout), falling
    /// back to input-device interrupts when logind does not answer. Off by
    /// default: fixture trees have no logind.
    #[must_use]
    pub fn with_logind(mut self, enabled: bool) -> Self {
        self.logind = enabled;
        self
    }

    /// Counts fog's CPU use from a cgroup v2 group instead of its pids:
    /// `cgroup` is the group's path under the cgroup2 mount
    /// (`<sysfs root>/fs/cgroup`), for example `fog.slice`. Its `cpu.stat`
    /// `usage_usec` covers every process fog starts, children included. An
    /// unreadable group makes the CPU reading missing (the non-fog share is
    /// then unknown), never a guess.
    #[must_use]
    pub fn with_fog_cgroup(mut self, cgroup: impl AsRef<Path>) -> Self {
        let relative = cgroup.as_ref().strip_prefix("/").unwrap_or(cgroup.as_ref());
        self.fog_cgroup = Some(self.sysfs.join("fs/cgroup").join(relative));
        self
    }

    fn power(&self) -> Reading<PowerSupply> {
        let dir = self.sysfs.join("class/power_supply");
        let entries = match list_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Reading::missing(format!("cannot list {}: {e}", dir.display())),
        };
        let mut batteries = Vec::new();
        let mut weights = Vec::new();
        let mut ac_online: Option<bool> = None;
        for (name, path) in entries {
            let kind = read_trimmed(&path.join("type")).unwrap_or_default();
            let scope = read_trimmed(&path.join("scope")).unwrap_or_default();
            if scope.eq_ignore_ascii_case("device") {
                continue;
            }
            match kind.as_str() {
                "Battery" => {
                    if read_trimmed(&path.join("present")).as_deref() == Some("0") {
                        continue;
                    }
                    let percent = battery_percent(&path);
                    let full = read_number(&path.join("energy_full"))
                        .or_else(|| read_number(&path.join("charge_full")));
                    weights.push(full);
                    batteries.push(Battery {
                        name,
                        percent,
                        status: read_trimmed(&path.join("status"))
                            .unwrap_or_else(|| "Unknown".to_owned()),
                    });
                }
                "Mains" | "USB" | "UPS" | "Wireless" | "USB_C" | "USB_PD" => {
                    if let Some(online) = read_number(&path.join("online")) {
                        ac_online = Some(ac_online.unwrap_or(false) || online > 0.0);
                    }
                }
                _ => {}
            }
        }
        let battery_percent = combined_percent(&batteries, &weights);
        let charging = if batteries.is_empty() {
            None
        } else {
            Some(batteries.iter().any(|b| {
                b.status.eq_ignore_ascii_case("charging") || b.status.eq_ignore_ascii_case("full")
            }))
        };
        let discharging = batteries
            .iter()
            .any(|b| b.status.eq_ignore_ascii_case("discharging"));
        let source = if batteries.is_empty() {
            PowerSource::Mains
        } else {
            match ac_online {
                Some(true) => PowerSource::Mains,
                None if !discharging && charging == Some(true) => PowerSource::Mains,
                // Adapter offline, discharging, or a battery that neither
                // charges nor discharges with no adapter entry: the battery
                // (the cautious reading).
                _ => PowerSource::Battery,
            }
        };
        Reading::present(
            PowerSupply {
                source,
                batteries,
                battery_percent,
                charging,
                ac_online,
            },
            dir.display().to_string(),
        )
    }

    fn thermal(&self) -> Reading<Thermal> {
        let mut sensors = Vec::new();
        let zones = self.sysfs.join("class/thermal");
        for (name, path) in list_dir(&zones).unwrap_or_default() {
            if !name.starts_with("thermal_zone") {
                continue;
            }
            if let Some(milli) = read_number(&path.join("temp")) {
                let label = read_trimmed(&path.join("type")).unwrap_or(name);
                push_temperature(&mut sensors, label, milli);
            }
        }
        let hwmon = self.sysfs.join("class/hwmon");
        for (name, path) in list_dir(&hwmon).unwrap_or_default() {
            let label = read_trimmed(&path.join("name")).unwrap_or(name);
            for (file, file_path) in list_dir(&path).unwrap_or_default() {
                if file.starts_with("temp")
                    && file.ends_with("_input")
                    && let Some(milli) = read_number(&file_path)
                {
                    push_temperature(&mut sensors, format!("{label}/{file}"), milli);
                }
            }
        }
        let max = sensors
            .iter()
            .map(|s| s.celsius)
            .fold(f64::NEG_INFINITY, f64::max);
        if sensors.is_empty() {
            Reading::missing(format!(
                "no readable thermal zone under {} or hwmon sensor under {}",
                zones.display(),
                hwmon.display()
            ))
        } else {
            Reading::present(
                Thermal {
                    max_celsius: max,
                    sensors,
                },
                format!("{} and {}", zones.display(), hwmon.display()),
            )
        }
    }

    fn memory(&self) -> Reading<Memory> {
        let path = self.procfs.join("meminfo");
        let text = match read_limited(&path) {
            Ok(text) => text,
            Err(e) => return Reading::missing(format!("cannot read {}: {e}", path.display())),
        };
        let mut fields = HashMap::new();
        for line in text.lines() {
            if let Some((key, rest)) = line.split_once(':') {
                let kib = rest
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok());
                if let Some(kib) = kib {
                    fields.insert(key.trim(), kib.saturating_mul(1024));
                }
            }
        }
        let Some(&total) = fields.get("MemTotal") else {
            return Reading::missing(format!("no MemTotal in {}", path.display()));
        };
        let available = fields.get("MemAvailable").copied().or_else(|| {
            Some(
                fields.get("MemFree")?
                    + fields.get("Buffers").copied().unwrap_or(0)
                    + fields.get("Cached").copied().unwrap_or(0),
            )
        });
        match available {
            Some(available) => Reading::present(
                Memory {
                    total_bytes: total,
                    available_bytes: available.min(total),
                },
                path.display().to_string(),
            ),
            None => Reading::missing(format!(
                "neither MemAvailable nor MemFree in {}",
                path.display()
            )),
        }
    }

    fn cpu_counters(&self) -> Result<CpuCounters, String> {
        let path = self.procfs.join("stat");
        let text =
            read_limited(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .ok_or_else(|| format!("no aggregate cpu line in {}", path.display()))?;
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map_while(|v| v.parse().ok())
            .collect();
        if values.len() < 4 {
            return Err(format!("short cpu line in {}", path.display()));
        }
        // user nice system idle iowait irq softirq steal (guest is inside user).
        let total: u64 = values.iter().take(8).copied().fold(0, u64::saturating_add);
        let idle = values[3].saturating_add(values.get(4).copied().unwrap_or(0));
        let cpus = text
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u64;
        Ok((total, total.saturating_sub(idle), cpus.max(1)))
    }

    fn fog_ticks(&self) -> HashMap<u32, u64> {
        let mut ticks = HashMap::new();
        for &pid in &self.fog_pids {
            let path = self.procfs.join(pid.to_string()).join("stat");
            if let Some(t) = read_limited(&path).ok().and_then(|s| process_ticks(&s)) {
                ticks.insert(pid, t);
            }
        }
        ticks
    }

    /// cgroup v2 `usage_usec` of fog's cgroup, when one is configured.
    fn cgroup_usec(&self) -> Option<Result<u64, String>> {
        let dir = self.fog_cgroup.as_ref()?;
        let path = dir.join("cpu.stat");
        let usec = read_limited(&path)
            .map_err(|e| format!("cannot read fog cgroup {}: {e}", path.display()))
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or_else(|| format!("no usage_usec in {}", path.display()))
            });
        Some(usec)
    }

    fn uptime_s(&self) -> Option<f64> {
        read_limited(&self.procfs.join("uptime"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .filter(|u| u.is_finite() && *u > 0.0)
    }

    fn cpu(&self, now_s: f64, previous: Option<&Previous>) -> CpuSample {
        let counters = match self.cpu_counters() {
            Ok(c) => c,
            Err(why) => {
                return CpuSample {
                    reading: Reading::missing(why),
                    ..CpuSample::default()
                };
            }
        };
        let fog_ticks = self.fog_ticks();
        let cgroup = self.cgroup_usec();
        let cgroup_usec = cgroup.as_ref().and_then(|r| r.as_ref().ok().copied());
        let (total, busy, cpus) = counters;
        let windowed = previous
            .and_then(|p| p.cpu.map(|c| (p, c)))
            .filter(|(_, (pt, _, _))| total > *pt);
        let (d_total, d_busy, window) = match windowed {
            Some((p, (pt, pb, _))) => (total - pt, busy.saturating_sub(pb), Some(now_s - p.at_s)),
            None => (total, busy, None),
        };
        let mut sample = CpuSample {
            reading: Reading::missing("cpu counters did not advance"),
            counters: Some(counters),
            fog_ticks,
            cgroup_usec,
        };
        if d_total == 0 {
            return sample;
        }
        // fog's share of all CPU time, 0..=1.
        let fog_share = match cgroup {
            Some(Err(why)) => {
                sample.reading = Reading::missing(why);
                return sample;
            }
            Some(Ok(usec)) => {
                let (used_usec, seconds) = match (windowed, window) {
                    (Some((p, _)), Some(w)) if p.cgroup_usec.is_some() => {
                        (usec.saturating_sub(p.cgroup_usec.unwrap_or(0)), w)
                    }
                    _ => {
                        let Some(up) = self.uptime_s() else {
                            sample.reading = Reading::missing(format!(
                                "no uptime in {} for the fog cgroup's share",
                                self.procfs.join("uptime").display()
                            ));
                            return sample;
                        };
                        (usec, up)
                    }
                };
                if seconds > 0.0 {
                    used_usec as f64 / (seconds * 1e6 * cpus.max(1) as f64)
                } else {
                    0.0
                }
            }
            None => {
                let d_fog = match windowed {
                    Some((p, _)) => sample
                        .fog_ticks
                        .iter()
                        .filter_map(|(pid, t)| {
                            p.fog_ticks.get(pid).map(|old| t.saturating_sub(*old))
                        })
                        .sum::<u64>(),
                    None => sample.fog_ticks.values().sum::<u64>(),
                };
                d_fog as f64 / d_total as f64
            }
        };
        let total_percent = (d_busy.min(d_total) as f64 * 100.0 / d_total as f64).clamp(0.0, 100.0);
        let fog_percent = (fog_share * 100.0).clamp(0.0, total_percent);
        let usage = CpuUsage {
            total_percent,
            fog_percent,
            non_fog_percent: total_percent - fog_percent,
            window_s: window,
        };
        sample.reading = Reading::present(usage, self.procfs.join("stat").display().to_string());
        sample
    }

    fn user_idle(&mut self, now_s: f64) -> Reading<UserIdle> {
        if self.logind
            && let Some(idle) = crate::logind::idle()
        {
            return Reading::present(idle, "systemd-logind IdleHint (via loginctl)");
        }
        let path = self.procfs.join("interrupts");
        let text = match read_limited(&path) {
            Ok(text) => text,
            Err(e) => return Reading::missing(format!("cannot read {}: {e}", path.display())),
        };
        let Some(count) = input_interrupts(&text) else {
            let logind = if self.logind {
                " and no answer from logind"
            } else {
                ""
            };
            return Reading::missing(format!(
                "no keyboard, mouse or touchpad interrupt line in {}{logind}",
                path.display()
            ));
        };
        let tracker = &mut self.idle;
        let first = *tracker.first_at_s.get_or_insert(now_s);
        if tracker.last_count.is_some_and(|last| last != count) {
            tracker.last_change_s = Some(now_s);
        }
        tracker.last_count = Some(count);
        let value = match tracker.last_change_s {
            Some(changed) => UserIdle {
                idle_s: (now_s - changed).max(0.0),
                at_least: false,
            },
            None => UserIdle {
                idle_s: (now_s - first).max(0.0),
                at_least: true,
            },
        };
        Reading::present(
            value,
            format!("input-device interrupts in {}", path.display()),
        )
    }

    fn energy_counters(&self) -> Result<Vec<RaplDomain>, String> {
        let dir = self.sysfs.join("class/powercap");
        let entries =
            list_dir(&dir).map_err(|e| format!("no powercap at {}: {e}", dir.display()))?;
        let mut domains = Vec::new();
        let mut denied = None;
        for (name, path) in entries {
            // Top-level package domains only (`intel-rapl:0`), not their
            // subzones (`intel-rapl:0:0`), which the package already contains.
            let Some(index) = name.strip_prefix("intel-rapl:") else {
                continue;
            };
            if index.contains(':') {
                continue;
            }
            match fs::read_to_string(path.join("energy_uj")) {
                Ok(text) => {
                    if let Ok(uj) = text.trim().parse::<u64>() {
                        let range =
                            read_number(&path.join("max_energy_range_uj")).map_or(0, |v| v as u64);
                        let label = read_trimmed(&path.join("name")).unwrap_or(name);
                        domains.push((label, uj, range));
                    }
                }
                Err(e) => {
                    denied = Some(format!(
                        "cannot read {}: {e}",
                        path.join("energy_uj").display()
                    ));
                }
            }
        }
        if domains.is_empty() {
            Err(denied.unwrap_or_else(|| format!("no RAPL package domain under {}", dir.display())))
        } else {
            Ok(domains)
        }
    }

    fn energy(
        &self,
        now_s: f64,
        previous: Option<&Previous>,
    ) -> (Reading<Energy>, Option<EnergySample>) {
        let domains = match self.energy_counters() {
            Ok(d) => d,
            Err(why) => return (Reading::missing(why), None),
        };
        let total_uj: u64 = domains.iter().map(|d| d.1).fold(0, u64::saturating_add);
        let watts = previous
            .and_then(|p| p.energy.as_ref())
            .and_then(|(at, old)| {
                let dt = now_s - at;
                if dt <= 0.0 {
                    return None;
                }
                let mut delta = 0u64;
                for (name, uj, range) in &domains {
                    let (_, old_uj, _) = old.iter().find(|d| &d.0 == name)?;
                    delta += if uj >= old_uj {
                        uj - old_uj
                    } else if *range > *old_uj {
                        range - old_uj + uj
                    } else {
                        return None;
                    };
                }
                Some(delta as f64 / 1e6 / dt)
            });
        let names = domains.iter().map(|d| d.0.clone()).collect();
        (
            Reading::present(
                Energy {
                    total_joules: total_uj as f64 / 1e6,
                    watts,
                    domains: names,
                },
                self.sysfs.join("class/powercap").display().to_string(),
            ),
            Some((now_s, domains)),
        )
    }
}

impl Sensors for LinuxSensors {
    fn read(&mut self, now_s: f64) -> Snapshot {
        let previous = self.previous.take();
        let cpu = self.cpu(now_s, previous.as_ref());
        let (energy, energy_counters) = self.energy(now_s, previous.as_ref());
        self.previous = Some(Previous {
            at_s: now_s,
            cpu: cpu.counters,
            fog_ticks: cpu.fog_ticks,
            cgroup_usec: cpu.cgroup_usec,
            energy: energy_counters,
        });
        let cpu = cpu.reading;
        let snapshot = Snapshot {
            power: self.power(),
            thermal: self.thermal(),
            cpu,
            memory: self.memory(),
            user_idle: self.user_idle(now_s),
            energy,
        };
        tracing::debug!(?snapshot, "sensors read");
        snapshot
    }

    fn set_fog_pids(&mut self, pids: &[u32]) {
        self.fog_pids = pids.to_vec();
    }
}

fn push_temperature(sensors: &mut Vec<ThermalSensor>, name: String, milli: f64) {
    let celsius = milli / 1000.0;
    // Disabled zones report nonsense such as -273.2 °C or 0; keep plausible values.
    if celsius > -40.0 && celsius < 150.0 && milli != 0.0 {
        sensors.push(ThermalSensor { name, celsius });
    }
}

fn battery_percent(path: &Path) -> Option<f64> {
    if let Some(capacity) = read_number(&path.join("capacity")) {
        return Some(capacity.clamp(0.0, 100.0));
    }
    for (now, full) in [("energy_now", "energy_full"), ("charge_now", "charge_full")] {
        if let (Some(now), Some(full)) =
            (read_number(&path.join(now)), read_number(&path.join(full)))
            && full > 0.0
        {
            return Some((now * 100.0 / full).clamp(0.0, 100.0));
        }
    }
    None
}

fn combined_percent(batteries: &[Battery], weights: &[Option<f64>]) -> Option<f64> {
    let mut sum = 0.0;
    let mut weight_sum = 0.0;
    for (battery, weight) in batteries.iter().zip(weights) {
        let percent = battery.percent?;
        let weight = weight.filter(|w| *w > 0.0).unwrap_or(1.0);
        sum += percent * weight;
        weight_sum += weight;
    }
    (weight_sum > 0.0).then(|| sum / weight_sum)
}

/// utime + stime of a `/proc/<pid>/stat` line.
fn process_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// Sum of the interrupt counts of input devices, if any line names one.
fn input_interrupts(text: &str) -> Option<u64> {
    const INPUT: [&str; 10] = [
        "i8042",
        "keyboard",
        "mouse",
        "touchpad",
        "hid",
        "elan",
        "synaptics",
        "wacom",
        "goodix",
        "input",
    ];
    let mut found = false;
    let mut sum = 0u64;
    for line in text.lines().skip(1) {
        let Some((_, rest)) = line.split_once(':') else {
            continue;
        };
        let mut counts = 0u64;
        let mut words = rest.split_whitespace().peekable();
        while let Some(n) = words.peek().and_then(|w| w.parse::<u64>().ok()) {
            counts = counts.saturating_add(n);
            words.next();
        }
        let description = words.collect::<Vec<_>>().join(" ").to_ascii_lowercase();
        if INPUT.iter().any(|k| description.contains(k)) {
            found = true;
            sum = sum.saturating_add(counts);
        }
    }
    found.then_some(sum)
}

fn list_dir(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut entries: Vec<(String, PathBuf)> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .take(MAX_ENTRIES)
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn read_limited(path: &Path) -> io::Result<String> {
    use io::Read;
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = read_limited(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn read_number(path: &Path) -> Option<f64> {
    read_trimmed(path)?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_survive_parentheses_in_the_name() {
        let stat = "42 (we (ird) name) S 1 42 42 0 -1 4194560 100 0 0 0 70 30 0 0 20 0 1 0 5 0 0";
        assert_eq!(process_ticks(stat), Some(100));
        assert_eq!(process_ticks("garbage"), None);
    }

    #[test]
    fn input_interrupts_count_only_input_devices() {
        let text = "           CPU0       CPU1\n  1:         10          5  IO-APIC   1-edge      i8042\n 12:        100          0  IO-APIC  12-edge      i8042\n 16:       9999       9999  IO-APIC  16-fasteoi   xhci_hcd\nNMI:          0          0   Non-maskable interrupts\n";
        assert_eq!(input_interrupts(text), Some(115));
        assert_eq!(input_interrupts("  CPU0\n 16: 1 xhci_hcd\n"), None);
    }
}
