//! What every API route reads: the store, the data plane (to check certificates), the
//! nodes (logs, exec), the bound listener addresses and the exec counter. Its own module,
//! so the route modules (`api`, `instance_state`) share it without importing each other.

use std::sync::Arc;

use crate::data_plane::DataPlane;
use crate::db::Db;
use crate::proxy_feed::BoundListeners;
use crate::task_exec::ExecCounter;
use crate::task_nodes::TaskNodes;

#[derive(Clone)]
pub struct ApiState {
    pub db: Db,
    /// Loads listener certificates for apply.
    pub data_plane: Arc<dyn DataPlane>,
    /// Answers for the tasks' logs.
    pub nodes: Arc<dyn TaskNodes>,
    pub bound: BoundListeners,
    /// Counts the exec endpoint's outcomes.
    pub exec_commands: ExecCounter,
}
