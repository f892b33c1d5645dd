//! Samples for `ecs_members`: a value of each member the field-support table lists, and
//! where it goes in a minimal task definition or service.

use serde_json::{json, Value};

/// Puts `value` at `shape`.`member` in a minimal task definition or service.
pub fn with_member(shape: &str, member: &str, value: Value) -> (bool, Value) {
    let mut td = json!({"family": "f", "containerDefinitions": [{"name": "app", "image": "img"}]});
    let mut svc = json!({"serviceName": "s", "taskDefinition": "f"});
    match shape {
        "RegisterTaskDefinitionRequest" => td[member] = value,
        "ContainerDefinition" => td["containerDefinitions"][0][member] = value,
        "PortMapping" => td["containerDefinitions"][0]["portMappings"] = json!([{ member: value }]),
        "LogConfiguration" => {
            let mut lc = json!({"logDriver": "json-file"});
            lc[member] = value;
            td["containerDefinitions"][0]["logConfiguration"] = lc;
        }
        "Volume" => td["volumes"] = json!([{"name": "v", member: value}]),
        "RuntimePlatform" => td["runtimePlatform"] = json!({ member: value }),
        "CreateServiceRequest" => svc[member] = value,
        "DeploymentConfiguration" => svc["deploymentConfiguration"] = json!({ member: value }),
        "DeploymentCircuitBreaker" => {
            let mut cb = json!({"enable": true, "rollback": false});
            cb[member] = value;
            svc["deploymentConfiguration"] = json!({ "deploymentCircuitBreaker": cb });
        }
        "LoadBalancer" => {
            svc["loadBalancers"] = json!([{
                "targetGroupName": "tg", "containerName": "app", "containerPort": 80,
                member: value,
            }])
        }
        "ServiceConnectConfiguration" => {
            let mut sc = json!({"enabled": true, "namespace": "internal"});
            sc[member] = value;
            svc["serviceConnectConfiguration"] = sc;
        }
        "ServiceConnectService" => {
            let mut one = json!({"portName": "http"});
            one[member] = value;
            svc["serviceConnectConfiguration"] =
                json!({"enabled": true, "namespace": "internal", "services": [one]});
        }
        other => panic!("no sample placement for shape {other}"),
    }
    // What the member refers to must exist, as ECS checks.
    match member {
        "mountPoints" => td["volumes"] = json!([{"name": "data"}]),
        "volumesFrom" => {
            td["containerDefinitions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "other", "image": "img"}));
        }
        _ => {}
    }
    match shape {
        "CreateServiceRequest"
        | "DeploymentConfiguration"
        | "DeploymentCircuitBreaker"
        | "LoadBalancer"
        | "ServiceConnectConfiguration"
        | "ServiceConnectService" => (false, svc),
        _ => (true, td),
    }
}

/// A value of `shape`.`member` that its row is about.
pub fn sample(shape: &str, member: &str) -> Value {
    let arn = json!("arn:aws:iam::123456789012:role/r");
    match (shape, member) {
        (_, "taskRoleArn" | "executionRoleArn" | "role") => arn,
        (_, "volumes") => json!([{"name": "data"}]),
        (_, "placementConstraints") => {
            json!([{"type": "memberOf", "expression": "attribute:x == y"}])
        }
        (_, "pidMode" | "ipcMode") => json!("task"),
        (_, "proxyConfiguration") => json!({"type": "APPMESH", "containerName": "app"}),
        (_, "inferenceAccelerators") => json!([{"deviceName": "d", "deviceType": "eia2.medium"}]),
        (_, "ephemeralStorage") => json!({"sizeInGiB": 30}),
        (_, "runtimePlatform") => {
            json!({"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"})
        }
        (
            _,
            "enableFaultInjection"
            | "configuredAtLaunch"
            | "enableECSManagedTags"
            | "enableExecuteCommand",
        ) => json!(true),
        (_, "operatingSystemFamily") => json!("WINDOWS_SERVER_2022_CORE"),
        (_, "efsVolumeConfiguration") => json!({"fileSystemId": "fs-1"}),
        (_, "s3filesVolumeConfiguration") => json!({"fileSystemArn": "arn:aws:s3files:::fs"}),
        (_, "fsxWindowsFileServerVolumeConfiguration") => {
            json!({"fileSystemId": "fs-1", "rootDirectory": "\\", "authorizationConfig": {"credentialsParameter": "p", "domain": "d"}})
        }
        (_, "repositoryCredentials") => {
            json!({"credentialsParameter": "arn:aws:secretsmanager:::secret:x"})
        }
        (_, "links") => json!(["db:db"]),
        (_, "restartPolicy") => json!({"enabled": true}),
        (_, "environmentFiles") => json!([{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}]),
        (_, "mountPoints") => json!([{"sourceVolume": "data", "containerPath": "/data"}]),
        (_, "volumesFrom") => json!([{"sourceContainer": "other"}]),
        (_, "secrets" | "secretOptions") => {
            json!([{"name": "TOKEN", "valueFrom": "arn:aws:ssm:::parameter/t"}])
        }
        (_, "versionConsistency") => json!("enabled"),
        ("ServiceConnectConfiguration", "logConfiguration") => {
            json!({"logDriver": "json-file", "options": {"max-size": "10m"}})
        }
        (_, "accessLogConfiguration") => {
            json!({"format": "JSON", "includeQueryParameters": "ENABLED"})
        }
        (_, "ingressPortOverride") => json!(15000),
        (_, "tls") => {
            json!({"issuerCertificateAuthority": {"awsPcaAuthorityArn": "arn:aws:acm-pca:::ca/1"}, "kmsKey": "k", "roleArn": "arn:aws:iam::1:role/r"})
        }
        (_, "logConfiguration") => {
            json!({"logDriver": "awslogs", "options": {"awslogs-group": "g"}})
        }
        (_, "resourceRequirements") => json!([{"type": "GPU", "value": "1"}]),
        (_, "firelensConfiguration") => json!({"type": "fluentbit"}),
        (_, "credentialSpecs") => json!(["credentialspecdomainless:arn:aws:s3:::b/spec.json"]),
        (_, "containerPortRange") => json!("8000-8010"),
        (_, "logDriver") => json!("awsfirelens"),
        (_, "availabilityZoneRebalancing") => json!("ENABLED"),
        (_, "clientToken") => json!("token-1"),
        (_, "capacityProviderStrategy") => json!([{"capacityProvider": "FARGATE", "weight": 1}]),
        (_, "platformVersion") => json!("LATEST"),
        (_, "networkConfiguration") => {
            json!({"awsvpcConfiguration": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"], "assignPublicIp": "DISABLED"}})
        }
        (_, "deploymentController") => json!({"type": "CODE_DEPLOY"}),
        (_, "propagateTags") => json!("SERVICE"),
        (_, "volumeConfigurations") => json!([{"name": "v", "managedEBSVolume": {"roleArn": "r"}}]),
        (_, "vpcLatticeConfigurations") => {
            json!([{"roleArn": "r", "targetGroupArn": "t", "portName": "p"}])
        }
        (_, "monitoring") => {
            json!({"metricConfigurations": [{"metricNames": ["CPUUtilization"], "resolutionSeconds": 10}]})
        }
        (_, "alarms") => json!({"alarmNames": ["high-errors"], "rollback": true, "enable": true}),
        (_, "strategy") => json!("BLUE_GREEN"),
        (_, "bakeTimeInMinutes") => json!(5),
        (_, "lifecycleHooks") => json!([{"targetType": "PAUSE"}]),
        (_, "linearConfiguration") => json!({"stepPercent": 10.0}),
        (_, "canaryConfiguration") => json!({"canaryPercent": 5.0}),
        (_, "resetOnHealthyTask") => json!(true),
        (_, "thresholdConfiguration") => json!({"type": "COUNT", "value": 3}),
        (_, "loadBalancerName") => json!("classic"),
        (_, "advancedConfiguration") => json!({"alternateTargetGroupArn": "tg-green"}),
        _ => panic!("no sample for {shape}.{member}"),
    }
}
