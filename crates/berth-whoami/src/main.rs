//! `berth-whoami`: the demo HTTP app berth's quickstart and tests run as tasks.
//!
//! It answers every request with who it is (task id, hostname, listen port) and what it
//! was asked (request line and headers), and can be told to misbehave in the ways a
//! scheduler and a load balancer must cope with: start slowly, fail or stop passing its
//! health check, exit, ignore SIGTERM, use memory, hold requests open, and load a
//! scaling policy's metrics: burn CPU on every request, hold memory.
//!
//! ```text
//! berth-whoami [--listen ADDR] [--start-delay SECS] [--fail-health] [--unhealthy-after SECS]
//!              [--exit-after SECS [--exit-code N]] [--signal-file PATH] [--ignore-sigterm]
//!              [--alloc-mb N] [--cpu-ms-per-request N] [--call URL]
//! berth-whoami check URL          exit 0 when GET URL answers 2xx, else 1 (a healthCheck command)
//! berth-whoami resolve NAME       print NAME's A records as berth's DNS server answers them
//! ```
//!
//! Without `--listen` it listens on `0.0.0.0:$PORT` (default 8080). Paths: `/health` (200
//! "ok", or 500 when unhealthy), `/sleep?ms=N` (answers after N ms), `/exit?code=N` (exits
//! the process after answering), `/hold?mib=N` (holds N MiB from now on, replacing what it
//! held), `/fail?status=N` (from now on this task answers every other request but
//! `/health` with status N; `status=0` makes it answer normally again), anything else:
//! the description. Every response carries
//! `x-berth-task: <task id>`. On SIGTERM or SIGINT it records the signal's name in the
//! `--signal-file` (one line each), stops accepting, lets in-flight requests finish and
//! exits 0; with `--ignore-sigterm` it records SIGTERM and carries on.
//!
//! Load knobs, for the autoscaling demo (environment variables, so a task definition's
//! `environment` sets them; the flags override them):
//!
//! - `WHOAMI_CPU_MS_PER_REQUEST=N` (`--cpu-ms-per-request N`): every request but
//!   `/health` keeps a core busy for N ms of CPU time before it is answered, on a thread
//!   of its own so health checks still answer. A request's `?cpu_ms=N` overrides it for
//!   that request. At most 10 000 ms.
//! - `WHOAMI_HOLD_MIB=N` (`--alloc-mb N`): allocate and touch N MiB at start and hold
//!   them; `/hold?mib=N` changes that at run time (on the task that answers).
//!
//! Call mode, for the service-discovery and mesh demo: `WHOAMI_CALL_URL=URL` (`--call
//! URL`) makes every request but `/health`, `/exit` and `/hold` call URL once and answer
//! with its status and body (see [`call`]); names resolve through berth's DNS server
//! (`BERTH_DNS_SERVER`, else `/etc/resolv.conf`, see [`resolve`]).
//!
//! Dependencies are kept to tokio and hyper so it links statically into a `FROM scratch`
//! image.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

mod call;
mod check;
mod resolve;

const USAGE: &str = "usage: berth-whoami [--listen ADDR] [--start-delay SECS] [--fail-health] \
[--unhealthy-after SECS] [--exit-after SECS [--exit-code N]] [--signal-file PATH] \
[--ignore-sigterm] [--alloc-mb N] [--cpu-ms-per-request N] [--call URL]\n       \
berth-whoami check URL\n       berth-whoami resolve NAME";

/// The longest a request may burn CPU for.
const MAX_CPU_MS: u64 = 10_000;

/// Command-line options of the server.
#[derive(Debug, Default)]
struct Options {
    listen: Option<SocketAddr>,
    start_delay: Option<Duration>,
    fail_health: bool,
    unhealthy_after: Option<Duration>,
    exit_after: Option<Duration>,
    exit_code: i32,
    signal_file: Option<String>,
    ignore_sigterm: bool,
    alloc_mb: usize,
    /// CPU milliseconds every request (but `/health`) burns.
    cpu_ms_per_request: u64,
    /// Call mode: the URL every request calls.
    call_url: Option<String>,
}

fn parse_cpu_ms(name: &str, v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|ms| *ms <= MAX_CPU_MS)
        .ok_or_else(|| format!("{name}: expected milliseconds from 0 to {MAX_CPU_MS}, got {v:?}"))
}

/// The knobs given as environment variables (`lookup` is `std::env::var` outside tests).
fn options_from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Options, String> {
    let mut o = Options::default();
    if let Some(v) = lookup("WHOAMI_CPU_MS_PER_REQUEST") {
        o.cpu_ms_per_request = parse_cpu_ms("WHOAMI_CPU_MS_PER_REQUEST", &v)?;
    }
    if let Some(v) = lookup("WHOAMI_CALL_URL").filter(|v| !v.is_empty()) {
        o.call_url = Some(v);
    }
    if let Some(v) = lookup("WHOAMI_HOLD_MIB") {
        o.alloc_mb = v
            .parse()
            .map_err(|_| format!("WHOAMI_HOLD_MIB: expected a number of MiB, got {v:?}"))?;
    }
    Ok(o)
}

fn parse_secs(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: expected a number of seconds, got {v:?}"))
}

/// Parses the flags over `o` (the environment's knobs).
fn parse_options(args: &[String], mut o: Options) -> Result<Options, String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--listen" => {
                let v = value(a)?;
                o.listen = Some(
                    v.parse()
                        .map_err(|_| format!("--listen: expected ADDR:PORT, got {v:?}"))?,
                );
            }
            "--start-delay" => o.start_delay = Some(parse_secs(a, &value(a)?)?),
            "--fail-health" => o.fail_health = true,
            "--unhealthy-after" => o.unhealthy_after = Some(parse_secs(a, &value(a)?)?),
            "--exit-after" => o.exit_after = Some(parse_secs(a, &value(a)?)?),
            "--exit-code" => {
                let v = value(a)?;
                o.exit_code = v
                    .parse()
                    .map_err(|_| format!("--exit-code: expected an integer, got {v:?}"))?;
            }
            "--signal-file" => o.signal_file = Some(value(a)?),
            "--ignore-sigterm" => o.ignore_sigterm = true,
            "--alloc-mb" => {
                let v = value(a)?;
                o.alloc_mb = v
                    .parse()
                    .map_err(|_| format!("--alloc-mb: expected an integer, got {v:?}"))?;
            }
            "--cpu-ms-per-request" => o.cpu_ms_per_request = parse_cpu_ms(a, &value(a)?)?,
            "--call" => o.call_url = Some(value(a)?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// What every request handler needs to know.
struct App {
    task_id: String,
    hostname: String,
    port: u16,
    started: Instant,
    fail_health: bool,
    unhealthy_after: Option<Duration>,
    cpu_ms_per_request: u64,
    /// The memory `/hold` (or `--alloc-mb`) holds.
    held: std::sync::Mutex<Vec<u8>>,
    /// Call mode.
    caller: Option<call::Caller>,
    /// Set by `/fail?status=N`: the status every other request gets; 0 = none.
    fail_status: std::sync::atomic::AtomicU16,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `BERTH_TASK_ID`, else the last segment of `BERTH_TASK_ARN` or of ECS's metadata URI,
/// else the hostname (a container's hostname is its id).
fn task_id(hostname: &str) -> String {
    if let Ok(id) = std::env::var("BERTH_TASK_ID") {
        if !id.is_empty() {
            return id;
        }
    }
    for var in ["BERTH_TASK_ARN", "ECS_CONTAINER_METADATA_URI_V4"] {
        if let Ok(v) = std::env::var(var) {
            if let Some(last) = v.rsplit('/').next().filter(|s| !s.is_empty()) {
                return last.split('-').next().unwrap_or(last).to_string();
            }
        }
    }
    hostname.to_string()
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn text(status: StatusCode, task_id: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-berth-task", task_id)
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts are valid")
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    let query = req.uri().query();
    let resp = match path {
        "/health" => {
            let unhealthy = app.fail_health
                || app
                    .unhealthy_after
                    .is_some_and(|after| app.started.elapsed() >= after);
            if unhealthy {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &app.task_id,
                    "unhealthy\n".into(),
                )
            } else {
                text(StatusCode::OK, &app.task_id, "ok\n".into())
            }
        }
        "/exit" => {
            let code: i32 = query_param(query, "code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            tokio::spawn(async move {
                // Let the response go out first.
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::process::exit(code);
            });
            text(
                StatusCode::OK,
                &app.task_id,
                format!("exiting with {code}\n"),
            )
        }
        "/fail" => {
            let status = query_param(query, "status")
                .and_then(|s| s.parse::<u16>().ok())
                .filter(|s| *s == 0 || StatusCode::from_u16(*s).is_ok());
            let Some(status) = status else {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    &app.task_id,
                    "fail: expected ?status=N (an HTTP status, or 0 to stop failing)\n".into(),
                ));
            };
            app.fail_status
                .store(status, std::sync::atomic::Ordering::Relaxed);
            println!("whoami: answering {status} from now on (0: normally)");
            text(
                StatusCode::OK,
                &app.task_id,
                format!("failing with {status}\n"),
            )
        }
        _ if app.fail_status.load(std::sync::atomic::Ordering::Relaxed) != 0 => {
            let status = app.fail_status.load(std::sync::atomic::Ordering::Relaxed);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            text(status, &app.task_id, format!("failing with {status}\n"))
        }
        "/hold" => {
            let Some(mib) = query_param(query, "mib").and_then(|m| m.parse::<usize>().ok()) else {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    &app.task_id,
                    "hold: expected ?mib=N (MiB to hold)\n".into(),
                ));
            };
            let mut held = app.held.lock().expect("held memory");
            // Let go of the old ballast before touching the new one.
            *held = Vec::new();
            *held = allocate(mib);
            println!("whoami: holding {mib} MiB");
            text(StatusCode::OK, &app.task_id, format!("holding {mib} MiB\n"))
        }
        _ => {
            let cpu_ms = match query_param(query, "cpu_ms") {
                Some(v) => match parse_cpu_ms("cpu_ms", v) {
                    Ok(ms) => ms,
                    Err(e) => {
                        return Ok(text(StatusCode::BAD_REQUEST, &app.task_id, e + "\n"));
                    }
                },
                None => app.cpu_ms_per_request,
            };
            if cpu_ms > 0 {
                let cpu = Duration::from_millis(cpu_ms);
                // A thread of its own: the runtime keeps answering health checks.
                let _ = tokio::task::spawn_blocking(move || burn_cpu(cpu)).await;
            }
            if let Some(caller) = &app.caller {
                return Ok(called(&app.task_id, caller).await);
            }
            if path == "/sleep" {
                let ms: u64 = query_param(query, "ms")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                println!("whoami: sleeping {ms} ms");
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let mut body = format!(
                "task: {}\nhostname: {}\nport: {}\n{} {} {:?}\n",
                app.task_id,
                app.hostname,
                app.port,
                req.method(),
                req.uri(),
                req.version()
            );
            for (name, value) in req.headers() {
                body.push_str(name.as_str());
                body.push_str(": ");
                body.push_str(&String::from_utf8_lossy(value.as_bytes()));
                body.push('\n');
            }
            text(StatusCode::OK, &app.task_id, body)
        }
    };
    Ok(resp)
}

/// Call mode's answer: the called service's status and body under a few lines saying who
/// called whom; 502 when the call failed.
async fn called(task_id: &str, caller: &call::Caller) -> Response<Full<Bytes>> {
    match caller.call().await {
        Ok(a) => {
            let mut body = format!(
                "task: {task_id}\ncalled: {}\nstatus: {}\nanswered-by: {}\n--\n",
                caller.url(),
                a.status.as_u16(),
                a.task.as_deref().unwrap_or("-"),
            )
            .into_bytes();
            body.extend_from_slice(&a.body);
            let mut resp = Response::builder()
                .status(a.status)
                .header("content-type", "text/plain; charset=utf-8")
                .header("x-berth-task", task_id);
            if let Some(t) = &a.task {
                resp = resp.header("x-berth-called-task", t.as_str());
            }
            resp.body(Full::new(Bytes::from(body)))
                .unwrap_or_else(|_| text(StatusCode::BAD_GATEWAY, task_id, "bad answer\n".into()))
        }
        Err(e) => text(
            StatusCode::BAD_GATEWAY,
            task_id,
            format!("task: {task_id}\ncall failed: {e}\n"),
        ),
    }
}

fn record_signal(file: Option<&str>, name: &str) {
    println!("whoami: got {name}");
    if let Some(path) = file {
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| {
                f.write_all(format!("{name}\n").as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = res {
            eprintln!("whoami: cannot write {path}: {e}");
        }
    }
}

/// CPU time the calling thread has run, from `/proc/thread-self/schedstat`
/// (nanoseconds); `None` where that file does not exist.
fn thread_cpu_time() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Keeps the calling thread busy until it has run for `cpu` of CPU time (of wall time
/// where the thread's CPU time cannot be read), so a request costs the same CPU however
/// busy the machine is.
fn burn_cpu(cpu: Duration) {
    let wall = Instant::now();
    let Some(start) = thread_cpu_time() else {
        while wall.elapsed() < cpu {
            std::hint::black_box(spin(1_000));
        }
        return;
    };
    loop {
        // Check the clock about every 200 µs of spinning.
        let slice = Instant::now();
        while slice.elapsed() < Duration::from_micros(200) {
            std::hint::black_box(spin(1_000));
        }
        match thread_cpu_time() {
            Some(now) if now.saturating_sub(start) < cpu => {}
            _ => return,
        }
    }
}

/// Some arithmetic the optimizer cannot drop.
fn spin(n: u64) -> u64 {
    let mut x = std::hint::black_box(0x9e37_79b9_7f4a_7c15u64);
    for i in 0..n {
        x = x.rotate_left(5) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d);
    }
    x
}

/// Allocates `mb` MiB and writes to every page so it counts as resident.
fn allocate(mb: usize) -> Vec<u8> {
    let len = mb * 1024 * 1024;
    let mut v = vec![0u8; len];
    for i in (0..len).step_by(4096) {
        v[i] = 1;
    }
    v
}

async fn serve(o: Options) -> ExitCode {
    let ballast = allocate(o.alloc_mb);
    if o.alloc_mb > 0 {
        println!("whoami: allocated {} MiB", o.alloc_mb);
    }
    if o.cpu_ms_per_request > 0 {
        println!(
            "whoami: burning {} ms of CPU per request",
            o.cpu_ms_per_request
        );
    }
    if let Some(after) = o.exit_after {
        let code = o.exit_code;
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            println!("whoami: exiting with {code} after {after:?}");
            std::process::exit(code);
        });
    }
    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut sigint = signal(SignalKind::interrupt()).expect("SIGINT handler");
    if let Some(delay) = o.start_delay {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = sigterm.recv(), if !o.ignore_sigterm => {
                record_signal(o.signal_file.as_deref(), "SIGTERM");
                return ExitCode::SUCCESS;
            }
            _ = sigint.recv() => {
                record_signal(o.signal_file.as_deref(), "SIGINT");
                return ExitCode::SUCCESS;
            }
        }
    }
    let addr = o.listen.unwrap_or_else(|| {
        let port = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or(8080);
        SocketAddr::from(([0, 0, 0, 0], port))
    });
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("whoami: cannot listen on {addr}: {e}");
            return ExitCode::from(2);
        }
    };
    let local = listener
        .local_addr()
        .expect("bound listener has an address");
    let caller = match o.call_url.as_deref().map(call::Caller::new).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("whoami: {e}");
            return ExitCode::from(64);
        }
    };
    if let Some(c) = &caller {
        println!("whoami: every request calls {}", c.url());
    }
    let host = hostname();
    let app = Arc::new(App {
        task_id: task_id(&host),
        hostname: host,
        port: local.port(),
        started: Instant::now(),
        fail_health: o.fail_health,
        unhealthy_after: o.unhealthy_after,
        cpu_ms_per_request: o.cpu_ms_per_request,
        held: std::sync::Mutex::new(ballast),
        caller,
        fail_status: std::sync::atomic::AtomicU16::new(0),
    });
    println!("whoami: task {} listening on {local}", app.task_id);

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let signal_name = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("whoami: accept: {e}");
                        continue;
                    }
                };
                let app = app.clone();
                let conn = http1::Builder::new().serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| handle(app.clone(), req)),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = sigterm.recv() => {
                record_signal(o.signal_file.as_deref(), "SIGTERM");
                if o.ignore_sigterm {
                    println!("whoami: ignoring SIGTERM");
                    continue;
                }
                break "SIGTERM";
            }
            _ = sigint.recv() => {
                record_signal(o.signal_file.as_deref(), "SIGINT");
                break "SIGINT";
            }
        }
    };
    drop(listener);
    graceful.shutdown().await;
    println!("whoami: {signal_name}: in-flight requests done, exiting");
    ExitCode::SUCCESS
}

/// `whoami resolve NAME`: prints NAME's A records one per line (a `getent hosts` for
/// images without libc).
fn resolve_command(name: &str) -> ExitCode {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let server = resolve::default_server()?;
        resolve::lookup_a(server, name).await
    });
    match result {
        Ok((ips, _)) => {
            for ip in ips {
                println!("{ip} {name}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("whoami resolve: {e}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("resolve") {
        return match args.get(1) {
            Some(name) if args.len() == 2 => resolve_command(name),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(64)
            }
        };
    }
    if args.first().map(String::as_str) == Some("check") {
        return match args.get(1) {
            Some(url) if args.len() == 2 => check::check(url),
            _ => {
                eprintln!("{USAGE}");
                ExitCode::from(64)
            }
        };
    }
    let o = match options_from_env(|k| std::env::var(k).ok())
        .and_then(|env| parse_options(&args, env))
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(64);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(serve(o))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--exit-after",
            "1.5",
            "--exit-code",
            "3",
            "--ignore-sigterm",
            "--alloc-mb",
            "2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse_options(&args, Options::default()).unwrap();
        assert_eq!(o.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(o.exit_after, Some(Duration::from_millis(1500)));
        assert_eq!(o.exit_code, 3);
        assert!(o.ignore_sigterm);
        assert_eq!(o.alloc_mb, 2);
        assert!(parse_options(&["--bogus".to_string()], Options::default()).is_err());
        assert!(parse_options(&["--start-delay".to_string()], Options::default()).is_err());
    }

    #[test]
    fn load_knobs_come_from_the_environment_and_flags_override_them() {
        let env = |k: &str| match k {
            "WHOAMI_CPU_MS_PER_REQUEST" => Some("25".to_string()),
            "WHOAMI_HOLD_MIB" => Some("16".to_string()),
            "WHOAMI_CALL_URL" => Some("http://orders:8080/".to_string()),
            _ => None,
        };
        let o = options_from_env(env).unwrap();
        assert_eq!((o.cpu_ms_per_request, o.alloc_mb), (25, 16));
        assert_eq!(o.call_url.as_deref(), Some("http://orders:8080/"));
        let args = ["--cpu-ms-per-request".to_string(), "5".to_string()];
        let o = parse_options(&args, o).unwrap();
        assert_eq!((o.cpu_ms_per_request, o.alloc_mb), (5, 16));
        let o = options_from_env(|_| None).unwrap();
        assert_eq!((o.cpu_ms_per_request, o.alloc_mb), (0, 0));
    }

    #[test]
    fn bad_knobs_name_the_variable_and_what_is_allowed() {
        let e =
            options_from_env(|k| (k == "WHOAMI_CPU_MS_PER_REQUEST").then(|| "lots".to_string()))
                .unwrap_err();
        assert_eq!(
            e,
            "WHOAMI_CPU_MS_PER_REQUEST: expected milliseconds from 0 to 10000, got \"lots\""
        );
        let e =
            options_from_env(|k| (k == "WHOAMI_HOLD_MIB").then(|| "-1".to_string())).unwrap_err();
        assert!(e.starts_with("WHOAMI_HOLD_MIB: "), "{e}");
        let args = ["--cpu-ms-per-request".to_string(), "10001".to_string()];
        assert!(parse_options(&args, Options::default()).is_err());
    }

    #[test]
    fn burning_takes_the_cpu_time_asked_for() {
        let before = thread_cpu_time().expect("linux has schedstat");
        burn_cpu(Duration::from_millis(60));
        let used = thread_cpu_time().unwrap() - before;
        assert!(used >= Duration::from_millis(60), "used {used:?}");
        assert!(used < Duration::from_millis(600), "used {used:?}");
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&ms=250"), "ms"), Some("250"));
        assert_eq!(query_param(Some("a=1"), "ms"), None);
        assert_eq!(query_param(None, "ms"), None);
    }
}
