//! Helpers shared by the runtime tests: the demo app binary, task specs, HTTP probes.

#![allow(dead_code)]

pub mod docker_engine;
pub mod exec_session;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use berth_runtime::{ContainerStatus, Runtime, RuntimeError, TaskSpec, TaskState};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `berth-whoami` demo binary, built on first use with the cargo running the tests.
pub fn whoami() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| berth_testkit::build_whoami(false))
}

/// A task spec from the JSON of its container definitions.
pub fn spec(id: &str, containers: serde_json::Value) -> TaskSpec {
    spec_with(
        id,
        serde_json::json!({ "containerDefinitions": containers }),
    )
}

/// A task spec from a partial task definition (family and ARN are filled in).
pub fn spec_with(id: &str, mut td: serde_json::Value) -> TaskSpec {
    td["family"] = "test".into();
    td["taskDefinitionArn"] = berth_model::arn::task_definition("test", 1).into();
    td["revision"] = 1.into();
    TaskSpec {
        task_arn: berth_model::arn::task("default", id),
        cluster: "default".into(),
        task_definition: serde_json::from_value(td).expect("valid task definition"),
        secrets: Vec::new(),
    }
}

pub fn whoami_str() -> String {
    whoami().to_string_lossy().into_owned()
}

/// A unique task id per test.
pub fn task_id(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// GET `path` from 127.0.0.1:`port`: (status, body). None if the connection fails.
pub fn get(port: u32, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port as u16)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Retries GET until it answers (the process may still be binding its port).
pub async fn get_when_up(port: u32, path: &str) -> (u16, String) {
    for _ in 0..200 {
        let path = path.to_string();
        if let Some(r) = tokio::task::spawn_blocking(move || get(port, &path))
            .await
            .unwrap()
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answered on port {port}");
}

/// Waits (bounded) for a state change of `task_arn` satisfying `f`.
pub async fn wait_event(
    rx: &mut tokio::sync::broadcast::Receiver<TaskState>,
    task_arn: &str,
    what: &str,
    f: impl Fn(&TaskState) -> bool,
) -> TaskState {
    let fut = async {
        loop {
            match rx.recv().await {
                Ok(s) if s.task_arn == task_arn && f(&s) => return s,
                Ok(_) => {}
                Err(e) => panic!("event stream: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

/// Starts `spec` (every essential container runs when the start returns) and waits until
/// container `idx` is reported running: the task's state at that moment.
pub async fn start_until_running<R: Runtime + ?Sized>(
    rt: &R,
    spec: &TaskSpec,
    idx: usize,
    what: &str,
) -> TaskState {
    let mut events = rt.subscribe();
    let s = rt.start(spec).await.unwrap();
    assert!(s.all_essential_running());
    wait_event(&mut events, &spec.task_arn, what, |s| {
        s.containers[idx].status == ContainerStatus::Running
    })
    .await
}

/// Starts `spec`, which must fail with [`RuntimeError::StartFailed`]: its message.
pub async fn start_failure<R: Runtime + ?Sized>(rt: &R, spec: &TaskSpec) -> String {
    match rt.start(spec).await {
        Err(RuntimeError::StartFailed(m)) => m,
        other => panic!("{other:?}"),
    }
}

/// The host port of container `idx`'s first network binding.
pub fn host_port(s: &TaskState, idx: usize) -> u32 {
    s.containers[idx].network_bindings[0].host_port
}

/// Starts `spec`, whose container 1 is a non-essential demo app, makes that app exit
/// with code 5 and waits until it is reported stopped: the state the start returned and
/// the state then.
pub async fn start_and_exit_the_side_container<R: Runtime + ?Sized>(
    rt: &R,
    spec: &TaskSpec,
) -> (TaskState, TaskState) {
    let mut events = rt.subscribe();
    let s = rt.start(spec).await.unwrap();
    get_when_up(host_port(&s, 1), "/exit?code=5").await;
    let after = wait_event(&mut events, &spec.task_arn, "side stopped", |s| {
        s.containers[1].status == ContainerStatus::Stopped
    })
    .await;
    (s, after)
}

/// Kills every process the tasks under `state_dir` still run, so a failed test leaves no
/// strays behind (the processes live in their own sessions and would outlive the test).
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.0.join("tasks")) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(bytes) = std::fs::read(e.path().join("task.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for p in v["procs"].as_array().into_iter().flatten() {
                if let Some(pid) = p["pid"].as_i64() {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
    }
}
