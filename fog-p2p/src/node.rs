//! The node: a handle ([`Node`]) and the task that owns the libp2p swarm.
//!
//! The handle talks to the task over a bounded command channel (callers wait
//! when it is full) and each call gets its answer on a oneshot channel.
//! Events go out on a bounded broadcast channel: a subscriber that falls
//! behind loses the oldest events and is told how many it missed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::identity::Keypair;
use libp2p::kad::{self, QueryId, QueryResult, Quorum, Record, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, autonat, identify, mdns, noise, ping, yamux};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bans::BanStore;
use crate::behaviour::{Behaviour, BehaviourEvent, Protocols};
use crate::config::Config;
use crate::envelope::{Envelope, Kind, Priority, Reply};
use crate::peers::{PeerBook, PeerInfo};
use crate::queue::{PushOutcome, Queue};
use crate::{Error, transport};

/// Direct requests awaiting the application's reply, per node.
pub(crate) const MAX_PENDING_INBOUND: usize = 1024;
/// DHT queries and outbound requests in flight, per node.
pub(crate) const MAX_IN_FLIGHT: usize = 4096;
/// Queued messages handed to one peer per delivery round.
const DELIVERY_BATCH: usize = 64;
/// Relay protocol a peer announces when it can relay for us.
const RELAY_HOP: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Whether this node is reachable from outside, as AutoNAT sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatStatus {
    /// Reachable at this address.
    Public(Multiaddr),
    /// Behind a NAT or firewall.
    Private,
    /// Not known yet.
    Unknown,
}

/// An incoming request's handle for [`Node::reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// Something that happened on the node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A listen address became active.
    Listening(Multiaddr),
    /// The first connection to a peer opened.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// The reachability status changed.
    Nat(NatStatus),
    /// Kademlia switched between client (`false`) and server (`true`) mode.
    KadServer(bool),
    /// A GossipSub message on a subscribed topic.
    Gossip {
        /// Topic name.
        topic: String,
        /// The signed author.
        source: Option<PeerId>,
        /// The peer that forwarded it.
        via: PeerId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A one-way direct message (already acknowledged by this node).
    Direct {
        /// The sender.
        from: PeerId,
        /// The message.
        envelope: Envelope,
    },
    /// A direct request: answer it with [`Node::reply`].
    Request {
        /// The sender.
        from: PeerId,
        /// Pass to [`Node::reply`].
        id: RequestId,
        /// The request bytes.
        payload: Vec<u8>,
    },
    /// A queued message reached its peer.
    Delivered {
        /// The receiver.
        peer: PeerId,
        /// The envelope id.
        id: u64,
    },
    /// A queued message was refused by its peer and dropped.
    Undeliverable {
        /// The receiver.
        peer: PeerId,
        /// The envelope id.
        id: u64,
        /// The receiver's reason.
        reason: String,
    },
    /// A peer was banned (its score fell too low, or by request).
    Banned(PeerId),
    /// A DCUtR hole punch ended: a relayed connection to `peer` was
    /// upgraded to a direct one at `addr`, or the attempt failed.
    HolePunch {
        /// The peer at the other end of the relayed connection.
        peer: PeerId,
        /// The direct connection's remote address (when it succeeded).
        addr: Option<Multiaddr>,
        /// Why it failed (when it did).
        error: Option<String>,
    },
}

/// The outcome of [`Node::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendOutcome {
    /// The peer acknowledged it.
    Delivered,
    /// The peer was unreachable; the message waits in the store-and-forward
    /// queue and is announced by [`Event::Delivered`] once it arrives.
    Queued,
}

/// The result of a DHT record lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The record's value.
    pub value: Vec<u8>,
    /// The peer that answered (`None`: the local store).
    pub from: Option<PeerId>,
    /// Requests sent before the record was found. With parallelism 1 this
    /// is the number of hops of the iterative lookup.
    pub requests: u32,
}

/// Running counts behind the churn fields of [`Stats`].
#[derive(Debug, Default)]
struct Churn {
    dialed: u64,
    accepted: u64,
    closed: u64,
    background_queries: u64,
    bootstrapped: bool,
}

/// Counters of the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Peers with an open connection.
    pub connected_peers: usize,
    /// Entries in the Kademlia routing table.
    pub routing_table: usize,
    /// GossipSub messages received, duplicates included.
    pub gossip_received: u64,
    /// GossipSub messages delivered to the application (no duplicates).
    pub gossip_delivered: u64,
    /// Messages in the store-and-forward queue.
    pub queued: usize,
    /// Whether Kademlia is in server mode.
    pub kad_server: bool,
    /// Connections this node opened (dialled), since it started.
    pub connections_dialed: u64,
    /// Connections other nodes opened to it, since it started.
    pub connections_accepted: u64,
    /// Connections closed, since it started (either side, any cause).
    pub connections_closed: u64,
    /// Whether a Kademlia bootstrap (the one a node with bootstrap peers
    /// starts with, or one asked for) has ended, whatever its outcome.
    pub bootstrapped: bool,
    /// Kademlia queries Kademlia started on its own (automatic bootstraps
    /// and bucket refreshes), since the node started: one outbound query
    /// dials up to the replication factor of peers.
    pub kad_background_queries: u64,
}

enum Command {
    ListenAddrs(oneshot::Sender<Vec<Multiaddr>>),
    Dial(Multiaddr, oneshot::Sender<Result<(), Error>>),
    Subscribe(String, oneshot::Sender<Result<(), Error>>),
    Unsubscribe(String, oneshot::Sender<Result<(), Error>>),
    Publish(String, Vec<u8>, oneshot::Sender<Result<(), Error>>),
    PutRecord(Vec<u8>, Vec<u8>, oneshot::Sender<Result<(), Error>>),
    GetRecord(Vec<u8>, oneshot::Sender<Result<Lookup, Error>>),
    Provide(String, oneshot::Sender<Result<(), Error>>),
    FindProviders(String, oneshot::Sender<Result<Vec<PeerId>, Error>>),
    FindPeer(PeerId, oneshot::Sender<Result<Vec<Multiaddr>, Error>>),
    Request(PeerId, Envelope, oneshot::Sender<Result<Reply, Error>>),
    Send(
        PeerId,
        Envelope,
        oneshot::Sender<Result<SendOutcome, Error>>,
    ),
    Reply(
        RequestId,
        Result<Vec<u8>, String>,
        oneshot::Sender<Result<(), Error>>,
    ),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Ban(PeerId, bool, oneshot::Sender<()>),
    Misbehaved(PeerId),
    Stats(oneshot::Sender<Stats>),
    Bootstrap(oneshot::Sender<Result<(), Error>>),
    Shutdown(oneshot::Sender<()>),
}

enum Query {
    Put(oneshot::Sender<Result<(), Error>>),
    Get(oneshot::Sender<Result<Lookup, Error>>),
    Provide(oneshot::Sender<Result<(), Error>>),
    Providers(HashSet<PeerId>, oneshot::Sender<Result<Vec<PeerId>, Error>>),
    FindPeer(PeerId, oneshot::Sender<Result<Vec<Multiaddr>, Error>>),
    Bootstrap(Option<oneshot::Sender<Result<(), Error>>>),
}

enum Outbound {
    Request(oneshot::Sender<Result<Reply, Error>>),
    Send(
        PeerId,
        Envelope,
        oneshot::Sender<Result<SendOutcome, Error>>,
    ),
    Queued(PeerId, i64, u64),
}

/// A running fog-p2p node. Dropping the handle stops the node; prefer
/// [`Node::shutdown`], which waits for it.
#[derive(Debug)]
pub struct Node {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    task: tokio::task::JoinHandle<()>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Loads the identity key at `path`, or creates one (mode 0600).
pub fn load_or_create_key(path: &Path) -> Result<Keypair, Error> {
    let key_err = |source| Error::Key {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            Keypair::from_protobuf_encoding(&bytes).map_err(|_| Error::BadKey(path.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| Error::Config(format!("encode key: {e}")))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(key_err)?;
            }
            let tmp = path.with_extension("tmp");
            {
                use std::io::Write;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create(true).truncate(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp).map_err(key_err)?;
                f.write_all(&bytes).map_err(key_err)?;
                f.sync_all().map_err(key_err)?;
            }
            std::fs::rename(&tmp, path).map_err(key_err)?;
            Ok(key)
        }
        Err(e) => Err(key_err(e)),
    }
}

/// The peer an address leads to: its last `/p2p/` component (a relayed
/// address names the relay first and the target last).
fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter()
        .filter_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .last()
}

fn capability_key(capability: &str) -> RecordKey {
    RecordKey::new(&format!("fog:cap:{capability}"))
}

impl Node {
    /// Starts a node: loads or creates its key, opens its queue, listens,
    /// dials the bootstrap peers and runs until shut down.
    pub async fn start(config: Config) -> Result<Self, Error> {
        let key = match &config.key_file {
            Some(path) => load_or_create_key(path)?,
            None => Keypair::generate_ed25519(),
        };
        Self::start_with_key(config, key).await
    }

    /// Starts a node with the given identity (see [`Node::start`]).
    #[allow(clippy::unused_async)] // Reason: must run inside the runtime (it spawns the node task); async keeps callers honest.
    pub async fn start_with_key(config: Config, key: Keypair) -> Result<Self, Error> {
        let protocols = Protocols::new(config.network.as_deref())?;
        let queue = match &config.queue_path {
            Some(path) => Queue::open(path, config.queue_capacity)?,
            None => Queue::in_memory(config.queue_capacity)?,
        };
        let mut bans = config
            .queue_path
            .as_deref()
            .map(|path| BanStore::open(path, config.ban_capacity))
            .transpose()
            .map_err(Error::BanList)?;
        let mut book = PeerBook::new(
            config.peer_book_capacity,
            config.ban_capacity,
            config.ban_threshold,
        );
        let received = Arc::new(AtomicU64::new(0));
        let peer_id = key.public().to_peer_id();

        let base = transport::build(&key, &config)?;
        let mut swarm = SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_other_transport(|_| base)
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| Error::Transport(e.to_string()))?
            .with_behaviour(|key, relay_client| {
                Behaviour::new(key, relay_client, &config, &protocols, received.clone())
                    .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
            })
            .map_err(|e| Error::Config(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
            .build();

        for addr in &config.listen {
            swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        }
        for addr in &config.external {
            swarm.add_external_address(addr.clone());
        }
        // Bans from earlier runs hold before the first dial.
        if let Some(store) = &mut bans {
            for (peer, since) in store.load().map_err(Error::BanList)? {
                let (_, lifted) = book.ban(peer, since);
                if let Some(lifted) = lifted {
                    // A smaller capacity than last run: keep the newest bans.
                    swarm.behaviour_mut().blocked.unblock_peer(lifted);
                    swarm
                        .behaviour_mut()
                        .gossipsub
                        .remove_blacklisted_peer(&lifted);
                    store.remove(&lifted).map_err(Error::BanList)?;
                }
                swarm.behaviour_mut().blocked.block_peer(peer);
                swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            }
        }
        let mut bootstrap = HashSet::new();
        for addr in &config.bootstrap {
            let Some(peer) = peer_of(addr) else {
                return Err(Error::Config(format!(
                    "bootstrap address {addr} has no /p2p/<peer id>"
                )));
            };
            bootstrap.insert(peer);
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            swarm.behaviour_mut().limits.bypass_peer_id(&peer);
            if let Err(e) = swarm.dial(addr.clone()) {
                tracing::warn!(%addr, error = %e, "cannot dial bootstrap peer");
            }
        }

        // With bootstrap peers, one full Kademlia bootstrap starts at once.
        // While it runs Kademlia starts none of its own; left alone it would
        // start one 500 ms after the first peer joined the table, and again
        // after every insert while the table holds fewer than 20 peers, each
        // a walk over every bucket that dials dozens of peers.
        let mut queries = HashMap::new();
        if !bootstrap.is_empty()
            && let Ok(id) = swarm.behaviour_mut().kad.bootstrap()
        {
            queries.insert(id, Query::Bootstrap(None));
        }
        let (commands, rx) = mpsc::channel(config.command_capacity.max(1));
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let kad_server = match config.kad_mode {
            crate::KadMode::Server => true,
            crate::KadMode::Client => false,
            crate::KadMode::Auto => has_direct_external(&swarm),
        };
        if kad_server {
            swarm.behaviour_mut().kad.set_mode(Some(kad::Mode::Server));
        }
        let task = Task {
            swarm,
            rx,
            events: events.clone(),
            queue,
            bans,
            book,
            bootstrap,
            queries,
            outbound: HashMap::new(),
            inflight_seqs: HashSet::new(),
            inbound: HashMap::new(),
            next_inbound: 0,
            next_envelope: 0,
            received,
            delivered: 0,
            churn: Churn::default(),
            kad_server,
            relay_listening: false,
            connections: HashMap::new(),
            config,
            protocols,
        };
        let task = tokio::spawn(task.run());
        Ok(Self {
            peer_id,
            commands,
            events,
            task,
        })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// A new subscription to the node's events (see the module doc for the
    /// behaviour when a subscriber is slow).
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The addresses the node listens on.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        self.call(Command::ListenAddrs).await
    }

    /// Dials an address (with or without a `/p2p/` suffix).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.call(|tx| Command::Dial(addr, tx)).await?
    }

    /// Starts a Kademlia bootstrap and waits for its end.
    pub async fn bootstrap(&self) -> Result<(), Error> {
        self.call(Command::Bootstrap).await?
    }

    /// Subscribes to a GossipSub topic.
    pub async fn subscribe(&self, topic: &str) -> Result<(), Error> {
        self.call(|tx| Command::Subscribe(topic.to_owned(), tx))
            .await?
    }

    /// Unsubscribes from a GossipSub topic.
    pub async fn unsubscribe(&self, topic: &str) -> Result<(), Error> {
        self.call(|tx| Command::Unsubscribe(topic.to_owned(), tx))
            .await?
    }

    /// Publishes a signed message on a topic.
    pub async fn publish(&self, topic: &str, data: Vec<u8>) -> Result<(), Error> {
        self.call(|tx| Command::Publish(topic.to_owned(), data, tx))
            .await?
    }

    /// Stores a record in the DHT (quorum one).
    pub async fn put_record(&self, key: &[u8], value: Vec<u8>) -> Result<(), Error> {
        self.call(|tx| Command::PutRecord(key.to_vec(), value, tx))
            .await?
    }

    /// Looks a record up in the DHT; `Error::NotFound` when nobody has it.
    pub async fn get_record(&self, key: &[u8]) -> Result<Lookup, Error> {
        self.call(|tx| Command::GetRecord(key.to_vec(), tx)).await?
    }

    /// Announces a capability (such as `exec:wasm`) as a DHT provider record.
    pub async fn provide(&self, capability: &str) -> Result<(), Error> {
        self.call(|tx| Command::Provide(capability.to_owned(), tx))
            .await?
    }

    /// The peers that announced a capability.
    pub async fn find_providers(&self, capability: &str) -> Result<Vec<PeerId>, Error> {
        self.call(|tx| Command::FindProviders(capability.to_owned(), tx))
            .await?
    }

    /// Finds a peer's addresses through the DHT.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, Error> {
        self.call(|tx| Command::FindPeer(peer, tx)).await?
    }

    /// Sends a request and waits for the peer application's reply.
    pub async fn request(
        &self,
        peer: PeerId,
        payload: Vec<u8>,
        priority: Priority,
    ) -> Result<Vec<u8>, Error> {
        let envelope = Envelope {
            id: 0,
            kind: Kind::Request,
            priority,
            expires_at_ms: 0,
            payload,
        };
        envelope.encode()?;
        let reply = self
            .call(|tx| Command::Request(peer, envelope, tx))
            .await??;
        if reply.ok {
            Ok(reply.payload)
        } else {
            Err(Error::Refused(
                String::from_utf8_lossy(&reply.payload).into_owned(),
            ))
        }
    }

    /// Sends a one-way message; when the peer is unreachable it is queued
    /// (persisted) and delivered when the peer is back, until `ttl` passes.
    pub async fn send(
        &self,
        peer: PeerId,
        payload: Vec<u8>,
        priority: Priority,
        ttl: Duration,
    ) -> Result<SendOutcome, Error> {
        let envelope = Envelope {
            id: 0,
            kind: Kind::Message,
            priority,
            expires_at_ms: now_ms().saturating_add(ttl.as_millis() as u64),
            payload,
        };
        envelope.encode()?;
        self.call(|tx| Command::Send(peer, envelope, tx)).await?
    }

    /// Answers a [`Event::Request`]: `Ok` bytes, or `Err` with a reason.
    pub async fn reply(&self, id: RequestId, answer: Result<Vec<u8>, String>) -> Result<(), Error> {
        self.call(|tx| Command::Reply(id, answer, tx)).await?
    }

    /// What the node knows about its peers, best score first.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, Error> {
        self.call(Command::Peers).await
    }

    /// Bans a peer: closes its connections and refuses new ones.
    pub async fn ban(&self, peer: PeerId) -> Result<(), Error> {
        self.call(|tx| Command::Ban(peer, true, tx)).await
    }

    /// Lifts a ban.
    pub async fn unban(&self, peer: PeerId) -> Result<(), Error> {
        self.call(|tx| Command::Ban(peer, false, tx)).await
    }

    /// Reports a peer's misbehaviour seen by another layer (lowers its score).
    pub async fn report_misbehaviour(&self, peer: PeerId) -> Result<(), Error> {
        self.commands
            .send(Command::Misbehaved(peer))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// The node's counters.
    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call(Command::Stats).await
    }

    /// Stops the node gracefully: leaves its topics, closes its
    /// connections and its queue database, and waits for the task.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

struct Task {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    queue: Queue,
    /// The persistent ban list (`None` without a database file).
    bans: Option<BanStore>,
    book: PeerBook,
    bootstrap: HashSet<PeerId>,
    queries: HashMap<QueryId, Query>,
    outbound: HashMap<OutboundRequestId, Outbound>,
    inflight_seqs: HashSet<i64>,
    inbound: HashMap<u64, ResponseChannel<Reply>>,
    next_inbound: u64,
    next_envelope: u64,
    received: Arc<AtomicU64>,
    delivered: u64,
    /// Connection and background-query counters of [`Stats`].
    churn: Churn,
    kad_server: bool,
    relay_listening: bool,
    /// Remote address of every open connection (bounded by the connection
    /// limit), to report where a hole punch landed.
    connections: HashMap<ConnectionId, Multiaddr>,
    config: Config,
    protocols: Protocols,
}

impl Task {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.config.maintenance_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.shutdown().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                _ = tick.tick() => self.maintain(),
            }
        }
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        let topics: Vec<_> = self.swarm.behaviour().gossipsub.topics().cloned().collect();
        for t in topics {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .unsubscribe(&IdentTopic::new(t.into_string()));
        }
        // Give the unsubscriptions a moment to leave, then close everything.
        let flush = tokio::time::sleep(Duration::from_millis(100));
        tokio::pin!(flush);
        loop {
            tokio::select! {
                () = &mut flush => break,
                _ = self.swarm.select_next_some() => {}
            }
        }
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        let listeners: Vec<_> = self.swarm.listeners().cloned().collect();
        tracing::debug!(listeners = listeners.len(), "fog-p2p node stopped");
    }

    fn emit(&self, event: Event) {
        // No subscriber is not an error; a slow one loses the oldest events.
        let _ = self.events.send(event);
    }

    fn full(&self) -> bool {
        self.queries.len() + self.outbound.len() >= MAX_IN_FLIGHT
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::ListenAddrs(tx) => {
                let _ = tx.send(self.swarm.listeners().cloned().collect());
            }
            Command::Dial(addr, tx) => {
                if let Some(peer) = peer_of(&addr) {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                }
                let _ = tx.send(
                    self.swarm
                        .dial(addr)
                        .map_err(|e| Error::Dial(e.to_string())),
                );
            }
            Command::Bootstrap(tx) => match self.swarm.behaviour_mut().kad.bootstrap() {
                Ok(id) => {
                    self.queries.insert(id, Query::Bootstrap(Some(tx)));
                }
                Err(_) => {
                    let _ = tx.send(Err(Error::NoPeers));
                }
            },
            Command::Subscribe(topic, tx) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .subscribe(&IdentTopic::new(topic))
                    .map(|_| ())
                    .map_err(|e| Error::Publish(e.to_string()));
                let _ = tx.send(r);
            }
            Command::Unsubscribe(topic, tx) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(topic));
                let _ = tx.send(Ok(()));
            }
            Command::Publish(topic, data, tx) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| Error::Publish(e.to_string()));
                let _ = tx.send(r);
            }
            Command::PutRecord(key, value, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                let record = Record::new(RecordKey::new(&key), value);
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, Quorum::One)
                {
                    Ok(id) => {
                        self.queries.insert(id, Query::Put(tx));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Error::Dht(e.to_string())));
                    }
                }
            }
            Command::GetRecord(key, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_record(RecordKey::new(&key));
                self.queries.insert(id, Query::Get(tx));
            }
            Command::Provide(cap, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(capability_key(&cap))
                {
                    Ok(id) => {
                        self.queries.insert(id, Query::Provide(tx));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Error::Dht(e.to_string())));
                    }
                }
            }
            Command::FindProviders(cap, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(capability_key(&cap));
                self.queries
                    .insert(id, Query::Providers(HashSet::new(), tx));
            }
            Command::FindPeer(peer, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                // Only the closest peer matters: the query ends as soon as the
                // peer itself (distance zero) answers.
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_n_closest_peers(peer, std::num::NonZeroUsize::MIN);
                self.queries.insert(id, Query::FindPeer(peer, tx));
            }
            Command::Request(peer, mut envelope, tx) => {
                if self.full() {
                    let _ = tx.send(Err(Error::Busy));
                    return;
                }
                if self.book.is_banned(&peer) {
                    let _ = tx.send(Err(Error::BannedPeer(peer)));
                    return;
                }
                envelope.id = self.next_id();
                let id = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_request(&peer, envelope);
                self.outbound.insert(id, Outbound::Request(tx));
            }
            Command::Send(peer, mut envelope, tx) => {
                if self.book.is_banned(&peer) {
                    let _ = tx.send(Err(Error::BannedPeer(peer)));
                    return;
                }
                envelope.id = self.next_id();
                if self.swarm.is_connected(&peer) && !self.full() {
                    let id = self
                        .swarm
                        .behaviour_mut()
                        .direct
                        .send_request(&peer, envelope.clone());
                    self.outbound.insert(id, Outbound::Send(peer, envelope, tx));
                } else {
                    let r = self.enqueue(peer, &envelope);
                    let _ = tx.send(r);
                    self.dial_peer(peer);
                }
            }
            Command::Reply(id, answer, tx) => {
                let Some(channel) = self.inbound.remove(&id.0) else {
                    let _ = tx.send(Err(Error::UnknownRequest));
                    return;
                };
                let reply = match answer {
                    Ok(payload) => Reply {
                        id: id.0,
                        ok: true,
                        payload,
                    },
                    Err(reason) => Reply {
                        id: id.0,
                        ok: false,
                        payload: reason.into_bytes(),
                    },
                };
                if let Err(e) = reply.encode() {
                    let _ = tx.send(Err(e.into()));
                    return;
                }
                let r = self
                    .swarm
                    .behaviour_mut()
                    .direct
                    .send_response(channel, reply)
                    .map_err(|_| Error::Request("the requester is gone".into()));
                let _ = tx.send(r);
            }
            Command::Peers(tx) => {
                self.refresh_scores();
                let _ = tx.send(self.book.snapshot());
            }
            Command::Ban(peer, ban, tx) => {
                if ban {
                    self.ban(peer);
                } else {
                    self.book.unban(&peer);
                    self.lift_ban(peer);
                }
                let _ = tx.send(());
            }
            Command::Misbehaved(peer) => {
                if self.book.misbehaved(peer) {
                    self.ban(peer);
                }
            }
            Command::Stats(tx) => {
                let routing_table = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .kbuckets()
                    .map(|b| b.num_entries())
                    .sum();
                let _ = tx.send(Stats {
                    connected_peers: self.swarm.connected_peers().count(),
                    routing_table,
                    gossip_received: self.received.load(Ordering::Relaxed),
                    gossip_delivered: self.delivered,
                    queued: self.queue.len().unwrap_or(0),
                    kad_server: self.kad_server,
                    bootstrapped: self.churn.bootstrapped,
                    connections_dialed: self.churn.dialed,
                    connections_accepted: self.churn.accepted,
                    connections_closed: self.churn.closed,
                    kad_background_queries: self.churn.background_queries,
                });
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_envelope = self.next_envelope.wrapping_add(1);
        // Unique across restarts without a counter on disk.
        (now_ms() << 16) ^ self.next_envelope
    }

    fn enqueue(&mut self, peer: PeerId, envelope: &Envelope) -> Result<SendOutcome, Error> {
        match self.queue.push(&peer, envelope, now_ms())? {
            PushOutcome::Queued(_) | PushOutcome::QueuedAfterEviction(_) => Ok(SendOutcome::Queued),
            PushOutcome::Refused => Err(Error::QueueFull),
            PushOutcome::Expired => Err(Error::Expired),
        }
    }

    fn dial_peer(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) || self.book.is_banned(&peer) {
            return;
        }
        let addrs = self
            .book
            .get(&peer)
            .map(|e| e.addrs.clone())
            .unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .addresses(addrs)
            .extend_addresses_through_behaviour()
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            tracing::trace!(%peer, error = %e, "dial for queued messages failed");
        }
    }

    fn ban(&mut self, peer: PeerId) {
        let (new, lifted) = self.book.ban(peer, now_ms());
        if let Some(lifted) = lifted {
            self.lift_ban(lifted);
        }
        if new {
            if let Some(store) = &mut self.bans {
                match store.insert(&peer, now_ms()) {
                    Ok(Some(lifted)) => {
                        self.book.unban(&lifted);
                        self.lift_ban(lifted);
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(%peer, error = %e, "ban not persisted"),
                }
            }
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            self.swarm.behaviour_mut().gossipsub.blacklist_peer(&peer);
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
            tracing::info!(%peer, "peer banned");
            self.emit(Event::Banned(peer));
        }
    }

    /// Unblocks a peer whose ban was lifted and forgets the ban on disk.
    fn lift_ban(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().blocked.unblock_peer(peer);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .remove_blacklisted_peer(&peer);
        if let Some(store) = &self.bans
            && let Err(e) = store.remove(&peer)
        {
            tracing::warn!(%peer, error = %e, "ban lift not persisted");
        }
    }

    fn refresh_scores(&mut self) {
        let gossip = &self.swarm.behaviour().gossipsub;
        for (peer, entry) in self.book.iter_mut() {
            if let Some(s) = gossip.peer_score(peer) {
                entry.gossip_score = s;
            }
        }
    }

    /// Periodic work: scores, bans, pruning, queue expiry and delivery.
    fn maintain(&mut self) {
        self.refresh_scores();
        let low: Vec<PeerId> = self
            .book
            .snapshot()
            .into_iter()
            .filter(|p| !p.banned && p.score <= self.config.ban_threshold)
            .map(|p| p.peer_id)
            .collect();
        for p in low {
            self.ban(p);
        }
        // GossipSub keeps every connection it has a stream on alive, so
        // connections opened for DHT lookups would pile up: above the
        // target, the whole excess goes at once, lowest score first, sparing
        // bootstrap peers, gossip mesh peers and connections that may still
        // serve the lookup they were opened for. (Entries are marked
        // disconnected when the close events arrive.)
        let connected = self.book.connected_count();
        if connected > self.config.target_peers {
            let mut keep = self.bootstrap.clone();
            keep.extend(self.swarm.behaviour().gossipsub.all_mesh_peers().copied());
            // A connection opened for a lookup serves it for up to the query
            // timeout (a loaded node's queries take that long), and stays at
            // least the idle timeout: closing it sooner breaks the lookup's
            // streams and its retry opens another connection.
            let grace = self.config.idle_timeout.max(self.config.query_timeout);
            let settled = Instant::now()
                .checked_sub(grace)
                .unwrap_or_else(Instant::now);
            for worst in
                self.book
                    .worst_connected(connected - self.config.target_peers, &keep, settled)
            {
                tracing::debug!(peer = %worst, "pruning the lowest-scored peer");
                let _ = self.swarm.disconnect_peer_id(worst);
            }
        }
        if let Err(e) = self.queue.purge_expired(now_ms()) {
            tracing::warn!(error = %e, "store-and-forward purge failed");
        }
        let waiting = self.queue.peers(256).unwrap_or_default();
        for peer in waiting {
            if self.swarm.is_connected(&peer) {
                self.deliver_queued(peer);
            } else {
                self.dial_peer(peer);
            }
        }
        if !self.relay_listening
            && self
                .swarm
                .behaviour()
                .autonat
                .as_ref()
                .is_some_and(|a| a.nat_status() == autonat::NatStatus::Private)
        {
            self.listen_via_relay();
        }
    }

    /// In [`crate::KadMode::Auto`], serves the DHT exactly while a direct
    /// (not relayed) external address is confirmed.
    fn update_kad_mode(&mut self) {
        if self.config.kad_mode != crate::KadMode::Auto {
            return;
        }
        let server = has_direct_external(&self.swarm);
        if server != self.kad_server {
            self.kad_server = server;
            let mode = if server {
                kad::Mode::Server
            } else {
                kad::Mode::Client
            };
            tracing::info!(?mode, "kademlia mode");
            self.swarm.behaviour_mut().kad.set_mode(Some(mode));
            self.emit(Event::KadServer(server));
        }
    }

    fn listen_via_relay(&mut self) {
        let Some(relay) = self.book.relay_candidates().into_iter().next() else {
            return;
        };
        let Some(addr) = self.book.get(&relay).and_then(|e| e.addrs.last().cloned()) else {
            return;
        };
        let circuit = addr
            .with_p2p(relay)
            .unwrap_or_else(|a| a)
            .with(Protocol::P2pCircuit);
        match self.swarm.listen_on(circuit.clone()) {
            Ok(_) => {
                tracing::info!(%circuit, "listening through a relay");
                self.relay_listening = true;
            }
            Err(e) => tracing::debug!(%circuit, error = %e, "relay listen failed"),
        }
    }

    fn deliver_queued(&mut self, peer: PeerId) {
        let pending = match self.queue.pending_for(&peer, now_ms(), DELIVERY_BATCH) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "store-and-forward read failed");
                return;
            }
        };
        for m in pending {
            if self.full() || !self.inflight_seqs.insert(m.seq) {
                continue;
            }
            let id = m.envelope.id;
            let req = self
                .swarm
                .behaviour_mut()
                .direct
                .send_request(&peer, m.envelope);
            self.outbound.insert(req, Outbound::Queued(peer, m.seq, id));
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.emit(Event::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.connections
                    .insert(connection_id, endpoint.get_remote_address().clone());
                if endpoint.is_dialer() {
                    self.churn.dialed += 1;
                    self.book
                        .add_addr(peer_id, endpoint.get_remote_address().clone());
                } else {
                    self.churn.accepted += 1;
                }
                let e = self.book.entry(peer_id);
                e.connections = num_established.get();
                if num_established.get() == 1 {
                    e.connected_since = Some(Instant::now());
                    self.emit(Event::PeerConnected(peer_id));
                    self.deliver_queued(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.connections.remove(&connection_id);
                self.churn.closed += 1;
                let e = self.book.entry(peer_id);
                e.connections = num_established;
                if num_established == 0 {
                    e.connected_since = None;
                    self.emit(Event::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                tracing::info!(%address, "external address confirmed");
                self.update_kad_mode();
            }
            SwarmEvent::ExternalAddrExpired { address } => {
                tracing::info!(%address, "external address expired");
                self.update_kad_mode();
            }
            SwarmEvent::Behaviour(ev) => self.behaviour_event(ev),
            _ => {}
        }
    }

    fn behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Kad(ev) => self.kad_event(ev),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => {
                self.delivered += 1;
                self.emit(Event::Gossip {
                    topic: message.topic.into_string(),
                    source: message.source,
                    via: propagation_source,
                    data: message.data,
                });
            }
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let kad_capable = info.protocols.contains(&self.protocols.kad);
                let relay_capable = info.protocols.iter().any(|p| p.as_ref() == RELAY_HOP);
                {
                    let e = self.book.entry(peer_id);
                    e.agent = Some(info.agent_version.clone());
                    e.relay_capable = relay_capable;
                }
                for addr in info.listen_addrs {
                    self.book.add_addr(peer_id, addr.clone());
                    if kad_capable {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                self.book.entry(peer).rtt = Some(rtt);
            }
            BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. }) => {
                let status = match new {
                    autonat::NatStatus::Public(a) => NatStatus::Public(a),
                    autonat::NatStatus::Private => NatStatus::Private,
                    autonat::NatStatus::Unknown => NatStatus::Unknown,
                };
                tracing::info!(?status, "reachability changed");
                self.emit(Event::Nat(status));
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    if self.book.is_banned(&peer) {
                        continue;
                    }
                    self.book.add_addr(peer, addr.clone());
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            BehaviourEvent::Dcutr(ev) => {
                let (addr, error) = match ev.result {
                    Ok(connection) => (self.connections.get(&connection).cloned(), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                tracing::info!(peer = %ev.remote_peer_id, ?addr, ?error, "hole punch");
                self.emit(Event::HolePunch {
                    peer: ev.remote_peer_id,
                    addr,
                    error,
                });
            }
            BehaviourEvent::Direct(ev) => self.direct_event(ev),
            _ => {}
        }
    }

    fn direct_event(&mut self, event: request_response::Event<Envelope, Reply>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let refuse = |reason: &str| Reply {
                    id: request.id,
                    ok: false,
                    payload: reason.as_bytes().to_vec(),
                };
                if request.is_expired(now_ms()) {
                    let r = refuse("expired");
                    let _ = self.swarm.behaviour_mut().direct.send_response(channel, r);
                    return;
                }
                match request.kind {
                    Kind::Message => {
                        let ack = Reply {
                            id: request.id,
                            ok: true,
                            payload: Vec::new(),
                        };
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .direct
                            .send_response(channel, ack);
                        self.emit(Event::Direct {
                            from: peer,
                            envelope: request,
                        });
                    }
                    Kind::Request => {
                        if self.inbound.len() >= MAX_PENDING_INBOUND {
                            let r = refuse("busy");
                            let _ = self.swarm.behaviour_mut().direct.send_response(channel, r);
                            return;
                        }
                        self.next_inbound += 1;
                        let id = self.next_inbound;
                        self.inbound.insert(id, channel);
                        self.emit(Event::Request {
                            from: peer,
                            id: RequestId(id),
                            payload: request.payload,
                        });
                    }
                }
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.book.succeeded(peer);
                match self.outbound.remove(&request_id) {
                    Some(Outbound::Request(tx)) => {
                        let _ = tx.send(Ok(response));
                    }
                    Some(Outbound::Send(_, _, tx)) => {
                        let _ = tx.send(if response.ok {
                            Ok(SendOutcome::Delivered)
                        } else {
                            Err(Error::Refused(
                                String::from_utf8_lossy(&response.payload).into_owned(),
                            ))
                        });
                    }
                    Some(Outbound::Queued(peer, seq, id)) => {
                        self.inflight_seqs.remove(&seq);
                        if let Err(e) = self.queue.remove(seq) {
                            tracing::warn!(error = %e, "store-and-forward remove failed");
                        }
                        if response.ok {
                            self.emit(Event::Delivered { peer, id });
                        } else {
                            self.emit(Event::Undeliverable {
                                peer,
                                id,
                                reason: String::from_utf8_lossy(&response.payload).into_owned(),
                            });
                        }
                    }
                    None => {}
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.book.failed(peer) {
                    self.ban(peer);
                }
                match self.outbound.remove(&request_id) {
                    Some(Outbound::Request(tx)) => {
                        let _ = tx.send(Err(Error::Request(error.to_string())));
                    }
                    Some(Outbound::Send(peer, envelope, tx)) => {
                        let r = self.enqueue(peer, &envelope);
                        let _ = tx.send(r);
                    }
                    Some(Outbound::Queued(_, seq, _)) => {
                        self.inflight_seqs.remove(&seq);
                    }
                    None => {}
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                if let request_response::InboundFailure::Io(e) = &error
                    && e.kind() == std::io::ErrorKind::InvalidData
                    && self.book.misbehaved(peer)
                {
                    self.ban(peer);
                }
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::ModeChanged { new_mode } => {
                self.kad_server = new_mode == kad::Mode::Server;
                self.emit(Event::KadServer(self.kad_server));
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => self.query_progress(id, result, &stats, step.last),
            _ => {}
        }
    }

    fn query_progress(
        &mut self,
        id: QueryId,
        result: QueryResult,
        stats: &kad::QueryStats,
        last: bool,
    ) {
        let Some(query) = self.queries.remove(&id) else {
            if last {
                // A query of Kademlia's own (automatic bootstrap, bucket
                // refresh), counted once, when it ends.
                self.churn.background_queries += 1;
            }
            return;
        };
        match (query, result) {
            (Query::Put(tx), QueryResult::PutRecord(r)) => {
                let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Dht(e.to_string())));
            }
            (Query::Get(tx), QueryResult::GetRecord(r)) => match r {
                Ok(kad::GetRecordOk::FoundRecord(found)) => {
                    let _ = tx.send(Ok(Lookup {
                        value: found.record.value,
                        from: found.peer,
                        requests: stats.num_requests(),
                    }));
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
                Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. })
                | Err(kad::GetRecordError::NotFound { .. }) => {
                    let _ = tx.send(Err(Error::NotFound));
                }
                Err(e) => {
                    let _ = tx.send(Err(Error::Dht(e.to_string())));
                }
            },
            (Query::Provide(tx), QueryResult::StartProviding(r)) => {
                let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Dht(e.to_string())));
            }
            (Query::Providers(mut found, tx), QueryResult::GetProviders(r)) => {
                if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r {
                    found.extend(providers);
                }
                if last {
                    let _ = tx.send(Ok(found.into_iter().collect()));
                } else {
                    self.queries.insert(id, Query::Providers(found, tx));
                }
            }
            (Query::FindPeer(target, tx), QueryResult::GetClosestPeers(r)) => {
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let known = self
                    .book
                    .get(&target)
                    .map(|e| e.addrs.clone())
                    .unwrap_or_default();
                let r = peers
                    .into_iter()
                    .find(|p| p.peer_id == target)
                    .map(|p| if p.addrs.is_empty() { known } else { p.addrs })
                    .ok_or(Error::NotFound);
                let _ = tx.send(r);
            }
            (Query::Bootstrap(tx), QueryResult::Bootstrap(r)) => {
                let done = r.as_ref().map_or(true, |ok| ok.num_remaining == 0);
                if done || last {
                    self.churn.bootstrapped = true;
                    if let Some(tx) = tx {
                        let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Dht(e.to_string())));
                    }
                } else {
                    self.queries.insert(id, Query::Bootstrap(tx));
                }
            }
            (query, _) if !last => {
                self.queries.insert(id, query);
            }
            _ => {}
        }
    }
}

/// Whether the swarm has a confirmed external address that is not a relay
/// circuit.
fn has_direct_external(swarm: &Swarm<Behaviour>) -> bool {
    swarm
        .external_addresses()
        .any(|a| !a.iter().any(|p| p == Protocol::P2pCircuit))
}
