//! Signed node descriptors: codec round trip, tampering, arbitrary bytes.

use fog_mix::x25519_dalek::{PublicKey, StaticSecret};
use fog_mix::{DescriptorBuilder, DescriptorError, NodeDescriptor, NodeIdentity};
use proptest::prelude::*;

fn sphinx_key(seed: u8) -> PublicKey {
    PublicKey::from(&StaticSecret::from([seed; 32]))
}

#[test]
fn a_signed_descriptor_round_trips_and_names_its_node() {
    let identity = NodeIdentity::from_seed(&[1; 32]);
    let d = DescriptorBuilder::new(sphinx_key(2), 42, "203.0.113.7:1789")
        .layer(2)
        .stake(1_000)
        .family("acme")
        .sign(&identity)
        .unwrap();
    let back = NodeDescriptor::from_bytes(&d.to_bytes()).unwrap();
    assert_eq!(back, d);
    assert_eq!(back.identity(), identity.public_key());
    assert_eq!(back.sphinx_key(), sphinx_key(2));
    assert_eq!((back.epoch(), back.layer(), back.stake()), (42, 2, 1_000));
    assert_eq!(
        (back.family(), back.address()),
        ("acme", "203.0.113.7:1789")
    );
    assert_eq!(back.route_node().key(), sphinx_key(2));
    assert_eq!(back.route_node().address(), back.node_address());
    // another identity, another address
    let other = DescriptorBuilder::new(sphinx_key(2), 42, "x:1")
        .sign(&NodeIdentity::from_seed(&[3; 32]))
        .unwrap();
    assert_ne!(other.node_address(), d.node_address());
}

#[test]
fn oversized_fields_are_refused() {
    let identity = NodeIdentity::from_seed(&[1; 32]);
    let long = "f".repeat(65);
    assert!(matches!(
        DescriptorBuilder::new(sphinx_key(2), 0, "a:1")
            .family(long)
            .sign(&identity),
        Err(DescriptorError::Invalid(_))
    ));
    assert!(matches!(
        DescriptorBuilder::new(sphinx_key(2), 0, "").sign(&identity),
        Err(DescriptorError::Invalid(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn descriptors_round_trip(
        seed in any::<[u8; 32]>(),
        key in any::<[u8; 32]>(),
        epoch in any::<u64>(),
        layer in any::<u8>(),
        stake in any::<u64>(),
        family in "[a-z0-9-]{0,64}",
        address in "[a-z0-9.:]{1,100}",
    ) {
        let d = DescriptorBuilder::new(PublicKey::from(key), epoch, address)
            .layer(layer)
            .stake(stake)
            .family(family)
            .sign(&NodeIdentity::from_seed(&seed))
            .unwrap();
        prop_assert_eq!(NodeDescriptor::from_bytes(&d.to_bytes()).unwrap(), d);
    }

    #[test]
    fn any_changed_byte_is_refused(index in any::<prop::sample::Index>(), xor in 1u8..) {
        let d = DescriptorBuilder::new(sphinx_key(9), 7, "198.51.100.1:1789")
            .layer(1)
            .stake(5)
            .family("fam")
            .sign(&NodeIdentity::from_seed(&[4; 32]))
            .unwrap();
        let mut bytes = d.to_bytes();
        let i = index.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(NodeDescriptor::from_bytes(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = NodeDescriptor::from_bytes(&bytes);
    }
}
