//! Service discovery and the mesh with tasks as Docker containers, through the real
//! `berth` binary and engine: the frontend container resolves and calls the backend by
//! its client alias through the node's DNS server and mesh proxy on the Docker bridge's
//! gateway; a rolling deployment, a killed container and a container answering 503 of
//! the backend lose no frontend request. One test: the gateway's DNS port 53 is one per
//! host. Fails, never skips, without the engine.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::{
    called_tasks, demo_image, docker_ids, mesh_stack, running_task_ids, wait_until, Load, Server,
};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_find_and_call_each_other_through_dns_and_the_mesh() -> Result<()> {
    demo_image();
    let gateway: IpAddr = berth_runtime::docker::bridge_gateway()
        .await
        .context("the Docker bridge's gateway")?;
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), gateway, 2)?;
    let server = Server::launch_with(
        dir.path(),
        Some(&stack.path),
        "docker",
        &[
            "--dns-listen".into(),
            format!("{gateway}:53"),
            "--mesh-ip".into(),
            gateway.to_string(),
        ],
    )
    .await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let backends = wait_until("two running backends", SETTLE, || async {
        let ids = running_task_ids(&server.service_tasks("backend").await.ok()?);
        (ids.len() == 2).then_some(ids)
    })
    .await?;
    let front = server.listener_addr("front").await?;
    wait_until("both backends answering the frontend", SETTLE, || async {
        (called_tasks(&front, 20).await.ok()? == backends).then_some(())
    })
    .await?;

    // Inside the frontend container, the container's resolver (berth's DNS, set by
    // Docker from the task's DNS setting) knows the namespace.
    let front_task = server.service_tasks("frontend").await?;
    let arn = front_task[0]["taskArn"].as_str().unwrap();
    let container = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.task-arn={arn}"),
    ]);
    assert_eq!(container.len(), 1);
    let out = std::process::Command::new("docker")
        .args(["exec", &container[0], "berth-whoami", "resolve", "backend"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with(&format!("{gateway} backend")), "{text}");
    let conf = std::process::Command::new("docker")
        .args([
            "exec",
            &container[0],
            "berth-whoami",
            "resolve",
            "backend.internal",
        ])
        .output()?;
    // backend.internal has SRV records only (bridge tasks): no A record.
    assert!(!conf.status.success());

    // Under continuous frontend traffic: a rolling deployment, a killed container and a
    // container answering 503 of the backend.
    let load = Load::start(&front, 4);
    let v2 = dir.path().join("v2.yaml");
    std::fs::write(
        &v2,
        std::fs::read_to_string(&stack.path)?.replace("value: backend v1", "value: backend v2"),
    )?;
    assert!(server.apply_ok(&v2).contains("backend:2"));
    let second = wait_until("the backend deployment", SETTLE, || async {
        let tasks = server.service_tasks("backend").await.ok()?;
        let running: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .collect();
        (running.len() == 2
            && running.iter().all(|t| {
                t["taskDefinitionArn"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(":2")
            }))
        .then(|| running_task_ids(&tasks))
    })
    .await?;
    assert!(second.is_disjoint(&backends));
    let victim = second.iter().next().unwrap().clone();
    let victim_arn = server
        .service_tasks("backend")
        .await?
        .iter()
        .find(|t| t["taskArn"].as_str().unwrap().ends_with(&victim))
        .map(|t| t["taskArn"].as_str().unwrap().to_string())
        .unwrap();
    let ids = docker_ids(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=berth.task-arn={victim_arn}"),
    ]);
    let killed = std::process::Command::new("docker")
        .args(["kill", &ids[0]])
        .output()?;
    assert!(killed.status.success(), "{killed:?}");
    wait_until("a replacement backend", SETTLE, || async {
        let ids = running_task_ids(&server.service_tasks("backend").await.ok()?);
        (ids.len() == 2 && !ids.contains(&victim)).then_some(())
    })
    .await?;
    wait_until("two healthy backends in the mesh", SETTLE, || async {
        let v = server
            .get("/v1/clusters/default/services/backend/endpoints")
            .await
            .ok()?
            .to_string();
        (v.matches("\"state\":\"healthy\"").count() == 2).then_some(())
    })
    .await?;
    let tasks = server.service_tasks("backend").await?;
    let sick = tasks.iter().find(|t| t["lastStatus"] == "RUNNING").unwrap();
    let sick_id = sick["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let port = sick["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap();
    let r = reqwest::get(format!("http://127.0.0.1:{port}/fail?status=503")).await?;
    assert!(r.status().is_success());
    wait_until("the failing backend ejected", SETTLE, || async {
        let eps = server
            .get("/v1/clusters/default/services/backend/endpoints")
            .await
            .ok()?
            .to_string();
        (eps.contains(&sick_id) && eps.contains("\"ejected\":true")).then_some(())
    })
    .await?;
    let report = load.finish().await;
    eprintln!(
        "docker mesh under change: {} ok, {} failed",
        report.ok, report.failed
    );
    assert!(report.ok > 0);
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    Ok(())
}
