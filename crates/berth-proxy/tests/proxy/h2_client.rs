//! HTTP/2 from the client to HTTP/1.1 targets: bodyless requests go out as HTTP/1.1 on
//! pooled connections, with forwarded headers, chunked responses decoded, HEAD answered
//! without a body, and many concurrent streams each answered.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

#[tokio::test]
async fn h2c_requests_reach_http11_targets() {
    let backend = Backend::start("web").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(backend.addr)]).await;

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let get = |method: &str, path: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(format!("http://example.com{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };

    // A chunked response (the backend streams /trailers; its trailers need `te`, which
    // does not go to an HTTP/1.1 target) arrives decoded.
    let resp = send
        .clone()
        .send_request(get("GET", "/trailers"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("transfer-encoding").is_none());
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"web"
    );
    let h = backend.last_headers.lock().unwrap().clone();
    assert!(h.contains("version: HTTP/1.1\n"), "{h}");
    assert!(h.contains("host: example.com\n"), "{h}");
    assert!(h.contains("x-forwarded-for: 127.0.0.1\n"), "{h}");
    assert!(h.contains("x-forwarded-proto: http\n"), "{h}");

    let resp = send.clone().send_request(get("HEAD", "/")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .is_empty());

    // Many streams at once, each on its own target connection.
    let before = backend.count();
    let answers = futures::future::join_all((0..100).map(|i| {
        let mut s = send.clone();
        let req = get("GET", &format!("/n/{i}"));
        async move {
            let resp = s.send_request(req).await.unwrap();
            let status = resp.status();
            (status, resp.into_body().collect().await.unwrap().to_bytes())
        }
    }))
    .await;
    for (status, body) in answers {
        assert_eq!(status, 200);
        assert_eq!(&body[..], b"web");
    }
    assert_eq!(backend.count() - before, 100);
    p.shutdown().await;
}
