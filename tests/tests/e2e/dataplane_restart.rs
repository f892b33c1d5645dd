//! End-to-end tests of the node's data plane outliving `berth server`: under continuous
//! load through the quickstart's listener, the server is stopped (SIGTERM), replaced by
//! another copy of the binary, or killed (SIGKILL), and started again on the same data
//! dir. No request fails; the listener keeps its port and the data plane its pid; the
//! tasks are adopted; target health read through the API right after the restart is
//! still `healthy` (the data plane kept checking while the server was away).

use std::path::Path;
use std::time::Duration;

use crate::berth_copies::{all_answer, copied_binary};
use anyhow::{ensure, Context, Result};
use berth_testkit::{demo_image, quickstart, wait_until, Load, Server};
use nix::sys::signal::Signal;

const SETTLE: Duration = Duration::from_secs(90);

/// How the first server goes away, and which binary starts next.
#[derive(Clone, Copy, Debug)]
enum Restart {
    Sigterm,
    Upgrade,
    Sigkill,
}

async fn restart_under_load(runtime: &str, how: Restart) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let stack = quickstart(dir.path(), 3);
    // The upgrade starts a second copy of the binary; both copies are made now, so they
    // hold the same bytes even if the build output changes while the test runs (a copy
    // of other bytes would rightly upgrade the data plane instead of keeping it).
    let (first_dir, second_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let programs = match how {
        Restart::Upgrade => Some((
            copied_binary(first_dir.path())?,
            copied_binary(second_dir.path())?,
        )),
        Restart::Sigterm | Restart::Sigkill => None,
    };
    let mut first = match &programs {
        Some((program, _)) => {
            Server::launch_program(
                program,
                &data,
                Some(&stack),
                runtime,
                &["--insecure-loopback".to_string()],
            )
            .await?
        }
        None => Server::launch(&data, Some(&stack), runtime).await?,
    };
    let before = first
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", first.log()))?;
    let addr = first.listener_addr("web").await?;
    let data_plane = first
        .data_plane_pid()
        .context("a data plane process runs")?;
    ensure!(
        !first.task_processes().contains(&data_plane),
        "the data plane is not counted as a task"
    );

    let load = Load::start(&addr, 4);
    all_answer(&addr, 20).await?;
    first.signal_and_wait(match how {
        Restart::Sigkill => Signal::SIGKILL,
        Restart::Sigterm | Restart::Upgrade => Signal::SIGTERM,
    })?;
    if !matches!(how, Restart::Sigkill) {
        let log = first.log();
        assert!(log.contains("the data plane keeps serving"), "{log}");
    }
    // No server: the data plane serves on.
    all_answer(&addr, 50).await?;

    let second = match &programs {
        Some((_, program)) => {
            Server::launch_program(
                program,
                &data,
                None,
                runtime,
                &["--insecure-loopback".to_string()],
            )
            .await?
        }
        None => Server::launch(&data, None, runtime).await?,
    };
    // Right after the start: health as the data plane kept it, never back to initial.
    let targets = second.targets("whoami").await?;
    assert_eq!(targets.len(), 3, "{targets:?}");
    for t in &targets {
        assert_eq!(t["targetHealth"]["state"], "healthy", "{targets:?}");
    }
    let after = second
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", second.log()))?;
    let (mut b, mut a) = (before.clone(), after.clone());
    b.sort();
    a.sort();
    assert_eq!(a, b, "the same tasks were adopted");
    assert_eq!(
        second.listener_addr("web").await?,
        addr,
        "the listener kept its port"
    );
    assert_eq!(
        second.data_plane_pid(),
        Some(data_plane),
        "the same data plane serves; the second server's log:\n{}",
        second.log()
    );
    assert!(
        second.log().contains("using the running data plane"),
        "{}",
        second.log()
    );
    // Load continues across the new server's first reconcile passes.
    all_answer(&addr, 50).await?;
    let report = load.finish().await;
    println!(
        "{how:?} ({runtime}): {} ok, {} failed",
        report.ok, report.failed
    );
    assert_eq!(report.failed, 0, "{how:?}: {:?}", report.errors);
    assert!(report.ok > 100, "{report:?}");
    assert_eq!(report.tasks.len(), 3, "{report:?}");
    drop(first);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_start_again_loses_no_request() -> Result<()> {
    restart_under_load("process", Restart::Sigterm).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_takes_over_without_losing_a_request() -> Result<()> {
    restart_under_load("process", Restart::Upgrade).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_start_again_loses_no_request() -> Result<()> {
    restart_under_load("process", Restart::Sigkill).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_sigterm_and_start_again_loses_no_request() -> Result<()> {
    demo_image();
    restart_under_load("docker", Restart::Sigterm).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_a_new_binary_takes_over_without_losing_a_request() -> Result<()> {
    demo_image();
    restart_under_load("docker", Restart::Upgrade).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_sigkill_and_start_again_loses_no_request() -> Result<()> {
    demo_image();
    restart_under_load("docker", Restart::Sigkill).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_with_no_task_stops_its_data_plane() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = Server::start_in(dir.path(), None).await?;
    let pid = server
        .data_plane_pid()
        .context("a data plane process runs")?;
    server.signal_and_wait(Signal::SIGTERM)?;
    wait_until(
        "the data plane to exit",
        Duration::from_secs(20),
        || async {
            (!Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| {
                        s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z'))
                    })
                    .unwrap_or(true))
            .then_some(())
        },
    )
    .await?;
    assert!(!dir.path().join("dataplane.sock").exists());
    assert!(!dir.path().join("dataplane.pid").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_other_options_replaces_the_data_plane_and_says_why() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut first = Server::start_in(dir.path(), None).await?;
    let old = first
        .data_plane_pid()
        .context("a data plane process runs")?;
    first.signal_and_wait(Signal::SIGKILL)?;
    let second = Server::launch_with(
        dir.path(),
        None,
        "process",
        &["--mesh-ip".to_string(), "127.0.0.2".to_string()],
    )
    .await?;
    let new = second
        .data_plane_pid()
        .context("a data plane process runs")?;
    assert_ne!(new, old, "a new data plane replaced the old one");
    let log = second.log();
    assert!(log.contains("replacing the running data plane"), "{log}");
    Ok(())
}
