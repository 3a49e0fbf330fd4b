//! The UDP bearer: neighbours on a LAN found by multicast beacons (and/or a
//! list of known addresses), frames sent by unicast.
//!
//! Every datagram is `0xFB | kind | body`: kind 0 is a beacon (body: the
//! node's label), kind 1 carries a frame. A neighbour is up from its first
//! datagram until nothing has come from it for the neighbour timeout.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Bearer, BearerEvent, EVENT_CHANNEL, LinkAddr};
use crate::error::BearerError;

const MAGIC: u8 = 0xFB;
const BEACON: u8 = 0;
const DATA: u8 = 1;
/// Most neighbours one UDP bearer tracks; beacons from more are ignored.
pub(crate) const MAX_NEIGHBOURS: usize = 1024;

/// Settings of a [`UdpBearer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpConfig {
    /// Local address for unicast (port 0 picks one).
    pub bind: SocketAddr,
    /// Known neighbour addresses to beacon to directly.
    pub peers: Vec<SocketAddr>,
    /// Multicast group and port for LAN discovery, if any.
    pub multicast: Option<SocketAddrV4>,
    /// Time between beacons.
    pub beacon_interval: Duration,
    /// A neighbour silent this long is down.
    pub neighbour_timeout: Duration,
    /// Largest datagram sent (the frame MTU is 2 bytes less).
    pub datagram_mtu: usize,
    /// Text carried in beacons (informational).
    pub label: String,
}

impl UdpConfig {
    /// A config bound to `bind`, beaconing every second, neighbours down after
    /// 3.5 s of silence, 1,200-byte datagrams, no multicast.
    pub fn new(bind: SocketAddr) -> Self {
        UdpConfig {
            bind,
            peers: Vec::new(),
            multicast: None,
            beacon_interval: Duration::from_secs(1),
            neighbour_timeout: Duration::from_millis(3500),
            datagram_mtu: 1200,
            label: String::new(),
        }
    }

    /// The default LAN discovery group, 239.255.45.56:4556.
    pub fn default_multicast() -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(239, 255, 45, 56), 4556)
    }
}

type Neighbours = Arc<Mutex<HashMap<SocketAddr, Instant>>>;

/// A bearer over UDP.
#[derive(Debug)]
pub struct UdpBearer {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    mtu: usize,
    events: Option<mpsc::Receiver<BearerEvent>>,
    neighbours: Neighbours,
    dropped: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

fn link(addr: SocketAddr) -> LinkAddr {
    LinkAddr::new(format!("udp:{addr}"))
}

fn parse_link(addr: &LinkAddr) -> Result<SocketAddr, BearerError> {
    addr.as_str()
        .strip_prefix("udp:")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| BearerError::UnknownNeighbour(addr.to_string()))
}

fn lock(neighbours: &Neighbours) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Instant>> {
    neighbours
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl UdpBearer {
    /// Binds the sockets and starts beaconing.
    pub async fn bind(config: UdpConfig) -> Result<Self, BearerError> {
        if config.datagram_mtu < 64 || config.datagram_mtu > 65_000 {
            return Err(BearerError::Unavailable(
                "datagram mtu must be 64 to 65000 bytes".to_owned(),
            ));
        }
        let socket = Arc::new(UdpSocket::bind(config.bind).await?);
        let local = socket.local_addr()?;
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        let neighbours: Neighbours = Arc::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let mut tasks = vec![tokio::spawn(receive(
            Arc::clone(&socket),
            local,
            tx.clone(),
            Arc::clone(&neighbours),
            Arc::clone(&dropped),
        ))];
        if let Some(group) = config.multicast {
            match multicast_socket(group) {
                Ok(listener) => tasks.push(tokio::spawn(receive(
                    Arc::new(listener),
                    local,
                    tx.clone(),
                    Arc::clone(&neighbours),
                    Arc::clone(&dropped),
                ))),
                Err(error) => tracing::warn!(%group, %error, "multicast discovery unavailable"),
            }
        }
        tasks.push(tokio::spawn(beacon(
            Arc::clone(&socket),
            config.clone(),
            tx,
            Arc::clone(&neighbours),
        )));
        tracing::info!(%local, "udp bearer up");
        Ok(UdpBearer {
            socket,
            local,
            mtu: config.datagram_mtu - 2,
            events: Some(rx),
            neighbours,
            dropped,
            tasks,
        })
    }

    /// The local unicast address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The neighbour address of the bearer bound at `addr`.
    pub fn link_addr(addr: SocketAddr) -> LinkAddr {
        link(addr)
    }
}

fn multicast_socket(group: SocketAddrV4) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&SocketAddr::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, group.port())).into())?;
    socket.join_multicast_v4(group.ip(), &Ipv4Addr::UNSPECIFIED)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

async fn receive(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    tx: mpsc::Sender<BearerEvent>,
    neighbours: Neighbours,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let datagram = &buf[..len];
        if from == local || datagram.len() < 2 || datagram[0] != MAGIC {
            continue;
        }
        let is_new = {
            let mut map = lock(&neighbours);
            if !map.contains_key(&from) && map.len() >= MAX_NEIGHBOURS {
                continue;
            }
            map.insert(from, Instant::now()).is_none()
        };
        if is_new && tx.send(BearerEvent::Up(link(from))).await.is_err() {
            return;
        }
        if datagram[1] == DATA
            && tx
                .try_send(BearerEvent::Frame {
                    from: link(from),
                    data: datagram[2..].to_vec(),
                })
                .is_err()
        {
            if tx.is_closed() {
                return;
            }
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn beacon(
    socket: Arc<UdpSocket>,
    config: UdpConfig,
    tx: mpsc::Sender<BearerEvent>,
    neighbours: Neighbours,
) {
    let mut message = vec![MAGIC, BEACON];
    message.extend(config.label.bytes().take(200));
    let mut ticker = tokio::time::interval(config.beacon_interval);
    loop {
        ticker.tick().await;
        for peer in &config.peers {
            let _ = socket.send_to(&message, peer).await;
        }
        if let Some(group) = config.multicast {
            let _ = socket.send_to(&message, SocketAddr::from(group)).await;
        }
        let gone: Vec<SocketAddr> = {
            let mut map = lock(&neighbours);
            let now = Instant::now();
            let gone: Vec<SocketAddr> = map
                .iter()
                .filter(|(_, seen)| now.duration_since(**seen) > config.neighbour_timeout)
                .map(|(a, _)| *a)
                .collect();
            for addr in &gone {
                map.remove(addr);
            }
            gone
        };
        for addr in gone {
            if tx.send(BearerEvent::Down(link(addr))).await.is_err() {
                return;
            }
        }
    }
}

impl Bearer for UdpBearer {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn events(&mut self) -> Option<mpsc::Receiver<BearerEvent>> {
        self.events.take()
    }

    async fn send(&self, to: &LinkAddr, frame: &[u8]) -> Result<(), BearerError> {
        if frame.len() > self.mtu {
            return Err(BearerError::FrameTooLarge {
                size: frame.len(),
                mtu: self.mtu,
            });
        }
        let addr = parse_link(to)?;
        let mut datagram = Vec::with_capacity(frame.len() + 2);
        datagram.extend_from_slice(&[MAGIC, DATA]);
        datagram.extend_from_slice(frame);
        self.socket.send_to(&datagram, addr).await?;
        Ok(())
    }

    async fn broadcast(&self, frame: &[u8]) -> Result<(), BearerError> {
        let peers: Vec<SocketAddr> = lock(&self.neighbours).keys().copied().collect();
        for peer in peers {
            self.send(&link(peer), frame).await?;
        }
        Ok(())
    }

    fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for UdpBearer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
