//! The data plane on worker threads (`ProxyOptions::data_plane_threads`). Each test
//! applies its configuration on a runtime it then stops driving, and talks to the proxy
//! with blocking sockets from the test's thread: every answer comes from the workers.
//! The backend runs on a runtime of its own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::*;
use serde_json::json;

/// How long a blocking read waits before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A runtime that drives itself (one worker thread), for the backend.
fn backend_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A runtime driven only inside `block_on`: once that returns, nothing on it runs.
fn applying_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(web: SocketAddr, attributes: serde_json::Value) -> berth_proxy::ProxyConfig {
    let mut cfg = simple_config(
        target_group(TG, "web", json!({"healthCheckEnabled": false})),
        vec![target(web)],
    );
    cfg.load_balancers = vec![load_balancer(json!([]), attributes)];
    cfg
}

/// A proxy on two workers forwarding to a backend of its own runtime, configured on a
/// runtime that nothing drives afterwards.
struct Served {
    web: Backend,
    p: std::sync::Arc<berth_proxy::Proxy>,
    registry: prometheus::Registry,
    /// Where the configuration was applied (and shutdown runs).
    applying: tokio::runtime::Runtime,
    addr: SocketAddr,
    _backend_rt: tokio::runtime::Runtime,
}

fn serve_on_workers(attributes: serde_json::Value) -> Served {
    let backend_rt = backend_runtime();
    let web = backend_rt.block_on(Backend::start("web"));
    let (p, registry) = proxy_on_workers(2);
    let applying = applying_runtime();
    let addr = applying
        .block_on(p.apply(config(web.addr, attributes)))
        .unwrap()[LISTENER];
    Served {
        web,
        p,
        registry,
        applying,
        addr,
        _backend_rt: backend_rt,
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s
}

/// Sends one keep-alive GET and reads its answer: the status line and body, or "" when
/// the proxy closed the connection unanswered.
fn get_on(s: &mut TcpStream) -> (String, String) {
    if s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").is_err() {
        return (String::new(), String::new());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                let status = head.lines().next().unwrap().to_string();
                return (status, body);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) if buf.is_empty() => return (String::new(), String::new()),
            Ok(0) => panic!("closed mid-answer: {:?}", String::from_utf8_lossy(&buf)),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn every_connection_is_served_by_the_workers() {
    let s = serve_on_workers(json!({}));
    // `s.applying` is not driven from here on (but for shutdown).
    let mut conns: Vec<TcpStream> = (0..16).map(|_| connect(s.addr)).collect();
    for round in 0..3 {
        for (i, c) in conns.iter_mut().enumerate() {
            let (status, body) = get_on(c);
            assert_eq!(status, "HTTP/1.1 200 OK", "connection {i}, round {round}");
            assert_eq!(body, "web");
        }
    }
    assert_eq!(s.web.requests.load(std::sync::atomic::Ordering::SeqCst), 48);
    let labels = [("load_balancer", "web")];
    assert_eq!(
        metric(&s.registry, "berth_lb_new_connections_total", &labels),
        16.0
    );
    drop(conns);
    s.applying.block_on(s.p.shutdown());
    // Every worker's descriptor of the socket is closed: nothing accepts any more.
    let refused = TcpStream::connect(s.addr);
    assert!(refused.is_err(), "a connection was accepted after shutdown");
}

#[test]
fn the_per_client_limit_holds_across_workers() {
    let attributes = json!({"berth.max_connections_per_client": "3"});
    let s = serve_on_workers(attributes);
    let mut conns: Vec<TcpStream> = (0..8).map(|_| connect(s.addr)).collect();
    let served = conns
        .iter_mut()
        .map(|c| get_on(c).0)
        .filter(|status| status == "HTTP/1.1 200 OK")
        .count();
    // Whichever worker accepted each connection, the address gets three.
    assert_eq!(served, 3);
    drop(conns);
    s.applying.block_on(s.p.shutdown());
}

#[test]
fn closing_a_listener_stops_every_workers_accept_loop_after_its_requests() {
    let s = serve_on_workers(json!({}));
    let mut open = connect(s.addr);
    assert_eq!(get_on(&mut open).0, "HTTP/1.1 200 OK");
    // A configuration without the load balancer closes its listener.
    let mut empty = config(s.web.addr, json!({}));
    empty.load_balancers.clear();
    s.applying.block_on(s.p.apply(empty)).unwrap();
    // The connection open before is answered once more, then closed.
    let (status, _) = get_on(&mut open);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // Each worker drops its descriptor of the socket as it sees the stop.
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    while TcpStream::connect(s.addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed listener still accepts"
        );
        std::thread::yield_now();
    }
    s.applying.block_on(s.p.shutdown());
}

#[test]
fn connections_are_spread_over_the_workers() {
    let s = serve_on_workers(json!({}));
    // A burst: all queued before any is accepted, so one worker could take them all.
    let mut conns: Vec<TcpStream> = (0..20).map(|_| connect(s.addr)).collect();
    for c in &mut conns {
        assert_eq!(get_on(c).0, "HTTP/1.1 200 OK");
    }
    let per_thread = |t: &str| metric(&s.registry, "berth_lb_thread_connections", &[("thread", t)]);
    let (one, two) = (per_thread("1"), per_thread("2"));
    assert_eq!(one + two, 20.0);
    // Whichever worker wakes first, neither serves more than two over the other.
    assert!((one - two).abs() <= 2.0, "thread 1: {one}, thread 2: {two}");
    drop(conns);
    s.applying.block_on(s.p.shutdown());
    assert_eq!((per_thread("1"), per_thread("2")), (0.0, 0.0));
}
