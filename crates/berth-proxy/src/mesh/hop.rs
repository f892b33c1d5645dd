//! The outbound half of mutual TLS in the mesh: a mesh target with a [`MeshHop`] is
//! reached through the inbound listener of its node, over TLS 1.3, presenting the
//! calling task's identity and accepting only the called service's.
//!
//! - [`MeshOutbound`]: the node's side of it, shared by every mesh target: the
//!   identities (swapped by the crate root on each configuration), the trust, the callers
//!   by source IP and the node identity for everyone else.
//! - [`HopDialer`]: one target's hop. Connections are kept per caller identity
//!   ([`Lane`]): a pooled connection carries the certificate of the caller it was opened
//!   for, so it is only reused for that caller. A lane remembers the trust it was built
//!   with and is rebuilt when the trust changes; new identities need no rebuild (the
//!   client certificate is read at each handshake).
//! - [`UpConn`]: a raw upstream connection, plain, over TLS to an HTTPS target or over
//!   the hop, for the HTTP/1.1 fast path and the stream path.
//!
//! What it does not do: choose targets, speak HTTP, or serve the inbound side
//! ([`super::inbound`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::pool::idle::IdleQueue;
use arc_swap::{ArcSwap, ArcSwapOption};
use berth_model::dataplane::{MeshHop, MeshTlsConfig};
use berth_model::mesh_identity::{MeshTrust, SpiffeId};
use hyper::client::conn::{http1, http2};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::mesh_tls::{outbound_client_config, MeshIdentities};
use crate::up_body::UpBody;

/// Idle connections kept per caller of one target; more are closed when returned.
const MAX_IDLE_PER_LANE: usize = 64;

/// What the outbound side knows of the node's mesh TLS: swapped whole on each
/// configuration.
struct OutboundState {
    trust: MeshTrust,
    /// Bumped when the trust changes: lanes built under an older one are rebuilt.
    trust_generation: u64,
    callers: HashMap<IpAddr, SpiffeId>,
    node_identity: SpiffeId,
}

/// The node's outbound mesh TLS, shared by every mesh target.
pub(crate) struct MeshOutbound {
    pub(crate) identities: Arc<MeshIdentities>,
    state: ArcSwapOption<OutboundState>,
    generation: AtomicU64,
    /// `berth_mesh_tls_handshake_failures_total{side="outbound"}`.
    pub(crate) handshake_failures: prometheus::IntCounter,
}

impl MeshOutbound {
    pub(crate) fn new(
        identities: Arc<MeshIdentities>,
        handshake_failures: prometheus::IntCounter,
    ) -> MeshOutbound {
        MeshOutbound {
            identities,
            state: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            handshake_failures,
        }
    }

    /// Takes the trust, callers and node identity of `cfg` (`None`: the mesh runs in
    /// plaintext).
    pub(crate) fn set(&self, cfg: Option<&MeshTlsConfig>) {
        let Some(cfg) = cfg else {
            self.state.store(None);
            return;
        };
        let old = self.state.load();
        let trust_generation = match old.as_ref() {
            Some(o) if o.trust == cfg.trust => o.trust_generation,
            _ => self.generation.fetch_add(1, Ordering::Relaxed) + 1,
        };
        self.state.store(Some(Arc::new(OutboundState {
            trust: cfg.trust.clone(),
            trust_generation,
            callers: cfg
                .callers
                .iter()
                .map(|c| (c.ip, c.identity.clone()))
                .collect(),
            node_identity: cfg.node_identity.clone(),
        })));
    }
}

/// Why no connection over the hop could be had.
#[derive(Debug)]
pub(crate) enum HopError {
    /// The node has no mesh TLS configuration (yet), or the caller's configuration does
    /// not build.
    NotConfigured(String),
    Connect(io::Error),
    Timeout,
    Handshake(io::Error),
}

impl std::fmt::Display for HopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HopError::NotConfigured(why) => write!(f, "mesh TLS: {why}"),
            HopError::Connect(e) => write!(f, "connect to the mesh inbound listener: {e}"),
            HopError::Timeout => write!(f, "connect to the mesh inbound listener timed out"),
            HopError::Handshake(e) => write!(f, "mesh TLS handshake: {e}"),
        }
    }
}

/// One caller's connections to one target.
pub(crate) struct Lane {
    trust_generation: u64,
    connector: TlsConnector,
    /// Idle connections of the fast path and hyper's idle HTTP/1.1 senders.
    pub(crate) raw: IdleQueue<TlsStream<TcpStream>>,
    pub(crate) idle: IdleQueue<http1::SendRequest<UpBody>>,
    pub(crate) h2_conn: ArcSwapOption<http2::SendRequest<UpBody>>,
}

/// One target's hop: where to dial, what to send, whom to accept.
pub(crate) struct HopDialer {
    pub(crate) hop: MeshHop,
    server_name: ServerName<'static>,
    /// ALPN `h2` rather than `http/1.1`.
    h2: bool,
    outbound: Arc<MeshOutbound>,
    lanes: ArcSwap<HashMap<SpiffeId, Arc<Lane>>>,
}

impl HopDialer {
    /// A dialer for `hop`; `None` when its server name is not a DNS name.
    pub(crate) fn new(hop: &MeshHop, h2: bool, outbound: Arc<MeshOutbound>) -> Option<HopDialer> {
        let server_name = ServerName::try_from(hop.server_name.clone()).ok()?;
        Some(HopDialer {
            hop: hop.clone(),
            server_name,
            h2,
            outbound,
            lanes: ArcSwap::from_pointee(HashMap::new()),
        })
    }

    /// Whether this dialer dials `hop` the same way.
    pub(crate) fn is_for(&self, hop: &MeshHop, h2: bool, outbound: &Arc<MeshOutbound>) -> bool {
        self.hop == *hop && self.h2 == h2 && Arc::ptr_eq(&self.outbound, outbound)
    }

    /// Drops every idle connection.
    pub(crate) fn clear(&self) {
        self.lanes.store(Arc::new(HashMap::new()));
    }

    /// The lane of the task calling from `peer` (the node identity's for a source that
    /// is no caller's), built or rebuilt as needed.
    pub(crate) fn lane(&self, peer: IpAddr) -> Result<Arc<Lane>, HopError> {
        let state = self.outbound.state.load_full().ok_or_else(|| {
            HopError::NotConfigured("the node has no mesh TLS configuration".into())
        })?;
        let caller = state.callers.get(&peer).unwrap_or(&state.node_identity);
        if let Some(l) = self.lanes.load().get(caller) {
            if l.trust_generation == state.trust_generation {
                return Ok(l.clone());
            }
        }
        let cfg = outbound_client_config(
            &state.trust,
            self.outbound.identities.clone(),
            caller,
            &self.hop.identity,
        )
        .map_err(|e| HopError::NotConfigured(e.to_string()))?;
        let mut cfg = (*cfg).clone();
        cfg.alpn_protocols = vec![if self.h2 {
            b"h2".to_vec()
        } else {
            b"http/1.1".to_vec()
        }];
        let lane = Arc::new(Lane {
            trust_generation: state.trust_generation,
            connector: TlsConnector::from(Arc::new(cfg)),
            raw: IdleQueue::new(MAX_IDLE_PER_LANE),
            idle: IdleQueue::new(MAX_IDLE_PER_LANE),
            h2_conn: ArcSwapOption::empty(),
        });
        self.lanes.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(caller.clone(), lane.clone());
            m
        });
        Ok(lane)
    }

    /// A new connection over the hop for `lane`'s caller.
    pub(crate) async fn connect(
        &self,
        lane: &Lane,
        connect_timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, HopError> {
        let dial = async {
            let tcp = TcpStream::connect(self.hop.inbound)
                .await
                .map_err(HopError::Connect)?;
            let _ = tcp.set_nodelay(true);
            lane.connector
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| {
                    self.outbound.handshake_failures.inc();
                    HopError::Handshake(e)
                })
        };
        match tokio::time::timeout(connect_timeout, dial).await {
            Ok(r) => r,
            Err(_) => Err(HopError::Timeout),
        }
    }
}

/// A raw connection to a target: plain, over TLS to a target of an HTTPS target group,
/// or over a mesh hop (with the lane it goes back to when idle).
pub(crate) enum UpConn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Mesh(Box<TlsStream<TcpStream>>, Arc<Lane>),
}

impl UpConn {
    /// Whether the target closed the idle connection (or wrote to it unasked). Reads the
    /// socket only when the runtime saw it become readable.
    pub(crate) fn is_stale(&self) -> bool {
        let tcp = match self {
            UpConn::Plain(s) => s,
            UpConn::Tls(s) | UpConn::Mesh(s, _) => s.get_ref().0,
        };
        let mut b = [0u8; 1];
        !matches!(tcp.try_read(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for UpConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpConn::Tls(s) | UpConn::Mesh(s, _) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpConn::Tls(s) | UpConn::Mesh(s, _) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_flush(cx),
            UpConn::Tls(s) | UpConn::Mesh(s, _) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpConn::Tls(s) | UpConn::Mesh(s, _) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
