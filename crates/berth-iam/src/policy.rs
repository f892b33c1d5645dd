//! IAM policy documents and their evaluation.
//!
//! A document is IAM's JSON: `{"Version": "2012-10-17", "Statement": [{"Sid",
//! "Effect": "Allow"|"Deny", "Action": "ecs:Describe*" | [...], "Resource": "*" | [...]}]}`
//! (`Statement` may be one object; `Action` and `Resource` one string). Actions match
//! case-insensitively with `*` and `?` wildcards; resources match ARNs case-sensitively
//! with the same wildcards. `NotAction`, `NotResource`, `Principal` and `Condition` are
//! refused by name: berth does not evaluate them, and a policy that silently ignored a
//! condition would allow more than its author meant.
//!
//! Evaluation over all of a principal's policies: an explicit deny wins, else any allow,
//! else the implicit deny.

use serde_json::{Map, Value};

/// The policy language versions IAM knows.
pub const VERSIONS: [&str; 2] = ["2012-10-17", "2008-10-17"];

/// A policy document that is not valid: IAM's `MalformedPolicyDocument`, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    /// Where: `Statement[1].Action`, say.
    pub field: String,
    pub message: String,
}

impl PolicyError {
    /// IAM's error code.
    pub const CODE: &'static str = "MalformedPolicyDocument";

    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    /// `service:action` patterns.
    pub actions: Vec<String>,
    /// ARN patterns.
    pub resources: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocument {
    pub version: String,
    pub statements: Vec<Statement>,
}

/// What the policies say about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A statement denies it.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

impl PolicyDocument {
    /// Parses and validates a document's JSON text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError::new("policyDocument", format!("not JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Validates a document already read as JSON.
    pub fn from_value(value: &Value) -> Result<Self, PolicyError> {
        let Value::Object(doc) = value else {
            return Err(PolicyError::new(
                "policyDocument",
                "must be a JSON object with Version and Statement",
            ));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::new(
                    key,
                    "unknown field; allowed: Version, Id, Statement",
                ));
            }
        }
        let version = match doc.get("Version") {
            None => VERSIONS[1].to_string(),
            Some(Value::String(v)) if VERSIONS.contains(&v.as_str()) => v.clone(),
            Some(other) => {
                return Err(PolicyError::new(
                    "Version",
                    format!("must be \"2012-10-17\" or \"2008-10-17\", got {other}"),
                ))
            }
        };
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, s)| statement(&format!("Statement[{i}]"), s))
                .collect::<Result<Vec<_>, _>>()?,
            Some(one @ Value::Object(_)) => vec![statement("Statement", one)?],
            Some(_) => {
                return Err(PolicyError::new(
                    "Statement",
                    "must be a statement object or a non-empty list of them",
                ))
            }
            None => return Err(PolicyError::new("Statement", "is required")),
        };
        Ok(Self {
            version,
            statements,
        })
    }

    /// What this document alone says about `action` on `resource`.
    pub fn evaluate(&self, action: &str, resource: &str) -> Decision {
        evaluate([self], action, resource)
    }
}

fn statement(field: &str, value: &Value) -> Result<Statement, PolicyError> {
    let Value::Object(s) = value else {
        return Err(PolicyError::new(field, "must be a JSON object"));
    };
    for key in s.keys() {
        match key.as_str() {
            "Sid" | "Effect" | "Action" | "Resource" => {}
            "NotAction" | "NotResource" | "Principal" | "NotPrincipal" | "Condition" => {
                return Err(PolicyError::new(
                    format!("{field}.{key}"),
                    "not supported by berth; allowed: Sid, Effect, Action, Resource",
                ))
            }
            _ => {
                return Err(PolicyError::new(
                    format!("{field}.{key}"),
                    "unknown field; allowed: Sid, Effect, Action, Resource",
                ))
            }
        }
    }
    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) if sid.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Some(sid.clone())
        }
        Some(other) => {
            return Err(PolicyError::new(
                format!("{field}.Sid"),
                format!("must be a string of letters and digits, got {other}"),
            ))
        }
    };
    let effect = match s.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(PolicyError::new(
                format!("{field}.Effect"),
                format!("must be \"Allow\" or \"Deny\", got {other}"),
            ))
        }
        None => {
            return Err(PolicyError::new(
                format!("{field}.Effect"),
                "is required (\"Allow\" or \"Deny\")",
            ))
        }
    };
    let actions = strings(s, field, "Action")?;
    for (i, a) in actions.iter().enumerate() {
        let ok = a == "*"
            || a.split_once(':').is_some_and(|(svc, act)| {
                !svc.is_empty()
                    && !act.is_empty()
                    && svc.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && act
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
            });
        if !ok {
            return Err(PolicyError::new(
                format!("{field}.Action[{i}]"),
                format!("must be \"*\" or \"service:action\" (wildcards * and ?), got {a:?}"),
            ));
        }
    }
    let resources = strings(s, field, "Resource")?;
    for (i, r) in resources.iter().enumerate() {
        if r != "*" && !r.starts_with("arn:") {
            return Err(PolicyError::new(
                format!("{field}.Resource[{i}]"),
                format!("must be \"*\" or an ARN (arn:...; wildcards * and ?), got {r:?}"),
            ));
        }
    }
    Ok(Statement {
        sid,
        effect,
        actions,
        resources,
    })
}

/// A field that is one string or a non-empty list of strings.
fn strings(s: &Map<String, Value>, field: &str, name: &str) -> Result<Vec<String>, PolicyError> {
    let path = format!("{field}.{name}");
    match s.get(name) {
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(x) => Ok(x.clone()),
                other => Err(PolicyError::new(
                    format!("{path}[{i}]"),
                    format!("must be a string, got {other}"),
                )),
            })
            .collect(),
        Some(_) => Err(PolicyError::new(
            path,
            "must be a string or a non-empty list of strings",
        )),
        None => Err(PolicyError::new(path, "is required")),
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters and `?` any one
/// character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Statement {
    /// Whether this statement speaks about `action` on `resource`.
    pub fn applies(&self, action: &str, resource: &str) -> bool {
        let action = action.to_ascii_lowercase();
        self.actions
            .iter()
            .any(|a| wildcard_match(&a.to_ascii_lowercase(), &action))
            && self.resources.iter().any(|r| wildcard_match(r, resource))
    }
}

/// What `policies` together say about `action` (`service:Action`) on `resource` (an ARN,
/// or `*` for actions on no particular resource).
pub fn evaluate<'a>(
    policies: impl IntoIterator<Item = &'a PolicyDocument>,
    action: &str,
    resource: &str,
) -> Decision {
    let mut allowed = false;
    for p in policies {
        for s in &p.statements {
            if s.applies(action, resource) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// AWS's `AccessDeniedException` message for `principal_arn` refused `action` on
/// `resource`.
pub fn access_denied_message(
    principal_arn: &str,
    action: &str,
    resource: &str,
    decision: Decision,
) -> String {
    let why = match decision {
        Decision::ExplicitDeny => "with an explicit deny in an identity-based policy".to_string(),
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    format!("User: {principal_arn} is not authorized to perform: {action} on resource: {resource} {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> PolicyDocument {
        PolicyDocument::parse(text).unwrap()
    }

    #[test]
    fn wildcards_match_runs_and_single_characters() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("ecs:describe*", "ecs:describeservices"));
        assert!(wildcard_match("ecs:list?asks", "ecs:listtasks"));
        assert!(!wildcard_match("ecs:list?asks", "ecs:listttasks"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "axxbyy"));
        assert!(wildcard_match(
            "arn:berth:ecs:*:*:service/prod/*",
            "arn:berth:ecs:local:000000000000:service/prod/web"
        ));
        assert!(!wildcard_match(
            "arn:berth:ecs:*:*:service/prod/*",
            "arn:berth:ecs:local:000000000000:service/dev/web"
        ));
    }

    #[test]
    fn explicit_deny_wins_over_any_allow_and_nothing_allowed_is_denied() {
        let admin = doc(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        );
        let no_delete = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDelete","Effect":"Deny","Action":"ecs:Delete*","Resource":"*"}]}"#,
        );
        let svc = "arn:berth:ecs:local:000000000000:service/default/web";
        assert_eq!(
            evaluate([&admin], "ecs:DeleteService", svc),
            Decision::Allow
        );
        assert_eq!(
            evaluate([&admin, &no_delete], "ecs:DeleteService", svc),
            Decision::ExplicitDeny
        );
        assert_eq!(
            evaluate([&no_delete], "ecs:DescribeServices", svc),
            Decision::ImplicitDeny
        );
        assert_eq!(
            evaluate([], "ecs:DescribeServices", svc),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn actions_are_case_insensitive_and_resources_are_not() {
        let read = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ECS:describe*","ecs:List*"],"Resource":"arn:berth:ecs:*:*:service/default/*"}]}"#,
        );
        let web = "arn:berth:ecs:local:000000000000:service/default/web";
        assert_eq!(read.evaluate("ecs:DescribeServices", web), Decision::Allow);
        assert_eq!(read.evaluate("ecs:ListServices", web), Decision::Allow);
        assert_eq!(
            read.evaluate("ecs:UpdateService", web),
            Decision::ImplicitDeny
        );
        assert_eq!(
            read.evaluate(
                "ecs:DescribeServices",
                "arn:berth:ecs:local:000000000000:service/DEFAULT/web"
            ),
            Decision::ImplicitDeny
        );
    }

    #[test]
    fn malformed_documents_name_the_field() {
        let cases = [
            ("[]", "policyDocument"),
            ("{", "policyDocument"),
            (r#"{"Version":"2012-10-17"}"#, "Statement"),
            (r#"{"Version":"2020-01-01","Statement":[]}"#, "Version"),
            (r#"{"Statement":[]}"#, "Statement"),
            (
                r#"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                "Statement[0].Action",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"ecs","Resource":"*"}]}"#,
                "Statement[0].Action[0]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":["*",3],"Resource":"*"}]}"#,
                "Statement[0].Action[1]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
                "Statement[0].Resource",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"web"}]}"#,
                "Statement[0].Resource[0]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{}}]}"#,
                "Statement[0].Condition",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Sid":"a b"}]}"#,
                "Statement[0].Sid",
            ),
            (r#"{"Statement":[],"Extra":1}"#, "Extra"),
        ];
        for (text, field) in cases {
            let e = PolicyDocument::parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
    }

    #[test]
    fn access_denied_messages_use_aws_wording() {
        let m = access_denied_message(
            "arn:berth:iam::000000000000:user/reader",
            "ecs:UpdateService",
            "arn:berth:ecs:local:000000000000:service/default/web",
            Decision::ImplicitDeny,
        );
        assert_eq!(m, "User: arn:berth:iam::000000000000:user/reader is not authorized to perform: ecs:UpdateService on resource: arn:berth:ecs:local:000000000000:service/default/web because no identity-based policy allows the ecs:UpdateService action");
        let m = access_denied_message("u", "ecs:DeleteService", "r", Decision::ExplicitDeny);
        assert!(m.ends_with("with an explicit deny in an identity-based policy"));
    }
}
