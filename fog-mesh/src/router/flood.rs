//! Managed flooding and epidemic routing.

use super::{Offer, Router, RouterKind, RoutingInfo, Trigger};
use crate::NodeId;

/// Managed flooding (the bitchat style): a bundle is relayed once, when it
/// arrives, to every neighbour connected at that moment, until its hop count
/// reaches the TTL. It is not handed out again on later contacts, so it
/// reaches only nodes on a path that exists while it spreads. The duplicate
/// cache is the node's seen set; relay jitter is applied by the live node.
#[derive(Debug, Clone)]
pub struct Flooding {
    ttl: u64,
}

impl Flooding {
    /// Flooding with a hop limit of `ttl` (7 by default in [`super::RouterConfig`]).
    pub fn new(ttl: u64) -> Self {
        Flooding { ttl }
    }
}

impl Router for Flooding {
    fn kind(&self) -> RouterKind {
        RouterKind::Flood
    }

    fn link_up(&mut self, _now: f64, _peer: NodeId) -> RoutingInfo {
        RoutingInfo::None
    }

    fn link_down(&mut self, _now: f64, _peer: NodeId) {}

    fn peer_info(&mut self, _now: f64, _peer: NodeId, _info: &RoutingInfo) {}

    fn offer(&mut self, _now: f64, offer: &Offer) -> u32 {
        u32::from(offer.trigger == Trigger::NewBundle && offer.hops < self.ttl)
    }
}

/// Epidemic routing (Vahdat and Becker): on every contact the two nodes
/// exchange summary vectors and each sends the other every bundle it lacks.
/// Best delivery and latency when buffers and contacts allow, at the highest
/// overhead.
#[derive(Debug, Clone, Default)]
pub struct Epidemic;

impl Epidemic {
    /// An epidemic router.
    pub fn new() -> Self {
        Epidemic
    }
}

impl Router for Epidemic {
    fn kind(&self) -> RouterKind {
        RouterKind::Epidemic
    }

    fn link_up(&mut self, _now: f64, _peer: NodeId) -> RoutingInfo {
        RoutingInfo::None
    }

    fn link_down(&mut self, _now: f64, _peer: NodeId) {}

    fn peer_info(&mut self, _now: f64, _peer: NodeId, _info: &RoutingInfo) {}

    fn offer(&mut self, _now: f64, _offer: &Offer) -> u32 {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(trigger: Trigger, hops: u64) -> Offer {
        Offer {
            peer: NodeId(2),
            destination: Some(NodeId(9)),
            copies: 1,
            hops,
            trigger,
        }
    }

    #[test]
    fn flooding_relays_new_bundles_within_the_ttl_only() {
        let mut flood = Flooding::new(7);
        assert_eq!(flood.offer(0.0, &offer(Trigger::NewBundle, 6)), 1);
        assert_eq!(flood.offer(0.0, &offer(Trigger::NewBundle, 7)), 0);
        assert_eq!(flood.offer(0.0, &offer(Trigger::LinkUp, 0)), 0);
    }

    #[test]
    fn epidemic_sends_everything_and_keeps_its_copy() {
        let mut epidemic = Epidemic::new();
        let o = offer(Trigger::LinkUp, 30);
        assert_eq!(epidemic.offer(0.0, &o), 1);
        assert_eq!(epidemic.after_send(&o, 1), 1);
    }
}
