//! The mesh's Prometheus metrics, per mesh endpoint (a discovery name in a namespace),
//! each the counterpart of a Service Connect proxy metric (dimension `TargetDiscoveryName`).
//!
//! | berth metric | labels | Service Connect metric |
//! |---|---|---|
//! | `berth_mesh_requests_total` | namespace, discovery_name | RequestCount |
//! | `berth_mesh_target_requests_total` | namespace, discovery_name, target | RequestCountPerTarget |
//! | `berth_mesh_target_responses_total` | namespace, discovery_name, code (2xx..5xx) | HTTPCode_Target_2XX..5XX_Count |
//! | `berth_mesh_target_response_time_seconds` | namespace, discovery_name | TargetResponseTime |
//! | `berth_mesh_active_connections` | namespace, discovery_name | ActiveConnectionCount |
//! | `berth_mesh_new_connections_total` | namespace, discovery_name | NewConnectionCount |
//! | `berth_mesh_processed_bytes_total` | namespace, discovery_name | ProcessedBytes |
//! | `berth_mesh_retries_total` | namespace, discovery_name | (none: requests tried again on another target) |
//! | `berth_mesh_ejections_total` | namespace, discovery_name | (none: targets ejected by outlier detection) |
//! | `berth_mesh_request_timeouts_total` | namespace, discovery_name | (none: requests answered 504 at the per-request timeout) |
//!
//! A client connection counts for the endpoint its first request went to (a TCP mesh
//! connection for its listener's one endpoint). Label children are resolved when a
//! configuration is applied: the request path only increments atomics.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The metric families, registered once per proxy.
#[derive(Clone)]
pub(crate) struct MeshMetricsFamilies {
    requests: IntCounterVec,
    target_requests: IntCounterVec,
    target_responses: IntCounterVec,
    target_response_time: HistogramVec,
    active_connections: IntGaugeVec,
    new_connections: IntCounterVec,
    processed_bytes: IntCounterVec,
    retries: IntCounterVec,
    ejections: IntCounterVec,
    request_timeouts: IntCounterVec,
}

const EP: &[&str] = &["namespace", "discovery_name"];
const CODES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::warn!(error = %e, "metric not registered");
    }
    c
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        r,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

impl MeshMetricsFamilies {
    pub(crate) fn new(r: &Registry) -> MeshMetricsFamilies {
        let time = HistogramVec::new(
            HistogramOpts::new(
                "berth_mesh_target_response_time_seconds",
                "Time from sending a mesh request to a target until its response headers arrived (TargetResponseTime).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            EP,
        )
        .expect("valid metric");
        MeshMetricsFamilies {
            requests: counter(r, "berth_mesh_requests_total", "Requests sent to a mesh endpoint (RequestCount).", EP),
            target_requests: counter(
                r,
                "berth_mesh_target_requests_total",
                "Requests sent to one target of a mesh endpoint (RequestCountPerTarget).",
                &["namespace", "discovery_name", "target"],
            ),
            target_responses: counter(
                r,
                "berth_mesh_target_responses_total",
                "Responses from a mesh endpoint's targets by status class (HTTPCode_Target_2XX..5XX_Count).",
                &["namespace", "discovery_name", "code"],
            ),
            target_response_time: register(r, time),
            active_connections: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "berth_mesh_active_connections",
                        "Open client connections of a mesh endpoint (ActiveConnectionCount).",
                    ),
                    EP,
                )
                .expect("valid metric"),
            ),
            new_connections: counter(r, "berth_mesh_new_connections_total", "Client connections of a mesh endpoint (NewConnectionCount).", EP),
            processed_bytes: counter(r, "berth_mesh_processed_bytes_total", "Request and response bytes passed to and from a mesh endpoint (ProcessedBytes).", EP),
            retries: counter(r, "berth_mesh_retries_total", "Mesh requests tried again on another target (after a connection failure, a 503 or a refused stream).", EP),
            ejections: counter(r, "berth_mesh_ejections_total", "Targets of a mesh endpoint ejected by outlier detection.", EP),
            request_timeouts: counter(r, "berth_mesh_request_timeouts_total", "Mesh requests answered 504 because the per-request timeout ran out.", EP),
        }
    }

    /// The label children of one endpoint.
    pub(crate) fn endpoint(&self, namespace: &str, discovery_name: &str) -> MeshMetrics {
        let l = [namespace, discovery_name];
        let code = |c: &str| {
            self.target_responses
                .with_label_values(&[namespace, discovery_name, c])
        };
        MeshMetrics {
            namespace: namespace.to_string(),
            discovery_name: discovery_name.to_string(),
            requests: self.requests.with_label_values(&l),
            responses: [
                code(CODES[0]),
                code(CODES[1]),
                code(CODES[2]),
                code(CODES[3]),
            ],
            response_time: self.target_response_time.with_label_values(&l),
            active_connections: self.active_connections.with_label_values(&l),
            new_connections: self.new_connections.with_label_values(&l),
            processed_bytes: self.processed_bytes.with_label_values(&l),
            retries: self.retries.with_label_values(&l),
            ejections: self.ejections.with_label_values(&l),
            request_timeouts: self.request_timeouts.with_label_values(&l),
            families: self.clone(),
        }
    }
}

/// One endpoint's label children.
#[derive(Clone)]
pub(crate) struct MeshMetrics {
    namespace: String,
    discovery_name: String,
    pub(crate) requests: IntCounter,
    /// 2xx, 3xx, 4xx, 5xx.
    pub(crate) responses: [IntCounter; 4],
    pub(crate) response_time: Histogram,
    pub(crate) active_connections: IntGauge,
    pub(crate) new_connections: IntCounter,
    pub(crate) processed_bytes: IntCounter,
    pub(crate) retries: IntCounter,
    pub(crate) ejections: IntCounter,
    pub(crate) request_timeouts: IntCounter,
    families: MeshMetricsFamilies,
}

impl MeshMetrics {
    /// The requests counter of one target.
    pub(crate) fn target_requests(&self, target: &str) -> IntCounter {
        self.families.target_requests.with_label_values(&[
            &self.namespace,
            &self.discovery_name,
            target,
        ])
    }

    pub(crate) fn remove_target(&self, target: &str) {
        let _ = self.families.target_requests.remove_label_values(&[
            &self.namespace,
            &self.discovery_name,
            target,
        ]);
    }

    /// Forgets every label child of the endpoint (its target group was removed).
    pub(crate) fn remove(&self) {
        let f = &self.families;
        let l = [self.namespace.as_str(), self.discovery_name.as_str()];
        for v in [
            &f.requests,
            &f.new_connections,
            &f.processed_bytes,
            &f.retries,
            &f.ejections,
            &f.request_timeouts,
        ] {
            let _ = v.remove_label_values(&l);
        }
        let _ = f.active_connections.remove_label_values(&l);
        let _ = f.target_response_time.remove_label_values(&l);
        for c in CODES {
            let _ =
                f.target_responses
                    .remove_label_values(&[&self.namespace, &self.discovery_name, c]);
        }
    }

    /// Counts a client connection in until the guard drops.
    pub(crate) fn connection(&self) -> MeshConnection {
        self.new_connections.inc();
        self.active_connections.inc();
        MeshConnection(self.active_connections.clone())
    }
}

/// A client connection counted in a mesh endpoint's active connections.
pub(crate) struct MeshConnection(IntGauge);

impl Drop for MeshConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
