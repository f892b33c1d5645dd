//! berth-dns: service discovery. An authoritative DNS server, on UDP and TCP, answering
//! a node's [`DiscoveryRecords`] as the control plane publishes them.
//!
//! What it does:
//! - A and SRV answers for the listed names (case-insensitive, with or without the
//!   trailing dot), with each name's TTL and the authoritative flag; SRV answers carry
//!   their targets' A records in the additional section.
//! - Client aliases of the mesh (`node_proxy: true`) answer A with the node proxy's
//!   address the query arrived on ([`DnsOptions::node_proxy_ips`]).
//! - NXDOMAIN with the zone's SOA (`ns.<zone>`, serial bumped per publish, a short
//!   negative TTL) for unlisted names inside a zone; an empty NOERROR for a listed name
//!   asked for another type, a zone apex or an empty non-terminal.
//! - Every other name goes to the [`Fallback`]: REFUSED, or relayed to upstream servers
//!   (for instance the node's resolv.conf).
//! - Metrics `berth_dns_queries_total{type, result}` and `berth_dns_records`.
//!
//! What it does not do: it never reads the store or decides which tasks are healthy (the
//! control plane publishes records), and it does not cache forwarded answers, sign zones
//! (no DNSSEC) or accept dynamic updates. It links no crypto provider.
//!
//! Queries take no lock: a publish compiles the records into an immutable lookup map and
//! swaps it in with arc-swap; a query loads it once.
//!
//! hickory-server's `ServerFuture` does the sockets and message framing; the answers come
//! from a `RequestHandler` of berth's own rather than its `Catalog` of `Authority`s: a
//! client alias needs the local address the query arrived on (one handler per bound
//! address knows it), client aliases lie outside every zone, names outside the zones go
//! to one fallback, and a whole snapshot is swapped at once, where the catalog routes by
//! zone and its in-memory authority updates records under a lock.
//!
//! Layout:
//! - `server`: [`DnsServer`]: publish, bind (one hickory-server `ServerFuture` per
//!   address), shutdown.
//! - `handler`: one query: lookup, answer or fallback.
//! - `records`: the compiled snapshot: records by lowercase name, zones and their SOA.
//! - `forward`: relaying a query to upstream servers.
//! - [`options`]: [`DnsOptions`], [`Fallback`] and their defaults; `metrics`.

mod forward;
mod handler;
mod metrics;
pub mod options;
mod records;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use berth_model::discovery::DiscoveryRecords;
pub use options::{DnsOptions, Fallback};
pub use server::{DnsServer, DnsSockets};

/// What can go wrong running a DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The address could not be bound (in use, not local, or a privileged port).
    #[error("cannot bind the DNS server's {protocol} socket on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        /// `udp` or `tcp`.
        protocol: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The resolver configuration given for forwarding could not be read.
    #[error("cannot read the resolver configuration {path}: {source}")]
    ResolvConf {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `bind` was called after `shutdown`.
    #[error("the DNS server is shut down; bind is allowed only before shutdown")]
    ShutDown,
}
