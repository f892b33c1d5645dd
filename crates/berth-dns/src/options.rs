//! What a [`DnsServer`](crate::DnsServer) is told when it is created: the node's mesh
//! proxy addresses, what to do with names outside its zones, and its timeouts.
//!
//! It does not validate addresses against the machine (binding does that).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::DnsError;

/// Seconds a resolver may cache "this name does not exist": the TTL and `minimum` of the
/// SOA record sent with NXDOMAIN and empty answers. Short, as records follow tasks.
pub const DEFAULT_NEGATIVE_TTL_SECONDS: u32 = 5;

/// How long one upstream server has to answer a forwarded query before the next is tried.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP client may stay silent before the server closes its connection.
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The port of a `nameserver` line in resolv.conf.
pub const DNS_PORT: u16 = 53;

/// How a DNS server behaves, fixed for its lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsOptions {
    /// The addresses this node's mesh proxy listens on. An A query for a client alias
    /// (`node_proxy: true`) is answered with the address the query arrived on when it is
    /// one of these (so each network reaches the proxy on its own side), else with the
    /// first; with none, the answer is empty.
    pub node_proxy_ips: Vec<Ipv4Addr>,
    /// What happens to names outside every zone that are not listed.
    pub fallback: Fallback,
    /// Per upstream server, see [`DEFAULT_FORWARD_TIMEOUT`].
    pub forward_timeout: Duration,
    /// See [`DEFAULT_NEGATIVE_TTL_SECONDS`].
    pub negative_ttl: u32,
    /// See [`DEFAULT_TCP_IDLE_TIMEOUT`].
    pub tcp_idle_timeout: Duration,
}

impl Default for DnsOptions {
    fn default() -> Self {
        DnsOptions {
            node_proxy_ips: Vec::new(),
            fallback: Fallback::Refuse,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            negative_ttl: DEFAULT_NEGATIVE_TTL_SECONDS,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
        }
    }
}

/// The answer for a name berth does not serve (outside every zone, not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Fallback {
    /// REFUSED: the server only answers for berth's names.
    #[default]
    Refuse,
    /// Relay the query to these servers in order; the first answer within
    /// [`DnsOptions::forward_timeout`] is returned, SERVFAIL when none answers. A server
    /// that is one of this DNS server's own bound addresses is skipped, so a node whose
    /// resolv.conf points at berth does not loop.
    Forward(Vec<SocketAddr>),
}

impl Fallback {
    /// The `nameserver` lines of a resolv.conf file (port 53), in order. IPv6 addresses
    /// with a zone index (`fe80::1%eth0`) are skipped. A file without any nameserver gives
    /// [`Fallback::Refuse`].
    pub fn from_resolv_conf(path: impl AsRef<Path>) -> Result<Fallback, DnsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| DnsError::ResolvConf {
            path: path.to_path_buf(),
            source,
        })?;
        let servers = parse_nameservers(&text);
        if servers.is_empty() {
            tracing::warn!(path = %path.display(), "no nameserver in the resolver configuration; names outside berth's zones are refused");
            return Ok(Fallback::Refuse);
        }
        Ok(Fallback::Forward(servers))
    }
}

fn parse_nameservers(text: &str) -> Vec<SocketAddr> {
    let mut servers = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(address) = words.next() else {
            continue;
        };
        match address.parse::<IpAddr>() {
            Ok(ip) => {
                let server = SocketAddr::new(ip, DNS_PORT);
                if !servers.contains(&server) {
                    servers.push(server);
                }
            }
            Err(_) => tracing::debug!(
                address,
                "nameserver skipped: not an IP address without zone index"
            ),
        }
    }
    servers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_in_order_on_port_53_without_comments_or_zone_indexes() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  2001:db8::1 # v6\n\
                    ;nameserver 10.9.9.9\nnameserver fe80::1%eth0\nnameserver 10.0.0.2\noptions ndots:5\nnameserver\n";
        assert_eq!(
            parse_nameservers(text),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::1]:53".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn resolv_conf_file_is_read_and_an_empty_one_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.53\n").unwrap();
        assert_eq!(
            Fallback::from_resolv_conf(&path).unwrap(),
            Fallback::Forward(vec!["192.0.2.53:53".parse().unwrap()])
        );
        std::fs::write(&path, "search internal\n").unwrap();
        assert_eq!(Fallback::from_resolv_conf(&path).unwrap(), Fallback::Refuse);
        let missing = dir.path().join("missing");
        let err = Fallback::from_resolv_conf(&missing).unwrap_err();
        assert!(
            matches!(err, DnsError::ResolvConf { ref path, .. } if *path == missing),
            "{err}"
        );
    }
}
