//! Large request and response bodies through the load balancer, over real sockets:
//! bodies on both sides of the fast path's buffering limit arrive byte for byte, a client
//! or a target that stops mid-body ends the exchange without a well-formed end, and a
//! streamed upload is never sent twice.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Sizes around the fast path's buffering limit (64 KiB), and large ones.
const SIZES: [usize; 6] = [0, 1, 64 * 1024 - 1, 64 * 1024 + 1, 1 << 20, 20 << 20];

/// The byte at offset `i` of every test body.
fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// FNV-1a, fed in pieces.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
    fn feed(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn body_of(len: usize) -> Vec<u8> {
    (0..len as u64).map(pattern).collect()
}

fn digest_of(b: &[u8]) -> u64 {
    let mut d = Digest::new();
    d.feed(b);
    d.0
}

/// What the target saw of one request body.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// The whole body: its length and digest.
    Whole(u64, u64),
    /// The connection closed after this many of the declared bytes.
    Cut { got: u64, declared: u64 },
}

/// A target that streams bodies both ways:
/// - `GET /download/N` answers N pattern bytes with a Content-Length;
/// - `GET /cut/N` declares N bytes, sends half of them and closes;
/// - `/drop` reads the head and closes without answering (counted in `drops`);
/// - anything else reads the Content-Length body and answers `<length> <digest>`.
///
/// Every request body it reads, whole or cut, is reported on `seen`.
struct Target {
    addr: SocketAddr,
    drops: Arc<AtomicU64>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Target {
    async fn start() -> Target {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let drops = Arc::new(AtomicU64::new(0));
        let (tx, seen) = mpsc::unbounded_channel();
        let d = drops.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(serve_target(s, d.clone(), tx.clone()));
            }
        });
        Target { addr, drops, seen }
    }
}

async fn serve_target(mut s: TcpStream, drops: Arc<AtomicU64>, seen: mpsc::UnboundedSender<Seen>) {
    let mut buf = Vec::new();
    loop {
        let Some((head, head_len)) = head_in(&mut s, &mut buf).await else {
            return;
        };
        buf.drain(..head_len);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        if path == "/drop" {
            drops.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if let Some(n) = path.strip_prefix("/download/") {
            let n: u64 = n.parse().unwrap();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            if s.write_all(head.as_bytes()).await.is_err() || send_pattern(&mut s, n).await {
                return;
            }
            continue;
        }
        if let Some(n) = path.strip_prefix("/cut/") {
            let n: u64 = n.parse().unwrap();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n");
            let _ = s.write_all(head.as_bytes()).await;
            let _ = send_pattern(&mut s, n / 2).await;
            return;
        }
        let declared = content_length(&head);
        let mut digest = Digest::new();
        let mut got = 0u64;
        while got < declared {
            if buf.is_empty() {
                let mut chunk = vec![0u8; 64 * 1024];
                match s.read(&mut chunk).await {
                    Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => {
                        let _ = seen.send(Seen::Cut { got, declared });
                        return;
                    }
                }
            }
            let take = buf.len().min((declared - got) as usize);
            digest.feed(&buf[..take]);
            buf.drain(..take);
            got += take as u64;
        }
        let _ = seen.send(Seen::Whole(got, digest.0));
        if path == "/health" {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            continue;
        }
        let answer = format!("{got} {}", digest.0);
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Writes `n` pattern bytes; true when the connection failed.
async fn send_pattern(s: &mut TcpStream, n: u64) -> bool {
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(256 * 1024);
        let piece: Vec<u8> = (sent..sent + k).map(pattern).collect();
        if s.write_all(&piece).await.is_err() {
            return true;
        }
        sent += k;
    }
    false
}

fn content_length(head: &str) -> u64 {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Reads up to the end of a head; returns it and its length.
async fn head_in(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((
                String::from_utf8_lossy(&buf[..end + 4]).into_owned(),
                end + 4,
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads one response on `s`: its head, and its body up to its Content-Length or until
/// the connection ends. Returns the head, the body and whether the connection ended.
async fn response_in(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, Vec<u8>, bool) {
    let (head, head_len) = head_in(s, buf).await.expect("a response head");
    buf.drain(..head_len);
    let want = content_length(&head) as usize;
    let mut ended = false;
    while buf.len() < want {
        let mut chunk = vec![0u8; 256 * 1024];
        match s.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => {
                ended = true;
                break;
            }
        }
    }
    let take = buf.len().min(want);
    let body = buf.drain(..take).collect();
    (head, body, ended)
}

/// Whether the peer closed `s` (reads end of stream, or a reset), with nothing more sent.
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b).await, Ok(0) | Err(_))
}

async fn setup() -> (Arc<berth_proxy::Proxy>, SocketAddr, Target) {
    let t = Target::start().await;
    let (p, _) = proxy();
    let addr = serve_group(
        &p,
        target_group(TG, "web", serde_json::json!({})),
        vec![target(t.addr)],
    )
    .await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    (p, addr, t)
}

/// The next body report that is not a health check's (whose body is empty).
async fn next_seen(t: &mut Target) -> Seen {
    t.seen.recv().await.expect("the target reports the body")
}

fn upload_head(path: &str, len: usize) -> Vec<u8> {
    format!("PUT {path} HTTP/1.1\r\nHost: web\r\nContent-Length: {len}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn uploads_arrive_byte_exact_on_both_sides_of_the_buffering_limit() {
    let (_p, addr, mut t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for len in SIZES {
        let body = body_of(len);
        c.write_all(&upload_head("/upload", len)).await.unwrap();
        c.write_all(&body).await.unwrap();
        let (head, answer, ended) = response_in(&mut c, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{len} bytes: {head}");
        assert!(!ended, "{len} bytes: the connection stays open");
        let expected = format!("{len} {}", digest_of(&body));
        assert_eq!(String::from_utf8_lossy(&answer), expected, "{len} bytes");
        // Health checks' reports may come in between.
        loop {
            if let Seen::Whole(n, d) = next_seen(&mut t).await {
                if n as usize == len && d == digest_of(&body) {
                    break;
                }
            }
        }
    }
}

#[tokio::test]
async fn downloads_arrive_byte_exact_and_the_connection_is_reused() {
    let (_p, addr, _t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for len in SIZES {
        c.write_all(format!("GET /download/{len} HTTP/1.1\r\nHost: web\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body, ended) = response_in(&mut c, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{len} bytes: {head}");
        assert!(!ended, "{len} bytes: the connection stays open");
        assert_eq!(body.len(), len);
        assert_eq!(digest_of(&body), digest_of(&body_of(len)), "{len} bytes");
    }
    assert!(buf.is_empty(), "nothing past the last body");
}

#[tokio::test]
async fn downloads_to_a_client_asking_to_close_arrive_byte_exact_then_the_close() {
    let (_p, addr, _t) = setup().await;
    for len in SIZES {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(
            format!("GET /download/{len} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        let (head, body, _) = response_in(&mut c, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{len} bytes: {head}");
        assert_eq!(body.len(), len);
        assert_eq!(digest_of(&body), digest_of(&body_of(len)), "{len} bytes");
        assert!(buf.is_empty(), "{len} bytes: nothing past the body");
        assert!(closed(&mut c).await, "{len} bytes: the connection ends");
    }
}

#[tokio::test]
async fn a_request_pipelined_after_a_streamed_upload_is_answered_next() {
    let (_p, addr, _t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let len = 300 * 1024;
    let body = body_of(len);
    let mut wire = upload_head("/upload", len);
    wire.extend_from_slice(&body);
    wire.extend_from_slice(b"GET /download/5 HTTP/1.1\r\nHost: web\r\n\r\n");
    c.write_all(&wire).await.unwrap();
    let mut buf = Vec::new();
    let (_, answer, _) = response_in(&mut c, &mut buf).await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        format!("{len} {}", digest_of(&body))
    );
    let (head, second, _) = response_in(&mut c, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(second, body_of(5));
}

#[tokio::test]
async fn a_client_stopping_mid_upload_gets_a_502_and_the_target_an_incomplete_body() {
    let (_p, addr, mut t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let declared = 1 << 20;
    c.write_all(&upload_head("/upload", declared))
        .await
        .unwrap();
    c.write_all(&body_of(200 * 1024)).await.unwrap();
    c.shutdown().await.unwrap();
    let mut buf = Vec::new();
    let (head, _, _) = response_in(&mut c, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert!(closed(&mut c).await, "the client connection ends");
    loop {
        match next_seen(&mut t).await {
            Seen::Whole(0, _) => continue, // a health check
            Seen::Cut { got, declared: d } => {
                assert_eq!(d, declared as u64);
                assert_eq!(got, 200 * 1024, "the target got what the client sent");
                break;
            }
            other => panic!("the target saw {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_target_closing_mid_response_closes_the_client_without_a_whole_body() {
    let (_p, addr, _t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let len = 4 << 20;
    c.write_all(format!("GET /cut/{len} HTTP/1.1\r\nHost: web\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (head, body, ended) = response_in(&mut c, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(ended, "the client connection ends");
    assert!(body.len() < len, "the body is short: {} bytes", body.len());
    assert_eq!(body, body_of(body.len()), "what came is the target's");
}

/// Opens a client connection and makes one request on it, so that the proxy holds a
/// pooled connection to the target: a failure on that one would be replayed as stale.
async fn warm_client(addr: SocketAddr, buf: &mut Vec<u8>) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /download/1 HTTP/1.1\r\nHost: web\r\n\r\n")
        .await
        .unwrap();
    let (head, _, _) = response_in(&mut c, buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    c
}

#[tokio::test]
async fn a_buffered_upload_the_target_dropped_is_sent_again() {
    let (_p, addr, t) = setup().await;
    let mut buf = Vec::new();
    let mut c = warm_client(addr, &mut buf).await;
    c.write_all(&upload_head("/drop", 10)).await.unwrap();
    c.write_all(&body_of(10)).await.unwrap();
    let (head, _, _) = response_in(&mut c, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    let sends = t.drops.load(Ordering::SeqCst);
    assert!(
        sends > 1,
        "a buffered idempotent upload is replayed ({sends} sends)"
    );
}

#[tokio::test]
async fn a_streamed_upload_the_target_dropped_is_not_sent_again() {
    let (_p, addr, t) = setup().await;
    let mut buf = Vec::new();
    let mut c = warm_client(addr, &mut buf).await;
    let len = 4 << 20;
    c.write_all(&upload_head("/drop", len)).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    // The proxy stops reading the body once the target is gone: the rest may not go.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&body_of(len)).await;
        wr
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        rd.read_to_end(&mut answer),
    );
    assert!(read.await.is_ok(), "the proxy ends the client connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 502"),
        "a 502 or a bare close: {answer}"
    );
    drop(writer.await.unwrap());
    assert_eq!(
        t.drops.load(Ordering::SeqCst),
        1,
        "the streamed upload is sent once"
    );
}

#[tokio::test]
async fn a_client_expecting_100_continue_is_told_to_go_on_and_its_body_arrives() {
    let (_p, addr, _t) = setup().await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    for len in [10, 3 << 20] {
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: web\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
        );
        c.write_all(head.as_bytes()).await.unwrap();
        let (interim, _) = head_in(&mut c, &mut buf).await.expect("an interim answer");
        assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n", "{len} bytes");
        buf.drain(..interim.len());
        let body = body_of(len);
        c.write_all(&body).await.unwrap();
        let (head, answer, ended) = response_in(&mut c, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{len} bytes: {head}");
        assert!(!ended, "{len} bytes: the connection stays open");
        assert_eq!(
            String::from_utf8_lossy(&answer),
            format!("{len} {}", digest_of(&body))
        );
    }
}
