//! The `berth` binary's integration tests: configuration files and the autoscaling CLI.
//! One test binary (each file below is a module).

mod autoscaling_cli;
mod configs;
