//! What a container's process and the commands run beside it share: the environment it
//! gets, the signal dispositions it starts with, and how its process group is signalled. Its own module so the supervisor and
//! exec (captured and interactive) use them without importing each other.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::{volumes, Task};
use crate::task_env::container_environment;

/// The environment of container `idx`: the shared task environment, the listen ports
/// being the host ports chosen for its mappings (a process listens on the host), and
/// `BERTH_MOUNTS_DIR` when it mounts volumes.
pub(super) fn container_env(
    task: &Task,
    idx: usize,
    dns_server: Option<std::net::SocketAddr>,
) -> Vec<(String, String)> {
    let listen_ports: Vec<u32> = task.core.state.borrow().containers[idx]
        .network_bindings
        .iter()
        .map(|b| b.host_port)
        .collect();
    let mut env = container_environment(&task.core.spec, idx, &listen_ports, dns_server);
    if let Some(dir) = task.mounts_dir(idx) {
        env.push((
            volumes::MOUNTS_DIR_ENV.into(),
            dir.to_string_lossy().into_owned(),
        ));
    }
    env
}

/// Signals a process group, or the process alone if it left its group.
pub(super) fn signal_group(pid: i32, sig: Signal) {
    if killpg(Pid::from_raw(pid), sig).is_err() {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The signals a program a session shim execs must not inherit ignored: berth may itself
/// have been started with them ignored (a background job of a non-interactive shell
/// ignores SIGINT and SIGQUIT, `nohup` SIGHUP), and an ignored disposition survives exec,
/// so Ctrl-C on the session's terminal would never reach the command. Docker starts
/// containers with every disposition at its default. (The container shim handles these
/// signals itself to forward them, which already resets them for its child.)
const RESET_ON_EXEC: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGTERM,
    Signal::SIGTSTP,
];

/// Handlers for the signals of [`RESET_ON_EXEC`], held until this process execs: exec
/// resets a handled signal to its default disposition (an ignored one stays ignored).
pub(crate) struct DefaultSignalsOnExec {
    _handlers: Vec<tokio::signal::unix::Signal>,
    _runtime: tokio::runtime::Runtime,
}

/// Installs the handlers of [`DefaultSignalsOnExec`].
pub(crate) fn default_signals_on_exec() -> std::io::Result<DefaultSignalsOnExec> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let handlers = runtime.block_on(async {
        RESET_ON_EXEC
            .iter()
            .map(|sig| {
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(*sig as i32))
            })
            .collect::<std::io::Result<Vec<_>>>()
    })?;
    Ok(DefaultSignalsOnExec {
        _handlers: handlers,
        _runtime: runtime,
    })
}
