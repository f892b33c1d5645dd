//! Secrets in the store, sealed: what containers' `secrets` are resolved from.
//!
//! | key | value |
//! |---|---|
//! | `/secrets/<name>` | [`StoredSecret`]: the name, its ARN, dates, and the value sealed with AES-256-GCM |
//!
//! The value is sealed as an access key's secret is ([`berth_iam::keys::seal`]): under
//! the sealing key, which is not in the store (the binary keeps it in the data
//! directory's `iam-sealing.key`), with `secretsmanager:<name>` as associated data, so a
//! sealed value copied to another name does not open. Whoever reads the store alone
//! learns no value.
//!
//! A value leaves this module only through [`SecretStore::value`]: to the API's
//! `GetSecretValue` answer and to the resolution of a starting task's secrets
//! ([`crate::task_secrets`]). Nothing here logs a value.

use berth_iam::keys::{self, NONCE_BYTES, SEALING_KEY_BYTES};
use berth_model::arn;
use berth_model::ecs::secrets::check_secret_name;
use berth_model::time::{now, Timestamp};
use berth_store::StoreError;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::db::Db;
use crate::error::{ApiError, ControlError};

pub const SECRETS_PREFIX: &str = "/secrets/";
/// The largest value, in bytes, as Secrets Manager's `SecretString`.
pub const MAX_SECRET_VALUE_BYTES: usize = 65_536;

/// A secret as stored: the value only sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSecret {
    pub name: String,
    pub arn: String,
    pub created_date: Timestamp,
    pub last_changed_date: Timestamp,
    /// Nonce, ciphertext and tag, hex.
    pub sealed_value: String,
}

/// What the API shows of a secret besides its value (Secrets Manager's members).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretMetadata {
    pub name: String,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub created_date: Timestamp,
    pub last_changed_date: Timestamp,
}

impl From<&StoredSecret> for SecretMetadata {
    fn from(s: &StoredSecret) -> Self {
        Self {
            name: s.name.clone(),
            arn: s.arn.clone(),
            created_date: s.created_date,
            last_changed_date: s.last_changed_date,
        }
    }
}

/// The store key of a secret.
pub fn secret_key(name: &str) -> String {
    format!("{SECRETS_PREFIX}{name}")
}

/// Secrets Manager's answer for a secret that does not exist.
pub fn secret_not_found(name: &str) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        404,
        format!("Secrets Manager can't find the specified secret: {name}"),
    )
}

/// The associated data a secret's value is sealed with.
fn associated_data(name: &str) -> String {
    format!("secretsmanager:{name}")
}

/// The store side of secrets. Cheap to clone.
#[derive(Clone)]
pub struct SecretStore {
    pub db: Db,
    sealing_key: [u8; SEALING_KEY_BYTES],
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretStore { sealing_key: <hidden> }")
    }
}

impl SecretStore {
    pub fn new(db: Db, sealing_key: [u8; SEALING_KEY_BYTES]) -> Self {
        Self { db, sealing_key }
    }

    fn seal(&self, name: &str, value: &str) -> Result<String, ApiError> {
        let mut nonce = [0u8; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| ApiError::server("the system's random source failed"))?;
        Ok(berth_iam::hex::encode(&keys::seal(
            &self.sealing_key,
            nonce,
            &associated_data(name),
            value,
        )))
    }

    /// Creates the secret or replaces its value (CreateSecret or PutSecretValue); returns
    /// its metadata and whether it was created. The name is checked
    /// (`InvalidParameterException` naming `name`), the value is 1 to 65,536 bytes.
    pub async fn put(&self, name: &str, value: &str) -> Result<(SecretMetadata, bool), ApiError> {
        check_secret_name("name", name)
            .map_err(|e| ApiError::invalid(format!("{}: {}", e.field, e.message)))?;
        if value.is_empty() || value.len() > MAX_SECRET_VALUE_BYTES {
            return Err(ApiError::invalid(format!(
                "secretString: 1 to {MAX_SECRET_VALUE_BYTES} bytes, got {}",
                value.len()
            )));
        }
        let key = secret_key(name);
        for _ in 0..64 {
            let at = now();
            let sealed_value = self.seal(name, value)?;
            let written = match self.db.get::<StoredSecret>(&key).await? {
                Some(old) => {
                    let next = StoredSecret {
                        last_changed_date: at,
                        sealed_value,
                        ..old.value.clone()
                    };
                    self.db.put_if(&old, &next).await.map(|_| (next, false))
                }
                None => {
                    let next = StoredSecret {
                        name: name.to_string(),
                        arn: arn::secret(name),
                        created_date: at,
                        last_changed_date: at,
                        sealed_value,
                    };
                    self.db.create(&key, &next).await.map(|_| (next, true))
                }
            };
            match written {
                Ok((s, created)) => return Ok((SecretMetadata::from(&s), created)),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ControlError::from(e).into()),
            }
        }
        Err(ControlError::Contended { key }.into())
    }

    /// The secret's metadata and value, `None` when there is no such secret.
    pub async fn value(&self, name: &str) -> Result<Option<(SecretMetadata, String)>, ApiError> {
        let Some(s) = self.db.get::<StoredSecret>(&secret_key(name)).await? else {
            return Ok(None);
        };
        let s = s.value;
        let sealed = berth_iam::hex::decode(&s.sealed_value).unwrap_or_default();
        let value = keys::open(&self.sealing_key, &associated_data(name), &sealed).map_err(|_| {
            ApiError::server(format!(
                "the value of secret {name} does not open with this server's sealing key (another server's key file, or changed)"
            ))
        })?;
        Ok(Some((SecretMetadata::from(&s), value)))
    }

    /// Every secret's metadata, by name.
    pub async fn list(&self) -> Result<Vec<SecretMetadata>, ApiError> {
        Ok(self
            .db
            .list_values::<StoredSecret>(SECRETS_PREFIX)
            .await?
            .iter()
            .map(SecretMetadata::from)
            .collect())
    }

    /// Deletes a secret at once (no recovery window); `ResourceNotFoundException` when
    /// there is none.
    pub async fn delete(&self, name: &str) -> Result<SecretMetadata, ApiError> {
        let key = secret_key(name);
        let Some(s) = self.db.get::<StoredSecret>(&key).await? else {
            return Err(secret_not_found(name));
        };
        self.db
            .store
            .delete(&key)
            .await
            .map_err(ControlError::from)?;
        Ok(SecretMetadata::from(&s.value))
    }
}

#[cfg(test)]
mod tests;
