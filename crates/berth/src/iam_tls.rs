//! The API over TLS: the server configuration from `--tls-cert`/`--tls-key`, or from
//! berth's API authority with `--tls-self-signed`, and a listener that hands axum only
//! connections whose handshake finished.
//!
//! The API authority is a CA of its own kept in `<data-dir>/api-tls/` (`ca.pem`, and
//! `ca.key` readable by its owner only), or in the directory `--tls-authority` names,
//! which several servers may share (made once, whichever starts first; the others use
//! it); each start issues the API a certificate for `localhost`, 127.0.0.1, ::1, the
//! machine's host name, the `--api-addr` IP and every `--tls-name`. Clients trust
//! `ca.pem`, whose path the server prints. It is not the mesh's authority: that
//! one lives in the store (whoever reads the store could then impersonate the API) and
//! its certificates name SPIFFE identities, not host names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::iam_server::{create_whole, ApiSecurityArgs};
use crate::tls_names::certificate_name;

/// The API authority's directory under the data directory.
pub const API_TLS_DIR: &str = "api-tls";
/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("the API's TLS configuration")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the API's certificate and key")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The API's TLS configuration, or `None` when it is served in plain HTTP.
pub fn server_config(
    args: &ApiSecurityArgs,
    data_dir: &Path,
    api_addr: SocketAddr,
) -> Result<Option<Arc<rustls::ServerConfig>>> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("--tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(anyhow!(
                "--tls-cert {}: no certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow!("--tls-key {}: {e}", key.display()))?;
        return config(chain, key).map(Some);
    }
    if !args.tls_self_signed {
        return Ok(None);
    }
    let dir = args
        .self_signed
        .tls_authority
        .clone()
        .unwrap_or_else(|| data_dir.join(API_TLS_DIR));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (ca_cert, ca_key) = authority(&dir)?;
    let (cert_pem, key_pem) = issue(
        &ca_cert,
        &ca_key,
        api_addr.ip(),
        &args.self_signed.tls_names,
    )?;
    let mut chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("the API certificate: {e}"))?;
    chain.push(ca_cert.der().clone());
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow!("the API key: {e}"))?;
    println!(
        "berth api TLS authority: {} (clients trust it)",
        dir.join("ca.pem").display()
    );
    config(chain, key).map(Some)
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "berth");
    dn.push(DnType::CommonName, "berth API CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// The authority of `dir`, made on first use. The certificate is rebuilt from the kept
/// key and fixed parameters (same subject, same key), so what it signs chains to the
/// `ca.pem` written the first time. Servers starting together on a shared `dir` agree:
/// the key file appears whole or not at all and only the first to make it wins; the
/// others read it.
fn authority(dir: &Path) -> Result<(rcgen::Certificate, KeyPair)> {
    let key_path = dir.join("ca.key");
    let cert_path = dir.join("ca.pem");
    let read_key = || -> Result<KeyPair> {
        let pem = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        KeyPair::from_pem(&pem).map_err(|e| anyhow!("{}: {e}", key_path.display()))
    };
    let key = if key_path.exists() {
        read_key()?
    } else {
        let key = KeyPair::generate()?;
        match create_whole(&key_path, key.serialize_pem().as_bytes(), 0o600) {
            Ok(()) => {
                // A ca.pem left beside no key is of another authority.
                let _ = std::fs::remove_file(&cert_path);
                key
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_key()?,
            Err(e) => return Err(anyhow!("creating {}: {e}", key_path.display())),
        }
    };
    let cert = ca_params()?.self_signed(&key)?;
    if !cert_path.exists() {
        // Whole or not at all, so that a client never reads half of it; another server
        // of the shared directory may have written it meanwhile (from the same key).
        match create_whole(&cert_path, cert.pem().as_bytes(), 0o644) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(anyhow!("writing {}: {e}", cert_path.display())),
        }
    }
    Ok((cert, key))
}

/// A certificate for the API, signed by the authority, valid for the usual local names,
/// `ip` and `extra` (host names or IP addresses).
fn issue(
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
    ip: IpAddr,
    extra: &[String],
) -> Result<(String, String)> {
    let mut names = vec!["localhost".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" {
            names.push(host.to_string());
        }
    }
    let mut extra_ips = Vec::new();
    for name in extra {
        match certificate_name(name)? {
            SanType::IpAddress(ip) => extra_ips.push(ip),
            _ if names.contains(name) => {}
            _ => names.push(name.clone()),
        }
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "berth API");
    params.distinguished_name = dn;
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    for ip in std::iter::once(ip).chain(extra_ips) {
        if !ip.is_unspecified() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca, ca_key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A listener of TLS connections for `axum::serve`: handshakes run beside each other,
/// and a client that never finishes one is dropped after [`HANDSHAKE_TIMEOUT`].
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors, say: back off instead of spinning.
                        tracing::warn!(error = %e, "API accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "API TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "API TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};
    use std::collections::BTreeSet;

    /// Whether `cert_pem` verifies as `name` against the `ca.pem` of `dir`.
    fn verifies(dir: &Path, cert_pem: &str, name: &str) -> bool {
        let mut roots = rustls::RootCertStore::empty();
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        for c in CertificateDer::pem_slice_iter(&ca) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn servers_sharing_an_authority_directory_present_certificates_one_ca_pem_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "0.0.0.0".parse().unwrap();
        // Several servers starting together on the shared directory.
        let issued: Vec<(String, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let dir = dir.path();
                    s.spawn(move || {
                        let (ca, key) = authority(dir).unwrap();
                        let names = [format!("server-{i}"), "10.1.2.3".to_string()];
                        issue(&ca, &key, ip, &names).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let files: BTreeSet<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, BTreeSet::from(["ca.key".into(), "ca.pem".into()]));
        for (i, (cert, _)) in issued.iter().enumerate() {
            assert!(
                verifies(dir.path(), cert, &format!("server-{i}")),
                "server-{i}"
            );
            assert!(verifies(dir.path(), cert, "localhost"));
            assert!(verifies(dir.path(), cert, "10.1.2.3"));
            assert!(!verifies(dir.path(), cert, "elsewhere"));
        }
    }

    #[test]
    fn a_tls_name_that_is_neither_a_host_name_nor_an_ip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, key) = authority(dir.path()).unwrap();
        let e = issue(
            &ca,
            &key,
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            &["a b".into()],
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("--tls-name \"a b\""), "{e}");
    }
}
