//! End-to-end test of ELBv2 through the real AWS CLI against the real `berth` binary:
//! a target group, a load balancer, a listener and rules made with `aws elbv2`, a
//! service with `loadBalancers` made with `aws ecs`, the `target-in-service` waiter,
//! then requests through the listener reach the app (and a rule's fixed response);
//! rules change and go; ELBv2's error codes for duplicates, unknown names and a target
//! group in use; everything torn down in ELBv2's order.
//!
//! The server runs with authentication on (berth's default): the CLI signs its
//! query-protocol requests (form bodies) with SigV4 and the admin's access key from the
//! data directory's credentials file; a user allowed only `elasticloadbalancing:Describe*`
//! is refused `create-target-group` with ELBv2's `AccessDenied` and creates nothing.

use crate::fixtures;
use crate::venv;

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::{wait_until, Server};
use fixtures::task_definition_file;
use serde_json::json;
use venv::{aws, aws_fails};

/// A port no listener holds right now (the AWS CLI refuses port 0, which berth would
/// take as "any free port").
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server with authentication on, its data directory under `dir`; the AWS CLI signs
/// for it with the admin's access key.
async fn guarded_server(dir: &Path) -> Result<Server> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let server = Server::launch_guarded(&data, None, "process", &[]).await?;
    let (id, secret) = venv::admin_key(&data);
    venv::sign_with(&server.api, &id, &secret);
    Ok(server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elbv2_flow_serves_the_app_through_a_listener() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = guarded_server(dir.path()).await?;
    let ep = server.api.as_str();

    let tg = aws(
        ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            "web",
            "--protocol",
            "HTTP",
            "--port",
            "8080",
            "--target-type",
            "instance",
            "--health-check-path",
            "/health",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "4",
            "--healthy-threshold-count",
            "2",
            "--unhealthy-threshold-count",
            "3",
        ],
    );
    let tg = &tg["TargetGroups"][0];
    assert_eq!(tg["TargetGroupName"], "web");
    assert_eq!(tg["HealthCheckPath"], "/health");
    assert_eq!(tg["Port"], 8080);
    let tg_arn = tg["TargetGroupArn"].as_str().unwrap().to_string();
    let attrs = aws(
        ep,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg_arn,
            "--attributes",
            "Key=deregistration_delay.timeout_seconds,Value=5",
        ],
    );
    assert!(attrs["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["Key"] == "deregistration_delay.timeout_seconds" && a["Value"] == "5"));

    let lb = aws(
        ep,
        &[
            "elbv2",
            "create-load-balancer",
            "--name",
            "front",
            "--type",
            "application",
        ],
    );
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let dup = aws_fails(ep, &["elbv2", "create-load-balancer", "--name", "front"]);
    assert!(dup.contains("DuplicateLoadBalancerName"), "{dup}");
    aws(
        ep,
        &[
            "elbv2",
            "wait",
            "load-balancer-available",
            "--load-balancer-arns",
            &lb_arn,
        ],
    );

    let port = free_port();
    let l = aws(
        ep,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            &port.to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ],
    );
    let listener = &l["Listeners"][0];
    assert_eq!(listener["Port"], port);
    assert_eq!(
        listener["DefaultActions"][0]["TargetGroupArn"],
        tg_arn.as_str()
    );
    let listener_arn = listener["ListenerArn"].as_str().unwrap().to_string();
    let rule = aws(
        ep,
        &[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &listener_arn,
            "--priority",
            "10",
            "--conditions",
            r#"[{"Field":"path-pattern","PathPatternConfig":{"Values":["/fixed"]}}]"#,
            "--actions",
            r#"[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"200","ContentType":"text/plain","MessageBody":"fixed by a rule"}}]"#,
        ],
    );
    let rule_arn = rule["Rules"][0]["RuleArn"].as_str().unwrap().to_string();
    let rules = aws(
        ep,
        &["elbv2", "describe-rules", "--listener-arn", &listener_arn],
    );
    let rules = rules["Rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(rules[0]["Priority"], "10");
    assert_eq!(rules[1]["IsDefault"], true);
    let taken = aws_fails(
        ep,
        &[
            "elbv2",
            "create-rule",
            "--listener-arn",
            &listener_arn,
            "--priority",
            "10",
            "--conditions",
            "Field=path-pattern,Values=/other",
            "--actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ],
    );
    assert!(taken.contains("PriorityInUse"), "{taken}");

    // The service registers its tasks in the target group.
    aws(
        ep,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &task_definition_file(dir.path(), "through the load balancer"),
        ],
    );
    aws(
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
            "--load-balancers",
            &format!("targetGroupArn={tg_arn},containerName=web,containerPort=8080"),
        ],
    );
    let in_use = aws_fails(
        ep,
        &[
            "elbv2",
            "delete-target-group",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    assert!(in_use.contains("ResourceInUse"), "{in_use}");
    // target-in-service waits until every target is healthy (and there is one).
    aws(
        ep,
        &[
            "elbv2",
            "wait",
            "target-in-service",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    let health = aws(
        ep,
        &[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    let descriptions = health["TargetHealthDescriptions"].as_array().unwrap();
    assert_eq!(descriptions.len(), 2, "{health}");
    assert!(descriptions
        .iter()
        .all(|d| d["TargetHealth"]["State"] == "healthy"));

    // Traffic through the listener: the app, and the rule's fixed response.
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("x-berth-task"),
        "answered by a task"
    );
    let r = client
        .get(format!("http://127.0.0.1:{port}/fixed"))
        .send()
        .await?;
    assert_eq!(r.text().await?, "fixed by a rule");

    // Describe calls agree with each other.
    let tgs = aws(
        ep,
        &[
            "elbv2",
            "describe-target-groups",
            "--load-balancer-arn",
            &lb_arn,
        ],
    );
    assert_eq!(tgs["TargetGroups"][0]["TargetGroupArn"], tg_arn.as_str());
    assert_eq!(
        tgs["TargetGroups"][0]["LoadBalancerArns"][0],
        lb_arn.as_str()
    );
    let ls = aws(
        ep,
        &[
            "elbv2",
            "describe-listeners",
            "--load-balancer-arn",
            &lb_arn,
        ],
    );
    assert_eq!(ls["Listeners"].as_array().unwrap().len(), 1);
    let missing = aws_fails(ep, &["elbv2", "describe-target-groups", "--names", "nope"]);
    assert!(missing.contains("TargetGroupNotFound"), "{missing}");

    // The rule's action changes, then the rule goes.
    aws(
        ep,
        &[
            "elbv2",
            "modify-rule",
            "--rule-arn",
            &rule_arn,
            "--actions",
            r#"[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"200","MessageBody":"changed"}}]"#,
        ],
    );
    let body = wait_until(
        "the modified rule to serve",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/fixed"))
                    .send()
                    .await
                    .ok()?;
                let t = r.text().await.ok()?;
                (t == "changed").then_some(t)
            }
        },
    )
    .await?;
    assert_eq!(body, "changed");
    // A new priority: berth derives a rule's ARN from it, so the answer has a new ARN.
    let moved = aws(
        ep,
        &[
            "elbv2",
            "set-rule-priorities",
            "--rule-priorities",
            &format!("RuleArn={rule_arn},Priority=5"),
        ],
    );
    assert_eq!(moved["Rules"][0]["Priority"], "5", "{moved}");
    let rule_arn = moved["Rules"][0]["RuleArn"].as_str().unwrap().to_string();
    assert!(rule_arn.ends_with("/5"), "{rule_arn}");
    aws(ep, &["elbv2", "delete-rule", "--rule-arn", &rule_arn]);
    let rules = aws(
        ep,
        &["elbv2", "describe-rules", "--listener-arn", &listener_arn],
    );
    assert_eq!(rules["Rules"].as_array().unwrap().len(), 1);

    // Load balancer attributes, and a listener whose default action changes.
    let attrs = aws(
        ep,
        &[
            "elbv2",
            "modify-load-balancer-attributes",
            "--load-balancer-arn",
            &lb_arn,
            "--attributes",
            "Key=idle_timeout.timeout_seconds,Value=30",
        ],
    );
    assert!(attrs["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["Key"] == "idle_timeout.timeout_seconds" && a["Value"] == "30"));
    let attrs = aws(
        ep,
        &[
            "elbv2",
            "describe-load-balancer-attributes",
            "--load-balancer-arn",
            &lb_arn,
        ],
    );
    assert!(attrs["Attributes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["Key"] == "idle_timeout.timeout_seconds" && a["Value"] == "30"));
    aws(
        ep,
        &[
            "elbv2",
            "modify-listener",
            "--listener-arn",
            &listener_arn,
            "--default-actions",
            r#"[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"503","MessageBody":"maintenance"}}]"#,
        ],
    );
    let status = wait_until(
        "the listener's new default action",
        Duration::from_secs(10),
        || {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/"))
                    .send()
                    .await
                    .ok()?;
                let status = r.status().as_u16();
                (r.text().await.ok()? == "maintenance").then_some(status)
            }
        },
    )
    .await?;
    assert_eq!(status, 503);

    // Tear down in ELBv2's order.
    aws(
        ep,
        &["ecs", "delete-service", "--service", "web", "--force"],
    );
    aws(
        ep,
        &["elbv2", "delete-listener", "--listener-arn", &listener_arn],
    );
    aws(
        ep,
        &[
            "elbv2",
            "delete-load-balancer",
            "--load-balancer-arn",
            &lb_arn,
        ],
    );
    wait_until(
        "the service to be gone",
        Duration::from_secs(60),
        || async {
            let d = aws(ep, &["ecs", "describe-services", "--services", "web"]);
            (d["failures"].as_array().is_some_and(|f| !f.is_empty())).then_some(())
        },
    )
    .await?;
    aws(
        ep,
        &[
            "elbv2",
            "delete-target-group",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    let lbs = aws(ep, &["elbv2", "describe-load-balancers"]);
    assert_eq!(lbs["LoadBalancers"], json!([]));
    let tgs = aws(ep, &["elbv2", "describe-target-groups"]);
    assert_eq!(tgs["TargetGroups"], json!([]));
    Ok(())
}

/// An HTTP server outside berth: answers every request on 127.0.0.1 with `body`.
async fn outside_server(body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_targets_outside_berth_register_serve_and_drain() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = guarded_server(dir.path()).await?;
    let ep = server.api.as_str();
    let outside = outside_server("served from outside berth").await;

    let tg = aws(
        ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            "outside",
            "--protocol",
            "HTTP",
            "--port",
            &outside.to_string(),
            "--target-type",
            "ip",
            "--health-check-interval-seconds",
            "5",
            "--health-check-timeout-seconds",
            "4",
            "--healthy-threshold-count",
            "2",
        ],
    );
    let tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    aws(
        ep,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg_arn,
            "--attributes",
            "Key=deregistration_delay.timeout_seconds,Value=1",
        ],
    );
    let lb = aws(ep, &["elbv2", "create-load-balancer", "--name", "edge"]);
    let lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let port = free_port();
    aws(
        ep,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb_arn,
            "--protocol",
            "HTTP",
            "--port",
            &port.to_string(),
            "--default-actions",
            &format!("Type=forward,TargetGroupArn={tg_arn}"),
        ],
    );

    let bad = aws_fails(
        ep,
        &[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            "Id=not-an-address",
        ],
    );
    assert!(bad.contains("InvalidTarget"), "{bad}");
    aws(
        ep,
        &[
            "elbv2",
            "register-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            "Id=127.0.0.1",
        ],
    );
    aws(
        ep,
        &[
            "elbv2",
            "wait",
            "target-in-service",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    let r = reqwest::get(format!("http://127.0.0.1:{port}/")).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await?, "served from outside berth");

    aws(
        ep,
        &[
            "elbv2",
            "deregister-targets",
            "--target-group-arn",
            &tg_arn,
            "--targets",
            &format!("Id=127.0.0.1,Port={outside}"),
        ],
    );
    let h = aws(
        ep,
        &[
            "elbv2",
            "describe-target-health",
            "--target-group-arn",
            &tg_arn,
        ],
    );
    let states: Vec<&str> = h["TargetHealthDescriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["TargetHealth"]["State"].as_str().unwrap_or(""))
        .collect();
    assert!(states.is_empty() || states == ["draining"], "{h}");
    // Drained within the 1 s deregistration delay; then the listener has no target.
    let status = wait_until("the target to drain", Duration::from_secs(30), || async {
        let h = aws(
            ep,
            &[
                "elbv2",
                "describe-target-health",
                "--target-group-arn",
                &tg_arn,
            ],
        );
        if h["TargetHealthDescriptions"] != json!([]) {
            return None;
        }
        let r = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .ok()?;
        Some(r.status().as_u16())
    })
    .await?;
    assert_eq!(status, 503, "no target left behind the listener");
    Ok(())
}

/// `berth <args> -o json` signed with the admin's key of `server`'s data directory.
fn berth_admin(server: &Server, args: &[&str]) -> serde_json::Value {
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
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_describe_only_user_is_refused_create_target_group() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = guarded_server(dir.path()).await?;
    let ep = server.api.as_str();
    let unsigned = aws_fails(
        ep,
        &["elbv2", "describe-target-groups", "--no-sign-request"],
    );
    assert!(
        unsigned.contains("MissingAuthenticationToken"),
        "{unsigned}"
    );

    let policy = dir.path().join("describe-only.json");
    std::fs::write(
        &policy,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "elasticloadbalancing:Describe*", "Resource": "*"}]}"#,
    )?;
    berth_admin(&server, &["iam", "create-user", "viewer"]);
    berth_admin(
        &server,
        &[
            "iam",
            "put-user-policy",
            "viewer",
            "describe",
            "--policy-document",
            &policy.to_string_lossy(),
        ],
    );
    let key = berth_admin(&server, &["iam", "create-access-key", "viewer"]);
    let id = key["AccessKey"]["AccessKeyId"].as_str().unwrap();
    let secret = key["AccessKey"]["SecretAccessKey"].as_str().unwrap();

    venv::sign_with(ep, id, secret);
    let seen = aws(ep, &["elbv2", "describe-target-groups"]);
    assert_eq!(seen["TargetGroups"], json!([]), "{seen}");
    let denied = aws_fails(
        ep,
        &[
            "elbv2",
            "create-target-group",
            "--name",
            "forbidden",
            "--protocol",
            "HTTP",
            "--port",
            "8080",
        ],
    );
    assert!(
        denied.contains("(AccessDenied) when calling the CreateTargetGroup operation: User: arn:berth:iam::000000000000:user/viewer is not authorized to perform: elasticloadbalancing:CreateTargetGroup on resource: *"),
        "{denied}"
    );
    let (admin_id, admin_secret) = venv::admin_key(&server.data_dir);
    venv::sign_with(ep, &admin_id, &admin_secret);
    let tgs = aws(ep, &["elbv2", "describe-target-groups"]);
    assert_eq!(tgs["TargetGroups"], json!([]), "nothing was created: {tgs}");
    Ok(())
}
