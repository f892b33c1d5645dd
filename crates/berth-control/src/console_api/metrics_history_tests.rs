use super::*;
use berth_model::ecs::ServiceLoadBalancer;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

struct ProxyMetrics {
    registry: Registry,
    requests: IntCounterVec,
    responses: IntCounterVec,
    time: HistogramVec,
}

fn proxy_metrics() -> ProxyMetrics {
    let registry = Registry::new();
    let requests =
        IntCounterVec::new(Opts::new(REQUESTS, "h"), &["target_group", "target"]).unwrap();
    let responses = IntCounterVec::new(
        Opts::new(RESPONSES, "h"),
        &["target_group", "target", "code"],
    )
    .unwrap();
    let time = HistogramVec::new(
        HistogramOpts::new(RESPONSE_TIME, "h").buckets(vec![0.001, 0.01, 0.1, 1.0]),
        &["target_group"],
    )
    .unwrap();
    registry.register(Box::new(requests.clone())).unwrap();
    registry.register(Box::new(responses.clone())).unwrap();
    registry.register(Box::new(time.clone())).unwrap();
    ProxyMetrics {
        registry,
        requests,
        responses,
        time,
    }
}

fn service(name: &str, tg: Option<&str>) -> Service {
    let mut s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": name,
        "taskDefinition": "web",
        "desiredCount": 3,
    }))
    .unwrap();
    s.running_count = 2;
    s.pending_count = 1;
    if let Some(tg) = tg {
        let lb: ServiceLoadBalancer = serde_json::from_value(serde_json::json!({
            "targetGroupArn": berth_model::arn::target_group(tg),
            "containerName": "web",
            "containerPort": 8080,
        }))
        .unwrap();
        s.load_balancers.push(lb);
    }
    s
}

#[test]
fn rates_need_two_samples_then_follow_the_counters() {
    let m = proxy_metrics();
    let h = MetricsHistory::default();
    let services = [service("web", Some("web-tg")), service("batch", None)];
    m.requests.with_label_values(&["web-tg", "a"]).inc_by(100);
    h.observe(1000.0, &services, &m.registry.gather());
    let first = h.points("default", "web");
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].requests_per_second, None,
        "a rate needs two samples"
    );
    assert_eq!(
        (first[0].running, first[0].pending, first[0].desired),
        (2, 1, 3)
    );

    m.requests.with_label_values(&["web-tg", "a"]).inc_by(150);
    m.requests.with_label_values(&["web-tg", "b"]).inc_by(50);
    m.requests.with_label_values(&["other", "c"]).inc_by(1000);
    m.responses
        .with_label_values(&["web-tg", "a", "5xx"])
        .inc_by(4);
    m.responses
        .with_label_values(&["web-tg", "a", "2xx"])
        .inc_by(196);
    for _ in 0..99 {
        m.time.with_label_values(&["web-tg"]).observe(0.005);
    }
    m.time.with_label_values(&["web-tg"]).observe(0.5);
    h.observe(1010.0, &services, &m.registry.gather());
    let points = h.points("default", "web");
    let p = &points[1];
    assert_eq!(p.requests_per_second, Some(20.0), "200 requests in 10 s");
    assert_eq!(p.errors5xx, Some(4.0));
    let p99 = p.p99_latency_ms.unwrap();
    assert!(
        p99 > 1.0 && p99 <= 10.0 + 1e-9,
        "the 99th response is in the 1-10 ms bucket: {p99}"
    );
    let batch = h.points("default", "batch");
    assert_eq!(
        batch[1].requests_per_second, None,
        "no target group, no rate"
    );
}

#[test]
fn the_ring_keeps_an_hour_and_forgets_deleted_services() {
    let h = MetricsHistory::default();
    let web = [service("web", None)];
    for i in 0..(HISTORY_POINTS + 5) {
        h.observe(i as f64 * 10.0, &web, &[]);
    }
    let points = h.points("default", "web");
    assert_eq!(points.len(), HISTORY_POINTS);
    assert_eq!(points[0].at, 50.0, "the oldest points went first");
    h.observe(1e6, &[], &[]);
    assert!(h.points("default", "web").is_empty());
}

#[test]
fn quantiles_interpolate_within_a_bucket_and_stop_at_the_last_finite_bound() {
    let inf = f64::INFINITY;
    let before = [(0.1, 0), (1.0, 0), (inf, 0)];
    let now = [(0.1, 50), (1.0, 100), (inf, 100)];
    assert_eq!(quantile(0.5, &now, &before), Some(0.1));
    let q = quantile(0.75, &now, &before).unwrap();
    assert!((q - 0.55).abs() < 1e-9, "{q}");
    let slow = [(0.1, 0), (1.0, 0), (inf, 10)];
    assert_eq!(quantile(0.99, &slow, &before), Some(1.0));
    assert_eq!(quantile(0.99, &before, &before), None, "no observations");
}

#[test]
fn a_target_group_new_since_the_last_sample_counts_from_zero() {
    let m = proxy_metrics();
    let h = MetricsHistory::default();
    let services = [service("web", Some("web-tg"))];
    h.observe(1000.0, &services, &m.registry.gather());
    m.requests.with_label_values(&["web-tg", "a"]).inc_by(50);
    h.observe(1010.0, &services, &m.registry.gather());
    assert_eq!(h.points("default", "web")[1].requests_per_second, Some(5.0));
}
