//! Fuzzes the frame decoder: arbitrary bytes must decode to an error or to a
//! packet that re-encodes to the same frame, never panic.
#![no_main]

use fog_mix::{FrameCodec, PacketConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a small packet length so short inputs reach the
    // header checks; the default network length is tried on every input.
    let codecs = [
        FrameCodec::new(&PacketConfig::default()),
        FrameCodec::for_packet_len(usize::from(data.first().copied().unwrap_or(0))),
    ];
    for codec in codecs {
        if let Ok(packet) = codec.decode(data) {
            assert_eq!(codec.encode(packet).as_deref(), Ok(data));
        }
    }
});
