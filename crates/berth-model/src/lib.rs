//! berth's resource model: the ECS and ELBv2 resources berth manages, their defaults
//! (equal to the ECS/ALB defaults unless a reason is written beside the constant) and
//! their validation.
//!
//! This crate is pure data: serde only, no I/O and no async runtime. JSON is camelCase as
//! in the ECS and ELBv2 APIs. Identifiers are ARN-shaped (see [`arn`]).
//!
//! Layout:
//! - [`arn`]: building and parsing berth ARNs.
//! - [`error`]: [`ValidationError`], which names the offending field and what is allowed.
//! - [`ecs`]: Cluster, ContainerInstance, TaskDefinition, Task, Service.
//! - [`elb`]: LoadBalancer, Listener, Rule, TargetGroup, Target and target health.
//! - [`elb_attributes`]: load balancer and target group attributes, parsed and typed.
//! - [`stack`]: the YAML stack file that `berth apply` reads.

pub mod arn;
pub mod ecs;
pub mod elb;
pub mod elb_attributes;
pub mod error;
pub mod stack;
pub mod time;

pub use error::ValidationError;
