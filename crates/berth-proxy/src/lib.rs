//! berth-proxy: the data plane. An ALB/NLB-class load balancer that berth's control
//! plane configures with immutable snapshots ([`ProxyConfig`]) and that reports target
//! health back ([`Proxy::target_statuses`], [`Proxy::subscribe`]).
//!
//! What it does:
//! - Listeners bound, changed and closed at run time without touching the others: HTTP
//!   (HTTP/1.1 keep-alive and h2c), HTTPS (rustls, certificate by SNI, ALPN h2/http1.1,
//!   TLS 1.2/1.3), and NLB TCP and TLS listeners forwarding byte streams, optionally with a
//!   proxy protocol v2 header.
//! - Rules in priority order with host-header, path-pattern, http-header,
//!   http-request-method, query-string and source-ip conditions; forward (weighted target
//!   groups, `AWSALBTG` group stickiness), redirect and fixed-response actions.
//! - Target groups with active HTTP, HTTPS, TCP and gRPC health checks and ALB's states
//!   and reason codes, fail-open, draining that ends when nothing is in flight or the deregistration delay
//!   runs out, passive ejection and retry on connection failure, round robin, least
//!   outstanding requests, weighted random and peak-EWMA (P2C) balancing, slow start,
//!   `AWSALB`/app-cookie/source-IP stickiness, pooled keep-alive HTTP/1.1 or multiplexed
//!   HTTP/2 connections to targets (`protocolVersion` HTTP2/GRPC, trailers passed through),
//!   TLS to HTTPS target groups (target certificates are not validated, as on an ALB),
//!   a retry budget of 20% of requests.
//! - X-Forwarded-For (append/preserve/remove), -Proto and -Port; hop-by-hop headers
//!   removed; idle timeout, header read timeout and header size limit; WebSocket upgrades;
//!   ELB-generated 502/503/504; a per-listener connection limit (`berth.max_connections`)
//!   and a per-client-address one (`berth.max_connections_per_client`).
//! - The edge (see the `edge` and `framing` modules): every HTTP/1 request is checked
//!   against RFC 9110/9112 before any byte of it reaches a target; a broken rule is
//!   answered 400, 405, 408, 413, 414, 431, 501 or 505. HTTP/2 connections get limits on
//!   concurrent streams, header list size, reset streams and keep-alive pings.
//! - Prometheus metrics mirroring ALB's CloudWatch metrics (see the `metrics` module).
//! - The service mesh's outbound side (see the `mesh` module): client-alias listeners
//!   ([`ProxyConfig::mesh_listeners`]) bound on each of the node's mesh addresses
//!   ([`ProxyOptions::mesh_ips`]), HTTP routed by host or TCP, forwarding to mesh target
//!   groups with a per-request timeout, retries on 503 and refused streams, outlier
//!   ejection and Service Connect's metrics.
//! - Mutual TLS between node proxies ([`ProxyConfig::mesh_tls`]): the node's inbound
//!   listener ([`Proxy::bind_mesh_inbound`]) serves the endpoints running here to callers
//!   their allow lists name, and mesh targets with a hop are reached through their node's
//!   inbound listener, presenting the calling task's identity (see [`mesh_tls`]).
//!
//! What it does not do: it never reads the store or talks to the control plane, and it does
//! not register targets (the control plane hands it targets). UDP listeners are not
//! implemented.
//!
//! The request path takes no lock: listeners route on an arc-swap snapshot of their rules,
//! target groups publish their routable targets as an arc-swap snapshot, per-target
//! counters are atomics and idle upstream connections sit in a short mutex-guarded queue
//! per target and data plane thread.
//!
//! Layout, from the top down (a module uses only modules on lines below its own):
//! - [`config`]: [`ProxyConfig`] in, [`TargetStatus`] out; this file applies it.
//! - `mesh`: the mesh; its submodules sit at four levels: `listeners` (mesh listeners
//!   compiled into listeners and rules) and `inbound` (the node's mutual TLS inbound
//!   listener), used by this file; `outlier` (used by `attempt`); `endpoint` and
//!   `metrics` (what a mesh group carries, used by `group` and below); `hop` (connections
//!   through a target's node's inbound listener, used by `pool`).
//! - `listener`: bind, accept, connection limit and tracking, TLS and ALPN dispatch,
//!   connections handed between data plane threads.
//! - `fast_h1`: the HTTP/1.1 fast path (its own codec, one task per connection);
//!   `hyper_path`: every other HTTP request (HTTP/2, upgrades, streamed bodies, fixed
//!   responses, redirects); `stream`: NLB listeners, byte streams, proxy protocol v2.
//! - `splice`: the two-way copy of upgraded and TCP connections; `read_buffers`: the
//!   per-thread pool of read buffers that quiet connections give back.
//! - `attempt`: the request engine the three paths share: excluded targets, attempt
//!   count, retry budget, failure classification.
//! - `sticky`: stickiness cookies and source-IP affinity; `elb_error`: responses the
//!   load balancer generates.
//! - `context`: what requests see of their listener and client connection.
//! - `forwarded`: X-Forwarded-* and hop-by-hop headers; `framing`: the edge gate
//!   hyper reads client bytes through; `edge`: the HTTP/1.1 rules a request must pass
//!   (RFC 9110/9112) and the status each broken rule gets.
//! - `rules`: rule conditions and actions compiled for matching.
//! - `group`: target groups: targets, routable snapshot, algorithms.
//! - `health`: active health checks.
//! - `group_settings`: a group's settings compiled from the model; `retry_budget`: a
//!   group's retry tokens.
//! - `body`: the response body streamed back to clients; `raw_body`: a target's HTTP/1.1
//!   response body read from its raw pooled connection.
//! - `target`: one target's atomics: health, draining gate, in-flight, ejection, latency.
//! - `pool`: upstream connections; `up_body`: the body of a request sent to a target.
//! - [`mesh_tls`]: mutual TLS between mesh proxies: certificates by SNI, SPIFFE checks.
//! - `tls`: certificates, SNI selection, ALPN; `metrics`: Prometheus metrics and their
//!   ALB counterparts; `h1_codec`: HTTP/1.1 at the byte level; `clock`, `notify`, `error`.
//! - `workers`: the data plane threads ([`ProxyOptions::data_plane_threads`]), each a
//!   single-threaded runtime, and their connection counts.

mod attempt;
#[doc(hidden)]
pub mod bench;
mod body;
mod clock;
pub mod config;
mod context;
mod edge;
mod elb_error;
mod error;
mod fast_h1;
mod forwarded;
mod framing;
#[doc(hidden)]
pub mod fuzzing;
mod group;
mod group_settings;
mod h1_codec;
mod health;
mod hyper_path;
mod idle_set;
mod inherit;
mod listener;
mod mesh;
pub mod mesh_tls;
mod metrics;
mod notify;
mod pool;
mod raw_body;
mod read_buffers;
mod retry_budget;
mod rules;
mod splice;
mod sticky;
mod stream;
mod target;
mod tls;
mod up_body;
mod workers;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use berth_model::elb::{LoadBalancerType, Protocol};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use crate::config::{ProxyConfig, ProxyTarget, TargetGroupConfig, TargetStatus};

/// Loads every certificate of `listener` as [`Proxy::apply`] would, binding nothing, so
/// a control plane can refuse certificates that do not load before it stores them.
pub fn check_certificates(listener: &berth_model::elb::Listener) -> Result<(), ProxyError> {
    for c in &listener.certificates {
        tls::load(c, &listener.listener_arn)?;
    }
    Ok(())
}
pub use crate::error::ProxyError;
pub use crate::inherit::{ListeningSocket, SocketRole};
pub use crate::mesh::listeners::mesh_listener_key;

use crate::clock::Clock;
use crate::context::{ListenerShared, Mode, Routes};
use crate::forwarded::XffMode;
use crate::group::GroupRuntime;
use crate::group_settings::GroupSettings;
use crate::listener::RunningListener;
use crate::mesh::hop::MeshOutbound;
use crate::mesh::inbound::{InboundShared, InboundState, MeshTlsMetrics};
use crate::mesh::{MeshGroup, MeshMetricsFamilies};
use crate::mesh_tls::MeshIdentities;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::rules::RuleSet;
use crate::workers::Workers;

/// Open client connections per listener when `berth.max_connections` is not set.
pub const DEFAULT_MAX_CONNECTIONS: i64 = 100_000;
/// Open client connections per listener from one client address when
/// `berth.max_connections_per_client` is not set.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: u32 = 1_000;
/// How long a client may take to send a request's head when
/// `berth.header_timeout_seconds` is not set.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration =
    Duration::from_secs(berth_model::elb_attributes::DEFAULT_HEADER_TIMEOUT_SECONDS as u64);

/// How the proxy is set up.
pub struct ProxyOptions {
    /// The address every load balancer listener binds on.
    pub bind_ip: IpAddr,
    /// The addresses the node's mesh proxy listens on (e.g. 127.0.0.1 and the Docker
    /// bridge's gateway): each mesh listener binds its port on every one of them. Empty:
    /// mesh listeners are checked but not served.
    pub mesh_ips: Vec<IpAddr>,
    /// Where the proxy registers its metrics.
    pub registry: prometheus::Registry,
    /// Threads that serve the listeners' connections, each on its own single-threaded
    /// runtime (see the `workers` module); 0 serves them on the runtime that applies the
    /// configuration. [`ProxyOptions::new`] sets 0.
    pub data_plane_threads: usize,
}

impl ProxyOptions {
    /// Listeners on `bind_ip`, no mesh addresses, connections served on the runtime
    /// that applies the configuration.
    pub fn new(bind_ip: IpAddr, registry: prometheus::Registry) -> ProxyOptions {
        ProxyOptions {
            bind_ip,
            mesh_ips: Vec::new(),
            registry,
            data_plane_threads: 0,
        }
    }
}

/// The data plane. Cheap to share as `Arc<Proxy>`.
pub struct Proxy {
    bind_ip: IpAddr,
    mesh_ips: Vec<IpAddr>,
    metrics: Metrics,
    mesh_metrics: MeshMetricsFamilies,
    notifier: Notifier,
    clock: Clock,
    state: tokio::sync::Mutex<State>,
    /// The target groups, for [`Proxy::target_statuses`] without the state lock.
    groups_view: ArcSwap<Vec<Arc<GroupRuntime>>>,
    shut_down: AtomicBool,
    /// The certificates of the mesh identities this node holds, shared by both sides.
    mesh_identities: Arc<MeshIdentities>,
    mesh_outbound: Arc<MeshOutbound>,
    mesh_inbound: Arc<InboundShared>,
    /// The inbound mesh listeners: their accept loops and a descriptor of each socket.
    inbound_tasks: std::sync::Mutex<Vec<inherit::InboundListener>>,
    /// The threads serving the listeners' connections (none: the applying runtime).
    workers: Workers,
}

#[derive(Default)]
struct State {
    listeners: HashMap<String, ListenerEntry>,
    groups: HashMap<String, Arc<GroupRuntime>>,
    closing: Vec<tokio::task::JoinHandle<()>>,
    /// Listening sockets handed over by another process, by listener key, for the next
    /// [`Proxy::apply`] to serve instead of binding ([`Proxy::adopt_listeners`]).
    adopted: HashMap<String, std::net::TcpListener>,
}

struct ListenerEntry {
    running: RunningListener,
    /// The configured port and protocol: a change of either rebinds.
    port: u32,
    lb_name: String,
}

/// A listener compiled from the configuration, not yet installed: a load balancer's
/// listener, or a mesh listener on one of the mesh addresses.
pub(crate) struct PlannedListener {
    /// The listener's ARN, or a mesh listener's key ([`mesh_listener_key`]).
    pub(crate) arn: String,
    pub(crate) lb_name: String,
    pub(crate) port: u32,
    /// The address to bind on.
    pub(crate) ip: IpAddr,
    /// Set for a mesh listener: its port, which a bind failure names.
    pub(crate) mesh_port: Option<u16>,
    pub(crate) mode: Mode,
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    pub(crate) routes: Routes,
}

impl Proxy {
    /// A proxy serving nothing yet. Fails only when its worker threads cannot start.
    pub fn new(opts: ProxyOptions) -> Result<Arc<Proxy>, ProxyError> {
        let workers =
            Workers::start(opts.data_plane_threads, &opts.registry).map_err(ProxyError::Workers)?;
        let mesh_identities = Arc::new(MeshIdentities::new());
        let tls_metrics = MeshTlsMetrics::new(&opts.registry);
        let mesh_outbound = Arc::new(MeshOutbound::new(
            mesh_identities.clone(),
            tls_metrics.outbound_handshake_failures(),
        ));
        Ok(Arc::new(Proxy {
            bind_ip: opts.bind_ip,
            mesh_ips: {
                // Each address once: a listener binds its port on each.
                let mut seen = HashSet::new();
                let mut ips = opts.mesh_ips;
                ips.retain(|ip| seen.insert(*ip));
                ips
            },
            metrics: Metrics::new(&opts.registry),
            mesh_metrics: MeshMetricsFamilies::new(&opts.registry),
            notifier: Notifier::new(),
            clock: Clock::new(),
            state: tokio::sync::Mutex::new(State::default()),
            groups_view: ArcSwap::from_pointee(Vec::new()),
            shut_down: AtomicBool::new(false),
            mesh_identities,
            mesh_outbound,
            mesh_inbound: Arc::new(InboundShared {
                state: arc_swap::ArcSwapOption::empty(),
                metrics: tls_metrics,
            }),
            inbound_tasks: std::sync::Mutex::new(Vec::new()),
            workers,
        }))
    }

    /// Binds the node's inbound mesh listener on `addr` (port 0: an ephemeral port) and
    /// returns the bound address, which the control plane publishes as the node's hop
    /// address. It serves once a configuration with [`ProxyConfig::mesh_tls`] is applied;
    /// until then it closes every connection. Callable more than once (one listener per
    /// address).
    pub async fn bind_mesh_inbound(&self, addr: SocketAddr) -> Result<SocketAddr, ProxyError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ProxyError::ShutDown);
        }
        let bind_err = |source| ProxyError::MeshInboundBind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        self.serve_mesh_inbound(listener).map_err(bind_err)
    }

    /// Reconciles to `cfg`: binds listeners that are new, closes removed ones (after
    /// in-flight requests finish), swaps the routing snapshot, starts and stops health
    /// checks. Returns the bound address of every listener by listener ARN, and of every
    /// mesh listener on each mesh address by [`mesh_listener_key`] (a listener with port
    /// 0 binds an ephemeral port). An invalid `cfg` changes nothing.
    pub async fn apply(
        &self,
        cfg: ProxyConfig,
    ) -> Result<BTreeMap<String, SocketAddr>, ProxyError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ProxyError::ShutDown);
        }
        let mut state = self.state.lock().await;
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ProxyError::ShutDown);
        }

        // 1. Validate and compile, touching nothing.
        type Compiled<'c> = (
            Arc<GroupRuntime>,
            GroupSettings,
            bool,
            Option<&'c berth_model::dataplane::MeshGroupSettings>,
        );
        let mut groups: HashMap<String, Compiled<'_>> = HashMap::new();
        for tg in &cfg.target_groups {
            let g = &tg.group;
            let attributes = g.validate().map_err(|source| ProxyError::Invalid {
                resource: "target group",
                name: g.target_group_name.clone(),
                source,
            })?;
            if g.target_group_arn.is_empty() {
                return Err(ProxyError::config(
                    format!("target group {}", g.target_group_name),
                    "targetGroupArn must be set",
                ));
            }
            let mut seen = HashSet::new();
            for t in &tg.targets {
                if !seen.insert(t.addr) {
                    return Err(ProxyError::config(
                        format!("target group {}", g.target_group_arn),
                        format!("target {} is listed twice", t.addr),
                    ));
                }
            }
            let settings = GroupSettings::from_model(g, &attributes)?;
            let mesh = tg.mesh.as_ref();
            // A group keeps its runtime while it stays the same kind of group for the
            // same mesh endpoint (its metrics are labelled by it).
            let same_kind = |rt: &GroupRuntime| match (&rt.mesh, mesh) {
                (None, None) => true,
                (Some(m), Some(s)) => m.is_endpoint_of(s),
                _ => false,
            };
            let (rt, new) = match state.groups.get(&g.target_group_arn) {
                Some(rt) if same_kind(rt) => (rt.clone(), false),
                _ => (
                    GroupRuntime::new(
                        &g.target_group_arn,
                        settings.clone(),
                        &self.metrics,
                        self.notifier.clone(),
                        self.clock.clone(),
                        mesh.map(|s| {
                            MeshGroup::new(s, &self.mesh_metrics)
                                .with_outbound(self.mesh_outbound.clone())
                        }),
                    ),
                    true,
                ),
            };
            if groups
                .insert(g.target_group_arn.clone(), (rt, settings, new, mesh))
                .is_some()
            {
                return Err(ProxyError::config(
                    format!("target group {}", g.target_group_arn),
                    "is listed twice",
                ));
            }
        }
        let lookup = |arn: &str| groups.get(arn).map(|g| g.0.clone());
        let mut planned: Vec<PlannedListener> = Vec::new();
        let mut seen_arns = HashSet::new();
        for lb in &cfg.load_balancers {
            let attributes = lb.validate().map_err(|source| ProxyError::Invalid {
                resource: "load balancer",
                name: lb.load_balancer_name.clone(),
                source,
            })?;
            let xff = XffMode::from(attributes.xff_header_processing);
            let drop_invalid_headers = attributes.drop_invalid_header_fields;
            let idle_timeout = Duration::from_secs(u64::from(attributes.idle_timeout_seconds));
            let max_connections = attributes
                .max_connections
                .map_or(DEFAULT_MAX_CONNECTIONS, i64::from);
            let max_connections_per_client = attributes
                .max_connections_per_client
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT);
            let header_timeout = Duration::from_secs(u64::from(attributes.header_timeout_seconds));
            for l in &lb.listeners {
                if l.listener_arn.is_empty() {
                    return Err(ProxyError::config(
                        format!(
                            "load balancer {} listener on port {}",
                            lb.load_balancer_name, l.port
                        ),
                        "listenerArn must be set",
                    ));
                }
                if !seen_arns.insert(l.listener_arn.clone()) {
                    return Err(ProxyError::config(
                        format!("listener {}", l.listener_arn),
                        "is listed twice",
                    ));
                }
                let mode = match (lb.kind, l.protocol) {
                    (LoadBalancerType::Application, Protocol::Http | Protocol::Https) => Mode::Http,
                    (LoadBalancerType::Network, Protocol::Tcp | Protocol::Tls) => Mode::Stream,
                    _ => {
                        return Err(ProxyError::Unsupported {
                            listener_arn: l.listener_arn.clone(),
                            protocol: l.protocol.as_str(),
                        })
                    }
                };
                let tls = match l.protocol {
                    Protocol::Https => {
                        let alpn: &[&[u8]] = if attributes.http2_enabled {
                            &[b"h2", b"http/1.1"]
                        } else {
                            &[b"http/1.1"]
                        };
                        Some(tls::acceptor(&l.certificates, &l.listener_arn, alpn)?)
                    }
                    Protocol::Tls => Some(tls::acceptor(&l.certificates, &l.listener_arn, &[])?),
                    _ => None,
                };
                let rules = RuleSet::compile(&l.rules, &l.default_actions, &lookup).map_err(
                    |e| match e {
                        ProxyError::Config { what, message } => ProxyError::Config {
                            what: format!("listener {}: {what}", l.listener_arn),
                            message,
                        },
                        e => e,
                    },
                )?;
                planned.push(PlannedListener {
                    arn: l.listener_arn.clone(),
                    lb_name: lb.load_balancer_name.clone(),
                    port: l.port,
                    ip: self.bind_ip,
                    mesh_port: None,
                    mode,
                    tls,
                    routes: Routes {
                        rules,
                        xff,
                        drop_invalid_headers,
                        idle_timeout,
                        stream_idle_timeout: None,
                        max_connections,
                        max_connections_per_client,
                        header_timeout,
                    },
                });
            }
        }
        planned.extend(mesh::listeners::plan(
            &cfg.mesh_listeners,
            &self.mesh_ips,
            &lookup,
        )?);
        let (inbound, identities) = match &cfg.mesh_tls {
            Some(t) => {
                // The identities load into a set of their own: a bad one changes nothing.
                let identities = MeshIdentities::new();
                identities
                    .replace(&t.identities)
                    .map_err(|source| ProxyError::MeshTls { source })?;
                let inbound = InboundState::compile(t, self.mesh_identities.clone())?;
                (Some(inbound), Some(identities))
            }
            None => (None, None),
        };

        // 2. Bind what is new or moved; a failure here still changes nothing.
        let mut bound: HashMap<String, listener::Acceptor> = HashMap::new();
        for p in &planned {
            // A listener keeps its socket unless its port changed.
            if state
                .listeners
                .get(&p.arn)
                .is_some_and(|e| e.port == p.port && e.running.shared.mode == p.mode)
            {
                continue;
            }
            let addr = SocketAddr::new(p.ip, p.port as u16);
            let handed = state.adopted.remove(&p.arn);
            let l = match (handed.filter(|s| inherit::fits(s, addr)), p.mesh_port) {
                (Some(socket), _) => listener::adopt(&p.arn, socket)?,
                (None, None) => listener::bind(&p.arn, addr).await?,
                (None, Some(port)) => listener::bind_socket(addr)
                    .await
                    .map_err(|source| ProxyError::MeshBind { port, addr, source })?,
            };
            bound.insert(p.arn.clone(), l);
        }

        // 3. Commit.
        // New handshakes present the new identities; open connections keep theirs.
        if let Some(identities) = &identities {
            self.mesh_identities.take_from(identities);
        }
        self.mesh_outbound.set(cfg.mesh_tls.as_ref());
        self.mesh_inbound.state.store(inbound.map(Arc::new));
        for (arn, (rt, settings, new, mesh)) in &groups {
            if *new {
                // A group of this ARN whose mesh endpoint changed is replaced.
                if let Some(old) = state.groups.remove(arn) {
                    old.stop_replaced();
                }
            }
            if let (Some(m), Some(s)) = (&rt.mesh, mesh) {
                m.set(s);
            }
            let targets = cfg
                .target_groups
                .iter()
                .find(|t| &t.group.target_group_arn == arn)
                .map(|t| t.targets.as_slice())
                .unwrap_or(&[]);
            rt.update(settings.clone(), targets);
        }
        let removed_groups: Vec<String> = state
            .groups
            .keys()
            .filter(|k| !groups.contains_key(*k))
            .cloned()
            .collect();
        // Statuses change when a group comes or goes; a target's own changes (added,
        // removed, draining, health) notify from its group.
        let groups_changed = !removed_groups.is_empty() || groups.values().any(|g| g.2);
        for arn in removed_groups {
            if let Some(g) = state.groups.remove(&arn) {
                g.stop();
            }
        }
        for (arn, (rt, _, _, _)) in &groups {
            state.groups.insert(arn.clone(), rt.clone());
        }

        let mut out = BTreeMap::new();
        let planned_arns: HashSet<String> = planned.iter().map(|p| p.arn.clone()).collect();
        let removed_listeners: Vec<String> = state
            .listeners
            .keys()
            .filter(|k| !planned_arns.contains(*k))
            .cloned()
            .collect();
        for arn in removed_listeners {
            if let Some(e) = state.listeners.remove(&arn) {
                self.metrics.remove_listener(&e.lb_name, &arn);
                let h = e.running.close();
                state.closing.push(h);
            }
        }
        for p in planned {
            if let Some(listener) = bound.remove(&p.arn) {
                if let Some(old) = state.listeners.remove(&p.arn) {
                    state.closing.push(old.running.close());
                }
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
                let shared = Arc::new(ListenerShared {
                    routes: ArcSwap::from_pointee(p.routes),
                    tls: arc_swap::ArcSwapOption::from_pointee(p.tls),
                    mode: p.mode,
                    metrics: self.metrics.listener(&p.lb_name, &p.arn),
                    port,
                    clock: self.clock.clone(),
                });
                let running = RunningListener::start(listener, shared, &self.workers);
                out.insert(p.arn.clone(), running.addr);
                state.listeners.insert(
                    p.arn,
                    ListenerEntry {
                        running,
                        port: p.port,
                        lb_name: p.lb_name,
                    },
                );
            } else if let Some(e) = state.listeners.get_mut(&p.arn) {
                e.running.shared.routes.store(Arc::new(p.routes));
                e.running.shared.tls.store(p.tls.map(Arc::new));
                e.lb_name = p.lb_name;
                out.insert(p.arn, e.running.addr);
            }
        }
        state.closing.retain(|h| !h.is_finished());
        // Handed-over sockets this configuration does not serve close.
        state.adopted.clear();
        self.groups_view
            .store(Arc::new(state.groups.values().cloned().collect()));
        // Not on every apply: the control plane applies on every pass and runs a pass on
        // every notification, so an unconditional one keeps it passing without end.
        if groups_changed {
            self.notifier.notify();
        }
        Ok(out)
    }

    /// Health and draining state of every target in every target group.
    pub fn target_statuses(&self) -> Vec<TargetStatus> {
        let mut out = Vec::new();
        for g in self.groups_view.load().iter() {
            g.statuses(&mut out);
        }
        out
    }

    /// Fires whenever any [`TargetStatus`] changes (health transition, drained).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.notifier.subscribe()
    }

    /// Stops accepting, lets in-flight requests finish (bounded), stops health checks.
    pub async fn shutdown(&self) {
        self.shut_down.store(true, Ordering::Release);
        for t in self
            .inbound_tasks
            .lock()
            .expect("inbound tasks lock")
            .drain(..)
        {
            t.task.abort();
        }
        let mut state = self.state.lock().await;
        state.adopted.clear();
        let mut handles: Vec<_> = state.closing.drain(..).collect();
        for (arn, e) in state.listeners.drain() {
            self.metrics.remove_listener(&e.lb_name, &arn);
            handles.push(e.running.close());
        }
        for h in handles {
            let _ = h.await;
        }
        for (_, g) in state.groups.drain() {
            g.stop();
        }
        self.groups_view.store(Arc::new(Vec::new()));
        self.notifier.notify();
    }
}
