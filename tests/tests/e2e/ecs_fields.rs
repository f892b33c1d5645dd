//! Task definitions and services as ECS users write them, through the real binary:
//! `berth apply` accepts a definition and a service written with ECS's members, prints
//! a warning for each member berth stores but does not apply, and `berth describe`
//! returns the definition as it was registered.
//!
//! The server runs tasks as local processes; the service asks for no tasks, so nothing
//! needs an image.

use anyhow::Result;
use berth_testkit::Server;
use serde_json::{json, Value};

fn stack() -> Value {
    json!({
        "taskDefinitions": [{
            "family": "sample-fargate",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256",
            "memory": "512",
            "executionRoleArn": "arn:aws:iam::012345678910:role/ecsTaskExecutionRole",
            "volumes": [],
            "tags": [{"key": "environment", "value": "sample"}],
            "containerDefinitions": [{
                "name": "fargate-app",
                "image": "public.ecr.aws/docker/library/httpd:latest",
                "essential": true,
                "entryPoint": ["sh", "-c"],
                "command": ["httpd-foreground"],
                "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {
                    "awslogs-group": "/ecs/fargate-task-definition",
                    "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "ecs"
                }},
                "mountPoints": [],
                "volumesFrom": []
            }]
        }],
        "services": [{
            "serviceName": "sample",
            "taskDefinition": "sample-fargate",
            "desiredCount": 0,
            "launchType": "FARGATE",
            "deploymentController": {"type": "ECS"},
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"], "assignPublicIp": "DISABLED"}},
            "enableExecuteCommand": true,
            "propagateTags": "NONE",
            "tags": [{"key": "environment", "value": "sample"}]
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_warns_of_members_not_applied_and_describe_returns_the_definition() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(None).await?;
    let path = dir.path().join("ecs.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&stack())?)?;

    let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "apply failed: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    let fields: Vec<String> = warnings
        .iter()
        .map(|l| l.split(": ").take(3).collect::<Vec<_>>().join(": "))
        .collect();
    assert_eq!(
        fields,
        [
            "warning: task-definition sample-fargate:1: executionRoleArn",
            "warning: task-definition sample-fargate:1: containerDefinitions[0].logConfiguration",
            "warning: service sample: networkConfiguration",
        ],
        "{stderr}"
    );

    let out = server.cli(&["describe", "task-definition", "sample-fargate:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let described: Value = serde_json::from_slice(&out.stdout)?;
    // As registered, with what ECS adds when it describes one: the container's cpu (0)
    // and its environment ([]).
    let mut given = stack()["taskDefinitions"][0].clone();
    given["containerDefinitions"][0]["cpu"] = json!(0);
    given["containerDefinitions"][0]["environment"] = json!([]);
    for (k, v) in given.as_object().unwrap() {
        assert_eq!(&described[k], v, "{k} as registered");
    }
    assert_eq!(described["revision"], 1);
    assert_eq!(described["status"], "ACTIVE");
    assert!(described["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .ends_with("task-definition/sample-fargate:1"));

    let svc = server.get("/v1/clusters/default/services/sample").await?;
    assert_eq!(svc["enableExecuteCommand"], true);
    assert_eq!(
        svc["networkConfiguration"]["awsvpcConfiguration"]["subnets"],
        json!(["subnet-1"])
    );
    assert_eq!(svc["deploymentController"]["type"], "ECS");

    // A member berth refuses fails the whole apply and names the field once.
    let mut refused = stack();
    refused["services"][0]["deploymentController"]["type"] = json!("CODE_DEPLOY");
    std::fs::write(&path, serde_json::to_vec_pretty(&refused)?)?;
    let out = server.cli(&["apply", "-f", &path.to_string_lossy()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_eq!(
        stderr.matches("deploymentController.type").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("ECS, CODE_DEPLOY and EXTERNAL"), "{stderr}");
    Ok(())
}
