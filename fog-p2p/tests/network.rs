//! Real networks of fog-p2p nodes on loopback sockets and the memory transport.

use std::time::Duration;

use fog_p2p::{Config, Event, Multiaddr, Node, PeerId, Priority, SendOutcome};
use tokio::sync::broadcast;

/// Hang guard for whole tests (not a timing assertion: a healthy run takes
/// a few seconds; this only turns a hang into a failure).
const GUARD: Duration = Duration::from_mins(4);

/// Logs to the test output when `FOG_TEST_LOG` holds a filter.
fn logs() {
    if let Ok(filter) = std::env::var("FOG_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

fn tcp_config() -> Config {
    let mut c = Config::local();
    c.quic = false;
    c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    c
}

async fn first_addr(node: &Node) -> Multiaddr {
    loop {
        if let Some(a) = node.listen_addrs().await.unwrap().into_iter().next() {
            return a.with_p2p(node.peer_id()).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for<T>(
    events: &mut broadcast::Receiver<Event>,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    loop {
        match events.recv().await {
            Ok(e) => {
                if let Some(t) = pick(&e) {
                    return t;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => panic!("node stopped"),
        }
    }
}

/// Retries `f` until it succeeds (the network converges asynchronously).
async fn eventually<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let mut last = None;
    for _ in 0..200 {
        match f().await {
            Ok(t) => return t,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: never succeeded: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_nodes_on_loopback() {
    tokio::time::timeout(GUARD, thirty_nodes())
        .await
        .expect("hang guard");
}

async fn thirty_nodes() {
    logs();
    const N: usize = 30;
    const TOPIC: &str = "fog-test";
    let dir = tempfile::tempdir().unwrap();

    let seed = Node::start(tcp_config()).await.unwrap();
    let seed_addr = first_addr(&seed).await;
    let mut nodes = vec![seed];
    for i in 1..N {
        let mut c = tcp_config();
        c.bootstrap = vec![seed_addr.clone()];
        if i == N - 1 {
            c.key_file = Some(dir.path().join("target.key"));
        }
        if i == 1 {
            c.queue_path = Some(dir.path().join("sender-queue.sqlite"));
        }
        nodes.push(Node::start(c).await.unwrap());
    }
    let ids: Vec<PeerId> = nodes.iter().map(Node::peer_id).collect();
    for n in &nodes {
        n.subscribe(TOPIC).await.unwrap();
    }
    libp2p_join(
        nodes
            .iter()
            .map(|n| async move {
                eventually("routing table", || async {
                    match n.stats().await {
                        Ok(s) if s.routing_table > 0 => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                })
                .await;
            })
            .collect(),
    )
    .await;

    // Every node finds every other through the DHT.
    // Each node looks its peers up one after the other, all nodes at once.
    let mut lookups = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let ids = &ids;
        lookups.push(async move {
            for (j, target) in ids.iter().enumerate() {
                if i != j {
                    eventually("find_peer", || n.find_peer(*target)).await;
                }
            }
        });
    }
    libp2p_join(lookups).await;

    // A record put by one node is read by another; a capability is found.
    nodes[3]
        .put_record(b"fog/key", b"value".to_vec())
        .await
        .unwrap();
    let got = eventually("get_record", || nodes[17].get_record(b"fog/key")).await;
    assert_eq!(got.value, b"value");
    nodes[5].provide("exec:wasm").await.unwrap();
    let providers = eventually("find_providers", || async {
        let p = nodes[20].find_providers("exec:wasm").await?;
        if p.is_empty() {
            Err(fog_p2p::Error::NotFound)
        } else {
            Ok(p)
        }
    })
    .await;
    assert_eq!(providers, [ids[5]]);

    // A gossip message reaches every subscriber.
    let mut subs: Vec<_> = nodes.iter().map(Node::events).collect();
    eventually("publish", || nodes[7].publish(TOPIC, b"hello all".to_vec())).await;
    for (i, events) in subs.iter_mut().enumerate() {
        if i == 7 {
            continue;
        }
        let source = wait_for(events, |e| match e {
            Event::Gossip {
                topic,
                source,
                data,
                ..
            } if topic == TOPIC && data == b"hello all" => Some(*source),
            _ => None,
        })
        .await;
        assert_eq!(source, Some(ids[7]), "signed by the publisher");
    }

    // A direct message to a stopped node is queued and delivered after it
    // restarts with the same identity and address.
    let target = nodes.pop().unwrap();
    let target_id = target.peer_id();
    let target_addr = target.listen_addrs().await.unwrap()[0].clone();
    target.shutdown().await;
    let sender = &nodes[1];
    let mut sender_events = sender.events();
    let outcome = eventually("send", || async {
        match sender
            .send(
                target_id,
                b"while you were away".to_vec(),
                Priority::High,
                Duration::from_mins(10),
            )
            .await
        {
            Ok(SendOutcome::Queued) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(outcome, ());
    assert_eq!(sender.stats().await.unwrap().queued, 1);

    let mut c = tcp_config();
    c.key_file = Some(dir.path().join("target.key"));
    c.listen = vec![target_addr];
    c.bootstrap = vec![seed_addr.clone()];
    let restarted = eventually("restart", || Node::start(c.clone())).await;
    assert_eq!(
        restarted.peer_id(),
        target_id,
        "same key file, same identity"
    );
    let mut target_events = restarted.events();
    let payload = wait_for(&mut target_events, |e| match e {
        Event::Direct { from, envelope } if *from == ids[1] => Some(envelope.payload.clone()),
        _ => None,
    })
    .await;
    assert_eq!(payload, b"while you were away");
    wait_for(&mut sender_events, |e| match e {
        Event::Delivered { peer, .. } if *peer == target_id => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(sender.stats().await.unwrap().queued, 0);

    restarted.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// Runs futures concurrently (a small join_all).
async fn libp2p_join<F: Future<Output = ()>>(futs: Vec<F>) {
    libp2p::futures::future::join_all(futs).await;
}

fn memory_only() -> Config {
    let mut c = Config::local();
    c.tcp = false;
    c.quic = false;
    c.extra_transports = vec![fog_p2p::transport::memory_factory()];
    c.listen = vec!["/memory/0".parse().unwrap()];
    c
}

/// The pluggable-transport seam: nodes that only speak a transport given in
/// `extra_transports` (the in-process memory transport here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_over_a_plugged_in_transport() {
    tokio::time::timeout(GUARD, async {
        let a = Node::start(memory_only()).await.unwrap();
        let a_addr = first_addr(&a).await;
        assert!(a_addr.to_string().starts_with("/memory/"));
        let mut c = memory_only();
        c.bootstrap = vec![a_addr];
        let b = Node::start(c).await.unwrap();

        let mut a_events = a.events();
        let a2 = a.peer_id();
        let asker = tokio::spawn(async move {
            let reply = b.request(a2, b"ping?".to_vec(), Priority::Critical).await;
            (b, reply)
        });
        let id = wait_for(&mut a_events, |e| match e {
            Event::Request { id, payload, .. } if payload == b"ping?" => Some(*id),
            _ => None,
        })
        .await;
        a.reply(id, Ok(b"pong!".to_vec())).await.unwrap();
        let (b, reply) = asker.await.unwrap();
        assert_eq!(reply.unwrap(), b"pong!");
        assert!(matches!(
            a.reply(id, Ok(Vec::new())).await,
            Err(fog_p2p::Error::UnknownRequest)
        ));

        // A refused request comes back as an error with the reason.
        let b2 = b.peer_id();
        let _ = b2;
        let a_id = a.peer_id();
        let asker = tokio::spawn(async move {
            let r = b.request(a_id, b"again".to_vec(), Priority::Normal).await;
            (b, r)
        });
        let id = wait_for(&mut a_events, |e| match e {
            Event::Request { id, .. } => Some(*id),
            _ => None,
        })
        .await;
        a.reply(id, Err("no thanks".into())).await.unwrap();
        let (b, r) = asker.await.unwrap();
        assert!(matches!(r, Err(fog_p2p::Error::Refused(reason)) if reason == "no thanks"));

        // Peer info has the other side with an RTT once ping ran.
        let peers = eventually("rtt", || async {
            let p = a.peers().await.unwrap();
            match p.iter().find(|p| p.peer_id == b.peer_id()) {
                Some(info) if info.connected && info.rtt_us.is_some() => Ok(info.clone()),
                _ => Err("no rtt yet"),
            }
        })
        .await;
        assert!(!peers.banned);

        // A ban closes the connection and refuses new requests.
        a.ban(b.peer_id()).await.unwrap();
        let info = a.peers().await.unwrap();
        assert!(info.iter().any(|p| p.peer_id == b.peer_id() && p.banned));
        assert!(
            b.request(a.peer_id(), b"x".to_vec(), Priority::Normal)
                .await
                .is_err()
        );
        b.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("hang guard");
}

/// Two nodes over QUIC on loopback exchange gossip and a direct message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_on_loopback() {
    tokio::time::timeout(GUARD, async {
        let mut c = Config::local();
        c.tcp = false;
        c.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
        let a = Node::start(c.clone()).await.unwrap();
        let a_addr = first_addr(&a).await;
        assert!(a_addr.to_string().contains("quic-v1"));
        c.bootstrap = vec![a_addr];
        let b = Node::start(c).await.unwrap();
        let mut events = a.events();
        let outcome = eventually("send", || {
            b.send(
                a.peer_id(),
                b"over quic".to_vec(),
                Priority::Low,
                Duration::from_mins(1),
            )
        })
        .await;
        assert!(matches!(
            outcome,
            SendOutcome::Delivered | SendOutcome::Queued
        ));
        let got = wait_for(&mut events, |e| match e {
            Event::Direct { envelope, .. } => Some(envelope.payload.clone()),
            _ => None,
        })
        .await;
        assert_eq!(got, b"over quic");
        b.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("hang guard");
}

/// Nodes of different network names do not join each other's DHT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_names_keep_networks_apart() {
    tokio::time::timeout(GUARD, async {
        let mut c = memory_only();
        c.network = Some("alpha".into());
        let a = Node::start(c.clone()).await.unwrap();
        let a_addr = first_addr(&a).await;
        let mut other = memory_only();
        other.network = Some("beta".into());
        other.bootstrap = vec![a_addr.clone()];
        let b = Node::start(other).await.unwrap();
        c.bootstrap = vec![a_addr];
        let same = Node::start(c).await.unwrap();
        // Same network: the DHT works.
        a.put_record(b"k", b"v".to_vec()).await.ok();
        let found = eventually("get_record", || same.get_record(b"k")).await;
        assert_eq!(found.value, b"v");
        // Other network: connected, but no DHT partner.
        assert!(b.get_record(b"k").await.is_err());
        assert!(matches!(
            Node::start({
                let mut bad = memory_only();
                bad.network = Some("Bad Name".into());
                bad
            })
            .await,
            Err(fog_p2p::Error::NetworkName(_))
        ));
        for n in [a, b, same] {
            n.shutdown().await;
        }
    })
    .await
    .expect("hang guard");
}

/// The ban list is kept in the node's database: after a restart with the
/// same file (and key) the peer is still banned and cannot get a request
/// through; once unbanned (which is persisted too) it can again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_survive_a_restart() {
    tokio::time::timeout(GUARD, async {
        logs();
        let dir = tempfile::tempdir().unwrap();
        let key = fog_p2p::Keypair::generate_ed25519();
        let mut ac = memory_only();
        ac.queue_path = Some(dir.path().join("a.sqlite"));
        let a = Node::start_with_key(ac.clone(), key.clone()).await.unwrap();
        let mut bc = memory_only();
        bc.bootstrap = vec![first_addr(&a).await];
        let b = Node::start(bc.clone()).await.unwrap();
        let (a_id, b_id) = (a.peer_id(), b.peer_id());
        a.ban(b_id).await.unwrap();
        a.shutdown().await;

        // Restart a with the same key and database, then let b try again.
        let a = Node::start_with_key(ac.clone(), key.clone()).await.unwrap();
        let a_addr = first_addr(&a).await;
        let info = a.peers().await.unwrap();
        assert!(
            info.iter().any(|p| p.peer_id == b_id && p.banned),
            "the ban was reloaded: {info:?}"
        );
        let _ = b.dial(a_addr.clone()).await;
        let r = b
            .request(a_id, b"let me in".to_vec(), Priority::Normal)
            .await;
        assert!(r.is_err(), "a banned peer got a request through: {r:?}");
        assert!(
            !a.peers()
                .await
                .unwrap()
                .iter()
                .any(|p| p.peer_id == b_id && p.connected),
            "a banned peer is connected"
        );

        // Unban, restart once more: the lift is persisted as well.
        a.unban(b_id).await.unwrap();
        a.shutdown().await;
        let a = Node::start_with_key(ac, key).await.unwrap();
        let a_addr = first_addr(&a).await;
        assert!(!a.peers().await.unwrap().iter().any(|p| p.banned));
        let mut a_events = a.events();
        eventually("b reaches a after the unban", || {
            let b = &b;
            let a_addr = a_addr.clone();
            async move {
                let _ = b.dial(a_addr).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                b.send(
                    a_id,
                    b"back".to_vec(),
                    Priority::Normal,
                    Duration::from_mins(1),
                )
                .await
                .map_err(|e| e.to_string())
                .and_then(|o| {
                    if o == SendOutcome::Delivered {
                        Ok(())
                    } else {
                        Err(format!("{o:?}"))
                    }
                })
            }
        })
        .await;
        wait_for(&mut a_events, |e| match e {
            Event::Direct { from, .. } if *from == b_id => Some(()),
            _ => None,
        })
        .await;
        b.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("hang guard");
}

/// Peer management under load: the connection limit turns peers away, and
/// above the target peer count the lowest-scored peers are pruned first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_holds_and_the_worst_peers_are_pruned() {
    tokio::time::timeout(GUARD, async {
        logs();
        let mut hc = memory_only();
        hc.max_connections = 5;
        hc.target_peers = 3;
        // New connections are spared for the longer of these (they may be
        // serving a lookup); short here so that pruning starts soon.
        hc.idle_timeout = Duration::from_secs(3);
        hc.query_timeout = Duration::from_secs(3);
        let hub = Node::start(hc).await.unwrap();
        let hub_addr = first_addr(&hub).await;
        let mut hub_events = hub.events();
        let mut spokes = Vec::new();
        for _ in 0..7 {
            spokes.push(Node::start(memory_only()).await.unwrap());
        }
        let ids: Vec<PeerId> = spokes.iter().map(Node::peer_id).collect();
        let connected = |peers: &[fog_p2p::PeerInfo]| -> Vec<PeerId> {
            peers
                .iter()
                .filter(|p| p.connected)
                .map(|p| p.peer_id)
                .collect()
        };

        // Five fill the hub up to its limit.
        for s in &spokes[..5] {
            s.dial(hub_addr.clone()).await.unwrap();
        }
        eventually("five spokes connected", || async {
            let n = connected(&hub.peers().await.unwrap()).len();
            if n == 5 { Ok(()) } else { Err(n) }
        })
        .await;
        // Two more are turned away.
        for s in &spokes[5..] {
            let _ = s.dial(hub_addr.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = connected(&hub.peers().await.unwrap());
        assert!(now.len() <= 5, "over the limit: {now:?}");
        assert!(
            !now.contains(&ids[5]) && !now.contains(&ids[6]),
            "a spoke past the limit got in: {now:?}"
        );

        // Two misbehave; once the grace period is over the excess of two
        // goes, and it is those two.
        for p in [ids[3], ids[4]] {
            hub.report_misbehaviour(p).await.unwrap();
        }
        let mut gone = Vec::new();
        while !(gone.contains(&ids[3]) && gone.contains(&ids[4])) {
            let p = wait_for(&mut hub_events, |e| match e {
                Event::PeerDisconnected(p) => Some(*p),
                _ => None,
            })
            .await;
            assert!(
                !ids[..3].contains(&p),
                "a well-behaved peer was pruned before the misbehaving ones: {p}"
            );
            gone.push(p);
        }
        let left = connected(&hub.peers().await.unwrap());
        for p in &ids[..3] {
            assert!(left.contains(p), "{p} should stay: {left:?}");
        }
        hub.shutdown().await;
        for s in spokes {
            s.shutdown().await;
        }
    })
    .await
    .expect("hang guard");
}

/// A plain libp2p node (stock identify and ping, nothing from fog).
#[derive(libp2p::swarm::NetworkBehaviour)]
struct Stock {
    identify: libp2p::identify::Behaviour,
    ping: libp2p::ping::Behaviour,
}

/// Dials `addr` from a stock libp2p node and pings it; returns the
/// protocols the fog node announces through identify (and identify push)
/// once every one of `want` is among them.
async fn stock_view(addr: Multiaddr, want: &[&str]) -> Vec<String> {
    use libp2p::futures::StreamExt as _;
    use libp2p::swarm::SwarmEvent;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| Stock {
            identify: libp2p::identify::Behaviour::new(libp2p::identify::Config::new(
                "/ipfs/0.1.0".into(),
                key.public(),
            )),
            ping: libp2p::ping::Behaviour::default(),
        })
        .unwrap()
        .build();
    swarm.dial(addr).unwrap();
    let mut seen: Vec<String> = Vec::new();
    let mut pinged = false;
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while !pinged || !want.iter().all(|w| seen.iter().any(|s| s == w)) {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(StockEvent::Identify(
                    libp2p::identify::Event::Received { info, .. },
                )) => seen = info.protocols.iter().map(ToString::to_string).collect(),
                SwarmEvent::Behaviour(StockEvent::Ping(libp2p::ping::Event {
                    result: Ok(_),
                    ..
                })) => pinged = true,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "pinged: {pinged}; wanted {want:?}, announced {seen:?}"
    );
    seen
}

/// Other libp2p implementations can talk to a fog node: by default it
/// speaks libp2p's standard protocol identifiers (a stock rust-libp2p node
/// identifies and pings it and sees Kademlia, GossipSub, AutoNAT and the
/// relay client under their usual names); a network name moves the DHT, GossipSub
/// and direct messages under `/fog/<name>/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_libp2p_node_sees_the_standard_protocols() {
    tokio::time::timeout(GUARD, async {
        let fog = Node::start(tcp_config()).await.unwrap();
        stock_view(
            first_addr(&fog).await,
            &[
                "/ipfs/id/1.0.0",
                "/ipfs/ping/1.0.0",
                "/ipfs/kad/1.0.0",
                "/meshsub/1.1.0",
                "/libp2p/autonat/1.0.0",
                // The relay client's; a relay server announces `.../hop`
                // only once it has a confirmed external address
                // (fog-cli's tests/p2p_netns.rs runs one).
                "/libp2p/circuit/relay/0.2.0/stop",
            ],
        )
        .await;
        fog.shutdown().await;

        let mut named = tcp_config();
        named.network = Some("alpha".into());
        let fog = Node::start(named).await.unwrap();
        let seen = stock_view(
            first_addr(&fog).await,
            &["/fog/alpha/kad/1.0.0", "/fog/alpha/meshsub/1.1.0"],
        )
        .await;
        assert!(
            !seen
                .iter()
                .any(|s| s.starts_with("/ipfs/kad") || s.starts_with("/meshsub")),
            "{seen:?}"
        );
        fog.shutdown().await;
    })
    .await
    .expect("hang guard");
}
