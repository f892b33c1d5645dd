//! The node link end to end on loopback: join with a token, calls with the node's
//! certificate, the change stream, a task's secret values for the node it is placed on,
//! and what the control plane refuses.

use std::sync::Arc;
use std::time::Duration;

use berth_agent::AgentApi;
use berth_control::node_join::NodeJoin;
use berth_control::{db, AgentService, Db};
use berth_model::agent::TaskStateChange;
use berth_model::arn;
use berth_model::ecs::{ContainerInstance, Task, TaskStatus};
use berth_node_link::agent_side::{ConnectError, CREDENTIALS_FILE};
use berth_node_link::channel::LinkError;
use berth_node_link::{serve, ControlLink, JoinToken, LinkSettings, RemoteControl};
use berth_store::MemoryStore;
use tokio::sync::watch;

const INSTANCE: &str = "i-0123456789abcdef0";
const OTHER: &str = "i-0fedcba9876543210";

struct Control {
    db: Db,
    url: String,
    token: JoinToken,
    changes: watch::Sender<u64>,
    _stop: watch::Sender<bool>,
}

async fn control(disconnect_after: Duration) -> Control {
    let db = Db::new(Arc::new(MemoryStore::new()));
    let join = NodeJoin::new(db.clone());
    let secret = join.ensure_secret().await.unwrap().expect("a new secret");
    let token = JoinToken::new(&join.authority_pem().await.unwrap(), &secret).unwrap();
    let (changes, rx) = watch::channel(0);
    let secrets = berth_control::secret_store::SecretStore::new(db.clone(), [7; 32]);
    let iam = berth_control::iam_store::Iam::new(db.clone(), [4; 32]);
    let agents = AgentService::new(db.clone(), rx)
        .with_secrets(Some(secrets))
        .with_task_roles(Some(berth_control::agent_service::TaskRoles {
            iam,
            validity: Duration::from_secs(60),
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stop_rx) = watch::channel(false);
    serve(
        ControlLink {
            join,
            agents,
            disconnect_after,
        },
        listener,
        stop_rx,
    )
    .await
    .unwrap();
    Control {
        db,
        url,
        token,
        changes,
        _stop: stop,
    }
}

fn settings(
    c: &Control,
    dir: &std::path::Path,
    id: &str,
    token: Option<JoinToken>,
) -> LinkSettings {
    LinkSettings {
        server: c.url.clone(),
        token,
        data_dir: dir.to_path_buf(),
        cluster: "default".into(),
        instance_id: id.into(),
    }
}

fn instance(id: &str) -> ContainerInstance {
    ContainerInstance {
        container_instance_arn: arn::container_instance("default", id),
        ec2_instance_id: id.into(),
        cluster_arn: arn::cluster("default"),
        status: "ACTIVE".into(),
        agent_connected: true,
        ..Default::default()
    }
}

async fn put_task(db: &Db, id: &str, on: &str) -> Task {
    let task = Task {
        task_arn: arn::task("default", id),
        cluster_arn: arn::cluster("default"),
        container_instance_arn: Some(arn::container_instance("default", on)),
        desired_status: TaskStatus::Running,
        last_status: TaskStatus::Provisioning,
        ..Default::default()
    };
    db.put(&db::task_key("default", id), &task).await.unwrap();
    task
}

fn refused_status(e: &berth_agent::AgentError) -> String {
    e.to_string()
}

#[tokio::test]
async fn an_agent_joins_registers_reads_its_tasks_and_reports_their_state() {
    let c = control(Duration::from_secs(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(c.token.clone())))
        .await
        .unwrap();
    // The credentials are kept, readable by the agent's user only.
    let meta = std::fs::metadata(dir.path().join(CREDENTIALS_FILE)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let stored = remote.register_instance(instance(INSTANCE)).await.unwrap();
    assert_eq!(stored.ec2_instance_id, INSTANCE);
    let task = put_task(&c.db, "t1", INSTANCE).await;
    put_task(&c.db, "t2", OTHER).await;
    let mine = remote
        .assigned_tasks(&arn::container_instance("default", INSTANCE))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1, "only the tasks placed on this instance");
    assert_eq!(mine[0].task_arn, task.task_arn);

    let after = remote
        .submit_task_state_change(TaskStateChange::running(task.task_arn.clone(), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.last_status, TaskStatus::Running);
    assert_eq!(
        remote.task_definition("nope:1").await.unwrap(),
        None,
        "an unknown task definition is None, not an error"
    );

    // The node reads the discovery records its DNS server answers.
    let ns = berth_model::servicediscovery::Namespace {
        name: "internal".into(),
        description: None,
        dns_ttl_seconds: 5,
        arn: String::new(),
        created_at: None,
    };
    c.db.put(&db::namespace_key("internal"), &ns).await.unwrap();
    let records = remote.node_discovery_records().await.unwrap();
    assert_eq!(records.zones, ["internal"]);

    // A restarted agent needs no token: it has its credentials.
    let again = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, None))
        .await
        .unwrap();
    again.register_instance(instance(INSTANCE)).await.unwrap();
}

#[tokio::test]
async fn a_node_speaks_only_for_its_own_instance() {
    let c = control(Duration::from_secs(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(c.token.clone())))
        .await
        .unwrap();
    let e = remote.register_instance(instance(OTHER)).await.unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
    let e = remote
        .assigned_tasks(&arn::container_instance("default", OTHER))
        .await
        .unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
    let theirs = put_task(&c.db, "t9", OTHER).await;
    let e = remote
        .submit_task_state_change(TaskStateChange::running(theirs.task_arn.clone(), None))
        .await
        .unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
    let e = remote.task_secrets(&theirs.task_arn).await.unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
    let stored: Task =
        c.db.get(&db::task_key("default", "t9"))
            .await
            .unwrap()
            .unwrap()
            .value;
    assert_eq!(
        stored.last_status,
        TaskStatus::Provisioning,
        "nothing changed"
    );
}

#[tokio::test]
async fn a_tasks_secret_values_reach_the_node_it_is_placed_on() {
    use berth_control::iam_store::{EntityKind, Iam};
    use berth_model::ecs::TaskDefinition;
    use berth_model::task_secrets::TaskSecrets;
    let c = control(Duration::from_secs(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(c.token.clone())))
        .await
        .unwrap();
    remote.register_instance(instance(INSTANCE)).await.unwrap();
    let mut td: TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "app", "executionRoleArn": "arn:aws:iam::1:role/exec",
        "containerDefinitions": [{"name": "app", "image": "x",
            "secrets": [{"name": "TOKEN", "valueFrom": "token"}]}]
    }))
    .unwrap();
    td.revision = 1;
    td.task_definition_arn = arn::task_definition("app", 1);
    c.db.put(&db::taskdef_key("app", 1), &td).await.unwrap();
    berth_control::secret_store::SecretStore::new(c.db.clone(), [7; 32])
        .put("token", "t0ken")
        .await
        .unwrap();
    let iam = Iam::new(c.db.clone(), [7; 32]);
    iam.create(EntityKind::Role, "exec").await.unwrap();
    let policy = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue", "Resource": "*"}]});
    iam.put_policy(EntityKind::Role, "exec", "read", &policy)
        .await
        .unwrap();
    let mut task = put_task(&c.db, "t1", INSTANCE).await;
    task.task_definition_arn = td.task_definition_arn.clone();
    c.db.put(&db::task_key("default", "t1"), &task)
        .await
        .unwrap();

    let TaskSecrets::Resolved { variables } = remote.task_secrets(&task.task_arn).await.unwrap()
    else {
        panic!("resolved");
    };
    assert_eq!(
        (variables[0].name.as_str(), variables[0].value.as_str()),
        ("TOKEN", "t0ken")
    );
}

#[tokio::test]
async fn a_wrong_secret_or_a_foreign_authority_joins_nothing() {
    let c = control(Duration::from_secs(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut wrong = c.token.clone();
    wrong.secret = "0".repeat(64);
    match RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(wrong))).await {
        Err(ConnectError::Join(LinkError::Refused { status, message })) => {
            assert_eq!(status, 403);
            assert!(message.contains("secret"), "{message}");
        }
        Err(other) => panic!("expected a 403, got {other}"),
        Ok(_) => panic!("a wrong secret joined"),
    }
    assert!(!dir.path().join(CREDENTIALS_FILE).exists());

    let mut foreign = c.token.clone();
    foreign.authority_fingerprint = "ab".repeat(32);
    match RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(foreign))).await {
        Err(ConnectError::Join(LinkError::Unreachable { reason, .. })) => {
            assert!(reason.contains("certificate"), "{reason}");
        }
        Err(other) => panic!("expected a refused handshake, got {other}"),
        Ok(_) => panic!("an agent trusted a server its token does not name"),
    }

    let e = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, None))
        .await
        .err()
        .expect("no token and no credentials");
    assert!(e.to_string().contains("--token is required"), "{e}");
}

#[tokio::test]
async fn changes_reach_the_agent_and_a_silent_agent_is_marked_disconnected() {
    let c = control(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(c.token.clone())))
        .await
        .unwrap();
    remote.register_instance(instance(INSTANCE)).await.unwrap();
    let mut changes = remote.changes();
    let (stop, stop_rx) = watch::channel(false);
    let running = tokio::spawn(remote.clone().run(stop_rx));
    // The first notice arrives as soon as the stream opens.
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("the stream's first notice")
        .unwrap();
    c.changes.send_modify(|v| *v += 1);
    tokio::time::timeout(Duration::from_secs(4), changes.changed())
        .await
        .expect("a change notice before the next heartbeat")
        .unwrap();

    stop.send(true).unwrap();
    running.await.unwrap();
    drop(remote);
    let key = db::instance_key("default", INSTANCE);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inst: ContainerInstance = c.db.get(&key).await.unwrap().unwrap().value;
        if !inst.agent_connected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the instance is still connected 10 s after its agent left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cluster_named_with_capitals_joins_and_speaks_for_its_instance() {
    let c = control(Duration::from_secs(15)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&c, dir.path(), INSTANCE, Some(c.token.clone()));
    s.cluster = "MyCluster".into();
    let remote = RemoteControl::connect(&s).await.unwrap();
    let mut inst = instance(INSTANCE);
    inst.container_instance_arn = arn::container_instance("MyCluster", INSTANCE);
    inst.cluster_arn = arn::cluster("MyCluster");
    let stored = remote.register_instance(inst).await.unwrap();
    assert_eq!(stored.cluster_arn, arn::cluster("MyCluster"));
    // Another cluster's name, even differing only in case, is still its own.
    let mut other = instance(INSTANCE);
    other.container_instance_arn = arn::container_instance("OtherCluster", INSTANCE);
    other.cluster_arn = arn::cluster("OtherCluster");
    let e = remote.register_instance(other).await.unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
}

#[tokio::test]
async fn a_node_gets_role_credentials_for_its_own_tasks_only() {
    let c = control(Duration::from_secs(15)).await;
    let iam = berth_control::iam_store::Iam::new(c.db.clone(), [4; 32]);
    iam.create(berth_control::iam_store::EntityKind::Role, "reader")
        .await
        .unwrap();
    let td: berth_model::ecs::TaskDefinition = serde_json::from_value(serde_json::json!({
        "family": "app", "revision": 1, "status": "ACTIVE",
        "taskDefinitionArn": "arn:berth:ecs:local:000000000000:task-definition/app:1",
        "taskRoleArn": "reader",
        "containerDefinitions": [{"name": "app", "image": "x"}]
    }))
    .unwrap();
    c.db.put(&db::taskdef_key("app", 1), &td).await.unwrap();
    for (id, on) in [("mine", INSTANCE), ("theirs", OTHER)] {
        let mut t = put_task(&c.db, id, on).await;
        t.task_definition_arn = td.task_definition_arn.clone();
        c.db.put(&db::task_key("default", id), &t).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let remote = RemoteControl::connect(&settings(&c, dir.path(), INSTANCE, Some(c.token.clone())))
        .await
        .unwrap();
    let own = arn::container_instance("default", INSTANCE);
    let creds = remote
        .task_role_credentials(&own, &arn::task("default", "mine"))
        .await
        .unwrap();
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert_eq!(creds.role_arn, "arn:berth:iam::000000000000:role/reader");
    // Another node's task, asked for as this node's or as the other node.
    let e = remote
        .task_role_credentials(&own, &arn::task("default", "theirs"))
        .await
        .unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
    let e = remote
        .task_role_credentials(
            &arn::container_instance("default", OTHER),
            &arn::task("default", "theirs"),
        )
        .await
        .unwrap_err();
    assert!(refused_status(&e).contains("403"), "{e}");
}
