//! Feeds the data plane: turns the load balancers, target groups and targets in the store,
//! and the mesh derived from the services ([`crate::mesh`]) with its mutual TLS
//! ([`crate::mesh_tls`]: trust, identities, inbound endpoints, callers, and each mesh
//! target's hop), into a [`ProxyConfig`] snapshot for a [`DataPlane`], and copies what the data plane
//! observes (target health, draining finished) back into the target records.
//!
//! What it does not do: know the proxy. It speaks the contract types of
//! [`berth_model::dataplane`] through the [`DataPlane`] trait.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use berth_model::dataplane::{
    MeshGroupSettings, MeshTlsConfig, OutlierDetection, ProxyConfig, ProxyTarget, TargetGroupConfig,
};
use berth_model::ecs::Service;
use berth_model::elb::{Target, TargetHealthState};
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
    /// balancers and target groups, and the mesh ([`crate::mesh`]): a target group per
    /// port a service offers in the mesh and a listener per client-alias port.
    pub async fn push_config(&self) -> Result<(), ControlError> {
        let lbs = self.db.load_balancers().await?;
        let tgs = self.db.target_groups().await?;
        let targets = self.db.targets(None).await?;
        let ports = mesh_ports_of(&self.db).await?;
        let proxy_targets = |arn: &str| -> Vec<ProxyTarget> {
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
        };
        let mut groups = Vec::new();
        for tg in tgs {
            groups.push(TargetGroupConfig {
                targets: proxy_targets(&tg.target_group_arn),
                group: tg,
                mesh: None,
            });
        }
        let mut mesh_arns = BTreeSet::new();
        for p in &ports {
            let arn = p.target_group_arn();
            if !mesh_arns.insert(arn.clone()) {
                continue;
            }
            groups.push(TargetGroupConfig {
                targets: proxy_targets(&arn),
                group: p.target_group(),
                mesh: Some(p.settings()),
            });
        }
        let mesh_tls = self.mesh_tls_plan(&ports, &targets).await?;
        if let Some((_, plan)) = &mesh_tls {
            for g in groups.iter_mut().filter(|g| g.mesh.is_some()) {
                let arn = &g.group.target_group_arn;
                for t in &mut g.targets {
                    t.mesh_hop = plan.hops.get(&(arn.clone(), t.addr.to_string())).cloned();
                }
            }
        }
        let mesh_tls = mesh_tls.map(|(config, _)| config);
        // Targets still draining from a group no service offers any more.
        let leftovers: BTreeSet<&str> = targets
            .iter()
            .map(|t| t.value.target_group_arn.as_str())
            .filter(|a| mesh::is_mesh_target_group(a) && !mesh_arns.contains(*a))
            .collect();
        for arn in leftovers {
            let group = mesh::leftover_target_group(arn);
            groups.push(TargetGroupConfig {
                targets: proxy_targets(arn),
                mesh: Some(MeshGroupSettings {
                    namespace: String::new(),
                    discovery_name: group.target_group_name.clone(),
                    per_request_timeout_seconds: 0,
                    outlier_detection: OutlierDetection::default(),
                }),
                group,
            });
        }
        let mut listeners = mesh::mesh_listeners(&ports);
        // A load balancer or mesh listener the data plane cannot serve (its port is
        // taken, say) is left out and reported as failed; the others, and every target
        // change, go on.
        let mut lbs = lbs;
        let mut failed = BTreeMap::new();
        let mut failed_mesh = BTreeMap::new();
        loop {
            let cfg = ProxyConfig {
                load_balancers: lbs.clone(),
                target_groups: groups.clone(),
                mesh_listeners: listeners.clone(),
                mesh_tls: mesh_tls.clone(),
            };
            match self.data_plane.apply(cfg).await {
                Ok(bound) => {
                    let newly_failed: Vec<(u16, String)> = {
                        let mut st = self.bound.write().expect("proxy state lock");
                        for (name, why) in &failed {
                            if st.failed.get(name) != Some(why) {
                                tracing::warn!(load_balancer = %name, reason = %why, "load balancer failed");
                            }
                        }
                        let newly = failed_mesh
                            .iter()
                            .filter(|(port, why)| st.failed_mesh_listeners.get(*port) != Some(*why))
                            .map(|(p, w)| (*p, w.clone()))
                            .collect();
                        *st = ProxyState {
                            bound,
                            failed,
                            failed_mesh_listeners: failed_mesh,
                        };
                        newly
                    };
                    for (port, why) in newly_failed {
                        tracing::warn!(port, reason = %why, "mesh listener failed");
                        self.record_mesh_listener_failure(&ports, port, &why)
                            .await?;
                    }
                    return Ok(());
                }
                Err(refusal) => {
                    if let Some(i) = refusal
                        .mesh_listener_port
                        .and_then(|port| listeners.iter().position(|l| l.port == port))
                    {
                        let l = listeners.remove(i);
                        failed_mesh.insert(l.port, refusal.reason);
                        continue;
                    }
                    match refusal
                        .load_balancer_name
                        .as_ref()
                        .and_then(|name| lbs.iter().position(|lb| &lb.load_balancer_name == name))
                    {
                        Some(i) => {
                            let lb = lbs.remove(i);
                            failed.insert(lb.load_balancer_name, refusal.reason);
                        }
                        None => return Err(ControlError::DataPlaneRefused(refusal)),
                    }
                }
            }
        }
    }

    /// The mesh's mutual TLS for this node, and the plan it came from (for the targets'
    /// hops); `None` while no service is in the mesh. Creates or loads the CA and
    /// issues or renews certificates on the way ([`crate::mesh_tls`]).
    async fn mesh_tls_plan(
        &self,
        ports: &[mesh::MeshPort],
        targets: &[db::Versioned<Target>],
    ) -> Result<Option<(MeshTlsConfig, mesh_tls::MeshTlsPlan)>, ControlError> {
        let services: Vec<Service> = self
            .db
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
        let tasks: Vec<_> = self
            .db
            .tasks(None)
            .await?
            .into_iter()
            .map(|t| t.value)
            .collect();
        let instances = self.db.instances(None).await?;
        let targets: Vec<Target> = targets.iter().map(|t| t.value.clone()).collect();
        let settings = self.mesh_tls.settings();
        let plan = mesh_tls::plan(
            &mesh_tls::MeshTlsInput {
                services: &services,
                ports,
                tasks: &tasks,
                instances: &instances,
                targets: &targets,
            },
            settings.node_instance_arn().as_deref(),
            settings.node_identity()?,
        );
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

#[cfg(test)]
mod mesh_tests;
#[cfg(test)]
mod mesh_tls_tests;
#[cfg(test)]
mod tests;
