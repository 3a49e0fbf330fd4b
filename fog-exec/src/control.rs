//! Per-task control flags shared between the executor and a running task.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Why a run was stopped from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    Cancelled,
    Preempted,
    Timeout,
}

const RUN: u8 = 0;
const CANCEL: u8 = 1;
const PREEMPT: u8 = 2;

/// Flags a running task polls at every epoch tick (WASM) or a watcher acts on
/// (Docker).
#[derive(Debug)]
pub(crate) struct TaskControl {
    stop: AtomicU8,
    checkpoint_requested: AtomicBool,
    paused_tx: watch::Sender<bool>,
    paused_total: Mutex<(Option<Instant>, Duration)>,
}

impl TaskControl {
    pub(crate) fn new() -> Self {
        Self {
            stop: AtomicU8::new(RUN),
            checkpoint_requested: AtomicBool::new(false),
            paused_tx: watch::channel(false).0,
            paused_total: Mutex::new((None, Duration::ZERO)),
        }
    }

    pub(crate) fn request_stop(&self, cause: StopCause) {
        let code = match cause {
            StopCause::Cancelled | StopCause::Timeout => CANCEL,
            StopCause::Preempted => PREEMPT,
        };
        let _ = self
            .stop
            .compare_exchange(RUN, code, Ordering::SeqCst, Ordering::SeqCst);
        // A stopped task must not stay parked in a pause.
        self.paused_tx.send_replace(false);
    }

    pub(crate) fn stop_requested(&self) -> Option<StopCause> {
        match self.stop.load(Ordering::Relaxed) {
            CANCEL => Some(StopCause::Cancelled),
            PREEMPT => Some(StopCause::Preempted),
            _ => None,
        }
    }

    pub(crate) fn request_checkpoint(&self) {
        self.checkpoint_requested.store(true, Ordering::Relaxed);
    }

    /// Reads and clears the checkpoint request.
    pub(crate) fn take_checkpoint_request(&self) -> bool {
        self.checkpoint_requested.swap(false, Ordering::Relaxed)
    }

    pub(crate) fn set_paused(&self, paused: bool) -> bool {
        if paused && self.stop_requested().is_some() {
            return false;
        }
        let mut total = self
            .paused_total
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = self.paused_tx.send_replace(paused) != paused;
        if changed {
            if paused {
                total.0 = Some(Instant::now());
            } else if let Some(since) = total.0.take() {
                total.1 += since.elapsed();
            }
        }
        changed
    }

    pub(crate) fn is_paused(&self) -> bool {
        *self.paused_tx.borrow()
    }

    /// Time spent paused so far (excluded from the wall-clock timeout).
    pub(crate) fn paused_for(&self) -> Duration {
        let total = self
            .paused_total
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        total.1 + total.0.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Resolves once the task is not paused any more.
    pub(crate) fn unpaused(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.paused_tx.subscribe();
        async move {
            let _ = rx.wait_for(|paused| !*paused).await;
        }
    }
}
