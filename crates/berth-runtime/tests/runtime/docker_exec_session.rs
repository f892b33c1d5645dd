//! Interactive exec on the Docker runtime against the real engine: a shell inside the
//! container (a `FROM scratch` image holding Debian's static busybox, built here) reads
//! what the session sends while its output streams back, on pipes (stderr apart) or on
//! a terminal the session sizes and resizes, and the session ends with the shell's exit
//! code. Fails, does not skip, when the engine is unreachable or busybox-static is not
//! installed.

use std::path::Path;

use crate::support::docker_engine::*;
use crate::support::exec_session::*;
use crate::support::*;
use berth_model::exec_stream::{InputFrame, OutputFrame, WindowSize};
use berth_runtime::docker;
use berth_runtime::{InteractiveExecRequest, Runtime};
use serde_json::json;

/// The image: `FROM scratch` plus `/usr/local/bin/busybox` (its shell runs busybox's
/// applets without a PATH lookup).
const BUSYBOX_IMAGE: &str = "berth-busybox:test";
const BUSYBOX: &str = "/usr/local/bin/busybox";

async fn busybox_image(rt: &docker::DockerRuntime) {
    let binary = Path::new("/bin/busybox");
    assert!(
        binary.is_file(),
        "/bin/busybox is missing: install Debian's busybox-static (scripts/test does)"
    );
    docker::build_image_from_binary(rt.docker(), BUSYBOX_IMAGE, binary)
        .await
        .expect("build the busybox image");
}

fn request(tty: bool, window: Option<WindowSize>) -> InteractiveExecRequest {
    InteractiveExecRequest {
        container: None,
        command: vec![BUSYBOX.into(), "sh".into()],
        tty,
        stdin: true,
        window,
    }
}

#[tokio::test]
async fn docker_sessions_stream_a_shell_inside_the_container_on_pipes_and_on_a_terminal() {
    let cluster = task_id("exec_session_");
    let rt = runtime(&cluster).await;
    busybox_image(&rt).await;
    let mut spec = spec(
        &task_id("dksess"),
        json!([{"name": "shell", "image": BUSYBOX_IMAGE, "command": ["sleep", "600"],
                "stopTimeout": 1}]),
    );
    spec.cluster = cluster.clone();
    let _c = Cleanup(spec.task_arn.clone());
    rt.start(&spec).await.unwrap();

    // Pipes: output streams while the shell waits; stderr stays apart.
    let mut session = rt
        .exec_interactive(&spec.task_arn, &request(false, None))
        .await
        .unwrap();
    assert_eq!(session.container, "shell");
    let mut t = Transcript::default();
    type_in(&session, "echo first\n").await;
    read_until(&mut session, &mut t, "the first answer", |t| {
        t.stdout == b"first\n"
    })
    .await;
    type_in(&session, "echo hi; echo oops >&2; exit 3\n").await;
    read_to_end(&mut session, &mut t).await;
    assert_eq!(t.stdout, b"first\nhi\n");
    assert_eq!(t.stderr, b"oops\n");
    assert_eq!(t.last, Some(OutputFrame::Exit(3)));

    // Stdin closed is end of file for the shell, which then exits 0.
    let mut session = rt
        .exec_interactive(&spec.task_arn, &request(false, None))
        .await
        .unwrap();
    type_in(&session, "echo before-eof\n").await;
    session.input.send(InputFrame::StdinClosed).await.unwrap();
    let mut t = Transcript::default();
    read_to_end(&mut session, &mut t).await;
    assert_eq!(t.stdout, b"before-eof\n");
    assert_eq!(t.last, Some(OutputFrame::Exit(0)));

    // A terminal, sized at the start and resized.
    let size = WindowSize {
        rows: 30,
        cols: 100,
    };
    let mut session = rt
        .exec_interactive(&spec.task_arn, &request(true, Some(size)))
        .await
        .unwrap();
    let mut t = Transcript::default();
    // The terminal echoes what is typed: the marker is computed so that only the
    // shell's own output holds it.
    type_in(&session, "tty; stty size; echo done-$((1 + 1))\n").await;
    read_until(&mut session, &mut t, "tty's answer and the size", |t| {
        t.stdout_text().contains("done-2")
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
    type_in(&session, "stty size; exit 5\n").await;
    read_to_end(&mut session, &mut t).await;
    assert!(t.stdout_text().contains("40 120"), "{t:?}");
    assert!(t.stderr.is_empty(), "a terminal has one output: {t:?}");
    assert_eq!(t.last, Some(OutputFrame::Exit(5)));

    rt.stop(&spec.task_arn).await.unwrap();
    rt.remove(&spec.task_arn).await.unwrap();
}
