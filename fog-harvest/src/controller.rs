//! The harvesting state machine. It takes time as an input (seconds on any
//! monotonic clock), so it is deterministic in tests and in the simulator.
//!
//! ```text
//! Ineligible ──allow──▶ Eligible ──allow──▶ Harvesting ◀──▶ Throttled
//!     ▲                    │                      │ deny for the grace period
//!     └───────deny─────────┘                      ▼
//!                          Eligible ◀──allow, back-off── Suspended
//! ```
//!
//! Every state carries its [`Reason`]. No state is left before `min_dwell_s`
//! has passed in it, a failing rule must last `grace_period_s` before a
//! suspension, and after a battery or heat suspension conditions must stay
//! good for `resume_backoff_s` (with the hysteresis thresholds) before work
//! resumes.

use serde::Serialize;

use crate::policy::{Assessment, Conditions, Policy, Reason, Verdict};
use crate::work::{WorkControl, WorkError};

/// The controller's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// Conditions forbid work.
    Ineligible,
    /// Conditions allow work; work starts when the dwell time has passed.
    Eligible,
    /// Work runs at the policy's full CPU share.
    Harvesting,
    /// Work runs at a reduced share (heat, user activity, time profile).
    Throttled,
    /// Work was stopped by a failing rule.
    Suspended,
}

impl State {
    /// Whether work runs in this state.
    pub fn is_running(self) -> bool {
        matches!(self, State::Harvesting | State::Throttled)
    }
}

/// Something the controller did in one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The state changed.
    Transition {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// The new state's reason.
        reason: Reason,
    },
    /// A checkpoint was taken.
    Checkpoint {
        /// Taken because a suspension is coming (not the periodic cadence).
        before_suspension: bool,
    },
    /// Work was evicted.
    Preempted {
        /// Seconds of running since the last checkpoint, now lost.
        work_lost_s: f64,
    },
    /// Work was paused in memory.
    Paused,
    /// A [`WorkControl`] call failed; the controller carries on.
    WorkFailed {
        /// Which call.
        action: &'static str,
        /// The error.
        error: WorkError,
    },
}

/// What one step saw and did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// The policy's view of the conditions.
    pub assessment: Assessment,
    /// What the controller did (a few events at most).
    pub events: Vec<Event>,
}

/// The harvesting controller.
#[derive(Debug, Clone)]
pub struct Controller {
    policy: Policy,
    state: State,
    reason: Reason,
    entered_s: f64,
    last_s: f64,
    share: f64,
    fail_since: Option<f64>,
    clear_since: Option<f64>,
    suspended_for: Option<Reason>,
    run_since_checkpoint_s: f64,
    checkpointed_for_suspension: bool,
    paused_in_memory: bool,
}

impl Controller {
    /// A controller in [`State::Ineligible`] (reason [`Reason::Starting`]) at `now_s`.
    pub fn new(policy: Policy, now_s: f64) -> Self {
        Self {
            policy,
            state: State::Ineligible,
            reason: Reason::Starting,
            entered_s: now_s,
            last_s: now_s,
            share: 0.0,
            fail_since: None,
            clear_since: None,
            suspended_for: None,
            run_since_checkpoint_s: 0.0,
            checkpointed_for_suspension: false,
            paused_in_memory: false,
        }
    }

    /// The state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Why the controller is in its state.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// When the state was entered, seconds.
    pub fn since_s(&self) -> f64 {
        self.entered_s
    }

    /// The CPU share work runs at (0 when not running).
    pub fn cpu_share(&self) -> f64 {
        if self.state.is_running() {
            self.share
        } else {
            0.0
        }
    }

    /// Seconds of running since the last checkpoint: what a preemption now would lose.
    pub fn work_at_risk_s(&self) -> f64 {
        self.run_since_checkpoint_s
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Advances to `now_s` with the latest conditions, acting on `work`.
    ///
    /// Time never runs backwards: an earlier `now_s` counts as the last one.
    pub fn step(
        &mut self,
        now_s: f64,
        conditions: &Conditions,
        work: &mut dyn WorkControl,
    ) -> StepReport {
        let now = if now_s.is_finite() {
            now_s.max(self.last_s)
        } else {
            self.last_s
        };
        let dt = now - self.last_s;
        self.last_s = now;
        if self.state.is_running() {
            self.run_since_checkpoint_s += dt;
        }
        let hold = if self.state == State::Suspended {
            self.suspended_for.as_ref()
        } else {
            None
        };
        let assessment = self.policy.assess(conditions, hold);
        let mut events = Vec::new();
        let dwell_left = (self.entered_s + self.policy.min_dwell_s - now).max(0.0);
        let full_share = self.policy.cpu_cap_percent / 100.0;

        match (self.state, assessment.verdict.clone()) {
            (State::Ineligible, Verdict::Allow { reason, .. }) => {
                if dwell_left <= 0.0 {
                    self.enter(State::Eligible, reason, now, &mut events);
                } else {
                    self.reason = dwell(dwell_left, reason);
                }
            }
            (State::Ineligible, Verdict::Deny { reason }) => self.reason = reason,
            (State::Eligible, Verdict::Deny { reason }) => {
                if dwell_left <= 0.0 {
                    self.enter(State::Ineligible, reason, now, &mut events);
                } else {
                    self.reason = dwell(dwell_left, reason);
                }
            }
            (State::Eligible, Verdict::Allow { cpu_share, reason }) => {
                if dwell_left <= 0.0 {
                    act(&mut events, "resume", work.resume());
                    self.paused_in_memory = false;
                    act(&mut events, "throttle", work.throttle(cpu_share));
                    self.share = cpu_share;
                    let to = if cpu_share < full_share {
                        State::Throttled
                    } else {
                        State::Harvesting
                    };
                    self.fail_since = None;
                    self.checkpointed_for_suspension = false;
                    self.enter(to, reason, now, &mut events);
                } else {
                    self.reason = dwell(dwell_left, reason);
                }
            }
            (State::Harvesting | State::Throttled, Verdict::Deny { reason }) => {
                let since = *self.fail_since.get_or_insert(now);
                let grace_left = (since + self.policy.grace_period_s - now).max(0.0);
                if grace_left <= 0.0 && dwell_left <= 0.0 {
                    self.suspend(reason, now, work, &mut events);
                } else {
                    let checkpoint_ahead = !self.checkpointed_for_suspension
                        && self.policy.grace_period_s >= self.policy.checkpoint_lead_s
                        && self.run_since_checkpoint_s > 0.0;
                    if checkpoint_ahead {
                        self.checkpointed_for_suspension = true;
                        self.checkpoint(true, work, &mut events);
                    } else {
                        self.periodic_checkpoint(work, &mut events);
                    }
                    self.reason = Reason::Grace {
                        remaining_s: grace_left.max(dwell_left),
                        because: Box::new(reason),
                    };
                }
            }
            (State::Harvesting | State::Throttled, Verdict::Allow { cpu_share, reason }) => {
                self.fail_since = None;
                self.checkpointed_for_suspension = false;
                self.periodic_checkpoint(work, &mut events);
                let to = if cpu_share < full_share {
                    State::Throttled
                } else {
                    State::Harvesting
                };
                if to == self.state {
                    if cpu_share != self.share {
                        act(&mut events, "throttle", work.throttle(cpu_share));
                        self.share = cpu_share;
                    }
                    self.reason = reason;
                } else if dwell_left <= 0.0 {
                    act(&mut events, "throttle", work.throttle(cpu_share));
                    self.share = cpu_share;
                    self.enter(to, reason, now, &mut events);
                } else {
                    self.reason = dwell(dwell_left, reason);
                }
            }
            (State::Suspended, Verdict::Deny { reason }) => {
                self.clear_since = None;
                if self.paused_in_memory && matches!(reason, Reason::MemoryLow { .. }) {
                    // Paused work holds its memory: evict it now.
                    self.evict(work, &mut events);
                }
                let keep = self
                    .suspended_for
                    .as_ref()
                    .is_some_and(|r| r.is_battery() || r.is_heat());
                if reason.is_battery() || reason.is_heat() || !keep {
                    self.suspended_for = Some(reason.clone());
                }
                self.reason = reason;
            }
            (State::Suspended, Verdict::Allow { reason, .. }) => {
                let clear = *self.clear_since.get_or_insert(now);
                let after = self.suspended_for.clone().unwrap_or(Reason::Starting);
                let backoff_left = if after.is_battery() || after.is_heat() {
                    (clear + self.policy.resume_backoff_s - now).max(0.0)
                } else {
                    0.0
                };
                if backoff_left > 0.0 {
                    self.reason = Reason::BackOff {
                        remaining_s: backoff_left,
                        after: Box::new(after),
                    };
                } else if dwell_left <= 0.0 {
                    self.suspended_for = None;
                    self.clear_since = None;
                    self.enter(State::Eligible, reason, now, &mut events);
                } else {
                    self.reason = dwell(dwell_left, reason);
                }
            }
        }
        StepReport { assessment, events }
    }

    fn enter(&mut self, to: State, reason: Reason, now: f64, events: &mut Vec<Event>) {
        tracing::info!(from = ?self.state, ?to, %reason, "harvest state change");
        events.push(Event::Transition {
            from: self.state,
            to,
            reason: reason.clone(),
        });
        self.state = to;
        self.reason = reason;
        self.entered_s = now;
    }

    fn suspend(
        &mut self,
        reason: Reason,
        now: f64,
        work: &mut dyn WorkControl,
        events: &mut Vec<Event>,
    ) {
        let evict = !self.policy.keep_in_memory || matches!(reason, Reason::MemoryLow { .. });
        if evict {
            self.evict(work, events);
        } else {
            act(events, "pause", work.pause());
            events.push(Event::Paused);
            self.paused_in_memory = true;
        }
        self.suspended_for = Some(reason.clone());
        self.fail_since = None;
        self.clear_since = None;
        self.checkpointed_for_suspension = false;
        self.enter(State::Suspended, reason, now, events);
    }

    fn evict(&mut self, work: &mut dyn WorkControl, events: &mut Vec<Event>) {
        let lost = self.run_since_checkpoint_s;
        act(events, "preempt", work.preempt());
        events.push(Event::Preempted { work_lost_s: lost });
        self.run_since_checkpoint_s = 0.0;
        self.paused_in_memory = false;
    }

    fn periodic_checkpoint(&mut self, work: &mut dyn WorkControl, events: &mut Vec<Event>) {
        if self.run_since_checkpoint_s >= self.policy.checkpoint_interval_s {
            self.checkpoint(false, work, events);
        }
    }

    fn checkpoint(
        &mut self,
        before_suspension: bool,
        work: &mut dyn WorkControl,
        events: &mut Vec<Event>,
    ) {
        match work.checkpoint_now() {
            Ok(()) => {
                self.run_since_checkpoint_s = 0.0;
                events.push(Event::Checkpoint { before_suspension });
            }
            Err(error) => {
                tracing::warn!(%error, "checkpoint failed");
                events.push(Event::WorkFailed {
                    action: "checkpoint",
                    error,
                });
            }
        }
    }
}

fn dwell(remaining_s: f64, because: Reason) -> Reason {
    Reason::Dwell {
        remaining_s,
        because: Box::new(because),
    }
}

fn act(events: &mut Vec<Event>, action: &'static str, result: Result<(), WorkError>) {
    if let Err(error) = result {
        tracing::warn!(action, %error, "work control failed");
        events.push(Event::WorkFailed { action, error });
    }
}
