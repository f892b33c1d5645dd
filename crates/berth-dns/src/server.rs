//! [`DnsServer`]: the published snapshot, the bound addresses, and the tasks serving them.
//!
//! It does not answer queries itself (the `handler` module does).

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use berth_model::discovery::DiscoveryRecords;
use hickory_server::ServerFuture;
use prometheus::Registry;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::handler::{QueryHandler, Shared};
use crate::metrics::Metrics;
use crate::records::Snapshot;
use crate::{DnsError, DnsOptions};

/// Attempts at finding a port free for both UDP and TCP when binding port 0.
const FREE_PORT_ATTEMPTS: usize = 16;

/// An authoritative DNS server for a node's discovery records, on UDP and TCP.
///
/// Share it as an `Arc`: [`publish`](DnsServer::publish) from the task that receives the
/// records, [`bind`](DnsServer::bind) for each address to serve. Dropping the last `Arc`
/// stops serving as [`shutdown`](DnsServer::shutdown) does, without waiting.
pub struct DnsServer {
    shared: Arc<Shared>,
    /// The SOA serial of the next publish.
    serial: AtomicU32,
    /// `true` once shutdown began; each serving task waits for it.
    shutdown: watch::Sender<bool>,
    /// Taken only by bind and shutdown, never by a query.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Copies of the served sockets, for [`sockets`](DnsServer::sockets); emptied by
    /// shutdown.
    copies: Mutex<Vec<DnsSockets>>,
}

/// One served address's UDP socket and TCP listener, as another process can take them
/// over (their descriptors passed over a unix socket) and serve them with
/// [`DnsServer::serve_sockets`]: datagrams and connections queued meanwhile are kept.
#[derive(Debug)]
pub struct DnsSockets {
    pub udp: std::net::UdpSocket,
    pub tcp: std::net::TcpListener,
}

impl DnsSockets {
    /// The address served (the UDP socket's; the TCP listener's is the same).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// New descriptors of the same sockets.
    pub fn try_clone(&self) -> std::io::Result<DnsSockets> {
        Ok(DnsSockets {
            udp: self.udp.try_clone()?,
            tcp: self.tcp.try_clone()?,
        })
    }
}

impl DnsServer {
    /// A server answering nothing yet (every zone-less name goes to the fallback) until
    /// the first [`publish`](DnsServer::publish). Its metrics are registered on `registry`
    /// (a metric already registered there is logged and left as it is).
    pub fn new(options: DnsOptions, registry: &Registry) -> Arc<DnsServer> {
        let metrics = Metrics::new(registry);
        metrics.set_records(0);
        Arc::new(DnsServer {
            shared: Arc::new(Shared {
                options,
                snapshot: ArcSwap::from_pointee(Snapshot::default()),
                metrics,
                bound_addrs: ArcSwap::from_pointee(Vec::new()),
            }),
            serial: AtomicU32::new(1),
            shutdown: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
            copies: Mutex::new(Vec::new()),
        })
    }

    /// Replaces the records answered; the next query sees all of the new ones and none
    /// of the old. Each publish bumps the zones' SOA serial.
    pub fn publish(&self, records: DiscoveryRecords) {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let snapshot = Snapshot::compile(&records, serial, self.shared.options.negative_ttl);
        self.shared.metrics.set_records(snapshot.name_count());
        self.shared.snapshot.store(Arc::new(snapshot));
    }

    /// Serves UDP and TCP on `addr` until shutdown and returns the address bound. Port 0
    /// picks one port free for both protocols. Call it once per address to serve.
    pub async fn bind(&self, addr: SocketAddr) -> Result<SocketAddr, DnsError> {
        if *self.shutdown.borrow() {
            return Err(DnsError::ShutDown);
        }
        let (udp, tcp) = bind_udp_and_tcp(addr).await?;
        self.serve(addr, udp, tcp)
    }

    /// Serves sockets bound elsewhere (another process's, handed over) until shutdown,
    /// and returns their address.
    pub fn serve_sockets(&self, sockets: DnsSockets) -> Result<SocketAddr, DnsError> {
        if *self.shutdown.borrow() {
            return Err(DnsError::ShutDown);
        }
        let addr = sockets.local_addr().map_err(|source| DnsError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            protocol: "udp",
            source,
        })?;
        let udp_error = |source| DnsError::Bind {
            addr,
            protocol: "udp",
            source,
        };
        let tcp_error = |source| DnsError::Bind {
            addr,
            protocol: "tcp",
            source,
        };
        sockets.udp.set_nonblocking(true).map_err(udp_error)?;
        sockets.tcp.set_nonblocking(true).map_err(tcp_error)?;
        let udp = UdpSocket::from_std(sockets.udp).map_err(udp_error)?;
        let tcp = TcpListener::from_std(sockets.tcp).map_err(tcp_error)?;
        self.serve(addr, udp, tcp)
    }

    /// New descriptors of every address's sockets served, to hand to another process.
    pub fn sockets(&self) -> std::io::Result<Vec<DnsSockets>> {
        self.copies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(DnsSockets::try_clone)
            .collect()
    }

    fn serve(
        &self,
        addr: SocketAddr,
        udp: UdpSocket,
        tcp: TcpListener,
    ) -> Result<SocketAddr, DnsError> {
        let bound = udp.local_addr().map_err(|source| DnsError::Bind {
            addr,
            protocol: "udp",
            source,
        })?;
        let copy = udp
            .as_fd()
            .try_clone_to_owned()
            .map(std::net::UdpSocket::from)
            .and_then(|udp| {
                let tcp = tcp.as_fd().try_clone_to_owned()?;
                Ok(DnsSockets {
                    udp,
                    tcp: std::net::TcpListener::from(tcp),
                })
            })
            .map_err(|source| DnsError::Bind {
                addr,
                protocol: "udp",
                source,
            })?;
        self.copies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(copy);
        let mut server = ServerFuture::new(QueryHandler {
            shared: self.shared.clone(),
            local_ip: bound.ip(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, self.shared.options.tcp_idle_timeout);
        self.shared.bound_addrs.rcu(|addrs| {
            let mut addrs = Vec::clone(addrs);
            addrs.push(bound);
            addrs
        });

        let mut stop = self.shutdown.subscribe();
        let task = tokio::spawn(async move {
            tokio::select! {
                // A dropped sender (the server dropped) stops serving too.
                _ = stop.wait_for(|stopping| *stopping) => {}
                ended = server.block_until_done() => {
                    if let Err(e) = ended {
                        tracing::error!(%bound, error = %e, "DNS server stopped serving");
                    }
                    return;
                }
            }
            if let Err(e) = server.shutdown_gracefully().await {
                tracing::debug!(%bound, error = %e, "DNS server shut down with an error");
            }
        });
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        tracing::info!(%bound, "DNS server listening on UDP and TCP");
        Ok(bound)
    }

    /// Stops serving every bound address and waits until their tasks have ended
    /// (in-flight queries are dropped). Later binds fail with [`DnsError::ShutDown`].
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        self.copies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clear();
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for task in tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a DNS serving task failed");
            }
        }
    }

    /// The addresses bound so far.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        Vec::clone(&self.shared.bound_addrs.load())
    }
}

async fn bind_udp_and_tcp(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let udp_error = |source| DnsError::Bind {
        addr,
        protocol: "udp",
        source,
    };
    let tcp_error = |source| DnsError::Bind {
        addr,
        protocol: "tcp",
        source,
    };
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr).await.map_err(udp_error)?;
        let tcp = TcpListener::bind(addr).await.map_err(tcp_error)?;
        return Ok((udp, tcp));
    }
    let mut last = None;
    for _ in 0..FREE_PORT_ATTEMPTS {
        let udp = UdpSocket::bind(addr).await.map_err(udp_error)?;
        let port = udp.local_addr().map_err(udp_error)?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(tcp_error(e)),
        }
    }
    Err(tcp_error(
        last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()),
    ))
}
