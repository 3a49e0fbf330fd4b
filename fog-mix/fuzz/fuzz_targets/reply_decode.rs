//! Fuzzes the reply decoders: arbitrary bytes as a reply block, a reply key
//! or a sealed reply must decode to an error or to a value that re-encodes
//! to the same bytes, and using or opening what decoded never panics.
#![no_main]

use fog_mix::{PacketConfig, ReplyBlock, ReplyKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = PacketConfig::default();
    if let Ok(block) = ReplyBlock::from_bytes(data) {
        assert_eq!(block.to_bytes(), data);
        // A forged block yields a packet or an error, never a panic.
        let _ = block.use_block(b"reply", &config);
    }
    if let Ok(key) = ReplyKey::from_bytes(data) {
        assert_eq!(key.to_bytes(), data);
        // Opening junk under a decoded key is an error, never a panic.
        let _ = key.open(data);
        let _ = key.open(&data[data.len() / 2..]);
    }
});
