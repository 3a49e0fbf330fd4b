//! The sending side: circuits, packets, reply blocks and cover streams
//! put together.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rand::{CryptoRng, RngExt};
use sha2::{Digest, Sha256};

use crate::circuit::{Circuit, CircuitError, CircuitPool, Directory};
use crate::cover::{CoverSchedule, DROP_ADDRESS, Stream};
use crate::level::PrivacyLevel;
use crate::node::{Delivery, MixNode, PacketTransport, TransportError};
use crate::packet::{BuildError, Destination, DestinationAddress, NodeAddress, PacketBuilder};
use crate::reply::{MAX_REPLY_HOPS, ReplyBlock, ReplyError, ReplyKey};

/// Why a client could not send.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No circuit for the level.
    #[error(transparent)]
    Circuit(#[from] CircuitError),
    /// The packet could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The reply block could not be used.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The transport refused the packet.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The outgoing queue of the payload stream is full.
    #[error("outgoing queue full")]
    QueueFull,
    /// A circuit names a mix the directory no longer has.
    #[error("circuit through a mix that left the directory")]
    StaleCircuit,
}

/// A real message waiting for a slot of the payload stream.
#[derive(Debug, Clone)]
struct Queued {
    level: PrivacyLevel,
    destination: Destination,
    message: Vec<u8>,
}

/// What a client sent at one cover-schedule event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sent {
    /// A queued real message (in a payload-stream slot).
    Real,
    /// Drop cover in a payload-stream slot with nothing queued.
    PayloadCover,
    /// Loop cover.
    Loop,
    /// Drop cover.
    Drop,
}

/// A mix-network client: picks circuits from its [`CircuitPool`], builds
/// packets and hands them to the first hop through a [`PacketTransport`].
///
/// Messages go out either at once ([`send_now`](Self::send_now), no cover)
/// or in the slots of the Loopix payload stream ([`queue`](Self::queue) and
/// [`tick`](Self::tick)), where an empty slot carries drop cover, so an
/// observer of the client's link sees the same Poisson stream of same-size
/// packets whether it talks or not. The queue is bounded
/// ([`MixClient::with_queue_limit`]); a full queue refuses new messages.
pub struct MixClient {
    builder: PacketBuilder,
    pool: CircuitPool,
    transport: Arc<dyn PacketTransport>,
    loop_address: DestinationAddress,
    queue: VecDeque<Queued>,
    queue_limit: usize,
    cover_level: PrivacyLevel,
    provider: Option<NodeAddress>,
    loops: LoopTracker,
}

/// A client's count of its own loop cover: how many went out, came back,
/// were lost (not back within the timeout) and are on their way. Loops
/// that stop coming back are how a client notices that a mix drops or
/// delays its traffic (Loopix's defence against (n-1) attacks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoopStats {
    /// Loop cover packets sent.
    pub sent: u64,
    /// Loops that came back in time.
    pub returned: u64,
    /// Loops not back within the timeout (or pushed out of a full tracker).
    pub lost: u64,
    /// Deliveries to the loop address with an identifier the client is not
    /// waiting for (late, duplicated or forged).
    pub unexpected: u64,
    /// Loops on their way now.
    pub outstanding: u64,
}

/// Loops on their way: identifier -> when it left. Bounded.
#[derive(Debug)]
struct LoopTracker {
    /// The client's secret for loop bodies: a loop carries
    /// SHA-256(key ‖ identifier), random-looking to its last hop, so only
    /// the client tells its loops from messages sent to it.
    key: [u8; 32],
    outstanding: HashMap<[u8; 16], Duration>,
    order: VecDeque<([u8; 16], Duration)>,
    limit: usize,
    timeout: Duration,
    stats: LoopStats,
}

impl LoopTracker {
    fn new() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        LoopTracker {
            key,
            outstanding: HashMap::new(),
            order: VecDeque::new(),
            limit: 4096,
            timeout: Duration::from_secs(30),
            stats: LoopStats::default(),
        }
    }

    fn body(&self, id: &[u8; 16]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(id);
        h.finalize().into()
    }

    fn sent(&mut self, id: [u8; 16], now: Duration) {
        self.stats.sent += 1;
        if self.outstanding.len() >= self.limit {
            // Full: the oldest loop is given up on.
            while let Some((old, _)) = self.order.pop_front() {
                if self.outstanding.remove(&old).is_some() {
                    self.stats.lost += 1;
                    break;
                }
            }
        }
        self.outstanding.insert(id, now);
        self.order.push_back((id, now));
    }

    fn returned(&mut self, id: &[u8; 16]) -> bool {
        if self.outstanding.remove(id).is_some() {
            self.stats.returned += 1;
            true
        } else {
            self.stats.unexpected += 1;
            false
        }
    }

    fn expire(&mut self, now: Duration) -> u64 {
        let mut lost = 0;
        while let Some(&(id, at)) = self.order.front() {
            if now.saturating_sub(at) < self.timeout {
                break;
            }
            self.order.pop_front();
            if self.outstanding.remove(&id).is_some() {
                lost += 1;
            }
        }
        self.stats.lost += lost;
        lost
    }

    fn stats(&self) -> LoopStats {
        LoopStats {
            outstanding: self.outstanding.len() as u64,
            ..self.stats
        }
    }
}

impl std::fmt::Debug for MixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MixClient")
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl MixClient {
    /// A client building packets with `builder`, over `pool`'s circuits,
    /// sending through `transport`; its loop cover returns to
    /// `loop_address`.
    pub fn new(
        builder: PacketBuilder,
        pool: CircuitPool,
        transport: Arc<dyn PacketTransport>,
        loop_address: DestinationAddress,
    ) -> Self {
        MixClient {
            builder,
            pool,
            transport,
            loop_address,
            queue: VecDeque::new(),
            queue_limit: 1024,
            cover_level: PrivacyLevel::Private,
            provider: None,
            loops: LoopTracker::new(),
        }
    }

    /// The client with a provider: the mix that keeps its inbox
    /// ([`MixNode::register_client`] with the client's loop address). Loop
    /// cover then takes a circuit whose last hop is the provider, so it
    /// comes back to the client through its inbox, and
    /// [`receive`](Self::receive) counts it. Without a provider a loop ends
    /// at the last hop of its circuit and is never seen again.
    pub fn with_provider(mut self, provider: NodeAddress) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The client with another loop timeout (default 30 s: a loop not back
    /// by then counts as lost) and bound on loops tracked at once (default
    /// 4096; past it the oldest counts as lost).
    pub fn with_loop_tracking(mut self, timeout: Duration, limit: usize) -> Self {
        self.loops.timeout = timeout;
        self.loops.limit = limit.max(1);
        self
    }

    /// Takes one delivery from the client's inbox: the client's own
    /// loop cover (recognised by a body only the client can compute) is
    /// counted and swallowed (`None`); anything else is handed back for the
    /// application.
    pub fn receive(&mut self, delivery: Delivery) -> Option<Delivery> {
        match &delivery {
            Delivery::Message {
                destination,
                identifier,
                message,
            } if *destination == self.loop_address
                && message.as_slice() == self.loops.body(identifier) =>
            {
                self.loops.returned(identifier);
                None
            }
            _ => Some(delivery),
        }
    }

    /// Counts the loops not back within the timeout at `now` as lost;
    /// returns how many were lost now.
    pub fn expire_loops(&mut self, now: Duration) -> u64 {
        self.loops.expire(now)
    }

    /// The loop-cover counters.
    pub fn loop_stats(&self) -> LoopStats {
        self.loops.stats()
    }

    /// The client with another bound on queued real messages (default 1024).
    pub fn with_queue_limit(mut self, limit: usize) -> Self {
        self.queue_limit = limit;
        self
    }

    /// The level cover packets travel at (default PRIVATE). Cover and real
    /// packets are alike on the wire at any level; use the level most real
    /// traffic uses.
    pub fn with_cover_level(mut self, level: PrivacyLevel) -> Self {
        self.cover_level = level;
        self
    }

    /// The circuit pool (to report failed mixes, change the directory).
    pub fn pool_mut(&mut self) -> &mut CircuitPool {
        &mut self.pool
    }

    /// The circuit pool.
    pub fn pool(&self) -> &CircuitPool {
        &self.pool
    }

    /// Sends `message` to `destination` at `level` now, on a pooled
    /// circuit; returns the circuit used.
    pub fn send_now<R: CryptoRng + ?Sized>(
        &mut self,
        level: PrivacyLevel,
        destination: Destination,
        message: &[u8],
        now: Duration,
        rng: &mut R,
    ) -> Result<Circuit, ClientError> {
        let circuit = self.pool.circuit(level, now, rng)?;
        let route = self
            .pool
            .directory()
            .route_nodes(circuit.route())
            .ok_or(ClientError::StaleCircuit)?;
        let out = self
            .builder
            .build(level, &route, destination, message, rng)?;
        self.transport.send(out.first_hop, out.packet)?;
        Ok(circuit)
    }

    /// A loop through a pooled circuit of the cover level whose last hop is
    /// replaced by the client's provider (the provider's inbox takes it).
    fn send_loop<R: CryptoRng + ?Sized>(
        &mut self,
        provider: NodeAddress,
        destination: Destination,
        message: &[u8],
        now: Duration,
        rng: &mut R,
    ) -> Result<(), ClientError> {
        let circuit = self.pool.circuit(self.cover_level, now, rng)?;
        let mut route = circuit.route().to_vec();
        if let Some(last) = route.last_mut() {
            *last = provider;
        }
        let route = self
            .pool
            .directory()
            .route_nodes(&route)
            .ok_or(ClientError::StaleCircuit)?;
        let out = self
            .builder
            .build(self.cover_level, &route, destination, message, rng)?;
        self.transport.send(out.first_hop, out.packet)?;
        Ok(())
    }

    /// Queues `message` for the next slot of the payload stream. A message
    /// too long for `level` is refused here, not when its slot comes.
    pub fn queue(
        &mut self,
        level: PrivacyLevel,
        destination: Destination,
        message: Vec<u8>,
    ) -> Result<(), ClientError> {
        self.builder.check_fits(level, message.len())?;
        if self.queue.len() >= self.queue_limit {
            return Err(ClientError::QueueFull);
        }
        self.queue.push_back(Queued {
            level,
            destination,
            message,
        });
        Ok(())
    }

    /// Real messages waiting for a payload slot.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Handles one event of the cover schedule: what the stream calls for
    /// is built and sent. A real message whose send fails (no circuit yet,
    /// the transport refused it) goes back to the head of the queue for the
    /// next payload slot; only one that cannot be built is dropped.
    pub fn on_event<R: CryptoRng + ?Sized>(
        &mut self,
        stream: Stream,
        now: Duration,
        rng: &mut R,
    ) -> Result<Sent, ClientError> {
        let cover_message = |rng: &mut R, len: usize| {
            let mut m = vec![0u8; len];
            rng.fill(&mut m[..]);
            m
        };
        match stream {
            Stream::Payload => {
                if let Some(q) = self.queue.pop_front() {
                    match self.send_now(q.level, q.destination, &q.message, now, rng) {
                        Ok(_) => Ok(Sent::Real),
                        Err(e @ ClientError::Build(_)) => Err(e),
                        Err(e) => {
                            self.queue.push_front(q);
                            Err(e)
                        }
                    }
                } else {
                    let m = cover_message(rng, 32);
                    let d = Destination::new(DROP_ADDRESS, [0; 16]);
                    self.send_now(self.cover_level, d, &m, now, rng)?;
                    Ok(Sent::PayloadCover)
                }
            }
            Stream::Loop | Stream::MixLoop => {
                let mut id = [0u8; 16];
                rng.fill(&mut id);
                let m = self.loops.body(&id);
                let d = Destination::new(self.loop_address, id);
                match self.provider {
                    Some(provider) => self.send_loop(provider, d, &m, now, rng)?,
                    None => {
                        self.send_now(self.cover_level, d, &m, now, rng)?;
                    }
                }
                self.loops.sent(id, now);
                Ok(Sent::Loop)
            }
            Stream::Drop => {
                let m = cover_message(rng, 32);
                let d = Destination::new(DROP_ADDRESS, [0; 16]);
                self.send_now(self.cover_level, d, &m, now, rng)?;
                Ok(Sent::Drop)
            }
        }
    }

    /// Runs every event of `schedule` due at `now`; returns what was sent.
    /// A failed send is skipped (logged), the schedule moves on.
    pub fn tick<R: CryptoRng + ?Sized>(
        &mut self,
        schedule: &mut CoverSchedule,
        now: Duration,
        rng: &mut R,
    ) -> Vec<Sent> {
        let mut sent = Vec::new();
        while let Some((_, stream)) = schedule.poll(now, rng) {
            match self.on_event(stream, now, rng) {
                Ok(s) => sent.push(s),
                Err(e) => tracing::debug!(error = %e, "cover slot skipped"),
            }
        }
        sent
    }

    /// Makes a reply block for a route at `level` (at most
    /// [`MAX_REPLY_HOPS`] hops: `SECRET` replies take five) ending at the
    /// mix that delivers to `me`.
    pub fn reply_block<R: CryptoRng + ?Sized>(
        &mut self,
        level: PrivacyLevel,
        me: DestinationAddress,
        now: Duration,
        rng: &mut R,
    ) -> Result<(ReplyBlock, ReplyKey), ClientError> {
        let level = if level.hops() > MAX_REPLY_HOPS {
            PrivacyLevel::Confidential
        } else {
            level
        };
        let circuit = self.pool.circuit(level, now, rng)?;
        let route = self
            .pool
            .directory()
            .route_nodes(circuit.route())
            .ok_or(ClientError::StaleCircuit)?;
        Ok(self
            .builder
            .reply_block(&route, Destination::new(me, [0; 16]), rng)?)
    }

    /// Answers through a reply block received from someone else.
    pub fn send_reply(&self, block: ReplyBlock, reply: &[u8]) -> Result<(), ClientError> {
        let out = block.use_block(reply, self.builder.config())?;
        self.transport.send(out.first_hop, out.packet)?;
        Ok(())
    }
}

/// A mix node's own loop cover (λM): a Poisson stream of packets over a
/// route through the other layers and back to the node, which counts them
/// as [`NodeStats::loop_cover_returned`](crate::NodeStats::loop_cover_returned).
/// Runs until the returned task is aborted or the node is gone.
pub fn spawn_mix_cover(
    node: MixNode,
    directory: Directory,
    me: NodeAddress,
    loop_address: DestinationAddress,
    rate: f64,
    builder: PacketBuilder,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let origin = tokio::time::Instant::now();
        let mut rng: rand::rngs::StdRng = rand::make_rng();
        let mut schedule = CoverSchedule::mix(rate, Duration::ZERO, &mut rng);
        let Some(my_descriptor) = directory.get(me).cloned() else {
            tracing::warn!("mix loop cover: this node is not in the directory");
            return;
        };
        let mut exclude = HashSet::new();
        exclude.insert(me);
        loop {
            let due = schedule.next_due();
            if due == Duration::MAX {
                return;
            }
            tokio::time::sleep_until(origin + due).await;
            while schedule.poll(origin.elapsed(), &mut rng).is_some() {
                // Two other mixes, then this one: a PRIVATE-length loop.
                let Ok(mut route) = directory.select(PrivacyLevel::Private, &exclude, &mut rng)
                else {
                    continue;
                };
                route.pop();
                route.push(me);
                let Some(mut nodes) = directory.route_nodes(&route) else {
                    continue;
                };
                if let Some(last) = nodes.last_mut() {
                    *last = my_descriptor.route_node();
                }
                let mut m = [0u8; 32];
                rng.fill(&mut m[..]);
                let Ok(out) = builder.build(
                    PrivacyLevel::Private,
                    &nodes,
                    Destination::new(loop_address, [0; 16]),
                    &m,
                    &mut rng,
                ) else {
                    continue;
                };
                if node.send_own(out.first_hop, out.packet).is_err() {
                    tracing::debug!("mix loop cover not sent");
                }
            }
        }
    })
}
