//! RSA handshake signatures made with aws-lc-rs: the `rustls::sign::SigningKey` of a TLS
//! termination certificate whose private key is RSA (PKCS#1 or PKCS#8).
//!
//! An RSA-2048 signature, the one CPU-heavy step of a full handshake with an RSA
//! certificate, takes about half the CPU with aws-lc-rs as with ring (benches/README.md,
//! "RSA handshakes signed with aws-lc-rs"). Only the signing moves: rustls keeps ring as
//! its one `CryptoProvider` (key exchange, ciphers, signature verification, ECDSA and
//! Ed25519 keys), and ring still decides which keys are accepted and what kind they are,
//! so every key file that loaded before loads now, and as the same kind.
//!
//! This module does not verify signatures, generate keys or touch the mesh's certificates
//! (`mesh_tls`, ECDSA keys on ring).

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, KeyPair as _, RsaEncoding};
use rustls::pki_types::{alg_id, PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{public_key_to_spki, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// The schemes an RSA key signs with, most preferred first: the order of rustls's own
/// ring RSA key, so a client sees the same choice as before.
static RSA_SCHEMES: [(SignatureScheme, &'static dyn RsaEncoding); 6] = [
    (SignatureScheme::RSA_PSS_SHA512, &signature::RSA_PSS_SHA512),
    (SignatureScheme::RSA_PSS_SHA384, &signature::RSA_PSS_SHA384),
    (SignatureScheme::RSA_PSS_SHA256, &signature::RSA_PSS_SHA256),
    (
        SignatureScheme::RSA_PKCS1_SHA512,
        &signature::RSA_PKCS1_SHA512,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA384,
        &signature::RSA_PKCS1_SHA384,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA256,
        &signature::RSA_PKCS1_SHA256,
    ),
];

/// The signing key of a certificate's private key: aws-lc-rs for an RSA key, ring (as
/// `rustls::crypto::ring::sign::any_supported_type`) for every other kind.
///
/// ring parses the key first, so the keys accepted and their errors are ring's; an RSA
/// key ring accepts that aws-lc-rs would not (none is known: aws-lc-rs accepts a superset)
/// keeps ring's signer rather than failing.
pub(crate) fn signing_key(der: &PrivateKeyDer<'_>) -> Result<Arc<dyn SigningKey>, rustls::Error> {
    let ring_key = rustls::crypto::ring::sign::any_supported_type(der)?;
    if ring_key.algorithm() != SignatureAlgorithm::RSA {
        return Ok(ring_key);
    }
    match AwsLcRsaSigningKey::new(der) {
        Ok(key) => Ok(Arc::new(key)),
        Err(e) => {
            tracing::warn!(error = %e, "aws-lc-rs rejected an RSA key ring accepts; signing with ring");
            Ok(ring_key)
        }
    }
}

// === impl AwsLcRsaSigningKey ===

/// An RSA private key held by aws-lc-rs, offering the six RSA signature schemes TLS 1.2
/// and 1.3 define.
pub(crate) struct AwsLcRsaSigningKey {
    key: Arc<RsaKeyPair>,
}

impl AwsLcRsaSigningKey {
    /// Parses a PKCS#1 `RSAPrivateKey` or a PKCS#8 RSA key; SEC1 (EC) keys are refused.
    pub(crate) fn new(der: &PrivateKeyDer<'_>) -> Result<Self, rustls::Error> {
        let key = match der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => {
                return Err(rustls::Error::General(
                    "an RSA private key is PKCS#1 or PKCS#8".into(),
                ))
            }
        }
        .map_err(|e| rustls::Error::General(format!("failed to parse RSA private key: {e}")))?;
        Ok(Self { key: Arc::new(key) })
    }
}

impl fmt::Debug for AwsLcRsaSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLcRsaSigningKey")
            .field("modulus_bits", &(self.key.public_modulus_len() * 8))
            .finish()
    }
}

impl SigningKey for AwsLcRsaSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        RSA_SCHEMES
            .iter()
            .find(|(scheme, _)| offered.contains(scheme))
            .map(|&(scheme, encoding)| {
                Box::new(AwsLcRsaSigner {
                    key: self.key.clone(),
                    scheme,
                    encoding,
                }) as Box<dyn Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(public_key_to_spki(
            &alg_id::RSA_ENCRYPTION,
            self.key.public_key(),
        ))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

// === impl AwsLcRsaSigner ===

/// Signs one handshake with one scheme chosen by [`AwsLcRsaSigningKey::choose_scheme`].
struct AwsLcRsaSigner {
    key: Arc<RsaKeyPair>,
    scheme: SignatureScheme,
    /// The aws-lc-rs padding and digest of `scheme`.
    encoding: &'static dyn RsaEncoding,
}

impl fmt::Debug for AwsLcRsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLcRsaSigner")
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Signer for AwsLcRsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut sig = vec![0; self.key.public_modulus_len()];
        // aws-lc-rs draws the PSS salt from its own generator; the argument is for ring's
        // signature of `sign`.
        self.key
            .sign(self.encoding, &SystemRandom::new(), message, &mut sig)
            .map_err(|_| rustls::Error::General("RSA signing failed".into()))?;
        Ok(sig)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests;
