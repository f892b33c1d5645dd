//! HTTP/2 to targets (`protocolVersion` HTTP2 / GRPC) with trailers passed end to end.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    let addr = p
        .apply(simple_config(tg, vec![target(backend.addr)]))
        .await
        .unwrap()[LISTENER];

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
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
    let addr = p
        .apply(simple_config(tg, vec![target(backend.addr)]))
        .await
        .unwrap()[LISTENER];
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
