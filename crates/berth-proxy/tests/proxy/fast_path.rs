//! The HTTP/1.1 fast path byte for byte: what a target receives, response framings
//! (length, chunked, close-delimited, interim 1xx), hop-by-hop headers both ways,
//! pipelining, connection reuse, HTTP/1.0 clients, and the hand-over to hyper in the middle
//! of a connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A target that answers each request with scripted bytes chosen by its path, and
/// records every request head (and body) it receives and every connection it accepts.
struct Scripted {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<u32>>,
}

fn script(path: &str, head: &str, body: &[u8]) -> (Vec<u8>, bool) {
    match path {
        "/chunked" => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\nConnection: X-Secret\r\nX-Secret: s\r\nX-Kept: k\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n".to_vec(),
            false,
        ),
        "/close" => (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end".to_vec(),
            true,
        ),
        "/continue" => (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone".to_vec(),
            false,
        ),
        "/nocontent" => (b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(), false),
        "/garbage" => (b"SPDY/9 what\r\n\r\n".to_vec(), true),
        _ => {
            let mut b = head.as_bytes().to_vec();
            b.extend_from_slice(body);
            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len()).into_bytes();
            r.extend(b);
            (r, false)
        }
    }
}

impl Scripted {
    async fn start() -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (reqs, conns) = (requests.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                *conns.lock().unwrap() += 1;
                let reqs = reqs.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let Some((head, body, len)) = request_in(&mut s, &mut buf).await else {
                            return;
                        };
                        buf.drain(..len);
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        if path != "/health" {
                            reqs.lock()
                                .unwrap()
                                .push(format!("{head}{}", String::from_utf8_lossy(&body)));
                        }
                        let (resp, close) = if path == "/health" {
                            (
                                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                                false,
                            )
                        } else {
                            script(&path, &head, &body)
                        };
                        if s.write_all(&resp).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            requests,
            connections,
        }
    }

    fn last_request(&self) -> String {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

/// Reads one request (head and Content-Length body) from `s`.
async fn request_in(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked")
            {
                if let Some(n) = chunked_len(&buf[end + 4..]) {
                    let body = buf[end + 4..end + 4 + n].to_vec();
                    return Some((head, body, end + 4 + n));
                }
            } else if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                return Some((head, body, end + 4 + len));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The length of the chunked body at the start of `b`, once it is all there.
fn chunked_len(b: &[u8]) -> Option<usize> {
    let last = if b.starts_with(b"0\r\n") {
        3
    } else {
        b.windows(5).position(|w| w == b"\r\n0\r\n")? + 5
    };
    if b[last..].starts_with(b"\r\n") {
        return Some(last + 2);
    }
    let end = b[last..].windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(last + end + 4)
}

/// Reads one response from `s`: its head and its body bytes as framed on the wire.
async fn response_in(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> (String, Vec<u8>) {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let lower = head.to_ascii_lowercase();
            let start = end + 4;
            let need = if head_only || lower.starts_with("http/1.1 204") {
                Some(0)
            } else if let Some(l) = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
            {
                Some(l.trim().parse::<usize>().unwrap())
            } else if lower.contains("transfer-encoding: chunked") {
                chunked_len(&buf[start..])
            } else {
                None // until the connection closes
            };
            if let Some(n) = need {
                if buf.len() >= start + n {
                    let body = buf[start..start + n].to_vec();
                    buf.drain(..start + n);
                    return (head, body);
                }
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.unwrap();
        if n == 0 {
            let end = buf
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("a head")
                + 4;
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body = buf[end..].to_vec();
            buf.clear();
            return (head, body);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn setup(attributes: serde_json::Value) -> (Arc<berth_proxy::Proxy>, SocketAddr, Scripted) {
    let t = Scripted::start().await;
    let (p, _) = proxy();
    let cfg = berth_proxy::ProxyConfig {
        load_balancers: vec![load_balancer(json!([]), attributes)],
        target_groups: vec![berth_proxy::TargetGroupConfig {
            group: target_group(TG, "web", json!({})),
            targets: vec![target(t.addr)],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    wait_for(&p, |s| all_healthy(s, 1)).await;
    (p, addr, t)
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[tokio::test]
async fn the_target_gets_the_request_with_hop_by_hop_headers_removed_and_forwarded_headers_set() {
    let (p, addr, t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"POST /echo?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: ftp\r\nX-Forwarded-Port: 1\r\nContent-Length: 5\r\nX-App: a\r\n\r\nhello",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = t.last_request();
    assert_eq!(String::from_utf8_lossy(&body), seen);
    assert!(seen.starts_with("POST /echo?q=1 HTTP/1.1\r\n"), "{seen}");
    assert_eq!(header(&seen, "host"), ["example.com"]);
    assert_eq!(header(&seen, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(header(&seen, "x-forwarded-proto"), ["http"]);
    assert_eq!(header(&seen, "x-forwarded-port"), [addr.port().to_string()]);
    assert_eq!(header(&seen, "x-app"), ["a"]);
    assert_eq!(header(&seen, "content-length"), ["5"]);
    for gone in ["connection", "keep-alive", "te", "proxy-connection"] {
        assert!(header(&seen, gone).is_empty(), "{gone} removed: {seen}");
    }
    assert!(seen.ends_with("\r\n\r\nhello"), "{seen}");
    p.shutdown().await;
}

#[tokio::test]
async fn chunked_responses_pass_through_and_the_connections_are_reused() {
    let (p, addr, t) = setup(json!({})).await;
    let before = *t.connections.lock().unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for _ in 0..3 {
        c.write_all(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = response_in(&mut c, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(header(&head, "transfer-encoding"), ["chunked"]);
        assert_eq!(header(&head, "x-kept"), ["k"]);
        for gone in ["keep-alive", "connection", "x-secret"] {
            assert!(header(&head, gone).is_empty(), "{gone} removed: {head}");
        }
        assert_eq!(
            String::from_utf8_lossy(&body),
            "5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
        );
    }
    // Health checks use their own connections; requests shared one pooled connection.
    let requests_conns = *t.connections.lock().unwrap() - before;
    assert!(requests_conns <= 1, "{requests_conns} new connections");
    p.shutdown().await;
}

#[tokio::test]
async fn a_close_delimited_response_ends_with_the_client_connection() {
    let (p, addr, _t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /close HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "connection"), ["close"]);
    assert_eq!(body, b"until the end");
    p.shutdown().await;
}

#[tokio::test]
async fn interim_responses_are_dropped_and_empty_ones_are_framed() {
    let (p, addr, _t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    c.write_all(b"GET /continue HTTP/1.1\r\nHost: a\r\n\r\nGET /nocontent HTTP/1.1\r\nHost: a\r\n\r\nHEAD /x HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"done");
    let (head, _) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let (head, _) = response_in(&mut c, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // A HEAD response carries the length of the body it does not send.
    assert!(!header(&head, "content-length").is_empty(), "{head}");
    c.write_all(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).starts_with("GET /after "));
    p.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (p, addr, _t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut all = Vec::new();
    for i in 0..20 {
        all.extend_from_slice(format!("GET /p{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    c.write_all(&all).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..20 {
        let (head, body) = response_in(&mut c, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let want = format!("GET /p{i} ");
        assert!(
            String::from_utf8_lossy(&body).starts_with(&want),
            "response {i}"
        );
    }
    p.shutdown().await;
}

#[tokio::test]
async fn a_connection_moves_to_hyper_for_a_chunked_request_and_keeps_working() {
    let (p, addr, t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    c.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Chunked request bodies are streamed by hyper; the same client connection goes on.
    c.write_all(b"POST /two HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /three HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = t.requests.lock().unwrap()[1].clone();
    assert!(seen.starts_with("POST /two "), "{seen}");
    assert!(
        seen.ends_with("3\r\nabc\r\n0\r\n\r\n"),
        "the body arrived: {seen}"
    );
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&body).starts_with("GET /three "));
    p.shutdown().await;
}

#[tokio::test]
async fn a_target_answering_garbage_gets_the_client_a_502() {
    let (p, addr, _t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    c.write_all(b"POST /garbage HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("502 Bad Gateway"));
    // The client connection is still usable.
    c.write_all(b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response_in(&mut c, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    p.shutdown().await;
}

#[tokio::test]
async fn a_client_asking_to_close_gets_its_answer_then_the_close() {
    let (p, addr, _t) = setup(json!({"routing.http.xff_header_processing.mode": "remove"})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(header(&text, "connection"), ["close"]);
    assert!(
        !text.to_ascii_lowercase().contains("x-forwarded-for"),
        "removed: {text}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_borrowing_buffers_per_request_keeps_every_byte() {
    // Between requests the connection gives its buffers back; each request takes them
    // again. Bodies larger than one buffer, a head in two pieces and a quiet spell
    // all come through whole on the one connection.
    let (p, addr, t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for round in 0..3u8 {
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8 ^ round).collect();
        let mut req = format!(
            "POST /big{round} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        c.write_all(&req).await.unwrap();
        let (head, echoed) = response_in(&mut c, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            echoed.ends_with(&body),
            "round {round}: the body came back whole"
        );

        c.write_all(b"GET /split HTTP/1.1\r\nHo").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        c.write_all(b"st: a\r\n\r\n").await.unwrap();
        let (head, echoed) = response_in(&mut c, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(String::from_utf8_lossy(&echoed).starts_with("GET /split "));
    }
    assert_eq!(
        t.requests.lock().unwrap().len(),
        6,
        "every request reached the target"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn an_http10_client_asking_for_keep_alive_keeps_its_connection() {
    let (p, addr, t) = setup(json!({})).await;
    let before = *t.connections.lock().unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for path in ["/one", "/two"] {
        c.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: a\r\nConnection: Keep-Alive\r\nX-App: a\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let (head, body) = response_in(&mut c, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(header(&head, "connection"), ["keep-alive"], "{head}");
        let seen = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(seen, t.last_request());
        // The target gets HTTP/1.1 (its connection is pooled), without the client's
        // hop-by-hop field, and the field names as the client wrote them (the fast path
        // copies them; hyper's client would lower-case them).
        assert!(
            seen.starts_with(&format!("GET {path} HTTP/1.1\r\n")),
            "{seen}"
        );
        assert!(header(&seen, "connection").is_empty(), "{seen}");
        assert!(seen.contains("\r\nX-App: a\r\n"), "{seen}");
    }
    let requests_conns = *t.connections.lock().unwrap() - before;
    assert!(requests_conns <= 1, "{requests_conns} new connections");
    p.shutdown().await;
}

#[tokio::test]
async fn an_http10_client_that_does_not_ask_for_keep_alive_gets_its_answer_then_the_close() {
    let (p, addr, t) = setup(json!({})).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /bye HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(header(&text, "connection"), ["close"]);
    let seen = t.last_request();
    assert!(seen.starts_with("POST /bye HTTP/1.1\r\n"), "{seen}");
    assert!(seen.ends_with("\r\n\r\nabc"), "{seen}");
    assert!(text.ends_with(&seen), "{text}");
    p.shutdown().await;
}

#[tokio::test]
async fn an_http10_client_gets_a_chunked_body_as_its_data_then_the_close() {
    let (p, addr, t) = setup(json!({})).await;
    let before = *t.connections.lock().unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /chunked HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut all = Vec::new();
    c.read_to_end(&mut all).await.unwrap();
    let text = String::from_utf8_lossy(&all);
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(header(head, "transfer-encoding").is_empty(), "{head}");
    assert_eq!(header(head, "connection"), ["close"]);
    assert_eq!(header(head, "x-kept"), ["k"]);
    assert_eq!(body, "hello world");
    // The whole chunked body was read from the target: its connection serves the next
    // request.
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (head, body) = response_in(&mut c, &mut buf, false).await;
    assert_eq!(header(&head, "transfer-encoding"), ["chunked"]);
    assert_eq!(
        String::from_utf8_lossy(&body),
        "5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"
    );
    let requests_conns = *t.connections.lock().unwrap() - before;
    assert!(requests_conns <= 1, "{requests_conns} new connections");
    p.shutdown().await;
}
