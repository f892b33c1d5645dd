//! Service tasks on DRAINING container instances (ECS's container instance draining):
//! which tasks stand on one, and the reason they are stopped with.
//!
//! The planner treats such a task like a task of an older deployment: its replacement
//! starts elsewhere within `maximumPercent`, and it stops only while
//! `minimumHealthyPercent` holds (at once when it is not healthy, so a PENDING one goes
//! straight away). Placement never chooses a DRAINING instance (see
//! [`crate::scheduler`]).
//!
//! What it does not do: change an instance's status (the API does, see
//! [`crate::instance_state`]) or touch tasks outside a service, which stay where they
//! are, as in ECS.

use std::collections::BTreeSet;

use berth_model::ecs::{ContainerInstance, Task};

/// The status of an instance that takes no new tasks and gives its service tasks up.
pub const DRAINING: &str = "DRAINING";

/// The stopped reason of a service task replaced because its instance is draining.
pub const INSTANCE_DRAINING_REASON: &str = "Task stopped during instance draining";

/// The DRAINING instances of a cluster, by ARN.
pub struct DrainingInstances<'a> {
    arns: BTreeSet<&'a str>,
}

impl<'a> DrainingInstances<'a> {
    pub fn new(instances: &'a [ContainerInstance]) -> Self {
        Self {
            arns: instances
                .iter()
                .filter(|i| i.status == DRAINING)
                .map(|i| i.container_instance_arn.as_str())
                .collect(),
        }
    }

    /// Whether `t` is placed on a DRAINING instance.
    pub fn holds(&self, t: &Task) -> bool {
        t.container_instance_arn
            .as_deref()
            .is_some_and(|arn| self.arns.contains(arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::instance;
    use berth_model::arn;

    #[test]
    fn only_tasks_on_a_draining_instance_are_held() {
        let mut draining = instance("i-2");
        draining.status = DRAINING.into();
        let instances = [instance("i-1"), draining];
        let d = DrainingInstances::new(&instances);
        let on = |id: Option<&str>| Task {
            container_instance_arn: id.map(|i| arn::container_instance("default", i)),
            ..Default::default()
        };
        assert!(d.holds(&on(Some("i-2"))));
        assert!(!d.holds(&on(Some("i-1"))));
        assert!(!d.holds(&on(Some("i-9"))), "an unknown instance");
        assert!(!d.holds(&on(None)));
    }
}
