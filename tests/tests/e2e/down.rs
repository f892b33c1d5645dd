//! End-to-end tests of taking a cluster down: `berth down` deletes the services, waits
//! until every task is STOPPED and prints each; a server stopped with tasks still
//! running says which keep running and how to stop them.

use std::time::Duration;

use anyhow::Result;
use berth_testkit::{quickstart, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(90);

fn id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_stops_every_task_and_says_which() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(Some(&quickstart(dir.path(), 2))).await?;
    let tasks = server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;

    let out = server.cli(&["down"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in &tasks {
        assert!(
            stdout.contains(&format!("stopped task {}", id(t))),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("cluster default is down: 1 service(s) deleted, 2 task(s) stopped"),
        "{stdout}"
    );
    let all = server.get("/v1/tasks?cluster=default").await?;
    let all = all.as_array().cloned().unwrap_or_default();
    assert!(!all.is_empty());
    assert!(
        all.iter().all(|t| t["lastStatus"] == "STOPPED"),
        "every task stopped: {all:?}"
    );

    server.signal_and_wait(Signal::SIGTERM)?;
    assert!(
        server.log().contains("no task runs on this node"),
        "{}",
        server.log()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_says_which_tasks_keep_running() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start(Some(&quickstart(dir.path(), 1))).await?;
    let tasks = server.wait_healthy("whoami", "whoami", 1, SETTLE).await?;
    server.signal_and_wait(Signal::SIGTERM)?;
    let log = server.log();
    assert!(log.contains("1 task(s) keep running"), "{log}");
    assert!(log.contains(id(&tasks[0])), "{log}");
    assert!(log.contains("berth down"), "{log}");
    Ok(())
}
