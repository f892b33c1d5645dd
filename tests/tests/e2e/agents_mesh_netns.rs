//! The mesh and discovery DNS on an agent's node: `berth agent` runs in a network
//! namespace of its own (joined to the host by a veth pair), beside a server on the host.
//!
//! - A client task on the agent calls a service on the server's node by its client
//!   alias: the agent's DNS server resolves the alias to the agent's mesh listener, whose
//!   proxy crosses to the server's node over mutual TLS, presenting the agent's node
//!   identity to the server's inbound listener. With the control plane gone, the agent's
//!   DNS server keeps answering.
//! - A client task on the server's node calls a service whose task runs on the agent:
//!   the server's proxy reaches it through the agent's inbound listener (mutual TLS,
//!   presenting the server's node identity).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use berth_testkit::agent::{node_link, Agent};
use berth_testkit::netns::NetNs;
use berth_testkit::{
    called_tasks, mesh_stack, running_task_ids, unique_loopback, wait_until, Server,
};

const SETTLE: Duration = Duration::from_secs(120);

/// Which node a service's task runs on, as its memberOf constraint says.
#[derive(Clone, Copy)]
enum Side {
    Server,
    Agent,
}

impl Side {
    fn constraint(self) -> &'static str {
        match self {
            Side::Server => "    placementConstraints:\n      - type: memberOf\n        expression: \"attribute:side == server\"\n",
            Side::Agent => "    placementConstraints:\n      - type: memberOf\n        expression: \"attribute:side == agent\"\n",
        }
    }
}

/// A server on the host (its node link, targets and mesh inbound listener on the
/// host's side of the veth link) and an agent in `ns`, with the mesh stack applied:
/// `frontend` placed on `frontend_on`, one `backend` task on `backend_on`.
struct TwoNodes {
    server: Server,
    agent: Agent,
    ns: NetNs,
    _dir: tempfile::TempDir,
}

async fn two_nodes(frontend_on: Side, backend_on: Side) -> Result<TwoNodes> {
    let ns = NetNs::create()?;
    let dir = tempfile::tempdir()?;
    let mesh_ip = unique_loopback();
    let stack = mesh_stack(dir.path(), mesh_ip, 1)?;
    let server = Server::launch_with(
        &dir.path().join("server"),
        None,
        "process",
        &[
            "--node-listen".to_string(),
            format!("{}:0", ns.host_ip),
            "--advertise-address".to_string(),
            ns.host_ip.clone(),
            "--mesh-inbound-addr".to_string(),
            format!("{}:0", ns.host_ip),
            "--mesh-ip".to_string(),
            mesh_ip.to_string(),
            "--dns-listen".to_string(),
            format!("{mesh_ip}:0"),
            "--attribute".to_string(),
            "side=server".to_string(),
        ],
    )
    .await?;
    let (url, _) = node_link(&server)?;
    let agent = Agent::start_in_with_args(
        &server,
        &dir.path().join("agent"),
        "process",
        &ns,
        &url,
        &[
            "--attribute",
            "side=agent",
            "--metrics-addr",
            &format!("{}:0", ns.ns_ip),
        ],
    )
    .await?;
    let agent_id = agent.instance_id();
    wait_until("the namespaced agent to register", SETTLE, || async {
        let instances = server.get("/v1/container-instances").await.ok()?;
        instances
            .as_array()?
            .iter()
            .any(|i| {
                i["ec2InstanceId"] == agent_id.as_str()
                    && i["agentConnected"] == true
                    && i["attributes"].to_string().contains("berth.mesh-inbound")
            })
            .then_some(())
    })
    .await
    .map_err(|e| anyhow!("{e}\nagent log:\n{}", agent.log()))?;

    let text = std::fs::read_to_string(&stack.path)?
        .replace(
            "    taskDefinition: backend\n    desiredCount: 1\n",
            &format!(
                "    taskDefinition: backend\n    desiredCount: 1\n{}",
                backend_on.constraint()
            ),
        )
        .replace(
            "    taskDefinition: frontend\n    desiredCount: 1\n",
            &format!(
                "    taskDefinition: frontend\n    desiredCount: 1\n{}",
                frontend_on.constraint()
            ),
        );
    assert_eq!(text.matches("memberOf").count(), 2, "{text}");
    std::fs::write(&stack.path, text)?;
    server.apply_ok(&stack.path);
    server
        .wait_healthy("frontend", "front", 1, SETTLE)
        .await
        .map_err(|e| anyhow!("{e}\nagent log:\n{}", agent.log()))?;
    Ok(TwoNodes {
        server,
        agent,
        ns,
        _dir: dir,
    })
}

impl TwoNodes {
    /// The one running backend task, once it runs on `side`'s instance.
    async fn backend_task(&self, side: Side) -> Result<String> {
        let agent_id = self.agent.instance_id();
        wait_until("the backend task running", SETTLE, || async {
            let tasks = self.server.service_tasks("backend").await.ok()?;
            let running: Vec<_> = tasks
                .iter()
                .filter(|t| t["lastStatus"] == "RUNNING")
                .collect();
            let [t] = running.as_slice() else {
                return None;
            };
            let on_agent = t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&agent_id);
            match side {
                Side::Agent if !on_agent => return None,
                Side::Server if on_agent => return None,
                _ => {}
            }
            running_task_ids(&tasks).into_iter().next()
        })
        .await
        .map_err(|e| anyhow!("{e}"))
    }

    /// Calls the frontend until its call through the mesh answers with `backend` (at
    /// most SETTLE), then 20 times more, each of which must succeed.
    async fn frontend_reaches(&self, backend: &str) -> Result<()> {
        let front = self.server.listener_addr("front").await?;
        wait_until("the frontend reaching the backend", SETTLE, || async {
            let seen = called_tasks(&front, 1).await.ok()?;
            seen.contains(backend).then_some(())
        })
        .await
        .map_err(|e| anyhow!("{e}\nagent log:\n{}", self.agent.log()))?;
        let seen = called_tasks(&front, 20).await?;
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), [backend.to_string()]);
        Ok(())
    }

    /// `dig` run inside the agent's namespace.
    fn dig_in_namespace(&self, server: &str, name: &str, kind: &str) -> Vec<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "dig"])
            .arg(format!("@{server}"))
            .args([name, kind, "+short", "+time=2", "+tries=2"])
            .output()
            .expect("ip netns exec dig runs (iproute2, dnsutils)");
        assert!(out.status.success(), "dig failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The agent's `/metrics`.
    async fn agent_metrics(&self) -> Result<String> {
        let addr: SocketAddr = std::fs::read_to_string(self.agent.data_dir.join("metrics.addr"))
            .context("the agent's metrics.addr")?
            .trim()
            .parse()?;
        Ok(reqwest::get(format!("http://{addr}/metrics"))
            .await?
            .text()
            .await?)
    }
}

/// The sum of `berth_mesh_inbound_connections_total` for `service` whose caller
/// contains `caller`.
fn inbound_connections(metrics: &str, service: &str, caller: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("berth_mesh_inbound_connections_total{")
                && l.contains(&format!("service=\"{service}\""))
                && l.contains(caller)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_the_agent_calls_a_service_on_the_servers_node_by_its_client_alias() -> Result<()>
{
    let mut nodes = two_nodes(Side::Agent, Side::Server).await?;
    let backend = nodes.backend_task(Side::Server).await?;
    nodes.frontend_reaches(&backend).await?;

    // The agent's DNS server (on the namespace's loopback, port 53, where its tasks ask)
    // answers the alias with its own mesh address and the discovery name with the
    // backend's endpoint on the server's node.
    assert_eq!(
        nodes.dig_in_namespace("127.0.0.1", "backend", "A"),
        ["127.0.0.1"]
    );
    let srv = nodes.dig_in_namespace("127.0.0.1", "backend.internal", "SRV");
    assert_eq!(srv.len(), 1, "{srv:?}");
    let target = srv[0].split_whitespace().nth(3).unwrap().to_string();
    assert_eq!(
        nodes.dig_in_namespace("127.0.0.1", &target, "A"),
        std::slice::from_ref(&nodes.ns.host_ip)
    );

    // The calls crossed into the server's node over mutual TLS, presenting the agent's
    // node identity, which only the agent's proxy holds.
    let metrics = reqwest::get(format!("{}/metrics", nodes.server.api))
        .await?
        .text()
        .await?;
    let caller = format!("/ns/_berth/sa/node-{}", nodes.agent.instance_id());
    assert!(
        inbound_connections(&metrics, "backend", &caller) >= 1.0,
        "the server's inbound saw no connection from {caller}: {metrics}"
    );
    // The agent's mesh listener served them.
    let agent_metrics = nodes.agent_metrics().await?;
    assert!(
        agent_metrics
            .lines()
            .any(|l| l.starts_with("berth_mesh_requests_total{") && !l.ends_with(" 0")),
        "{agent_metrics}"
    );

    // With the control plane gone, the agent's DNS server keeps answering what it last
    // read.
    nodes.server.kill_everything();
    wait_until(
        "the agent to find the control plane gone",
        SETTLE,
        || async {
            nodes
                .agent
                .log()
                .contains("the DNS server keeps answering the last ones")
                .then_some(())
        },
    )
    .await?;
    assert_eq!(
        nodes.dig_in_namespace("127.0.0.1", "backend", "A"),
        ["127.0.0.1"]
    );
    assert_eq!(
        nodes.dig_in_namespace("127.0.0.1", "backend.internal", "SRV"),
        srv
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_the_agent_is_reached_through_the_agents_inbound_listener() -> Result<()> {
    let nodes = two_nodes(Side::Server, Side::Agent).await?;
    let backend = nodes.backend_task(Side::Agent).await?;
    nodes.frontend_reaches(&backend).await?;

    // The agent's inbound listener forwarded the server's calls, which presented the
    // server's node identity.
    let server_id = std::fs::read_to_string(nodes.server.data_dir.join("instance-id"))?;
    let caller = format!("/ns/_berth/sa/node-{}", server_id.trim());
    let metrics = nodes.agent_metrics().await?;
    assert!(
        inbound_connections(&metrics, "backend", &caller) >= 1.0,
        "the agent's inbound saw no connection from {caller}: {metrics}"
    );
    Ok(())
}
