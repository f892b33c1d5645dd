//! Placement constraints on one container instance: `distinctInstance` (no task of the
//! same group on it) and `memberOf` (a cluster query expression, from the task
//! definition or the service, that must hold for it).
//!
//! It does not rank instances (see [`super::strategies`]) and does not check resources.

use berth_model::arn;
use berth_model::ecs::cluster_query::{self, Expression, InstanceView};
use berth_model::ecs::{ContainerInstance, PlacementConstraint, Task, TaskDefinition, TaskStatus};

use super::PlacementFailure;

/// The `memberOf` expressions of the task definition, then of the service, parsed.
/// An expression that no longer parses (stored before a stricter parser) fails
/// placement with its field and reason.
pub(super) fn member_of(
    td: &TaskDefinition,
    constraints: &[PlacementConstraint],
) -> Result<Vec<Expression>, PlacementFailure> {
    let of_definition = td
        .placement_constraints
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == "memberOf")
        .map(|(i, c)| {
            (
                format!("the task definition's placementConstraints[{i}].expression"),
                c.expression.as_deref(),
            )
        });
    let of_service = constraints
        .iter()
        .enumerate()
        .filter(|(_, c)| c.kind == "memberOf")
        .map(|(i, c)| {
            (
                format!("the service's placementConstraints[{i}].expression"),
                c.expression.as_deref(),
            )
        });
    of_definition
        .chain(of_service)
        .map(|(field, text)| {
            cluster_query::check_member_of(&field, text)
                .map_err(|e| PlacementFailure(format!("{e}.")))
        })
        .collect()
}

/// Whether any constraint is `distinctInstance`.
pub(super) fn distinct_instance(constraints: &[PlacementConstraint]) -> bool {
    constraints.iter().any(|c| c.kind == "distinctInstance")
}

/// `inst` as an expression sees it, `on_instance` being the tasks on it not STOPPED.
pub(super) fn view<'a>(inst: &'a ContainerInstance, on_instance: &[&'a Task]) -> InstanceView<'a> {
    let id = arn::last_segment(&inst.container_instance_arn);
    InstanceView {
        instance_id: id,
        ec2_instance_id: if inst.ec2_instance_id.is_empty() {
            id
        } else {
            &inst.ec2_instance_id
        },
        attributes: &inst.attributes,
        registered_at: inst.registered_at,
        running_tasks_count: on_instance
            .iter()
            .filter(|t| t.last_status == TaskStatus::Running)
            .count() as u32,
        task_groups: on_instance
            .iter()
            .map(|t| t.group.as_str())
            .filter(|g| !g.is_empty())
            .collect(),
        agent_connected: inst.agent_connected,
    }
}

/// Whether every expression holds on the instance `view` describes.
pub(super) fn all_hold(expressions: &[Expression], view: &InstanceView<'_>) -> bool {
    expressions.iter().all(|e| e.holds_for(view))
}

/// Whether the `memberOf` constraints of `td` and of `constraints` hold on `inst`,
/// given the cluster's tasks (those not STOPPED on `inst` count). False when one of
/// them does not parse. A DAEMON service wants a task on the instances where this holds.
pub fn member_of_holds(
    inst: &ContainerInstance,
    cluster_tasks: &[&Task],
    td: &TaskDefinition,
    constraints: &[PlacementConstraint],
) -> bool {
    let Ok(expressions) = member_of(td, constraints) else {
        return false;
    };
    if expressions.is_empty() {
        return true;
    }
    let on_instance: Vec<&Task> = cluster_tasks
        .iter()
        .copied()
        .filter(|t| t.last_status != TaskStatus::Stopped)
        .filter(|t| t.container_instance_arn.as_deref() == Some(&inst.container_instance_arn))
        .collect();
    all_hold(&expressions, &view(inst, &on_instance))
}
