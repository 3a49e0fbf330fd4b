//! The mix plane of a fog node: every node runs a fog-mix [`MixNode`] on
//! TCP and is also a client of the mixnet, so jobs and results travel at the
//! job's privacy level (issue #10, item 1). Built on fog-mix's public API
//! only.
//!
//! # Interface (what the node runtime uses)
//!
//! ```text
//! MixPlane::start(MixPlaneConfig) -> (MixPlane, Receiver<MixMessage>)
//! plane.address()            this node's 32-byte mix address
//! plane.descriptor()         its signed descriptor bytes (put them in heartbeats)
//! plane.set_directory(&[..]) every known descriptor (own included or not);
//!                            invalid ones are skipped, counted and logged
//! plane.send(to, level, body, reply_blocks).await
//! plane.reply(handle, body).await
//! plane.stats()              MixPlaneStats
//! plane.shutdown().await
//! ```
//!
//! Messages (and replies) arrive on the receiver as [`MixMessage`]s; a
//! message sent with `reply_blocks > 0` carries a [`ReplyHandle`], a reply
//! carries none.
//!
//! # Semantics
//!
//! * **Routes.** A message at level L crosses `L.hops()` distinct mixes
//!   (PUBLIC 1, PRIVATE 3, CONFIDENTIAL 5, SECRET 7) and **the destination
//!   node is the last of them**: it is the mix that delivers the message to
//!   itself. So at PUBLIC the sender connects straight to the destination,
//!   which sees both ends (no unlinkability against that node, as fog-mix
//!   documents for PUBLIC); from PRIVATE on, the destination only sees the
//!   mix before it. Every fragment takes a route of its own. The hops before
//!   the last avoid the sender while the directory has enough other nodes,
//!   and prefer distinct operator families and /16s (see [`route`]). A
//!   directory with fewer than `L.hops()` nodes makes `send` fail with
//!   "a SECRET route needs 7 distinct mixes, the directory knows 4".
//! * **Sizes.** A body of up to [`MAX_BODY`] (1 MiB) is put in an envelope
//!   (timestamp, reply blocks, body) and cut into fragments of one packet
//!   each (2 KiB Sphinx payloads: 2,010 bytes of envelope per packet up to
//!   CONFIDENTIAL, 1,589 at SECRET). Larger bodies are an error. The
//!   destination reassembles them in a bounded buffer
//!   ([`wire::ReassemblyLimits::default`]: 64 messages, 80 MiB, 2 minutes);
//!   fragments that find it full are dropped, messages that do not complete
//!   in time are dropped, both counted. No bytes received make it panic.
//! * **Replies.** `reply_blocks = n` attaches `n` single-use reply blocks
//!   (SURBs, up to [`MAX_REPLY_BLOCKS`]). Each answers with one packet
//!   (2,010 bytes of envelope), over a route of `min(L.hops(), 5)` distinct
//!   mixes ending at the sender, chosen by the sender; the replier learns
//!   neither the route nor the sender. A reply larger than its blocks carry
//!   ([`ReplyHandle::capacity`]) is an error before anything is sent. The
//!   sender keeps each block's key (at most [`MAX_REPLY_KEYS`], the oldest
//!   evicted and counted; each kept [`REPLY_KEY_LIFETIME`]), in memory and
//!   in `reply-keys.db` (`journal`), so that after a restart it still opens
//!   replies to what it sent before; it also listens on the port of its
//!   last run when it is free, where those replies arrive.
//! * **Latency.** With `latency_stamps` on, every envelope carries the
//!   sender's wall clock and the receiver records arrival minus that stamp
//!   for each message and reply it completes: [`MixPlaneStats`]'s
//!   `latency_p50_ms` and `latency_p99_ms` over the last 1,024. That is only
//!   meaningful when nodes share a clock (a devnet, the tests), and the stamp
//!   tells the receiver the sender's clock (a fingerprint when clocks
//!   differ), so leave it off outside devnets.
//! * **Cover.** With `cover` on, the node sends Loopix loop cover (a PRIVATE
//!   route back to itself, counted when it returns) and drop cover (a
//!   PRIVATE route discarded by its last hop), each a Poisson stream of
//!   [`COVER_RATE`] packets per second. Real messages do not wait for
//!   payload-stream slots: they leave at once, so cover hides whether the
//!   node talks but not how much.
//! * **Bounds.** The mix node's queues are fog-mix's (inbound back-pressure,
//!   delay stage and deliveries drop and count). The TCP queue towards a
//!   first hop holds 4,096 packets; `send` and `reply` wait while it is full,
//!   up to [`SEND_BACKPRESSURE`], then fail naming the packet. The receiver
//!   of [`MixMessage`]s holds [`INCOMING_QUEUE`] messages; when nobody reads,
//!   completed messages are dropped and counted. Reply keys and the
//!   reassembly buffer are bounded as above.
//! * **Keys.** The mix identity is derived from the node's seed
//!   (SHA-256 over a domain-separation label and the seed), so it is stable
//!   across restarts and unrelated to the node's other keys. The Sphinx key
//!   is the identity's key for epoch [`EPOCH`]: key rotation is not done
//!   here, and the replay filter (persisted in `data_dir/replay`) refuses
//!   packets after [`REPLAY_EXPECTED_PACKETS`] in that epoch.

// The node runtime (`fog node run`, `fog devnet`) plugs this module in; until
// it does, the binary does not call it.
#![allow(dead_code)]

mod journal;
pub(crate) mod route;
pub(crate) mod wire;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use fog_mix::x25519_dalek::PublicKey;
use fog_mix::{
    CoverRates, CoverSchedule, DROP_ADDRESS, Delivery, DescriptorBuilder, Destination,
    DestinationAddress, FrameCodec, MAX_FAMILY_LEN, MAX_REPLY_HOPS, MixNode, NodeAddress,
    NodeConfig, NodeDescriptor, NodeIdentity, NodeStats, Packet, PacketBuilder, PacketConfig,
    PacketTransport, PrivacyLevel, ReplayConfig, ReplayFilter, ReplyBlock, ReplyKey, Stream,
    TcpConfig, TcpListenerHandle, TcpTransport, TransportError,
};
use rand::RngExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use self::route::Snapshot;
use self::wire::{Envelope, Fragment, Outcome, Reassembler, ReassemblyLimits};
pub(crate) use self::wire::{MAX_BODY, MAX_REPLY_BLOCKS};

/// The key epoch every plane uses (no rotation yet).
pub(crate) const EPOCH: u64 = 1;
/// Packets the replay filter is sized for (about 7 MiB of filter at a
/// one-in-a-million false positive rate).
pub(crate) const REPLAY_EXPECTED_PACKETS: u64 = 2_000_000;
/// Completed messages waiting for the runtime.
pub(crate) const INCOMING_QUEUE: usize = 256;
/// Reply keys kept for reply blocks sent.
pub(crate) const MAX_REPLY_KEYS: usize = 65_536;
/// How long a reply key is kept.
pub(crate) const REPLY_KEY_LIFETIME: Duration = Duration::from_hours(1);
/// How long `send` and `reply` wait for room towards a first hop.
pub(crate) const SEND_BACKPRESSURE: Duration = Duration::from_secs(5);
/// Packets per second of each cover stream (loop, drop) when cover is on.
pub(crate) const COVER_RATE: f64 = 0.5;
/// Latency samples kept.
const LATENCY_WINDOW: usize = 1024;
/// The span `pps` is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// How often the replay filter is snapshotted.
const SNAPSHOT_EVERY: Duration = Duration::from_mins(1);

/// How a node's mix plane runs.
#[derive(Debug, Clone)]
pub(crate) struct MixPlaneConfig {
    /// `<node data dir>/mix`: the replay filter lives here.
    pub(crate) data_dir: PathBuf,
    /// The node's secret seed; the mix identity is derived from it
    /// (domain-separated).
    pub(crate) identity_seed: [u8; 32],
    /// TCP listen address, e.g. 127.0.0.1:0 (devnet) or 0.0.0.0:P.
    pub(crate) listen: SocketAddr,
    /// The address others dial (default: the bound one, which must then
    /// not be 0.0.0.0 or ::).
    pub(crate) advertise: Option<SocketAddr>,
    /// Operator family for route diversity (the node name by default; at
    /// most 64 bytes are used).
    pub(crate) family: String,
    /// Mean per-hop mixing delay senders draw (devnet: a few ms).
    pub(crate) mean_delay: Duration,
    /// Loop and drop cover streams on or off.
    pub(crate) cover: bool,
    /// Stamp envelopes with the wall clock for latency (devnet and tests
    /// only: see the module docs).
    pub(crate) latency_stamps: bool,
}

/// A message or a reply that arrived.
#[derive(Debug)]
pub(crate) struct MixMessage {
    /// The body, as sent.
    pub(crate) body: Vec<u8>,
    /// How to answer, when the sender attached reply blocks (never on a
    /// reply).
    pub(crate) reply: Option<ReplyHandle>,
}

/// The reply blocks a message carried: answer once with
/// [`MixPlane::reply`].
pub(crate) struct ReplyHandle {
    blocks: Vec<ReplyBlock>,
    per_block: usize,
}

impl std::fmt::Debug for ReplyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyHandle")
            .field("blocks", &self.blocks.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl ReplyHandle {
    /// Reply blocks held.
    pub(crate) fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Splits the blocks after the first `keep` off into a handle of their
    /// own (`None` when there are no more than `keep`), so that one message
    /// can be answered twice: a report and a checkpoint, say.
    pub(crate) fn split_off(&mut self, keep: usize) -> Option<ReplyHandle> {
        (self.blocks.len() > keep).then(|| ReplyHandle {
            blocks: self.blocks.split_off(keep),
            per_block: self.per_block,
        })
    }

    /// How many of this handle's blocks a reply of `body_len` bytes uses.
    pub(crate) fn blocks_for(&self, body_len: usize) -> usize {
        wire::fragments_for(
            wire::ENVELOPE_HEADER_LEN + body_len,
            self.per_block + wire::FRAGMENT_HEADER_LEN,
        )
    }

    /// Puts `fresh` blocks in front of these and keeps at most `cap` in
    /// all, so the oldest go first (they may lead through mixes since
    /// gone). Blocks of another size replace these.
    pub(crate) fn absorb(&mut self, fresh: ReplyHandle, cap: usize) {
        if fresh.per_block == self.per_block {
            let older = std::mem::replace(&mut self.blocks, fresh.blocks);
            self.blocks.extend(older);
        } else {
            *self = fresh;
        }
        self.blocks.truncate(cap);
    }

    /// The handle as bytes, so that an executor restarted mid-task can
    /// still answer: the payload bytes of one block (big-endian `u32`),
    /// then the blocks ([`fog_mix::REPLY_BLOCK_LEN`] bytes each).
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.blocks.len() * fog_mix::REPLY_BLOCK_LEN);
        out.extend_from_slice(&(self.per_block as u32).to_be_bytes());
        for block in &self.blocks {
            out.extend_from_slice(&block.to_bytes());
        }
        out
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote; anything else
    /// (a torn or foreign record) is an error.
    pub(crate) fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let (head, rest) = bytes
            .split_first_chunk::<4>()
            .context("a reply handle needs 4 header bytes")?;
        let per_block = u32::from_be_bytes(*head) as usize;
        if per_block == 0 || per_block > 1 << 16 {
            bail!("a reply block carrying {per_block} bytes is not one of ours");
        }
        if rest.is_empty()
            || !rest.len().is_multiple_of(fog_mix::REPLY_BLOCK_LEN)
            || rest.len() / fog_mix::REPLY_BLOCK_LEN > MAX_REPLY_BLOCKS
        {
            bail!(
                "{} bytes are not a whole number of reply blocks",
                rest.len()
            );
        }
        let blocks = rest
            .chunks(fog_mix::REPLY_BLOCK_LEN)
            .map(|b| ReplyBlock::from_bytes(b).map_err(|e| anyhow::anyhow!("{e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ReplyHandle { blocks, per_block })
    }

    /// The largest reply body these blocks carry, in bytes.
    pub(crate) fn capacity(&self) -> usize {
        (self.blocks.len() * self.per_block)
            .saturating_sub(wire::ENVELOPE_HEADER_LEN)
            .min(MAX_BODY)
    }
}

/// A snapshot of the plane's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct MixPlaneStats {
    /// Packets the mix node received.
    pub(crate) received: u64,
    /// Packets it forwarded.
    pub(crate) forwarded: u64,
    /// Packets it delivered here (this node was their last hop).
    pub(crate) delivered: u64,
    /// Cover packets this node sent.
    pub(crate) cover: u64,
    /// Cover that ended here: own loop cover back, others' drop cover.
    pub(crate) cover_received: u64,
    /// Packets and fragments dropped, every reason (the mix node's, the TCP
    /// transport's and the plane's below).
    pub(crate) dropped: u64,
    /// Packets received per second over about the last 10 s.
    pub(crate) pps: f64,
    /// Median end-to-end latency of the messages and replies completed
    /// here, ms (0 without samples).
    pub(crate) latency_p50_ms: f64,
    /// Their 99th percentile, ms.
    pub(crate) latency_p99_ms: f64,
    /// Latency samples behind the percentiles (at most 1,024).
    pub(crate) latency_samples: u64,
    /// Messages sent (whole messages, not packets).
    pub(crate) messages_sent: u64,
    /// Replies sent.
    pub(crate) replies_sent: u64,
    /// Packets of messages and replies handed to the transport.
    pub(crate) packets_sent: u64,
    /// Messages and replies completed and handed to the runtime.
    pub(crate) messages_received: u64,
    /// Descriptors `set_directory` skipped (do not decode or verify, or an
    /// address that is not a dialable IP:PORT), over every call.
    pub(crate) invalid_descriptors: u64,
    /// Mixes in the directory now.
    pub(crate) directory_size: u64,
    /// Messages dropped because they did not complete in time.
    pub(crate) dropped_incomplete: u64,
    /// Fragments dropped because the reassembly buffer was full.
    pub(crate) dropped_reassembly_full: u64,
    /// Fragments, envelopes or replies that did not decode.
    pub(crate) dropped_malformed: u64,
    /// Fragments received twice.
    pub(crate) dropped_duplicate: u64,
    /// Completed messages dropped because the runtime did not read them.
    pub(crate) dropped_unread: u64,
    /// Replies for which no reply key is held (expired, evicted, forged).
    pub(crate) dropped_unknown_reply: u64,
    /// Deliveries for another destination address.
    pub(crate) dropped_foreign: u64,
    /// Reply keys evicted to make room before their lifetime.
    pub(crate) reply_keys_evicted: u64,
    /// Reply keys kept in memory only: the journal's queue was full.
    pub(crate) reply_keys_unsaved: u64,
    /// The mix node's own counters.
    pub(crate) node: NodeStats,
}

#[derive(Default)]
struct Counters {
    cover: AtomicU64,
    messages_sent: AtomicU64,
    replies_sent: AtomicU64,
    packets_sent: AtomicU64,
    messages_received: AtomicU64,
    invalid_descriptors: AtomicU64,
    dropped_incomplete: AtomicU64,
    dropped_reassembly_full: AtomicU64,
    dropped_malformed: AtomicU64,
    dropped_duplicate: AtomicU64,
    dropped_unread: AtomicU64,
    dropped_unknown_reply: AtomicU64,
    dropped_foreign: AtomicU64,
    reply_keys_evicted: AtomicU64,
    reply_keys_unsaved: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Reply keys by reply-block identifier, oldest first, bounded.
#[derive(Default)]
struct ReplyKeys {
    keys: HashMap<[u8; 16], ReplyKey>,
    order: VecDeque<([u8; 16], Instant)>,
}

impl ReplyKeys {
    /// Keeps `key`, kept since `at`; adds the older keys evicted for room
    /// to `evicted`.
    fn insert(&mut self, key: ReplyKey, at: Instant, evicted: &mut Vec<[u8; 16]>) {
        while self.keys.len() >= MAX_REPLY_KEYS {
            let Some((id, _)) = self.order.pop_front() else {
                break;
            };
            if self.keys.remove(&id).is_some() {
                evicted.push(id);
            }
        }
        let id = key.identifier();
        self.keys.insert(id, key);
        self.order.push_back((id, at));
        if self.order.len() > 2 * MAX_REPLY_KEYS {
            let keys = &self.keys;
            self.order.retain(|(id, _)| keys.contains_key(id));
        }
    }

    fn take(&mut self, id: &[u8; 16]) -> Option<ReplyKey> {
        self.keys.remove(id)
    }

    fn expire(&mut self, now: Instant) {
        while let Some((id, at)) = self.order.front().copied() {
            if now.saturating_duration_since(at) < REPLY_KEY_LIFETIME {
                break;
            }
            self.order.pop_front();
            self.keys.remove(&id);
        }
    }
}

struct Inner {
    me: NodeAddress,
    my_destination: DestinationAddress,
    descriptor: Vec<u8>,
    builder: PacketBuilder,
    node: MixNode,
    transport: Arc<TcpTransport>,
    snapshot: RwLock<Arc<Snapshot>>,
    reply_keys: Mutex<ReplyKeys>,
    journal: journal::KeyJournal,
    counters: Counters,
    latency: Mutex<VecDeque<f64>>,
    rate: Mutex<VecDeque<(Instant, u64)>>,
    latency_stamps: bool,
}

/// A running mix plane. Stop it with [`shutdown`](Self::shutdown) (dropping
/// it stops its tasks too, without the last replay-filter snapshot).
pub(crate) struct MixPlane {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
    listener: Option<TcpListenerHandle>,
}

impl std::fmt::Debug for MixPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixPlane")
            .field("address", &hex::encode(self.address()))
            .finish_non_exhaustive()
    }
}

/// The mix identity seed: SHA-256 over a label and the node's seed.
fn mix_seed(node_seed: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fog-cli mix plane identity v1");
    h.update(node_seed);
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&h.finalize());
    seed
}

/// Where this node's loop cover is delivered: a label hashed with its
/// address, so it never equals the address real messages come to.
fn loop_destination(me: NodeAddress) -> DestinationAddress {
    let mut h = Sha256::new();
    h.update(b"fog-cli mix plane loop cover v1");
    h.update(me.as_bytes());
    let mut a = [0u8; 32];
    a.copy_from_slice(&h.finalize());
    DestinationAddress::from_bytes(a)
}

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl MixPlane {
    /// Starts the mix node, its TCP listener and (with `cover`) its cover
    /// streams. The directory holds only this node until
    /// [`set_directory`](Self::set_directory).
    pub(crate) async fn start(
        config: MixPlaneConfig,
    ) -> anyhow::Result<(MixPlane, mpsc::Receiver<MixMessage>)> {
        let identity = NodeIdentity::from_seed(&mix_seed(&config.identity_seed));
        let me = identity.node_address();
        let packet = PacketConfig::default().with_mean_delay(config.mean_delay);
        let builder = PacketBuilder::new(packet).context("invalid mix packet configuration")?;
        let secret = identity.sphinx_secret(EPOCH);
        let public = PublicKey::from(&secret);
        let replay_dir = config.data_dir.join("replay");
        let replay = tokio::task::spawn_blocking({
            let dir = replay_dir.clone();
            move || ReplayFilter::open(&dir, EPOCH, &ReplayConfig::new(REPLAY_EXPECTED_PACKETS))
        })
        .await
        .context("the replay filter task failed")?
        .with_context(|| format!("cannot open the replay filter in {}", replay_dir.display()))?;
        let (journal, saved_keys) = tokio::task::spawn_blocking({
            let path = config.data_dir.join("reply-keys.db");
            move || {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                journal::KeyJournal::open(&path, MAX_REPLY_KEYS)
            }
        })
        .await
        .context("the reply key journal task failed")??;
        let mut reply_keys = ReplyKeys::default();
        let now = Instant::now();
        for (key, left) in saved_keys {
            let age = REPLY_KEY_LIFETIME.saturating_sub(left);
            reply_keys.insert(key, now.checked_sub(age).unwrap_or(now), &mut Vec::new());
        }
        let transport = Arc::new(TcpTransport::new(
            FrameCodec::new(&packet),
            TcpConfig::default(),
        ));
        // The node's own tasks (WASM and containers) run at the process's
        // priority: mixing below them would let a busy executor hold up the
        // packets (reports, checkpoints) it relays.
        let node_config = NodeConfig::new(packet)
            .with_loop_address(loop_destination(me))
            .with_worker_nice(0);
        let (node, deliveries) = MixNode::start(
            node_config,
            EPOCH,
            secret,
            replay,
            Arc::clone(&transport) as Arc<dyn PacketTransport>,
        )
        .context("cannot start the mix node")?;
        // A node on an ephemeral port takes the same port again after a
        // restart when it is free: the reply blocks others hold for this
        // node (reports, checkpoints) end at that address.
        let port_file = config.data_dir.join("listen-port");
        let last_port = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|p| *p != 0);
        let mut listen = config.listen;
        if let (0, Some(port)) = (listen.port(), last_port) {
            listen.set_port(port);
        }
        let bind = |addr: SocketAddr| {
            fog_mix::listen(
                addr,
                FrameCodec::new(&packet),
                TcpConfig::default(),
                node.inbound(),
            )
        };
        let bound = match bind(listen).await {
            Err(e) if listen != config.listen => {
                tracing::info!(%listen, error = %e, "the mix port of the last run is taken; listening on another");
                bind(config.listen).await
            }
            other => other,
        };
        let listener =
            bound.with_context(|| format!("cannot listen for mix packets on {}", config.listen))?;
        let port = listener.local_addr().port();
        if config.listen.port() == 0 && last_port != Some(port) {
            let port = port.to_string();
            let tmp = port_file.with_extension("tmp");
            if let Err(e) = std::fs::create_dir_all(&config.data_dir)
                .and_then(|()| std::fs::write(&tmp, &port))
                .and_then(|()| std::fs::rename(&tmp, &port_file))
            {
                tracing::warn!(file = %port_file.display(), error = %e, "the mix port is not remembered");
            }
        }
        let advertise = if let Some(a) = config.advertise {
            a
        } else {
            let a = listener.local_addr();
            if a.ip().is_unspecified() {
                bail!("the mix plane listens on {a}; give the address others dial (advertise)");
            }
            a
        };
        let mut family = config.family.clone();
        while family.len() > MAX_FAMILY_LEN {
            family.pop();
        }
        let own = DescriptorBuilder::new(public, EPOCH, advertise.to_string())
            .layer(0)
            .stake(1)
            .family(family)
            .sign(&identity)
            .context("cannot sign the mix descriptor")?;
        let descriptor = own.to_bytes();
        transport.set_peer(me, advertise);
        let inner = Arc::new(Inner {
            me,
            my_destination: DestinationAddress::from_bytes(*me.as_bytes()),
            snapshot: RwLock::new(Arc::new(Snapshot::new(vec![own], vec![descriptor.clone()]))),
            descriptor,
            builder,
            node,
            transport,
            reply_keys: Mutex::new(reply_keys),
            journal,
            counters: Counters::default(),
            latency: Mutex::new(VecDeque::with_capacity(LATENCY_WINDOW)),
            rate: Mutex::new(VecDeque::new()),
            latency_stamps: config.latency_stamps,
        });
        let (tx, rx) = mpsc::channel(INCOMING_QUEUE);
        let mut tasks = vec![tokio::spawn(receive(Arc::clone(&inner), deliveries, tx))];
        if config.cover {
            tasks.push(tokio::spawn(cover(Arc::clone(&inner))));
        }
        tracing::info!(
            address = %hex::encode(me.as_bytes()),
            listen = %listener.local_addr(),
            %advertise,
            "mix plane started"
        );
        Ok((
            MixPlane {
                inner,
                tasks,
                listener: Some(listener),
            },
            rx,
        ))
    }

    /// This node's address in the mixnet.
    pub(crate) fn address(&self) -> [u8; 32] {
        *self.inner.me.as_bytes()
    }

    /// Its signed descriptor, for heartbeats.
    pub(crate) fn descriptor(&self) -> Vec<u8> {
        self.inner.descriptor.clone()
    }

    /// Whether the directory now holds the mix at `address` (a route can
    /// end there).
    pub(crate) fn knows(&self, address: [u8; 32]) -> bool {
        self.inner
            .snapshot()
            .directory
            .get(NodeAddress::from_bytes(address))
            .is_some()
    }

    /// The address the listener is bound to.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().map(TcpListenerHandle::local_addr)
    }

    /// Replaces the directory with `descriptors` (this node's own is always
    /// added). Descriptors that do not decode or verify, or whose address
    /// is not a dialable IP:PORT, are skipped, counted and logged. An
    /// unchanged set is a no-op.
    pub(crate) fn set_directory(&self, descriptors: &[Vec<u8>]) {
        self.inner.set_directory(descriptors);
    }

    /// Sends `body` to the node with mix address `to` at `level`, with
    /// `reply_blocks` reply blocks (see the module docs).
    pub(crate) async fn send(
        &self,
        to: [u8; 32],
        level: PrivacyLevel,
        body: Vec<u8>,
        reply_blocks: usize,
    ) -> anyhow::Result<()> {
        if body.len() > MAX_BODY {
            bail!(
                "a mix message carries at most {MAX_BODY} bytes (1 MiB), this one has {}",
                body.len()
            );
        }
        if reply_blocks > MAX_REPLY_BLOCKS {
            bail!(
                "a mix message carries at most {MAX_REPLY_BLOCKS} reply blocks, {reply_blocks} asked"
            );
        }
        let inner = Arc::clone(&self.inner);
        let to = NodeAddress::from_bytes(to);
        let packets = tokio::task::spawn_blocking(move || {
            inner.build_message(to, level, &body, reply_blocks)
        })
        .await
        .context("the packet builder task failed")??;
        self.inner.push(packets).await?;
        bump(&self.inner.counters.messages_sent);
        Ok(())
    }

    /// Answers a message through its reply blocks. Errors, sending nothing,
    /// when `body` is larger than [`ReplyHandle::capacity`].
    pub(crate) async fn reply(&self, handle: ReplyHandle, body: Vec<u8>) -> anyhow::Result<()> {
        let capacity = handle.capacity();
        if body.len() > capacity {
            let needed = wire::fragments_for(
                wire::ENVELOPE_HEADER_LEN + body.len(),
                handle.per_block + wire::FRAGMENT_HEADER_LEN,
            );
            bail!(
                "a reply of {} bytes needs {needed} reply blocks; the message carried {} ({capacity} bytes)",
                body.len(),
                handle.blocks.len()
            );
        }
        let inner = Arc::clone(&self.inner);
        let packets = tokio::task::spawn_blocking(move || inner.build_reply(handle, &body))
            .await
            .context("the packet builder task failed")??;
        self.inner.push(packets).await?;
        bump(&self.inner.counters.replies_sent);
        Ok(())
    }

    /// The counters now.
    pub(crate) fn stats(&self) -> MixPlaneStats {
        self.inner.stats()
    }

    /// Stops the cover streams, the listener and the delivery task, then
    /// snapshots the replay filter. The receiver of messages ends.
    pub(crate) async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        if let Some(l) = self.listener.take() {
            l.shutdown().await;
        }
        let inner = Arc::clone(&self.inner);
        let synced =
            tokio::task::spawn_blocking(move || inner.journal.sync(Duration::from_secs(5))).await;
        if !matches!(synced, Ok(true)) {
            tracing::warn!("the reply key journal did not confirm its last writes");
        }
        let node = self.inner.node.clone();
        match tokio::task::spawn_blocking(move || node.save_replay()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "mix replay filter not saved"),
            Err(e) => tracing::warn!(error = %e, "mix replay filter task failed"),
        }
    }
}

impl Drop for MixPlane {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Inner {
    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn set_directory(&self, descriptors: &[Vec<u8>]) {
        let mut source: Vec<Vec<u8>> = descriptors.to_vec();
        source.push(self.descriptor.clone());
        source.sort_unstable();
        source.dedup();
        if self.snapshot().source == source {
            return;
        }
        let mut valid = Vec::with_capacity(source.len());
        let mut invalid = 0u64;
        for bytes in &source {
            match NodeDescriptor::from_bytes(bytes) {
                Ok(d) => match d.address().parse::<SocketAddr>() {
                    Ok(addr) if !addr.ip().is_unspecified() && addr.port() != 0 => {
                        self.transport.set_peer(d.node_address(), addr);
                        valid.push(d);
                    }
                    _ => {
                        invalid += 1;
                        tracing::debug!(
                            address = d.address(),
                            "mix descriptor address not dialable"
                        );
                    }
                },
                Err(e) => {
                    invalid += 1;
                    tracing::debug!(error = %e, "invalid mix descriptor");
                }
            }
        }
        if invalid > 0 {
            self.counters
                .invalid_descriptors
                .fetch_add(invalid, Ordering::Relaxed);
            tracing::warn!(invalid, "mix descriptors skipped");
        }
        let snapshot = Arc::new(Snapshot::new(valid, source));
        tracing::debug!(mixes = snapshot.members.len(), "mix directory updated");
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
    }

    fn stamp(&self) -> Option<u64> {
        self.latency_stamps.then(|| wall_clock_us().max(1))
    }

    /// Builds every packet of one message (and its reply blocks). Runs on a
    /// blocking thread: at SECRET a packet costs seven key exchanges.
    fn build_message(
        &self,
        to: NodeAddress,
        level: PrivacyLevel,
        body: &[u8],
        reply_blocks: usize,
    ) -> anyhow::Result<Vec<(NodeAddress, Packet)>> {
        let snap = self.snapshot();
        let mut rng = rand::rng();
        // Fail on the route before making any reply block.
        route::select(&snap.members, level, level.hops(), to, self.me, &mut rng)?;
        let reply_hops = level.hops().min(MAX_REPLY_HOPS);
        let mut blocks = Vec::with_capacity(reply_blocks);
        let mut keys = Vec::with_capacity(reply_blocks);
        for _ in 0..reply_blocks {
            let r = route::select(&snap.members, level, reply_hops, self.me, to, &mut rng)?;
            let nodes = snap
                .directory
                .route_nodes(&r)
                .context("a reply route names an unknown mix")?;
            let (block, key) = self.builder.reply_block(
                &nodes,
                Destination::new(self.my_destination, [0; 16]),
                &mut rng,
            )?;
            blocks.push(block);
            keys.push(key);
        }
        let envelope = Envelope::encode(self.stamp(), &blocks, body);
        let mut id = [0u8; 16];
        rng.fill(&mut id[..]);
        let capacity = level.payload_capacity(self.builder.config().payload_size);
        let fragments = wire::fragment(id, &envelope, capacity)?;
        let destination = Destination::new(DestinationAddress::from_bytes(*to.as_bytes()), [0; 16]);
        let mut packets = Vec::with_capacity(fragments.len());
        for f in &fragments {
            let r = route::select(&snap.members, level, level.hops(), to, self.me, &mut rng)?;
            let nodes = snap
                .directory
                .route_nodes(&r)
                .context("a route names an unknown mix")?;
            let out = self
                .builder
                .build(level, &nodes, destination, f, &mut rng)?;
            packets.push((out.first_hop, out.packet));
        }
        // Keys only for a message that was built.
        if !keys.is_empty() && !self.journal.put(&keys, REPLY_KEY_LIFETIME) {
            self.counters
                .reply_keys_unsaved
                .fetch_add(keys.len() as u64, Ordering::Relaxed);
        }
        let now = Instant::now();
        let mut evicted = Vec::new();
        {
            let mut store = self
                .reply_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for key in keys {
                store.insert(key, now, &mut evicted);
            }
        }
        self.counters
            .reply_keys_evicted
            .fetch_add(evicted.len() as u64, Ordering::Relaxed);
        self.journal.delete(evicted);
        Ok(packets)
    }

    /// Builds the packets of a reply (the caller checked its size).
    fn build_reply(
        &self,
        handle: ReplyHandle,
        body: &[u8],
    ) -> anyhow::Result<Vec<(NodeAddress, Packet)>> {
        let envelope = Envelope::encode(self.stamp(), &[], body);
        let mut id = [0u8; 16];
        rand::rng().fill(&mut id[..]);
        let fragments =
            wire::fragment(id, &envelope, handle.per_block + wire::FRAGMENT_HEADER_LEN)?;
        if fragments.len() > handle.blocks.len() {
            bail!(
                "a reply of {} bytes needs {} reply blocks, the message carried {}",
                body.len(),
                fragments.len(),
                handle.blocks.len()
            );
        }
        let config = *self.builder.config();
        fragments
            .iter()
            .zip(handle.blocks)
            .map(|(f, block)| -> anyhow::Result<(NodeAddress, Packet)> {
                let out = block.use_block(f, &config)?;
                Ok((out.first_hop, out.packet))
            })
            .collect()
    }

    /// Hands packets to the transport in order, waiting while the queue
    /// towards a first hop is full (at most [`SEND_BACKPRESSURE`] per
    /// packet).
    async fn push(&self, packets: Vec<(NodeAddress, Packet)>) -> anyhow::Result<()> {
        let n = packets.len();
        for (i, (hop, packet)) in packets.into_iter().enumerate() {
            let deadline = Instant::now() + SEND_BACKPRESSURE;
            loop {
                match self.transport.send(hop, packet.clone()) {
                    Ok(()) => {
                        bump(&self.counters.packets_sent);
                        break;
                    }
                    Err(TransportError::Full) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err(e) => bail!(
                        "packet {} of {n} not handed to its first hop {}: {e}",
                        i + 1,
                        hex::encode(&hop.as_bytes()[..8])
                    ),
                }
            }
        }
        Ok(())
    }

    /// One cover packet of `stream`.
    fn send_cover<R: rand::CryptoRng + ?Sized>(
        &self,
        stream: Stream,
        rng: &mut R,
    ) -> anyhow::Result<()> {
        let snap = self.snapshot();
        let level = PrivacyLevel::Private;
        let (r, destination) = match stream {
            Stream::Loop | Stream::MixLoop => (
                route::select(&snap.members, level, level.hops(), self.me, self.me, rng)?,
                Destination::new(loop_destination(self.me), [0; 16]),
            ),
            _ => {
                let others: Vec<NodeAddress> = snap
                    .members
                    .iter()
                    .map(|m| m.address)
                    .filter(|a| *a != self.me)
                    .collect();
                if others.is_empty() {
                    bail!("no other mix for drop cover");
                }
                let last = others[rng.random_range(0..others.len())];
                (
                    route::select(&snap.members, level, level.hops(), last, self.me, rng)?,
                    Destination::new(DROP_ADDRESS, [0; 16]),
                )
            }
        };
        let nodes = snap
            .directory
            .route_nodes(&r)
            .context("a cover route names an unknown mix")?;
        let mut m = [0u8; 32];
        rng.fill(&mut m);
        let out = self.builder.build(level, &nodes, destination, &m, rng)?;
        // Cover never waits: a full queue drops it.
        self.transport.send(out.first_hop, out.packet)?;
        bump(&self.counters.cover);
        Ok(())
    }

    /// Handles one delivery of the mix node.
    fn on_delivery(
        &self,
        delivery: Delivery,
        reassembler: &mut Reassembler,
        out: &mpsc::Sender<MixMessage>,
    ) {
        let c = &self.counters;
        let bytes = match delivery {
            Delivery::Message {
                destination,
                message,
                ..
            } if destination == self.my_destination => message,
            Delivery::Sealed {
                destination,
                identifier,
                sealed,
            } if destination == self.my_destination => {
                let key = self
                    .reply_keys
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(&identifier);
                let Some(key) = key else {
                    bump(&c.dropped_unknown_reply);
                    return;
                };
                self.journal.delete(vec![identifier]);
                if let Ok(m) = key.open(&sealed) {
                    m
                } else {
                    bump(&c.dropped_malformed);
                    return;
                }
            }
            _ => {
                bump(&c.dropped_foreign);
                return;
            }
        };
        let fragment = match Fragment::decode(&bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::trace!(error = %e, "fragment dropped");
                bump(&c.dropped_malformed);
                return;
            }
        };
        match reassembler.insert(fragment, Instant::now()) {
            Outcome::Pending => {}
            Outcome::Complete(envelope) => self.complete(&envelope, out),
            Outcome::Duplicate => bump(&c.dropped_duplicate),
            Outcome::Full => bump(&c.dropped_reassembly_full),
            Outcome::Inconsistent => bump(&c.dropped_malformed),
        }
    }

    fn complete(&self, envelope: &[u8], out: &mpsc::Sender<MixMessage>) {
        let c = &self.counters;
        let envelope = match Envelope::decode(envelope) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "mix message dropped");
                bump(&c.dropped_malformed);
                return;
            }
        };
        if let Some(sent) = envelope.sent_at_us {
            let ms = wall_clock_us().saturating_sub(sent) as f64 / 1000.0;
            let mut window = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
            if window.len() >= LATENCY_WINDOW {
                window.pop_front();
            }
            window.push_back(ms);
        }
        let per_block =
            ReplyBlock::capacity(self.builder.config()).saturating_sub(wire::FRAGMENT_HEADER_LEN);
        let reply = (!envelope.reply_blocks.is_empty()).then_some(ReplyHandle {
            blocks: envelope.reply_blocks,
            per_block,
        });
        // Counted before the hand-over, so that whoever reads the message
        // also sees it counted.
        bump(&c.messages_received);
        if out
            .try_send(MixMessage {
                body: envelope.body,
                reply,
            })
            .is_err()
        {
            c.messages_received.fetch_sub(1, Ordering::Relaxed);
            bump(&c.dropped_unread);
        }
    }

    /// Once a second: expiry, the rate sample, now and then the replay
    /// snapshot.
    fn tick(&self, reassembler: &mut Reassembler, now: Instant) {
        let expired = reassembler.expire(now);
        if expired > 0 {
            self.counters
                .dropped_incomplete
                .fetch_add(expired as u64, Ordering::Relaxed);
        }
        self.reply_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expire(now);
        let received = self.node.stats().received;
        let mut rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
        rate.push_back((now, received));
        while rate
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            rate.pop_front();
        }
    }

    fn stats(&self) -> MixPlaneStats {
        let c = &self.counters;
        let node = self.node.stats();
        let pps = {
            let rate = self.rate.lock().unwrap_or_else(PoisonError::into_inner);
            match (rate.front(), rate.back()) {
                (Some((t0, r0)), Some((t1, r1))) if t1 > t0 => {
                    r1.saturating_sub(*r0) as f64 / t1.duration_since(*t0).as_secs_f64()
                }
                _ => 0.0,
            }
        };
        let mut latencies: Vec<f64> = self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        latencies.sort_by(f64::total_cmp);
        let plane_dropped = load(&c.dropped_incomplete)
            + load(&c.dropped_reassembly_full)
            + load(&c.dropped_malformed)
            + load(&c.dropped_duplicate)
            + load(&c.dropped_unread)
            + load(&c.dropped_unknown_reply)
            + load(&c.dropped_foreign);
        let node_dropped = node.dropped_malformed
            + node.dropped_unauthenticated
            + node.replayed
            + node.dropped_replay_full
            + node.dropped_overload
            + node.dropped_delay_too_long
            + node.dropped_send_failed
            + node.dropped_journal;
        MixPlaneStats {
            received: node.received,
            forwarded: node.forwarded,
            delivered: node.delivered,
            cover: load(&c.cover),
            cover_received: node.loop_cover_returned + node.drop_cover_received,
            dropped: plane_dropped + node_dropped + self.transport.send_failures(),
            pps,
            latency_p50_ms: percentile(&latencies, 0.5),
            latency_p99_ms: percentile(&latencies, 0.99),
            latency_samples: latencies.len() as u64,
            messages_sent: load(&c.messages_sent),
            replies_sent: load(&c.replies_sent),
            packets_sent: load(&c.packets_sent),
            messages_received: load(&c.messages_received),
            invalid_descriptors: load(&c.invalid_descriptors),
            directory_size: self.snapshot().members.len() as u64,
            dropped_incomplete: load(&c.dropped_incomplete),
            dropped_reassembly_full: load(&c.dropped_reassembly_full),
            dropped_malformed: load(&c.dropped_malformed),
            dropped_duplicate: load(&c.dropped_duplicate),
            dropped_unread: load(&c.dropped_unread),
            dropped_unknown_reply: load(&c.dropped_unknown_reply),
            dropped_foreign: load(&c.dropped_foreign),
            reply_keys_evicted: load(&c.reply_keys_evicted),
            reply_keys_unsaved: load(&c.reply_keys_unsaved),
            node,
        }
    }
}

/// The delivery task: reassembles what the mix node delivers here and
/// hands complete messages to the runtime; ticks expiry once a second.
async fn receive(
    inner: Arc<Inner>,
    mut deliveries: mpsc::Receiver<Delivery>,
    out: mpsc::Sender<MixMessage>,
) {
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_snapshot = Instant::now();
    loop {
        tokio::select! {
            d = deliveries.recv() => {
                let Some(d) = d else { return };
                inner.on_delivery(d, &mut reassembler, &out);
            }
            _ = tick.tick() => {
                let now = Instant::now();
                inner.tick(&mut reassembler, now);
                if now.duration_since(last_snapshot) >= SNAPSHOT_EVERY {
                    last_snapshot = now;
                    let node = inner.node.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = node.save_replay() {
                            tracing::warn!(error = %e, "mix replay snapshot failed");
                        }
                    });
                }
            }
        }
    }
}

/// The cover task: loop and drop cover, each a Poisson stream.
async fn cover(inner: Arc<Inner>) {
    let origin = tokio::time::Instant::now();
    let mut rng: rand::rngs::StdRng = rand::make_rng();
    let rates = CoverRates::new(0.0, COVER_RATE, COVER_RATE);
    let mut schedule = CoverSchedule::client(rates, Duration::ZERO, &mut rng);
    loop {
        let due = schedule.next_due();
        if due == Duration::MAX {
            return;
        }
        tokio::time::sleep_until(origin + due).await;
        while let Some((_, stream)) = schedule.poll(origin.elapsed(), &mut rng) {
            if let Err(e) = inner.send_cover(stream, &mut rng) {
                tracing::debug!(error = %e, "cover packet not sent");
            }
        }
    }
}

#[cfg(test)]
mod tests;
