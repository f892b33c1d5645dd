//! berth's end-to-end tests: the real `berth` binary (server, agents, CLI) driven as a
//! user would, with tasks on the process runtime and on Docker, a real etcd, Prometheus,
//! Chromium and the AWS CLI. One test binary (each file below is a module) so that a
//! build links the test kit and its dependencies once, not once per file.
//! `scaling_speed.rs` stays a binary of its own: its timing bounds hold only when no
//! other end-to-end test shares the machine with it.

#[path = "../../aws/fixtures.rs"]
mod fixtures;
#[path = "../../aws/venv.rs"]
mod venv;
#[path = "../../common/webdriver.rs"]
mod webdriver;

mod agents;
mod agents_mesh_netns;
mod agents_netns;
mod autoscaling;
mod autoscaling_prometheus;
mod aws_boto3;
mod aws_cli;
mod aws_elbv2_cli;
mod berth_copies;
mod compose;
mod console;
mod crash_moments;
mod dataplane_restart;
mod dataplane_upgrade;
mod dns_survives_restart;
mod docker;
mod down;
mod drain;
mod ecs_corpus;
mod ecs_fields;
mod ecs_services_corpus;
mod etcd;
mod exec;
mod full_disk;
mod iam;
mod launch_types;
mod mesh;
mod mesh_docker;
mod orphans;
mod placement;
mod redeploy;
mod secrets;
mod spine;
mod task_roles;
