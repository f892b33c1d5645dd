//! The mesh hop benchmark's configuration: one node's proxy serving both ends of a mesh
//! hop, as berth's control plane would configure it.
//!
//! A request goes client → the mesh listener (plain HTTP, one client alias) → the mesh
//! target group of that alias → mutual TLS 1.3 to the inbound listener of the target's
//! node (here the same proxy's, [`berth_proxy::Proxy::bind_mesh_inbound`]) → the backend.
//! [`MeshBenchCa`] stands in for the control plane's mesh authority: an ECDSA P-256 CA
//! made with rcgen at start, issuing SPIFFE certificates shaped as berth's are (URI SAN
//! the SPIFFE id, DNS SAN `<service>.<namespace>.mesh`).
//!
//! What it does not do: bind or serve anything (the `berth-bench-mesh` binary does), or
//! renew certificates (they are valid for the life of the benchmark).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_model::arn;
use berth_model::dataplane::{
    MeshCaller, MeshGroupSettings, MeshHop, MeshInboundEndpoint, MeshListener, MeshProtocol,
    MeshRoute, MeshTlsConfig, OutlierDetection, DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS,
    DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS,
};
use berth_model::elb::{TargetGroup, TargetHealthState};
use berth_model::mesh_identity::{AllowedCallers, MeshCertificate, MeshTrust, SpiffeId};
use berth_proxy::{Proxy, ProxyConfig, ProxyTarget, TargetGroupConfig};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;

/// The cluster (the SPIFFE trust domain) of every benchmark identity.
pub const MESH_CLUSTER: &str = "bench";
/// The Cloud Map namespace of the benchmark service.
pub const MESH_NAMESPACE: &str = "internal";
/// The called service and its discovery name.
pub const MESH_SERVICE: &str = "orders";
/// The calling service: the identity presented for connections from 127.0.0.1.
pub const MESH_CALLER_SERVICE: &str = "frontend";
/// The client alias's DNS name: the `Host` a benchmark request carries.
pub const MESH_ALIAS: &str = "orders.internal";
/// The mesh target group's name.
pub const MESH_TG_NAME: &str = "mesh-orders";

/// The identity of `service` in the benchmark's cluster and namespace.
pub fn mesh_identity(service: &str) -> Result<SpiffeId> {
    SpiffeId::for_service(MESH_CLUSTER, MESH_NAMESPACE, service)
        .with_context(|| format!("the SPIFFE id of service {service:?}"))
}

/// The TLS server name of the one endpoint: unique per endpoint (task and port), ending
/// in the service's `<service>.<namespace>.mesh`.
pub fn mesh_endpoint_server_name(backend: SocketAddr) -> Result<String> {
    Ok(format!(
        "tbench-{}.{}",
        backend.port(),
        mesh_identity(MESH_SERVICE)?.mesh_server_name()
    ))
}

/// A mesh certificate authority for the benchmark: ECDSA P-256, certificates without an
/// expiry that matters (rcgen's defaults), shaped as the control plane's mesh CA issues
/// them.
pub struct MeshBenchCa {
    cert: Certificate,
    key: KeyPair,
}

impl MeshBenchCa {
    pub fn new() -> Result<MeshBenchCa> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating the CA key")?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "berth benchmark mesh CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .context("self-signing the CA certificate")?;
        Ok(MeshBenchCa { cert, key })
    }

    /// The trust every proxy of the benchmark holds: this CA alone.
    pub fn trust(&self) -> MeshTrust {
        MeshTrust {
            ca_certificates_pem: vec![self.cert.pem()],
        }
    }

    /// A certificate and key for `id`, for both TLS client and server use.
    pub fn issue(&self, id: &SpiffeId) -> Result<MeshCertificate> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("generating a service key")?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::URI(
                id.to_string()
                    .try_into()
                    .context("the SPIFFE id as a URI SAN")?,
            ),
            SanType::DnsName(
                id.mesh_server_name()
                    .try_into()
                    .context("the mesh server name as a DNS SAN")?,
            ),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .with_context(|| format!("signing the certificate of {id}"))?;
        Ok(MeshCertificate {
            spiffe_id: id.clone(),
            cert_chain_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            not_before: 0.0,
            not_after: 0.0,
        })
    }
}

/// What the mesh benchmark's node looks like.
#[derive(Debug, Clone)]
pub struct MeshBenchConfig {
    /// The client alias's port (0 for one chosen by the system).
    pub listen_port: u16,
    /// The node's inbound mesh listener, already bound: the target's hop.
    pub inbound: SocketAddr,
    /// The one endpoint of the called service.
    pub backend: SocketAddr,
    /// The mesh target group's health check interval (5–300 s).
    pub health_interval_seconds: u32,
}

/// One node's mesh configuration: a mesh listener on `c.listen_port` with one HTTP alias
/// ([`MESH_ALIAS`]) forwarding to a mesh target group whose one target is `c.backend`,
/// reached through the hop at `c.inbound` over mutual TLS; the same node's inbound
/// listener serves that endpoint and forwards to `c.backend`. Connections from 127.0.0.1
/// call as [`MESH_CALLER_SERVICE`], the only caller the endpoint allows.
pub fn mesh_proxy_config(c: &MeshBenchConfig, ca: &MeshBenchCa) -> Result<ProxyConfig> {
    let called = mesh_identity(MESH_SERVICE)?;
    let caller = mesh_identity(MESH_CALLER_SERVICE)?;
    let node = mesh_identity("berth-node")?;
    let server_name = mesh_endpoint_server_name(c.backend)?;
    let tg_arn = arn::target_group(MESH_TG_NAME);

    let mut group: TargetGroup = serde_json::from_value(json!({
        "targetGroupName": MESH_TG_NAME,
        "protocol": "HTTP",
        "port": c.backend.port(),
        "targetType": "ip",
        "healthCheckPath": "/",
        "healthCheckIntervalSeconds": c.health_interval_seconds,
        "healthCheckTimeoutSeconds": 2,
        "healthyThresholdCount": 2,
        "unhealthyThresholdCount": 2,
        "attributes": { "deregistration_delay.timeout_seconds": "0" },
    }))
    .context("building the mesh target group")?;
    group.target_group_arn = tg_arn.clone();

    Ok(ProxyConfig {
        load_balancers: vec![],
        target_groups: vec![TargetGroupConfig {
            group,
            targets: vec![ProxyTarget {
                id: c.backend.ip().to_string(),
                port: c.backend.port() as u32,
                addr: c.backend,
                draining: false,
                mesh_hop: Some(MeshHop {
                    inbound: c.inbound,
                    server_name: server_name.clone(),
                    identity: called.clone(),
                }),
            }],
            mesh: Some(MeshGroupSettings {
                namespace: MESH_NAMESPACE.into(),
                discovery_name: MESH_SERVICE.into(),
                per_request_timeout_seconds: DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS,
                outlier_detection: OutlierDetection::default(),
            }),
        }],
        mesh_listeners: vec![MeshListener {
            port: c.listen_port,
            protocol: MeshProtocol::Http,
            routes: vec![MeshRoute {
                dns_name: MESH_ALIAS.into(),
                target_group_arn: tg_arn,
            }],
            idle_timeout_seconds: DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS,
        }],
        mesh_tls: Some(MeshTlsConfig {
            trust: ca.trust(),
            identities: vec![ca.issue(&called)?, ca.issue(&caller)?, ca.issue(&node)?],
            inbound: vec![MeshInboundEndpoint {
                server_name,
                identity: called,
                target: c.backend,
                protocol: MeshProtocol::Http,
                allowed_callers: AllowedCallers::Only(BTreeSet::from([caller.clone()])),
            }],
            callers: vec![MeshCaller {
                ip: "127.0.0.1".parse().expect("an IP literal"),
                identity: caller,
            }],
            node_identity: node,
        }),
    })
}

/// Waits until every target of `proxy` is healthy, woken by each status change; fails
/// after `timeout` naming each target's state.
pub async fn wait_healthy(proxy: &Proxy, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut changes = proxy.subscribe();
    loop {
        let statuses = proxy.target_statuses();
        if !statuses.is_empty()
            && statuses
                .iter()
                .all(|s| s.health.state == TargetHealthState::Healthy)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = statuses
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s.addr,
                        s.health.state.as_str(),
                        s.health.reason.as_deref().unwrap_or("")
                    )
                })
                .collect();
            bail!(
                "targets not healthy after {} s: {}",
                timeout.as_secs(),
                states.join(", ")
            );
        }
        // Woken by any status change; the timeout re-checks the deadline.
        let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve_backend;
    use berth_proxy::{mesh_listener_key, ProxyOptions};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn config_routes_the_alias_through_the_hop() {
        let ca = MeshBenchCa::new().unwrap();
        let c = MeshBenchConfig {
            listen_port: 0,
            inbound: "127.0.0.1:7".parse().unwrap(),
            backend: "127.0.0.1:9".parse().unwrap(),
            health_interval_seconds: 5,
        };
        let cfg = mesh_proxy_config(&c, &ca).unwrap();
        let tg = &cfg.target_groups[0];
        tg.group.validate().unwrap();
        let hop = tg.targets[0].mesh_hop.as_ref().unwrap();
        assert_eq!(hop.inbound, c.inbound);
        assert!(hop.server_name.ends_with(".orders.internal.mesh"));
        let tls = cfg.mesh_tls.as_ref().unwrap();
        assert_eq!(tls.inbound[0].server_name, hop.server_name);
        assert_eq!(tls.inbound[0].target, c.backend);
        assert_eq!(tls.identities.len(), 3);
        assert!(tls.inbound[0]
            .allowed_callers
            .allows(&tls.callers[0].identity));
        assert_eq!(
            cfg.mesh_listeners[0].routes[0].target_group_arn,
            tg.group.target_group_arn
        );
    }

    /// The benchmark path end to end: backend, the mesh listener, mutual TLS to the same
    /// proxy's inbound listener, one request with the alias as its host.
    #[tokio::test]
    async fn a_request_crosses_the_hop_to_the_backend() {
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend_addr = backend.local_addr().unwrap();
        tokio::spawn(serve_backend(backend));

        let registry = prometheus::Registry::new();
        let proxy = Proxy::new(ProxyOptions {
            bind_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: vec!["127.0.0.1".parse().unwrap()],
            registry: registry.clone(),
            data_plane_threads: 0,
        })
        .unwrap();
        let inbound = proxy
            .bind_mesh_inbound("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let ca = MeshBenchCa::new().unwrap();
        let c = MeshBenchConfig {
            listen_port: 0,
            inbound,
            backend: backend_addr,
            health_interval_seconds: 5,
        };
        let bound = proxy
            .apply(mesh_proxy_config(&c, &ca).unwrap())
            .await
            .unwrap();
        let addr = bound[&mesh_listener_key(0, "127.0.0.1".parse().unwrap())];

        wait_healthy(&proxy, Duration::from_secs(30))
            .await
            .expect("the backend becomes healthy");

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: orders.internal\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).await.unwrap();
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(
            resp.ends_with(std::str::from_utf8(crate::BACKEND_BODY).unwrap()),
            "{resp}"
        );
        // It went through the inbound listener, as the calling service.
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let inbound_line = text
            .lines()
            .find(|l| l.starts_with("berth_mesh_inbound_connections_total{"))
            .unwrap_or_else(|| panic!("no inbound connection counted:\n{text}"));
        assert!(
            inbound_line.contains("spiffe://bench/ns/internal/sa/frontend"),
            "{inbound_line}"
        );
        proxy.shutdown().await;
    }
}
