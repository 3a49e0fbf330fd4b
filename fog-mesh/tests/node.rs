//! Live mesh nodes through the public API: in-memory links and real UDP
//! sockets on loopback.

use std::future::Future;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::Path;
use std::time::Duration;

use fog_mesh::{
    Bearer, BundleBuilder, EndpointId, LinkMessage, MemoryHub, MeshConfig, MeshNode, RouterKind,
    UdpBearer, UdpConfig, fragment,
};
use tokio::time::{sleep, timeout};

const WAIT: Duration = Duration::from_secs(20);

fn eid(name: &str) -> EndpointId {
    EndpointId::dtn(name, "").unwrap()
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    timeout(WAIT, async {
        while !check().await {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test]
async fn store_carry_forward_over_memory_links() {
    for router in [RouterKind::Epidemic, RouterKind::Spray] {
        let hub = MemoryHub::new();
        let node = |id: u32, name: &str| {
            let mut config = MeshConfig::new(eid(name));
            config.router = router;
            MeshNode::spawn(config, hub.bearer(id, 256)).unwrap()
        };
        let a = node(0, "a");
        let b = node(1, "b");
        let mut c = node(2, "c");
        hub.connect(0, 1).await;
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect(); // needs fragmenting
        a.send(
            EndpointId::dtn("c", "inbox").unwrap(),
            payload.clone(),
            Duration::from_mins(10),
        )
        .await
        .unwrap();
        until("b to store the bundle", || async {
            b.stored().await.unwrap() == 1
        })
        .await;
        hub.disconnect(0, 1).await;
        hub.connect(1, 2).await;
        let got = timeout(WAIT, c.recv())
            .await
            .expect("delivered")
            .expect("open");
        assert_eq!(got.payload(), payload.as_slice(), "{router}");
        assert_eq!(got.bundle().hop_count().unwrap().count, 2, "{router}");
        assert_eq!(got.bundle().previous_node(), Some(eid("b")));
        assert!(!got.sealed());
        assert_eq!(c.stats().delivered, 1);
    }
}

#[tokio::test]
async fn corrupted_and_duplicate_bundles_are_rejected_and_counted() {
    let hub = MemoryHub::new();
    let mut node = MeshNode::spawn(MeshConfig::new(eid("n")), hub.bearer(0, 512)).unwrap();
    let rogue = hub.bearer(9, 512);
    hub.connect(0, 9).await;
    let to = fog_mesh::LinkAddr::new("mem:0");
    let send = |message: LinkMessage| {
        // A plaintext envelope (kind 0) around the link message.
        let mut envelope = vec![0u8];
        envelope.extend(message.encode());
        let frames = fragment(&envelope, rand_id(&message), 512).unwrap();
        let rogue = &rogue;
        let to = to.clone();
        async move {
            for frame in frames {
                rogue.send(&to, &frame).await.unwrap();
            }
        }
    };
    let bundle = BundleBuilder::new(eid("x"), EndpointId::dtn("n", "app").unwrap())
        .payload(b"for n".to_vec())
        .build();
    let mut corrupted = bundle.encode();
    let last = corrupted.len() - 3;
    corrupted[last] ^= 0xff;
    send(LinkMessage::Bundle {
        copies: 1,
        data: corrupted,
    })
    .await;
    send(LinkMessage::Bundle {
        copies: 1,
        data: vec![0x9f, 0x00],
    })
    .await;
    rogue.send(&to, b"not a frame at all").await.unwrap();
    send(LinkMessage::Bundle {
        copies: 1,
        data: bundle.encode(),
    })
    .await;
    send(LinkMessage::Bundle {
        copies: 1,
        data: bundle.encode(),
    })
    .await;
    let got = timeout(WAIT, node.recv()).await.unwrap().unwrap();
    assert_eq!(got.payload(), b"for n");
    until("the counters", || async {
        let s = node.stats();
        s.rejected == 2 && s.duplicates == 1 && s.malformed_frames == 1
    })
    .await;
    assert_eq!(node.stats().delivered, 1);
}

fn rand_id(message: &LinkMessage) -> u32 {
    message.encode().len() as u32 ^ 0x5a5a
}

fn free_port() -> SocketAddr {
    let socket = StdUdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

async fn udp_node(name: &str, bind: SocketAddr, peers: &[SocketAddr], store: &Path) -> MeshNode {
    let mut config = UdpConfig::new(bind);
    config.peers = peers.to_vec();
    config.beacon_interval = Duration::from_millis(100);
    config.neighbour_timeout = Duration::from_millis(600);
    config.label = name.to_owned();
    // The port may still be held for a moment by a node that just stopped.
    let mut bearer = None;
    for _ in 0..100 {
        match UdpBearer::bind(config.clone()).await {
            Ok(b) => {
                bearer = Some(b);
                break;
            }
            Err(_) => sleep(Duration::from_millis(50)).await,
        }
    }
    let mut mesh = MeshConfig::new(eid(name));
    mesh.store_path = Some(store.join(format!("{name}.sqlite")));
    MeshNode::spawn(mesh, bearer.expect("bind the udp port")).unwrap()
}

/// A's message reaches C through B although A and C are never up at the
/// same time; B is restarted while it carries the bundle; duplicates are
/// suppressed.
#[tokio::test]
async fn three_udp_nodes_store_carry_and_forward_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pc) = (free_port(), free_port(), free_port());

    let a = udp_node("a", pa, &[pb], dir.path()).await;
    let b = udp_node("b", pb, &[pa, pc], dir.path()).await;
    until("a and b to meet", || async {
        a.neighbours()
            .await
            .unwrap()
            .iter()
            .any(|(_, n)| n.is_some())
    })
    .await;
    a.send(
        EndpointId::dtn("c", "inbox").unwrap(),
        b"across the gap".to_vec(),
        Duration::from_mins(10),
    )
    .await
    .unwrap();
    until("b to store the bundle", || async {
        b.stored().await.unwrap() == 1
    })
    .await;
    a.shutdown().await;

    // B restarts while carrying the bundle.
    b.shutdown().await;
    let b = udp_node("b", pb, &[pa, pc], dir.path()).await;
    assert_eq!(
        b.stored().await.unwrap(),
        1,
        "b kept the bundle across its restart"
    );

    let mut c = udp_node("c", pc, &[pb], dir.path()).await;
    let got = timeout(WAIT, c.recv())
        .await
        .expect("delivered")
        .expect("open");
    assert_eq!(got.payload(), b"across the gap");
    assert_eq!(got.bundle().source(), &EndpointId::dtn("a", "").unwrap());
    until("b to drop its delivered copy", || async {
        b.stored().await.unwrap() == 0
    })
    .await;

    // A comes back with its own copy: B recognises it and C gets nothing new.
    let a = udp_node("a", pa, &[pb], dir.path()).await;
    until("b to see the duplicate", || async {
        b.stats().duplicates >= 1
    })
    .await;
    assert!(
        timeout(Duration::from_millis(500), c.recv()).await.is_err(),
        "no second delivery"
    );
    assert_eq!(c.stats().delivered, 1);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

/// With identities, links run Noise XX and payloads are sealed end to end:
/// the relay carries ciphertext, the recipient opens it, and a bundle forged
/// in the sender's name and relayed by a rogue node is rejected.
#[tokio::test]
async fn sealed_bundles_cannot_be_read_or_forged_by_relays() {
    use std::sync::Arc;

    use fog_mesh::{Keyring, MeshIdentity, seal};

    let hub = MemoryHub::new();
    let ids: Vec<Arc<MeshIdentity>> = (1..=4u8)
        .map(|i| Arc::new(MeshIdentity::from_seed([i; 32])))
        .collect();
    let names = ["a", "b", "c", "m"];
    let mut keyring = Keyring::new();
    for (name, id) in names.iter().zip(&ids) {
        keyring
            .insert(eid(name).node_id().unwrap(), id.public())
            .unwrap();
    }
    let node = |i: usize, keyring: Keyring| {
        let mut config = MeshConfig::new(eid(names[i]));
        config.identity = Some(Arc::clone(&ids[i]));
        config.keyring = keyring;
        MeshNode::spawn(config, hub.bearer(i as u32, 300)).unwrap()
    };
    let a = node(0, keyring.clone());
    let b = node(1, keyring.clone());
    let mut c = node(2, keyring.clone());
    hub.connect(0, 1).await;
    let to = EndpointId::dtn("c", "inbox").unwrap();
    a.send(
        to.clone(),
        b"the secret plan".to_vec(),
        Duration::from_mins(10),
    )
    .await
    .unwrap();
    until("b to store the bundle", || async {
        b.stored().await.unwrap() == 1
    })
    .await;

    // A rogue relay m, which does not know a's key, forwards a bundle forged
    // in a's name (sealed to c, signed with m's own key).
    let mut rogue_ring = Keyring::new();
    rogue_ring
        .insert(eid("c").node_id().unwrap(), ids[2].public())
        .unwrap();
    let m = node(3, rogue_ring);
    let forged_at = fog_mesh::CreationTimestamp {
        dtn_ms: fog_mesh::dtn_now_ms(),
        seq: 99,
    };
    let forged_payload = seal(
        &ids[3],
        &ids[2].public(),
        &eid("a"),
        &to,
        forged_at,
        b"send everything to m",
    )
    .unwrap();
    let forged = BundleBuilder::new(eid("a"), to.clone())
        .created(forged_at)
        .payload(forged_payload)
        .build();
    m.import(forged).await.unwrap();
    hub.connect(3, 2).await;
    until("c to reject the forgery", || async {
        c.stats().rejected == 1
    })
    .await;

    hub.disconnect(0, 1).await;
    hub.connect(1, 2).await;
    let got = timeout(WAIT, c.recv()).await.unwrap().unwrap();
    assert!(got.sealed());
    assert_eq!(got.payload(), b"the secret plan");
    assert!(
        !got.bundle().payload().windows(6).any(|w| w == b"secret"),
        "ciphertext in the bundle"
    );
    assert!(
        timeout(Duration::from_millis(300), c.recv()).await.is_err(),
        "nothing else delivered"
    );

    // Sending to a node whose keys are unknown is refused.
    let err = a
        .send(
            EndpointId::dtn("stranger", "").unwrap(),
            b"hi".to_vec(),
            Duration::from_mins(1),
        )
        .await;
    assert!(matches!(err, Err(fog_mesh::MeshError::Seal(_))));
}

/// A neighbour whose Noise key is not the one trusted for the node it
/// claims to be is not taken as that node.
#[tokio::test]
async fn a_neighbour_impersonating_a_known_node_is_refused() {
    use std::sync::Arc;

    use fog_mesh::{Keyring, MeshIdentity};

    let hub = MemoryHub::new();
    let real_a = MeshIdentity::from_seed([1; 32]);
    let c_id = Arc::new(MeshIdentity::from_seed([3; 32]));
    let mut ring = Keyring::new();
    ring.insert(eid("a").node_id().unwrap(), real_a.public())
        .unwrap();
    let mut config = MeshConfig::new(eid("c"));
    config.identity = Some(Arc::clone(&c_id));
    config.keyring = ring;
    let c = MeshNode::spawn(config, hub.bearer(2, 300)).unwrap();
    // An impostor calls itself a, with keys of its own.
    let mut impostor = MeshConfig::new(eid("a"));
    impostor.identity = Some(Arc::new(MeshIdentity::from_seed([66; 32])));
    let _impostor = MeshNode::spawn(impostor, hub.bearer(0, 300)).unwrap();
    hub.connect(0, 2).await;
    until("c to refuse the impostor", || async {
        c.stats().rejected >= 1
    })
    .await;
    assert!(
        c.neighbours()
            .await
            .unwrap()
            .iter()
            .all(|(_, node)| node.is_none())
    );
}
