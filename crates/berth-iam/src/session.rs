//! Temporary credentials of a role session, self-verifying: the session token carries
//! who the session is and when it expires, under an HMAC with a key only the servers
//! hold, and the secret access key is derived from the token with the same key.
//!
//! A session is an `ASIA...` access key id, a secret, a session token and an expiration,
//! as STS's AssumeRole answers. Nothing of it is stored: a server holding the key checks
//! a token's MAC in constant time ([`open`]), refuses it when it names another access key
//! id or has expired, and derives the secret to verify the request's signature with.
//! The key is derived from the key that seals access key secrets ([`session_key`]), so
//! every server that can open the stored access keys accepts the sessions any of them
//! minted.
//!
//! What it does not do: know roles or policies (the caller checks the role still exists
//! and reads its policies), revoke a single session before it expires, draw randomness
//! or read a clock (the caller passes both).

use ring::hmac;
use serde::{Deserialize, Serialize};

use crate::hex;
use crate::keys::{self, KeyKind, KEY_ID_RANDOM_BYTES, SECRET_RANDOM_BYTES};

/// The prefix of every session token berth writes (its format's version).
pub const TOKEN_PREFIX: &str = "berth1.";

/// Who a session is: the claims its token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The session's `ASIA...` access key id.
    #[serde(rename = "k")]
    pub access_key_id: String,
    /// The role's name.
    #[serde(rename = "r")]
    pub role: String,
    /// The session's name (for a task: its id), as in an assumed-role ARN.
    #[serde(rename = "s")]
    pub session_name: String,
    /// Unix seconds after which the session is refused.
    #[serde(rename = "e")]
    pub expiration: i64,
}

/// Temporary credentials, as AssumeRole's `Credentials` hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expiration: i64,
}

/// Why a session token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a token of this key, not for this access key id, or malformed.
    #[error("The security token included in the request is invalid.")]
    Invalid,
    /// A genuine token past its expiration.
    #[error("The security token included in the request is expired")]
    Expired,
}

/// The key session tokens are signed with, derived from the key that seals access key
/// secrets (so the two are never the same key, and a server needs no second key file).
pub fn session_key(sealing_key: &[u8; keys::SEALING_KEY_BYTES]) -> hmac::Key {
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, sealing_key),
        b"berth role session tokens v1",
    );
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

fn secret_of(key: &hmac::Key, payload: &[u8]) -> String {
    let mut msg = b"secret\0".to_vec();
    msg.extend_from_slice(payload);
    let tag = hmac::sign(key, &msg);
    let mut bytes = [0u8; SECRET_RANDOM_BYTES];
    bytes.copy_from_slice(&tag.as_ref()[..SECRET_RANDOM_BYTES]);
    keys::secret_access_key(&bytes)
}

fn token_mac(key: &hmac::Key, payload: &[u8]) -> hmac::Tag {
    let mut msg = b"token\0".to_vec();
    msg.extend_from_slice(payload);
    hmac::sign(key, &msg)
}

/// New credentials for `role`'s session `session_name`, expiring at `expiration` (Unix
/// seconds); `random` makes the access key id.
pub fn mint(
    key: &hmac::Key,
    random: &[u8; KEY_ID_RANDOM_BYTES],
    role: &str,
    session_name: &str,
    expiration: i64,
) -> SessionCredentials {
    let claims = SessionClaims {
        access_key_id: keys::access_key_id(KeyKind::Temporary, random),
        role: role.to_string(),
        session_name: session_name.to_string(),
        expiration,
    };
    let payload = serde_json::to_vec(&claims).expect("claims serialize");
    let token = format!(
        "{TOKEN_PREFIX}{}.{}",
        hex::encode(&payload),
        hex::encode(token_mac(key, &payload).as_ref())
    );
    SessionCredentials {
        secret_access_key: secret_of(key, &payload),
        access_key_id: claims.access_key_id,
        session_token: token,
        expiration,
    }
}

/// The claims and secret of `token` presented with `access_key_id` at Unix second `now`:
/// [`SessionError::Invalid`] unless its MAC verifies (constant time) and it names that
/// access key id; [`SessionError::Expired`] at or after its expiration.
pub fn open(
    key: &hmac::Key,
    access_key_id: &str,
    token: &str,
    now: i64,
) -> Result<(SessionClaims, String), SessionError> {
    let body = token
        .trim()
        .strip_prefix(TOKEN_PREFIX)
        .ok_or(SessionError::Invalid)?;
    let (payload_hex, mac_hex) = body.split_once('.').ok_or(SessionError::Invalid)?;
    let payload = hex::decode(payload_hex).ok_or(SessionError::Invalid)?;
    let mac = hex::decode(mac_hex).ok_or(SessionError::Invalid)?;
    let mut msg = b"token\0".to_vec();
    msg.extend_from_slice(&payload);
    hmac::verify(key, &msg, &mac).map_err(|_| SessionError::Invalid)?;
    let claims: SessionClaims =
        serde_json::from_slice(&payload).map_err(|_| SessionError::Invalid)?;
    if claims.access_key_id != access_key_id {
        return Err(SessionError::Invalid);
    }
    if now >= claims.expiration {
        return Err(SessionError::Expired);
    }
    let secret = secret_of(key, &payload);
    Ok((claims, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        session_key(&[9u8; keys::SEALING_KEY_BYTES])
    }

    #[test]
    fn minted_credentials_have_aws_shapes_and_open_until_they_expire() {
        let c = mint(&key(), &[3; KEY_ID_RANDOM_BYTES], "reader", "task-1", 1_000);
        assert!(c.access_key_id.starts_with("ASIA"), "{}", c.access_key_id);
        assert!(keys::is_access_key_id(&c.access_key_id));
        assert_eq!(c.secret_access_key.len(), 40);
        assert!(c.session_token.starts_with(TOKEN_PREFIX));
        let (claims, secret) = open(&key(), &c.access_key_id, &c.session_token, 999).unwrap();
        assert_eq!(secret, c.secret_access_key);
        assert_eq!(claims.role, "reader");
        assert_eq!(claims.session_name, "task-1");
        assert_eq!(claims.expiration, 1_000);
        assert_eq!(
            open(&key(), &c.access_key_id, &c.session_token, 1_000),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn a_token_of_another_key_id_or_server_key_or_changed_is_invalid() {
        let c = mint(&key(), &[3; KEY_ID_RANDOM_BYTES], "reader", "t", 1_000);
        let other = mint(&key(), &[4; KEY_ID_RANDOM_BYTES], "reader", "t", 1_000);
        assert_eq!(
            open(&key(), &c.access_key_id, &other.session_token, 0),
            Err(SessionError::Invalid)
        );
        let foreign = session_key(&[1u8; keys::SEALING_KEY_BYTES]);
        assert_eq!(
            open(&foreign, &c.access_key_id, &c.session_token, 0),
            Err(SessionError::Invalid)
        );
        // A later expiration written into the payload breaks the MAC.
        let (payload_hex, mac) = c.session_token[TOKEN_PREFIX.len()..]
            .split_once('.')
            .unwrap();
        let payload = String::from_utf8(hex::decode(payload_hex).unwrap()).unwrap();
        let forged = payload.replace("1000", "9999");
        let forged = format!("{TOKEN_PREFIX}{}.{mac}", hex::encode(forged.as_bytes()));
        assert_eq!(
            open(&key(), &c.access_key_id, &forged, 0),
            Err(SessionError::Invalid)
        );
        for junk in ["", "berth1.", "berth1.zz.zz", "AQoDYXdzEJr..."] {
            assert_eq!(
                open(&key(), &c.access_key_id, junk, 0),
                Err(SessionError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn sessions_differ_by_their_random_id() {
        let a = mint(&key(), &[1; KEY_ID_RANDOM_BYTES], "r", "t", 5);
        let b = mint(&key(), &[2; KEY_ID_RANDOM_BYTES], "r", "t", 5);
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
    }
}
