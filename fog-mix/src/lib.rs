//! Privacy routing for fog after the Loopix design: Sphinx packets at four
//! privacy levels, exponential (Poisson-mixing) per-hop delays chosen by the
//! sender, replay protection and the fixed-size frames mixes exchange.
//!
//! Packets are the `sphinx-packet` 0.8 wire format unchanged: a packet built
//! here is processed by a plain `sphinx-packet` call and the other way round.
//! Every packet of a network has the same size ([`PacketConfig::packet_len`])
//! whatever its [`PrivacyLevel`] or kind.
//!
//! Build a `PRIVATE` packet for a three-mix route and peel it hop by hop:
//!
//! ```
//! use fog_mix::{
//!     Destination, DestinationAddress, NodeAddress, PacketBuilder, PacketConfig, PrivacyLevel,
//!     Processed, Processor, ReplayConfig, ReplayFilter, RouteNode,
//! };
//! use fog_mix::x25519_dalek::StaticSecret;
//!
//! let config = PacketConfig::default();
//! let mut rng = rand::rng();
//! // Three mixes, each with a Sphinx key, an address and a replay filter.
//! let mut mixes: Vec<(NodeAddress, Processor, ReplayFilter)> = (1..=3u8)
//!     .map(|i| {
//!         let secret = StaticSecret::random_from_rng(&mut rng);
//!         let replay = ReplayFilter::in_memory(0, &ReplayConfig::default()).unwrap();
//!         (NodeAddress::from_bytes([i; 32]), Processor::new(secret, config).unwrap(), replay)
//!     })
//!     .collect();
//! let route: Vec<RouteNode> = mixes
//!     .iter()
//!     .map(|(address, mix, _)| RouteNode::new(*address, mix.public_key()))
//!     .collect();
//! let destination = Destination::new(DestinationAddress::from_bytes([9; 32]), [0; 16]);
//!
//! let builder = PacketBuilder::new(config).unwrap();
//! let out = builder
//!     .build(PrivacyLevel::Private, &route, destination, b"hello, fog", &mut rng)
//!     .unwrap();
//! assert_eq!(out.packet.len(), config.packet_len());
//! assert_eq!(out.delays.len(), 2); // every hop but the last holds the packet
//!
//! let (mut next, mut packet) = (out.first_hop, out.packet);
//! for (hop, (address, mix, replay)) in mixes.iter_mut().enumerate() {
//!     assert_eq!(next, *address);
//!     match mix.process(&packet, replay).unwrap() {
//!         Processed::Forward { next_hop, delay, packet: p } => {
//!             assert_eq!(delay, out.delays[hop]); // hold for the sender's delay
//!             assert_eq!(p.len(), config.packet_len()); // same size at every hop
//!             (next, packet) = (next_hop, p);
//!         }
//!         Processed::Deliver { destination: d, message, .. } => {
//!             assert_eq!(hop, 2);
//!             assert_eq!(d, destination.address());
//!             assert_eq!(message, b"hello, fog");
//!         }
//!         _ => unreachable!(),
//!     }
//! }
//! ```
//!
//! The pieces:
//!
//! * [`PrivacyLevel`] and its payload capacities; [`PacketBuilder`] (sender)
//!   and [`Processor`] (mix) for packets, including the seven-hop `SECRET`
//!   design;
//! * [`DelaySampler`] (Exp(mean) delays, drawn by the sender) and
//!   [`DelayQueue`] (the bounded queue a mix holds packets in);
//! * [`ReplayFilter`]: a Bloom filter of replay tags per key epoch,
//!   persisted across restarts; [`EpochKeys`]: the current and previous
//!   Sphinx keys (overlap window), each with its own filter;
//! * [`FrameCodec`]: the fixed-size frames of the node transport;
//! * [`NodeDescriptor`]: what the directory publishes about a mix (sr25519
//!   identity, X25519 Sphinx key, address, layer, stake, operator family),
//!   signed by the node's [`NodeIdentity`];
//! * [`ReplyBlock`] and [`ReplyKey`]: single-use reply blocks;
//! * [`Directory`] and [`CircuitPool`]: circuits by stake × reputation with
//!   operator and subnet diversity;
//! * [`MixClient`] and [`CoverSchedule`]: sending, with Loopix's Poisson
//!   payload, loop and drop streams;
//! * [`Ticket`] and [`run_lottery`]: the VRF relay lottery;
//! * [`MixNode`] behind the [`PacketTransport`] seam, and the TCP transport
//!   ([`TcpTransport`], [`listen`]);
//! * [`simulate`]: sender anonymity by the probability-mass method.
//!
//! The packet, delay, replay, circuit, lottery and cover logic reads no
//! clock (time is an input); only the node, its TCP transport and
//! [`spawn_mix_cover`] run on tokio. The library never prints; it emits
//! `tracing` events only.

mod circuit;
mod client;
mod cover;
mod delay;
mod descriptor;
mod frame;
mod keys;
mod level;
mod lottery;
mod node;
mod packet;
mod replay;
mod reply;
mod sim;
mod tcp;

pub use circuit::{Circuit, CircuitError, CircuitPool, Directory, PoolConfig};
pub use client::{ClientError, LoopStats, MixClient, Sent, spawn_mix_cover};
pub use cover::{CoverRates, CoverSchedule, DROP_ADDRESS, Stream};
pub use delay::{DelayQueue, DelayQueueError, DelaySampler};
pub use descriptor::{
    DescriptorBuilder, DescriptorError, MAX_ADDRESS_LEN, MAX_FAMILY_LEN, NodeDescriptor,
    NodeIdentity,
};
pub use frame::{FRAME_HEADER_LEN, FRAME_VERSION, FrameCodec, FrameError};
pub use keys::{EpochError, EpochKeys};
pub use level::{PrivacyLevel, UnknownPrivacyLevel};
pub use lottery::{
    Assignment, Draw, LayerCheck, LayerRefusal, LotteryError, TICKET_LEN, Ticket, check_layers,
    run_lottery,
};
pub use node::{
    Delivery, Inbound, MixNode, NodeConfig, NodeError, NodeStats, PacketTransport, TransportError,
};
pub use packet::{
    BuildError, ConfigError, DEFAULT_PAYLOAD_SIZE, Destination, DestinationAddress, HEADER_LEN,
    JUNCTION_ADDRESS, MAX_PAYLOAD_SIZE, NodeAddress, OutgoingPacket, Packet, PacketBuilder,
    PacketConfig, ProcessError, Processed, Processor, RouteNode,
};
pub use replay::{
    MAX_FALSE_POSITIVE_RATE, MAX_FILTER_BITS, REPLAY_TAG_LEN, ReplayConfig, ReplayError,
    ReplayFilter, ReplayStats, ReplayVerdict, false_positive_rate,
};
pub use reply::{MAX_REPLY_HOPS, REPLY_BLOCK_LEN, ReplyBlock, ReplyError, ReplyKey};
pub use sim::{SimConfig, SimReport, simulate};
pub use sphinx_packet;
pub use tcp::{TcpConfig, TcpListenerHandle, TcpTransport, listen, probe};

/// A cryptographically secure generator seeded by the operating system
/// (the thread-local generator of `rand`), for callers that have none.
pub fn os_rng() -> impl rand::CryptoRng {
    rand::rng()
}
pub use x25519_dalek;
