//! berth's load balancer on its own, for benchmarks: one application load balancer with
//! one listener forwarding to one target (or `--targets N`), configured through `berth-proxy`'s public API
//! exactly as the control plane would, on a runtime with a chosen number of worker threads.
//!
//! Prints `ready <listener address>` once the listener is bound and the target has passed
//! its health checks, then serves until SIGINT or SIGTERM.
//!
//! Exit codes: 64 for a configuration berth-proxy rejects, 69 for a listener protocol
//! berth-proxy does not serve yet (e.g. HTTPS), 1 for anything else.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use berth_benches::{listener_arn, proxy_config, BenchConfig};
use berth_model::elb::TargetHealthState;
use berth_proxy::{Proxy, ProxyError, ProxyOptions};
use clap::Parser;

/// The allocator berth runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "berth's load balancer with one listener and one target, for benchmarks")]
struct Args {
    /// The listener's port.
    #[arg(long, default_value_t = 18081)]
    listen: u16,
    /// The address listeners bind on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The target every request is forwarded to.
    #[arg(long)]
    backend: SocketAddr,
    /// Targets in the target group: 1 is --backend alone; N > 1 adds --backend's port on
    /// N − 1 other loopback addresses (127.0.x.y), for a backend bound to 0.0.0.0.
    #[arg(long, default_value_t = 1)]
    targets: usize,
    /// Non-matching path-pattern rules evaluated before the default forward action.
    #[arg(long, default_value_t = 0)]
    rules: usize,
    /// Tokio worker threads; 1 runs everything on one thread (current_thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Data plane threads, each serving connections on its own single-threaded runtime
    /// (as `berth server --data-plane-threads`); 0 serves them on the runtime above.
    #[arg(long, default_value_t = 0)]
    data_plane_threads: usize,
    /// Serve HTTPS with this PEM certificate chain and private key.
    #[arg(long, num_args = 2, value_names = ["CERT", "KEY"])]
    tls: Option<Vec<String>>,
    /// A network load balancer's TCP listener instead of an HTTP one.
    #[arg(long, conflicts_with = "tls")]
    tcp: bool,
    /// The target group is HTTPS: the backend is reached over TLS (its certificate is not
    /// verified, as an ALB does not verify its targets').
    #[arg(long, conflicts_with = "tcp")]
    backend_https: bool,
    /// Health check interval of the target group, in seconds (5–300).
    #[arg(long, default_value_t = 5)]
    health_interval: u32,
    /// Give up when the target is not healthy after this many seconds.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
}

fn main() {
    berth_benches::log_as_berth_does();
    let args = Args::parse();
    let runtime = match berth_benches::bench_runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth-bench-proxy: building the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        let code = match e.downcast_ref::<ProxyError>() {
            Some(ProxyError::Unsupported { .. }) => 69,
            Some(ProxyError::Invalid { .. } | ProxyError::Config { .. }) => 64,
            _ => 1,
        };
        eprintln!("berth-bench-proxy: {e:#}");
        std::process::exit(code);
    }
}

async fn run(args: Args) -> Result<()> {
    let mut cfg = BenchConfig::new(args.listen, args.backend);
    cfg.rules = args.rules;
    cfg.targets = args.targets;
    cfg.health_interval_seconds = args.health_interval;
    cfg.tcp = args.tcp;
    cfg.backend_https = args.backend_https;
    cfg.tls = args.tls.map(|v| (v[0].clone(), v[1].clone()));

    let proxy = Proxy::new(ProxyOptions {
        bind_ip: args.bind,
        mesh_ips: vec![],
        registry: prometheus::Registry::new(),
        data_plane_threads: args.data_plane_threads,
    })?;
    let bound = proxy.apply(proxy_config(&cfg)?).await?;
    let addr = *bound
        .get(&listener_arn(args.listen))
        .context("the listener was not bound")?;

    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout);
    let mut changes = proxy.subscribe();
    loop {
        let statuses = proxy.target_statuses();
        if !statuses.is_empty()
            && statuses
                .iter()
                .all(|s| s.health.state == TargetHealthState::Healthy)
        {
            break;
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = statuses
                .iter()
                .map(|s| {
                    format!(
                        "{} {} {}",
                        s.addr,
                        s.health.state.as_str(),
                        s.health.reason.as_deref().unwrap_or("")
                    )
                })
                .collect();
            bail!(
                "target {} not healthy after {} s: {}",
                args.backend,
                args.ready_timeout,
                states.join(", ")
            );
        }
        // Woken by any status change; the timeout re-checks the deadline.
        let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {addr}")?;
        out.flush()?;
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    proxy.shutdown().await;
    Ok(())
}
