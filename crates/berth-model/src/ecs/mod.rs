//! ECS resources: Cluster, ContainerInstance, TaskDefinition, Task and Service, with
//! field names and enum values spelled as botocore's ECS model spells them.
//!
//! Fields a user writes are validated by the `validate` methods; fields berth fills in
//! (ARNs, revisions, statuses, counts) default to empty and are ignored on input. Every
//! member of RegisterTaskDefinition, ContainerDefinition and CreateService is accepted:
//! [`field_support`] says which berth applies, which it stores without applying (they
//! come back from `not_applied` as warnings) and which it refuses, and why.
//! No I/O here: what Docker does with a container definition is berth-runtime's.
//!
//! Layout:
//! - [`cluster`]: Cluster, ContainerInstance.
//! - [`task_definition`]: TaskDefinition and its task-level members; task size parsing.
//! - [`container`]: ContainerDefinition and its members.
//! - [`task`]: Task, Container, statuses.
//! - [`service`]: Service, its deployment configuration, deployments and events.
//! - [`field_support`]: the table of members not applied or refused, and the warnings.

pub mod cluster;
pub mod container;
pub mod field_support;
pub mod service;
pub mod task;
pub mod task_definition;

pub use cluster::*;
pub use container::*;
pub use field_support::{FieldNotApplied, Support};
pub use service::*;
pub use task::*;
pub use task_definition::*;

// ---- defaults (ECS's own unless a reason is written) ----

/// `stopTimeout` when a container does not set one (ECS: 30 s).
pub const DEFAULT_STOP_TIMEOUT_SECONDS: u32 = 30;
/// Container health check defaults and ranges (ECS task definition parameters).
pub const DEFAULT_HEALTH_INTERVAL: u32 = 30;
pub const DEFAULT_HEALTH_TIMEOUT: u32 = 5;
pub const DEFAULT_HEALTH_RETRIES: u32 = 3;
pub const DEFAULT_MAXIMUM_PERCENT: u32 = 200;
pub const DEFAULT_MINIMUM_HEALTHY_PERCENT: u32 = 100;
/// Ports a task definition may not claim as host ports (ECS reserves them on instances).
pub const RESERVED_PORTS: &[u32] = &[22, 2375, 2376, 51678, 51679, 51680];

/// Reads `null` as the empty value, as ECS does for lists and maps: task definitions
/// copied from the ECS console write `"mountPoints": null` and the like.
fn null_as_empty<'de, D, T>(de: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    Ok(<Option<T> as serde::Deserialize>::deserialize(de)?.unwrap_or_default())
}

fn d_true() -> bool {
    true
}

#[cfg(test)]
mod tests;
