//! A node's API: what an agent answers the control plane about the tasks it runs (their
//! resource use, their output, commands run in their containers), served with the node's
//! own certificate to the control plane's only (mutual TLS, HTTP/2).
//!
//! The agent binds it at `--node-api-addr` and registers where it is reached as the
//! instance attribute [`NODE_API_ATTRIBUTE`]; the control plane's
//! [`crate::remote_nodes::RemoteTaskNodes`] calls it.
//!
//! An interactive exec session is one request whose body streams in (its JSON request
//! line, then input frames) while the response body streams the output frames out.
//!
//! What it does not do: decide who may exec (the control plane checked before calling).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use berth_agent::TaskQueries;
use berth_control::ExecResult;
use berth_model::exec_stream::{Frame as _, FrameDecoder, InputFrame, WindowSize};
use berth_model::node_link::{
    node_paths, NodeExecRequest, NodeExecSessionRequest, EXEC_CONTAINER_HEADER,
};
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control_side::{accept_loop, Peer};
use crate::tls::{node_server_config, ReloadableKey, TlsError};

/// The instance attribute holding where the node's API is reached (`ip:port`).
pub const NODE_API_ATTRIBUTE: &str = "berth.node-api";

/// The longest command the control plane may ask for.
const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(3600);

/// Serves the node's API on `listener` until `stop` turns true.
pub fn serve_node_api(
    queries: TaskQueries,
    key: Arc<ReloadableKey>,
    authority_pem: &str,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<(), TlsError> {
    let tls = node_server_config(key, authority_pem)?;
    let router = Router::new()
        .route(node_paths::USAGE, get(usage))
        .route(node_paths::LOGS, get(logs))
        .route(node_paths::EXEC, post(exec))
        .route(node_paths::EXEC_SESSION, post(exec_session))
        .with_state(queries);
    tokio::spawn(accept_loop(listener, tls, router, stop));
    Ok(())
}

fn refuse(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(serde_json::json!({"__type": kind, "message": message.into()})),
    )
        .into_response()
}

/// Only the control plane may ask; `Some(403)` for anyone else.
fn refuse_unless_control(peer: &Peer) -> Option<Response> {
    (peer.0.as_ref() != Some(&berth_control::node_join::control_identity())).then(|| {
        refuse(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            "only the control plane may call a node's API",
        )
    })
}

fn failed(e: berth_agent::AgentError) -> Response {
    refuse(StatusCode::BAD_REQUEST, "ClientException", e.to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskQuery {
    task_arn: String,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    follow: bool,
}

async fn usage(
    State(q): State<TaskQueries>,
    Extension(peer): Extension<Peer>,
    Query(t): Query<TaskQuery>,
) -> Response {
    if let Some(r) = refuse_unless_control(&peer) {
        return r;
    }
    match q.usage(&t.task_arn).await {
        Ok(u) => Json(u).into_response(),
        Err(e) => failed(e),
    }
}

async fn logs(
    State(q): State<TaskQueries>,
    Extension(peer): Extension<Peer>,
    Query(t): Query<TaskQuery>,
) -> Response {
    if let Some(r) = refuse_unless_control(&peer) {
        return r;
    }
    match q.logs(&t.task_arn, t.container.as_deref(), t.follow).await {
        Ok(stream) => {
            let body = stream.map(|chunk| match chunk {
                Ok(b) => Ok::<_, Infallible>(b),
                // The stream ends where the runtime failed; the caller sees it end.
                Err(e) => Ok(bytes::Bytes::from(format!(
                    "\n[berth: output ended: {e}]\n"
                ))),
            });
            Response::builder()
                .header(http::header::CONTENT_TYPE, "application/octet-stream")
                .body(Body::from_stream(body))
                .expect("a valid response")
        }
        Err(e) => failed(e),
    }
}

async fn exec(
    State(q): State<TaskQueries>,
    Extension(peer): Extension<Peer>,
    Json(req): Json<NodeExecRequest>,
) -> Response {
    if let Some(r) = refuse_unless_control(&peer) {
        return r;
    }
    let timeout = Duration::from_secs(req.timeout_seconds).min(MAX_EXEC_TIMEOUT);
    let request = berth_runtime::ExecRequest {
        container: req.container.clone(),
        command: req.command.clone(),
        timeout,
    };
    match q.exec(&req.task_arn, &request).await {
        Ok(out) => Json(ExecResult {
            container: out.container,
            exit_code: out.exit_code,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            truncated: out.truncated,
        })
        .into_response(),
        Err(e) => failed(e),
    }
}

/// The longest request line of an exec session.
const MAX_SESSION_REQUEST: usize = 64 * 1024;

async fn exec_session(
    State(q): State<TaskQueries>,
    Extension(peer): Extension<Peer>,
    body: Body,
) -> Response {
    if let Some(r) = refuse_unless_control(&peer) {
        return r;
    }
    let mut body = body.into_data_stream();
    let mut pending = Vec::new();
    let line_end = loop {
        if let Some(nl) = pending.iter().position(|b| *b == b'\n') {
            break nl;
        }
        if pending.len() > MAX_SESSION_REQUEST {
            return refuse(
                StatusCode::BAD_REQUEST,
                "ClientException",
                "the exec session's request line is too long",
            );
        }
        match body.next().await {
            Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
            _ => {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "ClientException",
                    "the exec session ended before its request line",
                )
            }
        }
    };
    let req: NodeExecSessionRequest = match serde_json::from_slice(&pending[..line_end]) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "ClientException",
                format!("the exec session's request: {e}"),
            )
        }
    };
    let request = berth_runtime::InteractiveExecRequest {
        container: req.container.clone(),
        command: req.command.clone(),
        tty: req.tty,
        stdin: req.stdin,
        window: req.window.map(|(rows, cols)| WindowSize { rows, cols }),
    };
    let session = match q.exec_interactive(&req.task_arn, &request).await {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    // Input: the rest of the request body, decoded into frames for the command.
    let mut decoder = FrameDecoder::<InputFrame>::new();
    decoder.push(&pending[line_end + 1..]);
    let input = session.input;
    tokio::spawn(async move {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if input.send(frame).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "an exec session's input does not decode");
                    return;
                }
            }
            match body.next().await {
                Some(Ok(chunk)) => decoder.push(&chunk),
                // The caller went away: dropping `input` closes the command's stdin.
                _ => return,
            }
        }
    });
    let output = futures::stream::unfold(session.output, |mut rx| async move {
        let frame = rx.recv().await?;
        Some((Ok::<_, Infallible>(bytes::Bytes::from(frame.encode())), rx))
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "application/octet-stream")
        .header(EXEC_CONTAINER_HEADER, session.container)
        .body(Body::from_stream(output))
        .expect("a valid response")
}
