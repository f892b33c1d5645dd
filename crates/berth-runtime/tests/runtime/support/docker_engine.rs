//! Helpers for the tests against the real Docker engine: a runtime with the demo image
//! built once per test binary, and the removal of a task's containers however a test ends.

use std::sync::Arc;
use std::time::Duration;

use berth_runtime::docker::{self, DockerRuntime, DockerRuntimeConfig, LABEL_TASK_ARN};
use tokio::sync::OnceCell;

/// The demo app's image, built by the tests (`FROM scratch` plus the static binary).
pub const IMAGE: &str = "berth-whoami:test";

/// A runtime that adopts only the containers of `cluster`: tests run side by side on one
/// engine, each in its own cluster, as separate berth nodes would. The demo image is
/// built the first time.
pub async fn runtime(cluster: &str) -> Arc<DockerRuntime> {
    static IMAGE_BUILT: OnceCell<()> = OnceCell::const_new();
    let rt = DockerRuntime::connect(DockerRuntimeConfig {
        resync_interval: Duration::from_secs(2),
        cluster: Some(cluster.to_string()),
        ..Default::default()
    })
    .await
    .expect("the Docker engine must be reachable for these tests");
    IMAGE_BUILT
        .get_or_init(|| async {
            let bin = tokio::task::spawn_blocking(berth_testkit::static_whoami)
                .await
                .unwrap();
            docker::build_image_from_binary(rt.docker(), IMAGE, &bin)
                .await
                .expect("build the demo image");
        })
        .await;
    rt
}

/// Runs the docker CLI.
pub fn docker_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI")
}

/// The ids of the containers of `task_arn`, running or not.
pub fn containers_of(task_arn: &str) -> Vec<String> {
    let out = docker_cli(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_TASK_ARN}={task_arn}"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Removes a task's containers however the test ends.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for id in containers_of(&self.0) {
            let _ = docker_cli(&["rm", "-f", &id]);
        }
    }
}
