//! The mesh's configuration, derived from the services: each port a service offers in
//! the mesh (`serviceConnectConfiguration.services[]`, a discovery name in a namespace)
//! is a [`MeshPort`] with a mesh target group, and each client-alias port a
//! [`MeshListener`] routing the aliases on it to those groups.
//!
//! Mesh target groups are derived, not stored: they are built from the service, its
//! task definition and its namespace on every pass, so they cannot drift from the
//! service, and nothing has to create or delete them. Their targets are stored (under
//! `/targets/<mesh group name>/`) and registered, drained and removed by the
//! registration reconciler exactly like load balancer targets.
//!
//! What it does not do: read the store (callers hand it services and task definitions)
//! or serve traffic (the data plane does).

use std::collections::BTreeMap;

use berth_model::arn;
use berth_model::dataplane::{
    MeshGroupSettings, MeshListener, MeshProtocol, MeshRoute, OutlierDetection,
    DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS, DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS,
    DEFAULT_MESH_TCP_IDLE_TIMEOUT_SECONDS,
};
use berth_model::ecs::{ApplicationProtocol, Service, TaskDefinition};
use berth_model::elb::{Protocol, TargetGroup};
use berth_model::servicediscovery::named_port;

/// Every mesh target group's name starts with this; apply refuses user target groups
/// named so.
pub const MESH_TARGET_GROUP_PREFIX: &str = "mesh_";
/// Seconds a stopping task's mesh endpoint drains at most. Short, because the mesh's
/// clients are berth's own node proxies, which send a draining endpoint no new request
/// and finish the ones in flight within the per-request timeout; nothing else holds a
/// connection to it.
pub const MESH_DEREGISTRATION_DELAY_SECONDS: u32 = 5;
/// The mesh groups' health check: TCP on the traffic port, every 5 s, 2 to pass, 2 to
/// fail (the mesh's endpoints have no health check path of their own).
pub const MESH_HEALTH_CHECK_INTERVAL_SECONDS: u32 = 5;
pub const MESH_HEALTH_CHECK_TIMEOUT_SECONDS: u32 = 4;
pub const MESH_HEALTHY_THRESHOLD: u32 = 2;
pub const MESH_UNHEALTHY_THRESHOLD: u32 = 2;

/// One port of a service in the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshPort {
    pub cluster: String,
    pub service: String,
    pub namespace: String,
    pub discovery_name: String,
    pub port_name: String,
    /// The container and port the `portName` mapping names in the service's current
    /// task definition (each task registers with its own definition's).
    pub container_name: String,
    pub container_port: u32,
    pub app_protocol: Option<ApplicationProtocol>,
    /// The client aliases: port and lowercase DNS name.
    pub aliases: Vec<(u16, String)>,
    pub per_request_timeout_seconds: u32,
    pub idle_timeout_seconds: u32,
    /// berth's `allowedCallers`: the services of the same cluster and namespace that may
    /// call this port; `None`, any service of the mesh.
    pub allowed_callers: Option<Vec<String>>,
}

/// The name of the mesh target group of `discovery_name` in `namespace`:
/// `mesh_<namespace with dots as underscores>_<discovery name>`, which target group
/// name rules allow (letters, digits, hyphens, underscores) and no two endpoints share
/// (neither part can hold an underscore); past 32 characters, its first 23 and a hash
/// of the whole.
pub fn target_group_name(namespace: &str, discovery_name: &str) -> String {
    let full = format!(
        "{MESH_TARGET_GROUP_PREFIX}{}_{discovery_name}",
        namespace.replace('.', "_")
    );
    if full.len() <= 32 {
        return full;
    }
    format!("{}_{:08x}", &full[..23], fnv1a(full.as_bytes()))
}

/// FNV-1a, 32 bits: stable across builds, so a name stays the same after an upgrade.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// Whether `target_group_arn` is a mesh target group's.
pub fn is_mesh_target_group(target_group_arn: &str) -> bool {
    arn::last_segment(target_group_arn).starts_with(MESH_TARGET_GROUP_PREFIX)
}

/// The ARNs of the mesh target groups of the ports `service` offers, from its
/// configuration alone.
pub fn mesh_target_group_arns(service: &Service) -> Vec<String> {
    let Some(sc) = service
        .service_connect_configuration
        .as_ref()
        .filter(|c| c.enabled)
    else {
        return Vec::new();
    };
    let Some(ns) = sc.namespace_name() else {
        return Vec::new();
    };
    sc.services
        .iter()
        .map(|s| {
            arn::target_group(&target_group_name(
                ns,
                &s.discovery_name().to_ascii_lowercase(),
            ))
        })
        .collect()
}

/// The ports `service` offers in the mesh, with `td` its current task definition. A
/// port whose `portName` the definition lacks is left out (apply refuses it; a
/// definition deregistered since cannot be helped).
pub fn mesh_ports(service: &Service, td: &TaskDefinition) -> Vec<MeshPort> {
    let Some(sc) = service
        .service_connect_configuration
        .as_ref()
        .filter(|c| c.enabled)
    else {
        return Vec::new();
    };
    let Some(ns) = sc.namespace_name() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in &sc.services {
        let Some((c, pm)) = named_port(td, &s.port_name) else {
            continue;
        };
        let timeout = s.timeout.clone().unwrap_or_default();
        let default_idle = match pm.app_protocol {
            Some(_) => DEFAULT_MESH_HTTP_IDLE_TIMEOUT_SECONDS,
            None => DEFAULT_MESH_TCP_IDLE_TIMEOUT_SECONDS,
        };
        out.push(MeshPort {
            cluster: service.cluster_name().to_string(),
            service: service.service_name.clone(),
            namespace: ns.to_string(),
            discovery_name: s.discovery_name().to_ascii_lowercase(),
            port_name: s.port_name.clone(),
            container_name: c.name.clone(),
            container_port: pm.container_port,
            app_protocol: pm.app_protocol,
            aliases: s
                .client_aliases
                .iter()
                .map(|a| (a.port as u16, s.alias_dns_name(a, ns)))
                .collect(),
            per_request_timeout_seconds: timeout
                .per_request_timeout_seconds
                .unwrap_or(DEFAULT_MESH_PER_REQUEST_TIMEOUT_SECONDS),
            idle_timeout_seconds: timeout.idle_timeout_seconds.unwrap_or(default_idle),
            allowed_callers: s.allowed_callers.clone(),
        });
    }
    out
}

impl MeshPort {
    pub fn target_group_name(&self) -> String {
        target_group_name(&self.namespace, &self.discovery_name)
    }

    pub fn target_group_arn(&self) -> String {
        arn::target_group(&self.target_group_name())
    }

    /// `<discoveryName>.<namespace>`: the name DNS publishes the tasks under.
    pub fn fqdn(&self) -> String {
        format!("{}.{}", self.discovery_name, self.namespace)
    }

    pub fn protocol(&self) -> MeshProtocol {
        match self.app_protocol {
            Some(_) => MeshProtocol::Http,
            None => MeshProtocol::Tcp,
        }
    }

    /// The mesh target group: the port's protocol (`appProtocol` http → HTTP1, http2
    /// → HTTP2, grpc → GRPC, none → TCP), a TCP health check on the traffic port, and
    /// a short deregistration delay.
    pub fn target_group(&self) -> TargetGroup {
        let name = self.target_group_name();
        let mut g: TargetGroup =
            serde_json::from_value(serde_json::json!({ "targetGroupName": name }))
                .expect("a target group of defaults");
        g.target_group_arn = arn::target_group(&name);
        let (protocol, version) = match self.app_protocol {
            Some(ApplicationProtocol::Http) => (Protocol::Http, Some("HTTP1")),
            Some(ApplicationProtocol::Http2) => (Protocol::Http, Some("HTTP2")),
            Some(ApplicationProtocol::Grpc) => (Protocol::Http, Some("GRPC")),
            None => (Protocol::Tcp, None),
        };
        g.protocol = protocol;
        g.protocol_version = version.map(str::to_string);
        g.port = self.container_port;
        g.health_check_protocol = Some(Protocol::Tcp);
        g.health_check_interval_seconds = MESH_HEALTH_CHECK_INTERVAL_SECONDS;
        g.health_check_timeout_seconds = MESH_HEALTH_CHECK_TIMEOUT_SECONDS;
        g.healthy_threshold_count = MESH_HEALTHY_THRESHOLD;
        g.unhealthy_threshold_count = MESH_UNHEALTHY_THRESHOLD;
        g.attributes.insert(
            "deregistration_delay.timeout_seconds".into(),
            MESH_DEREGISTRATION_DELAY_SECONDS.to_string(),
        );
        g
    }

    pub fn settings(&self) -> MeshGroupSettings {
        MeshGroupSettings {
            namespace: self.namespace.clone(),
            discovery_name: self.discovery_name.clone(),
            per_request_timeout_seconds: match self.protocol() {
                MeshProtocol::Http => self.per_request_timeout_seconds,
                MeshProtocol::Tcp => 0,
            },
            outlier_detection: OutlierDetection::default(),
        }
    }
}

/// A mesh target group for targets left in a group no service offers any more (the
/// service left the mesh while its tasks drained): the defaults, so they can finish
/// draining.
pub fn leftover_target_group(target_group_arn: &str) -> TargetGroup {
    let name = arn::last_segment(target_group_arn);
    let mut g: TargetGroup = serde_json::from_value(serde_json::json!({
        "targetGroupName": name,
        "protocol": "TCP",
        "healthCheckProtocol": "TCP",
        "healthCheckIntervalSeconds": MESH_HEALTH_CHECK_INTERVAL_SECONDS,
        "healthCheckTimeoutSeconds": MESH_HEALTH_CHECK_TIMEOUT_SECONDS,
        "healthyThresholdCount": MESH_HEALTHY_THRESHOLD,
        "unhealthyThresholdCount": MESH_UNHEALTHY_THRESHOLD,
    }))
    .expect("a target group of defaults");
    g.target_group_arn = target_group_arn.to_string();
    g.attributes.insert(
        "deregistration_delay.timeout_seconds".into(),
        MESH_DEREGISTRATION_DELAY_SECONDS.to_string(),
    );
    g
}

/// One listener per client-alias port, with a route for every alias on it (sorted by
/// name). The idle timeout is the longest its aliases' services ask for (0, none, if
/// any asks for none). Ports claimed by both HTTP and TCP aliases (apply refuses that)
/// keep the first port's protocol and only its aliases of that protocol.
pub fn mesh_listeners(ports: &[MeshPort]) -> Vec<MeshListener> {
    let mut by_port: BTreeMap<u16, MeshListener> = BTreeMap::new();
    for p in ports {
        for (port, dns_name) in &p.aliases {
            let l = by_port.entry(*port).or_insert_with(|| MeshListener {
                port: *port,
                protocol: p.protocol(),
                routes: Vec::new(),
                idle_timeout_seconds: p.idle_timeout_seconds,
            });
            if l.protocol != p.protocol()
                || (l.protocol == MeshProtocol::Tcp && !l.routes.is_empty())
            {
                continue;
            }
            if l.routes.iter().any(|r| &r.dns_name == dns_name) {
                continue;
            }
            l.idle_timeout_seconds = if l.idle_timeout_seconds == 0 || p.idle_timeout_seconds == 0 {
                0
            } else {
                l.idle_timeout_seconds.max(p.idle_timeout_seconds)
            };
            l.routes.push(MeshRoute {
                dns_name: dns_name.clone(),
                target_group_arn: p.target_group_arn(),
            });
        }
    }
    let mut out: Vec<MeshListener> = by_port.into_values().collect();
    for l in &mut out {
        l.routes.sort_by(|a, b| a.dns_name.cmp(&b.dns_name));
    }
    out
}

#[cfg(test)]
mod tests;
