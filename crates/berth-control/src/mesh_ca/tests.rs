use std::time::Duration;

use berth_model::mesh_identity::{MeshCertificate, SpiffeId};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::*;

/// 2026-01-01T00:00:00Z plus a fraction, as a clock would give it.
const NOW: Timestamp = 1_767_225_600.25;

fn orders() -> SpiffeId {
    SpiffeId::for_service("prod", "internal", "orders").unwrap()
}

fn ca() -> MeshAuthority {
    MeshAuthority::create(NOW, DEFAULT_MESH_CA_VALIDITY).unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Verifies `cert` against the CA certificate `ca_pem` with rustls-webpki, for
/// `usage`, at unix second `at`.
fn webpki_verify(
    ca_pem: &str,
    cert: &MeshCertificate,
    at: u64,
    usage: webpki::KeyUsage,
) -> Result<(), webpki::Error> {
    let ca = der(ca_pem);
    let anchor = webpki::anchor_from_trusted_cert(&ca)?;
    let leaf = der(&cert.cert_chain_pem);
    let ee = webpki::EndEntityCert::try_from(&leaf)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::since_unix_epoch(Duration::from_secs(at)),
        usage,
        None,
        None,
    )
    .map(|_| ())
}

#[test]
fn an_issued_certificate_chains_to_the_ca_for_server_and_client_use() {
    let ca = ca();
    let cert = ca
        .issue(&orders(), NOW, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    let ca_pem = &ca.stored().certificate_pem;
    let at = NOW as u64;
    webpki_verify(ca_pem, &cert, at, webpki::KeyUsage::server_auth()).unwrap();
    webpki_verify(ca_pem, &cert, at, webpki::KeyUsage::client_auth()).unwrap();
    ca.verify_issued(&cert, NOW).unwrap();
    assert_eq!(ca.trust().ca_certificates_pem, vec![ca_pem.clone()]);
}

#[test]
fn an_issued_certificate_carries_the_spiffe_uri_and_the_mesh_dns_name() {
    let ca = ca();
    let id = orders();
    let cert = ca
        .issue(&id, NOW, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    assert_eq!(cert.spiffe_id, id);
    let leaf = der(&cert.cert_chain_pem);
    let ee = webpki::EndEntityCert::try_from(&leaf).unwrap();
    assert_eq!(
        ee.valid_uri_names().collect::<Vec<_>>(),
        ["spiffe://prod/ns/internal/sa/orders"]
    );
    assert_eq!(
        ee.valid_dns_names().collect::<Vec<_>>(),
        ["orders.internal.mesh"]
    );
    let name = rustls_pki_types::ServerName::try_from("orders.internal.mesh").unwrap();
    ee.verify_is_valid_for_subject_name(&name).unwrap();
}

#[test]
fn the_validity_starts_a_minute_early_and_lasts_what_was_asked() {
    let ca = ca();
    let cert = ca.issue(&orders(), NOW, Duration::from_secs(3600)).unwrap();
    let now_s = NOW.floor();
    assert_eq!(cert.not_before, now_s - 60.0);
    assert_eq!(cert.not_after, now_s + 3600.0);
    let ca_pem = &ca.stored().certificate_pem;
    let usage = webpki::KeyUsage::client_auth;
    // A peer whose clock is 59 s behind accepts it; one 61 s behind does not.
    webpki_verify(ca_pem, &cert, now_s as u64 - 59, usage()).unwrap();
    assert!(webpki_verify(ca_pem, &cert, now_s as u64 - 61, usage()).is_err());
    webpki_verify(ca_pem, &cert, now_s as u64 + 3599, usage()).unwrap();
    assert!(matches!(
        webpki_verify(ca_pem, &cert, now_s as u64 + 3601, usage()),
        Err(webpki::Error::CertExpired { .. })
    ));
    assert!(ca.verify_issued(&cert, NOW + 3601.0).is_err());
}

#[test]
fn a_certificate_never_outlives_its_ca() {
    let ca = MeshAuthority::create(NOW, Duration::from_secs(1800)).unwrap();
    let cert = ca.issue(&orders(), NOW, Duration::from_secs(3600)).unwrap();
    assert_eq!(cert.not_after, ca.stored().not_after);
    assert_eq!(ca.stored().not_after, NOW.floor() + 1800.0);
    // Past the CA's end it issues nothing.
    let e = ca
        .issue(&orders(), NOW + 1800.0, Duration::from_secs(3600))
        .unwrap_err();
    assert!(matches!(e, MeshCaError::CaNotValid { .. }), "{e}");
}

#[test]
fn rotation_is_due_once_half_the_lifetime_has_passed() {
    let ca = ca();
    let cert = ca.issue(&orders(), NOW, Duration::from_secs(3600)).unwrap();
    // Lifetime 3660 s from now - 60: half-time is now + 1770.
    let half = NOW.floor() + 1770.0;
    assert!(!needs_rotation(&cert, NOW));
    assert!(!needs_rotation(&cert, half - 0.5));
    assert!(needs_rotation(&cert, half));
    assert!(needs_rotation(&cert, cert.not_after + 10.0));
}

#[test]
fn the_stored_form_round_trips_and_keeps_signing_for_the_same_ca() {
    let original = ca();
    let json = serde_json::to_string(original.stored()).unwrap();
    assert!(json.contains("\"certificatePem\""), "{json}");
    let stored: StoredMeshCa = serde_json::from_str(&json).unwrap();
    assert_eq!(&stored, original.stored());
    let loaded = MeshAuthority::load(&stored).unwrap();
    assert_eq!(loaded.stored(), original.stored());
    // What the loaded CA signs chains to the certificate proxies already trust.
    let cert = loaded
        .issue(&orders(), NOW + 5.0, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    webpki_verify(
        &original.stored().certificate_pem,
        &cert,
        NOW as u64 + 5,
        webpki::KeyUsage::server_auth(),
    )
    .unwrap();
    original.verify_issued(&cert, NOW + 5.0).unwrap();
}

#[test]
fn a_stored_ca_whose_parts_do_not_belong_together_is_refused() {
    let a = ca();
    let b = MeshAuthority::create(NOW + 1.0, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let mut other_key = a.stored().clone();
    other_key.private_key_pem = b.stored().private_key_pem.clone();
    let e = MeshAuthority::load(&other_key).unwrap_err();
    assert!(
        matches!(
            e,
            MeshCaError::StoredCa {
                field: "privateKeyPem",
                ..
            }
        ),
        "{e}"
    );
    let mut other_name = a.stored().clone();
    other_name.common_name = "someone else".into();
    let e = MeshAuthority::load(&other_name).unwrap_err();
    assert!(
        matches!(
            e,
            MeshCaError::StoredCa {
                field: "commonName",
                ..
            }
        ),
        "{e}"
    );
    let mut garbage = a.stored().clone();
    garbage.certificate_pem = "not a certificate".into();
    let e = MeshAuthority::load(&garbage).unwrap_err();
    assert!(
        matches!(
            e,
            MeshCaError::StoredCa {
                field: "certificatePem",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn another_cas_certificate_does_not_verify() {
    let a = ca();
    let b = MeshAuthority::create(NOW, DEFAULT_MESH_CA_VALIDITY).unwrap();
    let from_b = b
        .issue(&orders(), NOW, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    assert!(webpki_verify(
        &a.stored().certificate_pem,
        &from_b,
        NOW as u64,
        webpki::KeyUsage::server_auth()
    )
    .is_err());
    let e = a.verify_issued(&from_b, NOW).unwrap_err();
    assert!(matches!(e, MeshCaError::NotIssuedHere { .. }), "{e}");
}

#[test]
fn a_certificate_claiming_another_identity_or_key_is_refused() {
    let ca = ca();
    let cert = ca
        .issue(&orders(), NOW, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    let mut renamed = cert.clone();
    renamed.spiffe_id = SpiffeId::for_service("prod", "internal", "billing").unwrap();
    assert!(ca.verify_issued(&renamed, NOW).is_err());
    let other = ca
        .issue(&orders(), NOW, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap();
    let mut swapped_key = cert.clone();
    swapped_key.private_key_pem = other.private_key_pem;
    let e = ca.verify_issued(&swapped_key, NOW).unwrap_err();
    assert!(e.to_string().contains("privateKeyPem"), "{e}");
}

#[test]
fn bad_arguments_name_the_field() {
    let ca = ca();
    let e = ca.issue(&orders(), NOW, Duration::ZERO).unwrap_err();
    assert!(
        matches!(
            e,
            MeshCaError::Invalid {
                field: "validity",
                ..
            }
        ),
        "{e}"
    );
    let e = ca
        .issue(&orders(), f64::NAN, DEFAULT_MESH_CERTIFICATE_VALIDITY)
        .unwrap_err();
    assert!(
        matches!(e, MeshCaError::Invalid { field: "now", .. }),
        "{e}"
    );
    let e = MeshAuthority::create(-1.0, DEFAULT_MESH_CA_VALIDITY).unwrap_err();
    assert!(
        matches!(e, MeshCaError::Invalid { field: "now", .. }),
        "{e}"
    );
}

#[test]
fn the_ca_key_stays_out_of_debug_output() {
    let ca = ca();
    let key_line = ca
        .stored()
        .private_key_pem
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    for shown in [format!("{ca:?}"), format!("{:?}", ca.stored())] {
        assert!(!shown.contains(&key_line), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
