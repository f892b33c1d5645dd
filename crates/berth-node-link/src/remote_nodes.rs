//! The control plane's calls to the nodes' APIs: [`RemoteTaskNodes`] answers
//! berth-control's `TaskNodes` questions (logs, resource use, exec) for a task on a
//! remote instance by asking that instance's agent, at the address it registered as
//! [`NODE_API_ATTRIBUTE`], over mutual TLS: the control plane presents its own
//! certificate and accepts only the node identity of that instance.
//!
//! An interactive exec session is one HTTP/2 stream to the node's API: the request body
//! streams the input frames, the response body the output frames.
//!
//! What it does not do: answer for the server's own tasks (the binary routes those to its
//! local agent).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use async_trait::async_trait;
use berth_control::node_join::node_identity;
use berth_control::task_nodes::LogStream;
use berth_control::task_nodes::{ExecSession, ExecSessionCommand};
use berth_control::{Db, ExecCommand, ExecResult, NodeError, TaskNodes};
use berth_model::agent::TaskUsage;
use berth_model::ecs::Task;
use berth_model::exec_stream::{Frame as _, FrameDecoder, InputFrame, OutputFrame};
use berth_model::node_link::{
    node_paths, NodeExecRequest, NodeExecSessionRequest, EXEC_CONTAINER_HEADER,
};
use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::sync::{mpsc, Mutex};

use crate::channel::{encode_query_value, ControlChannel, LinkError};
use crate::control_side::ControlIdentity;
use crate::node_api::NODE_API_ATTRIBUTE;
use crate::tls::node_client_config;

/// Asks remote agents about their tasks. Cheap to share.
pub struct RemoteTaskNodes {
    db: Db,
    identity: ControlIdentity,
    /// One connection per node API address.
    channels: Mutex<HashMap<String, Arc<ControlChannel>>>,
}

fn unreachable(task: &Task) -> NodeError {
    NodeError::Unreachable {
        task_arn: task.task_arn.clone(),
    }
}

fn failed(task: &Task, e: LinkError) -> NodeError {
    match e {
        LinkError::Unreachable { .. } => unreachable(task),
        other => NodeError::Failed {
            task_arn: task.task_arn.clone(),
            message: match other {
                LinkError::Refused { message, .. } => message,
                e => e.to_string(),
            },
        },
    }
}

/// `resp` when it succeeded; otherwise the node's refusal, with its message.
async fn succeeded(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<hyper::Response<hyper::body::Incoming>, LinkError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    Err(LinkError::Refused { status, message })
}

impl RemoteTaskNodes {
    pub fn new(db: Db, identity: ControlIdentity) -> Self {
        Self {
            db,
            identity,
            channels: Mutex::default(),
        }
    }

    /// The channel to the node running `task`.
    async fn channel(&self, task: &Task) -> Result<Arc<ControlChannel>, NodeError> {
        let arn = task
            .container_instance_arn
            .as_deref()
            .ok_or_else(|| unreachable(task))?;
        let (cluster, id) =
            berth_model::arn::container_instance_parts(arn).ok_or_else(|| unreachable(task))?;
        let instance = self
            .db
            .instances(Some(cluster))
            .await
            .map_err(|_| unreachable(task))?
            .into_iter()
            .find(|i| i.ec2_instance_id == id)
            .ok_or_else(|| unreachable(task))?;
        let addr = instance
            .attributes
            .get(NODE_API_ATTRIBUTE)
            .cloned()
            .ok_or_else(|| unreachable(task))?;
        let mut channels = self.channels.lock().await;
        if let Some(c) = channels.get(&addr) {
            return Ok(c.clone());
        }
        let node = node_identity(cluster, id).map_err(|_| unreachable(task))?;
        let tls = node_client_config(
            &self.identity.authority_pem,
            node,
            self.identity.key.clone(),
        )
        .map_err(|e| NodeError::Failed {
            task_arn: task.task_arn.clone(),
            message: e.to_string(),
        })?;
        let c = Arc::new(ControlChannel::new(addr.clone(), tls));
        channels.insert(addr, c.clone());
        Ok(c)
    }
}

#[async_trait]
impl TaskNodes for RemoteTaskNodes {
    async fn logs(
        &self,
        task: &Task,
        container: Option<&str>,
        follow: bool,
    ) -> Result<LogStream, NodeError> {
        let channel = self.channel(task).await?;
        let mut path = format!(
            "{}?taskArn={}&follow={follow}",
            node_paths::LOGS,
            encode_query_value(&task.task_arn)
        );
        if let Some(c) = container {
            path.push_str(&format!("&container={}", encode_query_value(c)));
        }
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("https://{}{path}", channel.addr()))
            .body(Full::new(Bytes::new()))
            .map_err(|e| failed(task, LinkError::Decode(e.to_string())))?;
        let resp = channel.send(req).await.map_err(|e| failed(task, e))?;
        let resp = succeeded(resp).await.map_err(|e| failed(task, e))?;
        let stream = resp
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        Ok(Box::pin(stream))
    }

    async fn usage(&self, task: &Task) -> Result<TaskUsage, NodeError> {
        let channel = self.channel(task).await?;
        channel
            .call::<(), TaskUsage>(
                Method::GET,
                &format!(
                    "{}?taskArn={}",
                    node_paths::USAGE,
                    encode_query_value(&task.task_arn)
                ),
                None,
            )
            .await
            .map_err(|e| failed(task, e))?
            .ok_or_else(|| unreachable(task))
    }

    async fn exec(&self, task: &Task, command: &ExecCommand) -> Result<ExecResult, NodeError> {
        let channel = self.channel(task).await?;
        let req = NodeExecRequest {
            task_arn: task.task_arn.clone(),
            container: command.container.clone(),
            command: command.command.clone(),
            timeout_seconds: command.timeout.as_secs().max(1),
        };
        channel
            .call(Method::POST, node_paths::EXEC, Some(&req))
            .await
            .map_err(|e| failed(task, e))?
            .ok_or_else(|| unreachable(task))
    }

    async fn exec_interactive(
        &self,
        task: &Task,
        command: &ExecSessionCommand,
    ) -> Result<ExecSession, NodeError> {
        let channel = self.channel(task).await?;
        let request = NodeExecSessionRequest {
            task_arn: task.task_arn.clone(),
            container: command.container.clone(),
            command: command.command.clone(),
            tty: command.tty,
            stdin: command.stdin,
            window: command.window.map(|w| (w.rows, w.cols)),
        };
        let mut first = serde_json::to_vec(&request)
            .map_err(|e| failed(task, LinkError::Decode(e.to_string())))?;
        first.push(b'\n');
        let (input, input_rx) = mpsc::channel::<InputFrame>(64);
        let frames = futures::stream::once(async move { Bytes::from(first) }).chain(
            futures::stream::unfold(input_rx, |mut rx| async move {
                let frame = rx.recv().await?;
                Some((Bytes::from(frame.encode()), rx))
            }),
        );
        let body = StreamBody::new(frames.map(|b| Ok::<_, Infallible>(Frame::data(b))));
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "https://{}{}",
                channel.addr(),
                node_paths::EXEC_SESSION
            ))
            .body(BodyExt::boxed_unsync(body))
            .map_err(|e| failed(task, LinkError::Decode(e.to_string())))?;
        let resp = channel
            .send_streaming(req)
            .await
            .map_err(|e| failed(task, e))?;
        let resp = succeeded(resp).await.map_err(|e| failed(task, e))?;
        let container = resp
            .headers()
            .get(EXEC_CONTAINER_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let (out, output) = mpsc::channel::<OutputFrame>(64);
        let mut body = resp.into_body().into_data_stream();
        tokio::spawn(async move {
            let mut decoder = FrameDecoder::<OutputFrame>::new();
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        let last = frame.is_last();
                        if out.send(frame).await.is_err() || last {
                            return;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = out.send(OutputFrame::Error(e.to_string())).await;
                        return;
                    }
                }
                match body.next().await {
                    Some(Ok(chunk)) => decoder.push(&chunk),
                    Some(Err(e)) => {
                        let _ = out
                            .send(OutputFrame::Error(format!("the node's session broke: {e}")))
                            .await;
                        return;
                    }
                    None => {
                        let _ = out
                            .send(OutputFrame::Error(
                                "the node ended the session without an exit code".into(),
                            ))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(ExecSession {
            container,
            input,
            output,
        })
    }
}
