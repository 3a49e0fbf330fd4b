//! Fragmentation of link messages to a bearer's MTU, and bounded reassembly.
//!
//! Each frame is `0xF5 | version 1 | message id (u32 BE) | index (u16 BE) |
//! count (u16 BE) | chunk`. Reassembly is bounded three ways: partial
//! messages in progress (the oldest is dropped to make room), bytes held in
//! partial messages (the oldest are dropped), and age (partials older than
//! the timeout are dropped). Every drop is counted.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::error::FrameError;

/// Bytes of header in front of every frame's chunk.
pub const FRAME_HEADER: usize = 10;
const MAGIC: u8 = 0xF5;
const VERSION: u8 = 1;

/// Splits `message` into frames of at most `mtu` bytes.
pub fn fragment(message: &[u8], message_id: u32, mtu: usize) -> Result<Vec<Vec<u8>>, FrameError> {
    let chunk = mtu
        .checked_sub(FRAME_HEADER)
        .filter(|c| *c > 0)
        .ok_or(FrameError::MtuTooSmall(mtu))?;
    let count = message.len().div_ceil(chunk).max(1);
    let count16 = u16::try_from(count).map_err(|_| FrameError::TooLarge {
        size: message.len(),
        limit: chunk * usize::from(u16::MAX),
    })?;
    let mut frames = Vec::with_capacity(count);
    for index in 0..count {
        let part = message
            .get(index * chunk..((index + 1) * chunk).min(message.len()))
            .unwrap_or(&[]);
        let mut frame = Vec::with_capacity(FRAME_HEADER + part.len());
        frame.push(MAGIC);
        frame.push(VERSION);
        frame.extend_from_slice(&message_id.to_be_bytes());
        frame.extend_from_slice(&(index as u16).to_be_bytes());
        frame.extend_from_slice(&count16.to_be_bytes());
        frame.extend_from_slice(part);
        frames.push(frame);
    }
    Ok(frames)
}

/// A decoded frame header and its chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Which message the frame belongs to.
    pub message_id: u32,
    /// Position of the chunk.
    pub index: u16,
    /// Number of frames of the message.
    pub count: u16,
    /// The chunk.
    pub chunk: &'a [u8],
}

/// Decodes one frame. Never panics.
pub fn decode_frame(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
    if frame.len() < FRAME_HEADER {
        return Err(FrameError::Malformed("shorter than the header"));
    }
    if frame[0] != MAGIC || frame[1] != VERSION {
        return Err(FrameError::Malformed("bad magic or version"));
    }
    let message_id = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]);
    let index = u16::from_be_bytes([frame[6], frame[7]]);
    let count = u16::from_be_bytes([frame[8], frame[9]]);
    if count == 0 || index >= count {
        return Err(FrameError::Malformed("index outside the count"));
    }
    Ok(Frame {
        message_id,
        index,
        count,
        chunk: &frame[FRAME_HEADER..],
    })
}

/// Bounds of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassemblyLimits {
    /// Partial messages in progress at once.
    pub max_partials: usize,
    /// Largest message accepted.
    pub max_message: usize,
    /// Bytes held in all partial messages together.
    pub max_total: usize,
    /// A partial message older than this is dropped.
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        ReassemblyLimits {
            max_partials: 64,
            max_message: 1024 * 1024,
            max_total: 8 * 1024 * 1024,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages completed.
    pub completed: u64,
    /// Frames that did not decode.
    pub malformed: u64,
    /// Partials dropped because of the partial-count or byte bound.
    pub evicted: u64,
    /// Partials dropped because they timed out.
    pub timed_out: u64,
    /// Frames refused because their message would be too large, or whose
    /// count disagreed with earlier frames.
    pub refused: u64,
}

#[derive(Debug)]
struct Partial {
    started: Instant,
    count: u16,
    chunks: Vec<Option<Vec<u8>>>,
    received: usize,
    bytes: usize,
}

/// Reassembles messages from frames, per sender.
#[derive(Debug)]
pub struct Reassembler<K> {
    limits: ReassemblyLimits,
    partials: HashMap<(K, u32), Partial>,
    total: usize,
    stats: ReassemblyStats,
}

impl<K: Hash + Eq + Clone> Reassembler<K> {
    /// A reassembler with `limits`.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            partials: HashMap::new(),
            total: 0,
            stats: ReassemblyStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReassemblyStats {
        self.stats
    }

    /// Partial messages held now.
    pub fn partials(&self) -> usize {
        self.partials.len()
    }

    /// Takes one frame from `sender`; returns the message when it is complete.
    pub fn push(
        &mut self,
        sender: &K,
        frame: &[u8],
        now: Instant,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        self.expire(now);
        let frame = decode_frame(frame).inspect_err(|_| self.stats.malformed += 1)?;
        let chunk_limit = self.limits.max_message;
        if frame.count == 1 {
            if frame.chunk.len() > chunk_limit {
                self.stats.refused += 1;
                return Err(FrameError::TooLarge {
                    size: frame.chunk.len(),
                    limit: chunk_limit,
                });
            }
            self.stats.completed += 1;
            return Ok(Some(frame.chunk.to_vec()));
        }
        let key = (sender.clone(), frame.message_id);
        if !self.partials.contains_key(&key) {
            while self.partials.len() >= self.limits.max_partials.max(1) {
                self.evict_oldest();
            }
            self.partials.insert(
                key.clone(),
                Partial {
                    started: now,
                    count: frame.count,
                    chunks: vec![None; usize::from(frame.count)],
                    received: 0,
                    bytes: 0,
                },
            );
        }
        let partial = self.partials.get_mut(&key).expect("inserted above");
        if partial.count != frame.count {
            self.stats.refused += 1;
            self.remove(&key);
            return Err(FrameError::Malformed(
                "frame count changed within a message",
            ));
        }
        let slot = &mut partial.chunks[usize::from(frame.index)];
        if slot.is_some() {
            return Ok(None); // a duplicate frame
        }
        if partial.bytes + frame.chunk.len() > chunk_limit {
            let size = partial.bytes + frame.chunk.len();
            self.stats.refused += 1;
            self.remove(&key);
            return Err(FrameError::TooLarge {
                size,
                limit: chunk_limit,
            });
        }
        *slot = Some(frame.chunk.to_vec());
        partial.received += 1;
        partial.bytes += frame.chunk.len();
        self.total += frame.chunk.len();
        if partial.received == usize::from(partial.count) {
            let partial = self.remove(&key).expect("present");
            self.stats.completed += 1;
            return Ok(Some(
                partial.chunks.into_iter().flatten().flatten().collect(),
            ));
        }
        while self.total > self.limits.max_total {
            self.evict_oldest();
        }
        Ok(None)
    }

    fn remove(&mut self, key: &(K, u32)) -> Option<Partial> {
        let partial = self.partials.remove(key)?;
        self.total -= partial.bytes;
        Some(partial)
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .partials
            .iter()
            .min_by_key(|(_, p)| p.started)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.remove(&key);
            self.stats.evicted += 1;
        }
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.limits.timeout;
        let old: Vec<(K, u32)> = self
            .partials
            .iter()
            .filter(|(_, p)| now.duration_since(p.started) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.remove(&key);
            self.stats.timed_out += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_and_reassembles_out_of_order() {
        let message: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        let mut frames = fragment(&message, 7, 100).unwrap();
        assert!(frames.iter().all(|f| f.len() <= 100));
        frames.reverse();
        let mut r = Reassembler::new(ReassemblyLimits::default());
        let now = Instant::now();
        let mut out = None;
        for f in &frames {
            out = r.push(&"peer", f, now).unwrap().or(out);
        }
        assert_eq!(out, Some(message));
        assert_eq!(r.partials(), 0);
    }

    #[test]
    fn bounds_hold() {
        let limits = ReassemblyLimits {
            max_partials: 2,
            max_message: 1000,
            max_total: 10_000,
            timeout: Duration::from_secs(1),
        };
        let mut r = Reassembler::new(limits);
        let now = Instant::now();
        for id in 0..5 {
            let frames = fragment(&[1; 300], id, 100).unwrap();
            r.push(&1u8, &frames[0], now).unwrap();
        }
        assert_eq!(r.partials(), 2);
        assert_eq!(r.stats().evicted, 3);
        // Too large a message is refused.
        let frames = fragment(&[1; 5000], 99, 1000).unwrap();
        let mut refused = false;
        for f in &frames {
            refused |= r.push(&1u8, f, now).is_err();
        }
        assert!(refused);
        // Partials time out.
        r.push(&2u8, &fragment(&[1; 300], 1, 100).unwrap()[0], now)
            .unwrap();
        r.push(
            &3u8,
            &fragment(&[1; 10], 1, 100).unwrap()[0],
            now + Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(r.partials(), 0);
        assert!(r.stats().timed_out >= 1);
    }

    #[test]
    fn refuses_a_tiny_mtu() {
        assert_eq!(
            fragment(b"x", 1, FRAME_HEADER),
            Err(FrameError::MtuTooSmall(FRAME_HEADER))
        );
    }
}
