//! `dependsOn`, shared by both runtimes: the order containers start and stop in
//! ([`order`]) and the wait for each container's conditions before it starts ([`wait`]).
//! Neither starts nor stops anything.

mod order;
mod wait;

pub(crate) use order::{start_order, stop_groups};
pub(crate) use wait::wait_for_dependencies;
pub use wait::DEFAULT_DEPENDENCY_TIMEOUT;
