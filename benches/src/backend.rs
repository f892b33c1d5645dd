//! The benchmark backend's request handling: HTTP/1.1 with keep-alive, answering
//! - `GET /bytes/<n>`: `n` bytes of body (served from one shared 64 KiB chunk, so a
//!   100 MiB response costs no memory), for the large-body workloads;
//! - a request with a body (an upload): the body is read and thrown away, then the small
//!   fixed response;
//! - `GET` with `Upgrade: websocket`: `101 Switching Protocols` (with the
//!   `Sec-WebSocket-Accept` the client's key calls for), after which the socket is held
//!   open and whatever the client sends is read and dropped; the backend never writes to
//!   it, for the idle WebSocket workload;
//! - anything else: the fixed 100-byte JSON response ([`crate::BACKEND_BODY`]).
//!
//! What it does not do: no WebSocket framing (nothing is sent after the 101), no HTTP/2,
//! no TLS; it reads no request body it does not need to.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::BACKEND_BODY;

/// The size of the chunk `/bytes/<n>` repeats.
const CHUNK_LEN: usize = 64 * 1024;

/// The largest body `/bytes/<n>` serves (16 GiB): a typo'd size is refused, not streamed
/// for hours.
pub const MAX_BYTES: u64 = 16 << 30;

/// The GUID RFC 6455 appends to the client's key before hashing it.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A response body of `remaining` bytes, handed out as slices of one shared chunk.
pub struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
}

impl RepeatBody {
    /// A body of `len` bytes of `'x'`.
    pub fn new(len: u64) -> RepeatBody {
        RepeatBody {
            chunk: Bytes::from(vec![b'x'; CHUNK_LEN]),
            remaining: len,
        }
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(CHUNK_LEN as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

type BackendBody = Either<Full<Bytes>, RepeatBody>;

/// The size `/bytes/<n>` asks for: `Ok(None)` for any other path, `Err` for a bad size.
pub fn bytes_path_len(path: &str) -> Result<Option<u64>, String> {
    let Some(n) = path.strip_prefix("/bytes/") else {
        return Ok(None);
    };
    let len: u64 = n
        .parse()
        .map_err(|_| format!("/bytes/<n>: n must be a byte count, got {n:?}"))?;
    if len > MAX_BYTES {
        return Err(format!(
            "/bytes/<n>: n must be at most {MAX_BYTES}, got {len}"
        ));
    }
    Ok(Some(len))
}

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WEBSOCKET_GUID.as_bytes());
    base64(ctx.finish().as_ref())
}

/// Standard base64 with padding.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn small(status: StatusCode, body: Bytes) -> Response<BackendBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Either::Left(Full::new(body)))
        .expect("static response")
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// Answers one request (see the module's documentation for the routes).
async fn handle(mut req: Request<Incoming>, body: Bytes) -> Response<BackendBody> {
    if is_websocket_upgrade(&req) {
        let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
            return small(
                StatusCode::BAD_REQUEST,
                Bytes::from_static(b"Sec-WebSocket-Key is missing\n"),
            );
        };
        let upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut sink = [0u8; 4096];
                while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("sec-websocket-accept", websocket_accept(key.as_bytes()))
            .body(Either::Left(Full::new(Bytes::new())))
            .expect("static response");
    }
    match bytes_path_len(req.uri().path()) {
        Ok(Some(len)) => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(Either::Right(RepeatBody::new(len)))
                .expect("static response");
        }
        Ok(None) => {}
        Err(e) => return small(StatusCode::BAD_REQUEST, Bytes::from(e + "\n")),
    }
    if !req.body().is_end_stream() {
        let mut incoming = req.into_body();
        while let Some(frame) = incoming.frame().await {
            if frame.is_err() {
                break;
            }
        }
    }
    small(StatusCode::OK, body)
}

/// Serves every request on `listener` over HTTP/1.1 with keep-alive (see the module's
/// documentation for what it answers), on whatever runtime it is polled on (the backend
/// binary uses one thread). Runs until dropped.
pub async fn serve_backend(listener: TcpListener) {
    let body = Bytes::from_static(BACKEND_BODY);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                // Out of file descriptors, say: wait for connections to close.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(handle(req, body).await) }
            });
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn websocket_accept_matches_rfc_6455_example() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    #[test]
    fn bytes_path_parses_and_refuses() {
        assert_eq!(bytes_path_len("/bytes/1048576"), Ok(Some(1 << 20)));
        assert_eq!(bytes_path_len("/"), Ok(None));
        let e = bytes_path_len("/bytes/lots").unwrap_err();
        assert!(e.contains("byte count"), "{e}");
        assert!(bytes_path_len(&format!("/bytes/{}", MAX_BYTES + 1)).is_err());
    }

    async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn serves_n_bytes_and_swallows_uploads() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_backend(listener));

        let got = exchange(
            addr,
            b"GET /bytes/200000 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
        )
        .await;
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&got[..head_end]);
        assert!(head.contains("content-length: 200000"), "{head}");
        assert_eq!(got.len() - head_end, 200_000);

        let mut upload =
            b"POST /up HTTP/1.1\r\nHost: b\r\nContent-Length: 300000\r\nConnection: close\r\n\r\n"
                .to_vec();
        upload.extend(std::iter::repeat_n(b'u', 300_000));
        let got = exchange(addr, &upload).await;
        let got = String::from_utf8_lossy(&got);
        assert!(got.starts_with("HTTP/1.1 200"), "{got}");
        assert!(got.ends_with(std::str::from_utf8(BACKEND_BODY).unwrap()));
    }

    #[tokio::test]
    async fn websocket_upgrade_is_answered_and_held() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_backend(listener));

        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        // Held open: bytes sent are swallowed and nothing comes back.
        s.write_all(b"ping").await.unwrap();
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(200), s.read(&mut buf)).await;
        assert!(more.is_err(), "the backend wrote or closed: {more:?}");
    }
}
