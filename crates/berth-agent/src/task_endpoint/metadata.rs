//! The task metadata endpoint's answers (v4, and v3 with the same shapes), as JSON with
//! ECS's field names: a container (`${ECS_CONTAINER_METADATA_URI_V4}`), its task
//! (`/task`), and resource use in Docker's stats shape (`/stats`, `/task/stats`).
//!
//! Pure: built from the task record, its definition and what the runtime reports; no
//! I/O. What berth does not have is left out rather than invented (no VPC, subnet or MAC
//! address; `ImageID` is the image reference). Stats are the task's as its runtime
//! measures them (CPU units and memory in use for the whole task), given for each
//! container.

use berth_model::agent::TaskUsage;
use berth_model::ecs::{ContainerDefinition, NetworkMode, Task, TaskDefinition};
use berth_model::time::{rfc3339, Timestamp};
use berth_runtime::TaskState;
use serde_json::{json, Map, Value};

/// The availability zone berth reports: its nodes are not in an AWS zone.
pub const AVAILABILITY_ZONE: &str = "berth-local";

fn time(ts: Option<Timestamp>) -> Value {
    ts.map(|t| Value::String(rfc3339(t, false)))
        .unwrap_or(Value::Null)
}

fn wire<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The `Limits` of a container: its CPU units and memory (MiB) as its definition gives
/// them.
fn container_limits(def: &ContainerDefinition) -> Value {
    let mut limits = Map::new();
    limits.insert("CPU".into(), json!(def.cpu));
    if let Some(m) = def.memory.or(def.memory_reservation) {
        limits.insert("Memory".into(), json!(m));
    }
    Value::Object(limits)
}

/// One container of `task`, as `${ECS_CONTAINER_METADATA_URI_V4}` answers it.
pub fn container_json(
    task: &Task,
    td: &TaskDefinition,
    state: Option<&TaskState>,
    name: &str,
) -> Option<Value> {
    let def = td.container_definitions.iter().find(|c| c.name == name)?;
    let record = task.containers.iter().find(|c| c.name == name);
    let observed = state.and_then(|s| s.containers.iter().find(|c| c.name == name));
    let docker_id = observed
        .and_then(|c| c.runtime_id.clone())
        .or_else(|| record.and_then(|c| c.runtime_id.clone()))
        .unwrap_or_default();
    let known = record
        .map(|c| c.last_status)
        .unwrap_or(task.last_status)
        .as_str();
    let mut c = Map::new();
    c.insert("DockerId".into(), json!(docker_id));
    c.insert("Name".into(), json!(name));
    c.insert(
        "DockerName".into(),
        json!(format!("berth-{}-{name}", task.id())),
    );
    c.insert("Image".into(), json!(def.image));
    c.insert("ImageID".into(), json!(def.image));
    c.insert(
        "Labels".into(),
        json!({
            "com.amazonaws.ecs.cluster": task.cluster_arn,
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-arn": task.task_arn,
            "com.amazonaws.ecs.task-definition-family": td.family,
            "com.amazonaws.ecs.task-definition-version": td.revision.to_string(),
        }),
    );
    c.insert("DesiredStatus".into(), json!(task.desired_status.as_str()));
    c.insert("KnownStatus".into(), json!(known));
    if let Some(code) = record.and_then(|r| r.exit_code) {
        c.insert("ExitCode".into(), json!(code));
    }
    c.insert("Limits".into(), container_limits(def));
    c.insert("CreatedAt".into(), time(Some(task.created_at)));
    c.insert("StartedAt".into(), time(task.started_at));
    if let Some(stopped) = task.stopped_at {
        c.insert("FinishedAt".into(), time(Some(stopped)));
    }
    c.insert("Type".into(), json!("NORMAL"));
    c.insert(
        "ContainerARN".into(),
        json!(record.map(|r| r.container_arn.clone())),
    );
    if let Some(lc) = &def.log_configuration {
        c.insert("LogDriver".into(), wire(&lc.log_driver));
        c.insert("LogOptions".into(), wire(&lc.options));
    }
    let bindings = record.map(|r| r.network_bindings.as_slice()).unwrap_or(&[]);
    if !bindings.is_empty() {
        let ports: Vec<Value> = bindings
            .iter()
            .map(|b| {
                json!({
                    "ContainerPort": b.container_port,
                    "Protocol": wire(&b.protocol),
                    "HostPort": b.host_port,
                    "HostIp": b.bind_ip,
                })
            })
            .collect();
        c.insert("Ports".into(), Value::Array(ports));
    }
    let ip = observed
        .and_then(|o| o.private_ip.clone())
        .or_else(|| record.and_then(|r| r.private_ipv4_address.clone()));
    let mode = match td.network_mode {
        NetworkMode::Bridge => "bridge",
        NetworkMode::Host => "host",
        NetworkMode::Awsvpc => "awsvpc",
        NetworkMode::None => "none",
    };
    let mut network = Map::new();
    network.insert("NetworkMode".into(), json!(mode));
    network.insert(
        "IPv4Addresses".into(),
        json!(ip.into_iter().collect::<Vec<_>>()),
    );
    c.insert("Networks".into(), json!([network]));
    Some(Value::Object(c))
}

/// The task, as `${ECS_CONTAINER_METADATA_URI_V4}/task` answers it.
pub fn task_json(task: &Task, td: &TaskDefinition, state: Option<&TaskState>) -> Value {
    let containers: Vec<Value> = td
        .container_definitions
        .iter()
        .filter_map(|d| container_json(task, td, state, &d.name))
        .collect();
    let mut t = Map::new();
    t.insert("Cluster".into(), json!(task.cluster_arn));
    t.insert("TaskARN".into(), json!(task.task_arn));
    t.insert("Family".into(), json!(td.family));
    t.insert("Revision".into(), json!(td.revision.to_string()));
    t.insert("DesiredStatus".into(), json!(task.desired_status.as_str()));
    t.insert("KnownStatus".into(), json!(task.last_status.as_str()));
    if let Some(service) = task.service_name() {
        t.insert("ServiceName".into(), json!(service));
    }
    let mut limits = Map::new();
    if let Some(cpu) = td.cpu.as_deref().and_then(|c| c.parse::<f64>().ok()) {
        // ECS writes task CPU in vCPUs.
        limits.insert("CPU".into(), json!(cpu / 1024.0));
    }
    if let Some(mem) = td.memory.as_deref().and_then(|m| m.parse::<u64>().ok()) {
        limits.insert("Memory".into(), json!(mem));
    }
    t.insert("Limits".into(), Value::Object(limits));
    t.insert("PullStartedAt".into(), time(Some(task.created_at)));
    t.insert("PullStoppedAt".into(), time(task.started_at));
    if let Some(stopped) = task.stopped_at {
        t.insert("ExecutionStoppedAt".into(), time(Some(stopped)));
    }
    t.insert("AvailabilityZone".into(), json!(AVAILABILITY_ZONE));
    t.insert(
        "LaunchType".into(),
        json!(if task.launch_type.is_empty() {
            "EC2"
        } else {
            task.launch_type.as_str()
        }),
    );
    t.insert("Containers".into(), Value::Array(containers));
    Value::Object(t)
}

/// A container's resource use in Docker's stats shape, from its task's `usage` read at
/// `read` (the runtime measures the task as a whole).
pub fn stats_json(
    docker_id: &str,
    name: &str,
    usage: &TaskUsage,
    memory_limit_bytes: Option<u64>,
    read: Timestamp,
) -> Value {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    json!({
        "read": rfc3339(read, false),
        "name": name,
        "id": docker_id,
        "memory_stats": {
            "usage": usage.memory_bytes,
            "limit": memory_limit_bytes,
        },
        "cpu_stats": {
            "online_cpus": cpus,
            // berth's own: CPU units in use now (1024 = one core busy).
            "cpu_units": usage.cpu_units,
        },
    })
}

#[cfg(test)]
mod tests {
    use berth_model::arn;
    use berth_model::ecs::{Container, TaskStatus};

    use super::*;

    fn fixture() -> (Task, TaskDefinition) {
        let td: TaskDefinition = serde_json::from_value(json!({
            "family": "reader", "revision": 3, "cpu": "512", "memory": "256",
            "taskRoleArn": "arn:berth:iam::000000000000:role/reader",
            "containerDefinitions": [{
                "name": "app", "image": "berth-whoami", "cpu": 128, "memory": 64,
                "logConfiguration": {"logDriver": "json-file"}
            }]
        }))
        .unwrap();
        let task = Task {
            task_arn: arn::task("default", "t1"),
            cluster_arn: arn::cluster("default"),
            task_definition_arn: "arn:berth:ecs:local:000000000000:task-definition/reader:3".into(),
            last_status: TaskStatus::Running,
            desired_status: TaskStatus::Running,
            group: "service:api".into(),
            created_at: 1_601_599_386.25,
            started_at: Some(1_601_599_387.0),
            containers: vec![Container {
                name: "app".into(),
                container_arn: "arn:container".into(),
                runtime_id: Some("4242".into()),
                last_status: TaskStatus::Running,
                ..Default::default()
            }],
            ..Default::default()
        };
        (task, td)
    }

    #[test]
    fn the_task_answer_has_ecs_field_names() {
        let (task, td) = fixture();
        let t = task_json(&task, &td, None);
        let names: Vec<&str> = t.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for field in [
            "Cluster",
            "TaskARN",
            "Family",
            "Revision",
            "DesiredStatus",
            "KnownStatus",
            "Containers",
            "Limits",
            "PullStartedAt",
            "AvailabilityZone",
            "LaunchType",
            "ServiceName",
        ] {
            assert!(names.contains(&field), "{field} missing from {names:?}");
        }
        assert_eq!(t["TaskARN"], arn::task("default", "t1"));
        assert_eq!(t["Family"], "reader");
        assert_eq!(t["Revision"], "3");
        assert_eq!(t["KnownStatus"], "RUNNING");
        assert_eq!(t["ServiceName"], "api");
        assert_eq!(t["Limits"], json!({"CPU": 0.5, "Memory": 256}));
        assert_eq!(t["PullStartedAt"], "2020-10-02T00:43:06.250000000Z");
        assert_eq!(t["Containers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn the_container_answer_has_ecs_field_names() {
        let (task, td) = fixture();
        let c = container_json(&task, &td, None, "app").unwrap();
        for field in [
            "DockerId",
            "Name",
            "DockerName",
            "Image",
            "ImageID",
            "Labels",
            "DesiredStatus",
            "KnownStatus",
            "Limits",
            "CreatedAt",
            "StartedAt",
            "Type",
            "Networks",
            "ContainerARN",
            "LogDriver",
        ] {
            assert!(c.get(field).is_some(), "{field} missing from {c}");
        }
        assert_eq!(c["DockerId"], "4242");
        assert_eq!(c["Limits"], json!({"CPU": 128, "Memory": 64}));
        assert_eq!(
            c["Labels"]["com.amazonaws.ecs.task-definition-version"],
            "3"
        );
        assert_eq!(c["Networks"][0]["NetworkMode"], "bridge");
        assert_eq!(c["LogDriver"], "json-file");
        assert!(container_json(&task, &td, None, "nope").is_none());
    }

    #[test]
    fn stats_take_dockers_shape() {
        let usage = TaskUsage {
            cpu_units: 512.0,
            memory_bytes: 1 << 20,
        };
        let s = stats_json("4242", "app", &usage, Some(64 << 20), 0.0);
        assert_eq!(s["memory_stats"]["usage"], 1 << 20);
        assert_eq!(s["memory_stats"]["limit"], 64 << 20);
        assert_eq!(s["cpu_stats"]["cpu_units"], 512.0);
        assert_eq!(s["id"], "4242");
        assert_eq!(s["read"], "1970-01-01T00:00:00.000000000Z");
    }
}
