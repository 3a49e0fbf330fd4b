//! The BPv7 codec: interoperability with the `bp7` crate and properties.

use std::time::Duration;

use fog_mesh::{Bundle, BundleBuilder, CreationTimestamp, EndpointId};
use proptest::prelude::*;

#[test]
fn bundles_encoded_here_decode_with_bp7() {
    let mut bundle = BundleBuilder::new(
        EndpointId::dtn("node-a", "jobs").unwrap(),
        EndpointId::ipn(42, 7),
    )
    .payload(b"job bundle".to_vec())
    .lifetime(Duration::from_mins(10))
    .created(CreationTimestamp {
        dtn_ms: 812_345_678_901,
        seq: 3,
    })
    .build();
    bundle
        .prepare_forward(&EndpointId::dtn("relay-b", "").unwrap(), 1_500)
        .unwrap();
    let bytes = bundle.encode();

    let mut theirs = bp7::Bundle::try_from(bytes.as_slice()).expect("bp7 decodes our bundle");
    assert!(theirs.crc_valid(), "bp7 finds our CRCs wrong");
    assert!(theirs.validate().is_ok(), "bp7 finds our bundle invalid");
    assert_eq!(theirs.primary.source.to_string(), "dtn://node-a/jobs");
    assert_eq!(theirs.primary.destination.to_string(), "ipn:42.7");
    assert_eq!(theirs.primary.lifetime, Duration::from_mins(10));
    assert_eq!(theirs.primary.creation_timestamp.seqno(), 3);
    assert_eq!(theirs.payload().cloned(), Some(b"job bundle".to_vec()));
    assert_eq!(
        theirs.previous_node().map(ToString::to_string),
        Some("dtn://relay-b/".to_owned())
    );
    let hop = theirs
        .extension_block_by_type(bp7::HOP_COUNT_BLOCK)
        .and_then(bp7::CanonicalBlock::hop_count_get);
    assert_eq!(hop, Some((32, 1)));
    // And back: bp7's re-encoding of our bundle decodes here to the same bundle.
    let again = Bundle::decode(&theirs.to_cbor()).expect("we decode bp7's re-encoding");
    assert_eq!(again, bundle);
}

#[test]
fn bundles_encoded_by_bp7_decode_here() {
    for crc in [bp7::crc::CRC_NO, bp7::crc::CRC_16, bp7::crc::CRC_32] {
        let mut theirs = bp7::bundle::new_std_payload_bundle(
            bp7::EndpointID::with_dtn("//sender/app").unwrap(),
            bp7::EndpointID::with_ipn(5, 1).unwrap(),
            b"from bp7".to_vec(),
        );
        theirs.set_crc(crc);
        let bytes = theirs.to_cbor();
        let ours = Bundle::decode(&bytes).expect("we decode bp7's bundle");
        assert_eq!(ours.payload(), b"from bp7");
        assert_eq!(ours.source().to_string(), "dtn://sender/app");
        assert_eq!(ours.destination(), &EndpointId::ipn(5, 1));
        assert_eq!(
            ours.created().seq,
            theirs.primary.creation_timestamp.seqno()
        );
        assert_eq!(ours.hop_count().map(|h| (h.limit, h.count)), Some((32, 0)));
        assert_eq!(
            ours.id().as_str(),
            format!(
                "dtn://sender/app-{}-{}",
                ours.created().dtn_ms,
                ours.created().seq
            )
        );
        // A bundle we did not build is re-encoded byte for byte.
        assert_eq!(ours.encode(), bytes, "crc type {crc}");
    }
}

fn endpoint() -> impl Strategy<Value = EndpointId> {
    prop_oneof![
        Just(EndpointId::None),
        ("[a-z0-9-]{1,12}", "[a-z0-9/~-]{0,12}")
            .prop_map(|(node, service)| EndpointId::dtn(&node, &service).unwrap()),
        (any::<u64>(), any::<u64>()).prop_map(|(n, s)| EndpointId::ipn(n, s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trip(
        source in endpoint(),
        destination in endpoint(),
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        dtn_ms in any::<u64>(),
        seq in any::<u64>(),
        lifetime_ms in 0u64..10_000_000_000,
        hops in 0u64..5,
    ) {
        let mut bundle = BundleBuilder::new(source, destination)
            .payload(payload)
            .created(CreationTimestamp { dtn_ms, seq })
            .lifetime(Duration::from_millis(lifetime_ms))
            .hop_limit(8)
            .build();
        for hop in 0..hops {
            bundle.prepare_forward(&EndpointId::ipn(hop, 0), hop * 10).unwrap();
        }
        let decoded = Bundle::decode(&bundle.encode()).unwrap();
        prop_assert_eq!(&decoded, &bundle);
        prop_assert_eq!(decoded.encode(), bundle.encode());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = Bundle::decode(&bytes);
    }

    #[test]
    fn mutated_bundles_never_panic(
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = BundleBuilder::new(EndpointId::ipn(1, 0), EndpointId::ipn(2, 0))
            .payload(vec![7; 64])
            .build()
            .encode();
        let mut mutated = bytes.clone();
        mutated[at.index(bytes.len())] = value;
        let _ = Bundle::decode(&mutated);
        let _ = Bundle::decode(&bytes[..cut.index(bytes.len())]);
    }
}
