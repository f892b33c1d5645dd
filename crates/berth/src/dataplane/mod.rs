//! The node's data plane as a process of its own: `berth dataplane` hosts the proxy
//! (load balancer listeners, mesh listeners, the mesh inbound listener and the health
//! checks) and the node's discovery DNS, and keeps serving its last configuration and
//! records while `berth server` is stopped, restarted, killed or replaced by a new
//! binary.
//!
//! - `command`: `berth dataplane`'s command line (the process, or `upgrade`).
//! - `process`: `berth dataplane` itself, answering on `<data-dir>/dataplane.sock`;
//!   `lock`: the data dir's lock it holds.
//! - `protocol`: what crosses the socket (JSON over HTTP/1.1), and the socket client.
//! - `client`: the server's side, [`client::RemoteDataPlane`], control's `DataPlane`
//!   served by that process.
//! - `launch`: finding the data plane of a data dir, or starting one (and upgrading one
//!   of another executable, or started with other options).
//! - `handover`: what crosses from a running data plane to the one taking over: the
//!   listening sockets (SCM_RIGHTS), the configuration and the target health;
//!   `upgrade`: both processes' sides of it; `executable`: the fingerprint telling
//!   whether a data plane runs the server's own binary.
//! - `metric_families`: the proxy's metric families carried over the socket and
//!   collected into the server's registry (the DNS server's `berth_dns_*` among them).
//! - `dns`: the node's discovery DNS, served by the data plane from the last records
//!   the server sent (`PUT /v1/discovery-records`), so names resolve while the server is
//!   away; `discovery_client`: the server's side, [`discovery_client::RemoteDiscovery`],
//!   control's `Discovery` served by that process.
//!
//! What it does not do: run on `berth agent` nodes (their proxy and DNS stay in the
//! agent's process).

pub mod client;
pub mod command;
pub mod discovery_client;
pub mod dns;
pub mod executable;
pub mod handover;
pub mod launch;
pub mod lock;
pub mod metric_families;
pub mod process;
pub mod protocol;
pub mod upgrade;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The environment variable marking the data plane process (so tools counting a data
/// dir's task processes can leave it out).
pub const DATA_PLANE_ENV: &str = "BERTH_DATA_PLANE";

/// Where a data dir's data plane answers, writes its pid, holds its lock and logs.
#[derive(Debug, Clone)]
pub struct DataPlanePaths {
    pub socket: PathBuf,
    pub pid: PathBuf,
    pub lock: PathBuf,
    pub log: PathBuf,
}

impl DataPlanePaths {
    pub fn of(data_dir: &Path) -> DataPlanePaths {
        DataPlanePaths {
            socket: data_dir.join("dataplane.sock"),
            pid: data_dir.join("dataplane.pid"),
            lock: data_dir.join("dataplane.lock"),
            log: data_dir.join("dataplane.log"),
        }
    }
}

/// The data plane threads to start: as given, else one per CPU core.
pub fn threads_or_default(given: Option<u16>) -> usize {
    given.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// The options a data plane is started with. A server finding one started with other
/// options replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
#[serde(rename_all = "camelCase")]
pub struct DataPlaneOptions {
    /// IP the load balancer listeners bind to.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen_ip: IpAddr,
    /// An address the mesh's client-alias listeners bind on (repeatable).
    #[arg(long = "mesh-ip", value_name = "IP")]
    #[serde(default)]
    pub mesh_ips: Vec<IpAddr>,
    /// Where the mesh's inbound listener binds (port 0: a free port).
    #[arg(long, value_name = "ADDR")]
    pub mesh_inbound_addr: SocketAddr,
    /// Threads serving the listeners' connections, each on its own single-threaded
    /// runtime; 0 serves them on the data plane's shared runtime (absent from an older
    /// data plane's identity: 0).
    #[arg(long, value_name = "N", default_value_t = 0)]
    #[serde(default)]
    pub data_plane_threads: usize,
    /// The discovery DNS (absent from an older data plane's identity: defaults).
    #[command(flatten)]
    #[serde(default)]
    pub dns: dns::DataPlaneDnsOptions,
}

impl DataPlaneOptions {
    /// The command line arguments giving these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--listen-ip".to_string(), self.listen_ip.to_string()];
        for ip in &self.mesh_ips {
            args.push("--mesh-ip".into());
            args.push(ip.to_string());
        }
        args.push("--mesh-inbound-addr".into());
        args.push(self.mesh_inbound_addr.to_string());
        args.push("--data-plane-threads".into());
        args.push(self.data_plane_threads.to_string());
        args.extend(self.dns.to_args());
        args
    }

    /// What differs from `other`, in words (empty when nothing does).
    pub fn differences(&self, other: &DataPlaneOptions) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen_ip != other.listen_ip {
            out.push(format!(
                "--listen-ip {} instead of {}",
                self.listen_ip, other.listen_ip
            ));
        }
        if self.mesh_ips != other.mesh_ips {
            out.push(format!(
                "mesh addresses {:?} instead of {:?}",
                self.mesh_ips, other.mesh_ips
            ));
        }
        if self.mesh_inbound_addr != other.mesh_inbound_addr {
            out.push(format!(
                "--mesh-inbound-addr {} instead of {}",
                self.mesh_inbound_addr, other.mesh_inbound_addr
            ));
        }
        if self.data_plane_threads != other.data_plane_threads {
            out.push(format!(
                "--data-plane-threads {} instead of {}",
                self.data_plane_threads, other.data_plane_threads
            ));
        }
        out.extend(self.dns.differences(&other.dns));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DataPlaneOptions {
        DataPlaneOptions {
            listen_ip: "127.0.0.1".parse().unwrap(),
            mesh_ips: vec!["127.0.0.1".parse().unwrap(), "172.17.0.1".parse().unwrap()],
            mesh_inbound_addr: "127.0.0.1:0".parse().unwrap(),
            data_plane_threads: 2,
            dns: dns::DataPlaneDnsOptions {
                listen: vec!["127.0.0.1:0".into(), "172.17.0.1:53".into()],
                fallback: "refuse".into(),
                gateway: Some("172.17.0.1".parse().unwrap()),
            },
        }
    }

    #[test]
    fn options_round_trip_through_the_command_line() {
        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: DataPlaneOptions,
        }
        let args = options().to_args();
        let parsed = <Cli as clap::Parser>::try_parse_from(
            std::iter::once("dataplane".to_string()).chain(args),
        )
        .unwrap();
        assert_eq!(parsed.options, options());
        // The defaults round-trip too: no address, forwarding, no gateway.
        let mut defaults = options();
        defaults.dns = dns::DataPlaneDnsOptions::default();
        let parsed = <Cli as clap::Parser>::try_parse_from(
            std::iter::once("dataplane".to_string()).chain(defaults.to_args()),
        )
        .unwrap();
        assert_eq!(parsed.options, defaults);
        let none = [
            "dataplane",
            "--mesh-inbound-addr",
            "127.0.0.1:0",
            "--dns-listen",
            "none",
        ];
        let parsed = <Cli as clap::Parser>::try_parse_from(none).unwrap();
        assert_eq!(parsed.options.data_plane_threads, 0);
        assert_eq!(parsed.options.dns.listen, vec!["none".to_string()]);
        assert_eq!(parsed.options.dns.fallback, "forward");
        let bad = [
            "dataplane",
            "--mesh-inbound-addr",
            "127.0.0.1:0",
            "--dns-fallback",
            "x",
        ];
        let e = <Cli as clap::Parser>::try_parse_from(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--dns-fallback"), "{e}");
    }

    #[test]
    fn differences_name_each_option_that_changed() {
        assert!(options().differences(&options()).is_empty());
        let mut other = options();
        other.listen_ip = "0.0.0.0".parse().unwrap();
        other.mesh_inbound_addr = "127.0.0.1:15443".parse().unwrap();
        let d = other.differences(&options());
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].contains("--listen-ip 0.0.0.0 instead of 127.0.0.1"),
            "{d:?}"
        );
        assert!(
            d[1].contains("--mesh-inbound-addr 127.0.0.1:15443"),
            "{d:?}"
        );
        let mut other = options();
        other.data_plane_threads = 0;
        assert_eq!(
            other.differences(&options()),
            vec!["--data-plane-threads 0 instead of 2".to_string()]
        );
        let mut other = options();
        other.dns.listen = vec!["127.0.0.1:5353".into()];
        other.dns.fallback = "forward".into();
        other.dns.gateway = None;
        let d = other.differences(&options());
        assert_eq!(
            d,
            vec![
                r#"--dns-listen ["127.0.0.1:5353"] instead of ["127.0.0.1:0", "172.17.0.1:53"]"#,
                "--dns-fallback forward instead of refuse",
                "--dns-gateway none instead of 172.17.0.1",
            ],
        );
    }
}
