//! The task endpoint over a loopback port, with a fake control plane minting numbered
//! credentials and a fake runtime running one task.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use async_trait::async_trait;
use berth_model::agent::TaskStateChange;
use berth_model::arn;
use berth_model::ecs::{ContainerInstance, HealthStatus, Task, TaskStatus};
use berth_runtime::{
    ContainerState, ContainerStatus, ExecOutput, ExecRequest, LogStream, Runtime, RuntimeError,
    TaskSpec, TaskState, TaskStats,
};
use serde_json::{json, Value};
use tokio::sync::{broadcast, watch};

use super::*;

const INSTANCE: &str = "arn:berth:ecs:local:000000000000:container-instance/default/i-1";

fn td(role: bool) -> TaskDefinition {
    let mut v = json!({
        "family": "reader", "revision": 2,
        "taskDefinitionArn": "arn:berth:ecs:local:000000000000:task-definition/reader:2",
        "containerDefinitions": [{"name": "app", "image": "python"}]
    });
    if role {
        v["taskRoleArn"] = json!("arn:berth:iam::000000000000:role/reader");
    }
    serde_json::from_value(v).unwrap()
}

struct FakeControl {
    minted: AtomicU32,
    /// Seconds the next credentials are valid.
    validity: AtomicI64,
    changes: watch::Sender<u64>,
}

#[async_trait]
impl AgentApi for FakeControl {
    async fn register_instance(&self, i: ContainerInstance) -> Result<ContainerInstance> {
        Ok(i)
    }
    async fn assigned_tasks(&self, _: &str) -> Result<Vec<Task>> {
        Ok(["t1", "t2"]
            .iter()
            .map(|id| Task {
                task_arn: arn::task("default", id),
                cluster_arn: arn::cluster("default"),
                task_definition_arn: td(true).task_definition_arn,
                last_status: TaskStatus::Running,
                desired_status: TaskStatus::Running,
                container_instance_arn: Some(INSTANCE.into()),
                ..Default::default()
            })
            .collect())
    }
    async fn task_definition(&self, _: &str) -> Result<Option<TaskDefinition>> {
        Ok(Some(td(true)))
    }
    async fn submit_task_state_change(&self, _: TaskStateChange) -> Result<Option<Task>> {
        Ok(None)
    }
    async fn task_role_credentials(
        &self,
        instance: &str,
        task: &str,
    ) -> Result<TaskRoleCredentials> {
        assert_eq!(instance, INSTANCE);
        let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(TaskRoleCredentials {
            access_key_id: format!("ASIA{n:016}"),
            secret_access_key: format!("secret-{n}"),
            session_token: format!("token-{n}-{}", arn::last_segment(task)),
            expiration: berth_model::time::now() as i64 + self.validity.load(Ordering::SeqCst),
            role_arn: "arn:berth:iam::000000000000:role/reader".into(),
        })
    }
    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

struct OneTaskRuntime {
    events: broadcast::Sender<TaskState>,
}

#[async_trait]
impl Runtime for OneTaskRuntime {
    fn kind(&self) -> &'static str {
        "process"
    }
    async fn start(&self, _: &TaskSpec) -> berth_runtime::Result<TaskState> {
        Err(RuntimeError::Other("not in this test".into()))
    }
    async fn stop(&self, t: &str) -> berth_runtime::Result<TaskState> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
    async fn remove(&self, _: &str) -> berth_runtime::Result<()> {
        Ok(())
    }
    async fn list(&self) -> berth_runtime::Result<Vec<TaskState>> {
        Ok(["t1", "t2"]
            .iter()
            .map(|id| TaskState {
                task_arn: arn::task("default", id),
                containers: vec![ContainerState {
                    name: "app".into(),
                    runtime_id: Some(format!("pid-{id}")),
                    status: ContainerStatus::Running,
                    exit_code: None,
                    reason: None,
                    health: HealthStatus::Unknown,
                    network_bindings: Vec::new(),
                    private_ip: None,
                    essential: true,
                }],
            })
            .collect())
    }
    fn subscribe(&self) -> broadcast::Receiver<TaskState> {
        self.events.subscribe()
    }
    async fn logs(&self, t: &str, _: Option<&str>, _: bool) -> berth_runtime::Result<LogStream> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
    async fn stats(&self, _: &str) -> berth_runtime::Result<TaskStats> {
        Ok(TaskStats {
            cpu_units: 10.0,
            memory_bytes: 4096,
        })
    }
    async fn exec(&self, t: &str, _: &ExecRequest) -> berth_runtime::Result<ExecOutput> {
        Err(RuntimeError::UnknownTask(t.into()))
    }
}

struct Fixture {
    endpoint: Arc<TaskEndpoint>,
    control: Arc<FakeControl>,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

async fn start(validity: i64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let control = Arc::new(FakeControl {
        minted: AtomicU32::new(0),
        validity: AtomicI64::new(validity),
        changes: watch::channel(0).0,
    });
    let (stop, stop_rx) = watch::channel(false);
    let endpoint = TaskEndpoint::start(
        TaskEndpointConfig {
            state_dir: dir.path().to_path_buf(),
            docker_address: None,
        },
        control.clone(),
        Arc::new(OneTaskRuntime {
            events: broadcast::channel(1).0,
        }),
        INSTANCE.into(),
        stop_rx,
    )
    .await
    .unwrap();
    Fixture {
        endpoint,
        control,
        _dir: dir,
        _stop: stop,
    }
}

fn env_of(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.header("authorization", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn credentials_need_the_tasks_own_token() {
    let f = start(3600).await;
    let t1 = arn::task("default", "t1");
    let t2 = arn::task("default", "t2");
    let env = f.endpoint.environment(&t1, &td(true), "app");
    let uri = env_of(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI").unwrap();
    let token = env_of(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").unwrap();
    let loopback = format!("http://{}/v2/credentials/", f.endpoint.loopback_addr());
    assert!(uri.starts_with(&loopback), "{uri}");
    let other_token = f.endpoint.authorization_token(&t2);
    assert_ne!(token, other_token);

    assert_eq!(get(&uri, None).await.0, 401);
    assert_eq!(get(&uri, Some(&other_token)).await.0, 403);
    assert_eq!(get(&uri, Some("not-hex")).await.0, 403);
    let (status, body) = get(&uri, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "AccessKeyId",
            "Expiration",
            "RoleArn",
            "SecretAccessKey",
            "Token"
        ]
    );
    assert_eq!(body["Token"], "token-1-t1");
    let expiration = body["Expiration"].as_str().unwrap();
    assert!(
        expiration.ends_with('Z') && expiration.len() == 20,
        "{expiration}"
    );
    // Held while fresh: the control plane is asked once.
    let (_, again) = get(&uri, Some(&token)).await;
    assert_eq!(again["AccessKeyId"], body["AccessKeyId"]);
    assert_eq!(f.control.minted.load(Ordering::SeqCst), 1);

    let unknown = format!("{loopback}00112233445566778899aabbccddeeff");
    assert_eq!(get(&unknown, Some(&token)).await.0, 404);
}

#[tokio::test]
async fn credentials_past_half_their_validity_are_fetched_again() {
    let f = start(1).await;
    let t1 = arn::task("default", "t1");
    let env = f.endpoint.environment(&t1, &td(true), "app");
    let uri = env_of(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI").unwrap();
    let token = env_of(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").unwrap();
    let (_, first) = get(&uri, Some(&token)).await;
    let (_, second) = get(&uri, Some(&token)).await;
    assert_ne!(first["AccessKeyId"], second["AccessKeyId"]);
    assert_eq!(f.control.minted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_task_without_a_role_gets_metadata_only() {
    let f = start(3600).await;
    let env = f
        .endpoint
        .environment(&arn::task("default", "t1"), &td(false), "app");
    assert!(env_of(&env, "AWS_CONTAINER_CREDENTIALS_FULL_URI").is_none());
    assert!(env_of(&env, "AWS_CONTAINER_AUTHORIZATION_TOKEN").is_none());
    assert!(env_of(&env, "ECS_CONTAINER_METADATA_URI")
        .unwrap()
        .contains("/v3/"));
    let uri = env_of(&env, "ECS_CONTAINER_METADATA_URI_V4").unwrap();

    let (status, task) = get(&format!("{uri}/task"), None).await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["TaskARN"], arn::task("default", "t1"));
    assert_eq!(task["Family"], "reader");
    assert_eq!(task["Containers"][0]["DockerId"], "pid-t1");
    let (status, container) = get(&uri, None).await;
    assert_eq!((status, &container["Name"]), (200, &json!("app")));
    let (status, stats) = get(&format!("{uri}/stats"), None).await;
    assert_eq!(
        (status, &stats["memory_stats"]["usage"]),
        (200, &json!(4096))
    );
    let (status, all) = get(&format!("{uri}/task/stats"), None).await;
    assert_eq!(status, 200);
    assert_eq!(all.as_object().unwrap().len(), 1, "{all}");
}

#[tokio::test]
async fn ids_resolve_after_a_restart_from_what_the_runtime_runs() {
    let f = start(3600).await;
    let t2 = arn::task("default", "t2");
    // A fresh endpoint on the same state directory knows nothing in memory.
    let uri = format!(
        "http://{}/v4/{}/task",
        f.endpoint.loopback_addr(),
        f.endpoint.metadata_id(&t2, "app")
    );
    let (status, task) = get(&uri, None).await;
    assert_eq!((status, &task["TaskARN"]), (200, &json!(t2)));
}
