//! `berth exec <task> [--container NAME] [-i] [-t] -- CMD ARGS...`: runs a command in
//! a running task's container through the API's exec endpoint and exits with the
//! command's exit code.
//!
//! Without `-i`/`-t` the output is captured: the command runs to its end (or its
//! timeout) and then its stdout and stderr are printed. With `-i` (stdin passed on) or
//! `-t` (a terminal) the request upgrades to a session whose frames
//! ([`berth_model::exec_stream`]) stream both ways while the command runs: stdin read
//! here goes to the command (its end closes the command's stdin, except on a terminal,
//! whose end of file is a typed Ctrl-D), its output is written here as it comes. With
//! `-t` and `-i` on a local terminal, that terminal is in raw mode for the session (see
//! `local_terminal`) and its size is sent at the start and on every resize.
//!
//! What it does not do: reconnect a session whose connection broke.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_model::exec_stream::{Frame, FrameDecoder, InputFrame, OutputFrame, UPGRADE_PROTOCOL};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::client::{BadConfig, Client};
use crate::local_terminal::{self, RawMode};

/// What `berth exec` was asked.
#[derive(clap::Args)]
pub struct ExecArgs {
    /// The task's id (a unique prefix is enough) or ARN.
    pub task: String,
    #[arg(short = 'c', long, default_value = "default")]
    pub cluster: String,
    /// The container; default the task's first essential container.
    #[arg(long)]
    pub container: Option<String>,
    /// Seconds the command may run before it is killed (1 to 3600; default 60). Not
    /// with -i/-t: a session lasts as long as its command.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Pass stdin to the command while it runs (as `docker exec -i`).
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Run the command on a terminal (as `docker exec -t`); stdout and stderr then
    /// arrive merged.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Runs the exec and prints its output (with `json`, the API's answer as is); the exit
/// code is the command's (its low 8 bits, as a shell reports it).
pub async fn run(client: &Client, args: &ExecArgs, json: bool) -> Result<ExitCode> {
    if args.interactive || args.tty {
        if json {
            return Err(
                BadConfig("-o json: not with -i/-t (a session streams its output)".into()).into(),
            );
        }
        if args.timeout.is_some() {
            return Err(BadConfig(
                "--timeout: not with -i/-t (a session lasts as long as its command)".into(),
            )
            .into());
        }
        return run_session(client, args).await;
    }
    let body = json!({
        "container": args.container,
        "command": args.command,
        "timeoutSeconds": args.timeout.unwrap_or(60),
        "caller": std::env::var("USER").ok(),
    });
    let out = client.post(&exec_path(args), &body).await?;
    let code = out["exitCode"]
        .as_i64()
        .context("the API's exec answer has no exitCode")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_output(&out)?;
    }
    Ok(ExitCode::from(exit_status_byte(code)))
}

fn exec_path(args: &ExecArgs) -> String {
    format!("/v1/clusters/{}/tasks/{}/exec", args.cluster, args.task)
}

/// An interactive session: see the module documentation.
async fn run_session(client: &Client, args: &ExecArgs) -> Result<ExitCode> {
    let window = if args.tty {
        local_terminal::window_size()
    } else {
        None
    };
    let mut body = json!({
        "container": args.container,
        "command": args.command,
        "caller": std::env::var("USER").ok(),
        "stdin": args.interactive,
        "tty": args.tty,
    });
    if let Some(w) = window {
        body["windowSize"] = json!({"rows": w.rows, "cols": w.cols});
    }
    let upgraded = client
        .upgrade(&exec_path(args), &body, UPGRADE_PROTOCOL)
        .await?;
    let (mut from_server, mut to_server) = tokio::io::split(upgraded);
    let raw_mode = if args.tty && args.interactive && local_terminal::stdin_is_terminal() {
        Some(RawMode::enter().context("cannot put the terminal in raw mode")?)
    } else {
        None
    };

    let (frames, mut to_send) = mpsc::channel::<InputFrame>(16);
    if args.interactive {
        read_stdin(frames.clone(), !args.tty);
    }
    let resizes =
        (args.tty && window.is_some()).then(|| tokio::spawn(send_resizes(frames.clone())));
    drop(frames);
    let sending = tokio::spawn(async move {
        let mut bytes = Vec::new();
        while let Some(frame) = to_send.recv().await {
            bytes.clear();
            frame.encode_into(&mut bytes);
            if to_server.write_all(&bytes).await.is_err() {
                break;
            }
        }
        // Keep the connection open: closing it would end the session.
        std::future::pending::<()>().await;
    });

    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let ended = tokio::select! {
        ended = receive(&mut from_server) => ended,
        _ = terminate.recv() => Err(anyhow::anyhow!("exec session: ended by SIGTERM")),
        _ = hangup.recv() => Err(anyhow::anyhow!("exec session: ended by SIGHUP")),
    };
    sending.abort();
    if let Some(r) = resizes {
        r.abort();
    }
    drop(raw_mode);
    let code = ended?;
    Ok(ExitCode::from(exit_status_byte(code.into())))
}

/// Reads stdin in a thread of its own (a blocked read must not hold the async runtime
/// up at exit) and sends it as frames; at its end, `StdinClosed` when `close_at_end`.
fn read_stdin(frames: mpsc::Sender<InputFrame>, close_at_end: bool) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => {
                    if close_at_end {
                        let _ = frames.blocking_send(InputFrame::StdinClosed);
                    }
                    return;
                }
                Ok(n) => {
                    if frames
                        .blocking_send(InputFrame::Stdin(buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    });
}

/// Sends the local terminal's size each time it changes (`SIGWINCH`).
async fn send_resizes(frames: mpsc::Sender<InputFrame>) {
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        if let Some(size) = local_terminal::window_size() {
            if frames.send(InputFrame::Resize(size)).await.is_err() {
                return;
            }
        }
    }
}

/// Writes the session's output here as it comes; gives the command's exit code.
async fn receive(from_server: &mut (impl tokio::io::AsyncRead + Unpin)) -> Result<i32> {
    let mut frames = FrameDecoder::<OutputFrame>::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        while let Some(frame) = frames.next_frame()? {
            match frame {
                OutputFrame::Stdout(b) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&b)?;
                    out.flush()?;
                }
                OutputFrame::Stderr(b) => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(&b)?;
                    err.flush()?;
                }
                OutputFrame::Exit(code) => return Ok(code),
                OutputFrame::Error(message) => bail!("exec session: {message}"),
            }
        }
        let n = from_server
            .read(&mut buf)
            .await
            .context("exec session: reading from the server")?;
        if n == 0 {
            bail!("exec session: the server closed the connection without the command's exit code");
        }
        frames.push(&buf[..n]);
    }
}

fn print_output(out: &Value) -> Result<()> {
    let text = |k: &str| out[k].as_str().unwrap_or("").to_string();
    let mut stdout = std::io::stdout();
    stdout.write_all(text("stdout").as_bytes())?;
    stdout.flush()?;
    let mut stderr = std::io::stderr();
    stderr.write_all(text("stderr").as_bytes())?;
    if out["truncated"].as_bool() == Some(true) {
        writeln!(stderr, "berth exec: output cut at the node's limit")?;
    }
    Ok(())
}

/// An exit code as a process exit status: 0..=255 as is, others their low 8 bits.
fn exit_status_byte(code: i64) -> u8 {
    (code & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_their_low_byte() {
        assert_eq!(exit_status_byte(0), 0);
        assert_eq!(exit_status_byte(7), 7);
        assert_eq!(exit_status_byte(255), 255);
        assert_eq!(exit_status_byte(256), 0);
        assert_eq!(exit_status_byte(-1), 255);
    }
}
