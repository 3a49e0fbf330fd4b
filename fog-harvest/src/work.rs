//! The [`WorkControl`] seam: how the controller acts on fog's running work.
//!
//! fog-harvest never runs tasks. fog-cli implements this trait with fog-exec
//! (and a phone build would implement it with the platform's scheduler);
//! [`RecordingWork`] is a double for tests and the simulator.

use std::collections::VecDeque;

use serde::Serialize;

/// Why a work-control action failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkError {
    /// The executor refused or failed the action.
    #[error("work control failed: {0}")]
    Failed(String),
}

/// Actions on all of fog's work on this device.
pub trait WorkControl {
    /// Starts work, or resumes paused work.
    fn resume(&mut self) -> Result<(), WorkError>;
    /// Stops work and keeps it in memory; no work is lost.
    fn pause(&mut self) -> Result<(), WorkError>;
    /// Limits work to `cpu_share` (0..=1) of the machine's CPU.
    fn throttle(&mut self, cpu_share: f64) -> Result<(), WorkError>;
    /// Asks every task to write a checkpoint now; `Ok` once it is written.
    fn checkpoint_now(&mut self) -> Result<(), WorkError>;
    /// Evicts work; whatever ran since the last checkpoint is lost.
    fn preempt(&mut self) -> Result<(), WorkError>;
}

/// One call made on a [`RecordingWork`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "call", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WorkCall {
    /// [`WorkControl::resume`].
    Resume,
    /// [`WorkControl::pause`].
    Pause,
    /// [`WorkControl::throttle`].
    Throttle {
        /// The share asked for.
        cpu_share: f64,
    },
    /// [`WorkControl::checkpoint_now`].
    Checkpoint,
    /// [`WorkControl::preempt`].
    Preempt,
}

/// A [`WorkControl`] double that records the latest calls (at most
/// `capacity`; when full the oldest is dropped) and always succeeds.
#[derive(Debug, Clone)]
pub struct RecordingWork {
    calls: VecDeque<WorkCall>,
    capacity: usize,
    total: u64,
}

impl Default for RecordingWork {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl RecordingWork {
    /// A recorder keeping the latest `capacity` calls.
    pub fn new(capacity: usize) -> Self {
        Self {
            calls: VecDeque::new(),
            capacity: capacity.max(1),
            total: 0,
        }
    }

    /// The recorded calls, oldest first.
    pub fn calls(&self) -> impl Iterator<Item = &WorkCall> {
        self.calls.iter()
    }

    /// How many calls were made in all (including dropped ones).
    pub fn total_calls(&self) -> u64 {
        self.total
    }

    fn record(&mut self, call: WorkCall) {
        if self.calls.len() == self.capacity {
            self.calls.pop_front();
        }
        self.calls.push_back(call);
        self.total += 1;
    }
}

impl WorkControl for RecordingWork {
    fn resume(&mut self) -> Result<(), WorkError> {
        self.record(WorkCall::Resume);
        Ok(())
    }

    fn pause(&mut self) -> Result<(), WorkError> {
        self.record(WorkCall::Pause);
        Ok(())
    }

    fn throttle(&mut self, cpu_share: f64) -> Result<(), WorkError> {
        self.record(WorkCall::Throttle { cpu_share });
        Ok(())
    }

    fn checkpoint_now(&mut self) -> Result<(), WorkError> {
        self.record(WorkCall::Checkpoint);
        Ok(())
    }

    fn preempt(&mut self) -> Result<(), WorkError> {
        self.record(WorkCall::Preempt);
        Ok(())
    }
}
