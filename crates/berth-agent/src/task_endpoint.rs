//! The node's task endpoint: what a task reads about itself from the node that runs it,
//! as ECS's agent serves it on 169.254.170.2.
//!
//! - Credentials of the task's role (`taskRoleArn`): `GET /v2/credentials/<id>` with the
//!   task's `Authorization` token answers `{"AccessKeyId", "SecretAccessKey", "Token",
//!   "Expiration", "RoleArn"}`. The task finds it through
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` and `AWS_CONTAINER_AUTHORIZATION_TOKEN`, as the
//!   AWS SDKs' container credential provider reads them. The node asks the control plane
//!   for the credentials ([`AgentApi::task_role_credentials`]) when the task starts and
//!   again once half of their validity has passed, so a task re-reading the endpoint
//!   before they expire gets fresh ones.
//! - Task metadata v4 (and v3, the same answers): `ECS_CONTAINER_METADATA_URI_V4` (and
//!   `ECS_CONTAINER_METADATA_URI`) is `http://<address>/v4/<id>` for each container;
//!   `${URI}`, `${URI}/task`, `${URI}/stats` and `${URI}/task/stats` answer
//!   ([`metadata`]).
//!
//! Ids and tokens are HMACs of the task ARN (and container name) under a random key of
//! the node kept in its state directory (`task-endpoint.key`, 0600), so they are
//! unguessable without the key, differ per task, and survive a restart of the node: a
//! task adopted after a restart keeps the environment it started with, and the port is
//! kept in `task-endpoint.port` to be bound again. A request with no token is 401, with
//! another task's token 403.
//!
//! Process tasks reach the endpoint on 127.0.0.1; Docker containers on the address the
//! node gives them (`docker_address`: 169.254.170.2, added to the Docker bridge by the
//! binary), both accepted by the SDKs for an `http` `FULL_URI`.
//!
//! What it does not do: mint credentials or decide who may have them (the control plane
//! does, for tasks placed on this node), or add the link-local address to the bridge.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_model::agent::TaskRoleCredentials;
use berth_model::ecs::TaskDefinition;
use berth_runtime::DynRuntime;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::api::{AgentApi, Result};

pub mod metadata;
mod routes;

/// The address ECS's agent serves its task endpoint on, and the one berth gives Docker
/// containers (added to the Docker bridge).
pub const LINK_LOCAL_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The endpoint's key file in the node's state directory.
pub const KEY_FILE: &str = "task-endpoint.key";
/// The file keeping the endpoint's port across restarts.
pub const PORT_FILE: &str = "task-endpoint.port";

/// Where the endpoint runs.
#[derive(Debug, Clone)]
pub struct TaskEndpointConfig {
    /// Where the key and port files live (the node's data directory).
    pub state_dir: PathBuf,
    /// The address Docker containers reach the node's endpoint on, bound beside
    /// 127.0.0.1 on the same port; `None` when the node runs no containers.
    pub docker_address: Option<IpAddr>,
}

/// What a request's id names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Credentials { task_arn: String },
    Metadata { task_arn: String, container: String },
}

/// Credentials as handed out, with when the node got them.
#[derive(Clone)]
struct Held {
    credentials: TaskRoleCredentials,
    fetched_at: i64,
}

/// The node's task endpoint. Cheap to share (`Arc`).
pub struct TaskEndpoint {
    key: hmac::Key,
    api: Arc<dyn AgentApi>,
    runtime: DynRuntime,
    instance_arn: String,
    loopback: SocketAddr,
    docker: Option<SocketAddr>,
    ids: Mutex<HashMap<String, Target>>,
    credentials: tokio::sync::Mutex<HashMap<String, Held>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The node's endpoint key at `path`, made (32 random bytes, 0600) on first use.
pub fn endpoint_key(path: &Path) -> std::io::Result<[u8; 32]> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Ok(bytes) = std::fs::read(path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
    }
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| std::io::Error::other("the system's random source failed"))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(&key)?;
    Ok(key)
}

async fn bind_port(ip: IpAddr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await
}

impl TaskEndpoint {
    /// Binds the endpoint (127.0.0.1 on the port kept in the state directory when it is
    /// free, else a new one; the Docker address on the same port) and serves it until
    /// `stop` turns true.
    pub async fn start(
        config: TaskEndpointConfig,
        api: Arc<dyn AgentApi>,
        runtime: DynRuntime,
        instance_arn: String,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<Arc<Self>> {
        let key = endpoint_key(&config.state_dir.join(KEY_FILE))?;
        let port_file = config.state_dir.join(PORT_FILE);
        let kept: Option<u16> = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let loopback_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let loopback = match kept {
            Some(port) => match bind_port(loopback_ip, port).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(port, error = %e, "the task endpoint's port is taken; tasks started before get no endpoint");
                    bind_port(loopback_ip, 0).await?
                }
            },
            None => bind_port(loopback_ip, 0).await?,
        };
        let port = loopback.local_addr()?.port();
        std::fs::write(&port_file, port.to_string())?;
        let docker = match config.docker_address {
            Some(ip) => match bind_port(ip, port).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(address = %ip, port, error = %e, "containers get no task endpoint");
                    None
                }
            },
            None => None,
        };
        let endpoint = Arc::new(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            api,
            runtime,
            instance_arn,
            loopback: loopback.local_addr()?,
            docker: docker.as_ref().and_then(|l| l.local_addr().ok()),
            ids: Mutex::default(),
            credentials: tokio::sync::Mutex::default(),
        });
        tracing::info!(addr = %endpoint.loopback, docker = ?endpoint.docker, "task endpoint listening");
        for listener in std::iter::once(loopback).chain(docker) {
            let app = routes::router(endpoint.clone());
            let mut stop = stop.clone();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
            });
        }
        Ok(endpoint)
    }

    fn mac(&self, parts: &[&str]) -> hmac::Tag {
        hmac::sign(&self.key, parts.join("\0").as_bytes())
    }

    fn credentials_id(&self, task_arn: &str) -> String {
        hex(&self.mac(&["credentials", task_arn]).as_ref()[..16])
    }

    fn metadata_id(&self, task_arn: &str, container: &str) -> String {
        hex(&self.mac(&["metadata", task_arn, container]).as_ref()[..16])
    }

    /// The `Authorization` value of task `task_arn`'s credential requests.
    pub fn authorization_token(&self, task_arn: &str) -> String {
        hex(self.mac(&["authorization", task_arn]).as_ref())
    }

    /// Whether `given` is task `task_arn`'s token (compared in constant time).
    fn token_matches(&self, task_arn: &str, given: &str) -> bool {
        let Some(given) = unhex(given.trim()) else {
            return false;
        };
        hmac::verify(
            &self.key,
            ["authorization", task_arn].join("\0").as_bytes(),
            &given,
        )
        .is_ok()
    }

    fn remember(&self, task_arn: &str, containers: impl Iterator<Item = String>) {
        let mut ids = self.ids.lock().expect("ids");
        ids.insert(
            self.credentials_id(task_arn),
            Target::Credentials {
                task_arn: task_arn.to_string(),
            },
        );
        for container in containers {
            ids.insert(
                self.metadata_id(task_arn, &container),
                Target::Metadata {
                    task_arn: task_arn.to_string(),
                    container,
                },
            );
        }
    }

    /// What `id` names: from memory, else from the tasks the runtime runs (tasks adopted
    /// after a restart).
    async fn resolve(&self, id: &str) -> Option<Target> {
        if let Some(t) = self.ids.lock().expect("ids").get(id) {
            return Some(t.clone());
        }
        let tasks = self.runtime.list().await.ok()?;
        {
            let mut ids = self.ids.lock().expect("ids");
            let live: std::collections::BTreeSet<&str> =
                tasks.iter().map(|t| t.task_arn.as_str()).collect();
            ids.retain(|_, t| match t {
                Target::Credentials { task_arn } | Target::Metadata { task_arn, .. } => {
                    live.contains(task_arn.as_str())
                }
            });
        }
        for t in &tasks {
            self.remember(&t.task_arn, t.containers.iter().map(|c| c.name.clone()));
        }
        self.ids.lock().expect("ids").get(id).cloned()
    }

    /// The base URL a task on runtime `runtime_kind` reaches the endpoint at.
    fn base_url(&self, runtime_kind: &str) -> String {
        let addr = match (runtime_kind, self.docker) {
            ("docker", Some(docker)) => docker,
            _ => self.loopback,
        };
        format!("http://{addr}")
    }

    /// The variables the node adds to container `container` of task `task_arn`
    /// (definition `td`): the metadata URIs, and the credential endpoint and its token
    /// when the definition names a `taskRoleArn`.
    pub fn environment(
        &self,
        task_arn: &str,
        td: &TaskDefinition,
        container: &str,
    ) -> Vec<(String, String)> {
        self.remember(
            task_arn,
            td.container_definitions.iter().map(|c| c.name.clone()),
        );
        let base = self.base_url(self.runtime.kind());
        let mut env = vec![
            (
                "ECS_CONTAINER_METADATA_URI_V4".to_string(),
                format!("{base}/v4/{}", self.metadata_id(task_arn, container)),
            ),
            (
                "ECS_CONTAINER_METADATA_URI".to_string(),
                format!("{base}/v3/{}", self.metadata_id(task_arn, container)),
            ),
        ];
        if td.task_role_arn.as_deref().is_some_and(|r| !r.is_empty()) {
            env.push((
                "AWS_CONTAINER_CREDENTIALS_FULL_URI".to_string(),
                format!("{base}/v2/credentials/{}", self.credentials_id(task_arn)),
            ));
            env.push((
                "AWS_CONTAINER_AUTHORIZATION_TOKEN".to_string(),
                self.authorization_token(task_arn),
            ));
        }
        env
    }

    /// The task's role credentials: the ones held while less than half of their
    /// validity has passed, else fresh ones from the control plane.
    pub async fn credentials(&self, task_arn: &str) -> Result<TaskRoleCredentials> {
        let now = berth_model::time::now() as i64;
        let mut held = self.credentials.lock().await;
        if let Some(h) = held.get(task_arn) {
            let half = (h.credentials.expiration - h.fetched_at) / 2;
            if now < h.fetched_at + half {
                return Ok(h.credentials.clone());
            }
        }
        let fresh = self
            .api
            .task_role_credentials(&self.instance_arn, task_arn)
            .await?;
        held.retain(|_, h| h.credentials.expiration > now);
        held.insert(
            task_arn.to_string(),
            Held {
                credentials: fresh.clone(),
                fetched_at: now,
            },
        );
        Ok(fresh)
    }

    /// Forgets what the endpoint holds for a task that stopped.
    pub async fn forget(&self, task_arn: &str) {
        self.credentials.lock().await.remove(task_arn);
        self.ids.lock().expect("ids").retain(|_, t| match t {
            Target::Credentials { task_arn: a } | Target::Metadata { task_arn: a, .. } => {
                a != task_arn
            }
        });
    }

    /// Where process tasks reach the endpoint.
    pub fn loopback_addr(&self) -> SocketAddr {
        self.loopback
    }
}

#[cfg(test)]
mod tests;
