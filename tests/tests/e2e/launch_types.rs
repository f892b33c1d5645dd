//! Launch types and capacity providers through the real binary: a server (its own
//! container instance is EC2 capacity) and a `berth agent --managed-capacity`. An EC2
//! service's tasks run on the server only; a service with the capacity provider strategy
//! `FARGATE` (base 1, weight 1) + `FARGATE_SPOT` (weight 1) runs its three tasks on the
//! managed agent only, split 2 / 1 between the providers, and the API shows them with
//! launchType FARGATE and no containerInstanceArn. `berth apply` refuses launchType
//! FARGATE with a task definition that does not require FARGATE, in ECS's words, and
//! changes nothing.
//!
//! Tasks run as local processes (`sleep`); nothing needs Docker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::{bin, processes_of_data_dir, wait_until, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

const STACK: &str = r#"taskDefinitions:
  - family: ec2-sleeper
    networkMode: bridge
    containerDefinitions:
      - name: main
        image: sleeper
        entryPoint: ["sleep", "600"]
        cpu: 64
        memoryReservation: 16
  - family: fargate-sleeper
    networkMode: awsvpc
    requiresCompatibilities: [FARGATE]
    cpu: "256"
    memory: "512"
    containerDefinitions:
      - name: main
        image: sleeper
        entryPoint: ["sleep", "600"]
services:
  - serviceName: on-ec2
    taskDefinition: ec2-sleeper
    desiredCount: 2
  - serviceName: on-fargate
    taskDefinition: fargate-sleeper
    desiredCount: 3
    capacityProviderStrategy:
      - capacityProvider: FARGATE
        base: 1
        weight: 1
      - capacityProvider: FARGATE_SPOT
        weight: 1
"#;

/// `berth agent --managed-capacity` joined to `server`, killed with its tasks on drop.
struct ManagedAgent {
    data_dir: PathBuf,
    child: Child,
}

impl ManagedAgent {
    async fn start(server: &Server, data_dir: &Path) -> Result<ManagedAgent> {
        let (url, token) = berth_testkit::agent::node_link(server)?;
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::File::create(data_dir.join("agent.log"))?;
        let child = Command::new(bin("berth"))
            .args(["agent", "--server", &url, "--runtime", "process"])
            .arg("--managed-capacity")
            .env("BERTH_DATA_DIR", data_dir)
            .env("BERTH_JOIN_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawning berth agent")?;
        let id_file = data_dir.join("instance-id");
        wait_until(
            "the agent to write its instance id",
            Duration::from_secs(30),
            || {
                let f = id_file.clone();
                async move { std::fs::read_to_string(f).ok() }
            },
        )
        .await?;
        Ok(ManagedAgent {
            data_dir: data_dir.to_path_buf(),
            child,
        })
    }

    fn instance_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("instance-id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("agent.log")).unwrap_or_default()
    }
}

impl Drop for ManagedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in processes_of_data_dir(&self.data_dir, None) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// The `sleep` task processes among those of `data_dir` (not their shims).
fn sleepers(data_dir: &Path) -> usize {
    processes_of_data_dir(data_dir, None)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| c.split(|b| *b == 0).next() == Some(b"sleep".as_slice()))
                .unwrap_or(false)
        })
        .count()
}

async fn running(server: &Server, service: &str) -> Vec<Value> {
    server
        .service_tasks(service)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fargate_tasks_run_only_on_managed_capacity_split_by_the_strategy() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server_dir = dir.path().join("server");
    let server = Server::launch_with(
        &server_dir,
        None,
        "process",
        &["--node-listen".into(), "127.0.0.1:0".into()],
    )
    .await?;
    let agent = ManagedAgent::start(&server, &dir.path().join("agent")).await?;
    let agent_id = agent.instance_id();
    wait_until("the managed agent's instance", SETTLE, || async {
        let all = server.get("/v1/container-instances").await.ok()?;
        all.as_array()?
            .iter()
            .find(|i| i["ec2InstanceId"] == agent_id.as_str() && i["agentConnected"] == true)
            .filter(|i| i["attributes"]["berth.capacity"] == "managed")
            .map(|_| ())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;

    let stack = dir.path().join("stack.yaml");
    std::fs::write(&stack, STACK)?;
    server.apply_ok(&stack);
    let fargate = wait_until("3 FARGATE and 2 EC2 tasks RUNNING", SETTLE, || async {
        let fargate = running(&server, "on-fargate").await;
        (fargate.len() == 3 && running(&server, "on-ec2").await.len() == 2).then_some(fargate)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nserver log:\n{}", server.log()))?;

    // Where they run: the FARGATE tasks on the managed agent, the EC2 ones on the server.
    assert_eq!(sleepers(&agent.data_dir), 3, "FARGATE tasks on the agent");
    assert_eq!(sleepers(&server_dir), 2, "EC2 tasks on the server");
    let mut providers: Vec<&str> = fargate
        .iter()
        .map(|t| t["capacityProviderName"].as_str().unwrap_or("none"))
        .collect();
    providers.sort();
    assert_eq!(
        providers,
        ["FARGATE", "FARGATE", "FARGATE_SPOT"],
        "{fargate:?}"
    );
    for t in &fargate {
        assert_eq!(t["launchType"], "FARGATE", "{t}");
        assert!(
            t.get("containerInstanceArn").is_none(),
            "hidden as in ECS: {t}"
        );
    }
    for t in running(&server, "on-ec2").await {
        assert_eq!(t["launchType"], "EC2", "{t}");
        let arn = t["containerInstanceArn"].as_str().unwrap_or("");
        assert!(!arn.is_empty() && !arn.ends_with(&agent_id), "{t}");
    }

    // launchType FARGATE with a definition that does not require FARGATE: refused.
    let bad = STACK.replace(
        "  - serviceName: on-ec2\n    taskDefinition: ec2-sleeper\n",
        "  - serviceName: on-ec2\n    taskDefinition: ec2-sleeper\n    launchType: FARGATE\n",
    );
    assert_ne!(bad, STACK);
    let bad_path = dir.path().join("bad.yaml");
    std::fs::write(&bad_path, bad)?;
    let out = server.cli(&["apply", "-f", &bad_path.to_string_lossy()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("services[0].launchType")
            && err.contains("Task definition does not support launch_type FARGATE"),
        "{err}"
    );
    let svc = server.get("/v1/clusters/default/services/on-ec2").await?;
    assert_eq!(
        svc["launchType"], "EC2",
        "the refused apply changed nothing"
    );
    Ok(())
}
