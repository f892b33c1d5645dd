//! The fast path's connection state: which buffers a connection holds, and when.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

use super::{Conn, Idle, Wait};
use crate::clock::Clock;

fn conn(io: DuplexStream) -> Conn<DuplexStream> {
    let clock = Clock::new();
    Conn {
        io,
        buf: BytesMut::new(),
        out: Vec::new(),
        up: BytesMut::new(),
        idle: Idle {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
            last: clock.now_ms(),
            idle_ms: 60_000,
            park_ms: u64::MAX,
            clock,
        },
        peer: "127.0.0.1".parse().unwrap(),
        acking: false,
    }
}

fn capacity(c: &Conn<DuplexStream>) -> usize {
    c.buf.capacity() + c.out.capacity() + c.up.capacity()
}

#[tokio::test]
async fn a_connection_waiting_for_a_request_holds_no_buffer() {
    let (mut client, server) = tokio::io::duplex(4096);
    let mut c = conn(server);
    let (_stop_tx, mut stop) = watch::channel(false);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    {
        let wait = pin!(c.read_client_or_stop(&mut stop));
        assert!(wait.poll(&mut cx).is_pending(), "no request yet");
    }
    assert_eq!(capacity(&c), 0, "a new connection holds no buffer");

    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    match c.read_client_or_stop(&mut stop).await {
        Wait::Done(Ok(16)) => {}
        _ => panic!("the request's first bytes are read"),
    }
    assert_eq!(&c.buf[..], b"GET / HTTP/1.1\r\n");
    assert!(c.buf.capacity() > 0);

    // A request served: the response went out and the target's bytes were read.
    c.buf.clear();
    c.out
        .extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    c.up.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    c.release_buffers();
    assert_eq!(
        capacity(&c),
        0,
        "between requests the connection holds nothing"
    );
}

#[tokio::test]
async fn the_start_of_a_pipelined_request_is_kept_between_requests() {
    let (_client, server) = tokio::io::duplex(4096);
    let mut c = conn(server);
    c.buf.extend_from_slice(b"GET /next HTTP/1.1\r\n");
    c.out.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\n");
    c.release_buffers();
    assert_eq!(&c.buf[..], b"GET /next HTTP/1.1\r\n");
    assert_eq!(c.out.capacity(), 0);
}

#[tokio::test]
async fn the_listener_stopping_ends_the_wait_without_a_buffer() {
    let (_client, server) = tokio::io::duplex(4096);
    let mut c = conn(server);
    let (stop_tx, mut stop) = watch::channel(false);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut wait = Box::pin(c.read_client_or_stop(&mut stop));
    assert!(wait.as_mut().poll(&mut cx).is_pending());
    stop_tx.send(true).unwrap();
    match wait.as_mut().poll(&mut cx) {
        Poll::Ready(Wait::Stop) => {}
        _ => panic!("the stop ends the wait"),
    }
    drop(wait);
    assert_eq!(capacity(&c), 0);
}

/// The size of the future `f` returns, without calling it.
fn returned_future_size<A, B, C, D, Fut>(_: impl FnOnce(A, B, C, D) -> Fut) -> usize {
    std::mem::size_of::<Fut>()
}

#[test]
fn a_requests_forwarding_state_is_small() {
    // Every request's forwarding state is moved into a box of its own, so its whole size
    // is copied per request: rare, large states (a connect, lingering after an early
    // answer) are boxed apart inside it. (Debug build: 9,016 bytes with the lingering
    // read's buffer inline, 1,232 without.)
    let size = returned_future_size(
        |c: &'static mut Conn<tokio::net::TcpStream>,
         plan: super::Plan,
         cx: &'static crate::context::ConnCtx,
         stop: &'static watch::Receiver<bool>| c.forward(plan, cx, stop),
    );
    assert!(
        size <= 2048,
        "a request's forwarding state takes {size} bytes"
    );
}

#[tokio::test(start_paused = true)]
async fn a_quiet_wait_between_requests_ends_at_the_park_delay_when_parking() {
    let (_client, server) = tokio::io::duplex(4096);
    let mut c = conn(server);
    // As `serve` sets it up when the connection may park: the timer never runs
    // further ahead than the park delay.
    c.idle.park_ms = 1_000;
    c.idle.sleep = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
    let (_stop_tx, mut stop) = watch::channel(false);
    let start = tokio::time::Instant::now();
    match c.read_client_or_stop(&mut stop).await {
        Wait::Park => {}
        _ => panic!("a quiet connection that may park parks"),
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(60),
        "parked after {waited:?}"
    );
    assert_eq!(capacity(&c), 0);
}

#[tokio::test(start_paused = true)]
async fn a_quiet_wait_between_requests_ends_at_the_idle_timeout_without_parking() {
    let (_client, server) = tokio::io::duplex(4096);
    let mut c = conn(server);
    let (_stop_tx, mut stop) = watch::channel(false);
    let start = tokio::time::Instant::now();
    match c.read_client_or_stop(&mut stop).await {
        Wait::Idle => {}
        _ => panic!("the idle timeout ends the wait"),
    }
    assert!(start.elapsed() >= Duration::from_secs(60));
}
