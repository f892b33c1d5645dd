//! Micro-benchmarks: rule matching (1 and 100 rules) and target selection per algorithm.

use std::net::IpAddr;

use berth_model::elb::{Listener, TargetGroup};
use berth_proxy::bench::{Rules, Targets};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method};
use serde_json::json;

const TG: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/web/1";

fn group(algorithm: &str) -> TargetGroup {
    serde_json::from_value(json!({
        "targetGroupName": "web", "targetGroupArn": TG,
        "attributes": {"load_balancing.algorithm.type": algorithm}
    }))
    .unwrap()
}

/// An HTTP listener with `rules`, forwarding everything else to `TG`.
fn listener_with(rules: Vec<serde_json::Value>) -> Listener {
    serde_json::from_value(json!({
        "port": 80, "protocol": "HTTP", "listenerArn": "l",
        "defaultActions": [{"type": "forward", "targetGroupArn": TG}],
        "rules": rules,
    }))
    .unwrap()
}

/// A listener with `n` rules on host names only (no path prefix to reject by).
fn host_listener(n: u32) -> Listener {
    let rules: Vec<_> = (1..=n)
        .map(|i| {
            json!({"priority": i, "conditions": [
                {"field": "host-header", "values": [format!("svc{i}.example.com"), format!("*.svc{i}.internal")]}
            ], "actions": [{"type": "forward", "targetGroupArn": TG}]})
        })
        .collect();
    listener_with(rules)
}

/// A listener with `n` path rules (none matching the benchmark request, so every rule is
/// evaluated) plus host and header conditions.
fn listener(n: u32) -> Listener {
    let rules: Vec<_> = (1..=n)
        .map(|i| {
            json!({"priority": i, "conditions": [
                {"field": "host-header", "values": [format!("svc{i}.example.com"), "*.internal"]},
                {"field": "path-pattern", "values": [format!("/api/v{i}/*")]}
            ], "actions": [{"type": "forward", "targetGroupArn": TG}]})
        })
        .collect();
    listener_with(rules)
}

fn rules(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let src: IpAddr = "10.1.2.3".parse().unwrap();
    let cases = [
        ("rules", listener(1)),
        ("rules", listener(100)),
        ("rules_host_only", host_listener(100)),
    ];
    for (name, l) in cases {
        let n = l.rules.len();
        let r = Rules::new(&l, &[group("round_robin")]).unwrap();
        c.bench_function(&format!("{name}/{n}"), |b| {
            b.iter(|| {
                black_box(r.evaluate(
                    black_box("www.example.com"),
                    black_box("/static/app.js"),
                    None,
                    &Method::GET,
                    &headers,
                    src,
                ))
            })
        });
    }
}

fn selection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    for alg in [
        "round_robin",
        "least_outstanding_requests",
        "weighted_random",
        "peak_ewma",
    ] {
        let t = Targets::new(&group(alg), 10).unwrap();
        c.bench_function(&format!("pick/{alg}/10"), |b| {
            b.iter(|| black_box(t.pick()))
        });
    }
}

criterion_group!(benches, rules, selection);
criterion_main!(benches);
