//! The edge gate's framing scan (heads, fixed-length and chunked bodies, trailers) fed
//! in pieces: the verdict does not depend on how the bytes were split, and what passes
//! is a prefix of the input. Also the chunked-body scan alone, and the codec the fast path
//! reads targets' responses with.
#![no_main]

use berth_proxy::fuzzing::{gate_in_pieces, response, ChunkedScan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cuts, input) = data.split_at(data.len().min(8));
    gate_in_pieces(input, if cuts.is_empty() { &[63] } else { cuts });
    let mut scan = ChunkedScan::default();
    if let Ok(Some(n)) = scan.feed(input) {
        assert!(n <= input.len());
    }
    response(input);
});
