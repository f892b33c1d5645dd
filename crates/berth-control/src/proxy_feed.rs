//! Feeds the data plane: turns the load balancers, target groups and targets in the store
//! into a [`ProxyConfig`] snapshot for a [`DataPlane`], and copies what the data plane
//! observes (target health, draining finished) back into the target records.
//!
//! What it does not do: know the proxy. It speaks the contract types of
//! [`berth_model::dataplane`] through the [`DataPlane`] trait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use berth_model::dataplane::{ProxyConfig, ProxyTarget, TargetGroupConfig};
use berth_model::elb::{Target, TargetHealthState};
use berth_model::time;

use crate::data_plane::DataPlane;
use crate::db::{self, Db};
use crate::error::ControlError;

/// What the data plane made of the load balancers: listener ARN → bound address, and
/// load balancer name → why it could not be served.
#[derive(Debug, Default)]
pub struct ProxyState {
    pub bound: BTreeMap<String, SocketAddr>,
    pub failed: BTreeMap<String, String>,
}

pub type BoundListeners = Arc<RwLock<ProxyState>>;

pub struct ProxyFeed {
    pub db: Db,
    pub data_plane: Arc<dyn DataPlane>,
    pub bound: BoundListeners,
}

impl ProxyFeed {
    pub fn new(db: Db, data_plane: Arc<dyn DataPlane>) -> Self {
        Self {
            db,
            data_plane,
            bound: Arc::default(),
        }
    }

    /// Builds the proxy's configuration from the store and applies it.
    pub async fn push_config(&self) -> Result<(), ControlError> {
        let lbs = self.db.load_balancers().await?;
        let tgs = self.db.target_groups().await?;
        let targets = self.db.targets(None).await?;
        let mut groups = Vec::new();
        for tg in tgs {
            let mut list = Vec::new();
            for t in targets
                .iter()
                .filter(|t| t.value.target_group_arn == tg.target_group_arn)
            {
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
                });
            }
            groups.push(TargetGroupConfig {
                group: tg,
                targets: list,
                mesh: None,
            });
        }
        // A load balancer the data plane cannot serve (its port is taken, say) is left
        // out and reported as failed; the others, and every target change, go on.
        let mut lbs = lbs;
        let mut failed = BTreeMap::new();
        loop {
            let cfg = ProxyConfig {
                load_balancers: lbs.clone(),
                target_groups: groups.clone(),
                mesh_listeners: vec![],
            };
            match self.data_plane.apply(cfg).await {
                Ok(bound) => {
                    let mut st = self.bound.write().expect("proxy state lock");
                    for (name, why) in &failed {
                        if st.failed.get(name) != Some(why) {
                            tracing::warn!(load_balancer = %name, reason = %why, "load balancer failed");
                        }
                    }
                    *st = ProxyState { bound, failed };
                    return Ok(());
                }
                Err(refusal) => match refusal
                    .load_balancer_name
                    .as_ref()
                    .and_then(|name| lbs.iter().position(|lb| &lb.load_balancer_name == name))
                {
                    Some(i) => {
                        let lb = lbs.remove(i);
                        failed.insert(lb.load_balancer_name, refusal.reason);
                    }
                    None => return Err(ControlError::DataPlaneRefused(refusal)),
                },
            }
        }
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
mod tests;
