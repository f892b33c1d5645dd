//! HTTP/2 to targets (`protocolVersion` HTTP2 / GRPC) with trailers passed end to end.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;

#[tokio::test]
async fn grpc_target_group_speaks_h2_and_passes_trailers() {
    let backend = Backend::start("grpc").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "grpc",
        json!({"protocolVersion": "GRPC", "healthCheckEnabled": false}),
    );
    let addr = serve_group(&p, tg, vec![target(backend.addr)]).await;

    let mut send = h2c_client(addr).await;
    for _ in 0..3 {
        let req = hyper::Request::post(format!("http://{addr}/trailers"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().expect("trailers arrive");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(&collected.to_bytes()[..], b"grpc");
    }
    let h = backend.last_headers.lock().unwrap().clone();
    assert!(h.contains("version: HTTP/2.0\n"), "{h}");
    assert!(h.contains("te: trailers\n"), "{h}");
    p.shutdown().await;
}

#[tokio::test]
async fn http1_clients_reach_http2_targets() {
    let backend = Backend::start("h2").await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "h2",
        json!({"protocolVersion": "HTTP2", "healthCheckEnabled": false}),
    );
    let addr = serve_group(&p, tg, vec![target(backend.addr)]).await;
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, addr, "/").await, (200, "h2".to_string()));
    }
    assert!(backend
        .last_headers
        .lock()
        .unwrap()
        .contains("version: HTTP/2.0\n"));
    p.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn grpc_health_checks_match_grpc_status_codes() {
    use berth_model::elb::TargetHealthState;
    let backend = Backend::start("grpc").await;
    // The backend answers grpc-status 0 on /trailers.
    let (p, _) = proxy();
    let tg = |code: &str| {
        target_group(
            TG,
            "grpc",
            json!({"protocolVersion": "GRPC", "healthCheckPath": "/trailers", "matcher": {"grpcCode": code}}),
        )
    };
    p.apply(simple_config(tg("0"), vec![target(backend.addr)]))
        .await
        .unwrap();
    wait_for(&p, |s| all_healthy(s, 1)).await;
    // The default gRPC matcher (12) does not accept status 0.
    p.apply(simple_config(tg("12"), vec![target(backend.addr)]))
        .await
        .unwrap();
    let s = wait_for(&p, |s| s[0].health.state == TargetHealthState::Unhealthy).await;
    assert_eq!(
        s[0].health.reason.as_deref(),
        Some("Target.ResponseCodeMismatch")
    );
    assert!(s[0].health.description.as_deref().unwrap().contains("[0]"));
    p.shutdown().await;
}
