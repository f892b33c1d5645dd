//! Handing a running data plane over to a new process (a new berth binary, or other
//! options) without refusing a connection: the listening sockets move with SCM_RIGHTS,
//! so the kernel's sockets, their ports and their accept queues never close.
//!
//! The exchange, `old` the running data plane, `new` the one taking over
//! (`berth dataplane run --take-over`):
//! 1. `new` finds the lock held, listens on `<data-dir>/dataplane.handover.<pid>.sock`
//!    and asks `old` (`POST /v1/handover`) to hand over to that socket.
//! 2. `old` stops applying configurations (until the handover ends), connects, and sends
//!    a [`HandoverState`]: its last applied `ProxyConfig`, its target statuses and the
//!    list of [`HandedSocket`]s (what, address), each followed by its descriptor: every
//!    load balancer and mesh listener, the mesh inbound listener, and a descriptor of the
//!    `dataplane.lock` file (the flock belongs to the open file, so from here on the lock
//!    is held while either process runs).
//! 3. `new` applies the configuration on the sockets received (listeners keep their
//!    ports; it accepts as soon as it applied), gives targets the health `old` saw, moves
//!    `dataplane.sock` and `dataplane.pid` to itself (each written beside and renamed
//!    over), and answers `ready`.
//! 4. `old` then answers the request with both pids and stops: it closes its copies of the
//!    listening sockets (the sockets live on in `new`), answers requests in flight with
//!    `Connection: close`, drains (bounded as `Proxy::shutdown` is) and exits.
//!
//! When a side dies midway:
//! - `new` dies (or fails, or times out) before `ready`: `old` never stopped accepting;
//!   it takes `dataplane.sock` and `dataplane.pid` back if they moved, kills `new` if it
//!   still runs, and serves on. Connections `new` had accepted are lost with it.
//! - `old` dies before sending: `new` exits with an error; nothing serves until the next
//!   `berth server` start finds the lock free and starts a data plane.
//! - `old` dies after sending: `new` holds the sockets and the lock, and serves on.
//! - `new` dies after `ready`: `old` is draining and exits; nothing accepts until the next
//!   `berth server` start (the lock is free once `old` exited).
//!
//! What it does not do: move open client connections (they finish in `old`), carry
//! request counts (they start again from 0 in `new`), or pick which binary runs (the
//! launcher does).

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use berth_model::dataplane::{ProxyConfig, TargetStatus};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use serde::{Deserialize, Serialize};

/// How long either side waits for the other during a handover.
pub const HANDOVER_PATIENCE: Duration = Duration::from_secs(20);
/// The largest state message accepted (the mesh's certificates travel in it).
const LARGEST_STATE: u64 = 256 * 1024 * 1024;
/// The byte each descriptor travels with.
const FD_MARK: u8 = b'F';

/// What a handed-over descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SocketKind {
    /// A load balancer listener or a mesh client-alias listener (`key`: the listener
    /// ARN or the mesh listener key).
    Listener,
    /// The node's mesh inbound listener.
    MeshInbound,
    /// The open `dataplane.lock` file, whose flock it carries.
    Lock,
    /// The discovery DNS's UDP socket on `address`.
    DnsUdp,
    /// The discovery DNS's TCP listener on `address`.
    DnsTcp,
}

/// One descriptor of the handover, in the order they follow the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandedSocket {
    pub what: SocketKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
}

/// What the running data plane hands to the one taking over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverState {
    pub from_pid: u32,
    pub sockets: Vec<HandedSocket>,
    /// The last configuration applied (none before the first).
    pub config: Option<ProxyConfig>,
    pub statuses: Vec<TargetStatus>,
    /// The discovery records the DNS answers (none before the first publish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_records: Option<berth_model::discovery::DiscoveryRecords>,
}

/// `POST /v1/handover`'s body: where the new data plane listens for the handover.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandoverRequest {
    pub socket: std::path::PathBuf,
    pub pid: u32,
}

/// `POST /v1/handover`'s answer once the new data plane serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandedOver {
    pub old_pid: u32,
    pub new_pid: u32,
}

/// The `ready` message the new data plane answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ready {
    pid: u32,
}

/// Sends `state` and then each descriptor of `fds` (as many as `state.sockets`).
pub fn send_state(
    stream: &mut UnixStream,
    state: &HandoverState,
    fds: &[BorrowedFd],
) -> Result<()> {
    ensure!(
        fds.len() == state.sockets.len(),
        "{} descriptors for {} sockets",
        fds.len(),
        state.sockets.len()
    );
    let body = serde_json::to_vec(state).context("encoding the handover state")?;
    stream.write_all(&(body.len() as u64).to_be_bytes())?;
    stream.write_all(&body)?;
    for fd in fds {
        let fds = [*fd];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        ensure!(
            control.push(SendAncillaryMessage::ScmRights(&fds)),
            "no room for a descriptor"
        );
        let sent = sendmsg(
            stream.as_fd(),
            &[IoSlice::new(&[FD_MARK])],
            &mut control,
            SendFlags::NOSIGNAL,
        )
        .context("sending a descriptor")?;
        ensure!(sent == 1, "a descriptor was not sent");
    }
    Ok(())
}

/// Receives a state and its descriptors (each close-on-exec), in the order of
/// `state.sockets`.
pub fn receive_state(stream: &mut UnixStream) -> Result<(HandoverState, Vec<OwnedFd>)> {
    let mut len = [0u8; 8];
    stream
        .read_exact(&mut len)
        .context("reading the handover state's length")?;
    let len = u64::from_be_bytes(len);
    ensure!(
        len <= LARGEST_STATE,
        "a handover state of {len} bytes (at most {LARGEST_STATE})"
    );
    let mut body = vec![0u8; len as usize];
    stream
        .read_exact(&mut body)
        .context("reading the handover state")?;
    let state: HandoverState =
        serde_json::from_slice(&body).context("the handover state does not parse")?;
    let mut fds = Vec::with_capacity(state.sockets.len());
    for s in &state.sockets {
        let mut mark = [0u8; 1];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = recvmsg(
            stream.as_fd(),
            &mut [IoSliceMut::new(&mut mark)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .with_context(|| format!("receiving the descriptor of {s:?}"))?;
        ensure!(
            got.bytes == 1 && mark[0] == FD_MARK,
            "the handover ended before the descriptor of {s:?}"
        );
        let mut received: Vec<OwnedFd> = Vec::new();
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = m {
                received.extend(rights);
            }
        }
        ensure!(
            received.len() == 1,
            "{} descriptors came for {s:?}",
            received.len()
        );
        fds.push(received.pop().expect("one descriptor"));
    }
    Ok((state, fds))
}

/// The new data plane's `ready`: it serves on the sockets and owns the socket path.
pub fn send_ready(stream: &mut UnixStream, pid: u32) -> Result<()> {
    let mut line = serde_json::to_vec(&Ready { pid })?;
    line.push(b'\n');
    stream.write_all(&line).context("answering ready")?;
    Ok(())
}

/// Waits (at most `patience`) for the new data plane's `ready`; answers its pid.
pub fn wait_ready(stream: &mut UnixStream, patience: Duration) -> Result<u32> {
    stream.set_read_timeout(Some(patience))?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => bail!("the new data plane closed the handover before it was ready"),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < 4096 => line.push(byte[0]),
            Ok(_) => bail!("the new data plane's ready message is too long"),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                bail!("the new data plane was not ready within {patience:?}")
            }
            Err(e) => return Err(e).context("waiting for the new data plane"),
        }
    }
    let ready: Ready = serde_json::from_slice(&line).context("the ready message does not parse")?;
    Ok(ready.pid)
}

#[cfg(test)]
#[path = "handover_tests.rs"]
mod tests;
