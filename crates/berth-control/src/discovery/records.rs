//! The pure builder of [`DiscoveryRecords`]: from namespaces, services, tasks, task
//! definitions, instances and target health, which names answer what.
//!
//! Rules:
//! - A service with `serviceRegistries` (a discovery service `<name>` in a namespace) or
//!   `serviceConnectConfiguration` (each port's discovery name) publishes its tasks under
//!   `<discoveryName>.<namespace>`: awsvpc tasks as A records with the task's IP;
//!   bridge and host tasks as SRV `1 1 <host port> <task id>.<discoveryName>.<namespace>`
//!   plus an A record for that target name with the task's host address. The port is
//!   the registry's `containerName:containerPort` (or the portName's mapping).
//! - Only tasks RUNNING with desired status RUNNING count; of those, the healthy ones
//!   (container health not UNHEALTHY, healthy in every load balancer target group of
//!   the service, and for a mesh port healthy or still in its initial checks in its
//!   mesh group). When none is healthy, up to [`FAIL_OPEN_RECORDS`] of the others, as
//!   Cloud Map fails open.
//! - A client alias is a `node_proxy` name: it answers A with the node's mesh proxy.
//!   When an alias is also a discovery name (the default `dnsName`), the name is
//!   answered by the proxy for A and keeps its SRV records.
//! - TTLs come from the namespace (`dnsTtlSeconds`).
//!
//! What it does not do: read the store or talk to the data plane ([`super`] does).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_model::discovery::{DiscoveryRecords, DnsName, SrvRecord, DEFAULT_DNS_TTL_SECONDS};
use berth_model::ecs::{
    ContainerInstance, HealthStatus, NetworkMode, Service, Task, TaskDefinition, TaskStatus,
};
use berth_model::elb::{TargetHealth, TargetHealthState};
use berth_model::servicediscovery::{parse_discovery_service_arn, Namespace};

use crate::mesh;
use crate::registration::task_endpoint;

/// How many unhealthy records a name answers with when it has no healthy one (Cloud
/// Map's MULTIVALUE routing).
pub const FAIL_OPEN_RECORDS: usize = 8;

/// A target's state as the data plane (or, before it reported, the store) has it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetView {
    pub health: TargetHealth,
    pub in_flight: u64,
    pub ejected: bool,
}

/// Everything the builder reads.
#[derive(Debug, Default)]
pub struct DiscoveryInput {
    pub namespaces: Vec<Namespace>,
    pub services: Vec<Service>,
    pub tasks: Vec<Task>,
    /// By task definition ARN: the services' and the tasks' definitions.
    pub definitions: BTreeMap<String, TaskDefinition>,
    /// By container instance ARN.
    pub instances: BTreeMap<String, ContainerInstance>,
    /// (target group ARN, task ARN) → the task's target in that group.
    pub targets: BTreeMap<(String, String), TargetView>,
}

/// Where a group of records comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKind {
    /// `serviceRegistries[]`.
    Registry,
    /// A port in the mesh, with its target group and client aliases (port, DNS name).
    Mesh {
        port_name: String,
        target_group_arn: String,
        aliases: Vec<(u16, String)>,
        /// berth's `allowedCallers` of the port (`None`: any service of the mesh).
        allowed_callers: Option<Vec<String>>,
    },
}

/// One discovery name of a service and its tasks' endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointGroup {
    pub namespace: String,
    pub discovery_name: String,
    pub kind: GroupKind,
    pub ttl: u32,
    pub endpoints: Vec<Endpoint>,
}

/// One task's endpoint for a discovery name.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub task_id: String,
    pub ip: Ipv4Addr,
    pub port: u32,
    /// Published as SRV with a target name (bridge and host tasks), not as A.
    pub srv: bool,
    pub healthy: bool,
    /// Why it is not healthy, or `None`.
    pub reason: Option<String>,
    /// Its state in the mesh target group (mesh ports only).
    pub mesh: Option<TargetView>,
    /// Whether DNS answers with it (healthy, or failing open).
    pub published: bool,
}

impl EndpointGroup {
    /// `<discoveryName>.<namespace>`.
    pub fn fqdn(&self) -> String {
        format!("{}.{}", self.discovery_name, self.namespace)
    }

    /// The SRV target name of a bridge or host endpoint.
    pub fn srv_target(&self, e: &Endpoint) -> String {
        format!("{}.{}", e.task_id, self.fqdn())
    }
}

impl DiscoveryInput {
    fn ttl(&self, namespace: &str) -> u32 {
        self.namespaces
            .iter()
            .find(|n| n.name == namespace)
            .map(|n| n.dns_ttl_seconds)
            .unwrap_or(DEFAULT_DNS_TTL_SECONDS)
    }

    /// The endpoint groups of `service`, with each endpoint's health and whether it is
    /// published.
    pub fn endpoint_groups(&self, service: &Service) -> Vec<EndpointGroup> {
        let mut groups = Vec::new();
        let tasks: Vec<&Task> = {
            let mut t: Vec<&Task> = self
                .tasks
                .iter()
                .filter(|t| {
                    t.cluster_name() == service.cluster_name()
                        && t.service_name() == Some(service.service_name.as_str())
                        && t.last_status == TaskStatus::Running
                        && t.desired_status == TaskStatus::Running
                })
                .collect();
            t.sort_by(|a, b| a.id().cmp(b.id()));
            t
        };
        for r in &service.service_registries {
            let Some((ns, name)) = r
                .registry_arn
                .as_deref()
                .and_then(parse_discovery_service_arn)
            else {
                continue;
            };
            let endpoints = tasks
                .iter()
                .filter_map(|t| {
                    let td = self.definitions.get(&t.task_definition_arn)?;
                    let (ip, port, srv) = self.address(
                        t,
                        td,
                        r.container_name.as_deref(),
                        r.container_port.or(r.port),
                    )?;
                    let (healthy, reason) = self.task_health(service, t);
                    Some(Endpoint {
                        task_id: t.id().to_string(),
                        ip,
                        port,
                        srv,
                        healthy,
                        reason,
                        mesh: None,
                        published: false,
                    })
                })
                .collect();
            groups.push(EndpointGroup {
                namespace: ns.to_string(),
                discovery_name: name.to_ascii_lowercase(),
                kind: GroupKind::Registry,
                ttl: self.ttl(ns),
                endpoints,
            });
        }
        if let Some(td) = self.definitions.get(&service.task_definition) {
            for p in mesh::mesh_ports(service, td) {
                let tg = p.target_group_arn();
                let endpoints = tasks
                    .iter()
                    .filter_map(|t| {
                        let td = self.definitions.get(&t.task_definition_arn)?;
                        let (container, port) = mesh::mesh_ports(service, td)
                            .into_iter()
                            .find(|q| q.discovery_name == p.discovery_name)
                            .map(|q| (q.container_name, q.container_port))?;
                        let (ip, port, srv) = self.address(t, td, Some(&container), Some(port))?;
                        let (mut healthy, mut reason) = self.task_health(service, t);
                        let view = self.targets.get(&(tg.clone(), t.task_arn.clone())).cloned();
                        let mesh_state = view.as_ref().map(|v| v.health.state);
                        if healthy
                            && !matches!(
                                mesh_state,
                                Some(
                                    TargetHealthState::Healthy
                                        | TargetHealthState::Initial
                                        | TargetHealthState::Unavailable
                                )
                            )
                        {
                            healthy = false;
                            reason = Some(match mesh_state {
                                Some(s) => format!("{} in the mesh", s.as_str()),
                                None => "not registered in the mesh yet".to_string(),
                            });
                        }
                        Some(Endpoint {
                            task_id: t.id().to_string(),
                            ip,
                            port,
                            srv,
                            healthy,
                            reason,
                            mesh: view,
                            published: false,
                        })
                    })
                    .collect();
                groups.push(EndpointGroup {
                    ttl: self.ttl(&p.namespace),
                    namespace: p.namespace,
                    discovery_name: p.discovery_name,
                    kind: GroupKind::Mesh {
                        port_name: p.port_name,
                        target_group_arn: tg,
                        aliases: p.aliases,
                        allowed_callers: p.allowed_callers,
                    },
                    endpoints,
                });
            }
        }
        for g in &mut groups {
            let any_healthy = g.endpoints.iter().any(|e| e.healthy);
            let mut open = FAIL_OPEN_RECORDS;
            for e in &mut g.endpoints {
                e.published = if any_healthy {
                    e.healthy
                } else if open > 0 {
                    open -= 1;
                    true
                } else {
                    false
                };
            }
        }
        groups
    }

    /// The (ip, port, srv) a task is published with: the task's own IP in awsvpc mode
    /// (an A record), else its host's address and the host port bound to
    /// `container:port` (an SRV record).
    fn address(
        &self,
        t: &Task,
        td: &TaskDefinition,
        container: Option<&str>,
        port: Option<u32>,
    ) -> Option<(Ipv4Addr, u32, bool)> {
        if td.network_mode == NetworkMode::Awsvpc {
            let ip = t
                .containers
                .iter()
                .filter(|c| container.is_none_or(|n| c.name == n))
                .find_map(|c| c.private_ipv4_address.as_deref())?;
            return Some((ip.parse().ok()?, port.unwrap_or(0), false));
        }
        let instance = t
            .container_instance_arn
            .as_ref()
            .and_then(|a| self.instances.get(a));
        let (ip, host_port) = task_endpoint(t, instance, td.network_mode, container?, port?)?;
        Some((ip.parse().ok()?, host_port, true))
    }

    /// Whether a RUNNING task counts healthy for DNS apart from the mesh: container
    /// health not UNHEALTHY and healthy in every load balancer target group.
    fn task_health(&self, service: &Service, t: &Task) -> (bool, Option<String>) {
        if t.health_status == HealthStatus::Unhealthy {
            return (false, Some("container health check UNHEALTHY".into()));
        }
        for lb in &service.load_balancers {
            let state = self
                .targets
                .get(&(lb.target_group_arn.clone(), t.task_arn.clone()))
                .map(|v| v.health.state);
            if !matches!(
                state,
                Some(TargetHealthState::Healthy | TargetHealthState::Unavailable)
            ) {
                let name = berth_model::arn::last_segment(&lb.target_group_arn);
                return (
                    false,
                    Some(match state {
                        Some(s) => format!("{} in target group {name}", s.as_str()),
                        None => format!("not registered in target group {name}"),
                    }),
                );
            }
        }
        (true, None)
    }

    /// Every name the DNS servers answer for.
    pub fn records(&self) -> DiscoveryRecords {
        let mut names: BTreeMap<String, DnsName> = BTreeMap::new();
        let entry = |names: &mut BTreeMap<String, DnsName>, name: &str, ttl: u32| {
            names.entry(name.to_string()).or_insert_with(|| DnsName {
                name: name.to_string(),
                ttl,
                node_proxy: false,
                a: Vec::new(),
                srv: Vec::new(),
            });
        };
        let mut aliases: Vec<(String, u32)> = Vec::new();
        for s in self.services.iter().filter(|s| s.status == "ACTIVE") {
            for g in self.endpoint_groups(s) {
                let fqdn = g.fqdn();
                entry(&mut names, &fqdn, g.ttl);
                for e in g.endpoints.iter().filter(|e| e.published) {
                    if e.srv {
                        let target = g.srv_target(e);
                        entry(&mut names, &target, g.ttl);
                        names.get_mut(&target).expect("added").a.push(e.ip);
                        names.get_mut(&fqdn).expect("added").srv.push(SrvRecord {
                            priority: 1,
                            weight: 1,
                            port: e.port as u16,
                            target,
                        });
                    } else {
                        names.get_mut(&fqdn).expect("added").a.push(e.ip);
                    }
                }
                if let GroupKind::Mesh { aliases: a, .. } = &g.kind {
                    aliases.extend(a.iter().map(|(_, dns)| (dns.clone(), g.ttl)));
                }
            }
        }
        for (dns, ttl) in aliases {
            entry(&mut names, &dns, ttl);
            let n = names.get_mut(&dns).expect("added");
            n.node_proxy = true;
            n.a.clear();
        }
        let mut names: Vec<DnsName> = names.into_values().collect();
        for n in &mut names {
            n.a.sort();
            n.a.dedup();
            n.srv
                .sort_by(|a, b| a.target.cmp(&b.target).then(a.port.cmp(&b.port)));
        }
        let mut zones: Vec<String> = self.namespaces.iter().map(|n| n.name.clone()).collect();
        zones.sort();
        DiscoveryRecords { zones, names }
    }
}
