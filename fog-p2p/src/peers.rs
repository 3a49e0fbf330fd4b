//! Peer management: what the node knows about each peer and how much it
//! trusts it.
//!
//! The reputation score of a peer is the gossipsub score, plus one per
//! successful request (at most 10), minus 2 per failed request, minus 20
//! per misbehaviour report.
//! A peer whose score falls to the ban threshold is banned; when more peers
//! are connected than the configured target, the lowest-scored connected
//! peer is disconnected (bootstrap peers are kept).
//!
//! The book is bounded: it remembers at most `capacity` peers, and when full
//! it forgets the disconnected peer with the lowest score; each peer keeps at
//! most [`MAX_ADDRS`] addresses (oldest dropped first).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId};

/// Addresses remembered per peer.
pub(crate) const MAX_ADDRS: usize = 8;

/// Weight of one failed request in the score.
pub(crate) const FAILED_REQUEST_WEIGHT: f64 = 2.0;
/// Weight of one misbehaviour report in the score.
pub(crate) const MISBEHAVIOUR_WEIGHT: f64 = 20.0;
/// Cap on the bonus for successful requests.
pub(crate) const SUCCESS_CAP: f64 = 10.0;

/// What the node knows about one peer.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerEntry {
    pub(crate) addrs: Vec<Multiaddr>,
    pub(crate) rtt: Option<Duration>,
    pub(crate) connections: u32,
    /// When the first of its current connections was established.
    pub(crate) connected_since: Option<std::time::Instant>,
    pub(crate) gossip_score: f64,
    pub(crate) successes: u32,
    pub(crate) failures: u32,
    pub(crate) misbehaviour: u32,
    pub(crate) agent: Option<String>,
    pub(crate) relay_capable: bool,
}

impl PeerEntry {
    pub(crate) fn score(&self) -> f64 {
        self.gossip_score + f64::from(self.successes).min(SUCCESS_CAP)
            - FAILED_REQUEST_WEIGHT * f64::from(self.failures)
            - MISBEHAVIOUR_WEIGHT * f64::from(self.misbehaviour)
    }
}

/// A snapshot of one peer, as [`crate::Node::peers`] returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerInfo {
    /// The peer.
    #[serde(serialize_with = "ser_display")]
    pub peer_id: PeerId,
    /// Known addresses, newest last.
    #[serde(serialize_with = "ser_display_vec")]
    pub addrs: Vec<Multiaddr>,
    /// Last ping round-trip time in microseconds.
    pub rtt_us: Option<u64>,
    /// Reputation score (see the module documentation).
    pub score: f64,
    /// Whether at least one connection is open.
    pub connected: bool,
    /// Whether the peer is on the ban list.
    pub banned: bool,
    /// The agent version the peer announced.
    pub agent: Option<String>,
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_display_vec<S: serde::Serializer, T: std::fmt::Display>(
    v: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

/// The bounded peer book with the ban list.
#[derive(Debug)]
pub(crate) struct PeerBook {
    peers: HashMap<PeerId, PeerEntry>,
    /// Banned peers with the time of their ban (ms).
    banned: HashMap<PeerId, u64>,
    capacity: usize,
    ban_capacity: usize,
    ban_threshold: f64,
}

impl PeerBook {
    pub(crate) fn new(capacity: usize, ban_capacity: usize, ban_threshold: f64) -> Self {
        Self {
            peers: HashMap::new(),
            banned: HashMap::new(),
            capacity: capacity.max(1),
            ban_capacity: ban_capacity.max(1),
            ban_threshold,
        }
    }

    /// The entry of `peer`, created (evicting if full) when unknown.
    pub(crate) fn entry(&mut self, peer: PeerId) -> &mut PeerEntry {
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.capacity {
            let victim = self
                .peers
                .iter()
                .filter(|(_, e)| e.connections == 0)
                .min_by(|a, b| a.1.score().total_cmp(&b.1.score()))
                .map(|(p, _)| *p);
            if let Some(victim) = victim {
                self.peers.remove(&victim);
            }
        }
        self.peers.entry(peer).or_default()
    }

    pub(crate) fn get(&self, peer: &PeerId) -> Option<&PeerEntry> {
        self.peers.get(peer)
    }

    pub(crate) fn add_addr(&mut self, peer: PeerId, addr: Multiaddr) {
        let e = self.entry(peer);
        if let Some(pos) = e.addrs.iter().position(|a| *a == addr) {
            e.addrs.remove(pos);
        }
        e.addrs.push(addr);
        if e.addrs.len() > MAX_ADDRS {
            e.addrs.remove(0);
        }
    }

    /// Records a failed request; true when the peer should now be banned.
    pub(crate) fn failed(&mut self, peer: PeerId) -> bool {
        let e = self.entry(peer);
        e.failures = e.failures.saturating_add(1);
        e.score() <= self.ban_threshold
    }

    pub(crate) fn succeeded(&mut self, peer: PeerId) {
        let e = self.entry(peer);
        e.successes = e.successes.saturating_add(1);
    }

    /// Records misbehaviour; true when the peer should now be banned.
    pub(crate) fn misbehaved(&mut self, peer: PeerId) -> bool {
        let e = self.entry(peer);
        e.misbehaviour = e.misbehaviour.saturating_add(1);
        e.score() <= self.ban_threshold
    }

    /// Bans `peer` from `since_ms`; the first value is false when it
    /// already was banned. When the list is full the oldest other ban is
    /// lifted and returned second.
    pub(crate) fn ban(&mut self, peer: PeerId, since_ms: u64) -> (bool, Option<PeerId>) {
        if self.banned.contains_key(&peer) {
            return (false, None);
        }
        let mut lifted = None;
        if self.banned.len() >= self.ban_capacity {
            lifted = self
                .banned
                .iter()
                .min_by_key(|(p, since)| (**since, **p))
                .map(|(p, _)| *p);
            if let Some(p) = &lifted {
                self.banned.remove(p);
            }
        }
        self.banned.insert(peer, since_ms);
        (true, lifted)
    }

    pub(crate) fn unban(&mut self, peer: &PeerId) -> bool {
        self.banned.remove(peer).is_some()
    }

    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains_key(peer)
    }

    pub(crate) fn connected_count(&self) -> usize {
        self.peers.values().filter(|e| e.connections > 0).count()
    }

    /// Up to `n` peers outside `keep`, connected since `settled` or
    /// earlier (a younger connection may be serving a query), lowest score
    /// first.
    pub(crate) fn worst_connected(
        &self,
        n: usize,
        keep: &HashSet<PeerId>,
        settled: std::time::Instant,
    ) -> Vec<PeerId> {
        let mut candidates: Vec<(f64, PeerId)> = self
            .peers
            .iter()
            .filter(|(p, e)| {
                e.connections > 0
                    && !keep.contains(p)
                    && e.connected_since.is_none_or(|t| t <= settled)
            })
            .map(|(p, e)| (e.score(), *p))
            .collect();
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        candidates.into_iter().take(n).map(|(_, p)| p).collect()
    }

    pub(crate) fn snapshot(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(p, e)| PeerInfo {
                peer_id: *p,
                addrs: e.addrs.clone(),
                rtt_us: e.rtt.map(|d| d.as_micros() as u64),
                score: e.score(),
                connected: e.connections > 0,
                banned: self.banned.contains_key(p),
                agent: e.agent.clone(),
            })
            .collect();
        for p in self.banned.keys() {
            if !self.peers.contains_key(p) {
                out.push(PeerInfo {
                    peer_id: *p,
                    addrs: Vec::new(),
                    rtt_us: None,
                    score: f64::NEG_INFINITY,
                    connected: false,
                    banned: true,
                    agent: None,
                });
            }
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&PeerId, &mut PeerEntry)> {
        self.peers.iter_mut()
    }

    pub(crate) fn relay_candidates(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, e)| e.relay_capable && e.connections > 0)
            .map(|(p, _)| *p)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_misbehaviour_lower_the_score_to_a_ban() {
        let mut book = PeerBook::new(4, 4, -50.0);
        let p = PeerId::random();
        book.succeeded(p);
        assert!(book.get(&p).unwrap().score() > 0.0);
        assert!(!book.failed(p));
        assert!(!book.misbehaved(p));
        assert!(!book.misbehaved(p));
        assert!(book.misbehaved(p));
    }

    #[test]
    fn the_book_is_bounded_and_forgets_the_worst_disconnected_peer() {
        let mut book = PeerBook::new(2, 2, -50.0);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        book.entry(a).connections = 1;
        book.failed(b);
        book.succeeded(c);
        assert!(book.get(&a).is_some());
        assert!(book.get(&b).is_none(), "b was the worst disconnected peer");
        assert!(book.get(&c).is_some());
        let keep = HashSet::new();
        book.entry(c).connections = 1;
        book.failed(a);
        let now = std::time::Instant::now();
        assert_eq!(book.worst_connected(1, &keep, now), vec![a]);
        assert_eq!(
            book.worst_connected(5, &keep, now),
            vec![a, c],
            "worst first"
        );
        book.entry(a).connected_since = Some(now);
        let earlier = now.checked_sub(Duration::from_secs(1)).unwrap();
        assert_eq!(
            book.worst_connected(5, &keep, earlier),
            vec![c],
            "young links stay"
        );
        let keep = HashSet::from([a]);
        assert_eq!(
            book.worst_connected(5, &keep, now),
            vec![c],
            "kept peers stay"
        );
        assert!(book.worst_connected(0, &keep, now).is_empty());
    }

    #[test]
    fn the_ban_list_is_bounded_and_lifts_the_oldest_ban() {
        let mut book = PeerBook::new(4, 2, -50.0);
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        assert_eq!(book.ban(a, 1), (true, None));
        assert_eq!(book.ban(a, 5), (false, None));
        assert_eq!(book.ban(b, 2), (true, None));
        assert_eq!(book.ban(c, 3), (true, Some(a)));
        assert!(!book.is_banned(&a));
        assert!(book.is_banned(&b) && book.is_banned(&c));
    }

    #[test]
    fn addresses_are_bounded() {
        let mut book = PeerBook::new(2, 2, -50.0);
        let p = PeerId::random();
        for port in 0..20u16 {
            book.add_addr(p, format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap());
        }
        assert_eq!(book.get(&p).unwrap().addrs.len(), MAX_ADDRS);
    }
}
