//! The node's discovery DNS in the data plane process: the options it is started with
//! ([`DataPlaneDnsOptions`]: `--dns-listen`, `--dns-fallback`, `--dns-gateway`), the
//! DNS server it binds from them ([`serve`], the address rules and messages of
//! `node_discovery`), and the socket route the server publishes records on
//! ([`routes`]: `PUT /v1/discovery-records`). The data plane answers from the last
//! records it was given for as long as it runs, so names resolve while the server is
//! stopped, restarting or killed.
//!
//! A data plane of a protocol older than [`DNS_PROTOCOL`] serves no DNS: the server
//! replaces it ([`missing_from`] names why), as it replaces one started with other
//! options.
//!
//! A handover to a new data plane ([`super::upgrade`]) passes the DNS sockets and the
//! last records on ([`NodeDns::last_records`]), so names answer throughout.
//!
//! What it does not do: build the records (the control plane does, and the server sends
//! them: `super::discovery_client`), or keep them across a restart of the data plane
//! itself: a data plane started anew answers nothing until the server publishes again.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Result;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::{Json, Router};
use berth_dns::{DnsServer, DnsSockets};
use berth_model::discovery::DiscoveryRecords;
use serde::{Deserialize, Serialize};

use super::protocol::{ErrorBody, Identity};
use super::DataPlaneOptions;
use crate::node_discovery::{start_dns_with, NodeAddresses};

/// The first socket protocol version whose data plane serves the discovery DNS (and
/// answers `PUT /v1/discovery-records`).
pub const DNS_PROTOCOL: u32 = 2;

/// The route the server publishes the discovery records on.
pub const RECORDS_ROUTE: &str = "/v1/discovery-records";

/// The largest record set accepted (one name per service and task, at most).
const RECORDS_LIMIT: usize = 64 * 1024 * 1024;

/// Where and how the data plane serves the node's discovery DNS: `berth server`'s
/// `--dns-listen` and `--dns-fallback` as given, and the Docker bridge's gateway the
/// default addresses include.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(rename_all = "camelCase")]
pub struct DataPlaneDnsOptions {
    /// Where the discovery DNS server listens (repeatable; port 0 picks a free port).
    /// Default: 127.0.0.1:53 and --dns-gateway on port 53, each skipped with a warning
    /// when it cannot be bound. `none` serves no DNS.
    #[arg(long = "dns-listen", value_name = "ADDR")]
    #[serde(default)]
    pub listen: Vec<String>,
    /// Names outside berth's namespaces: `forward` them to the resolvers of
    /// /etc/resolv.conf, or `refuse` them.
    #[arg(long = "dns-fallback", default_value = "forward", value_parser = ["forward", "refuse"])]
    #[serde(default = "forward")]
    pub fallback: String,
    /// The Docker bridge's gateway, where containers send their queries (a default DNS
    /// address, port 53).
    #[arg(long = "dns-gateway", value_name = "IP")]
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

fn forward() -> String {
    "forward".to_string()
}

impl Default for DataPlaneDnsOptions {
    fn default() -> Self {
        DataPlaneDnsOptions {
            listen: Vec::new(),
            fallback: forward(),
            gateway: None,
        }
    }
}

impl DataPlaneDnsOptions {
    /// The command line arguments giving these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for l in &self.listen {
            args.push("--dns-listen".to_string());
            args.push(l.clone());
        }
        args.push("--dns-fallback".into());
        args.push(self.fallback.clone());
        if let Some(gw) = self.gateway {
            args.push("--dns-gateway".into());
            args.push(gw.to_string());
        }
        args
    }

    /// What differs from `other`, in words (empty when nothing does).
    pub fn differences(&self, other: &DataPlaneDnsOptions) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen != other.listen {
            out.push(format!(
                "--dns-listen {:?} instead of {:?}",
                self.listen, other.listen
            ));
        }
        if self.fallback != other.fallback {
            out.push(format!(
                "--dns-fallback {} instead of {}",
                self.fallback, other.fallback
            ));
        }
        if self.gateway != other.gateway {
            let shown = |g: Option<IpAddr>| g.map_or("none".to_string(), |g| g.to_string());
            out.push(format!(
                "--dns-gateway {} instead of {}",
                shown(self.gateway),
                shown(other.gateway)
            ));
        }
        out
    }
}

/// Why the data plane that answered with `identity` cannot serve this server's DNS, if
/// it cannot: it is of a protocol older than [`DNS_PROTOCOL`].
pub fn missing_from(identity: &Identity) -> Option<String> {
    (identity.protocol < DNS_PROTOCOL).then(|| {
        format!(
            "no discovery DNS (protocol {}, DNS from protocol {DNS_PROTOCOL})",
            identity.protocol
        )
    })
}

/// The DNS addresses `options` ask for, checked as `berth server` checks them.
pub fn addresses(options: &DataPlaneOptions) -> Result<NodeAddresses> {
    NodeAddresses::new(&options.dns.listen, &options.mesh_ips, options.dns.gateway)
}

/// The node's DNS server in the data plane, with the last records it was given (a
/// handover passes them on, with the sockets, so names answer throughout).
pub struct NodeDns {
    pub server: Arc<DnsServer>,
    last: std::sync::Mutex<Option<DiscoveryRecords>>,
}

impl NodeDns {
    /// Answers `records` from now on.
    pub fn publish(&self, records: DiscoveryRecords) {
        *self.last.lock().expect("records lock") = Some(records.clone());
        self.server.publish(records);
    }

    /// The records answered, if any were published.
    pub fn last_records(&self) -> Option<DiscoveryRecords> {
        self.last.lock().expect("records lock").clone()
    }
}

/// Starts the DNS server `options` ask for, its metrics in `registry`, on the sockets
/// `handed` over where they fit (see `start_dns_with`) and on sockets of its own
/// elsewhere; returns it with the addresses it serves on. It answers nothing until
/// records are published.
pub async fn serve(
    options: &DataPlaneOptions,
    registry: &prometheus::Registry,
    handed: Vec<DnsSockets>,
) -> Result<(Arc<NodeDns>, Vec<SocketAddr>)> {
    let mut addrs = addresses(options)?;
    // The client aliases answer with the mesh addresses the data plane was given.
    addrs.mesh_ips = options.mesh_ips.clone();
    let (server, bound) = start_dns_with(&addrs, &options.dns.fallback, registry, handed).await?;
    let dns = NodeDns {
        server,
        last: std::sync::Mutex::new(None),
    };
    Ok((Arc::new(dns), bound))
}

/// The records route, answering from `dns`.
pub fn routes(dns: Arc<NodeDns>) -> Router {
    Router::new()
        .route(RECORDS_ROUTE, put(publish))
        .layer(DefaultBodyLimit::max(RECORDS_LIMIT))
        .with_state(dns)
}

/// `PUT /v1/discovery-records`: 204 once the records answer, 400 on a body that does
/// not parse (the previous records keep answering).
async fn publish(State(dns): State<Arc<NodeDns>>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<DiscoveryRecords>(&body) {
        Ok(records) => {
            dns.publish(records);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(ErrorBody {
                error: format!("the discovery records do not parse: {e}"),
            }),
        )
            .into_response(),
    }
}

#[cfg(test)]
#[path = "dns_tests.rs"]
pub(crate) mod tests;
