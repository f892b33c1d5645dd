//! Starting a node's task endpoint (`berth_agent::TaskEndpoint`) for `berth server` and
//! `berth agent`: state in the data directory, and, when tasks run on Docker, the
//! link-local address 169.254.170.2 on the Docker bridge so containers reach the node's
//! endpoint on an address the AWS SDKs accept for an `http` `FULL_URI` (as ECS's agent
//! sets up its credential endpoint).
//!
//! What it does not do: serve anything itself (the endpoint does), or remove the address
//! again (it stays on the bridge, harmless, for the next start).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_agent::task_endpoint::LINK_LOCAL_ADDRESS;
use berth_agent::{AgentApi, TaskEndpoint, TaskEndpointConfig};
use berth_runtime::DynRuntime;
use tokio::sync::watch;

/// The Docker bridge the link-local address goes on.
pub const DOCKER_BRIDGE: &str = "docker0";

/// Adds 169.254.170.2/32 to the Docker bridge (an address already there is fine);
/// `None`, with a warning, when that fails (not root, no `ip` command, no bridge).
async fn link_local_on_bridge() -> Option<IpAddr> {
    let address = format!("{LINK_LOCAL_ADDRESS}/32");
    let out = tokio::process::Command::new("ip")
        .args(["addr", "add", &address, "dev", DOCKER_BRIDGE])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => Some(IpAddr::V4(LINK_LOCAL_ADDRESS)),
        // iproute2 says "File exists" or "Address already assigned", by version.
        Ok(o)
            if ["File exists", "already assigned"]
                .iter()
                .any(|m| String::from_utf8_lossy(&o.stderr).contains(m)) =>
        {
            Some(IpAddr::V4(LINK_LOCAL_ADDRESS))
        }
        Ok(o) => {
            tracing::warn!(
                "adding {address} to {DOCKER_BRIDGE} failed ({}); containers get no task endpoint (credentials, metadata)",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            tracing::warn!("running `ip addr add {address} dev {DOCKER_BRIDGE}` failed ({e}); containers get no task endpoint (credentials, metadata)");
            None
        }
    }
}

/// Starts the node's task endpoint for `runtime`'s tasks.
pub async fn start(
    data_dir: &Path,
    api: Arc<dyn AgentApi>,
    runtime: DynRuntime,
    instance_arn: String,
    stop: watch::Receiver<bool>,
) -> Result<Arc<TaskEndpoint>> {
    let docker_address = if runtime.kind() == "docker" {
        link_local_on_bridge().await
    } else {
        None
    };
    TaskEndpoint::start(
        TaskEndpointConfig {
            state_dir: data_dir.to_path_buf(),
            docker_address,
        },
        api,
        runtime,
        instance_arn,
        stop,
    )
    .await
    .context("starting the task endpoint (credentials and metadata for tasks)")
}
