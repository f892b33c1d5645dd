//! Mutual TLS in the mesh end to end through real sockets: a mesh listener forwards
//! through the inbound listener (the proxy's own: it plays both the calling and the
//! serving node), the inbound listener refuses clients without a certificate of the
//! trust, denies callers off the allow list with 403, keeps serving through an identity
//! rotation, and carries TCP mesh listeners.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::mesh_ca::TestCa;
use crate::common::*;
use berth_model::dataplane::{
    MeshCaller, MeshGroupSettings, MeshHop, MeshInboundEndpoint, MeshListener, MeshProtocol,
    MeshRoute, MeshTlsConfig, OutlierDetection,
};
use berth_model::mesh_identity::{AllowedCallers, MeshCertificate, SpiffeId};
use berth_proxy::{mesh_listener_key, Proxy, ProxyConfig, ProxyTarget, TargetGroupConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NS: &str = "internal";
const SERVER_NAME: &str = "t0123456789ab-8080.orders.internal.mesh";
const DEADLINE: Duration = Duration::from_secs(20);

fn id(service: &str) -> SpiffeId {
    SpiffeId::for_service("prod", NS, service).unwrap()
}

fn tg_arn(name: &str) -> String {
    format!("arn:berth:elasticloadbalancing:local:0:targetgroup/{name}/1")
}

/// The identities one node holds: the called service's, the calling task's and the
/// node's.
struct Identities {
    orders: MeshCertificate,
    frontend: MeshCertificate,
    node: MeshCertificate,
}

impl Identities {
    fn issue(ca: &TestCa) -> Identities {
        Identities {
            orders: ca.issue(&id("orders")),
            frontend: ca.issue(&id("frontend")),
            node: ca.issue(&id("berth-node")),
        }
    }
}

/// A node calling `orders` (at `backend`) through its own inbound listener at `inbound`,
/// the task at 127.0.0.1 calling as `frontend`.
fn config(
    ca: &TestCa,
    ids: &Identities,
    inbound: SocketAddr,
    backend: SocketAddr,
    protocol: MeshProtocol,
    allowed: AllowedCallers,
) -> ProxyConfig {
    let group = TargetGroupConfig {
        group: target_group(
            &tg_arn("orders"),
            "orders",
            json!({"healthCheckEnabled": false}),
        ),
        targets: vec![ProxyTarget {
            mesh_hop: Some(MeshHop {
                inbound,
                server_name: SERVER_NAME.into(),
                identity: id("orders"),
            }),
            ..target(backend)
        }],
        mesh: Some(MeshGroupSettings {
            namespace: NS.into(),
            discovery_name: "orders".into(),
            per_request_timeout_seconds: 15,
            outlier_detection: OutlierDetection {
                consecutive_failures: 1000,
                ..OutlierDetection::default()
            },
        }),
    };
    ProxyConfig {
        load_balancers: vec![],
        target_groups: vec![group],
        mesh_listeners: vec![MeshListener {
            port: 0,
            protocol,
            routes: vec![MeshRoute {
                dns_name: "orders".into(),
                target_group_arn: tg_arn("orders"),
            }],
            idle_timeout_seconds: 300,
        }],
        mesh_tls: Some(MeshTlsConfig {
            trust: ca.trust(),
            identities: vec![ids.orders.clone(), ids.frontend.clone(), ids.node.clone()],
            inbound: vec![MeshInboundEndpoint {
                server_name: SERVER_NAME.into(),
                identity: id("orders"),
                target: backend,
                protocol,
                allowed_callers: allowed,
            }],
            callers: vec![MeshCaller {
                ip: "127.0.0.1".parse().unwrap(),
                identity: id("frontend"),
            }],
            node_identity: id("berth-node"),
        }),
    }
}

fn only(service: &str) -> AllowedCallers {
    AllowedCallers::Only(BTreeSet::from([id(service)]))
}

/// Binds the node's inbound listener on loopback, port chosen by the system.
async fn bind_inbound(p: &Proxy) -> SocketAddr {
    let inbound = p
        .bind_mesh_inbound("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(inbound.port(), 0);
    inbound
}

/// Binds the inbound listener and applies the configuration; returns the mesh
/// listener's address.
async fn start(
    p: &Proxy,
    ca: &TestCa,
    ids: &Identities,
    backend: SocketAddr,
    protocol: MeshProtocol,
    allowed: AllowedCallers,
) -> (SocketAddr, SocketAddr) {
    let inbound = bind_inbound(p).await;
    let addrs = p
        .apply(config(ca, ids, inbound, backend, protocol, allowed))
        .await
        .unwrap();
    let key = mesh_listener_key(0, "127.0.0.1".parse().unwrap());
    (addrs[&key], inbound)
}

async fn get_orders(c: &HttpClient, addr: SocketAddr) -> (u16, String) {
    let req = Request::get(format!("http://{addr}/"))
        .header("host", "orders")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(DEADLINE, c.request(req))
        .await
        .expect("an answer")
        .expect("request");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GETs `/` over h2c (prior knowledge): the hyper path.
async fn h2_get_orders(addr: SocketAddr) -> (u16, String) {
    let mut send = h2c_client(addr).await;
    let req = Request::get("http://orders/")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(DEADLINE, send.send_request(req))
        .await
        .expect("an answer")
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn by_caller(r: &prometheus::Registry, name: &str, caller: &str) -> f64 {
    let caller = id(caller).to_string();
    metric(
        r,
        name,
        &[
            ("namespace", NS),
            ("service", "orders"),
            ("caller", &caller),
        ],
    )
}

fn handshake_failures(r: &prometheus::Registry, side: &str) -> f64 {
    metric(
        r,
        "berth_mesh_tls_handshake_failures_total",
        &[("side", side)],
    )
}

/// Accepts every server certificate and records it: for tests that look at what the
/// inbound listener presents, or that must reach its certificate check.
#[derive(Debug)]
struct AcceptAnyServer;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects to the inbound listener as a raw TLS client, presenting `cert` (or none),
/// sends an HTTP/1.1 request and returns the server's certificate (if the handshake got
/// that far) and what came back before the connection closed.
async fn raw_call(
    inbound: SocketAddr,
    cert: Option<&MeshCertificate>,
) -> (Option<CertificateDer<'static>>, Vec<u8>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer));
    let cfg = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(c.cert_chain_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(c.private_key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let tcp = TcpStream::connect(inbound).await.unwrap();
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let mut tls = match tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .expect("handshake ends")
    {
        Ok(s) => s,
        Err(_) => return (None, Vec::new()),
    };
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned());
    let _ = tls
        .write_all(b"GET / HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tls.read_to_end(&mut out))
        .await
        .expect("the connection ends");
    (presented, out)
}

fn leaf(c: &MeshCertificate) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(c.cert_chain_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_mesh_request_reaches_its_endpoint_through_the_inbound_listener_over_mutual_tls() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (addr, _) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    )
    .await;
    let c = client();
    // The fast path, over one pooled hop connection.
    for _ in 0..3 {
        assert_eq!(get_orders(&c, addr).await, (200, "orders-1".into()));
    }
    // The hyper path (h2c from the client, HTTP/1.1 over the hop).
    assert_eq!(h2_get_orders(addr).await, (200, "orders-1".into()));
    assert_eq!(backend.count(), 4);
    // The inbound listener saw the calling task's identity, and the hop connections
    // were pooled: one for the fast path, one for the hyper path.
    let accepted = by_caller(&r, "berth_mesh_inbound_connections_total", "frontend");
    assert!((1.0..=2.0).contains(&accepted), "{accepted}");
    assert_eq!(by_caller(&r, "berth_mesh_denied_total", "frontend"), 0.0);
    assert_eq!(handshake_failures(&r, "inbound"), 0.0);
    assert_eq!(handshake_failures(&r, "outbound"), 0.0);
    p.shutdown().await;
}

#[tokio::test]
async fn the_inbound_listener_refuses_clients_without_a_certificate_of_the_trust() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (_, inbound) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Http,
        AllowedCallers::Any,
    )
    .await;
    // A caller the trust vouches for gets through, and sees the service's certificate.
    let (presented, out) = raw_call(inbound, Some(&ids.frontend)).await;
    assert_eq!(presented, Some(leaf(&ids.orders)));
    assert!(out.starts_with(b"HTTP/1.1 200"), "{out:?}");
    assert_eq!(backend.count(), 1);

    // No client certificate.
    let (_, out) = raw_call(inbound, None).await;
    assert!(out.is_empty(), "{out:?}");
    // A certificate of another CA, for an identity the allow list would take.
    let other = TestCa::new().issue(&id("frontend"));
    let (_, out) = raw_call(inbound, Some(&other)).await;
    assert!(out.is_empty(), "{out:?}");

    assert_eq!(backend.count(), 1);
    assert_eq!(handshake_failures(&r, "inbound"), 2.0);
    p.shutdown().await;
}

#[tokio::test]
async fn a_caller_off_the_allow_list_gets_403_and_is_counted() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (addr, _) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Http,
        only("billing"),
    )
    .await;
    let c = client();
    let (status, body) = get_orders(&c, addr).await;
    assert_eq!(status, 403);
    assert!(body.contains("not allowed"), "{body}");
    assert_eq!(h2_get_orders(addr).await.0, 403);
    assert_eq!(backend.count(), 0);
    let denied = by_caller(&r, "berth_mesh_denied_total", "frontend");
    assert!(denied >= 1.0, "{denied}");
    assert_eq!(
        by_caller(&r, "berth_mesh_inbound_connections_total", "frontend"),
        0.0
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_identities_under_load_drops_no_request_and_new_connections_get_the_new_certificate(
) {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let first = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (addr, inbound) = start(
        &p,
        &ca,
        &first,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    )
    .await;

    // Clients calling without pause until told to stop; every answer must be a 200.
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let stop_rx = stop_rx.clone();
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut n = 0u32;
            while !*stop_rx.borrow() {
                assert_eq!(get_orders(&c, addr).await, (200, "orders-1".into()));
                // A fresh connection now and then, so new hop connections are made too.
                if n % 5 == 0 {
                    assert_eq!(h2_get_orders(addr).await, (200, "orders-1".into()));
                }
                n += 1;
            }
            n
        }));
    }
    let before = backend.count();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while backend.count() < before + 20 {
        assert!(tokio::time::Instant::now() < deadline, "no traffic");
        tokio::task::yield_now().await;
    }

    let second = Identities::issue(&ca);
    p.apply(config(
        &ca,
        &second,
        inbound,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    ))
    .await
    .unwrap();
    let (presented, _) = raw_call(inbound, Some(&second.frontend)).await;
    assert_eq!(presented, Some(leaf(&second.orders)));

    let rotated = backend.count();
    while backend.count() < rotated + 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no traffic after rotation"
        );
        tokio::task::yield_now().await;
    }
    stop.send(true).unwrap();
    let mut total = 0;
    for w in workers {
        total += w.await.expect("no request failed");
    }
    assert!(total > 0);
    assert_eq!(handshake_failures(&r, "inbound"), 0.0);
    assert_eq!(handshake_failures(&r, "outbound"), 0.0);
    p.shutdown().await;
}

#[tokio::test]
async fn a_tcp_mesh_listener_forwards_over_the_hop() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (addr, _) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Tcp,
        only("frontend"),
    )
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the connection ends")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.ends_with("orders-1"), "{out}");
    assert_eq!(
        by_caller(&r, "berth_mesh_inbound_connections_total", "frontend"),
        1.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn before_mesh_tls_is_configured_the_inbound_listener_closes_connections() {
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let inbound = bind_inbound(&p).await;
    let mut s = TcpStream::connect(inbound).await.unwrap();
    let _ = s.write_all(b"\x16\x03\x01\x00\x00").await;
    let mut out = Vec::new();
    let n = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the connection ends");
    assert!(n.is_err() || out.is_empty(), "{out:?}");
    p.shutdown().await;
}

#[tokio::test]
async fn an_http2_mesh_group_speaks_h2_over_the_hop() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let inbound = bind_inbound(&p).await;
    let mut cfg = config(
        &ca,
        &ids,
        inbound,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    );
    cfg.target_groups[0].group = target_group(
        &tg_arn("orders"),
        "orders",
        json!({"protocolVersion": "HTTP2", "healthCheckEnabled": false}),
    );
    let addrs = p.apply(cfg).await.unwrap();
    let addr = addrs[&mesh_listener_key(0, "127.0.0.1".parse().unwrap())];
    let c = client();
    for _ in 0..3 {
        assert_eq!(get_orders(&c, addr).await, (200, "orders-1".into()));
    }
    assert_eq!(h2_get_orders(addr).await, (200, "orders-1".into()));
    let h = backend.last_headers.lock().unwrap().clone();
    assert!(h.contains("version: HTTP/2.0\n"), "{h}");
    // One multiplexed hop connection carried every request.
    assert_eq!(
        by_caller(&r, "berth_mesh_inbound_connections_total", "frontend"),
        1.0
    );
    p.shutdown().await;
}

#[tokio::test]
async fn a_source_that_is_no_callers_calls_as_the_node_identity_on_its_own_connections() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let (addr, _) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    )
    .await;
    // The task at 127.0.0.1 is allowed, over a pooled hop connection.
    let c = client();
    assert_eq!(get_orders(&c, addr).await, (200, "orders-1".into()));
    // A process at 127.0.0.2 is no caller: it presents the node identity, which the
    // allow list does not name, and does not ride the task's pooled connection.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: orders\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("the connection ends")
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.starts_with("HTTP/1.1 403"), "{out}");
    assert_eq!(by_caller(&r, "berth_mesh_denied_total", "berth-node"), 1.0);
    // And the task still gets through.
    assert_eq!(get_orders(&c, addr).await, (200, "orders-1".into()));
    assert_eq!(backend.count(), 2);
    p.shutdown().await;
}

#[tokio::test]
async fn a_configuration_whose_identities_do_not_load_is_refused_and_changes_nothing() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, _) = mesh_proxy(&["127.0.0.1"]);
    let (addr, inbound) = start(
        &p,
        &ca,
        &ids,
        backend.addr,
        MeshProtocol::Http,
        only("frontend"),
    )
    .await;
    let mut bad = Identities::issue(&ca);
    // The certificate of the new `orders` with the key of the old one.
    bad.orders.private_key_pem = ids.orders.private_key_pem.clone();
    let err = p
        .apply(config(
            &ca,
            &bad,
            inbound,
            backend.addr,
            MeshProtocol::Http,
            only("frontend"),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, berth_proxy::ProxyError::MeshTls { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("privateKeyPem"), "{err}");
    let (presented, _) = raw_call(inbound, Some(&ids.frontend)).await;
    assert_eq!(presented, Some(leaf(&ids.orders)));
    assert_eq!(get_orders(&client(), addr).await, (200, "orders-1".into()));
    p.shutdown().await;
}

#[tokio::test]
async fn the_calling_side_refuses_an_inbound_listener_presenting_another_service() {
    let backend = Backend::start("orders-1").await;
    let ca = TestCa::new();
    let ids = Identities::issue(&ca);
    let (p, r) = mesh_proxy(&["127.0.0.1"]);
    let inbound = bind_inbound(&p).await;
    let mut cfg = config(
        &ca,
        &ids,
        inbound,
        backend.addr,
        MeshProtocol::Http,
        AllowedCallers::Any,
    );
    // The hop expects `payments`; the inbound listener presents `orders`.
    cfg.target_groups[0].targets[0]
        .mesh_hop
        .as_mut()
        .unwrap()
        .identity = id("payments");
    let addrs = p.apply(cfg).await.unwrap();
    let addr = addrs[&mesh_listener_key(0, "127.0.0.1".parse().unwrap())];
    let (status, _) = get_orders(&client(), addr).await;
    assert!(status == 502 || status == 503, "{status}");
    assert_eq!(backend.count(), 0);
    assert!(handshake_failures(&r, "outbound") >= 1.0);
    p.shutdown().await;
}
