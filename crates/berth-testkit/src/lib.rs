//! berth-testkit: helpers for berth's end-to-end tests (a dev-dependency only).
//!
//! - [`bin`]: the path of a workspace binary built by `cargo test --workspace`.
//! - [`Server`]: a `berth server` child process on a private data dir, API and listeners
//!   on 127.0.0.1 with ports chosen by the system, plus a CLI runner and JSON getters.
//! - [`wait_until`]: bounded polling for a condition the system reaches on its own.
//! - [`etcd`]: a real etcd child process on loopback, for the etcd store and leader
//!   election.
//! - [`prometheus`]: a real Prometheus child process scraping a server, for tests of
//!   customized metrics given as PromQL.
//!
//! Every task process a test server starts inherits `BERTH_DATA_DIR`, and so does its
//! data plane process (marked `BERTH_DATA_PLANE=1`, which [`Server::task_processes`]
//! leaves out); every container carries the server's instance id. So
//! [`Server::kill_everything`] (run on drop) finds and removes them even after the
//! server itself was killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

pub mod agent;
pub mod etcd;
pub mod mesh;
pub mod netns;
pub mod prometheus;
pub mod small_fs;

pub use etcd::{require_etcd, Etcd, EtcdPorts};
pub use mesh::{called_tasks, mesh_stack, running_task_ids, unique_loopback, MeshStack};
pub use prometheus::{require_prometheus, Prometheus};

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> → target/debug
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// The path of workspace binary `name`; panics with instructions if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds every binary first",
        p.display()
    );
    p
}

/// Polls `f` every `step` until it returns `Some`, failing after `timeout` with `what`.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Server {
    pub data_dir: PathBuf,
    pub api: String,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

impl Server {
    /// Starts a server on a fresh data dir, optionally applying a stack file; tasks run
    /// as local processes.
    pub async fn start(apply: Option<&Path>) -> Result<Server> {
        Server::start_with("process", apply).await
    }

    /// The id of this server's container instance.
    pub fn instance_id(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("instance-id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// Ids of the Docker containers this server's instance started (running or not).
    pub fn containers(&self) -> Vec<String> {
        docker_ids(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=berth.container-instance={}", self.instance_id()),
        ])
    }

    /// Starts a server on a fresh data dir with tasks on `runtime` (`process`/`docker`).
    pub async fn start_with(runtime: &str, apply: Option<&Path>) -> Result<Server> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let mut s = Server::launch(&dir, apply, runtime).await?;
        s._tmp = Some(tmp);
        Ok(s)
    }

    /// Starts a server on `data_dir` (which may hold an earlier server's state), tasks
    /// running as local processes.
    pub async fn start_in(data_dir: &Path, apply: Option<&Path>) -> Result<Server> {
        Server::launch(data_dir, apply, "process").await
    }

    /// Starts a server on `data_dir` with tasks on `runtime`.
    pub async fn launch(data_dir: &Path, apply: Option<&Path>, runtime: &str) -> Result<Server> {
        Server::launch_with(data_dir, apply, runtime, &[]).await
    }

    /// [`Server::launch`] with more `berth server` arguments. Without a `--dns-listen`
    /// among them the server's DNS listens on 127.0.0.1, port chosen by the system. The
    /// API answers unsigned requests (`--insecure-loopback`, given explicitly), so tests
    /// may speak raw HTTP to it.
    pub async fn launch_with(
        data_dir: &Path,
        apply: Option<&Path>,
        runtime: &str,
        extra: &[String],
    ) -> Result<Server> {
        let mut extra = extra.to_vec();
        extra.push("--insecure-loopback".into());
        Server::launch_guarded(data_dir, apply, runtime, &extra).await
    }

    /// [`Server::launch_with`] with the API's authentication on (berth's default): every
    /// request must be signed; the admin's credentials are in
    /// `<data_dir>/admin-credentials`.
    pub async fn launch_guarded(
        data_dir: &Path,
        apply: Option<&Path>,
        runtime: &str,
        extra: &[String],
    ) -> Result<Server> {
        Server::launch_program(&bin("berth"), data_dir, apply, runtime, extra).await
    }

    /// [`Server::launch_guarded`] running the berth executable at `program` (a copy of
    /// the built one, say).
    pub async fn launch_program(
        program: &Path,
        data_dir: &Path,
        apply: Option<&Path>,
        runtime: &str,
        extra: &[String],
    ) -> Result<Server> {
        let addr_file = data_dir.join("api.addr");
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = Command::new(program);
        cmd.arg("server")
            .args(["--api-addr", "127.0.0.1:0", "--listen-ip", "127.0.0.1"])
            .args(["--runtime", runtime])
            .args(extra)
            .env("BERTH_DATA_DIR", data_dir)
            .env(
                "BERTH_LOG",
                "info,berth=debug,hickory_server=warn,hickory_proto=warn",
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data_dir.join("server.log"))
                    .or_else(|_| {
                        std::fs::create_dir_all(data_dir)?;
                        std::fs::File::create(data_dir.join("server.log"))
                    })?,
            ));
        if !extra.iter().any(|a| a == "--mesh-inbound-addr") {
            // Servers of concurrent tests each take a port of their own.
            cmd.args(["--mesh-inbound-addr", "127.0.0.1:0"]);
        }
        if !extra.iter().any(|a| a == "--dns-listen") {
            // Servers of concurrent tests each serve DNS on a port of their own.
            cmd.args(["--dns-listen", "127.0.0.1:0"]);
        }
        if let Some(p) = apply {
            cmd.arg("--apply").arg(p);
        }
        let mut child = spawn_retrying_busy_text(&mut cmd).context("spawning berth server")?;
        let api = wait_until(
            "the server to write api.addr",
            Duration::from_secs(30),
            || {
                let f = addr_file.clone();
                let exited = child.try_wait().ok().flatten();
                let log = data_dir.join("server.log");
                async move {
                    if exited.is_some() {
                        let log = std::fs::read_to_string(&log).unwrap_or_default();
                        return Some(Err(anyhow!(
                            "berth server exited early: {exited:?}; its log:\n{log}"
                        )));
                    }
                    // An empty read is a file created but not written yet.
                    let text = std::fs::read_to_string(f).ok();
                    text.filter(|t| !t.trim().is_empty()).map(Ok)
                }
            },
        )
        .await??;
        Ok(Server {
            data_dir: data_dir.to_path_buf(),
            api,
            child: Some(child),
            _tmp: None,
            http: reqwest::Client::new(),
        })
    }

    /// `berth apply -f path`, which must succeed; returns what it printed.
    pub fn apply_ok(&self, path: &Path) -> String {
        let out = self.cli(&["apply", "-f", &path.to_string_lossy()]);
        assert!(
            out.status.success(),
            "berth apply -f {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits for a task of `service` to reach STOPPED and returns it.
    pub async fn first_stopped(&self, service: &str, timeout: Duration) -> Result<Value> {
        let path = format!("/v1/tasks?service={service}");
        wait_until(&format!("a task of {service} to stop"), timeout, || {
            let path = path.clone();
            async move {
                let tasks = self.get(&path).await.ok()?;
                tasks
                    .as_array()?
                    .iter()
                    .find(|t| t["lastStatus"] == "STOPPED")
                    .cloned()
            }
        })
        .await
    }

    /// The server log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("berth"))
            .args(args)
            .env("BERTH_ENDPOINT", &self.api)
            .output()
            .expect("running the berth CLI")
    }

    /// Runs the CLI against this server with `input` as its stdin (then closed); panics
    /// when it runs past `bound` (after killing it).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str, bound: Duration) -> Output {
        use std::io::Write;
        let mut child = Command::new(bin("berth"))
            .args(args)
            .env("BERTH_ENDPOINT", &self.api)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the berth CLI");
        let mut stdin = child.stdin.take().expect("a piped stdin");
        stdin
            .write_all(input.as_bytes())
            .expect("writing the CLI's stdin");
        drop(stdin);
        let pid = child.id();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(child.wait_with_output());
        });
        match finished.recv_timeout(bound) {
            Ok(out) => out.expect("waiting for the berth CLI"),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("berth {args:?} still runs after {bound:?}");
            }
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let r = self.http.get(format!("{}{path}", self.api)).send().await?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {v}");
        }
        Ok(v)
    }

    /// The server's `berth_control_passes_total`: passes of its reconcilers.
    pub async fn control_passes(&self) -> Result<u64> {
        let metrics = self
            .http
            .get(format!("{}/metrics", self.api))
            .send()
            .await?
            .text()
            .await?;
        let line = metrics
            .lines()
            .find(|l| l.starts_with("berth_control_passes_total "))
            .ok_or_else(|| anyhow::anyhow!("no berth_control_passes_total in {metrics}"))?;
        Ok(line.rsplit(' ').next().unwrap_or("").parse()?)
    }

    /// Asserts the server's reconcilers pass about once a second over `window` (they pass
    /// on each store change, status change and second; a settled cluster changes nothing).
    pub async fn assert_settled_passes(&self, window: Duration) -> Result<()> {
        let before = self.control_passes().await?;
        tokio::time::sleep(window).await;
        let passes = self.control_passes().await? - before;
        let most = 3 * window.as_secs() + 2;
        anyhow::ensure!(
            passes <= most,
            "{passes} reconciler passes in {window:?} of a settled server (at most {most})"
        );
        Ok(())
    }

    /// The desired count of `service` in the `default` cluster, None when it cannot be read.
    pub async fn desired_count(&self, service: &str) -> Option<i64> {
        self.get(&format!("/v1/clusters/default/services/{service}"))
            .await
            .ok()?["desiredCount"]
            .as_i64()
    }

    /// The scaling activities of `service` in the `default` cluster, newest first (none
    /// when they cannot be read).
    pub async fn scaling_activities(&self, service: &str) -> Vec<Value> {
        self.get(&format!(
            "/v1/clusters/default/services/{service}/scaling-activities"
        ))
        .await
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
    }

    /// The bound address of the first listener of load balancer `lb`.
    pub async fn listener_addr(&self, lb: &str) -> Result<String> {
        let lb_path = format!("/v1/load-balancers/{lb}");
        wait_until("the listener to bind", Duration::from_secs(30), || {
            let p = lb_path.clone();
            async move {
                let v = self.get(&p).await.ok()?;
                let port = v["listeners"][0]["boundPort"].as_u64()?;
                Some(format!("127.0.0.1:{port}"))
            }
        })
        .await
    }

    /// Tasks of `service` whose desired status is RUNNING.
    pub async fn service_tasks(&self, service: &str) -> Result<Vec<Value>> {
        let v = self
            .get(&format!(
                "/v1/tasks?service={service}&desiredStatus=RUNNING"
            ))
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Targets of a target group.
    pub async fn targets(&self, tg: &str) -> Result<Vec<Value>> {
        let v = self.get(&format!("/v1/target-groups/{tg}/targets")).await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Waits until `n` tasks of `service` run and `tg` holds exactly `n` targets, all
    /// healthy. Returns the task ids.
    pub async fn wait_healthy(
        &self,
        service: &str,
        tg: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        // What was seen last, so that a timeout says which part never came.
        let last = std::sync::Mutex::new(String::new());
        let last_seen = &last;
        wait_until(
            &format!("{n} healthy tasks of {service} in {tg}"),
            timeout,
            || async move {
                let tasks = self.service_tasks(service).await.ok()?;
                let targets = self.targets(tg).await.ok()?;
                let running: Vec<String> = tasks
                    .iter()
                    .filter(|t| t["lastStatus"] == "RUNNING")
                    .map(|t| t["taskArn"].as_str().unwrap_or("").to_string())
                    .collect();
                let healthy = targets
                    .iter()
                    .filter(|t| t["targetHealth"]["state"] == "healthy")
                    .count();
                *last_seen.lock().unwrap() = describe_tasks_and_targets(&tasks, &targets);
                (running.len() == n && tasks.len() == n && targets.len() == n && healthy == n)
                    .then_some(running)
            },
        )
        .await
        .map_err(|e| anyhow!("{e}; last seen: {}", last.lock().unwrap()))
    }

    /// Sends `signal` to the server process and waits for it to exit.
    pub fn signal_and_wait(&mut self, signal: nix::sys::signal::Signal) -> Result<()> {
        let mut child = self.child.take().context("server already stopped")?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)?;
        child.wait()?;
        Ok(())
    }

    /// Pids of every process started under this server's data dir (tasks and shims),
    /// the server itself and its data plane excluded.
    pub fn task_processes(&self) -> Vec<i32> {
        processes_of_data_dir(&self.data_dir, self.child.as_ref().map(|c| c.id() as i32))
            .into_iter()
            .filter(|pid| !is_data_plane(*pid))
            .collect()
    }

    /// The pid of the data plane process serving this server's data dir, if one runs.
    pub fn data_plane_pid(&self) -> Option<i32> {
        processes_of_data_dir(&self.data_dir, None)
            .into_iter()
            .find(|pid| is_data_plane(*pid))
    }

    /// Kills the server and every process and container it started.
    pub fn kill_everything(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let containers = if self.data_dir.join("instance-id").exists() {
            self.containers()
        } else {
            Vec::new()
        };
        if !containers.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&containers)
                .output();
        }
        // The tasks, their shims and the data plane.
        for pid in processes_of_data_dir(&self.data_dir, None) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Pids of every live process whose environment names `data_dir` as `BERTH_DATA_DIR`
/// (a server's or an agent's tasks and shims), `except` excluded.
pub fn processes_of_data_dir(data_dir: &Path, except: Option<i32>) -> Vec<i32> {
    let needle = format!("BERTH_DATA_DIR={}", data_dir.display());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if Some(pid) == except {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            // Skip zombies.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
            {
                continue;
            }
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` is a data plane process (`berth dataplane` runs with
/// `BERTH_DATA_PLANE=1`).
pub fn is_data_plane(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == b"BERTH_DATA_PLANE=1"))
        .unwrap_or(false)
}

impl Drop for Server {
    /// Leaves nothing running: the server, its task processes and its containers. (A
    /// test that restarts a server keeps the first `Server` alive until its end.)
    fn drop(&mut self) {
        self.kill_everything();
    }
}

/// A request loop against `addr` that counts successes and failures until stopped.
pub struct Load {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<LoadReport>,
}

#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub ok: u64,
    pub failed: u64,
    /// The first few failures, for the test's message.
    pub errors: Vec<String>,
    /// Distinct `x-berth-task` values seen.
    pub tasks: std::collections::BTreeSet<String>,
}

impl Load {
    /// Starts `concurrency` loops of GET http://addr/ with keep-alive.
    pub fn start(addr: &str, concurrency: usize) -> Load {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let url = format!("http://{addr}/");
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client");
            let mut joins = Vec::new();
            for _ in 0..concurrency {
                let (client, url, rx) = (client.clone(), url.clone(), rx.clone());
                joins.push(tokio::spawn(async move {
                    let mut r = LoadReport::default();
                    while !*rx.borrow() {
                        match client.get(&url).send().await {
                            Ok(resp) if resp.status().is_success() => {
                                if let Some(t) = resp.headers().get("x-berth-task") {
                                    r.tasks.insert(t.to_str().unwrap_or("").to_string());
                                }
                                let _ = resp.bytes().await;
                                r.ok += 1;
                            }
                            Ok(resp) => {
                                r.failed += 1;
                                if r.errors.len() < 5 {
                                    let st = resp.status();
                                    let body = resp.text().await.unwrap_or_default();
                                    r.errors.push(format!("{st}: {body}"));
                                }
                            }
                            Err(e) => {
                                r.failed += 1;
                                if r.errors.len() < 5 {
                                    r.errors.push(format!("{e:#}"));
                                }
                            }
                        }
                    }
                    r
                }));
            }
            let mut total = LoadReport::default();
            for j in joins {
                let r = j.await.expect("load loop");
                total.ok += r.ok;
                total.failed += r.failed;
                total.errors.extend(r.errors);
                total.tasks.extend(r.tasks);
            }
            total
        });
        Load { stop, handle }
    }

    pub async fn finish(self) -> LoadReport {
        let _ = self.stop.send(true);
        self.handle.await.expect("load generator")
    }
}

/// Runs `docker <args>` and returns the ids it prints, one per line.
pub fn docker_ids(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Asserts the Docker engine answers: Docker tests fail, never skip, without it.
pub fn require_docker() {
    let ok = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "the Docker engine does not answer (`docker info`); these tests need it"
    );
}

/// Builds `berth-whoami` (debug profile) with the cargo running the tests and returns its
/// path; `statically` links it statically, for a `FROM scratch` image.
pub fn build_whoami(statically: bool) -> PathBuf {
    let root = repo_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let triple = "x86_64-unknown-linux-gnu";
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "berth-whoami",
        "--bin",
        "berth-whoami",
    ])
    .current_dir(&root);
    if statically {
        cmd.args(["--target", triple])
            .env("RUSTFLAGS", "-C target-feature=+crt-static");
    }
    let status = cmd.status().expect("run cargo build");
    assert!(status.success(), "building berth-whoami failed");
    let mut bin = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if statically {
        bin.push(triple);
    }
    let bin = bin.join("debug").join("berth-whoami");
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

/// [`build_whoami`], statically linked.
pub fn static_whoami() -> PathBuf {
    build_whoami(true)
}

/// Builds the image `berth-whoami:latest` from [`static_whoami`] through
/// `berth image build-demo`, once per test process.
pub fn demo_image() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        require_docker();
        let binary = static_whoami();
        let out = Command::new(bin("berth"))
            .args([
                "image",
                "build-demo",
                "--tag",
                "berth-whoami:latest",
                "--binary",
            ])
            .arg(&binary)
            .output()
            .expect("run berth image build-demo");
        assert!(
            out.status.success(),
            "berth image build-demo failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes the quickstart stack into `dir` with its listener on a port the system
/// chooses and `desired` tasks; returns its path. Health checks get more slack than the
/// quickstart's (4 s timeout, 3 failures to turn unhealthy), so that a test machine busy
/// with parallel builds and tests does not have tasks replaced under the test.
pub fn quickstart(dir: &Path, desired: u32) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("configs/quickstart.yaml"))
        .expect("configs/quickstart.yaml");
    let text = text
        .replace(
            "      - port: 8080\n        protocol: HTTP",
            "      - port: 0\n        protocol: HTTP",
        )
        .replace("desiredCount: 3", &format!("desiredCount: {desired}"))
        .replace(
            "healthCheckTimeoutSeconds: 2",
            "healthCheckTimeoutSeconds: 4",
        )
        .replace("unhealthyThresholdCount: 2", "unhealthyThresholdCount: 3");
    assert!(
        text.contains("port: 0\n") && text.contains("healthCheckTimeoutSeconds: 4"),
        "the quickstart changed; update berth_testkit::quickstart"
    );
    let p = dir.join(format!("quickstart-{desired}.yaml"));
    std::fs::write(&p, text).expect("write the stack");
    p
}

/// Spawns `cmd`, again while the executable is "busy" (ETXTBSY): a test that has just
/// written a copy of a binary can find the copy's write descriptor still open in a child
/// another test thread forked meanwhile and has not yet exec'd (the descriptor closes at
/// that exec). Bounded: about 2 s.
pub fn spawn_retrying_busy_text(cmd: &mut Command) -> std::io::Result<Child> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Tasks (status, stopped reason) and targets (address, health) for a failure message.
fn describe_tasks_and_targets(tasks: &[Value], targets: &[Value]) -> String {
    let tasks: Vec<String> = tasks
        .iter()
        .map(|t| format!("{} {}", t["lastStatus"], t["stoppedReason"]))
        .collect();
    let targets: Vec<String> = targets
        .iter()
        .map(|t| {
            let h = &t["targetHealth"];
            format!(
                "{}:{} {} {} {}",
                t["id"], t["port"], h["state"], h["reason"], h["description"]
            )
        })
        .collect();
    format!("tasks {tasks:?}, targets {targets:?}")
}
