//! Any bytes given to the reply decoder: never a panic, and whatever decodes
//! re-encodes to the same bytes.
#![no_main]

use fog_p2p::Reply;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = Reply::decode(data) {
        assert_eq!(reply.encode().expect("decoded payload fits"), data);
    }
});
