//! The TCP [`PacketTransport`]: fixed-size frames over plain TCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::frame::FrameCodec;
use crate::node::{Inbound, PacketTransport, TransportError};
use crate::packet::{NodeAddress, Packet};

/// Limits of the TCP transport.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TcpConfig {
    /// Packets queued towards one peer; beyond it `send` answers
    /// [`TransportError::Full`] (default 4096).
    pub peer_queue: usize,
    /// Peers with an outbound queue at once; a packet for a further peer is
    /// refused as [`TransportError::Full`] (default 1024).
    pub max_peers: usize,
    /// Inbound connections served at once; further ones are closed on
    /// accept (default 1024).
    pub max_connections: usize,
    /// How long a connection attempt may take (default 2 s).
    pub connect_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            peer_queue: 4096,
            max_peers: 1024,
            max_connections: 1024,
            connect_timeout: Duration::from_secs(2),
        }
    }
}

/// Sends packets to mixes over TCP, one connection per peer, each packet in
/// one fixed-size frame ([`FrameCodec`]). Which socket address a
/// [`NodeAddress`] has comes from [`set_peer`](Self::set_peer) (fed from the
/// directory).
///
/// A connection that fails drops the packets queued on it (counted in
/// [`send_failures`](Self::send_failures)) and is re-opened for the next
/// packet. Must be created inside a tokio runtime.
pub struct TcpTransport {
    codec: FrameCodec,
    config: TcpConfig,
    peers: RwLock<HashMap<NodeAddress, SocketAddr>>,
    queues: RwLock<HashMap<SocketAddr, mpsc::Sender<Packet>>>,
    runtime: tokio::runtime::Handle,
    send_failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("frame_len", &self.codec.frame_len())
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// A transport framing packets with `codec`. Panics outside a tokio
    /// runtime.
    pub fn new(codec: FrameCodec, config: TcpConfig) -> Self {
        TcpTransport {
            codec,
            config,
            peers: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            send_failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records (or replaces) the socket address of a mix.
    pub fn set_peer(&self, node: NodeAddress, addr: SocketAddr) {
        self.peers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(node, addr);
    }

    /// Packets queued and not yet written, over every peer.
    pub fn pending(&self) -> usize {
        self.queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(|q| q.max_capacity() - q.capacity())
            .sum()
    }

    /// Packets lost because a connection could not be opened or broke.
    pub fn send_failures(&self) -> u64 {
        self.send_failures.load(Ordering::Relaxed)
    }

    fn queue_for(&self, addr: SocketAddr) -> Result<mpsc::Sender<Packet>, TransportError> {
        if let Some(q) = self
            .queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&addr)
        {
            return Ok(q.clone());
        }
        let mut queues = self
            .queues
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(q) = queues.get(&addr) {
            return Ok(q.clone());
        }
        if queues.len() >= self.config.max_peers {
            return Err(TransportError::Full);
        }
        let (tx, rx) = mpsc::channel(self.config.peer_queue.max(1));
        queues.insert(addr, tx.clone());
        self.runtime.spawn(writer(
            addr,
            rx,
            self.codec,
            self.config.connect_timeout,
            Arc::clone(&self.send_failures),
        ));
        Ok(tx)
    }
}

impl PacketTransport for TcpTransport {
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        let addr = *self
            .peers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&next_hop)
            .ok_or(TransportError::UnknownPeer(next_hop))?;
        let queue = self.queue_for(addr)?;
        queue.try_send(packet).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => TransportError::Full,
            mpsc::error::TrySendError::Closed(_) => TransportError::Closed,
        })
    }
}

/// Writes queued packets to one peer, reconnecting when needed. Writes are
/// coalesced: everything queued goes out in one `write_all`.
async fn writer(
    addr: SocketAddr,
    mut rx: mpsc::Receiver<Packet>,
    codec: FrameCodec,
    connect_timeout: Duration,
    failures: Arc<AtomicU64>,
) {
    let mut stream: Option<TcpStream> = None;
    let mut batch = Vec::new();
    let mut buf = Vec::with_capacity(codec.frame_len() * 64);
    while rx.recv_many(&mut batch, 64).await > 0 {
        buf.clear();
        for packet in batch.drain(..) {
            match codec.encode(packet.as_bytes()) {
                Ok(frame) => buf.extend_from_slice(&frame),
                Err(_) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let frames = (buf.len() / codec.frame_len().max(1)) as u64;
        // A mix never answers on a connection it accepted, so anything
        // readable means the peer closed it (say, it restarted): reconnect
        // now instead of losing this batch to a dead socket.
        if let Some(s) = &stream
            && !matches!(s.try_read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        {
            stream = None;
        }
        if stream.is_none() {
            if let Ok(Ok(s)) = tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await
            {
                let _ = s.set_nodelay(true);
                stream = Some(s);
            } else {
                tracing::debug!(%addr, "mix peer unreachable");
                failures.fetch_add(frames, Ordering::Relaxed);
                continue;
            }
        }
        if let Some(s) = &mut stream
            && s.write_all(&buf).await.is_err()
        {
            tracing::debug!(%addr, "mix peer connection broke");
            failures.fetch_add(frames, Ordering::Relaxed);
            stream = None;
        }
    }
}

/// A listening TCP endpoint feeding a node's [`Inbound`]. Dropping it (or
/// calling [`shutdown`](Self::shutdown)) closes the listener and every
/// connection it accepted.
#[derive(Debug)]
pub struct TcpListenerHandle {
    local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TcpListenerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes the listener and its connections, and waits until they are
    /// closed (the address can be bound again when this returns).
    pub async fn shutdown(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TcpListenerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `addr` and hands every frame received to `inbound`. A frame that
/// does not decode is counted ([`Inbound::count_malformed`]) and dropped;
/// frames have one fixed length, so the next frame is read normally. A
/// connection that ends mid-frame is closed. At most
/// `config.max_connections` connections are served at once.
pub async fn listen(
    addr: SocketAddr,
    codec: FrameCodec,
    config: TcpConfig,
    inbound: Inbound,
) -> std::io::Result<TcpListenerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                        tracing::debug!(%peer, "connection limit reached, closing");
                        continue;
                    };
                    let inbound = inbound.clone();
                    connections.spawn(async move {
                        read_frames(stream, codec, inbound).await;
                        drop(permit);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(TcpListenerHandle { local_addr, task })
}

async fn read_frames(mut stream: TcpStream, codec: FrameCodec, inbound: Inbound) {
    let mut frame = vec![0u8; codec.frame_len()];
    loop {
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        match codec.decode(&frame) {
            Ok(packet) => {
                if !inbound.deliver(packet.to_vec()).await {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "malformed frame dropped");
                inbound.count_malformed();
            }
        }
    }
}

/// Whether a TCP connection to `addr` opens within `timeout`: the liveness
/// check a client runs over the mixes of its circuits.
pub async fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}
