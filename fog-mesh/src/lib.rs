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
