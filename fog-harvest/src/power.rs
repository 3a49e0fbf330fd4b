//! The power model P = P_idle + (P_max − P_idle)·u, its calibration from
//! RAPL counters, energy per task, and optional cost and carbon figures.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Power figures from the policy file (`[power]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PowerConfig {
    /// Power draw with the CPU idle, watts.
    pub idle_watts: f64,
    /// Power draw with every CPU busy, watts.
    pub max_watts: f64,
    /// Number of CPUs, for CPU-seconds; the machine's count when absent
    /// (the simulator uses 1).
    pub cpus: Option<u32>,
    /// Electricity price per kWh (any currency), for a cost figure.
    pub price_per_kwh: Option<f64>,
    /// Carbon intensity in grams CO2e per kWh, for a carbon figure.
    pub carbon_g_per_kwh: Option<f64>,
}

impl Default for PowerConfig {
    fn default() -> Self {
        Self {
            idle_watts: 10.0,
            max_watts: 65.0,
            cpus: None,
            price_per_kwh: None,
            carbon_g_per_kwh: None,
        }
    }
}

impl PowerConfig {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(self.idle_watts.is_finite() && self.idle_watts >= 0.0) {
            return Err(format!(
                "power.idle_watts must be >= 0, got {}",
                self.idle_watts
            ));
        }
        if !(self.max_watts.is_finite() && self.max_watts >= self.idle_watts) {
            return Err(format!(
                "power.max_watts must be >= power.idle_watts, got {}",
                self.max_watts
            ));
        }
        if self.cpus == Some(0) {
            return Err("power.cpus must be at least 1".to_owned());
        }
        for (name, v) in [
            ("power.price_per_kwh", self.price_per_kwh),
            ("power.carbon_g_per_kwh", self.carbon_g_per_kwh),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(format!("{name} must be >= 0, got {v}"));
            }
        }
        Ok(())
    }

    /// The model these figures describe, for `cpus` CPUs when the config names none.
    pub fn model(&self, default_cpus: u32) -> PowerModel {
        PowerModel {
            idle_watts: self.idle_watts,
            max_watts: self.max_watts,
            cpus: self.cpus.unwrap_or(default_cpus).max(1),
        }
    }

    /// Energy, cost and carbon for `joules`.
    pub fn footprint(&self, joules: f64) -> Footprint {
        let kwh = joules / 3.6e6;
        Footprint {
            joules,
            kwh,
            cost: self.price_per_kwh.map(|p| p * kwh),
            carbon_g: self.carbon_g_per_kwh.map(|c| c * kwh),
        }
    }
}

/// Energy with its optional cost and carbon.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Footprint {
    /// Joules.
    pub joules: f64,
    /// Kilowatt-hours.
    pub kwh: f64,
    /// Cost, when a price is configured.
    pub cost: Option<f64>,
    /// Grams CO2e, when an intensity is configured.
    pub carbon_g: Option<f64>,
}

/// A linear power model of one device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerModel {
    idle_watts: f64,
    max_watts: f64,
    cpus: u32,
}

impl PowerModel {
    /// A model from idle and full-load watts, for `cpus` CPUs. `None` when
    /// the figures are not finite, negative, or max is below idle.
    pub fn new(idle_watts: f64, max_watts: f64, cpus: u32) -> Option<Self> {
        (idle_watts.is_finite()
            && max_watts.is_finite()
            && idle_watts >= 0.0
            && max_watts >= idle_watts
            && cpus > 0)
            .then_some(Self {
                idle_watts,
                max_watts,
                cpus,
            })
    }

    /// Idle watts.
    pub fn idle_watts(&self) -> f64 {
        self.idle_watts
    }

    /// Full-load watts.
    pub fn max_watts(&self) -> f64 {
        self.max_watts
    }

    /// CPUs.
    pub fn cpus(&self) -> u32 {
        self.cpus
    }

    /// Power at utilisation `u` (0..=1, clamped), watts.
    pub fn watts(&self, u: f64) -> f64 {
        self.idle_watts + (self.max_watts - self.idle_watts) * u.clamp(0.0, 1.0)
    }

    /// The energy fog work adds by running `cpu_seconds` of CPU time (the
    /// marginal energy above idle; the idle draw is paid anyway), joules.
    pub fn joules_for_cpu_seconds(&self, cpu_seconds: f64) -> f64 {
        (self.max_watts - self.idle_watts) * cpu_seconds.max(0.0) / f64::from(self.cpus)
    }
}

/// Calibrates a [`PowerModel`] from (utilisation, measured watts) samples,
/// such as RAPL energy deltas paired with `/proc/stat` utilisation.
///
/// Keeps the latest `capacity` samples; when full the oldest is dropped.
#[derive(Debug, Clone)]
pub struct Calibrator {
    samples: VecDeque<(f64, f64)>,
    capacity: usize,
}

impl Calibrator {
    /// A calibrator keeping at most `capacity` samples (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::new(),
            capacity: capacity.max(2),
        }
    }

    /// Adds a sample; non-finite or out-of-range figures are ignored.
    pub fn add(&mut self, utilisation: f64, watts: f64) {
        if !(utilisation.is_finite()
            && watts.is_finite()
            && (0.0..=1.0).contains(&utilisation)
            && watts >= 0.0)
        {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((utilisation, watts));
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// A least-squares fit, or `None` while the samples span less than 10
    /// points of utilisation (a line through one cluster says nothing about
    /// full load).
    pub fn fit(&self, cpus: u32) -> Option<PowerModel> {
        let n = self.samples.len() as f64;
        let (lo, hi) = self
            .samples
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (u, _)| {
                (lo.min(*u), hi.max(*u))
            });
        if self.samples.len() < 2 || hi - lo < 0.1 {
            return None;
        }
        let mean_u = self.samples.iter().map(|s| s.0).sum::<f64>() / n;
        let mean_w = self.samples.iter().map(|s| s.1).sum::<f64>() / n;
        let cov: f64 = self
            .samples
            .iter()
            .map(|(u, w)| (u - mean_u) * (w - mean_w))
            .sum();
        let var: f64 = self.samples.iter().map(|(u, _)| (u - mean_u).powi(2)).sum();
        let slope = (cov / var).max(0.0);
        let idle = (mean_w - slope * mean_u).max(0.0);
        PowerModel::new(idle, idle + slope, cpus)
    }
}

/// CPU time and energy of one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TaskUsage {
    /// CPU-seconds.
    pub cpu_seconds: f64,
    /// Joules (marginal, from the power model).
    pub joules: f64,
}

/// Energy per task. Holds at most `capacity` tasks; a new task beyond that
/// is refused (`false`) so that a caller settles accounts first
/// ([`EnergyMeter::take`]).
#[derive(Debug, Clone)]
pub struct EnergyMeter {
    model: PowerModel,
    tasks: BTreeMap<String, TaskUsage>,
    capacity: usize,
}

impl EnergyMeter {
    /// A meter for `model` holding at most `capacity` tasks.
    pub fn new(model: PowerModel, capacity: usize) -> Self {
        Self {
            model,
            tasks: BTreeMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// Charges `cpu_seconds` to `task`. Returns `false` (and records
    /// nothing) when the task is new and the meter is full.
    pub fn charge(&mut self, task: &str, cpu_seconds: f64) -> bool {
        if !self.tasks.contains_key(task) && self.tasks.len() >= self.capacity {
            tracing::warn!(task, "energy meter full: charge refused");
            return false;
        }
        let joules = self.model.joules_for_cpu_seconds(cpu_seconds);
        let entry = self.tasks.entry(task.to_owned()).or_default();
        entry.cpu_seconds += cpu_seconds.max(0.0);
        entry.joules += joules;
        true
    }

    /// The usage of `task` so far.
    pub fn usage(&self, task: &str) -> Option<TaskUsage> {
        self.tasks.get(task).copied()
    }

    /// Removes and returns every task's usage, in task-id order.
    pub fn take(&mut self) -> Vec<(String, TaskUsage)> {
        std::mem::take(&mut self.tasks).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_line() {
        let mut c = Calibrator::new(16);
        for i in 0..=10 {
            let u = f64::from(i) / 10.0;
            c.add(u, 8.0 + 40.0 * u);
        }
        let m = c.fit(4).expect("enough spread");
        assert!((m.idle_watts() - 8.0).abs() < 1e-9);
        assert!((m.max_watts() - 48.0).abs() < 1e-9);
    }

    #[test]
    fn fit_needs_spread() {
        let mut c = Calibrator::new(16);
        c.add(0.5, 20.0);
        c.add(0.55, 21.0);
        assert!(c.fit(1).is_none());
    }
}
