//! End-to-end tests of remote agents: `berth server --node-listen` and a `berth agent`
//! child process joined with the server's token, both running tasks as local
//! processes. A service with `distinctInstance` puts one task on each instance, the
//! listener reaches both, a killed agent's instance is marked disconnected while its
//! task keeps serving, and the restarted agent (without the token: it kept its
//! credentials) adopts its task instead of starting a second one. A wrong token joins
//! nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use berth_testkit::agent::Agent;
use berth_testkit::{quickstart, wait_until, Server};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

fn node_listen() -> Vec<String> {
    vec!["--node-listen".into(), "127.0.0.1:0".into()]
}

/// The quickstart with 2 tasks that must run on different instances.
fn spread_stack(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(quickstart(dir, 2)).unwrap();
    let text = text.replace(
        "    desiredCount: 2\n",
        "    desiredCount: 2\n    enableExecuteCommand: true\n    placementConstraints:\n      - type: distinctInstance\n",
    );
    assert!(text.contains("distinctInstance"));
    let p = dir.join("spread.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn instances(server: &Server) -> Vec<Value> {
    server
        .get("/v1/container-instances")
        .await
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

async fn connected(server: &Server, id: &str) -> Option<bool> {
    instances(server)
        .await
        .iter()
        .find(|i| i["ec2InstanceId"] == id)
        .and_then(|i| i["agentConnected"].as_bool())
}

/// The demo app's processes among `pids` (not the shims that run it).
fn whoami_processes(pids: &[i32]) -> Vec<i32> {
    pids.iter()
        .copied()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| {
                    let program = c.split(|b| *b == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(program).ends_with("berth-whoami")
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Task ids that answered `n` requests through the listener.
async fn answering_tasks(addr: &str, n: usize) -> BTreeSet<String> {
    let http = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        if let Ok(r) = http.get(format!("http://{addr}/")).send().await {
            if let Some(t) = r.headers().get("x-berth-task") {
                seen.insert(t.to_str().unwrap_or("").to_string());
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_runs_its_share_and_keeps_it_across_its_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server =
        Server::launch_with(&dir.path().join("server"), None, "process", &node_listen()).await?;
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(&server, &agent_dir, "process", true).await?;
    let agent_id = agent.instance_id();
    wait_until("the agent's instance to be connected", SETTLE, || async {
        (connected(&server, &agent_id).await == Some(true)).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;
    assert_eq!(
        instances(&server).await.len(),
        2,
        "the server's and the agent's"
    );

    server.apply_ok(&spread_stack(dir.path()));
    let tasks = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    let all = server.service_tasks("whoami").await?;
    let placed: BTreeSet<String> = all
        .iter()
        .map(|t| t["containerInstanceArn"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(placed.len(), 2, "one task per instance: {all:?}");
    assert!(
        placed.iter().any(|a| a.ends_with(&agent_id)),
        "a task runs on the agent: {placed:?}"
    );
    let addr = server.listener_addr("web").await?;
    let seen = answering_tasks(&addr, 20).await;
    assert_eq!(
        seen.len(),
        2,
        "the listener reaches both instances' tasks: {seen:?}"
    );

    // SIGKILL: the instance is marked disconnected; its task keeps running and serving.
    agent.kill();
    wait_until(
        "the killed agent's instance to be disconnected",
        SETTLE,
        || async { (connected(&server, &agent_id).await == Some(false)).then_some(()) },
    )
    .await?;
    let seen = answering_tasks(&addr, 20).await;
    assert_eq!(seen.len(), 2, "both tasks still answer: {seen:?}");

    // Restarted without the token: it kept its credentials, reconnects and adopts its
    // task; nothing is started twice.
    let mut agent = Agent::start(&server, &agent_dir, "process", false).await?;
    assert_eq!(agent.instance_id(), agent_id, "the same instance");
    wait_until("the restarted agent to be connected", SETTLE, || async {
        (connected(&server, &agent_id).await == Some(true)).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;
    let after = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    assert_eq!(
        after.iter().collect::<BTreeSet<_>>(),
        tasks.iter().collect::<BTreeSet<_>>(),
        "the same two tasks, none replaced or duplicated"
    );
    let on_agent = server
        .service_tasks("whoami")
        .await?
        .iter()
        .filter(|t| {
            t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&agent_id)
        })
        .count();
    assert_eq!(on_agent, 1, "one task on the agent, as before its restart");
    agent.kill();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_wrong_token_joins_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server =
        Server::launch_with(&dir.path().join("server"), None, "process", &node_listen()).await?;
    let (url, token) = berth_testkit::agent::node_link(&server)?;
    let (head, _) = token.rsplit_once('.').unwrap();
    let wrong = format!("{head}.{}", "0".repeat(64));
    let agent_dir = dir.path().join("agent");
    let out = std::process::Command::new(berth_testkit::bin("berth"))
        .args([
            "agent",
            "--server",
            &url,
            "--token",
            &wrong,
            "--runtime",
            "process",
        ])
        .env("BERTH_DATA_DIR", &agent_dir)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("secret"), "{err}");
    assert!(!agent_dir.join("node-credentials.json").exists());
    assert_eq!(
        instances(&server).await.len(),
        1,
        "only the server's own instance"
    );

    let out = std::process::Command::new(berth_testkit::bin("berth"))
        .args([
            "agent",
            "--server",
            &url,
            "--token",
            "nonsense",
            "--runtime",
            "process",
        ])
        .env("BERTH_DATA_DIR", &agent_dir)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token:"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agents_tasks_are_replaced_and_its_duplicates_stopped_when_it_returns() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let mut flags = node_listen();
    flags.extend(["--agent-lost-after".to_string(), "2".to_string()]);
    let server = Server::launch_with(&dir.path().join("server"), None, "process", &flags).await?;
    let agent_dir = dir.path().join("agent");
    let mut agent = Agent::start(&server, &agent_dir, "process", true).await?;
    let agent_id = agent.instance_id();
    wait_until("the agent's instance to be connected", SETTLE, || async {
        (connected(&server, &agent_id).await == Some(true)).then_some(())
    })
    .await?;
    // Two tasks, spread over the two instances by the default strategy.
    server.apply_ok(&quickstart(dir.path(), 2));
    let first = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    let on_agent: Vec<String> = server
        .service_tasks("whoami")
        .await?
        .iter()
        .filter(|t| {
            t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&agent_id)
        })
        .map(|t| t["taskArn"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        on_agent.len(),
        1,
        "the default spread puts one task on the agent"
    );
    let lost_task = on_agent[0].clone();
    let app_pids = whoami_processes(&agent.task_processes());
    assert_eq!(app_pids.len(), 1, "the agent's task runs as a process");

    agent.kill();
    // Disconnected, then lost: the task is recorded STOPPED and replaced on the server.
    let replaced = wait_until(
        "a replacement for the lost agent's task",
        SETTLE,
        || async {
            let running = server
                .wait_healthy("whoami", "whoami", 2, Duration::from_secs(5))
                .await
                .ok()?;
            (!running.contains(&lost_task)).then_some(running)
        },
    )
    .await?;
    // Both now run on the server, the one connected instance.
    let on_server = server
        .service_tasks("whoami")
        .await?
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .all(|t| {
            t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&server.instance_id())
        });
    assert!(on_server, "the replacements run on the server");
    assert_eq!(first.len(), 2);
    let stopped = server
        .get(&format!(
            "/v1/clusters/default/tasks/{}",
            lost_task.rsplit('/').next().unwrap()
        ))
        .await?;
    assert_eq!(stopped["lastStatus"], "STOPPED");
    assert_eq!(stopped["stopCode"], "InfrastructureHealth");
    assert!(
        stopped["stoppedReason"]
            .as_str()
            .unwrap_or("")
            .contains(&agent_id),
        "{stopped}"
    );
    // The process of the lost task still runs on the agent's machine (the agent is
    // gone): nobody told it.
    assert!(alive(app_pids[0]), "the lost task's process runs on");

    // The agent returns: it stops its duplicate; the replacements keep running.
    let agent = Agent::start(&server, &agent_dir, "process", false).await?;
    wait_until(
        "the returned agent to stop its duplicate",
        SETTLE,
        || async { (!alive(app_pids[0])).then_some(()) },
    )
    .await
    .map_err(|e| {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", app_pids[0]));
        anyhow::anyhow!(
            "{e}\nstat of {}: {stat:?}\nagent log:\n{}",
            app_pids[0],
            agent.log()
        )
    })?;
    let after = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;
    assert_eq!(
        after.iter().collect::<BTreeSet<_>>(),
        replaced.iter().collect::<BTreeSet<_>>(),
        "the replacements were not touched"
    );
    Ok(())
}
