//! The mesh's certificate authority: it creates the CA berth's node proxies trust for
//! mutual TLS, and issues each service of the mesh a short-lived certificate for its
//! SPIFFE identity ([`SpiffeId`](berth_model::mesh_identity::SpiffeId)).
//!
//! - [`MeshAuthority::create`] makes a CA (ECDSA P-256, self-signed, path length 0: it
//!   signs services directly) and [`MeshAuthority::stored`] gives the form the control
//!   plane keeps in the store at [`MESH_CA_STORE_KEY`]; [`MeshAuthority::load`] takes it
//!   back. The CA's private key lives in that stored form, in the store: whoever can read
//!   the store can issue mesh identities, as whoever can write it can already run any
//!   task.
//! - [`MeshAuthority::issue`] signs a service certificate: URI SAN the SPIFFE id, DNS SAN
//!   `<service>.<namespace>.mesh` (so ordinary name checks work too), key usage digital
//!   signature, extended key usages server and client authentication, valid from a
//!   minute before `now` ([`CLOCK_SKEW_ALLOWANCE`]) for the validity asked
//!   ([`DEFAULT_MESH_CERTIFICATE_VALIDITY`] by default), never past the CA's own end.
//! - [`needs_rotation`] says when to issue the next one: half-way through a
//!   certificate's lifetime.
//!
//! Everything here is a pure function of its arguments: `now` is passed in (no clock is
//! read) and nothing touches the store (the caller stores what it gets).

mod authority;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use berth_model::mesh_identity::MeshCertificate;
use berth_model::time::Timestamp;
use serde::{Deserialize, Serialize};

pub use authority::MeshAuthority;

/// Where the control plane keeps the [`StoredMeshCa`].
pub const MESH_CA_STORE_KEY: &str = "/mesh/ca";

/// How long a service certificate is valid when the caller does not say: an hour, so a
/// leaked key is worth little for long, and renewal at half-time leaves half an hour of
/// grace while the control plane is away.
pub const DEFAULT_MESH_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(60 * 60);

/// How long a CA is valid when the caller does not say: ten years, as Istio's
/// self-signed root. The CA is replaced by rotation (trusting old and new side by side,
/// see [`MeshTrust`](berth_model::mesh_identity::MeshTrust)), not by expiry.
pub const DEFAULT_MESH_CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// How far before `now` a certificate starts to be valid, so a peer whose clock is a
/// little behind accepts it at once.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// Whether `cert` should be replaced at `now`: once half of its lifetime has passed.
pub fn needs_rotation(cert: &MeshCertificate, now: Timestamp) -> bool {
    now >= cert.renew_at()
}

/// The CA as the control plane stores it (JSON, camelCase).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoredMeshCa {
    /// The common name of the CA certificate's subject (`berth mesh CA <created at>`):
    /// with the key and the validity it rebuilds the issuer that signs certificates.
    pub common_name: String,
    /// The CA certificate, PEM: what proxies trust.
    pub certificate_pem: String,
    /// The CA's private key, PKCS#8 PEM, kept in the clear in the store.
    pub private_key_pem: String,
    /// The CA certificate's notBefore (whole seconds).
    pub not_before: Timestamp,
    /// The CA certificate's notAfter (whole seconds).
    pub not_after: Timestamp,
}

impl fmt::Debug for StoredMeshCa {
    /// Everything but the private key, so logging the CA does not leak it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredMeshCa")
            .field("common_name", &self.common_name)
            .field("certificate_pem", &self.certificate_pem)
            .field("private_key_pem", &"<redacted>")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// What went wrong creating, loading or using the mesh CA.
#[derive(Debug, thiserror::Error)]
pub enum MeshCaError {
    /// An argument is out of range: `field` names it, `message` says what is allowed.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A field of the stored CA does not load, or does not match the others.
    #[error("the stored mesh CA's {field} does not load: {reason}")]
    StoredCa { field: &'static str, reason: String },
    /// The CA cannot sign at `now`.
    #[error("the mesh CA is valid from {not_before} to {not_after} (unix seconds), not at {now}")]
    CaNotValid {
        now: Timestamp,
        not_before: Timestamp,
        not_after: Timestamp,
    },
    /// Key generation or signing failed.
    #[error("could not generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    /// A certificate was not issued by this CA for the identity it names, or is not
    /// valid at the time asked.
    #[error("the certificate of {spiffe_id} does not check against this CA: {reason}")]
    NotIssuedHere { spiffe_id: String, reason: String },
}
