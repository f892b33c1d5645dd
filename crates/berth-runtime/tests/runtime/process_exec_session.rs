//! Interactive exec on the process runtime: a shell beside the task's process reads
//! what the session sends while its output streams back (on pipes, stderr apart; on a
//! pseudo-terminal that is its controlling terminal, sized and resized by the session),
//! and the session ends with the command's exit code; a session whose caller leaves
//! kills its command.

use crate::support::exec_session::*;
use crate::support::*;
use berth_model::exec_stream::{InputFrame, OutputFrame, WindowSize};
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::{InteractiveExecRequest, Runtime, RuntimeError, TaskSpec};
use serde_json::json;
use std::time::Duration;

fn runtime(dir: &std::path::Path) -> std::sync::Arc<ProcessRuntime> {
    ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: dir.to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap()
}

/// A task whose one container sleeps, in `workdir`, with `GREETING` set.
fn sleeping_task(tag: &str, workdir: &std::path::Path) -> TaskSpec {
    spec(
        &task_id(tag),
        json!([{"name": "web", "image": "x", "command": ["sleep", "60"], "stopTimeout": 1,
                "workingDirectory": workdir.to_str().unwrap(),
                "environment": [{"name": "GREETING", "value": "hello"}]}]),
    )
}

fn request(command: &[&str], tty: bool, window: Option<WindowSize>) -> InteractiveExecRequest {
    InteractiveExecRequest {
        container: None,
        command: command.iter().map(|s| s.to_string()).collect(),
        tty,
        stdin: true,
        window,
    }
}

#[tokio::test]
async fn a_shell_on_pipes_answers_while_it_runs_and_its_exit_code_ends_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let rt = runtime(dir.path());
    let task = sleeping_task("prsess", workdir.path());
    rt.start(&task).await.unwrap();

    let mut session = rt
        .exec_interactive(&task.task_arn, &request(&["sh"], false, None))
        .await
        .unwrap();
    assert_eq!(session.container, "web");
    let mut t = Transcript::default();
    // Output streams back while the shell still waits for more input.
    type_in(&session, "echo \"$GREETING\"; pwd\n").await;
    read_until(&mut session, &mut t, "the first answer", |t| {
        t.stdout.ends_with(b"\n") && t.stdout_text().lines().count() == 2
    })
    .await;
    let canonical = workdir.path().canonicalize().unwrap();
    assert_eq!(t.stdout_text(), format!("hello\n{}\n", canonical.display()));
    type_in(&session, "echo hi; echo oops >&2; exit 3\n").await;
    read_to_end(&mut session, &mut t).await;
    assert_eq!(
        t.stdout_text(),
        format!("hello\n{}\nhi\n", canonical.display())
    );
    assert_eq!(t.stderr, b"oops\n");
    assert_eq!(t.last, Some(OutputFrame::Exit(3)));

    // Stdin closed is end of file: `cat` ends, and so does the session.
    let mut session = rt
        .exec_interactive(&task.task_arn, &request(&["cat"], false, None))
        .await
        .unwrap();
    type_in(&session, "through cat\n").await;
    session.input.send(InputFrame::StdinClosed).await.unwrap();
    let mut t = Transcript::default();
    read_to_end(&mut session, &mut t).await;
    assert_eq!(t.stdout, b"through cat\n");
    assert_eq!(t.last, Some(OutputFrame::Exit(0)));

    // The container is chosen and checked as for a non-interactive exec.
    let mut unknown = request(&["sh"], false, None);
    unknown.container = Some("nope".into());
    let e = rt
        .exec_interactive(&task.task_arn, &unknown)
        .await
        .unwrap_err();
    assert!(matches!(e, RuntimeError::UnknownContainer { .. }), "{e}");
    let e = rt
        .exec_interactive(
            &task.task_arn,
            &request(&["/nonexistent/program"], false, None),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, RuntimeError::ExecFailed { message, .. } if message.contains("/nonexistent/program")),
        "{e}"
    );
    rt.stop(&task.task_arn).await.unwrap();
    rt.remove(&task.task_arn).await.unwrap();
}

#[tokio::test]
async fn a_shell_on_a_terminal_is_sized_resized_and_interrupted_by_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let rt = runtime(dir.path());
    let task = sleeping_task("prtty", workdir.path());
    rt.start(&task).await.unwrap();

    let size = WindowSize {
        rows: 30,
        cols: 100,
    };
    let mut session = rt
        .exec_interactive(&task.task_arn, &request(&["sh"], true, Some(size)))
        .await
        .unwrap();
    let mut t = Transcript::default();
    // The terminal echoes what is typed: what the test waits for is what only the
    // shell's own output holds.
    type_in(&session, "tty; stty size; echo \"TERM=$TERM\"\n").await;
    read_until(&mut session, &mut t, "tty's answer and the size", |t| {
        t.stdout_text().contains("TERM=xterm")
    })
    .await;
    let text = t.stdout_text();
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("30 100"), "{text}");

    session
        .input
        .send(InputFrame::Resize(WindowSize {
            rows: 40,
            cols: 120,
        }))
        .await
        .unwrap();
    type_in(&session, "stty size\n").await;
    read_until(&mut session, &mut t, "the new size", |t| {
        t.stdout_text().contains("40 120")
    })
    .await;

    // Ctrl-C reaches the foreground job only through a controlling terminal: the sleep
    // ends long before its 60 seconds (the bound is 30).
    type_in(&session, "sleep 60\n").await;
    read_until(&mut session, &mut t, "the echo of sleep", |t| {
        t.stdout_text().contains("sleep 60")
    })
    .await;
    // The echo of `sleep 60` comes from the terminal before the shell has started the
    // sleep and made it the foreground job; an interrupt before that goes to the shell,
    // which ignores it. So interrupt once a second until the shell prompts again (well
    // within the sleep's 60 seconds), then type on.
    let prompted = |t: &Transcript| {
        t.stdout_text()
            .rsplit_once("^C")
            .is_some_and(|(_, after)| after.contains("# ") || after.contains("$ "))
    };
    let mut interrupted = false;
    for _ in 0..30 {
        type_in(&session, "\x03").await;
        if read_until_within(&mut session, &mut t, Duration::from_secs(1), prompted).await {
            interrupted = true;
            break;
        }
    }
    assert!(interrupted, "Ctrl-C never ended the sleep: {t:?}");
    type_in(&session, "echo after-interrupt; exit 4\n").await;
    read_to_end(&mut session, &mut t).await;
    assert!(t.stdout_text().contains("after-interrupt"), "{t:?}");
    assert!(t.stderr.is_empty(), "a terminal has one output: {t:?}");
    assert_eq!(t.last, Some(OutputFrame::Exit(4)));
    rt.stop(&task.task_arn).await.unwrap();
    rt.remove(&task.task_arn).await.unwrap();
}

#[tokio::test]
async fn a_session_whose_caller_leaves_kills_its_command() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let rt = runtime(dir.path());
    let task = sleeping_task("prleave", workdir.path());
    rt.start(&task).await.unwrap();

    for tty in [false, true] {
        let mut session = rt
            .exec_interactive(
                &task.task_arn,
                &request(&["sh", "-c", "echo pid=$$; exec sleep 300"], tty, None),
            )
            .await
            .unwrap();
        let mut t = Transcript::default();
        read_until(&mut session, &mut t, "the shell's pid", |t| {
            t.stdout_text().contains('\n')
        })
        .await;
        let pid: i32 = t
            .stdout_text()
            .trim()
            .trim_start_matches("pid=")
            .parse()
            .unwrap();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        drop(session);
        berth_testkit::wait_until(
            &format!("the end of the abandoned command (tty {tty})"),
            SESSION_BOUND,
            || async move {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
                // Gone, or a zombie waiting for its parent to read its status.
                stat.is_none_or(|s| s.contains(") Z ")).then_some(())
            },
        )
        .await
        .unwrap();
    }
    rt.stop(&task.task_arn).await.unwrap();
    rt.remove(&task.task_arn).await.unwrap();
}
