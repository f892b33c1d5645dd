//! Reading an interactive exec session in tests: its stdout, its stderr and its last
//! frame, up to a condition or to its end, within a bound.

use std::time::Duration;

use berth_model::exec_stream::{InputFrame, OutputFrame};
use berth_runtime::ExecSession;

/// How long a test waits for what a session should give.
pub const SESSION_BOUND: Duration = Duration::from_secs(30);

/// What a session gave so far.
#[derive(Default)]
pub struct Transcript {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The exit code or error that ended the session.
    pub last: Option<OutputFrame>,
}

impl std::fmt::Debug for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcript")
            .field("stdout", &String::from_utf8_lossy(&self.stdout))
            .field("stderr", &String::from_utf8_lossy(&self.stderr))
            .field("last", &self.last)
            .finish()
    }
}

impl Transcript {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Reads frames into `t` until `done(t)` holds; panics when the session ends first or
/// [`SESSION_BOUND`] passes.
pub async fn read_until(
    session: &mut ExecSession,
    t: &mut Transcript,
    what: &str,
    done: impl Fn(&Transcript) -> bool,
) {
    let read = async {
        while !done(t) {
            match session.output.recv().await {
                Some(OutputFrame::Stdout(b)) => t.stdout.extend(b),
                Some(OutputFrame::Stderr(b)) => t.stderr.extend(b),
                Some(last) => {
                    assert!(t.last.is_none(), "a frame after the last one: {last:?}");
                    t.last = Some(last);
                }
                None => panic!("the session ended before {what}: {t:?}"),
            }
        }
    };
    if tokio::time::timeout(SESSION_BOUND, read).await.is_err() {
        panic!("no {what} within {SESSION_BOUND:?}: {t:?}");
    }
}

/// Reads frames into `t` until `done(t)` holds or `bound` passes; whether it held.
/// Panics when the session ends first.
pub async fn read_until_within(
    session: &mut ExecSession,
    t: &mut Transcript,
    bound: Duration,
    done: impl Fn(&Transcript) -> bool,
) -> bool {
    let read = async {
        while !done(t) {
            match session.output.recv().await {
                Some(OutputFrame::Stdout(b)) => t.stdout.extend(b),
                Some(OutputFrame::Stderr(b)) => t.stderr.extend(b),
                Some(last) => t.last = Some(last),
                None => panic!("the session ended early: {t:?}"),
            }
        }
    };
    tokio::time::timeout(bound, read).await.is_ok()
}

/// Reads the rest of the session: up to its last frame, then checks the channel closes.
pub async fn read_to_end(session: &mut ExecSession, t: &mut Transcript) {
    read_until(session, t, "the session's last frame", |t| t.last.is_some()).await;
    let closed = tokio::time::timeout(SESSION_BOUND, session.output.recv()).await;
    assert!(
        matches!(closed, Ok(None)),
        "the channel stays open after the last frame: {closed:?}"
    );
}

/// Sends `text` to the session's stdin.
pub async fn type_in(session: &ExecSession, text: &str) {
    session
        .input
        .send(InputFrame::Stdin(text.as_bytes().to_vec()))
        .await
        .expect("the session takes input");
}
