//! HTTPS listeners (SNI, ALPN h2/http1.1) and NLB TCP/TLS listeners with proxy protocol
//! v2, end to end through real sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::common::*;
use berth_model::elb::LoadBalancer;
use berth_proxy::{ProxyConfig, TargetGroupConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

struct Certs {
    _dir: tempfile::TempDir,
    files: Vec<(String, String)>,
    ders: Vec<CertificateDer<'static>>,
}

fn certs(names: &[&str]) -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let mut ders = Vec::new();
    for n in names {
        let ck = rcgen::generate_simple_self_signed(vec![n.to_string()]).unwrap();
        let cert = dir.path().join(format!("{n}.crt"));
        let key = dir.path().join(format!("{n}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        files.push((cert.display().to_string(), key.display().to_string()));
        ders.push(ck.cert.der().clone());
    }
    Certs {
        _dir: dir,
        files,
        ders,
    }
}

fn connector(c: &Certs, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for d in &c.ders {
        roots.add(d.clone()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(cfg))
}

fn lb(kind: &str, protocol: &str, certs: &Certs) -> LoadBalancer {
    let certificates: Vec<_> = certs
        .files
        .iter()
        .map(|(c, k)| json!({"certificateFile": c, "privateKeyFile": k}))
        .collect();
    serde_json::from_value(json!({
        "loadBalancerName": "edge", "type": kind,
        "listeners": [{
            "port": 0, "protocol": protocol, "listenerArn": LISTENER,
            "certificates": certificates,
            "defaultActions": [{"type": "forward", "targetGroupArn": TG}],
        }]
    }))
    .unwrap()
}

#[tokio::test]
async fn https_picks_the_certificate_by_sni_and_speaks_h2_and_http1() {
    let backend = Backend::start("web").await;
    let c = certs(&["a.example", "b.example"]);
    let (p, _) = proxy();
    let cfg = ProxyConfig {
        load_balancers: vec![lb("application", "HTTPS", &c)],
        target_groups: vec![TargetGroupConfig {
            group: target_group(TG, "web", json!({"healthCheckEnabled": false})),
            targets: vec![target(backend.addr)],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];

    for (i, name) in ["a.example", "b.example"].iter().enumerate() {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let tls = connector(&c, &[b"h2", b"http/1.1"])
            .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
            .await
            .unwrap();
        let (_, session) = tls.get_ref();
        assert_eq!(
            session.peer_certificates().unwrap()[0],
            c.ders[i],
            "certificate for {name}"
        );
        assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = send
            .send_request(
                hyper::Request::get(format!("https://{name}/"))
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            &resp.into_body().collect().await.unwrap().to_bytes()[..],
            b"web"
        );
    }
    let h = backend.last_headers.lock().unwrap().clone();
    assert!(h.contains("x-forwarded-proto: https\n"), "{h}");
    assert!(h.contains("host: b.example\n"), "{h}");

    // HTTP/1.1 over TLS, with an unknown name: the default (first) certificate.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector(&c, &[b"http/1.1"])
        .connect(ServerName::try_from("a.example").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = send
        .send_request(
            hyper::Request::get("/")
                .header("host", "a.example")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    p.shutdown().await;
}

#[tokio::test]
async fn a_bad_certificate_path_is_refused_and_changes_nothing() {
    let (p, _) = proxy();
    let mut c = certs(&["a.example"]);
    c.files[0].0 = "/nonexistent/cert.pem".into();
    let cfg = ProxyConfig {
        load_balancers: vec![lb("application", "HTTPS", &c)],
        target_groups: vec![TargetGroupConfig {
            group: target_group(TG, "web", json!({})),
            targets: vec![],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let e = p.apply(cfg).await.unwrap_err();
    assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    assert!(p.target_statuses().is_empty());
    p.shutdown().await;
}

/// A TCP backend that reads an optional proxy protocol v2 header, reports the source
/// address it carried, then echoes.
async fn echo_backend(
    expect_ppv2: bool,
) -> (SocketAddr, tokio::sync::mpsc::Receiver<Option<SocketAddr>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut src = None;
                if expect_ppv2 {
                    let mut h = [0u8; 16];
                    s.read_exact(&mut h).await.unwrap();
                    assert_eq!(&h[..12], b"\r\n\r\n\0\r\nQUIT\n");
                    assert_eq!(h[12], 0x21);
                    assert_eq!(h[13], 0x11);
                    let len = u16::from_be_bytes([h[14], h[15]]) as usize;
                    let mut a = vec![0u8; len];
                    s.read_exact(&mut a).await.unwrap();
                    let ip = std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                    let port = u16::from_be_bytes([a[8], a[9]]);
                    src = Some(SocketAddr::from((ip, port)));
                }
                tx.send(src).await.unwrap();
                let mut buf = [0u8; 1024];
                loop {
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    s.write_all(&buf[..n]).await.unwrap();
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn nlb_tcp_listener_forwards_bytes_with_proxy_protocol_v2() {
    let (backend, mut seen) = echo_backend(true).await;
    let (p, _) = proxy();
    let lb: LoadBalancer = serde_json::from_value(json!({
        "loadBalancerName": "nlb", "type": "network",
        "listeners": [{"port": 0, "protocol": "TCP", "listenerArn": LISTENER,
                       "defaultActions": [{"type": "forward", "targetGroupArn": TG}]}]
    }))
    .unwrap();
    let tg = target_group(
        TG,
        "tcp",
        json!({"protocol": "TCP", "healthCheckProtocol": "TCP", "attributes": {"proxy_protocol_v2.enabled": "true"}}),
    );
    let addr = p
        .apply(ProxyConfig {
            load_balancers: vec![lb],
            target_groups: vec![TargetGroupConfig {
                group: tg,
                targets: vec![target(backend)],
                mesh: None,
            }],
            mesh_listeners: vec![],
            mesh_tls: None,
        })
        .await
        .unwrap()[LISTENER];
    wait_for(&p, |s| all_healthy(s, 1)).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    // The health check connects too, without a header being sent; find our connection.
    let mut found = false;
    while let Ok(Some(src)) =
        tokio::time::timeout(std::time::Duration::from_secs(5), seen.recv()).await
    {
        if src == Some(me) {
            found = true;
            break;
        }
    }
    assert!(
        found,
        "the backend saw the client's address in the PPv2 header"
    );
    drop(s);
    p.shutdown().await;
}

#[tokio::test]
async fn nlb_tls_listener_terminates_tls_and_forwards_bytes() {
    let (backend, _seen) = echo_backend(false).await;
    let c = certs(&["tls.example"]);
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "tcp",
        json!({"protocol": "TCP", "healthCheckEnabled": false}),
    );
    let addr = p
        .apply(ProxyConfig {
            load_balancers: vec![lb("network", "TLS", &c)],
            target_groups: vec![TargetGroupConfig {
                group: tg,
                targets: vec![target(backend)],
                mesh: None,
            }],
            mesh_listeners: vec![],
            mesh_tls: None,
        })
        .await
        .unwrap()[LISTENER];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector(&c, &[])
        .connect(ServerName::try_from("tls.example").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"hello over tls").await.unwrap();
    let mut got = [0u8; 14];
    tls.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello over tls");
    drop(tls);
    p.shutdown().await;
}

/// A TLS acceptor for a target with the first certificate of `c`, offering `alpn`.
fn target_acceptor(c: &Certs, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&c.files[0].1).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![c.ders[0].clone()], key)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A backend serving HTTP/1.1 and h2 over TLS with a self-signed certificate.
async fn tls_backend(c: &Certs) -> SocketAddr {
    use hyper::service::service_fn;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = target_acceptor(c, &[b"h2", b"http/1.1"]);
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let body = format!("secure {:?} {}", req.version(), req.uri().path());
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(Bytes::from(body)),
                    ))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_target_groups_are_reached_over_tls_and_health_checked() {
    let c = certs(&["target.internal"]);
    let backend = tls_backend(&c).await;
    for (version, expect) in [("HTTP1", "HTTP/1.1"), ("HTTP2", "HTTP/2.0")] {
        let (p, _) = proxy();
        let tg = target_group(
            TG,
            "secure",
            json!({"protocol": "HTTPS", "protocolVersion": version, "healthCheckPath": "/"}),
        );
        let addr = serve_group(&p, tg, vec![target(backend)]).await;
        wait_for(&p, |s| all_healthy(s, 1)).await;
        let (status, body) = get(&client(), addr, "/x").await;
        assert_eq!(status, 200);
        assert_eq!(body, format!("secure {expect} /x"));
        p.shutdown().await;
    }
}

/// A TLS target that records each request head as it arrives (bytes as written, health
/// checks' too) and answers `ok`; it counts the TLS connections it accepts.
struct RawTlsTarget {
    addr: SocketAddr,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
    connections: Arc<std::sync::atomic::AtomicU32>,
}

async fn raw_tls_target(c: &Certs) -> RawTlsTarget {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let acceptor = target_acceptor(c, &[b"http/1.1"]);
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let connections = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (h, n) = (heads.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (acceptor, h, n) = (acceptor.clone(), h.clone(), n.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(s).await else {
                    return;
                };
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = Vec::new();
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        h.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&head).into_owned());
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tls.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
            });
        }
    });
    RawTlsTarget {
        addr,
        heads,
        connections,
    }
}

#[tokio::test]
async fn keep_alive_requests_to_an_https_target_group_share_one_tls_connection_as_written() {
    let c = certs(&["target.internal"]);
    let t = raw_tls_target(&c).await;
    let (p, _) = proxy();
    let tg = target_group(
        TG,
        "secure",
        json!({"protocol": "HTTPS", "healthCheckPath": "/health"}),
    );
    let addr = serve_group(&p, tg, vec![target(t.addr)]).await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    let before = t.connections.load(std::sync::atomic::Ordering::SeqCst);

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    for i in 0..5 {
        client
            .write_all(format!("GET /n/{i} HTTP/1.1\r\nHost: a\r\nX-App: A\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"ok") {
            let mut chunk = [0u8; 1024];
            let k = client.read(&mut chunk).await.unwrap();
            assert!(k > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..k]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    // An HTTP/2 client's request (h2c) to the same group.
    let mut send = h2c_client(addr).await;
    let resp = send
        .send_request(
            hyper::Request::get("http://a/h2")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        &resp.into_body().collect().await.unwrap().to_bytes()[..],
        b"ok"
    );

    let heads: Vec<String> = t
        .heads
        .lock()
        .unwrap()
        .iter()
        .filter(|h| !h.starts_with("GET /health "))
        .cloned()
        .collect();
    assert_eq!(heads.len(), 6, "{heads:?}");
    for (i, head) in heads[..5].iter().enumerate() {
        assert!(
            head.starts_with(&format!("GET /n/{i} HTTP/1.1\r\n")),
            "{head}"
        );
        // Field names as the client wrote them: the request went out on the fast path,
        // not through hyper's client (which writes them in lower case).
        assert!(head.contains("\r\nX-App: A\r\n"), "{head}");
    }
    assert!(heads[5].starts_with("GET /h2 HTTP/1.1\r\n"), "{}", heads[5]);
    let opened = t.connections.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(opened <= 1, "{opened} TLS connections for the requests");
    p.shutdown().await;
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_closed_and_others_are_served() {
    let backend = Backend::start("web").await;
    let c = certs(&["a.example"]);
    let (p, _) = proxy();
    let cfg = ProxyConfig {
        load_balancers: vec![lb("application", "HTTPS", &c)],
        target_groups: vec![TargetGroupConfig {
            group: target_group(TG, "web", json!({"healthCheckEnabled": false})),
            targets: vec![target(backend.addr)],
            mesh: None,
        }],
        mesh_listeners: vec![],
        mesh_tls: None,
    };
    let addr = p.apply(cfg).await.unwrap()[LISTENER];
    // A client that connects and starts a ClientHello it never finishes.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .unwrap();
    // Meanwhile a whole handshake and request go through.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector(&c, &[b"http/1.1"])
        .connect(ServerName::try_from("a.example").unwrap(), tcp)
        .await
        .expect("an honest handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The stalled one is closed once the 10 s handshake timeout runs out.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), stalled.read(&mut buf))
        .await
        .expect("closed by the handshake timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    p.shutdown().await;
}
