//! `GET /v1/whoami`: who the caller is and which actions it may take, so a client (the
//! console) shows only the buttons that would be allowed.
//!
//! berth has no access control yet: every caller is `anonymous` and may take every
//! action of [`ACTIONS`]. An access-control layer answers here with the principal it
//! authenticated and the actions its policy allows; the names are IAM's, so a policy
//! written for ECS reads the same.

use serde::Serialize;

/// Every action a client of the API can take, by its IAM name.
pub const ACTIONS: &[&str] = &[
    "ecs:UpdateService",
    "ecs:StopTask",
    "ecs:UpdateContainerInstancesState",
    "berth:ApplyStack",
];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Whoami {
    /// Who the API takes the caller to be.
    pub principal: String,
    /// Whether the principal was authenticated (false: no access control is configured).
    pub authenticated: bool,
    /// The actions of [`ACTIONS`] the caller may take.
    pub allowed_actions: Vec<String>,
}

impl Whoami {
    /// The answer while berth has no access control: anyone may do anything.
    pub fn everyone_allowed() -> Self {
        Whoami {
            principal: "anonymous".into(),
            authenticated: false,
            allowed_actions: ACTIONS.iter().map(|a| a.to_string()).collect(),
        }
    }
}

pub(super) async fn whoami() -> axum::Json<Whoami> {
    axum::Json(Whoami::everyone_allowed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_access_control_every_action_is_allowed() {
        let w = Whoami::everyone_allowed();
        assert_eq!(w.allowed_actions.len(), ACTIONS.len());
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["principal"], "anonymous");
        assert_eq!(json["allowedActions"][0], "ecs:UpdateService");
    }
}
