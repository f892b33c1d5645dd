//! The process runtime against real processes: the `whoami` demo app under the shim.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use berth_model::ecs::HealthStatus;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{ContainerStatus, Runtime, RuntimeError, TaskSpec, TaskState};
use futures::StreamExt;
use serde_json::json;

struct Fixture {
    dir: tempfile::TempDir,
    _reaper: Reaper,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let reaper = Reaper(dir.path().to_path_buf());
    Fixture {
        dir,
        _reaper: reaper,
    }
}

fn runtime(f: &Fixture) -> Arc<ProcessRuntime> {
    ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: f.dir.path().to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap()
}

fn web(name: &str, extra: &[&str]) -> serde_json::Value {
    let mut command = vec![whoami_str()];
    command.extend(extra.iter().map(|s| s.to_string()));
    json!({
        "name": name,
        "image": "berth/whoami",
        "command": command,
        "portMappings": [{"containerPort": 8080, "name": "http"}],
        "stopTimeout": 5,
    })
}

/// Starts a one-container `web` task (plus `extra` arguments) whose app writes the
/// signals it receives to a file, and waits until it serves: the spec, the state and
/// the file.
async fn start_recording_signals(
    f: &Fixture,
    rt: &ProcessRuntime,
    tag: &str,
    extra: &[&str],
    stop_timeout: Option<u32>,
) -> (TaskSpec, TaskState, PathBuf) {
    let signals = f.dir.path().join("signals");
    let mut args = extra.to_vec();
    args.extend(["--signal-file", signals.to_str().unwrap()]);
    let mut c = web("web", &args);
    if let Some(t) = stop_timeout {
        c["stopTimeout"] = json!(t);
    }
    let spec = spec(&task_id(tag), json!([c]));
    let s = rt.start(&spec).await.unwrap();
    get_when_up(host_port(&s, 0), "/").await;
    (spec, s, signals)
}

#[tokio::test]
async fn serves_on_a_dynamic_port_with_task_environment() {
    let f = fixture();
    let rt = runtime(&f);
    let id = task_id("serve");
    let mut c = web("web", &[]);
    c["environment"] = json!([{"name": "GREETING", "value": "hi"}]);
    c["workingDirectory"] = json!(f.dir.path());
    let spec = spec(&id, json!([c]));
    let s = rt.start(&spec).await.unwrap();
    assert_eq!(s.containers[0].status, ContainerStatus::Running);
    let b = &s.containers[0].network_bindings[0];
    assert_eq!((b.bind_ip.as_str(), b.container_port), ("0.0.0.0", 8080));
    assert_ne!(b.host_port, 0);

    let (status, body) = get_when_up(b.host_port, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("task: {id}")), "{body}");
    assert!(body.contains(&format!("port: {}", b.host_port)), "{body}");

    let pid: i32 = s.containers[0]
        .runtime_id
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    for var in [
        "GREETING=hi".to_string(),
        format!("PORT={}", b.host_port),
        format!("PORT_HTTP={}", b.host_port),
        format!("BERTH_TASK_ARN={}", spec.task_arn),
        "BERTH_CONTAINER_NAME=web".to_string(),
    ] {
        assert!(environ.split('\0').any(|v| v == var), "{var} missing");
    }
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, f.dir.path().canonicalize().unwrap());

    let listed = rt.list().await.unwrap();
    assert_eq!(listed, vec![s.clone()]);
    // Starting the same task again does not start a second copy.
    assert_eq!(rt.start(&spec).await.unwrap(), s);

    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert_eq!(stopped.containers[0].status, ContainerStatus::Stopped);
    assert_eq!(stopped.containers[0].exit_code, Some(0));

    let mut logs = rt.logs(&spec.task_arn, None, false).await.unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = logs.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("listening on 0.0.0.0:"), "{text}");
    assert!(text.contains("got SIGTERM"), "{text}");

    rt.remove(&spec.task_arn).await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
    assert!(!rt.tasks_dir().join(&id).exists());
}

#[tokio::test]
async fn stop_sends_sigterm_and_records_the_exit_code() {
    let f = fixture();
    let rt = runtime(&f);
    let (spec, _, signals) = start_recording_signals(&f, &rt, "sigterm", &[], None).await;
    let t0 = Instant::now();
    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "waited for the stop timeout"
    );
    let c = &stopped.containers[0];
    assert_eq!(c.exit_code, Some(0));
    assert!(c.reason.as_deref().unwrap().contains("SIGTERM"), "{c:?}");
    assert_eq!(std::fs::read_to_string(&signals).unwrap(), "SIGTERM\n");
    // Stopping again returns the same final state.
    assert_eq!(rt.stop(&spec.task_arn).await.unwrap(), stopped);
}

#[tokio::test]
async fn ignored_sigterm_is_followed_by_sigkill_after_stop_timeout() {
    let f = fixture();
    let rt = runtime(&f);
    let (spec, _, signals) =
        start_recording_signals(&f, &rt, "sigkill", &["--ignore-sigterm"], Some(1)).await;
    let t0 = Instant::now();
    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    let c = &stopped.containers[0];
    assert_eq!(c.exit_code, Some(137));
    assert!(c.reason.as_deref().unwrap().contains("SIGKILL"), "{c:?}");
    assert_eq!(std::fs::read_to_string(&signals).unwrap(), "SIGTERM\n");
}

#[tokio::test]
async fn essential_exit_stops_the_task() {
    let f = fixture();
    let rt = runtime(&f);
    let side_signals = f.dir.path().join("side");
    let mut side = web("side", &["--signal-file", side_signals.to_str().unwrap()]);
    side["essential"] = json!(false);
    let spec = spec(&task_id("essential"), json!([web("app", &[]), side]));
    let mut events = rt.subscribe();
    let s = rt.start(&spec).await.unwrap();
    assert!(s.all_essential_running());
    get_when_up(host_port(&s, 1), "/").await;
    assert_eq!(get_when_up(host_port(&s, 0), "/exit?code=3").await.0, 200);

    let end = wait_event(&mut events, &spec.task_arn, "all stopped", |s| {
        s.all_stopped()
    })
    .await;
    assert_eq!(end.essential_stopped().unwrap().name, "app");
    assert_eq!(end.containers[0].exit_code, Some(3));
    assert_eq!(end.containers[1].exit_code, Some(0));
    assert_eq!(std::fs::read_to_string(&side_signals).unwrap(), "SIGTERM\n");
    assert_eq!(rt.list().await.unwrap(), vec![end]);
}

#[tokio::test]
async fn non_essential_exit_leaves_the_task_running() {
    let f = fixture();
    let rt = runtime(&f);
    let mut side = web("side", &[]);
    side["essential"] = json!(false);
    let spec = spec(&task_id("nonessential"), json!([web("app", &[]), side]));
    let (s, after) = start_and_exit_the_side_container(&*rt, &spec).await;
    assert_eq!(after.containers[1].exit_code, Some(5));
    assert_eq!(after.containers[0].status, ContainerStatus::Running);
    assert!(after.essential_stopped().is_none());
    assert_eq!(get_when_up(host_port(&s, 0), "/").await.0, 200);
    rt.stop(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn health_check_turns_healthy_then_unhealthy() {
    let f = fixture();
    let rt = runtime(&f);
    // Healthy for 6 s: room for the first 1 s check to land first on a loaded machine.
    let mut c = web("web", &["--unhealthy-after", "6"]);
    c["healthCheck"] = json!({
        "command": ["CMD-SHELL", format!("{} check http://127.0.0.1:$PORT/health", whoami_str())],
        "interval": 1, "timeout": 2, "retries": 2,
    });
    let spec = spec(&task_id("health"), json!([c]));
    let mut events = rt.subscribe();
    let s = rt.start(&spec).await.unwrap();
    assert_eq!(s.health(), HealthStatus::Unknown);
    let healthy = wait_event(&mut events, &spec.task_arn, "healthy", |s| {
        s.containers[0].health != HealthStatus::Unknown
    })
    .await;
    assert_eq!(healthy.containers[0].health, HealthStatus::Healthy);
    assert_eq!(healthy.health(), HealthStatus::Healthy);
    let sick = wait_event(&mut events, &spec.task_arn, "unhealthy", |s| {
        s.containers[0].health != HealthStatus::Healthy
    })
    .await;
    assert_eq!(sick.containers[0].health, HealthStatus::Unhealthy);
    assert_eq!(sick.containers[0].status, ContainerStatus::Running);
    rt.stop(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn depends_on_healthy_waits_for_the_dependency() {
    let f = fixture();
    let rt = runtime(&f);
    let mut db = web("db", &[]);
    db["healthCheck"] = json!({
        "command": ["CMD-SHELL", format!("{} check http://127.0.0.1:$PORT/health", whoami_str())],
        "interval": 1, "timeout": 2, "retries": 1,
    });
    let mut app = web("app", &[]);
    app["dependsOn"] = json!([{"containerName": "db", "condition": "HEALTHY"}]);
    let spec = spec(&task_id("dephealthy"), json!([app, db]));
    let first_app_run = start_until_running(&*rt, &spec, 0, "app running").await;
    assert_eq!(first_app_run.containers[1].health, HealthStatus::Healthy);
    rt.stop(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn depends_on_success_runs_after_init_and_fails_when_it_fails() {
    let f = fixture();
    let rt = runtime(&f);
    let init = |code: i32| {
        json!({
            "name": "init", "image": "busybox", "essential": false,
            "entryPoint": ["/bin/sh", "-c"], "command": [format!("echo init; exit {code}")],
        })
    };
    let mut app = web("app", &[]);
    app["dependsOn"] = json!([{"containerName": "init", "condition": "SUCCESS"}]);

    let ok = spec(&task_id("depok"), json!([app.clone(), init(0)]));
    let s = rt.start(&ok).await.unwrap();
    assert_eq!(s.containers[1].status, ContainerStatus::Stopped);
    assert_eq!(s.containers[1].exit_code, Some(0));
    assert_eq!(s.containers[0].status, ContainerStatus::Running);
    rt.stop(&ok.task_arn).await.unwrap();

    let bad = spec(&task_id("depbad"), json!([app, init(2)]));
    let err = rt.start(&bad).await.unwrap_err();
    let RuntimeError::StartFailed(msg) = err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("init") && msg.contains("code Some(2)"),
        "{msg}"
    );
    let listed = rt.list().await.unwrap();
    let t = listed.iter().find(|t| t.task_arn == bad.task_arn).unwrap();
    assert!(t.all_stopped());
    assert_eq!(
        t.containers[0].runtime_id, None,
        "app must not have started"
    );
}

#[tokio::test]
async fn start_failures_name_the_container() {
    let f = fixture();
    let rt = runtime(&f);
    let none = spec(&task_id("nocmd"), json!([{"name": "web", "image": "x"}]));
    let m = start_failure(&*rt, &none).await;
    assert!(m.contains("web") && m.contains("entryPoint"), "{m}");
    let missing = spec(
        &task_id("noexe"),
        json!([{"name": "web", "image": "x", "command": ["/nonexistent/program"]}]),
    );
    let m = start_failure(&*rt, &missing).await;
    assert!(
        m.contains("web") && m.contains("/nonexistent/program"),
        "{m}"
    );
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let mut c = web("web", &[]);
    c["portMappings"] = json!([{"containerPort": 8080, "hostPort": port}]);
    let m = start_failure(&*rt, &spec(&task_id("busy"), json!([c]))).await;
    assert!(m.contains("already in use"), "{m}");
}

#[tokio::test]
async fn a_new_runtime_adopts_running_tasks() {
    let f = fixture();
    let rt = runtime(&f);
    let (spec, s, signals) = start_recording_signals(&f, &rt, "adopt", &[], None).await;
    drop(rt);

    let rt = runtime(&f);
    let listed = rt.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].containers[0].status, ContainerStatus::Running);
    assert_eq!(
        listed[0].containers[0].runtime_id,
        s.containers[0].runtime_id
    );
    assert_eq!(
        listed[0].containers[0].network_bindings,
        s.containers[0].network_bindings
    );
    assert_eq!(get_when_up(host_port(&s, 0), "/").await.0, 200);

    // The adopted task is watched: an exit is noticed and the stop is recorded.
    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert_eq!(stopped.containers[0].exit_code, Some(0));
    assert_eq!(std::fs::read_to_string(&signals).unwrap(), "SIGTERM\n");
}

#[tokio::test]
async fn an_exit_while_no_runtime_runs_is_recorded() {
    let f = fixture();
    let rt = runtime(&f);
    let spec = spec(&task_id("offline"), json!([web("web", &[])]));
    let s = rt.start(&spec).await.unwrap();
    let dir = rt.tasks_dir().join(spec.task_id()).join("web");
    drop(rt);
    get_when_up(host_port(&s, 0), "/exit?code=4").await;
    // No runtime is alive to tell us: wait for the shim's record to appear.
    let mut waited = 0;
    while !dir.join("exit.json").exists() {
        assert!(waited < 200, "the shim never recorded the exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }

    let rt = runtime(&f);
    let listed = rt.list().await.unwrap();
    let c = &listed[0].containers[0];
    assert_eq!(c.status, ContainerStatus::Stopped);
    assert_eq!(c.exit_code, Some(4));
    assert!(c.reason.as_deref().unwrap().contains("code 4"), "{c:?}");
}

#[tokio::test]
async fn stats_report_memory_and_cpu() {
    let f = fixture();
    let rt = runtime(&f);
    let spec = spec(
        &task_id("stats"),
        json!([web("web", &["--alloc-mb", "24"])]),
    );
    let s = rt.start(&spec).await.unwrap();
    get_when_up(host_port(&s, 0), "/").await;
    let st = rt.stats(&spec.task_arn).await.unwrap();
    assert!(st.memory_bytes >= 24 * 1024 * 1024, "{st:?}");
    assert!(st.cpu_units >= 0.0 && st.cpu_units.is_finite(), "{st:?}");
    rt.stop(&spec.task_arn).await.unwrap();
    assert!(matches!(
        rt.stats("arn:nope").await,
        Err(RuntimeError::UnknownTask(_))
    ));
}

#[tokio::test]
async fn followed_logs_end_when_the_container_stops() {
    let f = fixture();
    let rt = runtime(&f);
    let spec = spec(&task_id("logs"), json!([web("web", &[])]));
    let s = rt.start(&spec).await.unwrap();
    let mut logs = rt.logs(&spec.task_arn, Some("web"), true).await.unwrap();
    get_when_up(host_port(&s, 0), "/sleep?ms=1").await;
    let rt2 = rt.clone();
    let arn = spec.task_arn.clone();
    let stopper = tokio::spawn(async move { rt2.stop(&arn).await.unwrap() });
    let collected = tokio::time::timeout(Duration::from_secs(20), async {
        let mut text = Vec::new();
        while let Some(chunk) = logs.next().await {
            text.extend_from_slice(&chunk.unwrap());
        }
        String::from_utf8(text).unwrap()
    })
    .await
    .expect("the followed log stream ended");
    stopper.await.unwrap();
    assert!(collected.contains("sleeping 1 ms"), "{collected}");
    assert!(collected.contains("exiting"), "{collected}");
    assert!(matches!(
        rt.logs(&spec.task_arn, Some("nope"), false).await,
        Err(RuntimeError::UnknownContainer { .. })
    ));
}
