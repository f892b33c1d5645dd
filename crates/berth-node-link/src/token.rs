//! The join token an operator hands to `berth agent --token`:
//! `berthjoin1.<fingerprint>.<secret>`, where the fingerprint is the SHA-256 (lowercase
//! hex) of the DER of the cluster authority's certificate and the secret is the
//! cluster's join secret. The fingerprint lets a new agent trust the server it has never
//! seen (it pins the authority, as kubeadm's discovery hash does); the secret lets the
//! server trust the agent once, in exchange for a certificate of its own.
//!
//! What it does not do: keep the secret (the control plane keeps only its digest).

use std::fmt;
use std::str::FromStr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

const PREFIX: &str = "berthjoin1";

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the authority certificate's DER, lowercase hex (64 digits).
    pub authority_fingerprint: String,
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    /// The fingerprint only: a token in a log is a key to the cluster.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("authority_fingerprint", &self.authority_fingerprint)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}.{}.{}", self.authority_fingerprint, self.secret)
    }
}

/// Why a string is not a join token; the message says which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--token: {0} (a join token is {PREFIX}.<64 hex digits>.<secret>, as `berth server --node-listen` prints it)")]
pub struct TokenError(String);

impl FromStr for JoinToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, TokenError> {
        let mut parts = s.trim().splitn(3, '.');
        let (Some(prefix), Some(fp), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError(
                "it has fewer than three dot-separated parts".into(),
            ));
        };
        if prefix != PREFIX {
            return Err(TokenError(format!(
                "it starts with {prefix:?}, not {PREFIX:?}"
            )));
        }
        if fp.len() != 64 || !fp.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TokenError(
                "the fingerprint is not 64 hexadecimal digits".into(),
            ));
        }
        if secret.is_empty() || !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(TokenError(
                "the secret is empty or not letters and digits".into(),
            ));
        }
        Ok(JoinToken {
            authority_fingerprint: fp.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }
}

/// SHA-256 of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of the first certificate of a PEM text.
pub fn pem_fingerprint(pem: &str) -> Result<String, String> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| e.to_string())?;
    Ok(fingerprint(&der))
}

impl JoinToken {
    /// The token for `secret` under the authority whose certificate is `authority_pem`.
    pub fn new(authority_pem: &str, secret: &str) -> Result<Self, String> {
        Ok(JoinToken {
            authority_fingerprint: pem_fingerprint(authority_pem)?,
            secret: secret.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_hides_its_secret_in_debug() {
        let t = JoinToken {
            authority_fingerprint: "ab".repeat(32),
            secret: "s3cret".into(),
        };
        let parsed: JoinToken = t.to_string().parse().unwrap();
        assert_eq!(parsed, t);
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn each_bad_part_is_named() {
        let fp = "ab".repeat(32);
        let cases = [
            ("nonsense".to_string(), "fewer than three"),
            (format!("other.{fp}.x"), "starts with"),
            ("berthjoin1.abc.x".to_string(), "fingerprint"),
            (format!("berthjoin1.{fp}.a-b"), "secret"),
        ];
        for (s, want) in cases {
            let e = s.parse::<JoinToken>().unwrap_err().to_string();
            assert!(e.starts_with("--token: ") && e.contains(want), "{s}: {e}");
        }
    }
}
