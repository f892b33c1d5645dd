//! IAM principals and access keys in the store.
//!
//! | key | value |
//! |---|---|
//! | `/iam/users/<name>` | [`Entity`]: a user and its inline policies |
//! | `/iam/roles/<name>` | [`Entity`]: a role and its inline policies |
//! | `/iam/accesskeys/<access key id>` | [`StoredAccessKey`]: whose key it is, its status, and the secret sealed with AES-256-GCM |
//!
//! The sealing key is not in the store: [`Iam::new`] takes it (the binary keeps it in a
//! 0600 file of the data directory), so whoever reads the store file alone learns no
//! secret. A secret leaves this module twice only: once in the answer that creates the
//! key, and to the request guard that verifies a signature with it ([`Iam::authenticate`]).

use std::collections::BTreeMap;

use berth_iam::keys::{self, KeyKind, NONCE_BYTES, SEALING_KEY_BYTES};
use berth_iam::policy::PolicyDocument;
use berth_model::arn::ACCOUNT;
use berth_model::time::{now, Timestamp};
use berth_store::{Expect, Op, StoreError};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{encode, Db};
use crate::error::{ApiError, ControlError};

pub const USERS_PREFIX: &str = "/iam/users/";
pub const ROLES_PREFIX: &str = "/iam/roles/";
pub const ACCESS_KEYS_PREFIX: &str = "/iam/accesskeys/";
/// The user a first start creates, with [`ADMIN_POLICY`].
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_POLICY_NAME: &str = "AdministratorAccess";
pub const ADMIN_POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// Access keys a user may have, as in IAM.
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;

/// Users or roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntityKind {
    User,
    Role,
}

impl EntityKind {
    fn prefix(self) -> &'static str {
        match self {
            EntityKind::User => USERS_PREFIX,
            EntityKind::Role => ROLES_PREFIX,
        }
    }

    /// `user` or `role`, as in their ARNs.
    pub fn word(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Role => "role",
        }
    }

    fn id_prefix(self) -> &'static str {
        match self {
            EntityKind::User => "AIDA",
            EntityKind::Role => "AROA",
        }
    }
}

/// The ARN of a user or role.
pub fn entity_arn(kind: EntityKind, name: &str) -> String {
    format!("arn:berth:iam::{ACCOUNT}:{}/{name}", kind.word())
}

/// A user or a role, with its inline policies (name → document, as given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entity {
    pub kind: EntityKind,
    pub name: String,
    /// `AIDA...` for users, `AROA...` for roles.
    pub id: String,
    pub arn: String,
    pub create_date: Timestamp,
    #[serde(default)]
    pub policies: BTreeMap<String, Value>,
}

/// An access key as stored: the secret only sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAccessKey {
    pub access_key_id: String,
    pub owner_kind: EntityKind,
    pub owner_name: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub create_date: Timestamp,
    /// Nonce, ciphertext and tag, hex.
    pub sealed_secret: String,
}

/// What the API shows of an access key (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AccessKeyMetadata {
    pub access_key_id: String,
    pub user_name: String,
    pub status: String,
    pub create_date: Timestamp,
}

/// A new access key with its secret: shown once, in the answer that creates it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub user_name: String,
    pub status: String,
    pub create_date: Timestamp,
}

/// Who signed a request: put in the request's extensions by the guard.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub kind: EntityKind,
    pub name: String,
    pub arn: String,
    pub access_key_id: String,
    pub policies: Vec<PolicyDocument>,
}

/// What the guard needs of a key: its owner and the secret to verify with.
pub struct KeyForSigning {
    pub principal: Principal,
    pub secret: String,
}

fn key(kind: EntityKind, name: &str) -> String {
    format!("{}{name}", kind.prefix())
}

fn access_key_key(id: &str) -> String {
    format!("{ACCESS_KEYS_PREFIX}{id}")
}

/// IAM's error names.
pub fn no_such_entity(kind: EntityKind, name: &str) -> ApiError {
    ApiError::new(
        "NoSuchEntity",
        404,
        format!("The {} with name {name} cannot be found.", kind.word()),
    )
}

fn validate_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            "ValidationError",
            400,
            format!("{field}: 1 to 64 of letters, digits and +=,.@_-, got {name:?}"),
        ))
    }
}

/// The store side of IAM.
#[derive(Clone)]
pub struct Iam {
    pub db: Db,
    sealing_key: [u8; SEALING_KEY_BYTES],
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Iam { sealing_key: <hidden> }")
    }
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| ApiError::server("the system's random source failed"))?;
    Ok(b)
}

impl Iam {
    pub fn new(db: Db, sealing_key: [u8; SEALING_KEY_BYTES]) -> Self {
        Self { db, sealing_key }
    }

    /// The key role session tokens are signed with ([`crate::iam_sessions`]).
    pub(crate) fn session_key(&self) -> ring::hmac::Key {
        berth_iam::session::session_key(&self.sealing_key)
    }

    pub async fn entity(&self, kind: EntityKind, name: &str) -> Result<Option<Entity>, ApiError> {
        Ok(self
            .db
            .get::<Entity>(&key(kind, name))
            .await?
            .map(|v| v.value))
    }

    pub async fn entities(&self, kind: EntityKind) -> Result<Vec<Entity>, ApiError> {
        Ok(self
            .db
            .list::<Entity>(kind.prefix())
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    /// Creates a user or role; `EntityAlreadyExists` if the name is taken.
    pub async fn create(&self, kind: EntityKind, name: &str) -> Result<Entity, ApiError> {
        validate_name(&format!("{}Name", kind.word()), name)?;
        let id_bytes: [u8; keys::KEY_ID_RANDOM_BYTES] = random()?;
        let akid_shape = keys::access_key_id(KeyKind::LongTerm, &id_bytes);
        let e = Entity {
            kind,
            name: name.to_string(),
            id: format!("{}{}", kind.id_prefix(), &akid_shape[4..]),
            arn: entity_arn(kind, name),
            create_date: now(),
            policies: BTreeMap::new(),
        };
        match self.db.create(&key(kind, name), &e).await {
            Ok(_) => Ok(e),
            Err(StoreError::Conflict { .. }) => Err(ApiError::new(
                "EntityAlreadyExists",
                409,
                format!("{} with name {name} already exists.", capital(kind.word())),
            )),
            Err(other) => Err(ControlError::from(other).into()),
        }
    }

    /// Deletes a user or role; refused (`DeleteConflict`) while it has access keys.
    pub async fn delete(&self, kind: EntityKind, name: &str) -> Result<(), ApiError> {
        if self.entity(kind, name).await?.is_none() {
            return Err(no_such_entity(kind, name));
        }
        if !self.access_keys(kind, name).await?.is_empty() {
            return Err(ApiError::new(
                "DeleteConflict",
                409,
                format!(
                    "Cannot delete entity, must delete access keys first. ({} {name})",
                    kind.word()
                ),
            ));
        }
        self.db
            .store
            .delete(&key(kind, name))
            .await
            .map_err(ControlError::from)?;
        Ok(())
    }

    /// Sets (adds or replaces) an inline policy after validating it
    /// (`MalformedPolicyDocument` naming the field).
    pub async fn put_policy(
        &self,
        kind: EntityKind,
        name: &str,
        policy_name: &str,
        document: &Value,
    ) -> Result<(), ApiError> {
        validate_name("policyName", policy_name)?;
        PolicyDocument::from_value(document).map_err(|e| {
            ApiError::new(
                berth_iam::PolicyError::CODE,
                400,
                format!("policyDocument.{e}"),
            )
        })?;
        let updated = self
            .db
            .update::<Entity, _>(&key(kind, name), |e| {
                e.policies.insert(policy_name.to_string(), document.clone());
                true
            })
            .await?;
        updated
            .map(|_| ())
            .ok_or_else(|| no_such_entity(kind, name))
    }

    pub async fn delete_policy(
        &self,
        kind: EntityKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(), ApiError> {
        let Some(e) = self.entity(kind, name).await? else {
            return Err(no_such_entity(kind, name));
        };
        if !e.policies.contains_key(policy_name) {
            return Err(ApiError::new(
                "NoSuchEntity",
                404,
                format!(
                    "The {} policy with name {policy_name} cannot be found.",
                    kind.word()
                ),
            ));
        }
        self.db
            .update::<Entity, _>(&key(kind, name), |e| {
                e.policies.remove(policy_name).is_some()
            })
            .await?;
        Ok(())
    }

    /// The access keys of a user or role.
    pub async fn access_keys(
        &self,
        kind: EntityKind,
        name: &str,
    ) -> Result<Vec<StoredAccessKey>, ApiError> {
        Ok(self
            .db
            .list::<StoredAccessKey>(ACCESS_KEYS_PREFIX)
            .await?
            .into_iter()
            .map(|v| v.value)
            .filter(|k| k.owner_kind == kind && k.owner_name == name)
            .collect())
    }

    /// A new access key for a user: `AKIA...` and a 40-character secret, the secret
    /// sealed in the store and returned this once. At most
    /// [`MAX_ACCESS_KEYS_PER_USER`] per user (`LimitExceeded`).
    pub async fn create_access_key(&self, user: &str) -> Result<NewAccessKey, ApiError> {
        let kind = EntityKind::User;
        let Some(entity) = self.entity(kind, user).await? else {
            return Err(no_such_entity(kind, user));
        };
        if self.access_keys(kind, user).await?.len() >= MAX_ACCESS_KEYS_PER_USER {
            return Err(ApiError::new(
                "LimitExceeded",
                409,
                format!("Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}"),
            ));
        }
        let id = keys::access_key_id(KeyKind::LongTerm, &random()?);
        let secret = keys::secret_access_key(&random()?);
        let nonce: [u8; NONCE_BYTES] = random()?;
        let stored = StoredAccessKey {
            access_key_id: id.clone(),
            owner_kind: kind,
            owner_name: entity.name.clone(),
            status: "Active".into(),
            create_date: now(),
            sealed_secret: berth_iam::hex::encode(&keys::seal(
                &self.sealing_key,
                nonce,
                &id,
                &secret,
            )),
        };
        // The key is written only while its owner is unchanged since it was read (the
        // owner rewritten as it was, guarded by its revision), so a user deleted
        // meanwhile does not get an orphan key.
        let owner = self
            .db
            .get::<Entity>(&key(kind, user))
            .await?
            .ok_or_else(|| no_such_entity(kind, user))?;
        self.db
            .batch(vec![
                Op::Put {
                    key: key(kind, user),
                    value: encode(&owner.value),
                    expect: Some(Expect::ModRevision(owner.mod_revision)),
                },
                Op::Put {
                    key: access_key_key(&id),
                    value: encode(&stored),
                    expect: Some(Expect::Absent),
                },
            ])
            .await?;
        Ok(NewAccessKey {
            access_key_id: id,
            secret_access_key: secret,
            user_name: entity.name,
            status: stored.status,
            create_date: stored.create_date,
        })
    }

    pub async fn delete_access_key(&self, user: &str, id: &str) -> Result<(), ApiError> {
        let found = self
            .db
            .get::<StoredAccessKey>(&access_key_key(id))
            .await?
            .filter(|k| k.value.owner_kind == EntityKind::User && k.value.owner_name == user);
        if found.is_none() {
            return Err(ApiError::new(
                "NoSuchEntity",
                404,
                format!("The Access Key with id {id} cannot be found."),
            ));
        }
        self.db
            .store
            .delete(&access_key_key(id))
            .await
            .map_err(ControlError::from)?;
        Ok(())
    }

    /// The owner and secret of an active access key, for verifying a signature; `None`
    /// when the key is unknown, inactive or its owner is gone.
    pub async fn authenticate(&self, id: &str) -> Result<Option<KeyForSigning>, ApiError> {
        if !keys::is_access_key_id(id) {
            return Ok(None);
        }
        let Some(k) = self.db.get::<StoredAccessKey>(&access_key_key(id)).await? else {
            return Ok(None);
        };
        let k = k.value;
        if k.status != "Active" {
            return Ok(None);
        }
        let Some(owner) = self.entity(k.owner_kind, &k.owner_name).await? else {
            return Ok(None);
        };
        let sealed = berth_iam::hex::decode(&k.sealed_secret).unwrap_or_default();
        let secret = keys::open(&self.sealing_key, id, &sealed)
            .map_err(|e| ApiError::server(e.to_string()))?;
        let policies = owner
            .policies
            .values()
            .filter_map(|doc| PolicyDocument::from_value(doc).ok())
            .collect();
        Ok(Some(KeyForSigning {
            principal: Principal {
                kind: owner.kind,
                name: owner.name,
                arn: owner.arn,
                access_key_id: id.to_string(),
                policies,
            },
            secret,
        }))
    }

    /// On a store without the admin user: creates it with an `*:*` policy and an access
    /// key, and returns the key (to be written where only the server's user reads it).
    /// `None` when the admin user exists already.
    pub async fn ensure_admin(&self) -> Result<Option<NewAccessKey>, ApiError> {
        if self.entity(EntityKind::User, ADMIN_USER).await?.is_some() {
            return Ok(None);
        }
        match self.create(EntityKind::User, ADMIN_USER).await {
            Ok(_) => {}
            // Another server sharing the store made it first.
            Err(e) if e.code == "EntityAlreadyExists" => return Ok(None),
            Err(e) => return Err(e),
        }
        let policy: Value = serde_json::from_str(ADMIN_POLICY).expect("the admin policy is JSON");
        self.put_policy(EntityKind::User, ADMIN_USER, ADMIN_POLICY_NAME, &policy)
            .await?;
        self.create_access_key(ADMIN_USER).await.map(Some)
    }
}

fn capital(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

impl From<&StoredAccessKey> for AccessKeyMetadata {
    fn from(k: &StoredAccessKey) -> Self {
        Self {
            access_key_id: k.access_key_id.clone(),
            user_name: k.owner_name.clone(),
            status: k.status.clone(),
            create_date: k.create_date,
        }
    }
}

#[cfg(test)]
mod tests;
