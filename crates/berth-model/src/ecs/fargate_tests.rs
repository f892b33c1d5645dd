use serde_json::{json, Value};

use super::*;
use crate::ecs::Compatibility;

/// The developer guide's Fargate web server, with `edit` applied to it.
fn fargate(edit: impl FnOnce(&mut Value)) -> TaskDefinition {
    let mut v = json!({
        "family": "fargate-task-definition", "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
        "containerDefinitions": [{
            "name": "sample-fargate-app", "image": "httpd:2.4", "essential": true,
            "portMappings": [{"containerPort": 80, "hostPort": 80, "protocol": "tcp"}]
        }]
    });
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

/// The refusal of `td`: (field, message), which must name FARGATE.
fn refusal(td: &TaskDefinition) -> (String, String) {
    let e = td.validate().unwrap_err();
    assert!(e.message.contains("FARGATE"), "{e}");
    (e.field, e.message)
}

#[test]
fn the_sample_is_accepted_and_the_same_members_without_fargate_too() {
    fargate(|_| {}).validate().unwrap();
    let mut ec2 = fargate(|v| v["containerDefinitions"][0]["links"] = json!([]));
    ec2.requires_compatibilities = vec![Compatibility::Ec2];
    ec2.validate().unwrap();
}

#[test]
fn the_network_mode_must_be_awsvpc() {
    for mode in [json!("bridge"), json!("host"), json!("none"), Value::Null] {
        let td = fargate(|v| match &mode {
            Value::Null => {
                v.as_object_mut().unwrap().remove("networkMode");
            }
            m => v["networkMode"] = m.clone(),
        });
        let (field, message) = refusal(&td);
        assert_eq!(field, "networkMode");
        assert!(message.contains("must be awsvpc"), "{message}");
    }
}

#[test]
fn task_cpu_and_memory_are_required_and_must_be_a_fargate_size() {
    let (field, message) = refusal(&fargate(|v| {
        v.as_object_mut().unwrap().remove("cpu");
    }));
    assert_eq!(field, "cpu");
    assert!(
        message.contains("is required") && message.contains("16384"),
        "{message}"
    );
    let (field, message) = refusal(&fargate(|v| {
        v.as_object_mut().unwrap().remove("memory");
    }));
    assert_eq!(field, "memory");
    assert!(message.contains("512, 1024 or 2048"), "{message}");
    let (field, message) = refusal(&fargate(|v| v["cpu"] = json!("384")));
    assert_eq!(field, "cpu");
    assert!(message.contains("got 384"), "{message}");

    // The guide's table, in the spellings ECS reads ("1 vCPU", "2GB").
    let accepted = [
        ("256", "512"),
        ("256", "1GB"),
        ("256", "2048"),
        (".5 vCPU", "1024"),
        ("512", "4096"),
        ("1 vCPU", "2 GB"),
        ("1024", "5120"),
        ("1024", "8192"),
        ("2048", "4096"),
        ("2048", "16384"),
        ("4096", "30720"),
        ("8192", "16384"),
        ("8192", "61440"),
        ("16384", "32768"),
        ("16384", "122880"),
    ];
    for (cpu, memory) in accepted {
        let td = fargate(|v| {
            v["cpu"] = json!(cpu);
            v["memory"] = json!(memory);
        });
        assert!(td.validate().is_ok(), "{cpu}/{memory}: {:?}", td.validate());
    }
    let refused = [
        ("256", "3072"),
        ("256", "768"),
        ("512", "512"),
        ("512", "1536"),
        ("512", "5120"),
        ("1024", "1024"),
        ("1024", "9216"),
        ("2048", "17408"),
        ("4096", "31744"),
        ("8192", "18432"),
        ("8192", "65536"),
        ("16384", "36864"),
        ("16384", "131072"),
    ];
    for (cpu, memory) in refused {
        let (field, message) = refusal(&fargate(|v| {
            v["cpu"] = json!(cpu);
            v["memory"] = json!(memory);
        }));
        assert_eq!(field, "memory", "{cpu}/{memory}");
        assert!(
            message.contains(&format!(
                "with cpu {}",
                parse_cpu_units("cpu", cpu).unwrap()
            )),
            "{message}"
        );
    }
}

#[test]
fn task_members_fargate_does_not_take_are_refused_by_path() {
    let cases: [(&str, Value); 4] = [
        ("pidMode", json!("host")),
        ("ipcMode", json!("task")),
        ("ipcMode", json!("none")),
        (
            "placementConstraints",
            json!([{"type": "memberOf", "expression": "attribute:ecs.os-type == linux"}]),
        ),
    ];
    for (member, value) in cases {
        let (field, message) = refusal(&fargate(|v| v[member] = value.clone()));
        assert_eq!(field, member, "{message}");
        assert!(
            message.starts_with("is not allowed when requiresCompatibilities includes FARGATE ("),
            "{message}"
        );
    }
    fargate(|v| v["pidMode"] = json!("task"))
        .validate()
        .unwrap();
}

#[test]
fn container_members_fargate_does_not_take_are_refused_by_path() {
    let cases: [(&str, Value); 13] = [
        ("links", json!(["other"])),
        ("privileged", json!(true)),
        ("disableNetworking", json!(true)),
        ("dnsServers", json!(["10.0.0.2"])),
        ("dnsSearchDomains", json!(["example.com"])),
        (
            "extraHosts",
            json!([{"hostname": "db", "ipAddress": "10.0.0.9"}]),
        ),
        ("dockerSecurityOptions", json!(["no-new-privileges"])),
        (
            "linuxParameters.devices",
            json!([{"hostPath": "/dev/fuse"}]),
        ),
        ("linuxParameters.sharedMemorySize", json!(64)),
        (
            "linuxParameters.tmpfs",
            json!([{"containerPath": "/tmp", "size": 16}]),
        ),
        ("linuxParameters.maxSwap", json!(0)),
        ("linuxParameters.swappiness", json!(10)),
        (
            "linuxParameters.capabilities",
            json!({"add": ["SYS_PTRACE", "NET_ADMIN"]}),
        ),
    ];
    for (member, value) in cases {
        let td = fargate(|v| {
            let c = &mut v["containerDefinitions"][0];
            match member.split_once('.') {
                Some((parent, child)) => c[parent] = json!({ child: value.clone() }),
                None => c[member] = value.clone(),
            }
            v["containerDefinitions"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "other", "image": "img", "essential": false}));
        });
        let (field, message) = refusal(&td);
        let expected = match member {
            "linuxParameters.capabilities" => {
                "containerDefinitions[0].linuxParameters.capabilities.add[1]".to_string()
            }
            m => format!("containerDefinitions[0].{m}"),
        };
        assert_eq!(field, expected, "{message}");
        assert_eq!(message.matches("FARGATE").count(), 1, "{message}");
    }
}

#[test]
fn what_fargate_does_take_is_accepted() {
    fargate(|v| {
        let c = &mut v["containerDefinitions"][0];
        c["linuxParameters"] = json!({
            "capabilities": {"add": ["SYS_PTRACE"], "drop": ["MKNOD"]},
            "initProcessEnabled": true
        });
        c["ulimits"] = json!([{"name": "nofile", "softLimit": 2048, "hardLimit": 8192}]);
        c["privileged"] = json!(false);
        c["disableNetworking"] = json!(false);
        c["mountPoints"] = json!([{"sourceVolume": "scratch", "containerPath": "/scratch"}]);
        v["volumes"] = json!([{"name": "scratch"}]);
    })
    .validate()
    .unwrap();
}

#[test]
fn the_size_table_matches_the_guide() {
    assert_eq!(fargate_memory_range(1024), Some((2048, 8192, 1024)));
    assert_eq!(fargate_memory_range(8192), Some((16384, 61440, 4096)));
    assert_eq!(fargate_memory_range(300), None);
    assert!(fargate_size_allowed(256, 1024) && !fargate_size_allowed(256, 1536));
    assert_eq!(FARGATE_CPU_UNITS.len(), 7);
}
