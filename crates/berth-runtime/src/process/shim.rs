//! The shim: a tiny supervisor that stays the parent of one container process.
//!
//! berth may die (even by SIGKILL) while its tasks run on; the shim is what still knows
//! the process's exit status afterwards. It is started by [`super::ProcessRuntime`] as
//! `<shim argv prefix> --dir <container dir> -- <argv...>` with the container's
//! environment and working directory, stdout a pipe to the runtime and stderr the
//! container's log file. It then:
//!
//! 1. leaves berth's session (`setsid`), so a terminal hang-up or Ctrl-C aimed at berth does
//!    not reach it;
//! 2. spawns the process in a new process group (its id is the process's pid) with stdout
//!    and stderr on the log file, and tells the runtime
//!    `started <pid>` (or `failed <reason>`) on its stdout;
//! 3. forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 it receives to the
//!    process group (the runtime normally signals the group directly);
//! 4. when the process ends, writes `exit.json` in the container dir (exit code; a signal
//!    `n` is recorded as `128 + n`, as Docker does) and exits.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Name of the file the shim writes when the process has ended.
pub(crate) const EXIT_FILE: &str = "exit.json";

/// What `exit.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExitRecord {
    /// The exit code, or `128 + signal` when a signal ended the process.
    pub exit_code: i32,
    /// The signal that ended the process, e.g. `SIGKILL`.
    pub signal: Option<String>,
    /// Set when the process could not be started at all.
    pub error: Option<String>,
}

pub(crate) fn read_exit(dir: &Path) -> Option<ExitRecord> {
    let bytes = std::fs::read(dir.join(EXIT_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_exit(dir: &Path, rec: &ExitRecord) -> std::io::Result<()> {
    let tmp = dir.join(format!("{EXIT_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(rec).expect("exit record serializes"))?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(EXIT_FILE))
}

/// Runs the shim with `args` (everything after the shim's own program name or
/// subcommand: `--dir DIR -- PROGRAM ARGS...`) and exits the process. With
/// `--tty-session -- PROGRAM ARGS...` it starts an interactive exec's command on its
/// terminal instead (see `exec_interactive`).
///
/// Call it first thing in `main`, instead of anything else the binary would do (it builds
/// its own single-threaded tokio runtime, so it must not run inside another). The
/// `berth` binary exposes it as the hidden subcommand `berth shim ...`, and
/// [`super::ProcessRuntimeConfig::shim`] is then `["/path/to/berth", "shim"]`.
pub fn shim_main(args: Vec<String>) -> ! {
    if let Some((super::exec_interactive::TTY_SESSION_FLAG, rest)) =
        args.split_first().map(|(f, rest)| (f.as_str(), rest))
    {
        super::exec_interactive::tty_session_main(rest);
    }
    let code = match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth shim: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn parse(args: Vec<String>) -> Result<(PathBuf, Vec<String>), String> {
    let mut it = args.into_iter();
    let mut dir = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = Some(PathBuf::from(it.next().ok_or("--dir needs a value")?)),
            "--" => break,
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let argv: Vec<String> = it.collect();
    let dir = dir.ok_or("usage: shim --dir DIR -- PROGRAM [ARGS...]")?;
    if argv.is_empty() {
        return Err("no program to run after --".into());
    }
    Ok((dir, argv))
}

fn tell(line: &str) {
    // The runtime may have gone away: ignore a broken pipe.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn run(args: Vec<String>) -> Result<(), String> {
    let (dir, argv) = parse(args)?;
    // Fails only when already a process group leader; then we keep the group we have.
    let _ = nix::unistd::setsid();
    // Signal handlers (not a blocked mask, which the process would inherit): exec resets
    // handled signals to their default action in the child.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("start the shim's event loop: {e}"))?;
    rt.block_on(supervise(dir, argv))
}

async fn supervise(dir: PathBuf, argv: Vec<String>) -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::hangup(), Signal::SIGHUP),
        (SignalKind::quit(), Signal::SIGQUIT),
        (SignalKind::user_defined1(), Signal::SIGUSR1),
        (SignalKind::user_defined2(), Signal::SIGUSR2),
    ];
    let mut streams = Vec::new();
    for (kind, sig) in kinds {
        let s = signal(kind).map_err(|e| format!("handle {sig}: {e}"))?;
        streams.push((s, sig));
    }

    let log = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("duplicate the log descriptor: {e}"))?;
    let mut child = match tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            let reason = format!("cannot run {:?}: {e}", argv[0]);
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            write_exit(
                &dir,
                &ExitRecord {
                    exit_code: code,
                    signal: None,
                    error: Some(reason.clone()),
                },
            )
            .map_err(|e| format!("write {}: {e}", dir.join(EXIT_FILE).display()))?;
            eprintln!("berth shim: {reason}");
            tell(&format!("failed {reason}"));
            return Ok(());
        }
    };
    let pid = child.id().ok_or("the process vanished at once")? as i32;
    tell(&format!("started {pid}"));

    let status = loop {
        let forwarded = futures::future::select_all(
            streams
                .iter_mut()
                .map(|(s, sig)| Box::pin(async move { s.recv().await.map(|_| *sig) })),
        );
        tokio::select! {
            status = child.wait() => break status.map_err(|e| format!("wait for {pid}: {e}"))?,
            (sig, _, _) = forwarded => {
                if let Some(sig) = sig {
                    let _ = killpg(Pid::from_raw(pid), sig);
                }
            }
        }
    };
    let rec = match (status.code(), status.signal()) {
        (Some(code), _) => ExitRecord {
            exit_code: code,
            signal: None,
            error: None,
        },
        (None, Some(sig)) => ExitRecord {
            exit_code: 128 + sig,
            signal: Some(
                Signal::try_from(sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}")),
            ),
            error: None,
        },
        (None, None) => ExitRecord {
            exit_code: 255,
            signal: None,
            error: Some(format!("unrecognised wait status {status:?}")),
        },
    };
    write_exit(&dir, &rec).map_err(|e| format!("write {}: {e}", dir.join(EXIT_FILE).display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_arguments() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (dir, argv) = parse(args(&["--dir", "/x", "--", "sleep", "1"])).unwrap();
        assert_eq!(dir, PathBuf::from("/x"));
        assert_eq!(argv, vec!["sleep", "1"]);
        assert!(parse(args(&["--dir", "/x", "--"])).is_err());
        assert!(parse(args(&["--", "sleep"])).is_err());
        assert!(parse(args(&["--bogus"])).is_err());
    }
}
