//! What a mesh target group carries beyond a load balancer's: its endpoint (namespace
//! and discovery name), its per-request timeout and outlier detection settings, and its
//! metrics. Data only: it decides nothing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_model::dataplane::MeshGroupSettings;
use tokio::time::Instant;

use super::hop::MeshOutbound;
use super::metrics::{MeshMetrics, MeshMetricsFamilies};

/// What a mesh target group adds to its group: its settings (atomics, so a new
/// configuration changes them in place) and its metrics.
pub(crate) struct MeshGroup {
    pub(crate) namespace: String,
    pub(crate) discovery_name: String,
    /// The per-request timeout in milliseconds; 0: none.
    timeout_ms: AtomicU64,
    pub(crate) consecutive_failures: AtomicU32,
    pub(crate) base_ejection_ms: AtomicU64,
    pub(crate) max_ejection_percent: AtomicU32,
    pub(crate) metrics: MeshMetrics,
    /// The node's outbound mutual TLS, for targets with a mesh hop.
    pub(crate) outbound: Option<Arc<MeshOutbound>>,
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
            outbound: None,
        };
        g.set(s);
        g
    }

    /// Reaches targets with a mesh hop through `outbound`.
    pub(crate) fn with_outbound(mut self, outbound: Arc<MeshOutbound>) -> MeshGroup {
        self.outbound = Some(outbound);
        self
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
