//! A remote agent at an address of its own: `berth agent` runs in a network namespace
//! joined to the host by a veth pair, so its tasks really live at another address than
//! the server's. The server's listener reaches the agent's task at the namespace's
//! address, and `berth exec` reaches it through the agent's node API there.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use berth_testkit::agent::{node_link, Agent};
use berth_testkit::netns::NetNs;
use berth_testkit::{quickstart, wait_until, Server};

const SETTLE: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_in_its_own_network_namespace_serves_its_share_at_its_own_address() -> Result<()> {
    let ns = NetNs::create()?;
    let dir = tempfile::tempdir()?;
    let server = Server::launch_with(
        &dir.path().join("server"),
        None,
        "process",
        &["--node-listen".to_string(), format!("{}:0", ns.host_ip)],
    )
    .await?;
    let (url, _) = node_link(&server)?;
    assert!(url.contains(&ns.host_ip), "{url}");
    let agent = Agent::start_in(&server, &dir.path().join("agent"), "process", &ns, &url).await?;
    let agent_id = agent.instance_id();
    wait_until("the namespaced agent to register", SETTLE, || async {
        let instances = server.get("/v1/container-instances").await.ok()?;
        instances
            .as_array()?
            .iter()
            .any(|i| i["ec2InstanceId"] == agent_id.as_str() && i["agentConnected"] == true)
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;

    let text = std::fs::read_to_string(quickstart(dir.path(), 2))?.replace(
        "    desiredCount: 2\n",
        "    desiredCount: 2\n    enableExecuteCommand: true\n    placementConstraints:\n      - type: distinctInstance\n",
    );
    let stack = dir.path().join("spread.yaml");
    std::fs::write(&stack, text)?;
    server.apply_ok(&stack);
    server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;

    // The agent's task is a target at the namespace's address.
    let targets = server.targets("whoami").await?;
    let ips: BTreeSet<String> = targets
        .iter()
        .map(|t| t["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(ips.contains(&ns.ns_ip), "targets: {targets:?}");
    assert!(ips.contains("127.0.0.1"), "targets: {targets:?}");

    // The listener reaches both.
    let addr = server.listener_addr("web").await?;
    let http = reqwest::Client::new();
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let r = http.get(format!("http://{addr}/")).send().await?;
        assert!(r.status().is_success());
        if let Some(t) = r.headers().get("x-berth-task") {
            seen.insert(t.to_str()?.to_string());
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // exec reaches the agent's task through its node API at the namespace's address.
    let tasks = server.service_tasks("whoami").await?;
    let remote = tasks
        .iter()
        .find(|t| {
            t["containerInstanceArn"]
                .as_str()
                .unwrap_or("")
                .ends_with(&agent_id)
        })
        .and_then(|t| t["taskArn"].as_str())
        .and_then(|a| a.rsplit('/').next())
        .unwrap()
        .to_string();
    let out = server.cli(&["exec", &remote, "--", "/bin/sh", "-c", "echo in-namespace"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("in-namespace"));

    // An interactive session reaches it too: its stdin streams in, its output and exit
    // code come back.
    let out = server.cli_with_stdin(
        &["exec", "-i", &remote, "--", "/bin/sh"],
        "echo session-in-$BERTH_TASK_ID\nexit 3\n",
        SETTLE,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("session-in-{remote}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(())
}

/// A port for the listener the agent's node serves in its namespace (a namespace has
/// every port to itself): one free on the host when the test starts, so that the check
/// that nothing on the host serves it is not fooled by another program.
fn edge_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on the host")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_balancer_chosen_by_attribute_is_served_by_the_agents_node_even_without_the_control_plane(
) -> Result<()> {
    let edge_port = edge_port();
    let ns = NetNs::create()?;
    let dir = tempfile::tempdir()?;
    let mut server = Server::launch_with(
        &dir.path().join("server"),
        None,
        "process",
        &["--node-listen".to_string(), format!("{}:0", ns.host_ip)],
    )
    .await?;
    let (url, _) = node_link(&server)?;
    let agent = Agent::start_in_with_args(
        &server,
        &dir.path().join("agent"),
        "process",
        &ns,
        &url,
        &["--attribute", "edge=yes"],
    )
    .await?;
    let agent_id = agent.instance_id();
    wait_until("the namespaced agent to register", SETTLE, || async {
        let instances = server.get("/v1/container-instances").await.ok()?;
        instances
            .as_array()?
            .iter()
            .any(|i| i["ec2InstanceId"] == agent_id.as_str() && i["agentConnected"] == true)
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;

    // The load balancer runs on the nodes with edge=yes, its tasks on that node too.
    let text = std::fs::read_to_string(quickstart(dir.path(), 2))?
        .replace(
            "      - port: 0\n        protocol: HTTP",
            &format!("      - port: {edge_port}\n        protocol: HTTP"),
        )
        .replace(
            "    type: application\n",
            "    type: application\n    attributes:\n      berth.nodes: \"attribute:edge == yes\"\n",
        )
        .replace(
            "    desiredCount: 2\n",
            "    desiredCount: 2\n    placementConstraints:\n      - type: memberOf\n        expression: \"attribute:edge == yes\"\n",
        );
    assert!(
        text.contains("berth.nodes") && text.contains("memberOf"),
        "{text}"
    );
    let stack = dir.path().join("edge.yaml");
    std::fs::write(&stack, text)?;
    server.apply_ok(&stack);
    server.wait_healthy("whoami", "whoami", 2, SETTLE).await?;

    // The agent's node serves the listener at the namespace's address ...
    let edge = format!("{}:{edge_port}", ns.ns_ip);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    wait_until("the agent's node to serve the listener", SETTLE, || async {
        let r = http.get(format!("http://{edge}/")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\nagent log:\n{}", agent.log()))?;
    let mut seen = BTreeSet::new();
    for _ in 0..20 {
        let r = http.get(format!("http://{edge}/")).send().await?;
        assert!(r.status().is_success(), "{}", r.status());
        if let Some(t) = r.headers().get("x-berth-task") {
            seen.insert(t.to_str()?.to_string());
        }
    }
    assert_eq!(
        seen.len(),
        2,
        "both tasks answer through the agent's node: {seen:?}"
    );
    // A settled cluster with an agent passes about once a second too: the agent's
    // reports change nothing.
    server.assert_settled_passes(Duration::from_secs(3)).await?;
    // ... and the server's node does not bind it.
    let lb = server.get("/v1/load-balancers/web").await?;
    assert!(
        lb["listeners"][0]["boundPort"].is_null(),
        "the server's node bound the edge listener: {lb}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", edge_port)).is_err(),
        "something on the host serves the edge port"
    );

    // Static stability: with the control plane gone, the node keeps serving.
    server.kill_everything();
    wait_until(
        "the agent to find the control plane gone",
        SETTLE,
        || async {
            agent
                .log()
                .contains("the listeners keep their last configuration")
                .then_some(())
        },
    )
    .await?;
    let mut failed = Vec::new();
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        match http.get(format!("http://{edge}/")).send().await {
            Ok(r) if r.status().is_success() => {
                if let Some(t) = r.headers().get("x-berth-task") {
                    seen.insert(t.to_str()?.to_string());
                }
            }
            Ok(r) => failed.push(r.status().to_string()),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    assert!(
        failed.is_empty(),
        "failed without the control plane: {failed:?}"
    );
    assert_eq!(seen.len(), 2, "{seen:?}");
    Ok(())
}
