//! The mesh's outbound side end to end through real sockets: client-alias listeners on
//! the node's mesh addresses, host routing, TCP, the per-request timeout, the retry after
//! a 503, outlier ejection and the mesh metrics.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use berth_model::dataplane::{
    MeshGroupSettings, MeshListener, MeshProtocol, MeshRoute, OutlierDetection,
};
use berth_proxy::{
    mesh_listener_key, Proxy, ProxyConfig, ProxyError, ProxyTarget, TargetGroupConfig,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use serde_json::json;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "internal";

fn tg_arn(name: &str) -> String {
    format!("arn:berth:elasticloadbalancing:local:0:targetgroup/{name}/1")
}

/// The mesh group of discovery name `name` (health checks off: targets are routable at
/// once).
fn mesh_group(
    name: &str,
    targets: Vec<ProxyTarget>,
    timeout_seconds: u32,
    outlier: OutlierDetection,
) -> TargetGroupConfig {
    TargetGroupConfig {
        group: target_group(&tg_arn(name), name, json!({"healthCheckEnabled": false})),
        targets,
        mesh: Some(MeshGroupSettings {
            namespace: NS.into(),
            discovery_name: name.into(),
            per_request_timeout_seconds: timeout_seconds,
            outlier_detection: outlier,
        }),
    }
}

/// Outlier detection that never ejects in these tests' numbers of requests.
fn lenient() -> OutlierDetection {
    OutlierDetection {
        consecutive_failures: 1000,
        ..OutlierDetection::default()
    }
}

fn listener(port: u16, protocol: MeshProtocol, routes: &[&str], idle: u32) -> MeshListener {
    MeshListener {
        port,
        protocol,
        routes: routes
            .iter()
            .map(|name| MeshRoute {
                dns_name: name.to_string(),
                target_group_arn: tg_arn(name),
            })
            .collect(),
        idle_timeout_seconds: idle,
    }
}

fn mesh_config(groups: Vec<TargetGroupConfig>, listeners: Vec<MeshListener>) -> ProxyConfig {
    ProxyConfig {
        load_balancers: vec![],
        target_groups: groups,
        mesh_listeners: listeners,
        mesh_tls: None,
    }
}

/// Serves `group` (the `orders` discovery name) behind one HTTP mesh listener on
/// 127.0.0.1, port chosen by the system, idle timeout 300 s; returns its address.
async fn serve_orders(p: &Proxy, group: TargetGroupConfig) -> SocketAddr {
    let addrs = p
        .apply(mesh_config(
            vec![group],
            vec![listener(0, MeshProtocol::Http, &["orders"], 300)],
        ))
        .await
        .unwrap();
    addrs[&key(0, "127.0.0.1")]
}

fn key(port: u16, ip: &str) -> String {
    mesh_listener_key(port, ip.parse().unwrap())
}

/// GETs `path` with the Host header `host` over HTTP/1.1.
async fn get_host(c: &HttpClient, addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let req = Request::get(format!("http://{addr}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), c.request(req))
        .await
        .expect("an answer")
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GETs `path` over h2c (prior knowledge) with `authority` as the :authority.
async fn h2_get(addr: SocketAddr, authority: &str, path: &str) -> (u16, String) {
    let mut send = h2c_client(addr).await;
    let req = Request::get(format!("http://{authority}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), send.send_request(req))
        .await
        .expect("an answer")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn mesh_metric(r: &prometheus::Registry, name: &str, dn: &str, extra: &[(&str, &str)]) -> f64 {
    let mut labels = vec![("namespace", NS), ("discovery_name", dn)];
    labels.extend_from_slice(extra);
    metric(r, name, &labels)
}

/// Polls `f` until it holds, for at most 20 seconds.
async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn aliases_sharing_a_port_are_told_apart_by_host_and_an_unknown_host_gets_404() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let addrs = p
        .apply(mesh_config(
            vec![
                mesh_group("orders", vec![target(a.addr)], 15, lenient()),
                mesh_group("users", vec![target(b.addr)], 15, lenient()),
            ],
            vec![listener(0, MeshProtocol::Http, &["orders", "users"], 300)],
        ))
        .await
        .unwrap();
    let addr = addrs[&key(0, "127.0.0.1")];
    assert_ne!(addr.port(), 0);
    let c = client();
    assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    assert_eq!(
        get_host(&c, addr, "USERS:8080", "/").await,
        (200, "b".into())
    );
    let (status, body) = get_host(&c, addr, "payments", "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("404 Not Found"), "{body}");
    // h2c, routed by :authority.
    assert_eq!(h2_get(addr, "users:80", "/").await, (200, "b".into()));
    assert_eq!(h2_get(addr, "nobody", "/").await.0, 404);
    assert_eq!((a.count(), b.count()), (1, 2));
    p.shutdown().await;
}

#[tokio::test]
async fn a_mesh_listener_binds_its_port_on_every_mesh_address() {
    let a = Backend::start("a").await;
    // A port free on both addresses, found by binding one and letting it go.
    let port = std::net::TcpListener::bind("127.0.0.2:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (p, _) = mesh_proxy(&["127.0.0.1", "127.0.0.2"]);
    let addrs = p
        .apply(mesh_config(
            vec![mesh_group("orders", vec![target(a.addr)], 15, lenient())],
            vec![listener(port, MeshProtocol::Http, &["orders"], 300)],
        ))
        .await
        .unwrap();
    let c = client();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        let addr = addrs[&key(port, ip)];
        assert_eq!(addr, SocketAddr::new(ip.parse().unwrap(), port));
        assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    }
    p.shutdown().await;
}

#[tokio::test]
async fn a_tcp_mesh_listener_forwards_streams_and_closes_them_when_idle() {
    let a = Backend::start("a").await;
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let addrs = p
        .apply(mesh_config(
            vec![mesh_group("db", vec![target(a.addr)], 0, lenient())],
            vec![listener(0, MeshProtocol::Tcp, &["db"], 1)],
        ))
        .await
        .unwrap();
    let mut s = TcpStream::connect(addrs[&key(0, "127.0.0.1")])
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: anything\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"a") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert_ne!(n, 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(
        mesh_metric(&r, "berth_mesh_new_connections_total", "db", &[]),
        1.0
    );
    assert_eq!(
        mesh_metric(&r, "berth_mesh_active_connections", "db", &[]),
        1.0
    );
    // The backend keeps the connection open; the idle timeout (1 s) closes it.
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed by the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0);
    eventually(|| mesh_metric(&r, "berth_mesh_active_connections", "db", &[]) == 0.0).await;
    assert!(mesh_metric(&r, "berth_mesh_processed_bytes_total", "db", &[]) > 0.0);
    p.shutdown().await;
}

#[tokio::test]
async fn a_request_past_its_per_request_timeout_gets_504() {
    let a = Backend::start("a").await;
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let addr = serve_orders(&p, mesh_group("orders", vec![target(a.addr)], 1, lenient())).await;
    let c = client();
    assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    // HTTP/1.1 (the fast path) and h2c (hyper) alike.
    let started = tokio::time::Instant::now();
    assert_eq!(get_host(&c, addr, "orders", "/slow").await.0, 504);
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(h2_get(addr, "orders", "/slow").await.0, 504);
    assert_eq!(
        mesh_metric(&r, "berth_mesh_request_timeouts_total", "orders", &[]),
        2.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_503_goes_again_on_another_target_and_passes_through_when_none_is_left() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    a.status.store(503, Ordering::SeqCst);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let cfg = |targets| {
        mesh_config(
            vec![mesh_group("orders", targets, 15, lenient())],
            vec![listener(0, MeshProtocol::Http, &["orders"], 300)],
        )
    };
    let addrs = p
        .apply(cfg(vec![target(a.addr), target(b.addr)]))
        .await
        .unwrap();
    let addr = addrs[&key(0, "127.0.0.1")];
    let c = client();
    for _ in 0..6 {
        assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "b".into()));
    }
    assert_eq!(h2_get(addr, "orders", "/").await, (200, "b".into()));
    assert!(a.count() >= 1, "round robin sent some requests to a first");
    assert_eq!(
        mesh_metric(&r, "berth_mesh_retries_total", "orders", &[]),
        a.count() as f64
    );
    assert_eq!(
        mesh_metric(
            &r,
            "berth_mesh_target_responses_total",
            "orders",
            &[("code", "5xx")]
        ),
        a.count() as f64
    );
    // With no other target, the client gets the target's own 503.
    p.apply(cfg(vec![target(a.addr)])).await.unwrap();
    assert_eq!(get_host(&c, addr, "orders", "/").await, (503, "a".into()));
    p.shutdown().await;
}

#[tokio::test]
async fn a_run_of_5xx_ejects_a_target_for_the_ejection_time() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    a.status.store(500, Ordering::SeqCst);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let outlier = OutlierDetection {
        consecutive_failures: 3,
        base_ejection_seconds: 1,
        max_ejection_percent: 50,
    };
    let addr = serve_orders(
        &p,
        mesh_group("orders", vec![target(a.addr), target(b.addr)], 15, outlier),
    )
    .await;
    let c = client();
    // Round robin: a answers 500 every other request (500s are not retried).
    while a.count() < 3 {
        get_host(&c, addr, "orders", "/").await;
    }
    let s = wait_for(&p, |s| s.iter().any(|t| t.ejected)).await;
    assert!(s.iter().find(|t| t.addr == a.addr).unwrap().ejected);
    assert!(!s.iter().find(|t| t.addr == b.addr).unwrap().ejected);
    assert_eq!(
        mesh_metric(&r, "berth_mesh_ejections_total", "orders", &[]),
        1.0
    );
    // Ejected: every request goes to b.
    for _ in 0..6 {
        assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "b".into()));
    }
    assert_eq!(a.count(), 3);
    // After the ejection time, a is back.
    a.status.store(200, Ordering::SeqCst);
    wait_for(&p, |s| s.len() == 2 && s.iter().all(|t| !t.ejected)).await;
    for _ in 0..4 {
        assert_eq!(get_host(&c, addr, "orders", "/").await.0, 200);
    }
    assert!(a.count() > 3, "a takes requests again");
    p.shutdown().await;
}

#[tokio::test]
async fn ejections_stop_at_the_cap_and_a_lone_ejected_target_still_serves() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    a.status.store(500, Ordering::SeqCst);
    b.status.store(500, Ordering::SeqCst);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    // 10% of 2 targets rounds down to none, but one may always be ejected.
    let outlier = OutlierDetection {
        consecutive_failures: 2,
        base_ejection_seconds: 60,
        max_ejection_percent: 10,
    };
    let addr = serve_orders(
        &p,
        mesh_group(
            "orders",
            vec![target(a.addr), target(b.addr)],
            15,
            outlier.clone(),
        ),
    )
    .await;
    let c = client();
    for _ in 0..12 {
        assert_eq!(get_host(&c, addr, "orders", "/").await.0, 500);
    }
    let s = p.target_statuses();
    assert_eq!(s.iter().filter(|t| t.ejected).count(), 1, "{s:?}");
    assert_eq!(
        mesh_metric(&r, "berth_mesh_ejections_total", "orders", &[]),
        1.0
    );
    // With one target left, and it ejected, the group fails open to it.
    p.apply(mesh_config(
        vec![mesh_group("orders", vec![target(a.addr)], 15, outlier)],
        vec![listener(0, MeshProtocol::Http, &["orders"], 300)],
    ))
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(get_host(&c, addr, "orders", "/").await, (500, "a".into()));
    }
    p.shutdown().await;
}

#[tokio::test]
async fn a_taken_mesh_port_refuses_the_configuration_naming_the_port() {
    let a = Backend::start("a").await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let mut cfg = simple_config(target_group(TG, "web", json!({})), vec![target(a.addr)]);
    let lb = p.apply(cfg.clone()).await.unwrap()[LISTENER];
    cfg.target_groups
        .push(mesh_group("orders", vec![target(a.addr)], 15, lenient()));
    cfg.mesh_listeners = vec![listener(port, MeshProtocol::Http, &["orders"], 300)];
    let e = p.apply(cfg.clone()).await.unwrap_err();
    assert!(
        matches!(&e, ProxyError::MeshBind { port: p, .. } if *p == port),
        "{e:?}"
    );
    let refusal = e.refusal(&cfg.load_balancers);
    assert_eq!(refusal.mesh_listener_port, Some(port));
    assert_eq!(refusal.load_balancer_name, None);
    // Nothing changed: the load balancer still serves.
    wait_for(&p, |s| all_healthy(s, 1)).await;
    assert_eq!(get(&client(), lb, "/").await, (200, "a".into()));
    p.shutdown().await;
}

#[tokio::test]
async fn inconsistent_mesh_listeners_are_refused_naming_their_port() {
    let a = Backend::start("a").await;
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let groups = || {
        vec![
            mesh_group("orders", vec![target(a.addr)], 15, lenient()),
            mesh_group("users", vec![target(a.addr)], 15, lenient()),
        ]
    };
    let tcp_two = listener(7001, MeshProtocol::Tcp, &["orders", "users"], 0);
    let e = p
        .apply(mesh_config(groups(), vec![tcp_two]))
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::Mesh { port: 7001, .. }), "{e:?}");
    let unknown = listener(7002, MeshProtocol::Http, &["payments"], 0);
    let e = p
        .apply(mesh_config(groups(), vec![unknown]))
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::Mesh { port: 7002, .. }), "{e:?}");
    // A route to a load balancer's target group (no mesh settings).
    let mut plain = mesh_group("orders", vec![target(a.addr)], 15, lenient());
    plain.mesh = None;
    let e = p
        .apply(mesh_config(
            vec![plain],
            vec![listener(7003, MeshProtocol::Http, &["orders"], 0)],
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, ProxyError::Mesh { port: 7003, .. }), "{e:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn adding_and_removing_mesh_listeners_leaves_the_others_serving() {
    let a = Backend::start("a").await;
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (one, two) = (free(), free());
    let mut cfg = simple_config(
        target_group(TG, "web", json!({"healthCheckEnabled": false})),
        vec![target(a.addr)],
    );
    cfg.target_groups
        .push(mesh_group("orders", vec![target(a.addr)], 15, lenient()));
    cfg.mesh_listeners = vec![listener(one, MeshProtocol::Http, &["orders"], 300)];
    let first = p.apply(cfg.clone()).await.unwrap();
    let c = client();
    // A connection kept alive on the first mesh listener across the changes.
    let kept = first[&key(one, "127.0.0.1")];
    assert_eq!(get_host(&c, kept, "orders", "/").await, (200, "a".into()));

    cfg.mesh_listeners
        .push(listener(two, MeshProtocol::Http, &["orders"], 300));
    let second = p.apply(cfg.clone()).await.unwrap();
    assert_eq!(second[LISTENER], first[LISTENER]);
    assert_eq!(second[&key(one, "127.0.0.1")], kept);
    let added = second[&key(two, "127.0.0.1")];
    assert_eq!(get_host(&c, kept, "orders", "/").await, (200, "a".into()));
    assert_eq!(get_host(&c, added, "orders", "/").await, (200, "a".into()));
    assert_eq!(get(&c, second[LISTENER], "/").await, (200, "a".into()));

    cfg.mesh_listeners.remove(0);
    let third = p.apply(cfg).await.unwrap();
    assert!(!third.contains_key(&key(one, "127.0.0.1")));
    let mut removed_refuses = false;
    eventually(|| {
        removed_refuses = std::net::TcpStream::connect(kept).is_err();
        removed_refuses
    })
    .await;
    assert_eq!(get_host(&c, added, "orders", "/").await, (200, "a".into()));
    assert_eq!(get(&c, third[LISTENER], "/").await, (200, "a".into()));
    p.shutdown().await;
}

#[tokio::test]
async fn mesh_metrics_count_requests_targets_responses_connections_and_bytes() {
    let a = Backend::start("a").await;
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let addr = serve_orders(
        &p,
        mesh_group("orders", vec![target(a.addr)], 15, lenient()),
    )
    .await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    }
    let m = |name: &str, extra: &[(&str, &str)]| mesh_metric(&r, name, "orders", extra);
    assert_eq!(m("berth_mesh_requests_total", &[]), 4.0);
    let target_label = a.addr.to_string();
    assert_eq!(
        m(
            "berth_mesh_target_requests_total",
            &[("target", &target_label)]
        ),
        4.0
    );
    assert_eq!(
        m("berth_mesh_target_responses_total", &[("code", "2xx")]),
        4.0
    );
    assert_eq!(m("berth_mesh_target_response_time_seconds", &[]), 4.0);
    assert_eq!(m("berth_mesh_new_connections_total", &[]), 1.0);
    assert_eq!(m("berth_mesh_active_connections", &[]), 1.0);
    assert_eq!(
        m("berth_mesh_processed_bytes_total", &[]),
        4.0,
        "4 bodies of 1 byte"
    );
    assert_eq!(m("berth_mesh_retries_total", &[]), 0.0);
    // The per-target request count reaches the target statuses, as for load balancers.
    assert_eq!(p.target_statuses()[0].request_count, 4);
    // A removed group's mesh metrics go with it.
    p.apply(ProxyConfig::default()).await.unwrap();
    assert_eq!(m("berth_mesh_requests_total", &[]), 0.0);
    p.shutdown().await;
}

/// An HTTP/2 target that refuses every stream (REFUSED_STREAM); counts them.
async fn refusing_h2_target() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = refused.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(s).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (addr, refused)
}

#[tokio::test]
async fn a_refused_stream_goes_again_on_another_target() {
    let (refusing, refused) = refusing_h2_target().await;
    let b = Backend::start("b").await;
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let mut group = mesh_group(
        "grpc",
        vec![target(refusing), target(b.addr)],
        15,
        lenient(),
    );
    group.group = target_group(
        &tg_arn("grpc"),
        "grpc",
        json!({"healthCheckEnabled": false, "protocolVersion": "HTTP2"}),
    );
    let addrs = p
        .apply(mesh_config(
            vec![group],
            vec![listener(0, MeshProtocol::Http, &["grpc"], 300)],
        ))
        .await
        .unwrap();
    let addr = addrs[&key(0, "127.0.0.1")];
    let c = client();
    for _ in 0..6 {
        assert_eq!(get_host(&c, addr, "grpc", "/").await, (200, "b".into()));
    }
    assert!(
        refused.load(Ordering::SeqCst) >= 1,
        "some requests went to the refusing target"
    );
    assert_eq!(b.count(), 6);
    // Each refusal was one retry (not a stale-connection replay, not an ejection).
    assert_eq!(
        mesh_metric(&r, "berth_mesh_retries_total", "grpc", &[]),
        refused.load(Ordering::SeqCst) as f64
    );
    assert!(!p.target_statuses().iter().any(|t| t.ejected));
    p.shutdown().await;
}

#[tokio::test]
async fn a_group_whose_endpoint_changes_is_replaced_with_its_metrics() {
    let a = Backend::start("a").await;
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let cfg = |discovery_name: &str| {
        let mut g = mesh_group("orders", vec![target(a.addr)], 15, lenient());
        g.mesh.as_mut().unwrap().discovery_name = discovery_name.into();
        mesh_config(
            vec![g],
            vec![listener(0, MeshProtocol::Http, &["orders"], 300)],
        )
    };
    let addr = p.apply(cfg("orders")).await.unwrap()[&key(0, "127.0.0.1")];
    let c = client();
    assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    assert_eq!(
        mesh_metric(&r, "berth_mesh_requests_total", "orders", &[]),
        1.0
    );
    let again = p.apply(cfg("orders-v2")).await.unwrap()[&key(0, "127.0.0.1")];
    assert_eq!(again, addr, "the listener stays bound");
    assert_eq!(get_host(&c, addr, "orders", "/").await, (200, "a".into()));
    assert_eq!(
        mesh_metric(&r, "berth_mesh_requests_total", "orders", &[]),
        0.0
    );
    assert_eq!(
        mesh_metric(&r, "berth_mesh_requests_total", "orders-v2", &[]),
        1.0
    );
    assert_eq!(p.target_statuses().len(), 1);
    p.shutdown().await;
}
