//! End-to-end tests of secrets through the real binary: `berth secrets put` (from stdin)
//! stores a value; a task definition's container `secrets` names it, with an
//! `executionRoleArn` whose role allows `secretsmanager:GetSecretValue` on it, and the
//! task's process gets it as an environment variable (it writes it to a file the test
//! reads). The value appears nowhere else: not in the task, service or task definition
//! as the API and CLI show them, not in the server's log, not in any file of the data
//! directory (the redb store among them). A secret that does not exist, and a role whose
//! policy does not allow the secret, stop the task with ECS's
//! `ResourceInitializationError` reason and a service event. On Docker the variable is in
//! the container's environment and not in its labels; that test fails, never skips,
//! without a Docker engine.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::{demo_image, require_docker, wait_until, Server};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(60);

/// A value no other test or log line holds.
fn unique_value() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("pw-{nanos:x}-{}", std::process::id())
}

/// Creates role `name` allowing `secretsmanager:GetSecretValue` on `resource`.
async fn role(server: &Server, name: &str, resource: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/iam/roles", server.api))
        .json(&json!({ "roleName": name }))
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue", "Resource": resource}]});
    let r = http
        .put(format!(
            "{}/v1/iam/roles/{name}/policies/secrets",
            server.api
        ))
        .json(&policy)
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.text().await?);
    Ok(())
}

/// `berth secrets put NAME` with the value on stdin; then `get` prints it back and
/// `list` names it without it.
fn put_secret(server: &Server, name: &str, value: &str) {
    let out = server.cli_with_stdin(
        &["secrets", "put", name],
        &format!("{value}\n"),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("created arn:berth:secretsmanager:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = server.cli(&["secrets", "get", name]);
    assert_eq!(String::from_utf8_lossy(&got.stdout), format!("{value}\n"));
    let listed = String::from_utf8_lossy(&server.cli(&["secrets", "list"]).stdout).into_owned();
    assert!(listed.contains(name) && !listed.contains(value), "{listed}");
}

/// A task definition `family` whose container `command` gets `DB_PASSWORD` from
/// `value_from` under role `role`.
fn task_definition(family: &str, role: &str, value_from: &str, command: &str) -> String {
    format!(
        r#"  - family: {family}
    executionRoleArn: arn:aws:iam::123456789012:role/{role}
    containerDefinitions:
      - name: app
        image: {command}
        secrets:
          - {{name: DB_PASSWORD, valueFrom: "{value_from}"}}
"#
    )
}

fn services(names: &[&str]) -> String {
    let mut s = String::from("services:\n");
    for n in names {
        s.push_str(&format!(
            "  - {{serviceName: {n}, taskDefinition: {n}, desiredCount: 1}}\n"
        ));
    }
    s
}

/// Every file under `dir` holding `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

/// Waits for a task of `service` to stop and checks its reason and the service's event.
async fn refused(server: &Server, service: &str, detail: &str) -> Result<()> {
    let t = server.first_stopped(service, SETTLE).await?;
    let reason = t["stoppedReason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason
            .starts_with("ResourceInitializationError: unable to pull secrets or registry auth: ")
            && reason.contains(detail),
        "{service}: {t}"
    );
    assert_eq!(t["stopCode"], "TaskFailedToStart", "{t}");
    let svc = server
        .get(&format!("/v1/clusters/default/services/{service}"))
        .await?;
    assert!(
        svc["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m
                .contains("failed to start: ResourceInitializationError")
                && m.contains(detail))),
        "{svc}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_process_and_nothing_else_and_refusals_stop_the_task() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(None).await?;
    let value = unique_value();
    put_secret(&server, "db-password", &value);
    role(&server, "exec", "arn:berth:secretsmanager:*:*:secret:*").await?;
    role(
        &server,
        "narrow",
        "arn:berth:secretsmanager:*:*:secret:other",
    )
    .await?;

    let out = dir.path().join("password");
    let writes = format!(
        "shell\n        command: [sh, -c, 'printf %s \"$DB_PASSWORD\" > {} && exec sleep 600']",
        out.display()
    );
    let sleeps = "shell\n        command: [sleep, '600']";
    let stack = format!(
        "taskDefinitions:\n{}{}{}{}",
        task_definition(
            "good",
            "exec",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password",
            &writes
        ),
        task_definition("missing", "exec", "nope", sleeps),
        task_definition("denied", "narrow", "db-password", sleeps),
        services(&["good", "missing", "denied"])
    );
    let path = dir.path().join("secrets.yaml");
    std::fs::write(&path, stack)?;
    server.apply_ok(&path);

    let written = wait_until("the task to write its secret", SETTLE, || {
        let out = out.clone();
        async move { std::fs::read_to_string(out).ok().filter(|s| !s.is_empty()) }
    })
    .await?;
    assert_eq!(written, value);
    refused(
        &server,
        "missing",
        "failed to fetch secret arn:berth:secretsmanager:local:000000000000:secret:nope from secrets manager: ResourceNotFoundException",
    )
    .await?;
    refused(
        &server,
        "denied",
        "AccessDeniedException: User: arn:berth:iam::000000000000:role/narrow is not authorized to perform: secretsmanager:GetSecretValue",
    )
    .await?;

    // The value is nowhere but in the process's environment.
    let mut shown = Vec::new();
    for path in [
        "/v1/tasks",
        "/v1/services",
        "/v1/task-definitions/good",
        "/v1/clusters/default/services/good",
    ] {
        shown.push(server.get(path).await?.to_string());
    }
    for args in [
        &["get", "tasks"][..],
        &["describe", "service", "good"],
        &["get", "task-definitions"],
    ] {
        let o = server.cli(args);
        shown.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    assert!(
        shown.iter().any(|s| s.contains("db-password")),
        "the answers name the secret"
    );
    for s in &shown {
        assert!(!s.contains(&value), "an answer holds the value: {s}");
    }
    assert!(
        !server.log().contains(&value),
        "the server's log holds the value"
    );
    let redb = std::fs::read(server.data_dir.join("berth.redb"))?;
    assert!(
        redb.windows(b"/secrets/db-password".len())
            .any(|w| w == b"/secrets/db-password"),
        "the store file holds the secret's key"
    );
    assert_eq!(
        files_holding(&server.data_dir, value.as_bytes()),
        Vec::<String>::new(),
        "files of the data directory hold the value"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_a_docker_containers_environment_and_not_its_labels() -> Result<()> {
    require_docker();
    demo_image();
    let dir = tempfile::tempdir()?;
    let server = Server::start_with("docker", None).await?;
    let value = unique_value();
    put_secret(&server, "api-token", &value);
    role(
        &server,
        "exec",
        "arn:berth:secretsmanager:*:*:secret:api-token",
    )
    .await?;
    let stack = format!(
        "taskDefinitions:\n{}{}",
        task_definition("web", "exec", "api-token", "berth-whoami:latest"),
        services(&["web"])
    );
    let path = dir.path().join("secrets.yaml");
    std::fs::write(&path, stack)?;
    server.apply_ok(&path);

    let env: Value = wait_until("the container to run", SETTLE, || async {
        let tasks = server.service_tasks("web").await.ok()?;
        tasks.iter().find(|t| t["lastStatus"] == "RUNNING")?;
        let id = server.containers().into_iter().next()?;
        let out = std::process::Command::new("docker")
            .args(["inspect", "--format", "{{json .Config}}", &id])
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    })
    .await?;
    let vars: Vec<&str> = env["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        vars.contains(&format!("DB_PASSWORD={value}").as_str()),
        "{vars:?}"
    );
    assert!(
        !env["Labels"].to_string().contains(&value),
        "a label holds the value"
    );
    assert!(!server.log().contains(&value));
    Ok(())
}
