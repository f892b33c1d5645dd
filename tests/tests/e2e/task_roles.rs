//! End-to-end tests of task roles and the task endpoint, with the API's authentication on
//! (berth's default): a role allowed only `ecs:Describe*` and `ecs:List*`, a service
//! whose task definition names it as `taskRoleArn`, and a task (a local process running
//! `tests/aws/task_role.py` with boto3) whose default credential chain finds the
//! container credential endpoint: it describes services, is refused update_service,
//! sees its credentials refreshed (`--task-credentials-validity 6`) and reads its own
//! task metadata (v4). The credentials it first had are refused by the API once they
//! expired. A definition naming a role that does not exist fails its task's start with
//! a stopped reason naming `taskRoleArn`. With Docker, the berth binary (with its shared
//! libraries) in a `FROM scratch` image lists services from inside its container with the role's
//! credentials.

use crate::venv;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use berth_iam::sigv4::{signing_headers, SigningParams};
use berth_testkit::{wait_until, Server};
use serde_json::{json, Value};

/// Seconds the test's task credentials are valid: short, so they are refreshed and
/// expire while the test runs.
const VALIDITY: u64 = 6;

struct Key {
    id: String,
    secret: String,
    token: Option<String>,
}

fn admin(data_dir: &Path) -> Key {
    let (id, secret) = venv::admin_key(data_dir);
    Key {
        id,
        secret,
        token: None,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One signed request; returns the status, the `x-amzn-ErrorType` header and the JSON
/// body.
async fn request(
    server: &Server,
    key: &Key,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> (u16, Option<String>, Value) {
    let host = server.api.trim_start_matches("http://").to_string();
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    headers.extend_from_slice(extra);
    if let Some(t) = &key.token {
        headers.push(("x-amz-security-token", t));
    }
    let signed = signing_headers(
        method,
        path,
        "",
        &host,
        &headers,
        body,
        &SigningParams {
            access_key_id: &key.id,
            secret_access_key: &key.secret,
            region: "us-east-1",
            service: "ecs",
            time: now(),
        },
    );
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", server.api))
        .body(body.to_vec());
    for (n, v) in headers {
        req = req.header(n, v);
    }
    for (n, v) in signed {
        req = req.header(n, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_string());
    (status, kind, resp.json().await.unwrap_or(Value::Null))
}

/// DescribeServices through the AWS front door, signed with `key`.
async fn describe_services(server: &Server, key: &Key) -> (u16, Option<String>, Value) {
    let body = json!({"cluster": "default", "services": ["reader"]}).to_string();
    request(
        server,
        key,
        "POST",
        "/",
        &[(
            "x-amz-target",
            "AmazonEC2ContainerServiceV20141113.DescribeServices",
        )],
        body.as_bytes(),
    )
    .await
}

/// Creates role `name` with an inline policy allowing only `ecs:Describe*` and
/// `ecs:List*`.
async fn read_only_role(server: &Server, admin: &Key, name: &str) {
    let body = json!({"roleName": name}).to_string();
    let (status, _, out) =
        request(server, admin, "POST", "/v1/iam/roles", &[], body.as_bytes()).await;
    assert_eq!(status, 200, "{out}");
    let policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"], "Resource": "*"}]});
    let path = format!("/v1/iam/roles/{name}/policies/read");
    let (status, _, out) = request(
        server,
        admin,
        "PUT",
        &path,
        &[],
        policy.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{out}");
}

/// The CLI against `server`, signing with its admin credentials.
fn apply(server: &Server, stack: &Path) {
    let out = Command::new(berth_testkit::bin("berth"))
        .args(["apply", "-f"])
        .arg(stack)
        .env("BERTH_ENDPOINT", &server.api)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "berth apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn log_tail(server: &Server) -> String {
    let log = server.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The first STOPPED task of `service`, described through the AWS front door.
async fn first_stopped_task(server: &Server, admin: &Key, service: &str) -> Value {
    let group = format!("service:{service}");
    wait_until(
        &format!("a task of {service} to stop"),
        Duration::from_secs(90),
        || async {
            let body = json!({"cluster": "default", "desiredStatus": "STOPPED"}).to_string();
            let (_, _, listed) = request(
                server,
                admin,
                "POST",
                "/",
                &[(
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.ListTasks",
                )],
                body.as_bytes(),
            )
            .await;
            let arns = listed["taskArns"].as_array()?.clone();
            if arns.is_empty() {
                return None;
            }
            let body = json!({"cluster": "default", "tasks": arns}).to_string();
            let (_, _, described) = request(
                server,
                admin,
                "POST",
                "/",
                &[(
                    "x-amz-target",
                    "AmazonEC2ContainerServiceV20141113.DescribeTasks",
                )],
                body.as_bytes(),
            )
            .await;
            described["tasks"]
                .as_array()?
                .iter()
                .find(|t| t["group"] == group.as_str())
                .cloned()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", log_tail(server)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_task_uses_its_role_through_boto3_and_reads_its_metadata() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let validity = VALIDITY.to_string();
    let server = Server::launch_guarded(
        &data,
        None,
        "process",
        &["--task-credentials-validity".into(), validity],
    )
    .await?;
    let admin = admin(&data);
    read_only_role(&server, &admin, "task-reader").await;

    let python = venv::venv().join("bin/python");
    let script = berth_testkit::repo_root().join("tests/aws/task_role.py");
    let result_file = dir.path().join("result.json");
    let stack = dir.path().join("stack.yaml");
    let container = |command: Vec<String>| {
        json!({
            "name": "app", "image": "python", "cpu": 64, "memoryReservation": 64,
            "essential": true,
            "entryPoint": [python.to_string_lossy()],
            "command": command,
            "environment": [
                // Only the container credential provider may find credentials.
                {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/dev/null"},
                {"name": "AWS_CONFIG_FILE", "value": "/dev/null"},
                {"name": "AWS_EC2_METADATA_DISABLED", "value": "true"},
            ],
        })
    };
    let spec = json!({
        "clusters": [{"clusterName": "default"}],
        "taskDefinitions": [
            {
                "family": "reader", "networkMode": "host",
                "taskRoleArn": "arn:berth:iam::000000000000:role/task-reader",
                "containerDefinitions": [container(vec![
                    script.to_string_lossy().into_owned(),
                    server.api.clone(),
                    result_file.to_string_lossy().into_owned(),
                    (VALIDITY * 2 + 2).to_string(),
                ])],
            },
            {
                "family": "ghost", "networkMode": "host",
                "taskRoleArn": "arn:aws:iam::123456789012:role/no-such-role",
                "containerDefinitions": [container(vec!["-c".into(), "import time; time.sleep(600)".into()])],
            },
        ],
        "services": [
            {"serviceName": "reader", "cluster": "default", "taskDefinition": "reader", "desiredCount": 1},
            {"serviceName": "ghost", "cluster": "default", "taskDefinition": "ghost", "desiredCount": 1},
        ],
    });
    std::fs::write(&stack, serde_yaml_ng::to_string(&spec)?)?;
    apply(&server, &stack);

    // A role that does not exist: the task fails to start, saying why.
    let stopped = first_stopped_task(&server, &admin, "ghost").await;
    let reason = stopped["stoppedReason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("taskRoleArn arn:aws:iam::123456789012:role/no-such-role")
            && reason.contains("no role named no-such-role exists"),
        "{stopped}"
    );
    assert_eq!(stopped["stopCode"], "TaskFailedToStart", "{stopped}");

    // The reader task reports what boto3 did inside it.
    let result: Value = wait_until("the task's result file", Duration::from_secs(120), || {
        let f = result_file.clone();
        async move {
            let text = std::fs::read_to_string(f).ok()?;
            serde_json::from_str(&text).ok()
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nserver log:\n{}", log_tail(&server)));
    assert!(result.get("error").is_none(), "{result}");
    assert_eq!(result["method"], "container-role", "{result}");
    assert_eq!(result["staticKeysInEnvironment"], false, "{result}");
    assert!(
        result["fullUri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{result}"
    );
    assert_eq!(result["update"], "AccessDeniedException", "{result}");
    let keys = result["keys"].as_array().unwrap();
    assert!(keys.len() >= 3, "credentials refreshed twice: {result}");
    assert!(keys.iter().all(|k| k.as_str().unwrap().starts_with("ASIA")));
    assert!(result["described"].as_u64().unwrap() >= 3, "{result}");
    assert_eq!(result["metadata"]["Family"], "reader", "{result}");
    let task_arn = result["metadata"]["TaskARN"].as_str().unwrap();
    assert!(
        task_arn.starts_with("arn:berth:ecs:") && task_arn.contains(":task/default/"),
        "{result}"
    );

    // The first credentials: refused once they expired (the task started at least
    // 2 × VALIDITY seconds ago), with AWS's error; while a wrong token is invalid.
    let first = &result["first"];
    let expired = Key {
        id: first["AccessKeyId"].as_str().unwrap().into(),
        secret: first["SecretAccessKey"].as_str().unwrap().into(),
        token: first["Token"].as_str().map(String::from),
    };
    let (status, kind, body) = describe_services(&server, &expired).await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("ExpiredTokenException")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "The security token included in the request is expired"
    );
    let forged = Key {
        token: Some("berth1.00.00".into()),
        ..expired
    };
    let (status, kind, _) = describe_services(&server, &forged).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("InvalidClientTokenId"))
    );
    Ok(())
}

/// Builds `tag`: `FROM scratch` with the berth binary the tests run at `/usr/bin/berth`
/// and every shared library `ldd` lists for it at its own path (as
/// `scripts/build-images` stages the compose cluster's images), so no second, static
/// build of berth is needed.
fn berth_cli_image(tag: &str) {
    let binary = berth_testkit::bin("berth");
    let context = tempfile::tempdir().expect("a build context");
    let rootfs = context.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    std::fs::copy(&binary, rootfs.join("usr/bin/berth")).unwrap();
    let ldd = Command::new("ldd").arg(&binary).output().expect("run ldd");
    let listing = String::from_utf8_lossy(&ldd.stdout).into_owned();
    let libraries: Vec<&str> = listing
        .lines()
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            match fields.as_slice() {
                [_, "=>", path, ..] if path.starts_with('/') => Some(*path),
                [path, ..] if path.starts_with('/') => Some(*path),
                _ => None,
            }
        })
        .collect();
    assert!(
        libraries.iter().any(|l| l.contains("libc.so")),
        "ldd listed no libc for {}: {listing}",
        binary.display()
    );
    for lib in libraries {
        let to = rootfs.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        // Follows symbolic links: the image gets the library's contents at this path.
        std::fs::copy(lib, &to).unwrap_or_else(|e| panic!("copying {lib}: {e}"));
    }
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/bin\n",
    )
    .unwrap();
    let out = Command::new("docker")
        .args(["build", "--quiet", "--tag", tag])
        .arg(context.path())
        .output()
        .expect("run docker build");
    assert!(
        out.status.success(),
        "building {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_berth_cli_in_a_container_uses_its_tasks_role() -> Result<()> {
    berth_testkit::require_docker();
    berth_cli_image("berth-cli-task:latest");
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let server = Server::launch_guarded(&data, None, "docker", &[]).await?;
    let admin = admin(&data);
    read_only_role(&server, &admin, "task-reader").await;
    // Host networking: the container reaches the API on the node's loopback, and the
    // task endpoint on 169.254.170.2 (on the Docker bridge, so local to the node).
    let definition = |family: &str, role: Option<&str>| {
        let mut td = json!({
            "family": family, "networkMode": "host",
            "containerDefinitions": [{
                "name": "cli", "image": "berth-cli-task:latest", "cpu": 64,
                "memoryReservation": 64, "essential": true,
                "entryPoint": ["berth"],
                "command": ["get", "services", "--cluster", "default"],
                "environment": [{"name": "BERTH_ENDPOINT", "value": server.api}],
            }],
        });
        if let Some(role) = role {
            td["taskRoleArn"] = json!(role);
        }
        td
    };
    let stack = dir.path().join("stack.yaml");
    let spec = json!({
        "clusters": [{"clusterName": "default"}],
        "taskDefinitions": [definition("reader", Some("task-reader")), definition("anonymous", None)],
        "services": [
            {"serviceName": "reader", "cluster": "default", "taskDefinition": "reader", "desiredCount": 1},
            {"serviceName": "anonymous", "cluster": "default", "taskDefinition": "anonymous", "desiredCount": 1},
        ],
    });
    std::fs::write(&stack, serde_yaml_ng::to_string(&spec)?)?;
    apply(&server, &stack);
    // The CLI ran and exited: 0 with the role's credentials, non-zero without a role.
    let with_role = first_stopped_task(&server, &admin, "reader").await;
    assert_eq!(with_role["containers"][0]["exitCode"], 0, "{with_role}");
    let without = first_stopped_task(&server, &admin, "anonymous").await;
    assert_ne!(without["containers"][0]["exitCode"], 0, "{without}");
    assert!(without["containers"][0]["exitCode"].is_i64(), "{without}");
    Ok(())
}
