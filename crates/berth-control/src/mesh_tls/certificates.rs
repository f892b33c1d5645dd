//! [`CertificateBook`]: the certificates issued for the mesh's identities, in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, SpiffeId};
use berth_model::time::Timestamp;

use crate::mesh_ca::{MeshAuthority, MeshCaError};

/// One current certificate per identity wanted, all from one CA.
#[derive(Default)]
pub struct CertificateBook {
    /// The PEM of the CA that issued `certs`: a different CA reissues them all.
    issuer_pem: Option<String>,
    certs: BTreeMap<SpiffeId, Issued>,
}

/// A certificate and when the book issued it.
struct Issued {
    cert: MeshCertificate,
    at: Timestamp,
}

impl Issued {
    /// Half-way from issuance to expiry. Not
    /// [`needs_rotation`](crate::mesh_ca::needs_rotation)'s half of notBefore to
    /// notAfter: notBefore is backdated by the clock skew allowance, so for a validity
    /// under two minutes that half has passed before the certificate is issued, and it
    /// would be reissued on every pass.
    fn due(&self, now: Timestamp) -> bool {
        now >= self.at + (self.cert.not_after - self.at) / 2.0 || now >= self.cert.not_after
    }
}

impl CertificateBook {
    /// Makes the book hold a certificate of `ca` for exactly the identities `wanted`:
    /// issues those missing or due for renewal at `now` (half-way from issuance to
    /// expiry; valid for `validity`), and
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
            if self.certs.get(id).is_none_or(|c| c.due(now)) {
                let cert = ca.issue(id, now, validity)?;
                self.certs.insert(id.clone(), Issued { cert, at: now });
                issued += 1;
            }
        }
        Ok(issued)
    }

    pub fn get(&self, id: &SpiffeId) -> Option<&MeshCertificate> {
        self.certs.get(id).map(|c| &c.cert)
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}
