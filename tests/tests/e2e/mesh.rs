//! End-to-end tests of service discovery and the mesh with tasks as local processes,
//! through the real `berth` binary: `frontend` calls `backend` by its client alias
//! through the node's mesh proxy; DNS answers for `backend.internal`; a rolling
//! deployment, a killed task and a task answering 503 of the called service lose no
//! request of the caller.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::{
    called_tasks, mesh_stack, running_task_ids, unique_loopback, wait_until, Load, MeshStack,
    Server,
};
use nix::sys::signal::Signal;
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(90);

/// A server whose DNS and mesh proxy serve on an address of its own, with `stack`
/// applied.
async fn mesh_server(dir: &std::path::Path, stack: &MeshStack) -> Result<(Server, IpAddr)> {
    let ip = stack.mesh_ip;
    let server = Server::launch_with(
        dir,
        Some(&stack.path),
        "process",
        &[
            "--dns-listen".into(),
            format!("{ip}:0"),
            "--mesh-ip".into(),
            ip.to_string(),
        ],
    )
    .await?;
    Ok((server, ip))
}

/// The endpoints of `service`'s mesh ports: (task id, health state, ejected).
async fn mesh_endpoints(server: &Server, service: &str) -> Vec<(String, String, bool)> {
    let Ok(v) = server
        .get(&format!(
            "/v1/clusters/default/services/{service}/endpoints"
        ))
        .await
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    collect_endpoints(&v, &mut out);
    out
}

fn collect_endpoints(v: &Value, out: &mut Vec<(String, String, bool)>) {
    match v {
        Value::Object(m) if m.contains_key("taskId") && m.contains_key("health") => out.push((
            m["taskId"].as_str().unwrap_or("").to_string(),
            m["health"]["state"].as_str().unwrap_or("").to_string(),
            m["ejected"].as_bool().unwrap_or(false),
        )),
        Value::Object(m) => m.values().for_each(|x| collect_endpoints(x, out)),
        Value::Array(a) => a.iter().for_each(|x| collect_endpoints(x, out)),
        _ => {}
    }
}

fn dig(server: &std::net::SocketAddr, name: &str, kind: &str) -> Vec<String> {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), name, kind, "+short"])
        .output()
        .expect("dig runs (install dnsutils)");
    assert!(out.status.success(), "dig failed: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_calls_backend_by_its_alias_and_dns_answers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 2)?;
    let (server, ip) = mesh_server(dir.path(), &stack).await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let backends = wait_until("two running backend tasks", SETTLE, || async {
        let ids = running_task_ids(&server.service_tasks("backend").await.ok()?);
        (ids.len() == 2).then_some(ids)
    })
    .await?;
    let front = server.listener_addr("front").await?;
    // Both backend tasks answer the frontend's calls.
    let seen = wait_until("both backends answering", SETTLE, || async {
        let seen = called_tasks(&front, 20).await.ok()?;
        (seen == backends).then_some(seen)
    })
    .await?;
    assert_eq!(seen.len(), 2);

    // DNS: the alias is the node's mesh proxy; SRV names each backend's endpoint.
    let dns: std::net::SocketAddr = std::fs::read_to_string(dir.path().join("dns.addr"))?
        .trim()
        .parse()?;
    assert_eq!(dig(&dns, "backend", "A"), vec![ip.to_string()]);
    let srv = dig(&dns, "backend.internal", "SRV");
    assert_eq!(srv.len(), 2, "{srv:?}");
    let tasks = server.service_tasks("backend").await?;
    for t in &tasks {
        let port = t["containers"][0]["networkBindings"][0]["hostPort"]
            .as_u64()
            .unwrap();
        assert!(
            srv.iter().any(|r| r.starts_with(&format!("1 1 {port} "))),
            "{port} in {srv:?}"
        );
    }
    let target = srv[0].split_whitespace().nth(3).unwrap();
    assert_eq!(dig(&dns, target, "A"), vec!["127.0.0.1".to_string()]);
    // Names berth does not serve are not answered from its zone.
    assert!(dig(&dns, "nothing.internal", "A").is_empty());

    // The calls crossed the mesh over mutual TLS: the backend's inbound proxy forwarded
    // them, and the callers, local processes, presented this node's identity.
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    let inbound: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("berth_mesh_inbound_connections_total{")
                && l.contains("service=\"backend\"")
                && l.contains("/ns/_berth/sa/node-")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(inbound >= 1.0, "mesh inbound connections: {metrics}");

    // What the mesh sees.
    let out = server.cli(&["get", "endpoints", "backend"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for id in &backends {
        assert!(text.contains(id.as_str()), "{id} in {text}");
    }
    // Settled, the reconcilers pass about once a second with the mesh too (its
    // certificates are issued once, not on every pass).
    server.assert_settled_passes(Duration::from_secs(3)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_a_killed_task_and_a_failing_task_of_the_called_service_lose_no_request(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 2)?;
    let (server, _) = mesh_server(dir.path(), &stack).await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let front = server.listener_addr("front").await?;
    wait_until("the frontend reaching a backend", SETTLE, || async {
        called_tasks(&front, 3).await.ok()
    })
    .await?;
    let first = running_task_ids(&server.service_tasks("backend").await?);

    // A rolling deployment of the backend under continuous frontend traffic.
    let load = Load::start(&front, 4);
    let v2 = PathBuf::from(&stack.path).with_file_name("v2.yaml");
    std::fs::write(
        &v2,
        std::fs::read_to_string(&stack.path)?.replace("value: backend v1", "value: backend v2"),
    )?;
    let changes = server.apply_ok(&v2);
    assert!(changes.contains("backend:2"), "{changes}");
    let second = wait_until("the backend deployment to complete", SETTLE, || async {
        let tasks = server.service_tasks("backend").await.ok()?;
        let running: Vec<&Value> = tasks
            .iter()
            .filter(|t| t["lastStatus"] == "RUNNING")
            .collect();
        let done = running.len() == 2
            && running.iter().all(|t| {
                t["taskDefinitionArn"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with(":2")
            });
        done.then(|| running_task_ids(&tasks))
    })
    .await?;
    assert!(
        second.is_disjoint(&first),
        "every backend task was replaced"
    );

    // A backend task killed outright.
    let tasks = server.service_tasks("backend").await?;
    let victim = tasks
        .iter()
        .find(|t| t["lastStatus"] == "RUNNING")
        .context("a running backend")?;
    let pid: i32 = victim["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .parse()?;
    let victim_id = victim["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL)?;
    wait_until("a replacement backend", SETTLE, || async {
        let ids = running_task_ids(&server.service_tasks("backend").await.ok()?);
        (ids.len() == 2 && !ids.contains(&victim_id)).then_some(())
    })
    .await?;

    // A backend task that answers 503 to everything, once both are healthy in the
    // mesh: retried on the other, then ejected.
    wait_until("two healthy backends in the mesh", SETTLE, || async {
        let eps = mesh_endpoints(&server, "backend").await;
        let healthy: BTreeSet<&String> = eps
            .iter()
            .filter(|(_, h, _)| h == "healthy")
            .map(|(id, _, _)| id)
            .collect();
        (healthy.len() == 2 && !healthy.contains(&victim_id)).then_some(())
    })
    .await?;
    let tasks = server.service_tasks("backend").await?;
    let sick = tasks
        .iter()
        .find(|t| t["lastStatus"] == "RUNNING")
        .context("a running backend")?;
    let sick_id = sick["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let port = sick["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap();
    let r = reqwest::get(format!("http://127.0.0.1:{port}/fail?status=503")).await?;
    assert!(r.status().is_success());
    wait_until("the failing backend ejected", SETTLE, || async {
        let eps = mesh_endpoints(&server, "backend").await;
        eps.iter()
            .any(|(id, _, ejected)| *id == sick_id && *ejected)
            .then_some(())
    })
    .await?;
    let report = load.finish().await;
    eprintln!(
        "mesh under change: {} ok, {} failed",
        report.ok, report.failed
    );
    assert!(report.ok > 0);
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    assert!(metrics.contains("berth_mesh_"), "mesh metrics exported");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mesh_settings_are_refused_naming_the_field_and_store_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 1)?;
    let (server, _) = mesh_server(dir.path(), &stack).await?;
    let good = std::fs::read_to_string(&stack.path)?;
    let specs = || async {
        let v = server.get("/v1/services").await?;
        let list = v
            .as_array()
            .cloned()
            .or_else(|| v["services"].as_array().cloned());
        let specs: Vec<(Value, Value, Value)> = list
            .context("a list of services")?
            .iter()
            .map(|s| {
                (
                    s["serviceName"].clone(),
                    s["taskDefinition"].clone(),
                    s["serviceConnectConfiguration"].clone(),
                )
            })
            .collect();
        anyhow::Ok((specs, server.get("/v1/namespaces").await?))
    };
    let before = specs().await?;
    assert_eq!(before.0.len(), 2);
    let cases = [
        (
            "a namespace that does not exist",
            good.replace("namespace: internal\n      services:", "namespace: nowhere\n      services:"),
            "nowhere",
        ),
        (
            "a portName the task definition does not have",
            good.replace("- portName: http", "- portName: grpc"),
            "portName",
        ),
        (
            "a client alias another service claims",
            good.replace(
                "    serviceConnectConfiguration:\n      enabled: true\n      namespace: internal\n    loadBalancers:",
                &format!(
                    "    serviceConnectConfiguration:\n      enabled: true\n      namespace: internal\n      services:\n        - portName: http\n          discoveryName: frontend\n          clientAliases:\n            - port: {}\n              dnsName: backend\n    loadBalancers:",
                    stack.alias_port
                ),
            ),
            "clientAliases",
        ),
    ];
    for (what, text, field) in cases {
        assert_ne!(text, good, "{what}: the stack changed");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, text)?;
        let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{what}: applied: {said}");
        assert!(said.contains(field), "{what}: {said}");
        assert_eq!(specs().await?, before, "{what}: nothing stored");
    }
    Ok(())
}

/// The mesh inbound listener of the server's node, from its container instance.
async fn mesh_inbound(server: &Server) -> Result<String> {
    let v = server.get("/v1/container-instances").await?;
    v[0]["attributes"]["berth.mesh-inbound"]
        .as_str()
        .map(str::to_string)
        .context("the berth.mesh-inbound attribute")
}

/// `openssl s_client` against the inbound listener for a backend endpoint's server name,
/// with `extra` arguments; returns everything it printed.
fn s_client(inbound: &str, extra: &[&str]) -> String {
    // -ign_eof: wait for the server to close, so an alert it sends after the client's
    // certificate (TLS 1.3 checks it after the handshake's last flight) is read.
    let out = std::process::Command::new("timeout")
        .args([
            "10", "openssl", "s_client", "-ign_eof", "-connect", inbound, "-tls1_3",
        ])
        .args(["-servername", "t0-0.backend.internal.mesh"])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs (install openssl)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The serial number of the certificate the inbound listener presents.
fn presented_serial(inbound: &str) -> Option<String> {
    let printed = s_client(inbound, &[]);
    let start = printed.find("-----BEGIN CERTIFICATE-----")?;
    let end = printed.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let mut x509 = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    x509.stdin
        .take()?
        .write_all(&printed.as_bytes()[start..end])
        .ok()?;
    let out = x509.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn handshake_failures(server: &Server) -> Result<f64> {
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    Ok(metrics
        .lines()
        .find(|l| l.starts_with("berth_mesh_tls_handshake_failures_total{side=\"inbound\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_proxy_refuses_callers_without_a_certificate_of_the_mesh_authority(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 1)?;
    let (server, _) = mesh_server(dir.path(), &stack).await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let front = server.listener_addr("front").await?;
    wait_until("the frontend reaching the backend", SETTLE, || async {
        called_tasks(&front, 1).await.ok()
    })
    .await?;
    let inbound = mesh_inbound(&server).await?;
    let before = handshake_failures(&server).await?;

    // No client certificate.
    let printed = s_client(&inbound, &[]);
    assert!(printed.contains("certificate required"), "{printed}");
    // The backend's identity, as berth's authority issued it, is what the node presents.
    assert!(printed.contains("CN = backend"), "{printed}");

    // A certificate claiming a mesh identity, from another authority.
    let key = dir.path().join("intruder.key");
    let cert = dir.path().join("intruder.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=intruder"])
        .args([
            "-addext",
            "subjectAltName=URI:spiffe://default/ns/internal/sa/frontend",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    assert!(made.status.success(), "{made:?}");
    let printed = s_client(
        &inbound,
        &[
            "-cert",
            &cert.to_string_lossy(),
            "-key",
            &key.to_string_lossy(),
        ],
    );
    assert!(
        printed.contains("alert certificate unknown") || printed.contains("alert unknown ca"),
        "{printed}"
    );
    let after = handshake_failures(&server).await?;
    assert!(
        after >= before + 2.0,
        "handshake failures {before} -> {after}"
    );
    // The frontend's calls, which carry berth's certificates, still go through.
    called_tasks(&front, 5).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_certificates_rotate_under_load_without_a_failed_request() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 2)?;
    let ip = stack.mesh_ip;
    // Certificates valid 4 s are renewed every 2 s.
    let server = Server::launch_with(
        dir.path(),
        Some(&stack.path),
        "process",
        &[
            "--dns-listen".into(),
            format!("{ip}:0"),
            "--mesh-ip".into(),
            ip.to_string(),
            "--mesh-certificate-validity".into(),
            "4".into(),
        ],
    )
    .await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let front = server.listener_addr("front").await?;
    wait_until("both backends answering", SETTLE, || async {
        (called_tasks(&front, 10).await.ok()?.len() == 2).then_some(())
    })
    .await?;
    let inbound = mesh_inbound(&server).await?;
    let load = Load::start(&front, 4);
    // Three different certificates presented one after another: two rotations.
    let mut serials = BTreeSet::new();
    wait_until("two certificate rotations", Duration::from_secs(30), || {
        if let Some(s) = presented_serial(&inbound) {
            serials.insert(s);
        }
        let done = serials.len() >= 3;
        async move { done.then_some(()) }
    })
    .await?;
    let report = load.finish().await;
    eprintln!(
        "rotation: {} certificates seen, {} ok, {} failed",
        serials.len(),
        report.ok,
        report.failed
    );
    assert!(report.ok > 0);
    assert_eq!(report.failed, 0, "failed requests: {:?}", report.errors);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_off_the_allow_list_gets_403_from_the_called_services_node() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = mesh_stack(dir.path(), unique_loopback(), 1)?;
    // Only a service called `billing` may call the backend. The frontend, a local
    // process, calls with the node's identity, which no allow list names.
    let text = std::fs::read_to_string(&stack.path)?.replace(
        "          discoveryName: backend\n",
        "          discoveryName: backend\n          allowedCallers: [billing]\n",
    );
    assert!(text.contains("allowedCallers"));
    std::fs::write(&stack.path, text)?;
    let (server, _) = mesh_server(dir.path(), &stack).await?;
    server.wait_healthy("frontend", "front", 1, SETTLE).await?;
    let front = server.listener_addr("front").await?;
    let client = reqwest::Client::new();
    let body = wait_until("the backend refusing the frontend", SETTLE, || async {
        let r = client.get(format!("http://{front}/")).send().await.ok()?;
        let status = r.status();
        let body = r.text().await.ok()?;
        (status == reqwest::StatusCode::FORBIDDEN).then_some(body)
    })
    .await?;
    assert!(body.contains("status: 403"), "{body}");
    let metrics = reqwest::get(format!("{}/metrics", server.api))
        .await?
        .text()
        .await?;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("berth_mesh_denied_total{")
                && l.contains("service=\"backend\"")
                && l.contains("/ns/_berth/sa/node-")),
        "{metrics}"
    );
    let shown = server.cli(&["get", "endpoints", "backend"]);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("billing"),
        "the allow list is shown"
    );
    Ok(())
}
