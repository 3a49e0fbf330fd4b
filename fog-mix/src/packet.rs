//! Building and processing Sphinx packets at the four privacy levels.

use std::fmt;
use std::time::Duration;

use rand::CryptoRng;
use sphinx_packet::constants::{IDENTIFIER_LENGTH, NODE_ADDRESS_LENGTH};
use sphinx_packet::header::HEADER_SIZE;
use sphinx_packet::header::delays::Delay;
use sphinx_packet::payload::PAYLOAD_OVERHEAD_SIZE;
use sphinx_packet::route::{
    Destination as SphinxDestination, DestinationAddressBytes, Node, NodeAddressBytes,
};
use sphinx_packet::version::{PAYLOAD_KEYS_SEEDS_VERSION, Version};
use sphinx_packet::{ProcessedPacketData, SURB, SURBMaterial, SphinxPacket, SphinxPacketBuilder};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::delay::DelaySampler;
use crate::level::PrivacyLevel;
use crate::replay::{ReplayFilter, ReplayVerdict};

/// Bytes of every Sphinx header on the wire (the same for every route length:
/// `sphinx-packet` pads headers to its five-hop maximum).
pub const HEADER_LEN: usize = HEADER_SIZE;

/// The default Sphinx payload size: 2 KiB.
pub const DEFAULT_PAYLOAD_SIZE: usize = 2048;

/// The largest payload size [`PacketConfig`] accepts (64 KiB).
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1024;

/// Sphinx payload overhead: 16 zero bytes checked after decryption and one
/// padding marker.
pub(crate) const PAYLOAD_OVERHEAD: usize = PAYLOAD_OVERHEAD_SIZE;

/// Hops of the inner packet of a [`PrivacyLevel::Secret`] packet.
const SECRET_INNER_HOPS: usize = 2;
/// Hops of the outer packet of a [`PrivacyLevel::Secret`] packet.
const SECRET_OUTER_HOPS: usize = 5;
/// Bytes of the inner reply block: header, first hop address, one 16-byte
/// payload key seed per inner hop.
const SECRET_SURB_LEN: usize = HEADER_SIZE + NODE_ADDRESS_LENGTH + 16 * SECRET_INNER_HOPS;
/// Bytes of the junction envelope ahead of the message: version, delay, SURB.
pub(crate) const SECRET_ENVELOPE_LEN: usize = 1 + 8 + SECRET_SURB_LEN;
/// Version byte of the junction envelope.
const SECRET_ENVELOPE_VERSION: u8 = 1;

/// The Sphinx version of every packet fog-mix builds: 259
/// (`PAYLOAD_KEYS_SEEDS_VERSION`). The version travels in each hop's
/// encrypted routing information, so a mix sees it; `Secret`'s inner packet
/// comes from a reply block, which `sphinx-packet` only builds at 259
/// without recovery material, so forward packets use 259 too and a mix
/// cannot tell an inner `Secret` packet from any other by its version.
pub(crate) const WIRE_VERSION: Version = PAYLOAD_KEYS_SEEDS_VERSION;

/// The reserved destination address that tells the last hop of a `Secret`
/// packet's outer header that it is the junction: its payload is an envelope
/// to re-inject, not a message to deliver. Only that hop ever sees it (the
/// destination is encrypted to the final hop).
pub const JUNCTION_ADDRESS: [u8; 32] = *b"fog-mix secret junction v1\0\0\0\0\0\0";

/// The 32-byte address of a mix node as carried in Sphinx routing
/// information. What it means (a hash of an identity key, an index in a
/// directory) is up to the directory; fog-mix only compares and forwards it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress([u8; NODE_ADDRESS_LENGTH]);

impl NodeAddress {
    /// An address from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; NODE_ADDRESS_LENGTH]) -> Self {
        NodeAddress(bytes)
    }

    /// The address's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; NODE_ADDRESS_LENGTH] {
        &self.0
    }
}

impl fmt::Debug for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeAddress({})", hex_prefix(&self.0))
    }
}

/// The 32-byte address of a final recipient, delivered to the last hop.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationAddress([u8; 32]);

impl DestinationAddress {
    /// An address from its 32 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        DestinationAddress(bytes)
    }

    /// The address's 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DestinationAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationAddress({})", hex_prefix(&self.0))
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(16);
    for b in bytes.iter().take(8) {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Where a packet is delivered: the recipient's address and a 16-byte
/// identifier (free for forward messages; the lookup key of a reply block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    address: DestinationAddress,
    identifier: [u8; IDENTIFIER_LENGTH],
}

impl Destination {
    /// A destination from an address and an identifier.
    pub const fn new(address: DestinationAddress, identifier: [u8; IDENTIFIER_LENGTH]) -> Self {
        Destination {
            address,
            identifier,
        }
    }

    /// The recipient's address.
    pub const fn address(&self) -> DestinationAddress {
        self.address
    }

    /// The identifier delivered with the message.
    pub const fn identifier(&self) -> [u8; IDENTIFIER_LENGTH] {
        self.identifier
    }

    pub(crate) fn to_sphinx(self) -> SphinxDestination {
        SphinxDestination::new(
            DestinationAddressBytes::from_bytes(self.address.0),
            self.identifier,
        )
    }
}

/// One mix on a route: its address and its X25519 Sphinx public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteNode {
    address: NodeAddress,
    key: PublicKey,
}

impl RouteNode {
    /// A route node from its address and Sphinx public key.
    pub const fn new(address: NodeAddress, key: PublicKey) -> Self {
        RouteNode { address, key }
    }

    /// The node's address.
    pub const fn address(&self) -> NodeAddress {
        self.address
    }

    /// The node's Sphinx public key.
    pub const fn key(&self) -> PublicKey {
        self.key
    }

    pub(crate) fn to_sphinx(self) -> Node {
        Node::new(NodeAddressBytes::from_bytes(self.address.0), self.key)
    }
}

/// Packet parameters shared by senders and mixes of one network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PacketConfig {
    /// Sphinx payload bytes of every packet (default [`DEFAULT_PAYLOAD_SIZE`]).
    /// Every node and sender of a network must agree on it.
    pub payload_size: usize,
    /// Mean of the exponential per-hop delay senders draw (default 50 ms).
    pub mean_delay: Duration,
}

impl Default for PacketConfig {
    fn default() -> Self {
        PacketConfig {
            payload_size: DEFAULT_PAYLOAD_SIZE,
            mean_delay: Duration::from_millis(50),
        }
    }
}

impl PacketConfig {
    /// The default configuration with another payload size.
    pub fn with_payload_size(mut self, payload_size: usize) -> Self {
        self.payload_size = payload_size;
        self
    }

    /// The configuration with another mean per-hop delay.
    pub fn with_mean_delay(mut self, mean_delay: Duration) -> Self {
        self.mean_delay = mean_delay;
        self
    }

    /// Bytes of every packet on the wire: header plus payload.
    pub const fn packet_len(&self) -> usize {
        HEADER_LEN + self.payload_size
    }

    /// Checks the configuration: every level must carry at least one byte and
    /// the payload must not exceed [`MAX_PAYLOAD_SIZE`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let min = PAYLOAD_OVERHEAD + SECRET_ENVELOPE_LEN + 1;
        if self.payload_size < min || self.payload_size > MAX_PAYLOAD_SIZE {
            return Err(ConfigError::PayloadSize {
                got: self.payload_size,
                min,
                max: MAX_PAYLOAD_SIZE,
            });
        }
        Ok(())
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The payload size is outside the accepted range.
    #[error("payload size {got} is outside {min}..={max} bytes")]
    PayloadSize {
        /// The configured size.
        got: usize,
        /// The smallest accepted size.
        min: usize,
        /// The largest accepted size.
        max: usize,
    },
}

/// A Sphinx packet of the configured wire size: the bytes a mix receives and
/// forwards. It is the `sphinx-packet` wire format unchanged (header, then
/// payload), whatever its level or kind.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet(pub(crate) Vec<u8>);

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Packet({} bytes)", self.0.len())
    }
}

impl Packet {
    /// Takes packet bytes received from the network. Fails, changing
    /// nothing, unless they are exactly `config.packet_len()` bytes long.
    pub fn from_bytes(bytes: Vec<u8>, config: &PacketConfig) -> Result<Self, ProcessError> {
        if bytes.len() != config.packet_len() {
            return Err(ProcessError::WrongLength {
                expected: config.packet_len(),
                got: bytes.len(),
            });
        }
        Ok(Packet(bytes))
    }

    /// The packet's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The packet's bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a packet is never empty (kept for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A packet ready to send and the mix to send it to.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutgoingPacket {
    /// The first mix of the route.
    pub first_hop: NodeAddress,
    /// The packet.
    pub packet: Packet,
    /// The delays the sender chose, one per hop that holds the packet (every
    /// hop but the last), in route order.
    pub delays: Vec<Duration>,
}

/// Why a packet could not be built. Nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The route does not have as many nodes as the level has hops.
    #[error("a {level} packet needs a route of {expected} nodes, got {got}")]
    RouteLength {
        /// The requested level.
        level: PrivacyLevel,
        /// Nodes the level needs.
        expected: usize,
        /// Nodes given.
        got: usize,
    },
    /// The message does not fit the level's capacity.
    #[error("a {level} packet carries at most {capacity} bytes, the message has {len}")]
    MessageTooLong {
        /// The requested level.
        level: PrivacyLevel,
        /// The message length.
        len: usize,
        /// The level's capacity at the configured payload size.
        capacity: usize,
    },
    /// The number of delays is not the number of holding hops.
    #[error("expected {expected} delays (one per hop but the last), got {got}")]
    DelayCount {
        /// Delays needed.
        expected: usize,
        /// Delays given.
        got: usize,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `sphinx-packet` refused to build the packet.
    #[error("sphinx: {0}")]
    Sphinx(String),
}

/// Why a received packet was dropped. Processing a packet that fails changes
/// no state, except that a packet found to be a replay is never accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// The bytes are not a packet of the configured size.
    #[error("packet has {got} bytes, expected {expected}")]
    WrongLength {
        /// The configured packet length.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The bytes do not parse as a Sphinx packet, or its payload is not
    /// intact.
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// The header MAC does not verify under this node's key: garbage, a
    /// packet for another node, or for a key epoch this node no longer holds.
    #[error("packet header does not authenticate under this node's key")]
    Unauthenticated,
    /// The packet's replay tag was seen before in this key epoch.
    #[error("replayed packet")]
    Replayed,
    /// The replay filter is full; the packet is refused (see
    /// [`ReplayFilter`]).
    #[error("replay filter is full, packet refused")]
    ReplayFilterFull,
    /// The replay tag could not be recorded durably.
    #[error("replay journal: {0}")]
    ReplayJournal(#[source] std::io::Error),
    /// A junction envelope was malformed.
    #[error("malformed junction envelope: {0}")]
    Junction(String),
}

/// What a mix does with a packet it processed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Processed {
    /// Hold the packet for `delay`, then send it to `next_hop`.
    Forward {
        /// The next mix.
        next_hop: NodeAddress,
        /// How long to hold the packet, as the sender chose.
        delay: Duration,
        /// The re-encrypted packet, same size as the one received.
        packet: Packet,
    },
    /// This node is the last hop: hand `message` to `destination`.
    Deliver {
        /// The recipient.
        destination: DestinationAddress,
        /// The identifier the sender attached.
        identifier: [u8; IDENTIFIER_LENGTH],
        /// The message.
        message: Vec<u8>,
    },
    /// This node is the last hop of a reply made from a [`ReplyBlock`]
    /// (or of a packet whose payload did not open): hand the sealed payload
    /// to `destination`, which opens it with its [`ReplyKey`].
    ///
    /// [`ReplyBlock`]: crate::ReplyBlock
    /// [`ReplyKey`]: crate::ReplyKey
    DeliverSealed {
        /// The recipient.
        destination: DestinationAddress,
        /// The reply block's identifier (what the recipient looks its key up by).
        identifier: [u8; IDENTIFIER_LENGTH],
        /// The payload as this hop left it.
        sealed: Vec<u8>,
    },
}

/// Builds packets at every privacy level.
///
/// Levels up to `Confidential` are one `sphinx-packet` packet whose header
/// names every hop. `Secret` (seven hops) exceeds `sphinx-packet`'s five-hop
/// header, so it is built in two parts that are each an ordinary Sphinx
/// packet of the configured size:
///
/// * the sender makes a single-use reply block (`sphinx-packet`'s `SURB`,
///   one payload key seed per hop) for the inner route, hops 6 and 7, ending
///   at the real destination;
/// * it puts an envelope (version, the junction's own delay, that SURB, the
///   message) in the payload of an outer packet over hops 1 to 5, whose
///   destination is [`JUNCTION_ADDRESS`];
/// * hop 5, the *junction*, decrypts the envelope, holds the packet for the
///   delay in the envelope and sends the inner packet (the SURB used on the
///   message, of the configured size) to hop 6.
///
/// On the wire both parts are ordinary Sphinx packets of the same size and
/// header format as every other level, and only hop 5 learns that it is a
/// junction. What the junction learns: the message (as the last hop of any
/// level does; end-to-end encrypt it if that matters) and the inner hops'
/// payload keys, so a corrupt junction that also watches the network can
/// follow the inner two hops. Against such an adversary `Secret` is as strong
/// as its first five hops, i.e. never weaker than `Confidential`; against one
/// that does not hold the junction it is seven hops.
#[derive(Debug, Clone)]
pub struct PacketBuilder {
    config: PacketConfig,
    sampler: DelaySampler,
}

impl PacketBuilder {
    /// A builder for `config`.
    pub fn new(config: PacketConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(PacketBuilder {
            config,
            sampler: DelaySampler::new(config.mean_delay),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PacketConfig {
        &self.config
    }

    /// Builds a packet carrying `message` over `route` (exactly
    /// `level.hops()` nodes) to `destination`, drawing every per-hop delay
    /// from Exp(mean) with `rng`.
    pub fn build<R: CryptoRng + ?Sized>(
        &self,
        level: PrivacyLevel,
        route: &[RouteNode],
        destination: Destination,
        message: &[u8],
        rng: &mut R,
    ) -> Result<OutgoingPacket, BuildError> {
        let delays: Vec<Duration> = (0..level.hops().saturating_sub(1))
            .map(|_| self.sampler.sample(rng))
            .collect();
        self.build_with_delays(level, route, destination, message, &delays, rng)
    }

    /// Whether a message of `len` bytes fits a `level` packet at the
    /// configured payload size ([`BuildError::MessageTooLong`] if not).
    pub fn check_fits(&self, level: PrivacyLevel, len: usize) -> Result<(), BuildError> {
        let capacity = level.payload_capacity(self.config.payload_size);
        if len > capacity {
            return Err(BuildError::MessageTooLong {
                level,
                len,
                capacity,
            });
        }
        Ok(())
    }

    /// Like [`build`](Self::build) with the per-hop delays given: one per hop
    /// but the last (the last hop delivers and carries no delay).
    pub fn build_with_delays<R: CryptoRng + ?Sized>(
        &self,
        level: PrivacyLevel,
        route: &[RouteNode],
        destination: Destination,
        message: &[u8],
        delays: &[Duration],
        rng: &mut R,
    ) -> Result<OutgoingPacket, BuildError> {
        if route.len() != level.hops() {
            return Err(BuildError::RouteLength {
                level,
                expected: level.hops(),
                got: route.len(),
            });
        }
        self.check_fits(level, message.len())?;
        if delays.len() != level.hops() - 1 {
            return Err(BuildError::DelayCount {
                expected: level.hops() - 1,
                got: delays.len(),
            });
        }
        let sphinx_delays: Vec<Delay> = delays.iter().map(|d| to_delay(*d)).collect();
        let packet = if level == PrivacyLevel::Secret {
            let (outer, inner) = route.split_at(SECRET_OUTER_HOPS);
            // Outer hops 1..=4 hold by the header; hop 5 by the envelope;
            // inner hop 6 by the inner header; hop 7 delivers.
            let outer_delays = &sphinx_delays[..SECRET_OUTER_HOPS];
            let inner_delays = &sphinx_delays[SECRET_OUTER_HOPS..];
            let material = SURBMaterial::new(
                inner.iter().map(|n| n.to_sphinx()).collect(),
                // the last hop's delay is never read; sphinx-packet wants one per node
                inner_delays
                    .iter()
                    .copied()
                    .chain(std::iter::once(Delay::new_from_nanos(0)))
                    .collect(),
                destination.to_sphinx(),
                WIRE_VERSION,
            );
            let surb = SURB::new(StaticSecret::random_from_rng(rng), material)
                .map_err(|e| BuildError::Sphinx(e.to_string()))?;
            let surb_bytes = surb.to_bytes();
            debug_assert_eq!(surb_bytes.len(), SECRET_SURB_LEN);
            let mut envelope = Vec::with_capacity(SECRET_ENVELOPE_LEN + message.len());
            envelope.push(SECRET_ENVELOPE_VERSION);
            envelope.extend_from_slice(&outer_delays[SECRET_OUTER_HOPS - 1].to_bytes());
            envelope.extend_from_slice(&surb_bytes);
            envelope.extend_from_slice(message);
            let junction = Destination::new(DestinationAddress(JUNCTION_ADDRESS), [0; 16]);
            self.sphinx(
                outer,
                junction,
                &envelope,
                &outer_delays[..SECRET_OUTER_HOPS - 1],
                rng,
            )?
        } else {
            self.sphinx(route, destination, message, &sphinx_delays, rng)?
        };
        Ok(OutgoingPacket {
            first_hop: route[0].address,
            packet,
            delays: delays.to_vec(),
        })
    }

    /// One plain Sphinx packet over `route`; `delays` has one entry per hop
    /// but the last.
    fn sphinx<R: CryptoRng + ?Sized>(
        &self,
        route: &[RouteNode],
        destination: Destination,
        message: &[u8],
        delays: &[Delay],
        rng: &mut R,
    ) -> Result<Packet, BuildError> {
        let nodes: Vec<Node> = route.iter().map(|n| n.to_sphinx()).collect();
        let delays: Vec<Delay> = delays
            .iter()
            .copied()
            .chain(std::iter::once(Delay::new_from_nanos(0)))
            .collect();
        let secret = StaticSecret::random_from_rng(rng);
        let packet = SphinxPacketBuilder::new()
            .with_version(WIRE_VERSION)
            .with_payload_size(self.config.payload_size)
            .with_initial_secret(&secret)
            .build_packet(message, &nodes, &destination.to_sphinx(), &delays)
            .map_err(|e| BuildError::Sphinx(e.to_string()))?;
        Ok(Packet(packet.to_bytes()))
    }
}

pub(crate) fn to_delay(d: Duration) -> Delay {
    Delay::new_from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A mix's Sphinx processing: one X25519 secret key, the network's packet
/// configuration.
pub struct Processor {
    secret: StaticSecret,
    config: PacketConfig,
}

impl fmt::Debug for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Processor")
            .field("public_key", &PublicKey::from(&self.secret))
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Processor {
    /// A processor with `secret` as this node's Sphinx key.
    pub fn new(secret: StaticSecret, config: PacketConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Processor { secret, config })
    }

    /// This node's Sphinx public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(&self.secret)
    }

    /// The configuration.
    pub fn config(&self) -> &PacketConfig {
        &self.config
    }

    /// Processes one received packet: checks its length and header MAC, then
    /// its replay tag against `replay` (recording it), then peels one layer.
    ///
    /// A packet that fails the length or MAC check leaves `replay`
    /// untouched, so garbage cannot fill the filter.
    pub fn process(
        &self,
        packet: &Packet,
        replay: &mut ReplayFilter,
    ) -> Result<Processed, ProcessError> {
        self.process_with(packet.as_bytes(), |tag| replay.check_and_insert(tag))
    }

    /// Like [`process`](Self::process) on raw bytes, with the replay check
    /// supplied by the caller: `replay` is called once, with the packet's
    /// replay tag, after the header MAC verified and before any other work.
    /// A mix node calls it with a shared filter behind a lock, so the X25519
    /// work of many packets runs in parallel and only the filter update is
    /// serialised.
    ///
    /// Never panics on any bytes: the length is checked first, and the
    /// routing information's version bytes are checked before
    /// `sphinx-packet` parses them (`sphinx-packet` asserts on them in debug
    /// builds).
    pub fn process_with<F>(&self, bytes: &[u8], replay: F) -> Result<Processed, ProcessError>
    where
        F: FnOnce(&[u8; crate::replay::REPLAY_TAG_LEN]) -> std::io::Result<ReplayVerdict>,
    {
        if bytes.len() != self.config.packet_len() {
            return Err(ProcessError::WrongLength {
                expected: self.config.packet_len(),
                got: bytes.len(),
            });
        }
        let sphinx =
            SphinxPacket::from_bytes(bytes).map_err(|e| ProcessError::Malformed(e.to_string()))?;
        let secret = sphinx.header.compute_expanded_shared_secret(&self.secret);
        sphinx
            .header
            .ensure_header_integrity(&secret)
            .map_err(|_| ProcessError::Unauthenticated)?;
        if cfg!(debug_assertions) {
            // sphinx-packet's `Version::from_bytes` has a `debug_assert` on
            // the first version byte, which the sender controls. Release
            // builds compile it out; debug builds pay one more X25519 here.
            self.precheck_routing(bytes)?;
        }
        match replay(secret.replay_tag()).map_err(ProcessError::ReplayJournal)? {
            ReplayVerdict::Fresh => {}
            ReplayVerdict::Replayed => return Err(ProcessError::Replayed),
            ReplayVerdict::Full => return Err(ProcessError::ReplayFilterFull),
        }
        // A last net under the checks above: should any assertion inside
        // sphinx-packet still fire on hostile bytes, the packet is dropped as
        // malformed instead of taking the node down.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sphinx.process_with_expanded_secret(&secret)
        }))
        .map_err(|_| ProcessError::Malformed("sphinx-packet panicked".into()))?
        .map_err(|e| ProcessError::Malformed(e.to_string()))?;
        match processed.data {
            ProcessedPacketData::ForwardHop {
                next_hop_packet,
                next_hop_address,
                delay,
            } => Ok(Processed::Forward {
                next_hop: NodeAddress(next_hop_address.to_bytes()),
                delay: delay.to_duration(),
                packet: Packet(next_hop_packet.to_bytes()),
            }),
            ProcessedPacketData::FinalHop {
                destination,
                identifier,
                payload,
            } => {
                let raw = payload.as_bytes().to_vec();
                match payload.recover_plaintext() {
                    Ok(message) if destination.as_bytes() == JUNCTION_ADDRESS => {
                        self.junction(&message)
                    }
                    Ok(message) => Ok(Processed::Deliver {
                        destination: DestinationAddress(destination.as_bytes()),
                        identifier,
                        message,
                    }),
                    // A reply made from a reply block stays sealed to this
                    // hop: only the block's creator can open it.
                    Err(_) if destination.as_bytes() != JUNCTION_ADDRESS => {
                        Ok(Processed::DeliverSealed {
                            destination: DestinationAddress(destination.as_bytes()),
                            identifier,
                            sealed: raw,
                        })
                    }
                    Err(e) => Err(ProcessError::Malformed(e.to_string())),
                }
            }
        }
    }

    /// Decrypts the first bytes of the routing information (flag and
    /// version) and refuses a version `sphinx-packet` would assert on.
    fn precheck_routing(&self, bytes: &[u8]) -> Result<(), ProcessError> {
        use sphinx_packet::constants::{
            EXPANDED_SHARED_SECRET_HKDF_INFO, EXPANDED_SHARED_SECRET_HKDF_SALT,
            HEADER_INTEGRITY_MAC_SIZE,
        };
        use sphinx_packet::crypto::{
            STREAM_CIPHER_INIT_VECTOR, STREAM_CIPHER_KEY_SIZE, generate_pseudorandom_bytes,
        };
        let mut alpha = [0u8; 32];
        alpha.copy_from_slice(&bytes[..32]);
        let shared = self.secret.diffie_hellman(&PublicKey::from(alpha));
        let hkdf = hkdf::Hkdf::<sha2::Sha256>::new(
            Some(EXPANDED_SHARED_SECRET_HKDF_SALT),
            shared.as_bytes(),
        );
        let mut key = [0u8; STREAM_CIPHER_KEY_SIZE];
        hkdf.expand(EXPANDED_SHARED_SECRET_HKDF_INFO, &mut key)
            .map_err(|_| ProcessError::Malformed("hkdf".into()))?;
        let stream = generate_pseudorandom_bytes(&key, &STREAM_CIPHER_INIT_VECTOR, 4);
        let start = 32 + HEADER_INTEGRITY_MAC_SIZE;
        let version_major = bytes[start + 1] ^ stream[1];
        if version_major != 0 {
            return Err(ProcessError::Malformed(format!(
                "sphinx version prefix byte {version_major}"
            )));
        }
        Ok(())
    }

    /// The junction of a `Secret` packet: turns the envelope into the inner
    /// packet.
    fn junction(&self, envelope: &[u8]) -> Result<Processed, ProcessError> {
        if envelope.len() < SECRET_ENVELOPE_LEN {
            return Err(ProcessError::Junction(format!(
                "{} bytes, expected at least {SECRET_ENVELOPE_LEN}",
                envelope.len()
            )));
        }
        let (head, message) = envelope.split_at(SECRET_ENVELOPE_LEN);
        if head[0] != SECRET_ENVELOPE_VERSION {
            return Err(ProcessError::Junction(format!(
                "unknown version {}",
                head[0]
            )));
        }
        let mut delay = [0u8; 8];
        delay.copy_from_slice(&head[1..9]);
        let surb =
            SURB::from_bytes(&head[9..]).map_err(|e| ProcessError::Junction(e.to_string()))?;
        let (inner, first_hop) = surb
            .use_surb(message, self.config.payload_size)
            .map_err(|e| ProcessError::Junction(e.to_string()))?;
        Ok(Processed::Forward {
            next_hop: NodeAddress(first_hop.to_bytes()),
            delay: Delay::from_bytes(delay).to_duration(),
            packet: Packet(inner.to_bytes()),
        })
    }
}
