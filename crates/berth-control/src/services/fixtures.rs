//! Fixtures the service reconciler's tests share.

use berth_model::arn;
use berth_model::ecs::{ContainerInstance, Resource};

/// An ACTIVE, connected instance of the `default` cluster with 4096 CPU units and 4096 MiB.
pub(crate) fn instance(id: &str) -> ContainerInstance {
    ContainerInstance {
        container_instance_arn: arn::container_instance("default", id),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        agent_connected: true,
        registered_resources: ["CPU", "MEMORY"]
            .into_iter()
            .map(|name| Resource {
                name: name.into(),
                integer_value: 4096,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}
