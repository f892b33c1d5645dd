//! The control plane's view of a data plane: what [`crate::proxy_feed`] and apply need
//! from the proxy, as a trait the binary implements (over `berth_proxy::Proxy` today, a
//! remote node's data plane tomorrow). Everything crossing it is a contract type of
//! [`berth_model::dataplane`].
//!
//! What it does not do: know any proxy. berth-control does not depend on berth-proxy.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use async_trait::async_trait;
use berth_model::dataplane::{CertificateRefusal, ConfigRefusal, ProxyConfig, TargetStatus};
use berth_model::elb::Listener;
use tokio::sync::watch;

/// The bound address of each listener, by listener ARN (a listener with port 0 binds an
/// ephemeral port).
pub type BoundAddresses = BTreeMap<String, SocketAddr>;

/// A data plane the control plane configures and hears target health from.
#[async_trait]
pub trait DataPlane: Send + Sync + 'static {
    /// Serves `config` as a whole, or refuses it, naming the load balancer at fault when
    /// it can, and keeps serving the previous one.
    async fn apply(&self, config: ProxyConfig) -> Result<BoundAddresses, ConfigRefusal>;

    /// Health and draining state of every target in every target group.
    fn target_statuses(&self) -> Vec<TargetStatus>;

    /// A receiver that changes whenever a [`TargetStatus`] does.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// Loads every certificate of `listener` as [`DataPlane::apply`] would, binding
    /// nothing, so apply can refuse certificates that do not load before storing them.
    fn check_certificates(&self, listener: &Listener) -> Result<(), CertificateRefusal>;
}

/// A data plane for tests: records what it is given, refuses what it is told to.
#[cfg(test)]
pub(crate) mod fake {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    use super::*;

    pub struct FakeDataPlane {
        /// Load balancer name → the reason an apply naming it is refused.
        pub refuse: Mutex<BTreeMap<String, String>>,
        /// Mesh listener port → the reason an apply with it is refused.
        pub refuse_mesh_ports: Mutex<BTreeMap<u16, String>>,
        /// Refuse every configuration without naming a load balancer.
        pub refuse_all: Mutex<Option<String>>,
        /// Certificate files that do not load.
        pub bad_certificate_files: Mutex<BTreeSet<String>>,
        pub statuses: Mutex<Vec<TargetStatus>>,
        /// Every configuration offered, refused ones too.
        pub offered: Mutex<Vec<ProxyConfig>>,
        pub changes: watch::Sender<u64>,
    }

    impl Default for FakeDataPlane {
        fn default() -> Self {
            Self {
                refuse: Mutex::default(),
                refuse_mesh_ports: Mutex::default(),
                refuse_all: Mutex::default(),
                bad_certificate_files: Mutex::default(),
                statuses: Mutex::default(),
                offered: Mutex::default(),
                changes: watch::channel(0).0,
            }
        }
    }

    #[async_trait]
    impl DataPlane for FakeDataPlane {
        async fn apply(&self, config: ProxyConfig) -> Result<BoundAddresses, ConfigRefusal> {
            self.offered.lock().unwrap().push(config.clone());
            if let Some(reason) = self.refuse_all.lock().unwrap().clone() {
                return Err(ConfigRefusal {
                    load_balancer_name: None,
                    mesh_listener_port: None,
                    reason,
                });
            }
            let refuse_mesh = self.refuse_mesh_ports.lock().unwrap();
            if let Some(l) = config
                .mesh_listeners
                .iter()
                .find(|l| refuse_mesh.contains_key(&l.port))
            {
                return Err(ConfigRefusal {
                    load_balancer_name: None,
                    mesh_listener_port: Some(l.port),
                    reason: refuse_mesh[&l.port].clone(),
                });
            }
            let refuse = self.refuse.lock().unwrap();
            if let Some(lb) = config
                .load_balancers
                .iter()
                .find(|lb| refuse.contains_key(&lb.load_balancer_name))
            {
                return Err(ConfigRefusal {
                    load_balancer_name: Some(lb.load_balancer_name.clone()),
                    mesh_listener_port: None,
                    reason: refuse[&lb.load_balancer_name].clone(),
                });
            }
            Ok(config
                .load_balancers
                .iter()
                .flat_map(|lb| &lb.listeners)
                .map(|l| {
                    let port = 40_000 + l.port as u16;
                    (
                        l.listener_arn.clone(),
                        SocketAddr::from(([127, 0, 0, 1], port)),
                    )
                })
                .collect())
        }

        fn target_statuses(&self) -> Vec<TargetStatus> {
            self.statuses.lock().unwrap().clone()
        }

        fn subscribe(&self) -> watch::Receiver<u64> {
            self.changes.subscribe()
        }

        fn check_certificates(&self, listener: &Listener) -> Result<(), CertificateRefusal> {
            let bad = self.bad_certificate_files.lock().unwrap();
            match listener
                .certificates
                .iter()
                .find(|c| bad.contains(&c.certificate_file))
            {
                Some(c) => Err(CertificateRefusal {
                    listener_arn: listener.listener_arn.clone(),
                    reason: format!("{}: does not load", c.certificate_file),
                }),
                None => Ok(()),
            }
        }
    }
}
