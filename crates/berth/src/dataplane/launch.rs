//! Finding a data dir's data plane, or starting one: what `berth server` does before
//! anything else of the node starts.
//!
//! A data plane answering on `<data-dir>/dataplane.sock` is used as it is when it runs
//! the server's own executable (same fingerprint, [`super::executable`]) with the same
//! options: its listeners, connections and health states are kept. One running another
//! executable is upgraded: a data plane of the server's executable takes its listening
//! sockets (the discovery DNS's among them), configuration and health over
//! ([`super::handover`]), and no connection is refused ([`upgrade`]; `berth dataplane
//! upgrade` does the same on demand); when that fails, the log says why and the running
//! one serves on. One started with other options is replaced the same way; when the new
//! options' addresses do not allow it (a listener's address taken by the old sockets), it
//! is stopped and a new one started (its listeners close: the log says why). A data plane
//! from before protocol 2 serves no DNS and cannot hand over: it is stopped and replaced
//! (`dns::missing_from`). A pid file or socket left by a data plane that died is stale when
//! nobody holds `<data-dir>/dataplane.lock`, and is removed. A new data plane is the
//! same executable, `berth dataplane run`, in a process group of its own (so a terminal's
//! SIGINT to the server's group does not reach it, and SIGKILL of the server leaves it
//! running), logging to `<data-dir>/dataplane.log`, with `BERTH_DATA_DIR` and
//! `BERTH_DATA_PLANE=1` in its environment.
//!
//! What it does not do: move open client connections (they finish in the old data
//! plane), or upgrade a data plane of another data dir.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::client::RemoteDataPlane;
use super::lock::DataPlaneLock;
use super::protocol::{self, Identity};
use super::{DataPlaneOptions, DataPlanePaths, DATA_PLANE_ENV};

/// How long a starting data plane may take to answer.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// How long a stopping data plane may take to exit (it drains connections first).
const STOP_PATIENCE: Duration = Duration::from_secs(20);
/// Between looks at a starting or stopping data plane.
const POLL: Duration = Duration::from_millis(50);

/// The node's data plane as the server holds it.
pub struct NodeDataPlane {
    pub client: Arc<RemoteDataPlane>,
    pub identity: Identity,
    paths: DataPlanePaths,
}

/// What answers for a data dir now.
#[derive(Debug)]
pub enum Found {
    Running(Box<Identity>),
    /// Nothing runs; stale files were removed.
    Nothing,
}

/// Connects to the data plane of `data_dir`, replacing one started with other options,
/// or starts one.
pub async fn start(
    data_dir: &Path,
    options: &DataPlaneOptions,
    registry: &prometheus::Registry,
) -> Result<NodeDataPlane> {
    let paths = DataPlanePaths::of(data_dir);
    let ours = env!("CARGO_PKG_VERSION");
    let executable = super::executable::fingerprint();
    let identity = match find(&paths).await? {
        Found::Running(identity) => {
            let mut differences = options.differences(&identity.options);
            differences.extend(super::dns::missing_from(&identity));
            let can_hand_over = identity.protocol >= 2;
            if !differences.is_empty() {
                tracing::warn!(
                    pid = identity.pid,
                    "replacing the running data plane: it was started with {}",
                    differences.join(", ")
                );
                let handed = if can_hand_over {
                    upgrade(data_dir, &paths, &identity, options)
                        .await
                        .map_err(|e| {
                            tracing::warn!(
                                error = %format!("{e:#}"),
                                "the new options do not allow a handover; its listeners close and open again"
                            )
                        })
                        .ok()
                } else {
                    None
                };
                match handed {
                    Some(identity) => identity,
                    None => {
                        stop_and_wait(&paths, identity.pid).await?;
                        spawn(data_dir, &paths, options, false).await?
                    }
                }
            } else if can_hand_over && executable.is_some() && identity.executable != executable {
                tracing::info!(
                    pid = identity.pid,
                    data_plane_version = %identity.version,
                    version = ours,
                    "upgrading the running data plane: its executable differs from this server's; the new one takes its listening sockets over"
                );
                match upgrade(data_dir, &paths, &identity, options).await {
                    Ok(new) => new,
                    Err(e) => {
                        tracing::warn!(
                            pid = identity.pid,
                            error = %format!("{e:#}"),
                            "upgrading the data plane failed; the running one serves on"
                        );
                        *identity
                    }
                }
            } else {
                if identity.version != ours {
                    tracing::info!(
                        pid = identity.pid,
                        data_plane_version = %identity.version,
                        "the running data plane is of another berth version; it keeps serving (protocol {})",
                        identity.protocol
                    );
                }
                tracing::info!(
                    pid = identity.pid,
                    "using the running data plane: its listeners, connections and target health carry on"
                );
                *identity
            }
        }
        Found::Nothing => spawn(data_dir, &paths, options, false).await?,
    };
    let client = RemoteDataPlane::connect(&paths.socket, registry).await?;
    Ok(NodeDataPlane {
        client,
        identity,
        paths,
    })
}

impl NodeDataPlane {
    /// Stops the data plane and waits until it exited.
    pub async fn stop(&self) -> Result<()> {
        stop_and_wait(&self.paths, self.identity.pid).await
    }
}

/// What answers on `paths` now; stale files are removed, and a data plane that holds
/// the lock but does not answer within [`START_PATIENCE`] is killed.
pub async fn find(paths: &DataPlanePaths) -> Result<Found> {
    let started = Instant::now();
    loop {
        if let Ok(identity) = protocol::identity(&paths.socket, Duration::from_secs(2)).await {
            return Ok(Found::Running(Box::new(identity)));
        }
        match DataPlaneLock::try_take(&paths.lock)? {
            Some(_free) => {
                for stale in [&paths.socket, &paths.pid] {
                    if std::fs::remove_file(stale).is_ok() {
                        tracing::info!(file = %stale.display(), "removed what a data plane that is gone left");
                    }
                }
                return Ok(Found::Nothing);
            }
            None if started.elapsed() < START_PATIENCE => tokio::time::sleep(POLL).await,
            None => {
                let pid = read_pid(&paths.pid);
                tracing::warn!(
                    ?pid,
                    "the data plane holds its lock but does not answer; killing it"
                );
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                wait_for_exit(paths, pid).await?;
            }
        }
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until nobody holds the lock (the process holding it exited).
async fn wait_for_exit(paths: &DataPlanePaths, pid: Option<i32>) -> Result<()> {
    let started = Instant::now();
    loop {
        if DataPlaneLock::try_take(&paths.lock)?.is_some() {
            return Ok(());
        }
        if started.elapsed() > STOP_PATIENCE {
            bail!(
                "the data plane (pid {}) still runs {STOP_PATIENCE:?} after it was told to stop",
                pid.map_or("unknown".into(), |p| p.to_string())
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Asks the data plane to stop and waits until it exited; one that does not answer is
/// sent SIGTERM.
pub async fn stop_and_wait(paths: &DataPlanePaths, pid: u32) -> Result<()> {
    if protocol::call(
        &paths.socket,
        hyper::Method::POST,
        "/v1/stop",
        None,
        Duration::from_secs(5),
    )
    .await
    .is_err()
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    wait_for_exit(paths, Some(pid as i32)).await
}

/// Replaces the data plane `old` answering on `paths` by one of this executable started
/// with `options`, which takes its listening sockets, configuration and health over.
/// Returns once the new one answers on the socket and the old one exited (or, still
/// draining long connections, after [`STOP_PATIENCE`]). On failure the old one serves
/// on.
pub async fn upgrade(
    data_dir: &Path,
    paths: &DataPlanePaths,
    old: &Identity,
    options: &DataPlaneOptions,
) -> Result<Identity> {
    if old.protocol < 2 {
        bail!(
            "the running data plane (pid {}, berth {}) cannot hand its sockets over; stop the server, stop it (kill {}) and start the server again",
            old.pid,
            old.version,
            old.pid
        );
    }
    let new = spawn(data_dir, paths, options, true).await?;
    let started = Instant::now();
    while process_runs(old.pid) && started.elapsed() < STOP_PATIENCE {
        tokio::time::sleep(POLL).await;
    }
    if process_runs(old.pid) {
        tracing::warn!(
            pid = old.pid,
            "the old data plane is still draining connections"
        );
    }
    tracing::info!(
        old_pid = old.pid,
        new_pid = new.pid,
        "data plane upgraded: the new one serves the same listening sockets"
    );
    Ok(new)
}

/// Whether `pid` names a process that has not exited (a zombie has).
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Starts `berth dataplane` for `data_dir` (with `--take-over` when `take_over`) and
/// waits until it answers.
async fn spawn(
    data_dir: &Path,
    paths: &DataPlanePaths,
    options: &DataPlaneOptions,
    take_over: bool,
) -> Result<Identity> {
    let exe = std::env::current_exe().context("locating the berth executable")?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .with_context(|| format!("opening {}", paths.log.display()))?;
    let mut child = Command::new(&exe)
        .args(["dataplane", "run"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(options.to_args())
        .args(take_over.then_some("--take-over"))
        .env("BERTH_DATA_DIR", data_dir)
        .env(DATA_PLANE_ENV, "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {} dataplane", exe.display()))?;
    let pid = child.id();
    let (exited_tx, exited) = std::sync::mpsc::channel();
    // Reaps the data plane should it exit while this server runs.
    std::thread::spawn(move || {
        let _ = exited_tx.send(child.wait());
    });
    let started = Instant::now();
    loop {
        if let Ok(identity) = protocol::identity(&paths.socket, Duration::from_secs(2)).await {
            if identity.pid == pid {
                tracing::info!(pid, log = %paths.log.display(), "data plane started");
                return Ok(identity);
            }
        }
        if let Ok(status) = exited.try_recv() {
            bail!(
                "the data plane exited at start ({status:?}); {}:\n{}",
                paths.log.display(),
                tail(&paths.log)
            );
        }
        if started.elapsed() > START_PATIENCE {
            bail!(
                "the data plane (pid {pid}) did not answer within {START_PATIENCE:?}; see {}",
                paths.log.display()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last lines of a log, for an error message.
fn tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_files_are_removed_when_nobody_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPlanePaths::of(dir.path());
        std::fs::write(&paths.pid, "999999").unwrap();
        // A socket nobody listens on any more.
        drop(std::os::unix::net::UnixListener::bind(&paths.socket).unwrap());
        assert!(paths.socket.exists());
        assert!(matches!(find(&paths).await.unwrap(), Found::Nothing));
        assert!(!paths.socket.exists(), "the stale socket is removed");
        assert!(!paths.pid.exists(), "the stale pid file is removed");
    }

    #[tokio::test]
    async fn a_held_lock_is_not_taken_twice_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPlanePaths::of(dir.path());
        let held = DataPlaneLock::try_take(&paths.lock).unwrap().expect("free");
        assert!(DataPlaneLock::try_take(&paths.lock).unwrap().is_none());
        drop(held);
        assert!(DataPlaneLock::try_take(&paths.lock).unwrap().is_some());
    }

    #[tokio::test]
    async fn a_running_data_plane_is_found_by_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DataPlanePaths::of(dir.path());
        let (stop, _proxy) = super::super::process::tests_support::serve(dir.path()).await;
        match find(&paths).await.unwrap() {
            Found::Running(identity) => {
                assert_eq!(identity.pid, std::process::id());
                assert_eq!(identity.version, env!("CARGO_PKG_VERSION"));
            }
            Found::Nothing => panic!("the data plane serving the socket was not found"),
        }
        let _ = stop.send(true);
    }
}
