//! The wire format of direct messages: [`Envelope`] (a request or a one-way
//! message) and [`Reply`].
//!
//! Both are fog's own binary encoding, also used for the rows of the
//! store-and-forward queue. Every field has a fixed width except the payload,
//! which is length-prefixed and bounded by [`MAX_PAYLOAD`]. Decoding never
//! panics: any byte string either decodes to a value whose re-encoding is the
//! same bytes, or yields a [`DecodeError`].

use std::fmt;

/// Largest payload a direct message or reply may carry (1 MiB).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Version byte at the start of every encoded envelope and reply.
const VERSION: u8 = 1;

const TAG_MESSAGE: u8 = 0;
const TAG_REQUEST: u8 = 1;
const TAG_REPLY_OK: u8 = 0;
const TAG_REPLY_ERR: u8 = 1;

/// Size of an encoded envelope without its payload.
pub const ENVELOPE_HEADER: usize = 1 + 1 + 8 + 1 + 8 + 4;
/// Size of an encoded reply without its payload.
pub const REPLY_HEADER: usize = 1 + 1 + 8 + 4;

/// The five delivery priorities of direct messages, most urgent first.
///
/// A full store-and-forward queue evicts the least urgent, oldest message to
/// make room for a more urgent one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Priority {
    /// Control traffic that must not wait (0).
    Critical,
    /// Urgent application traffic (1).
    High,
    /// The default (2).
    #[default]
    Normal,
    /// Traffic that can wait (3).
    Low,
    /// Best effort; the first to be evicted (4).
    Bulk,
}

impl Priority {
    /// All priorities, most urgent first.
    pub const ALL: [Priority; 5] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
        Priority::Bulk,
    ];

    /// The numeric level, 0 (most urgent) to 4.
    pub fn level(self) -> u8 {
        self as u8
    }

    /// The priority of a numeric level, `None` above 4.
    pub fn from_level(level: u8) -> Option<Self> {
        Self::ALL.get(usize::from(level)).copied()
    }
}

/// What the receiver of an [`Envelope`] is expected to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A one-way message: the receiving node acknowledges it itself.
    Message,
    /// A request: the receiving application answers with a [`Reply`].
    Request,
}

/// A direct message from one node to another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Envelope {
    /// The sender's identifier for this message, unique per sender.
    pub id: u64,
    /// Whether the receiver answers itself or hands it to the application.
    pub kind: Kind,
    /// Delivery priority.
    pub priority: Priority,
    /// Unix time in milliseconds after which the message is dropped
    /// undelivered (0: never expires).
    pub expires_at_ms: u64,
    /// The application's bytes (at most [`MAX_PAYLOAD`]).
    pub payload: Vec<u8>,
}

/// The answer to an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The id of the envelope answered.
    pub id: u64,
    /// `true` when the receiver accepted the message; `false` with a reason
    /// in `payload` (UTF-8) when it refused it.
    pub ok: bool,
    /// The reply's bytes (at most [`MAX_PAYLOAD`]).
    pub payload: Vec<u8>,
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Fewer bytes than the header or the declared payload.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Bytes left after the payload.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// An unknown version byte.
    #[error("unknown version {0}")]
    Version(u8),
    /// An unknown kind or status tag.
    #[error("unknown tag {0}")]
    Tag(u8),
    /// A priority above 4.
    #[error("unknown priority {0}")]
    Priority(u8),
    /// A payload longer than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// A payload too large to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
pub struct TooLarge(pub usize);

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::TooLarge(n))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated {
                need: end,
                have: self.bytes.len(),
            })?;
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
    fn payload(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32()? as usize;
        if len > MAX_PAYLOAD {
            return Err(DecodeError::TooLarge(len));
        }
        Ok(self.take(len)?.to_vec())
    }
    fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }
}

fn version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.u8()? {
        VERSION => Ok(()),
        v => Err(DecodeError::Version(v)),
    }
}

impl Envelope {
    /// The encoded form.
    pub fn encode(&self) -> Result<Vec<u8>, TooLarge> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(TooLarge(self.payload.len()));
        }
        let mut out = Vec::with_capacity(ENVELOPE_HEADER + self.payload.len());
        out.push(VERSION);
        out.push(match self.kind {
            Kind::Message => TAG_MESSAGE,
            Kind::Request => TAG_REQUEST,
        });
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(self.priority.level());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Decodes exactly one envelope from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        version(&mut r)?;
        let kind = match r.u8()? {
            TAG_MESSAGE => Kind::Message,
            TAG_REQUEST => Kind::Request,
            t => return Err(DecodeError::Tag(t)),
        };
        let id = r.u64()?;
        let level = r.u8()?;
        let priority = Priority::from_level(level).ok_or(DecodeError::Priority(level))?;
        let expires_at_ms = r.u64()?;
        let payload = r.payload()?;
        r.finish()?;
        Ok(Self {
            id,
            kind,
            priority,
            expires_at_ms,
            payload,
        })
    }

    /// Whether the envelope has expired at `now_ms` (Unix milliseconds).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }
}

impl Reply {
    /// The encoded form.
    pub fn encode(&self) -> Result<Vec<u8>, TooLarge> {
        if self.payload.len() > MAX_PAYLOAD {
            return Err(TooLarge(self.payload.len()));
        }
        let mut out = Vec::with_capacity(REPLY_HEADER + self.payload.len());
        out.push(VERSION);
        out.push(if self.ok { TAG_REPLY_OK } else { TAG_REPLY_ERR });
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Decodes exactly one reply from `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        version(&mut r)?;
        let ok = match r.u8()? {
            TAG_REPLY_OK => true,
            TAG_REPLY_ERR => false,
            t => return Err(DecodeError::Tag(t)),
        };
        let id = r.u64()?;
        let payload = r.payload()?;
        r.finish()?;
        Ok(Self { id, ok, payload })
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
            Priority::Bulk => "bulk",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn priority() -> impl Strategy<Value = Priority> {
        (0u8..5).prop_map(|l| Priority::from_level(l).unwrap())
    }

    fn envelope() -> impl Strategy<Value = Envelope> {
        (
            any::<u64>(),
            any::<bool>(),
            priority(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..512),
        )
            .prop_map(|(id, req, priority, expires_at_ms, payload)| Envelope {
                id,
                kind: if req { Kind::Request } else { Kind::Message },
                priority,
                expires_at_ms,
                payload,
            })
    }

    proptest! {
        #[test]
        fn envelope_round_trips(e in envelope()) {
            let bytes = e.encode().unwrap();
            prop_assert_eq!(bytes.len(), ENVELOPE_HEADER + e.payload.len());
            prop_assert_eq!(Envelope::decode(&bytes).unwrap(), e);
        }

        #[test]
        fn reply_round_trips(id in any::<u64>(), ok in any::<bool>(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let r = Reply { id, ok, payload };
            prop_assert_eq!(Reply::decode(&r.encode().unwrap()).unwrap(), r);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_reencode(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(e) = Envelope::decode(&bytes) {
                prop_assert_eq!(e.encode().unwrap(), bytes.clone());
            }
            if let Ok(r) = Reply::decode(&bytes) {
                prop_assert_eq!(r.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn every_truncation_is_an_error(e in envelope(), cut in any::<prop::sample::Index>()) {
            let bytes = e.encode().unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(Envelope::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn oversized_payload_is_refused_both_ways() {
        let e = Envelope {
            id: 1,
            kind: Kind::Message,
            priority: Priority::Bulk,
            expires_at_ms: 0,
            payload: vec![0; MAX_PAYLOAD + 1],
        };
        assert_eq!(e.encode(), Err(TooLarge(MAX_PAYLOAD + 1)));
        let mut header = vec![VERSION, TAG_MESSAGE];
        header.extend_from_slice(&[0; 8]);
        header.push(0);
        header.extend_from_slice(&[0; 8]);
        header.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Envelope::decode(&header),
            Err(DecodeError::TooLarge(u32::MAX as usize))
        );
    }
}
