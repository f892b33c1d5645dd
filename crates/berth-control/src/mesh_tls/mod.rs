//! Mutual TLS in the mesh, the control plane's side: the mesh's certificate authority
//! kept in the store, the certificates of the mesh's identities kept in memory, and the
//! [`MeshTlsConfig`](berth_model::dataplane::MeshTlsConfig) and
//! [`MeshHop`](berth_model::dataplane::MeshHop)s the proxy feed publishes.
//!
//! - The authority ([`AuthorityCache`]): created on the first pass that has a service in
//!   the mesh and written to [`MESH_CA_STORE_KEY`] only if the key is absent, so two
//!   servers racing settle on the one written first; loaded on later passes and after a
//!   restart, so identities stay valid across restarts. Kept in memory keyed by the
//!   key's mod revision, so it is parsed again only when the stored CA changes.
//! - The certificates ([`CertificateBook`]): one per identity of a service with
//!   `serviceConnectConfiguration.enabled` (clients included), `spiffe://<cluster>/ns/
//!   <namespace>/sa/<service>`, and one for the node ([`MeshNode::identity`]); issued in
//!   memory, kept between passes, reissued half-way from issuance to expiry or when the
//!   CA changed. Leaf keys are never written to the store: a restarted server issues
//!   new ones.
//! - The configuration ([`plan`]): pure, from the services, mesh ports, tasks,
//!   instances and mesh targets.
//!
//! What it does not do: run TLS (the proxy does) or decide who may be reached (the
//! allow list, `allowedCallers`, is the service's; this only carries it).

mod authority_cache;
mod certificates;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::time::Duration;

use berth_model::arn;
use berth_model::ecs::{Service, DEFAULT_CLUSTER};
use berth_model::error::ValidationError;
use berth_model::mesh_identity::SpiffeId;
use berth_model::time::Timestamp;

pub use authority_cache::AuthorityCache;
pub use certificates::CertificateBook;
pub use plan::{endpoint_server_name, plan, MeshTlsInput, MeshTlsPlan};

use crate::db::Db;
use crate::error::ControlError;
use crate::mesh_ca::{DEFAULT_MESH_CERTIFICATE_VALIDITY, MESH_CA_STORE_KEY};

/// The instance attribute an agent registers with the address (`ip:port`) of its node's
/// mesh inbound listener (berth-agent's `MESH_INBOUND_ATTRIBUTE`).
pub const MESH_INBOUND_ATTRIBUTE: &str = "berth.mesh-inbound";

/// The port a node's mesh inbound listener binds when not told: Istio's port for
/// mutual TLS between meshes, outside the ephemeral ranges dynamic host ports come from.
pub const DEFAULT_MESH_INBOUND_PORT: u16 = 15443;

/// The SPIFFE namespace of node identities. A Cloud Map namespace cannot hold an
/// underscore, so no service of the mesh ever has an identity in it, and an allow list
/// (which names services) can never admit a node.
pub const NODE_IDENTITY_NAMESPACE: &str = "_berth";

/// The node whose data plane the control plane feeds: the container instance the
/// binary's own agent registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshNode {
    pub cluster: String,
    /// The instance id (`i-…`), the last segment of the container instance ARN.
    pub instance_id: String,
}

impl MeshNode {
    pub fn instance_arn(&self) -> String {
        arn::container_instance(&self.cluster, &self.instance_id)
    }

    /// `spiffe://<cluster>/ns/_berth/sa/node-<instance id>`: what the node's proxy
    /// presents for connections that come from no known task (processes and bridge
    /// tasks share the host's addresses).
    pub fn identity(&self) -> Result<SpiffeId, ValidationError> {
        SpiffeId::new(
            self.cluster.to_ascii_lowercase(),
            NODE_IDENTITY_NAMESPACE,
            format!("node-{}", self.instance_id),
        )
    }
}

/// How the control plane runs the mesh's mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshTlsSettings {
    /// How long each issued certificate is valid; renewed at half of it.
    pub certificate_validity: Duration,
    /// The node the data plane serves. `None`: every task counts as this node's (one
    /// process with no agent of its own, as in tests), and the node identity is
    /// `node-local` of the default cluster.
    pub node: Option<MeshNode>,
}

impl Default for MeshTlsSettings {
    fn default() -> Self {
        Self {
            certificate_validity: DEFAULT_MESH_CERTIFICATE_VALIDITY,
            node: None,
        }
    }
}

impl MeshTlsSettings {
    /// The node's container instance ARN, when set.
    pub fn node_instance_arn(&self) -> Option<String> {
        self.node.as_ref().map(MeshNode::instance_arn)
    }

    /// The node identity ([`MeshNode::identity`]).
    pub fn node_identity(&self) -> Result<SpiffeId, ValidationError> {
        match &self.node {
            Some(n) => n.identity(),
            None => MeshNode {
                cluster: DEFAULT_CLUSTER.into(),
                instance_id: "local".into(),
            }
            .identity(),
        }
    }
}

/// The identity of `service` in the mesh: set when its `serviceConnectConfiguration` is
/// enabled with a namespace and the service is not deleted.
pub fn service_identity(service: &Service) -> Option<SpiffeId> {
    if service.status == "INACTIVE" {
        return None;
    }
    let sc = service
        .service_connect_configuration
        .as_ref()
        .filter(|c| c.enabled)?;
    let ns = sc.namespace_name()?;
    SpiffeId::for_service(service.cluster_name(), ns, &service.service_name).ok()
}

/// The control plane's mesh TLS state: settings, the CA and the certificates issued.
#[derive(Default)]
pub struct MeshTls {
    settings: RwLock<MeshTlsSettings>,
    state: tokio::sync::Mutex<(AuthorityCache, CertificateBook)>,
}

impl MeshTls {
    pub fn configure(&self, settings: MeshTlsSettings) {
        *self.settings.write().expect("mesh tls settings lock") = settings;
    }

    pub fn settings(&self) -> MeshTlsSettings {
        self.settings
            .read()
            .expect("mesh tls settings lock")
            .clone()
    }

    /// Loads (or creates and stores) the CA, then makes the book hold a current
    /// certificate for each of `wanted`, at `now`. Returns the CA and the book.
    pub async fn refresh(
        &self,
        db: &Db,
        wanted: &BTreeSet<SpiffeId>,
        now: Timestamp,
    ) -> Result<
        (
            std::sync::Arc<crate::mesh_ca::MeshAuthority>,
            tokio::sync::MutexGuard<'_, (AuthorityCache, CertificateBook)>,
        ),
        ControlError,
    > {
        let validity = self.settings().certificate_validity;
        let mut state = self.state.lock().await;
        let ca = state.0.authority(db, now).await?;
        let issued = state.1.refresh(&ca, wanted, now, validity)?;
        if issued > 0 {
            tracing::info!(issued, key = MESH_CA_STORE_KEY, "issued mesh certificates");
        }
        Ok((ca, state))
    }
}
