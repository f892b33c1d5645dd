//! A node's discovery DNS server and mesh addresses: where the node serves its DNS and
//! its mesh proxy (loopback for local processes, the Docker bridge's gateway for
//! containers), served by [`berth_dns::DnsServer`]. `berth server` checks the addresses
//! and its data plane process binds them (`dataplane::dns`); `berth agent` binds them in
//! its own process.
//!
//! What it does not do: decide what the server answers (the control plane publishes
//! records).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_dns::{DnsOptions, DnsServer, DnsSockets, Fallback};

/// The port Docker's containers send DNS queries to (a container's resolver is an
/// address only).
const DNS_PORT: u16 = 53;

/// Where the node serves DNS and the mesh, as `--dns-listen` and `--mesh-ip` asked, or
/// by default.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAddresses {
    /// DNS addresses to bind, and whether failing to bind one stops the server (asked
    /// for explicitly) or is only logged (a default).
    pub dns: Vec<(SocketAddr, bool)>,
    pub mesh_ips: Vec<IpAddr>,
}

impl NodeAddresses {
    /// `dns_listen` and `mesh_ips` as given; empty means the defaults: loopback, plus the
    /// Docker bridge's gateway when tasks run on Docker (`gateway`). `--dns-listen none`
    /// serves no DNS.
    pub fn new(
        dns_listen: &[String],
        mesh_ips: &[IpAddr],
        gateway: Option<IpAddr>,
    ) -> Result<NodeAddresses> {
        let defaults: Vec<IpAddr> = std::iter::once(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .chain(gateway)
            .collect();
        let dns = if dns_listen.is_empty() {
            defaults
                .iter()
                .map(|ip| (SocketAddr::new(*ip, DNS_PORT), false))
                .collect()
        } else if dns_listen.iter().any(|d| d == "none") {
            if dns_listen.len() > 1 {
                bail!("--dns-listen none: serves no DNS, so it cannot be given with addresses");
            }
            Vec::new()
        } else {
            dns_listen
                .iter()
                .map(|d| {
                    d.parse::<SocketAddr>()
                        .map(|a| (a, true))
                        .with_context(|| format!("--dns-listen {d:?}: expected IP:PORT or none"))
                })
                .collect::<Result<_>>()?
        };
        for (a, _) in &dns {
            if a.ip().is_unspecified() {
                bail!(
                    "--dns-listen {a}: give a specific address (the DNS server answers a client \
                     alias with the address a query arrived on)"
                );
            }
        }
        let mesh_ips = if mesh_ips.is_empty() {
            defaults
        } else {
            mesh_ips.to_vec()
        };
        Ok(NodeAddresses { dns, mesh_ips })
    }
}

/// Starts the DNS server on `addrs.dns`; returns it with the addresses it serves on.
pub async fn start_dns(
    addrs: &NodeAddresses,
    fallback: &str,
    registry: &prometheus::Registry,
) -> Result<(Arc<DnsServer>, Vec<SocketAddr>)> {
    start_dns_with(addrs, fallback, registry, Vec::new()).await
}

/// [`start_dns`], serving an address on sockets `handed` over by another process when
/// one of them fits it (same IP, and the same port unless the address asks for port 0)
/// instead of binding it; handed sockets that fit no address are closed.
pub async fn start_dns_with(
    addrs: &NodeAddresses,
    fallback: &str,
    registry: &prometheus::Registry,
    mut handed: Vec<DnsSockets>,
) -> Result<(Arc<DnsServer>, Vec<SocketAddr>)> {
    let fallback = match fallback {
        "refuse" => Fallback::Refuse,
        _ => Fallback::from_resolv_conf(Path::new("/etc/resolv.conf"))
            .context("reading /etc/resolv.conf for --dns-fallback forward")?,
    };
    let options = DnsOptions {
        node_proxy_ips: addrs
            .mesh_ips
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect(),
        fallback,
        ..DnsOptions::default()
    };
    let server = DnsServer::new(options, registry);
    let mut bound = Vec::new();
    for (addr, required) in &addrs.dns {
        let fits = |s: &DnsSockets| {
            s.local_addr()
                .is_ok_and(|a| a.ip() == addr.ip() && (addr.port() == 0 || a.port() == addr.port()))
        };
        if let Some(i) = handed.iter().position(fits) {
            let served = server
                .serve_sockets(handed.swap_remove(i))
                .with_context(|| format!("serving the handed DNS sockets of {addr}"))?;
            tracing::info!(addr = %served, "discovery DNS listening (sockets handed over)");
            bound.push(served);
            continue;
        }
        match server.bind(*addr).await {
            Ok(a) => {
                tracing::info!(addr = %a, "discovery DNS listening");
                bound.push(a);
            }
            Err(e) if *required => {
                return Err(e).with_context(|| format!("--dns-listen {addr}"));
            }
            Err(e) => tracing::warn!(addr = %addr, "discovery DNS not served there: {e}"),
        }
    }
    Ok((server, bound))
}

/// The DNS server containers are told about: the one on the Docker bridge's gateway on
/// port 53, the only one Docker can make their resolver (a loopback address would be the
/// container's own). `None` when it is not served: containers keep Docker's resolver.
pub fn container_dns_server(bound: &[SocketAddr], gateway: Option<IpAddr>) -> Option<SocketAddr> {
    let gw = gateway?;
    bound
        .iter()
        .find(|a| a.ip() == gw && a.port() == DNS_PORT)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_loopback_and_the_gateway_and_may_fail() {
        let gw: IpAddr = "172.17.0.1".parse().unwrap();
        let a = NodeAddresses::new(&[], &[], Some(gw)).unwrap();
        assert_eq!(
            a.dns,
            vec![
                ("127.0.0.1:53".parse().unwrap(), false),
                ("172.17.0.1:53".parse().unwrap(), false)
            ]
        );
        assert_eq!(a.mesh_ips, vec!["127.0.0.1".parse::<IpAddr>().unwrap(), gw]);
        let a = NodeAddresses::new(&[], &[], None).unwrap();
        assert_eq!(a.mesh_ips.len(), 1);
    }

    #[test]
    fn given_addresses_must_bind_and_none_serves_nothing() {
        let a = NodeAddresses::new(
            &["127.0.0.2:0".into()],
            &["127.0.0.2".parse().unwrap()],
            None,
        )
        .unwrap();
        assert_eq!(a.dns, vec![("127.0.0.2:0".parse().unwrap(), true)]);
        assert_eq!(a.mesh_ips, vec!["127.0.0.2".parse::<IpAddr>().unwrap()]);
        assert!(NodeAddresses::new(&["none".into()], &[], None)
            .unwrap()
            .dns
            .is_empty());
        let e = NodeAddresses::new(&["localhost".into()], &[], None).unwrap_err();
        assert!(
            format!("{e:#}").contains("--dns-listen \"localhost\""),
            "{e:#}"
        );
        assert!(NodeAddresses::new(&["0.0.0.0:53".into()], &[], None).is_err());
        assert!(NodeAddresses::new(&["none".into(), "127.0.0.1:53".into()], &[], None).is_err());
    }

    #[test]
    fn containers_are_told_the_gateway_server_on_port_53_only() {
        let gw: IpAddr = "172.17.0.1".parse().unwrap();
        let bound: Vec<SocketAddr> = vec![
            "127.0.0.1:53".parse().unwrap(),
            "172.17.0.1:53".parse().unwrap(),
        ];
        assert_eq!(container_dns_server(&bound, Some(gw)), Some(bound[1]));
        // Loopback would be the container's own: none rather than a broken resolver.
        assert_eq!(container_dns_server(&bound[..1], Some(gw)), None);
        assert_eq!(container_dns_server(&bound, None), None);
        let other_port: Vec<SocketAddr> = vec!["172.17.0.1:5353".parse().unwrap()];
        assert_eq!(container_dns_server(&other_port, Some(gw)), None);
    }
}
