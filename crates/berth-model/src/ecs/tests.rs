use super::*;

fn td() -> TaskDefinition {
    serde_json::from_value(serde_json::json!({
        "family": "web",
        "containerDefinitions": [{
            "name": "app", "image": "whoami",
            "portMappings": [{"containerPort": 8080}]
        }]
    }))
    .unwrap()
}

#[test]
fn defaults_match_ecs() {
    let t = td();
    assert_eq!(t.network_mode, NetworkMode::Bridge);
    let c = &t.container_definitions[0];
    assert!(c.essential);
    assert_eq!(c.stop_timeout_seconds(), 30);
    assert_eq!(c.port_mappings[0].host_port, None);
    t.validate().unwrap();
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web"
    }))
    .unwrap();
    assert_eq!(s.deployment_configuration.maximum_percent, 200);
    assert_eq!(s.deployment_configuration.minimum_healthy_percent, 100);
    assert_eq!(s.cluster, "default");
}

#[test]
fn rejects_bad_ports_and_memory() {
    let mut t = td();
    t.container_definitions[0].port_mappings[0].container_port = 70000;
    let e = t.validate().unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].portMappings[0].containerPort"
    );
    assert!(e.message.contains("65535"), "{e}");

    let mut t = td();
    t.container_definitions[0].memory = Some(100);
    t.container_definitions[0].memory_reservation = Some(200);
    assert_eq!(
        t.validate().unwrap_err().field,
        "containerDefinitions[0].memory"
    );

    let mut t = td();
    t.network_mode = NetworkMode::Host;
    t.container_definitions[0].port_mappings[0].host_port = Some(9000);
    assert!(t.validate().unwrap_err().message.contains("must equal"));
}

#[test]
fn parses_task_sizes() {
    assert_eq!(parse_cpu_units("cpu", "1 vCPU").unwrap(), 1024);
    assert_eq!(parse_cpu_units("cpu", "256").unwrap(), 256);
    assert!(parse_cpu_units("cpu", "64").is_err());
    assert_eq!(parse_memory_mib("memory", "1GB").unwrap(), 1024);
    assert_eq!(parse_memory_mib("memory", "512").unwrap(), 512);
    assert!(parse_memory_mib("memory", "lots").is_err());
}

#[test]
fn unknown_fields_are_rejected() {
    let r: std::result::Result<Service, _> = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web", "desiredCnt": 3
    }));
    assert!(r.unwrap_err().to_string().contains("desiredCnt"));
}

#[test]
fn daemon_and_member_of() {
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web", "schedulingStrategy": "DAEMON",
        "desiredCount": 2
    }))
    .unwrap();
    assert_eq!(s.validate().unwrap_err().field, "desiredCount");
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web",
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:x == y"}]
    }))
    .unwrap();
    s.validate().unwrap();
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web",
        "placementConstraints": [{"type": "memberOf", "expression": "attribute:x = y"}]
    }))
    .unwrap();
    let e = s.validate().unwrap_err();
    assert_eq!(e.field, "placementConstraints[0].expression");
    assert!(e.message.starts_with("at 12: expected an operator"), "{e}");
}

#[test]
fn deployment_states_use_ecs_spellings() {
    for (status, text) in [
        (DeploymentStatus::Primary, "PRIMARY"),
        (DeploymentStatus::Active, "ACTIVE"),
        (DeploymentStatus::Inactive, "INACTIVE"),
    ] {
        assert_eq!(serde_json::to_value(status).unwrap(), text);
        assert_eq!(status.as_str(), text);
        let back: DeploymentStatus = serde_json::from_value(text.into()).unwrap();
        assert_eq!(back, status);
    }
    for (state, text) in [
        (RolloutState::InProgress, "IN_PROGRESS"),
        (RolloutState::Completed, "COMPLETED"),
        (RolloutState::Failed, "FAILED"),
    ] {
        assert_eq!(serde_json::to_value(state).unwrap(), text);
        assert_eq!(state.as_str(), text);
        let back: RolloutState = serde_json::from_value(text.into()).unwrap();
        assert_eq!(back, state);
    }
    assert!(serde_json::from_value::<RolloutState>("DONE".into()).is_err());
}

#[test]
fn a_deployment_serializes_as_before() {
    let text = r#"{"id":"ecs-svc/1","status":"PRIMARY","taskDefinition":"web:2","desiredCount":2,"pendingCount":0,"runningCount":2,"createdAt":1.0,"updatedAt":2.0,"rolloutState":"COMPLETED","rolloutStateReason":"ECS deployment completed."}"#;
    let d: Deployment = serde_json::from_str(text).unwrap();
    assert_eq!(d.status, DeploymentStatus::Primary);
    assert_eq!(d.rollout_state, RolloutState::Completed);
    assert_eq!(serde_json::to_string(&d).unwrap(), text);
    // A stored older deployment without a rollout state still reads.
    let old = text.replace(r#""rolloutState":"COMPLETED""#, r#""rolloutState":"""#);
    let d: Deployment = serde_json::from_str(&old).unwrap();
    assert_eq!(d.rollout_state, RolloutState::InProgress);
}

#[test]
fn negative_desired_count() {
    let s: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "taskDefinition": "web", "desiredCount": -1
    }))
    .unwrap();
    let e = s.validate().unwrap_err();
    assert_eq!(e.field, "desiredCount");
}

#[test]
fn mount_points_and_volumes_from_must_name_what_exists() {
    let td = |extra: serde_json::Value| -> TaskDefinition {
        let mut v = serde_json::json!({
            "family": "web",
            "volumes": [{"name": "data", "host": {"sourcePath": "/srv"}}],
            "containerDefinitions": [{"name": "app", "image": "img"}, {"name": "side", "image": "img"}]
        });
        for (k, x) in extra.as_object().unwrap() {
            v["containerDefinitions"][0][k] = x.clone();
        }
        serde_json::from_value(v).unwrap()
    };
    td(serde_json::json!({
        "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}],
        "volumesFrom": [{"sourceContainer": "side"}]
    }))
    .validate()
    .unwrap();
    let e =
        td(serde_json::json!({"mountPoints": [{"sourceVolume": "logs", "containerPath": "/l"}]}))
            .validate()
            .unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].mountPoints[0].sourceVolume"
    );
    let e =
        td(serde_json::json!({"mountPoints": [{"sourceVolume": "data", "containerPath": "rel"}]}))
            .validate()
            .unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].mountPoints[0].containerPath"
    );
    let e = td(serde_json::json!({"volumesFrom": [{"sourceContainer": "app"}]}))
        .validate()
        .unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].volumesFrom[0].sourceContainer"
    );
}

#[test]
fn network_mode_rules_for_host_settings_follow_ecs() {
    let td = |mode: &str, member: &str, value: serde_json::Value| -> TaskDefinition {
        let mut v = serde_json::json!({
            "family": "web", "networkMode": mode,
            "containerDefinitions": [{"name": "app", "image": "img"}]
        });
        v["containerDefinitions"][0][member] = value;
        serde_json::from_value(v).unwrap()
    };
    let e = td("awsvpc", "hostname", "h".into()).validate().unwrap_err();
    assert_eq!(e.field, "containerDefinitions[0].hostname");
    assert!(e.message.contains("awsvpc network mode"), "{e}");
    td("bridge", "hostname", "h".into()).validate().unwrap();
    let e = td("awsvpc", "dnsServers", serde_json::json!(["10.0.0.2"]))
        .validate()
        .unwrap_err();
    assert_eq!(e.field, "containerDefinitions[0].dnsServers");
    td("host", "dnsServers", serde_json::json!(["10.0.0.2"]))
        .validate()
        .unwrap();
    let e = td(
        "bridge",
        "ulimits",
        serde_json::json!([{"name": "files", "softLimit": 1, "hardLimit": 1}]),
    )
    .validate()
    .unwrap_err();
    assert_eq!(e.field, "containerDefinitions[0].ulimits[0].name");
    assert!(e.message.contains("nofile"), "{e}");
}

#[test]
fn deployment_controller_ecs_is_applied_and_the_others_refused() {
    let svc = |kind: &str| -> Service {
        serde_json::from_value(serde_json::json!({
            "serviceName": "web", "taskDefinition": "web",
            "deploymentController": {"type": kind}
        }))
        .unwrap()
    };
    svc("ECS").validate().unwrap();
    for kind in ["CODE_DEPLOY", "EXTERNAL"] {
        let e = svc(kind).validate().unwrap_err();
        assert_eq!(e.field, "deploymentController.type");
        assert!(e.message.contains("ECS, CODE_DEPLOY and EXTERNAL"), "{e}");
    }
}

#[test]
fn earlier_spellings_in_stored_documents_still_read_and_are_written_as_ecs_spells_them() {
    let stored: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "web", "revision": 1,
        "containerDefinitions": [{"name": "app", "image": "img", "portMappings": [
            {"containerPort": 53, "protocol": "Udp"},
            {"containerPort": 8080, "protocol": "Tcp", "appProtocol": "HTTP2"}
        ]}]
    }))
    .unwrap();
    let pm = &stored.container_definitions[0].port_mappings;
    assert_eq!(pm[0].protocol, TransportProtocol::Udp);
    assert_eq!(pm[1].app_protocol, Some(ApplicationProtocol::Http2));
    let written = serde_json::to_value(&stored).unwrap();
    let pm = &written["containerDefinitions"][0]["portMappings"];
    assert_eq!(pm[0]["protocol"], "udp");
    assert_eq!(pm[1]["protocol"], "tcp");
    assert_eq!(pm[1]["appProtocol"], "http2");
}

fn fargate_with_volume(volume: serde_json::Value) -> TaskDefinition {
    serde_json::from_value(serde_json::json!({
        "family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
        "cpu": "256", "memory": "512", "volumes": [volume],
        "containerDefinitions": [{
            "name": "app", "image": "whoami",
            "mountPoints": [{"sourceVolume": "data", "containerPath": "/data"}]
        }]
    }))
    .unwrap()
}

#[test]
fn fargate_refuses_host_paths_and_docker_volumes_but_takes_task_storage() {
    let host = fargate_with_volume(serde_json::json!({
        "name": "data", "host": {"sourcePath": "/srv/data"}
    }));
    let e = host.validate().unwrap_err();
    assert_eq!(e.field, "volumes[0].host.sourcePath");
    assert!(e.message.contains("FARGATE"), "{e}");
    let docker = fargate_with_volume(serde_json::json!({
        "name": "data", "dockerVolumeConfiguration": {"scope": "task"}
    }));
    assert_eq!(
        docker.validate().unwrap_err().field,
        "volumes[0].dockerVolumeConfiguration"
    );
    fargate_with_volume(serde_json::json!({"name": "data"}))
        .validate()
        .unwrap();
    let mut on_ec2 = host.clone();
    on_ec2.requires_compatibilities.clear();
    on_ec2.validate().unwrap();
    on_ec2.volumes[0].host = Some(HostVolumeProperties {
        source_path: Some("srv/data".into()),
    });
    let e = on_ec2.validate().unwrap_err();
    assert_eq!(e.field, "volumes[0].host.sourcePath");
    assert!(e.message.contains("absolute"), "{e}");
}

#[test]
fn log_configuration_is_validated_at_its_container_path() {
    let with_log = |lc: serde_json::Value| {
        let mut t = td();
        t.container_definitions[0].log_configuration = Some(serde_json::from_value(lc).unwrap());
        t
    };
    let e = with_log(
        serde_json::json!({"logDriver": "awslogs", "options": {"awslogs-region": "eu-west-1"}}),
    )
    .validate()
    .unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].logConfiguration.options.awslogs-group"
    );
    let e = with_log(serde_json::json!({"logDriver": "splunk"}))
        .validate()
        .unwrap_err();
    assert_eq!(
        e.field,
        "containerDefinitions[0].logConfiguration.logDriver"
    );
    assert!(e.message.contains("json-file"), "{e}");
    for ok in [
        serde_json::json!({"logDriver": "none"}),
        serde_json::json!({"logDriver": "gelf", "options": {"gelf-address": "udp://127.0.0.1:12201"}}),
        serde_json::json!({"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}}),
    ] {
        with_log(ok.clone())
            .validate()
            .unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    // awslogs is accepted and reported as kept in berth's own store; json-file is applied.
    let warned =
        with_log(serde_json::json!({"logDriver": "awslogs", "options": {"awslogs-group": "g"}}))
            .not_applied();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0].field, "containerDefinitions[0].logConfiguration");
    assert!(with_log(serde_json::json!({"logDriver": "json-file"}))
        .not_applied()
        .is_empty());
}

#[test]
fn links_name_another_container_with_an_optional_alias() {
    let td = |links: serde_json::Value| -> TaskDefinition {
        serde_json::from_value(serde_json::json!({
            "family": "web",
            "containerDefinitions": [
                {"name": "web", "image": "img", "links": links},
                {"name": "db", "image": "img"}
            ]
        }))
        .unwrap()
    };
    let ok = td(serde_json::json!(["db", "db:database", "db:my_sql-1"]));
    ok.validate().unwrap();
    assert!(ok.not_applied().is_empty(), "{:?}", ok.not_applied());
    for (j, bad) in [
        (0, "nope"),
        (0, "web"),
        (1, "db:"),
        (1, "db:bad alias"),
        (0, ":db"),
    ] {
        let links = if j == 0 {
            serde_json::json!([bad])
        } else {
            serde_json::json!(["db", bad])
        };
        let e = td(links).validate().unwrap_err();
        assert_eq!(
            e.field,
            format!("containerDefinitions[0].links[{j}]"),
            "{bad}"
        );
        assert!(e.message.contains("name:alias"), "{e}");
        assert_eq!(e.message.matches("links").count(), 0, "{e}");
    }
    for mode in [NetworkMode::Awsvpc, NetworkMode::Host, NetworkMode::None] {
        let mut other = td(serde_json::json!(["db"]));
        other.network_mode = mode;
        let e = other.validate().unwrap_err();
        assert_eq!(e.field, "containerDefinitions[0].links");
        assert!(
            e.message.contains(&format!(
                "{} network mode (ECS allows it in bridge)",
                mode.as_str()
            )),
            "{e}"
        );
    }
}

#[test]
fn task_cpu_takes_what_ecs_takes_on_ec2() {
    assert_eq!(parse_cpu_units("cpu", "16384").unwrap(), 16384);
    assert_eq!(parse_cpu_units("cpu", "192 vCPU").unwrap(), 196_608);
    let e = parse_cpu_units("cpu", "196609").unwrap_err();
    assert!(e.message.contains("196608"), "{e}");
}
