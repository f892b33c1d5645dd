//! The contract between the control plane and the data plane: the configuration the
//! control plane publishes ([`ProxyConfig`]: load balancers, target groups, and the
//! mesh's client-alias listeners [`MeshListener`] with the settings of the target groups
//! they forward to, [`MeshGroupSettings`]) and what the data plane reports back
//! ([`TargetStatus`], [`ConfigRefusal`], [`CertificateRefusal`]).
//!
//! Plain serde types, camelCase JSON like the rest of the model, so the configuration
//! could travel to a data plane on another node unchanged. What it does not do: build a
//! configuration from the store (berth-control does) or serve one (berth-proxy does).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::elb::{LoadBalancer, TargetGroup, TargetHealth};
use crate::mesh_identity::{AllowedCallers, MeshCertificate, MeshTrust, SpiffeId};

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
    /// The mesh's outbound side on this node: one listener per client-alias port, bound
    /// on each of the node's mesh addresses (a node setting, not the control plane's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mesh_listeners: Vec<MeshListener>,
    /// Mutual TLS between node proxies: the identities this node presents, the endpoints
    /// its inbound listener serves, and who calls from it. `None` while no service is in
    /// the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_tls: Option<MeshTlsConfig>,
}

/// Mutual TLS in the mesh, as one node serves it. A mesh request goes client task →
/// this node's mesh listener → (mutual TLS) → the inbound listener of the node running
/// the chosen endpoint → that task. Both proxies present certificates of berth's
/// authority for SPIFFE identities (`spiffe://<cluster>/ns/<namespace>/sa/<service>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTlsConfig {
    /// The CA certificates a peer's chain must reach.
    pub trust: MeshTrust,
    /// The certificates (with their keys) this node presents: the identity of every
    /// service with an endpoint here (inbound) and of every service calling from here
    /// (outbound), and [`MeshTlsConfig::node_identity`]'s. A new list replaces the old
    /// for new handshakes only; open connections keep theirs.
    pub identities: Vec<MeshCertificate>,
    /// What this node's inbound listener serves, by TLS server name.
    pub inbound: Vec<MeshInboundEndpoint>,
    /// Tasks on this node by the source address their connections come from, and the
    /// identity the outbound side presents for them.
    pub callers: Vec<MeshCaller>,
    /// The identity presented for a connection whose source address is not a caller's
    /// (local processes share the host's addresses): a node identity that allow lists
    /// do not name.
    pub node_identity: SpiffeId,
}

/// One endpoint on this node, as its inbound listener serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshInboundEndpoint {
    /// The TLS server name (SNI) the calling proxy sends for this endpoint: unique per
    /// endpoint, ending in the service's `<service>.<namespace>.mesh`.
    pub server_name: String,
    /// The service's identity: the certificate presented for this server name.
    pub identity: SpiffeId,
    /// Where the task listens; the inbound proxy forwards the connection there.
    pub target: SocketAddr,
    pub protocol: MeshProtocol,
    /// Which identities may call; others are denied (HTTP: 403).
    pub allowed_callers: AllowedCallers,
}

/// A task calling from this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshCaller {
    /// The address its connections come from (its own IP: awsvpc and bridge tasks).
    pub ip: IpAddr,
    pub identity: SpiffeId,
}

/// How a mesh target is reached: through the inbound listener of its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshHop {
    /// The inbound listener of the target's node.
    pub inbound: SocketAddr,
    /// The server name to send ([`MeshInboundEndpoint::server_name`]).
    pub server_name: String,
    /// The identity the inbound side must present: the called service's.
    pub identity: SpiffeId,
}

/// A target group (with `target_group_arn` set) and its registered targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupConfig {
    pub group: TargetGroup,
    pub targets: Vec<ProxyTarget>,
    /// Set on the target group of one mesh endpoint (a discovery name in a namespace):
    /// mesh listeners forward to it, and these settings add to the group's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<MeshGroupSettings>,
}

/// Seconds a mesh request may take end to end when the service does not say
/// (`timeout.perRequestTimeoutSeconds`; Service Connect's proxy allows 15).
pub const DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS: u32 = 15;
/// Seconds a mesh HTTP connection may stay idle (`timeout.idleTimeoutSeconds`; ECS:
/// 5 minutes for HTTP, HTTP/2 and gRPC).
pub const DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS: u32 = 300;
/// The same for TCP (ECS: 1 hour).
pub const DEFAULT_MESH_TCP_IDLE_TIMEOUT_SECONDS: u32 = 3600;

/// One client-alias port of the mesh on a node: clients of the namespace call
/// `<dnsName>:<port>`, and the name resolves to this node's mesh proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshListener {
    pub port: u16,
    pub protocol: MeshProtocol,
    /// HTTP: the aliases sharing the port, chosen by the request's host (without its
    /// port); a request naming none of them gets 404. TCP: exactly one route.
    pub routes: Vec<MeshRoute>,
    /// Seconds with nothing moving before a client connection closes; 0 disables it.
    pub idle_timeout_seconds: u32,
}

/// Where one client alias goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshRoute {
    /// The alias's `dnsName`, lowercase.
    pub dns_name: String,
    /// A target group of the same [`ProxyConfig`] that has [`TargetGroupConfig::mesh`].
    pub target_group_arn: String,
}

/// How a mesh port speaks, from the port mapping's `appProtocol`: `http`, `http2` and
/// `grpc` are HTTP (HTTP/1.1 and h2c from clients, the target group's protocol version
/// towards the tasks); no `appProtocol` is TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MeshProtocol {
    Http,
    Tcp,
}

/// What a mesh endpoint's target group does beyond an ALB target group: a deadline per
/// request, retries on 503 and refused streams (within the group's retry budget), and
/// outlier ejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshGroupSettings {
    /// The namespace and discovery name, for metric labels.
    pub namespace: String,
    pub discovery_name: String,
    /// Seconds from the request's arrival to the response's head; 0 disables it. HTTP
    /// only.
    pub per_request_timeout_seconds: u32,
    pub outlier_detection: OutlierDetection,
}

/// Passive health checking as Envoy's outlier detection does it: a target answering
/// `consecutive_failures` 5xx responses (or failing to connect that many times) in a
/// row is ejected for `base_ejection_seconds` times the number of times it was ejected,
/// while at most `max_ejection_percent` of the group's targets are ejected (at least
/// one may be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    pub consecutive_failures: u32,
    pub base_ejection_seconds: u32,
    pub max_ejection_percent: u32,
}

impl Default for OutlierDetection {
    /// Envoy's defaults: 5 in a row, 30 s, 10 %.
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: 5,
            base_ejection_seconds: 30,
            max_ejection_percent: 10,
        }
    }
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
    /// Set on a mesh group's targets once the mesh runs mutual TLS: the proxy connects to
    /// the hop's inbound listener instead of `addr` (health checks still go to `addr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_hop: Option<MeshHop>,
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
    /// Taken out of its mesh target group by outlier detection for now (it still counts
    /// as registered; see [`OutlierDetection`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ejected: bool,
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
    /// The mesh listener (by port) the data plane cannot serve, when the refusal is about
    /// one: the rest can then be served without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_listener_port: Option<u16>,
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
            ejected: false,
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
                    mesh_hop: None,
                }],
                mesh: None,
            }],
            mesh_listeners: vec![],
            mesh_tls: None,
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(json.contains("\"loadBalancers\""), "{json}");
        assert!(json.contains("\"draining\":true"), "{json}");
        let back: ProxyConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn a_config_without_mesh_fields_reads_and_mesh_listeners_round_trip() {
        let cfg: ProxyConfig =
            serde_json::from_str(r#"{"loadBalancers":[],"targetGroups":[]}"#).unwrap();
        assert!(cfg.mesh_listeners.is_empty());
        let l = MeshListener {
            port: 8080,
            protocol: MeshProtocol::Http,
            routes: vec![MeshRoute {
                dns_name: "orders".into(),
                target_group_arn: "arn:tg".into(),
            }],
            idle_timeout_seconds: DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS,
        };
        let json = serde_json::to_value(&l).unwrap();
        assert_eq!(json["protocol"], "http");
        assert_eq!(json["routes"][0]["dnsName"], "orders");
        assert_eq!(serde_json::from_value::<MeshListener>(json).unwrap(), l);
        assert_eq!(OutlierDetection::default().consecutive_failures, 5);
    }

    #[test]
    fn a_refusal_displays_its_reason_and_names_the_load_balancer() {
        let r = ConfigRefusal {
            load_balancer_name: Some("web".into()),
            mesh_listener_port: None,
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
