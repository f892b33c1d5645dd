//! `berth server`: the control plane and a local agent in one process, with the embedded
//! store under `--data-dir` or, shared with other servers, on etcd (`store_choice`); the
//! node's proxy and discovery DNS server run beside it in `berth dataplane`
//! (`dataplane`), which it starts or finds running and which outlives it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_agent::{Agent, AgentConfig, TaskQueries};
use berth_control::{ControlPlane, Db};
use berth_runtime::DynRuntime;
use tokio::sync::watch;

use crate::agent_link::{LocalAgentApi, LocalTaskNodes};
use crate::dataplane::discovery_client::RemoteDiscovery;
use crate::node_discovery::{container_dns_server, NodeAddresses};

#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Where berth keeps its state (the store file, task state and logs).
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,
    /// Address of the API (and /metrics). Port 0 picks a free port; the address is
    /// printed and written to <data-dir>/api.addr.
    #[arg(long, env = "BERTH_API_ADDR", default_value = "127.0.0.1:7070")]
    pub api_addr: SocketAddr,
    /// IP the load balancer listeners bind to.
    #[arg(long, env = "BERTH_LISTEN_IP", default_value = "0.0.0.0")]
    pub listen_ip: IpAddr,
    /// Threads serving the connections of the load balancers and the mesh, each on its
    /// own single-threaded runtime; 0 serves them on the data plane's shared runtime.
    /// Default: one per CPU core.
    #[arg(long, env = "BERTH_DATA_PLANE_THREADS", value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub data_plane_threads: Option<u16>,
    /// The cluster this node's agent joins.
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// The address load balancer targets on this node use.
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_address: String,
    /// How tasks run: `docker` (containers) or `process` (local processes); `auto` picks
    /// Docker when its socket answers.
    #[arg(long, env = "BERTH_RUNTIME", default_value = "auto", value_parser = ["auto", "process", "docker"])]
    pub runtime: String,
    /// A stack file to apply once the server is up (e.g. configs/quickstart.yaml).
    #[arg(long)]
    pub apply: Option<PathBuf>,
    /// Where the discovery DNS server listens (repeatable; port 0 picks a free port; the
    /// first address is written to <data-dir>/dns.addr). The node's data plane serves it,
    /// and keeps answering while the server is away. Default: 127.0.0.1:53 and, with
    /// the Docker runtime, the Docker bridge's gateway on port 53 (the resolver of
    /// containers), each skipped with a warning when it cannot be bound. `none` serves no
    /// DNS.
    #[arg(long = "dns-listen", value_name = "ADDR")]
    pub dns_listen: Vec<String>,
    /// Names outside berth's namespaces: `forward` them to the resolvers of
    /// /etc/resolv.conf, or `refuse` them.
    #[arg(long, default_value = "forward", value_parser = ["forward", "refuse"])]
    pub dns_fallback: String,
    /// An address the mesh's client-alias listeners bind on (repeatable). Default:
    /// 127.0.0.1 and, with the Docker runtime, the Docker bridge's gateway.
    #[arg(long = "mesh-ip", value_name = "IP")]
    pub mesh_ip: Vec<IpAddr>,
    /// A custom attribute of this node's container instance (repeatable), for memberOf
    /// placement constraints (`attribute:zone == a`) and spread strategies
    /// (`attribute:zone`). ECS's PutAttributes rules apply; berth.* names,
    /// ecs.os-type and ecs.cpu-architecture are berth's own.
    #[arg(long = "attribute", value_name = "NAME=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    #[command(flatten)]
    pub mesh_tls: Box<MeshTlsArgs>,
    /// Where agents of other machines connect (`berth agent --server https://ADDR`):
    /// HTTP/2 over mutual TLS. Off unless given. The first start prints the join token
    /// and writes it to <data-dir>/join-token.
    #[arg(long, value_name = "ADDR")]
    pub node_listen: Option<SocketAddr>,
    /// With --node-listen: replace the join secret and print the new token (agents that
    /// joined keep their certificates).
    #[arg(long, requires = "node_listen")]
    pub rotate_join_token: bool,
    /// Seconds a container instance's agent may stay disconnected before its tasks are
    /// recorded STOPPED and its services' tasks replaced on other instances.
    #[arg(long, value_name = "SECS", default_value_t = berth_control::lost_instances::DEFAULT_AGENT_LOST_AFTER.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub agent_lost_after: u64,
    /// Stop and remove the orphaned tasks of this cluster found at start: tasks berth
    /// started on this machine for another data directory or container instance whose
    /// node no longer runs. Without it they are only reported (log and
    /// `berth_orphaned_tasks`).
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds the role credentials handed to tasks (their definition's `taskRoleArn`)
    /// are valid; nodes fetch new ones once half of that has passed. 5 to 43200.
    #[arg(long, value_name = "SECS", default_value_t = berth_control::iam_sessions::DEFAULT_TASK_CREDENTIALS_VALIDITY.as_secs(), value_parser = clap::value_parser!(u64).range(5..=43_200))]
    pub task_credentials_validity: u64,
    #[command(flatten)]
    pub store: Box<crate::store_choice::StoreArgs>,
    /// The API's authentication and TLS.
    #[command(flatten)]
    pub api_security: crate::iam_server::ApiSecurityArgs,
}

/// The mesh's mutual TLS.
#[derive(Debug, Clone, clap::Args)]
pub struct MeshTlsArgs {
    /// Where the mesh's inbound listener (mutual TLS from the proxies of other nodes)
    /// binds; port 0 picks a free port. Default: --listen-ip, port 15443. Other nodes
    /// reach it on --advertise-address when it binds every address.
    #[arg(long, value_name = "ADDR")]
    pub mesh_inbound_addr: Option<SocketAddr>,
    /// Seconds each mesh certificate is valid; it is renewed at half of that.
    #[arg(long, value_name = "SECS", default_value_t = berth_control::mesh_ca::DEFAULT_MESH_CERTIFICATE_VALIDITY.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub mesh_certificate_validity: u64,
}

/// `--attribute NAME=VALUE`, checked as ECS's PutAttributes checks it.
pub(crate) fn parse_attribute(text: &str) -> std::result::Result<(String, String), String> {
    berth_model::ecs::instance_attributes::parse_custom_attribute(text).map_err(|e| e.to_string())
}

/// The `--attribute`s by name; a name given twice is refused.
pub(crate) fn custom_attributes(given: &[(String, String)]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, value) in given {
        if out.insert(name.clone(), value.clone()).is_some() {
            bail!("--attribute {name}: given more than once");
        }
    }
    Ok(out)
}

pub(crate) fn instance_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("instance-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let id = new_instance_id();
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// `i-` and 17 hex digits, as EC2 instance ids look, from a random UUID.
fn new_instance_id() -> String {
    format!("i-{}", &uuid::Uuid::new_v4().simple().to_string()[..17])
}

/// Renders the registry in the Prometheus text format, for `/metrics`.
fn metrics_text(registry: &prometheus::Registry) -> String {
    let mut buf = String::new();
    let encoder = prometheus::TextEncoder::new();
    if let Err(e) = encoder.encode_utf8(&registry.gather(), &mut buf) {
        buf = format!("# metrics encoding failed: {e}\n");
    }
    buf
}

/// Serves `registry` at `/metrics` on `addr` (plain HTTP) until `stop` turns true;
/// returns the bound address.
pub(crate) async fn serve_metrics(
    addr: SocketAddr,
    registry: prometheus::Registry,
    mut stop: watch::Receiver<bool>,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint to {addr} (--metrics-addr)"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let r = registry.clone();
            async move { metrics_text(&r) }
        }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(bound)
}

/// The runtime `--runtime` asks for: `auto` is Docker when the engine answers, else local
/// processes.
/// `dns_server` is the node's discovery DNS server for containers (`docker`) and for
/// processes (`process`).
pub(crate) async fn make_runtime(
    kind: &str,
    data_dir: &Path,
    cluster: &str,
    instance: &str,
    dns_server: TaskDnsServers,
) -> Result<DynRuntime> {
    if kind != "process" {
        let cfg = berth_runtime::docker::DockerRuntimeConfig {
            cluster: Some(cluster.to_string()),
            instance: Some(instance.to_string()),
            dns_server: dns_server.docker,
            ..Default::default()
        };
        match berth_runtime::docker::DockerRuntime::connect(cfg).await {
            Ok(rt) => {
                tracing::info!("tasks run as Docker containers");
                return Ok(rt);
            }
            Err(e) if kind == "docker" => {
                bail!("--runtime docker: the Docker engine does not answer: {e}")
            }
            Err(e) => tracing::info!("Docker does not answer ({e}); tasks run as local processes"),
        }
    }
    let exe = std::env::current_exe().context("locating the berth executable")?;
    let cfg = berth_runtime::process::ProcessRuntimeConfig {
        state_dir: data_dir.join("runtime"),
        shim: vec![exe.to_string_lossy().into_owned(), "shim".into()],
        dns_server: dns_server.process,
    };
    let rt =
        berth_runtime::process::ProcessRuntime::new(cfg).context("starting the process runtime")?;
    Ok(rt)
}

/// The discovery DNS server each runtime tells its tasks about (containers: only one on
/// the Docker bridge's gateway, port 53).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TaskDnsServers {
    pub docker: Option<SocketAddr>,
    pub process: Option<SocketAddr>,
}

/// Runs the server until SIGINT or SIGTERM. Tasks keep running when the server stops;
/// the next server adopts them.
pub async fn run(args: ServerArgs) -> Result<()> {
    // Validate the stack to apply before anything starts (exit 64 on a bad one).
    let stack = match &args.apply {
        Some(p) => Some(crate::client::read_stack(p)?),
        None => None,
    };
    args.store.validate()?;
    args.api_security.check(args.api_addr)?;
    let mut attributes = custom_attributes(&args.attributes)?;
    attributes.insert(
        berth_model::elb_nodes::NODE_ROLE_ATTRIBUTE.to_string(),
        berth_model::elb_nodes::SERVER_ROLE.to_string(),
    );
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let store = args.store.open(&args.data_dir).await?;
    let db = Db::new(store.dyn_store());
    let registry = prometheus::Registry::new();
    // Containers reach the node on the Docker bridge's gateway: DNS and the mesh serve
    // there too when tasks may run on Docker.
    let gateway = match args.runtime.as_str() {
        "process" => None,
        _ => berth_runtime::docker::bridge_gateway().await,
    };
    // Checked here, before the data plane that serves them starts.
    let node = NodeAddresses::new(&args.dns_listen, &args.mesh_ip, gateway)?;
    let instance = instance_id(&args.data_dir)?;
    let local_instance_arn = berth_model::arn::container_instance(&args.cluster, &instance);
    // The mesh inbound listener, bound before the agent advertises its address (port 0
    // resolved).
    let mesh_inbound = args.mesh_tls.mesh_inbound_addr.unwrap_or(SocketAddr::new(
        args.listen_ip,
        berth_control::mesh_tls::DEFAULT_MESH_INBOUND_PORT,
    ));
    // The node's data plane runs in a process of its own and outlives this server.
    let data_plane = crate::dataplane::launch::start(
        &args.data_dir,
        &crate::dataplane::DataPlaneOptions {
            listen_ip: args.listen_ip,
            mesh_ips: node.mesh_ips.clone(),
            mesh_inbound_addr: mesh_inbound,
            data_plane_threads: crate::dataplane::threads_or_default(args.data_plane_threads),
            dns: crate::dataplane::dns::DataPlaneDnsOptions {
                listen: args.dns_listen.clone(),
                fallback: args.dns_fallback.clone(),
                gateway,
            },
        },
        &registry,
    )
    .await?;
    let mesh_inbound = data_plane.identity.mesh_inbound;
    tracing::info!(addr = %mesh_inbound, "mesh inbound listening");
    // The discovery DNS answers in the data plane, from the records sent to it.
    let dns_addrs = data_plane.identity.dns_addrs.clone();
    for a in &dns_addrs {
        tracing::info!(addr = %a, "discovery DNS listening (in the data plane)");
    }
    if dns_addrs.is_empty() && !node.dns.is_empty() {
        tracing::warn!(
            "the data plane serves no discovery DNS: none of its addresses could be bound (see dataplane.log)"
        );
    }
    let discovery =
        RemoteDiscovery::start(&crate::dataplane::DataPlanePaths::of(&args.data_dir).socket);
    let task_dns = TaskDnsServers {
        docker: container_dns_server(&dns_addrs, gateway),
        process: dns_addrs.first().copied(),
    };
    let runtime = make_runtime(
        &args.runtime,
        &args.data_dir,
        &args.cluster,
        &instance,
        task_dns,
    )
    .await?;
    let agent_config = AgentConfig {
        cluster: args.cluster.clone(),
        instance_id: instance.clone(),
        address: args.advertise_address.clone(),
        mesh_inbound: Some(berth_agent::advertised_mesh_inbound(
            mesh_inbound,
            &args.advertise_address,
        )),
        resync: Duration::from_secs(2),
    };
    let remote_nodes: Arc<std::sync::OnceLock<Arc<dyn berth_control::TaskNodes>>> = Arc::default();
    let control = ControlPlane::new(
        db,
        data_plane.client.clone(),
        Arc::new(LocalTaskNodes {
            queries: TaskQueries::new(runtime.clone()),
            instance_arn: berth_model::arn::container_instance(&args.cluster, &instance),
            remote: remote_nodes.clone(),
        }),
        &registry,
    );
    let control = control.with_agent_lost_after(Duration::from_secs(args.agent_lost_after));
    let control = control.with_discovery(discovery);
    let control = control.with_mesh_tls(berth_control::mesh_tls::MeshTlsSettings {
        certificate_validity: Duration::from_secs(args.mesh_tls.mesh_certificate_validity),
        node: Some(berth_control::mesh_tls::MeshNode {
            cluster: args.cluster.clone(),
            instance_id: instance.clone(),
        }),
    });
    // Secret values are sealed under the same key as access keys' secrets.
    let sealing =
        crate::iam_server::sealing_key(&args.api_security.sealing_key_path(&args.data_dir))?;
    let secrets = berth_control::secret_store::SecretStore::new(control.db.clone(), sealing);
    let control = control.with_secrets(secrets);
    let iam = crate::iam_server::open_iam(&control.db, &args.data_dir, &args.api_security)?;
    let control = control.with_task_roles(berth_control::agent_service::TaskRoles {
        iam: iam.clone(),
        validity: Duration::from_secs(args.task_credentials_validity),
    });
    control.ensure_default_cluster().await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("binding the API to {}", args.api_addr))?;
    let api_addr = listener.local_addr()?;
    let metrics_registry = registry.clone();
    let data_plane_metrics = data_plane.client.metrics();
    // /metrics is added after the guard: Prometheus scrapes it unsigned.
    let app = crate::iam_server::secure(
        berth_aws::with_front_door(control.router(), control.db.clone()).merge(
            berth_console::router(&control.db, &registry, stop_rx.clone()),
        ),
        iam,
        &args.data_dir,
        &args.api_security,
    )
    .await?
    .route(
        "/metrics",
        axum::routing::get(move || {
            let r = metrics_registry.clone();
            let data_plane_metrics = data_plane_metrics.clone();
            async move {
                data_plane_metrics.refresh().await;
                metrics_text(&r)
            }
        }),
    );
    let api_tls = crate::iam_tls::server_config(&args.api_security, &args.data_dir, api_addr)?;
    let api_scheme = if api_tls.is_some() { "https" } else { "http" };
    let mut api_stop = stop_rx.clone();
    let api_stopped = async move {
        let _ = api_stop.wait_for(|s| *s).await;
    };
    let api = match api_tls {
        Some(cfg) => {
            let listener = crate::iam_tls::TlsListener::new(listener, cfg)?;
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(api_stopped)
                    .await
            })
        }
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(api_stopped)
                .await
        }),
    };

    let agent_api: Arc<dyn berth_agent::AgentApi> = Arc::new(LocalAgentApi {
        service: control.agent_service(),
    });
    let task_endpoint = crate::task_endpoint_setup::start(
        &args.data_dir,
        agent_api.clone(),
        runtime.clone(),
        local_instance_arn.clone(),
        stop_rx.clone(),
    )
    .await?;
    let agent = Arc::new(
        Agent::new(agent_api, runtime, agent_config)
            .with_attributes(attributes)
            .with_orphan_check(
                berth_agent::OrphanSettings {
                    live: crate::live_nodes::live_owners(),
                    remove: args.remove_orphans,
                    remove_hint: "berth server --remove-orphans".into(),
                },
                &registry,
            )
            .with_task_endpoint(task_endpoint),
    );
    let agent_task = tokio::spawn(agent.clone().run(stop_rx.clone()));
    if let Some(addr) = args.node_listen {
        let identity = crate::node_link_server::start(
            &control,
            addr,
            &args.data_dir,
            args.rotate_join_token,
            stop_rx.clone(),
        )
        .await?;
        let _ = remote_nodes.set(Arc::new(
            berth_node_link::remote_nodes::RemoteTaskNodes::new(control.db.clone(), identity),
        ));
    }
    let reconcilers = store.run_reconcilers(
        control.clone(),
        format!("{instance} http://{api_addr}"),
        &registry,
        stop_rx.clone(),
    )?;

    if let Some(stack) = stack {
        let changes = berth_control::apply::apply(&control.db, &*control.data_plane, &stack, false)
            .await
            .context("applying the stack")?;
        for c in changes {
            println!("{} {} {}", c.kind, c.name, c.action);
        }
    }
    match dns_addrs.first() {
        Some(a) => crate::whole_file::write_whole(&args.data_dir.join("dns.addr"), &a.to_string())?,
        None => {
            let _ = std::fs::remove_file(args.data_dir.join("dns.addr"));
        }
    }
    crate::whole_file::write_whole(
        &args.data_dir.join("api.addr"),
        &format!("{api_scheme}://{api_addr}"),
    )?;
    println!("berth api listening on {api_scheme}://{api_addr}");

    wait_for_signal().await;
    let tasks_keep_running = say_what_keeps_running(&control.db, &local_instance_arn).await;
    let _ = stop_tx.send(true);
    let _ = reconcilers.await;
    let _ = agent_task.await;
    if tasks_keep_running {
        tracing::info!(
            pid = data_plane.identity.pid,
            "the data plane keeps serving this node's load balancers and mesh for the tasks that keep running; to stop everything, run `berth down`, then stop the server"
        );
    } else if let Err(e) = data_plane.stop().await {
        tracing::warn!(error = %e, "stopping the data plane");
    }
    let _ = api.await;
    Ok(())
}

/// Says which of this node's tasks keep running after the server stops, and how to stop
/// them; answers whether any does.
async fn say_what_keeps_running(db: &Db, instance_arn: &str) -> bool {
    let running: Vec<String> = db
        .tasks(None)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.value)
        .filter(|t| {
            t.container_instance_arn.as_deref() == Some(instance_arn)
                && t.last_status != berth_model::ecs::TaskStatus::Stopped
        })
        .map(|t| berth_model::arn::last_segment(&t.task_arn).to_string())
        .collect();
    if running.is_empty() {
        tracing::info!("shutting down; no task runs on this node");
        return false;
    }
    tracing::info!(
        tasks = %running.join(" "),
        "shutting down; {} task(s) keep running on this node and are adopted when berth server starts again; to stop them, run `berth down` before stopping the server",
        running.len()
    );
    true
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_checked_and_a_name_may_be_given_once() {
        assert_eq!(
            parse_attribute("zone=a").unwrap(),
            ("zone".into(), "a".into())
        );
        let e = parse_attribute("berth.address=x").unwrap_err();
        assert!(e.contains("is set by berth"), "{e}");
        let given = [("zone".to_string(), "a".to_string())];
        assert_eq!(custom_attributes(&given).unwrap()["zone"], "a");
        let twice = [given[0].clone(), ("zone".into(), "b".into())];
        let e = custom_attributes(&twice).unwrap_err().to_string();
        assert_eq!(e, "--attribute zone: given more than once");
    }

    #[test]
    fn instance_ids_look_like_ec2_ids_and_differ() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_eq!(a.len(), 19, "{a}");
        assert!(a.starts_with("i-"));
        assert!(a[2..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn an_instance_id_is_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let first = instance_id(dir.path()).unwrap();
        assert_eq!(instance_id(dir.path()).unwrap(), first);
    }

    #[test]
    fn metrics_render_in_the_text_format() {
        let registry = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("berth_test_total", "a test counter").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc();
        let text = metrics_text(&registry);
        assert!(text.contains("# TYPE berth_test_total counter"), "{text}");
        assert!(text.contains("berth_test_total 1"), "{text}");
    }
}
