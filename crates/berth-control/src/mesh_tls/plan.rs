//! [`plan`]: what one node's proxy needs for mutual TLS, from the services, mesh ports,
//! tasks, container instances and mesh targets. Pure: no store, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use berth_model::dataplane::{MeshCaller, MeshHop, MeshInboundEndpoint, MeshTlsConfig};
use berth_model::ecs::{ContainerInstance, Service, Task, TaskStatus};
use berth_model::elb::Target;
use berth_model::mesh_identity::{AllowedCallers, MeshTrust, SpiffeId};

use super::{service_identity, CertificateBook, MESH_INBOUND_ATTRIBUTE};
use crate::mesh::MeshPort;

/// What [`plan`] reads.
pub struct MeshTlsInput<'a> {
    pub services: &'a [Service],
    /// The ports offered in the mesh ([`crate::mesh::mesh_ports`]).
    pub ports: &'a [MeshPort],
    pub tasks: &'a [Task],
    pub instances: &'a [ContainerInstance],
    /// The stored targets (those of groups no mesh port names are ignored).
    pub targets: &'a [Target],
}

/// One node's mutual TLS, before certificates are attached.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshTlsPlan {
    /// The endpoints on this node its inbound listener serves, by server name.
    pub inbound: Vec<MeshInboundEndpoint>,
    /// This node's tasks with their own IP (awsvpc) whose service is in the mesh.
    pub callers: Vec<MeshCaller>,
    pub node_identity: SpiffeId,
    /// What this node presents: the inbound endpoints', the callers' and the node's.
    pub node_identities: BTreeSet<SpiffeId>,
    /// Every identity of the mesh (each service in it) and the node's: what the
    /// certificate book keeps current.
    pub all_identities: BTreeSet<SpiffeId>,
    /// The hop of each mesh target whose node registered an inbound address, by
    /// (target group ARN, target endpoint `ip:port`).
    pub hops: BTreeMap<(String, String), MeshHop>,
}

/// The TLS server name of one endpoint: `t<first 12 letters and digits of the task id>-
/// <port>.<service label>.<namespace>.mesh`. The first label tells the node's
/// endpoints apart; the rest is the service's ([`SpiffeId::mesh_server_name`]), whose
/// certificate is presented for it.
pub fn endpoint_server_name(task_id: &str, port: u32, identity: &SpiffeId) -> String {
    let short: String = task_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(12)
        .collect();
    format!("t{short}-{port}.{}", identity.mesh_server_name())
}

/// The allow list of `port` as identities of its cluster and namespace.
fn allowed_callers(port: &MeshPort) -> AllowedCallers {
    match &port.allowed_callers {
        None => AllowedCallers::Any,
        Some(names) => AllowedCallers::Only(
            names
                .iter()
                .filter_map(|n| SpiffeId::for_service(&port.cluster, &port.namespace, n).ok())
                .collect(),
        ),
    }
}

/// Two allow lists for one endpoint (one port offered under two discovery names): the
/// endpoint cannot tell which name a caller meant, so either list admits.
fn union(a: &AllowedCallers, b: &AllowedCallers) -> AllowedCallers {
    match (a, b) {
        (AllowedCallers::Only(x), AllowedCallers::Only(y)) => {
            AllowedCallers::Only(x.union(y).cloned().collect())
        }
        _ => AllowedCallers::Any,
    }
}

/// The mutual TLS of the node `node_instance_arn` (`None`: every task is this node's).
pub fn plan(
    input: &MeshTlsInput<'_>,
    node_instance_arn: Option<&str>,
    node_identity: SpiffeId,
) -> MeshTlsPlan {
    let is_local = |instance: Option<&String>| match node_instance_arn {
        None => true,
        Some(node) => instance.is_some_and(|i| i == node),
    };
    let identities: BTreeMap<(&str, &str), SpiffeId> = input
        .services
        .iter()
        .filter_map(|s| {
            service_identity(s).map(|id| ((s.cluster_name(), s.service_name.as_str()), id))
        })
        .collect();
    let ports: BTreeMap<String, &MeshPort> = input
        .ports
        .iter()
        .map(|p| (p.target_group_arn(), p))
        .collect();
    let tasks: BTreeMap<&str, &Task> = input
        .tasks
        .iter()
        .map(|t| (t.task_arn.as_str(), t))
        .collect();
    let inbound_of: BTreeMap<&str, SocketAddr> = input
        .instances
        .iter()
        .filter_map(|i| {
            let addr = i.attributes.get(MESH_INBOUND_ATTRIBUTE)?;
            match addr.parse() {
                Ok(a) => Some((i.container_instance_arn.as_str(), a)),
                Err(_) => {
                    tracing::warn!(instance = %i.container_instance_arn, %addr, "mesh inbound address does not parse; its tasks are reached in plaintext");
                    None
                }
            }
        })
        .collect();

    let mut inbound: BTreeMap<String, MeshInboundEndpoint> = BTreeMap::new();
    let mut hops = BTreeMap::new();
    for t in input.targets.iter().filter(|t| t.drained_at.is_none()) {
        let Some(port) = ports.get(&t.target_group_arn) else {
            continue;
        };
        let Some(task) = t.task_arn.as_deref().and_then(|a| tasks.get(a)) else {
            continue;
        };
        let Ok(addr) = t.endpoint().parse::<SocketAddr>() else {
            continue;
        };
        let Ok(identity) = SpiffeId::for_service(&port.cluster, &port.namespace, &port.service)
        else {
            continue;
        };
        let server_name = endpoint_server_name(task.id(), t.port, &identity);
        let instance = task.container_instance_arn.as_ref();
        if is_local(instance) {
            let allowed = allowed_callers(port);
            inbound
                .entry(server_name.clone())
                .and_modify(|e| e.allowed_callers = union(&e.allowed_callers, &allowed))
                .or_insert_with(|| MeshInboundEndpoint {
                    server_name: server_name.clone(),
                    identity: identity.clone(),
                    target: addr,
                    protocol: port.protocol(),
                    allowed_callers: allowed,
                });
        }
        if let Some(via) = instance.and_then(|i| inbound_of.get(i.as_str())) {
            hops.insert(
                (t.target_group_arn.clone(), t.endpoint()),
                MeshHop {
                    inbound: *via,
                    server_name,
                    identity,
                },
            );
        }
    }

    let mut callers: BTreeMap<IpAddr, MeshCaller> = BTreeMap::new();
    for task in input.tasks {
        if task.last_status == TaskStatus::Stopped
            || !is_local(task.container_instance_arn.as_ref())
        {
            continue;
        }
        let Some(identity) = task
            .service_name()
            .and_then(|s| identities.get(&(task.cluster_name(), s)))
        else {
            continue;
        };
        for ip in task
            .containers
            .iter()
            .filter_map(|c| c.private_ipv4_address.as_deref())
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
        {
            callers.insert(
                ip,
                MeshCaller {
                    ip,
                    identity: identity.clone(),
                },
            );
        }
    }

    let inbound: Vec<MeshInboundEndpoint> = inbound.into_values().collect();
    let callers: Vec<MeshCaller> = callers.into_values().collect();
    let mut node_identities: BTreeSet<SpiffeId> = inbound
        .iter()
        .map(|e| e.identity.clone())
        .chain(callers.iter().map(|c| c.identity.clone()))
        .collect();
    node_identities.insert(node_identity.clone());
    let mut all_identities: BTreeSet<SpiffeId> = identities.into_values().collect();
    all_identities.insert(node_identity.clone());
    MeshTlsPlan {
        inbound,
        callers,
        node_identity,
        node_identities,
        all_identities,
        hops,
    }
}

impl MeshTlsPlan {
    /// The configuration the proxy gets: the plan with `trust` and this node's
    /// certificates from `book` (an identity the book lacks is left out).
    pub fn config(&self, trust: MeshTrust, book: &CertificateBook) -> MeshTlsConfig {
        MeshTlsConfig {
            trust,
            identities: self
                .node_identities
                .iter()
                .filter_map(|id| book.get(id).cloned())
                .collect(),
            inbound: self.inbound.clone(),
            callers: self.callers.clone(),
            node_identity: self.node_identity.clone(),
        }
    }
}
