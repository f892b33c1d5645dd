//! End-to-end test of crashes at 50 moments: `berth server` is SIGKILLed at a random
//! moment after each of 50 applies (scaling the quickstart service, or deploying a new
//! revision of its task definition), and started again on the same data directory each
//! time; its task processes run on through every crash. Afterwards the store answers,
//! every acknowledged apply is there, the service converges to the last one, and the
//! task processes are exactly those of the RUNNING tasks: none duplicated, none orphaned.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_testkit::{quickstart, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(60);
const CRASHES: usize = 50;

/// A small deterministic generator (xorshift), seeded per run and printed, so a failing
/// sequence of moments can be replayed (`BERTH_CRASH_SEED`).
struct Moments(u64);

impl Moments {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// The quickstart with `desired` tasks and its greeting set to `greeting` (a new
/// revision whenever the greeting is new).
fn stack(dir: &Path, desired: u32, greeting: &str) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(quickstart(dir, desired))?
        .replace("value: hello from berth", &format!("value: {greeting}"));
    Ok(serde_yaml_ng::from_str(&text)?)
}

async fn apply(server: &Server, stack: &serde_json::Value) -> Option<serde_json::Value> {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/apply", server.api))
        .json(stack)
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Starts the server on `dir`; a failed start is reported with the end of its log.
async fn launch(dir: &Path) -> Result<Server> {
    Server::launch_with(dir, None, "process", &[])
        .await
        .map_err(|e| {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let mut holders = Vec::new();
            for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                for fd in std::fs::read_dir(p.path().join("fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if std::fs::read_link(fd.path()).is_ok_and(|l| l.starts_with(dir)) {
                        let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                        holders.push(format!(
                            "{:?} {:?} {}",
                            p.file_name(),
                            fd.file_name(),
                            String::from_utf8_lossy(&cmd).replace('\0', " ")
                        ));
                    }
                }
            }
            anyhow::anyhow!(
                "{e}; open by {holders:#?}; the log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_50_moments_lose_no_acknowledged_apply_and_leave_no_duplicate() -> Result<()> {
    let started = Instant::now();
    let data = tempfile::tempdir()?;
    let work = tempfile::tempdir()?;
    // BERTH_CRASH_SEED replays the moments of an earlier run.
    let seed = match std::env::var("BERTH_CRASH_SEED") {
        Ok(v) => v.parse()?,
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos() as u64
                | 1
        }
    };
    println!("moments seed {seed}");
    let mut moments = Moments(seed);
    let mut acknowledged_revisions = Vec::new();

    for crash in 0..CRASHES {
        let mut server = launch(data.path()).await?;
        let desired = 1 + moments.next(3) as u32;
        let greeting = if moments.next(3) == 0 {
            format!("deployment {crash}")
        } else {
            "steady".to_string()
        };
        let answer = apply(&server, &stack(work.path(), desired, &greeting)?).await;
        if let Some(changes) = answer {
            for c in changes.as_array().into_iter().flatten() {
                if c["kind"] == "task-definition" && c["action"] != "unchanged" {
                    acknowledged_revisions.push(c["name"].as_str().unwrap_or("").to_string());
                }
            }
        }
        // The crash moment: while the reconcilers and the agent start, stop and deploy.
        tokio::time::sleep(Duration::from_millis(moments.next(600))).await;
        server.signal_and_wait(Signal::SIGKILL)?;
        // Its tasks run on (dropping the handle would kill them).
        std::mem::forget(server);
    }

    let mut server = launch(data.path()).await?;
    for name in &acknowledged_revisions {
        server
            .get(&format!("/v1/task-definitions/{name}"))
            .await
            .map_err(|e| anyhow::anyhow!("acknowledged {name} is missing: {e}"))?;
    }
    let answer = apply(&server, &stack(work.path(), 2, "converged")?).await;
    assert!(
        answer.is_some(),
        "the final apply failed:\n{}",
        server.log()
    );
    // The service converges to the last apply: two tasks of its revision, healthy, and
    // every task of an earlier life stopped. The processes are then exactly the running
    // tasks' (a shim and the app each): none duplicated, none orphaned.
    let current = server.get("/v1/task-definitions/whoami").await?["taskDefinitionArn"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let settled = berth_testkit::wait_until("the last apply to settle", SETTLE, || async {
        let all = server.get("/v1/tasks").await.ok()?;
        let live: Vec<&serde_json::Value> = all
            .as_array()?
            .iter()
            .filter(|t| t["lastStatus"] != "STOPPED")
            .collect();
        let all_current = live
            .iter()
            .all(|t| t["lastStatus"] == "RUNNING" && t["taskDefinitionArn"] == current.as_str());
        (live.len() == 2 && all_current && server.task_processes().len() == 2 * live.len())
            .then_some(())
    })
    .await;
    settled.map_err(|e| {
        anyhow::anyhow!(
            "{e}: processes {:?}\n{}",
            server.task_processes(),
            server.log()
        )
    })?;
    server
        .wait_healthy("whoami", "whoami", 2, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    println!(
        "{CRASHES} crashes, {} acknowledged deployments, {:?}",
        acknowledged_revisions.len(),
        started.elapsed()
    );
    server.kill_everything();
    Ok(())
}
