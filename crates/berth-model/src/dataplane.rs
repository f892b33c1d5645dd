//! The contract between the control plane and the data plane: the configuration the
//! control plane publishes ([`ProxyConfig`]) and what the data plane reports back
//! ([`TargetStatus`], [`ConfigRefusal`], [`CertificateRefusal`]).
//!
//! Plain serde types, camelCase JSON like the rest of the model, so the configuration
//! could travel to a data plane on another node unchanged. What it does not do: build a
//! configuration from the store (berth-control does) or serve one (berth-proxy does).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::elb::{LoadBalancer, TargetGroup, TargetHealth};

/// Everything the data plane serves: load balancers with their listeners and rules, and
/// the target groups those reference with their current targets.
///
/// Every listener has `listener_arn` set; every action references its target groups by
/// `target_group_arn` (names already resolved).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfig {
    pub load_balancers: Vec<LoadBalancer>,
    pub target_groups: Vec<TargetGroupConfig>,
}

/// A target group (with `target_group_arn` set) and its registered targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfig {
    pub group: TargetGroup,
    pub targets: Vec<ProxyTarget>,
}

/// One registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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

/// The data plane's view of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub target_group_arn: String,
    pub addr: SocketAddr,
    /// ALB state and reason code (`initial`/`Elb.InitialHealthChecking`, `healthy`,
    /// `unhealthy`/`Target.Timeout`, `draining`/`Target.DeregistrationInProgress`, ...).
    pub health: TargetHealth,
    /// Requests sent to the target whose responses have not finished.
    pub in_flight: u64,
    /// Requests sent to the target since the data plane started serving it (ALB's
    /// RequestCount, by target): a counter that only grows while the target stays
    /// registered, and starts again from 0 when a target is removed and registered again.
    /// The control plane derives ALBRequestCountPerTarget from its deltas.
    #[serde(default)]
    pub request_count: u64,
    /// Draining finished: nothing in flight, or the deregistration delay ran out. The
    /// control plane may now stop the task and drop the target from the configuration.
    pub drained: bool,
}

/// Why a data plane refused a [`ProxyConfig`] as a whole. A refused configuration
/// changes nothing: the previous one keeps serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{reason}")]
pub struct ConfigRefusal {
    /// The load balancer (by name) the data plane cannot serve, when the refusal is
    /// about one: the rest of the configuration can then be served without it. `None`
    /// when the refusal concerns the configuration as a whole.
    pub load_balancer_name: Option<String>,
    /// What the data plane said, e.g. that a listener's port is taken.
    pub reason: String,
}

/// Why a listener's certificates do not load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{reason}")]
pub struct CertificateRefusal {
    pub listener_arn: String,
    /// What failed: a file that does not read, no certificate in it, a key that does not
    /// match.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elb::TargetHealthState;

    #[test]
    fn target_status_round_trips_as_camel_case_json() {
        let s = TargetStatus {
            target_group_arn: "arn:tg".into(),
            addr: "127.0.0.1:8080".parse().unwrap(),
            health: TargetHealth {
                state: TargetHealthState::Healthy,
                reason: None,
                description: None,
            },
            in_flight: 3,
            request_count: 42,
            drained: false,
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["targetGroupArn"], "arn:tg");
        assert_eq!(json["addr"], "127.0.0.1:8080");
        assert_eq!(json["inFlight"], 3);
        assert_eq!(json["requestCount"], 42);
        let back: TargetStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_status_without_a_request_count_reads_as_zero() {
        let s: TargetStatus = serde_json::from_value(serde_json::json!({
            "targetGroupArn": "arn:tg",
            "addr": "127.0.0.1:8080",
            "health": {"state": "healthy"},
            "inFlight": 0,
            "drained": false,
        }))
        .unwrap();
        assert_eq!(s.request_count, 0);
    }

    #[test]
    fn proxy_config_round_trips() {
        let stack = crate::stack::Stack::from_yaml(
            "targetGroups:\n  - targetGroupName: web\nloadBalancers:\n  - loadBalancerName: web\n    listeners:\n      - port: 80\n        protocol: HTTP\n        defaultActions: [{type: forward, targetGroupName: web}]\n",
        )
        .unwrap();
        let cfg = ProxyConfig {
            load_balancers: stack.load_balancers,
            target_groups: vec![TargetGroupConfig {
                group: stack.target_groups[0].clone(),
                targets: vec![ProxyTarget {
                    id: "10.0.0.1".into(),
                    port: 80,
                    addr: "10.0.0.1:80".parse().unwrap(),
                    draining: true,
                }],
            }],
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"loadBalancers\""), "{json}");
        assert!(json.contains("\"draining\":true"), "{json}");
        let back: ProxyConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn a_refusal_displays_its_reason_and_names_the_load_balancer() {
        let r = ConfigRefusal {
            load_balancer_name: Some("web".into()),
            reason: "listener x could not bind 0.0.0.0:80: in use".into(),
        };
        assert_eq!(
            r.to_string(),
            "listener x could not bind 0.0.0.0:80: in use"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["loadBalancerName"], "web");
    }
}
