//! End-to-end test of the node's discovery DNS outliving `berth server`: the data plane
//! process serves it, so after the server is killed (SIGKILL) `backend.internal` and the
//! client alias `backend` still answer with the same records, a request through the
//! alias's mesh listener and the frontend's calls by alias still succeed, and after the
//! server starts again the same DNS address answers and a scale-out reaches DNS.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use berth_testkit::{
    called_tasks, mesh_stack, running_task_ids, unique_loopback, wait_until, Server,
};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(90);

/// The answers of `server` for `name` and `kind` (`dig +short`), sorted.
fn dig(server: &SocketAddr, name: &str, kind: &str) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), name, kind, "+short"])
        .args(["+time=2", "+tries=2"])
        .output()
        .expect("dig runs (install dnsutils)");
    assert!(out.status.success(), "dig failed: {out:?}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

/// The SRV records of `backend.internal` once there are `n`.
async fn srv_records(dns: &SocketAddr, n: usize) -> Result<Vec<String>> {
    wait_until(
        &format!("{n} SRV records for backend.internal"),
        SETTLE,
        || async {
            let srv = dig(dns, "backend.internal", "SRV");
            (srv.len() == n).then_some(srv)
        },
    )
    .await
}

fn dns_addr(data: &std::path::Path) -> Result<SocketAddr> {
    std::fs::read_to_string(data.join("dns.addr"))
        .context("reading dns.addr")?
        .trim()
        .parse()
        .context("parsing dns.addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_answer_while_the_server_is_killed_and_changes_reach_dns_after_its_restart(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 2)?;
    let ip = stack.mesh_ip;
    let node_args = [
        "--dns-listen".to_string(),
        format!("{ip}:0"),
        "--mesh-ip".into(),
        ip.to_string(),
    ];
    let mut first = Server::launch_with(&data, Some(&stack.path), "process", &node_args).await?;
    first
        .wait_healthy("frontend", "front", 1, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", first.log()))?;
    let backends = wait_until("two running backend tasks", SETTLE, || async {
        let ids = running_task_ids(&first.service_tasks("backend").await.ok()?);
        (ids.len() == 2).then_some(ids)
    })
    .await?;
    let front = first.listener_addr("front").await?;
    wait_until("both backends answering the frontend", SETTLE, || async {
        let seen = called_tasks(&front, 20).await.ok()?;
        (seen == backends).then_some(())
    })
    .await?;
    let dns = dns_addr(&data)?;
    let srv = srv_records(&dns, 2).await?;
    assert_eq!(dig(&dns, "backend", "A"), vec![ip.to_string()]);
    let data_plane = first.data_plane_pid().context("a data plane runs")?;

    // The server is killed: the data plane answers with the records it was sent.
    first.signal_and_wait(Signal::SIGKILL)?;
    ensure!(
        berth_testkit::processes_of_data_dir(&data, None).contains(&data_plane),
        "the data plane outlives the server"
    );
    assert_eq!(dig(&dns, "backend", "A"), vec![ip.to_string()]);
    assert_eq!(
        dig(&dns, "backend.internal", "SRV"),
        srv,
        "the same records"
    );
    let target = srv[0].split_whitespace().nth(3).unwrap().to_string();
    assert_eq!(dig(&dns, &target, "A"), vec!["127.0.0.1".to_string()]);
    // A call by the alias, sent to the address DNS answers for it: the alias's listener
    // (HTTP aliases are told apart by the Host header) forwards it to a backend.
    let alias: std::net::IpAddr = dig(&dns, "backend", "A")[0].parse()?;
    let by_alias = reqwest::Client::builder()
        .resolve("backend", SocketAddr::new(alias, stack.alias_port))
        .build()?;
    let answer = by_alias
        .get(format!("http://backend:{}/", stack.alias_port))
        .send()
        .await?;
    ensure!(answer.status().is_success(), "{}", answer.status());
    let task = answer
        .headers()
        .get("x-berth-task")
        .context("x-berth-task")?
        .to_str()?
        .to_string();
    assert!(backends.contains(&task), "{task} in {backends:?}");
    // The frontend, a process task, still calls the backend by its alias.
    let seen = called_tasks(&front, 20).await?;
    assert!(seen.is_subset(&backends), "{seen:?} of {backends:?}");

    // Started again: the same data plane and DNS address, the same answers.
    let second = Server::launch_with(&data, None, "process", &node_args).await?;
    assert_eq!(second.data_plane_pid(), Some(data_plane));
    assert_eq!(dns_addr(&data)?, dns, "dns.addr names the same server");
    assert_eq!(dig(&dns, "backend.internal", "SRV"), srv);
    assert_eq!(dig(&dns, "backend", "A"), vec![ip.to_string()]);

    // A change after the restart reaches DNS: a third backend.
    let text = std::fs::read_to_string(&stack.path)?;
    ensure!(text.contains("desiredCount: 2"), "{text}");
    std::fs::write(
        &stack.path,
        text.replace("desiredCount: 2", "desiredCount: 3"),
    )?;
    second.apply_ok(&stack.path);
    let three = srv_records(&dns, 3)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", second.log()))?;
    let before: BTreeSet<&String> = srv.iter().collect();
    assert!(
        before.iter().all(|r| three.contains(r)),
        "{srv:?} kept in {three:?}"
    );

    // The DNS server's metrics reach the server's /metrics through the data plane.
    let metrics = reqwest::get(format!("{}/metrics", second.api))
        .await?
        .text()
        .await?;
    let answered: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("berth_dns_queries_total{") && l.contains("answered"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(answered >= 5.0, "berth_dns_queries_total: {metrics}");
    drop(first);
    Ok(())
}
