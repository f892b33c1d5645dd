//! RSA-2048 certificates signed by a test CA: handshakes through tokio-rustls (a ring
//! client) against the aws-lc-rs signer, its signatures checked with ring's verifiers, and
//! the errors of malformed keys.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use berth_model::elb::Certificate;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;
use crate::tls::SniResolver;

/// Bounds every wait of a test, so a broken handshake fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(10);

const SERVER_NAME: &str = "rsa.test";

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One RSA-2048 key (PKCS#8 DER) for the whole test binary: generating one takes a while.
fn rsa_pkcs8() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        key.as_der().unwrap().as_ref().to_vec()
    })
}

/// Splits one DER element off `der`: (tag, contents, the rest).
fn der_element(der: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = der[0];
    let (len, header) = match der[1] {
        n if n < 0x80 => (usize::from(n), 2),
        n => {
            let octets = usize::from(n & 0x7f);
            let len = der[2..2 + octets]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, 2 + octets)
        }
    };
    (tag, &der[header..header + len], &der[header + len..])
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its OCTET STRING).
fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_element(pkcs8);
    let (_, _version, rest) = der_element(info);
    let (_, _algorithm, rest) = der_element(rest);
    let (tag, private_key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "PrivateKeyInfo.privateKey is an OCTET STRING");
    private_key.to_vec()
}

/// A test CA and an RSA-2048 leaf certificate for [`SERVER_NAME`] it signed.
struct TestPki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_pem: String,
}

impl TestPki {
    fn new() -> Self {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "berth RSA test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let leaf_key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(rsa_pkcs8()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let leaf = CertificateParams::new(vec![SERVER_NAME.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        TestPki {
            ca: ca.der().clone(),
            leaf: leaf.der().clone(),
            leaf_pem: leaf.pem(),
        }
    }

    /// The leaf certificate and its PKCS#8 key as PEM files in `dir`.
    fn write_files(&self, dir: &std::path::Path) -> Certificate {
        let cert_file = dir.join("rsa.cert.pem");
        let key_file = dir.join("rsa.key.pem");
        std::fs::write(&cert_file, &self.leaf_pem).unwrap();
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(rsa_pkcs8()),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Certificate {
            certificate_file: cert_file.display().to_string(),
            private_key_file: key_file.display().to_string(),
        }
    }

    fn certified(&self, key: Arc<dyn SigningKey>) -> Arc<CertifiedKey> {
        let ck = CertifiedKey::new(vec![self.leaf.clone()], key);
        ck.keys_match().unwrap();
        Arc::new(ck)
    }
}

fn pkcs8_key() -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(rsa_pkcs8().to_vec()))
}

fn pkcs1_key() -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(pkcs1_of(rsa_pkcs8())))
}

/// The CA's verifier (ring), offering only `offered` schemes when given, and keeping the
/// scheme the server signed with.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    offered: Option<Vec<SignatureScheme>>,
    signed_with: Mutex<Option<SignatureScheme>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        *self.signed_with.lock().unwrap() = Some(dss.scheme);
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        *self.signed_with.lock().unwrap() = Some(dss.scheme);
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.offered
            .clone()
            .unwrap_or_else(|| self.inner.supported_verify_schemes())
    }
}

/// A full handshake and one byte each way between `acceptor` and a ring client trusting
/// `ca`: the version negotiated and the scheme the server signed with.
async fn handshake(
    acceptor: TlsAcceptor,
    ca: &CertificateDer<'static>,
    version: &'static SupportedProtocolVersion,
    offered: Option<&[SignatureScheme]>,
) -> (ProtocolVersion, SignatureScheme) {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let verifier = Arc::new(RecordingVerifier {
        inner: WebPkiServerVerifier::builder_with_provider(Arc::new(roots), ring())
            .build()
            .unwrap(),
        offered: offered.map(<[_]>::to_vec),
        signed_with: Mutex::new(None),
    });
    let client_cfg = rustls::ClientConfig::builder_with_provider(ring())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut tls = acceptor.accept(server_io).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(&byte).await?;
        tls.flush().await?;
        std::io::Result::Ok(())
    });
    let client = async {
        let name = ServerName::try_from(SERVER_NAME).unwrap();
        let mut tls = TlsConnector::from(Arc::new(client_cfg))
            .connect(name, client_io)
            .await?;
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        assert_eq!(&byte, b"x");
        std::io::Result::Ok(tls.get_ref().1.protocol_version().unwrap())
    };
    let negotiated = tokio::time::timeout(DEADLINE, client)
        .await
        .expect("handshake within the deadline")
        .expect("client handshake");
    tokio::time::timeout(DEADLINE, server)
        .await
        .expect("server within the deadline")
        .unwrap()
        .expect("server handshake");
    let scheme = verifier.signed_with.lock().unwrap().expect("a signature");
    (negotiated, scheme)
}

fn acceptor_for(key: Arc<CertifiedKey>) -> TlsAcceptor {
    let cfg = rustls::ServerConfig::builder_with_provider(ring())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { keys: vec![key] }));
    TlsAcceptor::from(Arc::new(cfg))
}

fn is_aws_lc(key: &Arc<dyn SigningKey>) -> bool {
    format!("{key:?}").starts_with("AwsLcRsaSigningKey")
}

// === loading ===

#[test]
fn rsa_keys_get_the_aws_lc_signer_and_other_keys_stay_on_ring() {
    for der in [pkcs8_key(), pkcs1_key()] {
        let key = signing_key(&der).unwrap();
        assert!(is_aws_lc(&key), "{key:?}");
        assert_eq!(key.algorithm(), SignatureAlgorithm::RSA);
    }
    let ec = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ec.serialize_der()));
    let key = signing_key(&ec_der).unwrap();
    assert!(!is_aws_lc(&key), "{key:?}");
    assert_eq!(key.algorithm(), SignatureAlgorithm::ECDSA);
}

#[test]
fn the_public_key_matches_the_certificate_for_pkcs8_and_pkcs1() {
    let pki = TestPki::new();
    for der in [pkcs8_key(), pkcs1_key()] {
        let ck = CertifiedKey::new(vec![pki.leaf.clone()], signing_key(&der).unwrap());
        ck.keys_match().unwrap();
    }
}

#[test]
fn load_reads_an_rsa_certificate_and_its_pkcs8_key_from_files() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let c = pki.write_files(dir.path());
    let ck = crate::tls::load(&c, "arn:listener").unwrap();
    assert!(is_aws_lc(&ck.key), "{:?}", ck.key);
}

#[test]
fn a_malformed_key_names_the_key_and_certificate_files() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("site.cert.pem");
    std::fs::write(&cert_file, &pki.leaf_pem).unwrap();
    // A PKCS#1 key cut short, and a PKCS#8 one whose contents are not a key at all.
    let malformed = [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAECAwQFBgcICQ==\n-----END PRIVATE KEY-----\n",
    ];
    for (i, pem) in malformed.iter().enumerate() {
        let key_file = dir.path().join(format!("site{i}.key.pem"));
        std::fs::write(&key_file, pem).unwrap();
        let c = Certificate {
            certificate_file: cert_file.display().to_string(),
            private_key_file: key_file.display().to_string(),
        };
        let err = crate::tls::load(&c, "arn:listener")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&c.private_key_file), "{err}");
        assert!(err.contains(&c.certificate_file), "{err}");
        assert!(err.contains("private key"), "{err}");
    }
}

// === signatures ===

#[test]
fn choose_scheme_prefers_pss_and_larger_digests_as_ring_does() {
    let key = AwsLcRsaSigningKey::new(&pkcs8_key()).unwrap();
    let ring_key = rustls::crypto::ring::sign::any_supported_type(&pkcs8_key()).unwrap();
    let offers: [&[SignatureScheme]; 5] = [
        &[
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PSS_SHA512,
        ],
        &[
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::RSA_PKCS1_SHA384,
        ],
        &[
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ],
        &[
            SignatureScheme::ED25519,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ],
        &[],
    ];
    let chosen: Vec<_> = offers
        .iter()
        .map(|o| key.choose_scheme(o).map(|s| s.scheme()))
        .collect();
    assert_eq!(
        chosen,
        [
            Some(SignatureScheme::RSA_PSS_SHA512),
            Some(SignatureScheme::RSA_PKCS1_SHA384),
            Some(SignatureScheme::RSA_PSS_SHA384),
            None,
            None,
        ]
    );
    for o in offers {
        assert_eq!(
            key.choose_scheme(o).map(|s| s.scheme()),
            ring_key.choose_scheme(o).map(|s| s.scheme()),
            "{o:?}"
        );
    }
}

#[test]
fn each_scheme_signs_what_rings_verifier_accepts() {
    let pki = TestPki::new();
    let leaf = webpki::EndEntityCert::try_from(&pki.leaf).unwrap();
    let verifiers = ring().signature_verification_algorithms;
    let key = AwsLcRsaSigningKey::new(&pkcs8_key()).unwrap();
    let message = b"TLS 1.3, server CertificateVerify\x00transcript hash";
    for &(scheme, _) in &RSA_SCHEMES {
        let signer = key.choose_scheme(&[scheme]).unwrap();
        assert_eq!(signer.scheme(), scheme);
        let sig = signer.sign(message).unwrap();
        assert_eq!(sig.len(), 256, "{scheme:?}");
        let algs = verifiers
            .mapping
            .iter()
            .find(|(s, _)| *s == scheme)
            .map(|(_, algs)| *algs)
            .unwrap_or_else(|| panic!("ring verifies {scheme:?}"));
        let verifies = |msg: &[u8]| {
            algs.iter()
                .any(|alg| leaf.verify_signature(*alg, msg, &sig).is_ok())
        };
        assert!(verifies(message), "{scheme:?}");
        assert!(!verifies(b"another message"), "{scheme:?}");
    }
}

// === handshakes ===

#[tokio::test]
async fn tls13_handshake_signs_with_pss() {
    let pki = TestPki::new();
    let key = pki.certified(signing_key(&pkcs8_key()).unwrap());
    let (version, scheme) =
        handshake(acceptor_for(key), &pki.ca, &rustls::version::TLS13, None).await;
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(scheme, SignatureScheme::RSA_PSS_SHA512);
}

#[tokio::test]
async fn tls13_handshake_through_the_listener_acceptor() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let c = pki.write_files(dir.path());
    let acceptor = crate::tls::acceptor(&[c], "arn:listener", &[b"http/1.1"]).unwrap();
    let offered = [SignatureScheme::RSA_PSS_SHA256];
    let (version, scheme) =
        handshake(acceptor, &pki.ca, &rustls::version::TLS13, Some(&offered)).await;
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(scheme, SignatureScheme::RSA_PSS_SHA256);
}

#[tokio::test]
async fn tls12_handshake_signs_with_pss_when_offered() {
    let pki = TestPki::new();
    let key = pki.certified(signing_key(&pkcs1_key()).unwrap());
    let (version, scheme) =
        handshake(acceptor_for(key), &pki.ca, &rustls::version::TLS12, None).await;
    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert_eq!(scheme, SignatureScheme::RSA_PSS_SHA512);
}

#[tokio::test]
async fn tls12_handshake_signs_with_pkcs1_when_only_that_is_offered() {
    let pki = TestPki::new();
    let key = pki.certified(signing_key(&pkcs8_key()).unwrap());
    for scheme in [
        SignatureScheme::RSA_PKCS1_SHA256,
        SignatureScheme::RSA_PKCS1_SHA384,
        SignatureScheme::RSA_PKCS1_SHA512,
    ] {
        let (version, signed) = handshake(
            acceptor_for(key.clone()),
            &pki.ca,
            &rustls::version::TLS12,
            Some(&[scheme]),
        )
        .await;
        assert_eq!(version, ProtocolVersion::TLSv1_2);
        assert_eq!(signed, scheme);
    }
}
