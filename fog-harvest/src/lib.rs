//! fog-harvest decides when a device may lend compute, and how much.
//!
//! It reads the device's [`Sensors`] (battery, charging, AC, temperature,
//! CPU use by others, free memory, user idle time, energy counters; Linux
//! sysfs/procfs in [`LinuxSensors`]), checks them against a BOINC-like
//! [`Policy`], and drives fog's running work through the [`WorkControl`]
//! seam with a [`Controller`] state machine that carries its [`Reason`]
//! in every state. It asks tasks to checkpoint on a cadence and before a
//! suspension, accounts energy with a [`PowerModel`], and signs
//! [`ContributionRecord`]s for a [`ContributionSink`]. It never runs or
//! places tasks: fog-cli implements [`WorkControl`] with fog-exec and
//! [`ContributionSink`] with fog-dao.
//!
//! ```
//! use fog_harvest::{Conditions, Controller, Policy, RecordingWork, State};
//!
//! let policy = Policy::default(); // battery >= 50%, < 70 °C, idle 3 min, ...
//! let mut controller = Controller::new(policy, 0.0);
//! let mut work = RecordingWork::default();
//!
//! // A laptop at 80%, cool, user away for 10 minutes, quiet machine.
//! let good = Conditions::mains()
//!     .battery(Some(80.0), false)
//!     .temperature(45.0)
//!     .user_idle(600.0)
//!     .non_fog_cpu(5.0)
//!     .memory_available(60.0);
//! for t in 0..=30 {
//!     controller.step(f64::from(t), &good, &mut work);
//! }
//! assert_eq!(controller.state(), State::Harvesting);
//!
//! // The battery drops to 40%: after the grace period work is suspended.
//! let low = good.clone().battery(Some(40.0), false);
//! for t in 31..=60 {
//!     controller.step(f64::from(t), &low, &mut work);
//! }
//! assert_eq!(controller.state(), State::Suspended);
//! assert_eq!(controller.reason().to_string(), "battery at 40%, below 55%");
//! ```

mod contribution;
mod controller;
mod logind;
mod policy;
mod power;
mod sensors;
mod sim;
mod work;

pub use contribution::{
    ContributionError, ContributionRecord, ContributionSigner, ContributionSink, MAX_TASK_ID_BYTES,
    MAX_TASKS, QueueSink, SIGNING_CONTEXT, SignedContribution, SinkError, Verification,
};
pub use controller::{Controller, Event, State, StepReport};
pub use policy::{
    Assessment, Check, ClockTime, Conditions, IdleCondition, Outcome, Policy, PolicyError,
    PowerCondition, Reason, TimeWindow, Verdict, Weekday,
};
pub use power::{Calibrator, EnergyMeter, Footprint, PowerConfig, PowerModel, TaskUsage};
pub use sensors::{
    Battery, CpuUsage, Energy, LinuxSensors, Memory, PowerSource, PowerSupply, Reading,
    SensorError, Sensors, Snapshot, StaticSensors, Thermal, ThermalSensor, UserIdle,
};
pub use sim::{
    MAX_REPORTED_TRANSITIONS, MAX_ROWS, MAX_SPAN_S, SimOptions, SimReport, SimTransition,
    StateTimes, Trace, TraceError, TraceRow, simulate,
};
pub use work::{RecordingWork, WorkCall, WorkControl, WorkError};
