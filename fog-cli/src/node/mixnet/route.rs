//! The plane's view of the directory and its route selection.
//!
//! Every route of the plane *ends at a given node*: forward messages at
//! their destination, reply blocks and loop cover at their creator. That is
//! not what [`fog_mix::Directory::select`] does (it draws every hop), so the
//! plane draws the hops before the last itself:
//!
//! * every mix on a route is distinct; a route of `h` hops needs `h`
//!   distinct mixes in the directory, and asking for more is an error that
//!   names the level and the count;
//! * the hops before the last avoid one node when they can (the sender for
//!   a forward message, the replier for a reply block), and use it only when
//!   the directory has no other;
//! * among the mixes left, a hop prefers one of an operator family and an
//!   IPv4 /16 (IPv6 /32) not yet on the route, and drops that preference
//!   when nothing satisfies it (a devnet on 127.0.0.1 is one /16);
//! * hops are drawn uniformly: every fog node announces stake 1 in its mix
//!   descriptor, and the plane keeps no reputation of its own.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use fog_mix::{Directory, NodeAddress, NodeDescriptor, PrivacyLevel};
use rand::{Rng, RngExt};

/// One mix as the route selection sees it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) address: NodeAddress,
    pub(crate) family: String,
    pub(crate) group: Option<[u8; 4]>,
}

/// The network group of a socket address: /16 for IPv4 (and mapped IPv4),
/// /32 for IPv6.
fn group_of(addr: SocketAddr) -> [u8; 4] {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [4, o[0], o[1], 0]
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                let o = v4.octets();
                [4, o[0], o[1], 0]
            } else {
                let o = v6.octets();
                [o[0], o[1], o[2], o[3]]
            }
        }
    }
}

/// The directory a plane routes over: fog-mix's [`Directory`] (lookups,
/// route nodes) and the members in selection order.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) directory: Directory,
    pub(crate) members: Vec<Member>,
    /// The descriptors it was built from, sorted (to skip rebuilding an
    /// unchanged directory).
    pub(crate) source: Vec<Vec<u8>>,
}

impl Snapshot {
    /// Builds a snapshot from verified descriptors whose addresses parse.
    pub(crate) fn new(descriptors: Vec<NodeDescriptor>, source: Vec<Vec<u8>>) -> Self {
        let (directory, _rejected) = Directory::new(descriptors);
        let members = directory
            .descriptors()
            .map(|d| Member {
                address: d.node_address(),
                family: d.family().to_owned(),
                group: d.address().parse::<SocketAddr>().ok().map(group_of),
            })
            .collect();
        Snapshot {
            directory,
            members,
            source,
        }
    }
}

/// Why no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// The directory has too few mixes for the level.
    TooFewMixes {
        level: PrivacyLevel,
        hops: usize,
        known: usize,
    },
    /// The node a route must end at is not in the directory.
    UnknownNode(NodeAddress),
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::TooFewMixes { level, hops, known } => write!(
                f,
                "a {level} route needs {hops} distinct mixes, the directory knows {known}"
            ),
            RouteError::UnknownNode(a) => write!(
                f,
                "no mix with address {} in the directory",
                hex::encode(a.as_bytes())
            ),
        }
    }
}

impl std::error::Error for RouteError {}

/// Records a chosen mix's family and group.
fn note<'a>(m: &'a Member, families: &mut HashSet<&'a str>, groups: &mut HashSet<[u8; 4]>) {
    if !m.family.is_empty() {
        families.insert(m.family.as_str());
    }
    if let Some(g) = m.group {
        groups.insert(g);
    }
}

/// Draws a route of `hops` distinct mixes ending at `last`, its other hops
/// avoiding `avoid` when the directory allows (see the module docs).
/// `level` only names the level in errors.
pub(crate) fn select<R: Rng + ?Sized>(
    members: &[Member],
    level: PrivacyLevel,
    hops: usize,
    last: NodeAddress,
    avoid: NodeAddress,
    rng: &mut R,
) -> Result<Vec<NodeAddress>, RouteError> {
    let Some(last_member) = members.iter().find(|m| m.address == last) else {
        return Err(RouteError::UnknownNode(last));
    };
    if members.len() < hops {
        return Err(RouteError::TooFewMixes {
            level,
            hops,
            known: members.len(),
        });
    }
    let need = hops.saturating_sub(1);
    let others = members.len() - 1;
    let avoid_possible = avoid != last && members.iter().any(|m| m.address == avoid);
    let use_avoided = avoid_possible && others - 1 < need;
    let mut pool: Vec<&Member> = members
        .iter()
        .filter(|m| m.address != last && (use_avoided || m.address != avoid))
        .collect();
    let mut families: HashSet<&str> = HashSet::new();
    let mut groups: HashSet<[u8; 4]> = HashSet::new();
    let mut route = Vec::with_capacity(hops);
    note(last_member, &mut families, &mut groups);
    for _ in 0..need {
        let diverse: Vec<usize> = (0..pool.len())
            .filter(|&i| {
                let m = pool[i];
                (m.family.is_empty() || !families.contains(m.family.as_str()))
                    && m.group.is_none_or(|g| !groups.contains(&g))
            })
            .collect();
        let i = if diverse.is_empty() {
            rng.random_range(0..pool.len())
        } else {
            diverse[rng.random_range(0..diverse.len())]
        };
        let m = pool.swap_remove(i);
        note(m, &mut families, &mut groups);
        route.push(m.address);
    }
    route.push(last);
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8, family: &str, group: Option<[u8; 4]>) -> Member {
        Member {
            address: NodeAddress::from_bytes([i; 32]),
            family: family.to_owned(),
            group,
        }
    }

    fn addr(i: u8) -> NodeAddress {
        NodeAddress::from_bytes([i; 32])
    }

    #[test]
    fn routes_are_distinct_end_at_the_target_and_avoid_the_sender() {
        let lo = Some([4, 127, 0, 0]);
        let members: Vec<Member> = (0..8).map(|i| member(i, &format!("n{i}"), lo)).collect();
        let mut rng = rand::rng();
        for _ in 0..200 {
            for level in PrivacyLevel::ALL {
                let r = select(&members, level, level.hops(), addr(3), addr(5), &mut rng).unwrap();
                assert_eq!(r.len(), level.hops());
                assert_eq!(r.last(), Some(&addr(3)));
                let set: HashSet<_> = r.iter().collect();
                assert_eq!(set.len(), r.len(), "repeated mix in {r:?}");
                // 8 mixes: a 7-hop route needs 6 besides the target, and
                // 6 remain without the sender.
                assert!(!r.contains(&addr(5)));
            }
        }
    }

    #[test]
    fn the_avoided_node_is_used_only_when_needed_and_too_few_is_an_error() {
        let members: Vec<Member> = (0..3).map(|i| member(i, "", None)).collect();
        let mut rng = rand::rng();
        let r = select(
            &members,
            PrivacyLevel::Private,
            3,
            addr(0),
            addr(1),
            &mut rng,
        )
        .unwrap();
        assert!(r.contains(&addr(1)));
        let e = select(
            &members,
            PrivacyLevel::Confidential,
            5,
            addr(0),
            addr(1),
            &mut rng,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a CONFIDENTIAL route needs 5 distinct mixes, the directory knows 3"
        );
        let e = select(
            &members,
            PrivacyLevel::Public,
            1,
            addr(9),
            addr(1),
            &mut rng,
        )
        .unwrap_err();
        assert!(matches!(e, RouteError::UnknownNode(_)));
    }

    #[test]
    fn diversity_is_preferred() {
        // Four mixes: two share family "a", two share a /16.
        let members = vec![
            member(0, "t", Some([4, 10, 0, 0])),
            member(1, "a", Some([4, 10, 1, 0])),
            member(2, "a", Some([4, 10, 2, 0])),
            member(3, "b", Some([4, 10, 2, 0])),
            member(4, "c", Some([4, 10, 4, 0])),
        ];
        let mut rng = rand::rng();
        for _ in 0..200 {
            let r = select(
                &members,
                PrivacyLevel::Private,
                3,
                addr(0),
                addr(9),
                &mut rng,
            )
            .unwrap();
            let fams: HashSet<&str> = r
                .iter()
                .map(|a| {
                    members
                        .iter()
                        .find(|m| m.address == *a)
                        .unwrap()
                        .family
                        .as_str()
                })
                .collect();
            assert_eq!(fams.len(), 3, "{r:?}");
        }
    }
}
