//! The corpus on Docker: the definitions that can run here, with only `image` rewritten
//! to the stand-in ([`super::image`]), each as a service of one task with
//! `enableExecuteCommand` (a service's setting, not the definition's), checked from
//! inside its containers with `berth exec`, through `berth logs` and the engine's record.
//!
//! Three definitions publish host port 80 in bridge mode; only one task can hold it at a
//! time, so `console-sample-app-volumes` runs with the others first and
//! `awslogs-example` after it is gone.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use berth_testkit::{wait_until, Server};
use serde_json::{json, Value};

use super::image::{build_stand_in_image, STAND_IN_IMAGE};
use super::{definition, write_stack};

const SETTLE: Duration = Duration::from_secs(120);

/// Runs first, together.
const FIRST: &[&str] = &[
    "console-sample-app-volumes",
    "fargate-task-definition",
    "appmesh-gateway",
    "otel-using-xray",
    "ecs-exec-task",
    "sleep360",
    "nginx",
    "example_task_2",
];
/// Runs once `console-sample-app-volumes` has released host port 80.
const SECOND: &[&str] = &["awslogs-example"];

/// A stack of the corpus files `names`, each image rewritten to the stand-in, each with
/// a service of the definition's family running one task.
fn stack(names: &[&str]) -> Value {
    let mut definitions = Vec::new();
    let mut services = Vec::new();
    for name in names {
        let mut td = definition(name);
        for c in td["containerDefinitions"].as_array_mut().unwrap() {
            c["image"] = json!(STAND_IN_IMAGE);
        }
        services.push(json!({
            "serviceName": td["family"], "taskDefinition": td["family"],
            "desiredCount": 1, "enableExecuteCommand": true
        }));
        definitions.push(td);
    }
    json!({"taskDefinitions": definitions, "services": services})
}

/// The RUNNING task of service `name` once there is one.
async fn running_task(server: &Server, name: &str) -> Result<Value> {
    wait_until(
        &format!("a RUNNING task of {name}"),
        SETTLE,
        || async move {
            let tasks = server.service_tasks(name).await.ok()?;
            tasks.into_iter().find(|t| t["lastStatus"] == "RUNNING")
        },
    )
    .await
    .with_context(|| server.log())
}

fn task_id(task: &Value) -> String {
    task["taskArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

/// `sh -c script` in `container` of `task`: its stdout; the exec must succeed.
fn sh(server: &Server, task: &str, container: &str, script: &str) -> String {
    let out = server.cli(&[
        "exec",
        task,
        "--container",
        container,
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        out.status.success(),
        "exec {script:?} in {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `berth logs` shows of `container` once it contains `needle`.
async fn logs_with(server: &Server, task: &str, container: &str, needle: &str) -> Result<String> {
    wait_until(
        &format!("{needle:?} in the logs of {container}"),
        Duration::from_secs(30),
        || async move {
            let out = server.cli(&["logs", task, "--container", container]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains(needle).then_some(text)
        },
    )
    .await
}

/// The engine's record of `container` of `task`.
fn inspect(task: &Value, container: &str) -> Value {
    let id = task["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == container)
        .and_then(|c| c["runtimeId"].as_str())
        .unwrap_or_else(|| panic!("no runtime id for {container}: {task}"))
        .to_string();
    let out = std::process::Command::new("docker")
        .args(["inspect", &id])
        .output()
        .expect("docker CLI");
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

/// When the engine started `container` of `task`, as text that sorts by time (Docker
/// drops trailing zeros of the fraction, which would not).
fn started_at(task: &Value, container: &str) -> String {
    let at = inspect(task, container)["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let (seconds, fraction) = at
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((&at, ""));
    format!("{seconds}.{fraction:0<9}Z")
}

const GET: &str = r"printf 'GET / HTTP/1.0\r\n\r\n' | nc";

/// Removes the task-scoped Docker volumes of the tasks noted, however the test ends
/// (the server's cleanup removes containers, not volumes). Declared before the server,
/// so it runs after the server's own cleanup.
#[derive(Default)]
struct TaskVolumes(std::sync::Mutex<Vec<String>>);

impl TaskVolumes {
    fn note(&self, task: &Value) {
        let arn = task["taskArn"].as_str().unwrap_or_default().to_string();
        self.0.lock().unwrap().push(arn);
    }
}

impl Drop for TaskVolumes {
    fn drop(&mut self) {
        for arn in self.0.lock().unwrap().iter() {
            let volumes = berth_testkit::docker_ids(&[
                "volume",
                "ls",
                "-q",
                "--filter",
                &format!("label=berth.task-arn={arn}"),
            ]);
            for v in volumes {
                let _ = std::process::Command::new("docker")
                    .args(["volume", "rm", "-f", &v])
                    .output();
            }
        }
    }
}

pub async fn run_on_docker() -> Result<()> {
    build_stand_in_image();
    let dir = tempfile::tempdir()?;
    let volumes = TaskVolumes::default();
    let server = Server::start_with("docker", None).await?;
    // As on ECS, a task role must exist for its task to start: the corpus's roles.
    for role in ["ecsTaskRole", "AmazonECS_OpenTelemetryXrayRole"] {
        let out = server.cli(&["iam", "create-role", role]);
        ensure!(
            out.status.success(),
            "berth iam create-role {role}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.apply_ok(&write_stack(dir.path(), "first", &stack(FIRST)));

    fargate_web_server_serves_its_page_and_logs_to_its_stream(&server).await?;
    volumes.note(&running_task(&server, "myContainer").await?);
    a_volume_written_by_one_container_is_read_by_the_other(&server).await?;
    depends_on_starts_the_app_after_its_proxy_is_healthy(&server).await?;
    a_sidecar_starts_first_and_logs_its_flags(&server).await?;
    the_exec_task_runs_under_an_init_process(&server).await?;
    sleep_and_a_dynamic_host_port(&server).await?;
    ping_runs_as_written_on_a_read_only_root(&server).await?;

    release_host_port_80(&server, "myContainer").await?;
    server.apply_ok(&write_stack(dir.path(), "second", &stack(SECOND)));
    linked_wordpress_reaches_mysql_by_its_link(&server).await?;
    Ok(())
}

async fn fargate_web_server_serves_its_page_and_logs_to_its_stream(server: &Server) -> Result<()> {
    let task = running_task(server, "fargate-task-definition").await?;
    let id = task_id(&task);
    let page = sh(
        server,
        &id,
        "sample-fargate-app",
        &format!("{GET} 127.0.0.1 80"),
    );
    ensure!(page.starts_with("HTTP/1.1 200"), "{page}");
    ensure!(page.contains("<h1>Amazon ECS Sample App</h1>"), "{page}");
    let c = inspect(&task, "sample-fargate-app");
    assert_eq!(
        c["Config"]["Labels"]["berth.awslogs-stream"],
        format!("ecs/sample-fargate-app/{id}"),
        "the stream ECS names {{prefix}}/{{container}}/{{task id}}"
    );
    logs_with(
        server,
        &id,
        "sample-fargate-app",
        "stand-in: sample-fargate-app",
    )
    .await?;
    Ok(())
}

async fn a_volume_written_by_one_container_is_read_by_the_other(server: &Server) -> Result<()> {
    let task = running_task(server, "myContainer").await?;
    let id = task_id(&task);
    // busybox writes the page (and the date) into simple-app's volume every second;
    // simple-app, which never writes it, serves it from there, also on host port 80.
    let page = wait_until("the page busybox writes", Duration::from_secs(30), || {
        let id = id.clone();
        async move {
            let page = sh(
                server,
                &id,
                "simple-app",
                "cat /usr/local/apache2/htdocs/index.html",
            );
            page.contains("Amazon ECS Sample App").then_some(page)
        }
    })
    .await?;
    ensure!(page.contains(" UTC "), "busybox's /bin/date line: {page}");
    let served = reqwest::get("http://127.0.0.1:80/").await?.text().await?;
    ensure!(served.contains("Amazon ECS Sample App"), "{served}");
    let binds = inspect(&task, "busybox")["HostConfig"]["VolumesFrom"].clone();
    ensure!(
        binds[0].as_str().unwrap().ends_with("-simple-app"),
        "{binds}"
    );
    Ok(())
}

async fn depends_on_starts_the_app_after_its_proxy_is_healthy(server: &Server) -> Result<()> {
    let task = running_task(server, "appmesh-gateway").await?;
    let id = task_id(&task);
    let envoy = task["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "envoy")
        .unwrap()
        .clone();
    ensure!(envoy["healthStatus"] == "HEALTHY", "{envoy}");
    let started = |name: &str| started_at(&task, name);
    ensure!(started("app") > started("envoy"), "app starts after envoy");
    let answer = sh(server, &id, "app", &format!("{GET} 127.0.0.1 9080"));
    ensure!(
        answer.starts_with("HTTP/1.1"),
        "app serves its port 9080: {answer}"
    );
    Ok(())
}

async fn a_sidecar_starts_first_and_logs_its_flags(server: &Server) -> Result<()> {
    let task = running_task(server, "otel-using-xray").await?;
    let id = task_id(&task);
    let started = |name: &str| started_at(&task, name);
    ensure!(started("aws-otel-emitter") > started("aws-otel-collector"));
    logs_with(
        server,
        &id,
        "aws-otel-collector",
        "stand-in: aws-otel-collector --config=/etc/ecs/otel-instance-metrics-config.yaml",
    )
    .await?;
    assert_eq!(
        inspect(&task, "aws-otel-collector")["Config"]["Labels"]["berth.awslogs-stream"],
        format!("ecs/aws-otel-collector/{id}")
    );
    Ok(())
}

async fn the_exec_task_runs_under_an_init_process(server: &Server) -> Result<()> {
    let task = running_task(server, "ecs-exec-task").await?;
    let id = task_id(&task);
    let init = sh(server, &id, "amazon-linux", "cat /proc/1/comm");
    ensure!(
        init.trim() == "docker-init",
        "initProcessEnabled: PID 1 is {init}"
    );
    let sleeping = sh(
        server,
        &id,
        "amazon-linux",
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' '",
    );
    ensure!(sleeping.contains("sleep 3600"), "{sleeping}");
    let host = inspect(&task, "amazon-linux");
    // ".25 vcpu": a quarter of a CPU.
    assert_eq!(host["HostConfig"]["CpuQuota"], 25_000);
    assert_eq!(host["HostConfig"]["Memory"], 512 * 1024 * 1024);
    Ok(())
}

async fn sleep_and_a_dynamic_host_port(server: &Server) -> Result<()> {
    let task = running_task(server, "sleep360").await?;
    let cmd = sh(
        server,
        &task_id(&task),
        "sleep",
        "tr '\\0' ' ' < /proc/1/cmdline",
    );
    ensure!(cmd.trim() == "sleep 360", "{cmd}");

    let task = running_task(server, "nginx").await?;
    let port = task["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .context("nginx's host port")?;
    ensure!(port != 80 && port != 0, "a dynamic host port, got {port}");
    let status = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await?
        .status();
    ensure!(
        status.as_u16() == 404,
        "the stand-in serves an empty root: {status}"
    );
    Ok(())
}

/// `entryPoint: ["ping"]` with `command: ["-c", "4", "google.com"]` on a read-only root
/// file system. The task ends when ping does (here at once: the node cannot reach
/// google.com); its stopped container is still the engine's, so the engine's own copy
/// into it shows the root refusing a write.
async fn ping_runs_as_written_on_a_read_only_root(server: &Server) -> Result<()> {
    let task = server.first_stopped("example_task_2", SETTLE).await?;
    let id = task_id(&task);
    let container = &task["containers"][0];
    ensure!(container["exitCode"].is_i64(), "ping's exit code: {task}");
    let out = server.cli(&["logs", &id, "--container", "alpine_ping"]);
    let logs = String::from_utf8_lossy(&out.stdout);
    ensure!(logs.contains("google.com"), "ping's output: {logs}");
    let engine = inspect(&task, "alpine_ping");
    assert_eq!(engine["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(engine["Config"]["Entrypoint"], json!(["ping"]));
    assert_eq!(engine["Config"]["Cmd"], json!(["-c", "4", "google.com"]));
    assert_eq!(engine["HostConfig"]["Memory"], 32 * 1024 * 1024);
    let file = tempfile::NamedTempFile::new()?;
    let out = std::process::Command::new("docker")
        .arg("cp")
        .arg(file.path())
        .arg(format!(
            "{}:/written",
            container["runtimeId"].as_str().unwrap()
        ))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("read-only"),
        "a write into the root file system: {stderr}"
    );
    Ok(())
}

/// Deletes service `name` and removes its containers at once (its stand-ins would take
/// their 30 s stop timeout), then waits until berth records its task stopped.
async fn release_host_port_80(server: &Server, name: &str) -> Result<()> {
    let task = running_task(server, name).await?;
    let out = server.cli(&["delete", "service", name]);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for c in task["containers"].as_array().unwrap() {
        let id = c["runtimeId"].as_str().unwrap();
        std::process::Command::new("docker")
            .args(["rm", "-f", id])
            .output()?;
    }
    let arn = task["taskArn"].as_str().unwrap().to_string();
    wait_until("the deleted service's task to stop", SETTLE, || {
        let arn = arn.clone();
        async move {
            let tasks = server.get("/v1/tasks").await.ok()?;
            tasks
                .as_array()?
                .iter()
                .any(|t| t["taskArn"] == arn.as_str() && t["lastStatus"] == "STOPPED")
                .then_some(())
        }
    })
    .await
}

async fn linked_wordpress_reaches_mysql_by_its_link(server: &Server) -> Result<()> {
    let task = running_task(server, "awslogs-example").await?;
    let id = task_id(&task);
    let mysql = inspect(&task, "mysql");
    let mysql_ip = mysql["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // `links: ["mysql"]`: the name resolves to mysql's container (busybox reads the
    // /etc/hosts entry Docker writes) and answers there.
    let ping = sh(server, &id, "wordpress", "ping -c 1 -W 1 mysql | head -1");
    ensure!(
        ping.starts_with(&format!("PING mysql ({mysql_ip})")),
        "{ping}"
    );
    let answer = sh(
        server,
        &id,
        "wordpress",
        &format!("{GET} mysql 80 | head -1"),
    );
    ensure!(
        answer.starts_with("HTTP/1.1"),
        "wordpress reaches mysql: {answer}"
    );
    let password = sh(server, &id, "mysql", "echo $MYSQL_ROOT_PASSWORD");
    ensure!(password.trim() == "password", "{password}");
    let started = |name: &str| started_at(&task, name);
    ensure!(
        started("wordpress") > started("mysql"),
        "the linked container starts first"
    );
    // awslogs: each container's stream as ECS names it, read through berth logs.
    for c in ["wordpress", "mysql"] {
        assert_eq!(
            inspect(&task, c)["Config"]["Labels"]["berth.awslogs-stream"],
            format!("awslogs-example/{c}/{id}")
        );
        logs_with(server, &id, c, &format!("stand-in: {c}")).await?;
    }
    Ok(())
}
