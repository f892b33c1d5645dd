//! HTTP/2 from the client to HTTP/1.1 targets: bodyless requests and small bodies go out
//! as HTTP/1.1 on pooled connections, with forwarded headers, chunked responses decoded,
//! HEAD answered without a body, many concurrent streams each answered, and an idempotent
//! request with a body tried again after a target closed without an answer.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use serde_json::json;

#[tokio::test]
async fn h2c_requests_reach_http11_targets() {
    let backend = Backend::start("web").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(backend.addr)]).await;

    let send = h2c_client(addr).await;
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

fn with_body(method: &str, path: &str, body: Vec<u8>, length: bool) -> hyper::Request<Full<Bytes>> {
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(format!("http://example.com{path}"));
    if length {
        b = b.header("content-length", body.len());
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

#[tokio::test]
async fn h2c_requests_with_bodies_reach_http11_targets() {
    let backend = Backend::start("web").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(backend.addr)]).await;
    let mut send = h2c_client(addr).await;

    // A small body of known length, a large one, and one of unknown length.
    let large = vec![b'x'; 70_000];
    for (body, length) in [
        (b"hello".to_vec(), true),
        (large.clone(), true),
        (b"streamed".to_vec(), false),
    ] {
        let resp = send
            .send_request(with_body("POST", "/echo", body.clone(), length))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        let mut want = b"web:".to_vec();
        want.extend_from_slice(&body);
        assert_eq!(got.len(), want.len());
        assert!(got[..] == want[..], "the body went through");
        let h = backend.last_headers.lock().unwrap().clone();
        assert!(h.contains("version: HTTP/1.1\n"), "{h}");
        if length {
            assert!(
                h.contains(&format!("content-length: {}\n", body.len())),
                "{h}"
            );
        }
    }
    p.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_h2_request_with_a_body_goes_again_after_a_target_closes_without_answering() {
    // One target reads each request and closes without an answer; the other answers.
    let closer = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closer_addr = closer.local_addr().unwrap();
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = closer.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
            });
        }
    });
    let backend = Backend::start("web").await;
    let (p, _) = proxy();
    let tg = target_group(TG, "web", json!({"healthCheckEnabled": false}));
    let addr = serve_group(&p, tg, vec![target(closer_addr), target(backend.addr)]).await;
    let mut send = h2c_client(addr).await;

    for i in 0..4 {
        let body = format!("put {i}").into_bytes();
        let resp = send
            .send_request(with_body("PUT", "/thing", body.clone(), true))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "PUT {i}");
        let got = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(got, format!("web:put {i}"));
    }
    assert!(
        closed.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the closing target was tried"
    );
    p.shutdown().await;
}
