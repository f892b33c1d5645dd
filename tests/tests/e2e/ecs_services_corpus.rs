//! Real CreateService inputs (`tests/ecs-corpus/services`, sources in its README),
//! applied unchanged through the real binary: each goes into a stack file next to a task
//! definition running the demo app (named as the service names it) and what else it
//! needs (its cluster, a target group and load balancer, a namespace); `berth apply`
//! warns of exactly the members berth does not apply, the service reaches its running
//! count on a node of its cluster, describe returns the members as given, and `berth
//! exec` works where `enableExecuteCommand` is on and is refused where it is not.
//!
//! Tasks run as local processes, one server per case (a node joins one cluster).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use berth_testkit::agent::Agent;
use berth_testkit::{repo_root, wait_until, Server};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(90);
const NOT_ENABLED: &str = "InvalidParameterException: The execute command failed because execute command was not enabled when the task was run";

/// A corpus file, as published.
fn corpus(file: &str) -> Value {
    let path = repo_root().join("tests/ecs-corpus/services").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The demo app as task definition `family`, its one container `container` offering
/// `port` (named `port_name` when given).
fn whoami_task_definition(family: &str, container: &str, port: u32, port_name: &str) -> Value {
    // Fargate-compatible (the corpus's services use launchType FARGATE) and EC2-compatible.
    json!({
        "family": family,
        "requiresCompatibilities": ["EC2", "FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [{
            "name": container,
            "image": "berth-whoami:latest",
            "entryPoint": ["berth-whoami"],
            "essential": true,
            "portMappings": [{"containerPort": port, "name": port_name}],
            "environment": [{"name": "GREETING", "value": "hello from the corpus"}],
            "stopTimeout": 5
        }]
    })
}

/// The service's cluster (`default` when it names none).
fn cluster_of(service: &Value) -> String {
    service["cluster"].as_str().unwrap_or("default").to_string()
}

fn write_stack(dir: &Path, name: &str, stack: &Value) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(stack).unwrap()).unwrap();
    path
}

/// A server whose node joins `cluster`, with an agent of managed capacity (berth's
/// Fargate) in the same cluster for the services whose launchType is FARGATE.
async fn server_in(dir: &Path, cluster: &str) -> Result<(Server, Agent)> {
    let server = Server::launch_with(
        &dir.join("data"),
        None,
        "process",
        &[
            "--cluster".to_string(),
            cluster.to_string(),
            "--node-listen".to_string(),
            "127.0.0.1:0".to_string(),
        ],
    )
    .await?;
    let agent = Agent::start_with_args(
        &server,
        &dir.join("agent"),
        "process",
        &["--cluster", cluster, "--managed-capacity"],
    )
    .await?;
    Ok((server, agent))
}

/// `berth apply -f stack`, which must succeed: the members each `service <name>`
/// warning names, in order.
fn apply_service_warnings(server: &Server, stack: &Path) -> Vec<String> {
    let out = server.cli(&["apply", "-f", &stack.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply failed: {stderr}");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: service "))
        .map(|l| l.split(": ").nth(1).unwrap_or_default().to_string())
        .collect()
}

/// Waits until the service runs its desired count; the service as described then.
async fn wait_running(server: &Server, cluster: &str, name: &str) -> Result<Value> {
    let path = format!("/v1/clusters/{cluster}/services/{name}");
    wait_until(&format!("{name} to run its desired count"), SETTLE, || {
        let path = path.clone();
        async move {
            let s = server.get(&path).await.ok()?;
            let desired = s["desiredCount"].as_u64()?;
            (desired > 0 && s["runningCount"].as_u64() == Some(desired)).then_some(s)
        }
    })
    .await
    .with_context(|| server.log())
}

/// Whether `big` holds every member of `small` with the same value (objects may have
/// more members; arrays match element by element).
fn contains(big: &Value, small: &Value) -> bool {
    match (big, small) {
        (Value::Object(b), Value::Object(s)) => s
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|bv| contains(bv, v))),
        (Value::Array(b), Value::Array(s)) => {
            b.len() == s.len() && b.iter().zip(s).all(|(bv, sv)| contains(bv, sv))
        }
        _ => big == small,
    }
}

/// Describe gives every member as given; `taskDefinition` comes back resolved to the
/// ARN of the revision it names.
fn assert_described_as_given(described: &Value, given: &Value, revision: &str) {
    let mut expected = given.clone();
    expected
        .as_object_mut()
        .unwrap()
        .remove("taskDefinition")
        .unwrap();
    assert!(
        contains(described, &expected),
        "described: {described:#}\ngiven: {given:#}"
    );
    let td = described["taskDefinition"].as_str().unwrap_or_default();
    assert!(
        td.ends_with(&format!("task-definition/{revision}")),
        "taskDefinition {td}, wanted revision {revision}"
    );
}

/// The id of a RUNNING task of `service`.
async fn a_running_task(server: &Server, service: &str) -> Result<String> {
    let tasks = server.service_tasks(service).await?;
    let arn = tasks
        .iter()
        .find(|t| t["lastStatus"] == "RUNNING")
        .and_then(|t| t["taskArn"].as_str())
        .context("a running task")?;
    Ok(arn.rsplit('/').next().unwrap().to_string())
}

fn exec(server: &Server, cluster: &str, task: &str, script: &str) -> std::process::Output {
    server.cli(&[
        "exec",
        "--cluster",
        cluster,
        task,
        "--",
        "/bin/sh",
        "-c",
        script,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_service_with_the_circuit_breaker_runs_as_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let service = corpus("deployment-circuit-breaker.json");
    let cluster = cluster_of(&service);
    let stack = json!({
        "taskDefinitions": [whoami_task_definition("sample-fargate", "web", 8080, "http")],
        "services": [service],
    });
    let (server, _agent) = server_in(dir.path(), &cluster).await?;
    let warned = apply_service_warnings(&server, &write_stack(dir.path(), "breaker", &stack));
    assert_eq!(warned, ["platformVersion", "networkConfiguration"]);

    let described = wait_running(&server, &cluster, "MyService").await?;
    assert_described_as_given(&described, &service, "sample-fargate:1");
    assert_eq!(
        described["deploymentConfiguration"]["deploymentCircuitBreaker"],
        json!({"enable": true, "rollback": true})
    );
    assert_eq!(described["deployments"][0]["rolloutState"], "COMPLETED");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tagged_awsvpc_service_in_its_own_cluster_runs_and_refuses_exec() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let service = corpus("fargate-service-with-tags.json");
    let cluster = cluster_of(&service);
    assert_eq!(cluster, "MyCluster");
    let stack = json!({
        "clusters": [{"clusterName": cluster}],
        "taskDefinitions": [whoami_task_definition("sample-fargate", "web", 8080, "http")],
        "services": [service],
    });
    let (server, _agent) = server_in(dir.path(), &cluster).await?;
    let warned = apply_service_warnings(&server, &write_stack(dir.path(), "tags", &stack));
    assert_eq!(warned, ["platformVersion", "networkConfiguration"]);

    let described = wait_running(&server, &cluster, "MyService").await?;
    assert_described_as_given(&described, &service, "sample-fargate:1");
    assert_eq!(described["tags"].as_array().map(Vec::len), Some(3));

    // The service does not enable exec, so its tasks refuse it, as on ECS.
    let task = a_running_task(&server, "MyService").await?;
    let out = exec(&server, &cluster, &task, "true");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(NOT_ENABLED), "{stderr}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_developer_guides_exec_service_runs_and_exec_works() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let service = corpus("ecs-exec.json");
    let cluster = cluster_of(&service);
    let stack = json!({
        "clusters": [{"clusterName": cluster}],
        "taskDefinitions": [whoami_task_definition("task-definition-name", "app", 8080, "http")],
        "services": [service],
    });
    let (server, _agent) = server_in(dir.path(), &cluster).await?;
    let warned = apply_service_warnings(&server, &write_stack(dir.path(), "exec", &stack));
    assert!(warned.is_empty(), "{warned:?}");

    let described = wait_running(&server, &cluster, "service-name").await?;
    assert_described_as_given(&described, &service, "task-definition-name:1");

    let task = a_running_task(&server, "service-name").await?;
    let out = exec(
        &server,
        &cluster,
        &task,
        "echo \"$BERTH_CLUSTER $BERTH_CONTAINER_NAME $GREETING\"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cluster-name app hello from the corpus\n"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootcamps_service_file_runs_behind_its_target_group_with_exec() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let given = corpus("cruddur-backend-flask.json");
    let cluster = cluster_of(&given);
    // The only rewrite: the target group ARN of the source's account names the stack's
    // target group of the same name.
    let mut service = given.clone();
    let tg = "cruddur-backend-flask-tg";
    let source_arn = service["loadBalancers"][0]["targetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        source_arn.contains(&format!(":targetgroup/{tg}/")),
        "{source_arn}"
    );
    service["loadBalancers"][0]["targetGroupArn"] = json!(berth_model::arn::target_group(tg));
    let stack = json!({
        "clusters": [{"clusterName": cluster}],
        "namespaces": [{"name": "cruddur"}],
        "taskDefinitions": [whoami_task_definition("backend-flask", "backend-flask", 4567, "backend-flask")],
        "targetGroups": [{
            "targetGroupName": tg, "protocol": "HTTP", "port": 4567,
            "healthCheckPath": "/health", "healthCheckIntervalSeconds": 5,
            "healthCheckTimeoutSeconds": 4, "healthyThresholdCount": 2,
            "unhealthyThresholdCount": 3,
        }],
        "loadBalancers": [{
            "loadBalancerName": "cruddur-alb", "type": "application",
            "listeners": [{"port": 0, "protocol": "HTTP",
                "defaultActions": [{"type": "forward", "targetGroupName": tg}]}],
        }],
        "services": [service],
    });
    let (server, _agent) = server_in(dir.path(), &cluster).await?;
    let warned = apply_service_warnings(&server, &write_stack(dir.path(), "cruddur", &stack));
    assert_eq!(
        warned,
        [
            "networkConfiguration",
            "enableECSManagedTags",
            "propagateTags"
        ]
    );

    let described = wait_running(&server, &cluster, "backend-flask").await?;
    assert_described_as_given(&described, &service, "backend-flask:1");
    server
        .wait_healthy("backend-flask", tg, 1, SETTLE)
        .await
        .with_context(|| server.log())?;
    let task = a_running_task(&server, "backend-flask").await?;
    let addr = server.listener_addr("cruddur-alb").await?;
    let body = reqwest::get(format!("http://{addr}/"))
        .await?
        .text()
        .await?;
    assert!(body.contains(&format!("task: {task}")), "{body}");

    let out = exec(&server, &cluster, &task, "echo \"$BERTH_CONTAINER_NAME\"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "backend-flask\n");
    Ok(())
}

/// The developer guide's Service Connect tutorial leaves the namespace to the cluster's
/// default (`create-cluster --service-connect-defaults`), which berth's clusters do not
/// have: apply refuses it, naming the member, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_connect_service_takes_its_clusters_default_namespace_and_is_refused_without_one(
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let service = corpus("service-connect-nginx-service.json");
    let cluster = cluster_of(&service);
    let stack = json!({
        "clusters": [{"clusterName": cluster}],
        "taskDefinitions": [whoami_task_definition("service-connect-nginx", "webserver", 80, "nginx")],
        "services": [service],
    });
    let (server, _agent) = server_in(dir.path(), &cluster).await?;
    let path = write_stack(dir.path(), "service-connect", &stack);
    let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(
        stderr
            .matches("serviceConnectConfiguration.namespace")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("is required when enabled is true")
            && stderr.contains("has no serviceConnectDefaults"),
        "{stderr}"
    );
    let services = server.get("/v1/services").await?;
    assert_eq!(services, json!([]), "a refused stack stores nothing");

    // As the tutorial creates its cluster: with a default namespace, which apply creates.
    let stack = json!({
        "clusters": [{"clusterName": cluster, "serviceConnectDefaults": {"namespace": "service-connect"}}],
        "taskDefinitions": [whoami_task_definition("service-connect-nginx", "webserver", 80, "nginx")],
        "services": [service],
    });
    let path = write_stack(dir.path(), "service-connect-defaults", &stack);
    let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = wait_running(&server, &cluster, "service-connect-nginx-service").await?;
    assert_eq!(
        s["serviceConnectConfiguration"]["namespace"], "service-connect",
        "{s}"
    );
    let namespaces = server.get("/v1/namespaces").await?;
    assert!(
        namespaces
            .as_array()
            .is_some_and(|a| a.iter().any(|n| n["name"] == "service-connect")),
        "{namespaces}"
    );
    let c = server.get(&format!("/v1/clusters/{cluster}")).await?;
    assert!(
        c["serviceConnectDefaults"]["namespace"]
            .as_str()
            .is_some_and(|a| a.ends_with("service-connect")),
        "{c}"
    );
    Ok(())
}
