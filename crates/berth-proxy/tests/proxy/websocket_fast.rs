//! WebSockets (HTTP/1.1 upgrades) served on the fast path: the upgrade request with its
//! forwarded headers, echoes and large frames both ways over the raw splice, either side
//! closing first, a declined upgrade relayed with its body, and the idle timeout of an
//! upgraded connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DEADLINE: Duration = Duration::from_secs(10);
const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A target that answers `/ws` with 101 and then echoes every byte (or, on `/close`,
/// closes right after the 101), and anything else with 426 and a body. Records heads.
async fn ws_target() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                let head = read_head(&mut s).await;
                seen.lock().unwrap().push(head.clone());
                if head.starts_with("GET /ws ") || head.starts_with("GET /close ") {
                    s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n").await.unwrap();
                    if head.starts_with("GET /close ") {
                        return;
                    }
                    let mut buf = vec![0u8; 65536];
                    loop {
                        let n = match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                } else {
                    let _ = s
                        .write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 12\r\n\r\nuse a socket")
                        .await;
                    let _ = read_head(&mut s).await;
                }
            });
        }
    });
    (addr, heads)
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b).await {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn setup(
    attributes: serde_json::Value,
) -> (
    Arc<berth_proxy::Proxy>,
    prometheus::Registry,
    SocketAddr,
    Arc<Mutex<Vec<String>>>,
) {
    let (t, heads) = ws_target().await;
    let (p, r) = proxy();
    let cfg = berth_proxy::ProxyConfig {
        load_balancers: vec![load_balancer(json!([]), attributes)],
        target_groups: vec![berth_proxy::TargetGroupConfig {
            group: target_group(TG, "web", json!({"healthCheckEnabled": false})),
            targets: vec![target(t)],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    (p, r, addr, heads)
}

fn active(r: &prometheus::Registry) -> f64 {
    metric(r, "berth_lb_active_connections", &[])
}

/// Waits (bounded) until the proxy counts no open connection.
async fn until_no_connection(r: &prometheus::Registry) {
    tokio::time::timeout(DEADLINE, async {
        while active(r) != 0.0 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the proxy closed its side of the connection");
}

#[tokio::test]
async fn an_upgrade_is_spliced_on_the_fast_path_both_ways_until_the_client_closes() {
    let (p, r, addr, heads) = setup(json!({})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(UPGRADE).await.unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head}"
    );

    let sent = heads.lock().unwrap()[0].clone();
    // The fast path passes header names as the client wrote them (hyper's client writes
    // them in lower case): this fails if hyper served the upgrade.
    assert!(
        sent.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="),
        "{sent}"
    );
    assert!(sent.contains("upgrade: websocket\r\n"), "{sent}");
    assert!(sent.contains("connection: upgrade\r\n"), "{sent}");
    assert!(sent.contains("x-forwarded-for: 127.0.0.1"), "{sent}");
    assert!(sent.contains("x-forwarded-proto: http"), "{sent}");
    // The upgraded connection stays in the connection's own task, counted as open.
    assert_eq!(active(&r), 1.0);

    for msg in [&b"hello"[..], b"world"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
    // Large frames both ways: 1 MiB out while it comes back.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (mut rd, mut wr) = s.into_split();
    let out = big.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&out).await.unwrap();
        wr
    });
    let mut got = vec![0u8; big.len()];
    tokio::time::timeout(DEADLINE, rd.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got == big, "bytes come back in order");
    let mut wr = writer.await.unwrap();

    // The client closes first: the target sees the end and closes; so does the proxy.
    wr.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, rd.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    until_no_connection(&r).await;
    assert!(metric(&r, "berth_lb_processed_bytes_total", &[]) >= 2.0 * big.len() as f64);
    p.shutdown().await;
}

#[tokio::test]
async fn the_target_closing_an_upgraded_connection_closes_the_client_side() {
    let (p, r, addr, _) = setup(json!({})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&UPGRADE.to_vec().replace_path("/close"))
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut all))
        .await
        .expect("the connection ends")
        .unwrap();
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 101"));
    // The target's end reached the client as a half-close; once the client ends its
    // side too, the proxy holds nothing of the connection.
    s.shutdown().await.unwrap();
    until_no_connection(&r).await;
    p.shutdown().await;
}

#[tokio::test]
async fn a_declined_upgrade_is_relayed_with_its_body_and_the_connection_goes_on() {
    let (p, _r, addr, heads) = setup(json!({})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&UPGRADE.to_vec().replace_path("/no"))
        .await
        .unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut body = [0u8; 12];
    s.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"use a socket");
    // The same client connection serves the next request, on a new target connection
    // (the declined upgrade's is closed, not pooled).
    s.write_all(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    assert!(heads[1].starts_with("GET /next "), "{heads:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn an_idle_upgraded_connection_is_closed_after_the_idle_timeout() {
    let (p, r, addr, _) = setup(json!({"idle_timeout.timeout_seconds": "1"})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(UPGRADE).await.unwrap();
    let head = tokio::time::timeout(DEADLINE, read_head(&mut s))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    s.read_exact(&mut b).await.unwrap();
    // Nothing moves: the proxy ends the connection once the idle timeout passed.
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest))
        .await
        .expect("the idle connection is closed")
        .unwrap();
    assert!(rest.is_empty());
    until_no_connection(&r).await;
    p.shutdown().await;
}

trait ReplacePath {
    fn replace_path(self, path: &str) -> Vec<u8>;
}

impl ReplacePath for Vec<u8> {
    fn replace_path(self, path: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replacen("/ws", path, 1)
            .into_bytes()
    }
}
