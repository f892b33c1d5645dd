//! [`MeshAuthority`]: the CA's certificate and key, ready to sign.

use std::fmt;
use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, MeshTrust, SpiffeId};
use berth_model::time::Timestamp;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use time::OffsetDateTime;

use super::{MeshCaError, StoredMeshCa, CLOCK_SKEW_ALLOWANCE};

/// The organization in the subject of the CA and of every service certificate.
const ORGANIZATION: &str = "berth";

/// The longest common name X.509 allows (ub-common-name).
const MAX_COMMON_NAME_LEN: usize = 64;

/// The mesh's certificate authority, loaded: create one with [`MeshAuthority::create`]
/// or take a stored one back with [`MeshAuthority::load`].
pub struct MeshAuthority {
    /// The issuer rcgen signs with: rebuilt from the stored fields, so its subject and
    /// key are those of [`MeshAuthority::stored`]'s certificate.
    issuer: Certificate,
    key: KeyPair,
    stored: StoredMeshCa,
}

impl fmt::Debug for MeshAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshAuthority")
            .field("stored", &self.stored)
            .finish_non_exhaustive()
    }
}

impl MeshAuthority {
    /// A new CA with a new ECDSA P-256 key, valid from a minute before `now` for
    /// `validity` ([`DEFAULT_MESH_CA_VALIDITY`](super::DEFAULT_MESH_CA_VALIDITY) unless
    /// there is a reason).
    pub fn create(now: Timestamp, validity: Duration) -> Result<Self, MeshCaError> {
        let now = whole_seconds("now", now)?;
        let validity = validity_seconds("validity", validity)?;
        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| MeshCaError::Generate {
                what: "the mesh CA key",
                reason: e.to_string(),
            })?;
        let not_before = now.saturating_sub(skew_seconds());
        let not_after = now.saturating_add(validity);
        let common_name = format!("berth mesh CA {now}");
        let issuer = ca_params(&common_name, not_before, not_after)?
            .self_signed(&key)
            .map_err(|e| MeshCaError::Generate {
                what: "the mesh CA certificate",
                reason: e.to_string(),
            })?;
        let stored = StoredMeshCa {
            common_name,
            certificate_pem: issuer.pem(),
            private_key_pem: key.serialize_pem(),
            not_before: not_before as Timestamp,
            not_after: not_after as Timestamp,
        };
        Ok(MeshAuthority {
            issuer,
            key,
            stored,
        })
    }

    /// Takes a stored CA back, checking that its certificate, key, name and validity
    /// belong together.
    pub fn load(stored: &StoredMeshCa) -> Result<Self, MeshCaError> {
        let bad = |field: &'static str, reason: String| MeshCaError::StoredCa { field, reason };
        let key = KeyPair::from_pem(&stored.private_key_pem)
            .map_err(|e| bad("privateKeyPem", e.to_string()))?;
        let cert_der = CertificateDer::from_pem_slice(stored.certificate_pem.as_bytes())
            .map_err(|e| bad("certificatePem", e.to_string()))?;
        let not_before = whole_seconds("notBefore", stored.not_before)
            .map_err(|e| bad("notBefore", e.to_string()))?;
        let not_after = whole_seconds("notAfter", stored.not_after)
            .map_err(|e| bad("notAfter", e.to_string()))?;
        let issuer = ca_params(&stored.common_name, not_before, not_after)
            .map_err(|e| bad("commonName", e.to_string()))?
            .self_signed(&key)
            .map_err(|e| bad("privateKeyPem", e.to_string()))?;
        let stored_anchor = webpki::anchor_from_trusted_cert(&cert_der)
            .map_err(|e| bad("certificatePem", e.to_string()))?;
        let rebuilt_anchor = webpki::anchor_from_trusted_cert(issuer.der())
            .map_err(|e| bad("certificatePem", e.to_string()))?;
        if stored_anchor.subject_public_key_info != rebuilt_anchor.subject_public_key_info {
            return Err(bad(
                "privateKeyPem",
                "the key is not the certificate's key".into(),
            ));
        }
        if stored_anchor.subject != rebuilt_anchor.subject {
            return Err(bad(
                "commonName",
                format!(
                    "{:?} is not the certificate's subject common name",
                    stored.common_name
                ),
            ));
        }
        Ok(MeshAuthority {
            issuer,
            key,
            stored: stored.clone(),
        })
    }

    /// The form to keep in the store at [`MESH_CA_STORE_KEY`](super::MESH_CA_STORE_KEY).
    pub fn stored(&self) -> &StoredMeshCa {
        &self.stored
    }

    /// What the proxies trust: this CA's certificate.
    pub fn trust(&self) -> MeshTrust {
        MeshTrust {
            ca_certificates_pem: vec![self.stored.certificate_pem.clone()],
        }
    }

    /// A certificate and new key for `id`, valid from a minute before `now` for
    /// `validity` ([`DEFAULT_MESH_CERTIFICATE_VALIDITY`](super::DEFAULT_MESH_CERTIFICATE_VALIDITY)
    /// unless there is a reason), cut short at the CA's own end.
    pub fn issue(
        &self,
        id: &SpiffeId,
        now: Timestamp,
        validity: Duration,
    ) -> Result<MeshCertificate, MeshCaError> {
        let now_s = whole_seconds("now", now)?;
        let validity = validity_seconds("validity", validity)?;
        let (ca_from, ca_until) = (self.stored.not_before, self.stored.not_after);
        if (now_s as Timestamp) < ca_from || (now_s as Timestamp) >= ca_until {
            return Err(MeshCaError::CaNotValid {
                now,
                not_before: ca_from,
                not_after: ca_until,
            });
        }
        let not_before = now_s.saturating_sub(skew_seconds()).max(ca_from as i64);
        let not_after = now_s.saturating_add(validity).min(ca_until as i64);

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, ORGANIZATION);
        let service = id.service();
        dn.push(
            DnType::CommonName,
            &service[..service.len().min(MAX_COMMON_NAME_LEN)],
        );
        params.distinguished_name = dn;
        let san = |what: &'static str, value: String| {
            value
                .try_into()
                .map_err(|e: rcgen::Error| MeshCaError::Generate {
                    what,
                    reason: e.to_string(),
                })
        };
        params.subject_alt_names = vec![
            SanType::URI(san("the URI SAN", id.to_string())?),
            SanType::DnsName(san("the DNS SAN", id.mesh_server_name())?),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time(not_before)?;
        params.not_after = date_time(not_after)?;

        let key =
            KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| MeshCaError::Generate {
                what: "a service key",
                reason: e.to_string(),
            })?;
        let cert = params
            .signed_by(&key, &self.issuer, &self.key)
            .map_err(|e| MeshCaError::Generate {
                what: "a service certificate",
                reason: e.to_string(),
            })?;
        Ok(MeshCertificate {
            spiffe_id: id.clone(),
            cert_chain_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            not_before: not_before as Timestamp,
            not_after: not_after as Timestamp,
        })
    }

    /// Checks that `cert` chains to this CA for both client and server use at `now`,
    /// names exactly its `spiffe_id` as its one URI SAN, and that its key is the
    /// certificate's. The control plane uses it on certificates it loads back, so one
    /// issued by an earlier CA is reissued.
    pub fn verify_issued(&self, cert: &MeshCertificate, now: Timestamp) -> Result<(), MeshCaError> {
        let refuse = |reason: String| MeshCaError::NotIssuedHere {
            spiffe_id: cert.spiffe_id.to_string(),
            reason,
        };
        let chain = CertificateDer::pem_slice_iter(cert.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| refuse(format!("certChainPem: {e}")))?;
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| refuse("certChainPem holds no certificate".into()))?;
        let ca_der = CertificateDer::from_pem_slice(self.stored.certificate_pem.as_bytes())
            .map_err(|e| refuse(format!("the CA certificate: {e}")))?;
        let anchor = webpki::anchor_from_trusted_cert(&ca_der)
            .map_err(|e| refuse(format!("the CA certificate: {e}")))?;
        let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| refuse(e.to_string()))?;
        let at = UnixTime::since_unix_epoch(Duration::from_secs(
            whole_seconds("now", now)?.max(0) as u64
        ));
        for usage in [
            webpki::KeyUsage::server_auth(),
            webpki::KeyUsage::client_auth(),
        ] {
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                std::slice::from_ref(&anchor),
                intermediates,
                at,
                usage,
                None,
                None,
            )
            .map_err(|e| refuse(e.to_string()))?;
        }
        let uris: Vec<&str> = ee.valid_uri_names().collect();
        if uris != [cert.spiffe_id.to_string().as_str()] {
            return Err(refuse(format!("its URI SANs are {uris:?}")));
        }
        let key = KeyPair::from_pem(&cert.private_key_pem)
            .map_err(|e| refuse(format!("privateKeyPem: {e}")))?;
        if key.public_key_der() != ee.subject_public_key_info().as_ref() {
            return Err(refuse("privateKeyPem is not the certificate's key".into()));
        }
        Ok(())
    }
}

/// The CA's certificate parameters; the same fields give the same subject and issuer.
fn ca_params(
    common_name: &str,
    not_before: i64,
    not_after: i64,
) -> Result<CertificateParams, MeshCaError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time(not_before)?;
    params.not_after = date_time(not_after)?;
    Ok(params)
}

fn skew_seconds() -> i64 {
    CLOCK_SKEW_ALLOWANCE.as_secs() as i64
}

/// `t` rounded down to whole seconds, as X.509 times are.
fn whole_seconds(field: &'static str, t: Timestamp) -> Result<i64, MeshCaError> {
    if !(0.0..253_402_300_800.0).contains(&t) {
        return Err(MeshCaError::Invalid {
            field,
            message: format!("must be unix seconds between 0 and the year 9999, got {t}"),
        });
    }
    Ok(t.floor() as i64)
}

fn validity_seconds(field: &'static str, d: Duration) -> Result<i64, MeshCaError> {
    let s = d.as_secs();
    if s == 0 || s > 100 * 365 * 24 * 60 * 60 {
        return Err(MeshCaError::Invalid {
            field,
            message: format!("must be at least 1 second and at most 100 years, got {d:?}"),
        });
    }
    Ok(s as i64)
}

fn date_time(unix_seconds: i64) -> Result<OffsetDateTime, MeshCaError> {
    OffsetDateTime::from_unix_timestamp(unix_seconds).map_err(|e| MeshCaError::Invalid {
        field: "validity",
        message: format!("{unix_seconds} is not a representable time: {e}"),
    })
}
