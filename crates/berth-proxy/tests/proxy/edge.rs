//! The edge, end to end: every request RFC 9110/9112 tells a server or intermediary to
//! refuse is answered by berth with its status, and the target behind the listener never
//! sees a byte of it. Each rule is its own row, sent twice through a real socket: first
//! thing on a fresh connection (the HTTP/1.1 fast path reads it first) and after a
//! chunked request moved the connection to hyper (the hyper path reads it).

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use berth_proxy::{ProxyConfig, TargetGroupConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TG2: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/api/2";
const DEADLINE: Duration = Duration::from_secs(10);

fn no_hc(arn: &str, name: &str) -> berth_model::elb::TargetGroup {
    target_group(arn, name, json!({"healthCheckEnabled": false}))
}

/// A proxy whose listener forwards to `web`, and host `api.example` to `api`.
async fn setup() -> (
    std::sync::Arc<berth_proxy::Proxy>,
    SocketAddr,
    Backend,
    Backend,
) {
    let web = Backend::start("web").await;
    let api = Backend::start("api").await;
    let (p, _) = proxy();
    let rules = json!([{"priority": 1,
        "conditions": [{"field": "host-header", "values": ["api.example"]}],
        "actions": [{"type": "forward", "targetGroupArn": TG2}]}]);
    let cfg = ProxyConfig {
        load_balancers: vec![load_balancer(rules, json!({}))],
        target_groups: vec![
            TargetGroupConfig {
                group: no_hc(TG, "web"),
                targets: vec![target(web.addr)],
                mesh: None,
            },
            TargetGroupConfig {
                group: no_hc(TG2, "api"),
                targets: vec![target(api.addr)],
                mesh: None,
            },
        ],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    (p, addr, web, api)
}

/// Reads one response: its head as text and its body (Content-Length framed, or up to
/// the connection's end).
async fn response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (n, v) = l.split_once(':')?;
                        n.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(usize::MAX);
                if len != usize::MAX && buf.len() >= end + 4 + len {
                    return (head, buf[end + 4..end + 4 + len].to_vec());
                }
            }
            let n = s.read(&mut chunk).await.expect("read");
            if n == 0 {
                let text = String::from_utf8_lossy(&buf).into_owned();
                return (text, Vec::new());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(DEADLINE, read)
        .await
        .expect("a response in time")
}

/// Moves a connection to the hyper path: a chunked request the fast path declines.
async fn on_hyper(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /warm HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "warm-up: {head}");
    assert_eq!(body, b"web:abc");
    s
}

/// The status of the answer to `request`, and whether the connection closed after it.
async fn answer(mut s: TcpStream, request: &[u8]) -> (u16, bool) {
    s.write_all(request).await.unwrap();
    let (head, _) = response(&mut s).await;
    let status = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut rest = [0u8; 64];
    let closed = matches!(
        tokio::time::timeout(DEADLINE, s.read(&mut rest)).await,
        Ok(Ok(0)) | Ok(Err(_))
    );
    (status, closed)
}

/// One rule: its name, the bytes that break it and the status they get.
struct Row {
    rule: &'static str,
    request: Vec<u8>,
    status: u16,
}

fn row(rule: &'static str, request: &[u8], status: u16) -> Row {
    Row {
        rule,
        request: request.to_vec(),
        status,
    }
}

fn rows() -> Vec<Row> {
    let mut rows = vec![
        // The request line.
        row("two spaces in the request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("method is not a token", b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("empty method", b" / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("request-target with a control character", b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("request-target with a fragment", b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("version not HTTP/DIGIT.DIGIT", b"GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
        row("HTTP/2.0 in an HTTP/1 request line", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        row("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        row("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        // Line endings.
        row("bare LF ending the head's lines", b"GET / HTTP/1.1\nHost: a\n\n", 400),
        row("bare LF after a field", b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
        row("bare CR inside a field", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
        // Host.
        row("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\nX: b\r\n\r\n", 400),
        row("two Host fields", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        row("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        row("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
        row("Host with a bad port", b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
        row("Host differing from the absolute-form authority", b"GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
        row("absolute-form with userinfo", b"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        row("absolute-form with another scheme", b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        // Target forms.
        row("CONNECT (authority-form)", b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 405),
        row("authority-form on GET", b"GET a.example:443 HTTP/1.1\r\nHost: a.example\r\n\r\n", 400),
        row("asterisk-form on GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        // Field syntax.
        row("whitespace before the colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400),
        row("tab before the colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n", 400),
        row("field name not a token", b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400),
        row("field line without a colon", b"GET / HTTP/1.1\r\nHost: a\r\nX-A b\r\n\r\n", 400),
        row("NUL in a field value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
        row("control character in a field value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n", 400),
        row("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
        // Framing.
        row("Content-Length with Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        row("Transfer-Encoding with Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
        row("the same Content-Length twice", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        row("differing Content-Length values", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        row("Content-Length list", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
        row("Content-Length with a sign", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
        row("Content-Length not a number", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: three\r\n\r\nabc", 400),
        row("Content-Length in hexadecimal", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x3\r\n\r\nabc", 400),
        row("Content-Length overflowing 64 bits", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\nabc", 413),
        row("Transfer-Encoding not ending in chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
        row("Transfer-Encoding gzip alone", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400),
        row("chunked applied twice", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        row("empty Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n", 400),
        row("unknown transfer coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", 501),
        row("identity transfer coding", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc", 501),
        row("Transfer-Encoding on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ];
    // Chunked bodies.
    let chunked = |body: &[u8]| {
        let mut r = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        r.extend_from_slice(body);
        r
    };
    for (rule, body, status) in [
        (
            "chunk-size not hexadecimal",
            &b"z\r\nabc\r\n0\r\n\r\n"[..],
            400,
        ),
        ("chunk-size with 0x", b"0x3\r\nabc\r\n0\r\n\r\n", 400),
        ("chunk-size with a sign", b"+3\r\nabc\r\n0\r\n\r\n", 400),
        (
            "chunk-size overflowing 64 bits",
            b"10000000000000000\r\nabc\r\n0\r\n\r\n",
            413,
        ),
        (
            "chunk-size line ending in bare LF",
            b"3\nabc\r\n0\r\n\r\n",
            400,
        ),
        ("chunk data ending in bare LF", b"3\r\nabc\n0\r\n\r\n", 400),
        (
            "chunk data longer than its size",
            b"3\r\nabcd\r\n0\r\n\r\n",
            400,
        ),
        ("last chunk ending in bare LF", b"3\r\nabc\r\n0\n\r\n", 400),
        (
            "chunk extension without a name",
            b"3;\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "chunk extension with a control character",
            b"3;a=\x01\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "chunk extension with an unclosed quote",
            b"3;a=\"b\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "trailer Content-Length",
            b"3\r\nabc\r\n0\r\nContent-Length: 3\r\n\r\n",
            400,
        ),
        (
            "trailer Transfer-Encoding",
            b"3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("trailer Host", b"3\r\nabc\r\n0\r\nHost: b\r\n\r\n", 400),
        (
            "trailer with whitespace before the colon",
            b"3\r\nabc\r\n0\r\nX-T : 1\r\n\r\n",
            400,
        ),
        (
            "trailer section ending in bare LF",
            b"3\r\nabc\r\n0\r\nX-T: 1\n\r\n",
            400,
        ),
    ] {
        rows.push(Row {
            rule,
            request: chunked(body),
            status,
        });
    }
    let mut long_target = b"GET /".to_vec();
    long_target.extend(std::iter::repeat_n(b'a', 17 * 1024));
    long_target.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
    rows.push(Row {
        rule: "request-target over 16 KiB",
        request: long_target,
        status: 414,
    });
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..101 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    rows.push(Row {
        rule: "more than 100 header fields",
        request: many,
        status: 431,
    });
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 65 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    rows.push(Row {
        rule: "head over 64 KiB",
        request: big,
        status: 431,
    });
    rows
}

#[tokio::test]
async fn every_rule_is_refused_with_its_status_on_both_paths_and_nothing_reaches_the_target() {
    let (p, addr, web, api) = setup().await;
    let mut failures = Vec::new();
    for r in rows() {
        for path in ["fast path", "hyper path"] {
            let s = if path == "fast path" {
                TcpStream::connect(addr).await.unwrap()
            } else {
                on_hyper(addr).await
            };
            let before = web.count() + api.count();
            let (status, closed) = answer(s, &r.request).await;
            let after = web.count() + api.count();
            if status != r.status || !closed || after != before {
                failures.push(format!(
                    "{} ({path}): got {status} (closed: {closed}), want {}; target saw {} request(s)",
                    r.rule,
                    r.status,
                    after - before
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "rules not enforced:\n{}",
        failures.join("\n")
    );
    p.shutdown().await;
}

#[tokio::test]
async fn well_formed_requests_of_every_form_still_pass() {
    let (p, addr, web, api) = setup().await;
    let ok: &[(&str, &[u8], &str)] = &[
        ("origin-form", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "web"),
        ("absolute-form routed by its authority", b"GET http://api.example/x HTTP/1.1\r\nHost: api.example\r\n\r\n", "api"),
        ("absolute-form with the default port in Host", b"GET http://api.example/x HTTP/1.1\r\nHost: api.example:80\r\n\r\n", "api"),
        ("HTTP/1.0 without Host", b"GET / HTTP/1.0\r\n\r\n", "web"),
        ("OPTIONS *", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "web"),
        ("chunked with extensions and a trailer", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1;y=\"q z\"\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", "web:abc"),
        ("gzip then chunked", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "web:abc"),
        ("a leading empty line", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "web"),
        ("obs-text in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n", "web"),
    ];
    for (name, request, body) in ok {
        for path in ["fast path", "hyper path"] {
            let mut s = if path == "fast path" {
                TcpStream::connect(addr).await.unwrap()
            } else {
                on_hyper(addr).await
            };
            s.write_all(request).await.unwrap();
            let (head, got) = response(&mut s).await;
            assert!(
                head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
                "{name} ({path}): {head}"
            );
            assert_eq!(String::from_utf8_lossy(&got), *body, "{name} ({path})");
        }
    }
    assert!(api.count() >= 4);
    assert!(web.count() > 0);
    p.shutdown().await;
}

#[tokio::test]
async fn a_refused_request_is_answered_after_the_pipelined_ones_before_it() {
    let (p, addr, web, _api) = setup().await;
    let mut s = on_hyper(addr).await;
    let before = web.count();
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    // Everything until the proxy closes the connection: the answer to /1, then the 400.
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
        .await
        .expect("the connection ends after the refusal")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    let first = text.find("HTTP/1.1 200").expect("/1 answered");
    let second = text.find("HTTP/1.1 400").expect("/2 refused");
    assert!(first < second, "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        2,
        "/3 is not answered: {text}"
    );
    assert!(text[second..].contains("connection: close"), "{text}");
    assert_eq!(
        web.count() - before,
        1,
        "only the request before the refused one went on"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_declined_upgrade_does_not_open_a_way_around_the_edge() {
    let (p, addr, web, _api) = setup().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The target answers the upgrade request with a 200. The ambiguous request behind it
    // never reaches the target: the gate holds it until the answer, then follows HTTP/1
    // again and refuses it (hyper gives up a connection after answering an upgrade
    // request, so the refusal ends the connection unanswered).
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nPOST /smuggled HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
        .await
        .expect("the connection ends")
        .unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        text.matches("HTTP/1.1 2").count(),
        1,
        "no answer from a target for the smuggled request: {text}"
    );
    assert_eq!(
        web.count(),
        1,
        "only the upgrade request reached the target"
    );
    p.shutdown().await;
}
