//! The mix node: receive, process on every core, hold, forward.
//!
//! ```text
//!  transport ──frames──▶ Inbound ──round robin──▶ worker 1..=N (Sphinx, replay)
//!                                                     │ delay 0        │ delay > 0
//!                                                     ▼                ▼
//!                                          PacketTransport::send ◀── delay thread
//!                                                     │ last hop
//!                                                     ▼
//!                                 a registered client's inbox, or deliveries
//! ```
//!
//! The delay thread sleeps until the earliest deadline (a futex wait with a
//! timeout) or the next packet, so packets leave tens of microseconds after
//! their deadline rather than on a millisecond timer tick.
//!
//! Every stage is bounded. The inbound queues push back on the transport
//! ([`Inbound::deliver`] waits), so a TCP sender is slowed by TCP flow
//! control; everything after the workers drops and counts when full, so a
//! slow next hop or a slow consumer of deliveries never stalls mixing.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use x25519_dalek::StaticSecret;

use crate::delay::{DelayQueue, DelayQueueError};
use crate::packet::{
    DestinationAddress, NodeAddress, Packet, PacketConfig, ProcessError, Processed, Processor,
};
use crate::replay::{ReplayFilter, ReplayStats};

/// Why a transport did not take a packet. The packet is dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The queue towards that hop is full.
    #[error("send queue full")]
    Full,
    /// The transport does not know how to reach that hop.
    #[error("unknown next hop {0:?}")]
    UnknownPeer(NodeAddress),
    /// The transport is shut down.
    #[error("transport closed")]
    Closed,
}

/// How packets leave a mix node: the seam another transport (fog-p2p, an
/// in-memory network in tests) plugs in at. Packets arrive through the
/// node's [`Inbound`] handle.
///
/// `send` must not block: a transport queues the packet (bounded) and
/// answers [`TransportError::Full`] when it cannot; the node drops and
/// counts the packet.
pub trait PacketTransport: Send + Sync + 'static {
    /// Hands `packet` over for delivery to the mix at `next_hop`.
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError>;
}

/// Node parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The network's packet parameters.
    pub packet: PacketConfig,
    /// Processing threads (default: every core).
    pub workers: usize,
    /// Packets waiting per worker before [`Inbound::deliver`] waits
    /// (default 1024).
    pub inbound_queue: usize,
    /// Packets held in the delay stage at once; beyond it new packets are
    /// dropped and counted (default 65,536).
    pub delay_queue: usize,
    /// The longest hold a packet may ask for; longer ones are dropped
    /// (default 60 s).
    pub max_delay: Duration,
    /// Deliveries waiting for the consumer; beyond it they are dropped and
    /// counted (default 4096).
    pub delivery_queue: usize,
    /// Destination address the node's own loop cover returns to: packets
    /// delivered there are counted and discarded.
    pub loop_address: Option<DestinationAddress>,
    /// Clients this node keeps an inbox for at once (its provider role,
    /// [`MixNode::register_client`]; default 4096).
    pub max_clients: usize,
    /// How much the processing threads lower their own scheduling priority
    /// (Linux niceness added to the process's; default 5, at most 19 in
    /// all; 0 leaves them alone; no privilege needed). Sphinx processing
    /// then yields the CPU to the delay stage and to the transport's
    /// threads, so a packet leaves on time even while every core is busy
    /// processing others.
    pub worker_nice: u8,
}

impl NodeConfig {
    /// Defaults for `packet`.
    pub fn new(packet: PacketConfig) -> Self {
        NodeConfig {
            packet,
            workers: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            inbound_queue: 1024,
            delay_queue: 65_536,
            max_delay: Duration::from_mins(1),
            delivery_queue: 4096,
            loop_address: None,
            max_clients: 4096,
            worker_nice: 5,
        }
    }

    /// The configuration with `workers` processing threads (at least one).
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// The configuration with processing threads `nice` steps below the
    /// process's priority (see [`NodeConfig::worker_nice`]).
    pub fn with_worker_nice(mut self, nice: u8) -> Self {
        self.worker_nice = nice;
        self
    }

    /// The configuration with a loop-cover address.
    pub fn with_loop_address(mut self, address: DestinationAddress) -> Self {
        self.loop_address = Some(address);
        self
    }
}

/// A snapshot of a node's counters: what a mix operator watches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Packets handed to the node by its transport.
    pub received: u64,
    /// Packets sent on to a next hop.
    pub forwarded: u64,
    /// Messages handed to the delivery consumer (this node was the last hop).
    pub delivered: u64,
    /// The node's own loop cover that came back.
    pub loop_cover_returned: u64,
    /// Drop cover that ended here (this node was its last hop).
    pub drop_cover_received: u64,
    /// Messages put in a registered client's inbox (this node is the
    /// client's provider; a client's loop cover comes back this way).
    pub inbox_delivered: u64,
    /// Frames or packets that were not well formed (dropped).
    pub dropped_malformed: u64,
    /// Packets whose header did not authenticate under any held key.
    pub dropped_unauthenticated: u64,
    /// Replayed packets (dropped).
    pub replayed: u64,
    /// Packets refused because the replay filter was full.
    pub dropped_replay_full: u64,
    /// Packets dropped because a queue was full (delay stage, transport,
    /// deliveries).
    pub dropped_overload: u64,
    /// Packets asking for a delay over the node's maximum.
    pub dropped_delay_too_long: u64,
    /// Packets the transport could not send (unknown next hop, closed).
    pub dropped_send_failed: u64,
    /// Packets dropped because the replay journal could not be written.
    pub dropped_journal: u64,
    /// Packets waiting in the inbound queues now.
    pub inbound_depth: u64,
    /// Packets held in the delay stage now.
    pub delay_depth: u64,
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    delivered: AtomicU64,
    loop_cover_returned: AtomicU64,
    drop_cover_received: AtomicU64,
    inbox_delivered: AtomicU64,
    dropped_malformed: AtomicU64,
    dropped_unauthenticated: AtomicU64,
    replayed: AtomicU64,
    dropped_replay_full: AtomicU64,
    dropped_overload: AtomicU64,
    dropped_delay_too_long: AtomicU64,
    dropped_send_failed: AtomicU64,
    dropped_journal: AtomicU64,
    inbound_depth: AtomicU64,
    delay_depth: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the last hop hands to its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A forward message, readable.
    Message {
        /// The recipient.
        destination: DestinationAddress,
        /// The identifier the sender attached.
        identifier: [u8; 16],
        /// The message.
        message: Vec<u8>,
    },
    /// A reply (or a payload that did not open), sealed to the recipient's
    /// [`ReplyKey`](crate::ReplyKey).
    Sealed {
        /// The recipient.
        destination: DestinationAddress,
        /// The reply block's identifier.
        identifier: [u8; 16],
        /// The sealed payload.
        sealed: Vec<u8>,
    },
}

struct Epoch {
    number: u64,
    processor: Processor,
    replay: Mutex<ReplayFilter>,
}

struct KeySet {
    current: Arc<Epoch>,
    previous: Option<Arc<Epoch>>,
}

struct Shared {
    config: NodeConfig,
    keys: RwLock<KeySet>,
    counters: Counters,
    transport: Arc<dyn PacketTransport>,
    /// The delay thread's queue: (arrival, delay, next hop, packet), with
    /// arrival measured from `origin`.
    delay_tx: std_mpsc::SyncSender<Held>,
    /// The clock origin of the delay stage.
    origin: Instant,
    delivery_tx: mpsc::Sender<Delivery>,
    /// The inboxes of the clients this node is the provider of.
    inboxes: RwLock<HashMap<DestinationAddress, mpsc::Sender<Delivery>>>,
}

/// A packet on its way to a worker: when the node received it (since
/// [`Shared::origin`]) and its bytes. A packet's delay counts from its
/// arrival, so the time it waits for a worker and is processed is part of
/// its hold, not added to it.
type Received = (Duration, Vec<u8>);

/// A packet on its way to the delay thread: when the node received it
/// (since [`Shared::origin`]), its delay, its next hop and the packet.
type Held = (Duration, Duration, NodeAddress, Packet);

/// A running mix node. Dropping every [`MixNode`] and [`Inbound`] handle
/// stops its workers and delay stage.
#[derive(Clone)]
pub struct MixNode {
    shared: Arc<Shared>,
    inbound: Inbound,
}

impl fmt::Debug for MixNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MixNode")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Why a node could not start or rotate keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Invalid configuration.
    #[error(transparent)]
    Config(#[from] crate::packet::ConfigError),
    /// A rotation to an epoch that is not later, or a filter for another epoch.
    #[error(transparent)]
    Epoch(#[from] crate::keys::EpochError),
    /// No tokio runtime (no longer required: the delay stage is a thread of
    /// its own; kept for compatibility, never returned).
    #[error("a mix node must be started inside a tokio runtime")]
    NoRuntime,
    /// A worker or delay thread could not be spawned.
    #[error("spawning a worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The node keeps as many client inboxes as it is configured for.
    #[error("the node keeps {0} client inboxes already")]
    TooManyClients(usize),
}

/// The handle a transport hands received packets to. Cheap to clone.
#[derive(Clone)]
pub struct Inbound {
    queues: Arc<Vec<mpsc::Sender<Received>>>,
    /// Packets each worker has taken off its queue and not yet handled
    /// (its batch): part of its backlog, though no longer in the queue.
    in_hand: Arc<Vec<AtomicUsize>>,
    next: Arc<AtomicUsize>,
    shared: Arc<Shared>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("workers", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Counts a received packet and offers it to the worker with the
    /// shortest backlog, its queue plus the batch in its hands (ties go to
    /// the next one in rotation), then to the
    /// others in turn. `Ok(true)` once queued, `Ok(false)` when the node is
    /// gone, and the packet back with the queue it started at when every
    /// queue is full. Joining the shortest queue keeps a worker that the OS
    /// set aside for a while from collecting packets meanwhile.
    fn offer(&self, packet: Vec<u8>) -> Result<bool, (usize, Received)> {
        bump(&self.shared.counters.received);
        let n = self.queues.len();
        let next = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let start = (0..n)
            .map(|i| (next + i) % n)
            .min_by_key(|&q| {
                (
                    self.queues[q].max_capacity() - self.queues[q].capacity()
                        + self.in_hand[q].load(Ordering::Relaxed),
                    (q + n - next) % n,
                )
            })
            .unwrap_or(next);
        let mut item = (self.shared.origin.elapsed(), packet);
        for i in 0..n {
            match self.queues[(start + i) % n].try_send(item) {
                Ok(()) => {
                    self.queued();
                    return Ok(true);
                }
                Err(mpsc::error::TrySendError::Full(p)) => item = p,
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(false),
            }
        }
        Err((start, item))
    }

    fn queued(&self) {
        self.shared
            .counters
            .inbound_depth
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Hands one received packet to a worker, waiting while every worker
    /// queue is full (back-pressure). Returns false once the node is gone.
    pub async fn deliver(&self, packet: Vec<u8>) -> bool {
        match self.offer(packet) {
            Ok(queued) => queued,
            Err((start, (_, bytes))) => match self.queues[start].reserve().await {
                Ok(permit) => {
                    // Received when a worker queue has room for it.
                    permit.send((self.shared.origin.elapsed(), bytes));
                    self.queued();
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// Like [`deliver`](Self::deliver) for a caller on a plain thread (not
    /// inside an async task): blocks while every worker queue is full.
    /// Returns false once the node is gone.
    pub fn deliver_blocking(&self, packet: Vec<u8>) -> bool {
        match self.offer(packet) {
            Ok(queued) => queued,
            Err((start, (_, bytes))) => {
                let packet = (self.shared.origin.elapsed(), bytes);
                let ok = self.queues[start].blocking_send(packet).is_ok();
                if ok {
                    self.queued();
                }
                ok
            }
        }
    }

    /// Like [`deliver`](Self::deliver) without waiting: when every worker
    /// queue is full the packet is dropped and counted as overload.
    pub fn try_deliver(&self, packet: Vec<u8>) -> bool {
        if let Ok(queued) = self.offer(packet) {
            return queued;
        }
        bump(&self.shared.counters.dropped_overload);
        false
    }

    /// Counts a frame the transport could not decode (and dropped).
    pub fn count_malformed(&self) {
        bump(&self.shared.counters.received);
        bump(&self.shared.counters.dropped_malformed);
    }

    /// The packet configuration the node expects.
    pub fn packet_config(&self) -> &PacketConfig {
        &self.shared.config.packet
    }
}

impl MixNode {
    /// Starts a node with `secret` as its Sphinx key for `epoch` and `replay`
    /// as that epoch's filter, sending through `transport`. Returns the node
    /// and the receiver of its deliveries (bounded; when nobody reads, new
    /// deliveries are dropped and counted). The workers and the delay stage
    /// are OS threads; no runtime is needed.
    pub fn start(
        config: NodeConfig,
        epoch: u64,
        secret: StaticSecret,
        replay: ReplayFilter,
        transport: Arc<dyn PacketTransport>,
    ) -> Result<(MixNode, mpsc::Receiver<Delivery>), NodeError> {
        if replay.epoch() != epoch {
            return Err(crate::keys::EpochError::FilterEpoch {
                key: epoch,
                filter: replay.epoch(),
            }
            .into());
        }
        let processor = Processor::new(secret, config.packet)?;
        let (delay_tx, delay_rx) = std_mpsc::sync_channel(config.delay_queue.clamp(1, 4096));
        let (delivery_tx, delivery_rx) = mpsc::channel(config.delivery_queue.max(1));
        let shared = Arc::new(Shared {
            keys: RwLock::new(KeySet {
                current: Arc::new(Epoch {
                    number: epoch,
                    processor,
                    replay: Mutex::new(replay),
                }),
                previous: None,
            }),
            counters: Counters::default(),
            transport,
            delay_tx,
            origin: Instant::now(),
            delivery_tx,
            inboxes: RwLock::new(HashMap::new()),
            config,
        });
        let workers = shared.config.workers.max(1);
        let in_hand: Arc<Vec<AtomicUsize>> =
            Arc::new((0..workers).map(|_| AtomicUsize::new(0)).collect());
        let mut queues = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = mpsc::channel(shared.config.inbound_queue.max(1));
            queues.push(tx);
            let worker_shared = Arc::clone(&shared);
            let in_hand = Arc::clone(&in_hand);
            std::thread::Builder::new()
                .name(format!("fog-mix-worker-{i}"))
                .spawn(move || worker(&worker_shared, rx, &in_hand[i]))
                .map_err(NodeError::Spawn)?;
        }
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("fog-mix-delay".into())
            .spawn(move || delay_stage(&weak, &delay_rx))
            .map_err(NodeError::Spawn)?;
        let inbound = Inbound {
            queues: Arc::new(queues),
            in_hand,
            next: Arc::new(AtomicUsize::new(0)),
            shared: Arc::clone(&shared),
        };
        Ok((MixNode { shared, inbound }, delivery_rx))
    }

    /// The handle transports hand received packets to.
    pub fn inbound(&self) -> Inbound {
        self.inbound.clone()
    }

    /// The node's current Sphinx public key.
    pub fn public_key(&self) -> x25519_dalek::PublicKey {
        self.keys().current.processor.public_key()
    }

    /// The current key epoch.
    pub fn epoch(&self) -> u64 {
        self.keys().current.number
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        self.shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `secret` the key of the later `epoch` (with `replay` as its
    /// filter); the old key stays valid until
    /// [`close_overlap`](Self::close_overlap). Returns the filter of the
    /// epoch retired now, if any.
    pub fn rotate(
        &self,
        epoch: u64,
        secret: StaticSecret,
        replay: ReplayFilter,
    ) -> Result<Option<ReplayFilter>, NodeError> {
        let mut keys = self
            .shared
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if epoch <= keys.current.number {
            return Err(crate::keys::EpochError::NotAfter {
                current: keys.current.number,
                new: epoch,
            }
            .into());
        }
        if replay.epoch() != epoch {
            return Err(crate::keys::EpochError::FilterEpoch {
                key: epoch,
                filter: replay.epoch(),
            }
            .into());
        }
        let next = Arc::new(Epoch {
            number: epoch,
            processor: Processor::new(secret, self.shared.config.packet)?,
            replay: Mutex::new(replay),
        });
        let old = std::mem::replace(&mut keys.current, next);
        let retired = keys.previous.replace(old);
        Ok(retired.and_then(|e| Arc::into_inner(e).map(|e| into_filter(e.replay))))
    }

    /// Ends the overlap window; returns the previous epoch's filter.
    pub fn close_overlap(&self) -> Option<ReplayFilter> {
        let mut keys = self
            .shared
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.previous
            .take()
            .and_then(|e| Arc::into_inner(e).map(|e| into_filter(e.replay)))
    }

    /// Snapshots the current epoch's replay filter (see
    /// [`ReplayFilter::save`]).
    pub fn save_replay(&self) -> Result<(), crate::ReplayError> {
        let current = Arc::clone(&self.keys().current);
        let mut filter = current
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        filter.save()
    }

    /// The current epoch's replay filter counters.
    pub fn replay_stats(&self) -> ReplayStats {
        let current = Arc::clone(&self.keys().current);
        let filter = current
            .replay
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        filter.stats()
    }

    /// The node's counters now.
    pub fn stats(&self) -> NodeStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NodeStats {
            received: l(&c.received),
            forwarded: l(&c.forwarded),
            delivered: l(&c.delivered),
            loop_cover_returned: l(&c.loop_cover_returned),
            drop_cover_received: l(&c.drop_cover_received),
            inbox_delivered: l(&c.inbox_delivered),
            dropped_malformed: l(&c.dropped_malformed),
            dropped_unauthenticated: l(&c.dropped_unauthenticated),
            replayed: l(&c.replayed),
            dropped_replay_full: l(&c.dropped_replay_full),
            dropped_overload: l(&c.dropped_overload),
            dropped_delay_too_long: l(&c.dropped_delay_too_long),
            dropped_send_failed: l(&c.dropped_send_failed),
            dropped_journal: l(&c.dropped_journal),
            inbound_depth: l(&c.inbound_depth),
            delay_depth: l(&c.delay_depth),
        }
    }

    /// Makes this node the provider of the client at `address`: from now
    /// on what the node delivers to `address` as a last hop (the client's
    /// own loop cover, messages and replies for it) goes to the returned
    /// inbox, at most `capacity` waiting (beyond it they are dropped and
    /// counted as overload), instead of the node's general deliveries.
    /// Registering an address again replaces its inbox; dropping the
    /// receiver unregisters it at the next delivery.
    pub fn register_client(
        &self,
        address: DestinationAddress,
        capacity: usize,
    ) -> Result<mpsc::Receiver<Delivery>, NodeError> {
        let mut inboxes = self
            .shared
            .inboxes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inboxes.retain(|_, tx| !tx.is_closed());
        let limit = self.shared.config.max_clients;
        if inboxes.len() >= limit && !inboxes.contains_key(&address) {
            return Err(NodeError::TooManyClients(limit));
        }
        let (tx, rx) = mpsc::channel(capacity.max(1));
        inboxes.insert(address, tx);
        Ok(rx)
    }

    /// Sends a packet this node originated (its own loop cover) through the
    /// transport.
    pub fn send_own(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        self.shared.transport.send(next_hop, packet)
    }
}

fn into_filter(m: Mutex<ReplayFilter>) -> ReplayFilter {
    m.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Processes one packet under the current key, then the previous one.
fn process(shared: &Shared, bytes: &[u8]) -> Result<Processed, ProcessError> {
    let (current, previous) = {
        let keys = shared
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (Arc::clone(&keys.current), keys.previous.clone())
    };
    let with = |epoch: &Epoch| {
        epoch.processor.process_with(bytes, |tag| {
            let mut filter = epoch
                .replay
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            filter.check_and_insert(tag)
        })
    };
    match with(&current) {
        Err(ProcessError::Unauthenticated) => match previous {
            Some(previous) => with(&previous),
            None => Err(ProcessError::Unauthenticated),
        },
        other => other,
    }
}

/// Packets a worker takes off its queue at once: the sender waiting on a
/// full queue is woken once per batch rather than once per packet.
const WORKER_BATCH: usize = 32;

fn worker(shared: &Arc<Shared>, mut rx: mpsc::Receiver<Received>, in_hand: &AtomicUsize) {
    lower_priority(shared.config.worker_nice);
    let mut batch = Vec::with_capacity(WORKER_BATCH);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < WORKER_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        in_hand.store(batch.len(), Ordering::Relaxed);
        shared
            .counters
            .inbound_depth
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        for (arrived, bytes) in batch.drain(..) {
            handle(shared, &bytes, arrived);
            in_hand.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Adds `by` to this thread's niceness (Linux; elsewhere nothing). A
/// failure only costs timing precision, so it is logged, not returned.
fn lower_priority(by: u8) {
    #[cfg(target_os = "linux")]
    if by > 0 {
        let tid = rustix::thread::gettid();
        let outcome = rustix::process::getpriority_process(Some(tid)).and_then(|now| {
            rustix::process::setpriority_process(Some(tid), (now + i32::from(by)).min(19))
        });
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "could not lower a worker's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = by;
}

/// Processes one packet that reached a worker at `arrived` (since
/// [`Shared::origin`]): its delay is counted from then.
fn handle(shared: &Shared, bytes: &[u8], arrived: Duration) {
    let c = &shared.counters;
    match process(shared, bytes) {
        Ok(Processed::Forward {
            next_hop,
            delay,
            packet,
        }) => {
            if delay > shared.config.max_delay {
                bump(&c.dropped_delay_too_long);
            } else if delay.is_zero() {
                send(shared, next_hop, packet);
            } else {
                match shared.delay_tx.try_send((arrived, delay, next_hop, packet)) {
                    Ok(()) => {}
                    Err(_) => bump(&c.dropped_overload),
                }
            }
        }
        Ok(Processed::Deliver {
            destination,
            identifier,
            message,
        }) => {
            if Some(destination) == shared.config.loop_address {
                bump(&c.loop_cover_returned);
                return;
            }
            if destination == crate::cover::DROP_ADDRESS {
                bump(&c.drop_cover_received);
                return;
            }
            deliver(
                shared,
                Delivery::Message {
                    destination,
                    identifier,
                    message,
                },
            );
        }
        Ok(Processed::DeliverSealed {
            destination,
            identifier,
            sealed,
        }) => {
            if Some(destination) == shared.config.loop_address {
                bump(&c.loop_cover_returned);
                return;
            }
            deliver(
                shared,
                Delivery::Sealed {
                    destination,
                    identifier,
                    sealed,
                },
            );
        }
        Err(e) => {
            let counter = match e {
                ProcessError::Unauthenticated => &c.dropped_unauthenticated,
                ProcessError::Replayed => &c.replayed,
                ProcessError::ReplayFilterFull => &c.dropped_replay_full,
                ProcessError::ReplayJournal(_) => &c.dropped_journal,
                _ => &c.dropped_malformed,
            };
            tracing::trace!(error = %e, "packet dropped");
            bump(counter);
        }
    }
}

fn send(shared: &Shared, next_hop: NodeAddress, packet: Packet) {
    match shared.transport.send(next_hop, packet) {
        Ok(()) => bump(&shared.counters.forwarded),
        Err(TransportError::Full) => bump(&shared.counters.dropped_overload),
        Err(e) => {
            tracing::debug!(error = %e, "forward failed");
            bump(&shared.counters.dropped_send_failed);
        }
    }
}

fn deliver(shared: &Shared, delivery: Delivery) {
    let destination = match &delivery {
        Delivery::Message { destination, .. } | Delivery::Sealed { destination, .. } => {
            *destination
        }
    };
    let inbox = shared
        .inboxes
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&destination)
        .cloned();
    if let Some(inbox) = inbox {
        match inbox.try_send(delivery) {
            Ok(()) => bump(&shared.counters.inbox_delivered),
            Err(mpsc::error::TrySendError::Full(_)) => bump(&shared.counters.dropped_overload),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                bump(&shared.counters.dropped_send_failed);
                shared
                    .inboxes
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|_, tx| !tx.is_closed());
            }
        }
        return;
    }
    match shared.delivery_tx.try_send(delivery) {
        Ok(()) => bump(&shared.counters.delivered),
        Err(_) => bump(&shared.counters.dropped_overload),
    }
}

/// Below this wait the delay thread spins instead of sleeping: a futex
/// wait this short would overshoot by the kernel's timer slack (50 µs by
/// default on Linux).
const DELAY_SLACK: Duration = Duration::from_micros(20);

/// Holds packets for their delays: a bounded [`DelayQueue`] on a thread of
/// its own that sleeps until the earliest deadline (a futex wait with a
/// timeout, so wake-ups are tens of microseconds late rather than the
/// millisecond of a runtime timer) or until a packet arrives, whichever is
/// first. Every packet that arrived meanwhile is queued and every one that
/// is due is sent in one pass. Ends when the node is dropped.
fn delay_stage(shared: &std::sync::Weak<Shared>, rx: &std_mpsc::Receiver<Held>) {
    let (capacity, max_delay, origin) = match shared.upgrade() {
        Some(s) => (s.config.delay_queue.max(1), s.config.max_delay, s.origin),
        None => return,
    };
    let mut queue: DelayQueue<(NodeAddress, Packet)> = DelayQueue::new(capacity, max_delay);
    let hold =
        |s: &Shared, queue: &mut DelayQueue<_>, (arrived, delay, hop, packet): Held| match queue
            .push(arrived, delay, (hop, packet))
        {
            Ok(()) => {}
            Err(DelayQueueError::Full(_)) => bump(&s.counters.dropped_overload),
            Err(DelayQueueError::TooLong(_)) => bump(&s.counters.dropped_delay_too_long),
        };
    loop {
        let first = match queue.next_deadline() {
            None => rx.recv().map_err(|_| ()),
            Some(deadline) => {
                let wait = deadline.saturating_sub(origin.elapsed());
                if wait <= DELAY_SLACK {
                    // Too close to sleep: spin the last few microseconds so
                    // nothing leaves before its deadline.
                    while origin.elapsed() < deadline {
                        std::hint::spin_loop();
                    }
                    Err(())
                } else {
                    match rx.recv_timeout(wait) {
                        Ok(item) => Ok(item),
                        Err(std_mpsc::RecvTimeoutError::Timeout) => Err(()),
                        Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        };
        let Some(s) = shared.upgrade() else { return };
        match first {
            Ok(item) => hold(&s, &mut queue, item),
            // The channel closed with nothing held: the node is gone.
            Err(()) if queue.is_empty() => return,
            Err(()) => {}
        }
        while let Ok(item) = rx.try_recv() {
            hold(&s, &mut queue, item);
        }
        let now = origin.elapsed();
        while let Some((_, (hop, packet))) = queue.pop_due(now) {
            send(&s, hop, packet);
        }
        s.counters
            .delay_depth
            .store(queue.len() as u64, Ordering::Relaxed);
    }
}
