//! Offline, delay-tolerant messaging for fog.
//!
//! When there is no internet, fog nodes still exchange messages: bundles
//! (Bundle Protocol version 7, RFC 9171) hop device to device over whatever
//! link exists (UDP on a LAN, Bluetooth LE) and wait in a persistent store
//! until a path appears. Routing (managed flooding, epidemic, PRoPHET,
//! spray-and-wait) decides which neighbour gets which bundle.
//!
//! ```
//! use fog_mesh::{Bundle, BundleBuilder, EndpointId};
//!
//! let bundle = BundleBuilder::new(
//!     EndpointId::dtn("phone-a", "chat")?,
//!     EndpointId::dtn("laptop-c", "chat")?,
//! )
//! .payload(b"meet at the river".to_vec())
//! .build();
//!
//! // What goes on the wire is CBOR with a CRC on every block.
//! let bytes = bundle.encode();
//! let received = Bundle::decode(&bytes)?;
//! assert_eq!(received.payload(), b"meet at the river");
//! assert_eq!(received.destination().to_string(), "dtn://laptop-c/chat");
//! # Ok::<(), fog_mesh::BundleError>(())
//! ```
//!
//! ## Bearers
//!
//! A [`Bearer`] carries frames of at most [`Bearer::mtu`] bytes between
//! neighbours and reports neighbours coming and going; the node above it
//! fragments larger messages and reassembles them with bounds. Three bearers
//! exist.
//!
//! [`UdpBearer`] works on a LAN: neighbours are found by multicast beacons
//! (and/or a list of known addresses) and frames travel as unicast
//! datagrams; a neighbour is down after a few seconds of silence.
//!
//! [`MemoryBearer`] connects endpoints of a [`MemoryHub`] in one process;
//! links are switched on and off by hand, as contacts in a trace are, for
//! simulations and tests.
//!
//! `BleBearer` (cargo feature `ble`, off by default; it needs the D-Bus
//! development files, Debian `libdbus-1-dev pkg-config`) links nearby devices
//! over Bluetooth LE GATT. Each device plays two roles. As a central, through
//! the `btleplug` crate, it scans for the fog mesh service
//! `4f1ca001-6d1e-4b57-9c3a-2b9e5d7f0f6d`, connects, writes frames to the RX
//! characteristic `4f1ca002-6d1e-4b57-9c3a-2b9e5d7f0f6d` with
//! write-without-response and takes incoming frames from notifications on the
//! TX characteristic `4f1ca003-6d1e-4b57-9c3a-2b9e5d7f0f6d`. As a peripheral,
//! on Linux only and through the `bluer` crate (btleplug cannot advertise), it
//! advertises that service and serves the same two characteristics. A
//! neighbour is named `ble:AA:BB:CC:DD:EE:FF` and is up while either link to
//! it exists. Each link carries frames up to its negotiated ATT MTU minus 3
//! (20 bytes when unknown); the bearer's MTU is a configured, conservative
//! 180 bytes by default. Without an adapter, construction fails with
//! [`BearerError::Unavailable`]. Its neighbour table, address naming and
//! frame bounds are unit-tested, but the radio path has not been tested
//! against real Bluetooth hardware.

mod bearer;
mod bundle;
mod eid;
mod error;
mod frame;
mod link;
mod node;
mod router;
mod seal;
mod sim;
mod store;
mod wire;

#[cfg(feature = "ble")]
pub use bearer::{
    BLE_DEFAULT_PAYLOAD, BLE_MAX_FRAME, BLE_RX_UUID, BLE_SERVICE_UUID, BLE_TX_UUID, BleBearer,
    BleConfig,
};
pub use bearer::{
    Bearer, BearerEvent, EVENT_CHANNEL, LinkAddr, MemoryBearer, MemoryHub, UdpBearer, UdpConfig,
};
pub use bundle::{
    BUNDLE_AGE_BLOCK, Block, Bundle, BundleBuilder, BundleId, CrcType, CreationTimestamp,
    DEFAULT_HOP_LIMIT, FragmentInfo, HOP_COUNT_BLOCK, HopCount, MAX_BLOCKS, MAX_BUNDLE_SIZE,
    PAYLOAD_BLOCK, PREVIOUS_NODE_BLOCK, dtn_now_ms,
};
pub use eid::{EndpointId, MAX_EID_LEN};
pub use error::{BearerError, BundleError, FrameError, SimError, StoreError};
pub use frame::{
    FRAME_HEADER, Frame, Reassembler, ReassemblyLimits, ReassemblyStats, decode_frame, fragment,
};
pub use link::NOISE_PARAMS;
pub use node::{Delivery, MeshConfig, MeshError, MeshNode, MeshStats};
pub use router::{
    Epidemic, Flooding, Offer, Prophet, ProphetParams, Router, RouterConfig, RouterKind,
    RoutingInfo, SprayAndWait, Trigger,
};
pub use seal::{
    Keyring, MAX_KEYRING, MeshIdentity, PeerKeys, SEAL_CONTEXT, SealError, open, seal,
    verify_sender,
};
pub use sim::{
    ContactEvent, ContactTrace, MAX_TRACE_NODES, RandomWaypoint, SimConfig, SimReport, Workload,
    simulate,
};
pub use store::{BundleStore, Insert, Priority, StoreConfig, StoredMeta};
pub use wire::{LinkMessage, MAX_LINK_MESSAGE, MAX_SUMMARY};

/// A node as routing sees it: the ipn node number, or a stable hash of a dtn
/// node name (see [`EndpointId::node_id`]).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
