//! End-to-end tests with tasks as Docker containers, through the real `berth` binary and
//! the real engine. The demo image is built here (`FROM scratch` plus a static binary);
//! nothing is pulled. These tests fail, never skip, when the engine does not answer.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_runtime::docker::{DockerRuntimeConfig, LABEL_MANAGED};
use berth_testkit::{demo_image, docker_ids, quickstart, wait_until, Server};
use nix::sys::signal::Signal;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

async fn docker_server(stack: Option<&Path>) -> Result<Server> {
    demo_image();
    Server::start_with("docker", stack).await
}

async fn answering_tasks(addr: &str, requests: usize) -> Result<BTreeSet<String>> {
    let client = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    for _ in 0..requests {
        let r = client.get(format!("http://{addr}/")).send().await?;
        anyhow::ensure!(r.status().is_success(), "status {}", r.status());
        seen.insert(r.headers()["x-berth-task"].to_str()?.to_string());
    }
    Ok(seen)
}

fn ids(arns: &[String]) -> BTreeSet<String> {
    arns.iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_runs_as_three_containers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = docker_server(Some(&quickstart(dir.path(), 3))).await?;
    let arns = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let addr = server.listener_addr("web").await?;
    assert_eq!(answering_tasks(&addr, 30).await?, ids(&arns));
    assert_eq!(server.containers().len(), 3);
    let inst = server.get("/v1/container-instances").await?;
    assert_eq!(inst[0]["runtime"], "docker");
    // Every task's container is labelled with its task.
    for t in server.service_tasks("whoami").await? {
        let arn = t["taskArn"].as_str().unwrap();
        let found = docker_ids(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=berth.task-arn={arn}"),
        ]);
        assert_eq!(found.len(), 1, "container of {arn}");
    }
    // Settled, the reconcilers pass about once a second with containers too.
    server.assert_settled_passes(Duration::from_secs(3)).await?;
    Ok(())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_awsvpc_network_modes_serve_through_the_listener() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let host_port = free_port();
    let stack = format!(
        r#"
taskDefinitions:
  - family: hostmode
    networkMode: host
    containerDefinitions:
      - name: web
        image: berth-whoami:latest
        portMappings: [{{containerPort: {host_port}, hostPort: {host_port}}}]
  - family: vpcmode
    networkMode: awsvpc
    containerDefinitions:
      - name: web
        image: berth-whoami:latest
        portMappings: [{{containerPort: 8080}}]
targetGroups:
  - {{targetGroupName: hostmode, port: {host_port}, healthCheckPath: /health, healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, healthCheckTimeoutSeconds: 4, unhealthyThresholdCount: 3}}
  - {{targetGroupName: vpcmode, targetType: ip, port: 8080, healthCheckPath: /health, healthCheckIntervalSeconds: 5, healthyThresholdCount: 2, healthCheckTimeoutSeconds: 4, unhealthyThresholdCount: 3}}
loadBalancers:
  - loadBalancerName: hostlb
    listeners: [{{port: 0, protocol: HTTP, defaultActions: [{{type: forward, targetGroupName: hostmode}}]}}]
  - loadBalancerName: vpclb
    listeners: [{{port: 0, protocol: HTTP, defaultActions: [{{type: forward, targetGroupName: vpcmode}}]}}]
services:
  - serviceName: hostmode
    taskDefinition: hostmode
    desiredCount: 1
    loadBalancers: [{{targetGroupName: hostmode, containerName: web, containerPort: {host_port}}}]
  - serviceName: vpcmode
    taskDefinition: vpcmode
    desiredCount: 2
    loadBalancers: [{{targetGroupName: vpcmode, containerName: web, containerPort: 8080}}]
"#
    );
    let p = dir.path().join("modes.yaml");
    std::fs::write(&p, stack)?;
    let server = docker_server(Some(&p)).await?;

    let host_tasks = server
        .wait_healthy("hostmode", "hostmode", 1, SETTLE)
        .await?;
    let addr = server.listener_addr("hostlb").await?;
    assert_eq!(answering_tasks(&addr, 5).await?, ids(&host_tasks));
    let targets = server.targets("hostmode").await?;
    assert_eq!(
        targets[0]["port"],
        u64::from(host_port),
        "host mode: the container port on the host"
    );

    let vpc_tasks = server.wait_healthy("vpcmode", "vpcmode", 2, SETTLE).await?;
    let addr = server.listener_addr("vpclb").await?;
    assert_eq!(answering_tasks(&addr, 10).await?, ids(&vpc_tasks));
    // awsvpc: each task has its own IP; the target is that IP and the container port.
    let targets = server.targets("vpcmode").await?;
    let ips: BTreeSet<&str> = targets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ips.len(), 2, "{targets:?}");
    for t in &targets {
        assert_eq!(t["port"], 8080);
        assert_ne!(t["id"], "127.0.0.1");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_adopts_containers_and_removes_unowned_ones() -> Result<()> {
    demo_image();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = quickstart(dir.path(), 3);
    let mut server = Server::launch(&data, Some(&stack), "docker").await?;
    let before = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let containers_before: BTreeSet<String> = server.containers().into_iter().collect();
    assert_eq!(containers_before.len(), 3);
    server.signal_and_wait(Signal::SIGKILL)?;

    // A container with berth's labels whose task the store does not know: it must go.
    let template = containers_before.iter().next().unwrap();
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Labels}}", template])
        .output()?;
    let mut labels: serde_json::Map<String, Value> = serde_json::from_slice(&out.stdout)?;
    let fake_arn = "arn:berth:ecs:local:000000000000:task/default/00000000000000000000000000000bad";
    let real_arn = labels["berth.task-arn"].as_str().unwrap().to_string();
    labels.insert("berth.task-arn".into(), fake_arn.into());
    if let Some(spec) = labels
        .get("berth.spec")
        .and_then(|s| s.as_str())
        .map(str::to_string)
    {
        labels.insert(
            "berth.spec".into(),
            spec.replace(&real_arn, fake_arn).into(),
        );
    }
    let mut cmd = std::process::Command::new("docker");
    cmd.args([
        "run",
        "-d",
        "--name",
        &format!("berth-orphan-{}", std::process::id()),
    ]);
    for (k, v) in &labels {
        cmd.arg("--label")
            .arg(format!("{k}={}", v.as_str().unwrap()));
    }
    let out = cmd.arg("berth-whoami:latest").output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let orphan = String::from_utf8(out.stdout)?.trim().to_string();

    let server = Server::launch(&data, None, "docker").await?;
    let after = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    assert_eq!(
        after.iter().collect::<BTreeSet<_>>(),
        before.iter().collect::<BTreeSet<_>>(),
        "the same tasks were adopted"
    );
    wait_until("the unowned container to be removed", SETTLE, || async {
        let all = docker_ids(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("id={orphan}"),
        ]);
        all.is_empty().then_some(())
    })
    .await?;
    let now: BTreeSet<String> = server.containers().into_iter().collect();
    assert_eq!(now, containers_before, "no container duplicated, none lost");
    let addr = server.listener_addr("web").await?;
    assert_eq!(answering_tasks(&addr, 30).await?, ids(&after));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_memory_and_network_modes_leave_nothing_behind() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = docker_server(None).await?;
    // Networks berth manages, but for the one network awsvpc tasks share: other tests
    // running at the same time may create that one (or networks of their own).
    let shared = DockerRuntimeConfig::default().awsvpc_network;
    let managed_networks = || {
        docker_ids(&[
            "network",
            "ls",
            "--filter",
            &format!("label={LABEL_MANAGED}"),
            "--format",
            "{{.Name}}",
        ])
        .into_iter()
        .filter(|n| *n != shared)
        .collect::<Vec<_>>()
    };
    let networks_before = managed_networks();

    // A missing image: the task fails to start, saying so, and no container is left.
    let stack = quickstart(dir.path(), 1);
    let text = std::fs::read_to_string(&stack)?
        .replace("image: berth-whoami:latest", "image: berth-no-such-image:1");
    let p = dir.path().join("missing.yaml");
    std::fs::write(&p, text)?;
    server.apply_ok(&p);
    let failed = server.first_stopped("whoami", SETTLE).await?;
    assert_eq!(failed["stopCode"], "TaskFailedToStart");
    let reason = failed["stoppedReason"].as_str().unwrap();
    assert!(
        reason.contains("berth-no-such-image:1") && reason.contains("not present locally"),
        "{reason}"
    );
    assert!(
        server.containers().is_empty(),
        "a failed start left containers"
    );

    // A bad memory value and an unknown network mode are rejected before anything runs.
    let text = std::fs::read_to_string(&stack)?;
    let cases = [
        (
            text.replace(
                "memoryReservation: 64",
                "memoryReservation: 64\n        memory: 2",
            ),
            "taskDefinitions[0].containerDefinitions[0].memory",
        ),
        (
            text.replace("networkMode: bridge", "networkMode: overlay"),
            "taskDefinitions[0].networkMode",
        ),
    ];
    for (i, (t, field)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&p, t)?;
        let out = server.cli(&["apply", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{err}");
        assert!(err.contains(field), "{field}: {err}");
    }
    assert!(server.containers().is_empty());
    assert_eq!(managed_networks(), networks_before, "no network was left");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_kill_is_recorded_and_logs_stream_from_containers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = quickstart(dir.path(), 1);
    let server = docker_server(Some(&stack)).await?;
    let arns = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    let id = arns[0].rsplit('/').next().unwrap().to_string();
    let out = server.cli(&["logs", &id, "--container", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("listening"));

    // A second service whose container allocates more than its hard limit.
    let text = std::fs::read_to_string(&stack)?
        .replace("family: whoami", "family: hungry")
        .replace("taskDefinition: whoami", "taskDefinition: hungry")
        .replace("serviceName: whoami", "serviceName: hungry")
        .replace(
            "entryPoint: [\"berth-whoami\"]",
            "entryPoint: [\"berth-whoami\", \"--alloc-mb\", \"64\"]\n        memory: 16",
        )
        .replace("memoryReservation: 64", "memoryReservation: 8")
        .replace("    loadBalancers:\n      - targetGroupName: whoami\n        containerName: web\n        containerPort: 8080\n", "");
    let p = dir.path().join("hungry.yaml");
    std::fs::write(&p, text)?;
    server.apply_ok(&p);
    let dead = server.first_stopped("hungry", SETTLE).await?;
    assert_eq!(dead["stopCode"], "EssentialContainerExited", "{dead}");
    assert_eq!(
        dead["containers"][0]["reason"], "OutOfMemoryError: Container killed due to memory usage",
        "{dead}"
    );
    assert_eq!(dead["containers"][0]["exitCode"], 137);
    Ok(())
}
