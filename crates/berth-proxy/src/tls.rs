//! TLS termination with rustls: certificates loaded from PEM files, chosen by SNI among
//! a listener's certificates (the first is the default, as on an ALB), ALPN h2 and
//! http/1.1, TLS 1.2 and 1.3.

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

fn load(c: &Certificate, listener_arn: &str) -> Result<Arc<CertifiedKey>, ProxyError> {
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
    let key = PrivateKeyDer::from_pem_file(&c.private_key_file)
        .map_err(|e| bad(format!("{}: {e}", c.private_key_file)))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| bad(format!("{}: {e}", c.private_key_file)))?;
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
