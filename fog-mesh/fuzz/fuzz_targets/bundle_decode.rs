//! Any bytes given to the BPv7 decoder: never a panic, and whatever decodes
//! re-encodes to something that decodes to the same bundle.
#![no_main]

use fog_mesh::Bundle;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::decode(data) {
        let again = Bundle::decode(&bundle.encode()).expect("a decoded bundle re-encodes validly");
        assert_eq!(again, bundle);
    }
});
