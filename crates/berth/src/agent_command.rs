//! `berth agent`: this machine as a container instance of a cluster whose control plane
//! runs elsewhere (`berth server --node-listen`). It joins with the token once, keeps
//! its instance id and credentials in `--data-dir`, registers the instance and runs the
//! tasks placed on it through its runtime, reporting their state over the node link.
//!
//! When the control plane is unreachable the agent keeps every task running as it is
//! and retries; nothing is stopped for lack of a control plane.
//!
//! The node serves the load balancers whose `berth.nodes` attribute chooses its
//! instance (`node_proxy`), on `--listen-ip`, with the last configuration it read while
//! the control plane is away.
//!
//! What it does not do yet: serve the mesh or DNS on this node (targets on it are reached
//! by the servers' proxies and mesh at `--advertise-address`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_agent::{Agent, AgentConfig};
use berth_node_link::{JoinToken, LinkSettings, RemoteControl};
use tokio::sync::watch;

use crate::data_plane::ProxyDataPlane;
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
    /// A custom attribute of this container instance (repeatable), for memberOf
    /// placement constraints and spread strategies; as `berth server --attribute`.
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = crate::server::parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// Offer this instance as managed capacity: only FARGATE tasks (launchType FARGATE,
    /// or the FARGATE and FARGATE_SPOT capacity providers) are placed on it, and no
    /// EC2 task. It registers the attribute `berth.capacity=managed`.
    #[arg(long)]
    pub managed_capacity: bool,
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
    let runtime = make_runtime(
        &args.runtime,
        &args.data_dir,
        &args.cluster,
        &instance,
        TaskDnsServers::default(),
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
                mesh_inbound: None,
                resync: Duration::from_secs(2),
            },
        )
        .with_attributes(attributes)
        .with_task_endpoint(task_endpoint),
    );
    berth_node_link::node_api::serve_node_api(
        agent.queries(),
        remote.node_key(),
        &remote.authority_pem(),
        node_api,
        stop_rx.clone(),
    )?;
    let proxy = berth_proxy::Proxy::new(berth_proxy::ProxyOptions {
        bind_ip: args.listen_ip,
        mesh_ips: Vec::new(),
        registry: prometheus::Registry::new(),
    });
    let node_proxy = tokio::spawn(crate::node_proxy::follow(
        remote.clone(),
        ProxyDataPlane {
            proxy: proxy.clone(),
        },
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
    let _ = link.await;
    Ok(())
}
