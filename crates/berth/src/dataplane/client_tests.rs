//! The socket protocol end to end: a [`RemoteDataPlane`] against a data plane served on
//! a socket of a temporary directory.

use std::net::SocketAddr;
use std::time::Duration;

use berth_model::dataplane::{ProxyTarget, TargetGroupConfig};
use berth_model::elb::{LoadBalancer, TargetGroup, TargetHealthState};

use super::*;
use crate::dataplane::process::tests_support;
use crate::dataplane::DataPlanePaths;

const TG: &str = "arn:berth:elasticloadbalancing:local:0:targetgroup/web/1";
const LISTENER: &str = "arn:berth:elasticloadbalancing:local:0:listener/app/web/1/80";

/// A backend answering 200 "ok" on every path.
async fn backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn config(listener_port: u16, target: SocketAddr) -> ProxyConfig {
    let lb: LoadBalancer = serde_json::from_value(serde_json::json!({
        "loadBalancerName": "web",
        "listeners": [{
            "port": listener_port, "protocol": "HTTP", "listenerArn": LISTENER,
            "defaultActions": [{"type": "forward", "targetGroupArn": TG}],
        }]
    }))
    .unwrap();
    let group: TargetGroup = serde_json::from_value(serde_json::json!({
        "targetGroupName": "web",
        "targetGroupArn": TG,
        "healthCheckPath": "/health",
        "healthCheckIntervalSeconds": 5,
        "healthCheckTimeoutSeconds": 2,
    }))
    .unwrap();
    ProxyConfig {
        load_balancers: vec![lb],
        target_groups: vec![TargetGroupConfig {
            group,
            targets: vec![ProxyTarget {
                id: target.ip().to_string(),
                port: u32::from(target.port()),
                addr: target,
                draining: false,
                mesh_hop: None,
            }],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    }
}

fn state(dp: &RemoteDataPlane) -> Option<TargetHealthState> {
    dp.target_statuses().first().map(|s| s.health.state)
}

/// Waits (bounded) for the client's change counter to show a healthy target.
async fn wait_healthy(dp: &RemoteDataPlane) {
    let mut changes = dp.subscribe();
    tokio::time::timeout(Duration::from_secs(10), async {
        while state(dp) != Some(TargetHealthState::Healthy) {
            changes.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no healthy target: {:?}", dp.target_statuses()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_statuses_and_metrics_cross_the_socket_and_a_same_config_keeps_health() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, _proxy) = tests_support::serve(dir.path()).await;
    let registry = prometheus::Registry::new();
    let dp = RemoteDataPlane::connect(&DataPlanePaths::of(dir.path()).socket, &registry)
        .await
        .unwrap();
    assert!(dp.target_statuses().is_empty());

    let target = backend().await;
    let bound = dp.apply(config(0, target)).await.unwrap();
    let addr = bound[LISTENER];
    assert_ne!(addr.port(), 0);
    // The apply's answer carries the statuses: the new target is known at once.
    assert_eq!(dp.target_statuses().len(), 1, "{:?}", dp.target_statuses());
    assert_eq!(dp.target_statuses()[0].addr, target);
    wait_healthy(&dp).await;

    let body = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "ok");

    // The same configuration again: same socket, the target stays healthy.
    let again = dp.apply(config(0, target)).await.unwrap();
    assert_eq!(again[LISTENER], addr);
    assert_eq!(state(&dp), Some(TargetHealthState::Healthy));

    // The proxy's families show in the server's registry within a few seconds.
    let mut text = String::new();
    for _ in 0..50 {
        text.clear();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .unwrap();
        if text.contains("berth_lb_requests_total{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains("berth_lb_requests_total{"), "{text}");
    assert!(text.contains("\"web\""), "{text}");
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_crosses_the_socket_and_the_previous_config_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, _proxy) = tests_support::serve(dir.path()).await;
    let dp = RemoteDataPlane::connect(
        &DataPlanePaths::of(dir.path()).socket,
        &prometheus::Registry::new(),
    )
    .await
    .unwrap();
    let target = backend().await;
    let addr = dp.apply(config(0, target)).await.unwrap()[LISTENER];

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let refusal = dp.apply(config(port, target)).await.unwrap_err();
    assert_eq!(refusal.load_balancer_name.as_deref(), Some("web"));
    assert!(
        refusal.reason.contains(&port.to_string()),
        "{}",
        refusal.reason
    );
    // Nothing changed: the old listener answers.
    let r = reqwest::get(format!("http://{addr}/")).await.unwrap();
    assert!(r.status().is_success() || r.status().as_u16() == 503);
    assert_eq!(dp.target_statuses().len(), 1);
    let _ = stop.send(true);
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, _proxy) = tests_support::serve(dir.path()).await;
    let socket = DataPlanePaths::of(dir.path()).socket;
    let (status, body) = protocol::call(
        &socket,
        Method::GET,
        "/v1/statuses?after=soon",
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("after: \\\"soon\\\" is not a whole number"),
        "{body}"
    );

    let (status, body) = protocol::call(
        &socket,
        Method::PUT,
        "/v1/config",
        Some(b"{\"loadBalancers\": 3}".to_vec()),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("the configuration does not parse"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let _ = stop.send(true);
}

#[tokio::test]
async fn an_unreachable_data_plane_is_a_refusal_naming_no_load_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let (stop, _proxy) = tests_support::serve(dir.path()).await;
    let socket = DataPlanePaths::of(dir.path()).socket;
    let patience = Duration::from_millis(600);
    let dp =
        RemoteDataPlane::connect_with_patience(&socket, &prometheus::Registry::new(), patience)
            .await
            .unwrap();
    let (status, _) = protocol::call(
        &socket,
        Method::POST,
        "/v1/stop",
        None,
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::ACCEPTED);
    let _ = stop.send(true);
    let _ = std::fs::remove_file(&socket);
    let started = std::time::Instant::now();
    let refusal = dp
        .apply(config(0, "127.0.0.1:9".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(refusal.load_balancer_name, None);
    assert!(
        refusal.reason.contains("does not answer"),
        "{}",
        refusal.reason
    );
    assert!(
        started.elapsed() >= patience,
        "retried for {:?}",
        started.elapsed()
    );
}
