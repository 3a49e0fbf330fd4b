//! Node configuration.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;

use crate::transport::TransportFactory;

/// Which Kademlia mode the node runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KadMode {
    /// Client until a direct external address is confirmed (by AutoNAT or
    /// given in [`Config::external`]), then server: the node only answers
    /// DHT queries once others can reach it. An address through a relay
    /// circuit does not count: relays cap each circuit's time and bytes,
    /// which DHT traffic would exhaust, so a node reachable only that way
    /// stays a client.
    #[default]
    Auto,
    /// Always a server (loopback networks, tests, well-known bootstrap nodes).
    Server,
    /// Never a server.
    Client,
}

/// Configuration of a [`crate::Node`].
///
/// Start from [`Config::new`] (internet defaults) or [`Config::local`]
/// (fast timers and a forced DHT server for loopback and in-process
/// networks) and change fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Identity key file (libp2p protobuf encoding of an ed25519 key),
    /// created with mode 0600 when missing; `None`: a fresh key per start.
    pub key_file: Option<PathBuf>,
    /// Addresses to listen on.
    pub listen: Vec<Multiaddr>,
    /// Bootstrap peers, each with a `/p2p/<peer id>` suffix.
    pub bootstrap: Vec<Multiaddr>,
    /// Network name keeping fog networks apart. `None` keeps libp2p's
    /// standard protocol identifiers (`/ipfs/kad/1.0.0`, `/meshsub/...`);
    /// `Some(name)` prefixes Kademlia, GossipSub and direct messages with
    /// `/fog/<name>/`. Names are 1 to 32 of `a-z`, `0-9` and `-`.
    pub network: Option<String>,
    /// Enable TCP.
    pub tcp: bool,
    /// Enable QUIC.
    pub quic: bool,
    /// Enable the in-process memory transport.
    pub memory: bool,
    /// Resolve `/dns*` addresses.
    pub dns: bool,
    /// Further transports (the pluggable-transport seam).
    pub extra_transports: Vec<TransportFactory>,
    /// mDNS discovery on the LAN.
    pub mdns: bool,
    /// Act as a circuit relay v2 server for other peers (bounded by
    /// libp2p's default reservation and circuit limits).
    pub relay_server: bool,
    /// Run AutoNAT (reachability probes). A node with a fixed Kademlia mode
    /// and no relay use for it (an in-process network) can switch it off.
    pub autonat: bool,
    /// AutoNAT accepts private and loopback addresses (tests, LANs).
    pub autonat_local: bool,
    /// Addresses others can reach this node at, announced as confirmed
    /// external addresses (a relay server or bootstrap node on a public
    /// address says so here instead of waiting for AutoNAT).
    pub external: Vec<Multiaddr>,
    /// Kademlia mode.
    pub kad_mode: KadMode,
    /// Kademlia lookup parallelism (alpha).
    pub kad_parallelism: usize,
    /// Records kept in the local DHT store.
    pub kad_max_records: usize,
    /// Interval of the periodic Kademlia bootstrap (routing table refresh);
    /// `None`: only the automatic bootstrap while the table is small.
    pub kad_bootstrap_interval: Option<Duration>,
    /// Interval of the liveness ping on every connection.
    pub ping_interval: Duration,
    /// GossipSub heartbeat interval.
    pub gossip_heartbeat: Duration,
    /// Largest GossipSub message.
    pub gossip_max_message: usize,
    /// GossipSub mesh degree D (each peer forwards a message to its D mesh
    /// peers, so a node receives about D - 1 duplicates without IDONTWANT).
    pub gossip_mesh_n: usize,
    /// GossipSub D_low: below this many mesh peers the mesh is grafted up.
    pub gossip_mesh_n_low: usize,
    /// GossipSub D_high: above this many mesh peers the mesh is pruned.
    pub gossip_mesh_n_high: usize,
    /// GossipSub D_lazy: peers outside the mesh told about messages by
    /// IHAVE gossip each heartbeat (a message they missed is then pulled).
    pub gossip_lazy: usize,
    /// Publish to every known topic peer instead of only the mesh (more
    /// robust against eclipse attacks, more duplicates).
    pub gossip_flood_publish: bool,
    /// Messages larger than this many bytes make the receiver send
    /// IDONTWANT to its other mesh peers (GossipSub v1.2), so they do not
    /// forward a copy it already has.
    pub gossip_idontwant_threshold: usize,
    /// Hard limit on established connections.
    pub max_connections: u32,
    /// Connections per peer.
    pub max_connections_per_peer: u32,
    /// Above this many connected peers the excess, lowest scores first, is
    /// disconnected at each maintenance tick (bootstrap and GossipSub mesh
    /// peers, and connections younger than the longer of `idle_timeout` and
    /// `query_timeout`, which may still serve a lookup, are spared).
    pub target_peers: usize,
    /// Refuse new connections above this share of system memory (0-1);
    /// `None` disables the check.
    pub max_memory_fraction: Option<f64>,
    /// Peers remembered in the peer book.
    pub peer_book_capacity: usize,
    /// A peer whose score falls to this value is banned.
    pub ban_threshold: f64,
    /// Peers the ban list holds; banning one more lifts the oldest ban.
    pub ban_capacity: usize,
    /// SQLite file of the store-and-forward queue and the ban list, both
    /// kept across restarts; `None`: both in memory only.
    pub queue_path: Option<PathBuf>,
    /// Messages the store-and-forward queue holds.
    pub queue_capacity: usize,
    /// How often the node retries queued messages and refreshes scores.
    pub maintenance_interval: Duration,
    /// Events buffered per subscriber; a slower subscriber loses the oldest.
    pub event_capacity: usize,
    /// Commands buffered towards the node task; callers wait when full.
    pub command_capacity: usize,
    /// Timeout of one direct request.
    pub request_timeout: Duration,
    /// Timeout of one DHT query.
    pub query_timeout: Duration,
    /// Close connections idle for this long.
    pub idle_timeout: Duration,
    /// Agent string announced by identify.
    pub agent: String,
}

impl Config {
    /// Internet defaults: TCP and QUIC, DNS, mDNS, relay server, automatic
    /// Kademlia mode, an in-memory queue and a fresh key.
    pub fn new() -> Self {
        Self {
            key_file: None,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            network: None,
            tcp: true,
            quic: true,
            memory: false,
            dns: true,
            extra_transports: Vec::new(),
            mdns: true,
            relay_server: true,
            autonat: true,
            autonat_local: false,
            external: Vec::new(),
            kad_mode: KadMode::Auto,
            kad_parallelism: 3,
            kad_max_records: 4096,
            kad_bootstrap_interval: Some(Duration::from_mins(5)),
            ping_interval: Duration::from_secs(15),
            gossip_heartbeat: Duration::from_secs(1),
            gossip_max_message: 64 * 1024,
            gossip_mesh_n: 6,
            gossip_mesh_n_low: 5,
            gossip_mesh_n_high: 12,
            gossip_lazy: 6,
            gossip_flood_publish: true,
            gossip_idontwant_threshold: 1000,
            max_connections: 256,
            max_connections_per_peer: 4,
            target_peers: 96,
            max_memory_fraction: Some(0.9),
            peer_book_capacity: 4096,
            ban_threshold: -100.0,
            ban_capacity: 65_536,
            queue_path: None,
            queue_capacity: 10_000,
            maintenance_interval: Duration::from_secs(5),
            event_capacity: 1024,
            command_capacity: 256,
            request_timeout: Duration::from_secs(10),
            query_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_mins(1),
            agent: concat!("fog-p2p/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// Loopback and in-process defaults: no DNS, no mDNS, forced DHT
    /// server, AutoNAT on local addresses, short heartbeats and timers.
    pub fn local() -> Self {
        Self {
            dns: false,
            mdns: false,
            autonat_local: true,
            kad_mode: KadMode::Server,
            gossip_heartbeat: Duration::from_millis(200),
            maintenance_interval: Duration::from_millis(300),
            max_memory_fraction: None,
            request_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
            ..Self::new()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("key_file", &self.key_file)
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field("network", &self.network)
            .field("tcp", &self.tcp)
            .field("quic", &self.quic)
            .field("memory", &self.memory)
            .field("extra_transports", &self.extra_transports.len())
            .field("external", &self.external)
            .field("kad_mode", &self.kad_mode)
            .field("queue_path", &self.queue_path)
            .finish_non_exhaustive()
    }
}

/// Whether `name` is a valid network name.
pub(crate) fn valid_network_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
