//! Routing: which neighbour gets which bundle.
//!
//! A [`Router`] only decides; the node (or the simulator) moves bundles. The
//! node handles what every scheme shares: a summary-vector exchange when a
//! link comes up (so nothing the peer already has or had is sent again),
//! duplicate suppression, delivery to the destination (after which the copy
//! is dropped) and expiry. The router answers three questions: what to tell a
//! new neighbour ([`Router::link_up`]), how many copies of a bundle to hand to
//! a neighbour ([`Router::offer`]) and how many to keep afterwards
//! ([`Router::after_send`]).

mod flood;
mod prophet;
mod spray;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use flood::{Epidemic, Flooding};
pub use prophet::{Prophet, ProphetParams};
pub use spray::SprayAndWait;

use crate::NodeId;

/// Routing state one node tells a neighbour when their link comes up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RoutingInfo {
    /// Nothing beyond the summary vector.
    None,
    /// PRoPHET delivery predictabilities: (destination, P).
    Predictabilities(Vec<(NodeId, f64)>),
}

/// Why a bundle is being offered to a neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// A link just came up and the stores are being reconciled.
    LinkUp,
    /// The bundle just arrived at (or was created on) this node and the
    /// neighbour is already connected.
    NewBundle,
}

/// One bundle offered to one neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The neighbour.
    pub peer: NodeId,
    /// The bundle's destination node, if known.
    pub destination: Option<NodeId>,
    /// Copies this node holds (spray-and-wait), 1 otherwise.
    pub copies: u32,
    /// Hops the bundle has taken.
    pub hops: u64,
    /// Why it is offered.
    pub trigger: Trigger,
}

impl Offer {
    /// Whether the neighbour is the bundle's destination.
    pub fn to_destination(&self) -> bool {
        self.destination == Some(self.peer)
    }
}

/// A routing scheme. Implementations are deterministic: the same calls give
/// the same answers, which makes simulations reproducible.
pub trait Router: Send {
    /// Which scheme this is.
    fn kind(&self) -> RouterKind;

    /// Copies a bundle created on this node starts with.
    fn initial_copies(&self) -> u32 {
        1
    }

    /// A link to `peer` came up at `now` (seconds); returns what to tell it.
    fn link_up(&mut self, now: f64, peer: NodeId) -> RoutingInfo;

    /// The link to `peer` went down.
    fn link_down(&mut self, now: f64, peer: NodeId);

    /// `peer` told us its routing state.
    fn peer_info(&mut self, now: f64, peer: NodeId, info: &RoutingInfo);

    /// How many copies to hand over (0: do not send).
    fn offer(&mut self, now: f64, offer: &Offer) -> u32;

    /// After `given` copies went to the neighbour: how many this node keeps
    /// (0 drops its copy).
    fn after_send(&mut self, offer: &Offer, given: u32) -> u32 {
        if offer.to_destination() {
            0
        } else {
            offer.copies.saturating_sub(given).max(1)
        }
    }
}

/// The routing schemes fog-mesh has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RouterKind {
    /// Managed flooding: relay each new bundle once to every neighbour, TTL-limited.
    Flood,
    /// Epidemic: reconcile whole stores on every contact.
    Epidemic,
    /// PRoPHET (RFC 6693) with GRTR forwarding.
    Prophet,
    /// Binary spray-and-wait.
    Spray,
}

impl RouterKind {
    /// Every scheme, in a fixed order.
    pub const ALL: [RouterKind; 4] = [
        RouterKind::Flood,
        RouterKind::Epidemic,
        RouterKind::Prophet,
        RouterKind::Spray,
    ];

    /// The scheme's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Flood => "flood",
            RouterKind::Epidemic => "epidemic",
            RouterKind::Prophet => "prophet",
            RouterKind::Spray => "spray",
        }
    }
}

impl fmt::Display for RouterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RouterKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RouterKind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| format!("unknown router `{text}` (flood, epidemic, prophet, spray)"))
    }
}

/// Settings for building any router.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RouterConfig {
    /// Managed flooding's hop limit (default 7).
    pub flood_ttl: u64,
    /// Spray-and-wait's initial copies L (default 8).
    pub spray_copies: u32,
    /// PRoPHET parameters (RFC 6693 defaults).
    pub prophet: ProphetParams,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            flood_ttl: 7,
            spray_copies: 8,
            prophet: ProphetParams::default(),
        }
    }
}

impl RouterConfig {
    /// A router of `kind` for the node `me`.
    pub fn build(&self, kind: RouterKind, me: NodeId) -> Box<dyn Router> {
        match kind {
            RouterKind::Flood => Box::new(Flooding::new(self.flood_ttl)),
            RouterKind::Epidemic => Box::new(Epidemic::new()),
            RouterKind::Prophet => Box::new(Prophet::new(me, self.prophet)),
            RouterKind::Spray => Box::new(SprayAndWait::new(self.spray_copies)),
        }
    }
}
