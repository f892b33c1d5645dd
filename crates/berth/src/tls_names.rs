//! The names a `--tls-name` may give the API's self-signed certificate: an IP address or
//! a DNS host name, checked before the server starts. It issues nothing itself.

use std::net::IpAddr;

use anyhow::{anyhow, Result};
use rcgen::SanType;

/// What a `--tls-name` puts in the certificate: an IP address, or a DNS name.
pub fn certificate_name(name: &str) -> Result<SanType> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if valid_dns_name(name) {
        return Ok(SanType::DnsName(name.try_into()?));
    }
    Err(anyhow!(
        "--tls-name {name:?}: not a host name (letters, digits, '-' and '.') or an IP address"
    ))
}

/// Whether `name` is a DNS name a certificate can hold: dot-separated labels of ASCII
/// letters, digits and '-', none empty, none starting or ending with '-'.
fn valid_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses_are_certificate_names_and_nothing_else() {
        assert!(valid_dns_name("control-plane.berth"));
        assert!(!valid_dns_name("-x") && !valid_dns_name("a..b") && !valid_dns_name(""));
        assert!(matches!(
            certificate_name("10.0.0.1").unwrap(),
            SanType::IpAddress(_)
        ));
        assert!(matches!(
            certificate_name("server-1").unwrap(),
            SanType::DnsName(_)
        ));
        assert!(certificate_name("a b").is_err());
    }
}
