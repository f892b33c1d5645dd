//! Bodies on the fast path: a response body streamed from the target to the client as
//! its framing delimits it ([`response`]; a chunked one as bare data for an HTTP/1.0
//! client, [`Unchunk`]), the rest of a large request body streamed
//! from the client to the target ([`upload`]), and the read buffer sizing that lets a
//! large body move in fewer, larger reads ([`read_body`], [`release`]).
//!
//! A request body over [`super::MAX_BUFFERED_BODY`] is not gathered before the request
//! goes out: the head and the body bytes already read go first, then [`upload`] copies
//! the rest as it arrives, exactly its Content-Length. Such a request cannot be replayed
//! (its body is not kept), so the caller starts its attempts as not replayable and every
//! failure after the first streamed byte answers the client instead of trying again.
//!
//! While the body streams, [`upload`] also reads what the target sends: a target that
//! answers before the body is whole (a 413 or a 401, say) stops the upload, whether it
//! then stops reading or closes. Its answer goes to the client as any other, with
//! `Connection: close`; the target connection is not reused, and [`linger`] reads and
//! drops a bounded part of the client's remaining body before the connection closes, so
//! the client sees the answer rather than a reset. A target that closes without an
//! answer still gets the client a 502.
//!
//! What it does not do: parse or write heads, choose targets, or frame chunked request
//! bodies (those go to hyper); it never reads past the body, so a pipelined request that
//! follows stays in the client buffer.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::idle::{read_idle, write_idle, Expired, Idle, READ_CHUNK};
use super::last_write::{ClientIo, Last};
use crate::attempt::Failure;
use crate::context::MAX_HEADER_BYTES;
use crate::h1_codec::{parse_response, Chunk, ChunkedDecoder, ChunkedEnd, Framing, Parsed};
use crate::read_buffers;

/// The read buffer a body streams through once at least this much of it is still to
/// come: a large body moves in reads of up to [`BODY_CHUNK`] instead of [`READ_CHUNK`].
const LARGE_BODY: u64 = 4 * READ_CHUNK as u64;
/// Free space kept in a buffer a large body streams through.
pub(super) const BODY_CHUNK: usize = 256 * 1024;

/// Reads more of a body into `buf`, with room for up to [`BODY_CHUNK`] bytes when at
/// least [`LARGE_BODY`] bytes of it are still to come (`None` when nothing moved for
/// the idle timeout).
pub(super) async fn read_body<T: AsyncRead + Unpin>(
    io: &mut T,
    buf: &mut BytesMut,
    idle: &mut Idle,
    remaining: u64,
) -> Option<std::io::Result<usize>> {
    if remaining >= LARGE_BODY && buf.capacity() - buf.len() < BODY_CHUNK / 2 {
        buf.reserve(BODY_CHUNK);
    }
    read_idle(io, buf, idle).await
}

/// Gives back the room a large body grew `buf` to, keeping what it holds.
pub(super) fn release(buf: &mut BytesMut) {
    if buf.capacity() > 2 * READ_CHUNK && buf.len() <= READ_CHUNK {
        let mut small = BytesMut::with_capacity(READ_CHUNK);
        small.extend_from_slice(buf);
        *buf = small;
    }
}

/// How a response body went to the client.
pub(super) struct Sent {
    /// Body bytes written.
    pub(super) bytes: u64,
    /// The body ended where its framing says (a malformed chunked body did not).
    pub(super) framed: bool,
}

/// A chunked body's data without its framing, for a client that cannot read chunked
/// framing (HTTP/1.0, RFC 9112 §6.1): chunk sizes, extensions and line ends are
/// dropped, and so is the trailer section.
#[derive(Debug, Default)]
pub(super) struct Unchunk {
    decoder: ChunkedDecoder,
    /// The last chunk was seen: what follows is the trailer section.
    ended: bool,
}

impl Unchunk {
    /// Appends the chunk data in `bytes`, the body's next bytes (none past its end), to
    /// `out`. `Err` for malformed framing.
    pub(super) fn data_into(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
        while !self.ended && !bytes.is_empty() {
            match self.decoder.step(bytes)? {
                Chunk::More => break,
                Chunk::Data { skip, len } => {
                    out.extend_from_slice(&bytes[skip..skip + len]);
                    bytes = &bytes[skip + len..];
                }
                Chunk::Last(_) => self.ended = true,
            }
        }
        Ok(())
    }
}

/// How a response body goes to the client.
pub(super) struct Delivery {
    pub(super) framing: Framing,
    /// A chunked body goes out as its data alone ([`Unchunk`], for an HTTP/1.0 client).
    pub(super) unchunk: bool,
    /// The client connection shuts down right after the body: its last bytes are
    /// written as such ([`Last`]), to leave with the FIN.
    pub(super) then_close: bool,
}

/// Writes the response head in `out` with the body bytes already in `up`, then streams
/// the rest of the body from the target as its framing delimits it, leaving any bytes
/// past its end in `up`. `Err(())` when either side failed or nothing moved for the idle
/// timeout: the client connection must close.
pub(super) async fn response<C, U>(
    client: &mut C,
    target: &mut U,
    up: &mut BytesMut,
    out: &mut Vec<u8>,
    idle: &mut Idle,
    how: Delivery,
) -> Result<Sent, ()>
where
    C: ClientIo,
    U: AsyncRead + Unpin,
{
    let Delivery {
        framing,
        unchunk,
        then_close,
    } = how;
    let mut framed = true;
    let mut sent: u64 = 0;
    let mut chunks = ChunkedEnd::default();
    let mut unchunk = (unchunk && framing == Framing::Chunked).then(Unchunk::default);
    let mut remaining = match framing {
        Framing::Empty => 0,
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    loop {
        let take = match framing {
            Framing::Empty => 0,
            Framing::Length(_) => (up.len() as u64).min(remaining) as usize,
            Framing::Chunked => match chunks.feed(up) {
                Ok(Some(n)) => {
                    remaining = 0;
                    n
                }
                Ok(None) => up.len(),
                Err(()) => {
                    framed = false;
                    remaining = 0;
                    up.len()
                }
            },
            Framing::Close => up.len(),
        };
        if let Framing::Length(_) = framing {
            remaining -= take as u64;
        }
        // The body ends with this write: on a closing connection, its bytes go last.
        let last = then_close && remaining == 0;
        if let Some(unchunk) = unchunk.as_mut() {
            // The data goes out through `out`, after the head while it is there.
            let head = out.len();
            if unchunk.data_into(&up[..take], out).is_err() {
                framed = false;
                remaining = 0;
            }
            sent += (out.len() - head) as u64;
            if !out.is_empty() {
                write_client(client, out, idle, last).await?;
                out.clear();
            }
        } else if out.is_empty() {
            // The head is out: body bytes go straight from the target's buffer.
            if take > 0 {
                write_client(client, &up[..take], idle, last).await?;
            }
        } else {
            // The head and the first body bytes in one write.
            out.extend_from_slice(&up[..take]);
            write_client(client, out, idle, last).await?;
            out.clear();
        }
        if unchunk.is_none() {
            sent += take as u64;
        }
        up.advance(take);
        if remaining == 0 {
            break;
        }
        // A body of unknown length counts as large once that much of it went out.
        let left = if remaining == u64::MAX {
            sent
        } else {
            remaining
        };
        match read_body(target, up, idle, left).await {
            Some(Ok(n)) if n > 0 => {}
            Some(Ok(_)) if framing == Framing::Close => break,
            // The target went away mid-body, or nothing moved for the idle timeout.
            _ => return Err(()),
        }
    }
    Ok(Sent {
        bytes: sent,
        framed,
    })
}

/// Writes `data` to the client; `last`: the connection shuts down next.
async fn write_client<C: ClientIo>(
    client: &mut C,
    data: &[u8],
    idle: &mut Idle,
    last: bool,
) -> Result<(), ()> {
    if last {
        write_idle(&mut Last(client), data, idle).await
    } else {
        write_idle(client, data, idle).await
    }
}

/// A request body still to come from the client.
pub(super) struct Upload {
    /// Body bytes not yet read from the client.
    pub(super) pending: u64,
    /// The client sent `Expect: 100-continue` and was not yet told to go on.
    pub(super) continue_owed: bool,
}

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Copies the next `pending` body bytes from the client to the target: first what is in
/// `buf`, then what arrives, after telling a client that waits for it to go on.
/// `pending` counts down as bytes go out, and bytes past the body stay in `buf`.
///
/// Meanwhile it reads what the target sends into `answer`, dropping interim (1xx)
/// responses, and stops early, with part of the body still pending, once `answer`
/// holds a final head (or bytes that cannot start one), the target closed its side, or
/// the target stopped taking the body with an error: the caller then reads the answer
/// from `answer` and the target, and a target that answered neither way fails there.
///
/// The failure says whose side broke: [`Failure::ClientGone`] when the client closed or
/// failed before its body was whole, [`Failure::NoResponse`] when the target failed a
/// flush of the whole body, [`Failure::Timeout`] when nothing moved for the idle timeout.
pub(super) async fn upload<C, U>(
    client: &mut C,
    buf: &mut BytesMut,
    up: &mut U,
    answer: &mut BytesMut,
    body: &mut Upload,
    idle: &mut Idle,
) -> Result<(), Failure>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    if std::mem::take(&mut body.continue_owed) {
        write_idle(client, CONTINUE, idle)
            .await
            .map_err(|()| Failure::ClientGone)?;
    }
    let pending = &mut body.pending;
    let result = async {
        while *pending > 0 {
            if buf.is_empty() {
                let read = tokio::select! {
                    biased;
                    r = poll_fn(|cx| read_buffers::poll_read_pooled(up, cx, answer)) => {
                        if target_said_enough(r, answer, idle) {
                            return Ok(());
                        }
                        continue;
                    }
                    r = read_body(client, buf, idle, *pending) => r,
                };
                match read {
                    None => return Err(Failure::Timeout),
                    Some(Ok(n)) if n > 0 => {}
                    Some(_) => return Err(Failure::ClientGone),
                }
            }
            let take = (buf.len() as u64).min(*pending) as usize;
            let step = tokio::select! {
                biased;
                s = poll_fn(|cx| poll_step(cx, up, &buf[..take], answer)) => Some(s),
                _ = Expired(idle) => None,
            };
            match step {
                None => return Err(Failure::Timeout),
                Some(Step::Wrote(Ok(n))) if n > 0 => {
                    idle.touch();
                    buf.advance(n);
                    *pending -= n as u64;
                }
                // The target stopped taking the body: what it answered is read next.
                Some(Step::Wrote(_)) => return Ok(()),
                Some(Step::Answer(r)) => {
                    if target_said_enough(r, answer, idle) {
                        return Ok(());
                    }
                }
            }
        }
        // A mesh hop's TLS layer may hold the last record back until flushed.
        tokio::select! {
            biased;
            r = up.flush() => r.map_err(|_| Failure::NoResponse),
            _ = Expired(idle) => Err(Failure::Timeout),
        }
    }
    .await;
    release(buf);
    result
}

/// What moved first on the target connection while a body piece was due.
enum Step {
    /// Bytes the target sent, read into the answer buffer.
    Answer(std::io::Result<usize>),
    /// Body bytes written to the target.
    Wrote(std::io::Result<usize>),
}

/// Reads what the target sent, else writes (part of) `piece` to it: the target's answer
/// is looked at first so that one arriving while the body stalls is seen.
fn poll_step<U: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    up: &mut U,
    piece: &[u8],
    answer: &mut BytesMut,
) -> Poll<Step> {
    if let Poll::Ready(r) = read_buffers::poll_read_pooled(up, cx, answer) {
        return Poll::Ready(Step::Answer(r));
    }
    Pin::new(up).poll_write(cx, piece).map(Step::Wrote)
}

/// Whether what the target sent during the upload ends it: a final head (or bytes that
/// cannot start one) in `answer`, or the target closing or failing. Interim responses
/// are dropped from `answer`.
fn target_said_enough(
    read: std::io::Result<usize>,
    answer: &mut BytesMut,
    idle: &mut Idle,
) -> bool {
    match read {
        Ok(n) if n > 0 => idle.touch(),
        _ => return true,
    }
    loop {
        match parse_response(answer) {
            Parsed::Interim(n) => answer.advance(n),
            Parsed::More => return answer.len() > MAX_HEADER_BYTES,
            Parsed::Head(_) | Parsed::Bad => return true,
        }
    }
}

/// After an answer that went out before the client's body was whole: how much more of
/// the body is read and dropped, and for how long, before the connection closes. Closing
/// with unread bytes would reset the connection and could destroy the answer in flight.
const LINGER_BYTES: u64 = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);

/// Ends the client's side of a connection whose answer went out before its body was
/// whole (`pending` bytes still to come): shuts its write side, then reads and drops up
/// to [`LINGER_BYTES`] of the rest for up to [`LINGER_TIME`], as nginx's lingering
/// close does.
pub(super) async fn linger<C: AsyncRead + AsyncWrite + Unpin>(
    client: &mut C,
    buf: &mut BytesMut,
    pending: u64,
) {
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let _ = client.shutdown().await;
        let mut left = pending.min(LINGER_BYTES);
        // On the heap: in the future's state it would make every request's forwarding
        // state 8 KiB larger, to be moved into its box each time.
        let mut scratch = vec![0u8; 8192];
        left = left.saturating_sub(buf.len() as u64);
        buf.clear();
        while left > 0 {
            match client.read(&mut scratch).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n as u64),
                _ => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use std::time::Duration;
    use tokio::io::AsyncReadExt;

    /// A target that takes the body into a `Vec` and answers only what its peer sends.
    fn target() -> (
        tokio::io::Join<tokio::io::DuplexStream, Vec<u8>>,
        tokio::io::DuplexStream,
    ) {
        let (answers, peer) = tokio::io::duplex(1024);
        (tokio::io::join(answers, Vec::new()), peer)
    }

    fn idle() -> Idle {
        let clock = Clock::new();
        Idle {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
            last: clock.now_ms(),
            idle_ms: 60_000,
            park_ms: u64::MAX,
            clock,
        }
    }

    #[tokio::test]
    async fn upload_copies_exactly_the_body_and_keeps_what_follows() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = body[1000..].to_vec();
        wire.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let mut client = tokio::io::join(&wire[..], tokio::io::sink());
        let mut buf = BytesMut::new();
        let (mut up, _peer) = target();
        let mut pending = Upload {
            pending: (body.len() - 1000) as u64,
            continue_owed: false,
        };
        let mut answer = BytesMut::new();
        upload(
            &mut client,
            &mut buf,
            &mut up,
            &mut answer,
            &mut pending,
            &mut idle(),
        )
        .await
        .expect("upload completes");
        assert_eq!(pending.pending, 0);
        assert_eq!(up.into_inner().1, &body[1000..]);
        let rest = [&buf[..], client.into_inner().0].concat();
        assert_eq!(rest, b"GET /next HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn a_client_that_stops_short_is_the_clients_failure() {
        let mut client = tokio::io::join(&[7u8; 1000][..], tokio::io::sink());
        let mut buf = BytesMut::new();
        let (mut up, _peer) = target();
        let mut pending = Upload {
            pending: 5000,
            continue_owed: false,
        };
        let mut answer = BytesMut::new();
        let r = upload(
            &mut client,
            &mut buf,
            &mut up,
            &mut answer,
            &mut pending,
            &mut idle(),
        )
        .await;
        assert_eq!(r, Err(Failure::ClientGone));
        assert_eq!(up.into_inner().1.len(), 1000);
        assert_eq!(pending.pending, 4000);
    }

    #[tokio::test]
    async fn a_client_waiting_to_send_is_told_to_go_on_once() {
        let (mut client, mut peer) = tokio::io::duplex(1024);
        let (mut up, _peer) = target();
        let mut body = Upload {
            pending: 3,
            continue_owed: true,
        };
        let sender = tokio::spawn(async move {
            let mut interim = [0u8; CONTINUE.len()];
            peer.read_exact(&mut interim).await.unwrap();
            peer.write_all(b"abc").await.unwrap();
            interim
        });
        upload(
            &mut client,
            &mut BytesMut::new(),
            &mut up,
            &mut BytesMut::new(),
            &mut body,
            &mut idle(),
        )
        .await
        .expect("upload completes");
        assert_eq!(&sender.await.unwrap(), CONTINUE);
        assert_eq!(up.into_inner().1, b"abc");
        assert!(!body.continue_owed);
    }

    #[tokio::test]
    async fn an_answer_before_the_body_is_whole_stops_the_upload() {
        // The client sends half its body, then waits; the target answers, after an
        // interim response that is dropped.
        let (mut client, _client_peer) = tokio::io::duplex(1024);
        let mut buf = BytesMut::from(&[1u8; 500][..]);
        let (mut up, mut peer) = target();
        peer.write_all(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let mut body = Upload {
            pending: 1000,
            continue_owed: false,
        };
        let mut answer = BytesMut::new();
        upload(
            &mut client,
            &mut buf,
            &mut up,
            &mut answer,
            &mut body,
            &mut idle(),
        )
        .await
        .expect("upload stops without failing");
        assert!(answer.starts_with(b"HTTP/1.1 413 "));
        // Stopped short: what went out and what is pending make the body.
        assert!(body.pending >= 500);
        assert_eq!(up.into_inner().1.len() as u64, 1000 - body.pending);
    }

    #[tokio::test]
    async fn a_target_closing_mid_body_stops_the_upload() {
        let (mut client, _client_peer) = tokio::io::duplex(1024);
        let (mut up, peer) = target();
        drop(peer);
        let mut body = Upload {
            pending: 1000,
            continue_owed: false,
        };
        let mut answer = BytesMut::new();
        let r = upload(
            &mut client,
            &mut BytesMut::new(),
            &mut up,
            &mut answer,
            &mut body,
            &mut idle(),
        )
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(body.pending, 1000);
        assert!(answer.is_empty());
    }

    #[test]
    fn release_shrinks_a_grown_buffer_and_keeps_its_bytes() {
        let mut buf = BytesMut::with_capacity(BODY_CHUNK);
        buf.extend_from_slice(b"pipelined");
        release(&mut buf);
        assert!(buf.capacity() < BODY_CHUNK);
        assert_eq!(&buf[..], b"pipelined");
    }

    /// The data `Unchunk` takes out of `body` fed in pieces of `step` bytes.
    fn unchunked(body: &[u8], step: usize) -> Result<Vec<u8>, ()> {
        let mut u = Unchunk::default();
        let mut out = Vec::new();
        for piece in body.chunks(step) {
            u.data_into(piece, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn a_chunked_body_becomes_its_data_however_it_arrives() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for step in 1..=body.len() {
            assert_eq!(
                unchunked(body, step).as_deref(),
                Ok(&b"hello world0123456789"[..]),
                "pieces of {step}"
            );
        }
        assert_eq!(unchunked(b"0\r\n\r\n", 1), Ok(Vec::new()));
    }

    #[test]
    fn malformed_chunk_framing_is_an_error() {
        for body in [&b"z\r\nhello\r\n0\r\n\r\n"[..], b"5\r\nhelloXX0\r\n\r\n"] {
            assert_eq!(
                unchunked(body, 64),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
