//! Runs the real `whoami` binary and talks HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_berth-whoami");

/// A running whoami whose stdout is read line by line.
struct App {
    child: Child,
    out: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl App {
    fn start(args: &[&str], env: &[(&str, &str)]) -> App {
        let mut cmd = Command::new(BIN);
        cmd.args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .env_remove("BERTH_TASK_ID");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn whoami");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let line = read_line_containing(&mut out, "listening on ");
        let addr = line
            .rsplit(' ')
            .next()
            .unwrap()
            .trim()
            .parse()
            .expect("address in the startup line");
        App { child, out, addr }
    }

    fn wait_for_line(&mut self, needle: &str) -> String {
        read_line_containing(&mut self.out, needle)
    }

    fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    fn wait(&mut self) -> i32 {
        self.child
            .wait()
            .unwrap()
            .code()
            .expect("exited, not signalled")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line_containing(out: &mut impl BufRead, needle: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read stdout");
        assert!(n > 0, "whoami closed stdout before printing {needle:?}");
        if line.contains(needle) {
            return line;
        }
    }
}

/// A minimal HTTP/1.1 GET returning (status, raw head, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nX-Probe: 42\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn answers_with_its_identity_and_the_request() {
    let app = App::start(&[], &[("BERTH_TASK_ID", "task-abc")]);
    let (status, head, body) = get(app.addr, "/some/path?q=1");
    assert_eq!(status, 200);
    assert!(head.contains("x-berth-task: task-abc"), "{head}");
    assert!(body.contains("task: task-abc"), "{body}");
    assert!(
        body.contains(&format!("port: {}", app.addr.port())),
        "{body}"
    );
    assert!(body.contains("GET /some/path?q=1 HTTP/1.1"), "{body}");
    assert!(body.contains("x-probe: 42"), "{body}");
    assert!(body.contains("hostname: "), "{body}");
}

#[test]
fn listens_on_port_env_without_listen_flag() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let line = read_line_containing(&mut out, "listening on ");
    assert!(line.trim().ends_with(&format!("0.0.0.0:{port}")), "{line}");
    let (status, _, _) = get(SocketAddr::from(([127, 0, 0, 1], port)), "/");
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn health_and_check_subcommand() {
    let healthy = App::start(&[], &[]);
    let (status, _, body) = get(healthy.addr, "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let sick = App::start(&["--fail-health"], &[]);
    assert_eq!(get(sick.addr, "/health").0, 500);

    let check = |addr: SocketAddr| {
        Command::new(BIN)
            .args(["check", &format!("http://{addr}/health")])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(check(healthy.addr), Some(0));
    assert_eq!(check(sick.addr), Some(1));
    // Nothing listens on a port just released.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert_eq!(check(free), Some(1));
}

#[test]
fn unhealthy_after_turns_health_red() {
    let app = App::start(&["--unhealthy-after", "0.3"], &[]);
    assert_eq!(get(app.addr, "/health").0, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if get(app.addr, "/health").0 == 500 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never became unhealthy"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_is_recorded_and_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals");
    let mut app = App::start(&["--signal-file", file.to_str().unwrap()], &[]);
    let addr = app.addr;
    let slow = std::thread::spawn(move || get(addr, "/sleep?ms=500"));
    app.wait_for_line("sleeping 500 ms");
    app.signal(Signal::SIGTERM);
    let (status, _, body) = slow.join().unwrap();
    assert_eq!(status, 200, "the in-flight request was cut: {body}");
    assert_eq!(app.wait(), 0);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "SIGTERM\n");
}

#[test]
fn ignore_sigterm_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("signals");
    let mut app = App::start(
        &["--ignore-sigterm", "--signal-file", file.to_str().unwrap()],
        &[],
    );
    app.signal(Signal::SIGTERM);
    app.wait_for_line("ignoring SIGTERM");
    assert_eq!(get(app.addr, "/").0, 200);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "SIGTERM\n");
}

#[test]
fn exit_path_and_exit_after() {
    let mut app = App::start(&[], &[]);
    let (status, _, _) = get(app.addr, "/exit?code=7");
    assert_eq!(status, 200);
    assert_eq!(app.wait(), 7);

    let mut app = App::start(&["--exit-after", "0.2", "--exit-code", "3"], &[]);
    assert_eq!(app.wait(), 3);
}

#[test]
fn start_delay_and_alloc() {
    let mut app = App::start(&["--alloc-mb", "8", "--start-delay", "0.1"], &[]);
    assert_eq!(get(app.addr, "/").0, 200);
    let statm = std::fs::read_to_string(format!("/proc/{}/statm", app.child.id())).unwrap();
    let rss_pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(rss_pages * 4096 >= 8 * 1024 * 1024, "rss {rss_pages} pages");
    app.signal(Signal::SIGINT);
    assert_eq!(app.wait(), 0);
}

#[test]
fn bad_flags_exit_64() {
    let status = Command::new(BIN).arg("--nope").status().unwrap();
    assert_eq!(status.code(), Some(64));
}

/// The process's resident memory, bytes.
fn rss_bytes(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time the process used (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(") ").unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// /proc reports CPU time in USER_HZ ticks, 100 a second on Linux.
fn clock_ticks_per_second() -> u64 {
    100
}

#[test]
fn cpu_per_request_from_the_environment_or_the_query() {
    let app = App::start(&[], &[("WHOAMI_CPU_MS_PER_REQUEST", "40")]);
    let pid = app.child.id();
    let hz = clock_ticks_per_second();
    let before = cpu_ticks(pid);
    for _ in 0..5 {
        assert_eq!(get(app.addr, "/").0, 200);
    }
    // 5 × 40 ms = 200 ms of CPU at least (ticks round down, allow one per request).
    let used = cpu_ticks(pid) - before;
    assert!(
        used * 1000 / hz >= 200 - 5 * 1000 / hz,
        "{used} ticks at {hz} Hz"
    );
    // Health checks burn nothing.
    let before = cpu_ticks(pid);
    for _ in 0..5 {
        assert_eq!(get(app.addr, "/health").0, 200);
    }
    assert!(cpu_ticks(pid) - before <= 2, "health checks stay cheap");
    // ?cpu_ms= overrides it for one request; a bad value is a 400 naming the parameter.
    let before = cpu_ticks(pid);
    assert_eq!(get(app.addr, "/?cpu_ms=300").0, 200);
    assert!((cpu_ticks(pid) - before) * 1000 / hz >= 300 - 1000 / hz);
    let (status, _, body) = get(app.addr, "/?cpu_ms=99999");
    assert_eq!(status, 400);
    assert!(
        body.starts_with("cpu_ms: expected milliseconds from 0 to 10000"),
        "{body}"
    );
}

#[test]
fn holds_memory_from_the_environment_and_on_request() {
    let app = App::start(&[], &[("WHOAMI_HOLD_MIB", "48")]);
    let pid = app.child.id();
    assert!(rss_bytes(pid) >= 48 << 20, "rss {}", rss_bytes(pid));
    let (status, _, body) = get(app.addr, "/hold?mib=0");
    assert_eq!((status, body.as_str()), (200, "holding 0 MiB\n"));
    assert!(rss_bytes(pid) < 40 << 20, "rss {}", rss_bytes(pid));
    assert_eq!(get(app.addr, "/hold?mib=64").0, 200);
    assert!(rss_bytes(pid) >= 64 << 20, "rss {}", rss_bytes(pid));
    assert_eq!(get(app.addr, "/hold").0, 400);
}

#[test]
fn a_bad_load_knob_exits_64() {
    let out = Command::new(BIN)
        .env("WHOAMI_HOLD_MIB", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WHOAMI_HOLD_MIB"));
}

#[test]
fn fail_makes_every_request_but_health_answer_the_status_until_reset() {
    let app = App::start(&[], &[]);
    assert_eq!(get(app.addr, "/fail?status=503").0, 200);
    assert_eq!(get(app.addr, "/").0, 503);
    assert_eq!(get(app.addr, "/anything").0, 503);
    assert_eq!(get(app.addr, "/health").0, 200);
    assert_eq!(get(app.addr, "/fail?status=0").0, 200);
    assert_eq!(get(app.addr, "/").0, 200);
    assert_eq!(get(app.addr, "/fail?status=abc").0, 400);
}

#[test]
fn call_mode_answers_with_the_called_apps_reply() {
    let callee = App::start(&[], &[("BERTH_TASK_ID", "callee-1")]);
    let url = format!("http://{}/who", callee.addr);
    let caller = App::start(&["--call", &url], &[("BERTH_TASK_ID", "caller-1")]);
    let (status, head, body) = get(caller.addr, "/");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-berth-called-task: callee-1"), "{head}");
    assert!(body.contains("task: caller-1"), "{body}");
    assert!(body.contains("answered-by: callee-1"), "{body}");
    assert!(body.contains("GET /who HTTP/1.1"), "{body}");
    // The callee's failures come back as they are.
    assert_eq!(get(callee.addr, "/fail?status=503").0, 200);
    assert_eq!(get(caller.addr, "/").0, 503);
    // A callee that is gone is a 502.
    drop(callee);
    let (status, _, body) = get(caller.addr, "/");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("call failed"), "{body}");
}
