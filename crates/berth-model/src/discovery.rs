//! The contract between the control plane and a node's DNS server: the names berth
//! answers for ([`DiscoveryRecords`]), built by the control plane from the healthy tasks
//! of services with `serviceRegistries` or `serviceConnectConfiguration`, served by
//! `berth-dns`.
//!
//! Plain serde types, camelCase JSON. What it does not do: decide which tasks are
//! healthy (the control plane does, and puts up to 8 unhealthy ones in when a service
//! has no healthy task, as Cloud Map fails open) or answer queries (berth-dns does).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Seconds a DNS answer may be cached when a namespace does not say otherwise.
pub const DEFAULT_DNS_TTL_SECONDS: u32 = 5;

/// Everything a node's DNS server answers for. A snapshot: each one replaces the last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryRecords {
    /// The zones the server is authoritative for (namespace names such as `internal`,
    /// lowercase, no trailing dot). A name inside one of them that [`names`] does not
    /// list gets NXDOMAIN; a name outside every zone and not listed goes to the
    /// server's fallback (forwarded or refused).
    ///
    /// [`names`]: DiscoveryRecords::names
    pub zones: Vec<String>,
    /// The names answered, fully qualified without the trailing dot (`orders.internal`,
    /// or a client alias such as `orders`, which may lie outside every zone).
    pub names: Vec<DnsName>,
}

/// One name and its answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsName {
    /// Lowercase, no trailing dot.
    pub name: String,
    /// Seconds the answers may be cached.
    pub ttl: u32,
    /// A client alias of the mesh: answer A with the address of this node's mesh proxy
    /// as the asker reaches it (the address the query arrived on, when the proxy listens
    /// there), not with the tasks' addresses.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub node_proxy: bool,
    /// A records: tasks' own IPs (awsvpc), or a task's host for an SRV target's name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<Ipv4Addr>,
    /// SRV records: `priority weight port target`, for tasks reached on a host port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srv: Vec<SrvRecord>,
}

/// One SRV record. Cloud Map fixes priority and weight at 1; so does berth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// A name listed in the same [`DiscoveryRecords`] with an A record.
    pub target: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_as_camel_case_json_and_skip_empty_answers() {
        let r = DiscoveryRecords {
            zones: vec!["internal".into()],
            names: vec![
                DnsName {
                    name: "orders".into(),
                    ttl: 5,
                    node_proxy: true,
                    a: vec![],
                    srv: vec![],
                },
                DnsName {
                    name: "orders.internal".into(),
                    ttl: 5,
                    node_proxy: false,
                    a: vec![],
                    srv: vec![SrvRecord {
                        priority: 1,
                        weight: 1,
                        port: 32768,
                        target: "t1.orders.internal".into(),
                    }],
                },
            ],
        };
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["names"][0]["nodeProxy"], true);
        assert!(json["names"][0].get("a").is_none());
        assert!(json["names"][1].get("nodeProxy").is_none());
        assert_eq!(json["names"][1]["srv"][0]["port"], 32768);
        let back: DiscoveryRecords = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
