//! berth-proxy's integration tests: listeners, rules, balancing, the fast path, edge
//! checks, limits, TLS, TCP and the mesh, each through real sockets. One test binary
//! (each file below is a module) so that the proxy and its dependencies are linked once,
//! not once per file.

mod common;

mod balancing;
mod early_answers;
mod edge;
mod fast_path;
mod forward;
mod h2_client;
mod h2_upstream;
mod idle_parking;
mod large_bodies;
mod limits;
mod mesh;
mod mesh_tls;
mod rules;
mod status_changes;
mod tls_and_tcp;
mod websocket_fast;
mod workers;
