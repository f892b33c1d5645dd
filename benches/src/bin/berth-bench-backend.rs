//! The backend every benchmark run uses: HTTP/1.1 with keep-alive, one fixed response of
//! about 100 bytes, on a single thread, so that it is never the bottleneck and costs the
//! same whichever proxy is in front of it. It also serves `/bytes/<n>`, swallows uploads
//! and holds WebSocket upgrades open (see `berth_benches::backend`).
//!
//! Usage: `berth-bench-backend --listen 127.0.0.1:18080 [--targets N]`; prints
//! `ready <addr>` once bound. `--targets N` also listens on the N − 1 other loopback
//! addresses `berth-bench-proxy --targets N` forwards to, so a target group of N distinct
//! targets reaches this one backend without it listening beyond loopback.

use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "A fast single-threaded HTTP/1.1 backend for berth's benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    listen: SocketAddr,
    /// Listen on this many addresses: --listen, then 127.0.x.y at its port.
    #[arg(long, default_value_t = 1)]
    targets: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?
        .block_on(async {
            let mut first = None;
            for addr in berth_benches::target_addrs(args.listen, args.targets)? {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                first.get_or_insert(listener.local_addr()?);
                tokio::spawn(berth_benches::serve_backend(listener));
            }
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "ready {}", first.context("no address to listen on")?)?;
                out.flush()?;
            }
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            Ok(())
        })
}
