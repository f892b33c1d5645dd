//! Quiet keep-alive connections parked without a task (the listener's idle set), through
//! real sockets: a parked connection answers its next request on the same connection,
//! closes at its idle timeout, and is answered during a drain. The gauge
//! `berth_lb_idle_parked_connections` shows that parking happened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(10);

async fn setup(
    attrs: serde_json::Value,
) -> (
    Arc<berth_proxy::Proxy>,
    prometheus::Registry,
    SocketAddr,
    Backend,
) {
    let web = Backend::start("web").await;
    let (p, registry) = proxy();
    let mut cfg = simple_config(
        target_group(TG, "web", json!({"healthCheckEnabled": false})),
        vec![target(web.addr)],
    );
    cfg.load_balancers = vec![load_balancer(json!([]), attrs)];
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    (p, registry, addr, web)
}

fn parked(r: &prometheus::Registry) -> f64 {
    metric(
        r,
        "berth_lb_idle_parked_connections",
        &[("load_balancer", "web"), ("listener", LISTENER)],
    )
}

/// Waits (bounded) until `f` holds, checking every 20 ms.
async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a GET on `s` and reads one whole response (head and Content-Length body).
async fn get_on(s: &mut TcpStream) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::timeout(DEADLINE, read_response(s))
        .await
        .expect("answered in time")
}

async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before a whole response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn a_client_quiet_past_the_park_delay_is_answered_on_the_same_connection() {
    let (p, r, addr, web) = setup(json!({})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut s).await.starts_with("HTTP/1.1 200"));
    eventually(|| parked(&r) == 1.0).await;
    let second = get_on(&mut s).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(!second.to_ascii_lowercase().contains("connection: close"));
    assert_eq!(web.count(), 2, "both requests reached the target");
    assert_eq!(parked(&r), 0.0, "serving again, not parked");
    // And it parks again once quiet.
    eventually(|| parked(&r) == 1.0).await;
    p.shutdown().await;
}

#[tokio::test]
async fn a_parked_connection_is_closed_at_its_idle_timeout() {
    let (p, r, addr, _web) = setup(json!({"idle_timeout.timeout_seconds": "3"})).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    assert!(get_on(&mut s).await.starts_with("HTTP/1.1 200"));
    let served = tokio::time::Instant::now();
    eventually(|| parked(&r) == 1.0).await;
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut rest))
        .await
        .expect("the proxy closes the connection in time")
        .ok();
    assert!(rest.is_empty(), "nothing sent before closing");
    assert!(
        served.elapsed() >= Duration::from_millis(2900),
        "closed after {:?}, before the idle timeout",
        served.elapsed()
    );
    eventually(|| parked(&r) == 0.0).await;
    let active = |r: &prometheus::Registry| {
        metric(
            r,
            "berth_lb_active_connections",
            &[("load_balancer", "web"), ("listener", LISTENER)],
        )
    };
    eventually(|| active(&r) == 0.0).await;
    p.shutdown().await;
}

#[tokio::test]
async fn parked_connections_are_answered_during_a_drain() {
    const CLIENTS: usize = 40;
    let (p, r, addr, web) = setup(json!({})).await;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut s = TcpStream::connect(addr).await.unwrap();
        assert!(get_on(&mut s).await.starts_with("HTTP/1.1 200"));
        clients.push(s);
    }
    eventually(|| parked(&r) == CLIENTS as f64).await;
    let shutdown = tokio::spawn({
        let p = p.clone();
        async move { p.shutdown().await }
    });
    // The listener's metrics go just before it stops: from then on the drain is on.
    eventually(|| parked(&r) == 0.0).await;
    for s in &mut clients {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
    }
    for s in &mut clients {
        let answer = tokio::time::timeout(DEADLINE, read_response(s))
            .await
            .expect("answered in time");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    assert_eq!(web.count(), 2 * CLIENTS as u64);
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("the drain ends")
        .unwrap();
}
