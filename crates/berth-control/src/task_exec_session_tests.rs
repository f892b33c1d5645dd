//! The interactive exec endpoint's checks, its service event, and the frames it carries
//! between a caller's connection and a fake node's session.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::HeaderValue;
use berth_model::agent::TaskUsage;
use berth_model::arn;
use berth_model::ecs::{Service, TaskStatus};
use berth_model::exec_stream::WindowSize;
use tokio::sync::mpsc;

use super::*;
use crate::db;
use crate::task_exec::{exec, ExecBody, WindowSizeBody};
use crate::task_nodes::LogStream;

/// Starts sessions that echo stdin back as stdout and end with exit code 3 when stdin
/// closes; records the commands and whether each session's output was abandoned.
#[derive(Default)]
struct EchoNodes {
    calls: Mutex<Vec<ExecSessionCommand>>,
    abandoned: Arc<Mutex<Vec<bool>>>,
}

#[async_trait]
impl TaskNodes for EchoNodes {
    async fn logs(&self, t: &Task, _: Option<&str>, _: bool) -> Result<LogStream, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
    async fn usage(&self, t: &Task) -> Result<TaskUsage, NodeError> {
        Err(NodeError::Unreachable {
            task_arn: t.task_arn.clone(),
        })
    }
    async fn exec_interactive(
        &self,
        _: &Task,
        command: &ExecSessionCommand,
    ) -> Result<ExecSession, NodeError> {
        self.calls.lock().unwrap().push(command.clone());
        let (input_tx, mut input) = mpsc::channel(8);
        let (output, output_rx) = mpsc::channel(8);
        let abandoned = self.abandoned.clone();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    biased;
                    _ = output.closed() => {
                        abandoned.lock().unwrap().push(true);
                        return;
                    }
                    f = input.recv() => f,
                };
                let answer = match frame {
                    Some(InputFrame::Stdin(b)) => OutputFrame::Stdout(b),
                    Some(InputFrame::Resize(s)) => {
                        OutputFrame::Stderr(format!("{}x{}", s.rows, s.cols).into_bytes())
                    }
                    Some(InputFrame::StdinClosed) | None => OutputFrame::Exit(3),
                };
                let last = answer.is_last();
                let _ = output.send(answer).await;
                if last {
                    abandoned.lock().unwrap().push(false);
                    return;
                }
            }
        });
        Ok(ExecSession {
            container: "web".into(),
            input: input_tx,
            output: output_rx,
        })
    }
}

fn task(enabled: bool) -> Task {
    Task {
        task_arn: arn::task("default", "abc123"),
        cluster_arn: arn::cluster("default"),
        group: "service:web".into(),
        last_status: TaskStatus::Running,
        desired_status: TaskStatus::Running,
        enable_execute_command: enabled,
        ..Default::default()
    }
}

fn body(command: &[&str]) -> ExecBody {
    ExecBody {
        command: command.iter().map(|s| s.to_string()).collect(),
        caller: Some("alice".into()),
        stdin: true,
        tty: true,
        window_size: Some(WindowSizeBody { rows: 24, cols: 80 }),
        ..Default::default()
    }
}

async fn db_with_service() -> Db {
    let db = crate::test_fixtures::db_with_default_cluster().await;
    let svc: Service = serde_json::from_value(serde_json::json!({
        "serviceName": "web", "cluster": "default", "taskDefinition": "web"
    }))
    .unwrap();
    db.put(&db::service_key("default", "web"), &svc)
        .await
        .unwrap();
    db
}

async fn events(db: &Db) -> Vec<String> {
    let svc: Service = db
        .get(&db::service_key("default", "web"))
        .await
        .unwrap()
        .unwrap()
        .value;
    svc.events.into_iter().map(|e| e.message).collect()
}

/// Reads output frames from the caller's end of the connection up to its end.
async fn read_frames(mut from: impl AsyncRead + Unpin) -> Vec<OutputFrame> {
    let mut bytes = Vec::new();
    from.read_to_end(&mut bytes).await.unwrap();
    let mut frames = FrameDecoder::<OutputFrame>::new();
    frames.push(&bytes);
    let mut out = Vec::new();
    while let Some(f) = frames.next_frame().unwrap() {
        out.push(f);
    }
    assert_eq!(frames.pending(), 0, "a frame cut short");
    out
}

#[tokio::test]
async fn a_session_is_refused_as_a_captured_exec_is() {
    let db = db_with_service().await;
    let nodes = EchoNodes::default();
    let counter = ExecCounter::default();
    let e = open(&db, &nodes, &counter, &task(false), body(&["sh"]))
        .await
        .unwrap_err();
    assert_eq!((e.code, e.status), ("InvalidParameterException", 400));
    assert!(
        e.message.starts_with(
            "The execute command failed because execute command was not enabled when the task was run"
        ),
        "{e}"
    );
    let mut timed = body(&["sh"]);
    timed.timeout_seconds = Some(5);
    let e = open(&db, &nodes, &counter, &task(true), timed)
        .await
        .unwrap_err();
    assert!(
        e.message
            .starts_with("timeoutSeconds: 5; an interactive session has no timeout"),
        "{e}"
    );
    let mut sized = body(&["sh"]);
    sized.tty = false;
    let e = open(&db, &nodes, &counter, &task(true), sized)
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "windowSize: only with tty (the size of the command's terminal)"
    );
    assert!(nodes.calls.lock().unwrap().is_empty());
    assert_eq!(counter.get(&task(true), "refused"), 3);
    assert!(events(&db).await.is_empty());

    // The captured endpoint refuses what only a session takes.
    let e = exec(&db, &nodes, &counter, &task(true), body(&["sh"]))
        .await
        .unwrap_err();
    assert!(
        e.message.starts_with("stdin: only for an interactive session, which needs the request to upgrade its connection (Connection: Upgrade, Upgrade: berth-exec)"),
        "{e}"
    );
}

#[tokio::test]
async fn a_session_streams_frames_both_ways_and_ends_with_the_exit_code() {
    let db = db_with_service().await;
    let nodes = EchoNodes::default();
    let counter = ExecCounter::default();
    let t = task(true);
    let session = open(&db, &nodes, &counter, &t, body(&["/bin/sh"]))
        .await
        .unwrap();
    assert_eq!(
        *nodes.calls.lock().unwrap(),
        [ExecSessionCommand {
            container: None,
            command: vec!["/bin/sh".into()],
            tty: true,
            stdin: true,
            window: Some(WindowSize { rows: 24, cols: 80 }),
        }]
    );
    assert_eq!(
        events(&db).await,
        [
            r#"(service web) alice started an interactive session of ["/bin/sh"] in container web of (task abc123) with stdin and a terminal."#
        ]
    );

    let (caller, server) = tokio::io::duplex(1024);
    let served = tokio::spawn(serve(server, session));
    let (from_server, mut to_server) = tokio::io::split(caller);
    let mut sent = Vec::new();
    for f in [
        InputFrame::Stdin(b"echo hi\n".to_vec()),
        InputFrame::Resize(WindowSize {
            rows: 40,
            cols: 120,
        }),
        InputFrame::StdinClosed,
    ] {
        f.encode_into(&mut sent);
    }
    // One byte at a time: frames cut anywhere still arrive whole.
    for b in &sent {
        to_server.write_all(std::slice::from_ref(b)).await.unwrap();
    }
    assert_eq!(
        read_frames(from_server).await,
        [
            OutputFrame::Stdout(b"echo hi\n".to_vec()),
            OutputFrame::Stderr(b"40x120".to_vec()),
            OutputFrame::Exit(3),
        ]
    );
    assert_eq!(served.await.unwrap(), "exited_nonzero");
    assert_eq!(*nodes.abandoned.lock().unwrap(), [false]);
}

#[tokio::test]
async fn a_caller_that_leaves_ends_the_session_and_a_bad_frame_fails_it() {
    let db = db_with_service().await;
    let nodes = EchoNodes::default();
    let counter = ExecCounter::default();
    let t = task(true);

    let session = open(&db, &nodes, &counter, &t, body(&["sh"]))
        .await
        .unwrap();
    let (caller, server) = tokio::io::duplex(1024);
    let served = tokio::spawn(serve(server, session));
    drop(caller);
    assert_eq!(served.await.unwrap(), "disconnected");

    let session = open(&db, &nodes, &counter, &t, body(&["sh"]))
        .await
        .unwrap();
    let (mut caller, server) = tokio::io::duplex(1024);
    let served = tokio::spawn(serve(server, session));
    caller.write_all(&[0x81, 0, 0, 0, 0]).await.unwrap();
    assert_eq!(served.await.unwrap(), "failed");

    // Both sessions' output was dropped: the node was told to end the command.
    wait_for(|| nodes.abandoned.lock().unwrap().len() == 2).await;
    assert_eq!(*nodes.abandoned.lock().unwrap(), [true, true]);
}

/// Waits (bounded) until `done` holds: the fake node notices a dropped channel in a
/// task of its own.
async fn wait_for(done: impl Fn() -> bool) {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the fake node never saw the session end");
}

#[test]
fn only_an_upgrade_to_berth_exec_with_connection_upgrade_asks_for_a_session() {
    let headers = |pairs: &[(header::HeaderName, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_static(v));
        }
        h
    };
    assert!(!wants_session(&headers(&[])).unwrap());
    assert!(wants_session(&headers(&[
        (header::CONNECTION, "keep-alive, Upgrade"),
        (header::UPGRADE, "Berth-Exec"),
    ]))
    .unwrap());
    let e = wants_session(&headers(&[
        (header::CONNECTION, "upgrade"),
        (header::UPGRADE, "websocket"),
    ]))
    .unwrap_err();
    assert_eq!(
        e.message,
        "Upgrade: \"websocket\"; the exec endpoint offers only berth-exec"
    );
    let e = wants_session(&headers(&[(header::UPGRADE, "berth-exec")])).unwrap_err();
    assert_eq!(
        e.message,
        "Connection: must name Upgrade to switch to berth-exec"
    );
}
