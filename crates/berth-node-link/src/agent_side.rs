//! The agent's side of the link: joining with a token once, keeping the node's
//! credentials in its data directory, and [`RemoteControl`], the agent's
//! [`AgentApi`] served by a control plane on another machine.
//!
//! - [`RemoteControl::connect`] uses the credentials saved by an earlier join when there
//!   are some (a restarted agent needs no token), else joins with the token: it trusts
//!   the server whose authority has the token's fingerprint, sends the secret and saves
//!   what it gets (`node-credentials.json`, mode 0600).
//! - [`RemoteControl::run`] holds the change stream open (every notice bumps
//!   [`AgentApi::changes`]; a broken stream is opened again after a second) and renews
//!   the certificate half-way through its lifetime.
//!
//! What it does not do: run tasks (berth-agent does, through this API). While the
//! control plane is unreachable every call fails and the agent keeps what runs as it is.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use berth_agent::{AgentApi, AgentError};
use berth_model::agent::{TaskRoleCredentials, TaskStateChange};
use berth_model::arn;
use berth_model::dataplane::ProxyConfig;
use berth_model::discovery::DiscoveryRecords;
use berth_model::ecs::{ContainerInstance, Task, TaskDefinition};
use berth_model::node_link::{
    paths, ChangeNotice, JoinRequest, NodeCredentials, TaskCredentialsRequest,
};
use berth_model::task_secrets::TaskSecrets;
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;

use crate::channel::{encode_query_value, server_addr, ControlChannel, LinkError};
use crate::control_side::stopped;
use crate::tls::{agent_client_config, ControlTrust, ReloadableKey};
use crate::token::JoinToken;

/// The file in the agent's data directory holding its credentials.
pub const CREDENTIALS_FILE: &str = "node-credentials.json";

/// Why an agent could not get onto the link.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Config(String),
    #[error("joining the cluster: {0}")]
    Join(LinkError),
    #[error("{0}")]
    Files(String),
}

/// Where an agent's link starts.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// `https://host:port` of a control plane's node link.
    pub server: String,
    /// Needed only until the first join has saved credentials.
    pub token: Option<JoinToken>,
    pub data_dir: PathBuf,
    pub cluster: String,
    pub instance_id: String,
}

fn load_credentials(path: &Path) -> Result<Option<NodeCredentials>, ConnectError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ConnectError::Files(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConnectError::Files(format!("{}: {e}", path.display()))),
    }
}

fn save_credentials(path: &Path, creds: &NodeCredentials) -> Result<(), ConnectError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let files = |e: std::io::Error| ConnectError::Files(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(files)?;
    f.write_all(&serde_json::to_vec_pretty(creds).expect("credentials serialize"))
        .map_err(files)?;
    f.sync_all().map_err(files)?;
    std::fs::rename(&tmp, path).map_err(files)?;
    Ok(())
}

/// The agent's view of a remote control plane.
pub struct RemoteControl {
    channel: ControlChannel,
    instance_arn: String,
    key: Arc<ReloadableKey>,
    credentials: Mutex<NodeCredentials>,
    credentials_path: PathBuf,
    changes: watch::Sender<u64>,
}

fn control_error(e: LinkError) -> AgentError {
    AgentError::ControlPlane {
        message: e.to_string(),
    }
}

impl RemoteControl {
    /// Gets the node's credentials (saved, or by joining with the token) and prepares
    /// the mutual-TLS channel. Nothing is connected yet but for a join.
    pub async fn connect(settings: &LinkSettings) -> Result<Arc<Self>, ConnectError> {
        let addr = server_addr(&settings.server).map_err(ConnectError::Config)?;
        let path = settings.data_dir.join(CREDENTIALS_FILE);
        let creds = match load_credentials(&path)? {
            Some(c) => c,
            None => {
                let token = settings.token.clone().ok_or_else(|| {
                    ConnectError::Config(format!(
                        "--token is required: this agent has not joined yet ({} is missing)",
                        path.display()
                    ))
                })?;
                let tls = agent_client_config(
                    ControlTrust::Fingerprint(token.authority_fingerprint.clone()),
                    None,
                )
                .map_err(|e| ConnectError::Config(e.to_string()))?;
                let joining = ControlChannel::new(addr.clone(), tls);
                let req = JoinRequest {
                    secret: token.secret.clone(),
                    cluster: settings.cluster.clone(),
                    instance_id: settings.instance_id.clone(),
                };
                let creds: NodeCredentials = joining
                    .call(Method::POST, paths::JOIN, Some(&req))
                    .await
                    .map_err(ConnectError::Join)?
                    .ok_or_else(|| {
                        ConnectError::Join(LinkError::Decode(
                            "the server has no node link join endpoint".into(),
                        ))
                    })?;
                save_credentials(&path, &creds)?;
                tracing::info!(instance = %settings.instance_id, "joined the cluster");
                creds
            }
        };
        let key = ReloadableKey::new(&creds).map_err(|e| ConnectError::Files(e.to_string()))?;
        let tls = agent_client_config(
            ControlTrust::Authority(creds.authority_pem.clone()),
            Some(key.clone()),
        )
        .map_err(|e| ConnectError::Config(e.to_string()))?;
        Ok(Arc::new(Self {
            channel: ControlChannel::new(addr, tls),
            instance_arn: arn::container_instance(&settings.cluster, &settings.instance_id),
            key,
            credentials: Mutex::new(creds),
            credentials_path: path,
            changes: watch::channel(0).0,
        }))
    }

    /// The node's certificate and key, renewed in place (the node's API presents it too).
    pub fn node_key(&self) -> Arc<ReloadableKey> {
        self.key.clone()
    }

    /// The authority's certificate (PEM) the node's credentials chain to.
    pub fn authority_pem(&self) -> String {
        self.credentials
            .lock()
            .expect("credentials lock")
            .authority_pem
            .clone()
    }

    /// The data plane configuration of this node: the load balancers whose
    /// `berth.nodes` choose it, with their target groups.
    pub async fn node_proxy_config(&self) -> Result<ProxyConfig, LinkError> {
        Ok(self
            .channel
            .call::<(), ProxyConfig>(
                Method::GET,
                &format!(
                    "{}?containerInstanceArn={}",
                    paths::PROXY_CONFIG,
                    self.instance_arn
                ),
                None,
            )
            .await?
            .unwrap_or_default())
    }

    /// The DNS records this node's DNS server answers.
    pub async fn node_discovery_records(&self) -> Result<DiscoveryRecords, LinkError> {
        Ok(self
            .channel
            .call::<(), DiscoveryRecords>(
                Method::GET,
                &format!(
                    "{}?containerInstanceArn={}",
                    paths::DISCOVERY_RECORDS,
                    self.instance_arn
                ),
                None,
            )
            .await?
            .unwrap_or_default())
    }

    /// Follows the change stream and renews the certificate until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let follow = self.clone().follow_changes();
        let renew = self.clone().renew_credentials();
        tokio::select! {
            _ = stopped(&mut stop) => {}
            _ = follow => {}
            _ = renew => {}
        }
    }

    async fn follow_changes(self: Arc<Self>) {
        let mut warned = false;
        loop {
            match self.stream_changes().await {
                Ok(()) => warned = false,
                Err(e) if !warned => {
                    tracing::warn!(error = %e, "the control plane's change stream is down; tasks keep running");
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// One change stream, until it breaks or goes silent past three heartbeats.
    async fn stream_changes(&self) -> Result<(), LinkError> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!(
                "https://{}{}?containerInstanceArn={}",
                self.channel.addr(),
                paths::CHANGES,
                self.instance_arn
            ))
            .body(Full::new(Bytes::new()))
            .map_err(|e| LinkError::Decode(e.to_string()))?;
        let resp = self.channel.send(req).await?;
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map(|b| b.to_bytes());
            return Err(LinkError::Refused {
                status,
                message: body
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            });
        }
        let silence = crate::control_side::HEARTBEAT_INTERVAL * 3;
        let mut body = resp.into_body().into_data_stream();
        let mut pending = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(silence, body.next()).await {
                Err(_) => return Err(LinkError::Decode("the change stream went silent".into())),
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => return Err(LinkError::Decode(e.to_string())),
                Ok(Some(Ok(c))) => c,
            };
            pending.extend_from_slice(&chunk);
            while let Some(nl) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=nl).collect();
                let notice: ChangeNotice =
                    serde_json::from_slice(&line).map_err(|e| LinkError::Decode(e.to_string()))?;
                // Every notice, heartbeats included, wakes the agent: a revision it
                // missed while the stream was down is covered by the first one.
                let _ = notice;
                self.changes.send_modify(|v| *v += 1);
            }
        }
    }

    async fn renew_credentials(self: Arc<Self>) {
        loop {
            let renew_at = self.credentials.lock().expect("credentials lock").renew_at;
            let wait = (renew_at - berth_model::time::now()).clamp(1.0, 3600.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            if berth_model::time::now() < renew_at {
                continue;
            }
            let got: Result<Option<NodeCredentials>, LinkError> = self
                .channel
                .call::<(), _>(Method::POST, paths::RENEW, None)
                .await;
            match got {
                Ok(Some(creds)) => {
                    if let Err(e) = self.key.replace(&creds) {
                        tracing::warn!(error = %e, "renewed credentials do not load");
                        continue;
                    }
                    if let Err(e) = save_credentials(&self.credentials_path, &creds) {
                        tracing::warn!(error = %e, "saving renewed credentials");
                    }
                    *self.credentials.lock().expect("credentials lock") = creds;
                    tracing::info!("renewed the node certificate");
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "renewing the node certificate; trying again in a minute");
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
        }
    }
}

#[async_trait]
impl AgentApi for RemoteControl {
    async fn register_instance(
        &self,
        instance: ContainerInstance,
    ) -> Result<ContainerInstance, AgentError> {
        self.channel
            .call(Method::POST, paths::INSTANCES, Some(&instance))
            .await
            .map_err(control_error)?
            .ok_or_else(|| control_error(LinkError::Decode("no instance came back".into())))
    }

    async fn assigned_tasks(&self, container_instance_arn: &str) -> Result<Vec<Task>, AgentError> {
        Ok(self
            .channel
            .call::<(), Vec<Task>>(
                Method::GET,
                &format!(
                    "{}?containerInstanceArn={container_instance_arn}",
                    paths::TASKS
                ),
                None,
            )
            .await
            .map_err(control_error)?
            .unwrap_or_default())
    }

    async fn task_definition(&self, arn: &str) -> Result<Option<TaskDefinition>, AgentError> {
        let q = encode_query_value(arn);
        self.channel
            .call::<(), TaskDefinition>(
                Method::GET,
                &format!("{}?taskDefinition={q}", paths::TASK_DEFINITION),
                None,
            )
            .await
            .map_err(control_error)
    }

    async fn task_secrets(&self, task_arn: &str) -> Result<TaskSecrets, AgentError> {
        let q = encode_query_value(task_arn);
        self.channel
            .call::<(), TaskSecrets>(
                Method::GET,
                &format!("{}?taskArn={q}", paths::TASK_SECRETS),
                None,
            )
            .await
            .map_err(control_error)?
            .ok_or_else(|| control_error(LinkError::Decode("no task secrets came back".into())))
    }

    async fn submit_task_state_change(
        &self,
        change: TaskStateChange,
    ) -> Result<Option<Task>, AgentError> {
        self.channel
            .call(Method::POST, paths::TASK_STATE_CHANGES, Some(&change))
            .await
            .map_err(control_error)
    }

    async fn task_role_credentials(
        &self,
        container_instance_arn: &str,
        task_arn: &str,
    ) -> Result<TaskRoleCredentials, AgentError> {
        let req = TaskCredentialsRequest {
            container_instance_arn: container_instance_arn.to_string(),
            task_arn: task_arn.to_string(),
        };
        self.channel
            .call(Method::POST, paths::TASK_CREDENTIALS, Some(&req))
            .await
            .map_err(control_error)?
            .ok_or_else(|| {
                control_error(LinkError::Decode(format!("no credentials for {task_arn}")))
            })
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
