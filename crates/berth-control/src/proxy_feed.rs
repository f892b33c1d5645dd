//! Feeds the data plane: turns the load balancers, target groups and targets in the store,
//! and the mesh derived from the services ([`crate::mesh`]) with its mutual TLS
//! ([`crate::mesh_tls`]: trust, identities, inbound endpoints, callers, and each mesh
//! target's hop), into a [`ProxyConfig`] snapshot for a [`DataPlane`], and copies what the data plane
//! observes (target health, draining finished) back into the target records. An agent's
//! node gets its configuration, mesh and mutual TLS included, from [`agent_node_config`]
//! (`agent_node`), read over the node link.
//!
//! What it does not do: know the proxy. It speaks the contract types of
//! [`berth_model::dataplane`] through the [`DataPlane`] trait.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use berth_model::arn;
use berth_model::dataplane::{
    MeshGroupSettings, MeshTlsConfig, OutlierDetection, ProxyConfig, ProxyTarget, TargetGroupConfig,
};
use berth_model::ecs::cluster_query::InstanceView;
use berth_model::ecs::{ContainerInstance, Service};
use berth_model::elb::{Target, TargetHealthState};
use berth_model::elb_nodes;
use berth_model::time;

use crate::data_plane::DataPlane;
use crate::db::{self, Db};
use crate::error::ControlError;
use crate::mesh;
use crate::mesh_tls;

/// Every port the stored ACTIVE services offer in the mesh, each with its service's
/// current task definition.
pub async fn mesh_ports_of(db: &Db) -> Result<Vec<mesh::MeshPort>, ControlError> {
    let mut out = Vec::new();
    for s in db.services(None).await? {
        let s = s.value;
        if s.status != "ACTIVE"
            || !s
                .service_connect_configuration
                .as_ref()
                .is_some_and(|c| c.enabled)
        {
            continue;
        }
        if let Some(td) = db.resolve_task_definition(&s.task_definition).await? {
            out.extend(mesh::mesh_ports(&s, &td));
        }
    }
    Ok(out)
}

/// What the data plane made of the load balancers: listener ARN → bound address, and
/// load balancer name → why it could not be served.
#[derive(Debug, Default)]
pub struct ProxyState {
    pub bound: BTreeMap<String, SocketAddr>,
    pub failed: BTreeMap<String, String>,
    /// Mesh listener port → why the data plane could not serve it.
    pub failed_mesh_listeners: BTreeMap<u16, String>,
}

pub type BoundListeners = Arc<RwLock<ProxyState>>;

pub struct ProxyFeed {
    pub db: Db,
    pub data_plane: Arc<dyn DataPlane>,
    pub bound: BoundListeners,
    /// The mesh's CA, certificates and settings ([`crate::mesh_tls`]).
    pub mesh_tls: mesh_tls::MeshTls,
}

impl ProxyFeed {
    pub fn new(db: Db, data_plane: Arc<dyn DataPlane>) -> Self {
        Self {
            db,
            data_plane,
            bound: Arc::default(),
            mesh_tls: mesh_tls::MeshTls::default(),
        }
    }

    /// Builds the proxy's configuration from the store and applies it: the load
    /// balancers this node serves ([`elb_nodes`]: by default every one without
    /// `berth.nodes`, as this is a server's node), every target group (so the node's
    /// health checks cover targets of load balancers other nodes serve, and the
    /// reconcilers see their health), and the mesh ([`crate::mesh`]): a target group per
    /// port a service offers in the mesh and a listener per client-alias port.
    pub async fn push_config(&self) -> Result<(), ControlError> {
        let mut lbs = self.db.load_balancers().await?;
        if let Some(own) = self.mesh_tls.settings().node_instance_arn() {
            let instances = self.db.instances(None).await?;
            // Before this node's instance is registered, it serves what a server serves.
            match instances.iter().find(|i| i.container_instance_arn == own) {
                Some(inst) => lbs.retain(|lb| elb_nodes::serves_on(lb, &node_view(inst))),
                None => lbs.retain(|lb| !lb.attributes.contains_key(elb_nodes::NODES_ATTRIBUTE)),
            }
        }
        let tgs = self.db.target_groups().await?;
        let targets = self.db.targets(None).await?;
        let ports = mesh_ports_of(&self.db).await?;
        let mut groups: Vec<TargetGroupConfig> = tgs
            .into_iter()
            .map(|tg| TargetGroupConfig {
                targets: proxy_targets(&targets, &tg.target_group_arn),
                group: tg,
                mesh: None,
            })
            .collect();
        let mut mesh_groups = mesh_target_groups(&ports, &targets);
        let mesh_tls = self.mesh_tls_plan(&ports, &targets).await?;
        if let Some((_, plan)) = &mesh_tls {
            attach_hops(&mut mesh_groups, plan);
        }
        groups.extend(mesh_groups);
        let mesh_tls = mesh_tls.map(|(config, _)| config);
        let listeners = mesh::mesh_listeners(&ports);
        let applied = apply_leaving_out_refused(
            self.data_plane.as_ref(),
            ProxyConfig {
                load_balancers: lbs,
                target_groups: groups,
                mesh_listeners: listeners,
                mesh_tls,
            },
        )
        .await?;
        let newly_failed: Vec<(u16, String)> = {
            let mut st = self.bound.write().expect("proxy state lock");
            for (name, why) in &applied.failed {
                if st.failed.get(name) != Some(why) {
                    tracing::warn!(load_balancer = %name, reason = %why, "load balancer failed");
                }
            }
            let newly = applied
                .failed_mesh_listeners
                .iter()
                .filter(|(port, why)| st.failed_mesh_listeners.get(*port) != Some(*why))
                .map(|(p, w)| (*p, w.clone()))
                .collect();
            *st = applied;
            newly
        };
        for (port, why) in newly_failed {
            tracing::warn!(port, reason = %why, "mesh listener failed");
            self.record_mesh_listener_failure(&ports, port, &why)
                .await?;
        }
        Ok(())
    }

    /// The mesh's mutual TLS for this node, and the plan it came from (for the targets'
    /// hops); `None` while no service is in the mesh. Creates or loads the CA and
    /// issues or renews certificates on the way ([`crate::mesh_tls`]).
    async fn mesh_tls_plan(
        &self,
        ports: &[mesh::MeshPort],
        targets: &[db::Versioned<Target>],
    ) -> Result<Option<(MeshTlsConfig, mesh_tls::MeshTlsPlan)>, ControlError> {
        let settings = self.mesh_tls.settings();
        let Some(plan) = read_mesh_tls_plan(
            &self.db,
            ports,
            targets,
            settings.node_instance_arn().as_deref(),
            settings.node_identity()?,
        )
        .await?
        else {
            return Ok(None);
        };
        let (ca, state) = self
            .mesh_tls
            .refresh(&self.db, &plan.all_identities, time::now())
            .await?;
        let config = plan.config(ca.trust(), &state.1);
        Ok(Some((config, plan)))
    }

    /// Records on each service with a client alias on `port` that the data plane could
    /// not serve that port's mesh listener, and why.
    async fn record_mesh_listener_failure(
        &self,
        ports: &[mesh::MeshPort],
        port: u16,
        why: &str,
    ) -> Result<(), ControlError> {
        let owners: BTreeSet<(&str, &str)> = ports
            .iter()
            .filter(|p| p.aliases.iter().any(|(alias_port, _)| *alias_port == port))
            .map(|p| (p.cluster.as_str(), p.service.as_str()))
            .collect();
        let now = time::now();
        for (cluster, service) in owners {
            let message = format!(
                "(service {service}) the mesh could not serve client alias port {port}: {why}"
            );
            self.db
                .update::<Service, _>(&db::service_key(cluster, service), |s| {
                    s.push_event(uuid::Uuid::new_v4().to_string(), now, message.clone());
                    true
                })
                .await?;
        }
        Ok(())
    }

    /// Copies target health and drained flags from the data plane into the store.
    pub async fn pull_health(&self) -> Result<(), ControlError> {
        let statuses = self.data_plane.target_statuses();
        if statuses.is_empty() {
            return Ok(());
        }
        let targets = self.db.targets(None).await?;
        let by_addr: BTreeMap<(String, String), &db::Versioned<Target>> = targets
            .iter()
            .map(|t| ((t.value.target_group_arn.clone(), t.value.endpoint()), t))
            .collect();
        let now = time::now();
        for s in statuses {
            let Some(t) = by_addr.get(&(s.target_group_arn.clone(), s.addr.to_string())) else {
                continue;
            };
            let mut next = t.value.clone();
            if next.deregistering_at.is_some() {
                if s.drained && next.drained_at.is_none() {
                    next.drained_at = Some(now);
                }
                next.target_health.state = TargetHealthState::Draining;
            } else {
                next.target_health = s.health.clone();
            }
            if next != t.value {
                // A conflict means the record moved on; the next pass sees the new one.
                let _ = self.db.put_if(t, &next).await;
            }
        }
        Ok(())
    }

    pub fn bound_listeners(&self) -> BoundListeners {
        self.bound.clone()
    }
}

/// The targets of target group `arn` as the data plane takes them: drained ones left
/// out, deregistering ones draining.
fn proxy_targets(targets: &[db::Versioned<Target>], arn: &str) -> Vec<ProxyTarget> {
    let mut list = Vec::new();
    for t in targets.iter().filter(|t| t.value.target_group_arn == arn) {
        let t = &t.value;
        if t.drained_at.is_some() {
            continue;
        }
        let Ok(addr) = t.endpoint().parse::<SocketAddr>() else {
            tracing::warn!(target = %t.endpoint(), "target address does not parse; skipped");
            continue;
        };
        list.push(ProxyTarget {
            id: t.id.clone(),
            port: t.port,
            addr,
            draining: t.deregistering_at.is_some(),
            mesh_hop: None,
        });
    }
    list
}

/// The mesh's target groups with their targets: one per port a service offers in the
/// mesh ([`mesh::MeshPort`]), and one per mesh group no service offers any more whose
/// targets still drain.
fn mesh_target_groups(
    ports: &[mesh::MeshPort],
    targets: &[db::Versioned<Target>],
) -> Vec<TargetGroupConfig> {
    let mut groups = Vec::new();
    let mut mesh_arns = BTreeSet::new();
    for p in ports {
        let arn = p.target_group_arn();
        if !mesh_arns.insert(arn.clone()) {
            continue;
        }
        groups.push(TargetGroupConfig {
            targets: proxy_targets(targets, &arn),
            group: p.target_group(),
            mesh: Some(p.settings()),
        });
    }
    let leftovers: BTreeSet<&str> = targets
        .iter()
        .map(|t| t.value.target_group_arn.as_str())
        .filter(|a| mesh::is_mesh_target_group(a) && !mesh_arns.contains(*a))
        .collect();
    for arn in leftovers {
        let group = mesh::leftover_target_group(arn);
        groups.push(TargetGroupConfig {
            targets: proxy_targets(targets, arn),
            mesh: Some(MeshGroupSettings {
                namespace: String::new(),
                discovery_name: group.target_group_name.clone(),
                per_request_timeout_seconds: 0,
                outlier_detection: OutlierDetection::default(),
            }),
            group,
        });
    }
    groups
}

/// Gives each mesh target the hop `plan` found for it (through its node's inbound
/// listener).
fn attach_hops(groups: &mut [TargetGroupConfig], plan: &mesh_tls::MeshTlsPlan) {
    for g in groups.iter_mut().filter(|g| g.mesh.is_some()) {
        let arn = &g.group.target_group_arn;
        for t in &mut g.targets {
            t.mesh_hop = plan.hops.get(&(arn.clone(), t.addr.to_string())).cloned();
        }
    }
}

/// The mutual TLS plan of the node of `node_instance_arn` ([`mesh_tls::plan`]), from the
/// services, tasks and instances in the store; `None` while no service is in the mesh.
async fn read_mesh_tls_plan(
    db: &Db,
    ports: &[mesh::MeshPort],
    targets: &[db::Versioned<Target>],
    node_instance_arn: Option<&str>,
    node_identity: berth_model::mesh_identity::SpiffeId,
) -> Result<Option<mesh_tls::MeshTlsPlan>, ControlError> {
    let services: Vec<Service> = db
        .services(None)
        .await?
        .into_iter()
        .map(|s| s.value)
        .collect();
    if !services
        .iter()
        .any(|s| mesh_tls::service_identity(s).is_some())
    {
        return Ok(None);
    }
    let tasks: Vec<_> = db.tasks(None).await?.into_iter().map(|t| t.value).collect();
    let instances = db.instances(None).await?;
    let targets: Vec<Target> = targets.iter().map(|t| t.value.clone()).collect();
    Ok(Some(mesh_tls::plan(
        &mesh_tls::MeshTlsInput {
            services: &services,
            ports,
            tasks: &tasks,
            instances: &instances,
            targets: &targets,
        },
        node_instance_arn,
        node_identity,
    )))
}

/// `inst` as a load balancer's `berth.nodes` expression sees it: its attributes, ids,
/// registration time and connection (not its tasks).
fn node_view(inst: &ContainerInstance) -> InstanceView<'_> {
    let id = arn::last_segment(&inst.container_instance_arn);
    InstanceView {
        instance_id: id,
        ec2_instance_id: if inst.ec2_instance_id.is_empty() {
            id
        } else {
            &inst.ec2_instance_id
        },
        attributes: &inst.attributes,
        registered_at: inst.registered_at,
        running_tasks_count: 0,
        task_groups: Vec::new(),
        agent_connected: inst.agent_connected,
    }
}

/// Applies `config` to `data_plane`, leaving out each load balancer or mesh listener
/// it refuses (its port is taken, say) and applying the rest; every target change goes
/// on. Returns what was bound and what was left out, and why.
pub async fn apply_leaving_out_refused(
    data_plane: &dyn DataPlane,
    mut config: ProxyConfig,
) -> Result<ProxyState, ControlError> {
    let mut failed = BTreeMap::new();
    let mut failed_mesh = BTreeMap::new();
    loop {
        match data_plane.apply(config.clone()).await {
            Ok(bound) => {
                return Ok(ProxyState {
                    bound,
                    failed,
                    failed_mesh_listeners: failed_mesh,
                })
            }
            Err(refusal) => {
                if let Some(i) = refusal
                    .mesh_listener_port
                    .and_then(|port| config.mesh_listeners.iter().position(|l| l.port == port))
                {
                    let l = config.mesh_listeners.remove(i);
                    failed_mesh.insert(l.port, refusal.reason);
                    continue;
                }
                match refusal.load_balancer_name.as_ref().and_then(|name| {
                    config
                        .load_balancers
                        .iter()
                        .position(|lb| &lb.load_balancer_name == name)
                }) {
                    Some(i) => {
                        let lb = config.load_balancers.remove(i);
                        failed.insert(lb.load_balancer_name, refusal.reason);
                    }
                    None => return Err(ControlError::DataPlaneRefused(refusal)),
                }
            }
        }
    }
}

mod agent_node;

pub use agent_node::{agent_node_config, AgentNodesMesh};

#[cfg(test)]
mod agent_node_tests;
#[cfg(test)]
mod mesh_tests;
#[cfg(test)]
mod mesh_tls_tests;
#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod tests;
