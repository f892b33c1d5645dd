//! Task definitions and services as ECS users write them: every member of botocore's
//! RegisterTaskDefinitionRequest, ContainerDefinition and CreateServiceRequest is
//! accepted by name, and is either applied or listed (with the same reason) in
//! `field_support::UNSUPPORTED` and in the README's table; every UpdateServiceRequest
//! member is a CreateServiceRequest member or decided in its own README table; enum values are spelled as
//! botocore spells them; the developer guide's Fargate sample is accepted unchanged and
//! comes back field for field.
//!
//! `fixtures/botocore-ecs-members.json` holds only the member names of a few shapes and
//! some enums, copied from boto/botocore `botocore/data/ecs/2014-11-13/service-2.json`
//! at the commit it names.

#![recursion_limit = "256"]

use berth_model::ecs::field_support::{unsupported, UNSUPPORTED};
use berth_model::ecs::{
    ApplicationProtocol, Compatibility, DependencyCondition, DeploymentControllerType,
    DeploymentStrategy, DeviceCgroupPermission, IpcMode, LogDriver, NetworkMode, PidMode,
    PropagateTags, ResourceType, SchedulingStrategy, Service, Support, TaskDefinition,
    TransportProtocol, VersionConsistency, VolumeScope,
};
use berth_model::stack::Stack;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

mod botocore_members;
mod ecs_samples;
use botocore_members::{accepted, botocore, members, APPLIED};
use ecs_samples::{sample, with_member};

fn check_shape<T: DeserializeOwned + std::fmt::Debug>(shape: &str) -> Vec<String> {
    let names = accepted::<T>();
    let mut problems = Vec::new();
    for m in members(shape) {
        if !names.contains(&m) {
            problems.push(format!(
                "{shape}.{m}: not accepted (a generic unknown-field error)"
            ));
        }
    }
    problems
}

#[test]
fn every_botocore_member_is_accepted_by_name() {
    use berth_model::ecs::{
        ContainerDefinition, DeploymentConfiguration, LinuxParameters, LogConfiguration,
        PortMapping, ServiceLoadBalancer, Volume,
    };
    let mut problems = Vec::new();
    problems.extend(check_shape::<TaskDefinition>(
        "RegisterTaskDefinitionRequest",
    ));
    problems.extend(check_shape::<ContainerDefinition>("ContainerDefinition"));
    problems.extend(check_shape::<Service>("CreateServiceRequest"));
    problems.extend(check_shape::<PortMapping>("PortMapping"));
    problems.extend(check_shape::<LinuxParameters>("LinuxParameters"));
    problems.extend(check_shape::<LogConfiguration>("LogConfiguration"));
    problems.extend(check_shape::<Volume>("Volume"));
    problems.extend(check_shape::<DeploymentConfiguration>(
        "DeploymentConfiguration",
    ));
    problems.extend(check_shape::<ServiceLoadBalancer>("LoadBalancer"));
    problems.extend(check_shape::<berth_model::ecs::DeploymentCircuitBreaker>(
        "DeploymentCircuitBreaker",
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Each member is either applied (berth-runtime's container spec and the control plane
/// use it) or has a row in UNSUPPORTED, which the README shows.
#[test]
fn every_member_is_applied_or_listed_with_its_reason() {
    let mut problems = Vec::new();
    for (shape, applied) in APPLIED {
        for m in members(shape) {
            if !applied.contains(&m.as_str()) && unsupported(shape, &m).is_none() {
                problems.push(format!(
                    "{shape}.{m}: neither applied nor listed in UNSUPPORTED and the README"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The UpdateServiceRequest members that are not CreateServiceRequest members, with
/// what a stack file does with each. A stack file holds services in CreateService's
/// shape; applying it again with changed members is berth's UpdateService. The README
/// shows this table.
const UPDATE_SERVICE_ONLY: &[(&str, &str)] = &[
    (
        "service",
        "the service to update: a stack file names it by `serviceName`, and applying the file again with changed members updates it",
    ),
    (
        "forceNewDeployment",
        "not taken: apply is declarative, and a service rolls out a new deployment when its task definition changes (a new revision); to roll the same definition out again, `berth redeploy <service>` (UpdateService with `forceNewDeployment: true` through the AWS front door, alone or with other changes: a call that also changes the task definition starts that one deployment)",
    ),
];

/// Every UpdateServiceRequest member is either a CreateServiceRequest member, which a
/// service in a stack file takes and which is applied or listed as for CreateService,
/// or decided in UPDATE_SERVICE_ONLY (and the README). A member new in botocore's
/// UpdateServiceRequest fails here until someone decides what berth does with it.
#[test]
fn every_update_service_member_is_a_create_service_member_or_decided() {
    let create = members("CreateServiceRequest");
    let update = members("UpdateServiceRequest");
    let accepted_by_service = accepted::<Service>();
    let create_applied = APPLIED
        .iter()
        .find(|(shape, _)| *shape == "CreateServiceRequest")
        .unwrap()
        .1;
    let mut problems = Vec::new();
    for m in &update {
        if create.contains(m) {
            if !accepted_by_service.contains(m) {
                problems.push(format!(
                    "UpdateServiceRequest.{m}: a service does not take it"
                ));
            }
            if !create_applied.contains(&m.as_str())
                && unsupported("CreateServiceRequest", m).is_none()
            {
                problems.push(format!(
                    "UpdateServiceRequest.{m}: as CreateServiceRequest.{m}, neither applied nor listed"
                ));
            }
        } else if !UPDATE_SERVICE_ONLY.iter().any(|(name, _)| name == m) {
            problems.push(format!(
                "UpdateServiceRequest.{m}: not a CreateServiceRequest member and not decided in UPDATE_SERVICE_ONLY and the README"
            ));
        }
    }
    for (name, _) in UPDATE_SERVICE_ONLY {
        if !update.iter().any(|m| m == name) || create.iter().any(|m| m == name) {
            problems.push(format!(
                "UPDATE_SERVICE_ONLY names {name}, which is not an UpdateServiceRequest-only member"
            ));
        }
    }
    assert!(
        accepted_by_service.contains("serviceName"),
        "`service` is a stack file's serviceName"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let mut table = String::from("| UpdateServiceRequest member | in a stack file |\n|---|---|\n");
    for (name, what) in UPDATE_SERVICE_ONLY {
        table.push_str(&format!("| `{name}` | {what} |\n"));
    }
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains(&table),
        "README.md's stack file reference must hold this table:\n\n{table}"
    );
}

/// The README's table, one row per UNSUPPORTED entry, in the same order.
fn readme_table() -> String {
    let mut out =
        String::from("| shape | member | values | berth | why |\n|---|---|---|---|---|\n");
    for r in UNSUPPORTED {
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} |\n",
            r.shape,
            r.member,
            r.values,
            r.support.as_str(),
            r.reason
        ));
    }
    out
}

#[test]
fn the_readme_lists_exactly_the_unsupported_members() {
    let readme = include_str!("../../../README.md");
    let table = readme_table();
    assert!(
        readme.contains(&table),
        "README.md's stack file reference must hold this table:\n\n{table}"
    );
}

/// Every row does what it says: a refused member fails validation with the row's
/// reason at a path naming it; a member not applied is accepted, stored as given and
/// reported with the row's reason.
#[test]
fn each_row_is_refused_or_reported_with_its_reason() {
    let mut problems = Vec::new();
    for r in UNSUPPORTED {
        let (is_td, doc) = with_member(r.shape, r.member, sample(r.shape, r.member));
        let (validated, warnings, round_trip) = if is_td {
            let td: TaskDefinition = match serde_json::from_value(doc.clone()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}.{}: does not parse: {e}", r.shape, r.member));
                    continue;
                }
            };
            (
                td.validate(),
                td.not_applied(),
                serde_json::to_value(&td).unwrap(),
            )
        } else {
            let s: Service = match serde_json::from_value(doc.clone()) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(format!("{}.{}: does not parse: {e}", r.shape, r.member));
                    continue;
                }
            };
            (
                s.validate(),
                s.not_applied(),
                serde_json::to_value(&s).unwrap(),
            )
        };
        match r.support {
            Support::Refused => match validated {
                Err(e) if e.message == r.reason && e.field.contains(r.member) => {}
                Err(e) => problems.push(format!(
                    "{}.{}: refused as {e}, not with the row's reason at its path",
                    r.shape, r.member
                )),
                Ok(()) => problems.push(format!("{}.{}: accepted, not refused", r.shape, r.member)),
            },
            Support::NotApplied => {
                if let Err(e) = validated {
                    problems.push(format!("{}.{}: refused: {e}", r.shape, r.member));
                }
                let found = warnings
                    .iter()
                    .any(|w| w.field.ends_with(r.member) && w.reason == r.reason);
                if !found {
                    problems.push(format!(
                        "{}.{}: no warning with the row's reason, got {warnings:?}",
                        r.shape, r.member
                    ));
                }
                if !contains(&round_trip, &doc) {
                    problems.push(format!(
                        "{}.{}: not stored as given: {round_trip}",
                        r.shape, r.member
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
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
        (Value::Number(b), Value::Number(s)) => b.as_f64() == s.as_f64(),
        _ => big == small,
    }
}

fn same_spelling<T: Serialize + DeserializeOwned + std::fmt::Debug>(shape: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for v in botocore()["enums"][shape].as_array().unwrap() {
        match serde_json::from_value::<T>(v.clone()) {
            Ok(t) if serde_json::to_value(&t).unwrap() == *v => {}
            Ok(t) => problems.push(format!("{shape} {v} is written back as {t:?}")),
            Err(e) => problems.push(format!("{shape} {v}: {e}")),
        }
    }
    problems
}

#[test]
fn enum_values_are_spelled_as_botocore_spells_them() {
    let mut p = Vec::new();
    p.extend(same_spelling::<NetworkMode>("NetworkMode"));
    p.extend(same_spelling::<TransportProtocol>("TransportProtocol"));
    p.extend(same_spelling::<ApplicationProtocol>("ApplicationProtocol"));
    p.extend(same_spelling::<Compatibility>("Compatibility"));
    p.extend(same_spelling::<PidMode>("PidMode"));
    p.extend(same_spelling::<IpcMode>("IpcMode"));
    p.extend(same_spelling::<LogDriver>("LogDriver"));
    p.extend(same_spelling::<VolumeScope>("Scope"));
    p.extend(same_spelling::<DeviceCgroupPermission>(
        "DeviceCgroupPermission",
    ));
    p.extend(same_spelling::<VersionConsistency>("VersionConsistency"));
    p.extend(same_spelling::<ResourceType>("ResourceType"));
    p.extend(same_spelling::<DeploymentControllerType>(
        "DeploymentControllerType",
    ));
    p.extend(same_spelling::<DeploymentStrategy>("DeploymentStrategy"));
    p.extend(same_spelling::<PropagateTags>("PropagateTags"));
    p.extend(same_spelling::<DependencyCondition>("ContainerCondition"));
    p.extend(same_spelling::<SchedulingStrategy>("SchedulingStrategy"));
    p.extend(same_spelling::<berth_model::ecs::ThresholdType>(
        "ThresholdType",
    ));
    assert!(p.is_empty(), "{}", p.join("\n"));
    // String-valued enums are checked by validation.
    for lt in botocore()["enums"]["LaunchType"].as_array().unwrap() {
        let s: Service = serde_json::from_value(
            json!({"serviceName": "s", "taskDefinition": "f", "launchType": lt}),
        )
        .unwrap();
        s.validate()
            .unwrap_or_else(|e| panic!("launchType {lt}: {e}"));
    }
    for name in botocore()["enums"]["UlimitName"].as_array().unwrap() {
        let td: TaskDefinition = serde_json::from_value(json!({"family": "f", "containerDefinitions": [
            {"name": "app", "image": "img", "ulimits": [{"name": name, "softLimit": 1, "hardLimit": 2}]}
        ]}))
        .unwrap();
        td.validate()
            .unwrap_or_else(|e| panic!("ulimit {name}: {e}"));
    }
}

/// The developer guide's Fargate web server, with the members the issue reports (empty
/// mountPoints, volumesFrom and volumes, an execution role, tags), as a stack file.
const FARGATE_SAMPLE: &str = r#"{
  "taskDefinitions": [{
    "family": "sample-fargate",
    "networkMode": "awsvpc",
    "containerDefinitions": [{
      "name": "fargate-app",
      "image": "public.ecr.aws/docker/library/httpd:latest",
      "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}],
      "essential": true,
      "entryPoint": ["sh", "-c"],
      "command": ["/bin/sh -c \"echo '<html> <head> <title>Amazon ECS Sample App</title> </head><body> <h1>Amazon ECS Sample App</h1> </body></html>' >  /usr/local/apache2/htdocs/index.html && httpd-foreground\""],
      "logConfiguration": {
        "logDriver": "awslogs",
        "options": {
          "awslogs-group": "/ecs/fargate-task-definition",
          "awslogs-region": "us-east-1",
          "awslogs-stream-prefix": "ecs"
        }
      },
      "mountPoints": [],
      "volumesFrom": []
    }],
    "volumes": [],
    "requiresCompatibilities": ["FARGATE"],
    "cpu": "256",
    "memory": "512",
    "executionRoleArn": "arn:aws:iam::012345678910:role/ecsTaskExecutionRole",
    "tags": [{"key": "environment", "value": "sample"}]
  }]
}"#;

#[test]
fn the_fargate_sample_is_accepted_unchanged() {
    let stack = Stack::from_yaml(FARGATE_SAMPLE).unwrap();
    stack.validate().unwrap();
    let td = &stack.task_definitions[0];
    let c = &td.container_definitions[0];
    assert_eq!(c.port_mappings[0].protocol, TransportProtocol::Tcp);
    assert_eq!(
        c.log_configuration.as_ref().unwrap().log_driver,
        LogDriver::Awslogs
    );
    assert_eq!(td.requires_compatibilities, [Compatibility::Fargate]);
    let warned: Vec<String> = td.not_applied().into_iter().map(|w| w.field).collect();
    assert_eq!(
        warned,
        [
            "executionRoleArn",
            "containerDefinitions[0].logConfiguration"
        ]
    );
}

#[test]
fn describe_returns_what_was_registered_field_for_field() {
    let given: Value = serde_json::from_str(FARGATE_SAMPLE).unwrap();
    let given = &given["taskDefinitions"][0];
    let stack = Stack::from_yaml(FARGATE_SAMPLE).unwrap();
    let described = serde_json::to_value(&stack.task_definitions[0]).unwrap();
    // What ECS adds when it describes a definition: the container's cpu (0) and its
    // always-written lists; berth adds its revision (0 until registered).
    let mut expected = given.clone();
    expected["containerDefinitions"][0]["cpu"] = json!(0);
    expected["containerDefinitions"][0]["environment"] = json!([]);
    expected["placementConstraints"] = json!([]);
    expected["revision"] = json!(0);
    assert_eq!(described, expected);
    // And a full definition, every applied member set, reads back the same.
    let full = json!({
        "family": "full", "networkMode": "bridge", "pidMode": "host", "ipcMode": "none",
        "cpu": "512", "memory": "1024", "requiresCompatibilities": ["EC2"],
        "volumes": [{"name": "data", "dockerVolumeConfiguration": {"scope": "shared", "autoprovision": true, "driver": "local", "driverOpts": {"type": "tmpfs"}, "labels": {"a": "b"}}},
                    {"name": "host", "host": {"sourcePath": "/srv/data"}}],
        "placementConstraints": [],
        "tags": [{"key": "team", "value": "web"}],
        "containerDefinitions": [{
            "name": "app", "image": "img", "cpu": 128, "memory": 256, "memoryReservation": 64,
            "essential": true, "entryPoint": ["/app"], "command": ["serve"],
            "environment": [{"name": "A", "value": "1"}],
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "udp", "name": "web", "appProtocol": "http2"}],
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data", "readOnly": true}],
            "volumesFrom": [{"sourceContainer": "side", "readOnly": false}],
            "links": ["side:side"],
            "hostname": "app", "user": "1000", "workingDirectory": "/srv",
            "disableNetworking": false, "privileged": false, "readonlyRootFilesystem": true,
            "dnsServers": ["10.0.0.2"], "dnsSearchDomains": ["local"],
            "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.9"}],
            "dockerSecurityOptions": ["no-new-privileges"], "interactive": true, "pseudoTerminal": true,
            "dockerLabels": {"team": "web"},
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
            "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]}, "initProcessEnabled": true,
                                "sharedMemorySize": 64, "tmpfs": [{"containerPath": "/tmp", "size": 16, "mountOptions": ["noexec"]}],
                                "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse", "permissions": ["read", "write"]}],
                                "maxSwap": 0, "swappiness": 0},
            "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
            "healthCheck": {"command": ["CMD", "true"], "interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0},
            "dependsOn": [{"containerName": "side", "condition": "START"}],
            "startTimeout": 60, "stopTimeout": 10, "versionConsistency": "disabled",
            "logConfiguration": {"logDriver": "json-file", "options": {"max-size": "10m"}}
        }, {
            "name": "side", "image": "img", "cpu": 0, "essential": false,
            "environment": [], "portMappings": [], "mountPoints": [], "volumesFrom": []
        }],
        "revision": 0
    });
    let td: TaskDefinition = serde_json::from_value(full.clone()).unwrap();
    td.validate().unwrap();
    assert_eq!(serde_json::to_value(&td).unwrap(), full);
}

#[test]
fn a_parse_error_names_its_field_path_once() {
    let bad = FARGATE_SAMPLE.replace("\"protocol\": \"tcp\"", "\"protocol\": \"TCP/IP\"");
    let e = Stack::from_yaml(&bad).unwrap_err();
    assert_eq!(
        e.field,
        "taskDefinitions[0].containerDefinitions[0].portMappings[0].protocol"
    );
    let text = e.to_string();
    assert_eq!(text.matches("portMappings[0]").count(), 1, "{text}");
    assert!(text.contains("`tcp`") && text.contains("`udp`"), "{text}");

    let bad = FARGATE_SAMPLE.replace("\"essential\": true", "\"essentail\": true");
    let text = Stack::from_yaml(&bad).unwrap_err().to_string();
    assert_eq!(text.matches("containerDefinitions[0]").count(), 1, "{text}");
    assert!(text.contains("unknown field `essentail`"), "{text}");
}

#[test]
fn a_service_as_create_service_takes_it_comes_back_field_for_field() {
    let given = json!({
        "serviceName": "web", "cluster": "default", "taskDefinition": "web:3",
        "desiredCount": 2, "launchType": "FARGATE", "platformVersion": "LATEST",
        "schedulingStrategy": "REPLICA",
        "deploymentConfiguration": {
            "maximumPercent": 200, "minimumHealthyPercent": 50,
            "deploymentCircuitBreaker": {"enable": true, "rollback": true},
            "strategy": "ROLLING"
        },
        "deploymentController": {"type": "ECS"},
        "loadBalancers": [{"targetGroupName": "web", "containerName": "app", "containerPort": 80}],
        "healthCheckGracePeriodSeconds": 30,
        "placementStrategy": [{"type": "spread", "field": "instanceId"}],
        "placementConstraints": [{"type": "distinctInstance"}],
        "networkConfiguration": {"awsvpcConfiguration": {
            "subnets": ["subnet-1", "subnet-2"], "securityGroups": ["sg-1"], "assignPublicIp": "ENABLED"
        }},
        "tags": [{"key": "team", "value": "web"}],
        "enableECSManagedTags": true,
        "propagateTags": "SERVICE",
        "enableExecuteCommand": true,
        "availabilityZoneRebalancing": "ENABLED"
    });
    let s: Service = serde_json::from_value(given.clone()).unwrap();
    s.validate().unwrap();
    let back = serde_json::to_value(&s).unwrap();
    assert!(contains(&back, &given), "{back}");
    // berth adds the counts it keeps on a service, nothing else.
    let mut extra: Vec<&str> = back
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| given.get(k.as_str()).is_none())
        .map(String::as_str)
        .collect();
    extra.sort();
    assert_eq!(extra, ["pendingCount", "runningCount"]);
    let warned: Vec<String> = s.not_applied().into_iter().map(|w| w.field).collect();
    assert_eq!(
        warned,
        [
            "availabilityZoneRebalancing",
            "platformVersion",
            "networkConfiguration",
            "enableECSManagedTags",
            "propagateTags",
        ]
    );
}

/// The shape the ECS console's JSON view gives a definition: unset members as `null`.
#[test]
fn a_definition_with_nulls_for_unset_members_is_accepted() {
    let td: TaskDefinition = serde_json::from_value(json!({
        "family": "console-export", "ipcMode": null, "pidMode": null, "executionRoleArn": null,
        "taskRoleArn": null, "proxyConfiguration": null, "inferenceAccelerators": null,
        "volumes": [], "placementConstraints": [], "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc", "cpu": "256", "memory": "512", "tags": null,
        "containerDefinitions": [{
            "name": "web", "image": "httpd:2.4", "cpu": 0, "essential": true,
            "dnsSearchDomains": null, "environmentFiles": null, "logConfiguration": null,
            "entryPoint": ["sh", "-c"], "command": ["httpd-foreground"],
            "portMappings": [{"hostPort": 80, "protocol": "tcp", "containerPort": 80}],
            "linuxParameters": null, "environment": [], "ulimits": null, "dnsServers": null,
            "mountPoints": [], "workingDirectory": null, "secrets": null,
            "dockerSecurityOptions": null, "memory": null, "memoryReservation": null,
            "volumesFrom": [], "stopTimeout": null, "startTimeout": null,
            "firelensConfiguration": null, "dependsOn": null, "disableNetworking": null,
            "interactive": null, "healthCheck": null, "hostname": null, "user": null,
            "readonlyRootFilesystem": null, "dockerLabels": null, "systemControls": null,
            "privileged": null, "pseudoTerminal": null, "links": null,
            "resourceRequirements": null, "extraHosts": null, "repositoryCredentials": null
        }]
    }))
    .unwrap();
    td.validate().unwrap();
    assert!(td.not_applied().is_empty(), "{:?}", td.not_applied());
    let c = &td.container_definitions[0];
    assert!(c.secrets.is_empty() && c.docker_labels.is_empty() && c.ulimits.is_empty());
}
