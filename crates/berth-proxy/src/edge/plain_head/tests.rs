use super::super::judge_head;
use super::*;

/// Heads a client sends every day: each is accepted in one pass, framed as the full walk
/// frames it.
const PLAIN: &[(&[u8], BodyFraming)] = &[
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", BodyFraming::None),
    (
        b"GET /x/y?q=1&r=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
        BodyFraming::None,
    ),
    (b"GET / HTTP/1.0\r\n\r\n", BodyFraming::None),
    (
        b"POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 12\r\n\r\n",
        BodyFraming::Length(12),
    ),
    (
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        BodyFraming::None,
    ),
    (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        BodyFraming::Upgrade,
    ),
    (
        b"GET / HTTP/1.1\r\nHost: [::1]:80\r\nX:  caf\xc3\xa9\t \r\nEmpty:\r\n\r\n",
        BodyFraming::None,
    ),
];

#[test]
fn plain_heads_are_accepted_in_one_pass_as_the_full_walk_frames_them() {
    for (head, framing) in PLAIN {
        let shown = String::from_utf8_lossy(head);
        assert_eq!(accept(head), Some(*framing), "{shown}");
        assert_eq!(judge_head(head), Ok(*framing), "{shown}");
    }
}

#[test]
fn heads_that_need_the_full_walk_are_left_to_it() {
    let unsure: &[&[u8]] = &[
        // Valid, but not plain.
        b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        // Refused by the full walk.
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\nX",
        b"GET / HTTP/1.1\r\nHost: a\r\n",
        b"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",
    ];
    for head in unsure {
        assert_eq!(accept(head), None, "{}", String::from_utf8_lossy(head));
    }
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that sit on the rules' edges.
const EDGE_BYTES: &[u8] = b"\r\n \t:;,#/*?@[]\x00\x01\x7f\x80\xff0123456789aAzZ-_.\"(){}";
/// Field names and values that change how a head is judged.
const PIECES: &[&[u8]] = &[
    b"Host: b\r\n",
    b"Host:\r\n",
    b"Content-Length: 5\r\n",
    b"content-length: 0\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Upgrade: h2c\r\n",
    b"X: y\r\n",
    b"\r\n",
    b" HTTP/1.1",
    b"HTTP/1.0",
];

fn mutate(rng: &mut Rng, head: &mut Vec<u8>) {
    for _ in 0..=rng.below(3) {
        let at = rng.below(head.len() + 1);
        match rng.below(6) {
            0 if at < head.len() => head[at] = EDGE_BYTES[rng.below(EDGE_BYTES.len())],
            1 => head.insert(at, EDGE_BYTES[rng.below(EDGE_BYTES.len())]),
            2 if at < head.len() => {
                head.remove(at);
            }
            3 => {
                let piece = PIECES[rng.below(PIECES.len())];
                head.splice(at..at, piece.iter().copied());
            }
            4 if at < head.len() => head[at] = head[at].to_ascii_uppercase(),
            _ => {
                let end = (at + rng.below(8)).min(head.len());
                head.drain(at..end);
            }
        }
    }
}

#[test]
fn the_one_pass_never_accepts_what_the_full_walk_refuses() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut left) = (0, 0);
    for _ in 0..40_000 {
        let (seed, _) = PLAIN[rng.below(PLAIN.len())];
        let mut head = seed.to_vec();
        mutate(&mut rng, &mut head);
        match accept(&head) {
            Some(framing) => {
                accepted += 1;
                assert_eq!(
                    judge_head(&head),
                    Ok(framing),
                    "accepted in one pass, judged otherwise: {:?}",
                    String::from_utf8_lossy(&head)
                );
            }
            None => left += 1,
        }
    }
    // Both branches are exercised: mutations keep many heads plain and break many.
    assert!(
        accepted > 5_000 && left > 5_000,
        "accepted {accepted}, left {left}"
    );
}
