//! End-to-end tests of container instance draining (`berth drain`, `berth activate`):
//! a server with `--node-listen` and one remote agent, both running the quickstart's
//! tasks as local processes. Draining the agent's instance moves its tasks to the
//! server under continuous load without a failed request, and the instance stays
//! DRAINING with no task; activating it lets new tasks go there again. Bad input is
//! refused and changes nothing.

use std::time::Duration;

use anyhow::Result;
use berth_testkit::agent::Agent;
use berth_testkit::{quickstart, wait_until, Load, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

fn node_listen() -> Vec<String> {
    vec!["--node-listen".into(), "127.0.0.1:0".into()]
}

async fn instance(server: &Server, id: &str) -> Option<Value> {
    server
        .get("/v1/container-instances")
        .await
        .ok()?
        .as_array()?
        .iter()
        .find(|i| i["ec2InstanceId"] == id)
        .cloned()
}

/// How many of `tasks` are placed on instance `id`.
fn on_instance(tasks: &[Value], id: &str) -> usize {
    tasks
        .iter()
        .filter(|t| {
            t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&format!("/{id}"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_an_instance_moves_its_tasks_without_a_failed_request() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server =
        Server::launch_with(&dir.path().join("server"), None, "process", &node_listen()).await?;
    let agent = Agent::start(&server, &dir.path().join("agent"), "process", true).await?;
    let agent_id = agent.instance_id();
    let server_id = server.instance_id();
    wait_until("the agent's instance to be connected", SETTLE, || async {
        let i = instance(&server, &agent_id).await?;
        (i["agentConnected"] == true).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;

    // Four tasks, spread two and two over the instances.
    server.apply_ok(&quickstart(dir.path(), 4));
    server.wait_healthy("whoami", "whoami", 4, SETTLE).await?;
    let tasks = server.service_tasks("whoami").await?;
    assert_eq!(on_instance(&tasks, &agent_id), 2, "{tasks:#?}");
    assert_eq!(on_instance(&tasks, &server_id), 2, "{tasks:#?}");
    let drained: Vec<String> = tasks
        .iter()
        .filter(|t| on_instance(std::slice::from_ref(t), &agent_id) == 1)
        .map(|t| t["taskArn"].as_str().unwrap_or("").to_string())
        .collect();

    let addr = server.listener_addr("web").await?;
    let load = Load::start(&addr, 4);
    let out = server.cli(&["drain", &agent_id]);
    assert!(
        out.status.success(),
        "berth drain: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("container instance {agent_id} DRAINING")),
        "{printed}"
    );

    // Its two tasks move to the server: four healthy there, none left on the agent.
    wait_until(
        "the agent's tasks to move to the server",
        SETTLE,
        || async {
            let i = instance(&server, &agent_id).await?;
            let tasks = server.service_tasks("whoami").await.ok()?;
            (i["runningTasksCount"] == 0
                && i["pendingTasksCount"] == 0
                && on_instance(&tasks, &server_id) == 4
                && tasks.len() == 4)
                .then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nserver log:\n{}", server.log()))?;
    server.wait_healthy("whoami", "whoami", 4, SETTLE).await?;
    let report = load.finish().await;
    assert_eq!(
        report.failed, 0,
        "no request failed while the instance drained: {:?}",
        report.errors
    );
    assert!(report.ok > 0, "the load ran: {report:?}");

    // The drained tasks stopped for the draining, and the instance stays DRAINING.
    let all = server.get("/v1/tasks?service=whoami").await?;
    for arn in &drained {
        let t = all
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["taskArn"] == arn.as_str()))
            .unwrap_or_else(|| panic!("task {arn} listed"));
        assert_eq!(t["desiredStatus"], "STOPPED", "{t:#}");
        assert_eq!(
            t["stoppedReason"], "Task stopped during instance draining",
            "{t:#}"
        );
    }
    let service = server.get("/v1/clusters/default/services/whoami").await?;
    let events: Vec<&str> = service["events"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    for arn in &drained {
        let id = arn.rsplit('/').next().unwrap_or("");
        assert!(
            events
                .iter()
                .any(|m| m.starts_with("(service whoami) has stopped")
                    && m.contains(&format!("(task {id})"))),
            "an event names the stop of {id}: {events:#?}"
        );
    }
    let i = instance(&server, &agent_id).await.expect("the instance");
    assert_eq!(i["status"], "DRAINING");
    assert_eq!(i["runningTasksCount"], 0);

    // Active again: a scale-out spreads onto it.
    let out = server.cli(&["activate", &agent_id]);
    assert!(
        out.status.success(),
        "berth activate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ACTIVE"));
    assert_eq!(
        instance(&server, &agent_id).await.expect("the instance")["status"],
        "ACTIVE"
    );
    server.apply_ok(&quickstart(dir.path(), 6));
    server.wait_healthy("whoami", "whoami", 6, SETTLE).await?;
    let tasks = server.service_tasks("whoami").await?;
    assert_eq!(
        on_instance(&tasks, &agent_id),
        2,
        "the new tasks went to the active instance: {tasks:#?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_instance_state_requests_are_refused_and_change_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::launch(&dir.path().join("server"), None, "process").await?;
    let id = server.instance_id();
    wait_until("the server's instance to register", SETTLE, || async {
        instance(&server, &id).await.map(|_| ())
    })
    .await?;

    let out = server.cli(&["drain", "i-nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("container instance \"i-nope\" not found in cluster \"default\"")
            && err.contains("MISSING"),
        "{err}"
    );

    let out = server.cli(&["drain", &id, "-c", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ClusterNotFoundException"), "{err}");

    let http = reqwest::Client::new();
    let api = std::fs::read_to_string(server.data_dir.join("api.addr"))?;
    let url = format!(
        "{}/v1/clusters/default/container-instances/{id}/state",
        api.trim()
    );
    let r = http
        .post(&url)
        .json(&serde_json::json!({"status": "INACTIVE"}))
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert_eq!(v["__type"], "InvalidParameterException");
    assert_eq!(
        v["message"],
        "status: must be ACTIVE or DRAINING (the only statuses UpdateContainerInstancesState sets), got \"INACTIVE\""
    );
    let r = http.post(&url).json(&serde_json::json!({})).send().await?;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await?;
    assert!(
        v["message"].as_str().unwrap_or("").contains("status"),
        "{v}"
    );

    let i = instance(&server, &id).await.expect("the instance");
    assert_eq!(i["status"], "ACTIVE", "nothing changed");
    Ok(())
}
