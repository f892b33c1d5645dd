//! berth-runtime's integration tests: the process runtime and the Docker runtime against
//! real processes and the real engine (the Docker tests fail, never skip, without one).
//! One test binary (each file below is a module) so that the runtime and its
//! dependencies are linked once, not once per file.

mod support;

mod docker;
mod docker_exec;
mod docker_exec_session;
mod docker_logs;
mod docker_orphans;
mod docker_settings;
mod docker_volumes;
mod process;
mod process_crash_adopt;
mod process_exec;
mod process_exec_session;
mod process_logs;
mod process_orphans;
mod process_volumes;
