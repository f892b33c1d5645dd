//! Active health checks: one task per target, probing at the group's interval and moving
//! the target between initial, healthy and unhealthy by the group's thresholds.
//!
//! As on an ALB, a new target becomes healthy after one passing check; a healthy target
//! becomes unhealthy after `unhealthyThresholdCount` consecutive failures and comes back
//! after `healthyThresholdCount` consecutive passes. Draining targets are not checked.
//!
//! Unlike an ALB, a target still `initial` whose check failed is probed again soon (after
//! 100 ms, doubling up to 1 s) until the interval is up: a task that starts listening a
//! moment after it was registered serves within a second instead of a whole interval
//! later. Only the interval's first check counts toward the unhealthy threshold, so a slow
//! starter is not judged sooner than the interval says; a passing recheck makes it healthy.
//!
//! What a group of many targets costs: each check task sleeps holding only its counters
//! (the probe's state is boxed while it runs, and a plain HTTP probe's is small); the second check comes a random part of
//! half an interval late, so targets registered together are not all probed in the same
//! instant ever after; an HTTP check writes its request and reads the response head
//! itself instead of building an HTTP client connection; and a probe's socket is closed
//! with a reset, so checks leave no TIME_WAIT sockets and connection-tracking entries
//! behind (200 checks a second for 1,000 targets every 5 s would keep about 12,000 of
//! them in the kernel's lookup tables, which every proxied packet searches).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::group_settings::{GroupSettings, HealthProtocol, HealthSettings};
use crate::pool::UpBody;
use crate::target::{Health, TargetState};

/// The result of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    /// The target answered with a status the matcher does not accept.
    Mismatch(u16),
    Timeout,
    /// Connection refused, reset or a malformed response.
    Failed,
}

/// Consecutive results, and the state they lead to.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counter {
    passes: u32,
    fails: u32,
}

impl Counter {
    /// Folds `o` in; returns the new state if it changes.
    pub(crate) fn observe(
        &mut self,
        current: Health,
        o: Outcome,
        s: &HealthSettings,
    ) -> Option<(Health, u16)> {
        if o == Outcome::Pass {
            self.passes += 1;
            self.fails = 0;
            let needed = if current == Health::Initial {
                1
            } else {
                s.healthy_threshold
            };
            if current != Health::Healthy && self.passes >= needed {
                return Some((Health::Healthy, 0));
            }
            return None;
        }
        self.passes = 0;
        self.fails += 1;
        let (bad, status) = match o {
            Outcome::Mismatch(c) => (Health::UnhealthyMismatch, c),
            Outcome::Timeout => (Health::UnhealthyTimeout, 0),
            _ => (Health::UnhealthyFailed, 0),
        };
        if current.is_unhealthy() {
            // Keep the reason current.
            return (current != bad).then_some((bad, status));
        }
        if self.fails >= s.unhealthy_threshold {
            return Some((bad, status));
        }
        None
    }
}

/// What a health check needs of the target group its target belongs to. The group
/// implements it; the check holds the group weakly and ends when the group is gone.
pub(crate) trait HealthChecked: Send + Sync + 'static {
    /// The group's settings as they are now (the check interval may change).
    fn current_settings(&self) -> Arc<GroupSettings>;
    /// A target's health changed: the group recomputes what is routable.
    fn health_changed(&self);
}

pub(crate) fn spawn<G: HealthChecked>(group: Weak<G>, target: Arc<TargetState>) -> AbortHandle {
    tokio::spawn(run(group, target)).abort_handle()
}

async fn run<G: HealthChecked>(group: Weak<G>, target: Arc<TargetState>) {
    let mut counter = Counter::default();
    let mut first = true;
    loop {
        let Some(g) = group.upgrade() else { return };
        let settings = g.current_settings();
        drop(g);
        let started = Instant::now();
        let mut next = started + settings.health.interval;
        if std::mem::take(&mut first) {
            next += spread(settings.health.interval);
        }
        if !target.is_draining() && !target.is_removed() {
            // Boxed: the probe's state (connection, TLS, buffers) exists only while it
            // runs, and the task sleeps small.
            let outcome = Box::pin(probe(&settings.health, target.addr)).await;
            observe(&group, &target, &mut counter, outcome, &settings.health);
            if outcome != Outcome::Pass && target.health() == Health::Initial {
                Box::pin(recheck_initial(
                    &group,
                    &target,
                    &mut counter,
                    &settings.health,
                    next,
                ))
                .await;
            }
        }
        tokio::time::sleep_until(next).await;
    }
}

/// How much later than the interval a target's second check comes: a random part of
/// half an interval, which spreads the checks of targets registered together.
fn spread(interval: std::time::Duration) -> std::time::Duration {
    (interval / 2).mul_f64(rand::rng().random::<f64>())
}

/// The first wait before probing an `initial` target again after a failed check.
const INITIAL_RECHECK_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
/// The longest wait between such probes.
const INITIAL_RECHECK_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Probes an `initial` target again, more and more slowly, until one passes (it becomes
/// healthy) or `until` (the next regular check) comes. Failures here are not counted.
async fn recheck_initial<G: HealthChecked>(
    group: &Weak<G>,
    target: &TargetState,
    counter: &mut Counter,
    s: &HealthSettings,
    until: Instant,
) {
    let mut wait = INITIAL_RECHECK_FIRST;
    loop {
        let at = Instant::now() + wait;
        if at >= until {
            return;
        }
        tokio::time::sleep_until(at).await;
        if target.is_draining() || target.is_removed() || target.health() != Health::Initial {
            return;
        }
        if probe(s, target.addr).await == Outcome::Pass {
            observe(group, target, counter, Outcome::Pass, s);
            return;
        }
        wait = (wait * 2).min(INITIAL_RECHECK_MAX);
    }
}

/// Folds one counted probe into the target's health, telling the group of a change.
fn observe<G: HealthChecked>(
    group: &Weak<G>,
    target: &TargetState,
    counter: &mut Counter,
    outcome: Outcome,
    s: &HealthSettings,
) {
    if let Some((h, status)) = counter.observe(target.health(), outcome, s) {
        tracing::debug!(target = %target.addr, ?h, ?outcome, "target health changed");
        target.set_health(h, status);
        if let Some(g) = group.upgrade() {
            g.health_changed();
        }
    }
}

/// Runs one check against `addr` (or the check port) within the timeout.
pub(crate) async fn probe(s: &HealthSettings, addr: SocketAddr) -> Outcome {
    let mut addr = addr;
    if let Some(p) = s.port {
        addr.set_port(p);
    }
    match tokio::time::timeout(s.timeout, probe_inner(s, addr)).await {
        Ok(o) => o,
        Err(_) => Outcome::Timeout,
    }
}

async fn probe_inner(s: &HealthSettings, addr: SocketAddr) -> Outcome {
    let Ok(stream) = TcpStream::connect(addr).await else {
        return Outcome::Failed;
    };
    let _ = stream.set_nodelay(true);
    // Closed with a reset: no TIME_WAIT socket on either side.
    let _ = stream.set_zero_linger();
    match (&s.protocol, &s.grpc) {
        (HealthProtocol::Tcp, _) => Outcome::Pass,
        (HealthProtocol::Http, None) => http_check(s, addr, stream).await,
        // Boxed, as the HTTPS check: the HTTP/2 and TLS states are kilobytes, and a plain
        // HTTP or TCP probe need not carry room for them.
        (HealthProtocol::Http, Some(codes)) => Box::pin(grpc_check(s, codes, addr, stream)).await,
        (HealthProtocol::Https, grpc) => {
            Box::pin(https_check(s, grpc.as_deref(), addr, stream)).await
        }
    }
}

async fn https_check(
    s: &HealthSettings,
    grpc: Option<&[(u16, u16)]>,
    addr: SocketAddr,
    stream: TcpStream,
) -> Outcome {
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    match crate::tls::target_connector(grpc.is_some())
        .connect(name, stream)
        .await
    {
        Ok(tls) => match grpc {
            None => http_check(s, addr, tls).await,
            Some(codes) => grpc_check(s, codes, addr, tls).await,
        },
        Err(_) => Outcome::Failed,
    }
}

/// A gRPC health check: an empty unary call to the check path over HTTP/2; passes when
/// the `grpc-status` (trailer, or header for a trailers-only answer) is in `codes`.
async fn grpc_check<T>(s: &HealthSettings, codes: &[(u16, u16)], addr: SocketAddr, io: T) -> Outcome
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let Ok((mut sender, conn)) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, UpBody>(TokioIo::new(io))
            .await
    else {
        return Outcome::Failed;
    };
    let conn = tokio::spawn(conn);
    let req = http::Request::post(format!("http://{addr}{}", s.path))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .header(http::header::USER_AGENT, "ELB-HealthChecker/2.0")
        .body(Either::Right(Full::new(Bytes::from_static(&[
            0, 0, 0, 0, 0,
        ]))));
    let Ok(req) = req else {
        return Outcome::Failed;
    };
    let out = match sender.send_request(req).await {
        Ok(resp) => {
            let header_status = resp.headers().get("grpc-status").cloned();
            let status = match header_status {
                Some(v) => Some(v),
                None => match resp.into_body().collect().await {
                    Ok(c) => c.trailers().and_then(|t| t.get("grpc-status").cloned()),
                    Err(_) => None,
                },
            };
            match status.and_then(|v| v.to_str().ok()?.parse::<u16>().ok()) {
                Some(code) if codes.iter().any(|&(lo, hi)| (lo..=hi).contains(&code)) => {
                    Outcome::Pass
                }
                Some(code) => Outcome::Mismatch(code),
                None => Outcome::Failed,
            }
        }
        Err(_) => Outcome::Failed,
    };
    conn.abort();
    out
}

/// The longest response head an HTTP check reads; a longer one fails the check.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
/// Response headers an HTTP check accepts (as many as hyper's client does).
const MAX_RESPONSE_HEADERS: usize = 100;

/// An HTTP/1.1 check: `GET path` with `Connection: close`; passes when the final
/// response's status is in the matcher. Only the response head is read.
async fn http_check<T>(s: &HealthSettings, addr: SocketAddr, mut io: T) -> Outcome
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if !s.path.starts_with('/') || s.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Outcome::Failed;
    }
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n",
        s.path
    );
    if io.write_all(req.as_bytes()).await.is_err() || io.flush().await.is_err() {
        return Outcome::Failed;
    }
    let mut buf = Vec::with_capacity(512);
    loop {
        match response_status(&buf) {
            Head::Final(code) => {
                return if s.matches(code) {
                    Outcome::Pass
                } else {
                    Outcome::Mismatch(code)
                };
            }
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            Head::Interim(len) => {
                buf.drain(..len);
                continue;
            }
            Head::Invalid => return Outcome::Failed,
            Head::Partial if buf.len() >= MAX_RESPONSE_HEAD => return Outcome::Failed,
            Head::Partial => {}
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Outcome::Failed,
            Ok(_) => {}
        }
    }
}

/// What the bytes read so far hold.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// A final response head with this status.
    Final(u16),
    /// A 1xx response head (other than 101) this many bytes long.
    Interim(usize),
    /// Not a whole head yet.
    Partial,
    /// Not an HTTP/1.x response.
    Invalid,
}

fn response_status(buf: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => match resp.code {
            Some(c) if (100..200).contains(&c) && c != 101 => Head::Interim(len),
            Some(c) => Head::Final(c),
            None => Head::Invalid,
        },
        Ok(httparse::Status::Partial) => Head::Partial,
        Err(_) => Head::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> HealthSettings {
        HealthSettings {
            enabled: true,
            protocol: HealthProtocol::Http,
            port: None,
            path: "/".into(),
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: vec![(200, 200)],
            grpc: None,
        }
    }

    /// A group that counts its health changes.
    struct FakeGroup {
        settings: Arc<GroupSettings>,
        changes: std::sync::atomic::AtomicUsize,
        changed: tokio::sync::Notify,
    }

    impl HealthChecked for FakeGroup {
        fn current_settings(&self) -> Arc<GroupSettings> {
            self.settings.clone()
        }

        fn health_changed(&self) {
            self.changes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.changed.notify_one();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_reports_to_its_group_and_ends_with_it() {
        use crate::clock::Clock;
        use crate::metrics::TargetMetrics;
        use crate::notify::Notifier;
        use crate::pool::Pool;
        use berth_model::elb::TargetGroup;

        // A port nothing listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let tg: TargetGroup = serde_json::from_value(
            serde_json::json!({"targetGroupName": "web", "protocol": "TCP"}),
        )
        .unwrap();
        let settings = GroupSettings::from_model(&tg, &tg.validate().unwrap()).unwrap();
        assert_eq!(settings.health.protocol, HealthProtocol::Tcp);
        let group = Arc::new(FakeGroup {
            settings: Arc::new(settings),
            changes: Default::default(),
            changed: tokio::sync::Notify::new(),
        });
        let target = Arc::new(TargetState::new(
            addr,
            Pool::new(addr),
            TargetMetrics::noop(),
            Notifier::new(),
            Clock::new(),
            Health::Initial,
        ));
        let check = spawn(Arc::downgrade(&group), target.clone());
        tokio::time::timeout(Duration::from_secs(300), group.changed.notified())
            .await
            .expect("two failed checks make the target unhealthy");
        assert!(target.health().is_unhealthy());
        assert_eq!(group.changes.load(std::sync::atomic::Ordering::SeqCst), 1);
        drop(group);
        tokio::time::timeout(Duration::from_secs(300), async {
            while !check.is_finished() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
        .await
        .expect("the check ends once its group is gone");
    }

    /// A loopback address nothing listens on (yet).
    fn free_port() -> SocketAddr {
        let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        reserved.local_addr().unwrap()
    }

    /// A TCP-checked group (30 s interval) and an `initial` target at `addr`.
    fn tcp_group_and_target(addr: SocketAddr) -> (Arc<FakeGroup>, Arc<TargetState>) {
        use crate::clock::Clock;
        use crate::metrics::TargetMetrics;
        use crate::notify::Notifier;
        use crate::pool::Pool;
        use berth_model::elb::TargetGroup;

        let tg: TargetGroup = serde_json::from_value(
            serde_json::json!({"targetGroupName": "web", "protocol": "TCP"}),
        )
        .unwrap();
        let settings = GroupSettings::from_model(&tg, &tg.validate().unwrap()).unwrap();
        let group = Arc::new(FakeGroup {
            settings: Arc::new(settings),
            changes: Default::default(),
            changed: tokio::sync::Notify::new(),
        });
        let target = Arc::new(TargetState::new(
            addr,
            Pool::new(addr),
            TargetMetrics::noop(),
            Notifier::new(),
            Clock::new(),
            Health::Initial,
        ));
        (group, target)
    }

    #[tokio::test(start_paused = true)]
    async fn an_initial_target_that_starts_listening_late_is_healthy_within_a_second() {
        let addr = free_port();
        let (group, target) = tcp_group_and_target(addr);
        assert_eq!(group.settings.health.interval, Duration::from_secs(30));
        let began = Instant::now();
        let check = spawn(Arc::downgrade(&group), target.clone());
        // The first check finds nothing listening; the task listens 350 ms later.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(target.health(), Health::Initial);
        let _listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(30), group.changed.notified())
            .await
            .expect("the target turns healthy");
        assert_eq!(target.health(), Health::Healthy);
        let took = began.elapsed();
        assert!(
            took < Duration::from_secs(1),
            "healthy after {took:?}, not within a second of listening"
        );
        check.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn rechecks_of_an_initial_target_do_not_count_toward_unhealthy() {
        let addr = free_port();
        let (group, target) = tcp_group_and_target(addr);
        let began = Instant::now();
        let check = spawn(Arc::downgrade(&group), target.clone());
        tokio::time::timeout(Duration::from_secs(300), group.changed.notified())
            .await
            .expect("the target turns unhealthy");
        assert!(target.health().is_unhealthy());
        let threshold = group.settings.health.unhealthy_threshold;
        let interval = group.settings.health.interval;
        // Counted checks run at 0, interval, 2 x interval...: the threshold's one is the
        // first that can make it unhealthy, however many rechecks failed in between.
        assert!(
            began.elapsed() >= interval * (threshold - 1),
            "unhealthy after {:?}, before {} counted checks",
            began.elapsed(),
            threshold
        );
        check.abort();
    }

    /// Runs an HTTP check against a peer that answers `reply` in the given pieces;
    /// returns the outcome and the request the peer read.
    async fn http_check_against(pieces: &[&'static [u8]]) -> (Outcome, String) {
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let pieces = pieces.to_vec();
        let peer = tokio::spawn(async move {
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = theirs.read(&mut b).await.unwrap();
                assert!(n > 0, "the check closed before its request was whole");
                req.extend_from_slice(&b[..n]);
            }
            for p in pieces {
                theirs.write_all(p).await.unwrap();
                tokio::task::yield_now().await;
            }
            String::from_utf8(req).unwrap()
        });
        let mut s = settings();
        s.path = "/health?x=1".into();
        let addr: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        let out = http_check(&s, addr, ours).await;
        (out, peer.await.unwrap())
    }

    #[tokio::test]
    async fn an_http_check_sends_the_alb_request_and_reads_the_status() {
        let (out, req) =
            http_check_against(&[b"HTTP/1.1 2", b"00 OK\r\nContent-Length: 0\r\n\r\n"]).await;
        assert_eq!(out, Outcome::Pass);
        assert_eq!(
            req,
            "GET /health?x=1 HTTP/1.1\r\nHost: 10.0.0.7:8080\r\n\
             User-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn an_http_check_skips_interim_responses_and_reports_a_mismatch() {
        let (out, _) = http_check_against(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\n\r\n",
        ])
        .await;
        assert_eq!(out, Outcome::Mismatch(503));
    }

    #[tokio::test]
    async fn an_http_check_fails_on_garbage_or_an_early_close() {
        assert_eq!(
            http_check_against(&[b"SSH-2.0-OpenSSH\r\n\r\n"]).await.0,
            Outcome::Failed
        );
        assert_eq!(
            http_check_against(&[b"HTTP/1.1 200 OK\r\n"]).await.0,
            Outcome::Failed
        );
    }

    #[tokio::test]
    async fn an_http_check_refuses_a_path_that_would_break_the_request() {
        let mut s = settings();
        s.path = "/a b".into();
        let (ours, _theirs) = tokio::io::duplex(1024);
        let addr: SocketAddr = "10.0.0.7:8080".parse().unwrap();
        assert_eq!(http_check(&s, addr, ours).await, Outcome::Failed);
    }

    #[test]
    fn the_second_check_is_spread_over_half_an_interval() {
        let interval = Duration::from_secs(5);
        let spreads: Vec<Duration> = (0..200).map(|_| spread(interval)).collect();
        assert!(spreads.iter().all(|d| *d < interval / 2));
        let distinct: std::collections::HashSet<_> = spreads.iter().collect();
        assert!(distinct.len() > 100, "spread is random");
    }

    #[test]
    fn initial_target_needs_one_pass() {
        let s = settings();
        let mut c = Counter::default();
        assert_eq!(
            c.observe(Health::Initial, Outcome::Pass, &s),
            Some((Health::Healthy, 0))
        );
    }

    #[test]
    fn thresholds() {
        let s = settings();
        let mut c = Counter::default();
        let mut h = Health::Healthy;
        assert_eq!(c.observe(h, Outcome::Timeout, &s), None);
        assert_eq!(
            c.observe(h, Outcome::Mismatch(500), &s),
            Some((Health::UnhealthyMismatch, 500))
        );
        h = Health::UnhealthyMismatch;
        for _ in 0..4 {
            assert_eq!(c.observe(h, Outcome::Pass, &s), None);
        }
        assert_eq!(c.observe(h, Outcome::Pass, &s), Some((Health::Healthy, 0)));
        // a failure in between resets the streak
        let mut c = Counter::default();
        c.observe(Health::Healthy, Outcome::Failed, &s);
        c.observe(Health::Healthy, Outcome::Pass, &s);
        assert_eq!(c.observe(Health::Healthy, Outcome::Failed, &s), None);
    }

    #[test]
    fn initial_target_fails_after_unhealthy_threshold() {
        let s = settings();
        let mut c = Counter::default();
        assert_eq!(c.observe(Health::Initial, Outcome::Failed, &s), None);
        assert_eq!(
            c.observe(Health::Initial, Outcome::Failed, &s),
            Some((Health::UnhealthyFailed, 0))
        );
    }
}
