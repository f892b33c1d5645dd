//! The berth-managed Docker network awsvpc tasks get their IPs on: found or created
//! once, and settled on one when concurrent creates left several of its name; and the
//! default bridge's gateway, the host address every container reaches. It creates no
//! containers.

use std::collections::HashMap;

use bollard::models::NetworkCreateRequest;

use super::{err, Inner, LABEL_MANAGED};
use crate::{Result, RuntimeError};

/// The gateway of the engine's default `bridge` network (usually 172.17.0.1): the host
/// address containers of every berth network reach, where a node serves its discovery
/// DNS and mesh proxy to them. `None` when the engine does not answer or the bridge has
/// no IPv4 gateway.
pub async fn bridge_gateway() -> Option<std::net::IpAddr> {
    let docker = bollard::Docker::connect_with_local_defaults().ok()?;
    let net = docker
        .inspect_network(
            "bridge",
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .ok()?;
    net.ipam?.config?.into_iter().find_map(|c| {
        c.gateway
            .as_deref()
            .and_then(|g| g.parse::<std::net::Ipv4Addr>().ok())
            .or_else(|| first_host_of(c.subnet.as_deref()?))
            .map(std::net::IpAddr::V4)
    })
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → 172.17.0.1): the
/// engine's bridge gateway when the network lists its subnet only.
fn first_host_of(subnet: &str) -> Option<std::net::Ipv4Addr> {
    let (net, prefix) = subnet.split_once('/')?;
    let net: std::net::Ipv4Addr = net.parse().ok()?;
    let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 30)?;
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    Some(std::net::Ipv4Addr::from((u32::from(net) & mask) + 1))
}

impl Inner {
    /// The awsvpc network to connect a task's first container to: its ID once known,
    /// else its name.
    pub(super) fn awsvpc_network(&self) -> String {
        self.awsvpc_id
            .lock()
            .expect("awsvpc lock")
            .clone()
            .unwrap_or_else(|| self.config.awsvpc_network.clone())
    }

    /// Finds or creates the awsvpc network and remembers its ID. Two clients of one
    /// engine creating the network at the same moment can leave two networks of that
    /// name, and the engine then refuses to start any container on it ("ambiguous").
    /// Every caller settles on the same one (the lowest ID) and removes the others that
    /// no container uses (the engine refuses to remove one in use).
    pub(super) async fn ensure_awsvpc_network(&self) -> Result<()> {
        let name = &self.config.awsvpc_network;
        let id = match self.find_awsvpc_network().await? {
            Some(id) => id,
            None => {
                let mut labels = HashMap::new();
                labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
                let res = self
                    .docker
                    .create_network(NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("bridge".into()),
                        labels: Some(labels),
                        ..Default::default()
                    })
                    .await;
                match res {
                    Ok(_) => {}
                    // Created concurrently by another start.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 409,
                        ..
                    }) => {}
                    Err(e) => return Err(err(format!("cannot create network {name}"), e)),
                }
                self.find_awsvpc_network().await?.ok_or_else(|| {
                    RuntimeError::StartFailed(format!(
                        "network {name} vanished after it was created"
                    ))
                })?
            }
        };
        *self.awsvpc_id.lock().expect("awsvpc lock") = Some(id);
        Ok(())
    }

    /// The lowest ID among the networks named exactly like the awsvpc network.
    async fn find_awsvpc_network(&self) -> Result<Option<String>> {
        let name = &self.config.awsvpc_network;
        let mut filters = HashMap::new();
        filters.insert("name".to_string(), vec![name.clone()]);
        let nets = self
            .docker
            .list_networks(Some(bollard::query_parameters::ListNetworksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| err(format!("cannot list networks named {name}"), e))?;
        let mut ids: Vec<String> = nets
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
            .filter_map(|n| n.id)
            .collect();
        ids.sort();
        for extra in ids.iter().skip(1) {
            match self.docker.remove_network(extra).await {
                Ok(()) => tracing::info!(network = %extra, "removed a duplicate {name} network"),
                Err(e) => tracing::debug!(network = %extra, "duplicate {name} network kept: {e}"),
            }
        }
        Ok(ids.into_iter().next())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_first_host_of_a_subnet() {
        assert_eq!(
            super::first_host_of("172.17.0.0/16"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(
            super::first_host_of("10.1.2.0/24"),
            Some("10.1.2.1".parse().unwrap())
        );
        assert_eq!(super::first_host_of("fd00::/64"), None);
        assert_eq!(super::first_host_of("10.0.0.0/31"), None);
    }
}
