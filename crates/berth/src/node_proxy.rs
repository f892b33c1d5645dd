//! The data plane and discovery DNS of an agent's node, fed by the control plane over the
//! node link: a proxy serving the load balancers whose `berth.nodes` attribute chooses
//! this node and the mesh (client-alias listeners, mesh target groups, the node's mutual
//! TLS: its certificates, inbound endpoints and callers), and a DNS server answering the
//! discovery records. Both are read again on every change notice and every few seconds;
//! while the control plane is unreachable the proxy keeps serving the last configuration
//! it applied (its own health checks keep deciding where requests go) and the DNS server
//! the last records it got.
//!
//! What it does not do: report target health to the control plane (the servers' nodes
//! check every target group and the reconcilers read theirs), or renew certificates
//! itself (the control plane reissues them half-way to expiry and the next read brings
//! them).

use std::sync::Arc;
use std::time::Duration;

use berth_agent::AgentApi;
use berth_control::proxy_feed::apply_leaving_out_refused;
use berth_dns::{DiscoveryRecords, DnsServer};
use berth_model::dataplane::ProxyConfig;
use berth_node_link::RemoteControl;
use tokio::sync::watch;

use crate::data_plane::ProxyDataPlane;

/// How often the configuration is read when no change notice arrives.
const REFRESH: Duration = Duration::from_secs(5);

/// Keeps `data_plane` serving this node's share of the load balancers and the mesh, and
/// `dns` answering the discovery records, until `stop` turns true.
pub async fn follow(
    remote: Arc<RemoteControl>,
    data_plane: ProxyDataPlane,
    dns: Arc<DnsServer>,
    mut stop: watch::Receiver<bool>,
) {
    let mut changes = remote.changes();
    let mut applied: Option<ProxyConfig> = None;
    let mut published: Option<DiscoveryRecords> = None;
    let mut unreachable = false;
    let mut records_unreachable = false;
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
        match remote.node_discovery_records().await {
            Ok(records) => {
                records_unreachable = false;
                if published.as_ref() != Some(&records) {
                    tracing::info!(names = records.names.len(), "serving the discovery records");
                    dns.publish(records.clone());
                    published = Some(records);
                }
            }
            Err(e) if !records_unreachable => {
                tracing::warn!(
                    error = %e,
                    names = published.as_ref().map_or(0, |r| r.names.len()),
                    "reading the discovery records; the DNS server keeps answering the last ones"
                );
                records_unreachable = true;
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
            for (port, why) in &state.failed_mesh_listeners {
                tracing::warn!(port, reason = %why, "this node cannot serve a mesh client-alias port");
            }
            for (arn, addr) in &state.bound {
                tracing::debug!(listener = %arn, %addr, "listener bound");
            }
            tracing::info!(
                load_balancers = config.load_balancers.len() - state.failed.len(),
                target_groups = config.target_groups.len(),
                mesh_listeners = config.mesh_listeners.len() - state.failed_mesh_listeners.len(),
                mesh_tls = config.mesh_tls.is_some(),
                "serving this node's load balancers and mesh"
            );
        }
        Err(e) => tracing::warn!(error = %e, "the node's proxy refused its configuration"),
    }
}
