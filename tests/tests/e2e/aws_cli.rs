//! End-to-end tests of the AWS front door through the real AWS CLI (botocore) against
//! the real `berth` binary: ECS's getting-started flow (clusters, task definitions,
//! services with waiters, deployments (a new task definition and a forced new
//! deployment), scaling, tasks, container instances), bad input
//! answered with AWS's error codes and changing nothing, one state shared with berth's
//! own API and CLI. ELBv2's flow is in `aws_elbv2_cli.rs`.
//!
//! The getting-started flow runs with authentication on (berth's default): the CLI signs
//! with the admin's access key from the data directory's credentials file; an unsigned
//! call is refused with `MissingAuthenticationToken`, and a user allowed only
//! `ecs:Describe*`/`ecs:List*` gets `AccessDeniedException` from `create-service` and
//! creates nothing. The other tests sign with example keys against a server with
//! `--insecure-loopback`. berth runs tasks as local processes and every listener binds
//! port 0 on 127.0.0.1.

use crate::fixtures;
use crate::venv;

use std::time::Duration;

use anyhow::Result;
use berth_testkit::{wait_until, Server};
use fixtures::{arns, task_definition_file};
use serde_json::{json, Value};
use venv::{aws, aws_fails};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_getting_started_flow_through_the_aws_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let server = Server::launch_guarded(&data, None, "process", &[]).await?;
    let ep = server.api.as_str();
    let (admin_id, admin_secret) = venv::admin_key(&data);
    venv::sign_with(ep, &admin_id, &admin_secret);

    // Clusters.
    let c = aws(ep, &["ecs", "create-cluster", "--cluster-name", "demo"]);
    assert_eq!(c["cluster"]["clusterName"], "demo");
    assert_eq!(c["cluster"]["status"], "ACTIVE");
    assert!(c["cluster"]["clusterArn"]
        .as_str()
        .unwrap()
        .ends_with(":cluster/demo"));
    let listed = aws(ep, &["ecs", "list-clusters"]);
    assert_eq!(arns(&listed, "clusterArns").len(), 2, "{listed}");
    let d = aws(
        ep,
        &["ecs", "describe-clusters", "--clusters", "demo", "nowhere"],
    );
    assert_eq!(d["clusters"][0]["clusterName"], "demo");
    assert_eq!(d["failures"][0]["arn"], "nowhere");
    assert_eq!(d["failures"][0]["reason"], "MISSING");

    // Task definitions.
    let td1 = aws(
        ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &task_definition_file(dir.path(), "one"),
        ],
    );
    assert_eq!(td1["taskDefinition"]["revision"], 1, "{td1}");
    assert_eq!(td1["taskDefinition"]["status"], "ACTIVE");
    let td1_arn = td1["taskDefinition"]["taskDefinitionArn"]
        .as_str()
        .unwrap()
        .to_string();

    // A service, and the waiter botocore ships.
    let s = aws(
        ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            "web",
            "--task-definition",
            "whoami",
            "--desired-count",
            "2",
            "--deployment-configuration",
            "maximumPercent=200,minimumHealthyPercent=50",
        ],
    );
    assert_eq!(s["service"]["serviceName"], "web");
    assert_eq!(s["service"]["status"], "ACTIVE");
    assert_eq!(s["service"]["taskDefinition"], td1_arn.as_str());
    let again = aws_fails(
        ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            "web",
            "--task-definition",
            "whoami",
        ],
    );
    assert!(again.contains("InvalidParameterException"), "{again}");
    aws(ep, &["ecs", "wait", "services-stable", "--services", "web"]);
    let d = aws(ep, &["ecs", "describe-services", "--services", "web"]);
    let svc = &d["services"][0];
    assert_eq!(svc["runningCount"], 2, "{svc}");
    assert_eq!(svc["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(svc["deployments"][0]["status"], "PRIMARY");
    assert!(svc["createdAt"].is_number(), "epoch seconds: {svc}");

    // A new revision rolls out; the waiter waits for it.
    let td2 = aws(
        ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &task_definition_file(dir.path(), "two"),
        ],
    );
    assert_eq!(td2["taskDefinition"]["revision"], 2);
    let u = aws(
        ep,
        &[
            "ecs",
            "update-service",
            "--service",
            "web",
            "--task-definition",
            "whoami:2",
        ],
    );
    assert!(u["service"]["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with("whoami:2"));
    aws(ep, &["ecs", "wait", "services-stable", "--services", "web"]);
    let tasks = aws(ep, &["ecs", "list-tasks", "--service-name", "web"]);
    let task_arns = arns(&tasks, "taskArns");
    assert_eq!(task_arns.len(), 2, "{tasks}");
    let mut args = vec!["ecs", "describe-tasks", "--tasks"];
    args.extend(task_arns.iter().map(String::as_str));
    let described = aws(ep, &args);
    for t in described["tasks"].as_array().unwrap() {
        assert_eq!(t["lastStatus"], "RUNNING", "{t}");
        assert!(t["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .ends_with("whoami:2"));
    }

    // A forced deployment of the same definition replaces every task.
    let forced = aws(
        ep,
        &[
            "ecs",
            "update-service",
            "--service",
            "web",
            "--force-new-deployment",
        ],
    );
    let deployments = forced["service"]["deployments"].as_array().unwrap();
    assert_eq!(deployments.len(), 2, "{forced}");
    assert_eq!(deployments[0]["status"], "PRIMARY");
    assert_eq!(deployments[0]["rolloutState"], "IN_PROGRESS");
    assert!(deployments[0]["taskDefinition"]
        .as_str()
        .unwrap()
        .ends_with("whoami:2"));
    assert_eq!(deployments[1]["status"], "ACTIVE");
    let forced_id = deployments[0]["id"].as_str().unwrap().to_string();
    aws(ep, &["ecs", "wait", "services-stable", "--services", "web"]);
    let d = aws(ep, &["ecs", "describe-services", "--services", "web"]);
    let after = &d["services"][0]["deployments"];
    assert_eq!(after.as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(after[0]["id"], forced_id.as_str());
    assert_eq!(after[0]["rolloutState"], "COMPLETED");
    let tasks = aws(ep, &["ecs", "list-tasks", "--service-name", "web"]);
    let replaced = arns(&tasks, "taskArns");
    assert_eq!(replaced.len(), 2, "{tasks}");
    assert!(
        replaced.iter().all(|t| !task_arns.contains(t)),
        "every task replaced: {task_arns:?} then {replaced:?}"
    );
    let mut args = vec!["ecs", "describe-tasks", "--tasks"];
    args.extend(replaced.iter().map(String::as_str));
    for t in aws(ep, &args)["tasks"].as_array().unwrap() {
        assert_eq!(t["startedBy"], forced_id.as_str(), "{t}");
    }

    // Scale out, with a new deployment in the same call.
    let scaled = aws(
        ep,
        &[
            "ecs",
            "update-service",
            "--service",
            "web",
            "--desired-count",
            "3",
            "--force-new-deployment",
        ],
    );
    let primary = &scaled["service"]["deployments"][0];
    assert_ne!(primary["id"], forced_id.as_str(), "{scaled}");
    assert_eq!(primary["desiredCount"], 3, "{scaled}");
    aws(ep, &["ecs", "wait", "services-stable", "--services", "web"]);
    let d = aws(ep, &["ecs", "describe-services", "--services", "web"]);
    assert_eq!(d["services"][0]["runningCount"], 3);
    assert_eq!(d["services"][0]["desiredCount"], 3);
    assert_eq!(d["services"][0]["deployments"][0]["id"], primary["id"]);

    // Pages of two.
    let page = aws(
        ep,
        &[
            "ecs",
            "list-tasks",
            "--service-name",
            "web",
            "--max-items",
            "2",
            "--page-size",
            "2",
        ],
    );
    assert_eq!(arns(&page, "taskArns").len(), 2, "{page}");
    assert!(page["NextToken"].is_string(), "{page}");

    // Stop a task: it stops, and the service replaces it.
    let victim = arns(
        &aws(ep, &["ecs", "list-tasks", "--service-name", "web"]),
        "taskArns",
    )[0]
    .clone();
    let stopped = aws(
        ep,
        &[
            "ecs",
            "stop-task",
            "--task",
            &victim,
            "--reason",
            "by the test",
        ],
    );
    assert_eq!(stopped["task"]["desiredStatus"], "STOPPED");
    wait_until(
        "the stopped task to be replaced",
        Duration::from_secs(60),
        || {
            let victim = victim.clone();
            async move {
                let t = aws(ep, &["ecs", "list-tasks", "--service-name", "web"]);
                let now = arns(&t, "taskArns");
                (now.len() == 3 && !now.contains(&victim)).then_some(())
            }
        },
    )
    .await?;
    let d = aws(ep, &["ecs", "describe-tasks", "--tasks", &victim]);
    assert_eq!(d["tasks"][0]["stoppedReason"], "by the test");

    // Container instances: the server's own node.
    let ci = aws(ep, &["ecs", "list-container-instances"]);
    let ci_arns = arns(&ci, "containerInstanceArns");
    assert_eq!(ci_arns.len(), 1, "{ci}");
    let dci = aws(
        ep,
        &[
            "ecs",
            "describe-container-instances",
            "--container-instances",
            &ci_arns[0],
        ],
    );
    assert_eq!(dci["containerInstances"][0]["status"], "ACTIVE");
    assert!(dci["containerInstances"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "ecs.os-type"));

    // A standalone task: RunTask, the tasks-running waiter, StopTask.
    let run = aws(
        ep,
        &[
            "ecs",
            "run-task",
            "--task-definition",
            "whoami:2",
            "--started-by",
            "the-test",
        ],
    );
    assert_eq!(run["failures"], json!([]), "{run}");
    let run_arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    assert_eq!(run["tasks"][0]["group"], "family:whoami");
    aws(ep, &["ecs", "wait", "tasks-running", "--tasks", &run_arn]);
    let by = aws(ep, &["ecs", "list-tasks", "--started-by", "the-test"]);
    assert_eq!(arns(&by, "taskArns"), vec![run_arn.clone()]);
    aws(ep, &["ecs", "stop-task", "--task", &run_arn]);
    aws(ep, &["ecs", "wait", "tasks-stopped", "--tasks", &run_arn]);

    // Task definitions listed and deregistered.
    let l = aws(ep, &["ecs", "list-task-definitions", "--sort", "DESC"]);
    let l = arns(&l, "taskDefinitionArns");
    assert!(
        l[0].ends_with("whoami:2") && l[1].ends_with("whoami:1"),
        "{l:?}"
    );
    let dr = aws(
        ep,
        &[
            "ecs",
            "deregister-task-definition",
            "--task-definition",
            "whoami:1",
        ],
    );
    assert_eq!(dr["taskDefinition"]["status"], "INACTIVE");
    let l = aws(ep, &["ecs", "list-task-definitions"]);
    assert_eq!(arns(&l, "taskDefinitionArns").len(), 1);

    // Delete: refused while scaled above 0, unless forced.
    let refused = aws_fails(ep, &["ecs", "delete-service", "--service", "web"]);
    assert!(refused.contains("InvalidParameterException"), "{refused}");
    let del = aws(
        ep,
        &["ecs", "delete-service", "--service", "web", "--force"],
    );
    assert_eq!(del["service"]["status"], "DRAINING");
    wait_until(
        "the service's tasks to stop",
        Duration::from_secs(60),
        || async {
            let t = aws(ep, &["ecs", "list-tasks", "--service-name", "web"]);
            arns(&t, "taskArns").is_empty().then_some(())
        },
    )
    .await?;
    let dc = aws(ep, &["ecs", "delete-cluster", "--cluster", "demo"]);
    assert_eq!(dc["cluster"]["status"], "INACTIVE");
    let d = aws(ep, &["ecs", "describe-clusters", "--clusters", "demo"]);
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let missing = aws_fails(ep, &["ecs", "list-services", "--cluster", "demo"]);
    assert!(missing.contains("ClusterNotFoundException"), "{missing}");
    refusals_of_the_front_door(&server, dir.path());
    Ok(())
}

/// `berth <args> -o json` signed with the admin's key of `server`'s data directory.
fn berth_admin(server: &Server, args: &[&str]) -> Value {
    let out = std::process::Command::new(berth_testkit::bin("berth"))
        .args(args)
        .args(["-o", "json"])
        .env("BERTH_ENDPOINT", &server.api)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("BERTH_CREDENTIALS")
        .output()
        .expect("running the berth CLI");
    assert!(
        out.status.success(),
        "berth {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// On a server with authentication on: an unsigned call, and a read-only user's
/// create-service, are refused as AWS refuses them, and create nothing.
fn refusals_of_the_front_door(server: &Server, tmp: &std::path::Path) {
    let ep = server.api.as_str();
    let unsigned = aws_fails(ep, &["ecs", "list-clusters", "--no-sign-request"]);
    assert!(
        unsigned.contains("MissingAuthenticationToken"),
        "{unsigned}"
    );

    let policy = tmp.join("read-only.json");
    std::fs::write(
        &policy,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"], "Resource": "*"}]}"#,
    )
    .unwrap();
    berth_admin(server, &["iam", "create-user", "reader"]);
    berth_admin(
        server,
        &[
            "iam",
            "put-user-policy",
            "reader",
            "read",
            "--policy-document",
            &policy.to_string_lossy(),
        ],
    );
    let key = berth_admin(server, &["iam", "create-access-key", "reader"]);
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap();
    let admin_view = aws(ep, &["ecs", "list-services", "--cluster", "default"]);

    // The reader signs its own calls from here on.
    venv::sign_with(ep, id, secret);
    let listed = aws(ep, &["ecs", "list-clusters"]);
    assert!(!arns(&listed, "clusterArns").is_empty(), "{listed}");
    let denied = aws_fails(
        ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            "forbidden",
            "--task-definition",
            "whoami",
            "--desired-count",
            "1",
        ],
    );
    assert!(denied.contains("AccessDeniedException"), "{denied}");
    assert!(
        denied.contains("User: arn:berth:iam::000000000000:user/reader is not authorized to perform: ecs:CreateService on resource: * because no identity-based policy allows the ecs:CreateService action"),
        "{denied}"
    );
    assert_eq!(
        aws(ep, &["ecs", "list-services", "--cluster", "default"]),
        admin_view,
        "nothing was created"
    );
}

/// Sends one ECS JSON 1.1 request as botocore would, unsigned.
async fn ecs_raw(ep: &str, operation: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{ep}/"))
        .header(
            "X-Amz-Target",
            format!("AmazonEC2ContainerServiceV20141113.{operation}"),
        )
        .header("Content-Type", "application/x-amz-json-1.1")
        .body(body.to_string())
        .send()
        .await
        .expect("POST /");
    let status = r.status().as_u16();
    (status, r.json().await.expect("a JSON answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_aws_codes_and_changes_nothing() -> Result<()> {
    let server = Server::start(None).await?;
    let ep = server.api.as_str();
    let before = server.get("/v1/services").await?;

    let (status, v) = ecs_raw(ep, "FrobnicateClusters", "{}").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("UnknownOperationException"))
    );

    let (status, v) = ecs_raw(ep, "CreateService", r#"{"taskDefinition":"x"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "InvalidParameterException");
    assert!(
        v["message"].as_str().unwrap().contains("serviceName"),
        "{v}"
    );

    let (status, v) = ecs_raw(
        ep,
        "CreateService",
        r#"{"serviceName":"s","taskDefinition":"x","desiredCount":"two"}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["__type"], "SerializationException");
    assert!(
        v["message"].as_str().unwrap().contains("desiredCount"),
        "{v}"
    );

    let (status, v) = ecs_raw(ep, "CreateCluster", "[]").await;
    assert_eq!(
        (status, v["__type"].as_str()),
        (400, Some("SerializationException"))
    );

    // Through the CLI: botocore reads the codes from the answers.
    let e = aws_fails(
        ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            "s",
            "--task-definition",
            "not-registered",
        ],
    );
    assert!(e.contains("InvalidParameterException"), "{e}");
    assert!(e.contains("taskDefinition"), "{e}");
    let e = aws_fails(
        ep,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            "nope",
            "--services",
            "s",
        ],
    );
    assert!(e.contains("ClusterNotFoundException"), "{e}");
    let e = aws_fails(
        ep,
        &[
            "ecs",
            "update-service",
            "--service",
            "nope",
            "--desired-count",
            "1",
        ],
    );
    assert!(e.contains("ServiceNotFoundException"), "{e}");
    let e = aws_fails(
        ep,
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "nope:3",
        ],
    );
    assert!(e.contains("ClientException"), "{e}");

    // Nothing changed, as berth's own API sees it.
    assert_eq!(server.get("/v1/services").await?, before);
    assert_eq!(
        server.get("/v1/task-definitions").await?,
        json!([]),
        "no task definition was registered"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_state_for_the_aws_cli_and_berths_own_cli() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = Server::start(None).await?;
    let ep = server.api.as_str();

    // Created with the AWS CLI, seen by `berth get services`.
    aws(
        ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &task_definition_file(dir.path(), "one"),
        ],
    );
    aws(
        ep,
        &[
            "ecs",
            "create-service",
            "--service-name",
            "from-aws",
            "--task-definition",
            "whoami",
            "--desired-count",
            "0",
        ],
    );
    let out = server.cli(&["get", "services"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout)?;
    assert!(table.contains("from-aws"), "{table}");

    // Applied with `berth apply`, listed by `aws ecs list-services`.
    let stack = dir.path().join("stack.yaml");
    std::fs::write(
        &stack,
        "services:\n  - serviceName: from-berth\n    cluster: default\n    taskDefinition: whoami\n    desiredCount: 0\n",
    )?;
    server.apply_ok(&stack);
    let l = aws(ep, &["ecs", "list-services"]);
    let names: Vec<String> = arns(&l, "serviceArns")
        .iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"from-aws".to_string()) && names.contains(&"from-berth".to_string()));
    Ok(())
}
