//! End-to-end test of orphaned tasks: a server killed with its tasks running, and servers
//! started on other data directories. The next server reports the dead one's tasks (a log
//! line each, `berth_orphaned_tasks`) and leaves them running; one started with
//! `--remove-orphans` stops them. Each run uses a cluster of its own, so tasks of other
//! tests on the machine are neither counted nor touched.

use std::time::Duration;

use anyhow::Result;
use berth_testkit::{quickstart, wait_until, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(90);

fn id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

async fn orphan_gauge(server: &Server, cluster: &str) -> Option<String> {
    let text = reqwest::get(format!("{}/metrics", server.api))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let prefix = format!("berth_orphaned_tasks{{cluster=\"{cluster}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_servers_tasks_are_reported_and_removed_only_when_asked() -> Result<()> {
    let cluster = format!("orphans{}", std::process::id());
    let work = tempfile::tempdir()?;
    let stack = quickstart(work.path(), 3);
    let text = std::fs::read_to_string(&stack)?
        .replace("clusterName: default", &format!("clusterName: {cluster}"))
        .replace("cluster: default", &format!("cluster: {cluster}"));
    std::fs::write(&stack, text)?;
    let node_args = vec!["--cluster".to_string(), cluster.clone()];
    let (dir1, dir2, dir3) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );

    let mut a = Server::launch_with(dir1.path(), Some(&stack), "process", &node_args).await?;
    let tasks = a.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let processes = a.task_processes();
    assert_eq!(
        processes.len(),
        6,
        "a shim and a process per task: {processes:?}"
    );
    a.signal_and_wait(Signal::SIGKILL)?;

    let mut b = Server::launch_with(dir2.path(), None, "process", &node_args).await?;
    let reported = wait_until("the orphans counted", SETTLE, || async {
        (orphan_gauge(&b, &cluster).await.as_deref() == Some("3")).then_some(())
    })
    .await;
    let log = b.log();
    reported.map_err(|e| anyhow::anyhow!("{e}\n{log}"))?;
    let dir1_runtime = dir1.path().canonicalize()?.join("runtime");
    for t in &tasks {
        let line = log
            .lines()
            .find(|l| l.contains("orphaned task") && l.contains(id(t)))
            .unwrap_or_else(|| panic!("no orphan line for {t}:\n{log}"));
        assert!(line.contains(&dir1_runtime.display().to_string()), "{line}");
        assert!(line.contains("berth-whoami"), "{line}");
        assert!(line.contains("berth server --remove-orphans"), "{line}");
    }
    assert!(!log.contains("removed orphaned task"), "{log}");
    assert!(processes.iter().all(|p| alive(*p)), "B stopped an orphan");
    b.signal_and_wait(Signal::SIGTERM)?;

    let mut c_args = node_args.clone();
    c_args.push("--remove-orphans".into());
    let c = Server::launch_with(dir3.path(), None, "process", &c_args).await?;
    let removal_logged = |log: &str| {
        tasks.iter().all(|t| {
            log.lines()
                .any(|l| l.contains("removed orphaned task") && l.contains(id(t)))
        })
    };
    let removed = wait_until("the orphans removed", SETTLE, || async {
        (removal_logged(&c.log()) && orphan_gauge(&c, &cluster).await.as_deref() == Some("0"))
            .then_some(())
    })
    .await;
    removed.map_err(|e| anyhow::anyhow!("{e}\n{}", c.log()))?;
    assert!(
        processes.iter().all(|p| !alive(*p)),
        "the orphans' processes run on"
    );
    Ok(())
}
