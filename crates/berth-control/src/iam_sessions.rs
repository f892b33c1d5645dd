//! Role sessions: temporary credentials minted for a role (a task's `taskRoleArn`), and
//! the request guard's check of a request signed with them.
//!
//! The credentials are self-verifying ([`berth_iam::session`]): the session token holds
//! the access key id, the role, the session's name and its expiration under an HMAC
//! with a key derived from the sealing key, and the secret is derived from the token. So
//! nothing is written to the store when a session is minted, nothing has to be removed
//! when it expires, and every server that shares the store (and so the sealing key)
//! accepts a session any of them minted. A session's policies are its role's inline
//! policies as they are when a request arrives; a deleted role's sessions are refused.
//!
//! What it does not do: decide who may have a role's credentials (the agent service
//! mints them only for a task of the asking node whose definition names the role), or
//! revoke one session before it expires.

use std::time::Duration;

use berth_iam::keys::KEY_ID_RANDOM_BYTES;
use berth_iam::policy::PolicyDocument;
use berth_iam::session::{self, SessionError};
use berth_model::agent::TaskRoleCredentials;
use berth_model::arn::ACCOUNT;

use crate::error::ApiError;
use crate::iam_store::{no_such_entity, random, EntityKind, Iam, KeyForSigning, Principal};

/// How long a task's role credentials are valid unless `--task-credentials-validity`
/// says otherwise: 6 hours, as ECS's task credentials (its agent refreshes them well
/// before they expire).
pub const DEFAULT_TASK_CREDENTIALS_VALIDITY: Duration = Duration::from_secs(6 * 3600);

/// The ARN of a role session, as STS writes an assumed role's.
pub fn assumed_role_arn(role: &str, session_name: &str) -> String {
    format!("arn:berth:sts::{ACCOUNT}:assumed-role/{role}/{session_name}")
}

/// The role name a `taskRoleArn` names: a role ARN (`arn:...:iam::...:role/[path/]name`)
/// or a bare name, as ECS takes either.
pub fn role_name(task_role_arn: &str) -> Result<&str, ApiError> {
    let bad = || {
        ApiError::new(
            "InvalidParameterException",
            400,
            format!(
                "taskRoleArn: a role name or an IAM role ARN (arn:<partition>:iam::<account>:role/<name>), got {task_role_arn:?}"
            ),
        )
    };
    if !task_role_arn.starts_with("arn:") {
        return if task_role_arn.is_empty() || task_role_arn.contains('/') {
            Err(bad())
        } else {
            Ok(task_role_arn)
        };
    }
    let parts: Vec<&str> = task_role_arn.splitn(6, ':').collect();
    match parts.as_slice() {
        [_, _, "iam", _, _, resource] => resource
            .strip_prefix("role/")
            .and_then(|r| r.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Why the guard refuses a session's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefusal {
    /// No token, a token that does not verify or names another key, or a deleted role.
    Invalid,
    /// A genuine token past its expiration.
    Expired,
}

impl Iam {
    /// New credentials for `role`'s session `session_name`, valid for `validity`;
    /// `NoSuchEntity` when there is no such role.
    pub async fn mint_role_session(
        &self,
        role: &str,
        session_name: &str,
        validity: Duration,
    ) -> Result<TaskRoleCredentials, ApiError> {
        let Some(entity) = self.entity(EntityKind::Role, role).await? else {
            return Err(no_such_entity(EntityKind::Role, role));
        };
        let id: [u8; KEY_ID_RANDOM_BYTES] = random()?;
        let expiration = berth_model::time::now() as i64 + validity.as_secs() as i64;
        let c = session::mint(&self.session_key(), &id, role, session_name, expiration);
        Ok(TaskRoleCredentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            expiration: c.expiration,
            role_arn: entity.arn,
        })
    }

    /// The principal and secret of a session's `ASIA...` key presented with `token` at
    /// Unix second `now`, its policies the role's current inline policies.
    pub async fn authenticate_session(
        &self,
        access_key_id: &str,
        token: Option<&str>,
        now: i64,
    ) -> Result<Result<KeyForSigning, SessionRefusal>, ApiError> {
        let Some(token) = token else {
            return Ok(Err(SessionRefusal::Invalid));
        };
        let (claims, secret) = match session::open(&self.session_key(), access_key_id, token, now) {
            Ok(opened) => opened,
            Err(SessionError::Invalid) => return Ok(Err(SessionRefusal::Invalid)),
            Err(SessionError::Expired) => return Ok(Err(SessionRefusal::Expired)),
        };
        let Some(role) = self.entity(EntityKind::Role, &claims.role).await? else {
            return Ok(Err(SessionRefusal::Invalid));
        };
        let policies = role
            .policies
            .values()
            .filter_map(|doc| PolicyDocument::from_value(doc).ok())
            .collect();
        Ok(Ok(KeyForSigning {
            principal: Principal {
                kind: EntityKind::Role,
                name: role.name.clone(),
                arn: assumed_role_arn(&role.name, &claims.session_name),
                access_key_id: access_key_id.to_string(),
                policies,
            },
            secret,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_from_arns_and_names() {
        assert_eq!(
            role_name("arn:berth:iam::000000000000:role/reader").unwrap(),
            "reader"
        );
        assert_eq!(
            role_name("arn:aws:iam::123456789012:role/team/reader").unwrap(),
            "reader"
        );
        assert_eq!(role_name("reader").unwrap(), "reader");
        for bad in [
            "",
            "arn:aws:iam::1:user/bob",
            "arn:aws:s3:::bucket",
            "a/b",
            "arn:aws:iam::1:role/",
        ] {
            let e = role_name(bad).unwrap_err();
            assert!(
                e.message.starts_with("taskRoleArn: "),
                "{bad}: {}",
                e.message
            );
        }
    }

    fn iam() -> Iam {
        let db = crate::db::Db::new(std::sync::Arc::new(berth_store::MemoryStore::new()));
        Iam::new(db, [9; 32])
    }

    #[tokio::test]
    async fn a_session_has_its_roles_policies_until_it_expires() {
        let iam = iam();
        iam.create(EntityKind::Role, "reader").await.unwrap();
        let read = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}]});
        iam.put_policy(EntityKind::Role, "reader", "read", &read)
            .await
            .unwrap();
        let c = iam
            .mint_role_session("reader", "task-1", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(c.role_arn, "arn:berth:iam::000000000000:role/reader");
        assert!(c.access_key_id.starts_with("ASIA"));
        let now = berth_model::time::now() as i64;
        assert!(
            (c.expiration - now - 60).abs() <= 1,
            "{} vs {now}",
            c.expiration
        );
        assert!(
            iam.db.store.list("/iam/").await.unwrap().len() == 1,
            "minting writes nothing"
        );

        let key = iam
            .authenticate_session(&c.access_key_id, Some(&c.session_token), now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.secret, c.secret_access_key);
        assert_eq!(
            key.principal.arn,
            "arn:berth:sts::000000000000:assumed-role/reader/task-1"
        );
        use berth_iam::policy::evaluate;
        use berth_iam::Decision;
        assert_eq!(
            evaluate(&key.principal.policies, "ecs:DescribeServices", "*"),
            Decision::Allow
        );
        assert_ne!(
            evaluate(&key.principal.policies, "ecs:UpdateService", "*"),
            Decision::Allow
        );

        let refused = |r: Result<KeyForSigning, SessionRefusal>| r.err();
        let at = |t| iam.authenticate_session(&c.access_key_id, Some(&c.session_token), t);
        assert_eq!(
            refused(at(c.expiration).await.unwrap()),
            Some(SessionRefusal::Expired)
        );
        let none = iam
            .authenticate_session(&c.access_key_id, None, now)
            .await
            .unwrap();
        assert_eq!(refused(none), Some(SessionRefusal::Invalid));
        let other = iam
            .mint_role_session("reader", "task-2", Duration::from_secs(60))
            .await
            .unwrap();
        let swapped = iam
            .authenticate_session(&c.access_key_id, Some(&other.session_token), now)
            .await
            .unwrap();
        assert_eq!(refused(swapped), Some(SessionRefusal::Invalid));

        iam.delete(EntityKind::Role, "reader").await.unwrap();
        assert_eq!(
            refused(at(now).await.unwrap()),
            Some(SessionRefusal::Invalid)
        );
        let e = iam
            .mint_role_session("reader", "task-1", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(e.code, "NoSuchEntity");
    }
}
