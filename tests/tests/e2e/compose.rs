//! End-to-end test of the repository's `docker-compose.yml`: the images built by
//! `scripts/build-images`, the cluster brought up with `docker-compose` under a project
//! and image tag of its own (every port published on a free loopback port, a short
//! `--agent-lost-after`), the quickstart served through a server's listener by tasks on
//! the agents only, both servers' APIs, and Prometheus scraping both; then one agent
//! stopped, and the server the other agent's node link is connected to: the quickstart
//! is served through the other server's listener meanwhile, the stopped agent's tasks
//! are replaced, and the remaining agent, linked again through the other server, stops
//! and replaces a task stopped through that server's API. `down -v` and the removal of
//! the test's image tags leave nothing behind, also when the test fails.
//!
//! The API is authenticated and served over https, as in production: the test reads the
//! servers' shared authority (`ca.pem`) and the admin's credentials out of the cluster,
//! verifies both servers' certificates against that one file and signs every request
//! (SigV4); an unsigned request is refused. Prometheus scrapes both over https.
//!
//! It fails, never skips, without Docker or docker-compose.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use berth_iam::sigv4::{signing_headers, SigningParams};
use berth_testkit::{repo_root, require_docker, wait_until, Load};
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The images docker-compose.yml runs.
const IMAGES: [&str; 3] = ["berth/berth", "berth/etcd", "berth/prometheus"];

/// How long the cluster may take to come up and serve, and to recover.
const SETTLE: Duration = Duration::from_secs(90);

/// A docker-compose project of docker-compose.yml that `Drop` takes down.
struct Project {
    name: String,
    tag: String,
    file: PathBuf,
}

impl Project {
    fn new() -> Project {
        let id = std::process::id();
        Project {
            name: format!("berth-compose-test-{id}"),
            tag: format!("compose-test-{id}"),
            file: repo_root().join("docker-compose.yml"),
        }
    }

    /// `docker-compose` on this project, with every published port on a free loopback
    /// port and agents given up 5 s after their disconnection is noticed.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.arg("--project-name")
            .arg(&self.name)
            .arg("--file")
            .arg(&self.file)
            .args(args)
            .env("BERTH_IMAGE_TAG", &self.tag)
            .env("BERTH_AGENT_LOST_AFTER", "5");
        for port in [
            "BERTH_SERVER_1_API",
            "BERTH_SERVER_1_LISTENER",
            "BERTH_SERVER_2_API",
            "BERTH_SERVER_2_LISTENER",
            "BERTH_PROMETHEUS",
        ] {
            cmd.env(port, "127.0.0.1:");
        }
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("running docker-compose {args:?}: {e}"))
    }

    /// Runs `docker-compose ARGS` and returns its output; fails with its stderr.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self.output(args);
        if !out.status.success() {
            bail!(
                "docker-compose {args:?} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The loopback address `service`'s `port` is published on.
    fn published(&self, service: &str, port: u16) -> Result<String> {
        let out = self.run(&["port", service, &port.to_string()])?;
        let addr = out.trim().to_string();
        if !addr.starts_with("127.0.0.1:") {
            bail!("{service}:{port} is published on {addr:?}, not on 127.0.0.1");
        }
        Ok(addr)
    }

    /// The last lines of every service's log, for a failure's message.
    fn logs(&self) -> String {
        let out = self.output(&["logs", "--no-color", "--tail", "40"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// What the engine still holds of this project: containers, volumes and networks.
    fn leftovers(&self) -> Vec<String> {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let mut left = Vec::new();
        for kind in ["container", "volume", "network"] {
            let mut args = vec![kind, "ls", "--quiet", "--filter", &label];
            if kind == "container" {
                args.insert(2, "--all");
            }
            for id in berth_testkit::docker_ids(&args) {
                left.push(format!("{kind} {id}"));
            }
        }
        left
    }

    /// `service`'s address on the project's network.
    fn address(&self, service: &str) -> Result<String> {
        let id = self.run(&["ps", "--quiet", service])?.trim().to_string();
        let out = Command::new("docker")
            .args([
                "inspect",
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                &id,
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let ip = text.split_whitespace().next().unwrap_or("").to_string();
        if ip.is_empty() {
            bail!("{service} ({id}) has no address: {text:?}");
        }
        Ok(ip)
    }

    /// The remote addresses of `service`'s established TCP connections to `port`.
    fn peers_on_port(&self, service: &str, port: u16) -> Result<Vec<String>> {
        let out = self.run(&["exec", "-T", service, "netstat", "-tn"])?;
        let suffix = format!(":{port}");
        Ok(out
            .lines()
            .filter(|l| l.contains("ESTABLISHED"))
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter_map(|peer| peer.strip_suffix(&suffix))
            .map(str::to_string)
            .collect())
    }

    fn images(&self) -> Vec<String> {
        IMAGES.iter().map(|i| format!("{i}:{}", self.tag)).collect()
    }
}

impl Drop for Project {
    /// Takes the project down with its volumes and removes the test's image tags.
    fn drop(&mut self) {
        let _ = self.output(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
        let _ = Command::new("docker")
            .arg("rmi")
            .args(self.images())
            .output();
    }
}

fn require_docker_compose() {
    let ok = Command::new("docker-compose")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "docker-compose does not run (`docker-compose version`); this test needs it (apt-get install docker-compose)"
    );
}

/// Builds the images with `scripts/build-images --tag TAG` from the binaries the suite
/// built (a `cargo build` here would relink binaries other tests are running).
fn build_images(tag: &str) {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/build-images"))
        .args(["--tag", tag])
        .arg("--binaries")
        .arg(berth_testkit::bin_dir())
        .output()
        .expect("run scripts/build-images");
    assert!(
        out.status.success(),
        "scripts/build-images failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client")
}

/// The admin's access key, as the server that made the admin user wrote it.
struct Creds {
    id: String,
    secret: String,
}

fn parse_creds(text: &str) -> Option<Creds> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .filter(|v| !v.is_empty())
    };
    Some(Creds {
        id: field("aws_access_key_id")?,
        secret: field("aws_secret_access_key")?,
    })
}

/// A server's API, published on `addr` (127.0.0.1:port), over https: its certificate
/// must verify against the cluster's one `ca.pem` as 127.0.0.1; each request is signed
/// with the admin's key (unless asked not to) and sent as HTTP/1.0 on a connection of
/// its own, so the answer ends where the connection does.
#[derive(Clone)]
struct Api {
    addr: String,
    tls: tokio_rustls::TlsConnector,
    creds: Arc<Creds>,
}

impl Api {
    fn new(addr: String, ca_pem: &[u8], creds: Arc<Creds>) -> Result<Api> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(cert?)?;
        }
        anyhow::ensure!(!roots.is_empty(), "no certificate in the cluster's ca.pem");
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Api {
            addr,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            creds,
        })
    }

    /// `method path_and_query` with an empty body; the status and the body.
    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        signed: bool,
    ) -> Result<(u16, String)> {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut head = format!(
            "{method} {path_and_query} HTTP/1.0\r\nhost: {}\r\ncontent-length: 0\r\n",
            self.addr
        );
        if signed {
            let time = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64;
            let params = SigningParams {
                access_key_id: &self.creds.id,
                secret_access_key: &self.creds.secret,
                region: "local",
                service: "ecs",
                time,
            };
            for (name, value) in signing_headers(method, path, query, &self.addr, &[], b"", &params)
            {
                head.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        head.push_str("\r\n");
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(&self.addr).await?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
            let mut tls = self.tls.connect(name, tcp).await?;
            tls.write_all(head.as_bytes()).await?;
            let mut answer = Vec::new();
            match tls.read_to_end(&mut answer).await {
                Ok(_) => {}
                // A server closing without close_notify after a whole answer.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
                Err(e) => return Err(anyhow::Error::from(e)),
            }
            Ok::<_, anyhow::Error>(answer)
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| {
                anyhow!(
                    "{method} https://{}{path_and_query}: no answer in 10 s",
                    self.addr
                )
            })?
            .with_context(|| format!("{method} https://{}{path_and_query}", self.addr))?;
        let text = String::from_utf8_lossy(&answer);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("{method} {path_and_query}: no HTTP answer: {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{method} {path_and_query}: no status in {head:?}"))?;
        Ok((status, body.to_string()))
    }

    /// A signed GET's JSON answer; fails unless it succeeded.
    async fn get_json(&self, path: &str) -> Result<Value> {
        let (status, body) = self.send("GET", path, true).await?;
        if !(200..300).contains(&status) {
            bail!("GET https://{}{path}: {status} {body}", self.addr);
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body}"))
    }
}

/// The `x-berth-task` of `n` GETs through `listener`, or None if one did not succeed.
async fn answering_tasks(http: &reqwest::Client, listener: &str, n: usize) -> Option<Vec<String>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let r = http.get(format!("http://{listener}/")).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        tasks.push(r.headers().get("x-berth-task")?.to_str().ok()?.to_string());
    }
    Some(tasks)
}

/// The quickstart's tasks that should run, as (task id, container instance id, last
/// status).
async fn whoami_tasks(api: &Api) -> Result<Vec<(String, String, String)>> {
    let v = api
        .get_json("/v1/tasks?service=whoami&desiredStatus=RUNNING")
        .await?;
    let tasks = v.as_array().cloned().unwrap_or_default();
    Ok(tasks
        .iter()
        .map(|t| {
            let last = |field: &str| {
                t[field]
                    .as_str()
                    .unwrap_or("")
                    .rsplit('/')
                    .next()
                    .unwrap_or("")
                    .to_string()
            };
            (
                last("taskArn"),
                last("containerInstanceArn"),
                last("lastStatus"),
            )
        })
        .collect())
}

/// How many of the quickstart target group's targets are healthy.
async fn healthy_targets(api: &Api) -> Result<usize> {
    let v = api.get_json("/v1/target-groups/whoami/targets").await?;
    Ok(v.as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["targetHealth"]["state"] == "healthy")
                .count()
        })
        .unwrap_or(0))
}

/// `berth_control_plane_leader` of a server's /metrics.
async fn leads(api: &Api) -> Result<bool> {
    let (status, text) = api.send("GET", "/metrics", true).await?;
    anyhow::ensure!(status == 200, "GET /metrics: {status}");
    let line = text
        .lines()
        .find(|l| l.starts_with("berth_control_plane_leader "))
        .context("/metrics has no berth_control_plane_leader")?;
    Ok(line.ends_with(" 1"))
}

async fn agent_connected(api: &Api, instance: &str) -> Option<bool> {
    let v = api.get_json("/v1/container-instances").await.ok()?;
    v.as_array()?
        .iter()
        .find(|i| i["ec2InstanceId"] == instance)?["agentConnected"]
        .as_bool()
}

/// The servers' APIs, once the shared authority's `ca.pem` and the admin's credentials
/// are in the volume the servers share.
async fn apis(project: &Project) -> Result<[Api; 2]> {
    let (ca, creds) = wait_until(
        "the API authority and the admin's credentials",
        SETTLE,
        || async {
            let ca = project
                .run(&[
                    "exec",
                    "-T",
                    "server-1",
                    "cat",
                    "/var/lib/berth/api-tls/ca.pem",
                ])
                .ok()
                .filter(|pem| pem.contains("END CERTIFICATE"))?;
            let creds = project
                .run(&[
                    "exec",
                    "-T",
                    "server-1",
                    "sh",
                    "-c",
                    "cat /var/lib/berth/*/admin-credentials",
                ])
                .ok()?;
            Some((ca, parse_creds(&creds)?))
        },
    )
    .await?;
    let creds = Arc::new(creds);
    Ok([
        Api::new(
            project.published("server-1", 7070)?,
            ca.as_bytes(),
            creds.clone(),
        )?,
        Api::new(project.published("server-2", 7070)?, ca.as_bytes(), creds)?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_cluster_serves_the_quickstart_and_survives_a_lost_server_and_agent(
) -> Result<()> {
    require_docker();
    require_docker_compose();
    let project = Project::new();
    build_images(&project.tag);
    let started = Instant::now();
    project.run(&["up", "--detach", "--no-build"])?;
    let up_took = started.elapsed();

    let result = exercise(&project).await;
    if let Err(e) = &result {
        eprintln!("docker-compose logs:\n{}", project.logs());
        eprintln!("failed: {e:#}");
    }
    result?;
    eprintln!("up took {up_took:?}; the whole run {:?}", started.elapsed());

    project.run(&["down", "--volumes", "--remove-orphans", "--timeout", "5"])?;
    let left = project.leftovers();
    assert!(left.is_empty(), "down -v left {left:?}");
    Ok(())
}

async fn exercise(project: &Project) -> Result<()> {
    let http = http();
    let api = apis(project).await?;
    let listener = [
        project.published("server-1", 8080)?,
        project.published("server-2", 8080)?,
    ];
    let prometheus = project.published("prometheus", 9090)?;
    let started = Instant::now();

    // The quickstart serves through server-1's listener, answered by its 3 tasks.
    let seen = wait_until("the quickstart to serve from 3 tasks", SETTLE, || {
        let (http, listener) = (&http, &listener[0]);
        async move {
            let tasks: BTreeSet<String> = answering_tasks(http, listener, 12)
                .await?
                .into_iter()
                .collect();
            (tasks.len() == 3).then_some(tasks)
        }
    })
    .await?;
    eprintln!(
        "the quickstart served from 3 tasks {:?} after up",
        started.elapsed()
    );

    // Both APIs answer signed requests from the one store, over https with certificates
    // the one ca.pem verifies; an unsigned request is refused. Exactly one server leads.
    let mut leaders = Vec::new();
    for (i, api) in api.iter().enumerate() {
        let service = api
            .get_json("/v1/clusters/default/services/whoami")
            .await
            .with_context(|| format!("server-{}'s API", i + 1))?;
        assert_eq!(service["desiredCount"], 3, "server-{}: {service}", i + 1);
        let (status, body) = api.send("GET", "/v1/clusters", false).await?;
        assert_eq!(status, 403, "server-{}, unsigned: {body}", i + 1);
        assert!(
            body.contains("MissingAuthenticationToken"),
            "server-{}: {body}",
            i + 1
        );
        if leads(api).await? {
            leaders.push(i);
        }
    }
    assert_eq!(leaders.len(), 1, "one leader among the two servers");
    let leader = leaders[0];

    // The tasks run on the agents only (the servers' instances are in cluster `servers`),
    // spread over both.
    let agent_ids = [
        project
            .run(&[
                "exec",
                "-T",
                "agent-1",
                "cat",
                "/var/lib/berth-agent/instance-id",
            ])?
            .trim()
            .to_string(),
        project
            .run(&[
                "exec",
                "-T",
                "agent-2",
                "cat",
                "/var/lib/berth-agent/instance-id",
            ])?
            .trim()
            .to_string(),
    ];
    let tasks = whoami_tasks(&api[0]).await?;
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    for agent in &agent_ids {
        assert!(
            tasks.iter().any(|(_, on, _)| on == agent),
            "a task runs on agent {agent}: {tasks:?}"
        );
    }
    assert!(
        tasks.iter().all(|(_, on, _)| agent_ids.contains(on)),
        "every task runs on an agent {agent_ids:?}: {tasks:?}"
    );
    assert_eq!(
        seen,
        tasks.iter().map(|(id, _, _)| id.clone()).collect(),
        "the listener reaches the 3 tasks"
    );

    // Prometheus scrapes both servers over https: two leader gauges, one of them 1.
    wait_until("Prometheus to scrape both servers", SETTLE, || {
        let (http, prometheus) = (&http, &prometheus);
        async move {
            let v: Value = http
                .get(format!(
                    "http://{prometheus}/api/v1/query?query=berth_control_plane_leader"
                ))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let series = v["data"]["result"].as_array()?;
            let ones = series.iter().filter(|s| s["value"][1] == "1").count();
            (series.len() == 2 && ones == 1).then_some(())
        }
    })
    .await?;

    // Lose agent-1, then the server agent-2's node link is connected to (so agent-2
    // must reconnect to the other one through the `control-plane` alias); serve through
    // the other server meanwhile.
    let servers = [project.address("server-1")?, project.address("server-2")?];
    let linked = wait_until("agent-2's one node link connection", SETTLE, || async {
        let peers = project.peers_on_port("agent-2", 7071).ok()?;
        match peers.as_slice() {
            [peer] => servers.iter().position(|s| s == peer),
            _ => None,
        }
    })
    .await?;
    let survivor = 1 - linked;
    let lost: BTreeSet<String> = tasks
        .iter()
        .filter(|(_, on, _)| *on == agent_ids[0])
        .map(|(id, _, _)| id.clone())
        .collect();
    let load = Load::start(&listener[survivor], 2);
    let lost_at = Instant::now();
    project.run(&["stop", "--timeout", "5", "agent-1"])?;
    wait_until("agent-1's instance to be disconnected", SETTLE, || {
        let (api, id) = (&api[survivor], &agent_ids[0]);
        async move { (agent_connected(api, id).await == Some(false)).then_some(()) }
    })
    .await?;
    eprintln!(
        "agent-1 disconnected {:?} after its stop",
        lost_at.elapsed()
    );
    let stopped_server = format!("server-{}", linked + 1);
    project.run(&["stop", "--timeout", "10", &stopped_server])?;
    eprintln!(
        "{stopped_server} (agent-2's link, {}) stopped {:?} after agent-1",
        if linked == leader {
            "the leader"
        } else {
            "a follower"
        },
        lost_at.elapsed()
    );

    let api = &api[survivor];
    let replaced = wait_until(
        "agent-1's tasks to be replaced on agent-2",
        SETTLE,
        || async {
            let tasks = whoami_tasks(api).await.ok()?;
            let running_on_agent_2 = tasks
                .iter()
                .filter(|(_, on, status)| *on == agent_ids[1] && status == "RUNNING")
                .count();
            (tasks.len() == 3 && running_on_agent_2 == 3 && healthy_targets(api).await.ok()? == 3)
                .then_some(tasks)
        },
    )
    .await?;
    let report = load.finish().await;
    eprintln!(
        "agent-1's tasks replaced and healthy {:?} after its stop; through the surviving server meanwhile: {} ok, {} failed {:?}",
        lost_at.elapsed(),
        report.ok,
        report.failed,
        report.errors
    );
    assert!(
        report.ok > 0,
        "the surviving server served while the cluster recovered: {report:?}"
    );
    // A request the proxy sends to a task of the vanished agent waits for its connect
    // timeout (10 s, as ALB's) before it is retried on another task, and the load's
    // client gives up at 10 s; the failed connect ejects that target, so each lost task
    // can cost each load loop at most one request before health checks take the agent's
    // targets out.
    let bound = 2 * lost.len() as u64;
    assert!(
        report.failed <= bound,
        "at most one request per load loop and lost task ({bound}) outlasts the client's timeout: {report:?}"
    );
    assert!(leads(api).await?, "the surviving server leads");

    let now: BTreeSet<String> = replaced.iter().map(|(id, _, _)| id.clone()).collect();
    assert!(
        now.is_disjoint(&lost),
        "the lost agent's tasks {lost:?} were replaced: {now:?}"
    );
    let serving: BTreeSet<String> = answering_tasks(&http, &listener[survivor], 30)
        .await
        .context("every request through the surviving server's listener succeeds")?
        .into_iter()
        .collect();
    assert_eq!(
        serving, now,
        "the surviving listener reaches the 3 tasks on agent-2"
    );
    // agent-2 hears the surviving server, whichever server it was linked to: a task
    // stopped through that server's API is stopped on agent-2 and replaced there.
    let stopped = replaced[0].0.clone();
    let (status, body) = api
        .send(
            "POST",
            &format!("/v1/clusters/default/tasks/{stopped}/stop"),
            true,
        )
        .await?;
    assert!(
        (200..300).contains(&status),
        "stopping task {stopped}: {status} {body}"
    );
    let stopped_at = Instant::now();
    wait_until(
        "agent-2 to stop the task and start its replacement",
        SETTLE,
        || async {
            let t = api
                .get_json(&format!("/v1/clusters/default/tasks/{stopped}"))
                .await
                .ok()?;
            let tasks = whoami_tasks(api).await.ok()?;
            let running_on_agent_2 = tasks
                .iter()
                .filter(|(id, on, status)| {
                    *id != stopped && *on == agent_ids[1] && status == "RUNNING"
                })
                .count();
            (t["lastStatus"] == "STOPPED"
                && running_on_agent_2 == 3
                && healthy_targets(api).await.ok()? == 3)
                .then_some(())
        },
    )
    .await?;
    eprintln!(
        "a task stopped through the surviving server was replaced on agent-2 in {:?}",
        stopped_at.elapsed()
    );

    // Stopped by whichever noticed first: the failed health checks (the service
    // scheduler) or the lost agent's timeout.
    for task in &lost {
        let t = api
            .get_json(&format!("/v1/clusters/default/tasks/{task}"))
            .await?;
        assert_eq!(t["lastStatus"], "STOPPED", "{t}");
        assert!(
            t["stopCode"] == "InfrastructureHealth" || t["stopCode"] == "ServiceSchedulerInitiated",
            "{t}"
        );
    }
    Ok(())
}
