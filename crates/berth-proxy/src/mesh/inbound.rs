//! The node's inbound mesh listener: where other nodes' proxies (and this node's own)
//! bring mesh requests for the endpoints running here, over mutual TLS.
//!
//! Per connection: a TLS 1.3 handshake presenting the certificate of the service the SNI
//! names (by its `<service>.<namespace>.mesh` suffix) and requiring a client certificate
//! of the mesh's trust; the SNI is looked up among the node's inbound endpoints (unknown:
//! the connection closes); the caller's SPIFFE id is checked against the endpoint's allow
//! list (denied: HTTP endpoints answer 403 to every request on the connection, TCP
//! endpoints close); else the connection's bytes are copied to and from the endpoint's
//! target until either side closes. The allowed path parses no HTTP: the calling proxy
//! already did the HTTP work.
//!
//! Until a configuration with mesh TLS is applied, connections are closed at once.
//!
//! What it does not do: bind (the crate root does, [`crate::Proxy::bind_mesh_inbound`]),
//! choose targets, retry, or health check.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use berth_model::dataplane::{MeshProtocol, MeshTlsConfig};
use berth_model::mesh_identity::{AllowedCallers, SpiffeId};
use bytes::Bytes;
use http_body_util::Full;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::error::ProxyError;
use crate::mesh_tls::{inbound_server_config, peer_spiffe_id, MeshIdentities};

/// How long a peer may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to an endpoint's task may take.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The body of the answer to a caller the allow list does not name.
const DENIED_BODY: &str = "mesh caller not allowed\n";

/// The mesh TLS metrics of a node.
pub(crate) struct MeshTlsMetrics {
    /// `berth_mesh_denied_total{namespace, service, caller}`.
    denied: IntCounterVec,
    /// `berth_mesh_inbound_connections_total{namespace, service, caller}`.
    accepted: IntCounterVec,
    /// `berth_mesh_tls_handshake_failures_total{side}`.
    handshake_failures: IntCounterVec,
}

impl MeshTlsMetrics {
    pub(crate) fn new(registry: &Registry) -> MeshTlsMetrics {
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition");
            // Registering twice (a second proxy on one registry) keeps the first.
            let _ = registry.register(Box::new(v.clone()));
            v
        };
        MeshTlsMetrics {
            denied: vec(
                "berth_mesh_denied_total",
                "Mesh connections refused because the caller is not on the service's allow list",
                &["namespace", "service", "caller"],
            ),
            accepted: vec(
                "berth_mesh_inbound_connections_total",
                "Mesh connections the inbound listener forwarded to an endpoint, by caller",
                &["namespace", "service", "caller"],
            ),
            handshake_failures: vec(
                "berth_mesh_tls_handshake_failures_total",
                "Mutual TLS handshakes between mesh proxies that failed",
                &["side"],
            ),
        }
    }

    /// The outbound side's handshake failure counter.
    pub(crate) fn outbound_handshake_failures(&self) -> IntCounter {
        self.handshake_failures.with_label_values(&["outbound"])
    }
}

/// One endpoint as the inbound listener serves it.
struct Endpoint {
    target: SocketAddr,
    protocol: MeshProtocol,
    allowed: AllowedCallers,
    identity: SpiffeId,
}

/// The inbound side compiled from one configuration.
pub(crate) struct InboundState {
    acceptor: TlsAcceptor,
    /// By server name, lowercase.
    endpoints: HashMap<String, Endpoint>,
}

impl InboundState {
    /// Compiles `cfg`'s inbound side; the certificates come from `identities` at each
    /// handshake.
    pub(crate) fn compile(
        cfg: &MeshTlsConfig,
        identities: Arc<MeshIdentities>,
    ) -> Result<InboundState, ProxyError> {
        let server = inbound_server_config(&cfg.trust, identities)
            .map_err(|source| ProxyError::MeshTls { source })?;
        let mut endpoints = HashMap::new();
        for e in &cfg.inbound {
            let name = e.server_name.to_ascii_lowercase();
            let endpoint = Endpoint {
                target: e.target,
                protocol: e.protocol,
                allowed: e.allowed_callers.clone(),
                identity: e.identity.clone(),
            };
            if endpoints.insert(name, endpoint).is_some() {
                return Err(ProxyError::config(
                    "meshTls.inbound",
                    format!("serverName {} is listed twice", e.server_name),
                ));
            }
        }
        Ok(InboundState {
            acceptor: TlsAcceptor::from(server),
            endpoints,
        })
    }
}

/// What the inbound listeners share: the current state (none before mesh TLS is
/// configured) and the metrics.
pub(crate) struct InboundShared {
    pub(crate) state: ArcSwapOption<InboundState>,
    pub(crate) metrics: MeshTlsMetrics,
}

/// Accepts connections on `listener` until the task is aborted.
pub(crate) fn spawn(
    listener: TcpListener,
    shared: Arc<InboundShared>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "mesh inbound accept failed");
                    // Out of descriptors and the like: let the condition pass.
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                serve(tcp, peer, &shared).await;
            });
        }
    })
}

async fn serve(tcp: TcpStream, peer: SocketAddr, shared: &InboundShared) {
    let Some(state) = shared.state.load_full() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, state.acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "mesh inbound handshake failed");
            shared
                .metrics
                .handshake_failures
                .with_label_values(&["inbound"])
                .inc();
            return;
        }
        Err(_) => {
            shared
                .metrics
                .handshake_failures
                .with_label_values(&["inbound"])
                .inc();
            return;
        }
    };
    let conn = tls.get_ref().1;
    // The endpoints as of now: a configuration applied during the handshake counts.
    let state = shared.state.load_full().unwrap_or(state);
    let Some(endpoint) = conn
        .server_name()
        .and_then(|n| state.endpoints.get(&n.to_ascii_lowercase()))
    else {
        tracing::debug!(%peer, sni = ?conn.server_name(), "mesh inbound: unknown server name");
        return;
    };
    let Some(caller) = peer_spiffe_id(conn) else {
        return;
    };
    let labels = [
        endpoint.identity.namespace(),
        endpoint.identity.service(),
        &caller.to_string(),
    ];
    if !endpoint.allowed.allows(&caller) {
        tracing::debug!(%peer, %caller, called = %endpoint.identity, "mesh caller denied");
        shared.metrics.denied.with_label_values(&labels).inc();
        if endpoint.protocol == MeshProtocol::Http {
            deny_http(tls).await;
        }
        return;
    }
    shared.metrics.accepted.with_label_values(&labels).inc();
    let target = endpoint.target;
    let mut upstream =
        match tokio::time::timeout(TARGET_CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%target, error = %e, "mesh endpoint connection failed");
                return;
            }
            Err(_) => return,
        };
    let _ = upstream.set_nodelay(true);
    let mut tls = tls;
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
}

/// Answers 403 to every request on the connection (HTTP/1.1 or h2, as ALPN agreed), and
/// closes it.
async fn deny_http(tls: tokio_rustls::server::TlsStream<TcpStream>) {
    let svc = hyper::service::service_fn(|_req| async {
        let resp = http::Response::builder()
            .status(http::StatusCode::FORBIDDEN)
            .header(http::header::CONTENT_TYPE, "text/plain")
            .header(http::header::CONNECTION, "close")
            .body(Full::new(Bytes::from_static(DENIED_BODY.as_bytes())))
            .expect("static response");
        Ok::<_, Infallible>(resp)
    });
    let builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    let io = hyper_util::rt::TokioIo::new(tls);
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, builder.serve_connection(io, svc)).await;
}
