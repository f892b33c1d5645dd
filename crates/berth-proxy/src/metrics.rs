//! Prometheus metrics, each the counterpart of an ALB CloudWatch metric.
//!
//! | berth metric | labels | ALB CloudWatch metric |
//! |---|---|---|
//! | `berth_lb_requests_total` | load_balancer, listener | RequestCount |
//! | `berth_lb_elb_responses_total` | load_balancer, listener, code | HTTPCode_ELB_4XX/5XX_Count, HTTPCode_ELB_502/503/504_Count |
//! | `berth_lb_fixed_responses_total` | load_balancer, listener | HTTP_Fixed_Response_Count |
//! | `berth_lb_redirects_total` | load_balancer, listener | HTTP_Redirect_Count |
//! | `berth_lb_rule_evaluations_total` | load_balancer, listener | RuleEvaluations |
//! | `berth_lb_active_connections` | load_balancer, listener | ActiveConnectionCount |
//! | `berth_lb_idle_parked_connections` | load_balancer, listener | (none: open connections quiet between requests, waiting without a task) |
//! | `berth_lb_thread_connections` | thread | (none: open client connections of every listener each data plane thread serves; with `--data-plane-threads`) |
//! | `berth_lb_new_connections_total` | load_balancer, listener | NewConnectionCount |
//! | `berth_lb_rejected_connections_total` | load_balancer, listener | RejectedConnectionCount |
//! | `berth_lb_processed_bytes_total` | load_balancer, listener | ProcessedBytes |
//! | `berth_lb_target_requests_total` | target_group, target | RequestCountPerTarget |
//! | `berth_lb_target_responses_total` | target_group, target, code (2xx..5xx) | HTTPCode_Target_2XX..5XX_Count |
//! | `berth_lb_target_response_time_seconds` | target_group | TargetResponseTime |
//! | `berth_lb_target_connection_errors_total` | target_group, target | TargetConnectionErrorCount |
//! | `berth_lb_healthy_hosts` | target_group | HealthyHostCount |
//! | `berth_lb_unhealthy_hosts` | target_group | UnHealthyHostCount |
//! | `berth_lb_unhealthy_routing_requests_total` | target_group | UnhealthyRoutingRequestCount |
//! | `berth_lb_retries_total` | target_group | (none: requests retried on another target) |
//!
//! Label children are resolved when a configuration is applied, so the request path only
//! increments atomics.
//!
//! Mesh target groups count their requests, responses, response times and retries in
//! the mesh's own metrics instead (`berth_mesh_*`, see [`crate::mesh::metrics`]); mesh
//! listeners count in the listener metrics above with `load_balancer="mesh"` and
//! `listener="mesh:<port>@<address>"`.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

#[derive(Clone)]
pub(crate) struct Metrics {
    requests: IntCounterVec,
    elb_responses: IntCounterVec,
    fixed_responses: IntCounterVec,
    redirects: IntCounterVec,
    rule_evaluations: IntCounterVec,
    active_connections: IntGaugeVec,
    idle_parked_connections: IntGaugeVec,
    new_connections: IntCounterVec,
    rejected_connections: IntCounterVec,
    processed_bytes: IntCounterVec,
    target_requests: IntCounterVec,
    target_responses: IntCounterVec,
    target_response_time: HistogramVec,
    target_connection_errors: IntCounterVec,
    healthy_hosts: IntGaugeVec,
    unhealthy_hosts: IntGaugeVec,
    unhealthy_routing: IntCounterVec,
    retries: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::warn!(metric = name, error = %e, "metric not registered");
    }
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    if let Err(e) = r.register(Box::new(g.clone())) {
        tracing::warn!(metric = name, error = %e, "metric not registered");
    }
    g
}

const LB: &[&str] = &["load_balancer", "listener"];
const TG: &[&str] = &["target_group"];
const TGT: &[&str] = &["target_group", "target"];

impl Metrics {
    pub(crate) fn new(r: &Registry) -> Metrics {
        let target_response_time = HistogramVec::new(
            HistogramOpts::new(
                "berth_lb_target_response_time_seconds",
                "Time from sending a request to a target until its response headers arrived (TargetResponseTime).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0,
            ]),
            TG,
        )
        .expect("valid metric");
        if let Err(e) = r.register(Box::new(target_response_time.clone())) {
            tracing::warn!(error = %e, "metric not registered");
        }
        Metrics {
            requests: counter(r, "berth_lb_requests_total", "Requests received by a listener (RequestCount).", LB),
            elb_responses: counter(
                r,
                "berth_lb_elb_responses_total",
                "Error responses generated by the load balancer itself, by status code (HTTPCode_ELB_*_Count).",
                &["load_balancer", "listener", "code"],
            ),
            fixed_responses: counter(r, "berth_lb_fixed_responses_total", "Fixed-response actions taken (HTTP_Fixed_Response_Count).", LB),
            redirects: counter(r, "berth_lb_redirects_total", "Redirect actions taken (HTTP_Redirect_Count).", LB),
            rule_evaluations: counter(r, "berth_lb_rule_evaluations_total", "Listener rules evaluated (RuleEvaluations).", LB),
            active_connections: gauge(r, "berth_lb_active_connections", "Open client connections (ActiveConnectionCount).", LB),
            idle_parked_connections: gauge(r, "berth_lb_idle_parked_connections", "Open HTTP/1.1 client connections quiet between requests, waiting without a task of their own (part of berth_lb_active_connections).", LB),
            new_connections: counter(r, "berth_lb_new_connections_total", "Client connections accepted (NewConnectionCount).", LB),
            rejected_connections: counter(r, "berth_lb_rejected_connections_total", "Client connections refused because the listener had berth.max_connections open (RejectedConnectionCount).", LB),
            processed_bytes: counter(r, "berth_lb_processed_bytes_total", "Request and response body bytes passed through (ProcessedBytes).", LB),
            target_requests: counter(r, "berth_lb_target_requests_total", "Requests sent to a target (RequestCountPerTarget).", TGT),
            target_responses: counter(
                r,
                "berth_lb_target_responses_total",
                "Responses from targets by status class (HTTPCode_Target_2XX..5XX_Count).",
                &["target_group", "target", "code"],
            ),
            target_response_time,
            target_connection_errors: counter(r, "berth_lb_target_connection_errors_total", "Connections to a target that could not be made (TargetConnectionErrorCount).", TGT),
            healthy_hosts: gauge(r, "berth_lb_healthy_hosts", "Targets considered healthy (HealthyHostCount).", TG),
            unhealthy_hosts: gauge(r, "berth_lb_unhealthy_hosts", "Targets considered unhealthy (UnHealthyHostCount).", TG),
            unhealthy_routing: counter(r, "berth_lb_unhealthy_routing_requests_total", "Requests routed while no target was healthy, failing open (UnhealthyRoutingRequestCount).", TG),
            retries: counter(r, "berth_lb_retries_total", "Requests retried on another target after a connection failure.", TG),
        }
    }

    pub(crate) fn listener(&self, lb: &str, listener: &str) -> ListenerMetrics {
        let l = [lb, listener];
        let code = |c: &str| self.elb_responses.with_label_values(&[lb, listener, c]);
        ListenerMetrics {
            requests: self.requests.with_label_values(&l),
            elb_4xx: code("4xx"),
            elb_5xx: code("5xx"),
            elb_502: code("502"),
            elb_503: code("503"),
            elb_504: code("504"),
            fixed_responses: self.fixed_responses.with_label_values(&l),
            redirects: self.redirects.with_label_values(&l),
            rule_evaluations: self.rule_evaluations.with_label_values(&l),
            active_connections: self.active_connections.with_label_values(&l),
            idle_parked_connections: self.idle_parked_connections.with_label_values(&l),
            new_connections: self.new_connections.with_label_values(&l),
            rejected_connections: self.rejected_connections.with_label_values(&l),
            processed_bytes: self.processed_bytes.with_label_values(&l),
        }
    }

    pub(crate) fn remove_listener(&self, lb: &str, listener: &str) {
        let l = [lb, listener];
        for v in [
            &self.requests,
            &self.fixed_responses,
            &self.redirects,
            &self.rule_evaluations,
            &self.new_connections,
            &self.rejected_connections,
            &self.processed_bytes,
        ] {
            let _ = v.remove_label_values(&l);
        }
        let _ = self.active_connections.remove_label_values(&l);
        let _ = self.idle_parked_connections.remove_label_values(&l);
        for c in ["4xx", "5xx", "502", "503", "504"] {
            let _ = self.elb_responses.remove_label_values(&[lb, listener, c]);
        }
    }

    pub(crate) fn group(&self, tg: &str) -> GroupMetrics {
        GroupMetrics {
            healthy_hosts: self.healthy_hosts.with_label_values(&[tg]),
            unhealthy_hosts: self.unhealthy_hosts.with_label_values(&[tg]),
            unhealthy_routing: self.unhealthy_routing.with_label_values(&[tg]),
            retries: self.retries.with_label_values(&[tg]),
            response_time: self.target_response_time.with_label_values(&[tg]),
        }
    }

    pub(crate) fn remove_group(&self, tg: &str) {
        let _ = self.healthy_hosts.remove_label_values(&[tg]);
        let _ = self.unhealthy_hosts.remove_label_values(&[tg]);
        let _ = self.unhealthy_routing.remove_label_values(&[tg]);
        let _ = self.retries.remove_label_values(&[tg]);
        let _ = self.target_response_time.remove_label_values(&[tg]);
    }

    pub(crate) fn target(&self, tg: &str, target: &str, group: &GroupMetrics) -> TargetMetrics {
        let code = |c: &str| self.target_responses.with_label_values(&[tg, target, c]);
        TargetMetrics {
            requests: self.target_requests.with_label_values(&[tg, target]),
            responses: [code("2xx"), code("3xx"), code("4xx"), code("5xx")],
            connection_errors: self
                .target_connection_errors
                .with_label_values(&[tg, target]),
            response_time: group.response_time.clone(),
        }
    }

    /// A mesh target's metrics: requests, responses and response time are its mesh
    /// endpoint's (`berth_mesh_*`), connection errors the target group's.
    pub(crate) fn mesh_target(
        &self,
        tg: &str,
        target: &str,
        mesh: &crate::mesh::MeshMetrics,
    ) -> TargetMetrics {
        TargetMetrics {
            requests: mesh.target_requests(target),
            responses: mesh.responses.clone(),
            connection_errors: self
                .target_connection_errors
                .with_label_values(&[tg, target]),
            response_time: mesh.response_time.clone(),
        }
    }

    pub(crate) fn remove_target(&self, tg: &str, target: &str) {
        let _ = self.target_requests.remove_label_values(&[tg, target]);
        let _ = self
            .target_connection_errors
            .remove_label_values(&[tg, target]);
        for c in ["2xx", "3xx", "4xx", "5xx"] {
            let _ = self.target_responses.remove_label_values(&[tg, target, c]);
        }
    }
}

#[derive(Clone)]
pub(crate) struct ListenerMetrics {
    pub(crate) requests: IntCounter,
    pub(crate) elb_4xx: IntCounter,
    pub(crate) elb_5xx: IntCounter,
    pub(crate) elb_502: IntCounter,
    pub(crate) elb_503: IntCounter,
    pub(crate) elb_504: IntCounter,
    pub(crate) fixed_responses: IntCounter,
    pub(crate) redirects: IntCounter,
    pub(crate) rule_evaluations: IntCounter,
    pub(crate) active_connections: IntGauge,
    pub(crate) idle_parked_connections: IntGauge,
    pub(crate) new_connections: IntCounter,
    pub(crate) rejected_connections: IntCounter,
    pub(crate) processed_bytes: IntCounter,
}

impl ListenerMetrics {
    /// Counts a response the load balancer generated itself.
    pub(crate) fn elb_response(&self, status: u16) {
        match status {
            400..=499 => self.elb_4xx.inc(),
            500..=599 => {
                self.elb_5xx.inc();
                match status {
                    502 => self.elb_502.inc(),
                    503 => self.elb_503.inc(),
                    504 => self.elb_504.inc(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[derive(Clone)]
pub(crate) struct GroupMetrics {
    pub(crate) healthy_hosts: IntGauge,
    pub(crate) unhealthy_hosts: IntGauge,
    pub(crate) unhealthy_routing: IntCounter,
    pub(crate) retries: IntCounter,
    response_time: Histogram,
}

/// `repr(C)`: what every request counts comes first (see [`crate::target::TargetState`]).
#[derive(Clone)]
#[repr(C)]
pub(crate) struct TargetMetrics {
    pub(crate) requests: IntCounter,
    /// 2xx, 3xx, 4xx, 5xx.
    pub(crate) responses: [IntCounter; 4],
    pub(crate) response_time: Histogram,
    pub(crate) connection_errors: IntCounter,
}

impl TargetMetrics {
    pub(crate) fn response(&self, status: u16, seconds: f64) {
        let i = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => {
                self.response_time.observe(seconds);
                return;
            }
        };
        self.responses[i].inc();
        self.response_time.observe(seconds);
    }

    #[cfg(test)]
    pub(crate) fn noop() -> TargetMetrics {
        let m = Metrics::new(&Registry::new());
        let g = m.group("tg");
        m.target("tg", "t", &g)
    }
}
