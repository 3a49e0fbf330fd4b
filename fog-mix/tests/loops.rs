//! A client's loop cover comes back to it through its provider's inbox, and
//! the client counts what came back and what was lost.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{
    CircuitPool, Delivery, DescriptorBuilder, Destination, DestinationAddress, Directory, Inbound,
    MixClient, MixNode, NodeAddress, NodeConfig, NodeDescriptor, NodeIdentity, Packet,
    PacketBuilder, PacketConfig, PacketTransport, PoolConfig, PrivacyLevel, ReplayConfig,
    ReplayFilter, Stream, TransportError,
};
use tokio::sync::mpsc;

/// An in-memory network: next hop -> that mix's inbound handle; mixes in
/// `down` refuse everything.
#[derive(Default)]
struct Net {
    mixes: RwLock<HashMap<NodeAddress, Inbound>>,
    down: Mutex<HashSet<NodeAddress>>,
}

impl PacketTransport for Net {
    fn send(&self, next_hop: NodeAddress, packet: Packet) -> Result<(), TransportError> {
        if self.down.lock().unwrap().contains(&next_hop) {
            return Err(TransportError::UnknownPeer(next_hop));
        }
        let mixes = self.mixes.read().unwrap();
        let inbound = mixes
            .get(&next_hop)
            .ok_or(TransportError::UnknownPeer(next_hop))?;
        if inbound.try_deliver(packet.into_bytes()) {
            Ok(())
        } else {
            Err(TransportError::Full)
        }
    }
}

fn descriptor(i: u8, layer: u8) -> NodeDescriptor {
    DescriptorBuilder::new(
        PublicKey::from(&StaticSecret::from([i; 32])),
        1,
        format!("10.{i}.0.1:1789"),
    )
    .layer(layer)
    .stake(10)
    .family(format!("op{i}"))
    .sign(&NodeIdentity::from_seed(&[i; 32]))
    .unwrap()
}

async fn next(inbox: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(20), inbox.recv())
        .await
        .expect("a delivery in time")
        .expect("the inbox is open")
}

#[tokio::test]
async fn loop_cover_comes_back_to_the_client_and_lost_loops_are_counted() {
    let config = PacketConfig::default().with_mean_delay(Duration::from_millis(2));
    // Three layers of two mixes.
    let descriptors: Vec<NodeDescriptor> = (1..=6u8).map(|i| descriptor(i, (i - 1) % 3)).collect();
    let net = Arc::new(Net::default());
    let mut nodes = Vec::new();
    for (i, d) in (1..=6u8).zip(&descriptors) {
        let (node, deliveries) = MixNode::start(
            NodeConfig::new(config).with_workers(1),
            1,
            StaticSecret::from([i; 32]),
            ReplayFilter::in_memory(1, &ReplayConfig::new(10_000)).unwrap(),
            net.clone(),
        )
        .unwrap();
        net.mixes
            .write()
            .unwrap()
            .insert(d.node_address(), node.inbound());
        nodes.push((d.node_address(), d.layer(), node, deliveries));
    }
    let (directory, rejected) = Directory::new(descriptors.clone());
    assert!(rejected.is_empty());

    // The client's provider is a last-layer mix; it keeps the client's inbox.
    let me = DestinationAddress::from_bytes([0xc1; 32]);
    let (provider, _, provider_node, general) = nodes
        .iter_mut()
        .find(|(_, layer, _, _)| *layer == 2)
        .map(|(a, l, n, d)| (*a, *l, n.clone(), d))
        .unwrap();
    let mut inbox = provider_node.register_client(me, 64).unwrap();
    let mut client = MixClient::new(
        PacketBuilder::new(config).unwrap(),
        CircuitPool::new(directory, PoolConfig::default()),
        net.clone(),
        me,
    )
    .with_provider(provider)
    .with_loop_tracking(Duration::from_secs(30), 1024);
    let mut rng = rand::rng();

    // Twenty loops go out and all twenty come back through the inbox.
    for _ in 0..20 {
        client
            .on_event(Stream::Loop, Duration::ZERO, &mut rng)
            .unwrap();
    }
    for _ in 0..20 {
        let d = next(&mut inbox).await;
        assert_eq!(client.receive(d), None, "a loop is swallowed");
    }
    let s = client.loop_stats();
    assert_eq!((s.sent, s.returned, s.lost, s.outstanding), (20, 20, 0, 0));
    // The counter is bumped just after the hand-over.
    for _ in 0..2000 {
        if provider_node.stats().inbox_delivered == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(provider_node.stats().inbox_delivered, 20);

    // Something else addressed to the client is handed to the application.
    let circuit = client
        .pool_mut()
        .circuit(PrivacyLevel::Private, Duration::ZERO, &mut rng)
        .unwrap();
    let hops: Vec<NodeAddress> = circuit.route()[..2]
        .iter()
        .copied()
        .chain([provider])
        .collect();
    let route = client.pool().directory().route_nodes(&hops).unwrap();
    let out = PacketBuilder::new(config)
        .unwrap()
        .build(
            PrivacyLevel::Private,
            &route,
            Destination::new(me, [5; 16]),
            b"for the client",
            &mut rng,
        )
        .unwrap();
    net.send(out.first_hop, out.packet).unwrap();
    let d = next(&mut inbox).await;
    assert!(matches!(
        client.receive(d),
        Some(Delivery::Message { ref message, .. }) if message == b"for the client"
    ));
    // The provider's general deliveries saw none of it.
    assert!(general.try_recv().is_err());

    // The middle layer goes dark: loops leave and never come back; after
    // the timeout the client counts them lost.
    for (address, layer, _, _) in &nodes {
        if *layer == 1 {
            net.down.lock().unwrap().insert(*address);
        }
    }
    for _ in 0..5 {
        client
            .on_event(Stream::Loop, Duration::from_secs(1), &mut rng)
            .unwrap();
    }
    assert_eq!(client.loop_stats().outstanding, 5);
    assert_eq!(client.expire_loops(Duration::from_secs(10)), 0);
    assert_eq!(client.expire_loops(Duration::from_secs(31)), 5);
    let s = client.loop_stats();
    assert_eq!((s.sent, s.returned, s.lost, s.outstanding), (25, 20, 5, 0));
    // A loop that comes back after it was counted lost is counted as
    // unexpected, not as a return.
    net.down.lock().unwrap().clear();
    client
        .on_event(Stream::Loop, Duration::from_secs(40), &mut rng)
        .unwrap();
    let late = next(&mut inbox).await;
    assert_eq!(client.expire_loops(Duration::from_secs(71)), 1);
    assert_eq!(client.receive(late.clone()), None);
    assert_eq!(
        client.receive(late),
        None,
        "a duplicate is no return either"
    );
    let s = client.loop_stats();
    assert_eq!((s.returned, s.lost, s.unexpected), (20, 6, 2));
    // A message to the loop address with another body is not a loop.
    let other = Delivery::Message {
        destination: me,
        identifier: [9; 16],
        message: vec![0; 32],
    };
    assert!(client.receive(other).is_some());
}
