//! Access keys: the shape of ids and secrets, and sealing a secret for the store.
//!
//! An access key id is `AKIA` (a user's long-term key) or `ASIA` (a role's temporary
//! one) and 16 characters of base32 (`A-Z2-7`), as AWS's are; a secret is 40 characters
//! of `A-Za-z0-9+/`. The caller draws the random bytes. A secret is kept in the store
//! sealed with AES-256-GCM under a key that is not in the store, the access key id as
//! associated data (a sealed secret moved to another key id does not open).

use ring::aead;

/// Random bytes an access key id is made of.
pub const KEY_ID_RANDOM_BYTES: usize = 10;
/// Random bytes a secret is made of.
pub const SECRET_RANDOM_BYTES: usize = 30;
/// Bytes of the sealing key.
pub const SEALING_KEY_BYTES: usize = 32;
/// Bytes of a sealing nonce.
pub const NONCE_BYTES: usize = aead::NONCE_LEN;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Whose key it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A user's long-term key: `AKIA...`.
    LongTerm,
    /// A role's temporary key: `ASIA...`.
    Temporary,
}

fn bits(bytes: &[u8], width: u32, alphabet: &[u8]) -> String {
    let mut out = String::new();
    let (mut acc, mut n) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        n += 8;
        while n >= width {
            n -= width;
            out.push(alphabet[((acc >> n) & ((1 << width) - 1)) as usize] as char);
        }
    }
    out
}

/// An access key id made of `random`.
pub fn access_key_id(kind: KeyKind, random: &[u8; KEY_ID_RANDOM_BYTES]) -> String {
    let prefix = match kind {
        KeyKind::LongTerm => "AKIA",
        KeyKind::Temporary => "ASIA",
    };
    format!("{prefix}{}", bits(random, 5, BASE32))
}

/// Whether `id` has the shape of a berth (and AWS) access key id.
pub fn is_access_key_id(id: &str) -> bool {
    id.len() == 20
        && (id.starts_with("AKIA") || id.starts_with("ASIA"))
        && id[4..].bytes().all(|b| BASE32.contains(&b))
}

/// A secret access key made of `random`.
pub fn secret_access_key(random: &[u8; SECRET_RANDOM_BYTES]) -> String {
    bits(random, 6, SECRET_ALPHABET)
}

/// A sealed secret could not be opened: the wrong sealing key, or tampered with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the sealed secret of {access_key_id} does not open with this sealing key (another server's key file, or changed)")]
pub struct UnsealError {
    pub access_key_id: String,
}

/// `secret` sealed under `key`: the nonce, then the ciphertext and its tag.
pub fn seal(
    key: &[u8; SEALING_KEY_BYTES],
    nonce: [u8; NONCE_BYTES],
    access_key_id: &str,
    secret: &str,
) -> Vec<u8> {
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("a 32-byte AES-256 key"),
    );
    let mut data = secret.as_bytes().to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(access_key_id.as_bytes()),
        &mut data,
    )
    .expect("a secret is far below AES-GCM's length limit");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&data);
    out
}

/// Opens what [`seal`] made.
pub fn open(
    key: &[u8; SEALING_KEY_BYTES],
    access_key_id: &str,
    sealed: &[u8],
) -> Result<String, UnsealError> {
    let fail = || UnsealError {
        access_key_id: access_key_id.to_string(),
    };
    if sealed.len() < NONCE_BYTES {
        return Err(fail());
    }
    let (nonce, data) = sealed.split_at(NONCE_BYTES);
    let key = aead::LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, key).expect("a 32-byte AES-256 key"),
    );
    let mut data = data.to_vec();
    let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
    let plain = key
        .open_in_place(nonce, aead::Aad::from(access_key_id.as_bytes()), &mut data)
        .map_err(|_| fail())?;
    String::from_utf8(plain.to_vec()).map_err(|_| fail())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_secrets_have_aws_shapes() {
        let id = access_key_id(KeyKind::LongTerm, &[0xA5; KEY_ID_RANDOM_BYTES]);
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"), "{id}");
        assert!(is_access_key_id(&id));
        let tmp = access_key_id(KeyKind::Temporary, &[1; KEY_ID_RANDOM_BYTES]);
        assert!(tmp.starts_with("ASIA") && is_access_key_id(&tmp), "{tmp}");
        assert!(!is_access_key_id("AKIA0000000000000000"));
        assert!(!is_access_key_id("AKIAAAAA"));
        let secret = secret_access_key(&[0x5A; SECRET_RANDOM_BYTES]);
        assert_eq!(secret.len(), 40);
        assert!(secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_key_id() {
        let key = [7u8; SEALING_KEY_BYTES];
        let sealed = seal(&key, [1; NONCE_BYTES], "AKIAAAAAAAAAAAAAAAAA", "topsecret");
        assert!(!sealed.windows(9).any(|w| w == b"topsecret"));
        assert_eq!(
            open(&key, "AKIAAAAAAAAAAAAAAAAA", &sealed).unwrap(),
            "topsecret"
        );
        assert!(open(&[8u8; SEALING_KEY_BYTES], "AKIAAAAAAAAAAAAAAAAA", &sealed).is_err());
        assert!(open(&key, "AKIABBBBBBBBBBBBBBBB", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(open(&key, "AKIAAAAAAAAAAAAAAAAA", &tampered).is_err());
        assert!(open(&key, "AKIAAAAAAAAAAAAAAAAA", &[1, 2]).is_err());
    }
}
