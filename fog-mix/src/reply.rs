//! Single-use reply blocks (SURBs): a recipient answers without learning
//! who it answers.

use std::fmt;

use rand::CryptoRng;
use sphinx_packet::constants::{IDENTIFIER_LENGTH, NODE_ADDRESS_LENGTH, PAYLOAD_KEY_SEED_SIZE};
use sphinx_packet::header::HEADER_SIZE;
use sphinx_packet::payload::Payload;
use sphinx_packet::payload::key::derive_payload_key;
use sphinx_packet::{SURB, SURBMaterial};
use x25519_dalek::StaticSecret;

use crate::level::PrivacyLevel;
use crate::packet::{
    BuildError, Destination, NodeAddress, OutgoingPacket, Packet, PacketBuilder, PacketConfig,
    RouteNode, WIRE_VERSION, to_delay,
};

/// Bytes of an encoded [`ReplyBlock`]: Sphinx header, first hop, one
/// payload key seed.
pub const REPLY_BLOCK_LEN: usize = HEADER_SIZE + NODE_ADDRESS_LENGTH + PAYLOAD_KEY_SEED_SIZE;

/// The most hops a reply block routes over (one Sphinx header).
pub const MAX_REPLY_HOPS: usize = 5;

/// Why a reply block or a reply could not be used. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// The bytes are not a reply block.
    #[error("malformed reply block: {0}")]
    Malformed(String),
    /// The reply does not fit in one packet.
    #[error("a reply carries at most {capacity} bytes, got {len}")]
    TooLong {
        /// The reply length.
        len: usize,
        /// The capacity at the configured payload size.
        capacity: usize,
    },
    /// The sealed reply does not open under this key (not the reply to this
    /// block, or damaged on the way).
    #[error("reply does not open under this key")]
    WrongKey,
}

/// A single-use reply block: what a sender hands the recipient (inside its
/// message) so the recipient can answer.
///
/// It holds a ready Sphinx header for a route chosen by the block's creator
/// and ending at the creator, the first hop's address, and one payload key
/// seed of the block's own (no hop's). The recipient learns neither the
/// route nor the creator's address, and since it holds no hop's key it
/// cannot recognise its reply's payload on the links between mixes; the
/// last hop delivers ciphertext only the creator opens. Every hop sees
/// an ordinary packet of the network's size and Sphinx version. Using a
/// block twice makes the second packet a replay, dropped by the first mix.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplyBlock {
    bytes: Vec<u8>,
}

impl fmt::Debug for ReplyBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplyBlock({} bytes)", self.bytes.len())
    }
}

/// What the creator of a [`ReplyBlock`] keeps to open the reply: the
/// block's identifier, every hop's payload key seed and the block's own
/// seed. Secret.
pub struct ReplyKey {
    identifier: [u8; IDENTIFIER_LENGTH],
    block_seed: [u8; PAYLOAD_KEY_SEED_SIZE],
    hop_seeds: Vec<[u8; PAYLOAD_KEY_SEED_SIZE]>,
}

impl fmt::Debug for ReplyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyKey")
            .field("identifier", &self.identifier)
            .field("hops", &self.hop_seeds.len())
            .finish_non_exhaustive()
    }
}

impl ReplyKey {
    /// The identifier the last hop delivers with the sealed reply.
    pub fn identifier(&self) -> [u8; IDENTIFIER_LENGTH] {
        self.identifier
    }

    /// Opens a sealed reply (from [`Processed::DeliverSealed`]): puts back
    /// the layer every hop removed, last hop first, then removes the
    /// block's own layer and checks the padding.
    ///
    /// [`Processed::DeliverSealed`]: crate::Processed::DeliverSealed
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, ReplyError> {
        let mut payload = Payload::from_bytes(sealed).map_err(|_| ReplyError::WrongKey)?;
        for seed in self.hop_seeds.iter().rev() {
            payload = payload
                .add_encryption_layer(derive_payload_key(seed))
                .map_err(|_| ReplyError::WrongKey)?;
        }
        payload
            .unwrap(derive_payload_key(&self.block_seed))
            .and_then(Payload::recover_plaintext)
            .map_err(|_| ReplyError::WrongKey)
    }

    /// The key's encoding (identifier, block seed, hop seeds), for a
    /// creator that keeps its keys across restarts.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(32 + 16 * self.hop_seeds.len());
        b.extend_from_slice(&self.identifier);
        b.extend_from_slice(&self.block_seed);
        for seed in &self.hop_seeds {
            b.extend_from_slice(seed);
        }
        b
    }

    /// Decodes [`to_bytes`](Self::to_bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReplyError> {
        let seeds = bytes
            .len()
            .saturating_sub(IDENTIFIER_LENGTH + PAYLOAD_KEY_SEED_SIZE);
        if bytes.len() < IDENTIFIER_LENGTH + 2 * PAYLOAD_KEY_SEED_SIZE
            || !seeds.is_multiple_of(PAYLOAD_KEY_SEED_SIZE)
            || seeds / PAYLOAD_KEY_SEED_SIZE > MAX_REPLY_HOPS
        {
            return Err(ReplyError::Malformed(format!(
                "reply key of {} bytes",
                bytes.len()
            )));
        }
        let mut identifier = [0u8; IDENTIFIER_LENGTH];
        identifier.copy_from_slice(&bytes[..IDENTIFIER_LENGTH]);
        let mut block_seed = [0u8; PAYLOAD_KEY_SEED_SIZE];
        block_seed
            .copy_from_slice(&bytes[IDENTIFIER_LENGTH..IDENTIFIER_LENGTH + PAYLOAD_KEY_SEED_SIZE]);
        let hop_seeds = bytes[IDENTIFIER_LENGTH + PAYLOAD_KEY_SEED_SIZE..]
            .chunks_exact(PAYLOAD_KEY_SEED_SIZE)
            .map(|c| {
                let mut s = [0u8; PAYLOAD_KEY_SEED_SIZE];
                s.copy_from_slice(c);
                s
            })
            .collect();
        Ok(ReplyKey {
            identifier,
            block_seed,
            hop_seeds,
        })
    }
}

impl ReplyBlock {
    /// Decodes a block received from a sender. Checks only its shape; a
    /// forged block at worst yields a packet the first mix drops.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ReplyError> {
        if bytes.len() != REPLY_BLOCK_LEN {
            return Err(ReplyError::Malformed(format!(
                "{} bytes, expected {REPLY_BLOCK_LEN}",
                bytes.len()
            )));
        }
        SURB::from_bytes(bytes).map_err(|e| ReplyError::Malformed(e.to_string()))?;
        Ok(ReplyBlock {
            bytes: bytes.to_vec(),
        })
    }

    /// The block's encoding ([`REPLY_BLOCK_LEN`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// The most reply bytes a block carries at `config`'s payload size.
    pub fn capacity(config: &PacketConfig) -> usize {
        PrivacyLevel::Confidential.payload_capacity(config.payload_size)
    }

    /// Turns the block and `reply` into a packet for the block's first hop.
    /// Consumes the block: it is single-use.
    pub fn use_block(
        self,
        reply: &[u8],
        config: &PacketConfig,
    ) -> Result<OutgoingPacket, ReplyError> {
        let capacity = Self::capacity(config);
        if reply.len() > capacity {
            return Err(ReplyError::TooLong {
                len: reply.len(),
                capacity,
            });
        }
        let surb =
            SURB::from_bytes(&self.bytes).map_err(|e| ReplyError::Malformed(e.to_string()))?;
        let (packet, first_hop) = surb
            .use_surb(reply, config.payload_size)
            .map_err(|e| ReplyError::Malformed(e.to_string()))?;
        Ok(OutgoingPacket {
            first_hop: NodeAddress::from_bytes(first_hop.to_bytes()),
            packet: Packet(packet.to_bytes()),
            delays: Vec::new(),
        })
    }
}

impl PacketBuilder {
    /// Makes a reply block over `route` (1 to [`MAX_REPLY_HOPS`] mixes,
    /// ending at the mix that delivers to the creator) to `destination` (the
    /// creator), drawing the per-hop delays from Exp(mean). The identifier in
    /// `destination` is replaced by a random non-zero one, returned in the
    /// key. Keep the [`ReplyKey`]; send the [`ReplyBlock`].
    pub fn reply_block<R: CryptoRng + ?Sized>(
        &self,
        route: &[RouteNode],
        destination: Destination,
        rng: &mut R,
    ) -> Result<(ReplyBlock, ReplyKey), BuildError> {
        if route.is_empty() || route.len() > MAX_REPLY_HOPS {
            return Err(BuildError::Sphinx(format!(
                "a reply block routes over 1 to {MAX_REPLY_HOPS} mixes, got {}",
                route.len()
            )));
        }
        let sampler = crate::DelaySampler::new(self.config().mean_delay);
        let delays = (0..route.len())
            .map(|i| {
                if i + 1 == route.len() {
                    to_delay(std::time::Duration::ZERO)
                } else {
                    to_delay(sampler.sample(rng))
                }
            })
            .collect();
        let mut identifier = [0u8; IDENTIFIER_LENGTH];
        while identifier == [0u8; IDENTIFIER_LENGTH] {
            rng.fill_bytes(&mut identifier);
        }
        let destination = Destination::new(destination.address(), identifier);
        let material = SURBMaterial::new(
            route.iter().map(|n| n.to_sphinx()).collect(),
            delays,
            destination.to_sphinx(),
            WIRE_VERSION,
        );
        let surb = SURB::new(StaticSecret::random_from_rng(rng), material)
            .map_err(|e| BuildError::Sphinx(e.to_string()))?;
        let full = surb.to_bytes();
        let prefix = HEADER_SIZE + NODE_ADDRESS_LENGTH;
        // The block carries a fresh seed of its own, not a hop's: its user
        // encrypts under a key no mix holds, so even the last hop sees only
        // ciphertext, and the user can follow no hop's processing.
        let mut block_seed = [0u8; PAYLOAD_KEY_SEED_SIZE];
        rng.fill_bytes(&mut block_seed);
        let mut block = full[..prefix].to_vec();
        block.extend_from_slice(&block_seed);
        let hop_seeds = full[prefix..]
            .chunks_exact(PAYLOAD_KEY_SEED_SIZE)
            .map(|c| {
                let mut s = [0u8; PAYLOAD_KEY_SEED_SIZE];
                s.copy_from_slice(c);
                s
            })
            .collect();
        let key = ReplyKey {
            identifier,
            block_seed,
            hop_seeds,
        };
        Ok((ReplyBlock { bytes: block }, key))
    }
}
