//! The configuration the control plane hands the proxy, and the statuses it hands back.

use std::net::SocketAddr;

use berth_model::elb::{LoadBalancer, TargetGroup, TargetHealth};

/// Everything the proxy serves: load balancers with their listeners and rules, and the
/// target groups those reference with their current targets.
///
/// Every listener has `listener_arn` set; every action references its target groups by
/// `target_group_arn` (names already resolved).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProxyConfig {
    pub load_balancers: Vec<LoadBalancer>,
    pub target_groups: Vec<TargetGroupConfig>,
}

/// A target group (with `target_group_arn` set) and its registered targets.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupConfig {
    pub group: TargetGroup,
    pub targets: Vec<ProxyTarget>,
}

/// One registered target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The target's IP as registered.
    pub id: String,
    pub port: u32,
    /// Where the proxy connects to.
    pub addr: SocketAddr,
    /// Deregistration began: no new requests; reported `drained` once none is in flight
    /// or the group's deregistration delay ran out.
    pub draining: bool,
}

/// The proxy's view of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetStatus {
    pub target_group_arn: String,
    pub addr: SocketAddr,
    /// ALB state and reason code (`initial`/`Elb.InitialHealthChecking`, `healthy`,
    /// `unhealthy`/`Target.Timeout`, `draining`/`Target.DeregistrationInProgress`, ...).
    pub health: TargetHealth,
    /// Requests sent to the target whose responses have not finished.
    pub in_flight: u64,
    /// Draining finished: nothing in flight, or the deregistration delay ran out. The
    /// control plane may now stop the task and drop the target from the configuration.
    pub drained: bool,
}
