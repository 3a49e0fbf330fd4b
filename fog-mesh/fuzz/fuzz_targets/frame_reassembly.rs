//! Any sequence of frames from a few senders: the reassembler never panics
//! and never holds more than its bounds.
#![no_main]

use std::time::{Duration, Instant};

use fog_mesh::{Reassembler, ReassemblyLimits, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = ReassemblyLimits::default();
    let mut reassembler = Reassembler::new(limits);
    let start = Instant::now();
    // Split the input into frames: a length byte, a sender byte, then the frame.
    let mut rest = data;
    let mut step = 0u64;
    while let [len, sender, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (frame, next) = tail.split_at(len);
        let _ = decode_frame(frame);
        let now = start + Duration::from_millis(step * 100);
        let _ = reassembler.push(&(sender % 4), frame, now);
        assert!(reassembler.partials() <= limits.max_partials);
        rest = next;
        step += 1;
    }
});
