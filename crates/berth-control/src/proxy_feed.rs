//! Feeds the data plane: turns the load balancers, target groups and targets in the store
//! into a [`berth_proxy::ProxyConfig`] snapshot, and copies what the proxy observes
//! (target health, draining finished) back into the target records.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use berth_model::elb::{LoadBalancer, Target, TargetHealthState};
use berth_model::time;
use berth_proxy::{Proxy, ProxyConfig, ProxyError, ProxyTarget, TargetGroupConfig};

use crate::db::{self, Db};
use crate::error::ApiError;

/// What the data plane made of the load balancers: listener ARN → bound address, and
/// load balancer name → why it could not be served.
#[derive(Debug, Default)]
pub struct ProxyState {
    pub bound: BTreeMap<String, SocketAddr>,
    pub failed: BTreeMap<String, String>,
}

pub type BoundListeners = Arc<RwLock<ProxyState>>;

/// The load balancer a refused configuration blames, if the error names one.
fn culprit(err: &ProxyError, lbs: &[LoadBalancer]) -> Option<usize> {
    let by_listener = |arn: &str| {
        lbs.iter()
            .position(|lb| lb.listeners.iter().any(|l| l.listener_arn == arn))
    };
    match err {
        ProxyError::Bind { listener_arn, .. } | ProxyError::Unsupported { listener_arn, .. } => {
            by_listener(listener_arn)
        }
        ProxyError::Invalid {
            resource: "load balancer",
            name,
            ..
        } => lbs.iter().position(|lb| &lb.load_balancer_name == name),
        ProxyError::Config { what, .. } => lbs.iter().position(|lb| {
            what.contains(&lb.load_balancer_arn)
                || lb.listeners.iter().any(|l| what.contains(&l.listener_arn))
        }),
        _ => None,
    }
}

pub struct ProxyFeed {
    pub db: Db,
    pub proxy: Arc<Proxy>,
    pub bound: BoundListeners,
}

impl ProxyFeed {
    pub fn new(db: Db, proxy: Arc<Proxy>) -> Self {
        Self {
            db,
            proxy,
            bound: Arc::default(),
        }
    }

    /// Builds the proxy's configuration from the store and applies it.
    pub async fn push_config(&self) -> Result<(), ApiError> {
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
            };
            match self.proxy.apply(cfg).await {
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
                Err(e) => match culprit(&e, &lbs) {
                    Some(i) => {
                        let lb = lbs.remove(i);
                        failed.insert(lb.load_balancer_name, e.to_string());
                    }
                    None => {
                        return Err(ApiError::server(format!(
                            "proxy rejected its configuration: {e}"
                        )))
                    }
                },
            }
        }
    }

    /// Copies target health and drained flags from the proxy into the store.
    pub async fn pull_health(&self) -> Result<(), ApiError> {
        let statuses = self.proxy.target_statuses();
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
