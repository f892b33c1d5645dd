//! A certificate authority for tests, issuing certificates shaped as the control plane's
//! mesh CA issues them.

use std::sync::atomic::{AtomicUsize, Ordering};

use berth_model::mesh_identity::{MeshCertificate, MeshTrust, SpiffeId};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// A CA issuing certificates shaped as the control plane's mesh CA issues them: URI SAN
/// the SPIFFE id, DNS SAN `<service>.<namespace>.mesh`.
pub struct TestCa {
    cert: Certificate,
    key: KeyPair,
}

impl TestCa {
    pub fn new() -> Self {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("test mesh CA {n}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn trust(&self) -> MeshTrust {
        MeshTrust {
            ca_certificates_pem: vec![self.cert.pem()],
        }
    }

    pub fn issue(&self, id: &SpiffeId) -> MeshCertificate {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![
            SanType::URI(id.to_string().try_into().unwrap()),
            SanType::DnsName(id.mesh_server_name().try_into().unwrap()),
        ];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        MeshCertificate {
            spiffe_id: id.clone(),
            cert_chain_pem: cert.pem(),
            private_key_pem: key.serialize_pem(),
            not_before: 0.0,
            not_after: 0.0,
        }
    }
}
