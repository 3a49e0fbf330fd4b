//! Cover traffic: Loopix's Poisson streams.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp};

use crate::packet::DestinationAddress;

/// The destination of drop cover: the last hop discards what is delivered
/// there (and counts it). Only the last hop ever sees it: the destination is
/// encrypted to that hop.
pub const DROP_ADDRESS: DestinationAddress =
    DestinationAddress::from_bytes(*b"fog-mix drop cover v1\0\0\0\0\0\0\0\0\0\0\0");

/// Rates of the client's three streams (Loopix): each a Poisson process,
/// in packets per second. A rate of 0 turns the stream off.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CoverRates {
    /// λP: the payload stream. At each event a queued real message is sent,
    /// or a drop cover packet when the queue is empty, so the sending rate
    /// never shows whether the client has something to say.
    pub payload: f64,
    /// λL: loop cover, routed back to the client itself.
    pub loop_: f64,
    /// λD: drop cover, discarded by its last hop.
    pub drop: f64,
}

impl Default for CoverRates {
    /// λP = 10/s, λL = 2/s, λD = 2/s.
    fn default() -> Self {
        CoverRates {
            payload: 10.0,
            loop_: 2.0,
            drop: 2.0,
        }
    }
}

impl CoverRates {
    /// Rates in packets per second.
    pub fn new(payload: f64, loop_: f64, drop: f64) -> Self {
        CoverRates {
            payload,
            loop_,
            drop,
        }
    }

    /// Total packets per second a client sends.
    pub fn total(&self) -> f64 {
        self.payload + self.loop_ + self.drop
    }
}

/// Which stream an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stream {
    /// λP: send a real message if one is queued, drop cover otherwise.
    Payload,
    /// λL: loop cover.
    Loop,
    /// λD: drop cover.
    Drop,
    /// λM: a mix node's own loop cover.
    MixLoop,
}

/// One Poisson process: exponential gaps with mean 1/rate.
#[derive(Debug, Clone, Copy)]
struct Process {
    stream: Stream,
    gaps: Option<Exp<f64>>,
    next: Duration,
}

impl Process {
    fn new<R: Rng + ?Sized>(stream: Stream, rate: f64, now: Duration, rng: &mut R) -> Self {
        let gaps = if rate > 0.0 && rate.is_finite() {
            Exp::new(rate).ok()
        } else {
            None
        };
        let mut p = Process {
            stream,
            gaps,
            next: now,
        };
        p.advance(rng);
        p
    }

    fn advance<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        self.next = match &self.gaps {
            Some(exp) => self
                .next
                .saturating_add(Duration::from_secs_f64(exp.sample(rng).min(1e9))),
            None => Duration::MAX,
        };
    }
}

/// The schedule of a client's (or a mix's) Poisson streams. Time is an
/// input: ask for the events due at `now` and the time of the next one;
/// the caller sleeps in between. Nothing is queued here, so it holds no
/// memory beyond one timer per stream; if the caller falls behind, the
/// events due are returned one by one, oldest first.
#[derive(Debug, Clone)]
pub struct CoverSchedule {
    processes: Vec<Process>,
}

impl CoverSchedule {
    /// A client's schedule (λP, λL, λD) starting at `now`.
    pub fn client<R: Rng + ?Sized>(rates: CoverRates, now: Duration, rng: &mut R) -> Self {
        CoverSchedule {
            processes: vec![
                Process::new(Stream::Payload, rates.payload, now, rng),
                Process::new(Stream::Loop, rates.loop_, now, rng),
                Process::new(Stream::Drop, rates.drop, now, rng),
            ],
        }
    }

    /// A mix node's schedule of its own loop cover at `rate` (λM) per second.
    pub fn mix<R: Rng + ?Sized>(rate: f64, now: Duration, rng: &mut R) -> Self {
        CoverSchedule {
            processes: vec![Process::new(Stream::MixLoop, rate, now, rng)],
        }
    }

    /// When the next event is due (`Duration::MAX` if every rate is 0).
    pub fn next_due(&self) -> Duration {
        self.processes
            .iter()
            .map(|p| p.next)
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// The earliest event due at or before `now`, if any, with its time.
    pub fn poll<R: Rng + ?Sized>(
        &mut self,
        now: Duration,
        rng: &mut R,
    ) -> Option<(Duration, Stream)> {
        let p = self
            .processes
            .iter_mut()
            .filter(|p| p.next <= now)
            .min_by_key(|p| p.next)?;
        let at = p.next;
        let stream = p.stream;
        p.advance(rng);
        Some((at, stream))
    }
}
