//! `GET /v1/whoami`: who the caller is and which actions it may take, so a client (the
//! console) shows only the buttons that would be allowed.
//!
//! With access control on, the principal is the one the guard authenticated (by
//! signature or console session) and each action of [`ACTIONS`] is evaluated against its
//! policies as the guard evaluates a request, on every resource (`*`): a policy that
//! allows an action only on some resources hides its button, and the API stays the
//! authority either way. `berth:ApplyStack` is the console's name for applying a stack
//! file, which needs the create and update actions of what the file holds; it is shown
//! when any of [`APPLY_ACTIONS`] is allowed. Without access control
//! (`--insecure-loopback`) the caller is `anonymous` and may take every action.

use axum::Extension;
use berth_iam::policy::{evaluate, Decision};
use serde::Serialize;

use crate::iam_store::Principal;

/// Every action a client of the API can take, by its IAM name.
pub const ACTIONS: &[&str] = &[
    "ecs:UpdateService",
    "ecs:StopTask",
    "ecs:UpdateContainerInstancesState",
    "berth:ApplyStack",
];

/// The actions applying a stack may need ([`crate::iam_native_actions::apply_needs`]).
pub const APPLY_ACTIONS: &[&str] = &[
    "ecs:CreateCluster",
    "ecs:UpdateCluster",
    "ecs:RegisterTaskDefinition",
    "ecs:CreateService",
    "ecs:UpdateService",
    "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:ModifyLoadBalancerAttributes",
    "servicediscovery:CreatePrivateDnsNamespace",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:PutScheduledAction",
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    /// Who the API takes the caller to be (an IAM ARN, or `anonymous`).
    pub principal: String,
    /// Whether the principal was authenticated (false: no access control is configured).
    pub authenticated: bool,
    /// The actions of [`ACTIONS`] the caller may take.
    pub allowed_actions: Vec<String>,
}

impl Whoami {
    /// The answer without access control: anyone may do anything.
    pub fn everyone_allowed() -> Self {
        Whoami {
            principal: "anonymous".into(),
            authenticated: false,
            allowed_actions: ACTIONS.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The answer for an authenticated principal: the actions its policies allow.
    pub fn of(principal: &Principal) -> Self {
        let allowed = |action: &str| evaluate(&principal.policies, action, "*") == Decision::Allow;
        Whoami {
            principal: principal.arn.clone(),
            authenticated: true,
            allowed_actions: ACTIONS
                .iter()
                .filter(|a| match **a {
                    "berth:ApplyStack" => APPLY_ACTIONS.iter().any(|x| allowed(x)),
                    other => allowed(other),
                })
                .map(|a| a.to_string())
                .collect(),
        }
    }
}

pub(super) async fn whoami(principal: Option<Extension<Principal>>) -> axum::Json<Whoami> {
    axum::Json(match principal {
        Some(Extension(p)) => Whoami::of(&p),
        None => Whoami::everyone_allowed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iam_store::EntityKind;
    use berth_iam::policy::PolicyDocument;

    fn principal(policy: &str) -> Principal {
        Principal {
            kind: EntityKind::User,
            name: "reader".into(),
            arn: "arn:berth:iam::000000000000:user/reader".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            policies: vec![PolicyDocument::parse(policy).unwrap()],
        }
    }

    #[test]
    fn without_access_control_every_action_is_allowed() {
        let w = Whoami::everyone_allowed();
        assert_eq!(w.allowed_actions.len(), ACTIONS.len());
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["principal"], "anonymous");
        assert_eq!(json["allowedActions"][0], "ecs:UpdateService");
    }

    #[test]
    fn a_principal_is_allowed_what_its_policies_allow() {
        let reader = principal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:Describe*","ecs:List*"],"Resource":"*"}]}"#,
        );
        let w = Whoami::of(&reader);
        assert!(w.authenticated);
        assert_eq!(w.principal, "arn:berth:iam::000000000000:user/reader");
        assert!(w.allowed_actions.is_empty(), "{:?}", w.allowed_actions);
        let operator = principal(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"},{"Effect":"Deny","Action":"ecs:StopTask","Resource":"*"}]}"#,
        );
        assert_eq!(
            Whoami::of(&operator).allowed_actions,
            [
                "ecs:UpdateService",
                "ecs:UpdateContainerInstancesState",
                "berth:ApplyStack"
            ]
        );
    }
}
