//! The fast path's connection-wide idle timeout ([`Idle`], [`Expired`]), the wait
//! between requests that also says when a quiet connection may park ([`Quiet`]), and the
//! reads and writes that honour the timeout. It routes and parses nothing.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, Sleep};

use crate::clock::Clock;
use crate::read_buffers;

/// Free space below which a read buffer grows before the next read.
const MIN_READ_SPACE: usize = 4096;
pub(super) const READ_CHUNK: usize = 16 * 1024;

/// The connection-wide idle timeout: one timer, moved only when it fires early.
pub(super) struct Idle {
    pub(super) sleep: Pin<Box<Sleep>>,
    /// When bytes last moved (clock millis).
    pub(super) last: u64,
    pub(super) idle_ms: u64,
    /// Quiet time after which a connection between requests parks
    /// ([`crate::idle_set`]); `u64::MAX` where it never parks. The timer never runs
    /// further ahead than this, so the wait between requests sees the moment.
    pub(super) park_ms: u64,
    pub(super) clock: Clock,
}

impl Idle {
    pub(super) fn touch(&mut self) {
        self.last = self.clock.now_ms();
    }
}

/// Resolves once nothing moved on the connection for the idle timeout.
pub(super) struct Expired<'a>(pub(super) &'a mut Idle);

impl Future for Expired<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        poll_quiet(self.get_mut().0, cx, false).map(|_| ())
    }
}

/// What ended a quiet wait between requests.
pub(super) enum Lull {
    /// Quiet for the park delay: the connection may leave its task.
    Park,
    /// Quiet for the idle timeout: the connection closes.
    Expired,
}

/// Resolves once nothing moved on the connection for the park delay or the idle
/// timeout, whichever is shorter. The same timer as [`Expired`].
pub(super) struct Quiet<'a>(pub(super) &'a mut Idle);

impl Future for Quiet<'_> {
    type Output = Lull;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Lull> {
        poll_quiet(self.get_mut().0, cx, true)
    }
}

/// The connection's one timer: ready once nothing moved for the idle timeout, or, when
/// `park` is set, for the park delay if that comes first. The timer never runs further
/// ahead than the park delay.
fn poll_quiet(idle: &mut Idle, cx: &mut Context<'_>, park: bool) -> Poll<Lull> {
    loop {
        if idle.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let quiet = idle.clock.now_ms().saturating_sub(idle.last);
        if quiet >= idle.idle_ms {
            return Poll::Ready(Lull::Expired);
        }
        let wait = if park {
            if quiet >= idle.park_ms {
                return Poll::Ready(Lull::Park);
            }
            (idle.idle_ms - quiet).min(idle.park_ms - quiet)
        } else {
            (idle.idle_ms - quiet).min(idle.park_ms)
        };
        idle.sleep
            .as_mut()
            .reset(Instant::now() + Duration::from_millis(wait));
    }
}

/// Reads more bytes into `buf`, unless nothing moves for the idle timeout (`None`).
pub(super) async fn read_idle<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    idle: &mut Idle,
) -> Option<io::Result<usize>> {
    reserve(buf);
    let r = tokio::select! {
        biased;
        r = io.read_buf(buf) => Some(r),
        _ = Expired(idle) => None,
    };
    if matches!(r, Some(Ok(n)) if n > 0) {
        idle.touch();
    }
    r
}

/// Writes all of `data` and flushes it (a TLS stream may hold records back until then),
/// unless nothing moves for the idle timeout.
pub(super) async fn write_idle<T: AsyncWrite + Unpin>(
    io: &mut T,
    data: &[u8],
    idle: &mut Idle,
) -> Result<(), ()> {
    let r = tokio::select! {
        biased;
        r = async {
            io.write_all(data).await?;
            io.flush().await
        } => r.map_err(|_| ()),
        _ = Expired(idle) => Err(()),
    };
    idle.touch();
    r
}

/// Makes room for a read: a buffer from the thread's pool when `buf` has none (the
/// connection gave its buffers back while it waited), more space when little is left.
pub(super) fn reserve(buf: &mut BytesMut) {
    if buf.capacity() == 0 {
        *buf = read_buffers::take();
    } else if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_CHUNK);
    }
}
