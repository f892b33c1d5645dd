//! End-to-end tests of the spine through the real `berth` binary: the quickstart serves
//! traffic from 3 tasks, killed tasks are replaced, scaling follows `berth apply`, a
//! restarted server adopts its tasks, and bad stack files change nothing.
//!
//! The server runs tasks as local processes (the embedded default); the API and every
//! listener bind port 0 on 127.0.0.1.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_model::ecs::{Deployment, RolloutState};
use berth_testkit::{quickstart, wait_until, Load, Server};
use nix::sys::signal::Signal;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(60);

async fn distinct_tasks(addr: &str, requests: usize) -> BTreeSet<String> {
    let client = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    for _ in 0..requests {
        let r = client.get(format!("http://{addr}/")).send().await.unwrap();
        assert!(r.status().is_success(), "status {}", r.status());
        seen.insert(r.headers()["x-berth-task"].to_str().unwrap().to_string());
    }
    seen
}

fn task_pids(tasks: &[Value]) -> Vec<(String, String)> {
    tasks
        .iter()
        .map(|t| {
            (
                t["taskArn"].as_str().unwrap().to_string(),
                t["containers"][0]["runtimeId"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_is_served_by_three_tasks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    let ids = server
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    let addr = server.listener_addr("web").await?;
    let seen = distinct_tasks(&addr, 30).await;
    let expected: BTreeSet<String> = ids
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(seen, expected, "round robin over the 3 healthy tasks");

    // The CLI shows the same in tables.
    let out = server.cli(&["get", "tasks"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout)?;
    assert_eq!(
        table.lines().filter(|l| l.contains("RUNNING")).count(),
        3,
        "{table}"
    );
    let out = server.cli(&["get", "targets"]);
    let table = String::from_utf8(out.stdout)?;
    assert_eq!(
        table.lines().filter(|l| l.contains("healthy")).count(),
        3,
        "{table}"
    );

    // Metrics: the service's task counts and the proxy's per-target-group counters.
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(r#"berth_service_running_tasks{cluster="default",service="whoami"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains("target_group=\"whoami\""), "{metrics}");

    // Settled, the reconcilers pass about once a second (each applying the data plane's
    // configuration, which changes no target status and so starts no other pass).
    server.assert_settled_passes(Duration::from_secs(3)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_task_is_replaced_without_failed_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    let before = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let addr = server.listener_addr("web").await?;
    let load = Load::start(&addr, 4);

    let tasks = server.service_tasks("whoami").await?;
    let (victim, pid) = task_pids(&tasks).remove(0);
    let pid: i32 = pid.parse()?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)?;

    // The service replaces it: 3 healthy tasks again, the victim not among them.
    let after = wait_until("a replacement task", SETTLE, || async {
        let ids = server
            .wait_healthy("whoami", "whoami", 3, Duration::from_secs(1))
            .await
            .ok()?;
        (!ids.contains(&victim)).then_some(ids)
    })
    .await?;
    let report = load.finish().await;
    eprintln!(
        "kill: {} ok, {} failed, tasks seen {:?}",
        report.ok, report.failed, report.tasks
    );
    assert_eq!(after.iter().filter(|a| before.contains(a)).count(), 2);
    let stopped = server
        .get(&format!(
            "/v1/clusters/default/tasks/{}",
            victim.rsplit('/').next().unwrap()
        ))
        .await?;
    assert_eq!(stopped["lastStatus"], "STOPPED");
    assert_eq!(stopped["stopCode"], "EssentialContainerExited");
    assert_eq!(stopped["containers"][0]["exitCode"], 137);
    // The proxy retries requests whose connection failed before anything was sent, so
    // the client sees no error while the dead task is still a target.
    assert!(report.ok > 0);
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_through_apply_follows_without_failed_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let addr = server.listener_addr("web").await?;

    let text = server.apply_ok(&quickstart(dir.path(), 5));
    assert!(
        text.lines()
            .any(|l| l.contains("service") && l.contains("updated")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("task-definition") && l.contains("unchanged")),
        "{text}"
    );
    server.wait_healthy("whoami", "whoami", 5, SETTLE).await?;

    let load = Load::start(&addr, 4);
    server.apply_ok(&quickstart(dir.path(), 2));
    let remaining = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    // The scaled-in tasks stopped only after draining: their stop reason says so.
    let all = server.get("/v1/tasks?service=whoami").await?;
    // (A task the load balancer found unhealthy on a saturated machine may have been
    // replaced meanwhile; the scale-in itself is what this counts.)
    let stopped: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["desiredStatus"] == "STOPPED")
        .collect();
    let scaled_in: Vec<&&Value> = stopped
        .iter()
        .filter(|t| {
            t["stoppedReason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Scaling activity"))
        })
        .collect();
    let reasons: Vec<&Value> = stopped.iter().map(|t| &t["stoppedReason"]).collect();
    assert_eq!(scaled_in.len(), 3, "stopped: {reasons:?}");
    for t in &scaled_in {
        assert_eq!(t["stopCode"], "ServiceSchedulerInitiated");
        assert!(!remaining.contains(&t["taskArn"].as_str().unwrap().to_string()));
    }
    let report = load.finish().await;
    eprintln!("scale-in: {} ok, {} failed", report.ok, report.failed);
    assert!(report.ok > 0);
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);

    // Applying the same file again changes nothing.
    let text = server.apply_ok(&quickstart(dir.path(), 2));
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.trim_end().ends_with("unchanged")),
        "{text}"
    );
    Ok(())
}

async fn restart_adopts(signal: Signal) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = quickstart(dir.path(), 3);
    let mut server = Server::start_in(&data, Some(&stack)).await?;
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let before = task_pids(&server.service_tasks("whoami").await?);
    let procs_before = server.task_processes().len();
    assert!(procs_before >= 3, "task processes: {procs_before}");

    server.signal_and_wait(signal)?;
    // The tasks outlive the server.
    for (_, pid) in &before {
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "task {pid} died with the server"
        );
    }
    let server = Server::start_in(&data, None).await?;
    let after_ids = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let after = task_pids(&server.service_tasks("whoami").await?);
    let mut b = before.clone();
    let mut a = after.clone();
    b.sort();
    a.sort();
    assert_eq!(a, b, "the same tasks with the same processes were adopted");
    assert_eq!(after_ids.len(), 3);
    // No duplicates and no orphans: exactly the processes there were before.
    assert_eq!(server.task_processes().len(), procs_before);
    let addr = server.listener_addr("web").await?;
    assert_eq!(distinct_tasks(&addr, 30).await.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigterm_adopts_running_tasks() -> Result<()> {
    restart_adopts(Signal::SIGTERM).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_sigkill_adopts_running_tasks() -> Result<()> {
    restart_adopts(Signal::SIGKILL).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_stack_files_are_rejected_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let snapshot = || async {
        let mut v = Vec::new();
        for p in [
            "/v1/clusters",
            "/v1/task-definitions",
            "/v1/services",
            "/v1/target-groups",
            "/v1/load-balancers",
        ] {
            let mut x = server.get(p).await.unwrap();
            // Live counters move on their own; compare the desired state.
            if let Some(a) = x.as_array_mut() {
                for item in a {
                    for k in [
                        "runningCount",
                        "pendingCount",
                        "deployments",
                        "events",
                        "runningTasksCount",
                        "pendingTasksCount",
                        "listeners",
                    ] {
                        item.as_object_mut().unwrap().remove(k);
                    }
                }
            }
            v.push(x);
        }
        v
    };
    let before = snapshot().await;
    let good = std::fs::read_to_string(quickstart(dir.path(), 3))?;
    let cases = [
        (
            good.replace("desiredCount: 3", "desiredCount: 4\n    desiredCnt: 3"),
            "services[0].desiredCnt",
        ),
        (
            good.replace("desiredCount: 3", "desiredCount: -1"),
            "services[0].desiredCount",
        ),
        (
            good.replace(
                "containerPort: 8080\n            hostPort: 0",
                "containerPort: 70000\n            hostPort: 0",
            ),
            "taskDefinitions[0].containerDefinitions[0].portMappings[0].containerPort",
        ),
        (
            good.replace("taskDefinition: whoami", "taskDefinition: nosuchfamily")
                .replace("desiredCount: 3", "desiredCount: 4"),
            "services[0].taskDefinition",
        ),
    ];
    for (i, (text, field)) in cases.iter().enumerate() {
        let p = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&p, text)?;
        let out = server.cli(&["apply", "-f", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "case {i}: {err}");
        assert!(
            err.contains(field),
            "case {i}: error should name {field}: {err}"
        );
    }
    assert_eq!(
        snapshot().await,
        before,
        "a rejected stack changed the store"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_task_definition_rolls_out_without_failed_requests() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    let first = server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let addr = server.listener_addr("web").await?;
    let load = Load::start(&addr, 4);

    let text = std::fs::read_to_string(quickstart(dir.path(), 3))?
        .replace("value: hello from berth", "value: hello again");
    let v2 = dir.path().join("v2.yaml");
    std::fs::write(&v2, text)?;
    let changes = server.apply_ok(&v2);
    assert!(
        changes.contains("whoami:2") && changes.contains("registered"),
        "{changes}"
    );

    let second = wait_until("the deployment to complete", SETTLE, || async {
        let svc = server
            .get("/v1/clusters/default/services/whoami")
            .await
            .ok()?;
        let deployments: Vec<Deployment> =
            serde_json::from_value(svc["deployments"].clone()).ok()?;
        let done = deployments.len() == 1
            && deployments[0].rollout_state == RolloutState::Completed
            && deployments[0]
                .task_definition
                .ends_with("task-definition/whoami:2");
        if !done {
            return None;
        }
        server
            .wait_healthy("whoami", "whoami", 3, Duration::from_secs(1))
            .await
            .ok()
    })
    .await?;
    let report = load.finish().await;
    eprintln!("rollout: {} ok, {} failed", report.ok, report.failed);
    assert!(
        second.iter().all(|t| !first.contains(t)),
        "every task was replaced"
    );
    for t in server.service_tasks("whoami").await? {
        assert!(t["taskDefinitionArn"].as_str().unwrap().ends_with(":2"));
    }
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_describe_show_a_task() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 1))).await?;
    let ids = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    let id = ids[0].rsplit('/').next().unwrap();
    let out = server.cli(&["logs", &id[..12]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = String::from_utf8(out.stdout)?;
    assert!(logs.contains("listening"), "logs: {logs:?}");

    let out = server.cli(&["describe", "task", id]);
    let task: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(task["lastStatus"], "RUNNING");
    assert_eq!(task["containers"][0]["name"], "web");
    let port = task["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap();
    assert!(port > 0);

    let out = server.cli(&["-o", "json", "get", "services"]);
    let services: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(services[0]["runningCount"], 1);

    // Stopping by hand: the task drains, then stops with UserInitiated; the service
    // starts a replacement.
    let out = server.cli(&["stop", id, "--reason", "testing"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stopped = wait_until("the task to stop", SETTLE, || async {
        let t = server
            .get(&format!("/v1/clusters/default/tasks/{id}"))
            .await
            .ok()?;
        (t["lastStatus"] == "STOPPED").then_some(t)
    })
    .await?;
    assert_eq!(stopped["stopCode"], "UserInitiated");
    assert_eq!(stopped["stoppedReason"], "testing");
    // whoami exits 0 on SIGTERM.
    assert_eq!(stopped["containers"][0]["exitCode"], 0);
    let again = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    assert_ne!(again, ids);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_service_drains_and_stops_its_tasks() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(Some(&quickstart(dir.path(), 2))).await?;
    server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    let out = server.cli(&["delete", "service", "whoami"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the service to go away", SETTLE, || async {
        let r = server.get("/v1/clusters/default/services/whoami").await;
        r.is_err().then_some(())
    })
    .await?;
    let tasks = server.get("/v1/tasks?service=whoami").await?;
    let tasks = tasks.as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        assert_eq!(t["lastStatus"], "STOPPED");
        assert_eq!(
            t["containers"][0]["exitCode"], 0,
            "stopped with SIGTERM, not killed"
        );
    }
    assert!(server.targets("whoami").await?.is_empty());
    // A load balancer with deletion protection cannot be deleted.
    let protected = std::fs::read_to_string(quickstart(dir.path(), 0))?.replace(
        "    type: application\n",
        "    type: application\n    attributes:\n      deletion_protection.enabled: \"true\"\n",
    );
    let p = dir.path().join("protected.yaml");
    std::fs::write(&p, protected)?;
    server.apply_ok(&p);
    let out = server.cli(&["delete", "load-balancer", "web"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OperationNotPermittedException"));
    assert!(server.get("/v1/load-balancers/web").await.is_ok());

    // The target group is free again and can be deleted; the load balancer still uses it.
    let out = server.cli(&["delete", "target-group", "whoami"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceInUseException"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_cannot_bind_fails_alone() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // A port someone else holds.
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let text = std::fs::read_to_string(quickstart(dir.path(), 2))?;
    let text = text.replace(
        "services:",
        &format!(
            "  - loadBalancerName: blocked\n    listeners:\n      - port: {port}\n        protocol: HTTP\n        defaultActions: [{{type: forward, targetGroupName: whoami}}]\nservices:"
        ),
    );
    let p = dir.path().join("two-lbs.yaml");
    std::fs::write(&p, text)?;
    let server = Server::start(Some(&p)).await?;
    // The good load balancer serves, and targets keep flowing.
    server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    let addr = server.listener_addr("web").await?;
    assert_eq!(distinct_tasks(&addr, 10).await.len(), 2);
    let lb = wait_until(
        "the blocked load balancer to be reported",
        SETTLE,
        || async {
            let lb = server.get("/v1/load-balancers/blocked").await.ok()?;
            (lb["state"] == "failed").then_some(lb)
        },
    )
    .await?;
    let reason = lb["stateReason"].as_str().unwrap();
    assert!(reason.contains(&port.to_string()), "{reason}");

    // Once the port is free, the next pass binds it.
    drop(taken);
    wait_until("the load balancer to recover", SETTLE, || async {
        let lb = server.get("/v1/load-balancers/blocked").await.ok()?;
        (lb["state"] == "active" && lb["listeners"][0]["boundPort"] == port).then_some(())
    })
    .await?;

    // A certificate file that does not load is refused before anything is stored.
    let bad = dir.path().join("https.yaml");
    std::fs::write(
        &bad,
        "loadBalancers:\n  - loadBalancerName: secure\n    listeners:\n      - port: 0\n        protocol: HTTPS\n        certificates: [{certificateFile: /nonexistent/cert.pem, privateKeyFile: /nonexistent/key.pem}]\n        defaultActions: [{type: fixed-response, fixedResponseConfig: {statusCode: \"200\"}}]\n",
    )?;
    let out = server.cli(&["apply", "-f", bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("loadBalancers[0].listeners[0].certificates"),
        "{err}"
    );
    assert!(server.get("/v1/load-balancers/secure").await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blue_green_example_routes_by_weight_and_rule() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = std::fs::read_to_string(berth_testkit::repo_root().join("configs/blue-green.yaml"))?
        .replace("      - port: 8081", "      - port: 0");
    let p = dir.path().join("bg.yaml");
    std::fs::write(&p, text)?;
    let server = Server::start(Some(&p)).await?;
    let blue: BTreeSet<String> = server
        .wait_healthy("blue", "blue", 2, SETTLE)
        .await?
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    let green: BTreeSet<String> = server
        .wait_healthy("green", "green", 2, SETTLE)
        .await?
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    let addr = server.listener_addr("bluegreen").await?;
    let client = reqwest::Client::new();
    let (mut to_blue, mut to_green) = (0, 0);
    for _ in 0..200 {
        let r = client.get(format!("http://{addr}/")).send().await?;
        let t = r.headers()["x-berth-task"].to_str()?.to_string();
        if blue.contains(&t) {
            to_blue += 1;
        } else if green.contains(&t) {
            to_green += 1;
        } else {
            panic!("answered by an unknown task {t}");
        }
    }
    // 90/10 by weight: green gets some, blue most (binomial; bounds far outside noise).
    assert!(
        (5..=50).contains(&to_green),
        "blue {to_blue}, green {to_green}"
    );
    for _ in 0..20 {
        let r = client.get(format!("http://{addr}/green/x")).send().await?;
        assert!(green.contains(r.headers()["x-berth-task"].to_str()?));
    }
    let r = client
        .get(format!("http://{addr}/health-of-lb"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-berth-task").is_none());
    assert_eq!(r.text().await?, "ok");
    Ok(())
}
