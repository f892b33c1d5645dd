//! The mesh's identities: who a service is on the wire between node proxies.
//!
//! Every service of the mesh has one identity in SPIFFE form,
//! `spiffe://<cluster>/ns/<namespace>/sa/<service>` ([`SpiffeId`]): the trust domain is
//! the cluster name (lowercased), the namespace is the Cloud Map namespace, the service
//! is the ECS service name. The control plane's certificate authority issues one
//! short-lived X.509 certificate per identity ([`MeshCertificate`]) and publishes the CA
//! certificates the proxies trust ([`MeshTrust`]); proxies talk to each other over
//! mutual TLS with them. [`AllowedCallers`] says which identities may call a service.
//!
//! Plain serde types, camelCase JSON. What it does not do: issue certificates (the
//! control plane does) or run TLS (the proxy does).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::time::Timestamp;

/// The scheme of every identity.
pub const SPIFFE_SCHEME: &str = "spiffe://";

/// The DNS suffix of a service's TLS server name (`<service>.<namespace>.mesh`).
pub const MESH_DNS_SUFFIX: &str = "mesh";

/// The longest trust domain SPIFFE allows.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The longest namespace accepted: a DNS name short enough that
/// `<63-character service label>.<namespace>.mesh` stays within DNS's 253 characters.
pub const MAX_NAMESPACE_LEN: usize = 253 - 63 - 1 - MESH_DNS_SUFFIX.len() - 1;
/// The longest ECS service name.
const MAX_SERVICE_LEN: usize = 255;
/// The longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A service's identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service>`.
///
/// The trust domain and the namespace are DNS-like names and kept lowercase, so an
/// identity has one spelling; the service is the ECS service name, whose case matters
/// (ECS tells `Api` and `api` apart).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service: String,
}

impl SpiffeId {
    /// An identity from its three parts, each validated as it is (nothing is
    /// lowercased): see [`SpiffeId::for_service`] for the forgiving constructor.
    pub fn new(
        trust_domain: impl Into<String>,
        namespace: impl Into<String>,
        service: impl Into<String>,
    ) -> Result<Self, ValidationError> {
        let id = SpiffeId {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service: service.into(),
        };
        check_trust_domain(&id.trust_domain)?;
        check_namespace(&id.namespace)?;
        check_service(&id.service)?;
        Ok(id)
    }

    /// The identity of the ECS service `service` of `cluster` in the Cloud Map
    /// namespace `namespace`. The cluster name becomes the trust domain and, like the
    /// namespace, is lowercased (SPIFFE trust domains are lowercase; DNS names ignore
    /// case).
    pub fn for_service(
        cluster: &str,
        namespace: &str,
        service: &str,
    ) -> Result<Self, ValidationError> {
        Self::new(
            cluster.to_ascii_lowercase(),
            namespace.to_ascii_lowercase(),
            service,
        )
    }

    /// The trust domain: the cluster name, lowercase.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The Cloud Map namespace, lowercase.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The ECS service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The DNS name a proxy sends as SNI to reach this service and that the service's
    /// certificate carries as a DNS SAN: `<service>.<namespace>.mesh`.
    ///
    /// A service name that is not a lowercase DNS label (it has capitals, is longer than
    /// 63 characters, or starts or ends with a hyphen) becomes
    /// `<lowercased prefix>-<16 hex digits of a hash of the exact name>`, so `Api` and
    /// `api` get different names. The name does not carry the trust domain: the SPIFFE
    /// URI SAN does, and it is what peers check.
    pub fn mesh_server_name(&self) -> String {
        format!(
            "{}.{}.{MESH_DNS_SUFFIX}",
            service_label(&self.service),
            self.namespace
        )
    }
}

/// The DNS label standing for a service name in [`SpiffeId::mesh_server_name`].
fn service_label(service: &str) -> String {
    let plain = service.len() <= MAX_LABEL_LEN
        && !service.starts_with('-')
        && !service.ends_with('-')
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if plain {
        return service.to_string();
    }
    // 63 = prefix (at most 46) + '-' + 16 hex digits.
    let lower = service.to_ascii_lowercase();
    let mut prefix: &str = lower.trim_matches('-');
    prefix = &prefix[..prefix.len().min(46)];
    prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() {
        prefix = "s";
    }
    format!("{prefix}-{:016x}", fnv1a64(service.as_bytes()))
}

/// FNV-1a, 64 bits: stable across builds and platforms, which is all a name needs.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn check_trust_domain(td: &str) -> Result<(), ValidationError> {
    let field = "spiffeId.trustDomain";
    if td.is_empty() || td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be 1 to {MAX_TRUST_DOMAIN_LEN} characters long, got {} characters",
                td.len()
            ),
        ));
    }
    if let Some(c) = td
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(ValidationError::new(
            field,
            format!(
                "may contain only lowercase letters, digits, dots, hyphens and underscores, found {c:?} in {td:?}"
            ),
        ));
    }
    Ok(())
}

fn check_namespace(ns: &str) -> Result<(), ValidationError> {
    let field = "spiffeId.namespace";
    if ns.is_empty() || ns.len() > MAX_NAMESPACE_LEN {
        return Err(ValidationError::new(
            field,
            format!(
                "must be 1 to {MAX_NAMESPACE_LEN} characters long, got {} characters",
                ns.len()
            ),
        ));
    }
    for label in ns.split('.') {
        let ok_chars = label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || !ok_chars
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(ValidationError::new(
                field,
                format!(
                    "must be a lowercase DNS name: dot-separated labels of 1 to {MAX_LABEL_LEN} lowercase letters, digits, hyphens and underscores, not starting or ending with a hyphen; {label:?} in {ns:?} is not"
                ),
            ));
        }
    }
    Ok(())
}

fn check_service(service: &str) -> Result<(), ValidationError> {
    crate::error::check_name("spiffeId.service", service, MAX_SERVICE_LEN)
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SPIFFE_SCHEME}{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service
        )
    }
}

impl FromStr for SpiffeId {
    type Err = ValidationError;

    /// Parses `spiffe://<trust domain>/ns/<namespace>/sa/<service>` exactly: no other
    /// path, no query, fragment, port or user info; each part validated as in
    /// [`SpiffeId::new`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ValidationError::new(
                "spiffeId",
                format!("must be spiffe://<trust domain>/ns/<namespace>/sa/<service>, got {s:?}"),
            )
        };
        let rest = s.strip_prefix(SPIFFE_SCHEME).ok_or_else(bad)?;
        let (trust_domain, path) = rest.split_once('/').ok_or_else(bad)?;
        let mut parts = path.split('/');
        let (Some("ns"), Some(namespace), Some("sa"), Some(service), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        SpiffeId::new(trust_domain, namespace, service)
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = ValidationError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<SpiffeId> for String {
    fn from(id: SpiffeId) -> String {
        id.to_string()
    }
}

/// A service's certificate and key, as the control plane issues them and the proxies of
/// the nodes running the service's tasks present them. Its `Debug` leaves the key out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshCertificate {
    /// Whose certificate: its URI SAN, exactly.
    pub spiffe_id: SpiffeId,
    /// PEM: the service's certificate first, then any intermediates (none today: the
    /// mesh CA signs services directly).
    pub cert_chain_pem: String,
    /// PEM (PKCS#8) private key of the certificate.
    pub private_key_pem: String,
    /// The certificate's notBefore (whole seconds).
    pub not_before: Timestamp,
    /// The certificate's notAfter (whole seconds).
    pub not_after: Timestamp,
}

impl fmt::Debug for MeshCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshCertificate")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("cert_chain_pem", &self.cert_chain_pem)
            .field("private_key_pem", &"<redacted>")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl MeshCertificate {
    /// When the certificate should be replaced: once half of its lifetime has passed,
    /// so a missed renewal or two still leaves time before it expires.
    pub fn renew_at(&self) -> Timestamp {
        self.not_before + (self.not_after - self.not_before) / 2.0
    }
}

/// The CA certificates a proxy trusts for mesh peers. A list, so a CA can be rotated:
/// the new CA is trusted next to the old one until every certificate is reissued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeshTrust {
    /// PEM, one CA certificate each.
    pub ca_certificates_pem: Vec<String>,
}

/// Which identities may call a service over the mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "callers")]
pub enum AllowedCallers {
    /// Every identity the mesh's CA vouches for.
    #[default]
    Any,
    /// Only these identities.
    Only(BTreeSet<SpiffeId>),
}

impl AllowedCallers {
    /// Whether `caller` may call.
    pub fn allows(&self, caller: &SpiffeId) -> bool {
        match self {
            AllowedCallers::Any => true,
            AllowedCallers::Only(ids) => ids.contains(caller),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        s.parse().unwrap()
    }

    #[test]
    fn an_identity_formats_and_parses_back() {
        let a = SpiffeId::new("prod", "internal", "orders").unwrap();
        assert_eq!(a.to_string(), "spiffe://prod/ns/internal/sa/orders");
        assert_eq!(id("spiffe://prod/ns/internal/sa/orders"), a);
        assert_eq!(a.trust_domain(), "prod");
        assert_eq!(a.namespace(), "internal");
        assert_eq!(a.service(), "orders");
        let dotted = id("spiffe://eu.prod/ns/corp.example/sa/Billing_v2");
        assert_eq!(dotted.namespace(), "corp.example");
        assert_eq!(dotted.service(), "Billing_v2");
    }

    #[test]
    fn for_service_lowercases_the_cluster_and_namespace_but_not_the_service() {
        let a = SpiffeId::for_service("Prod", "Internal", "Orders").unwrap();
        assert_eq!(a.to_string(), "spiffe://prod/ns/internal/sa/Orders");
    }

    #[test]
    fn malformed_identities_are_refused_naming_the_part() {
        for bad in [
            "",
            "spiffe://prod",
            "spiffe://prod/",
            "http://prod/ns/internal/sa/orders",
            "SPIFFE://prod/ns/internal/sa/orders",
            "spiffe://prod/ns/internal/sa/orders/extra",
            "spiffe://prod/sa/orders/ns/internal",
            "spiffe://prod/ns/internal/sa/",
            "spiffe://prod/ns/internal/sa/orders?x=1",
            "spiffe://prod:443/ns/internal/sa/orders",
            "spiffe://user@prod/ns/internal/sa/orders",
            "spiffe:///ns/internal/sa/orders",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad:?} was accepted");
        }
        let e = "spiffe://Prod/ns/internal/sa/orders"
            .parse::<SpiffeId>()
            .unwrap_err();
        assert_eq!(e.field, "spiffeId.trustDomain");
        assert!(e.message.contains("lowercase"), "{e}");
        let e = SpiffeId::new("prod", "Internal", "orders").unwrap_err();
        assert_eq!(e.field, "spiffeId.namespace");
        let e = SpiffeId::new("prod", "a..b", "orders").unwrap_err();
        assert_eq!(e.field, "spiffeId.namespace");
        let e = SpiffeId::new("prod", "-a", "orders").unwrap_err();
        assert_eq!(e.field, "spiffeId.namespace");
        let e = SpiffeId::new("prod", "internal", "or.ders").unwrap_err();
        assert_eq!(e.field, "spiffeId.service");
        let e = SpiffeId::new("prod", "internal", "x".repeat(256)).unwrap_err();
        assert_eq!(e.field, "spiffeId.service");
        let e = SpiffeId::new("prod", "a".repeat(MAX_NAMESPACE_LEN + 1), "s").unwrap_err();
        assert_eq!(e.field, "spiffeId.namespace");
    }

    #[test]
    fn the_server_name_is_service_dot_namespace_dot_mesh_and_tells_case_apart() {
        let a = SpiffeId::new("prod", "internal", "orders").unwrap();
        assert_eq!(a.mesh_server_name(), "orders.internal.mesh");
        let upper = SpiffeId::new("prod", "internal", "Orders").unwrap();
        let n = upper.mesh_server_name();
        assert!(
            n.starts_with("orders-") && n.ends_with(".internal.mesh"),
            "{n}"
        );
        assert_ne!(n, a.mesh_server_name());
        // Stable: the same name every time, on every machine.
        assert_eq!(
            n,
            format!("orders-{:016x}.internal.mesh", fnv1a64(b"Orders"))
        );
        // Long names and edge hyphens still give a DNS label of at most 63 characters.
        for service in [
            "x".repeat(255),
            "-".repeat(70),
            "-a-".into(),
            "a".repeat(63),
        ] {
            let id = SpiffeId::new("prod", "ns", service.as_str()).unwrap();
            let name = id.mesh_server_name();
            let label = name.split('.').next().unwrap();
            assert!(
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-'),
                "{service:?} -> {label:?}"
            );
        }
        // The longest namespace still fits a DNS name.
        let id = SpiffeId::new(
            "prod",
            "a".repeat(63) + "." + &"b".repeat(63) + "." + &"c".repeat(MAX_NAMESPACE_LEN - 128),
            "x".repeat(200),
        )
        .unwrap();
        assert!(id.mesh_server_name().len() <= 253);
    }

    #[test]
    fn certificates_trust_and_allow_lists_round_trip_as_camel_case_json() {
        let c = MeshCertificate {
            spiffe_id: id("spiffe://prod/ns/internal/sa/orders"),
            cert_chain_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\n".into(),
            not_before: 1_000.0,
            not_after: 4_600.0,
        };
        let j = serde_json::to_value(&c).unwrap();
        assert_eq!(j["spiffeId"], "spiffe://prod/ns/internal/sa/orders");
        assert_eq!(j["notAfter"], 4_600.0);
        assert_eq!(serde_json::from_value::<MeshCertificate>(j).unwrap(), c);
        let bad = serde_json::json!({
            "spiffeId": "spiffe://prod/orders", "certChainPem": "", "privateKeyPem": "",
            "notBefore": 0.0, "notAfter": 1.0
        });
        assert!(serde_json::from_value::<MeshCertificate>(bad).is_err());

        let t = MeshTrust {
            ca_certificates_pem: vec!["a".into(), "b".into()],
        };
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j["caCertificatesPem"][1], "b");
        assert_eq!(serde_json::from_value::<MeshTrust>(j).unwrap(), t);

        let only = AllowedCallers::Only([id("spiffe://prod/ns/internal/sa/web")].into());
        let j = serde_json::to_value(&only).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"type": "only", "callers": ["spiffe://prod/ns/internal/sa/web"]})
        );
        assert_eq!(serde_json::from_value::<AllowedCallers>(j).unwrap(), only);
        let any = serde_json::to_value(AllowedCallers::Any).unwrap();
        assert_eq!(any, serde_json::json!({"type": "any"}));
    }

    #[test]
    fn renewal_falls_at_half_the_lifetime() {
        let c = MeshCertificate {
            spiffe_id: id("spiffe://prod/ns/internal/sa/orders"),
            cert_chain_pem: String::new(),
            private_key_pem: String::new(),
            not_before: 1_000.0,
            not_after: 4_660.0,
        };
        assert_eq!(c.renew_at(), 2_830.0);
    }

    #[test]
    fn a_certificates_debug_output_leaves_the_key_out() {
        let c = MeshCertificate {
            spiffe_id: id("spiffe://prod/ns/internal/sa/orders"),
            cert_chain_pem: "CERT".into(),
            private_key_pem: "SECRET KEY".into(),
            not_before: 0.0,
            not_after: 1.0,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET KEY"), "{shown}");
        assert!(
            shown.contains("CERT") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn an_allow_list_admits_only_its_callers() {
        let web = id("spiffe://prod/ns/internal/sa/web");
        let batch = id("spiffe://prod/ns/internal/sa/batch");
        let other_cluster = id("spiffe://staging/ns/internal/sa/web");
        let only = AllowedCallers::Only([web.clone()].into());
        assert!(only.allows(&web));
        assert!(!only.allows(&batch));
        assert!(!only.allows(&other_cluster));
        assert!(AllowedCallers::Any.allows(&batch));
    }
}
