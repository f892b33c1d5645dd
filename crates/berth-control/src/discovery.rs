//! The seam to the nodes' DNS servers: [`Discovery`] receives the [`DiscoveryRecords`]
//! the control plane builds after each reconcile pass ([`records`], a pure builder),
//! and [`Publisher`] reads what the builder needs from the store and the data plane and
//! publishes only when the records changed.
//!
//! What it does not do: answer DNS queries (berth-dns does, behind the binary's
//! implementation of [`Discovery`]) or know any DNS server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use berth_model::dataplane::TargetStatus;
use berth_model::discovery::DiscoveryRecords;

use crate::db::Db;
use crate::error::ControlError;

pub mod records;
#[cfg(test)]
mod tests;

pub use records::{
    DiscoveryInput, Endpoint, EndpointGroup, GroupKind, TargetView, FAIL_OPEN_RECORDS,
};

/// Where the control plane publishes the DNS records (every node's DNS server).
pub trait Discovery: Send + Sync {
    /// Replaces what the DNS servers answer with `records`.
    fn publish(&self, records: DiscoveryRecords);
}

/// A closure publishes too: `Arc::new(move |r| dns.publish(r))`.
impl<F: Fn(DiscoveryRecords) + Send + Sync> Discovery for F {
    fn publish(&self, records: DiscoveryRecords) {
        self(records)
    }
}

/// Publishes nowhere: the default until the binary wires a DNS server in.
pub struct NoDiscovery;

impl Discovery for NoDiscovery {
    fn publish(&self, _records: DiscoveryRecords) {}
}

/// Reads the builder's input: namespaces, services, tasks, their task definitions and
/// instances from the store, and each target's state from `statuses` (the data plane's
/// live view) or, for a target the data plane has not reported, from the store.
pub async fn read_input(
    db: &Db,
    statuses: &[TargetStatus],
) -> Result<DiscoveryInput, ControlError> {
    let namespaces = db.namespaces().await?;
    let services: Vec<_> = db
        .services(None)
        .await?
        .into_iter()
        .map(|v| v.value)
        .filter(|s| s.service_connect_configuration.is_some() || !s.service_registries.is_empty())
        .collect();
    if services.is_empty() {
        return Ok(DiscoveryInput {
            namespaces,
            ..Default::default()
        });
    }
    let tasks: Vec<_> = db.tasks(None).await?.into_iter().map(|v| v.value).collect();
    let mut definitions = BTreeMap::new();
    let arns = services
        .iter()
        .map(|s| &s.task_definition)
        .chain(tasks.iter().map(|t| &t.task_definition_arn));
    for arn in arns {
        if !definitions.contains_key(arn) {
            if let Some(td) = db.resolve_task_definition(arn).await? {
                definitions.insert(arn.clone(), td);
            }
        }
    }
    let instances = db
        .instances(None)
        .await?
        .into_iter()
        .map(|i| (i.container_instance_arn.clone(), i))
        .collect();
    let live: BTreeMap<(&str, String), &TargetStatus> = statuses
        .iter()
        .map(|s| ((s.target_group_arn.as_str(), s.addr.to_string()), s))
        .collect();
    let mut targets = BTreeMap::new();
    for t in db.targets(None).await? {
        let t = t.value;
        let Some(task_arn) = t.task_arn.clone() else {
            continue;
        };
        let view = match live.get(&(t.target_group_arn.as_str(), t.endpoint())) {
            Some(s) if t.deregistering_at.is_none() => TargetView {
                health: s.health.clone(),
                in_flight: s.in_flight,
                ejected: s.ejected,
            },
            Some(s) => TargetView {
                health: t.target_health.clone(),
                in_flight: s.in_flight,
                ejected: s.ejected,
            },
            None => TargetView {
                health: t.target_health.clone(),
                in_flight: 0,
                ejected: false,
            },
        };
        targets.insert((t.target_group_arn.clone(), task_arn), view);
    }
    Ok(DiscoveryInput {
        namespaces,
        services,
        tasks,
        definitions,
        instances,
        targets,
    })
}

/// Publishes the records to a [`Discovery`] when they differ from the last ones.
pub struct Publisher {
    discovery: RwLock<Arc<dyn Discovery>>,
    last: Mutex<Option<DiscoveryRecords>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self {
            discovery: RwLock::new(Arc::new(NoDiscovery)),
            last: Mutex::new(None),
        }
    }
}

impl Publisher {
    /// Publishes to `discovery` from now on; the next pass publishes the records anew.
    pub fn set(&self, discovery: Arc<dyn Discovery>) {
        *self.discovery.write().expect("discovery lock") = discovery;
        *self.last.lock().expect("discovery lock") = None;
    }

    /// Builds the records from the store and `statuses`; publishes them if they
    /// changed. Returns whether it published.
    pub async fn publish(&self, db: &Db, statuses: &[TargetStatus]) -> Result<bool, ControlError> {
        let records = read_input(db, statuses).await?.records();
        {
            let mut last = self.last.lock().expect("discovery lock");
            if last.as_ref() == Some(&records) {
                return Ok(false);
            }
            *last = Some(records.clone());
        }
        let discovery = self.discovery.read().expect("discovery lock").clone();
        discovery.publish(records);
        Ok(true)
    }
}
