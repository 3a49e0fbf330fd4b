//! Frame codec and packet decoding on arbitrary bytes.

use fog_mix::x25519_dalek::StaticSecret;
use fog_mix::{
    FRAME_HEADER_LEN, FrameCodec, FrameError, Packet, PacketConfig, Processor, ReplayConfig,
    ReplayFilter,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

#[test]
fn frames_of_the_default_config_have_one_fixed_length() {
    let config = PacketConfig::default();
    let codec = FrameCodec::new(&config);
    assert_eq!(codec.frame_len(), FRAME_HEADER_LEN + 2396);
    let packet = vec![5u8; config.packet_len()];
    let frame = codec.encode(&packet).unwrap();
    assert_eq!(frame.len(), codec.frame_len());
    assert_eq!(&frame[..4], b"FM\x01\x00");
    assert_eq!(codec.decode(&frame).unwrap(), &packet[..]);
    assert!(matches!(
        codec.encode(&packet[1..]),
        Err(FrameError::Length { .. })
    ));
}

#[test]
fn each_header_field_is_checked() {
    let codec = FrameCodec::for_packet_len(4);
    let good = codec.encode(&[1, 2, 3, 4]).unwrap();
    let with = |i: usize, b: u8| {
        let mut f = good.clone();
        f[i] = b;
        f
    };
    assert_eq!(codec.decode(&with(0, b'X')), Err(FrameError::Magic));
    assert_eq!(codec.decode(&with(2, 9)), Err(FrameError::Version(9)));
    assert_eq!(codec.decode(&with(3, 1)), Err(FrameError::Kind(1)));
    assert_eq!(
        codec.decode(&with(7, 5)),
        Err(FrameError::PacketLength {
            expected: 4,
            got: 5
        })
    );
    assert!(matches!(
        codec.decode(&good[..11]),
        Err(FrameError::Length { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn frames_round_trip(packet in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let codec = FrameCodec::for_packet_len(packet.len());
        let frame = codec.encode(&packet).unwrap();
        prop_assert_eq!(frame.len(), codec.frame_len());
        prop_assert_eq!(codec.decode(&frame).unwrap(), &packet[..]);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        packet_len in 0usize..64,
    ) {
        let codec = FrameCodec::for_packet_len(packet_len);
        if let Ok(packet) = codec.decode(&bytes) {
            // whatever decodes re-encodes to the same frame
            prop_assert_eq!(codec.encode(packet).unwrap(), bytes.clone());
        }
    }

    #[test]
    fn almost_valid_frames_never_panic(
        packet in proptest::collection::vec(any::<u8>(), 16),
        flip in 0usize..24,
        to in any::<u8>(),
    ) {
        let codec = FrameCodec::for_packet_len(16);
        let mut frame = codec.encode(&packet).unwrap();
        frame[flip] = to;
        let _ = codec.decode(&frame);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn processing_arbitrary_packet_bytes_never_panics(seed in any::<u64>(), fill in any::<u8>()) {
        let config = PacketConfig::default().with_payload_size(512);
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut bytes = vec![fill; config.packet_len()];
        rng.fill_bytes(&mut bytes[..64]);
        let processor = Processor::new(StaticSecret::random_from_rng(&mut rng), config).unwrap();
        let mut replay = ReplayFilter::in_memory(0, &ReplayConfig::default()).unwrap();
        let packet = Packet::from_bytes(bytes, &config).unwrap();
        prop_assert!(processor.process(&packet, &mut replay).is_err());
        prop_assert_eq!(replay.stats().inserted, 0);
    }
}
