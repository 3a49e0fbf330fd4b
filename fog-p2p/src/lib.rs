//! fog-p2p: the internet overlay of fog.
//!
//! A libp2p node (TCP, QUIC, noise, yamux, identify, ping, Kademlia,
//! GossipSub with signed messages and peer scoring, AutoNAT, circuit relay v2
//! client and server, DCUtR, mDNS, connection limits, request-response)
//! behind a small async API: publish/subscribe, DHT records and capability
//! providers, peer lookup, direct request/reply, store-and-forward messages
//! for unreachable peers (SQLite, five priorities, expiry), peer reputation
//! with pruning and bans, and a seam for other transports.
//!
//! ```
//! use fog_p2p::{Config, Node, Priority};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fog_p2p::Error> {
//! // Two nodes on the in-process memory transport.
//! let mut config = Config::local();
//! config.tcp = false;
//! config.quic = false;
//! config.memory = true;
//! config.listen = vec!["/memory/0".parse().unwrap()];
//! let a = Node::start(config.clone()).await?;
//! let mut addr = a.listen_addrs().await?;
//! while addr.is_empty() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     addr = a.listen_addrs().await?;
//! }
//! config.listen.clear();
//! config.bootstrap = vec![addr[0].clone().with_p2p(a.peer_id()).unwrap()];
//! let b = Node::start(config).await?;
//!
//! // b sends a one-way message; a sees it as an event.
//! let mut events = a.events();
//! b.send(a.peer_id(), b"hello".to_vec(), Priority::Normal, Duration::from_secs(60)).await?;
//! loop {
//!     if let Ok(fog_p2p::Event::Direct { envelope, .. }) = events.recv().await {
//!         assert_eq!(envelope.payload, b"hello");
//!         break;
//!     }
//! }
//! b.shutdown().await;
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod codec;
pub mod envelope;
pub mod queue;
pub mod transport;

mod bans;
mod behaviour;
mod config;
mod node;
mod peers;

pub use config::{Config, KadMode};
pub use envelope::{Envelope, Kind, Priority, Reply};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair, multiaddr::Protocol};
pub use node::{
    Event, Lookup, NatStatus, Node, RequestId, SendOutcome, Stats, load_or_create_key, now_ms,
};
pub use peers::PeerInfo;

/// Errors of fog-p2p.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The identity key file could not be read or written.
    #[error("identity key file {path}: {source}")]
    Key {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The identity key file does not hold a key.
    #[error("identity key file {0} does not hold a valid key")]
    BadKey(std::path::PathBuf),
    /// The network name is not 1-32 of `a-z`, `0-9`, `-`.
    #[error("invalid network name {0:?} (1-32 of a-z, 0-9, -)")]
    NetworkName(String),
    /// An invalid configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A transport could not be built.
    #[error("transport: {0}")]
    Transport(String),
    /// The node could not listen on an address.
    #[error("listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A dial was refused at once.
    #[error("dial: {0}")]
    Dial(String),
    /// The node task has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// Too many queries or requests in flight.
    #[error("busy: too many operations in flight")]
    Busy,
    /// No peer is known yet.
    #[error("no known peers")]
    NoPeers,
    /// The record, provider or peer was not found.
    #[error("not found")]
    NotFound,
    /// A DHT operation failed.
    #[error("dht: {0}")]
    Dht(String),
    /// Subscribing or publishing failed.
    #[error("gossip: {0}")]
    Publish(String),
    /// A direct request failed.
    #[error("request failed: {0}")]
    Request(String),
    /// The peer refused the message, with its reason.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The peer is banned.
    #[error("peer {0} is banned")]
    BannedPeer(PeerId),
    /// The reply id is unknown or was already answered.
    #[error("unknown or already answered request")]
    UnknownRequest,
    /// The store-and-forward queue is full of more urgent messages.
    #[error("the store-and-forward queue is full")]
    QueueFull,
    /// The message expired before it could be queued.
    #[error("the message has expired")]
    Expired,
    /// The store-and-forward database failed.
    #[error(transparent)]
    Queue(#[from] queue::QueueError),
    /// The ban list database failed.
    #[error("ban list database: {0}")]
    BanList(#[source] rusqlite::Error),
    /// A payload over the size limit.
    #[error(transparent)]
    TooLarge(#[from] envelope::TooLarge),
}
