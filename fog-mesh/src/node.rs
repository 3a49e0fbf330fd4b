//! A live mesh node: a bearer, a persistent store and a router, driven by
//! one tokio task.
//!
//! When a link comes up the two nodes exchange `Hello`, their routing state
//! and summary vectors, then each offers the other the bundles it lacks, as
//! its router decides. A bundle that arrives is checked (CBOR, CRCs,
//! duplicates), delivered if it is for this node, otherwise stored and
//! offered to the neighbours already in reach. Everything stored survives a
//! restart and is offered again on the next contact.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::NodeId;
use crate::bearer::{Bearer, BearerEvent, LinkAddr};
use crate::bundle::{Bundle, BundleBuilder, BundleId, CreationTimestamp, dtn_now_ms};
use crate::eid::EndpointId;
use crate::error::{BundleError, StoreError};
use crate::frame::{Reassembler, ReassemblyLimits, fragment};
use crate::link::{PLAIN, SecureLink};
use crate::router::{Offer, Router, RouterConfig, RouterKind, Trigger};
use crate::seal::{Keyring, MeshIdentity, SealError, seal, verify_sender};
use crate::store::{BundleStore, Insert, Priority, StoreConfig};
use crate::wire::{LinkMessage, MAX_LINK_MESSAGE, MAX_SUMMARY};

/// Settings of a [`MeshNode`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MeshConfig {
    /// This node's endpoint (`dtn://name/` or `ipn:N.0`).
    pub eid: EndpointId,
    /// The routing scheme.
    pub router: RouterKind,
    /// Router parameters.
    pub routers: RouterConfig,
    /// Store limits.
    pub store: StoreConfig,
    /// The SQLite file of the store; `None` keeps it in memory.
    pub store_path: Option<PathBuf>,
    /// Bundles for this node waiting for the application (bounded; when full
    /// they stay in the store and are handed over later).
    pub inbox_capacity: usize,
    /// Managed flooding waits a random time up to this before relaying.
    pub relay_jitter: Duration,
    /// Reassembly bounds.
    pub reassembly: ReassemblyLimits,
    /// This node's keys. With an identity, payloads are sealed end to end:
    /// sending needs the destination's keys in the keyring, and only bundles
    /// from senders in the keyring are delivered.
    pub identity: Option<Arc<MeshIdentity>>,
    /// Peers' public keys, by node.
    pub keyring: Keyring,
}

impl MeshConfig {
    /// Defaults for node `eid`: epidemic routing, a store in memory.
    pub fn new(eid: EndpointId) -> Self {
        let reassembly = ReassemblyLimits {
            max_message: MAX_LINK_MESSAGE,
            max_total: 4 * MAX_LINK_MESSAGE,
            ..ReassemblyLimits::default()
        };
        MeshConfig {
            eid,
            router: RouterKind::Epidemic,
            routers: RouterConfig::default(),
            store: StoreConfig::default(),
            store_path: None,
            inbox_capacity: 256,
            relay_jitter: Duration::from_millis(50),
            reassembly,
            identity: None,
            keyring: Keyring::new(),
        }
    }
}

/// Why a node could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node's endpoint has no node part (`dtn:none`).
    #[error("the node endpoint {0} cannot receive bundles")]
    BadEndpoint(String),
    /// The bearer gave no event stream (it was taken already).
    #[error("the bearer's events were already taken")]
    NoEvents,
    /// The node has stopped.
    #[error("the mesh node has stopped")]
    Stopped,
    /// The store refused the bundle (full of higher-priority bundles).
    #[error("the store is full")]
    StoreFull,
    /// Sealing failed (for example no key is known for the destination).
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// A bundle delivered to this node, with its payload opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    bundle: Bundle,
    payload: Vec<u8>,
    sealed: bool,
}

impl Delivery {
    /// The bundle as it arrived (its payload sealed if it was).
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The application data: decrypted and authenticated when sealed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether the payload was sealed to this node and signed by the source.
    pub fn sealed(&self) -> bool {
        self.sealed
    }
}

/// Counters of a running node.
#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    received: AtomicU64,
    delivered: AtomicU64,
    forwarded: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    malformed_frames: AtomicU64,
    send_errors: AtomicU64,
}

/// A snapshot of a node's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct MeshStats {
    /// Bundles created here.
    pub created: u64,
    /// Bundles received from neighbours (new ones).
    pub received: u64,
    /// Bundles handed to the local application.
    pub delivered: u64,
    /// Bundle transmissions to neighbours.
    pub forwarded: u64,
    /// Bundles received that were already known (dropped).
    pub duplicates: u64,
    /// Bundles rejected as malformed or corrupted (bad CBOR or CRC).
    pub rejected: u64,
    /// Frames or link messages that did not decode.
    pub malformed_frames: u64,
    /// Frames the bearer failed to send.
    pub send_errors: u64,
}

enum Command {
    Send {
        destination: EndpointId,
        payload: Vec<u8>,
        lifetime: Duration,
        reply: oneshot::Sender<Result<BundleId, MeshError>>,
    },
    Offer(BundleId),
    Import(Bundle, oneshot::Sender<()>),
    Neighbours(oneshot::Sender<Vec<(LinkAddr, Option<NodeId>)>>),
    Stored(oneshot::Sender<Result<usize, MeshError>>),
}

/// A handle to a running mesh node. Dropping every handle stops the node.
#[derive(Debug)]
pub struct MeshNode {
    commands: mpsc::Sender<Command>,
    inbox: mpsc::Receiver<Delivery>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
    eid: EndpointId,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl MeshNode {
    /// Starts a node on `bearer`.
    pub fn spawn<B: Bearer>(config: MeshConfig, mut bearer: B) -> Result<Self, MeshError> {
        let me = config
            .eid
            .node_id()
            .ok_or_else(|| MeshError::BadEndpoint(config.eid.to_string()))?;
        let store = match &config.store_path {
            Some(path) => BundleStore::open(path, config.store)?,
            None => BundleStore::open_in_memory(config.store)?,
        };
        let events = bearer.events().ok_or(MeshError::NoEvents)?;
        let (commands, command_rx) = mpsc::channel(64);
        let (inbox_tx, inbox) = mpsc::channel(config.inbox_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let router = config.routers.build(config.router, me);
        let eid = config.eid.clone();
        let worker = Worker {
            reassembler: Reassembler::new(config.reassembly),
            config,
            me,
            bearer: Arc::new(bearer),
            store,
            router,
            neighbours: HashMap::new(),
            inbox: inbox_tx,
            counters: Arc::clone(&counters),
            commands: commands.clone(),
            next_message: 0,
            next_seq: 0,
            started: Instant::now(),
        };
        let task = tokio::spawn(worker.run(events, command_rx));
        Ok(MeshNode {
            commands,
            inbox,
            counters,
            task,
            eid,
        })
    }

    /// This node's endpoint.
    pub fn eid(&self) -> &EndpointId {
        &self.eid
    }

    /// Creates a bundle for `destination` and stores it until it can be sent.
    pub async fn send(
        &self,
        destination: EndpointId,
        payload: Vec<u8>,
        lifetime: Duration,
    ) -> Result<BundleId, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                destination,
                payload,
                lifetime,
                reply,
            })
            .await
            .map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)?
    }

    /// Takes in a bundle that arrived out of band (a file, a USB stick): it
    /// gets the same checks as one from a neighbour, then is delivered or
    /// stored and forwarded.
    pub async fn import(&self, bundle: Bundle) -> Result<(), MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Import(bundle, reply))
            .await
            .map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)
    }

    /// The next bundle addressed to this node.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.inbox.recv().await
    }

    /// The neighbours in reach and their node ids (once they said hello).
    pub async fn neighbours(&self) -> Result<Vec<(LinkAddr, Option<NodeId>)>, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Neighbours(reply))
            .await
            .map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)
    }

    /// Bundles held in the store.
    pub async fn stored(&self) -> Result<usize, MeshError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Stored(reply))
            .await
            .map_err(|_| MeshError::Stopped)?;
        answer.await.map_err(|_| MeshError::Stopped)?
    }

    /// The node's counters.
    pub fn stats(&self) -> MeshStats {
        let c = &self.counters;
        MeshStats {
            created: c.created.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            malformed_frames: c.malformed_frames.load(Ordering::Relaxed),
            send_errors: c.send_errors.load(Ordering::Relaxed),
        }
    }

    /// Stops the node. The store is closed cleanly; what it held is kept.
    pub async fn shutdown(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

struct Neighbour {
    node: Option<NodeId>,
    has: HashSet<String>,
    /// The Noise session, when this node has an identity.
    link: Option<SecureLink>,
}

struct Worker<B> {
    config: MeshConfig,
    me: NodeId,
    bearer: Arc<B>,
    store: BundleStore,
    router: Box<dyn Router>,
    neighbours: HashMap<LinkAddr, Neighbour>,
    reassembler: Reassembler<LinkAddr>,
    inbox: mpsc::Sender<Delivery>,
    counters: Arc<Counters>,
    commands: mpsc::Sender<Command>,
    next_message: u32,
    next_seq: u64,
    started: Instant,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<B: Bearer> Worker<B> {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn run(
        mut self,
        mut events: mpsc::Receiver<BearerEvent>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => self.on_event(event).await,
                    None => break,
                },
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command).await,
                    None => break,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        tracing::info!(node = %self.config.eid, "mesh node stopped");
    }

    async fn on_tick(&mut self) {
        let mut restarts = Vec::new();
        for (addr, neighbour) in &mut self.neighbours {
            if let Some(link) = neighbour.link.as_mut()
                && let Ok(Some(envelope)) = link.tick()
            {
                restarts.push((addr.clone(), envelope));
            }
        }
        for (addr, envelope) in restarts {
            self.send_envelope(&addr, &envelope).await;
        }
        if let Err(error) = self.store.purge_expired(dtn_now_ms()) {
            tracing::warn!(%error, "purging expired bundles failed");
        }
        let unknown: Vec<LinkAddr> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.node.is_none())
            .map(|(a, _)| a.clone())
            .collect();
        for addr in unknown {
            self.hello(&addr).await;
        }
        self.retry_local_delivery();
    }

    /// Hands stored bundles addressed to this node to the application while
    /// the inbox has room.
    fn retry_local_delivery(&mut self) {
        let Ok(list) = self.store.list_to(self.me) else {
            return;
        };
        for meta in list {
            let Ok(Some(bundle)) = self.store.get(&meta.id) else {
                continue;
            };
            let Ok(delivery) = self.open(bundle) else {
                let _ = self.store.remove(&meta.id);
                continue;
            };
            if self.inbox.try_send(delivery).is_err() {
                return;
            }
            let _ = self.store.remove(&meta.id);
            count(&self.counters.delivered);
        }
    }

    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Send {
                destination,
                payload,
                lifetime,
                reply,
            } => {
                let result = self.create(destination, payload, lifetime).await;
                let _ = reply.send(result);
            }
            Command::Offer(id) => self.offer_to_all(&id, Trigger::NewBundle, None).await,
            Command::Import(bundle, reply) => {
                self.on_bundle(&LinkAddr::new("import:"), 1, &bundle.encode())
                    .await;
                let _ = reply.send(());
            }
            Command::Neighbours(reply) => {
                let list = self
                    .neighbours
                    .iter()
                    .map(|(a, n)| (a.clone(), n.node))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Stored(reply) => {
                let _ = reply.send(self.store.len().map_err(MeshError::from));
            }
        }
    }

    async fn create(
        &mut self,
        destination: EndpointId,
        payload: Vec<u8>,
        lifetime: Duration,
    ) -> Result<BundleId, MeshError> {
        if destination.node_id().is_none() {
            return Err(MeshError::BadEndpoint(destination.to_string()));
        }
        let now = dtn_now_ms();
        self.next_seq += 1;
        let created = CreationTimestamp {
            dtn_ms: now,
            seq: self.next_seq,
        };
        let payload = match &self.config.identity {
            Some(identity) => {
                let node = destination.node_id().unwrap_or(NodeId(0));
                let keys = self
                    .config
                    .keyring
                    .get(node)
                    .ok_or_else(|| SealError::UnknownPeer(destination.to_string()))?;
                seal(
                    identity,
                    keys,
                    &self.config.eid,
                    &destination,
                    created,
                    &payload,
                )?
            }
            None => payload,
        };
        let bundle = BundleBuilder::new(self.config.eid.clone(), destination)
            .payload(payload)
            .lifetime(lifetime)
            .created(created)
            .build();
        let id = bundle.id();
        match self
            .store
            .insert(&bundle, Priority::Normal, self.router.initial_copies(), now)?
        {
            Insert::Stored { .. } | Insert::Duplicate => {}
            Insert::Refused => return Err(MeshError::StoreFull),
        }
        count(&self.counters.created);
        tracing::debug!(bundle = %id, "bundle created");
        self.offer_to_all(&id, Trigger::NewBundle, None).await;
        Ok(id)
    }

    async fn on_event(&mut self, event: BearerEvent) {
        match event {
            BearerEvent::Up(addr) => {
                self.neighbours.insert(addr.clone(), self.new_neighbour());
                self.hello(&addr).await;
            }
            BearerEvent::Down(addr) => {
                if let Some(Neighbour {
                    node: Some(node), ..
                }) = self.neighbours.remove(&addr)
                {
                    let now = self.now();
                    self.router.link_down(now, node);
                    tracing::debug!(%addr, %node, "neighbour down");
                }
            }
            BearerEvent::Frame { from, data } => {
                match self.reassembler.push(&from, &data, Instant::now()) {
                    Ok(Some(message)) => self.on_envelope(from, &message).await,
                    Ok(None) => {}
                    Err(_) => count(&self.counters.malformed_frames),
                }
            }
        }
    }

    async fn hello(&mut self, addr: &LinkAddr) {
        let hello = LinkMessage::Hello {
            node: self.me,
            eid: self.config.eid.to_string(),
        };
        self.transmit(addr, &hello).await;
    }

    fn new_neighbour(&self) -> Neighbour {
        Neighbour {
            node: None,
            has: HashSet::new(),
            link: self
                .config
                .identity
                .as_ref()
                .map(|id| SecureLink::new(id.agreement_secret())),
        }
    }

    /// One reassembled envelope from a neighbour: plaintext, or a Noise
    /// handshake or transport message when this node has an identity.
    async fn on_envelope(&mut self, from: LinkAddr, bytes: &[u8]) {
        // A frame can arrive before the bearer reported the neighbour up.
        if !self.neighbours.contains_key(&from) {
            let neighbour = self.new_neighbour();
            self.neighbours.insert(from.clone(), neighbour);
        }
        let Some(neighbour) = self.neighbours.get_mut(&from) else {
            return;
        };
        let plain = match (&mut neighbour.link, bytes.split_first()) {
            (None, Some((&PLAIN, rest))) => rest.to_vec(),
            (Some(link), Some((&kind, _))) if kind != PLAIN => match link.receive(bytes) {
                Ok(output) => {
                    for envelope in output.send {
                        self.send_envelope(&from, &envelope).await;
                    }
                    match output.deliver {
                        Some(plain) => plain,
                        None => return,
                    }
                }
                Err(error) => {
                    count(&self.counters.malformed_frames);
                    tracing::debug!(%from, %error, "link envelope refused");
                    return;
                }
            },
            // Plaintext on a secured node, or an empty envelope.
            _ => {
                count(&self.counters.malformed_frames);
                return;
            }
        };
        self.on_message(from, &plain).await;
    }

    async fn on_message(&mut self, from: LinkAddr, bytes: &[u8]) {
        let Ok(message) = LinkMessage::decode(bytes) else {
            count(&self.counters.malformed_frames);
            return;
        };
        match message {
            LinkMessage::Hello { node, .. } => {
                let known = self.neighbours.get(&from).and_then(|n| n.node);
                if known == Some(node) {
                    return;
                }
                // On a secured link the neighbour proved its static key in the
                // handshake: it must be the key we trust for the node it claims.
                if let (Some(link), Some(trusted)) = (
                    self.neighbours.get(&from).and_then(|n| n.link.as_ref()),
                    self.config.keyring.get(node),
                ) && link.remote_static() != Some(trusted.agreement)
                {
                    count(&self.counters.rejected);
                    tracing::warn!(%from, %node, "neighbour's link key is not the key trusted for its node");
                    return;
                }
                if let Some(n) = self.neighbours.get_mut(&from) {
                    n.node = Some(node);
                }
                // Answer so the other side learns us even if our first hello was lost.
                self.hello(&from).await;
                let now = self.now();
                let info = self.router.link_up(now, node);
                self.transmit(&from, &LinkMessage::Routing(info)).await;
                let ids: Vec<String> = match self.store.list() {
                    Ok(list) => list
                        .into_iter()
                        .take(MAX_SUMMARY)
                        .map(|m| m.id.to_string())
                        .collect(),
                    Err(_) => Vec::new(),
                };
                self.transmit(&from, &LinkMessage::Summary { ids }).await;
                tracing::debug!(%from, %node, "neighbour up");
            }
            LinkMessage::Routing(info) => {
                if let Some(node) = self.neighbours.get(&from).and_then(|n| n.node) {
                    let now = self.now();
                    self.router.peer_info(now, node, &info);
                }
            }
            LinkMessage::Summary { ids } => {
                if let Some(n) = self.neighbours.get_mut(&from) {
                    n.has = ids.into_iter().take(MAX_SUMMARY).collect();
                }
                let held = self.store.list().unwrap_or_default();
                for meta in held {
                    self.offer(&from, &meta.id, Trigger::LinkUp).await;
                }
            }
            LinkMessage::Bundle { copies, data } => self.on_bundle(&from, copies, &data).await,
        }
    }

    async fn on_bundle(&mut self, from: &LinkAddr, copies: u32, data: &[u8]) {
        let bundle = match Bundle::decode_with_limit(data, MAX_LINK_MESSAGE) {
            Ok(bundle) => bundle,
            Err(error) => {
                count(&self.counters.rejected);
                tracing::debug!(%from, %error, "bundle rejected");
                return;
            }
        };
        let id = bundle.id();
        if let Some(n) = self.neighbours.get_mut(from) {
            n.has.insert(id.to_string());
        }
        match self.store.knows(&id) {
            Ok(true) => {
                count(&self.counters.duplicates);
                return;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, "store lookup failed");
                return;
            }
        }
        let now = dtn_now_ms();
        if bundle.destination().node_id() == Some(self.me) {
            let expires = bundle.expires_at_dtn_ms().unwrap_or(now + 3_600_000);
            // A forgery is not remembered as seen: the genuine bundle with the
            // same id must still get through.
            let delivery = match self.open(bundle.clone()) {
                Ok(delivery) => delivery,
                Err(error) => {
                    count(&self.counters.rejected);
                    tracing::debug!(%from, %error, "bundle for this node rejected");
                    return;
                }
            };
            count(&self.counters.received);
            match self.inbox.try_send(delivery) {
                Ok(()) => {
                    count(&self.counters.delivered);
                    let _ = self.store.mark_seen(&id, expires);
                }
                // The application is behind: keep the bundle until it catches up.
                Err(_) => {
                    let _ = self.store.insert(&bundle, Priority::Expedited, 1, now);
                }
            }
            return;
        }
        if let Err(error) = self.check_relayed(&bundle) {
            count(&self.counters.rejected);
            tracing::debug!(%from, %error, "forged bundle dropped");
            return;
        }
        count(&self.counters.received);
        match self
            .store
            .insert(&bundle, Priority::Normal, copies.max(1), now)
        {
            Ok(Insert::Stored { .. }) => {}
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "storing a bundle failed");
                return;
            }
        }
        if self.router.kind() == RouterKind::Flood && !self.config.relay_jitter.is_zero() {
            let jitter = self.config.relay_jitter.mul_f64(
                crate::sim::SplitMix::new(dtn_now_ms() ^ u64::from(self.next_message)).unit(),
            );
            let commands = self.commands.clone();
            tokio::spawn(async move {
                tokio::time::sleep(jitter).await;
                let _ = commands.send(Command::Offer(id)).await;
            });
        } else {
            self.offer_to_all(&id, Trigger::NewBundle, Some(from)).await;
        }
    }

    /// Opens a bundle addressed to this node: checks and decrypts a sealed
    /// payload when this node has an identity.
    fn open(&self, bundle: Bundle) -> Result<Delivery, SealError> {
        let Some(identity) = &self.config.identity else {
            let payload = bundle.payload().to_vec();
            return Ok(Delivery {
                bundle,
                payload,
                sealed: false,
            });
        };
        let sender = bundle.source().node_id().unwrap_or(NodeId(0));
        let keys = self
            .config
            .keyring
            .get(sender)
            .ok_or_else(|| SealError::UnknownPeer(bundle.source().to_string()))?;
        let payload = crate::seal::open(
            identity,
            keys,
            bundle.source(),
            bundle.destination(),
            bundle.created(),
            bundle.payload(),
        )?;
        Ok(Delivery {
            bundle,
            payload,
            sealed: true,
        })
    }

    /// A relay with an identity checks the signature of bundles from senders
    /// it knows; others pass unchecked (it cannot tell).
    fn check_relayed(&self, bundle: &Bundle) -> Result<(), SealError> {
        if self.config.identity.is_none() {
            return Ok(());
        }
        let Some(keys) = bundle
            .source()
            .node_id()
            .and_then(|n| self.config.keyring.get(n))
        else {
            return Ok(());
        };
        verify_sender(
            keys,
            bundle.source(),
            bundle.destination(),
            bundle.created(),
            bundle.payload(),
        )
    }

    async fn offer_to_all(&mut self, id: &BundleId, trigger: Trigger, except: Option<&LinkAddr>) {
        let peers: Vec<LinkAddr> = self
            .neighbours
            .keys()
            .filter(|a| Some(*a) != except)
            .cloned()
            .collect();
        for peer in peers {
            self.offer(&peer, id, trigger).await;
        }
    }

    /// Offers bundle `id` to `peer` and sends it if the router agrees.
    async fn offer(&mut self, peer: &LinkAddr, id: &BundleId, trigger: Trigger) {
        let Some(neighbour) = self.neighbours.get(peer) else {
            return;
        };
        let Some(node) = neighbour.node else { return };
        if neighbour.has.contains(id.as_str()) {
            return;
        }
        let Ok(Some(mut bundle)) = self.store.get(id) else {
            return;
        };
        let Ok(Some(meta)) = self.store.meta(id) else {
            return;
        };
        let offer = Offer {
            peer: node,
            destination: bundle.destination().node_id(),
            copies: meta.copies,
            hops: bundle.hop_count().map_or(0, |h| h.count),
            trigger,
        };
        let now = self.now();
        let given = self.router.offer(now, &offer).min(meta.copies);
        if given == 0 {
            return;
        }
        let residence = dtn_now_ms().saturating_sub(meta.received_at_ms);
        match bundle.prepare_forward(&self.config.eid, residence) {
            Ok(()) => {}
            Err(BundleError::HopLimit { .. }) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot forward");
                return;
            }
        }
        let message = LinkMessage::Bundle {
            copies: given,
            data: bundle.encode(),
        };
        if !self.transmit(peer, &message).await {
            return;
        }
        count(&self.counters.forwarded);
        if let Some(n) = self.neighbours.get_mut(peer) {
            n.has.insert(id.to_string());
        }
        let kept = self.router.after_send(&offer, given);
        let result = if kept == 0 {
            self.store.remove(id).map(|_| ())
        } else {
            self.store.set_copies(id, kept)
        };
        if let Err(error) = result {
            tracing::warn!(%error, "updating the store after a send failed");
        }
    }

    /// Sends one link message, fragmented to the bearer's MTU.
    async fn transmit(&mut self, to: &LinkAddr, message: &LinkMessage) -> bool {
        if !self.neighbours.contains_key(to) {
            let neighbour = self.new_neighbour();
            self.neighbours.insert(to.clone(), neighbour);
        }
        let encoded = message.encode();
        let envelopes = match self.neighbours.get_mut(to).and_then(|n| n.link.as_mut()) {
            None => {
                let mut envelope = Vec::with_capacity(encoded.len() + 1);
                envelope.push(PLAIN);
                envelope.extend_from_slice(&encoded);
                vec![envelope]
            }
            Some(link) => match link.send(encoded) {
                Ok(output) => {
                    if output.dropped > 0 {
                        count(&self.counters.send_errors);
                    }
                    output.send
                }
                Err(error) => {
                    count(&self.counters.send_errors);
                    tracing::debug!(%to, %error, "link session failed");
                    return false;
                }
            },
        };
        let mut ok = true;
        for envelope in envelopes {
            ok &= self.send_envelope(to, &envelope).await;
        }
        ok
    }

    /// Sends one envelope, fragmented to the bearer's MTU.
    async fn send_envelope(&mut self, to: &LinkAddr, envelope: &[u8]) -> bool {
        self.next_message = self.next_message.wrapping_add(1);
        let Ok(frames) = fragment(envelope, self.next_message, self.bearer.mtu()) else {
            count(&self.counters.send_errors);
            return false;
        };
        for frame in frames {
            if let Err(error) = self.bearer.send(to, &frame).await {
                count(&self.counters.send_errors);
                tracing::debug!(%to, %error, "send failed");
                return false;
            }
        }
        true
    }
}
