//! berth-agent: runs the tasks placed on one container instance.
//!
//! The agent registers its instance (CPU, memory, address), then converges: tasks placed
//! on it that should run are started through its runtime; tasks asked to stop are
//! signalled once the control plane moved them to STOPPING (after their targets drained);
//! what the runtime reports (started, exited, health, exit codes) goes back to the control
//! plane as task state changes. On start it adopts what the runtime already runs, so a
//! restart neither loses nor duplicates tasks; whatever the runtime runs that no task
//! owns is stopped and removed; tasks another node that is gone left on this machine are
//! reported (and removed when asked). It also answers for its tasks' logs and resource use, and runs commands in their
//! containers (exec).
//!
//! What it does not do: decide what runs where (the control plane's scheduler does),
//! touch load balancers, or read the store. It knows the control plane only through
//! [`AgentApi`], whose messages are the contract types of `berth_model::agent`; it
//! depends on neither berth-control nor berth-store.
//!
//! Layout:
//! - [`api`]: [`AgentApi`], what the agent needs from the control plane, and
//!   [`AgentError`].
//! - [`agent`]: [`Agent`], the convergence loop.
//! - [`report`]: a runtime's task state turned into the contract's task state changes.
//! - [`queries`]: [`TaskQueries`], logs, resource use and exec for the node's tasks.
//! - [`orphans`]: at start, tasks berth started here for a node that is gone: reported,
//!   counted, and removed when asked.
//! - [`task_endpoint`]: [`TaskEndpoint`], what a task reads from its node: its role's
//!   credentials and its metadata (ECS's task metadata v4).

pub mod agent;
pub mod api;
pub mod orphans;
pub mod queries;
pub mod report;
pub mod task_endpoint;

pub use agent::{
    advertised_mesh_inbound, Agent, AgentConfig, ADDRESS_ATTRIBUTE, HEARTBEAT_INTERVAL,
    MESH_INBOUND_ATTRIBUTE,
};
pub use api::{AgentApi, AgentError, Result};
pub use orphans::{check_orphans, OrphanReport, OrphanSettings};
pub use queries::TaskQueries;
pub use task_endpoint::{TaskEndpoint, TaskEndpointConfig};

#[cfg(test)]
mod tests;
