//! Micro-benchmarks of the HTTP/1.1 fast path's per-request work, without sockets:
//! parsing and checking request heads, writing them for the target, rule matching with
//! 1, 100 and 1,000 rules of several kinds, target selection with 1, 10 and 1,000
//! targets per algorithm (and with a stickiness cookie), response heads, and a whole
//! request's routing work with 1 rule and 1 target against 1,000 of each.

use std::net::{IpAddr, SocketAddr};

use berth_model::elb::{Listener, TargetGroup};
use berth_proxy::bench::{
    parse_request_head, rewrite_response_head, RequestWriter, Rules, Targets,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use serde_json::{json, Value};

const TG: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/web/1";

const CURL_GET: &[u8] = b"GET /api/users/42 HTTP/1.1\r\nHost: www.example.com\r\n\
User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const BROWSER_GET: &[u8] = b"GET /static/app.js?v=1700000000 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Accept: */*\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Sec-Fetch-Dest: script\r\n\
Referer: https://www.example.com/dashboard\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
Cookie: session=6f1c2a9e8b7d4c3f; _ga=GA1.1.123456789.1700000000; theme=dark; AWSALB=31302e302e302e373a38303830\r\n\
X-Forwarded-For: 203.0.113.7\r\n\r\n";

const POST: &[u8] = b"POST /api/orders HTTP/1.1\r\nHost: www.example.com\r\n\
User-Agent: python-requests/2.31.0\r\nAccept: application/json\r\n\
Content-Type: application/json\r\nContent-Length: 27\r\n\r\n\
{\"item\":\"book\",\"count\":1}\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\n\
Date: Mon, 30 Nov 2026 12:00:00 GMT\r\nContent-Type: application/json\r\n\
Content-Length: 1024\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\n\
ETag: \"5f1c-2a9e\"\r\nVary: Accept-Encoding\r\n\r\n";

fn group(algorithm: &str) -> TargetGroup {
    serde_json::from_value(json!({
        "targetGroupName": "web", "targetGroupArn": TG,
        "attributes": {"load_balancing.algorithm.type": algorithm}
    }))
    .unwrap()
}

fn listener_with(rules: Vec<Value>) -> Listener {
    serde_json::from_value(json!({
        "port": 80, "protocol": "HTTP", "listenerArn": "l",
        "defaultActions": [{"type": "forward", "targetGroupArn": TG}],
        "rules": rules,
    }))
    .unwrap()
}

fn rule(priority: usize, conditions: Value) -> Value {
    json!({"priority": priority, "conditions": conditions,
           "actions": [{"type": "forward", "targetGroupArn": TG}]})
}

/// The conditions of rule `i` of a kind; none matches the benchmark requests.
fn conditions(kind: &str, i: usize) -> Value {
    match kind {
        "host" => json!([{"field": "host-header",
            "values": [format!("svc{i}.example.com"), format!("*.svc{i}.internal")]}]),
        "path" => json!([{"field": "path-pattern",
            "values": [format!("/svc{i}/*"), format!("/v{i}/api/*")]}]),
        "host_path" => json!([
            {"field": "host-header", "values": [format!("svc{i}.example.com")]},
            {"field": "path-pattern", "values": [format!("/api/v{i}/*")]}]),
        // Header and query conditions: no host or path to rule a rule out by.
        "header_query" => json!([
            {"field": "http-header", "httpHeaderConfig": {
                "httpHeaderName": "x-tenant", "values": [format!("tenant-{i}")]}},
            {"field": "query-string", "queryStringConfig": [
                {"key": "version", "value": format!("{i}")}]}]),
        // A mix of every kind above, plus suffix paths and methods.
        "mixed" => match i % 5 {
            0 => conditions("host", i),
            1 => conditions("path", i),
            2 => conditions("host_path", i),
            3 => json!([{"field": "path-pattern", "values": [format!("*.v{i}")]},
                        {"field": "http-request-method", "values": ["PUT"]}]),
            _ => conditions("header_query", i),
        },
        other => panic!("unknown rule kind {other}"),
    }
}

fn listener(kind: &str, n: usize) -> Listener {
    listener_with((1..=n).map(|i| rule(i, conditions(kind, i))).collect())
}

fn request_heads(c: &mut Criterion) {
    let heads = [
        ("curl_get", CURL_GET),
        ("browser_get", BROWSER_GET),
        ("post", POST),
    ];
    let writer = RequestWriter::new("198.51.100.20:51000".parse().unwrap(), 80);
    let mut out = Vec::with_capacity(4096);
    for (name, head) in heads {
        assert!(parse_request_head(head).is_some(), "{name} parses");
        c.bench_function(&format!("head_parse/{name}"), |b| {
            b.iter(|| black_box(parse_request_head(black_box(head))))
        });
        c.bench_function(&format!("head_write/{name}"), |b| {
            b.iter(|| black_box(writer.write(black_box(head), &mut out)))
        });
    }
    let target: SocketAddr = "10.0.0.7:8080".parse().unwrap();
    for (name, sticky) in [("plain", false), ("sticky_cookie", true)] {
        assert!(rewrite_response_head(RESPONSE, target, sticky, &mut out).is_some());
        c.bench_function(&format!("response_head/{name}"), |b| {
            b.iter(|| {
                black_box(rewrite_response_head(
                    black_box(RESPONSE),
                    target,
                    sticky,
                    &mut out,
                ))
            })
        });
    }
}

fn rules(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    headers.insert("x-tenant", HeaderValue::from_static("tenant-none"));
    let src: IpAddr = "10.1.2.3".parse().unwrap();
    for kind in ["host", "path", "host_path", "header_query", "mixed"] {
        for n in [1, 100, 1000] {
            let r = Rules::new(&listener(kind, n), &[group("round_robin")]).unwrap();
            let evaluate = || {
                r.evaluate(
                    black_box("www.example.com"),
                    black_box("/static/app.js"),
                    Some("v=1700000000&lang=en"),
                    &Method::GET,
                    &headers,
                    src,
                )
            };
            assert_eq!(evaluate(), n, "{kind}/{n}: no rule matches");
            c.bench_function(&format!("match/{kind}/{n}"), |b| {
                b.iter(|| black_box(evaluate()))
            });
        }
    }
}

fn selection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let cookie = format!(
        "session=6f1c2a9e; {}",
        Targets::sticky_cookie(Targets::addr(0))
    );
    for alg in [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
    ] {
        for n in [1u16, 10, 1000] {
            let t = Targets::new(&group(alg), n).unwrap();
            c.bench_function(&format!("pick/{alg}/{n}"), |b| {
                b.iter(|| black_box(t.pick()))
            });
            // The cookie names the first target; the lookup is what grows with n.
            assert_eq!(t.pick_sticky(cookie.as_bytes()), Some(Targets::addr(0)));
            c.bench_function(&format!("pick_sticky/{alg}/{n}"), |b| {
                b.iter(|| black_box(t.pick_sticky(black_box(cookie.as_bytes()))))
            });
        }
    }
    // Every target busy: no idle target to stop a least-outstanding-requests search at.
    let t = Targets::new(&group("least_outstanding_requests"), 1000).unwrap();
    let held: Vec<_> = (0..1000).map(|_| t.hold().unwrap()).collect();
    c.bench_function("pick/least_outstanding_requests/1000_busy", |b| {
        b.iter(|| black_box(t.pick()))
    });
    drop(held);
}

/// A whole request's routing work on the fast path (parse and check the head, match the
/// rules, pick a target, write the head for the target) with 1 rule and 1 target against
/// 1,000 rules (mixed kinds, none matching) and 1,000 targets.
fn whole_request(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let writer = RequestWriter::new("198.51.100.20:51000".parse().unwrap(), 80);
    let src: IpAddr = "198.51.100.20".parse().unwrap();
    let mut out = Vec::with_capacity(4096);
    for alg in [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
    ] {
        for n in [1u16, 1000] {
            let r = Rules::new(&listener("mixed", n.into()), &[group(alg)]).unwrap();
            let t = Targets::new(&group(alg), n).unwrap();
            assert_eq!(r.evaluate_head(BROWSER_GET, src), Some(n.into()));
            c.bench_function(&format!("request/{alg}/{n}_rules_{n}_targets"), |b| {
                b.iter(|| {
                    let head = black_box(BROWSER_GET);
                    let len = parse_request_head(head);
                    let evaluated = r.evaluate_head(head, src);
                    let target = t.pick();
                    let written = writer.write(head, &mut out);
                    black_box((len, evaluated, target, written))
                })
            });
        }
    }
}

criterion_group!(benches, request_heads, rules, selection, whole_request);
criterion_main!(benches);
