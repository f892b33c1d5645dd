//! What the web console needs beside the rest of the `/v1` API:
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/events/stream` | Server-Sent Events: one `change` event per store write ([`events`]; mounted by whoever knows when the server stops, so open streams end then) |
//! | `GET /v1/whoami` | the caller and the actions it may take ([`whoami`]) |
//! | `POST /v1/stack-files/apply[?dryRun=true]` | apply a stack file as written (YAML or JSON text), errors naming the field ([`stack_file`]) |
//! | `GET /v1/clusters/{c}/services/{s}/metrics-history` | the last hour of a service's request rate, p99 latency, 5xx and task counts ([`metrics_history`]; mounted by whoever runs its sampler) |
//!
//! What it does not do: render anything (the console crate does) or keep anything in
//! the store; the metrics history lives in memory and starts empty with the server.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::api_state::ApiState;

pub mod events;
pub mod metrics_history;
pub mod stack_file;
pub mod whoami;

/// The whoami and stack-file routes (the change stream and the metrics history have
/// their own, given the server's stop signal: [`events::routes`],
/// [`metrics_history::routes`]).
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/whoami", get(whoami::whoami))
        .route("/v1/stack-files/apply", post(stack_file::apply_stack_file))
}
