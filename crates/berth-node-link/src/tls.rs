//! The TLS of the node link: both sides prove an identity issued by the cluster's
//! authority (the mesh CA), TLS 1.3 only, HTTP/2 by ALPN.
//!
//! - The control plane presents `spiffe://berth/ns/_berth/sa/control` with the
//!   authority's certificate after it, so an agent that only knows the authority's
//!   fingerprint (from its join token) can find and check it. It asks every client for a
//!   certificate but lets one without through: the join call is the only one that needs
//!   none, and the routes check the identity of every other call
//!   ([`peer_identity`]).
//! - An agent trusts only a server whose leaf chains to that authority and names the
//!   control identity as its one URI SAN; it presents its node certificate once it has
//!   one. The host name in the URL is not checked: the authority, not a public name,
//!   vouches for the control plane.
//! - [`ReloadableKey`] holds the current certificate and key, so renewals take effect at
//!   the next handshake without restarting anything.
//!
//! What it does not do: issue certificates (the control plane does) or decide what an
//! identity may do (the routes do).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use berth_model::mesh_identity::SpiffeId;
use berth_model::node_link::NodeCredentials;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::token::fingerprint;

/// The one application protocol of the link.
pub const ALPN_H2: &[u8] = b"h2";

/// A certificate, key or configuration that does not load.
#[derive(Debug, Clone, thiserror::Error)]
#[error("node link TLS: {0}")]
pub struct TlsError(pub String);

fn err(what: &str, e: impl fmt::Display) -> TlsError {
    TlsError(format!("{what}: {e}"))
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn authority_der(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| err("the authority certificate", e))
}

/// The certificate (followed by the authority's) and key of `creds`.
pub fn certified_key(creds: &NodeCredentials) -> Result<Arc<CertifiedKey>, TlsError> {
    let mut chain = CertificateDer::pem_slice_iter(creds.certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("the certificate", e))?;
    if chain.is_empty() {
        return Err(TlsError("the certificate PEM holds no certificate".into()));
    }
    chain.push(authority_der(&creds.authority_pem)?);
    let key = PrivateKeyDer::from_pem_slice(creds.private_key_pem.as_bytes())
        .map_err(|e| err("the private key", e))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| err("the private key", e))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match()
        .map_err(|e| err("the private key is not the certificate's", e))?;
    Ok(Arc::new(ck))
}

/// The one URI SAN of a certificate, when it is a SPIFFE id.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Option<SpiffeId> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let uris: Vec<&str> = ee.valid_uri_names().collect();
    match uris.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    }
}

/// The identity of the peer of an established connection (its certificate was checked
/// against the authority during the handshake); `None` without a certificate.
pub fn peer_identity(conn: &rustls::CommonState) -> Option<SpiffeId> {
    spiffe_id_of(conn.peer_certificates()?.first()?)
}

/// The current certificate and key of one side, replaced on renewal.
pub struct ReloadableKey(ArcSwap<CertifiedKey>);

impl fmt::Debug for ReloadableKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReloadableKey")
    }
}

impl ReloadableKey {
    pub fn new(creds: &NodeCredentials) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self(ArcSwap::new(certified_key(creds)?))))
    }

    pub fn replace(&self, creds: &NodeCredentials) -> Result<(), TlsError> {
        self.0.store(certified_key(creds)?);
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl ResolvesClientCert for ReloadableKey {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The control plane's server configuration: `key` presented, client certificates
/// chaining to `authority_pem` checked when sent.
pub fn control_server_config(
    key: Arc<ReloadableKey>,
    authority_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(key, authority_pem, true)
}

/// A server configuration presenting `key`, checking client certificates against
/// `authority_pem`; `allow_anonymous` lets a client without one through.
fn server_config(
    key: Arc<ReloadableKey>,
    authority_pem: &str,
    allow_anonymous: bool,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(authority_der(authority_pem)?)
        .map_err(|e| err("the authority certificate", e))?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let builder = if allow_anonymous {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    let verifier = builder.build().map_err(|e| err("the client verifier", e))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("the server configuration", e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(key);
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(cfg))
}

/// What an agent trusts the control plane by.
#[derive(Debug, Clone)]
pub enum ControlTrust {
    /// Only the authority's fingerprint is known (from the join token): the server must
    /// send a certificate with that fingerprint after its own.
    Fingerprint(String),
    /// The authority's certificate (PEM), as received with the node's credentials.
    Authority(String),
}

/// Accepts a server whose certificate chains to the trusted authority and whose one
/// URI SAN is the expected identity (the control plane's, or a node's).
#[derive(Debug)]
struct ControlVerifier {
    trust: ControlTrust,
    expected: SpiffeId,
}

impl ControlVerifier {
    fn authority<'a>(
        &self,
        intermediates: &'a [CertificateDer<'a>],
    ) -> Result<CertificateDer<'static>, rustls::Error> {
        let other = |msg: String| {
            rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(TlsError(msg)),
            )))
        };
        match &self.trust {
            ControlTrust::Authority(pem) => authority_der(pem).map_err(|e| other(e.to_string())),
            ControlTrust::Fingerprint(fp) => intermediates
                .iter()
                .find(|c| fingerprint(c) == *fp)
                .map(|c| c.clone().into_owned())
                .ok_or_else(|| {
                    other(
                        "the server's certificate authority is not the one the join token names"
                            .into(),
                    )
                }),
        }
    }

    fn webpki(
        &self,
        authority: CertificateDer<'static>,
    ) -> Result<Arc<WebPkiServerVerifier>, rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots
            .add(authority)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))
    }
}

impl ServerCertVerifier for ControlVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let authority = self.authority(intermediates)?;
        let name = ServerName::try_from(self.expected.mesh_server_name())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.webpki(authority)?.verify_server_cert(
            end_entity,
            intermediates,
            &name,
            ocsp_response,
            now,
        )?;
        if spiffe_id_of(end_entity).as_ref() != Some(&self.expected) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An agent's client configuration: trusts the control plane by `trust`, presents
/// `key` when given (every call but the join).
pub fn agent_client_config(
    trust: ControlTrust,
    key: Option<Arc<ReloadableKey>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config(trust, berth_control::node_join::control_identity(), key)
}

/// The control plane's client configuration for one node's API: accepts only a server
/// proving `node` under the authority, presents the control plane's `key`.
pub fn node_client_config(
    authority_pem: &str,
    node: SpiffeId,
    key: Arc<ReloadableKey>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config(
        ControlTrust::Authority(authority_pem.to_string()),
        node,
        Some(key),
    )
}

/// The node API's server configuration: `key` (the node's certificate) presented, a
/// client certificate chaining to `authority_pem` required.
pub fn node_server_config(
    key: Arc<ReloadableKey>,
    authority_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config(key, authority_pem, false)
}

fn client_config(
    trust: ControlTrust,
    expected: SpiffeId,
    key: Option<Arc<ReloadableKey>>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = Arc::new(ControlVerifier { trust, expected });
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| err("the client configuration", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match key {
        Some(k) => builder.with_client_cert_resolver(k),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(cfg))
}
