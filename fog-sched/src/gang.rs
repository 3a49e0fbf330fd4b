//! Gang scheduling: a group of jobs is placed all together or not at all.
//!
//! [`place_gang`] places every member or, if one does not fit, undoes the
//! members it had placed so the cluster is exactly as before: no partial
//! reservation ever survives a call. [`GangQueue`] holds gangs waiting for
//! room, each with a timeout, in a bounded queue.

use std::collections::VecDeque;

use crate::error::{Result, SchedError};
use crate::model::{GangId, Job};
use crate::placement::{Placement, Scheduler, Strategy};

/// Places all of `members` with `strategy`, or none. On failure the
/// scheduler's cluster is unchanged and the first member that did not fit is
/// named in the error.
pub fn place_gang(
    scheduler: &mut Scheduler,
    members: &[Job],
    strategy: Strategy,
) -> Result<Vec<Placement>> {
    let mut placed: Vec<Placement> = Vec::with_capacity(members.len());
    for job in members {
        match scheduler.place(job, strategy) {
            Ok(p) => placed.push(p),
            Err(e) => {
                for p in &placed {
                    let _ = scheduler.release(p.job);
                }
                return Err(e);
            }
        }
    }
    Ok(placed)
}

/// What happened to a waiting gang.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GangEvent {
    /// Every member was placed.
    Placed {
        /// The gang.
        gang: GangId,
        /// One placement per member.
        placements: Vec<Placement>,
    },
    /// The gang's timeout passed before it could be placed; it was dropped.
    TimedOut {
        /// The gang.
        gang: GangId,
    },
}

#[derive(Debug, Clone)]
struct Waiting {
    gang: GangId,
    members: Vec<Job>,
    expires_ms: u64,
}

/// Gangs waiting for room, oldest first. The queue holds at most `capacity`
/// gangs; [`GangQueue::submit`] refuses more with [`SchedError::QueueFull`].
#[derive(Debug, Clone)]
pub struct GangQueue {
    waiting: VecDeque<Waiting>,
    capacity: usize,
}

impl GangQueue {
    /// An empty queue for at most `capacity` gangs.
    pub fn new(capacity: usize) -> Self {
        Self {
            waiting: VecDeque::new(),
            capacity,
        }
    }

    /// Number of waiting gangs.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether no gang waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Queues a gang submitted at `now_ms` that gives up after `timeout_ms`.
    pub fn submit(
        &mut self,
        gang: GangId,
        members: Vec<Job>,
        now_ms: u64,
        timeout_ms: u64,
    ) -> Result<()> {
        if self.waiting.len() >= self.capacity {
            return Err(SchedError::QueueFull(self.capacity));
        }
        if self.waiting.iter().any(|w| w.gang == gang) {
            return Err(SchedError::InvalidConfig(format!(
                "gang {} already queued",
                gang.get()
            )));
        }
        self.waiting.push_back(Waiting {
            gang,
            members,
            expires_ms: now_ms.saturating_add(timeout_ms),
        });
        Ok(())
    }

    /// Tries every waiting gang in order at time `now_ms`: expired ones are
    /// dropped, ones that fit entirely are placed, the rest keep waiting.
    pub fn tick(
        &mut self,
        scheduler: &mut Scheduler,
        now_ms: u64,
        strategy: Strategy,
    ) -> Vec<GangEvent> {
        let mut events = Vec::new();
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        while let Some(w) = self.waiting.pop_front() {
            if now_ms >= w.expires_ms {
                tracing::debug!(gang = w.gang.get(), "gang timed out");
                events.push(GangEvent::TimedOut { gang: w.gang });
                continue;
            }
            match place_gang(scheduler, &w.members, strategy) {
                Ok(placements) => events.push(GangEvent::Placed {
                    gang: w.gang,
                    placements,
                }),
                Err(_) => keep.push_back(w),
            }
        }
        self.waiting = keep;
        events
    }
}
