//! Single-use reply blocks: the recipient answers without learning the sender.

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    Destination, DestinationAddress, NodeAddress, PacketBuilder, PacketConfig, ProcessError,
    Processed, Processor, REPLY_BLOCK_LEN, ReplayConfig, ReplayFilter, ReplyBlock, ReplyError,
    RouteNode,
};

struct Mix {
    address: NodeAddress,
    processor: Processor,
    replay: ReplayFilter,
}

fn mixes(n: u8, config: PacketConfig) -> Vec<Mix> {
    (0..n)
        .map(|i| Mix {
            address: NodeAddress::from_bytes([i + 1; 32]),
            processor: Processor::new(StaticSecret::from([i + 100; 32]), config).unwrap(),
            replay: ReplayFilter::in_memory(0, &ReplayConfig::new(1000)).unwrap(),
        })
        .collect()
}

/// Carries `packet` from `first` through the mixes; returns what the last
/// hop delivers.
fn carry(mixes: &mut [Mix], first: NodeAddress, packet: fog_mix::Packet) -> Processed {
    let (mut next, mut packet) = (first, packet);
    loop {
        let mix = mixes.iter_mut().find(|m| m.address == next).unwrap();
        match mix.processor.process(&packet, &mut mix.replay).unwrap() {
            Processed::Forward {
                next_hop,
                packet: p,
                ..
            } => (next, packet) = (next_hop, p),
            done => return done,
        }
    }
}

#[test]
fn a_reply_reaches_the_block_creator_sealed_and_opens_with_its_key() {
    let config = PacketConfig::default();
    let mut mixes = mixes(3, config);
    let route: Vec<RouteNode> = mixes
        .iter()
        .map(|m| RouteNode::new(m.address, m.processor.public_key()))
        .collect();
    let alice = DestinationAddress::from_bytes([0xa1; 32]);
    let builder = PacketBuilder::new(config).unwrap();
    let (block, key) = builder
        .reply_block(&route, Destination::new(alice, [0; 16]), &mut rand::rng())
        .unwrap();
    let wire = block.to_bytes();
    assert_eq!(wire.len(), REPLY_BLOCK_LEN);

    // Bob only has the block's bytes.
    let block = ReplyBlock::from_bytes(&wire).unwrap();
    let out = block.use_block(b"the answer is 42", &config).unwrap();
    assert_eq!(out.packet.len(), config.packet_len());
    assert_eq!(out.first_hop, route[0].address());
    match carry(&mut mixes, out.first_hop, out.packet.clone()) {
        Processed::DeliverSealed {
            destination,
            identifier,
            sealed,
        } => {
            assert_eq!(destination, alice);
            assert_eq!(identifier, key.identifier());
            // The last mix did not see the reply.
            assert!(!sealed.windows(16).any(|w| w == b"the answer is 42"));
            assert_eq!(key.open(&sealed).unwrap(), b"the answer is 42");
            // The key round-trips.
            let again = fog_mix::ReplyKey::from_bytes(&key.to_bytes()).unwrap();
            assert_eq!(again.open(&sealed).unwrap(), b"the answer is 42");
        }
        other => panic!("expected a sealed delivery, got {other:?}"),
    }
    // Using the block twice: the first mix drops the second packet.
    let again = ReplyBlock::from_bytes(&wire)
        .unwrap()
        .use_block(b"twice", &config)
        .unwrap();
    let first = mixes
        .iter_mut()
        .find(|m| m.address == again.first_hop)
        .unwrap();
    assert!(matches!(
        first.processor.process(&again.packet, &mut first.replay),
        Err(ProcessError::Replayed)
    ));
}

#[test]
fn another_key_does_not_open_a_reply() {
    let config = PacketConfig::default();
    let mut mixes = mixes(1, config);
    let route = [RouteNode::new(
        mixes[0].address,
        mixes[0].processor.public_key(),
    )];
    let builder = PacketBuilder::new(config).unwrap();
    let dest = Destination::new(DestinationAddress::from_bytes([1; 32]), [0; 16]);
    let (block, _key) = builder.reply_block(&route, dest, &mut rand::rng()).unwrap();
    let (_, other_key) = builder.reply_block(&route, dest, &mut rand::rng()).unwrap();
    let out = block.use_block(b"secret", &config).unwrap();
    let Processed::DeliverSealed { sealed, .. } = carry(&mut mixes, out.first_hop, out.packet)
    else {
        panic!("expected a sealed delivery")
    };
    assert_eq!(other_key.open(&sealed), Err(ReplyError::WrongKey));
}

#[test]
fn reply_blocks_refuse_bad_input() {
    assert!(ReplyBlock::from_bytes(&[0u8; 10]).is_err());
    assert!(ReplyBlock::from_bytes(&[0u8; REPLY_BLOCK_LEN + 1]).is_err());
    let config = PacketConfig::default();
    let route: Vec<RouteNode> = mixes(6, config)
        .iter()
        .map(|m| RouteNode::new(m.address, m.processor.public_key()))
        .collect();
    let dest = Destination::new(DestinationAddress::from_bytes([1; 32]), [0; 16]);
    let builder = PacketBuilder::new(config).unwrap();
    assert!(builder.reply_block(&route, dest, &mut rand::rng()).is_err());
    assert!(builder.reply_block(&[], dest, &mut rand::rng()).is_err());
    let (block, _) = builder
        .reply_block(&route[..2], dest, &mut rand::rng())
        .unwrap();
    assert!(matches!(
        block.use_block(&vec![0u8; 5000], &config),
        Err(ReplyError::TooLong { .. })
    ));
}

proptest::proptest! {
    #[test]
    fn reply_block_decoding_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let _ = ReplyBlock::from_bytes(&bytes);
        let _ = fog_mix::ReplyKey::from_bytes(&bytes);
    }
}
