//! The two sides of a handover ([`super::handover`]) as the data plane processes run
//! them: [`give`], the running data plane sending its sockets (the DNS's too),
//! configuration, health and DNS records
//! to the process taking over; [`take`], that process receiving them and serving on
//! them before it answers `ready` ([`Taken::confirm`]).
//!
//! What it does not do: serve the control socket or write the pid file (the process
//! does, between [`take`] and [`Taken::confirm`]), or stop the old process (it stops
//! itself once `give` returned).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use berth_dns::DnsSockets;
use berth_model::dataplane::ProxyConfig;
use berth_model::discovery::DiscoveryRecords;
use berth_proxy::{Proxy, SocketRole};
use hyper::Method;

use super::dns::NodeDns;
use super::handover::{
    receive_state, send_ready, send_state, wait_ready, HandedOver, HandedSocket, HandoverRequest,
    HandoverState, SocketKind, HANDOVER_PATIENCE,
};
use super::lock::DataPlaneLock;
use super::protocol;
use super::{DataPlaneOptions, DataPlanePaths};

/// Hands `proxy`'s listening sockets, `config` (the last applied), its target statuses
/// and a descriptor of the lock to the process listening on `to.socket`, and waits for
/// its `ready`. Answers the new process's pid. On failure nothing here changed: the
/// caller keeps serving.
pub async fn give(
    proxy: &Proxy,
    dns: Option<&NodeDns>,
    config: Option<ProxyConfig>,
    lock: &OwnedFd,
    to: &HandoverRequest,
) -> Result<u32> {
    let sockets = proxy
        .listening_sockets()
        .await
        .context("copying the listening sockets")?;
    let mut handed = Vec::with_capacity(sockets.len() + 1);
    let mut fds = Vec::with_capacity(sockets.len() + 1);
    for s in sockets {
        let (what, key) = match s.role {
            SocketRole::Listener(key) => (SocketKind::Listener, Some(key)),
            SocketRole::MeshInbound => (SocketKind::MeshInbound, None),
        };
        handed.push(HandedSocket {
            what,
            key,
            address: Some(s.addr),
        });
        fds.push(s.fd);
    }
    if let Some(dns) = dns {
        let sockets = dns.server.sockets().context("copying the DNS sockets")?;
        for s in sockets {
            let address = Some(s.local_addr()?);
            for (what, fd) in [
                (SocketKind::DnsUdp, OwnedFd::from(s.udp)),
                (SocketKind::DnsTcp, OwnedFd::from(s.tcp)),
            ] {
                handed.push(HandedSocket {
                    what,
                    key: None,
                    address,
                });
                fds.push(fd);
            }
        }
    }
    handed.push(HandedSocket {
        what: SocketKind::Lock,
        key: None,
        address: None,
    });
    fds.push(lock.try_clone().context("copying the lock's descriptor")?);
    let state = HandoverState {
        from_pid: std::process::id(),
        sockets: handed,
        config,
        statuses: proxy.target_statuses(),
        discovery_records: dns.and_then(NodeDns::last_records),
    };
    let path = to.socket.clone();
    tokio::task::spawn_blocking(move || -> Result<u32> {
        let mut stream = UnixStream::connect(&path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        stream.set_write_timeout(Some(HANDOVER_PATIENCE))?;
        let borrowed: Vec<BorrowedFd> = fds.iter().map(|f| f.as_fd()).collect();
        send_state(&mut stream, &state, &borrowed)?;
        // This process's extra copies close; the ones sent live in the new process.
        drop(borrowed);
        drop(fds);
        wait_ready(&mut stream, HANDOVER_PATIENCE)
    })
    .await
    .map_err(|e| anyhow!("the handover task failed: {e}"))?
}

/// What the process taking over holds once it serves on the handed sockets.
pub struct Taken {
    /// The data dir's lock, shared with the old process until it exits.
    pub lock: Option<DataPlaneLock>,
    pub mesh_inbound: SocketAddr,
    /// The configuration now served.
    pub config: Option<ProxyConfig>,
    pub from_pid: u32,
    /// Targets that took the health the old process saw.
    pub inherited_health: usize,
    /// The discovery DNS's sockets, for the DNS server to serve on.
    pub dns_sockets: Vec<DnsSockets>,
    /// The records the old process's DNS answered.
    pub discovery_records: Option<DiscoveryRecords>,
    stream: UnixStream,
}

impl Taken {
    /// Tells the old process this one serves (it then stops accepting and drains).
    pub async fn confirm(self) {
        let Taken {
            mut stream,
            from_pid,
            ..
        } = self;
        let sent =
            tokio::task::spawn_blocking(move || send_ready(&mut stream, std::process::id())).await;
        if !matches!(sent, Ok(Ok(()))) {
            tracing::warn!(
                old_pid = from_pid,
                "the old data plane did not take the ready message (it may have exited); serving on"
            );
        }
    }
}

/// Asks the data plane serving `paths.socket` to hand over to this process, then serves
/// what it hands: listeners on their sockets (configured with `proxy`'s options; a
/// listener whose address no longer fits binds its own), the mesh inbound listener
/// (bound anew when `options` moved it), the configuration and target health.
pub async fn take(
    paths: &DataPlanePaths,
    proxy: &Proxy,
    options: &DataPlaneOptions,
) -> Result<Taken> {
    let pid = std::process::id();
    let temp: PathBuf = paths
        .socket
        .with_file_name(format!("dataplane.handover.{pid}.sock"));
    let _ = std::fs::remove_file(&temp);
    let listener = tokio::net::UnixListener::bind(&temp)
        .with_context(|| format!("binding {}", temp.display()))?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    let request = serde_json::to_vec(&HandoverRequest {
        socket: temp.clone(),
        pid,
    })?;
    let socket = paths.socket.clone();
    let mut asking = tokio::spawn(async move {
        protocol::call_json::<HandedOver>(
            &socket,
            Method::POST,
            "/v1/handover",
            Some(request),
            HANDOVER_PATIENCE * 2,
        )
        .await
    });
    let accepted = tokio::select! {
        a = listener.accept() => a.map(|(s, _)| s),
        answer = &mut asking => {
            let _ = std::fs::remove_file(&temp);
            match answer {
                Ok(Err(e)) => bail!("the running data plane did not hand over: {e}"),
                _ => bail!("the running data plane answered before it connected"),
            }
        }
        _ = tokio::time::sleep(HANDOVER_PATIENCE) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no handover within {HANDOVER_PATIENCE:?}"),
        )),
    };
    let _ = std::fs::remove_file(&temp);
    let stream = accepted.context("waiting for the running data plane")?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    let (state, fds, stream) = tokio::task::spawn_blocking(move || {
        let mut stream = stream;
        stream.set_read_timeout(Some(HANDOVER_PATIENCE))?;
        let (state, fds) = receive_state(&mut stream)?;
        Ok::<_, anyhow::Error>((state, fds, stream))
    })
    .await
    .map_err(|e| anyhow!("the handover task failed: {e}"))??;

    let mut listeners = HashMap::new();
    let mut inbound = None;
    let mut lock = None;
    let mut dns_udp = HashMap::new();
    let mut dns_tcp = HashMap::new();
    for (s, fd) in state.sockets.iter().zip(fds) {
        match s.what {
            SocketKind::Listener => {
                let key = s.key.clone().context("a handed listener without its key")?;
                listeners.insert(key, std::net::TcpListener::from(fd));
            }
            SocketKind::MeshInbound => inbound = Some(std::net::TcpListener::from(fd)),
            SocketKind::Lock => lock = Some(DataPlaneLock::from_descriptor(fd)),
            SocketKind::DnsUdp => {
                let at = s
                    .address
                    .context("a handed DNS socket without its address")?;
                dns_udp.insert(at, std::net::UdpSocket::from(fd));
            }
            SocketKind::DnsTcp => {
                let at = s
                    .address
                    .context("a handed DNS socket without its address")?;
                dns_tcp.insert(at, std::net::TcpListener::from(fd));
            }
        }
    }
    let dns_sockets: Vec<DnsSockets> = dns_udp
        .into_iter()
        .filter_map(|(at, udp)| {
            Some(DnsSockets {
                udp,
                tcp: dns_tcp.remove(&at)?,
            })
        })
        .collect();
    let lock = lock.context("the handover carried no lock")?;
    let wanted = options.mesh_inbound_addr;
    let fits = |l: &std::net::TcpListener| {
        l.local_addr().is_ok_and(|a| {
            a.ip() == wanted.ip() && (wanted.port() == 0 || a.port() == wanted.port())
        })
    };
    let mesh_inbound = match inbound.filter(fits) {
        Some(l) => proxy.adopt_mesh_inbound(l)?,
        None => proxy.bind_mesh_inbound(wanted).await.with_context(|| {
            format!("binding the mesh inbound listener (--mesh-inbound-addr {wanted})")
        })?,
    };
    let handed_listeners = listeners.len();
    proxy.adopt_listeners(listeners).await;
    if let Some(config) = &state.config {
        proxy
            .apply(config.clone())
            .await
            .context("serving the handed configuration")?;
    }
    let inherited_health = proxy.inherit_health(&state.statuses);
    tracing::info!(
        old_pid = state.from_pid,
        listeners = handed_listeners,
        inherited_health,
        "serving on the listening sockets handed over"
    );
    Ok(Taken {
        lock: Some(lock),
        mesh_inbound,
        config: state.config,
        from_pid: state.from_pid,
        inherited_health,
        dns_sockets,
        discovery_records: state.discovery_records,
        stream,
    })
}
