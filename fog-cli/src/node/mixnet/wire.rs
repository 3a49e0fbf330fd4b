//! What travels inside the Sphinx payloads of the mix plane: a message
//! *envelope* (timestamp, reply blocks, body) cut into *fragments* that each
//! fit one packet, and the bounded buffer that puts fragments back together.
//!
//! Fragment (one packet's message):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`FRAGMENT_VERSION`]) |
//! | 1..17 | message id (random, chosen by the sender) |
//! | 17..19 | fragment index, big-endian `u16` |
//! | 19..21 | fragment count, big-endian `u16` (1 to [`MAX_FRAGMENTS`]) |
//! | 21.. | the fragment's share of the envelope |
//!
//! Envelope (the reassembled bytes):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | version ([`ENVELOPE_VERSION`]) |
//! | 1..9 | sender's wall clock in microseconds since the Unix epoch, big-endian `u64`; 0 = not stamped |
//! | 9..11 | number of reply blocks `n`, big-endian `u16` (at most [`MAX_REPLY_BLOCKS`]) |
//! | 11..11 + n × 396 | the reply blocks ([`REPLY_BLOCK_LEN`] bytes each) |
//! | rest | the body (at most [`MAX_BODY`] bytes) |
//!
//! Decoding never panics and never allocates more than its input (the
//! property tests below feed it arbitrary bytes).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use fog_mix::{REPLY_BLOCK_LEN, ReplyBlock};

/// Version byte of every fragment.
pub(crate) const FRAGMENT_VERSION: u8 = 1;
/// Bytes of a fragment's header.
pub(crate) const FRAGMENT_HEADER_LEN: usize = 1 + 16 + 2 + 2;
/// The most fragments one message may have (at the plane's 2 KiB payload a
/// SECRET fragment carries 1,589 bytes, so the largest envelope needs fewer
/// than 1,000).
pub(crate) const MAX_FRAGMENTS: usize = 4096;
/// Version byte of every envelope.
pub(crate) const ENVELOPE_VERSION: u8 = 1;
/// Bytes of an envelope's header.
pub(crate) const ENVELOPE_HEADER_LEN: usize = 1 + 8 + 2;
/// The largest body a message or a reply carries: 1 MiB.
pub(crate) const MAX_BODY: usize = 1 << 20;
/// The most reply blocks one message carries (each answers with one packet).
pub(crate) const MAX_REPLY_BLOCKS: usize = 1024;
/// The largest envelope: header, every reply block, the largest body.
pub(crate) const MAX_ENVELOPE: usize =
    ENVELOPE_HEADER_LEN + MAX_REPLY_BLOCKS * REPLY_BLOCK_LEN + MAX_BODY;

/// Bytes that are not a fragment or an envelope; the reason is static text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed mix plane data: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// One decoded fragment, borrowing its data from the packet's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fragment<'a> {
    /// The message it belongs to.
    pub(crate) id: [u8; 16],
    /// Its position, from 0.
    pub(crate) index: u16,
    /// How many fragments the message has.
    pub(crate) count: u16,
    /// Its share of the envelope.
    pub(crate) data: &'a [u8],
}

impl<'a> Fragment<'a> {
    /// Decodes one packet's message.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, Malformed> {
        if bytes.len() < FRAGMENT_HEADER_LEN {
            return Err(Malformed("fragment shorter than its header"));
        }
        if bytes[0] != FRAGMENT_VERSION {
            return Err(Malformed("unknown fragment version"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[1..17]);
        let index = u16::from_be_bytes([bytes[17], bytes[18]]);
        let count = u16::from_be_bytes([bytes[19], bytes[20]]);
        if count == 0 || usize::from(count) > MAX_FRAGMENTS {
            return Err(Malformed("fragment count out of range"));
        }
        if index >= count {
            return Err(Malformed("fragment index beyond the count"));
        }
        Ok(Fragment {
            id,
            index,
            count,
            data: &bytes[FRAGMENT_HEADER_LEN..],
        })
    }

    /// The fragment's encoding.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FRAGMENT_HEADER_LEN + self.data.len());
        b.push(FRAGMENT_VERSION);
        b.extend_from_slice(&self.id);
        b.extend_from_slice(&self.index.to_be_bytes());
        b.extend_from_slice(&self.count.to_be_bytes());
        b.extend_from_slice(self.data);
        b
    }
}

/// Cuts `envelope` into encoded fragments of at most `packet_capacity`
/// bytes each (header included). Errors when a fragment cannot hold a byte
/// of data or the envelope needs more than [`MAX_FRAGMENTS`].
pub(crate) fn fragment(
    id: [u8; 16],
    envelope: &[u8],
    packet_capacity: usize,
) -> Result<Vec<Vec<u8>>, Malformed> {
    let per = packet_capacity.saturating_sub(FRAGMENT_HEADER_LEN);
    if per == 0 {
        return Err(Malformed("a packet cannot hold a fragment"));
    }
    let count = envelope.len().div_ceil(per).max(1);
    if count > MAX_FRAGMENTS {
        return Err(Malformed("message needs too many fragments"));
    }
    let count16 = count as u16;
    let mut chunks: Vec<&[u8]> = envelope.chunks(per).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    Ok(chunks
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            Fragment {
                id,
                index: i as u16,
                count: count16,
                data,
            }
            .encode()
        })
        .collect())
}

/// How many fragments of `packet_capacity` bytes an envelope of `len` bytes
/// takes.
pub(crate) fn fragments_for(len: usize, packet_capacity: usize) -> usize {
    let per = packet_capacity.saturating_sub(FRAGMENT_HEADER_LEN).max(1);
    len.div_ceil(per).max(1)
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// The sender's wall clock (µs since the Unix epoch) when stamped.
    pub(crate) sent_at_us: Option<u64>,
    /// The reply blocks the sender attached.
    pub(crate) reply_blocks: Vec<ReplyBlock>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

impl Envelope {
    /// Encodes an envelope (the caller keeps `blocks` and `body` within
    /// [`MAX_REPLY_BLOCKS`] and [`MAX_BODY`]).
    pub(crate) fn encode(sent_at_us: Option<u64>, blocks: &[ReplyBlock], body: &[u8]) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(ENVELOPE_HEADER_LEN + blocks.len() * REPLY_BLOCK_LEN + body.len());
        b.push(ENVELOPE_VERSION);
        b.extend_from_slice(&sent_at_us.unwrap_or(0).to_be_bytes());
        b.extend_from_slice(&(blocks.len() as u16).to_be_bytes());
        for block in blocks {
            b.extend_from_slice(&block.to_bytes());
        }
        b.extend_from_slice(body);
        b
    }

    /// Decodes a reassembled envelope.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Malformed> {
        if bytes.len() < ENVELOPE_HEADER_LEN {
            return Err(Malformed("envelope shorter than its header"));
        }
        if bytes[0] != ENVELOPE_VERSION {
            return Err(Malformed("unknown envelope version"));
        }
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&bytes[1..9]);
        let stamp = u64::from_be_bytes(stamp);
        let n = usize::from(u16::from_be_bytes([bytes[9], bytes[10]]));
        if n > MAX_REPLY_BLOCKS {
            return Err(Malformed("too many reply blocks"));
        }
        let rest = &bytes[ENVELOPE_HEADER_LEN..];
        let blocks_len = n * REPLY_BLOCK_LEN;
        if rest.len() < blocks_len {
            return Err(Malformed("envelope shorter than its reply blocks"));
        }
        let (blocks, body) = rest.split_at(blocks_len);
        if body.len() > MAX_BODY {
            return Err(Malformed("body over the limit"));
        }
        let reply_blocks = blocks
            .chunks_exact(REPLY_BLOCK_LEN)
            .map(|b| ReplyBlock::from_bytes(b).map_err(|_| Malformed("bad reply block")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Envelope {
            sent_at_us: (stamp != 0).then_some(stamp),
            reply_blocks,
            body: body.to_vec(),
        })
    }
}

/// Limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReassemblyLimits {
    /// Messages being reassembled at once.
    pub(crate) max_messages: usize,
    /// Bytes held over all of them.
    pub(crate) max_bytes: usize,
    /// How long a message may take to complete from its first fragment.
    pub(crate) expiry: Duration,
}

impl Default for ReassemblyLimits {
    /// 64 messages, 80 MiB (enough for 64 messages of 1 MiB at once at
    /// their worst fragment overhead), 120 s.
    fn default() -> Self {
        ReassemblyLimits {
            max_messages: 64,
            max_bytes: 80 << 20,
            expiry: Duration::from_mins(2),
        }
    }
}

/// What one fragment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The message is not complete yet.
    Pending,
    /// The message is complete: its envelope bytes.
    Complete(Vec<u8>),
    /// A fragment already held (dropped).
    Duplicate,
    /// No room: the buffer holds `max_messages` messages or `max_bytes`
    /// bytes (the fragment is dropped; its message, if started, will expire
    /// incomplete).
    Full,
    /// The fragment disagrees with earlier ones of its message on the
    /// count, or would make it larger than [`MAX_ENVELOPE`] (dropped).
    Inconsistent,
}

#[derive(Debug)]
struct Partial {
    started: Instant,
    count: u16,
    have: usize,
    bytes: usize,
    parts: Vec<Option<Vec<u8>>>,
}

/// Messages being put back together: bounded in messages and bytes, every
/// message expiring a fixed time after its first fragment. Time is an input.
#[derive(Debug)]
pub(crate) struct Reassembler {
    limits: ReassemblyLimits,
    partial: HashMap<[u8; 16], Partial>,
    bytes: usize,
}

impl Reassembler {
    /// An empty buffer.
    pub(crate) fn new(limits: ReassemblyLimits) -> Self {
        Reassembler {
            limits,
            partial: HashMap::new(),
            bytes: 0,
        }
    }

    /// Messages being reassembled now.
    pub(crate) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Takes one fragment received at `now`.
    pub(crate) fn insert(&mut self, f: Fragment<'_>, now: Instant) -> Outcome {
        if f.count == 1 {
            // Whole in one packet: nothing to hold.
            return Outcome::Complete(f.data.to_vec());
        }
        let len = f.data.len();
        if !self.partial.contains_key(&f.id) && self.partial.len() >= self.limits.max_messages {
            return Outcome::Full;
        }
        if self.bytes + len > self.limits.max_bytes {
            return Outcome::Full;
        }
        let p = self.partial.entry(f.id).or_insert_with(|| Partial {
            started: now,
            count: f.count,
            have: 0,
            bytes: 0,
            parts: vec![None; usize::from(f.count)],
        });
        if p.count != f.count || p.bytes + len > MAX_ENVELOPE {
            return Outcome::Inconsistent;
        }
        let slot = &mut p.parts[usize::from(f.index)];
        if slot.is_some() {
            return Outcome::Duplicate;
        }
        *slot = Some(f.data.to_vec());
        p.have += 1;
        p.bytes += len;
        self.bytes += len;
        if p.have < usize::from(p.count) {
            return Outcome::Pending;
        }
        let Some(p) = self.partial.remove(&f.id) else {
            return Outcome::Pending;
        };
        self.bytes -= p.bytes;
        let mut whole = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            whole.extend_from_slice(&part);
        }
        Outcome::Complete(whole)
    }

    /// Drops every message whose first fragment came more than the expiry
    /// before `now`; returns how many.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let expiry = self.limits.expiry;
        let before = self.partial.len();
        let mut freed = 0;
        self.partial.retain(|_, p| {
            let keep = now.saturating_duration_since(p.started) < expiry;
            if !keep {
                freed += p.bytes;
            }
            keep
        });
        self.bytes -= freed;
        before - self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reassemble_all(frags: &[Vec<u8>], r: &mut Reassembler, now: Instant) -> Option<Vec<u8>> {
        let mut out = None;
        for f in frags {
            let f = Fragment::decode(f).expect("own fragment decodes");
            if let Outcome::Complete(b) = r.insert(f, now) {
                out = Some(b);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn fragments_round_trip(
            id in any::<[u8; 16]>(),
            envelope in proptest::collection::vec(any::<u8>(), 0..20_000),
            capacity in 30usize..3000,
            reverse in any::<bool>(),
        ) {
            let mut frags = fragment(id, &envelope, capacity).unwrap();
            prop_assert_eq!(frags.len(), fragments_for(envelope.len(), capacity));
            for f in &frags {
                prop_assert!(f.len() <= capacity);
            }
            if reverse {
                frags.reverse();
            }
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let got = reassemble_all(&frags, &mut r, Instant::now());
            prop_assert_eq!(got, Some(envelope));
            prop_assert_eq!(r.len(), 0);
        }

        #[test]
        fn fragment_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(f) = Fragment::decode(&bytes) {
                prop_assert!(f.index < f.count);
                prop_assert_eq!(f.encode(), bytes);
            }
        }

        #[test]
        fn envelope_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn reassembler_never_panics_on_garbage(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..64),
        ) {
            let limits = ReassemblyLimits { max_messages: 4, max_bytes: 512, expiry: Duration::from_secs(1) };
            let mut r = Reassembler::new(limits);
            let t0 = Instant::now();
            for (i, p) in packets.iter().enumerate() {
                // Force a well-formed header half of the time so the buffer
                // logic is reached, not just the header checks.
                let mut p = p.clone();
                if i % 2 == 0 && p.len() >= FRAGMENT_HEADER_LEN {
                    p[0] = FRAGMENT_VERSION;
                    p[1..17].copy_from_slice(&[(i % 3) as u8; 16]);
                    let count = (p[20] % 5).max(1);
                    let index = u16::from(p[18] % count);
                    p[17..19].copy_from_slice(&index.to_be_bytes());
                    p[19..21].copy_from_slice(&u16::from(count).to_be_bytes());
                }
                if let Ok(f) = Fragment::decode(&p) {
                    let _ = r.insert(f, t0 + Duration::from_millis(100 * i as u64));
                }
                prop_assert!(r.len() <= limits.max_messages);
                prop_assert!(r.bytes <= limits.max_bytes);
            }
            r.expire(t0 + Duration::from_hours(1));
            prop_assert_eq!(r.len(), 0);
            prop_assert_eq!(r.bytes, 0);
        }

        #[test]
        fn envelope_round_trip(
            stamp in proptest::option::of(1u64..),
            body in proptest::collection::vec(any::<u8>(), 0..5000),
        ) {
            let bytes = Envelope::encode(stamp, &[], &body);
            let e = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(e.sent_at_us, stamp);
            prop_assert!(e.reply_blocks.is_empty());
            prop_assert_eq!(e.body, body);
        }
    }

    #[test]
    fn a_full_buffer_drops_new_messages_and_expiry_frees_it() {
        let limits = ReassemblyLimits {
            max_messages: 2,
            max_bytes: 1 << 20,
            expiry: Duration::from_secs(10),
        };
        let mut r = Reassembler::new(limits);
        let t0 = Instant::now();
        let msgs: Vec<Vec<Vec<u8>>> = (0..3u8)
            .map(|i| fragment([i; 16], &[i; 300], 121).unwrap())
            .collect();
        assert_eq!(msgs[0].len(), 3);
        fn first(m: &[Vec<u8>]) -> Fragment<'_> {
            Fragment::decode(&m[0]).unwrap()
        }
        assert_eq!(r.insert(first(&msgs[0]), t0), Outcome::Pending);
        assert_eq!(r.insert(first(&msgs[1]), t0), Outcome::Pending);
        // A third message finds no room.
        assert_eq!(r.insert(first(&msgs[2]), t0), Outcome::Full);
        // The ones started still complete.
        assert_eq!(r.insert(first(&msgs[0]), t0), Outcome::Duplicate);
        let rest: Vec<Vec<u8>> = msgs[0][1..].to_vec();
        assert_eq!(reassemble_all(&rest, &mut r, t0), Some(vec![0u8; 300]));
        // The other expires incomplete, which frees room.
        assert_eq!(r.expire(t0 + Duration::from_secs(11)), 1);
        assert_eq!(r.len(), 0);
        assert_eq!(r.insert(first(&msgs[2]), t0), Outcome::Pending);
    }

    #[test]
    fn byte_budget_and_inconsistent_counts() {
        let limits = ReassemblyLimits {
            max_messages: 8,
            max_bytes: 150,
            expiry: Duration::from_secs(10),
        };
        let mut r = Reassembler::new(limits);
        let t0 = Instant::now();
        let m = fragment([1; 16], &[7; 300], 121).unwrap();
        assert_eq!(
            r.insert(Fragment::decode(&m[0]).unwrap(), t0),
            Outcome::Pending
        );
        // 100 + 100 bytes exceeds the 150-byte budget.
        assert_eq!(
            r.insert(Fragment::decode(&m[1]).unwrap(), t0),
            Outcome::Full
        );
        let other = Fragment {
            id: [1; 16],
            index: 0,
            count: 5,
            data: b"x",
        };
        assert_eq!(r.insert(other, t0), Outcome::Inconsistent);
    }

    #[test]
    fn a_fragment_too_small_for_data_is_an_error() {
        assert!(fragment([0; 16], b"abc", FRAGMENT_HEADER_LEN).is_err());
        assert!(fragment([0; 16], &[0; MAX_FRAGMENTS + 1], FRAGMENT_HEADER_LEN + 1).is_err());
        // An empty envelope is one empty fragment.
        assert_eq!(fragment([0; 16], b"", 100).unwrap().len(), 1);
    }
}
