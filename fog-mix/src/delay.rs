//! Poisson mixing: exponential per-hop delays and the node's delay queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Exp};

/// Draws per-hop delays from an exponential distribution with a configured
/// mean (Loopix's Poisson mixing: each mix holds a packet for an independent
/// Exp(1/mean) time, chosen by the sender).
#[derive(Debug, Clone, Copy)]
pub struct DelaySampler {
    mean: Duration,
    exp: Option<Exp<f64>>,
}

impl DelaySampler {
    /// A sampler with the given mean. A zero mean always yields zero.
    pub fn new(mean: Duration) -> Self {
        let nanos = mean.as_nanos() as f64;
        let exp = if nanos > 0.0 {
            Exp::new(1.0 / nanos).ok()
        } else {
            None
        };
        DelaySampler { mean, exp }
    }

    /// The mean delay.
    pub fn mean(&self) -> Duration {
        self.mean
    }

    /// One delay, rounded to whole nanoseconds.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match &self.exp {
            Some(exp) => {
                let nanos: f64 = exp.sample(rng);
                // An f64 above u64::MAX saturates; Exp never yields NaN or
                // negatives.
                Duration::from_nanos(nanos.round() as u64)
            }
            None => Duration::ZERO,
        }
    }
}

/// Why the delay queue refused an item. The item is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelayQueueError<T> {
    /// The queue holds its capacity already.
    #[error("delay queue is full")]
    Full(T),
    /// The delay exceeds the queue's maximum.
    #[error("delay exceeds the maximum the queue accepts")]
    TooLong(T),
}

/// A bounded queue that releases each item exactly at its deadline
/// (arrival time + delay), earliest first, ties in arrival order.
///
/// Time is an input: the caller passes `now` as a [`Duration`] since any
/// fixed origin (a monotonic clock in a node, a virtual clock in tests and
/// simulations), and the queue never reads a clock. A full queue refuses the
/// new item and hands it back ([`DelayQueueError::Full`]); the node drops and
/// counts it. A delay over the configured maximum is refused the same way
/// ([`DelayQueueError::TooLong`]), so a sender cannot pin memory for days.
#[derive(Debug)]
pub struct DelayQueue<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    capacity: usize,
    max_delay: Duration,
    seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    deadline: Duration,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

impl<T> DelayQueue<T> {
    /// An empty queue holding at most `capacity` items, each for at most
    /// `max_delay`.
    pub fn new(capacity: usize, max_delay: Duration) -> Self {
        DelayQueue {
            heap: BinaryHeap::with_capacity(capacity.min(1 << 16)),
            capacity,
            max_delay,
            seq: 0,
        }
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the queue holds nothing.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Holds `item` until `now + delay`.
    pub fn push(
        &mut self,
        now: Duration,
        delay: Duration,
        item: T,
    ) -> Result<(), DelayQueueError<T>> {
        if delay > self.max_delay {
            return Err(DelayQueueError::TooLong(item));
        }
        if self.heap.len() >= self.capacity {
            return Err(DelayQueueError::Full(item));
        }
        let deadline = now.saturating_add(delay);
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            deadline,
            seq: self.seq,
            item,
        }));
        Ok(())
    }

    /// The earliest deadline held, if any: when the caller should next call
    /// [`pop_due`](Self::pop_due).
    pub fn next_deadline(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }

    /// Removes and returns the earliest item whose deadline is at or before
    /// `now`, with its deadline.
    pub fn pop_due(&mut self, now: Duration) -> Option<(Duration, T)> {
        if self.next_deadline()? <= now {
            self.heap.pop().map(|Reverse(e)| (e.deadline, e.item))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_in_deadline_order_and_refuses_when_full() {
        let mut q = DelayQueue::new(2, Duration::from_secs(1));
        q.push(Duration::ZERO, Duration::from_millis(5), 'a')
            .unwrap();
        q.push(Duration::ZERO, Duration::from_millis(3), 'b')
            .unwrap();
        assert_eq!(
            q.push(Duration::ZERO, Duration::from_millis(1), 'c'),
            Err(DelayQueueError::Full('c'))
        );
        assert_eq!(q.pop_due(Duration::from_millis(2)), None);
        assert_eq!(q.next_deadline(), Some(Duration::from_millis(3)));
        assert_eq!(
            q.pop_due(Duration::from_millis(10)),
            Some((Duration::from_millis(3), 'b'))
        );
        assert_eq!(
            q.pop_due(Duration::from_millis(10)),
            Some((Duration::from_millis(5), 'a'))
        );
        assert!(q.is_empty());
    }

    #[test]
    fn refuses_a_delay_over_the_maximum() {
        let mut q = DelayQueue::new(2, Duration::from_secs(1));
        assert_eq!(
            q.push(Duration::ZERO, Duration::from_secs(2), 1),
            Err(DelayQueueError::TooLong(1))
        );
        assert!(q.is_empty());
    }

    #[test]
    fn zero_mean_gives_zero_delays() {
        let s = DelaySampler::new(Duration::ZERO);
        assert_eq!(s.sample(&mut rand::rng()), Duration::ZERO);
    }
}
