//! The exec endpoint upgraded to an interactive session (`berth exec -i/-t`, ECS's
//! `execute-command --interactive`): `POST /v1/clusters/{c}/tasks/{id}/exec` with
//! `Connection: Upgrade` and `Upgrade: berth-exec` and the usual JSON body (plus `stdin`,
//! `tty` and `windowSize {rows, cols}`; no `timeoutSeconds`). After the same checks as a
//! captured exec (`enableExecuteCommand`, a RUNNING task, ECS's wording on refusal: an
//! ordinary JSON error), the node starts the command, the service event is recorded, and
//! the answer is `101 Switching Protocols`; from then on the connection carries
//! [`berth_model::exec_stream`] frames both ways (input frames from the caller, output
//! frames to it) until the command's exit code or an error, after which the server
//! closes it. The outcome is counted in `berth_exec_commands_total` when the session
//! ends; a caller that closes the connection first ends the session (`disconnected`)
//! and the node kills the command.
//!
//! What it does not do: time sessions out, or run anything itself (the node does,
//! through [`TaskNodes::exec_interactive`]).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use berth_model::ecs::Task;
use berth_model::exec_stream::{Frame, FrameDecoder, InputFrame, OutputFrame, UPGRADE_PROTOCOL};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::db::Db;
use crate::error::ApiError;
use crate::task_exec::{
    caller_of, check_exec_allowed, exec_session_command, record_event, ExecBody, ExecCounter,
};
use crate::task_nodes::{ExecSession, ExecSessionCommand, NodeError, TaskNodes};

/// The largest exec request body read.
const BODY_LIMIT: usize = 1 << 20;

/// Bytes read from the connection at a time.
const READ_CHUNK: usize = 32 * 1024;

/// The request's body, and its pending upgrade when it asks for a session. Refuses an
/// `Upgrade` to another protocol, or one this connection cannot make (not HTTP/1.1).
pub async fn split_request(mut request: Request) -> Result<(Option<OnUpgrade>, Bytes), ApiError> {
    let upgrade = if wants_session(request.headers())? {
        let pending = request
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Upgrade: {UPGRADE_PROTOCOL} needs an HTTP/1.1 connection that can be upgraded"
                ))
            })?;
        Some(pending)
    } else {
        None
    };
    let body = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
        .await
        .map_err(|e| ApiError::invalid(format!("body: cannot be read: {e}")))?;
    Ok((upgrade, body))
}

/// Whether the headers ask for a session: `Upgrade: berth-exec` with `Connection:
/// Upgrade`. An `Upgrade` to anything else is refused.
fn wants_session(headers: &HeaderMap) -> Result<bool, ApiError> {
    let Some(upgrade) = headers.get(header::UPGRADE) else {
        return Ok(false);
    };
    if !upgrade
        .to_str()
        .is_ok_and(|u| u.trim().eq_ignore_ascii_case(UPGRADE_PROTOCOL))
    {
        return Err(ApiError::invalid(format!(
            "Upgrade: {upgrade:?}; the exec endpoint offers only {UPGRADE_PROTOCOL}"
        )));
    }
    let connection_upgrades = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrades {
        return Err(ApiError::invalid(format!(
            "Connection: must name Upgrade to switch to {UPGRADE_PROTOCOL}"
        )));
    }
    Ok(true)
}

/// Opens the session `body` asks for in `task` and answers `101`; the upgraded
/// connection is served in a task of its own.
pub async fn start(
    db: &Db,
    nodes: &dyn TaskNodes,
    counter: &ExecCounter,
    task: &Task,
    body: ExecBody,
    on_upgrade: OnUpgrade,
) -> Result<Response, ApiError> {
    let session = open(db, nodes, counter, task, body).await?;
    let (counter, task) = (counter.clone(), task.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let outcome = serve(TokioIo::new(upgraded), session).await;
                counter.count(&task, outcome);
            }
            Err(e) => {
                tracing::warn!(task = %task.task_arn, "an exec session's connection did not upgrade: {e}");
                counter.count(&task, "disconnected");
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE_PROTOCOL)
        .body(Body::empty())
        .map_err(|e| ApiError::server(format!("cannot answer the upgrade: {e}")))
}

/// The checks, the node's start of the command and the service event.
pub async fn open(
    db: &Db,
    nodes: &dyn TaskNodes,
    counter: &ExecCounter,
    task: &Task,
    body: ExecBody,
) -> Result<ExecSession, ApiError> {
    let caller = caller_of(&body);
    let command =
        match exec_session_command(body).and_then(|c| check_exec_allowed(task).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                counter.count(task, "refused");
                return Err(e);
            }
        };
    let session = match nodes.exec_interactive(task, &command).await {
        Ok(s) => s,
        Err(e) => {
            counter.count(task, "failed");
            return Err(match e {
                NodeError::Unreachable { .. } => ApiError::server(e.to_string()),
                NodeError::Failed { .. } => ApiError::invalid(format!("exec: {e}")),
            });
        }
    };
    if let Some(service) = task.service_name() {
        let message = event_message(service, task, &caller, &command, &session.container);
        record_event(db, task.cluster_name(), service, message).await;
    }
    Ok(session)
}

/// The service event of a session that started.
pub fn event_message(
    service: &str,
    task: &Task,
    caller: &str,
    command: &ExecSessionCommand,
    container: &str,
) -> String {
    let how = match (command.stdin, command.tty) {
        (true, true) => "stdin and a terminal",
        (true, false) => "stdin",
        (false, true) => "a terminal",
        (false, false) => "no stdin",
    };
    format!(
        "(service {service}) {caller} started an interactive session of {:?} in container {container} of (task {}) with {how}.",
        command.command,
        task.id(),
    )
}

/// Carries frames between the caller's connection `io` and the node's `session` until
/// the session's last frame is sent or the caller leaves; returns the outcome to count.
pub async fn serve<IO>(io: IO, session: ExecSession) -> &'static str
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut from_caller, mut to_caller) = tokio::io::split(io);
    let ExecSession {
        input, mut output, ..
    } = session;
    // The caller's frames, until it closes the connection (or sends one that cannot be
    // read): that ends the session.
    let reading = async move {
        let mut frames = FrameDecoder::<InputFrame>::new();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = match from_caller.read(&mut buf).await {
                Ok(0) | Err(_) => return "disconnected",
                Ok(n) => n,
            };
            frames.push(&buf[..n]);
            loop {
                match frames.next_frame() {
                    Ok(Some(frame)) => {
                        if input.send(frame).await.is_err() {
                            // The command's input is gone; its output may not be.
                            std::future::pending::<()>().await;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("an exec session's caller sent a bad frame: {e}");
                        return "failed";
                    }
                }
            }
        }
    };
    let writing = async move {
        let mut bytes = Vec::new();
        while let Some(frame) = output.recv().await {
            bytes.clear();
            frame.encode_into(&mut bytes);
            if to_caller.write_all(&bytes).await.is_err() {
                return "disconnected";
            }
            if let Some(outcome) = outcome_of(&frame) {
                let _ = to_caller.flush().await;
                let _ = to_caller.shutdown().await;
                return outcome;
            }
        }
        let last = OutputFrame::Error("the node ended the session without an exit code".into());
        let _ = to_caller.write_all(&last.encode()).await;
        let _ = to_caller.shutdown().await;
        "failed"
    };
    tokio::select! {
        outcome = writing => outcome,
        outcome = reading => outcome,
    }
}

/// The outcome a last frame stands for; `None` for output.
fn outcome_of(frame: &OutputFrame) -> Option<&'static str> {
    match frame {
        OutputFrame::Exit(0) => Some("exited_zero"),
        OutputFrame::Exit(_) => Some("exited_nonzero"),
        OutputFrame::Error(_) => Some("failed"),
        OutputFrame::Stdout(_) | OutputFrame::Stderr(_) => None,
    }
}

#[cfg(test)]
#[path = "task_exec_session_tests.rs"]
mod tests;
