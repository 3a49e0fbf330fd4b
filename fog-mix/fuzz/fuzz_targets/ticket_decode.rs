//! Fuzzes the lottery ticket and descriptor decoders: arbitrary bytes decode
//! to an error or to a value that re-encodes to the same bytes; verifying a
//! decoded ticket against a real descriptor, or a decoded descriptor, never
//! panics and never accepts a forged proof.
#![no_main]

use std::sync::LazyLock;

use fog_mix::{DescriptorBuilder, NodeDescriptor, NodeIdentity, TICKET_LEN, Ticket};
use libfuzzer_sys::fuzz_target;

const RANDOMNESS: [u8; 32] = [7; 32];

static CANDIDATE: LazyLock<(NodeIdentity, NodeDescriptor)> = LazyLock::new(|| {
    let identity = NodeIdentity::from_seed(&[3; 32]);
    let key = fog_mix::x25519_dalek::PublicKey::from(&identity.sphinx_secret(1));
    let descriptor = DescriptorBuilder::new(key, 1, "127.0.0.1:1")
        .stake(5)
        .sign(&identity)
        .expect("a valid descriptor");
    (identity, descriptor)
});

fuzz_target!(|data: &[u8]| {
    let (identity, descriptor) = &*CANDIDATE;
    if let Ok(ticket) = Ticket::from_bytes(data) {
        assert_eq!(data.len(), TICKET_LEN);
        assert_eq!(ticket.to_bytes(), data);
        if ticket.verify(descriptor, ticket.epoch(), &RANDOMNESS).is_ok() {
            // Only the identity's own draw verifies.
            assert_eq!(ticket, Ticket::draw(identity, ticket.epoch(), &RANDOMNESS));
        }
    }
    if let Ok(d) = NodeDescriptor::from_bytes(data) {
        assert_eq!(d.to_bytes(), data);
        let _ = d.verify();
    }
});
