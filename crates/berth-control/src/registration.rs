//! The target-registration reconciler: puts a service's running tasks into its target
//! groups and takes stopping ones out, draining first.
//!
//! - A RUNNING task of a service with `loadBalancers` gets one target per mapping:
//!   the instance's address and the host port bound to `containerName:containerPort`
//!   (or the task's own IP and the container port in awsvpc mode). It starts `initial`.
//!   Each port the service offers in the mesh (`serviceConnectConfiguration`) gets a
//!   target the same way in its mesh target group ([`crate::mesh`]), so mesh endpoints
//!   drain before their task is signalled too. A running task's mesh target in a group
//!   its service no longer offers (it left the mesh or renamed the port) drains and is
//!   removed; the task keeps running.
//! - A task asked to stop keeps its targets, marked deregistering (`draining` in the
//!   proxy: no new requests). Once the proxy reports a target drained (nothing in flight,
//!   or the deregistration delay ran out) the target is removed; when a DEACTIVATING task
//!   has no targets left it moves to STOPPING and only then does its agent signal it.
//! - A task that is already STOPPED (it died) loses its targets at once: there is nothing
//!   left to drain.

use std::collections::{BTreeMap, BTreeSet};

use berth_model::ecs::{ContainerInstance, NetworkMode, Service, Task, TaskStatus};
use berth_model::elb::{Target, TargetHealth, TargetHealthState};
use berth_model::{arn, time};
use berth_store::{Expect, Op};

use crate::db::{self, Db};
use crate::error::ControlError;

/// The attribute an agent sets on its instance with the address targets use.
pub const ADDRESS_ATTRIBUTE: &str = "berth.address";

pub struct RegistrationReconciler {
    pub db: Db,
}

/// The endpoint (ip, port) of `task` for a service's load balancer mapping.
pub fn task_endpoint(
    task: &Task,
    instance: Option<&ContainerInstance>,
    network_mode: NetworkMode,
    container_name: &str,
    container_port: u32,
) -> Option<(String, u32)> {
    let c = task.containers.iter().find(|c| c.name == container_name)?;
    if network_mode == NetworkMode::Awsvpc {
        if let Some(ip) = &c.private_ipv4_address {
            return Some((ip.clone(), container_port));
        }
        // The process runtime gives an awsvpc task no address of its own: it listens on
        // a host port of the node, as a bridge task does.
    }
    let b = c
        .network_bindings
        .iter()
        .find(|b| b.container_port == container_port)?;
    let ip = instance
        .and_then(|i| i.attributes.get(ADDRESS_ATTRIBUTE).cloned())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    Some((ip, b.host_port))
}

/// A target's health once its deregistration began.
fn draining_health() -> TargetHealth {
    TargetHealth {
        state: TargetHealthState::Draining,
        reason: Some("Target.DeregistrationInProgress".into()),
        description: Some("Target deregistration is in progress".into()),
    }
}

impl RegistrationReconciler {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn reconcile(&self) -> Result<(), ControlError> {
        let services: BTreeMap<String, Service> = self
            .db
            .services(None)
            .await?
            .into_iter()
            .map(|s| {
                (
                    format!("{}/{}", s.value.cluster_name(), s.value.service_name),
                    s.value,
                )
            })
            .collect();
        let tasks = self.db.tasks(None).await?;
        let targets = self.db.targets(None).await?;
        let instances: BTreeMap<String, ContainerInstance> = self
            .db
            .instances(None)
            .await?
            .into_iter()
            .map(|i| (i.container_instance_arn.clone(), i))
            .collect();
        let mut targets_by_task: BTreeMap<String, Vec<&db::Versioned<Target>>> = BTreeMap::new();
        for t in &targets {
            if let Some(ta) = &t.value.task_arn {
                targets_by_task.entry(ta.clone()).or_default().push(t);
            }
        }
        let known: BTreeSet<&str> = tasks.iter().map(|t| t.value.task_arn.as_str()).collect();
        let now = time::now();
        let mut ops = Vec::new();

        // Targets whose task is gone from the store.
        for t in &targets {
            if let Some(ta) = &t.value.task_arn {
                if !known.contains(ta.as_str()) {
                    ops.push(Op::Delete {
                        key: t.key.clone(),
                        expect: Some(Expect::ModRevision(t.mod_revision)),
                    });
                }
            }
        }

        for tv in &tasks {
            let task = &tv.value;
            let mine: &[&db::Versioned<Target>] = targets_by_task
                .get(&task.task_arn)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if task.desired_status == TaskStatus::Stopped || task.last_status == TaskStatus::Stopped
            {
                let mut remaining = 0;
                for t in mine {
                    if task.last_status == TaskStatus::Stopped || t.value.drained_at.is_some() {
                        ops.push(Op::Delete {
                            key: t.key.clone(),
                            expect: Some(Expect::ModRevision(t.mod_revision)),
                        });
                    } else {
                        remaining += 1;
                        if t.value.deregistering_at.is_none() {
                            let mut v = t.value.clone();
                            v.deregistering_at = Some(now);
                            v.target_health = draining_health();
                            ops.push(Op::Put {
                                key: t.key.clone(),
                                value: db::encode(&v),
                                expect: Some(Expect::ModRevision(t.mod_revision)),
                            });
                        }
                    }
                }
                if remaining == 0 && task.last_status == TaskStatus::Deactivating {
                    let mut next = task.clone();
                    next.last_status = TaskStatus::Stopping;
                    next.version += 1;
                    ops.push(Op::Put {
                        key: tv.key.clone(),
                        value: db::encode(&next),
                        expect: Some(Expect::ModRevision(tv.mod_revision)),
                    });
                }
                continue;
            }
            if task.last_status != TaskStatus::Running {
                continue;
            }
            let Some(svc_name) = task.service_name() else {
                continue;
            };
            let Some(svc) = services.get(&format!("{}/{svc_name}", task.cluster_name())) else {
                continue;
            };
            let has_mesh = svc
                .service_connect_configuration
                .as_ref()
                .is_some_and(|c| c.enabled && !c.services.is_empty());
            let in_mesh_before = mine
                .iter()
                .any(|t| crate::mesh::is_mesh_target_group(&t.value.target_group_arn));
            if svc.load_balancers.is_empty() && !has_mesh && !in_mesh_before {
                continue;
            }
            let Some(td) = self
                .db
                .resolve_task_definition(&task.task_definition_arn)
                .await?
            else {
                continue;
            };
            let instance = task
                .container_instance_arn
                .as_ref()
                .and_then(|a| instances.get(a));
            // Each load balancer mapping, and each port the service offers in the mesh
            // (with the container and port of the task's own definition).
            let mut registrations: Vec<(String, String, u32)> = svc
                .load_balancers
                .iter()
                .map(|lb| {
                    (
                        lb.target_group_arn.clone(),
                        lb.container_name.clone(),
                        lb.container_port,
                    )
                })
                .collect();
            registrations.extend(
                crate::mesh::mesh_ports(svc, &td)
                    .into_iter()
                    .map(|p| (p.target_group_arn(), p.container_name, p.container_port)),
            );
            // A mesh target of a group the task no longer belongs to (its service left
            // the mesh or renamed the port) drains and goes, as a stopping task's do.
            for t in mine {
                let stale = crate::mesh::is_mesh_target_group(&t.value.target_group_arn)
                    && !registrations
                        .iter()
                        .any(|(arn, _, _)| *arn == t.value.target_group_arn);
                if !stale {
                    continue;
                }
                if t.value.drained_at.is_some() {
                    ops.push(Op::Delete {
                        key: t.key.clone(),
                        expect: Some(Expect::ModRevision(t.mod_revision)),
                    });
                } else if t.value.deregistering_at.is_none() {
                    let mut v = t.value.clone();
                    v.deregistering_at = Some(now);
                    v.target_health = draining_health();
                    ops.push(Op::Put {
                        key: t.key.clone(),
                        value: db::encode(&v),
                        expect: Some(Expect::ModRevision(t.mod_revision)),
                    });
                }
            }
            for (target_group_arn, container_name, container_port) in registrations {
                let Some((ip, port)) = task_endpoint(
                    task,
                    instance,
                    td.network_mode,
                    &container_name,
                    container_port,
                ) else {
                    continue;
                };
                let tg_name = arn::last_segment(&target_group_arn);
                let target = Target {
                    target_group_arn: target_group_arn.clone(),
                    id: ip,
                    port,
                    task_arn: Some(task.task_arn.clone()),
                    target_health: TargetHealth {
                        state: TargetHealthState::Initial,
                        reason: Some("Elb.RegistrationInProgress".into()),
                        description: Some("Target registration is in progress".into()),
                    },
                    registered_at: now,
                    deregistering_at: None,
                    drained_at: None,
                };
                let key = db::target_key(tg_name, &target.endpoint());
                match targets.iter().find(|t| t.key == key) {
                    Some(existing)
                        if existing.value.task_arn.as_deref() == Some(&task.task_arn) => {}
                    Some(existing) => {
                        // A stale target of another task on the same endpoint.
                        ops.push(Op::Put {
                            key,
                            value: db::encode(&target),
                            expect: Some(Expect::ModRevision(existing.mod_revision)),
                        });
                    }
                    None => ops.push(Op::Put {
                        key,
                        value: db::encode(&target),
                        expect: Some(Expect::Absent),
                    }),
                }
            }
        }
        // One atomic write; a conflict means something moved meanwhile: the next pass
        // redoes the work from fresh reads.
        if !ops.is_empty() {
            match self.db.batch(ops).await {
                Ok(_) => {}
                Err(ControlError::Conflict { .. }) => {
                    tracing::debug!(
                        "registration pass raced a concurrent write; retrying next pass"
                    )
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod endpoint_tests {
    use super::*;
    use berth_model::ecs::{Container, NetworkBinding};

    fn task(private_ip: Option<&str>, host_port: u32) -> Task {
        Task {
            containers: vec![Container {
                name: "web".into(),
                private_ipv4_address: private_ip.map(str::to_string),
                network_bindings: vec![NetworkBinding {
                    container_port: 8080,
                    host_port,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn instance(address: &str) -> ContainerInstance {
        let mut i = ContainerInstance::default();
        i.attributes
            .insert(ADDRESS_ATTRIBUTE.to_string(), address.to_string());
        i
    }

    #[test]
    fn an_awsvpc_task_is_reached_at_its_own_address_or_else_at_its_host_port() {
        let node = instance("10.0.0.2");
        assert_eq!(
            task_endpoint(
                &task(Some("172.18.0.5"), 0),
                Some(&node),
                NetworkMode::Awsvpc,
                "web",
                8080
            ),
            Some(("172.18.0.5".to_string(), 8080))
        );
        // The process runtime: no address of its own, a host port on the node.
        assert_eq!(
            task_endpoint(
                &task(None, 41000),
                Some(&node),
                NetworkMode::Awsvpc,
                "web",
                8080
            ),
            Some(("10.0.0.2".to_string(), 41000))
        );
        assert_eq!(
            task_endpoint(
                &task(None, 41000),
                Some(&node),
                NetworkMode::Bridge,
                "web",
                9999
            ),
            None,
            "a port the task does not map"
        );
    }
}
