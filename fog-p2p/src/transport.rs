//! Transports and the pluggable-transport seam.
//!
//! A fog node always speaks noise and yamux on top of whatever carries its
//! bytes. TCP, QUIC and the in-process memory transport are built in; any
//! other byte-stream transport (the mixnet, the offline mesh, a test harness)
//! plugs in as a [`TransportFactory`] in [`crate::Config::extra_transports`],
//! usually built with [`upgrade`] from a raw libp2p [`Transport`]. All
//! transports are combined and handed to libp2p's
//! `SwarmBuilder::with_other_transport`.

use std::sync::Arc;
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{Boxed, MemoryTransport};
use libp2p::core::upgrade::Version;
use libp2p::futures::{AsyncRead, AsyncWrite};
use libp2p::identity::Keypair;
use libp2p::{PeerId, Transport, noise, yamux};

/// An authenticated, multiplexed transport, as the swarm takes it.
pub type BoxedTransport = Boxed<(PeerId, StreamMuxerBox)>;

/// Builds one extra transport for a node's identity.
pub type TransportFactory =
    Arc<dyn Fn(&Keypair) -> Result<BoxedTransport, crate::Error> + Send + Sync>;

/// How long the noise and yamux handshakes may take on any transport.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(20);

/// Secures a raw byte-stream transport with noise and multiplexes it with
/// yamux: the usual way to turn another layer's links into a fog-p2p
/// transport.
pub fn upgrade<T>(raw: T, key: &Keypair) -> Result<BoxedTransport, crate::Error>
where
    T: Transport + Send + Unpin + 'static,
    T::Output: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    let noise = noise::Config::new(key).map_err(|e| crate::Error::Transport(e.to_string()))?;
    Ok(raw
        .upgrade(Version::V1Lazy)
        .authenticate(noise)
        .multiplex(yamux::Config::default())
        .timeout(UPGRADE_TIMEOUT)
        .boxed())
}

/// The in-process memory transport (`/memory/<port>` addresses), secured
/// and multiplexed like any other.
pub fn memory(key: &Keypair) -> Result<BoxedTransport, crate::Error> {
    upgrade(MemoryTransport::default(), key)
}

/// A [`TransportFactory`] for the memory transport.
pub fn memory_factory() -> TransportFactory {
    Arc::new(memory)
}

fn tcp(key: &Keypair) -> Result<BoxedTransport, crate::Error> {
    upgrade(
        libp2p::tcp::tokio::Transport::new(libp2p::tcp::Config::default().nodelay(true)),
        key,
    )
}

fn quic(key: &Keypair) -> BoxedTransport {
    libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
        .map(|(peer, conn), _| (peer, StreamMuxerBox::new(conn)))
        .boxed()
}

fn or(a: Option<BoxedTransport>, b: BoxedTransport) -> BoxedTransport {
    match a {
        None => b,
        Some(a) => a.or_transport(b).map(|e, _| e.into_inner()).boxed(),
    }
}

/// Every transport the configuration asks for, combined.
pub(crate) fn build(key: &Keypair, config: &crate::Config) -> Result<BoxedTransport, crate::Error> {
    let mut t: Option<BoxedTransport> = None;
    if config.quic {
        t = Some(or(t, quic(key)));
    }
    if config.tcp {
        t = Some(or(t, tcp(key)?));
    }
    if config.memory {
        t = Some(or(t, memory(key)?));
    }
    for factory in &config.extra_transports {
        t = Some(or(t, factory(key)?));
    }
    let t = t.ok_or_else(|| crate::Error::Transport("no transport enabled".into()))?;
    if config.dns {
        let dns = libp2p::dns::tokio::Transport::system(t)
            .map_err(|e| crate::Error::Transport(format!("dns: {e}")))?;
        Ok(dns.boxed())
    } else {
        Ok(t)
    }
}
