//! A target that answers a streamed upload before its body is whole, over real sockets:
//! the client gets the target's answer (a 413 or an early 200) with its body and
//! `Connection: close`, whether the target then stops reading or closes, and the
//! connection ends after it; a target that closes without answering still gets the
//! client a 502.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The upload every test starts: far more than any socket buffers hold.
const UPLOAD: usize = 20 << 20;
/// How long the client waits for the answer: far below the listener's idle timeout, so
/// an answer that only came after the idle timeout fails the test.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// What the target does with an upload once it read `after` bytes of its body.
#[derive(Clone, Copy)]
enum Early {
    /// Answers `status` with `body` and stops reading, holding the connection open.
    AnswerAndStall(u16, &'static str),
    /// Answers `status` with `body` and closes at once, the rest of the body unread.
    AnswerAndClose(u16, &'static str),
    /// Closes without an answer.
    Close,
}

/// A target that answers a request with no body (a health check) with 200, and an
/// upload as `early` says once `after` bytes of its body arrived.
async fn start_target(after: usize, early: Early) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_target(s, after, early));
        }
    });
    addr
}

async fn serve_target(mut s: TcpStream, after: usize, early: Early) {
    let mut buf = Vec::new();
    loop {
        let Some(head_len) = head_end(&mut s, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
        buf.drain(..head_len);
        if !head.contains("content-length") {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            continue;
        }
        while buf.len() < after {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let (status, body) = match early {
            Early::AnswerAndStall(st, b) | Early::AnswerAndClose(st, b) => (st, b),
            Early::Close => return,
        };
        let answer = format!(
            "HTTP/1.1 {status} Early\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(answer.as_bytes()).await.unwrap();
        match early {
            Early::AnswerAndStall(..) => {
                // Holds the connection, reading nothing more, until the proxy drops it.
                std::future::pending::<()>().await;
            }
            _ => return,
        }
    }
}

/// Reads until `buf` holds a whole head; returns its length.
async fn head_end(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

async fn setup(after: usize, early: Early) -> (Arc<berth_proxy::Proxy>, SocketAddr) {
    let t = start_target(after, early).await;
    let (p, _) = proxy();
    let addr = serve_group(
        &p,
        target_group(TG, "web", serde_json::json!({})),
        vec![target(t)],
    )
    .await;
    wait_for(&p, |s| all_healthy(s, 1)).await;
    (p, addr)
}

/// What the client got for its upload.
struct Answer {
    head: String,
    body: Vec<u8>,
    /// The connection ended after the answer.
    closed: bool,
}

/// Sends a `UPLOAD`-byte upload (its body from a task of its own, as fast as the
/// connection takes it) and reads the answer, its body and then the end of the
/// connection, within [`ANSWER_WITHIN`].
async fn upload_and_answer(addr: SocketAddr) -> Answer {
    let c = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = c.into_split();
    let head = format!("PUT /upload HTTP/1.1\r\nHost: web\r\nContent-Length: {UPLOAD}\r\n\r\n");
    let sender = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let piece = vec![b'x'; 64 * 1024];
        for _ in 0..UPLOAD / piece.len() {
            wr.write_all(&piece).await?;
        }
        Ok::<_, std::io::Error>(wr)
    });
    let answer = tokio::time::timeout(ANSWER_WITHIN, async {
        let mut buf = Vec::new();
        let head_len = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = rd.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the connection ended before an answer");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        let want = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().unwrap())
            })
            .expect("the answer has a Content-Length");
        while buf.len() < want {
            let mut chunk = [0u8; 4096];
            let n = rd.read(&mut chunk).await.unwrap_or(0);
            assert!(n > 0, "the connection ended mid-answer");
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut rest = [0u8; 1];
        let closed = matches!(rd.read(&mut rest).await, Ok(0) | Err(_));
        Answer {
            head,
            body: buf,
            closed,
        }
    })
    .await
    .expect("the answer arrives well before the idle timeout");
    sender.abort();
    answer
}

#[tokio::test]
async fn a_413_from_a_target_that_stops_reading_reaches_the_client() {
    let (_p, addr) = setup(10 * 1024, Early::AnswerAndStall(413, "too large")).await;
    let a = upload_and_answer(addr).await;
    assert!(a.head.starts_with("HTTP/1.1 413"), "{}", a.head);
    assert!(
        a.head.to_ascii_lowercase().contains("connection: close"),
        "{}",
        a.head
    );
    assert_eq!(a.body, b"too large");
    assert!(a.closed, "the connection ends after the answer");
}

#[tokio::test]
async fn a_413_from_a_target_that_closes_at_once_reaches_the_client() {
    let (_p, addr) = setup(10 * 1024, Early::AnswerAndClose(413, "too large")).await;
    let a = upload_and_answer(addr).await;
    assert!(a.head.starts_with("HTTP/1.1 413"), "{}", a.head);
    assert_eq!(a.body, b"too large");
    assert!(a.closed, "the connection ends after the answer");
}

#[tokio::test]
async fn an_early_200_reaches_the_client() {
    let (_p, addr) = setup(1 << 20, Early::AnswerAndStall(200, "enough")).await;
    let a = upload_and_answer(addr).await;
    assert!(a.head.starts_with("HTTP/1.1 200"), "{}", a.head);
    assert_eq!(a.body, b"enough");
    assert!(a.closed, "the connection ends after the answer");
}

#[tokio::test]
async fn a_target_closing_mid_upload_without_an_answer_gets_the_client_a_502() {
    let (_p, addr) = setup(10 * 1024, Early::Close).await;
    let a = upload_and_answer(addr).await;
    assert!(a.head.starts_with("HTTP/1.1 502"), "{}", a.head);
    assert!(a.closed, "the connection ends after the answer");
}
