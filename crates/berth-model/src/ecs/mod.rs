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
//! - [`instance_attributes`]: the attributes berth sets on instances; custom attributes' rules.
//! - [`cluster_query`]: the cluster query language of `memberOf` placement constraints.
//! - [`task_definition`]: TaskDefinition and its task-level members; task size parsing.
//! - [`container`]: ContainerDefinition and its members.
//! - [`log_configuration`]: which log drivers berth honours; awslogs stream names.
//! - [`network_mode`]: the task's network mode, which container members depend on.
//! - [`tags`]: resource tags and their rules.
//! - [`task`]: Task, Container, statuses.
//! - [`service`]: Service, its deployment configuration, deployments and events.
//! - [`placement`]: validation of placement strategies and constraints.
//! - [`secrets`]: what a container secret's `valueFrom` names; secret names; the
//!   registration checks of secrets.
//! - [`capacity_provider`]: a service's launch type and capacity provider strategy.
//! - [`service_connect`]: the service's `serviceConnectConfiguration` (the mesh).
//! - [`field_support`]: the table of members not applied or refused, and the warnings.
//! - `defaults`: ECS's defaults as named constants, and serde helpers.
//!
//! The modules import one way: `cluster_query`, `instance_attributes`, `defaults`, `field_support`, `network_mode`
//! and `tags` import no other module here; `container` imports those; `log_configuration` imports `container`; `placement` imports
//! `cluster_query` and the two constraint types; `task_definition` imports
//! `container`, `log_configuration` and `secrets` (which imports `task_definition`); `service_connect` imports `container`; `task` and `service` import
//! what they name; `capacity_provider` imports `service` and `task_definition`.

pub mod capacity_provider;
pub mod cluster;
pub mod cluster_query;
pub mod container;
mod container_validation;
mod defaults;
pub mod field_support;
pub mod instance_attributes;
pub mod log_configuration;
pub mod network_mode;
pub mod placement;
pub mod secrets;
pub mod service;
pub mod service_connect;
pub mod tags;
pub mod task;
pub mod task_definition;

pub use cluster::*;
pub use container::*;
pub use defaults::*;
pub use field_support::{FieldNotApplied, Support};
pub use network_mode::NetworkMode;
pub use placement::{PlacementConstraint, PlacementStrategy, TaskDefinitionPlacementConstraint};
pub use service::*;
pub use service_connect::*;
pub use tags::*;
pub use task::*;
pub use task_definition::*;

#[cfg(test)]
mod tests;
