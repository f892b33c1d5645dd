//! Scaling reacts at once in every state: after the quickstart service asks for more
//! tasks than its container instance's CPU holds (30 wanted, 16 fit), each later change
//! of `desiredCount` must start within a second (the first new task created or the
//! first stop begun, by the tasks' own timestamps) and serve within a few seconds (new
//! tasks healthy behind the listener and answering, or the scaled-in tasks STOPPED),
//! with no request failing under a bounded load loop on loopback.
//!
//! It runs on both runtimes, one at a time: on Docker the control plane once waited
//! about 30 s in every reconciler pass for the engine's per-task stats, which the
//! process runtime answers at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use berth_testkit::{demo_image, quickstart, wait_until, Load, Server};
use serde_json::Value;

/// How many tasks of the stack's definition fit on the instance.
const FIT: i64 = 16;
/// What the service asks for once it goes over capacity.
const OVER: u32 = 30;
/// From a change of `desiredCount` to the first task created or stop begun.
const STARTS_WITHIN: f64 = 1.0;
/// From a change of `desiredCount` to the new tasks serving or the old ones STOPPED: a
/// new target that fails its first check (a container whose app is not listening yet)
/// waits one 5-second check interval for the next, on top of the start itself.
const SERVES_WITHIN: Duration = Duration::from_secs(12);
/// Reaching the first states, before anything is measured.
const SETTLE: Duration = Duration::from_secs(60);

/// One of these tests at a time: both measure reaction times on the same cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The quickstart stack with `desired` tasks, each reserving a `FIT`th of the
/// instance's CPU units (`cpu_units`).
fn stack(dir: &Path, desired: u32, cpu_units: i64) -> PathBuf {
    let path = quickstart(dir, desired);
    let text = std::fs::read_to_string(&path).expect("read the stack");
    let per_task = cpu_units / FIT;
    assert!(
        text.contains("cpu: 128\n"),
        "the quickstart's `cpu: 128` changed; update this test"
    );
    let changed = text.replace("cpu: 128\n", &format!("cpu: {per_task}\n"));
    std::fs::write(&path, changed).expect("write the stack");
    path
}

/// The CPU units berth's agent registers for this machine (1024 per core).
fn instance_cpu_units() -> i64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores as i64 * 1024
}

fn task_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

fn f64_of(t: &Value, field: &str) -> Result<f64> {
    t[field]
        .as_f64()
        .with_context(|| format!("task {} has no {field}: {t}", t["taskArn"]))
}

/// Every task of the service, in every state.
async fn all_tasks(server: &Server) -> Result<Vec<Value>> {
    let v = server.get("/v1/tasks?service=whoami").await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

/// Waits until the service record has caught up with `running` RUNNING tasks (its
/// counts, and a completed deployment when that is all it wants), so that nothing
/// writes it while `berth apply` does.
async fn wait_settled(server: &Server, running: usize) -> Result<()> {
    wait_until(
        &format!("the service to record {running} running tasks"),
        SETTLE,
        || async {
            let svc = server
                .get("/v1/clusters/default/services/whoami")
                .await
                .ok()?;
            let counts = svc["runningCount"].as_u64()? == running as u64
                && svc["pendingCount"].as_u64()? == 0;
            let wants_more = svc["desiredCount"].as_u64()? > running as u64;
            let completed = svc["deployments"][0]["rolloutState"] == "COMPLETED";
            (counts && (wants_more || completed)).then_some(())
        },
    )
    .await
}

/// Runs `berth apply` for `desired` tasks once the service record settled with
/// `running` tasks; returns the time just before it was asked.
async fn scale(
    server: &Server,
    dir: &Path,
    running: usize,
    desired: u32,
    cpu_units: i64,
) -> Result<f64> {
    wait_settled(server, running).await?;
    let asked = now();
    server.apply_ok(&stack(dir, desired, cpu_units));
    Ok(asked)
}

/// Scales out to `desired` (at most `FIT`) and checks the step's timing: the first new
/// task created within `STARTS_WITHIN`, all of them healthy and answering through the
/// listener at `addr` within `SERVES_WITHIN`.
async fn scale_out(
    server: &Server,
    dir: &Path,
    addr: &str,
    desired: u32,
    cpu_units: i64,
) -> Result<()> {
    let tasks = all_tasks(server).await?;
    let before: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["taskArn"].as_str().unwrap_or("").to_string())
        .collect();
    let running = tasks
        .iter()
        .filter(|t| t["lastStatus"] == "RUNNING")
        .count();
    let asked = scale(server, dir, running, desired, cpu_units).await?;
    let clock = Instant::now();
    let healthy = server
        .wait_healthy("whoami", "whoami", desired as usize, SERVES_WITHIN)
        .await
        .with_context(|| format!("scaling out to {desired}"))?;
    let fresh: Vec<String> = healthy
        .iter()
        .filter(|a| !before.contains(*a))
        .cloned()
        .collect();
    ensure!(
        !fresh.is_empty(),
        "scaling out to {desired} started no task"
    );
    // Each new task answers through the listener.
    let unseen = std::sync::Mutex::new(fresh.iter().map(|a| task_id(a)).collect::<BTreeSet<_>>());
    let client = reqwest::Client::new();
    let left = SERVES_WITHIN.saturating_sub(clock.elapsed());
    wait_until(
        "every new task to answer through the listener",
        left,
        || {
            let (client, unseen) = (&client, &unseen);
            async move {
                for _ in 0..4 * FIT {
                    let r = client.get(format!("http://{addr}/")).send().await.ok()?;
                    if let Some(t) = r.headers().get("x-berth-task") {
                        let t = t.to_str().unwrap_or("").to_string();
                        unseen.lock().expect("unseen tasks").remove(&t);
                    }
                }
                unseen
                    .lock()
                    .expect("unseen tasks")
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await?;
    let created = all_tasks(server)
        .await?
        .iter()
        .filter(|t| fresh.iter().any(|a| t["taskArn"] == a.as_str()))
        .map(|t| f64_of(t, "createdAt"))
        .collect::<Result<Vec<f64>>>()?;
    let first = created.iter().copied().fold(f64::INFINITY, f64::min) - asked;
    eprintln!(
        "scale out to {desired}: first task created after {first:.2} s, {} serving after {:.2} s",
        fresh.len(),
        clock.elapsed().as_secs_f64()
    );
    ensure!(
        first <= STARTS_WITHIN,
        "scaling out to {desired}: the first new task was created {first:.2} s after the change"
    );
    Ok(())
}

/// Scales in to `desired` and checks the step's timing: the first stop begun within
/// `STARTS_WITHIN`, every scaled-in task STOPPED (after draining) within
/// `SERVES_WITHIN`.
async fn scale_in(
    server: &Server,
    dir: &Path,
    running: usize,
    desired: u32,
    cpu_units: i64,
) -> Result<()> {
    let asked = scale(server, dir, running, desired, cpu_units).await?;
    let clock = Instant::now();
    server
        .wait_healthy("whoami", "whoami", desired as usize, SERVES_WITHIN)
        .await
        .with_context(|| format!("scaling in to {desired}"))?;
    let left = SERVES_WITHIN.saturating_sub(clock.elapsed());
    let stopped = wait_until("the scaled-in tasks to stop", left, || async {
        let tasks = all_tasks(server).await.ok()?;
        let scaled_in: Vec<Value> = tasks
            .into_iter()
            .filter(|t| t["stoppingAt"].as_f64().is_some_and(|s| s >= asked))
            .collect();
        (!scaled_in.is_empty() && scaled_in.iter().all(|t| t["lastStatus"] == "STOPPED"))
            .then_some(scaled_in)
    })
    .await?;
    for t in &stopped {
        ensure!(
            t["stoppedReason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Scaling activity")),
            "a task stopped for another reason than the scale-in: {t}"
        );
    }
    let begun = stopped
        .iter()
        .map(|t| f64_of(t, "stoppingAt"))
        .collect::<Result<Vec<f64>>>()?;
    let ended = stopped
        .iter()
        .map(|t| f64_of(t, "stoppedAt"))
        .collect::<Result<Vec<f64>>>()?;
    let first = begun.iter().copied().fold(f64::INFINITY, f64::min) - asked;
    let last = ended.iter().copied().fold(0.0, f64::max) - asked;
    eprintln!(
        "scale in to {desired}: first stop begun after {first:.2} s, {} STOPPED after {last:.2} s",
        stopped.len()
    );
    ensure!(
        first <= STARTS_WITHIN,
        "scaling in to {desired}: the first stop began {first:.2} s after the change"
    );
    Ok(())
}

/// Over capacity and back on `runtime`, then three scale steps under load.
async fn over_capacity_and_back(runtime: &str) -> Result<()> {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir()?;
    let cpu_units = instance_cpu_units();
    let server = Server::start_with(runtime, Some(&stack(dir.path(), 3, cpu_units))).await?;
    let result = steps(&server, dir.path(), cpu_units).await;
    result.map_err(|e| anyhow::anyhow!("{e:#}\n--- server log ---\n{}", server.log()))
}

async fn steps(server: &Server, dir: &Path, cpu_units: i64) -> Result<()> {
    server.wait_healthy("whoami", "whoami", 3, SETTLE).await?;
    let instances = server.get("/v1/container-instances").await?;
    let registered = instances[0]["registeredResources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "CPU"))
        .and_then(|r| r["integerValue"].as_i64());
    ensure!(
        registered == Some(cpu_units),
        "the instance registered {registered:?} CPU units, the test expected {cpu_units}"
    );
    let addr = server.listener_addr("web").await?;

    // Over capacity: FIT tasks run, the rest cannot be placed, and the service says so.
    let clock = Instant::now();
    server.apply_ok(&stack(dir, OVER, cpu_units));
    server
        .wait_healthy("whoami", "whoami", FIT as usize, SETTLE)
        .await?;
    eprintln!(
        "scale out to {OVER}: {FIT} fit, all healthy after {:.2} s",
        clock.elapsed().as_secs_f64()
    );
    let svc = server.get("/v1/clusters/default/services/whoami").await?;
    ensure!(
        svc["events"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["message"]
                .as_str()
                .is_some_and(|m| m.contains("unable to place")))),
        "no placement failure event: {}",
        svc["events"]
    );

    // Back under capacity, then out and in again, each step timed, under load.
    let load = Load::start(&addr, 4);
    let timed = async {
        scale_in(server, dir, FIT as usize, 10, cpu_units).await?;
        scale_out(server, dir, &addr, FIT as u32, cpu_units).await?;
        scale_in(server, dir, FIT as usize, 4, cpu_units).await
    }
    .await;
    let report = load.finish().await;
    timed?;
    eprintln!(
        "load: {} ok, {} failed, {} tasks answered",
        report.ok,
        report.failed,
        report.tasks.len()
    );
    ensure!(report.ok > 0, "the load loop got no answer");
    ensure!(
        report.failed == 0,
        "{} requests failed: {:?}",
        report.failed,
        report.errors
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_reacts_at_once_after_going_over_capacity_on_processes() -> Result<()> {
    over_capacity_and_back("process").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_reacts_at_once_after_going_over_capacity_on_docker() -> Result<()> {
    demo_image();
    over_capacity_and_back("docker").await
}
