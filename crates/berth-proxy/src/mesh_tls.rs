//! Mutual TLS between node proxies of the mesh, built from the control plane's
//! [`MeshTrust`] and [`MeshCertificate`]s (berth_model::mesh_identity).
//!
//! - [`MeshIdentities`]: the certificates of the services a node serves or calls from,
//!   swapped whole by [`MeshIdentities::replace`]. Handshakes read it as they start, so a
//!   rotation reaches new connections at once and leaves open ones alone.
//! - [`inbound_server_config`]: presents the certificate of the service the client names
//!   by SNI (`<service>.<namespace>.mesh`, [`SpiffeId::mesh_server_name`], or one
//!   endpoint's `<endpoint>.<service>.<namespace>.mesh` under it) and requires a client
//!   certificate chaining to the trust. [`peer_spiffe_id`] then says who called,
//!   for the called service's allow list.
//! - [`outbound_client_config`]: one configuration per caller and called service: it
//!   presents the caller's certificate and accepts a server only when its chain reaches
//!   the trust and its one URI SAN is exactly the called service's identity. The expected
//!   identity lives in the verifier rather than being read back from the SNI, because the
//!   SNI does not name the trust domain (`orders.internal.mesh` is the same name in every
//!   cluster) and a name-to-identity table would be a second source of truth. The
//!   configurations are a few `Arc`s; the outbound proxy keeps one per mesh target group
//!   and rebuilds them only when the trust changes.
//!
//! Choices: TLS 1.3 only (both ends are berth; the client's certificate travels
//! encrypted), ALPN `h2` and `http/1.1`, the ring provider, and no session resumption:
//! every connection verifies the certificates current at its handshake, so an identity
//! rotated out or a CA withdrawn never rides an old session. Mesh connections are pooled
//! and long-lived, so the extra full handshakes are few.
//!
//! SANs are read with rustls-webpki (`Cert::valid_uri_names`), the parser that already
//! verifies the chain, rather than a second X.509 parser.
//!
//! What it does not do: listen, dial, route or decide allow lists; it builds rustls
//! configurations and reads identities.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use berth_model::mesh_identity::{MeshCertificate, MeshTrust, SpiffeId};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

/// The protocols offered and accepted by ALPN between node proxies.
pub const MESH_ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What went wrong building the mesh's TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum MeshTlsError {
    /// The trust lists no CA certificate: nothing could be verified.
    #[error("mesh trust: caCertificatesPem lists no CA certificate")]
    EmptyTrust,
    /// One CA certificate of the trust does not load.
    #[error("mesh trust: caCertificatesPem[{index}] does not load: {reason}")]
    TrustCertificate { index: usize, reason: String },
    /// A service certificate or its key does not load, or they do not match.
    #[error("mesh certificate of {spiffe_id}: {field}: {reason}")]
    Certificate {
        spiffe_id: String,
        field: &'static str,
        reason: String,
    },
    /// Two certificates would answer the same SNI name, or one identity is listed twice.
    #[error("mesh certificates of {first} and {second} both answer for {server_name}")]
    ServerNameTaken {
        first: String,
        second: String,
        server_name: String,
    },
    /// A called service's server name is not a DNS name rustls accepts.
    #[error("mesh server name {server_name:?} of {spiffe_id} is not a DNS name")]
    ServerName {
        spiffe_id: String,
        server_name: String,
    },
    /// rustls refused the configuration.
    #[error("mesh TLS configuration: {reason}")]
    Config { reason: String },
    /// The server proved a certificate of the trust, but for someone else.
    #[error("the mesh peer presented {presented:?}, expected {expected}")]
    WrongPeer {
        expected: String,
        presented: Vec<String>,
    },
}

// === impl MeshIdentities ===

/// The certificates of the mesh identities a node holds, swappable as a whole.
#[derive(Default)]
pub struct MeshIdentities {
    current: ArcSwap<IdentitySet>,
}

#[derive(Default)]
struct IdentitySet {
    by_id: HashMap<SpiffeId, Arc<CertifiedKey>>,
    /// The same keys by [`SpiffeId::mesh_server_name`], for SNI.
    by_server_name: HashMap<String, Arc<CertifiedKey>>,
}

impl fmt::Debug for MeshIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.current.load();
        let mut ids: Vec<String> = set.by_id.keys().map(ToString::to_string).collect();
        ids.sort();
        f.debug_struct("MeshIdentities").field("ids", &ids).finish()
    }
}

impl MeshIdentities {
    /// No identity yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces every certificate with `certs`, all or nothing: on an error the previous
    /// set stays. Handshakes already started keep what they read; open connections are
    /// not touched.
    pub fn replace(&self, certs: &[MeshCertificate]) -> Result<(), MeshTlsError> {
        let mut set = IdentitySet::default();
        let mut names: HashMap<String, &SpiffeId> = HashMap::new();
        for c in certs {
            let key = certified_key(c)?;
            let server_name = c.spiffe_id.mesh_server_name();
            let taken = |first: &SpiffeId| MeshTlsError::ServerNameTaken {
                first: first.to_string(),
                second: c.spiffe_id.to_string(),
                server_name: server_name.clone(),
            };
            if let Some(first) = names.get(&server_name) {
                return Err(taken(first));
            }
            names.insert(server_name.clone(), &c.spiffe_id);
            set.by_id.insert(c.spiffe_id.clone(), key.clone());
            set.by_server_name.insert(server_name, key);
        }
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// Takes every certificate `other` holds now (loaded and checked by its
    /// [`MeshIdentities::replace`]), as one swap.
    pub fn take_from(&self, other: &MeshIdentities) {
        self.current.store(other.current.load_full());
    }

    /// The certificate and key of `id`, if held.
    pub fn certified_key(&self, id: &SpiffeId) -> Option<Arc<CertifiedKey>> {
        self.current.load().by_id.get(id).cloned()
    }

    /// The certificate answering for the SNI name `name` (lowercase): the service's own
    /// `<service>.<namespace>.mesh`, or an endpoint's `<endpoint>.<service>.<namespace>.mesh`
    /// under it.
    pub fn for_server_name(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let set = self.current.load();
        if let Some(k) = set.by_server_name.get(name) {
            return Some(k.clone());
        }
        let (_, service) = name.split_once('.')?;
        set.by_server_name.get(service).cloned()
    }

    /// The identities held, sorted.
    pub fn ids(&self) -> Vec<SpiffeId> {
        let mut ids: Vec<SpiffeId> = self.current.load().by_id.keys().cloned().collect();
        ids.sort();
        ids
    }
}

/// Loads and checks one certificate: chain, key, and that they belong together.
fn certified_key(c: &MeshCertificate) -> Result<Arc<CertifiedKey>, MeshTlsError> {
    let bad = |field: &'static str, reason: String| MeshTlsError::Certificate {
        spiffe_id: c.spiffe_id.to_string(),
        field,
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(c.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certChainPem", e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("certChainPem", "holds no certificate".into()));
    }
    let uris = uri_sans(&chain[0]).map_err(|e| bad("certChainPem", e.to_string()))?;
    if uris != [c.spiffe_id.to_string()] {
        return Err(bad(
            "certChainPem",
            format!("the certificate's URI SANs are {uris:?}"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(c.private_key_pem.as_bytes())
        .map_err(|e| bad("privateKeyPem", e.to_string()))?;
    let signer = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad("privateKeyPem", e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| {
        bad(
            "privateKeyPem",
            format!("is not the certificate's key: {e}"),
        )
    })?;
    Ok(Arc::new(ck))
}

/// The URI SANs of a certificate.
fn uri_sans(cert: &CertificateDer<'_>) -> Result<Vec<String>, webpki::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)?;
    Ok(ee.valid_uri_names().map(str::to_string).collect())
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn root_store(trust: &MeshTrust) -> Result<Arc<RootCertStore>, MeshTlsError> {
    if trust.ca_certificates_pem.is_empty() {
        return Err(MeshTlsError::EmptyTrust);
    }
    let mut roots = RootCertStore::empty();
    for (index, pem) in trust.ca_certificates_pem.iter().enumerate() {
        let bad = |reason: String| MeshTlsError::TrustCertificate { index, reason };
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
        roots.add(der).map_err(|e| bad(e.to_string()))?;
    }
    Ok(Arc::new(roots))
}

fn config_error(e: impl fmt::Display) -> MeshTlsError {
    MeshTlsError::Config {
        reason: e.to_string(),
    }
}

// === inbound ===

/// Picks the certificate of the service named by SNI; none (the handshake fails) for a
/// name the node does not serve or no SNI at all.
#[derive(Debug)]
struct SniIdentityResolver(Arc<MeshIdentities>);

impl ResolvesServerCert for SniIdentityResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.for_server_name(&name)
    }
}

/// The configuration of the node's inbound mesh listener: the certificate of the service
/// the client names by SNI, a client certificate chaining to `trust` required.
pub fn inbound_server_config(
    trust: &MeshTrust,
    identities: Arc<MeshIdentities>,
) -> Result<Arc<ServerConfig>, MeshTlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(root_store(trust)?, provider())
        .build()
        .map_err(config_error)?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SniIdentityResolver(identities)));
    cfg.alpn_protocols = MESH_ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// The identity of the peer of an established connection: the one URI SAN of its
/// certificate, when it is a SPIFFE id. On the inbound side that is the calling service
/// (its chain was verified during the handshake); `None` when the peer sent no
/// certificate, or one without exactly one SPIFFE URI SAN.
pub fn peer_spiffe_id(conn: &rustls::CommonState) -> Option<SpiffeId> {
    let leaf = conn.peer_certificates()?.first()?;
    match uri_sans(leaf).ok()?.as_slice() {
        [one] => one.parse().ok(),
        _ => None,
    }
}

// === outbound ===

/// The SNI name to dial `called` with, the one its certificate answers for.
pub fn mesh_server_name(called: &SpiffeId) -> Result<ServerName<'static>, MeshTlsError> {
    let server_name = called.mesh_server_name();
    ServerName::try_from(server_name.clone()).map_err(|_| MeshTlsError::ServerName {
        spiffe_id: called.to_string(),
        server_name,
    })
}

/// Presents the caller's current certificate at each handshake; none when the node does
/// not hold it (the server then refuses the connection).
#[derive(Debug)]
struct CallerCertificate {
    identities: Arc<MeshIdentities>,
    caller: SpiffeId,
}

impl ResolvesClientCert for CallerCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.identities.certified_key(&self.caller)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The webpki verifier (chain to the trust, validity, server use, and the called
/// service's DNS name whatever endpoint the SNI named), then the one URI SAN must be
/// exactly the called service's identity.
#[derive(Debug)]
struct ExactSpiffeIdVerifier {
    inner: Arc<WebPkiServerVerifier>,
    expected: SpiffeId,
}

impl ServerCertVerifier for ExactSpiffeIdVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The SNI names one endpoint (`<endpoint>.<service>.<namespace>.mesh`); the
        // certificate answers for its service, whose name is checked instead.
        let service_name = mesh_server_name(&self.expected)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
        self.inner.verify_server_cert(
            end_entity,
            intermediates,
            &service_name,
            ocsp_response,
            now,
        )?;
        let presented = uri_sans(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if presented != [self.expected.to_string()] {
            let e = MeshTlsError::WrongPeer {
                expected: self.expected.to_string(),
                presented,
            };
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(e)),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The configuration for connections from `caller` to `called`: presents `caller`'s
/// current certificate from `identities` and accepts only a server proving `called`
/// under `trust`. Dial with [`mesh_server_name`]`(called)`, or an endpoint's name under
/// it, as the server name.
pub fn outbound_client_config(
    trust: &MeshTrust,
    identities: Arc<MeshIdentities>,
    caller: &SpiffeId,
    called: &SpiffeId,
) -> Result<Arc<ClientConfig>, MeshTlsError> {
    mesh_server_name(called)?;
    let inner = WebPkiServerVerifier::builder_with_provider(root_store(trust)?, provider())
        .build()
        .map_err(config_error)?;
    let verifier = ExactSpiffeIdVerifier {
        inner,
        expected: called.clone(),
    };
    let mut cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(config_error)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(CallerCertificate {
            identities,
            caller: caller.clone(),
        }));
    cfg.alpn_protocols = MESH_ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    cfg.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests;
