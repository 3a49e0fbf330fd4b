//! Bearers: the links bundles travel over.
//!
//! A [`Bearer`] sends frames of at most [`Bearer::mtu`] bytes to a neighbour
//! or to every neighbour, and reports neighbours coming and going and frames
//! arriving as [`BearerEvent`]s on a bounded channel. Frames over the MTU are
//! refused; the node fragments larger messages (see [`crate::fragment`]).

#[cfg(feature = "ble")]
mod ble;
mod memory;
mod udp;

use std::fmt;
use std::future::Future;

use tokio::sync::mpsc;

#[cfg(feature = "ble")]
pub use ble::{
    BLE_DEFAULT_PAYLOAD, BLE_MAX_FRAME, BLE_RX_UUID, BLE_SERVICE_UUID, BLE_TX_UUID, BleBearer,
    BleConfig,
};
pub use memory::{MemoryBearer, MemoryHub};
pub use udp::{UdpBearer, UdpConfig};

use crate::error::BearerError;

/// A neighbour's address on one bearer (`udp:127.0.0.1:4556`, `mem:3`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkAddr(String);

impl LinkAddr {
    /// An address from its text form.
    pub fn new(text: impl Into<String>) -> Self {
        LinkAddr(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LinkAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something that happened on a bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BearerEvent {
    /// A neighbour came into reach.
    Up(LinkAddr),
    /// A neighbour went out of reach.
    Down(LinkAddr),
    /// A frame arrived from a neighbour.
    Frame {
        /// The sender.
        from: LinkAddr,
        /// The frame.
        data: Vec<u8>,
    },
}

/// Capacity of every bearer's event channel. When it is full, arriving
/// frames are dropped and counted (the routing protocol resends what
/// matters on the next contact); neighbour up/down events wait for room.
pub const EVENT_CHANNEL: usize = 1024;

/// A link technology.
pub trait Bearer: Send + Sync + 'static {
    /// Largest frame this bearer carries.
    fn mtu(&self) -> usize;

    /// Takes the event stream. The first call returns it; later calls `None`.
    fn events(&mut self) -> Option<mpsc::Receiver<BearerEvent>>;

    /// Sends one frame to one neighbour.
    fn send(
        &self,
        to: &LinkAddr,
        frame: &[u8],
    ) -> impl Future<Output = Result<(), BearerError>> + Send;

    /// Sends one frame to every neighbour in reach.
    fn broadcast(&self, frame: &[u8]) -> impl Future<Output = Result<(), BearerError>> + Send;

    /// Frames dropped on arrival because the event channel was full.
    fn dropped_frames(&self) -> u64;
}
