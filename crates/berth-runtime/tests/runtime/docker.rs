//! The Docker runtime against the real engine, with the demo app built into a `FROM
//! scratch` image by the test itself. These tests fail (they do not skip) when the engine
//! is unreachable: berth's CI runs them on machines that have one.

use std::time::{Duration, Instant};

use crate::support::docker_engine::*;
use crate::support::*;
use berth_model::ecs::HealthStatus;
use berth_runtime::docker::{DockerRuntime, DockerRuntimeConfig, OOM_REASON};
use berth_runtime::{ContainerStatus, Runtime};
use futures::StreamExt;
use serde_json::json;

/// A task spec in the test's own cluster.
fn dspec(cluster: &str, id: &str, td: serde_json::Value) -> berth_runtime::TaskSpec {
    let td = if td.is_array() {
        json!({ "containerDefinitions": td })
    } else {
        td
    };
    let mut s = spec_with(id, td);
    s.cluster = cluster.to_string();
    s
}

fn app(name: &str, args: &[&str]) -> serde_json::Value {
    json!({
        "name": name,
        "image": IMAGE,
        "command": args,
        "portMappings": [{"containerPort": 8080}],
        "stopTimeout": 5,
    })
}

async fn all_logs(rt: &DockerRuntime, arn: &str, container: Option<&str>) -> String {
    let mut s = rt.logs(arn, container, false).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn docker_serves_on_a_dynamic_port_and_stops_with_sigterm() {
    let cluster = task_id("serves_on_a_dynamic_");
    let rt = runtime(&cluster).await;
    let id = task_id("dkserve");
    let spec = dspec(&cluster, &id, json!([app("web", &[])]));
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    let c = &s.containers[0];
    assert_eq!(c.status, ContainerStatus::Running);
    assert_eq!(c.network_bindings[0].container_port, 8080);
    let (status, body) = get_when_up(host_port(&s, 0), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("task: {id}")), "{body}");

    let stats = rt.stats(&spec.task_arn).await.unwrap();
    assert!(stats.memory_bytes > 0, "{stats:?}");

    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert_eq!(stopped.containers[0].status, ContainerStatus::Stopped);
    assert_eq!(stopped.containers[0].exit_code, Some(0));
    let logs = all_logs(&rt, &spec.task_arn, Some("web")).await;
    assert!(logs.contains("listening on 0.0.0.0:8080"), "{logs}");
    assert!(logs.contains("got SIGTERM"), "{logs}");

    rt.remove(&spec.task_arn).await.unwrap();
    assert!(containers_of(&spec.task_arn).is_empty());
    assert!(rt
        .list()
        .await
        .unwrap()
        .iter()
        .all(|t| t.task_arn != spec.task_arn));
}

#[tokio::test]
async fn docker_stats_sample_a_tasks_containers_at_once() {
    let cluster = task_id("stats_at_once");
    let rt = runtime(&cluster).await;
    let names = ["a", "b", "c", "d"];
    let containers: Vec<_> = names.iter().map(|n| app(n, &[])).collect();
    let spec = dspec(&cluster, &task_id("dkstats"), json!(containers));
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    assert!(s.all_essential_running(), "{s:?}");
    // The engine answers each container's sample after its next one-second reading:
    // four containers one after the other take four seconds or more.
    let clock = Instant::now();
    let stats = rt.stats(&spec.task_arn).await.unwrap();
    let took = clock.elapsed();
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(
        took < Duration::from_secs(3),
        "sampling {} containers took {took:?}",
        names.len()
    );
    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn docker_sigkill_after_stop_timeout() {
    let cluster = task_id("sigkill_after_stop_t");
    let rt = runtime(&cluster).await;
    let mut c = app("web", &["--ignore-sigterm"]);
    c["stopTimeout"] = json!(1);
    let spec = dspec(&cluster, &task_id("dkkill"), json!([c]));
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    get_when_up(host_port(&s, 0), "/").await;
    let t0 = Instant::now();
    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
    assert_eq!(stopped.containers[0].exit_code, Some(137));
    assert!(stopped.containers[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("SIGKILL"));
    let logs = all_logs(&rt, &spec.task_arn, None).await;
    assert!(logs.contains("ignoring SIGTERM"), "{logs}");
}

#[tokio::test]
async fn docker_oom_kill_gives_the_ecs_reason() {
    let cluster = task_id("oom_kill_gives_the_e");
    let rt = runtime(&cluster).await;
    let mut c = app("hog", &["--alloc-mb", "256"]);
    c["memory"] = json!(32);
    let spec = dspec(&cluster, &task_id("dkoom"), json!([c]));
    let _c = Cleanup(spec.task_arn.clone());
    let mut events = rt.subscribe();
    let s = rt.start(&spec).await.unwrap();
    let end = if s.all_stopped() {
        s
    } else {
        wait_event(&mut events, &spec.task_arn, "stopped", |s| s.all_stopped()).await
    };
    let c = &end.containers[0];
    assert_eq!(c.reason.as_deref(), Some(OOM_REASON), "{c:?}");
    assert_eq!(c.exit_code, Some(137));
    assert_eq!(end.essential_stopped().unwrap().name, "hog");
}

#[tokio::test]
async fn docker_non_essential_exit_leaves_the_task_running_and_essential_exit_stops_it() {
    let cluster = task_id("non_essential_exit_l");
    let rt = runtime(&cluster).await;
    let mut side = app("side", &[]);
    side["essential"] = json!(false);
    let spec = dspec(&cluster, &task_id("dkess"), json!([app("main", &[]), side]));
    let _c = Cleanup(spec.task_arn.clone());
    let (s, after) = start_and_exit_the_side_container(&*rt, &spec).await;
    let mut events = rt.subscribe();
    assert_eq!(after.containers[1].exit_code, Some(5));
    assert_eq!(after.containers[0].status, ContainerStatus::Running);
    assert_eq!(get_when_up(host_port(&s, 0), "/").await.0, 200);

    get_when_up(host_port(&s, 0), "/exit?code=3").await;
    let end = wait_event(&mut events, &spec.task_arn, "all stopped", |s| {
        s.all_stopped()
    })
    .await;
    assert_eq!(end.essential_stopped().unwrap().name, "main");
    assert_eq!(end.containers[0].exit_code, Some(3));
}

#[tokio::test]
async fn docker_depends_on_healthy_waits_for_the_health_check() {
    let cluster = task_id("depends_on_healthy_w");
    let rt = runtime(&cluster).await;
    let mut db = app("db", &[]);
    db["healthCheck"] = json!({
        "command": ["CMD", "berth-whoami", "check", "http://127.0.0.1:8080/health"],
        "interval": 1, "timeout": 2, "retries": 1,
    });
    let mut web = app("web", &[]);
    web["dependsOn"] = json!([{"containerName": "db", "condition": "HEALTHY"}]);
    let spec = dspec(&cluster, &task_id("dkhealthy"), json!([web, db]));
    let _c = Cleanup(spec.task_arn.clone());
    let first = start_until_running(&*rt, &spec, 0, "web running").await;
    assert_eq!(first.containers[1].health, HealthStatus::Healthy);
    rt.stop(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn docker_bad_specs_fail_clearly_and_leave_nothing() {
    let cluster = task_id("bad_specs_fail_clear");
    let rt = runtime(&cluster).await;
    let mut missing = app("web", &[]);
    missing["image"] = json!("berth-no-such-image:1");
    let spec1 = dspec(
        &cluster,
        &task_id("dkmissing"),
        json!([app("ok", &[]), missing]),
    );
    let _c1 = Cleanup(spec1.task_arn.clone());
    let m = start_failure(&*rt, &spec1).await;
    assert!(
        m.contains("berth-no-such-image:1") && m.contains("not present locally"),
        "{m}"
    );
    assert!(containers_of(&spec1.task_arn).is_empty());

    let mut tiny = app("web", &[]);
    tiny["memory"] = json!(4);
    let spec2 = dspec(&cluster, &task_id("dkmem"), json!([tiny]));
    let _c2 = Cleanup(spec2.task_arn.clone());
    let m = start_failure(&*rt, &spec2).await;
    assert!(m.contains("memory 4 MiB"), "{m}");
    assert!(containers_of(&spec2.task_arn).is_empty());

    let mut host = app("web", &[]);
    host["portMappings"] = json!([{"containerPort": 8080, "hostPort": 9090}]);
    let spec3 = dspec(
        &cluster,
        &task_id("dkhostport"),
        json!({"networkMode": "host", "containerDefinitions": [host]}),
    );
    let _c3 = Cleanup(spec3.task_arn.clone());
    let m = start_failure(&*rt, &spec3).await;
    assert!(m.contains("must equal containerPort"), "{m}");
    assert!(containers_of(&spec3.task_arn).is_empty());
    let listed = rt.list().await.unwrap();
    for s in [&spec1, &spec2, &spec3] {
        assert!(listed.iter().all(|t| t.task_arn != s.task_arn));
    }
}

#[tokio::test]
async fn docker_restart_adopts_running_containers() {
    let cluster = task_id("restart_adopts_runni");
    let rt = runtime(&cluster).await;
    let spec = dspec(&cluster, &task_id("dkadopt"), json!([app("web", &[])]));
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    drop(rt);
    let rt = runtime(&cluster).await;
    let listed = rt.list().await.unwrap();
    let t = listed.iter().find(|t| t.task_arn == spec.task_arn).unwrap();
    assert_eq!(t.containers[0].status, ContainerStatus::Running);
    assert_eq!(t.containers[0].runtime_id, s.containers[0].runtime_id);
    assert_eq!(
        t.containers[0].network_bindings,
        s.containers[0].network_bindings
    );
    assert_eq!(containers_of(&spec.task_arn).len(), 1);
    assert_eq!(get_when_up(host_port(t, 0), "/").await.0, 200);
    let stopped = rt.stop(&spec.task_arn).await.unwrap();
    assert_eq!(stopped.containers[0].exit_code, Some(0));
    rt.remove(&spec.task_arn).await.unwrap();
}

#[tokio::test]
async fn docker_host_and_awsvpc_modes_serve() {
    let cluster = task_id("host_and_awsvpc_mode");
    let rt = runtime(&cluster).await;
    let free = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = app("web", &[]);
    c["portMappings"] = json!([{"containerPort": free}]);
    let host = dspec(
        &cluster,
        &task_id("dkhost"),
        json!({"networkMode": "host", "containerDefinitions": [c]}),
    );
    let _c1 = Cleanup(host.task_arn.clone());
    let s = rt.start(&host).await.unwrap();
    assert_eq!(host_port(&s, 0), u32::from(free));
    let (status, body) = get_when_up(free.into(), "/").await;
    assert_eq!(status, 200);
    assert!(body.contains(&format!("port: {free}")), "{body}");
    rt.stop(&host.task_arn).await.unwrap();

    let mut side = app("side", &["--listen", "0.0.0.0:9000"]);
    side["portMappings"] = json!([]);
    // Healthy only if it reaches the web container on localhost.
    side["healthCheck"] = json!({
        "command": ["CMD", "berth-whoami", "check", "http://127.0.0.1:8080/health"],
        "interval": 1, "timeout": 2, "retries": 1,
    });
    let vpc = dspec(
        &cluster,
        &task_id("dkvpc"),
        json!({"networkMode": "awsvpc", "containerDefinitions": [app("web", &[]), side]}),
    );
    let _c2 = Cleanup(vpc.task_arn.clone());
    let mut events = rt.subscribe();
    let s = rt.start(&vpc).await.unwrap();
    let ip = s.containers[0].private_ip.clone().expect("a task IP");
    let b = &s.containers[0].network_bindings[0];
    assert_eq!((b.bind_ip.as_str(), b.host_port), (ip.as_str(), 8080));
    let addr: std::net::IpAddr = ip.parse().unwrap();
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect((addr, 8080)) {
                write!(s, "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("task IP {addr} did not answer");
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    // The second container shares the task's network namespace.
    let shared = wait_event(&mut events, &vpc.task_arn, "side healthy", |s| {
        s.containers[1].health != HealthStatus::Unknown
    })
    .await;
    assert_eq!(shared.containers[1].health, HealthStatus::Healthy);
    rt.stop(&vpc.task_arn).await.unwrap();
}

#[tokio::test]
async fn docker_awsvpc_survives_a_duplicate_network() {
    let cluster = task_id("dup_network");
    // Make sure the image exists (built once per test binary).
    let _ = runtime(&cluster).await;
    let net = format!("berth-test-{cluster}");
    let rt = DockerRuntime::connect(DockerRuntimeConfig {
        resync_interval: Duration::from_secs(2),
        cluster: Some(cluster.clone()),
        awsvpc_network: net.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let networks = || {
        let out = std::process::Command::new("docker")
            .args(["network", "ls", "-q", "--filter"])
            .arg(format!("name=^{net}$"))
            .output()
            .expect("docker CLI");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // Clients creating the network at the same moment can leave several of the same
    // name (the engine checks names only one create at a time), which makes it refuse
    // to start containers on that name.
    // The race is the engine's: create concurrently until it leaves duplicates (each
    // round starts from no network of that name), a bounded number of rounds.
    for _round in 0..20 {
        for id in networks() {
            let _ = std::process::Command::new("docker")
                .args(["network", "rm", &id])
                .output();
        }
        let creators: Vec<_> = (0..8)
            .map(|_| {
                let net = net.clone();
                std::thread::spawn(move || {
                    std::process::Command::new("docker")
                        .args(["network", "create", &net])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        for c in creators {
            c.join().unwrap();
        }
        if networks().len() >= 2 {
            break;
        }
    }
    assert!(
        networks().len() >= 2,
        "20 rounds of concurrent creates made no duplicate network"
    );
    let vpc = dspec(
        &cluster,
        &task_id("dupvpc"),
        json!({"networkMode": "awsvpc", "containerDefinitions": [app("web", &[])]}),
    );
    let _c = Cleanup(vpc.task_arn.clone());
    let s = rt.start(&vpc).await.unwrap();
    assert!(s.containers[0].private_ip.is_some(), "{s:?}");
    assert_eq!(networks().len(), 1, "the unused duplicate was removed");
    rt.stop(&vpc.task_arn).await.unwrap();
    rt.remove(&vpc.task_arn).await.unwrap();
    for id in networks() {
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &id])
            .output();
    }
}

#[tokio::test]
async fn the_default_bridge_has_an_ipv4_gateway_containers_reach() {
    let gw = berth_runtime::docker::bridge_gateway()
        .await
        .expect("the Docker engine answers and its bridge network has a gateway");
    assert!(gw.is_ipv4(), "{gw}");
    // The host holds that address: binding it works.
    let l = std::net::TcpListener::bind((gw, 0)).expect("the gateway is a host address");
    assert_eq!(l.local_addr().unwrap().ip(), gw);
}
