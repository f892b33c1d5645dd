use super::*;

/// Feeds `input` in pieces of `piece` bytes: what passed, and the refusal if any.
fn gate_in_pieces(input: &[u8], piece: usize) -> (Vec<u8>, Option<Refusal>) {
    let mut s = Scanner::default();
    let mut out = Vec::new();
    for c in input.chunks(piece) {
        if let Err(r) = s.feed(c, &mut out) {
            return (out, Some(r));
        }
    }
    (out, None)
}

/// The gate's verdict on `input` fed in one read: what passed and the refusal's status.
fn gate(input: &[u8]) -> (Vec<u8>, Option<u16>) {
    let (out, r) = gate_in_pieces(input, input.len().max(1));
    (out, r.map(|r| r.rejection.status))
}

#[test]
fn plain_requests_pass_whole_in_any_pieces() {
    let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: a\r\n\r\n";
    for piece in 1..input.len() {
        assert_eq!(
            gate_in_pieces(input, piece),
            (input.to_vec(), None),
            "piece {piece}"
        );
    }
}

#[test]
fn an_incomplete_head_is_held_back() {
    let (out, r) = gate(b"GET / HTTP/1.1\r\nHost: a\r\n");
    assert!(out.is_empty());
    assert_eq!(r, None);
}

#[test]
fn both_length_and_chunked_are_refused_before_anything_passes() {
    let (out, r) = gate(
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!((out.len(), r), (0, Some(400)));
}

#[test]
fn a_refused_request_keeps_the_requests_before_it() {
    let first = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut input = first.to_vec();
    input.extend_from_slice(b"GET /2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    let (out, r) = gate_in_pieces(&input, 7);
    assert_eq!(out, first.to_vec());
    let r = r.expect("refused");
    assert!(r.answerable);
    assert_eq!(r.rejection.status, 400);
}

#[test]
fn a_smuggled_head_inside_a_body_is_not_a_head() {
    let body = b"GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    assert_eq!(gate(&req), (req.clone(), None));
}

#[test]
fn a_chunk_fault_in_the_heads_read_is_answered_later_ones_are_not() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut req = head.to_vec();
    req.extend_from_slice(b"5\nhello\r\n0\r\n\r\n");
    let (out, r) = gate_in_pieces(&req, req.len());
    assert!(out.is_empty());
    assert_eq!(
        r.map(|r| (r.rejection.status, r.answerable)),
        Some((400, true))
    );
    // The head went on in an earlier read: the fault ends the connection unanswered.
    let mut s = Scanner::default();
    let mut out = Vec::new();
    s.feed(head, &mut out).unwrap();
    assert_eq!(out, head.to_vec());
    let r = s.feed(b"5\r\nhello\n", &mut out).unwrap_err();
    assert!(!r.answerable);
    assert_eq!(out, head.to_vec(), "nothing of the faulty chunk passes");
}

#[test]
fn http2_prior_knowledge_ends_the_scan() {
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12";
    assert_eq!(gate(preface), (preface.to_vec(), None));
}

#[test]
fn after_an_upgrade_request_the_answer_decides() {
    let up = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let after =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut input = up.to_vec();
    input.extend_from_slice(after);
    // 101: what follows is another protocol and passes unexamined.
    let mut s = Scanner::default();
    let mut out = Vec::new();
    s.feed(&input, &mut out).unwrap();
    assert_eq!(out, up.to_vec(), "held until the answer");
    assert!(s.awaiting_upgrade());
    s.upgrade_answered(101, &mut out).unwrap();
    assert_eq!(out, input);
    // 200: HTTP/1 goes on, and the smuggling attempt behind the declined upgrade is refused.
    let mut s = Scanner::default();
    let mut out = Vec::new();
    s.feed(&input, &mut out).unwrap();
    s.upgrade_answered(100, &mut out).unwrap();
    assert!(s.awaiting_upgrade(), "an interim answer decides nothing");
    let r = s.upgrade_answered(200, &mut out).unwrap_err();
    assert_eq!(r.rejection.status, 400);
    assert!(r.answerable);
    assert_eq!(out, up.to_vec());
}

#[test]
fn an_endless_head_is_refused_with_431() {
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES));
    let (out, r) = gate_in_pieces(&big, 4096);
    assert!(out.is_empty());
    assert_eq!(r.map(|r| r.rejection.status), Some(431));
}
