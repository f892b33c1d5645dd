//! A `berth agent` child process joined to a test's server over the node link.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::netns::NetNs;
use crate::{bin, wait_until, Server};

/// A running `berth agent`; killed when dropped (its tasks keep running).
pub struct Agent {
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// The node link URL and join token of a server started with `--node-listen`.
pub fn node_link(server: &Server) -> Result<(String, String)> {
    let url = std::fs::read_to_string(server.data_dir.join("node-link.addr"))
        .context("node-link.addr: was the server started with --node-listen?")?;
    let token =
        std::fs::read_to_string(server.data_dir.join("join-token")).context("join-token")?;
    Ok((url.trim().to_string(), token.trim().to_string()))
}

impl Agent {
    /// Starts `berth agent` on `data_dir` against `server`'s node link, with the token
    /// (when `token`) and tasks on `runtime`; returns once its instance id is written.
    pub async fn start(
        server: &Server,
        data_dir: &Path,
        runtime: &str,
        token: bool,
    ) -> Result<Agent> {
        let (url, _) = node_link(server)?;
        Agent::start_with(server, data_dir, runtime, token, None, &url, &[]).await
    }

    /// [`Agent::start`] with more `berth agent` arguments (e.g. `--cluster NAME`,
    /// `--managed-capacity`).
    pub async fn start_with_args(
        server: &Server,
        data_dir: &Path,
        runtime: &str,
        extra: &[&str],
    ) -> Result<Agent> {
        let (url, _) = node_link(server)?;
        Agent::start_with(server, data_dir, runtime, true, None, &url, extra).await
    }

    /// [`Agent::start`] inside the network namespace `netns` (reached by the server at
    /// `server_url`, its node link as seen from the namespace): the agent advertises and
    /// serves its node API on the namespace's address.
    pub async fn start_in(
        server: &Server,
        data_dir: &Path,
        runtime: &str,
        netns: &NetNs,
        server_url: &str,
    ) -> Result<Agent> {
        Agent::start_in_with_args(server, data_dir, runtime, netns, server_url, &[]).await
    }

    /// [`Agent::start_in`] with more `berth agent` arguments (e.g. `--attribute N=V`).
    pub async fn start_in_with_args(
        server: &Server,
        data_dir: &Path,
        runtime: &str,
        netns: &NetNs,
        server_url: &str,
        extra: &[&str],
    ) -> Result<Agent> {
        Agent::start_with(
            server,
            data_dir,
            runtime,
            true,
            Some(netns),
            server_url,
            extra,
        )
        .await
    }

    async fn start_with(
        server: &Server,
        data_dir: &Path,
        runtime: &str,
        token: bool,
        netns: Option<&NetNs>,
        url: &str,
        extra: &[&str],
    ) -> Result<Agent> {
        let (_, join_token) = node_link(server)?;
        std::fs::create_dir_all(data_dir)?;
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]).arg(bin("berth"));
                c
            }
            None => Command::new(bin("berth")),
        };
        let (advertise, node_api) = match netns {
            Some(ns) => (ns.ns_ip.clone(), format!("{}:0", ns.ns_ip)),
            // Agents of concurrent tests each take a port of their own.
            None => ("127.0.0.1".to_string(), "127.0.0.1:0".to_string()),
        };
        cmd.arg("agent")
            .args(["--server", url])
            .args(["--runtime", runtime])
            .args(["--advertise-address", &advertise])
            .args(["--node-api-addr", &node_api]);
        if netns.is_none() {
            // Agents on the host share its ports with the test's server and each other:
            // each takes a mesh inbound and DNS port of its own. In a namespace the
            // defaults (every address, port 15443; 127.0.0.1:53) are the namespace's.
            if !extra.contains(&"--mesh-inbound-addr") {
                cmd.args(["--mesh-inbound-addr", "127.0.0.1:0"]);
            }
            if !extra.contains(&"--dns-listen") {
                cmd.args(["--dns-listen", "127.0.0.1:0"]);
            }
        }
        cmd.args(extra)
            .env("BERTH_DATA_DIR", data_dir)
            .env("BERTH_LOG", "info,berth=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data_dir.join("agent.log"))?,
            ));
        if token {
            cmd.env("BERTH_JOIN_TOKEN", join_token);
        }
        let mut child = cmd.spawn().context("spawning berth agent")?;
        let id_file = data_dir.join("instance-id");
        wait_until(
            "the agent to write its instance id",
            Duration::from_secs(30),
            || {
                let exited = child.try_wait().ok().flatten();
                let f = id_file.clone();
                async move {
                    if let Some(status) = exited {
                        return Some(Err(anyhow!("berth agent exited early: {status}")));
                    }
                    std::fs::read_to_string(f).ok().map(|_| Ok(()))
                }
            },
        )
        .await??;
        Ok(Agent {
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
        })
    }

    /// The id of the agent's container instance.
    pub fn instance_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("instance-id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Pids of the agent's task processes and shims (the agent itself excluded).
    pub fn task_processes(&self) -> Vec<i32> {
        crate::processes_of_data_dir(&self.data_dir, self.child.as_ref().map(|c| c.id() as i32))
    }

    /// What the agent logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("agent.log")).unwrap_or_default()
    }

    /// SIGKILLs the agent and waits for it; its tasks keep running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the agent to exit by itself (e.g. refused at start); its status.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take().and_then(|mut c| c.wait().ok())
    }
}

impl Drop for Agent {
    /// Leaves nothing running: the agent and its task processes.
    fn drop(&mut self) {
        self.kill();
        for pid in crate::processes_of_data_dir(&self.data_dir, None) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
