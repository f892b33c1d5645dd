//! [`AuthorityCache`]: the mesh CA, loaded from the store or created into it once.

use std::sync::Arc;

use berth_model::time::Timestamp;
use berth_store::{Revision, StoreError};

use crate::db::Db;
use crate::error::ControlError;
use crate::mesh_ca::{MeshAuthority, StoredMeshCa, DEFAULT_MESH_CA_VALIDITY, MESH_CA_STORE_KEY};

/// The CA as last read, keyed by the mod revision of [`MESH_CA_STORE_KEY`].
#[derive(Default)]
pub struct AuthorityCache {
    loaded: Option<(Revision, Arc<MeshAuthority>)>,
}

impl AuthorityCache {
    /// The stored CA (parsed again only when its mod revision moved); when none is
    /// stored, a new one created at `now` and written only if the key is still absent.
    /// A server that loses that race loads the winner's.
    pub async fn authority(
        &mut self,
        db: &Db,
        now: Timestamp,
    ) -> Result<Arc<MeshAuthority>, ControlError> {
        // Twice at most: absent, lost the race to create it, then read the winner's.
        for _ in 0..2 {
            if let Some(stored) = db.get::<StoredMeshCa>(MESH_CA_STORE_KEY).await? {
                if let Some((rev, ca)) = &self.loaded {
                    if *rev == stored.mod_revision {
                        return Ok(ca.clone());
                    }
                }
                let ca = Arc::new(MeshAuthority::load(&stored.value)?);
                self.loaded = Some((stored.mod_revision, ca.clone()));
                return Ok(ca);
            }
            let ca = MeshAuthority::create(now, DEFAULT_MESH_CA_VALIDITY)?;
            match db.create(MESH_CA_STORE_KEY, ca.stored()).await {
                Ok(rev) => {
                    tracing::info!(key = MESH_CA_STORE_KEY, "created the mesh CA");
                    let ca = Arc::new(ca);
                    self.loaded = Some((rev, ca.clone()));
                    return Ok(ca);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Contended {
            key: MESH_CA_STORE_KEY.into(),
        })
    }

    /// The mod revision of the CA held, if any.
    pub fn revision(&self) -> Option<Revision> {
        self.loaded.as_ref().map(|(rev, _)| *rev)
    }
}
