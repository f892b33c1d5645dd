//! botocore's ECS shapes for `ecs_members`: the member names in the fixture, the names a
//! berth type accepts, and the members berth applies.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

pub fn botocore() -> Value {
    let text = include_str!("../fixtures/botocore-ecs-members.json");
    serde_json::from_str(text).unwrap()
}

pub fn members(shape: &str) -> Vec<String> {
    botocore()[shape]
        .as_array()
        .unwrap_or_else(|| panic!("fixture has {shape}"))
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// The member names `T` accepts, read from serde's own "expected one of" list.
pub fn accepted<T: DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let err = serde_json::from_value::<T>(json!({"zzNotAMember": 1})).unwrap_err();
    let text = err.to_string();
    let list = text
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("an unknown-field error, got {text}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Applied: parsed into a typed field and used. Listed here so that a member new in
/// botocore fails the tests until someone decides what berth does with it.
pub const APPLIED: &[(&str, &[&str])] = &[
    (
        "RegisterTaskDefinitionRequest",
        &[
            "family",
            "networkMode",
            "containerDefinitions",
            "requiresCompatibilities",
            "cpu",
            "memory",
            "tags",
            "pidMode",
            "ipcMode",
            "volumes",
            "placementConstraints",
            "taskRoleArn",
        ],
    ),
    (
        "ContainerDefinition",
        &[
            "name",
            "secrets",
            "image",
            "cpu",
            "memory",
            "memoryReservation",
            "portMappings",
            "essential",
            "entryPoint",
            "command",
            "environment",
            "linuxParameters",
            "dependsOn",
            "startTimeout",
            "stopTimeout",
            "hostname",
            "user",
            "workingDirectory",
            "disableNetworking",
            "privileged",
            "readonlyRootFilesystem",
            "dnsServers",
            "dnsSearchDomains",
            "extraHosts",
            "dockerSecurityOptions",
            "interactive",
            "pseudoTerminal",
            "dockerLabels",
            "ulimits",
            "healthCheck",
            "systemControls",
            "mountPoints",
            "volumesFrom",
            "links",
        ],
    ),
    (
        "CreateServiceRequest",
        &[
            "cluster",
            "serviceName",
            "taskDefinition",
            "loadBalancers",
            "desiredCount",
            "launchType",
            "capacityProviderStrategy",
            "deploymentConfiguration",
            "placementConstraints",
            "placementStrategy",
            "healthCheckGracePeriodSeconds",
            "schedulingStrategy",
            "deploymentController",
            "tags",
            "serviceRegistries",
            "serviceConnectConfiguration",
            "enableExecuteCommand",
        ],
    ),
];
