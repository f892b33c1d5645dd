//! [`CertificateBook`]: the certificates issued for the mesh's identities, in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, SpiffeId};
use berth_model::time::Timestamp;

use crate::mesh_ca::{needs_rotation, MeshAuthority, MeshCaError};

/// One current certificate per identity wanted, all from one CA.
#[derive(Default)]
pub struct CertificateBook {
    /// The PEM of the CA that issued `certs`: a different CA reissues them all.
    issuer_pem: Option<String>,
    certs: BTreeMap<SpiffeId, MeshCertificate>,
}

impl CertificateBook {
    /// Makes the book hold a certificate of `ca` for exactly the identities `wanted`:
    /// issues those missing or due for rotation at `now` (valid for `validity`), and
    /// forgets the others. Returns how many it issued.
    pub fn refresh(
        &mut self,
        ca: &MeshAuthority,
        wanted: &BTreeSet<SpiffeId>,
        now: Timestamp,
        validity: Duration,
    ) -> Result<usize, MeshCaError> {
        let ca_pem = &ca.stored().certificate_pem;
        if self.issuer_pem.as_ref() != Some(ca_pem) {
            self.certs.clear();
            self.issuer_pem = Some(ca_pem.clone());
        }
        self.certs.retain(|id, _| wanted.contains(id));
        let mut issued = 0;
        for id in wanted {
            let due = self
                .certs
                .get(id)
                .is_none_or(|c| needs_rotation(c, now) || now >= c.not_after);
            if due {
                let cert = ca.issue(id, now, validity)?;
                self.certs.insert(id.clone(), cert);
                issued += 1;
            }
        }
        Ok(issued)
    }

    pub fn get(&self, id: &SpiffeId) -> Option<&MeshCertificate> {
        self.certs.get(id)
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}
