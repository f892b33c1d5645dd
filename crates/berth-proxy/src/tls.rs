//! TLS termination with rustls: certificates loaded from PEM files, chosen by SNI among
//! a listener's certificates (the first is the default, as on an ALB), ALPN h2 and
//! http/1.1, TLS 1.2 and 1.3. RSA keys sign with aws-lc-rs ([`rsa_signing`]); everything
//! else, including the rustls provider, is ring.

use std::fmt;
use std::sync::Arc;

use berth_model::elb::Certificate;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::ProxyError;

mod rsa_signing;

/// Picks the certificate whose names cover the SNI name; the first otherwise.
pub(crate) struct SniResolver {
    keys: Vec<Arc<CertifiedKey>>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SniResolver({} certificates)", self.keys.len())
    }
}

impl SniResolver {
    fn covers(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
        let Some(leaf) = key.cert.first() else {
            return false;
        };
        webpki::EndEntityCert::try_from(leaf)
            .and_then(|c| c.verify_is_valid_for_subject_name(name))
            .is_ok()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(sni) = hello.server_name() {
            if let Ok(name) = ServerName::try_from(sni) {
                if let Some(k) = self.keys.iter().find(|k| Self::covers(k, &name)) {
                    return Some(k.clone());
                }
            }
        }
        self.keys.first().cloned()
    }
}

pub(crate) fn load(c: &Certificate, listener_arn: &str) -> Result<Arc<CertifiedKey>, ProxyError> {
    let bad = |m: String| ProxyError::config(format!("listener {listener_arn} certificate"), m);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.certificate_file)
        .map_err(|e| bad(format!("{}: {e}", c.certificate_file)))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{}: {e}", c.certificate_file)))?;
    if certs.is_empty() {
        return Err(bad(format!(
            "{}: no certificate in the file",
            c.certificate_file
        )));
    }
    let bad_key = |e: String| {
        bad(format!(
            "{} (the key of {}): {e}",
            c.private_key_file, c.certificate_file
        ))
    };
    let key =
        PrivateKeyDer::from_pem_file(&c.private_key_file).map_err(|e| bad_key(e.to_string()))?;
    let signer = rsa_signing::signing_key(&key).map_err(|e| bad_key(e.to_string()))?;
    let ck = CertifiedKey::new(certs, signer);
    ck.keys_match()
        .map_err(|e| bad(format!("the key does not match the certificate: {e}")))?;
    Ok(Arc::new(ck))
}

/// Builds the acceptor for a listener's certificates; `alpn` lists the protocols offered.
pub(crate) fn acceptor(
    certs: &[Certificate],
    listener_arn: &str,
    alpn: &[&[u8]],
) -> Result<TlsAcceptor, ProxyError> {
    let keys = certs
        .iter()
        .map(|c| load(c, listener_arn))
        .collect::<Result<Vec<_>, _>>()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ProxyError::config(format!("listener {listener_arn}"), e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { keys }));
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Accepts any target certificate while still checking the handshake signatures: as on
/// an ALB, targets' certificates are not validated (they are usually self-signed).
#[derive(Debug)]
struct AnyTargetCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyTargetCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for HTTPS targets, offering `h2` or `http/1.1` by ALPN.
pub(crate) fn target_connector(h2: bool) -> tokio_rustls::TlsConnector {
    static H1: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    static H2: std::sync::OnceLock<tokio_rustls::TlsConnector> = std::sync::OnceLock::new();
    let make = |alpn: &[u8]| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("ring supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyTargetCertificate(provider)))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(cfg))
    };
    if h2 {
        H2.get_or_init(|| make(b"h2")).clone()
    } else {
        H1.get_or_init(|| make(b"http/1.1")).clone()
    }
}
