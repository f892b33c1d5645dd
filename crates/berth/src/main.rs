//! `berth`: a self-hosted Amazon ECS with the load balancer built in.
//!
//! `berth server` runs the control plane, a local agent and the proxy with the embedded
//! store; the other subcommands are clients of a server's API.
//!
//! The binary only wires the pieces together; it holds no rules of its own.
//!
//! Layout:
//! - `server`: `berth server`: the store, the proxy, the runtime, the control plane and
//!   the local agent, connected; the API and `/metrics`.
//! - `store_choice`: `--store` (redb or etcd) and, on etcd, running the reconcilers
//!   only while this server is the elected leader.
//! - `data_plane`: the proxy behind the control plane's `DataPlane` seam.
//! - `dataplane`: `berth dataplane`, the node's proxy in a process that outlives the
//!   server, and the server's client of it.
//! - `agent_command`: `berth agent`, this machine as a container instance of a remote
//!   control plane, over the node link.
//! - `node_link_server`: `berth server --node-listen`, where remote agents connect.
//! - `live_nodes`: the berth nodes running on this machine (whose tasks are not
//!   orphans).
//! - `agent_link`: the local agent behind control's `AgentService`, and the agent's task
//!   queries behind control's `TaskNodes`.
//! - `down_command`: `berth down`, the cluster's services deleted and tasks stopped.
//! - `client`: the API client behind the other subcommands.
//! - `autoscaling_commands`: `get`, `describe` and `delete` of the autoscaling kinds.
//! - `instance_commands`: `drain` and `activate` of a container instance.
//! - `redeploy_command`: `berth redeploy`, a forced new deployment of a service.
//! - `image`: `berth image build-demo`.
//! - `iam_commands`: `berth iam ...` (users, policies, access keys);
//!   `iam_credentials`: the credentials the CLI signs its requests with
//!   (`container_credentials`: from a task's container credential endpoint);
//!   `iam_server`: `berth server`'s API authentication (`--insecure-loopback`) and the
//!   admin's first credentials; `iam_tls`: the API over TLS.
//! - `task_endpoint_setup`: the node's task endpoint (role credentials and task
//!   metadata for its tasks) for `server` and `agent`.
//! - `whole_file`: files other processes poll (`api.addr`, the data plane's pid file),
//!   written whole.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod agent_command;
mod agent_link;
mod autoscaling_commands;
mod client;
mod container_credentials;
mod data_plane;
mod dataplane;
mod down_command;
mod exec_command;
mod iam_commands;
mod iam_credentials;
mod iam_server;
mod iam_tls;
mod image;
mod instance_commands;
mod live_nodes;
mod local_terminal;
mod node_discovery;
mod node_link_server;
mod node_proxy;
mod redeploy_command;
mod secrets_commands;
mod server;
mod store_choice;
mod task_endpoint_setup;
mod tls_names;
mod whole_file;

/// mimalloc, not the system allocator: memory freed by connections that went quiet (an
/// idle keep-alive connection leaves its task) goes back to the system instead of staying
/// in the process (docs/architecture.md, "berth runs on mimalloc").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted ECS with the load balancer built in"
)]
struct Cli {
    /// The berth API to talk to.
    #[arg(
        long,
        global = true,
        env = "BERTH_ENDPOINT",
        default_value = "http://127.0.0.1:7070"
    )]
    endpoint: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, default_value = "table", value_parser = ["table", "json"])]
    output: String,
    /// A credentials file to sign requests with (the AWS CLI's format). Used when
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set; without either, the data
    /// directory's admin-credentials file is used when it exists.
    #[arg(long, global = true, env = "BERTH_CREDENTIALS", value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// The certificate authority (PEM) an https endpoint's certificate chains to.
    /// Default: the data directory's API authority, when it exists.
    #[arg(long, global = true, env = "BERTH_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole cluster on this machine: control plane, agent and load balancer.
    Server(server::ServerArgs),
    /// Join this machine to a cluster whose control plane runs elsewhere, as a container
    /// instance that runs the tasks placed on it.
    Agent(agent_command::AgentArgs),
    /// Create or update everything a stack file lists (all or nothing).
    Apply {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Show what would change without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Check a stack file without a server.
    Validate {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
    /// List resources: clusters, services, tasks, task-definitions, target-groups,
    /// targets, load-balancers, container-instances, namespaces, scalable-targets,
    /// scaling-policies, scheduled-actions; `endpoints <service>` shows a service's
    /// endpoints as the mesh and DNS see them.
    Get {
        kind: String,
        /// The service, for `endpoints`.
        name: Option<String>,
        #[arg(short = 'c', long)]
        cluster: Option<String>,
    },
    /// Show one resource in full; `scaling-activities <service>` lists what the
    /// autoscaler did to a service and why it did not scale. Scaling policies and
    /// scheduled actions are named `<service>/<name>`.
    Describe {
        kind: String,
        name: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
    },
    /// Delete a resource (a service drains its tasks first and loses its autoscaling; a
    /// task definition is deregistered; a scalable target takes its service's scaling
    /// policies and scheduled actions with it).
    Delete {
        kind: String,
        name: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
    },
    /// Stop a task (its targets drain first).
    Stop {
        task: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Take a cluster's workload down: delete every service (its tasks drain first), stop
    /// every other task, wait until all are STOPPED, and print what was stopped.
    Down {
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
        /// Seconds to wait for every task to stop.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Force a new deployment of a service with its current task definition: every task
    /// is replaced under the service's rolling rules (maximumPercent,
    /// minimumHealthyPercent, health checks, drain first, the circuit breaker), as
    /// UpdateService with forceNewDeployment does; e.g. to pick up a new image behind
    /// the same tag.
    Redeploy {
        service: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
    },
    /// Set a container instance DRAINING: nothing new is placed on it, and its service
    /// tasks are replaced on other instances (replacements first, within the service's
    /// maximumPercent; old tasks stop, drained from their target groups first, while
    /// minimumHealthyPercent holds). Tasks outside a service stay. It stays DRAINING
    /// until `berth activate`.
    Drain {
        /// The instance's id (as `berth get container-instances` shows it), ARN or a
        /// unique prefix of its id.
        instance: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
    },
    /// Set a DRAINING container instance ACTIVE again: new tasks may be placed on it.
    Activate {
        /// The instance's id, ARN or a unique prefix of its id.
        instance: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
    },
    /// Print a task's output.
    Logs {
        task: String,
        #[arg(short = 'c', long, default_value = "default")]
        cluster: String,
        #[arg(long)]
        container: Option<String>,
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Run a command in a running task's container; exits with the command's exit code.
    ///
    /// The task must have started with enableExecuteCommand (its service's setting):
    /// berth exec <task> [--container NAME] [-i] [-t] -- CMD ARGS...
    /// (-i and -t open a session that streams stdin and output while the command runs).
    Exec(exec_command::ExecArgs),
    /// Users, their policies and access keys.
    Iam {
        #[command(subcommand)]
        command: iam_commands::IamCommand,
    },
    /// Secrets that task definitions' `secrets` set in containers' environment.
    Secrets {
        #[command(subcommand)]
        command: secrets_commands::SecretsCommand,
    },
    /// Build images locally (nothing can be pulled without a registry).
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// The node's data plane (load balancer and mesh listeners, health checks), started
    /// by `berth server` and outliving it; `berth dataplane upgrade` replaces it by one of
    /// the current executable without refusing a connection.
    Dataplane(dataplane::command::DataPlaneCommand),
    /// Supervises one task process (used by the process runtime).
    #[command(hide = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the demo app's image (`FROM scratch` plus a statically linked berth-whoami).
    BuildDemo {
        /// The static binary; default: target/x86_64-unknown-linux-gnu/{release,debug}/berth-whoami.
        #[arg(long)]
        binary: Option<PathBuf>,
        #[arg(long, default_value = "berth-whoami:latest")]
        tag: String,
    },
}

/// Puts the directory of the `berth` executable first on PATH, so the process runtime
/// finds the binaries shipped beside berth (such as `berth-whoami`) by name. Runs before
/// any thread starts.
fn prefer_own_directory_on_path() {
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()))
    else {
        return;
    };
    let mut paths = vec![dir];
    if let Some(old) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    if let Ok(joined) = std::env::join_paths(paths) {
        std::env::set_var("PATH", joined);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Shim { args } = cli.command {
        berth_runtime::process::shim_main(args);
    }
    if matches!(cli.command, Command::Server(_) | Command::Agent(_)) {
        prefer_own_directory_on_path();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,hickory_server=warn,hickory_proto=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match &cli.command {
        Command::Exec(args) => rt.block_on(exec_command::run(
            &match iam_credentials::resolve(cli.credentials.as_deref()).and_then(|creds| {
                client::Client::new(&cli.endpoint)
                    .with_credentials(creds)
                    .with_tls_roots(cli.ca_cert.as_deref())
            }) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::FAILURE;
                }
            },
            args,
            cli.output == "json",
        )),
        _ => rt.block_on(run(cli)).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<client::BadConfig>().is_some() {
                ExitCode::from(64)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.output == "json";
    let c = client::Client::new(&cli.endpoint);
    let c = match cli.command {
        Command::Server(_) | Command::Agent(_) | Command::Dataplane(_) => c,
        _ => c
            .with_credentials(iam_credentials::resolve(cli.credentials.as_deref())?)
            .with_tls_roots(cli.ca_cert.as_deref())?,
    };
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Agent(args) => agent_command::run(args).await,
        Command::Dataplane(args) => dataplane::command::run(args).await,
        Command::Apply { file, dry_run } => client::apply(&c, &file, dry_run, json).await,
        Command::Validate { file } => {
            let stack = client::read_stack(&file)?;
            println!(
                "{}: valid ({} clusters, {} task definitions, {} target groups, {} load balancers, {} services, {} scalable targets, {} scaling policies, {} scheduled actions)",
                file.display(),
                stack.clusters.len(),
                stack.task_definitions.len(),
                stack.target_groups.len(),
                stack.load_balancers.len(),
                stack.services.len(),
                stack.scalable_targets.len(),
                stack.scaling_policies.len(),
                stack.scheduled_actions.len()
            );
            Ok(())
        }
        Command::Get {
            kind,
            name,
            cluster,
        } => {
            let kind = client::normalize_kind(&kind)?;
            if kind == "endpoints" {
                let service = name.ok_or_else(|| {
                    anyhow::anyhow!(
                        "name the service: berth get endpoints <service> [--cluster <cluster>]"
                    )
                })?;
                let cluster = cluster
                    .as_deref()
                    .unwrap_or(berth_model::ecs::DEFAULT_CLUSTER);
                client::get_endpoints(&c, &service, cluster, json).await
            } else if let Some(name) = name {
                anyhow::bail!("berth get {kind} takes no name (got {name:?}); use berth describe {kind} {name}")
            } else if autoscaling_commands::KINDS.contains(&kind) {
                autoscaling_commands::get(&c, kind, cluster.as_deref(), json).await
            } else {
                client::get(&c, kind, cluster.as_deref(), json).await
            }
        }
        Command::Describe {
            kind,
            name,
            cluster,
        } => {
            let kind = client::normalize_kind(&kind)?;
            if autoscaling_commands::KINDS.contains(&kind) {
                autoscaling_commands::describe(&c, kind, &name, &cluster, json).await
            } else {
                client::describe(&c, kind, &name, &cluster).await
            }
        }
        Command::Delete {
            kind,
            name,
            cluster,
        } => {
            let kind = client::normalize_kind(&kind)?;
            if autoscaling_commands::KINDS.contains(&kind) {
                autoscaling_commands::delete(&c, kind, &name, &cluster).await
            } else {
                client::delete(&c, kind, &name, &cluster).await
            }
        }
        Command::Stop {
            task,
            cluster,
            reason,
        } => {
            let body = serde_json::json!({ "reason": reason });
            let t = c
                .post(&format!("/v1/clusters/{cluster}/tasks/{task}/stop"), &body)
                .await?;
            println!(
                "task {} {} (desired {})",
                t["taskArn"].as_str().unwrap_or("?"),
                t["lastStatus"].as_str().unwrap_or("?"),
                t["desiredStatus"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        Command::Down { cluster, timeout } => {
            down_command::run(&c, &cluster, std::time::Duration::from_secs(timeout)).await
        }
        Command::Redeploy { service, cluster } => {
            redeploy_command::run(&c, &service, &cluster, json).await
        }
        Command::Drain { instance, cluster } => {
            instance_commands::set_status(&c, &instance, &cluster, "DRAINING", json).await
        }
        Command::Activate { instance, cluster } => {
            instance_commands::set_status(&c, &instance, &cluster, "ACTIVE", json).await
        }
        Command::Logs {
            task,
            cluster,
            container,
            follow,
        } => {
            let mut q = vec![];
            if let Some(cn) = container {
                q.push(format!("container={cn}"));
            }
            if follow {
                q.push("follow=true".into());
            }
            let qs = if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            };
            c.stream_to_stdout(&format!("/v1/clusters/{cluster}/tasks/{task}/logs{qs}"))
                .await
        }
        Command::Iam { command } => iam_commands::run(&c, &command, json).await,
        Command::Secrets { command } => secrets_commands::run(&c, &command, json).await,
        Command::Image {
            command: ImageCommand::BuildDemo { binary, tag },
        } => image::build_demo(binary.as_deref(), &tag).await,
        Command::Shim { .. } => unreachable!("handled before the runtime starts"),
        Command::Exec(_) => unreachable!("handled in main: it exits with the command's code"),
    }
}
