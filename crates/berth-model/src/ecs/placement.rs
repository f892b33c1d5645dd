//! Placement as services and task definitions state it: the `placementStrategy` and
//! `placementConstraints` types, and their validation with ECS's limits (5 strategies,
//! 10 constraints) and each `memberOf` expression parsed by [`super::cluster_query`].
//!
//! It does not place anything: the scheduler (berth-control) evaluates the expressions
//! and applies the strategies.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ValidationError};

use super::cluster_query::check_member_of;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
/// One of a service's `placementStrategy` entries.
pub struct PlacementStrategy {
    /// binpack, spread or random.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
/// One of a service's `placementConstraints`.
pub struct PlacementConstraint {
    /// distinctInstance or memberOf.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
/// One of a task definition's `placementConstraints`.
pub struct TaskDefinitionPlacementConstraint {
    /// ECS allows only `memberOf`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// ECS's limit on a service's strategies.
pub const MAX_PLACEMENT_STRATEGIES: usize = 5;
/// ECS's limit on constraints (of a service, and of a task definition).
pub const MAX_PLACEMENT_CONSTRAINTS: usize = 10;

/// A service's `placementStrategy`: at most 5; `binpack` by `cpu` or `memory` (default
/// memory), `spread` by `instanceId`, `host` or `attribute:NAME` (default instanceId),
/// `random` with no field.
pub fn check_strategies(strategies: &[PlacementStrategy]) -> Result<()> {
    if strategies.len() > MAX_PLACEMENT_STRATEGIES {
        return Err(ValidationError::new(
            "placementStrategy",
            format!(
                "may list at most {MAX_PLACEMENT_STRATEGIES}, got {}",
                strategies.len()
            ),
        ));
    }
    for (i, s) in strategies.iter().enumerate() {
        let field = s.field.as_deref();
        let problem = match s.kind.as_str() {
            "binpack" => match field {
                None | Some("cpu" | "memory") => None,
                Some(f) => Some(format!("binpack takes cpu or memory, got {f:?}")),
            },
            "spread" => match field {
                None | Some("instanceId" | "host") => None,
                Some(f) if f.strip_prefix("attribute:").is_some_and(|n| !n.is_empty()) => None,
                Some(f) => Some(format!(
                    "spread takes instanceId, host or attribute:<name>, got {f:?}"
                )),
            },
            "random" => field.map(|f| format!("random takes no field, got {f:?}")),
            other => {
                return Err(ValidationError::new(
                    format!("placementStrategy[{i}].type"),
                    format!("must be binpack, spread or random, got {other:?}"),
                ))
            }
        };
        if let Some(message) = problem {
            return Err(ValidationError::new(
                format!("placementStrategy[{i}].field"),
                message,
            ));
        }
    }
    Ok(())
}

/// A service's `placementConstraints`: at most 10; `distinctInstance` with no
/// expression, or `memberOf` with an expression that parses.
pub fn check_service_constraints(constraints: &[PlacementConstraint]) -> Result<()> {
    check_constraints(
        constraints
            .iter()
            .map(|c| (c.kind.as_str(), c.expression.as_deref())),
        &["distinctInstance", "memberOf"],
    )
}

/// A task definition's `placementConstraints`: at most 10, each `memberOf` with an
/// expression that parses (ECS allows no other type there).
pub fn check_task_definition_constraints(
    constraints: &[TaskDefinitionPlacementConstraint],
) -> Result<()> {
    check_constraints(
        constraints
            .iter()
            .map(|c| (c.kind.as_str(), c.expression.as_deref())),
        &["memberOf"],
    )
}

fn check_constraints<'a>(
    constraints: impl ExactSizeIterator<Item = (&'a str, Option<&'a str>)>,
    types: &[&str],
) -> Result<()> {
    if constraints.len() > MAX_PLACEMENT_CONSTRAINTS {
        return Err(ValidationError::new(
            "placementConstraints",
            format!(
                "may list at most {MAX_PLACEMENT_CONSTRAINTS}, got {}",
                constraints.len()
            ),
        ));
    }
    for (i, (kind, expression)) in constraints.enumerate() {
        if !types.contains(&kind) {
            return Err(ValidationError::new(
                format!("placementConstraints[{i}].type"),
                format!("must be {}, got {kind:?}", types.join(" or ")),
            ));
        }
        let at = format!("placementConstraints[{i}].expression");
        match (kind, expression) {
            ("memberOf", e) => {
                check_member_of(&at, e)?;
            }
            (_, Some(_)) => {
                return Err(ValidationError::new(
                    at,
                    format!("{kind} takes no expression"),
                ))
            }
            (_, None) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: &str, field: Option<&str>) -> PlacementStrategy {
        PlacementStrategy {
            kind: kind.into(),
            field: field.map(str::to_string),
        }
    }

    fn constraint(kind: &str, expression: Option<&str>) -> PlacementConstraint {
        PlacementConstraint {
            kind: kind.into(),
            expression: expression.map(str::to_string),
        }
    }

    #[test]
    fn strategies_take_their_fields_and_at_most_five() {
        let ok = [
            strategy("spread", Some("attribute:zone")),
            strategy("spread", Some("instanceId")),
            strategy("binpack", Some("memory")),
            strategy("binpack", Some("cpu")),
            strategy("random", None),
        ];
        check_strategies(&ok).unwrap();
        let mut six = ok.to_vec();
        six.push(strategy("random", None));
        assert_eq!(
            check_strategies(&six).unwrap_err().field,
            "placementStrategy"
        );
        for (bad, message) in [
            (
                strategy("binpack", Some("disk")),
                "binpack takes cpu or memory",
            ),
            (
                strategy("spread", Some("zone")),
                "spread takes instanceId, host or attribute:<name>",
            ),
            (strategy("spread", Some("attribute:")), "spread takes"),
            (strategy("random", Some("cpu")), "random takes no field"),
        ] {
            let e = check_strategies(&[strategy("random", None), bad]).unwrap_err();
            assert_eq!(e.field, "placementStrategy[1].field");
            assert!(e.message.starts_with(message), "{e}");
        }
        let e = check_strategies(&[strategy("pack", None)]).unwrap_err();
        assert_eq!(e.field, "placementStrategy[0].type");
    }

    #[test]
    fn constraints_are_checked_at_their_field_with_the_position() {
        check_service_constraints(&[
            constraint("distinctInstance", None),
            constraint("memberOf", Some("attribute:zone in [a, b]")),
        ])
        .unwrap();
        let e = check_service_constraints(&[
            constraint("distinctInstance", None),
            constraint("memberOf", Some("attribute:zone zzz")),
        ])
        .unwrap_err();
        assert_eq!(e.field, "placementConstraints[1].expression");
        assert_eq!(
            e.message,
            "at 15: expected an operator after \"attribute:zone\", found \"zzz\""
        );
        assert_eq!(
            e.to_string().matches("placementConstraints").count(),
            1,
            "the path appears once: {e}"
        );
        let e =
            check_service_constraints(&[constraint("distinctInstance", Some("x"))]).unwrap_err();
        assert_eq!(e.field, "placementConstraints[0].expression");
        let e = check_service_constraints(&[constraint("spreadOut", None)]).unwrap_err();
        assert_eq!(
            e.message,
            "must be distinctInstance or memberOf, got \"spreadOut\""
        );
        let eleven = vec![constraint("distinctInstance", None); 11];
        assert_eq!(
            check_service_constraints(&eleven).unwrap_err().field,
            "placementConstraints"
        );
    }

    #[test]
    fn a_task_definition_takes_member_of_only() {
        let td = |kind: &str, e: Option<&str>| TaskDefinitionPlacementConstraint {
            kind: kind.into(),
            expression: e.map(str::to_string),
        };
        check_task_definition_constraints(&[td("memberOf", Some("attribute:zone == a"))]).unwrap();
        let e = check_task_definition_constraints(&[td("distinctInstance", None)]).unwrap_err();
        assert_eq!(e.field, "placementConstraints[0].type");
        assert_eq!(e.message, "must be memberOf, got \"distinctInstance\"");
        let e = check_task_definition_constraints(&[td("memberOf", Some("(attribute:zone == a"))])
            .unwrap_err();
        assert_eq!(e.field, "placementConstraints[0].expression");
        assert!(e.message.starts_with("at 20: expected \")\""), "{e}");
    }
}
