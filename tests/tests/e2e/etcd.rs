//! Several `berth server`s on one etcd (`--store etcd`): every server serves the API and
//! the load balancers and runs its own agent; one, elected, runs the reconcilers. Killing the leader with
//! SIGKILL hands the reconcilers to the other within 5 s, with what was applied before
//! the kill, and the service keeps its tasks without duplicates. A server started
//! while etcd is down waits for it.
//!
//! Tasks run as local processes; every server's API and listeners bind port 0.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use berth_testkit::{quickstart, running_task_ids, wait_until, Etcd, EtcdPorts, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(60);

/// The flags that put a server's state in `etcd` under `prefix`.
fn etcd_flags(endpoint: &str, prefix: &str) -> Vec<String> {
    [
        "--store",
        "etcd",
        "--etcd-endpoints",
        endpoint,
        "--etcd-prefix",
        prefix,
    ]
    .map(String::from)
    .to_vec()
}

/// Whether the server says it runs the reconcilers (`berth_control_plane_leader`).
async fn leads(server: &Server) -> Option<bool> {
    let text = reqwest::get(format!("{}/metrics", server.api))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let line = text
        .lines()
        .find(|l| l.starts_with("berth_control_plane_leader "))?;
    Some(line.ends_with(" 1"))
}

async fn wait_leading(server: &Server, within: Duration) -> Result<Duration> {
    let start = Instant::now();
    wait_until("the server to lead", within, || async {
        leads(server).await.filter(|l| *l)
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", server.log()))?;
    Ok(start.elapsed())
}

/// The quickstart plus a second load balancer, `web2`, forwarding to the same group.
fn quickstart_with_web2(dir: &Path) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(quickstart(dir, 3))?;
    let web2 = "\nloadBalancers:
  - loadBalancerName: web2
    type: application
    listeners:
      - port: 0
        protocol: HTTP
        defaultActions:
          - type: forward
            targetGroupName: whoami
";
    assert!(
        text.contains("\nloadBalancers:\n"),
        "the quickstart changed"
    );
    let path = dir.join("quickstart-web2.yaml");
    std::fs::write(&path, text.replacen("\nloadBalancers:\n", web2, 1))?;
    Ok(path)
}

/// Ids of the service's tasks that run, and of those desired to run, read through
/// `server`.
async fn task_counts(server: &Server) -> Option<(usize, usize)> {
    let desired = server.service_tasks("whoami").await.ok()?;
    Some((running_task_ids(&desired).len(), desired.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_the_reconcilers_to_the_other_server_within_5s() -> Result<()> {
    let etcd = Etcd::start().await?;
    let dir = tempfile::tempdir()?;
    let flags = etcd_flags(&etcd.endpoint(), "/failover");
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = Server::launch_with(&dir_a, None, "process", &flags).await?;
    wait_leading(&a, SETTLE).await?;
    let mut b = Server::launch_with(&dir_b, None, "process", &flags).await?;
    // b campaigns behind a: a stays the leader and b serves the API as a follower.
    assert_eq!(leads(&b).await, Some(false), "{}", b.log());
    assert_eq!(leads(&a).await, Some(true));

    // Applied through the follower; the leader places the tasks on both servers' agents.
    b.apply_ok(&quickstart(dir.path(), 3));
    a.wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow!("{e}\n{}", a.log()))?;
    let before = running_task_ids(&b.service_tasks("whoami").await?);
    assert_eq!(before.len(), 3);
    // Every server's proxy serves the load balancer, the follower's too.
    for server in [&a, &b] {
        let addr = server.listener_addr("web").await?;
        let task = wait_until("the listener answering", SETTLE, || async {
            let r = reqwest::get(format!("http://{addr}/")).await.ok()?;
            r.status().is_success().then(|| {
                r.headers()
                    .get("x-berth-task")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            })
        })
        .await?;
        assert!(before.contains(&task), "{task} is not one of {before:?}");
    }
    let instances = b.get("/v1/container-instances").await?;
    assert_eq!(
        instances.as_array().map(Vec::len),
        Some(2),
        "one container instance per server: {instances}"
    );

    // An apply acknowledged right before the leader dies.
    b.apply_ok(&quickstart_with_web2(dir.path())?);
    a.signal_and_wait(Signal::SIGKILL)?;
    let took = wait_leading(&b, Duration::from_secs(5)).await?;
    println!("the follower led {took:?} after the leader was killed");

    // The new leader acts on what was applied: web2 is served by b's proxy.
    let web2 = wait_until("web2 served by the new leader", SETTLE, || async {
        let lb = b.get("/v1/load-balancers/web2").await.ok()?;
        let port = lb["listeners"][0]["boundPort"].as_u64()?;
        let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .ok()?;
        r.status().is_success().then(|| {
            r.headers()
                .get("x-berth-task")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        })
    })
    .await
    .map_err(|e| anyhow!("{e}\n{}", b.log()))?;
    assert!(
        before.contains(&web2),
        "web2 answered by {web2}, not one of {before:?}"
    );

    // The service keeps its 3 tasks (the killed server's keep running as processes):
    // nothing is started twice while the leadership moves.
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        let (running, desired) = task_counts(&b).await.expect("tasks through b");
        assert!(
            running <= 3 && desired <= 3,
            "{running} running, {desired} desired to run"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow!("{e}\n{}", b.log()))?;
    assert_eq!(running_task_ids(&b.service_tasks("whoami").await?), before);

    // The killed server comes back as a follower and adopts its tasks; a scale-out
    // applied through it is carried out by the leader on both agents.
    let a = Server::launch_with(&dir_a, None, "process", &flags).await?;
    assert_eq!(leads(&a).await, Some(false), "{}", a.log());
    let scaled = quickstart(dir.path(), 5);
    a.apply_ok(&scaled);
    b.wait_healthy("whoami", "whoami", 5, SETTLE)
        .await
        .map_err(|e| anyhow!("{e}\n{}", b.log()))?;
    let after = running_task_ids(&a.service_tasks("whoami").await?);
    assert_eq!(after.len(), 5);
    assert!(before.is_subset(&after), "{before:?} replaced: {after:?}");
    assert_eq!(leads(&b).await, Some(true));
    assert_eq!(leads(&a).await, Some(false));

    // A leader that shuts down (SIGTERM) gives its lease back: no TTL to wait out.
    b.signal_and_wait(Signal::SIGTERM)?;
    let took = wait_leading(&a, Duration::from_secs(2)).await?;
    println!("the follower led {took:?} after the leader shut down");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_started_while_etcd_is_down_waits_and_comes_up_with_it() -> Result<()> {
    let ports = EtcdPorts::free()?;
    let dir = tempfile::tempdir()?;
    let flags = etcd_flags(&ports.endpoint(), "/late");
    let log = dir.path().join("server.log");
    let (server, etcd) = tokio::join!(
        Server::launch_with(dir.path(), None, "process", &flags),
        async {
            wait_until("the server to say it waits for etcd", SETTLE, || async {
                let text = std::fs::read_to_string(&log).ok()?;
                text.contains("waiting for etcd").then_some(())
            })
            .await?;
            Etcd::start_on(ports).await
        }
    );
    let _etcd = etcd?;
    let server = server?;
    wait_leading(&server, SETTLE).await?;
    let clusters = server.get("/v1/clusters").await?;
    assert!(
        clusters.to_string().contains("\"default\""),
        "the default cluster is in etcd: {clusters}"
    );
    Ok(())
}
