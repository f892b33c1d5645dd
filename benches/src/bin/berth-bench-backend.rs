//! The backend every benchmark run uses: HTTP/1.1 with keep-alive, one fixed response of
//! about 100 bytes, on a single thread, so that it is never the bottleneck and costs the
//! same whichever proxy is in front of it.
//!
//! Usage: `berth-bench-backend --listen 127.0.0.1:18080`; prints `ready <addr>` once bound.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// 100 bytes: a typical small API response.
const BODY: &[u8] =
    b"{\"service\":\"berth-bench-backend\",\"status\":\"ok\",\"padding\":\"0123456789abcdef0123456789abcdef0123456\"}\n";

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
        .block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {bound}")?;
        out.flush()?;
    }
    let body = Bytes::from_static(BODY);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("accept: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |_req: Request<Incoming>| {
                        let body = body.clone();
                        async move {
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .header("content-type", "application/json")
                                    .body(Full::new(body))
                                    .expect("static response"),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
