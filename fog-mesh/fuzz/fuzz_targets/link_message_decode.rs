//! Any bytes given to the neighbour-protocol decoder: never a panic.
#![no_main]

use fog_mesh::LinkMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = LinkMessage::decode(data) {
        let _ = LinkMessage::decode(&message.encode()).expect("a decoded message re-encodes validly");
    }
});
