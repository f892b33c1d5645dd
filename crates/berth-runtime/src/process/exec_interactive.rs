//! Interactive exec on the process runtime: the command runs beside the container's
//! process, with its environment and working directory (as a non-interactive exec, see
//! `exec`), its stdin and output streaming as session frames.
//!
//! Without a terminal it gets pipes (stdin empty unless asked for) in a process group of
//! its own. With a terminal it gets a new pseudo-terminal: stdin, stdout and stderr on
//! its slave side, berth holding the master side. So that the terminal is the command's
//! controlling terminal (Ctrl-C reaching its foreground job, `SIGWINCH` on resize), the
//! command starts through the shim program in its tty-session mode
//! ([`TTY_SESSION_FLAG`], [`tty_session_main`]), which makes a new session, takes the
//! terminal and then becomes the command (exec). `TERM` is `xterm` unless the container's
//! environment names one (as Docker does for `exec -t`). A session whose caller went away
//! is ended by SIGKILL to the command's process group (and, with a terminal, the hang-up
//! of closing the master side).
//!
//! What it does not do: send end of file through a terminal when stdin closes (a
//! terminal's end of file is the user's Ctrl-D), or time sessions out.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use berth_model::exec_stream::{OutputFrame, WindowSize};
use futures::Future;
use nix::sys::signal::Signal;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::Winsize;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::Child;
use tokio::sync::mpsc;

use super::exec::{beside, exit_code};
use super::process_env::signal_group;
use super::Task;
use crate::exec_interactive::{
    pump_input, pump_output, session, ExecSession, InteractiveExecRequest, DRAIN_AFTER_EXIT,
};
use crate::{Result, RuntimeError};

/// The shim's first argument that makes it a tty-session starter: `<shim> --tty-session
/// -- PROGRAM ARGS...`.
pub(crate) const TTY_SESSION_FLAG: &str = "--tty-session";

/// Starts `request.command` beside container `idx` of `task`; `shim` is the argv prefix
/// that runs the shim program.
pub(super) fn start(
    task: &Task,
    idx: usize,
    request: &InteractiveExecRequest,
    shim: &[String],
    dns_server: Option<std::net::SocketAddr>,
) -> Result<ExecSession> {
    let name = task.core.def().container_definitions[idx].name.clone();
    let failed = |message: String| RuntimeError::ExecFailed {
        task: task.core.spec.task_arn.clone(),
        container: name.clone(),
        message,
    };
    if request.tty {
        let (master, slave) =
            open_pty(request.window).map_err(|e| failed(format!("cannot open a terminal: {e}")))?;
        let mut argv = shim.to_vec();
        argv.extend([TTY_SESSION_FLAG.to_string(), "--".to_string()]);
        argv.extend(request.command.iter().cloned());
        let mut cmd = beside(task, idx, &argv, dns_server);
        if !cmd.as_std().get_envs().any(|(k, _)| k == "TERM") {
            cmd.env("TERM", "xterm");
        }
        let stdio = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        let clone_failed = |e: io::Error| failed(format!("cannot pass the terminal on: {e}"));
        cmd.stdin(stdio(&slave).map_err(clone_failed)?)
            .stdout(stdio(&slave).map_err(clone_failed)?)
            .stderr(Stdio::from(slave))
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| failed(format!("cannot run {:?}: {e}", request.command[0])))?;
        let master = Arc::new(
            watch_fd(master).map_err(|e| failed(format!("cannot watch the terminal: {e}")))?,
        );
        let (session, ends) = session(name);
        let resize_master = master.clone();
        let stdin = request.stdin.then(|| PtyMaster(master.clone()));
        tokio::spawn(pump_input(ends.input, stdin, move |size| {
            let _ = rustix::termios::tcsetwinsize(resize_master.get_ref(), winsize(size));
            std::future::ready(())
        }));
        tokio::spawn(async move {
            let reader = PtyMaster(master);
            let output = ends.output;
            let read = pump_output(reader, &output, OutputFrame::Stdout);
            watch(child, read, &output).await;
        });
        Ok(session)
    } else {
        let mut cmd = beside(task, idx, &request.command, dns_server);
        cmd.stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("cannot run {:?}: {e}", request.command[0])))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (session, ends) = session(name);
        tokio::spawn(pump_input(ends.input, stdin, |_| std::future::ready(())));
        tokio::spawn(async move {
            let output = ends.output;
            let read = async {
                let (out, err) = tokio::join!(
                    pump_output(stdout, &output, OutputFrame::Stdout),
                    pump_output(stderr, &output, OutputFrame::Stderr)
                );
                out && err
            };
            watch(child, read, &output).await;
        });
        Ok(session)
    }
}

/// Waits for `child` to exit while `read` passes its output on (`read` gives false when
/// the caller is gone), then sends its exit code once the output ended (or
/// [`DRAIN_AFTER_EXIT`] after the exit). A caller that goes away first gets the
/// command's process group killed.
async fn watch(
    mut child: Child,
    read: impl Future<Output = bool>,
    output: &mpsc::Sender<OutputFrame>,
) {
    let pgid = child.id().map(|p| p as i32);
    let kill = |child: &mut Child| {
        if let Some(pid) = pgid {
            signal_group(pid, Signal::SIGKILL);
        }
        let _ = child.start_kill();
    };
    tokio::pin!(read);
    let mut read_done = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            caller_here = &mut read, if !read_done => {
                read_done = true;
                if !caller_here {
                    kill(&mut child);
                    let _ = child.wait().await;
                    return;
                }
            }
            _ = output.closed() => {
                kill(&mut child);
                let _ = child.wait().await;
                return;
            }
        }
    };
    if !read_done {
        if let Ok(false) = tokio::time::timeout(DRAIN_AFTER_EXIT, &mut read).await {
            return;
        }
    }
    let last = match status {
        Ok(s) => OutputFrame::Exit(exit_code(s)),
        Err(e) => OutputFrame::Error(format!("cannot wait for the command: {e}")),
    };
    let _ = output.send(last).await;
}

/// `fd` registered with the reactor. `AsyncFd::new` is deprecated for objects whose raw
/// descriptor could change or close under it; an `OwnedFd` the `AsyncFd` owns cannot,
/// which is what the replacement, `unsafe fn register`, asks the caller to promise (and
/// this crate forbids unsafe code).
#[allow(deprecated)]
fn watch_fd(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::new(fd)
}

fn winsize(size: WindowSize) -> Winsize {
    Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A new pseudo-terminal of `window`'s size: its master side (non-blocking) and its
/// slave side.
fn open_pty(window: Option<WindowSize>) -> io::Result<(OwnedFd, OwnedFd)> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if let Some(size) = window {
        rustix::termios::tcsetwinsize(&master, winsize(size))?;
    }
    rustix::io::ioctl_fionbio(&master, true)?;
    Ok((master, slave))
}

/// The master side of a session's terminal as a byte stream: what the command writes is
/// read here, what is written here is its input. A hang-up (all of the slave side
/// closed) reads as end of file; shutting down does nothing (see the module doc).
struct PtyMaster(Arc<AsyncFd<OwnedFd>>);

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| read_or_hang_up(fd.get_ref(), unfilled)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

/// A read of the master side; `EIO` (the slave side is closed) is end of file.
fn read_or_hang_up(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    match rustix::io::read(fd.as_fd(), buf) {
        Ok(n) => Ok(n),
        Err(rustix::io::Errno::IO) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), buf)?)) {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The shim's tty-session mode: `args` is `-- PROGRAM ARGS...`. Makes a new session,
/// takes stdin (a terminal) as its controlling terminal, then becomes the program; exits
/// 127 when the program is not found and 126 when it cannot run, as a shell does.
pub(crate) fn tty_session_main(args: &[String]) -> ! {
    let argv = match args.split_first() {
        Some((dashes, argv)) if dashes == "--" && !argv.is_empty() => argv,
        _ => {
            eprintln!("usage: shim {TTY_SESSION_FLAG} -- PROGRAM [ARGS...]");
            std::process::exit(2)
        }
    };
    if let Err(e) = rustix::process::setsid() {
        eprintln!("berth exec: cannot start a session: {e}");
    } else if let Err(e) = rustix::process::ioctl_tiocsctty(io::stdin()) {
        eprintln!("berth exec: cannot take the terminal: {e}");
    }
    let _defaults = super::process_env::default_signals_on_exec()
        .map_err(|e| eprintln!("berth exec: cannot reset signal dispositions: {e}"));
    let e = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    eprintln!("berth exec: cannot run {:?}: {e}", argv[0]);
    std::process::exit(if e.kind() == io::ErrorKind::NotFound {
        127
    } else {
        126
    })
}
