//! Interactive exec (`berth exec -i/-t`, ECS's `execute-command --interactive`): a
//! command in a running task's container whose stdin, stdout and stderr stream while it
//! runs, optionally on a terminal ([`Runtime::exec_interactive`](crate::Runtime::exec_interactive)).
//!
//! A session is two channels of [`berth_model::exec_stream`] frames: the caller sends
//! [`InputFrame`]s (stdin bytes, stdin closed, a new terminal size) and receives
//! [`OutputFrame`]s (stdout, stderr without a terminal, then exactly one exit code or
//! error, after which the channel closes). Dropping the input sender closes the
//! command's stdin; dropping the output receiver ends the session: the command is killed.
//!
//! What it does not do: time a session out (it lasts as long as its command or its
//! caller), decide whether a task allows exec (the control plane checks
//! `enableExecuteCommand`), or run the command (each backend does).

use std::future::Future;
use std::time::Duration;

use berth_model::exec_stream::{InputFrame, OutputFrame, WindowSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The most bytes one output frame carries (a read of the command's output).
pub(crate) const READ_CHUNK: usize = 32 * 1024;

/// How long output is still read after the command exited, for what a process it left
/// behind keeps writing to the same stdout (its end of file never comes then).
pub(crate) const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// Frames buffered in each direction before the sender waits.
const CHANNEL_FRAMES: usize = 64;

/// A command to run in one of a task's containers, interactively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractiveExecRequest {
    /// The container's name; `None` is the task's first essential container.
    pub container: Option<String>,
    /// The program and its arguments (no shell is involved).
    pub command: Vec<String>,
    /// Run it on a terminal (stdout and stderr then arrive merged, as stdout).
    pub tty: bool,
    /// Pass the session's stdin frames on; otherwise its stdin is empty.
    pub stdin: bool,
    /// The terminal's size at the start (with `tty`).
    pub window: Option<WindowSize>,
}

/// A running interactive command: see the module documentation.
#[derive(Debug)]
pub struct ExecSession {
    /// The container it runs in.
    pub container: String,
    pub input: mpsc::Sender<InputFrame>,
    pub output: mpsc::Receiver<OutputFrame>,
}

/// The backend's ends of a new session's channels.
pub(crate) struct SessionEnds {
    pub input: mpsc::Receiver<InputFrame>,
    pub output: mpsc::Sender<OutputFrame>,
}

/// A new session in `container` and the backend's ends of its channels.
pub(crate) fn session(container: String) -> (ExecSession, SessionEnds) {
    let (input_tx, input_rx) = mpsc::channel(CHANNEL_FRAMES);
    let (output_tx, output_rx) = mpsc::channel(CHANNEL_FRAMES);
    (
        ExecSession {
            container,
            input: input_tx,
            output: output_rx,
        },
        SessionEnds {
            input: input_rx,
            output: output_tx,
        },
    )
}

/// Passes the caller's frames on until its input sender is dropped: stdin bytes to
/// `stdin` (dropped when `None`: the command was started without stdin), resizes to
/// `resize`. Stdin closed, or the caller gone, shuts `stdin` down.
pub(crate) async fn pump_input<W, R, Fut>(
    mut input: mpsc::Receiver<InputFrame>,
    mut stdin: Option<W>,
    mut resize: R,
) where
    W: AsyncWrite + Unpin,
    R: FnMut(WindowSize) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(frame) = input.recv().await {
        match frame {
            InputFrame::Stdin(bytes) => {
                if let Some(w) = stdin.as_mut() {
                    let written = async {
                        w.write_all(&bytes).await?;
                        w.flush().await
                    };
                    if written.await.is_err() {
                        // The command closed its stdin; what it is sent now is lost, as
                        // in a pipe to a reader that went away.
                        stdin = None;
                    }
                }
            }
            InputFrame::StdinClosed => close(&mut stdin).await,
            InputFrame::Resize(size) => resize(size).await,
        }
    }
    close(&mut stdin).await;
}

async fn close<W: AsyncWrite + Unpin>(stdin: &mut Option<W>) {
    if let Some(mut w) = stdin.take() {
        let _ = w.shutdown().await;
    }
}

/// Sends what `from` gives as frames made by `frame` until its end (or a read error);
/// returns false when the caller is gone.
pub(crate) async fn pump_output(
    mut from: impl AsyncRead + Unpin,
    output: &mpsc::Sender<OutputFrame>,
    frame: fn(Vec<u8>) -> OutputFrame,
) -> bool {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(n) => {
                if output.send(frame(buf[..n].to_vec())).await.is_err() {
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn input_goes_to_stdin_and_resizes_to_the_terminal_until_stdin_closes() {
        let (mut session, ends) = session("web".into());
        let (stdin, mut read_back) = tokio::io::duplex(1024);
        let sizes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let pump = tokio::spawn(pump_input(ends.input, Some(stdin), move |s| {
            seen.lock().unwrap().push(s);
            async {}
        }));
        let size = WindowSize {
            rows: 30,
            cols: 100,
        };
        for f in [
            InputFrame::Stdin(b"echo ".to_vec()),
            InputFrame::Resize(size),
            InputFrame::Stdin(b"hi\n".to_vec()),
            InputFrame::StdinClosed,
            InputFrame::Stdin(b"after close".to_vec()),
        ] {
            session.input.send(f).await.unwrap();
        }
        let mut got = Vec::new();
        read_back.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"echo hi\n");
        drop(session.input);
        pump.await.unwrap();
        assert_eq!(*sizes.lock().unwrap(), [size]);
        drop(ends.output);
        assert_eq!(session.output.recv().await, None);
    }

    #[tokio::test]
    async fn output_becomes_frames_and_stops_when_the_caller_is_gone() {
        let (mut session, ends) = session("web".into());
        assert!(pump_output(&b"hello"[..], &ends.output, OutputFrame::Stderr).await);
        assert_eq!(
            session.output.recv().await,
            Some(OutputFrame::Stderr(b"hello".to_vec()))
        );
        drop(session.output);
        assert!(!pump_output(&b"more"[..], &ends.output, OutputFrame::Stdout).await);
    }
}
