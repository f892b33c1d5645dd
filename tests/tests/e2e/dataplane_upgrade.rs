//! End-to-end tests of upgrading the node's data plane to a new process under load: the
//! new data plane takes the old one's listening sockets (SCM_RIGHTS), configuration and
//! target health, and the old one drains and exits. Under continuous keep-alive load
//! through the quickstart's listener, no request fails; the listener keeps its port, a
//! new data plane pid serves, and target health read right after is still `healthy`.
//!
//! - `berth dataplane upgrade`, twice in a row, while the server runs;
//! - `berth server` restarted from another executable (a copy with bytes appended, so
//!   its fingerprint differs): the server upgrades the data plane by itself;
//! - the first case on the Docker runtime.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::berth_copies::{all_answer, altered_binary};
use anyhow::{ensure, Context, Result};
use berth_testkit::{bin, demo_image, quickstart, Load, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(90);

/// Every target of `service`'s group reads `healthy` through the API now.
async fn all_healthy_now(server: &Server) -> Result<()> {
    let targets = server.targets("whoami").await?;
    ensure!(targets.len() == 3, "{targets:?}");
    for t in &targets {
        ensure!(t["targetHealth"]["state"] == "healthy", "{targets:?}");
    }
    Ok(())
}

/// Runs `berth dataplane upgrade` for `data` and returns what it printed.
async fn upgrade_command(data: &Path) -> Result<String> {
    let data = data.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(bin("berth"))
            .args(["dataplane", "upgrade", "--data-dir"])
            .arg(&data)
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "berth dataplane upgrade: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

async fn upgrade_command_under_load(runtime: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = quickstart(dir.path(), 3);
    let server = Server::launch(&data, Some(&stack), runtime).await?;
    server
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    let addr = server.listener_addr("web").await?;
    let mut pid = server.data_plane_pid().context("a data plane runs")?;

    let load = Load::start(&addr, 4);
    all_answer(&addr, 20).await?;
    for round in 0..2 {
        let printed = upgrade_command(&data).await?;
        let new = server
            .data_plane_pid()
            .context("a data plane runs after the upgrade")?;
        assert_ne!(new, pid, "round {round}: a new data plane serves");
        assert!(
            printed.contains(&format!("pid {pid} → pid {new}")),
            "{printed}"
        );
        all_healthy_now(&server).await?;
        assert_eq!(server.listener_addr("web").await?, addr, "the same port");
        let log = std::fs::read_to_string(data.join("dataplane.log"))?;
        assert!(
            log.contains("serving on the listening sockets handed over"),
            "{log}"
        );
        assert!(
            log.contains(&format!("data plane stopping (handed over to pid {new})")),
            "{log}"
        );
        pid = new;
        all_answer(&addr, 30).await?;
    }
    // The server applies to the new data plane: a fresh configuration pass lands.
    all_answer(&addr, 30).await?;
    let report = load.finish().await;
    println!(
        "dataplane upgrade ({runtime}): {} ok, {} failed",
        report.ok, report.failed
    );
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert!(report.ok > 100, "{report:?}");
    assert_eq!(report.tasks.len(), 3, "{report:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataplane_upgrade_loses_no_request() -> Result<()> {
    upgrade_command_under_load("process").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_dataplane_upgrade_loses_no_request() -> Result<()> {
    demo_image();
    upgrade_command_under_load("docker").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_of_another_executable_upgrades_the_data_plane_without_losing_a_request(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = quickstart(dir.path(), 3);
    let mut first = Server::launch(&data, Some(&stack), "process").await?;
    let before = first
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", first.log()))?;
    let addr = first.listener_addr("web").await?;
    let old = first.data_plane_pid().context("a data plane runs")?;

    let load = Load::start(&addr, 4);
    all_answer(&addr, 20).await?;
    first.signal_and_wait(Signal::SIGTERM)?;
    all_answer(&addr, 30).await?;

    let program_dir = tempfile::tempdir()?;
    let program = altered_binary(program_dir.path())?;
    let second = Server::launch_program(
        &program,
        &data,
        None,
        "process",
        &["--insecure-loopback".to_string()],
    )
    .await?;
    all_healthy_now(&second).await?;
    let log = second.log();
    assert!(log.contains("upgrading the running data plane"), "{log}");
    assert!(log.contains("data plane upgraded"), "{log}");
    let new = second.data_plane_pid().context("a data plane runs")?;
    assert_ne!(new, old, "a data plane of the new executable serves");
    let exe = std::fs::read_link(format!("/proc/{new}/exe"))?;
    assert_eq!(exe, program, "the data plane runs the server's executable");
    assert_eq!(second.listener_addr("web").await?, addr, "the same port");
    let after = second
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", second.log()))?;
    let (mut b, mut a) = (before, after);
    b.sort();
    a.sort();
    assert_eq!(a, b, "the same tasks were adopted");
    all_answer(&addr, 50).await?;
    let report = load.finish().await;
    println!(
        "server of another executable: {} ok, {} failed",
        report.ok, report.failed
    );
    assert_eq!(report.failed, 0, "{:?}", report.errors);
    assert!(report.ok > 100, "{report:?}");
    drop(first);
    Ok(())
}
