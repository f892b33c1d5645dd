//! The data plane of an agent's node: a proxy serving the load balancers whose
//! `berth.nodes` attribute chooses this node, fed by the control plane over the node
//! link. The configuration is read again on every change notice and every few seconds;
//! while the control plane is unreachable the proxy keeps serving the last configuration
//! it applied, and its own health checks keep deciding where requests go.
//!
//! What it does not do: report target health to the control plane (the servers' nodes
//! check every target group and the reconcilers read theirs), or serve the mesh and DNS.

use std::sync::Arc;
use std::time::Duration;

use berth_agent::AgentApi;
use berth_control::proxy_feed::apply_leaving_out_refused;
use berth_model::dataplane::ProxyConfig;
use berth_node_link::RemoteControl;
use tokio::sync::watch;

use crate::data_plane::ProxyDataPlane;

/// How often the configuration is read when no change notice arrives.
const REFRESH: Duration = Duration::from_secs(5);

/// Keeps `data_plane` serving this node's share of the load balancers until `stop`
/// turns true.
pub async fn follow(
    remote: Arc<RemoteControl>,
    data_plane: ProxyDataPlane,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = remote.changes();
    let mut applied: Option<ProxyConfig> = None;
    let mut unreachable = false;
    loop {
        match remote.node_proxy_config().await {
            Ok(config) => {
                if unreachable {
                    tracing::info!("the control plane answers again; following its load balancers");
                    unreachable = false;
                }
                if applied.as_ref() != Some(&config) {
                    apply(&data_plane, &config).await;
                    applied = Some(config);
                }
            }
            Err(e) if !unreachable => {
                tracing::warn!(
                    error = %e,
                    load_balancers = applied.as_ref().map_or(0, |c| c.load_balancers.len()),
                    "reading this node's load balancers; the listeners keep their last configuration"
                );
                unreachable = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn apply(data_plane: &ProxyDataPlane, config: &ProxyConfig) {
    match apply_leaving_out_refused(data_plane, config.clone()).await {
        Ok(state) => {
            for (name, why) in &state.failed {
                tracing::warn!(load_balancer = %name, reason = %why, "this node cannot serve a load balancer");
            }
            for (arn, addr) in &state.bound {
                tracing::debug!(listener = %arn, %addr, "listener bound");
            }
            tracing::info!(
                load_balancers = config.load_balancers.len() - state.failed.len(),
                target_groups = config.target_groups.len(),
                "serving this node's load balancers"
            );
        }
        Err(e) => tracing::warn!(error = %e, "the node's proxy refused its configuration"),
    }
}
