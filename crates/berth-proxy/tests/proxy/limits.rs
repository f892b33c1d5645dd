//! Bounded resources at the edge, each through real sockets, with an honest client
//! served while a hostile one is held off: slow request heads (408), connections per
//! client address, and HTTP/2's stream, header list and reset limits and its SETTINGS
//! and PING floods.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const DEADLINE: Duration = Duration::from_secs(10);

async fn setup(
    attrs: serde_json::Value,
) -> (std::sync::Arc<berth_proxy::Proxy>, SocketAddr, Backend) {
    let web = Backend::start("web").await;
    let (p, _) = proxy();
    let mut cfg = simple_config(
        target_group(TG, "web", json!({"healthCheckEnabled": false})),
        vec![target(web.addr)],
    );
    cfg.load_balancers = vec![load_balancer(json!([]), attrs)];
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    (p, addr, web)
}

/// Everything the proxy sends until it closes the connection.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
        .await
        .expect("the proxy closes the connection in time")
        .ok();
    String::from_utf8_lossy(&all).into_owned()
}

/// One GET on a fresh connection: its status line.
async fn honest_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut s)
        .await
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn a_head_not_complete_within_the_header_timeout_gets_408_on_the_fast_path() {
    let (p, addr, web) = setup(json!({"berth.header_timeout_seconds": "1"})).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    // Meanwhile an honest client is served.
    assert!(honest_get(addr).await.starts_with("HTTP/1.1 200"));
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(web.count(), 1, "only the honest request reached the target");
    p.shutdown().await;
}

#[tokio::test]
async fn a_head_trickled_byte_by_byte_still_gets_408() {
    let (p, addr, web) = setup(json!({"berth.header_timeout_seconds": "1"})).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head =
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 100 ms: the head would take about 6 s, past the 1 s deadline.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut answered = String::new();
    for b in head {
        tick.tick().await;
        if slow.write_all(&[*b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut buf)).await
        {
            answered.push_str(&String::from_utf8_lossy(&buf[..n]));
            break;
        }
    }
    if answered.is_empty() {
        answered = until_closed(&mut slow).await;
    }
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert_eq!(web.count(), 0);
    p.shutdown().await;
}

#[tokio::test]
async fn a_slow_head_after_a_move_to_hyper_gets_408() {
    let (p, addr, web) = setup(json!({"berth.header_timeout_seconds": "1"})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A chunked request moves the connection to hyper; its answer comes first.
    s.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    let all = until_closed(&mut s).await;
    let first = all
        .find("HTTP/1.1 200")
        .expect("the chunked request answered");
    let second = all
        .find("HTTP/1.1 408")
        .expect("the slow head answered 408");
    assert!(first < second, "{all}");
    assert_eq!(web.count(), 1);
    p.shutdown().await;
}

async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(addr).await.unwrap()
}

/// Sends a keep-alive GET and reads its answer's status line (empty when the connection
/// was closed instead).
async fn kept_alive_get(s: &mut TcpStream) -> String {
    if s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .is_err()
    {
        return String::new();
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(DEADLINE, s.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn one_client_address_cannot_take_more_than_its_connections() {
    let (p, addr, _web) = setup(json!({"berth.max_connections_per_client": "2"})).await;
    let mut a1 = connect_from("127.0.0.1", addr).await;
    let mut a2 = connect_from("127.0.0.1", addr).await;
    assert!(kept_alive_get(&mut a1).await.starts_with("HTTP/1.1 200"));
    assert!(kept_alive_get(&mut a2).await.starts_with("HTTP/1.1 200"));
    // A third from the same address is closed unanswered...
    let mut a3 = connect_from("127.0.0.1", addr).await;
    assert_eq!(
        kept_alive_get(&mut a3).await,
        "",
        "third connection from one address"
    );
    // ...while another address is served, and so are the first two.
    let mut b1 = connect_from("127.0.0.2", addr).await;
    assert!(kept_alive_get(&mut b1).await.starts_with("HTTP/1.1 200"));
    assert!(kept_alive_get(&mut a1).await.starts_with("HTTP/1.1 200"));
    // A closed connection frees its slot.
    drop(a2);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut again = connect_from("127.0.0.1", addr).await;
        if kept_alive_get(&mut again).await.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::task::yield_now().await;
    }
    p.shutdown().await;
}

/// An h2c (prior knowledge) connection to the listener, driven by a task that publishes
/// the concurrent-stream limit the server's SETTINGS set.
async fn h2c_watched(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
    tokio::sync::watch::Receiver<usize>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, mut conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let (tx, rx) = tokio::sync::watch::channel(0usize);
    let task = tokio::spawn(std::future::poll_fn(move |cx| {
        let r = std::pin::Pin::new(&mut conn).poll(cx);
        tx.send_replace(conn.max_concurrent_send_streams());
        r
    }));
    (send, task, rx)
}

async fn h2c(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let (send, task, _) = h2c_watched(addr).await;
    (send, task)
}

fn h2_get(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://a{path}"))
        .body(())
        .unwrap()
}

#[tokio::test]
async fn http2_advertises_its_stream_limit_and_serves_within_it() {
    let (p, addr, web) = setup(json!({})).await;
    let (send, _conn, limit) = h2c_watched(addr).await;
    let mut send = send.ready().await.unwrap();
    let (resp, _) = send.send_request(h2_get("/"), true).unwrap();
    let resp = tokio::time::timeout(DEADLINE, resp).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    // The server's SETTINGS came before the first answer.
    assert_eq!(*limit.borrow(), 128);
    assert_eq!(web.count(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn an_http2_header_list_over_the_limit_is_refused_before_the_target() {
    let (p, addr, web) = setup(json!({})).await;
    let (send, _conn) = h2c(addr).await;
    let mut send = send.ready().await.unwrap();
    // A first request lets the client learn the server's settings.
    let (resp, _) = send.send_request(h2_get("/"), true).unwrap();
    tokio::time::timeout(DEADLINE, resp).await.unwrap().unwrap();
    let mut big = h2_get("/big");
    for i in 0..20 {
        big.headers_mut().insert(
            format!("x-big-{i}").parse::<http::HeaderName>().unwrap(),
            "a".repeat(4000).parse().unwrap(),
        );
    }
    let refused = match send.send_request(big, true) {
        Err(_) => true,
        Ok((resp, _)) => match tokio::time::timeout(DEADLINE, resp)
            .await
            .expect("an answer in time")
        {
            Err(_) => true,
            Ok(r) => r.status() == 431,
        },
    };
    assert!(refused, "an 80 KB header list is refused");
    assert_eq!(web.count(), 1, "only the first request reached the target");
    p.shutdown().await;
}

#[tokio::test]
async fn http2_rapid_reset_ends_the_connection_and_others_are_served() {
    let (p, addr, web) = setup(json!({})).await;
    let (mut send, conn) = h2c(addr).await;
    // Open streams and reset each at once, far more than the server lets go unaccepted.
    let mut ended: Option<h2::Error> = None;
    for _ in 0..2000 {
        let ready = match tokio::time::timeout(DEADLINE, send.clone().ready()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                ended = Some(e);
                break;
            }
            Err(_) => panic!("the connection stalled"),
        };
        send = ready;
        match send.send_request(h2_get("/slow"), false) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    let e = match ended {
        Some(e) => e,
        None => tokio::time::timeout(DEADLINE, conn)
            .await
            .expect("the server ends the connection")
            .unwrap()
            .expect_err("ended with an error"),
    };
    // The server's GOAWAY, or its close arriving before the client read the GOAWAY.
    assert!(
        e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) || e.is_io(),
        "the server ended the connection: {e:?}"
    );
    // An honest client is served meanwhile.
    let (send, _c) = h2c(addr).await;
    let mut send = send.ready().await.unwrap();
    let (resp, _) = send.send_request(h2_get("/"), true).unwrap();
    assert_eq!(
        tokio::time::timeout(DEADLINE, resp)
            .await
            .unwrap()
            .unwrap()
            .status(),
        200
    );
    web.release.notify_waiters();
    p.shutdown().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_ends_with_408_and_never_reaches_the_target() {
    let (p, addr, web) = setup(json!({
        "berth.header_timeout_seconds": "1",
        "idle_timeout.timeout_seconds": "1",
    }))
    .await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    // Two of the ten body bytes, then nothing: the fast path holds small bodies whole
    // before forwarding, under the same deadline as the head.
    slow.write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        .await
        .unwrap();
    assert!(honest_get(addr).await.starts_with("HTTP/1.1 200"));
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(web.count(), 1, "only the honest request reached the target");
    p.shutdown().await;
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// Sends `frame` over and over on a fresh h2c connection without ever reading what the
/// server answers, until a write fails. Returns the bytes the connection took and
/// whether a write failed (the server closed the connection) within `within`.
async fn flood(addr: SocketAddr, frame: &'static [u8], within: Duration) -> (usize, bool) {
    // A small receive buffer: the ACKs the flooder leaves unread fill it sooner.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(64 * 1024).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(H2_PREFACE_AND_SETTINGS).await.unwrap();
    let burst: Vec<u8> = frame.repeat(4096);
    let mut sent = 0usize;
    let cut_off = tokio::time::timeout(within, async {
        loop {
            // Whole bursts, so that the flood stays well framed.
            if s.write_all(&burst).await.is_err() {
                return;
            }
            sent += burst.len();
        }
    })
    .await
    .is_ok();
    (sent, cut_off)
}

/// A flood of `frame` is cut off within the idle timeout, the server takes no more of
/// it than socket buffers hold, and an honest HTTP/2 client is served meanwhile. The
/// server answers each frame with an ACK before it reads the next (h2 keeps at most one
/// ACK pending), so a flooder that does not read its ACKs stalls its own connection,
/// and a connection where nothing moves ends at the idle timeout.
async fn flood_is_cut_off_and_others_are_served(frame: &'static [u8]) {
    let (p, addr, web) = setup(json!({"idle_timeout.timeout_seconds": "2"})).await;
    // Without the idle timeout the stalled connection would stay open for good; the
    // bound is generous for a loaded machine, where filling the buffers takes a while.
    let flooder = tokio::spawn(flood(addr, frame, Duration::from_secs(60)));
    // The flooder has filled the buffers well before this: the server stopped reading.
    let (send, _c) = h2c(addr).await;
    for _ in 0..5 {
        let mut send = send.clone().ready().await.unwrap();
        let (resp, _) = send.send_request(h2_get("/"), true).unwrap();
        let resp = tokio::time::timeout(DEADLINE, resp)
            .await
            .expect("the honest client is answered in time")
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let (sent, cut_off) = flooder.await.unwrap();
    assert!(
        cut_off,
        "the flooding connection is closed (took {sent} bytes)"
    );
    // Each frame is answered with an ACK of the same size that the flooder never reads:
    // once the socket buffers are full the server waits, and reads no more of the flood.
    assert!(
        sent < 64 << 20,
        "the server stopped reading the flood: it took {sent} bytes"
    );
    assert_eq!(web.count(), 5);
    p.shutdown().await;
}

#[tokio::test]
async fn an_http2_ping_flood_is_cut_off_and_others_are_served() {
    // PING, no flags, stream 0, 8 bytes of payload.
    flood_is_cut_off_and_others_are_served(b"\0\0\x08\x06\0\0\0\0\0berth-pi").await;
}

#[tokio::test]
async fn an_http2_settings_flood_is_cut_off_and_others_are_served() {
    // SETTINGS, no flags, stream 0, one setting: INITIAL_WINDOW_SIZE 65535.
    flood_is_cut_off_and_others_are_served(b"\0\0\x06\x04\0\0\0\0\0\0\x04\0\0\xff\xff").await;
}
