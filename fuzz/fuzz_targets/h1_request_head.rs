//! The edge's request-head check (what the fast path and the edge gate judge every head
//! with): it never panics, a head its one pass accepts is one its full walk accepts
//! framed alike, and a head it accepts is one httparse parses whole.
#![no_main]

use berth_proxy::fuzzing::{check_head, head_checks_agree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    head_checks_agree(data);
    if check_head(data).is_ok() {
        let mut headers = [httparse_header(); 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(data) {
            Ok(httparse::Status::Complete(n)) => {
                assert_eq!(n, data.len(), "an accepted head is parsed whole")
            }
            other => panic!("accepted head refused by httparse: {other:?}"),
        }
    }
});

fn httparse_header() -> httparse::Header<'static> {
    httparse::EMPTY_HEADER
}
