//! Joining a cluster from another machine: the cluster's join secret, and the
//! certificates the control plane issues to the nodes that present it and to itself.
//!
//! - The join secret is created once, on a server's first start, and kept in the store
//!   only as its SHA-256 digest ([`JOIN_SECRET_STORE_KEY`]); the server shows the secret
//!   once, inside a join token (`berth-node-link`'s token carries it with the
//!   fingerprint of the authority's certificate, which the agent pins).
//!   [`NodeJoin::rotate_secret`] replaces it; agents that already joined keep their
//!   certificates.
//! - [`NodeJoin::join`] checks a secret in constant time and issues the node its
//!   certificate: identity `spiffe://<cluster>/ns/_berth/sa/node-<instance id>` (the same
//!   identity its mesh proxy presents), signed by the mesh's authority, valid for
//!   [`DEFAULT_NODE_CERTIFICATE_VALIDITY`]; [`NodeJoin::renew`] issues the next one to a
//!   node that proves the current one.
//! - [`NodeJoin::control_credentials`] issues the control plane's own certificate
//!   (`spiffe://berth/ns/_berth/sa/control`), which agents check.
//!
//! What it does not do: transport (berth-node-link serves these calls over mutual TLS
//! and checks the peer's certificate before a call reaches the control plane).

use std::sync::Arc;
use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, SpiffeId};
use berth_model::node_link::{JoinRequest, NodeCredentials};
use berth_model::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::db::Db;
use crate::error::ControlError;
use crate::mesh_ca::MeshAuthority;
use crate::mesh_tls::{AuthorityCache, MeshNode, NODE_IDENTITY_NAMESPACE};

/// Where the digest of the cluster's join secret is kept.
pub const JOIN_SECRET_STORE_KEY: &str = "/cluster/join-secret";

/// How long a node's certificate is valid: a day, renewed at half of it, so a node
/// that lost its control plane keeps a valid identity for twelve hours at least.
pub const DEFAULT_NODE_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(24 * 60 * 60);

/// The trust domain and service of the control plane's own identity.
pub const CONTROL_TRUST_DOMAIN: &str = "berth";
pub const CONTROL_SERVICE: &str = "control";

/// The join secret as stored: only its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoredJoinSecret {
    /// SHA-256 of the secret, lowercase hex.
    pub secret_sha256: String,
    pub created_at: Timestamp,
}

/// Why a node may not join or renew.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The secret is not the cluster's (or the cluster has none yet).
    #[error("the join token's secret is not this cluster's")]
    WrongSecret,
    /// A field of the request is not allowed.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// The control plane's identity (`spiffe://berth/ns/_berth/sa/control`).
pub fn control_identity() -> SpiffeId {
    SpiffeId::new(
        CONTROL_TRUST_DOMAIN,
        NODE_IDENTITY_NAMESPACE,
        CONTROL_SERVICE,
    )
    .expect("a valid constant identity")
}

/// The identity of the node of `instance_id` in `cluster`.
pub fn node_identity(cluster: &str, instance_id: &str) -> Result<SpiffeId, JoinError> {
    MeshNode {
        cluster: cluster.to_string(),
        instance_id: instance_id.to_string(),
    }
    .identity()
    .map_err(|e| JoinError::Invalid {
        field: "instanceId".into(),
        message: e.to_string(),
    })
}

/// `(cluster, instance id)` of a node identity, `None` when `id` is no node's.
pub fn node_of(id: &SpiffeId) -> Option<(String, String)> {
    if id.namespace() != NODE_IDENTITY_NAMESPACE {
        return None;
    }
    let instance = id.service().strip_prefix("node-")?;
    Some((id.trust_domain().to_string(), instance.to_string()))
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether two digests are equal, in time that does not depend on where they differ.
fn same_digest(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new secret: 32 random bytes, lowercase hex.
fn new_secret() -> Result<String, ControlError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ControlError::invalid("joinSecret", "the system's random source failed"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn valid_instance_id(id: &str) -> bool {
    id.len() == 19 && id.starts_with("i-") && id[2..].chars().all(|c| c.is_ascii_hexdigit())
}

fn credentials(cert: MeshCertificate, authority: &MeshAuthority) -> NodeCredentials {
    NodeCredentials {
        renew_at: cert.renew_at(),
        certificate_pem: cert.cert_chain_pem,
        private_key_pem: cert.private_key_pem,
        authority_pem: authority.stored().certificate_pem.clone(),
        not_after: cert.not_after,
    }
}

/// The control plane's side of joining. Cheap to clone.
#[derive(Clone)]
pub struct NodeJoin {
    db: Db,
    authority: Arc<Mutex<AuthorityCache>>,
    validity: Duration,
}

impl NodeJoin {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            authority: Arc::default(),
            validity: DEFAULT_NODE_CERTIFICATE_VALIDITY,
        }
    }

    /// Node certificates valid for `validity` instead of the default.
    pub fn with_certificate_validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    async fn authority(&self) -> Result<Arc<MeshAuthority>, ControlError> {
        self.authority
            .lock()
            .await
            .authority(&self.db, time::now())
            .await
    }

    /// The authority's certificate (PEM), created on first use: what the join token pins.
    pub async fn authority_pem(&self) -> Result<String, ControlError> {
        Ok(self.authority().await?.stored().certificate_pem.clone())
    }

    /// Creates the join secret when there is none and returns it; `None` when one
    /// exists already (only its digest is kept, so it cannot be shown again).
    pub async fn ensure_secret(&self) -> Result<Option<String>, ControlError> {
        if self
            .db
            .get::<StoredJoinSecret>(JOIN_SECRET_STORE_KEY)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let secret = new_secret()?;
        let stored = StoredJoinSecret {
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_at: time::now(),
        };
        match self.db.create(JOIN_SECRET_STORE_KEY, &stored).await {
            Ok(_) => Ok(Some(secret)),
            // Another server created it first: that one shows it.
            Err(berth_store::StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces the join secret and returns the new one.
    pub async fn rotate_secret(&self) -> Result<String, ControlError> {
        let secret = new_secret()?;
        let stored = StoredJoinSecret {
            secret_sha256: sha256_hex(secret.as_bytes()),
            created_at: time::now(),
        };
        self.db.put(JOIN_SECRET_STORE_KEY, &stored).await?;
        Ok(secret)
    }

    /// Checks `request.secret` and issues the node its certificate.
    pub async fn join(&self, request: &JoinRequest) -> Result<NodeCredentials, JoinError> {
        if !valid_instance_id(&request.instance_id) {
            return Err(JoinError::Invalid {
                field: "instanceId".into(),
                message: format!(
                    "must be i- and 17 hex digits, got {:?}",
                    request.instance_id
                ),
            });
        }
        let stored = self
            .db
            .get::<StoredJoinSecret>(JOIN_SECRET_STORE_KEY)
            .await?
            .ok_or(JoinError::WrongSecret)?;
        let given = sha256_hex(request.secret.as_bytes());
        if !same_digest(given.as_bytes(), stored.value.secret_sha256.as_bytes()) {
            return Err(JoinError::WrongSecret);
        }
        let id = node_identity(&request.cluster, &request.instance_id)?;
        self.issue(&id).await
    }

    /// A fresh certificate for the node that proved `id` (with its current one).
    pub async fn renew(&self, id: &SpiffeId) -> Result<NodeCredentials, JoinError> {
        if node_of(id).is_none() {
            return Err(JoinError::Invalid {
                field: "certificate".into(),
                message: format!("{id} is not a node identity"),
            });
        }
        self.issue(id).await
    }

    /// The control plane's own certificate, for its side of the link.
    pub async fn control_credentials(&self) -> Result<NodeCredentials, ControlError> {
        self.issue(&control_identity()).await.map_err(|e| match e {
            JoinError::Control(c) => c,
            other => ControlError::invalid("controlIdentity", other.to_string()),
        })
    }

    async fn issue(&self, id: &SpiffeId) -> Result<NodeCredentials, JoinError> {
        let authority = self.authority().await?;
        let cert = authority
            .issue(id, time::now().floor(), self.validity)
            .map_err(ControlError::from)?;
        Ok(credentials(cert, &authority))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_store::MemoryStore;

    fn join_service() -> NodeJoin {
        NodeJoin::new(Db::new(Arc::new(MemoryStore::new())))
    }

    fn request(secret: &str) -> JoinRequest {
        JoinRequest {
            secret: secret.into(),
            cluster: "default".into(),
            instance_id: "i-0123456789abcdef0".into(),
        }
    }

    #[tokio::test]
    async fn the_secret_is_shown_once_and_kept_only_as_a_digest() {
        let join = join_service();
        let secret = join.ensure_secret().await.unwrap().expect("created");
        assert_eq!(secret.len(), 64);
        assert_eq!(join.ensure_secret().await.unwrap(), None, "shown only once");
        let stored = join
            .db
            .get::<StoredJoinSecret>(JOIN_SECRET_STORE_KEY)
            .await
            .unwrap()
            .unwrap();
        assert_ne!(stored.value.secret_sha256, secret);
        assert_eq!(stored.value.secret_sha256, sha256_hex(secret.as_bytes()));
    }

    #[tokio::test]
    async fn a_node_with_the_secret_gets_its_identity_and_a_wrong_one_nothing() {
        let join = join_service();
        let secret = join.ensure_secret().await.unwrap().unwrap();
        let creds = join.join(&request(&secret)).await.unwrap();
        assert!(creds.certificate_pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(creds.authority_pem, join.authority_pem().await.unwrap());
        assert!(creds.renew_at < creds.not_after);
        let err = join.join(&request("not-the-secret")).await.unwrap_err();
        assert!(matches!(err, JoinError::WrongSecret), "{err}");
        let mut bad = request(&secret);
        bad.instance_id = "i-zz".into();
        let err = join.join(&bad).await.unwrap_err();
        assert!(err.to_string().starts_with("instanceId:"), "{err}");
    }

    #[tokio::test]
    async fn rotation_refuses_the_old_secret() {
        let join = join_service();
        let old = join.ensure_secret().await.unwrap().unwrap();
        let new = join.rotate_secret().await.unwrap();
        assert!(join.join(&request(&old)).await.is_err());
        assert!(join.join(&request(&new)).await.is_ok());
    }

    #[test]
    fn node_identities_round_trip_and_control_is_not_a_node() {
        let id = node_identity("default", "i-0123456789abcdef0").unwrap();
        assert_eq!(
            node_of(&id),
            Some(("default".into(), "i-0123456789abcdef0".into()))
        );
        assert_eq!(node_of(&control_identity()), None);
    }
}
