//! The container definition's host settings on the real engine: a task that sets them
//! starts and serves, and the engine's own record of each container shows them as ECS
//! would pass them. Like `docker.rs`, these tests fail (they do not skip) when the engine
//! is unreachable.

use crate::support::docker_engine::*;
use crate::support::*;
use berth_runtime::docker::LABEL_CONTAINER;
use berth_runtime::Runtime;
use serde_json::{json, Value};

/// The engine's record of the task's container named `name`.
fn inspect(task_arn: &str, name: &str) -> Value {
    for id in containers_of(task_arn) {
        let out = std::process::Command::new("docker")
            .args(["inspect", &id])
            .output()
            .expect("docker CLI");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v[0]["Config"]["Labels"][LABEL_CONTAINER] == name {
            return v[0].clone();
        }
    }
    panic!("no container {name} for {task_arn}");
}

#[tokio::test]
async fn docker_applies_the_container_host_settings() {
    let cluster = task_id("host_settings_");
    let rt = runtime(&cluster).await;
    let id = task_id("dksettings");
    let mut spec = spec_with(
        &id,
        json!({
            "pidMode": "task",
            "ipcMode": "task",
            "containerDefinitions": [{
                "name": "web", "image": IMAGE, "stopTimeout": 2,
                "portMappings": [{"containerPort": 8080}],
                "user": "65534",
                "hostname": "web-host",
                "readonlyRootFilesystem": true,
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
                "linuxParameters": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                    "sharedMemorySize": 64,
                    "tmpfs": [{"containerPath": "/scratch", "size": 16}]
                },
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                "extraHosts": [{"hostname": "db.internal", "ipAddress": "10.1.2.3"}],
                "dnsSearchDomains": ["svc.internal"],
                "dockerSecurityOptions": ["no-new-privileges"]
            }, {
                "name": "side", "image": IMAGE, "stopTimeout": 2, "essential": false,
                "command": ["--listen", "0.0.0.0:8081"]
            }]
        }),
    );
    spec.cluster = cluster.clone();
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();
    let (status, _) = get_when_up(host_port(&s, 0), "/").await;
    assert_eq!(status, 200, "the task serves with its settings");

    let web = inspect(&spec.task_arn, "web");
    let h = &web["HostConfig"];
    assert_eq!(web["Config"]["User"], "65534");
    assert_eq!(web["Config"]["Hostname"], "web-host");
    assert_eq!(h["ReadonlyRootfs"], true);
    assert_eq!(
        h["Ulimits"],
        json!([{"Name": "nofile", "Soft": 1024, "Hard": 2048}])
    );
    assert_eq!(h["CapAdd"], json!(["NET_ADMIN"]));
    assert_eq!(h["CapDrop"], json!(["MKNOD"]));
    assert_eq!(h["ShmSize"], 64 * 1024 * 1024);
    assert_eq!(h["Tmpfs"], json!({"/scratch": "size=16m"}));
    assert_eq!(h["Sysctls"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(h["ExtraHosts"], json!(["db.internal:10.1.2.3"]));
    assert_eq!(h["DnsSearch"], json!(["svc.internal"]));
    assert_eq!(h["SecurityOpt"], json!(["no-new-privileges"]));
    assert_eq!(h["IpcMode"], "shareable");

    let side = inspect(&spec.task_arn, "side");
    let owner = format!("container:{}", web["Id"].as_str().unwrap());
    assert_eq!(side["HostConfig"]["PidMode"], owner.as_str());
    assert_eq!(side["HostConfig"]["IpcMode"], owner.as_str());
    assert_eq!(side["State"]["Running"], true);

    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
}

/// `links` in bridge mode: `web` links `db:database`, so the engine starts `db` first
/// and writes the alias into `web`'s `/etc/hosts`, where the demo app's resolver finds
/// it, and `web` reaches `db` by that name.
#[tokio::test]
async fn docker_links_let_a_container_reach_another_by_its_alias() {
    let cluster = task_id("links_");
    let rt = runtime(&cluster).await;
    let id = task_id("dklinks");
    let mut spec = spec(
        &id,
        json!([{
            "name": "web", "image": IMAGE, "stopTimeout": 2,
            "portMappings": [{"containerPort": 8080}],
            "links": ["db:database"],
            "command": ["--call", "http://database:8080/"]
        }, {
            "name": "db", "image": IMAGE, "stopTimeout": 2, "essential": false
        }]),
    );
    spec.cluster = cluster.clone();
    let _c = Cleanup(spec.task_arn.clone());
    let s = rt.start(&spec).await.unwrap();

    let web = inspect(&spec.task_arn, "web");
    let db = inspect(&spec.task_arn, "db");
    let db_name = db["Name"].as_str().unwrap().trim_start_matches('/');
    let web_name = web["Name"].as_str().unwrap().trim_start_matches('/');
    assert_eq!(
        web["HostConfig"]["Links"],
        json!([format!("/{db_name}:/{web_name}/database")]),
        "the engine's record of the link"
    );
    let db_ip = db["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();

    let resolved = rt
        .exec(
            &spec.task_arn,
            &berth_runtime::ExecRequest {
                container: Some("web".into()),
                command: vec![
                    "/usr/local/bin/berth-whoami".into(),
                    "resolve".into(),
                    "database".into(),
                ],
                timeout: std::time::Duration::from_secs(30),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&resolved.stdout),
        format!("{db_ip} database\n"),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );

    let (status, body) = get_when_up(host_port(&s, 0), "/").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("called: http://database:8080/\nstatus: 200"),
        "{body}"
    );

    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
}
