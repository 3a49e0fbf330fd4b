//! Privacy levels: how many mixes a packet crosses.

use std::fmt;
use std::str::FromStr;

use crate::packet::{PAYLOAD_OVERHEAD, SECRET_ENVELOPE_LEN};

/// How many mix hops a packet crosses, and therefore how much unlinkability
/// it buys.
///
/// Every level produces packets of exactly the same size and header format on
/// the wire; only the sender and the mixes themselves (after decryption) can
/// tell the levels apart. The message a packet can carry depends on the level
/// and on the configured Sphinx payload size `P`
/// ([`PacketConfig::payload_size`](crate::PacketConfig::payload_size),
/// default 2048 bytes):
///
/// | level | mix hops | Sphinx headers | message capacity | capacity at `P` = 2048 |
/// |---|---|---|---|---|
/// | `Public` | 1 | one 1-hop header | `P - 17` | 2031 bytes |
/// | `Private` | 3 | one 3-hop header | `P - 17` | 2031 bytes |
/// | `Confidential` | 5 | one 5-hop header | `P - 17` | 2031 bytes |
/// | `Secret` | 7 | an outer 5-hop header, then an inner 2-hop header | `P - 17 - 421` | 1610 bytes |
///
/// The 17 bytes are Sphinx's payload overhead (16 zero bytes of integrity
/// check and one padding marker). `Secret` also spends 421 bytes on the
/// junction envelope (one version byte, the junction's 8-byte delay and the
/// 412-byte inner reply block that carries the inner header); see
/// [`PacketBuilder`](crate::PacketBuilder) for the design.
///
/// **`Public` gives no unlinkability against its single hop**: that one mix
/// sees both who sent the packet (the connection it arrived on) and where it
/// is delivered. Senders draw no delay for a packet's last hop, so that
/// one mix holds nothing: against an observer of the network alone the
/// pair is hidden only by the other packets crossing the mix at the same
/// moment (`fog mix sim` reports 0 bits for PUBLIC). It keeps the payload
/// from the network, not the sender from the receiver's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PrivacyLevel {
    /// One mix hop. No unlinkability against that mix.
    Public,
    /// Three mix hops.
    Private,
    /// Five mix hops (the longest single Sphinx header).
    Confidential,
    /// Seven mix hops: an outer five-hop packet whose last hop re-injects an
    /// inner two-hop packet of the same size.
    Secret,
}

impl PrivacyLevel {
    /// Every level, from the weakest to the strongest.
    pub const ALL: [PrivacyLevel; 4] = [
        PrivacyLevel::Public,
        PrivacyLevel::Private,
        PrivacyLevel::Confidential,
        PrivacyLevel::Secret,
    ];

    /// The number of mix hops a packet at this level crosses.
    pub const fn hops(self) -> usize {
        match self {
            PrivacyLevel::Public => 1,
            PrivacyLevel::Private => 3,
            PrivacyLevel::Confidential => 5,
            PrivacyLevel::Secret => 7,
        }
    }

    /// The largest message, in bytes, a packet at this level can carry for a
    /// Sphinx payload of `payload_size` bytes (0 when nothing fits).
    pub const fn payload_capacity(self, payload_size: usize) -> usize {
        let overhead = match self {
            PrivacyLevel::Public | PrivacyLevel::Private | PrivacyLevel::Confidential => {
                PAYLOAD_OVERHEAD
            }
            PrivacyLevel::Secret => PAYLOAD_OVERHEAD + SECRET_ENVELOPE_LEN,
        };
        payload_size.saturating_sub(overhead)
    }

    /// The level's name in upper case, as the command line and job specs
    /// spell it.
    pub const fn name(self) -> &'static str {
        match self {
            PrivacyLevel::Public => "PUBLIC",
            PrivacyLevel::Private => "PRIVATE",
            PrivacyLevel::Confidential => "CONFIDENTIAL",
            PrivacyLevel::Secret => "SECRET",
        }
    }
}

impl fmt::Display for PrivacyLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a privacy level name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown privacy level {0:?} (expected PUBLIC, PRIVATE, CONFIDENTIAL or SECRET)")]
pub struct UnknownPrivacyLevel(String);

impl FromStr for PrivacyLevel {
    type Err = UnknownPrivacyLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PrivacyLevel::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownPrivacyLevel(s.to_owned()))
    }
}
