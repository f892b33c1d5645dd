//! TLS handshakes per second against one HTTPS listener: a fixed number of client loops,
//! each connecting, completing a TLS handshake (rustls client), sending one
//! `GET / HTTP/1.1` with `Connection: close`, reading the answer to its end and closing,
//! over and over for a fixed time.
//!
//! `--resume none` makes every handshake a full one (the client keeps no sessions);
//! `--resume tickets` keeps the sessions the server hands out (TLS 1.3 tickets, TLS 1.2
//! session ids or tickets) so that handshakes after the first resume one.
//!
//! Prints one line at the end: `handshakes=N seconds=S resumed=R errors=E`, where R is how
//! many of the N handshakes were resumptions. It does not validate the server's
//! certificate (it checks the handshake's signatures) and measures nothing on the server:
//! the script reads the server's CPU time around the run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Resume {
    /// Every handshake is a full one.
    None,
    /// Keep the server's session tickets (or ids) and resume with them.
    Tickets,
}

#[derive(Parser)]
#[command(about = "TLS handshakes per second against one HTTPS listener")]
struct Args {
    /// The listener's address.
    #[arg(long)]
    connect: std::net::SocketAddr,
    /// The server name sent in SNI.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Client loops running at once (connections in flight).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Whether handshakes resume earlier sessions.
    #[arg(long, value_enum, default_value_t = Resume::None)]
    resume: Resume,
    /// Offer only TLS 1.3 (the default) or also TLS 1.2.
    #[arg(long)]
    tls12: bool,
}

/// Accepts any server certificate while still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config(args: &Args) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if args.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut cfg = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .context("choosing TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    cfg.resumption = match args.resume {
        Resume::None => Resumption::disabled(),
        Resume::Tickets => Resumption::in_memory_sessions(4096),
    };
    Ok(cfg)
}

#[derive(Default)]
struct Counts {
    handshakes: AtomicU64,
    resumed: AtomicU64,
    errors: AtomicU64,
}

/// One connection: handshake, one request, the whole answer, close. Returns whether the
/// handshake resumed a session.
async fn one(
    connector: &TlsConnector,
    addr: std::net::SocketAddr,
    name: &ServerName<'static>,
) -> Result<bool> {
    let tcp = TcpStream::connect(addr).await.context("connecting")?;
    tcp.set_nodelay(true)?;
    let mut tls = connector
        .connect(name.clone(), tcp)
        .await
        .context("TLS handshake")?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::with_capacity(512);
    match tls.read_to_end(&mut answer).await {
        Ok(_) => {}
        // Some servers close without close_notify after Connection: close.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e).context("reading the answer"),
    }
    if !answer.starts_with(b"HTTP/1.1 200") {
        bail!(
            "unexpected answer: {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(80)])
        );
    }
    Ok(resumed)
}

async fn run(args: Args) -> Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if !args.duration.is_finite() || args.duration <= 0.0 {
        bail!("--duration must be positive, got {}", args.duration);
    }
    let shared = Arc::new(client_config(&args)?);
    let connector = TlsConnector::from(shared.clone());
    let name = ServerName::try_from(args.server_name.clone())
        .with_context(|| format!("--server-name {:?}", args.server_name))?;
    // One connection first, so that a server that is not there fails loudly.
    one(&connector, args.connect, &name)
        .await
        .with_context(|| format!("first connection to {}", args.connect))?;

    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.duration);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        // Resuming loops keep their own sessions: one shared store holds a few tickets per
        // server, and loops starting together would find it empty.
        let connector = match args.resume {
            Resume::None => TlsConnector::from(shared.clone()),
            Resume::Tickets => TlsConnector::from(Arc::new(client_config(&args)?)),
        };
        let (name, counts) = (name.clone(), counts.clone());
        let addr = args.connect;
        loops.spawn(async move {
            let mut last_error = None;
            while Instant::now() < end {
                match one(&connector, addr, &name).await {
                    Ok(resumed) => {
                        counts.handshakes.fetch_add(1, Ordering::Relaxed);
                        if resumed {
                            counts.resumed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                        last_error = Some(format!("{e:#}"));
                    }
                }
            }
            last_error
        });
    }
    let mut last_error = None;
    while let Some(r) = loops.join_next().await {
        if let Some(e) = r.context("a client loop panicked")? {
            last_error = Some(e);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "handshakes={} seconds={seconds:.3} resumed={} errors={}",
        counts.handshakes.load(Ordering::Relaxed),
        counts.resumed.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed)
    );
    if let Some(e) = last_error {
        eprintln!("berth-bench-handshake: last error: {e}");
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building the runtime");
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("berth-bench-handshake: {e:#}");
        std::process::exit(1);
    }
}
