//! Balancing algorithms, slow start, stickiness and WebSocket upgrades, end to end.

use std::time::Duration;

use crate::common::*;
use berth_proxy::{ProxyConfig, TargetGroupConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn group_of(
    n: usize,
    attrs: serde_json::Value,
) -> (
    std::sync::Arc<berth_proxy::Proxy>,
    std::net::SocketAddr,
    Vec<Backend>,
) {
    let mut bs = Vec::new();
    for i in 0..n {
        bs.push(Backend::start(&format!("b{i}")).await);
    }
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"healthCheckEnabled": false, "attributes": attrs}),
    );
    let addr = serve_group(&p, tg, bs.iter().map(|b| target(b.addr)).collect()).await;
    (p, addr, bs)
}

/// A group of `n` backends balanced by `algorithm`.
async fn balanced_by(
    n: usize,
    algorithm: &str,
) -> (
    std::sync::Arc<berth_proxy::Proxy>,
    std::net::SocketAddr,
    Vec<Backend>,
) {
    group_of(n, json!({ "load_balancing.algorithm.type": algorithm })).await
}

/// Sends a `/slow` request and waits until a backend holds it: the request, and the index
/// of the busy backend.
async fn hold_a_slow_request(
    c: &HttpClient,
    addr: std::net::SocketAddr,
    bs: &[Backend],
) -> (tokio::task::JoinHandle<(u16, String)>, usize) {
    let c2 = c.clone();
    let slow = tokio::spawn(async move { get(&c2, addr, "/slow").await });
    tokio::select! {
        _ = bs[0].slow_arrived.notified() => {}
        _ = bs[1].slow_arrived.notified() => {}
    }
    let busy = if bs[0].count() == 1 { 0 } else { 1 };
    (slow, busy)
}

#[tokio::test]
async fn least_outstanding_requests_avoids_the_busy_target() {
    let (p, addr, bs) = balanced_by(2, "least_outstanding_requests").await;
    let c = client();
    let (slow, busy) = hold_a_slow_request(&c, addr, &bs).await;
    for _ in 0..10 {
        assert_eq!(get(&c, addr, "/").await.1, bs[1 - busy].name);
    }
    bs[busy].release.notify_one();
    assert_eq!(slow.await.unwrap().0, 200);
    p.shutdown().await;
}

#[tokio::test]
async fn weighted_random_spreads_over_all_targets() {
    let (p, addr, bs) = balanced_by(3, "weighted_random").await;
    let c = client();
    for _ in 0..300 {
        assert_eq!(get(&c, addr, "/").await.0, 200);
    }
    for b in &bs {
        assert!(
            (60..=140).contains(&b.count()),
            "{} got {}",
            b.name,
            b.count()
        );
    }
    p.shutdown().await;
}

#[tokio::test]
async fn peak_ewma_prefers_the_faster_target() {
    let (p, addr, bs) = balanced_by(2, "peak_ewma").await;
    let c = client();
    // One backend holds one request for a long time: its outstanding count and then its
    // latency make it the expensive choice.
    let (slow, busy) = hold_a_slow_request(&c, addr, &bs).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    bs[busy].release.notify_one();
    assert_eq!(slow.await.unwrap().0, 200);
    // The slow response raised the busy target's peak latency: the other one takes
    // nearly all of the next requests.
    let before = bs[busy].count();
    for _ in 0..50 {
        assert_eq!(get(&c, addr, "/").await.0, 200);
    }
    assert!(
        bs[busy].count() - before <= 5,
        "busy got {}",
        bs[busy].count() - before
    );
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn slow_start_ramps_a_new_target_up() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "web",
        json!({"attributes": {"slow_start.duration_seconds": "100"}}),
    );
    let addr = serve_group(&p, tg.clone(), vec![target(a.addr)]).await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    tokio::time::advance(Duration::from_secs(200)).await;
    p.apply(simple_config(tg, vec![target(a.addr), target(b.addr)]))
        .await
        .unwrap();
    wait_for(&p, |s| all_healthy(s, 2)).await;
    let c = client();
    let share = |n: u64, before: (u64, u64)| (b.count() - before.1) as f64 / n as f64;
    // Just healthy: b's weight is at its floor.
    let before = (a.count(), b.count());
    for _ in 0..200 {
        get(&c, addr, "/").await;
    }
    let early = share(200, before);
    assert!(early < 0.2, "early share {early}");
    tokio::time::advance(Duration::from_secs(100)).await;
    // The proxy closed the idle client connection meanwhile.
    let c = client();
    let before = (a.count(), b.count());
    for _ in 0..200 {
        get(&c, addr, "/").await;
    }
    let late = share(200, before);
    assert!((0.4..=0.6).contains(&late), "late share {late}");
    p.shutdown().await;
}

#[tokio::test]
async fn lb_cookie_stickiness_pins_a_client_to_its_target() {
    let (p, addr, bs) = group_of(3, json!({"stickiness.enabled": "true", "stickiness.type": "lb_cookie", "stickiness.lb_cookie.duration_seconds": "60"})).await;
    let c = client();
    let (headers, first) = get_with_cookie(&c, addr, "/", None).await;
    let cookie = headers["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.starts_with("AWSALB=") && cookie.contains("Max-Age=60"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    for _ in 0..20 {
        let (_, body) = get_with_cookie(&c, addr, "/", Some(&pair)).await;
        assert_eq!(body, first);
    }
    let pinned = bs.iter().find(|b| b.name == first).unwrap();
    assert_eq!(pinned.count(), 21);
    p.shutdown().await;
}

#[tokio::test]
async fn app_cookie_stickiness_follows_the_application_cookie() {
    let (p, addr, bs) = group_of(2, json!({"stickiness.enabled": "true", "stickiness.type": "app_cookie", "stickiness.app_cookie.cookie_name": "session"})).await;
    let c = client();
    let (headers, _) = get_with_cookie(&c, addr, "/", None).await;
    assert!(
        !headers.contains_key("set-cookie"),
        "no app cookie, no stickiness cookie"
    );
    let (headers, first) = get_with_cookie(&c, addr, "/setcookie", None).await;
    let cookies: Vec<String> = headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let lb = cookies
        .iter()
        .find(|c| c.starts_with("AWSALBAPP-0="))
        .expect("stickiness cookie set")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    for _ in 0..10 {
        let (_, body) = get_with_cookie(&c, addr, "/", Some(&format!("session=abc; {lb}"))).await;
        assert_eq!(body, first);
    }
    assert!(bs.iter().any(|b| b.count() >= 11));
    p.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled() {
    // A backend that accepts any upgrade and echoes bytes back.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
        assert!(head.contains("upgrade: websocket"), "{head}");
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").await.unwrap();
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
    });
    let (p, _) = proxy();
    let cfg = ProxyConfig {
        load_balancers: vec![load_balancer(json!([]), json!({}))],
        target_groups: vec![TargetGroupConfig {
            group: target_group(TG, "web", json!({"healthCheckEnabled": false})),
            targets: vec![target(backend)],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0);
        head.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"));
    for msg in [&b"hello"[..], b"world"] {
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
    p.shutdown().await;
}
