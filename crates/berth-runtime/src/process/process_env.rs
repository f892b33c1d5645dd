//! What a container's process and the commands run beside it share: the environment it
//! gets, and how its process group is signalled. Its own module so the supervisor and
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
