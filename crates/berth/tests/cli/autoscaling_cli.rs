//! The autoscaling commands through the real binary against a real server: apply an
//! autoscaling file, list it with `get`, describe it, refuse a bad file without changing
//! anything, and lose it with the service. The service asks for no tasks, so nothing
//! runs.

use std::process::Output;

use berth_testkit::Server;

const SERVICE: &str = r#"
taskDefinitions:
  - family: web
    containerDefinitions:
      - name: app
        image: berth-whoami:latest
        entryPoint: [berth-whoami]
        portMappings: [{containerPort: 8080}]
targetGroups: [{targetGroupName: web}]
loadBalancers:
  - loadBalancerName: web
    listeners:
      - {port: 0, protocol: HTTP, defaultActions: [{type: forward, targetGroupName: web}]}
services:
  - serviceName: web
    taskDefinition: web
    desiredCount: 0
    loadBalancers: [{targetGroupName: web, containerName: app, containerPort: 8080}]
"#;

const SCALING: &str = r#"
scalableTargets:
  - resourceId: service/default/web
    minCapacity: 0
    maxCapacity: 4
    suspendedState: {dynamicScalingInSuspended: true}
scalingPolicies:
  - policyName: requests
    resourceId: service/default/web
    policyType: TargetTrackingScaling
    targetTrackingScalingPolicyConfiguration:
      targetValue: 600
      predefinedMetricSpecification:
        predefinedMetricType: ALBRequestCountPerTarget
        resourceLabel: app/web/targetgroup/web
scheduledActions:
  - scheduledActionName: nights
    resourceId: service/default/web
    schedule: cron(0 20 * * ? *)
    timezone: Europe/Paris
    scalableTargetAction: {minCapacity: 0, maxCapacity: 2}
"#;

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "the command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The rows of a table, split on runs of two or more spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .skip(1)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn autoscaling_resources_through_the_cli() -> anyhow::Result<()> {
    let server = Server::start(None).await?;
    let dir = tempfile::tempdir()?;
    let service = dir.path().join("service.yaml");
    std::fs::write(&service, SERVICE)?;
    server.apply_ok(&service);
    let scaling = dir.path().join("autoscaling.yaml");
    std::fs::write(&scaling, SCALING)?;
    let applied = server.apply_ok(&scaling);
    assert!(
        applied.contains("scalable-target") && applied.contains("created"),
        "{applied}"
    );

    let targets = stdout(&server.cli(&["get", "scalable-targets"]));
    assert_eq!(
        rows(&targets),
        [["default/web", "0", "4", "0", "in"]],
        "{targets}"
    );
    let policies = stdout(&server.cli(&["get", "scaling-policies"]));
    assert_eq!(
        rows(&policies),
        [[
            "requests",
            "default/web",
            "TargetTracking",
            "ALBRequestCountPerTarget (app/web/targetgroup/web)",
            "600.0",
            "300/300"
        ]],
        "{policies}"
    );
    let actions = stdout(&server.cli(&["get", "scheduled-actions", "-c", "default"]));
    assert_eq!(
        rows(&actions),
        [[
            "nights",
            "default/web",
            "cron(0 20 * * ? *)",
            "Europe/Paris",
            "0",
            "2"
        ]],
        "{actions}"
    );
    let policy: serde_json::Value = serde_json::from_str(&stdout(&server.cli(&[
        "describe",
        "scaling-policy",
        "web/requests",
    ])))?;
    assert!(
        policy["policyARN"]
            .as_str()
            .is_some_and(|a| a.ends_with("service/default/web:policyName/requests")),
        "{policy}"
    );
    let activities = stdout(&server.cli(&["describe", "scaling-activities", "web"]));
    assert!(activities.starts_with("START (UTC)"), "{activities}");
    // Nothing scales (no task, so no request count: missing data); the autoscaler may
    // already have recorded that decision not to scale.
    assert!(
        rows(&activities)
            .iter()
            .all(|r| r.get(1).is_some_and(|s| s == "Failed")
                && r.last()
                    .is_some_and(|c| c.starts_with("not scaled: MissingData"))),
        "{activities}"
    );

    // A bad file exits 64 naming the field, and changes nothing.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        SCALING.replace("app/web/targetgroup/web", "app/web/targetgroup/nope"),
    )?;
    let out = server.cli(&["apply", "-f", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scalingPolicies[0].targetTrackingScalingPolicyConfiguration.predefinedMetricSpecification.resourceLabel"),
        "{err}"
    );
    assert_eq!(stdout(&server.cli(&["get", "scaling-policies"])), policies);

    // One policy goes alone; a scalable target takes the service's policies and
    // scheduled actions with it.
    let out = stdout(&server.cli(&["delete", "scaling-policy", "web/requests"]));
    assert_eq!(out.trim(), "scaling-policy web/requests deleted");
    assert!(rows(&stdout(&server.cli(&["get", "scaling-policies"]))).is_empty());
    server.apply_ok(&scaling);
    stdout(&server.cli(&["delete", "scalable-target", "web"]));
    for kind in ["scalable-targets", "scaling-policies", "scheduled-actions"] {
        let table = stdout(&server.cli(&["get", kind]));
        assert!(rows(&table).is_empty(), "{kind}: {table}");
    }

    // Deleting the service deletes its autoscaling.
    server.apply_ok(&scaling);
    assert_eq!(
        rows(&stdout(&server.cli(&["get", "scaling-policies"]))).len(),
        1
    );
    stdout(&server.cli(&["delete", "service", "web"]));
    for kind in ["scalable-targets", "scaling-policies", "scheduled-actions"] {
        let table = stdout(&server.cli(&["get", kind]));
        assert!(rows(&table).is_empty(), "{kind}: {table}");
    }
    Ok(())
}
