//! One berth node's mesh proxy serving both ends of a mesh hop, for benchmarks: a mesh
//! listener on `--listen` with one HTTP client alias (`orders.internal`) forwarding to a
//! mesh target group whose one target is `--backend`, reached over mutual TLS 1.3
//! through the same proxy's inbound listener (`--inbound`), which forwards to the
//! backend. Configured through `berth-proxy`'s public API (`Proxy::bind_mesh_inbound` +
//! `Proxy::apply`) as the control plane would, with a mesh CA and SPIFFE certificates
//! made at start with rcgen.
//!
//! Prints `ready <mesh listener address>` once the target is healthy and a request has
//! crossed the hop, then serves until SIGINT or SIGTERM. Requests must carry
//! `Host: orders.internal` (the alias).
//!
//! Exit codes: 64 for a configuration berth-proxy rejects, 1 for anything else.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_benches::mesh::{
    mesh_proxy_config, wait_healthy, MeshBenchCa, MeshBenchConfig, MESH_ALIAS,
};
use berth_benches::BACKEND_BODY;
use berth_proxy::{mesh_listener_key, Proxy, ProxyError, ProxyOptions};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The allocator berth runs on.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "berth's mesh proxy serving both ends of one mesh hop, for benchmarks")]
struct Args {
    /// The client alias's port (the mesh listener).
    #[arg(long, default_value_t = 18091)]
    listen: u16,
    /// The address the mesh listener binds on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// The inbound mesh listener's address (port 0: an ephemeral port).
    #[arg(long, default_value = "127.0.0.1:0")]
    inbound: SocketAddr,
    /// The called service's one endpoint.
    #[arg(long)]
    backend: SocketAddr,
    /// Tokio worker threads; 1 runs everything on one thread (current_thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Health check interval of the mesh target group, in seconds (5–300).
    #[arg(long, default_value_t = 5)]
    health_interval: u32,
    /// Give up when the hop does not answer after this many seconds.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
}

fn main() {
    berth_benches::log_as_berth_does();
    let args = Args::parse();
    let runtime = match berth_benches::bench_runtime(args.threads) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("berth-bench-mesh: building the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        let code = match e.downcast_ref::<ProxyError>() {
            Some(ProxyError::Invalid { .. } | ProxyError::Config { .. }) => 64,
            _ => 1,
        };
        eprintln!("berth-bench-mesh: {e:#}");
        std::process::exit(code);
    }
}

async fn run(args: Args) -> Result<()> {
    let proxy = Proxy::new(ProxyOptions {
        bind_ip: args.bind,
        mesh_ips: vec![args.bind],
        registry: prometheus::Registry::new(),
        data_plane_threads: 0,
    })?;
    let inbound = proxy.bind_mesh_inbound(args.inbound).await?;
    eprintln!("berth-bench-mesh: inbound mesh listener on {inbound}");
    let ca = MeshBenchCa::new()?;
    let cfg = MeshBenchConfig {
        listen_port: args.listen,
        inbound,
        backend: args.backend,
        health_interval_seconds: args.health_interval,
    };
    let bound = proxy.apply(mesh_proxy_config(&cfg, &ca)?).await?;
    let addr = *bound
        .get(&mesh_listener_key(args.listen, args.bind))
        .context("the mesh listener was not bound")?;

    let timeout = Duration::from_secs(args.ready_timeout);
    wait_healthy(&proxy, timeout).await?;
    tokio::time::timeout(timeout, call_through_hop(addr))
        .await
        .context("the request through the hop did not finish")??;
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

/// One request to the alias through the mesh listener at `addr`; fails unless the
/// backend's answer comes back.
async fn call_through_hop(addr: SocketAddr) -> Result<()> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the mesh listener at {addr}"))?;
    s.write_all(
        format!("GET / HTTP/1.1\r\nHost: {MESH_ALIAS}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await?;
    let ok = resp.starts_with(b"HTTP/1.1 200") && resp.ends_with(BACKEND_BODY);
    if !ok {
        bail!(
            "the request through the hop got: {}",
            String::from_utf8_lossy(&resp)
        );
    }
    Ok(())
}
