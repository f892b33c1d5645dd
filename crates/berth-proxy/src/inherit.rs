//! Listening sockets and target health carried from one process serving the proxy to
//! the next (a seamless upgrade): the sockets the proxy listens on, each with a new
//! descriptor for another process ([`Proxy::listening_sockets`]); sockets received
//! from another process, served by the next [`Proxy::apply`] instead of binding
//! ([`Proxy::adopt_listeners`], [`Proxy::adopt_mesh_inbound`]); and the health the
//! other process saw, taken by targets still in their initial state
//! ([`Proxy::inherit_health`]).
//!
//! What it does not do: move descriptors between processes (the caller does, e.g. with
//! SCM_RIGHTS), or carry open client connections: those stay with the process that
//! accepted them and finish there.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use berth_model::elb::TargetHealthState;
use tokio::net::TcpListener;

use crate::config::TargetStatus;
use crate::error::ProxyError;
use crate::target::Health;
use crate::Proxy;

/// What a listening socket serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketRole {
    /// A load balancer listener (by listener ARN) or a mesh client-alias listener (by
    /// [`crate::mesh_listener_key`]).
    Listener(String),
    /// The node's mutual TLS inbound mesh listener.
    MeshInbound,
}

/// A socket the proxy listens on, with a descriptor of its own.
#[derive(Debug)]
pub struct ListeningSocket {
    pub role: SocketRole,
    pub addr: SocketAddr,
    pub fd: OwnedFd,
}

/// An inbound mesh listener being served.
pub(crate) struct InboundListener {
    pub(crate) task: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
    /// A descriptor of the socket, kept for [`Proxy::listening_sockets`]; closed with
    /// the accept loop on shutdown.
    socket: OwnedFd,
}

/// Whether a handed-over socket may serve a listener configured on `wanted` (port 0:
/// any port on the same address).
pub(crate) fn fits(socket: &std::net::TcpListener, wanted: SocketAddr) -> bool {
    match socket.local_addr() {
        Ok(a) => a.ip() == wanted.ip() && (wanted.port() == 0 || a.port() == wanted.port()),
        Err(_) => false,
    }
}

/// The health a reported status stands for, when it is one a check decides (healthy or
/// unhealthy) and the status code a mismatch was seen with.
fn checked_health(status: &TargetStatus) -> Option<(Health, u16)> {
    let h = &status.health;
    match h.state {
        TargetHealthState::Healthy => Some((Health::Healthy, 0)),
        TargetHealthState::Unhealthy => match h.reason.as_deref() {
            Some("Target.Timeout") => Some((Health::UnhealthyTimeout, 0)),
            Some("Target.ResponseCodeMismatch") => {
                // "Health checks failed with these codes: [503]"
                let code = h
                    .description
                    .as_deref()
                    .and_then(|d| d.rsplit('[').next())
                    .and_then(|d| d.trim_end_matches(']').parse().ok())
                    .unwrap_or(0);
                Some((Health::UnhealthyMismatch, code))
            }
            _ => Some((Health::UnhealthyFailed, 0)),
        },
        _ => None,
    }
}

impl Proxy {
    /// Every socket the proxy listens on (load balancer, mesh and inbound mesh
    /// listeners), each with a new descriptor: another process may accept on it while
    /// this one does, and keeps it open once this one closes its own.
    pub async fn listening_sockets(&self) -> Result<Vec<ListeningSocket>, std::io::Error> {
        let mut out = Vec::new();
        {
            let state = self.state.lock().await;
            for (key, e) in &state.listeners {
                out.push(ListeningSocket {
                    role: SocketRole::Listener(key.clone()),
                    addr: e.running.addr,
                    fd: e.running.socket_copy()?,
                });
            }
        }
        for l in self
            .inbound_tasks
            .lock()
            .expect("inbound tasks lock")
            .iter()
        {
            out.push(ListeningSocket {
                role: SocketRole::MeshInbound,
                addr: l.addr,
                fd: l.socket.try_clone()?,
            });
        }
        Ok(out)
    }

    /// Listening sockets handed over by another process, by listener key (listener ARN
    /// or mesh listener key): the next [`Proxy::apply`] serves a listener on its
    /// handed-over socket when the socket's address fits the listener's (same address;
    /// same port unless the listener's is 0) instead of binding, so the port never stops
    /// accepting. Sockets that apply does not use close.
    pub async fn adopt_listeners(&self, sockets: HashMap<String, std::net::TcpListener>) {
        self.state.lock().await.adopted.extend(sockets);
    }

    /// Serves a node inbound mesh listener handed over by another process, as
    /// [`Proxy::bind_mesh_inbound`] serves one it binds; returns its address.
    pub fn adopt_mesh_inbound(
        &self,
        socket: std::net::TcpListener,
    ) -> Result<SocketAddr, ProxyError> {
        let addr = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let bind_err = |source| ProxyError::MeshInboundBind { addr, source };
        if self.shut_down.load(Ordering::Acquire) {
            return Err(ProxyError::ShutDown);
        }
        socket.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(socket).map_err(bind_err)?;
        self.serve_mesh_inbound(listener).map_err(bind_err)
    }

    /// Starts the accept loop of an inbound mesh listener.
    pub(crate) fn serve_mesh_inbound(&self, listener: TcpListener) -> std::io::Result<SocketAddr> {
        use std::os::fd::AsFd;
        let addr = listener.local_addr()?;
        let socket = listener.as_fd().try_clone_to_owned()?;
        let task = crate::mesh::inbound::spawn(listener, self.mesh_inbound.clone());
        self.inbound_tasks
            .lock()
            .expect("inbound tasks lock")
            .push(InboundListener { task, addr, socket });
        Ok(addr)
    }

    /// Gives targets still in their initial state the health `statuses` report (as
    /// another process serving the same configuration saw it), so a handover does not
    /// send healthy targets back to `initial`. Their health checks go on from there.
    /// Answers how many targets took a state.
    pub fn inherit_health(&self, statuses: &[TargetStatus]) -> usize {
        let groups = self.groups_view.load();
        let mut taken = 0;
        for s in statuses {
            let Some((health, code)) = checked_health(s) else {
                continue;
            };
            if let Some(g) = groups.iter().find(|g| *g.arn == *s.target_group_arn) {
                if g.inherit_health(s.addr, health, code) {
                    taken += 1;
                }
            }
        }
        if taken > 0 {
            self.notifier.notify();
        }
        taken
    }
}

#[cfg(test)]
#[path = "inherit_tests.rs"]
mod tests;
