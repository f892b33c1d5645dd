//! The service mesh's outbound side: client-alias listeners ([`MeshListener`]) and what
//! mesh target groups ([`MeshGroupSettings`]) add to a target group.
//!
//! A mesh listener is compiled into the proxy's own listener and rule forms
//! ([`listeners`]): an HTTP listener whose rules send each alias (by host, port stripped,
//! case-insensitive) to its endpoint's target group and answer 404 to any other host,
//! or a TCP listener forwarding to its one endpoint. So the HTTP/1.1 fast path, the
//! hyper path, the stream path and the request engine serve mesh requests as they serve
//! load balancer requests; each adds only what a mesh group asks for, behind one check
//! of [`GroupRuntime::mesh`]:
//! - a deadline per request from its arrival to the response head (504 when it runs out),
//! - one more try on another target after a 503 response or an HTTP/2 refused stream
//!   ([`crate::attempt`] decides, within the group's retry budget and attempt limit),
//! - outlier detection ([`observe`]): a run of 5xx responses or connection failures
//!   ejects a target for a while, within the group's ejection cap,
//! - the `berth_mesh_*` metrics ([`metrics`]).
//!
//! What it does not do: decide which tasks are endpoints or which aliases a node serves
//! (the control plane does), answer DNS, or speak mutual TLS between proxies.
//!
//! [`MeshListener`]: berth_model::dataplane::MeshListener
//! [`MeshGroupSettings`]: berth_model::dataplane::MeshGroupSettings

pub(crate) mod listeners;
pub(crate) mod metrics;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use berth_model::dataplane::MeshGroupSettings;
use tokio::time::Instant;

use crate::group::GroupRuntime;
use crate::target::TargetState;

pub(crate) use self::metrics::{MeshConnection, MeshMetrics, MeshMetricsFamilies};

/// What a mesh target group adds to its group: its settings (atomics, so a new
/// configuration changes them in place) and its metrics.
pub(crate) struct MeshGroup {
    pub(crate) namespace: String,
    pub(crate) discovery_name: String,
    /// The per-request timeout in milliseconds; 0: none.
    timeout_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    base_ejection_ms: AtomicU64,
    max_ejection_percent: AtomicU32,
    pub(crate) metrics: MeshMetrics,
}

impl MeshGroup {
    pub(crate) fn new(s: &MeshGroupSettings, families: &MeshMetricsFamilies) -> MeshGroup {
        let g = MeshGroup {
            namespace: s.namespace.clone(),
            discovery_name: s.discovery_name.clone(),
            timeout_ms: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            base_ejection_ms: AtomicU64::new(0),
            max_ejection_percent: AtomicU32::new(0),
            metrics: families.endpoint(&s.namespace, &s.discovery_name),
        };
        g.set(s);
        g
    }

    /// Whether `s` names the same endpoint (its metrics keep their labels).
    pub(crate) fn is_endpoint_of(&self, s: &MeshGroupSettings) -> bool {
        self.namespace == s.namespace && self.discovery_name == s.discovery_name
    }

    /// Takes the timeout and outlier detection settings of `s`.
    pub(crate) fn set(&self, s: &MeshGroupSettings) {
        self.timeout_ms.store(
            u64::from(s.per_request_timeout_seconds) * 1000,
            Ordering::Relaxed,
        );
        let o = &s.outlier_detection;
        self.consecutive_failures
            .store(o.consecutive_failures, Ordering::Relaxed);
        self.base_ejection_ms
            .store(u64::from(o.base_ejection_seconds) * 1000, Ordering::Relaxed);
        self.max_ejection_percent
            .store(o.max_ejection_percent.min(100), Ordering::Relaxed);
    }

    /// When a request that arrived at `arrival` must have its response head.
    #[inline]
    pub(crate) fn deadline(&self, arrival: Instant) -> Option<Instant> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(arrival + Duration::from_millis(ms)),
        }
    }
}

/// Outlier detection: `target` of mesh group `group` answered with a 5xx or could not be
/// connected to (`failed`), or answered with anything else. A run of
/// `consecutive_failures` failures ejects it, unless the group already has its share of
/// targets ejected (`max_ejection_percent`, at least one).
pub(crate) fn observe(group: &GroupRuntime, mesh: &MeshGroup, target: &TargetState, failed: bool) {
    if !failed {
        target.outlier_succeeded();
        return;
    }
    let needed = mesh.consecutive_failures.load(Ordering::Relaxed);
    if needed == 0 || target.outlier_failed() < needed || target.is_outlier_ejected() {
        return;
    }
    let (ejected, total) = group.outlier_counts();
    let pct = mesh.max_ejection_percent.load(Ordering::Relaxed) as usize;
    let allowed = (total * pct / 100).max(1);
    if ejected >= allowed {
        return;
    }
    let ms = target.eject_outlier(mesh.base_ejection_ms.load(Ordering::Relaxed));
    mesh.metrics.ejections.inc();
    tracing::info!(
        target = %target.addr,
        namespace = %mesh.namespace,
        discovery_name = %mesh.discovery_name,
        seconds = ms / 1000,
        "outlier detection ejected a target"
    );
    group.ejection_changed(Duration::from_millis(ms));
}
