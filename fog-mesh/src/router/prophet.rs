//! PRoPHET (RFC 6693): probabilistic routing using a history of encounters.

use std::collections::BTreeMap;

use super::{Offer, Router, RouterKind, RoutingInfo};
use crate::NodeId;

/// PRoPHET's parameters. The defaults are RFC 6693's (section 3.3), plus a
/// typical interconnection time and an aging time unit, which the RFC leaves
/// to the deployment.
///
/// The time unit sets how fast predictabilities age: with γ = 0.999 a
/// predictability halves in about 693 units. fog's default of one second
/// gives a half-life of about 11.5 minutes, of the order of a walking node's
/// time between contacts. The choice matters: on fog's 50-node
/// random-waypoint benchmark a 1 s unit gives about 0.95x epidemic's delivery
/// at 0.35-0.42x its overhead, while 2 s or more keeps transitive entries
/// alive long enough that PRoPHET forwards nearly as much as epidemic (0.92x
/// overhead). Deployments with rarer contacts want a longer unit.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ProphetParams {
    /// Upper bound of the encounter increment (0.7).
    pub p_encounter_max: f64,
    /// Predictability given at a first encounter (0.5).
    pub p_encounter_first: f64,
    /// Predictabilities below this are forgotten (0.1).
    pub p_first_threshold: f64,
    /// Keeps predictabilities below 1 (0.01).
    pub delta: f64,
    /// Transitivity scaling (0.9).
    pub beta: f64,
    /// Aging factor per time unit (0.999).
    pub gamma: f64,
    /// Typical interconnection time in seconds: encounters closer than this
    /// raise the predictability less (600 s).
    pub typical_interval_s: f64,
    /// Length of one aging time unit in seconds (1 s; see above).
    pub time_unit_s: f64,
}

impl Default for ProphetParams {
    fn default() -> Self {
        ProphetParams {
            p_encounter_max: 0.7,
            p_encounter_first: 0.5,
            p_first_threshold: 0.1,
            delta: 0.01,
            beta: 0.9,
            gamma: 0.999,
            typical_interval_s: 600.0,
            time_unit_s: 1.0,
        }
    }
}

/// A PRoPHET router with GRTR forwarding: a bundle goes to a neighbour whose
/// delivery predictability for its destination is higher than ours.
#[derive(Debug, Clone)]
pub struct Prophet {
    me: NodeId,
    params: ProphetParams,
    table: BTreeMap<NodeId, f64>,
    last_encounter: BTreeMap<NodeId, f64>,
    peers: BTreeMap<NodeId, BTreeMap<NodeId, f64>>,
    last_aged: f64,
}

/// Most entries a neighbour's predictability table may bring.
const MAX_PEER_ENTRIES: usize = 4096;

impl Prophet {
    /// A PRoPHET router on node `me`.
    pub fn new(me: NodeId, params: ProphetParams) -> Self {
        Prophet {
            me,
            params,
            table: BTreeMap::new(),
            last_encounter: BTreeMap::new(),
            peers: BTreeMap::new(),
            last_aged: 0.0,
        }
    }

    /// Our delivery predictability for `destination` (0 when unknown).
    pub fn predictability(&self, destination: NodeId) -> f64 {
        self.table.get(&destination).copied().unwrap_or(0.0)
    }

    /// Equation 2: P = P_old · γ^K for K elapsed time units.
    fn age(&mut self, now: f64) {
        let units = ((now - self.last_aged) / self.params.time_unit_s).floor();
        if units < 1.0 {
            return;
        }
        let factor = self.params.gamma.powf(units);
        let threshold = self.params.p_first_threshold;
        self.table.retain(|_, p| {
            *p *= factor;
            *p >= threshold
        });
        self.last_aged += units * self.params.time_unit_s;
    }

    /// Equation 1, with the encounter increment scaled by how long ago the
    /// last encounter was.
    fn encounter(&mut self, now: f64, peer: NodeId) {
        let p = &self.params;
        let updated = match (self.table.get(&peer), self.last_encounter.get(&peer)) {
            (Some(&old), Some(&last)) => {
                let interval = (now - last).max(0.0);
                let p_encounter = if interval < p.typical_interval_s {
                    p.p_encounter_max * interval / p.typical_interval_s
                } else {
                    p.p_encounter_max
                };
                old + (1.0 - p.delta - old) * p_encounter
            }
            (Some(&old), None) => old + (1.0 - p.delta - old) * p.p_encounter_max,
            (None, _) => p.p_encounter_first,
        };
        self.table.insert(peer, updated.min(1.0 - p.delta));
        self.last_encounter.insert(peer, now);
    }
}

impl Router for Prophet {
    fn kind(&self) -> RouterKind {
        RouterKind::Prophet
    }

    fn link_up(&mut self, now: f64, peer: NodeId) -> RoutingInfo {
        self.age(now);
        self.encounter(now, peer);
        RoutingInfo::Predictabilities(self.table.iter().map(|(&n, &p)| (n, p)).collect())
    }

    fn link_down(&mut self, now: f64, peer: NodeId) {
        self.peers.remove(&peer);
        self.last_encounter.insert(peer, now);
    }

    fn peer_info(&mut self, now: f64, peer: NodeId, info: &RoutingInfo) {
        let RoutingInfo::Predictabilities(entries) = info else {
            return;
        };
        self.age(now);
        let p_ab = self.predictability(peer);
        let beta = self.params.beta;
        let mut theirs = BTreeMap::new();
        for &(c, p_bc) in entries.iter().take(MAX_PEER_ENTRIES) {
            // Bad numbers from a neighbour are ignored, never trusted.
            if !(0.0..=1.0).contains(&p_bc) {
                continue;
            }
            theirs.insert(c, p_bc);
            if c == self.me || c == peer {
                continue;
            }
            // Equation 3: transitivity.
            let candidate = p_ab * p_bc * beta;
            let entry = self.table.entry(c).or_insert(0.0);
            if candidate > *entry {
                *entry = candidate;
            }
        }
        let threshold = self.params.p_first_threshold;
        self.table.retain(|_, p| *p >= threshold);
        self.peers.insert(peer, theirs);
    }

    fn offer(&mut self, _now: f64, offer: &Offer) -> u32 {
        if offer.to_destination() {
            return 1;
        }
        let Some(destination) = offer.destination else {
            return 0;
        };
        let theirs = self
            .peers
            .get(&offer.peer)
            .and_then(|t| t.get(&destination))
            .copied()
            .unwrap_or(0.0);
        u32::from(theirs > self.predictability(destination))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::Trigger;

    #[test]
    fn first_encounter_then_reinforcement() {
        let mut a = Prophet::new(NodeId(1), ProphetParams::default());
        a.link_up(0.0, NodeId(2));
        assert!((a.predictability(NodeId(2)) - 0.5).abs() < 1e-12);
        a.link_down(10.0, NodeId(2));
        // Long after the typical interval: the full increment.
        a.link_up(1_000.0, NodeId(2));
        let aged = 0.5 * 0.999f64.powi(1_000);
        let expected = aged + (1.0 - 0.01 - aged) * 0.7;
        assert!((a.predictability(NodeId(2)) - expected).abs() < 1e-9);
    }

    #[test]
    fn transitivity_and_grtr() {
        let mut a = Prophet::new(NodeId(1), ProphetParams::default());
        a.link_up(0.0, NodeId(2));
        // B often meets D (node 9).
        a.peer_info(
            0.0,
            NodeId(2),
            &RoutingInfo::Predictabilities(vec![(NodeId(9), 0.8)]),
        );
        let expected = 0.5 * 0.8 * 0.9;
        assert!((a.predictability(NodeId(9)) - expected).abs() < 1e-12);
        let offer = Offer {
            peer: NodeId(2),
            destination: Some(NodeId(9)),
            copies: 1,
            hops: 0,
            trigger: Trigger::LinkUp,
        };
        assert_eq!(a.offer(0.0, &offer), 1, "B is the better carrier");
        a.peer_info(
            0.0,
            NodeId(2),
            &RoutingInfo::Predictabilities(vec![(NodeId(9), 0.1)]),
        );
        assert_eq!(a.offer(0.0, &offer), 0, "B is now worse than us");
    }

    #[test]
    fn garbage_predictabilities_are_ignored() {
        let mut a = Prophet::new(NodeId(1), ProphetParams::default());
        a.link_up(0.0, NodeId(2));
        a.peer_info(
            0.0,
            NodeId(2),
            &RoutingInfo::Predictabilities(vec![(NodeId(9), f64::NAN), (NodeId(8), 7.0)]),
        );
        assert_eq!(a.predictability(NodeId(9)), 0.0);
        assert_eq!(a.predictability(NodeId(8)), 0.0);
    }
}
