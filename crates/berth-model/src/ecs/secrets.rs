//! A container's `secrets`: what a `valueFrom` names in berth's secret store, the rules
//! of secret names, and the checks a task definition's secrets pass at registration.
//!
//! `valueFrom` is one of:
//! - a secret's name (`db-password`), or a Parameter Store name (`/prod/db`: the leading
//!   `/` is dropped, so it names the secret `prod/db`);
//! - a Secrets Manager ARN `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`,
//!   optionally followed by `:<json key>:<version stage>:<version id>` as ECS allows:
//!   the JSON key takes one member of a secret whose value is a JSON object; the version
//!   stage may only be empty or `AWSCURRENT` and the version id empty (berth keeps one
//!   version of each secret);
//! - a Parameter Store ARN `arn:<partition>:ssm:<region>:<account>:parameter/<name>`.
//!
//! Any partition, region and account are accepted (task definitions written for AWS
//! keep working); the secret is found by name in berth's one store, and its berth ARN
//! ([`crate::arn::secret`]) is what an execution role's policy must allow.
//!
//! As in ECS, a task definition with secrets must name an `executionRoleArn`
//! (`ClientException: When you are specifying container secrets, you must also specify a
//! value for 'executionRoleArn'.`); whether the secret exists and the role may read it
//! is decided when a task starts, not here.
//!
//! What it does not do: read or resolve secrets (berth-control does, when a task starts).

use crate::error::{Result, ValidationError};

use super::container::ContainerDefinition;

/// Longest secret name, as Secrets Manager's.
pub const MAX_SECRET_NAME: usize = 512;

/// What a `valueFrom` names: a secret, and optionally one member of its JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReference {
    pub secret_name: String,
    pub json_key: Option<String>,
}

/// Checks a secret's name: 1 to 512 of letters, digits and `/_+=.@-`, not starting or
/// ending with `/` and without `//`.
pub fn check_secret_name(field: &str, name: &str) -> Result<()> {
    let fail = |why: &str| {
        Err(ValidationError::new(
            field,
            format!("{why}: a secret name is 1 to {MAX_SECRET_NAME} of letters, digits and /_+=.@- (not starting or ending with /), got {name:?}"),
        ))
    };
    if name.is_empty() || name.len() > MAX_SECRET_NAME {
        return fail("wrong length");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return fail(&format!("{c:?} is not allowed"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return fail("empty path segment");
    }
    Ok(())
}

/// Parses a `valueFrom` (see the module's documentation); the error names `field`.
pub fn parse_value_from(field: &str, value_from: &str) -> Result<SecretReference> {
    let bad = |why: String| ValidationError::new(field, why);
    if let Some(rest) = value_from.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [_partition, service, _region, _account, resource] = parts.as_slice() else {
            return Err(bad(format!("not an ARN: {value_from:?}")));
        };
        return match *service {
            "secretsmanager" => {
                let Some(tail) = resource.strip_prefix("secret:") else {
                    return Err(bad(format!(
                        "a Secrets Manager ARN names secret:<name>, got {value_from:?}"
                    )));
                };
                secrets_manager_reference(field, tail)
            }
            "ssm" => {
                let Some(name) = resource.strip_prefix("parameter/") else {
                    return Err(bad(format!(
                        "a Parameter Store ARN names parameter/<name>, got {value_from:?}"
                    )));
                };
                check_secret_name(field, name)?;
                Ok(SecretReference {
                    secret_name: name.to_string(),
                    json_key: None,
                })
            }
            other => Err(bad(format!(
                "an ARN of secretsmanager or ssm, got one of {other:?}: {value_from:?}"
            ))),
        };
    }
    let name = value_from.strip_prefix('/').unwrap_or(value_from);
    check_secret_name(field, name)?;
    Ok(SecretReference {
        secret_name: name.to_string(),
        json_key: None,
    })
}

/// `<name>[:<json key>[:<version stage>[:<version id>]]]` of a Secrets Manager ARN.
fn secrets_manager_reference(field: &str, tail: &str) -> Result<SecretReference> {
    let mut parts = tail.split(':');
    let name = parts.next().unwrap_or_default();
    let json_key = parts.next().filter(|k| !k.is_empty());
    let stage = parts.next().unwrap_or_default();
    let version = parts.next().unwrap_or_default();
    if parts.next().is_some() {
        return Err(ValidationError::new(
            field,
            format!("a Secrets Manager ARN ends secret:<name>[:<json key>:<version stage>:<version id>], got more after {tail:?}"),
        ));
    }
    check_secret_name(field, name)?;
    if !(stage.is_empty() || stage == "AWSCURRENT") || !version.is_empty() {
        return Err(ValidationError::new(
            field,
            format!("berth keeps one version of a secret: the version stage may be empty or AWSCURRENT and the version id empty, got {stage:?} and {version:?}"),
        ));
    }
    Ok(SecretReference {
        secret_name: name.to_string(),
        json_key: json_key.map(str::to_string),
    })
}

/// The checks of registration: each secret has a name used once in its container (not
/// also in `environment`) and a `valueFrom` of a form above, and a definition with
/// secrets names an `executionRoleArn`.
pub(super) fn validate_secrets(
    containers: &[ContainerDefinition],
    execution_role_arn: Option<&str>,
) -> Result<()> {
    let mut any = false;
    for (i, c) in containers.iter().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        for (j, s) in c.secrets.iter().enumerate() {
            let at = format!("containerDefinitions[{i}].secrets[{j}]");
            any = true;
            if s.name.is_empty() {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    "must name the environment variable the secret is set in",
                ));
            }
            if !seen.insert(s.name.as_str()) || c.environment.iter().any(|e| e.name == s.name) {
                return Err(ValidationError::new(
                    format!("{at}.name"),
                    format!(
                        "the variable {:?} is set twice in this container (secrets and environment)",
                        s.name
                    ),
                ));
            }
            parse_value_from(&format!("{at}.valueFrom"), &s.value_from)?;
        }
    }
    if any && execution_role_arn.unwrap_or("").is_empty() {
        return Err(ValidationError::new(
            "executionRoleArn",
            "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.",
        ));
    }
    Ok(())
}

/// The role name of an `executionRoleArn` (`arn:<partition>:iam::<account>:role/<path/>name`
/// → `name`), or `None` when it is not a role ARN.
pub fn execution_role_name(execution_role_arn: &str) -> Option<&str> {
    let rest = execution_role_arn.strip_prefix("arn:")?;
    let parts: Vec<&str> = rest.splitn(5, ':').collect();
    let [_, "iam", _, _, resource] = parts.as_slice() else {
        return None;
    };
    let path = resource.strip_prefix("role/")?;
    path.rsplit('/').next().filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(v: &str) -> SecretReference {
        parse_value_from("valueFrom", v).unwrap()
    }

    #[test]
    fn names_and_arns_of_both_services_name_a_secret() {
        assert_eq!(reference("db").secret_name, "db");
        assert_eq!(reference("/prod/db").secret_name, "prod/db");
        let arn = reference("arn:berth:secretsmanager:local:000000000000:secret:db");
        assert_eq!(arn.secret_name, "db");
        assert_eq!(arn.json_key, None);
        let aws =
            reference("arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf:password::");
        assert_eq!(aws.secret_name, "db-AbCdEf");
        assert_eq!(aws.json_key.as_deref(), Some("password"));
        let current = reference("arn:aws:secretsmanager:r:1:secret:db::AWSCURRENT:");
        assert_eq!(
            (current.secret_name.as_str(), current.json_key),
            ("db", None)
        );
        assert_eq!(
            reference("arn:aws:ssm:us-east-1:1:parameter/prod/db").secret_name,
            "prod/db"
        );
    }

    #[test]
    fn bad_value_froms_name_the_field_and_what_is_allowed() {
        let e = parse_value_from("x.valueFrom", "").unwrap_err();
        assert_eq!(e.field, "x.valueFrom");
        assert!(e.message.contains("1 to 512"), "{e}");
        let e = parse_value_from("f", "arn:aws:s3:::bucket/key").unwrap_err();
        assert!(e.message.contains("secretsmanager or ssm"), "{e}");
        let e = parse_value_from("f", "arn:aws:secretsmanager:r:1:secret:db::AWSPREVIOUS:")
            .unwrap_err();
        assert!(e.message.contains("one version"), "{e}");
        let e = parse_value_from("f", "arn:aws:ssm:r:1:secret/db").unwrap_err();
        assert!(e.message.contains("parameter/<name>"), "{e}");
        let e = parse_value_from("f", "has space").unwrap_err();
        assert!(e.message.contains("' ' is not allowed"), "{e}");
        assert!(check_secret_name("n", "a//b").is_err());
        assert!(check_secret_name("n", "a/b").is_ok());
    }

    /// The registration check of one container with `secrets` beside an environment
    /// variable `MODE`, under the execution role `role`.
    fn check(role: Option<&str>, secrets: serde_json::Value) -> Result<()> {
        let containers: Vec<ContainerDefinition> = serde_json::from_value(serde_json::json!([
            {"name": "app", "image": "x", "secrets": secrets,
             "environment": [{"name": "MODE", "value": "blue"}]}]))
        .unwrap();
        validate_secrets(&containers, role)
    }

    #[test]
    fn registration_refuses_secrets_without_a_role_twice_set_names_and_bad_value_froms() {
        let role = Some("arn:aws:iam::1:role/exec");
        let one = serde_json::json!([{"name": "PW", "valueFrom": "db"}]);
        assert!(check(role, one.clone()).is_ok());
        let e = check(None, one).unwrap_err();
        assert_eq!(e.field, "executionRoleArn");
        assert!(
            e.message
                .starts_with("When you are specifying container secrets"),
            "{e}"
        );
        let twice = serde_json::json!([{"name": "PW", "valueFrom": "a"}, {"name": "MODE", "valueFrom": "b"}]);
        let e = check(role, twice).unwrap_err();
        assert_eq!(e.field, "containerDefinitions[0].secrets[1].name");
        let bad = serde_json::json!([{"name": "PW", "valueFrom": "arn:aws:s3:::b/k"}]);
        let e = check(role, bad).unwrap_err();
        assert_eq!(e.field, "containerDefinitions[0].secrets[0].valueFrom");
    }

    #[test]
    fn role_names_come_from_role_arns_only() {
        assert_eq!(
            execution_role_name("arn:berth:iam::000000000000:role/exec"),
            Some("exec")
        );
        assert_eq!(
            execution_role_name("arn:aws:iam::1:role/service-role/exec"),
            Some("exec")
        );
        assert_eq!(execution_role_name("arn:aws:iam::1:user/exec"), None);
        assert_eq!(execution_role_name("exec"), None);
    }
}
