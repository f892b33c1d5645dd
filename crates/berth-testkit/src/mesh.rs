//! The two-service stack the discovery and mesh tests run: `backend` in the `internal`
//! namespace with the client alias `backend:<port>`, and `frontend`, a client of the
//! namespace behind a load balancer, calling `http://backend:<port>/` on every request.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::Result;

/// A written mesh stack.
pub struct MeshStack {
    pub path: PathBuf,
    /// The address the test's server serves its mesh proxy (and DNS) on.
    pub mesh_ip: IpAddr,
    /// The client alias's port (free on `mesh_ip` when the stack was written).
    pub alias_port: u16,
}

/// A loopback address no other server of this test process uses (`127.83.x.y`), so
/// servers of concurrent tests each bind their mesh ports on an address of their own.
pub fn unique_loopback() -> IpAddr {
    static NEXT: AtomicU8 = AtomicU8::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    IpAddr::V4(Ipv4Addr::new(127, 83, (std::process::id() % 250) as u8, n))
}

/// Writes the mesh stack into `dir` for `backends` backend tasks, with the alias port
/// free on `mesh_ip`. The backend's environment holds `value: backend v1`, which a
/// test replaces to roll out a new revision.
pub fn mesh_stack(dir: &Path, mesh_ip: IpAddr, backends: u32) -> Result<MeshStack> {
    let alias_port = std::net::TcpListener::bind((mesh_ip, 0))?
        .local_addr()?
        .port();
    let text = format!(
        r#"namespaces:
  - name: internal
taskDefinitions:
  - family: backend
    networkMode: bridge
    containerDefinitions:
      - name: app
        image: berth-whoami:latest
        entryPoint: ["berth-whoami"]
        portMappings:
          - containerPort: 8080
            hostPort: 0
            name: http
            appProtocol: http
        environment:
          - name: VERSION
            value: backend v1
        stopTimeout: 10
  - family: frontend
    networkMode: bridge
    containerDefinitions:
      - name: app
        image: berth-whoami:latest
        entryPoint: ["berth-whoami"]
        portMappings:
          - containerPort: 8080
            hostPort: 0
            name: http
        environment:
          - name: WHOAMI_CALL_URL
            value: http://backend:{alias_port}/
        stopTimeout: 10
targetGroups:
  - targetGroupName: front
    protocol: HTTP
    port: 8080
    healthCheckPath: /health
    healthCheckIntervalSeconds: 5
    healthCheckTimeoutSeconds: 4
    healthyThresholdCount: 2
    unhealthyThresholdCount: 3
    attributes:
      deregistration_delay.timeout_seconds: "10"
loadBalancers:
  - loadBalancerName: front
    type: application
    listeners:
      - port: 0
        protocol: HTTP
        defaultActions:
          - type: forward
            targetGroupName: front
services:
  - serviceName: backend
    taskDefinition: backend
    desiredCount: {backends}
    deploymentConfiguration:
      maximumPercent: 200
      minimumHealthyPercent: 100
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
      services:
        - portName: http
          discoveryName: backend
          clientAliases:
            - port: {alias_port}
              dnsName: backend
  - serviceName: frontend
    taskDefinition: frontend
    desiredCount: 1
    serviceConnectConfiguration:
      enabled: true
      namespace: internal
    loadBalancers:
      - targetGroupName: front
        containerName: app
        containerPort: 8080
"#
    );
    let path = dir.join("mesh.yaml");
    std::fs::write(&path, text)?;
    Ok(MeshStack {
        path,
        mesh_ip,
        alias_port,
    })
}

/// Calls the frontend at `front` `n` times (each call crosses the mesh); returns the
/// backend tasks that answered (`x-berth-called-task`). Fails on any non-2xx answer.
pub async fn called_tasks(front: &str, n: usize) -> Result<std::collections::BTreeSet<String>> {
    let client = reqwest::Client::new();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let r = client.get(format!("http://{front}/")).send().await?;
        let status = r.status();
        let called = r
            .headers()
            .get("x-berth-called-task")
            .map(|v| v.to_str().unwrap_or("").to_string());
        let body = r.text().await?;
        anyhow::ensure!(status.is_success(), "{status}: {body}");
        seen.insert(called.ok_or_else(|| anyhow::anyhow!("no x-berth-called-task: {body}"))?);
    }
    Ok(seen)
}

/// The ids of the RUNNING tasks among `tasks` (task records as the API returns them).
pub fn running_task_ids(tasks: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .filter_map(|t| {
            t["taskArn"]
                .as_str()?
                .rsplit('/')
                .next()
                .map(str::to_string)
        })
        .collect()
}
