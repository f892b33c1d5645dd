use super::chunked::ChunkedScan;
use super::*;

fn status(head: &[u8]) -> Result<BodyFraming, u16> {
    check_head(head).map_err(|r| r.status)
}

#[test]
fn well_formed_heads_pass_with_their_framing() {
    let ok: &[(&str, &[u8], BodyFraming)] = &[
        (
            "plain GET",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "leading empty line",
            b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "HTTP/1.0 without Host",
            b"GET / HTTP/1.0\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "length",
            b"POST / HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\n\r\n",
            BodyFraming::Length(5),
        ),
        (
            "chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            BodyFraming::Chunked,
        ),
        (
            "absolute-form",
            b"GET http://a.example:80/x?q HTTP/1.1\r\nHost: A.example\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "asterisk-form",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "upgrade",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            BodyFraming::Upgrade,
        ),
        (
            "obs-text value",
            b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
            BodyFraming::None,
        ),
        (
            "IPv6 host",
            b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
            BodyFraming::None,
        ),
    ];
    for (name, head, framing) in ok {
        assert_eq!(status(head), Ok(*framing), "{name}");
    }
}

#[test]
fn each_rule_refuses_with_its_status() {
    let bad: &[(&str, &[u8], u16)] = &[
        ("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("method not a token", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("target with a control", b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("fragment", b"GET /#f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("HTTP/2.0 request line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        ("version garbage", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
        ("bare LF", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("bad Host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host mismatch", b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("asterisk on GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("authority-form on GET", b"GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
        ("CL and TE", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("same CL twice", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
        ("CL list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400),
        ("CL not digits", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
        ("CL overflow", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
        ("TE not ending in chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("chunked twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("unknown coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 501),
        ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    ];
    for (name, head, expected) in bad {
        assert_eq!(status(head), Err(*expected), "{name}");
    }
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', MAX_REQUEST_TARGET));
    long.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(status(&long), Err(414), "long target");
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..MAX_HEADER_FIELDS {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(status(&many), Err(431), "too many fields");
}

fn chunked(body: &[u8]) -> Result<Option<usize>, u16> {
    let whole = ChunkedScan::default().feed(body).map_err(|r| r.status);
    // Any split gives the same verdict.
    for cut in 1..body.len() {
        let mut s = ChunkedScan::default();
        let (a, b) = body.split_at(cut);
        let r = match s.feed(a) {
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => s.feed(b).map(|o| o.map(|n| n + cut)),
            Err(e) => Err(e),
        }
        .map_err(|r| r.status);
        assert_eq!(
            r,
            whole,
            "cut at {cut} of {:?}",
            String::from_utf8_lossy(body)
        );
    }
    whole
}

#[test]
fn chunked_bodies_end_where_they_end() {
    let body = b"5\r\nhello\r\n6;a=1;b=\"x y\"\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    assert_eq!(chunked(body), Ok(Some(body.len() - 4)));
    assert_eq!(chunked(b"0\r\n\r\n"), Ok(Some(5)));
    assert_eq!(chunked(b"5\r\nhel"), Ok(None));
}

#[test]
fn chunked_body_faults_are_refused() {
    let bad: &[(&str, &[u8], u16)] = &[
        ("size not hex", b"zz\r\n", 400),
        ("size with 0x", b"0x5\r\nhello\r\n0\r\n\r\n", 400),
        ("size overflow", b"10000000000000000\r\n", 413),
        ("bare LF after size", b"5\nhello\r\n0\r\n\r\n", 400),
        ("bare LF after data", b"5\r\nhello\n0\r\n\r\n", 400),
        (
            "data longer than its size",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            400,
        ),
        ("extension without a name", b"5;\r\nhello\r\n0\r\n\r\n", 400),
        (
            "extension with a control",
            b"5;a\x01\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        ("forbidden trailer", b"0\r\nContent-Length: 5\r\n\r\n", 400),
        ("malformed trailer", b"0\r\nX : 1\r\n\r\n", 400),
        ("bare LF in trailers", b"0\r\nX: 1\n\r\n", 400),
    ];
    for (name, body, expected) in bad {
        assert_eq!(chunked(body), Err(*expected), "{name}");
    }
    let mut long = b"1;a=".to_vec();
    long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION));
    long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    assert_eq!(
        ChunkedScan::default().feed(&long).map_err(|r| r.status),
        Err(400)
    );
}

/// Found by the `h1_request_head` fuzz target: a head without its closing empty line was
/// accepted (the gate and the fast path only ever pass complete heads, but the check
/// itself must not accept less).
#[test]
fn a_head_must_end_with_its_one_empty_line() {
    assert_eq!(
        status(b"OrGET http://a.example/p HTTP/1.0\r\nHostTP:IaTPdY t\r\n"),
        Err(400)
    );
    assert_eq!(status(b"GET / HTTP/1.1\r\nHost: a\r\n"), Err(400));
    assert_eq!(
        status(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nX: b\r\n"),
        Err(400)
    );
}
