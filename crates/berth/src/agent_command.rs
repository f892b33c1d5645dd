//! `berth agent`: this machine as a container instance of a cluster whose control plane
//! runs elsewhere (`berth server --node-listen`). It joins with the token once, keeps
//! its instance id and credentials in `--data-dir`, registers the instance and runs the
//! tasks placed on it through its runtime, reporting their state over the node link.
//!
//! When the control plane is unreachable the agent keeps every task running as it is
//! and retries; nothing is stopped for lack of a control plane.
//!
//! The node serves what a server's node serves for its own tasks (`node_proxy`): the
//! load balancers whose `berth.nodes` attribute chooses its instance, on `--listen-ip`;
//! the mesh's client-alias listeners on `--mesh-ip`; a mesh inbound listener
//! (`--mesh-inbound-addr`, registered as `berth.mesh-inbound`, so the other nodes'
//! proxies reach its tasks over mutual TLS through it); and the discovery DNS server
//! (`--dns-listen`), which its tasks are told about. Each keeps the last configuration
//! it read while the control plane is away.
//!
//! What it does not do: decide target health for the control plane (the servers' health
//! checks do), or hold the mesh CA (its certificates come over the node link).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_agent::{Agent, AgentConfig};
use berth_node_link::{JoinToken, LinkSettings, RemoteControl};
use tokio::sync::watch;

use crate::data_plane::ProxyDataPlane;
use crate::node_discovery::{container_dns_server, start_dns, NodeAddresses};
use crate::server::{instance_id, make_runtime, TaskDnsServers};

#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The control plane's node link: `https://HOST:PORT` (its `--node-listen`).
    #[arg(long, env = "BERTH_SERVER")]
    pub server: String,
    /// The join token `berth server --node-listen` printed; needed on the first start
    /// only.
    #[arg(long, env = "BERTH_JOIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where the agent keeps its instance id, credentials and task state.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth-agent")]
    pub data_dir: PathBuf,
    /// The cluster this instance joins.
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// The address load balancer targets on this node use.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_address: String,
    /// How tasks run: `docker`, `process`, or `auto` (Docker when its socket answers).
    #[arg(long, env = "BERTH_RUNTIME", default_value = "auto", value_parser = ["auto", "process", "docker"])]
    pub runtime: String,
    /// Where the node's API listens (the control plane asks it for the logs and resource
    /// use of this node's tasks, and runs exec through it); port 0 picks a free port.
    /// Registered as the instance attribute `berth.node-api`, on --advertise-address when
    /// bound on every address.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:7072")]
    pub node_api_addr: std::net::SocketAddr,
    /// IP the listeners of the load balancers this node serves bind to (those whose
    /// `berth.nodes` attribute chooses this instance).
    #[arg(long, env = "BERTH_LISTEN_IP", default_value = "0.0.0.0")]
    pub listen_ip: std::net::IpAddr,
    /// Threads serving the connections of the load balancers and the mesh, each on its
    /// own single-threaded runtime; 0 serves them on the data plane's shared runtime.
    /// Default: one per CPU core.
    #[arg(long, env = "BERTH_DATA_PLANE_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub data_plane_threads: Option<u16>,
    /// A custom attribute of this container instance (repeatable), for memberOf
    /// placement constraints and spread strategies; as `berth server --attribute`.
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = crate::server::parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Offer this instance as managed capacity: only FARGATE tasks (launchType FARGATE,
    /// or the FARGATE and FARGATE_SPOT capacity providers) are placed on it, and no
    /// EC2 task. It registers the attribute `berth.capacity=managed`.
    #[arg(long)]
    pub managed_capacity: bool,
    /// Where the discovery DNS server listens (repeatable; port 0 picks a free port; the
    /// first address is written to <data-dir>/dns.addr). Default: 127.0.0.1:53 and, with
    /// the Docker runtime, the Docker bridge's gateway on port 53, each skipped with a
    /// warning when it cannot be bound. `none` serves no DNS.
    #[arg(long = "dns-listen", value_name = "ADDR")]
    pub dns_listen: Vec<String>,
    /// Names outside berth's namespaces: `forward` them to the resolvers of
    /// /etc/resolv.conf, or `refuse` them.
    #[arg(long, default_value = "forward", value_parser = ["forward", "refuse"])]
    pub dns_fallback: String,
    /// An address the mesh's client-alias listeners bind on (repeatable). Default:
    /// 127.0.0.1 and, with the Docker runtime, the Docker bridge's gateway.
    #[arg(long = "mesh-ip", value_name = "IP")]
    pub mesh_ip: Vec<std::net::IpAddr>,
    /// Where the mesh's inbound listener (mutual TLS from the proxies of other nodes)
    /// binds; port 0 picks a free port. Default: --listen-ip, port 15443. Other nodes
    /// reach it on --advertise-address when it binds every address.
    #[arg(long, value_name = "ADDR")]
    pub mesh_inbound_addr: Option<std::net::SocketAddr>,
    /// Where this node's Prometheus metrics (its proxy, mesh and DNS) are served at
    /// `/metrics`, plain HTTP; off unless given. Port 0 picks a free port, written to
    /// <data-dir>/metrics.addr.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Stop and remove the orphaned tasks of this cluster found at start (as `berth
    /// server --remove-orphans`); without it they are only reported.
    #[arg(long)]
    pub remove_orphans: bool,
}

/// Runs the agent until SIGINT or SIGTERM; its tasks keep running after it stops.
pub async fn run(args: AgentArgs) -> Result<()> {
    let mut attributes = crate::server::custom_attributes(&args.attributes)?;
    attributes.insert(
        berth_model::elb_nodes::NODE_ROLE_ATTRIBUTE.to_string(),
        berth_model::elb_nodes::AGENT_ROLE.to_string(),
    );
    if args.managed_capacity {
        attributes.insert(
            berth_control::scheduler::MANAGED_CAPACITY_ATTRIBUTE.to_string(),
            berth_control::scheduler::MANAGED_CAPACITY_VALUE.to_string(),
        );
    }
    // Containers reach the node on the Docker bridge's gateway: DNS and the mesh serve
    // there too when tasks may run on Docker. Checked before anything is joined or bound.
    let gateway = match args.runtime.as_str() {
        "process" => None,
        _ => berth_runtime::docker::bridge_gateway().await,
    };
    let node = NodeAddresses::new(&args.dns_listen, &args.mesh_ip, gateway)?;
    let token = args
        .token
        .as_deref()
        .map(str::parse::<JoinToken>)
        .transpose()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let instance = instance_id(&args.data_dir)?;
    let remote = RemoteControl::connect(&LinkSettings {
        server: args.server.clone(),
        token,
        data_dir: args.data_dir.clone(),
        cluster: args.cluster.clone(),
        instance_id: instance.clone(),
    })
    .await?;
    let node_api = tokio::net::TcpListener::bind(args.node_api_addr)
        .await
        .with_context(|| {
            format!(
                "binding the node API to {} (--node-api-addr)",
                args.node_api_addr
            )
        })?;
    let node_api_addr =
        berth_agent::advertised_mesh_inbound(node_api.local_addr()?, &args.advertise_address);
    attributes.insert(
        berth_node_link::node_api::NODE_API_ATTRIBUTE.to_string(),
        node_api_addr.to_string(),
    );
    let registry = prometheus::Registry::new();
    let (dns, dns_addrs) = start_dns(&node, &args.dns_fallback, &registry).await?;
    match dns_addrs.first() {
        Some(a) => std::fs::write(args.data_dir.join("dns.addr"), a.to_string())?,
        None => {
            let _ = std::fs::remove_file(args.data_dir.join("dns.addr"));
        }
    }
    let proxy = berth_proxy::Proxy::new(berth_proxy::ProxyOptions {
        bind_ip: args.listen_ip,
        mesh_ips: node.mesh_ips.clone(),
        registry: registry.clone(),
        data_plane_threads: crate::dataplane::threads_or_default(args.data_plane_threads),
    })?;
    // Bound before the agent registers its address (port 0 resolved).
    let mesh_inbound = args.mesh_inbound_addr.unwrap_or(std::net::SocketAddr::new(
        args.listen_ip,
        berth_control::mesh_tls::DEFAULT_MESH_INBOUND_PORT,
    ));
    let mesh_inbound = proxy
        .bind_mesh_inbound(mesh_inbound)
        .await
        .with_context(|| {
            format!("binding the mesh inbound listener (--mesh-inbound-addr {mesh_inbound})")
        })?;
    tracing::info!(addr = %mesh_inbound, "mesh inbound listening");
    let runtime = make_runtime(
        &args.runtime,
        &args.data_dir,
        &args.cluster,
        &instance,
        TaskDnsServers {
            docker: container_dns_server(&dns_addrs, gateway),
            process: dns_addrs.first().copied(),
        },
    )
    .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let task_endpoint = crate::task_endpoint_setup::start(
        &args.data_dir,
        remote.clone(),
        runtime.clone(),
        berth_model::arn::container_instance(&args.cluster, &instance),
        stop_rx.clone(),
    )
    .await?;
    let agent = Arc::new(
        Agent::new(
            remote.clone(),
            runtime,
            AgentConfig {
                cluster: args.cluster.clone(),
                instance_id: instance.clone(),
                address: args.advertise_address.clone(),
                mesh_inbound: Some(berth_agent::advertised_mesh_inbound(
                    mesh_inbound,
                    &args.advertise_address,
                )),
                resync: Duration::from_secs(2),
            },
        )
        .with_attributes(attributes)
        .with_orphan_check(
            berth_agent::OrphanSettings {
                live: crate::live_nodes::live_owners(),
                remove: args.remove_orphans,
                remove_hint: "berth agent --remove-orphans".into(),
            },
            &registry,
        )
        .with_task_endpoint(task_endpoint),
    );
    berth_node_link::node_api::serve_node_api(
        agent.queries(),
        remote.node_key(),
        &remote.authority_pem(),
        node_api,
        stop_rx.clone(),
    )?;
    if let Some(addr) = args.metrics_addr {
        let bound = crate::server::serve_metrics(addr, registry.clone(), stop_rx.clone()).await?;
        std::fs::write(args.data_dir.join("metrics.addr"), bound.to_string())?;
    }
    let node_proxy = tokio::spawn(crate::node_proxy::follow(
        remote.clone(),
        ProxyDataPlane {
            proxy: proxy.clone(),
        },
        dns.clone(),
        stop_rx.clone(),
    ));
    let link = tokio::spawn(remote.run(stop_rx.clone()));
    let agent_task = tokio::spawn(agent.clone().run(stop_rx));
    println!(
        "berth agent {instance} of cluster {} connected to {}",
        args.cluster, args.server
    );
    crate::server::wait_for_signal().await;
    tracing::info!("agent stopping; its tasks keep running and are adopted on restart");
    let _ = stop_tx.send(true);
    let _ = agent_task.await;
    let _ = node_proxy.await;
    proxy.shutdown().await;
    dns.shutdown().await;
    let _ = link.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[tokio::test]
    async fn node_addresses_are_checked_before_anything_is_joined_or_written() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("agent");
        let args = Cli::parse_from([
            "agent",
            "--server",
            "https://127.0.0.1:1",
            "--runtime",
            "process",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--dns-listen",
            "0.0.0.0:53",
        ])
        .agent;
        let e = run(args).await.unwrap_err();
        assert!(
            format!("{e:#}").contains("--dns-listen 0.0.0.0:53"),
            "{e:#}"
        );
        assert!(!data_dir.exists(), "nothing was written");
    }
}
