//! Many idle client connections held open against one HTTP listener: each connection
//! makes one request (`--mode keepalive`: `GET /` with keep-alive, the whole answer read;
//! `--mode websocket`: a WebSocket upgrade answered 101) and then sits idle, sending
//! nothing, until the tool is told to stop.
//!
//! Each connection comes from its own loopback source address (127.2.x.y), as many
//! clients would, so per-client-address connection limits do not apply.
//!
//! Prints `ready <n>` once all `n` connections have made their request, then holds them;
//! on SIGTERM or SIGINT prints `dropped <k>` (how many the server closed meanwhile) and
//! exits. It measures nothing on the server: the script reads the server's memory
//! before and after.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// One `GET /` with keep-alive, then idle.
    Keepalive,
    /// One WebSocket upgrade (101), then idle.
    Websocket,
}

#[derive(Parser)]
#[command(about = "Open many idle keep-alive connections or WebSockets and hold them")]
struct Args {
    /// The listener's address.
    #[arg(long)]
    connect: SocketAddr,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// What each connection does before it goes idle.
    #[arg(long, value_enum, default_value_t = Mode::Keepalive)]
    mode: Mode,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 200)]
    parallel: usize,
}

/// The loopback source address of connection `i`: 127.2.x.y, y in 1..=254.
fn source_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        2 + (i / (254 * 256)) as u8,
        (i / 254 % 256) as u8,
        (i % 254 + 1) as u8,
    )
}

const KEEPALIVE_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const WEBSOCKET_REQUEST: &[u8] = b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The answer's `Content-Length`, if the head has one.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Opens connection `i` and makes its one request; returns the idle stream.
async fn open(i: usize, addr: SocketAddr, mode: Mode) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source_ip(i).into(), 0))
        .with_context(|| format!("binding {}", source_ip(i)))?;
    let mut s = socket.connect(addr).await.context("connecting")?;
    s.set_nodelay(true)?;
    s.write_all(match mode {
        Mode::Keepalive => KEEPALIVE_REQUEST,
        Mode::Websocket => WEBSOCKET_REQUEST,
    })
    .await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed before answering");
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = &buf[..end + 4];
        let want = match mode {
            Mode::Keepalive if head.starts_with(b"HTTP/1.1 200") => {
                content_length(head).context("answer without Content-Length")?
            }
            Mode::Websocket if head.starts_with(b"HTTP/1.1 101") => 0,
            _ => bail!(
                "unexpected answer: {:?}",
                String::from_utf8_lossy(&head[..head.len().min(80)])
            ),
        };
        if buf.len() >= end + 4 + want {
            return Ok(s);
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if args.connections == 0 || args.parallel == 0 {
        bail!("--connections and --parallel must be at least 1");
    }
    let gate = Arc::new(Semaphore::new(args.parallel));
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let permit = gate.clone().acquire_owned().await?;
        let (addr, mode) = (args.connect, args.mode);
        opening.spawn(async move {
            let r = open(i, addr, mode).await;
            drop(permit);
            r.with_context(|| format!("connection {i}"))
        });
    }
    let mut streams = Vec::with_capacity(args.connections);
    while let Some(r) = opening.join_next().await {
        streams.push(r.context("an opening task panicked")??);
    }

    let dropped = Arc::new(AtomicU64::new(0));
    let mut holders = tokio::task::JoinSet::new();
    for mut s in streams {
        let dropped = dropped.clone();
        holders.spawn(async move {
            let mut b = [0u8; 64];
            // Anything arriving (or the close) means the server stopped holding it idle.
            let _ = s.read(&mut b).await;
            dropped.fetch_add(1, Ordering::Relaxed);
            // Keep the socket until the end so the count of open ones stays honest.
            std::future::pending::<()>().await;
        });
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {}", args.connections)?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("dropped {}", dropped.load(Ordering::Relaxed));
    Ok(())
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("berth-bench-idle: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_are_distinct_loopback() {
        let all: std::collections::HashSet<_> = (0..20_000).map(source_ip).collect();
        assert_eq!(all.len(), 20_000);
        assert!(all.iter().all(|ip| ip.is_loopback() && ip.octets()[3] != 0));
    }

    #[test]
    fn reads_content_length() {
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n"),
            Some(100)
        );
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }
}
