//! An experiment, not a proxy: the smallest HTTP/1.1 keep-alive relay, twice, to compare
//! two system-call structures under the same load. `--engine tokio` runs it on a tokio
//! current-thread runtime (epoll, as berth's proxy does); `--engine uring` runs the same
//! state machine on one io_uring instance, one thread, with every connection's reads and
//! writes submitted and reaped in batches. Both do the same user-space work per request
//! (find the end of the head, read its Content-Length, copy nothing), so the difference in
//! CPU per request is the I/O structure's.
//!
//! Each client connection gets its own keep-alive connection to the backend, opened when
//! the client connects (what a warm pool gives berth under a steady load). A request is
//! forwarded verbatim once its head and Content-Length body are in; the response likewise.
//! Chunked bodies, pipelining beyond one buffered request and everything else an HTTP
//! proxy does are out of scope: this only serves `wrk` against `berth-bench-backend`.
//!
//! Usage: `berth-bench-uring-relay --listen 127.0.0.1:PORT --backend 127.0.0.1:PORT
//! [--engine tokio|uring] [--link] [--fixed-files]`; prints `ready <addr>` once bound.
//! `--link` (uring): a send and the read of its answer go in as one linked pair, so the
//! read is queued without a round through user space. `--fixed-files` (uring): sockets are
//! registered with the ring, sparing the kernel a file lookup per operation.
//!
//! The io_uring engine needs `unsafe` (the kernel reads and writes the relay's buffers
//! while operations are in flight), which the workspace's lints forbid; it is compiled only
//! with the `uring-relay` feature, and then with the lints capped:
//! `cargo rustc --profile bench-fast -p berth-benches --features uring-relay
//! --bin berth-bench-uring-relay -- --cap-lints warn`. Without the feature the binary has
//! the tokio engine only.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Engine {
    Tokio,
    Uring,
}

#[derive(Parser)]
#[command(about = "A minimal HTTP/1.1 keep-alive relay on epoll (tokio) or io_uring")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18090")]
    listen: SocketAddr,
    /// The backend every client connection is paired with.
    #[arg(long, default_value = "127.0.0.1:18080")]
    backend: SocketAddr,
    #[arg(long, value_enum, default_value = "tokio")]
    engine: Engine,
    /// io_uring: link each send with the read of the answer that follows it.
    #[arg(long)]
    link: bool,
    /// io_uring: register the sockets with the ring (fixed files).
    #[arg(long)]
    fixed_files: bool,
}

/// Buffer per direction and connection; a message must fit.
const BUF: usize = 16 * 1024;

fn main() -> Result<()> {
    let args = Args::parse();
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready {}", listener.local_addr()?)?;
        out.flush()?;
    }
    match args.engine {
        Engine::Tokio => epoll::run(listener, args.backend),
        #[cfg(all(target_os = "linux", feature = "uring-relay"))]
        Engine::Uring => uring::run(listener, args.backend, args.link, args.fixed_files),
        #[cfg(not(all(target_os = "linux", feature = "uring-relay")))]
        Engine::Uring => {
            let _ = (args.link, args.fixed_files);
            anyhow::bail!("built without the io_uring engine (Linux, feature uring-relay)")
        }
    }
}

/// The length of the HTTP/1.1 message at the start of `b` (head and Content-Length body)
/// once all of it is there.
fn message_len(b: &[u8]) -> Option<usize> {
    let head = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let n = head + content_length(&b[..head]);
    (n <= b.len()).then_some(n)
}

fn content_length(head: &[u8]) -> usize {
    for line in head.split(|&c| c == b'\n') {
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            if line[..colon].eq_ignore_ascii_case(b"content-length") {
                return std::str::from_utf8(&line[colon + 1..])
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
            }
        }
    }
    0
}

/// The relay on tokio's epoll reactor: one task per client connection.
mod epoll {
    use super::{message_len, BUF};
    use anyhow::Result;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    pub(super) fn run(listener: std::net::TcpListener, backend: SocketAddr) -> Result<()> {
        listener.set_nonblocking(true)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                loop {
                    let (client, _) = listener.accept().await?;
                    tokio::spawn(async move {
                        let _ = relay(client, backend).await;
                    });
                }
            })
    }

    async fn relay(mut client: TcpStream, backend: SocketAddr) -> std::io::Result<()> {
        client.set_nodelay(true)?;
        let mut up = TcpStream::connect(backend).await?;
        up.set_nodelay(true)?;
        let mut req = Vec::with_capacity(BUF);
        let mut resp = Vec::with_capacity(BUF);
        loop {
            let n = loop {
                if let Some(n) = message_len(&req) {
                    break n;
                }
                if req.len() == BUF || client.read_buf(&mut req).await? == 0 {
                    return Ok(());
                }
            };
            up.write_all(&req[..n]).await?;
            req.drain(..n);
            let m = loop {
                if let Some(m) = message_len(&resp) {
                    break m;
                }
                if resp.len() == BUF || up.read_buf(&mut resp).await? == 0 {
                    return Ok(());
                }
            };
            client.write_all(&resp[..m]).await?;
            resp.drain(..m);
        }
    }
}

/// The relay on io_uring: one ring, one thread, a state machine per connection. Each
/// connection has exactly one operation in flight (two with `--link`), so its buffers
/// stay put while the kernel uses them.
#[cfg(all(target_os = "linux", feature = "uring-relay"))]
mod uring {
    use super::{message_len, BUF};
    use anyhow::{Context, Result};
    use io_uring::{opcode, squeue, types, IoUring};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};

    const ACCEPT: u64 = u64::MAX;
    const RECV_CLIENT: u64 = 0;
    const SEND_BACKEND: u64 = 1;
    const RECV_BACKEND: u64 = 2;
    const SEND_CLIENT: u64 = 3;
    /// Fixed-file slots: two per connection.
    const MAX_CONNS: usize = 1024;

    struct Conn {
        client: TcpStream,
        backend: TcpStream,
        req: Box<[u8]>,
        req_len: usize,
        resp: Box<[u8]>,
        resp_len: usize,
        /// Bytes of the message being sent that went out.
        sent: usize,
        /// The length of the message being sent.
        msg: usize,
        /// A linked read follows the send in flight.
        linked: bool,
    }

    struct Relay {
        ring: IoUring,
        conns: Vec<Option<Conn>>,
        backend: SocketAddr,
        link: bool,
        fixed: bool,
    }

    pub(super) fn run(
        listener: TcpListener,
        backend: SocketAddr,
        link: bool,
        fixed: bool,
    ) -> Result<()> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(4096)
            .context("io_uring_setup (the kernel may refuse io_uring)")?;
        if fixed {
            ring.submitter()
                .register_files_sparse(2 * MAX_CONNS as u32)
                .context("registering fixed files")?;
        }
        let mut r = Relay {
            ring,
            conns: (0..MAX_CONNS).map(|_| None).collect(),
            backend,
            link,
            fixed,
        };
        let lfd = listener.as_raw_fd();
        r.push(
            opcode::Accept::new(types::Fd(lfd), std::ptr::null_mut(), std::ptr::null_mut())
                .build()
                .user_data(ACCEPT),
        );
        loop {
            match r.ring.submit_and_wait(1) {
                Ok(_) => {}
                // A signal (a tracer attaching, say) interrupted the wait.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let done: Vec<(u64, i32)> = r
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result()))
                .collect();
            for (data, res) in done {
                if data == ACCEPT {
                    if res >= 0 {
                        // SAFETY: the kernel handed over a new socket.
                        let client = unsafe { TcpStream::from_raw_fd(res) };
                        r.open(client);
                    }
                    r.push(
                        opcode::Accept::new(
                            types::Fd(lfd),
                            std::ptr::null_mut(),
                            std::ptr::null_mut(),
                        )
                        .build()
                        .user_data(ACCEPT),
                    );
                } else {
                    r.complete((data >> 2) as usize, data & 3, res);
                }
            }
        }
    }

    impl Relay {
        fn push(&mut self, e: squeue::Entry) {
            loop {
                // SAFETY: every buffer an entry points at lives in a `Conn` that stays in
                // place until its operation completes.
                if unsafe { self.ring.submission().push(&e) }.is_ok() {
                    return;
                }
                let _ = self.ring.submit();
            }
        }

        fn open(&mut self, client: TcpStream) {
            let Some(i) = self.conns.iter().position(Option::is_none) else {
                return;
            };
            let Ok(backend) = TcpStream::connect(self.backend) else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = backend.set_nodelay(true);
            if self.fixed {
                let fds = [client.as_raw_fd(), backend.as_raw_fd()];
                if self
                    .ring
                    .submitter()
                    .register_files_update(2 * i as u32, &fds)
                    .is_err()
                {
                    return;
                }
            }
            self.conns[i] = Some(Conn {
                client,
                backend,
                req: vec![0; BUF].into_boxed_slice(),
                req_len: 0,
                resp: vec![0; BUF].into_boxed_slice(),
                resp_len: 0,
                sent: 0,
                msg: 0,
                linked: false,
            });
            self.recv(i, RECV_CLIENT);
        }

        fn close(&mut self, i: usize) {
            if self.conns[i].take().is_some() && self.fixed {
                let _ = self
                    .ring
                    .submitter()
                    .register_files_update(2 * i as u32, &[-1, -1]);
            }
        }

        /// The socket an operation uses: the fixed slot or the descriptor.
        fn target(&self, i: usize, client: bool) -> Target {
            let c = self.conns[i].as_ref().expect("open connection");
            if self.fixed {
                Target::Fixed(types::Fixed(2 * i as u32 + u32::from(!client)))
            } else if client {
                Target::Fd(types::Fd(c.client.as_raw_fd()))
            } else {
                Target::Fd(types::Fd(c.backend.as_raw_fd()))
            }
        }

        fn recv_entry(&mut self, i: usize, op: u64) -> squeue::Entry {
            let t = self.target(i, op == RECV_CLIENT);
            let c = self.conns[i].as_mut().expect("open connection");
            let (buf, len) = if op == RECV_CLIENT {
                (&mut c.req, c.req_len)
            } else {
                (&mut c.resp, c.resp_len)
            };
            let ptr = buf[len..].as_mut_ptr();
            let n = (BUF - len) as u32;
            let e = match t {
                Target::Fd(fd) => opcode::Recv::new(fd, ptr, n).build(),
                Target::Fixed(fd) => opcode::Recv::new(fd, ptr, n).build(),
            };
            e.user_data((i as u64) << 2 | op)
        }

        fn recv(&mut self, i: usize, op: u64) {
            let e = self.recv_entry(i, op);
            self.push(e);
        }

        /// Sends what is left of the message being sent; with `--link`, the read of the
        /// answer goes in linked behind it when the whole message is in this send.
        fn send(&mut self, i: usize, op: u64) {
            let t = self.target(i, op == SEND_CLIENT);
            let link = self.link;
            let c = self.conns[i].as_mut().expect("open connection");
            let buf = if op == SEND_BACKEND { &c.req } else { &c.resp };
            let ptr = buf[c.sent..c.msg].as_ptr();
            let n = (c.msg - c.sent) as u32;
            // The next read goes into the other buffer for SEND_BACKEND (the response);
            // for SEND_CLIENT it goes into the request buffer, which is linked only when
            // it holds nothing of a next request.
            let link = link && c.sent == 0 && (op == SEND_BACKEND || c.req_len == 0);
            c.linked = link;
            let e = match t {
                Target::Fd(fd) => opcode::Send::new(fd, ptr, n),
                Target::Fixed(fd) => opcode::Send::new(fd, ptr, n),
            };
            let e = e
                .flags(if link { MSG_WAITALL } else { 0 })
                .build()
                .user_data((i as u64) << 2 | op);
            if link {
                let next = if op == SEND_BACKEND {
                    RECV_BACKEND
                } else {
                    RECV_CLIENT
                };
                let r = self.recv_entry(i, next);
                self.push(e.flags(squeue::Flags::IO_LINK));
                self.push(r);
            } else {
                self.push(e);
            }
        }

        fn complete(&mut self, i: usize, op: u64, res: i32) {
            let Some(c) = self.conns[i].as_mut() else {
                return;
            };
            if res <= 0 {
                // End of stream, an error, or a linked read cancelled by a failed send.
                self.close(i);
                return;
            }
            let n = res as usize;
            match op {
                RECV_CLIENT | RECV_BACKEND => {
                    let (buf, len) = if op == RECV_CLIENT {
                        (&c.req, &mut c.req_len)
                    } else {
                        (&c.resp, &mut c.resp_len)
                    };
                    *len += n;
                    match message_len(&buf[..*len]) {
                        Some(m) => {
                            c.msg = m;
                            c.sent = 0;
                            let send = if op == RECV_CLIENT {
                                SEND_BACKEND
                            } else {
                                SEND_CLIENT
                            };
                            self.send(i, send);
                        }
                        None if *len == BUF => self.close(i),
                        None => self.recv(i, op),
                    }
                }
                _ => {
                    c.sent += n;
                    if c.sent < c.msg {
                        if c.linked {
                            // MSG_WAITALL: a short send of a linked pair is a failure.
                            self.close(i);
                        } else {
                            self.send(i, op);
                        }
                        return;
                    }
                    let linked = c.linked;
                    let (buf, len) = if op == SEND_BACKEND {
                        (&mut c.req, &mut c.req_len)
                    } else {
                        (&mut c.resp, &mut c.resp_len)
                    };
                    buf.copy_within(c.msg..*len, 0);
                    *len -= c.msg;
                    if linked {
                        return;
                    }
                    if op == SEND_BACKEND {
                        self.recv(i, RECV_BACKEND);
                    } else if let Some(m) = message_len(&c.req[..c.req_len]) {
                        // A next request is already here.
                        c.msg = m;
                        c.sent = 0;
                        self.send(i, SEND_BACKEND);
                    } else {
                        self.recv(i, RECV_CLIENT);
                    }
                }
            }
        }
    }

    enum Target {
        Fd(types::Fd),
        Fixed(types::Fixed),
    }

    /// MSG_WAITALL on Linux: a linked send must send everything or fail.
    const MSG_WAITALL: i32 = 0x100;
}
