//! Rules, actions, headers and protocol handling, end to end through real sockets.

use std::time::Duration;

use crate::common::*;
use berth_proxy::{ProxyConfig, TargetGroupConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TG2: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/api/2";

fn no_hc(arn: &str, name: &str) -> berth_model::elb::TargetGroup {
    target_group(arn, name, json!({"healthCheckEnabled": false}))
}

async fn two_groups(
    rules: serde_json::Value,
    attrs: serde_json::Value,
) -> (
    std::sync::Arc<berth_proxy::Proxy>,
    std::net::SocketAddr,
    Backend,
    Backend,
    prometheus::Registry,
) {
    let web = Backend::start("web").await;
    let api = Backend::start("api").await;
    let (p, r) = proxy();
    let cfg = ProxyConfig {
        load_balancers: vec![load_balancer(rules, attrs)],
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
    (p, addr, web, api, r)
}

async fn send(c: &HttpClient, req: hyper::Request<Full<Bytes>>) -> (u16, hyper::HeaderMap, String) {
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn req(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn rules_match_in_priority_order_with_every_condition_kind() {
    let fwd_api = json!([{"type": "forward", "targetGroupArn": TG2}]);
    let fixed = |code: &str, body: &str| json!([{"type": "fixed-response", "fixedResponseConfig": {"statusCode": code, "contentType": "text/plain", "messageBody": body}}]);
    let rules = json!([
        {"priority": 50, "conditions": [{"field": "path-pattern", "values": ["/api/*"]}], "actions": fwd_api},
        {"priority": 10, "conditions": [{"field": "path-pattern", "values": ["/api/admin*"]}], "actions": fixed("403", "admin")},
        {"priority": 20, "conditions": [{"field": "host-header", "values": ["*.example.com", "example.org"]}], "actions": fixed("200", "host")},
        {"priority": 30, "conditions": [{"field": "http-header", "httpHeaderConfig": {"httpHeaderName": "X-Canary", "values": ["y?s"]}}], "actions": fixed("200", "canary")},
        {"priority": 40, "conditions": [{"field": "http-request-method", "values": ["DELETE", "PATCH"]}], "actions": fixed("405", "method")},
        {"priority": 45, "conditions": [{"field": "query-string", "queryStringConfig": [{"key": "v", "value": "2"}, {"value": "beta*"}]}], "actions": fixed("200", "query")},
        {"priority": 46, "conditions": [{"field": "source-ip", "values": ["10.0.0.0/8"]}], "actions": fixed("200", "tennet")},
        {"priority": 47, "conditions": [{"field": "source-ip", "values": ["127.0.0.0/8"]}, {"field": "path-pattern", "values": ["/local"]}], "actions": fixed("200", "local")},
    ]);
    let (p, addr, web, api, r) = two_groups(rules, json!({})).await;
    let c = client();
    assert_eq!(send(&c, req(addr, "GET", "/api/users", &[])).await.2, "api");
    assert_eq!(
        send(&c, req(addr, "GET", "/api/admin/x", &[])).await.0,
        403,
        "priority 10 wins over 50"
    );
    assert_eq!(
        send(&c, req(addr, "GET", "/", &[("host", "www.EXAMPLE.com")]))
            .await
            .2,
        "host"
    );
    assert_eq!(
        send(&c, req(addr, "GET", "/", &[("host", "example.org:8080")]))
            .await
            .2,
        "host"
    );
    assert_eq!(
        send(&c, req(addr, "GET", "/", &[("host", "example.com")]))
            .await
            .2,
        "web"
    );
    assert_eq!(
        send(&c, req(addr, "GET", "/", &[("x-canary", "YES")]))
            .await
            .2,
        "canary"
    );
    assert_eq!(send(&c, req(addr, "DELETE", "/x", &[])).await.0, 405);
    assert_eq!(
        send(&c, req(addr, "GET", "/x?a=1&v=2", &[])).await.2,
        "query"
    );
    assert_eq!(
        send(&c, req(addr, "GET", "/x?flag=beta7", &[])).await.2,
        "query"
    );
    assert_eq!(send(&c, req(addr, "GET", "/x?v=3", &[])).await.2, "web");
    assert_eq!(send(&c, req(addr, "GET", "/local", &[])).await.2, "local");
    assert_eq!(
        send(&c, req(addr, "GET", "/API/users", &[])).await.2,
        "web",
        "paths are case-sensitive"
    );
    let (status, headers, _) = send(&c, req(addr, "GET", "/api/admin", &[])).await;
    assert_eq!(status, 403);
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(api.count(), 1);
    assert!(web.count() >= 3);
    assert!(metric(&r, "berth_lb_fixed_responses_total", &[]) >= 8.0);
    assert!(metric(&r, "berth_lb_rule_evaluations_total", &[]) > 0.0);
    p.shutdown().await;
}

#[tokio::test]
async fn redirect_fills_placeholders() {
    let rules = json!([
        {"priority": 1, "conditions": [{"field": "path-pattern", "values": ["/old/*"]}],
         "actions": [{"type": "redirect", "redirectConfig": {"protocol": "HTTPS", "port": "443", "path": "/new/#{path}", "query": "#{query}&r=1", "statusCode": "HTTP_301"}}]},
        {"priority": 2, "conditions": [{"field": "path-pattern", "values": ["/moved"]}],
         "actions": [{"type": "redirect", "redirectConfig": {"host": "other.example", "statusCode": "HTTP_302"}}]},
    ]);
    let (p, addr, _web, _api, r) = two_groups(rules, json!({})).await;
    let c = client();
    let (status, h, _) = send(
        &c,
        req(addr, "GET", "/old/a?q=1", &[("host", "example.com")]),
    )
    .await;
    assert_eq!(status, 301);
    assert_eq!(h["location"], "https://example.com/new/old/a?q=1&r=1");
    let (status, h, _) = send(&c, req(addr, "GET", "/moved", &[("host", "example.com")])).await;
    assert_eq!(status, 302);
    assert_eq!(
        h["location"],
        format!("http://other.example:{}/moved", addr.port())
    );
    assert_eq!(metric(&r, "berth_lb_redirects_total", &[]), 2.0);
    p.shutdown().await;
}

#[tokio::test]
async fn weighted_forward_splits_traffic_and_target_group_stickiness_holds() {
    let fwd = |sticky: bool| {
        json!([{"type": "forward", "forwardConfig": {
        "targetGroups": [{"targetGroupArn": TG, "weight": 3}, {"targetGroupArn": TG2, "weight": 1}],
        "targetGroupStickinessConfig": {"enabled": sticky, "durationSeconds": 60}}}])
    };
    let rules = json!([
        {"priority": 1, "conditions": [{"field": "path-pattern", "values": ["/split"]}], "actions": fwd(false)},
        {"priority": 2, "conditions": [{"field": "path-pattern", "values": ["/sticky"]}], "actions": fwd(true)},
    ]);
    let (p, addr, web, api, _) = two_groups(rules, json!({})).await;
    let c = client();
    for _ in 0..400 {
        send(&c, req(addr, "GET", "/split", &[])).await;
    }
    let (w, a) = (web.count() as f64, api.count() as f64);
    assert!((w / 400.0 - 0.75).abs() < 0.1, "web {w} api {a}");
    let (_, h, first) = send(&c, req(addr, "GET", "/sticky", &[])).await;
    let cookie = h["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("AWSALBTG="));
    for _ in 0..20 {
        let (_, h, body) = send(&c, req(addr, "GET", "/sticky", &[("cookie", &cookie)])).await;
        assert_eq!(body, first);
        assert!(
            !h.contains_key("set-cookie"),
            "a sticky request keeps its cookie"
        );
    }
    p.shutdown().await;
}

#[tokio::test]
async fn forwarded_headers_and_hop_by_hop_removal() {
    let (p, addr, web, _, _) = two_groups(json!([]), json!({})).await;
    let c = client();
    let (status, _, _) = send(
        &c,
        req(
            addr,
            "GET",
            "/",
            &[
                ("x-forwarded-for", "203.0.113.9"),
                ("connection", "x-private"),
                ("x-private", "1"),
                ("keep-alive", "timeout=5"),
            ],
        ),
    )
    .await;
    assert_eq!(status, 200);
    let h = web.last_headers.lock().unwrap().clone();
    assert!(
        h.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{h}"
    );
    assert!(h.contains("x-forwarded-proto: http\n"), "{h}");
    assert!(
        h.contains(&format!("x-forwarded-port: {}\n", addr.port())),
        "{h}"
    );
    assert!(!h.contains("x-private"), "{h}");
    assert!(!h.contains("keep-alive"), "{h}");
    p.shutdown().await;

    let (p, addr, web, _, _) = two_groups(
        json!([]),
        json!({"routing.http.xff_header_processing.mode": "remove"}),
    )
    .await;
    send(
        &c,
        req(addr, "GET", "/", &[("x-forwarded-for", "203.0.113.9")]),
    )
    .await;
    assert!(!web.last_headers.lock().unwrap().contains("x-forwarded-for"));
    p.shutdown().await;

    let (p, addr, web, _, _) = two_groups(
        json!([]),
        json!({"routing.http.xff_header_processing.mode": "preserve"}),
    )
    .await;
    send(
        &c,
        req(addr, "GET", "/", &[("x-forwarded-for", "203.0.113.9")]),
    )
    .await;
    assert!(web
        .last_headers
        .lock()
        .unwrap()
        .contains("x-forwarded-for: 203.0.113.9\n"));
    p.shutdown().await;

    // Invalid header names (anything but letters, digits and hyphens) pass by default and
    // are dropped when the load balancer asks for it.
    let odd = [("x_under_score", "1"), ("x.dotted", "2"), ("x-fine", "3")];
    let (p, addr, web, _, _) = two_groups(json!([]), json!({})).await;
    send(&c, req(addr, "GET", "/", &odd)).await;
    let h = web.last_headers.lock().unwrap().clone();
    assert!(
        h.contains("x_under_score: 1") && h.contains("x.dotted: 2"),
        "{h}"
    );
    p.shutdown().await;
    let (p, addr, web, _, _) = two_groups(
        json!([]),
        json!({"routing.http.drop_invalid_header_fields.enabled": "true"}),
    )
    .await;
    send(&c, req(addr, "GET", "/", &odd)).await;
    let h = web.last_headers.lock().unwrap().clone();
    assert!(
        !h.contains("x_under_score") && !h.contains("x.dotted"),
        "{h}"
    );
    assert!(h.contains("x-fine: 3"), "{h}");
    p.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let (p, addr, _web, _api, _) = two_groups(json!([]), json!({})).await;
    let c: HttpClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let resp = c.request(req(addr, "GET", "/", &[])).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"web");
    p.shutdown().await;
}

#[tokio::test]
async fn request_bodies_stream_to_the_target() {
    let (p, addr, _web, _api, _) = two_groups(json!([]), json!({})).await;
    let c = client();
    let r = hyper::Request::post(format!("http://{addr}/"))
        .body(Full::new(Bytes::from(vec![b'x'; 100_000])))
        .unwrap();
    let (status, _, body) = send(&c, r).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), "web:".len() + 100_000);
    p.shutdown().await;
}

/// Sends raw bytes and returns the status line of the answer.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn malformed_requests_get_4xx_and_never_reach_a_target() {
    let (p, addr, web, _, _) = two_groups(json!([]), json!({})).await;
    let conflicting =
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert!(raw(addr, conflicting).await.starts_with("HTTP/1.1 400"));
    let bad_method = b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert!(raw(addr, bad_method).await.starts_with("HTTP/1.1 400"));
    let mut big = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 80 * 1024));
    big.extend(b"\r\n\r\n");
    let line = raw(addr, &big).await;
    assert!(line.starts_with("HTTP/1.1 431"), "{line}");
    assert_eq!(web.count(), 0);
    // Content-Length together with Transfer-Encoding, in either order: a smuggling
    // attempt, refused with 400 (as an ALB in strictest desync mode does).
    let ambiguous = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
    let line = raw(addr, ambiguous).await;
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
    let reversed = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n";
    let line = raw(addr, reversed).await;
    assert!(line.starts_with("HTTP/1.1 400"), "{line}");
    assert_eq!(web.count(), 0, "nothing reached the target");
    // A well-framed chunked request still goes through.
    let chunked =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let line = raw(addr, chunked).await;
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    assert_eq!(web.count(), 1);
    p.shutdown().await;
}

#[tokio::test]
async fn a_slow_target_gets_504_after_the_idle_timeout() {
    let (p, addr, web, _, r) =
        two_groups(json!([]), json!({"idle_timeout.timeout_seconds": "1"})).await;
    let (status, _, body) = send(&client(), req(addr, "GET", "/slow", &[])).await;
    assert_eq!(status, 504);
    assert!(
        body.contains("504 Gateway Time-out") || body.contains("504 Gateway Timeout"),
        "{body}"
    );
    assert_eq!(
        metric(&r, "berth_lb_elb_responses_total", &[("code", "504")]),
        1.0
    );
    web.release.notify_one();
    p.shutdown().await;
}

#[tokio::test]
async fn idle_client_connections_are_closed() {
    let (p, addr, _web, _api, _) =
        two_groups(json!([]), json!({"idle_timeout.timeout_seconds": "1"})).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let start = std::time::Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed by the proxy");
    assert!(start.elapsed() >= Duration::from_millis(900));
    p.shutdown().await;
}

#[tokio::test]
async fn metrics_count_requests_connections_and_target_responses() {
    let (p, addr, web, _, r) = two_groups(json!([]), json!({})).await;
    let c = client();
    for _ in 0..3 {
        send(&c, req(addr, "GET", "/", &[])).await;
    }
    assert_eq!(
        metric(
            &r,
            "berth_lb_requests_total",
            &[("load_balancer", "web"), ("listener", LISTENER)]
        ),
        3.0
    );
    let t = web.addr.to_string();
    assert_eq!(
        metric(
            &r,
            "berth_lb_target_requests_total",
            &[("target_group", "web"), ("target", &t)]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &r,
            "berth_lb_target_responses_total",
            &[("target", &t), ("code", "2xx")]
        ),
        3.0
    );
    assert_eq!(
        metric(
            &r,
            "berth_lb_target_response_time_seconds",
            &[("target_group", "web")]
        ),
        3.0
    );
    assert_eq!(
        metric(&r, "berth_lb_new_connections_total", &[]),
        1.0,
        "one kept-alive connection"
    );
    assert_eq!(metric(&r, "berth_lb_active_connections", &[]), 1.0);
    assert!(metric(&r, "berth_lb_processed_bytes_total", &[]) >= 9.0);
    p.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let (p, addr, _web, _api, r) =
        two_groups(json!([]), json!({"berth.max_connections": "2"})).await;
    let c1 = client();
    let c2 = client();
    assert_eq!(send(&c1, req(addr, "GET", "/", &[])).await.0, 200);
    assert_eq!(send(&c2, req(addr, "GET", "/", &[])).await.0, 200);
    // Two kept-alive connections are open: a third is closed without an answer.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.ok();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(metric(&r, "berth_lb_rejected_connections_total", &[]), 1.0);
    // The kept-alive ones still work.
    assert_eq!(send(&c1, req(addr, "GET", "/", &[])).await.0, 200);
    p.shutdown().await;
}
