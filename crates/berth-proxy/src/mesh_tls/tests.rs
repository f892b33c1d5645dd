//! Real handshakes over loopback between an inbound and outbound mesh configuration.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, MeshTrust, SpiffeId};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{client, TlsAcceptor, TlsConnector};

use super::*;

/// Bounds every wait of a test, so a broken handshake fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(10);

/// A CA issuing certificates as the control plane's mesh CA does.
struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    fn new() -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        // A name of its own, as the control plane's CAs have: webpki looks issuers up
        // by name.
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("test mesh CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    fn trust(&self) -> MeshTrust {
        MeshTrust {
            ca_certificates_pem: vec![self.cert.pem()],
        }
    }

    fn issue(&self, id: &SpiffeId) -> MeshCertificate {
        self.issue_naming(id, &id.mesh_server_name())
    }

    /// A certificate for `id` answering for the DNS name `dns`.
    fn issue_naming(&self, id: &SpiffeId, dns: &str) -> MeshCertificate {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::URI(id.to_string().try_into().unwrap()),
            SanType::DnsName(dns.to_string().try_into().unwrap()),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        MeshCertificate {
            spiffe_id: id.clone(),
            cert_chain_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            not_before: 0.0,
            not_after: 0.0,
        }
    }
}

fn id(service: &str) -> SpiffeId {
    SpiffeId::for_service("prod", "internal", service).unwrap()
}

fn identities(certs: &[MeshCertificate]) -> Arc<MeshIdentities> {
    let ids = Arc::new(MeshIdentities::new());
    ids.replace(certs).unwrap();
    ids
}

/// What the server side saw of one connection.
type Accepted = Result<Option<SpiffeId>, io::Error>;

/// An inbound listener on loopback: reports each handshake's outcome (the caller's
/// identity, or the error), then echoes what it reads.
async fn serve(cfg: Arc<ServerConfig>) -> (SocketAddr, mpsc::UnboundedReceiver<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let acceptor = TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let _ = tx.send(Ok(peer_spiffe_id(tls.get_ref().1)));
                        let mut buf = [0u8; 64];
                        while let Ok(n) = tls.read(&mut buf).await {
                            if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn connect(
    cfg: Arc<ClientConfig>,
    addr: SocketAddr,
    called: &SpiffeId,
) -> io::Result<client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = mesh_server_name(called).unwrap();
    tokio::time::timeout(DEADLINE, TlsConnector::from(cfg).connect(name, tcp))
        .await
        .expect("the handshake finishes")
}

/// Sends `msg` and expects it back.
async fn echo(tls: &mut client::TlsStream<TcpStream>, msg: &[u8]) -> io::Result<()> {
    tls.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(DEADLINE, tls.read_exact(&mut back))
        .await
        .expect("the echo arrives")?;
    assert_eq!(back, msg);
    Ok(())
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Accepted>) -> Accepted {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the server reports the handshake")
        .expect("the server is running")
}

/// The connection failed, on the client's side: at the handshake, or (TLS 1.3: the
/// client finishes before the server has checked its certificate) at the first read.
async fn refused(attempt: io::Result<client::TlsStream<TcpStream>>) -> bool {
    match attempt {
        Err(_) => true,
        Ok(mut tls) => echo(&mut tls, b"ping").await.is_err(),
    }
}

/// A server configuration presenting `cert` to every client, as no [`MeshIdentities`]
/// would (it files a certificate under its own identity's name).
fn presenting_always(trust: &MeshTrust, cert: &MeshCertificate) -> Arc<ServerConfig> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(trust).unwrap(), provider())
            .build()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.private_key_pem.as_bytes()).unwrap();
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![leaf_der(cert)], key)
        .unwrap();
    Arc::new(cfg)
}

/// The TLS error inside an I/O error of tokio-rustls.
fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
}

fn leaf_der(cert: &MeshCertificate) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.cert_chain_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn a_good_pair_connects_and_each_side_sees_the_others_identity() {
    let ca = TestCa::new();
    let (orders, web) = (id("orders"), id("web"));
    let server = inbound_server_config(&ca.trust(), identities(&[ca.issue(&orders)])).unwrap();
    let (addr, mut seen) = serve(server).await;
    let client_cfg =
        outbound_client_config(&ca.trust(), identities(&[ca.issue(&web)]), &web, &orders).unwrap();
    let mut tls = connect(client_cfg, addr, &orders).await.unwrap();
    echo(&mut tls, b"hello").await.unwrap();
    assert_eq!(next(&mut seen).await.unwrap(), Some(web));
    assert_eq!(peer_spiffe_id(tls.get_ref().1), Some(orders));
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = TestCa::new();
    let (orders, web) = (id("orders"), id("web"));
    let server = inbound_server_config(&ca.trust(), identities(&[ca.issue(&orders)])).unwrap();
    let (addr, mut seen) = serve(server).await;
    // The node holds no certificate for `web`: the client sends none.
    let client_cfg = outbound_client_config(&ca.trust(), identities(&[]), &web, &orders).unwrap();
    assert!(refused(connect(client_cfg, addr, &orders).await).await);
    let e = next(&mut seen).await.unwrap_err();
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::NoCertificatesPresented)
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_by_either_side() {
    let (ca, other) = (TestCa::new(), TestCa::new());
    let (orders, web) = (id("orders"), id("web"));

    // A client certificate from another CA: the server refuses.
    let server = inbound_server_config(&ca.trust(), identities(&[ca.issue(&orders)])).unwrap();
    let (addr, mut seen) = serve(server).await;
    let foreign_client =
        outbound_client_config(&ca.trust(), identities(&[other.issue(&web)]), &web, &orders)
            .unwrap();
    assert!(refused(connect(foreign_client, addr, &orders).await).await);
    let e = next(&mut seen).await.unwrap_err();
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{e:?}"
    );

    // A server certificate from another CA: the client refuses.
    let foreign_server =
        inbound_server_config(&ca.trust(), identities(&[other.issue(&orders)])).unwrap();
    let (addr, _seen) = serve(foreign_server).await;
    let client_cfg =
        outbound_client_config(&ca.trust(), identities(&[ca.issue(&web)]), &web, &orders).unwrap();
    let e = connect(client_cfg, addr, &orders).await.unwrap_err();
    assert!(
        matches!(
            rustls_error(&e),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_server_proving_another_identity_is_refused_by_the_client() {
    let ca = TestCa::new();
    let web = id("web");
    let orders = id("orders");
    // Same namespace and service in another cluster: the same SNI name and DNS SAN, a
    // different SPIFFE id.
    let staging_orders = SpiffeId::for_service("staging", "internal", "orders").unwrap();
    let from_another_cluster =
        inbound_server_config(&ca.trust(), identities(&[ca.issue(&staging_orders)])).unwrap();
    // A server presenting, whatever the SNI, a certificate answering for orders' name
    // while naming billing.
    let billing_as_orders = ca.issue_naming(&id("billing"), &orders.mesh_server_name());
    let misnamed = presenting_always(&ca.trust(), &billing_as_orders);
    for server in [from_another_cluster, misnamed] {
        let (addr, _seen) = serve(server).await;
        let client_cfg =
            outbound_client_config(&ca.trust(), identities(&[ca.issue(&web)]), &web, &orders)
                .unwrap();
        let e = connect(client_cfg, addr, &orders).await.unwrap_err();
        let wrong_peer = rustls_error(&e).and_then(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                other.0.downcast_ref::<MeshTlsError>()
            }
            _ => None,
        });
        let Some(MeshTlsError::WrongPeer {
            expected,
            presented,
        }) = wrong_peer
        else {
            panic!("refused for another reason: {e:?}");
        };
        assert_eq!(expected, "spiffe://prod/ns/internal/sa/orders");
        assert_eq!(presented.len(), 1);
        assert_ne!(presented[0], *expected);
    }
}

#[tokio::test]
async fn rotating_the_servers_certificate_keeps_open_connections_and_serves_new_ones_the_new_one() {
    let ca = TestCa::new();
    let (orders, web) = (id("orders"), id("web"));
    let first = ca.issue(&orders);
    let server_ids = identities(std::slice::from_ref(&first));
    let server = inbound_server_config(&ca.trust(), server_ids.clone()).unwrap();
    let (addr, mut seen) = serve(server).await;
    let client_cfg =
        outbound_client_config(&ca.trust(), identities(&[ca.issue(&web)]), &web, &orders).unwrap();

    let mut open = connect(client_cfg.clone(), addr, &orders).await.unwrap();
    echo(&mut open, b"before").await.unwrap();
    next(&mut seen).await.unwrap();
    let presented = |tls: &client::TlsStream<TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].clone()
    };
    assert_eq!(presented(&open), leaf_der(&first));

    let second = ca.issue(&orders);
    server_ids.replace(std::slice::from_ref(&second)).unwrap();

    echo(&mut open, b"after").await.unwrap();
    let mut fresh = connect(client_cfg, addr, &orders).await.unwrap();
    echo(&mut fresh, b"new").await.unwrap();
    assert_eq!(presented(&fresh), leaf_der(&second));
    assert_ne!(leaf_der(&first), leaf_der(&second));
}

#[tokio::test]
async fn a_trust_of_two_cas_accepts_either_while_a_ca_is_rotated() {
    let (old, new) = (TestCa::new(), TestCa::new());
    let both = MeshTrust {
        ca_certificates_pem: vec![old.cert.pem(), new.cert.pem()],
    };
    let (orders, web) = (id("orders"), id("web"));
    let server = inbound_server_config(&both, identities(&[old.issue(&orders)])).unwrap();
    let (addr, mut seen) = serve(server).await;
    let client_cfg =
        outbound_client_config(&both, identities(&[new.issue(&web)]), &web, &orders).unwrap();
    let mut tls = connect(client_cfg, addr, &orders).await.unwrap();
    echo(&mut tls, b"hi").await.unwrap();
    assert_eq!(next(&mut seen).await.unwrap(), Some(web));
}

#[tokio::test]
async fn a_name_the_node_does_not_serve_gets_no_certificate() {
    let ca = TestCa::new();
    let (orders, web) = (id("orders"), id("web"));
    let server = inbound_server_config(&ca.trust(), identities(&[ca.issue(&orders)])).unwrap();
    let (addr, mut seen) = serve(server).await;
    let billing = id("billing");
    let client_cfg =
        outbound_client_config(&ca.trust(), identities(&[ca.issue(&web)]), &web, &billing).unwrap();
    assert!(connect(client_cfg, addr, &billing).await.is_err());
    assert!(next(&mut seen).await.is_err());
}

#[test]
fn identities_are_replaced_all_or_nothing() {
    let ca = TestCa::new();
    let ids = identities(&[ca.issue(&id("orders"))]);
    let web = ca.issue(&id("web"));
    let mut mismatched = ca.issue(&id("billing"));
    mismatched.private_key_pem = web.private_key_pem.clone();
    let e = ids.replace(&[web.clone(), mismatched]).unwrap_err();
    assert!(
        matches!(&e, MeshTlsError::Certificate { field: "privateKeyPem", spiffe_id, .. } if spiffe_id.ends_with("/sa/billing")),
        "{e}"
    );
    assert_eq!(ids.ids(), vec![id("orders")]);

    let mut misnamed = ca.issue(&id("orders"));
    misnamed.spiffe_id = id("payments");
    let e = ids.replace(&[misnamed]).unwrap_err();
    assert!(
        matches!(
            &e,
            MeshTlsError::Certificate {
                field: "certChainPem",
                ..
            }
        ),
        "{e}"
    );

    let staging = SpiffeId::for_service("staging", "internal", "orders").unwrap();
    let e = ids
        .replace(&[ca.issue(&id("orders")), ca.issue(&staging)])
        .unwrap_err();
    assert!(matches!(e, MeshTlsError::ServerNameTaken { .. }), "{e}");
    assert_eq!(ids.ids(), vec![id("orders")]);

    ids.replace(&[web]).unwrap();
    assert_eq!(ids.ids(), vec![id("web")]);
    assert!(ids.certified_key(&id("orders")).is_none());
}

#[test]
fn a_trust_without_a_usable_ca_is_refused() {
    let ids = Arc::new(MeshIdentities::new());
    let e = inbound_server_config(&MeshTrust::default(), ids.clone()).unwrap_err();
    assert!(matches!(e, MeshTlsError::EmptyTrust), "{e}");
    let trust = MeshTrust {
        ca_certificates_pem: vec![TestCa::new().cert.pem(), "garbage".into()],
    };
    let e = outbound_client_config(&trust, ids, &id("web"), &id("orders")).unwrap_err();
    assert!(
        matches!(e, MeshTlsError::TrustCertificate { index: 1, .. }),
        "{e}"
    );
}
