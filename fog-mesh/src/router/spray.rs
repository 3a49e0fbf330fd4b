//! Binary spray-and-wait (Spyropoulos, Psounis and Raghavendra, 2005).

use super::{Offer, Router, RouterKind, RoutingInfo};
use crate::NodeId;

/// Binary spray-and-wait: a bundle starts with L copies; a node holding n > 1
/// copies gives ⌊n/2⌋ to a neighbour that lacks the bundle and keeps the
/// rest; a node with one copy waits and hands it only to the destination.
/// At most L nodes ever carry a bundle, which bounds the overhead.
#[derive(Debug, Clone)]
pub struct SprayAndWait {
    copies: u32,
}

impl SprayAndWait {
    /// Spray-and-wait with `copies` (L) initial copies, at least 1.
    pub fn new(copies: u32) -> Self {
        SprayAndWait {
            copies: copies.max(1),
        }
    }
}

impl Router for SprayAndWait {
    fn kind(&self) -> RouterKind {
        RouterKind::Spray
    }

    fn initial_copies(&self) -> u32 {
        self.copies
    }

    fn link_up(&mut self, _now: f64, _peer: NodeId) -> RoutingInfo {
        RoutingInfo::None
    }

    fn link_down(&mut self, _now: f64, _peer: NodeId) {}

    fn peer_info(&mut self, _now: f64, _peer: NodeId, _info: &RoutingInfo) {}

    fn offer(&mut self, _now: f64, offer: &Offer) -> u32 {
        if offer.to_destination() {
            offer.copies.max(1)
        } else {
            offer.copies / 2
        }
    }

    fn after_send(&mut self, offer: &Offer, given: u32) -> u32 {
        if offer.to_destination() {
            0
        } else {
            offer.copies.saturating_sub(given)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Trigger;

    #[test]
    fn halves_then_waits_for_the_destination() {
        let mut spray = SprayAndWait::new(8);
        let mut offer = Offer {
            peer: NodeId(2),
            destination: Some(NodeId(9)),
            copies: spray.initial_copies(),
            hops: 0,
            trigger: Trigger::LinkUp,
        };
        let mut held = Vec::new();
        while offer.copies > 1 {
            let given = spray.offer(0.0, &offer);
            held.push(given);
            offer.copies = spray.after_send(&offer, given);
        }
        assert_eq!(held, vec![4, 2, 1]);
        assert_eq!(spray.offer(0.0, &offer), 0, "one copy: wait");
        offer.peer = NodeId(9);
        assert_eq!(spray.offer(0.0, &offer), 1, "the destination gets it");
        assert_eq!(spray.after_send(&offer, 1), 0);
    }
}
