//! The backend every benchmark run uses: HTTP/1.1 with keep-alive, one fixed response of
//! about 100 bytes, on a single thread, so that it is never the bottleneck and costs the
//! same whichever proxy is in front of it.
//!
//! Usage: `berth-bench-backend --listen 127.0.0.1:18080`; prints `ready <addr>` once bound.

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
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?
        .block_on(async {
            let listener = TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "ready {}", listener.local_addr()?)?;
                out.flush()?;
            }
            tokio::select! {
                _ = berth_benches::serve_backend(listener) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        })
}
