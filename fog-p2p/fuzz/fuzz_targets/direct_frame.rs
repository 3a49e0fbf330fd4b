//! Any bytes given to the direct-message frame decoder (length prefix plus
//! envelope): never a panic, and whatever decodes re-encodes to the body.
#![no_main]

use fog_p2p::codec::{decode_envelope_frame, split_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = decode_envelope_frame(data) {
        let (body, _) = split_frame(data).expect("a decoded frame splits");
        assert_eq!(envelope.encode().expect("decoded payload fits"), body);
    }
});
