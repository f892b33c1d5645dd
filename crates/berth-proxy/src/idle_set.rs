//! A listener's idle set: plain HTTP/1.1 keep-alive connections that have been quiet
//! between requests for [`PARK_AFTER`] wait here with no task, no tokio registration and
//! no timer of their own. One epoll instance ([`mio::Poll`], awaited through tokio's
//! [`AsyncFd`]) watches every parked socket; a slab holds each parked socket with what
//! resumes it ([`Parked`]); one heap of deadlines closes those that stay quiet for the
//! rest of their idle timeout. One task per listener drives it ([`IdleSet::start`]).
//!
//! A parked connection resumes, as a new task, as soon as its socket turns readable
//! (a request, or the client closing) or its listener stops; on a stop every parked
//! connection resumes, so each is handled exactly as a quiet connection in a task is
//! (see [`crate::fast_h1`]). It reads, parses and answers nothing itself, and it parks
//! nothing on its own: the fast path decides when a connection is quiet
//! ([`crate::fast_h1::Exit::Park`]) and the listener hands it over.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use prometheus::IntGauge;
use tokio::io::unix::AsyncFd;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// How long a connection waits for its next request in its own task before it parks:
/// long enough that a client sending request after request never parks (and pays
/// nothing for it), short next to any idle timeout.
pub(crate) const PARK_AFTER: Duration = Duration::from_secs(1);

/// Readiness events taken from the epoll instance at a time.
const EVENTS_PER_POLL: usize = 256;

/// What a parked connection needs to be served again, or to be closed.
pub(crate) trait Parked: Send + 'static {
    /// The socket turned readable (or the listener stopped): serve it again.
    fn resume(self, stream: TcpStream);
    /// The idle timeout ran out while parked: the connection closes.
    fn expire(self, stream: TcpStream);
}

/// One listener's parked connections.
pub(crate) struct IdleSet<P> {
    state: Mutex<State<P>>,
    /// Registers parked sockets with the driver's epoll instance.
    registry: mio::Registry,
    /// Woken when a deadline earlier than every other one is added.
    earlier_deadline: Notify,
    /// Connections parked now (`berth_lb_idle_parked_connections`).
    gauge: IntGauge,
}

struct State<P> {
    slots: Vec<Slot<P>>,
    /// Indexes of empty slots.
    free: Vec<usize>,
    /// When each parked connection closes unless it resumes first. An entry whose slot
    /// was emptied (or emptied and reused: its generation differs) is stale and skipped.
    deadlines: BinaryHeap<Reverse<Deadline>>,
    /// Stale entries in `deadlines`: compacted away once they outnumber the rest.
    stale: usize,
    /// The listener stopped: nothing parks any more.
    stopped: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    slot: usize,
    generation: u32,
}

struct Slot<P> {
    /// Incremented each time the slot is emptied.
    generation: u32,
    conn: Option<(TcpStream, P)>,
}

/// The task side of an idle set: its epoll instance.
pub(crate) struct Driver<P> {
    set: Arc<IdleSet<P>>,
    poll: AsyncFd<mio::Poll>,
}

impl<P: Parked> IdleSet<P> {
    /// A new idle set and its driver, which must run ([`Driver::run`]) for parked
    /// connections to resume or close. Must be called inside the tokio runtime.
    pub(crate) fn new(gauge: IntGauge) -> io::Result<(Arc<IdleSet<P>>, Driver<P>)> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let poll = watch_poll(poll)?;
        let set = Arc::new(IdleSet {
            state: Mutex::new(State {
                slots: Vec::new(),
                free: Vec::new(),
                deadlines: BinaryHeap::new(),
                stale: 0,
                stopped: false,
            }),
            registry,
            earlier_deadline: Notify::new(),
            gauge,
        });
        Ok((set.clone(), Driver { set, poll }))
    }

    /// A new idle set whose driver runs in its own task until `stop` turns true (or its
    /// sender drops); then every parked connection resumes.
    pub(crate) fn start(gauge: IntGauge, stop: watch::Receiver<bool>) -> io::Result<Arc<Self>> {
        let (set, driver) = IdleSet::new(gauge)?;
        tokio::spawn(driver.run(stop));
        Ok(set)
    }

    fn lock(&self) -> MutexGuard<'_, State<P>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Parks `stream` (non-blocking, registered with no runtime) until it turns readable
    /// or `idle_left` passes. Given back when the listener stopped or the socket could
    /// not be watched: the caller serves it in a task as before.
    pub(crate) fn park(
        &self,
        stream: TcpStream,
        conn: P,
        idle_left: Duration,
    ) -> Result<(), (TcpStream, P)> {
        let mut state = self.lock();
        if state.stopped {
            return Err((stream, conn));
        }
        let slot = match state.free.pop() {
            Some(i) => i,
            None => {
                state.slots.push(Slot {
                    generation: 0,
                    conn: None,
                });
                state.slots.len() - 1
            }
        };
        let fd = stream.as_raw_fd();
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), Token(slot), Interest::READABLE)
        {
            tracing::debug!(error = %e, "an idle connection could not be parked");
            state.free.push(slot);
            return Err((stream, conn));
        }
        let at = Instant::now() + idle_left;
        let earliest = state.deadlines.peek().is_none_or(|Reverse(d)| at < d.at);
        let generation = state.slots[slot].generation;
        state.slots[slot].conn = Some((stream, conn));
        state.deadlines.push(Reverse(Deadline {
            at,
            slot,
            generation,
        }));
        drop(state);
        self.gauge.inc();
        if earliest {
            self.earlier_deadline.notify_one();
        }
        Ok(())
    }

    /// Connections parked now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let state = self.lock();
        state.slots.len() - state.free.len()
    }

    /// Empties `slot` (its connection leaves the set) and stops watching its socket.
    fn take(&self, state: &mut State<P>, slot: usize) -> Option<(TcpStream, P)> {
        let s = state.slots.get_mut(slot)?;
        let (stream, conn) = s.conn.take()?;
        s.generation = s.generation.wrapping_add(1);
        state.free.push(slot);
        // Its deadline entry stays until due, or until compaction.
        state.stale += 1;
        let _ = self.registry.deregister(&mut SourceFd(&stream.as_raw_fd()));
        self.gauge.dec();
        Some((stream, conn))
    }

    /// Resumes the connection of each readable slot.
    fn resume_ready(&self, events: &Events) {
        let mut ready = Vec::new();
        {
            let mut state = self.lock();
            for e in events.iter() {
                if let Some(c) = self.take(&mut state, e.token().0) {
                    ready.push(c);
                }
            }
            state.compact();
        }
        for (stream, conn) in ready {
            conn.resume(stream);
        }
    }

    /// Closes the connections whose deadline passed; returns the next deadline.
    fn expire_due(&self, now: Instant) -> Option<Instant> {
        let mut due = Vec::new();
        let next = {
            let mut state = self.lock();
            while let Some(Reverse(d)) = state.deadlines.peek() {
                if d.at > now {
                    break;
                }
                let Reverse(d) = state.deadlines.pop().expect("peeked");
                let live = state.slots[d.slot].generation == d.generation
                    && state.slots[d.slot].conn.is_some();
                if !live {
                    state.stale -= 1;
                    continue;
                }
                if let Some(c) = self.take(&mut state, d.slot) {
                    // Its own entry was just popped: it is not stale.
                    state.stale -= 1;
                    due.push(c);
                }
            }
            state.deadlines.peek().map(|Reverse(d)| d.at)
        };
        for (stream, conn) in due {
            conn.expire(stream);
        }
        next
    }

    /// Stops parking and resumes every parked connection.
    fn stop(&self) {
        let all: Vec<_> = {
            let mut state = self.lock();
            state.stopped = true;
            let slots = state.slots.len();
            let all = (0..slots)
                .filter_map(|i| self.take(&mut state, i))
                .collect();
            state.deadlines.clear();
            state.stale = 0;
            all
        };
        for (stream, conn) in all {
            conn.resume(stream);
        }
    }
}

impl<P> State<P> {
    /// Drops stale deadline entries once they are most of the heap (a connection that
    /// parks and resumes often leaves one behind each time).
    fn compact(&mut self) {
        if self.stale > 64 && self.stale > self.deadlines.len() / 2 {
            let slots = &self.slots;
            self.deadlines.retain(|Reverse(d)| {
                slots[d.slot].generation == d.generation && slots[d.slot].conn.is_some()
            });
            self.stale = 0;
        }
    }
}

/// `poll`'s epoll descriptor registered with the runtime. The registration that takes
/// any descriptor-holding value is deprecated for values whose descriptor could change
/// or close under it; a `mio::Poll` the `AsyncFd` owns cannot (the same reasoning as
/// berth-runtime's pseudo-terminal), and the workspace forbids the `unsafe` the new
/// call needs.
#[allow(deprecated)]
fn watch_poll(poll: mio::Poll) -> io::Result<AsyncFd<mio::Poll>> {
    AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)
}

impl<P: Parked> Driver<P> {
    /// Resumes readable connections and closes expired ones until `stop` turns true or
    /// its sender drops; then resumes every parked connection and parks no more.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let set = self.set.clone();
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut next: Option<Instant> = None;
        while !*stop.borrow_and_update() {
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                r = stop.changed() => if r.is_err() { break },
                guard = self.poll.readable_mut() => {
                    let Ok(mut guard) = guard else { break };
                    loop {
                        events.clear();
                        match guard.get_inner_mut().poll(&mut events, Some(Duration::ZERO)) {
                            Ok(()) => {}
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(e) => {
                                tracing::warn!(error = %e, "polling idle connections failed");
                                break;
                            }
                        }
                        if events.is_empty() {
                            guard.clear_ready();
                            break;
                        }
                        set.resume_ready(&events);
                    }
                }
                _ = tokio::time::sleep_until(next.unwrap_or(far)), if next.is_some() => {
                    next = set.expire_due(Instant::now());
                }
                _ = set.earlier_deadline.notified() => {
                    next = set.expire_due(Instant::now());
                }
            }
        }
        set.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::sync::mpsc;

    /// Reports what the idle set did with each connection.
    struct Probe(
        &'static str,
        mpsc::UnboundedSender<(&'static str, bool, TcpStream)>,
    );

    impl Parked for Probe {
        fn resume(self, stream: TcpStream) {
            let _ = self.1.send((self.0, true, stream));
        }
        fn expire(self, stream: TcpStream) {
            let _ = self.1.send((self.0, false, stream));
        }
    }

    /// A connected pair over loopback: (client, the accepted side, non-blocking).
    fn pair() -> (TcpStream, TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    fn gauge() -> IntGauge {
        IntGauge::new("parked", "parked").unwrap()
    }

    type Reports = mpsc::UnboundedReceiver<(&'static str, bool, TcpStream)>;

    fn started() -> (Arc<IdleSet<Probe>>, watch::Sender<bool>, IntGauge) {
        let g = gauge();
        let (stop_tx, stop) = watch::channel(false);
        let set = IdleSet::start(g.clone(), stop).unwrap();
        (set, stop_tx, g)
    }

    #[tokio::test]
    async fn a_parked_connection_resumes_when_its_client_writes() {
        let (set, _stop, gauge) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let (mut client, server) = pair();
        let (_other_client, other) = pair();
        set.park(server, Probe("a", tx.clone()), Duration::from_secs(3600))
            .unwrap_or_else(|_| panic!("parked"));
        set.park(other, Probe("b", tx), Duration::from_secs(3600))
            .unwrap_or_else(|_| panic!("parked"));
        assert_eq!((set.len(), gauge.get()), (2, 2));

        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (name, resumed, mut stream) = rx.recv().await.unwrap();
        assert_eq!((name, resumed), ("a", true), "the readable one resumes");
        assert_eq!((set.len(), gauge.get()), (1, 1), "the quiet one stays");
        // The bytes wait in the socket for whoever serves it next.
        stream.set_nonblocking(false).unwrap();
        let mut got = [0u8; 18];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn a_client_that_sent_before_parking_resumes_at_once() {
        let (set, _stop, _) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let (mut client, server) = pair();
        client.write_all(b"x").unwrap();
        // Let the byte arrive before the socket is watched.
        let mut probe = [0u8; 1];
        while server.peek(&mut probe).is_err() {
            tokio::task::yield_now().await;
        }
        set.park(server, Probe("a", tx), Duration::from_secs(3600))
            .unwrap_or_else(|_| panic!("parked"));
        let (_, resumed, _) = rx.recv().await.unwrap();
        assert!(resumed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_quiet_for_its_idle_timeout_closes_in_deadline_order() {
        let (set, _stop, gauge) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let (_c1, late) = pair();
        let (_c2, early) = pair();
        let start = Instant::now();
        set.park(late, Probe("late", tx.clone()), Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("parked"));
        set.park(early, Probe("early", tx), Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("parked"));
        let (name, resumed, _) = rx.recv().await.unwrap();
        assert_eq!((name, resumed), ("early", false));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(gauge.get(), 1);
        let (name, resumed, _) = rx.recv().await.unwrap();
        assert_eq!((name, resumed), ("late", false));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!((set.len(), gauge.get()), (0, 0));
    }

    #[tokio::test]
    async fn a_resumed_connections_deadline_does_not_close_the_next_one_in_its_slot() {
        let (set, _stop, _) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let (mut c1, first) = pair();
        set.park(first, Probe("first", tx.clone()), Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("parked"));
        c1.write_all(b"x").unwrap();
        let (name, resumed, _) = rx.recv().await.unwrap();
        assert_eq!((name, resumed), ("first", true));

        // From here on, only timers: the clock moves when everything waits.
        tokio::time::pause();
        let start = Instant::now();
        let (_c2, second) = pair();
        set.park(second, Probe("second", tx), Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("parked"));
        assert_eq!(set.len(), 1);
        let (name, resumed, _) = rx.recv().await.unwrap();
        assert_eq!((name, resumed), ("second", false));
        assert!(
            start.elapsed() >= Duration::from_secs(20),
            "closed after {:?}: the first one's deadline (5 s) was skipped",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_stop_resumes_every_parked_connection_and_parks_no_more() {
        let (set, stop, gauge) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for name in ["a", "b", "c"] {
            let (client, server) = pair();
            clients.push(client);
            set.park(server, Probe(name, tx.clone()), Duration::from_secs(3600))
                .unwrap_or_else(|_| panic!("parked"));
        }
        stop.send(true).unwrap();
        let mut names = Vec::new();
        for _ in 0..3 {
            let (name, resumed, _) = rx.recv().await.unwrap();
            assert!(resumed, "{name} resumed, not closed");
            names.push(name);
        }
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!((set.len(), gauge.get()), (0, 0));
        let (_client, late) = pair();
        assert!(
            set.park(late, Probe("late", tx), Duration::from_secs(3600))
                .is_err(),
            "a stopped set gives the connection back"
        );
    }

    #[tokio::test]
    async fn stale_deadlines_are_compacted() {
        let (set, _stop, _) = started();
        let (tx, mut rx): (_, Reports) = mpsc::unbounded_channel();
        let (mut client, mut server) = pair();
        for _ in 0..200 {
            set.park(server, Probe("a", tx.clone()), Duration::from_secs(3600))
                .unwrap_or_else(|_| panic!("parked"));
            client.write_all(b"x").unwrap();
            let (_, resumed, mut s) = rx.recv().await.unwrap();
            assert!(resumed);
            let mut byte = [0u8; 1];
            s.set_nonblocking(false).unwrap();
            s.read_exact(&mut byte).unwrap();
            s.set_nonblocking(true).unwrap();
            server = s;
        }
        let heap = set.lock().deadlines.len();
        assert!(heap <= 130, "{heap} deadline entries for one connection");
    }
}
