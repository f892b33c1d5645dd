//! berth's resource model: the ECS, ELBv2 and Application Auto Scaling resources berth manages, their defaults
//! (equal to the ECS/ALB defaults unless a reason is written beside the constant) and
//! their validation; and the contract between the planes: the data-plane configuration
//! and target status, and the messages between the control plane and the node agents.
//!
//! This crate is pure data: serde only, no I/O and no async runtime. JSON is camelCase as
//! in the ECS and ELBv2 APIs. Identifiers are ARN-shaped (see [`arn`]).
//!
//! Layout:
//! - [`agent`]: control plane <-> agent messages: task state changes, task usage.
//! - [`autoscaling`]: Application Auto Scaling: scalable targets, scaling policies,
//!   scheduled actions, scaling activities.
//! - [`arn`]: building and parsing berth ARNs.
//! - [`dataplane`]: the proxy configuration the control plane publishes (load balancers,
//!   target groups and the mesh's client-alias listeners) and the target statuses and
//!   refusals the data plane reports.
//! - [`discovery`]: the DNS names and records the control plane publishes to a node's
//!   DNS server.
//! - [`error`]: [`ValidationError`], which names the offending field and what is allowed.
//! - [`exec_stream`]: the frames of an interactive exec session and their binary
//!   encoding (stdin, stdout, stderr, resize, exit code).
//! - [`ecs`]: Cluster, ContainerInstance, TaskDefinition, Task, Service.
//! - [`elb`]: LoadBalancer, Listener, Rule, TargetGroup, Target and target health.
//! - [`elb_attributes`]: load balancer and target group attributes, parsed and typed.
//! - [`mesh_identity`]: the mesh's SPIFFE identities, service certificates, trusted CAs
//!   and allow lists.
//! - [`node_link`]: how an agent on another machine joins a cluster and the change
//!   notices its control plane streams to it.
//! - [`task_secrets`]: a task's secret values as the control plane hands them to its
//!   agent, or why the task cannot start.
//! - [`servicediscovery`]: Cloud Map namespaces, discovery service ARNs, DNS name
//!   rules, and the checks between services' discovery configurations.
//! - [`stack`]: the YAML stack file that `berth apply` reads.

pub mod agent;
pub mod arn;
pub mod autoscaling;
pub mod dataplane;
pub mod discovery;
pub mod ecs;
pub mod elb;
pub mod elb_attributes;
pub mod elb_nodes;
pub mod error;
pub mod exec_stream;
pub mod mesh_identity;
pub mod node_link;
pub mod servicediscovery;
pub mod stack;
pub mod task_secrets;
pub mod time;

pub use error::ValidationError;
