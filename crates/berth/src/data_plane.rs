//! `berth server`'s data plane: control's [`DataPlane`] served by the in-process
//! [`Proxy`], translating its errors into the contract's refusals.

use std::sync::Arc;

use async_trait::async_trait;
use berth_control::data_plane::BoundAddresses;
use berth_control::DataPlane;
use berth_model::dataplane::{CertificateRefusal, ConfigRefusal, ProxyConfig, TargetStatus};
use berth_model::elb::Listener;
use berth_proxy::Proxy;
use tokio::sync::watch;

pub struct ProxyDataPlane {
    pub proxy: Arc<Proxy>,
}

#[async_trait]
impl DataPlane for ProxyDataPlane {
    async fn apply(&self, config: ProxyConfig) -> Result<BoundAddresses, ConfigRefusal> {
        // The refusal names a load balancer of the configuration, so keep their list.
        let load_balancers = config.load_balancers.clone();
        self.proxy
            .apply(config)
            .await
            .map_err(|e| e.refusal(&load_balancers))
    }

    /// The proxy's statuses as they are, request counts included.
    fn target_statuses(&self) -> Vec<TargetStatus> {
        self.proxy.target_statuses()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.proxy.subscribe()
    }

    fn check_certificates(&self, listener: &Listener) -> Result<(), CertificateRefusal> {
        berth_proxy::check_certificates(listener)
            .map_err(|e| e.certificate_refusal(&listener.listener_arn))
    }
}
